//! `fast-upstream`: the load benchmark's mock upstream — a minimal hyper HTTP/1.1 server
//! that answers `POST /v1/chat/completions` (and `/chat/completions`) with one fixed, small
//! OpenAI chat completion, as fast as it can, and `GET /v1/models` with a one-model list (what
//! the data plane's health checks probe). Everything else is an OpenAI-shaped 404.
//!
//! It reads the whole request body (as a real upstream would) and keeps connections alive.
//! `--threads 1` (the default) runs one single-threaded tokio runtime, which is what the
//! benchmark pins to a core.
//!
//! ```text
//! fast-upstream --listen 127.0.0.1:18080
//! ```

#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The answer to every chat completion: a real OpenAI response shape, 1 prompt token.
const ANSWER: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1764057600,"model":"bench-upstream","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;

/// The model list (the health checks' default probe for OpenAI-compatible upstreams).
const MODELS: &str = r#"{"object":"list","data":[{"id":"bench","object":"model","created":1764057600,"owned_by":"bench"}]}"#;

const NOT_FOUND: &str = r#"{"error":{"message":"not found","type":"invalid_request_error","param":null,"code":"not_found"}}"#;

#[derive(Debug, Parser)]
#[command(
    name = "fast-upstream",
    about = "A fast mock OpenAI upstream for load tests"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:18080")]
    listen: SocketAddr,
    /// Runtime worker threads (1: a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(serve(args.listen))
}

async fn serve(listen: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(listen).await?;
    eprintln!(
        "fast-upstream: listening on http://{}/v1",
        listener.local_addr()?
    );
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                eprintln!("fast-upstream: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let conn = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(answer));
            // A client going away mid-request is normal under load; nothing to report.
            let _ = conn.await;
        });
    }
}

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = match (req.method(), req.uri().path()) {
        (&Method::POST, "/v1/chat/completions" | "/chat/completions") => (StatusCode::OK, ANSWER),
        (&Method::GET, "/v1/models" | "/models") => (StatusCode::OK, MODELS),
        _ => (StatusCode::NOT_FOUND, NOT_FOUND),
    };
    // Read the whole body, as a real upstream does before answering.
    let _ = req.into_body().collect().await;
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}
