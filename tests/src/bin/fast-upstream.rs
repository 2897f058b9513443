//! `fast-upstream`: the load benchmark's mock upstream — a minimal hyper HTTP/1.1 server
//! that answers `POST /v1/chat/completions` (and `/chat/completions`) with one fixed, small
//! OpenAI chat completion, as fast as it can, and `GET /v1/models` with a one-model list (what
//! the data plane's health checks probe). Everything else is an OpenAI-shaped 404. A request
//! whose body asks for `"stream":true` gets the same answer as a server-sent event stream
//! (chunked, one chunk per event, with a usage chunk and `[DONE]`), as OpenAI streams it.
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
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Body, Frame, Incoming};
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

/// The streamed answer, one server-sent event per chunk.
const STREAM: [&str; 5] = [
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1764057600,\"model\":\"bench-upstream\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1764057600,\"model\":\"bench-upstream\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1764057600,\"model\":\"bench-upstream\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}\n\n",
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1764057600,\"model\":\"bench-upstream\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}}\n\n",
    "data: [DONE]\n\n",
];

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

async fn answer(req: Request<Incoming>) -> Result<Response<Answer>, Infallible> {
    let (parts, body) = req.into_parts();
    // Read the whole body, as a real upstream does before answering.
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let (status, answer) = match (&parts.method, parts.uri.path()) {
        (&Method::POST, "/v1/chat/completions" | "/chat/completions") => {
            if memchr::memmem::find(&body, b"\"stream\":true").is_some() {
                let mut resp = Response::new(Either::Right(Events(STREAM.iter())));
                resp.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
                return Ok(resp);
            }
            (StatusCode::OK, ANSWER)
        }
        (&Method::GET, "/v1/models" | "/models") => (StatusCode::OK, MODELS),
        _ => (StatusCode::NOT_FOUND, NOT_FOUND),
    };
    let mut resp = Response::new(Either::Left(Full::new(Bytes::from_static(
        answer.as_bytes(),
    ))));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

/// A JSON answer (with a length) or an event stream (chunked).
type Answer = Either<Full<Bytes>, Events>;

/// The streamed answer's events, one body frame (so one chunk) each.
struct Events(std::slice::Iter<'static, &'static str>);

impl Body for Events {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(
            self.0
                .next()
                .map(|event| Ok(Frame::data(Bytes::from_static(event.as_bytes())))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_json(event: &str) -> serde_json::Value {
        let json = event
            .strip_prefix("data: ")
            .and_then(|e| e.strip_suffix("\n\n"))
            .expect("one SSE data line per event");
        serde_json::from_str(json).expect("JSON chunk")
    }

    #[test]
    fn the_stream_is_openai_chunks_then_done() {
        let (done, chunks) = STREAM.split_last().expect("events");
        assert_eq!(*done, "data: [DONE]\n\n");
        let chunks: Vec<serde_json::Value> = chunks.iter().map(|e| event_json(e)).collect();
        assert!(
            chunks
                .iter()
                .all(|c| c["object"] == "chat.completion.chunk")
        );
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "ok");
        assert_eq!(chunks[2]["choices"][0]["finish_reason"], "stop");
        assert_eq!(chunks[3]["usage"]["total_tokens"], 2);
    }

    #[test]
    fn the_answer_is_an_openai_chat_completion() {
        let answer: serde_json::Value = serde_json::from_str(ANSWER).expect("JSON");
        assert_eq!(answer["object"], "chat.completion");
        assert_eq!(answer["choices"][0]["message"]["content"], "ok");
    }
}
