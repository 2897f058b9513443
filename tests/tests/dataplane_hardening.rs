//! The data plane's hardening limits, on real sockets: what a client sees at each (an
//! OpenAI-shaped error with the right status where HTTP allows an answer, a closed
//! connection where no request was made) and that the gateway keeps serving others.
//! Short real timeouts with generous margins; every limit is set small through
//! `Config`, as the binary's flags set it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use modelgate_dataplane::server::Limits;
use modelgate_dataplane::{App, Config, bind, client, run};
use modelgate_testkit::raw::{self, read_all};
use modelgate_testkit::{Dep, Manifest, MockUpstream, Reply, compile_ok, ms};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A data plane in-process with `limits` (and the rest of `tune`'s changes), serving
/// `manifest`; stops when dropped.
struct Hardened {
    addr: SocketAddr,
    _shutdown: watch::Sender<bool>,
}

async fn start(manifest: &Manifest, tune: impl FnOnce(&mut Config)) -> Hardened {
    let mut config = Config::new("127.0.0.1:0".parse().expect("address"));
    tune(&mut config);
    let no_proxy = hyper_util::client::proxy::matcher::Matcher::builder().build();
    let app = App::new(client::build_with(None, no_proxy).expect("the upstream client"));
    app.offer(compile_ok(&manifest.to_yaml(), 1))
        .expect("the table is accepted");
    let listeners = bind(&config).await.expect("bind");
    let addr = listeners.public.local_addr().expect("address");
    let (tx, rx) = watch::channel(false);
    let app = Arc::clone(&app);
    tokio::spawn(async move { run(app, &config, listeners, rx).await });
    Hardened {
        addr,
        _shutdown: tx,
    }
}

fn chat(model: &str) -> String {
    let body = format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#);
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Reads one whole response with a `content-length` from `s`: (status, headers, body).
async fn read_response(s: &mut TcpStream) -> (u16, String, String) {
    let r = raw::read_response(s).await;
    (r.status, r.head, r.body)
}

/// An OpenAI error body's `error` object.
fn openai_error(body: &str) -> Value {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let e = v["error"].clone();
    for field in ["message", "type", "param", "code"] {
        assert!(e.get(field).is_some(), "no {field} in {body}");
    }
    e
}

async fn one_chat(addr: SocketAddr, model: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(chat(model).as_bytes()).await.expect("send");
    read_response(&mut s).await
}

fn mock_manifest() -> Manifest {
    Manifest::new().with(Dep::mock("m", "chat"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_get_431_and_the_gateway_serves_on() {
    let gw = start(&mock_manifest(), |c| {
        c.limits.max_header_bytes = 4096;
        c.limits.max_headers = 20;
    })
    .await;
    // One huge header.
    let mut s = TcpStream::connect(gw.addr).await.expect("connect");
    let big = format!(
        "GET /v1/models HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(8000)
    );
    s.write_all(big.as_bytes()).await.expect("send");
    let (text, closed) = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    assert!(closed, "the connection closes after a 431");
    // Too many headers.
    let mut s = TcpStream::connect(gw.addr).await.expect("connect");
    let mut many = String::from("GET /v1/models HTTP/1.1\r\nhost: x\r\n");
    for i in 0..40 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    s.write_all(many.as_bytes()).await.expect("send");
    let (text, _) = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    // Within the limits: served, a whole answer with its length (not chunked).
    let (status, head, body) = one_chat(gw.addr, "chat").await;
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("content-length:"), "{head}");
    serde_json::from_str::<Value>(&body).expect("a whole JSON answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_413() {
    let gw = start(
        &mock_manifest().settings(serde_json::json!({"maxRequestBodyBytes": 1024})),
        |_| {},
    )
    .await;
    let body = format!(
        r#"{{"model":"chat","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(4096)
    );
    let mut s = TcpStream::connect(gw.addr).await.expect("connect");
    s.write_all(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .expect("send");
    let (status, head, body) = read_response(&mut s).await;
    assert_eq!(status, 413, "{body}");
    assert!(head.contains("connection: close"), "{head}");
    openai_error(&body);
}

/// A client that sends its request head a byte at a time and never finishes is cut off
/// at the header timeout; others are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_header_client_is_cut_off() {
    let gw = start(&mock_manifest(), |c| {
        c.limits.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let mut slow = TcpStream::connect(gw.addr).await.expect("connect");
    let started = Instant::now();
    let trickle = async {
        for b in b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-slow: "
            .iter()
            .chain(b"z".repeat(100).iter())
        {
            if slow.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(ms(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), trickle)
        .await
        .expect("the trickle ends");
    let (text, closed) = read_all(&mut slow, Duration::from_secs(5)).await;
    let took = started.elapsed();
    assert!(closed, "the slow client was not cut off");
    assert!(!text.contains(" 200 "), "{text}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(6),
        "cut off after {took:?}"
    );
    let (status, _, body) = one_chat(gw.addr, "chat").await;
    assert_eq!(status, 200, "{body}");
}

/// A client that stops sending its body half way is dropped at the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_dropped_at_the_idle_timeout() {
    let gw = start(&mock_manifest(), |c| {
        c.limits.idle_timeout = Duration::from_secs(1);
        c.limits.request_timeout = Some(Duration::from_secs(30));
    })
    .await;
    let mut s = TcpStream::connect(gw.addr).await.expect("connect");
    s.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n{\"model\":",
    )
    .await
    .expect("send");
    let started = Instant::now();
    let (text, closed) = read_all(&mut s, Duration::from_secs(10)).await;
    let took = started.elapsed();
    assert!(closed, "still open after {took:?}: {text}");
    assert!(!text.contains(" 200 "), "{text}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(8),
        "dropped after {took:?}"
    );
}

/// The request timeout bounds the time to an answer, retries and a hanging upstream
/// included: the client gets a 408 in OpenAI's shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_not_answered_in_time_is_408() {
    let up = MockUpstream::start("slow").await;
    up.set(Reply::hang());
    let gw = start(
        &Manifest::new().with(Dep::new("a", "chat", &up).request_timeout("30s")),
        |c| c.limits.request_timeout = Some(Duration::from_secs(1)),
    )
    .await;
    let started = Instant::now();
    let (status, _, body) = one_chat(gw.addr, "chat").await;
    assert_eq!(status, 408, "{body}");
    let e = openai_error(&body);
    assert_eq!(e["code"], "request_timeout", "{body}");
    assert!(started.elapsed() < Duration::from_secs(8));
}

/// Over the connection limit a client is answered 503 with Retry-After and the
/// connection is closed; once a connection frees, new ones are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_get_503_and_a_retry_after() {
    let gw = start(&mock_manifest(), |c| c.limits.max_connections = 2).await;
    // Two kept-alive connections, each having been served.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(gw.addr).await.expect("connect");
        s.write_all(chat("chat").as_bytes()).await.expect("send");
        let (status, _, body) = read_response(&mut s).await;
        assert_eq!(status, 200, "{body}");
        held.push(s);
    }
    let mut third = TcpStream::connect(gw.addr).await.expect("connect");
    third
        .write_all(chat("chat").as_bytes())
        .await
        .expect("send");
    let (status, head, body) = read_response(&mut third).await;
    assert_eq!(status, 503, "{body}");
    assert!(head.contains("retry-after: 1"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    let e = openai_error(&body);
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("2 connections")),
        "{body}"
    );
    // The held connections still work.
    held[0]
        .write_all(chat("chat").as_bytes())
        .await
        .expect("send");
    assert_eq!(read_response(&mut held[0]).await.0, 200);
    // One goes: a new connection is served.
    drop(held.pop());
    let mut served = false;
    for _ in 0..50 {
        let (status, _, _) = one_chat(gw.addr, "chat").await;
        if status == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(ms(50)).await;
    }
    assert!(served, "a freed connection slot was never reused");
}

/// Requests in flight (a stream until it ends) are bounded: beyond it a 503 with
/// Retry-After; after the stream ends, requests are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_are_bounded_streams_included() {
    let up = MockUpstream::start("a").await;
    up.set(Reply::ok().chunks(6).chunk_delay(ms(200)));
    let gw = start(&Manifest::new().with(Dep::new("a", "chat", &up)), |c| {
        c.max_in_flight = 1;
    })
    .await;
    let body = r#"{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let mut stream = TcpStream::connect(gw.addr).await.expect("connect");
    stream
        .write_all(
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .expect("send");
    let mut first = [0u8; 64];
    let n = stream.read(&mut first).await.expect("the stream starts");
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    // The stream is still going: a second request is shed.
    let (status, head, body2) = one_chat(gw.addr, "chat").await;
    assert_eq!(status, 503, "{body2}");
    assert!(head.contains("retry-after: 1"), "{head}");
    openai_error(&body2);
    let (rest, closed) = read_all(&mut stream, Duration::from_secs(10)).await;
    assert!(closed && rest.contains("[DONE]"), "{rest}");
    let mut served = false;
    for _ in 0..50 {
        if one_chat(gw.addr, "chat").await.0 == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(ms(20)).await;
    }
    assert!(served, "the stream's slot was never given back");
}

/// An upstream answer over the size limit is a 502 that says so, never a truncated
/// answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_answers_over_the_size_limit_are_502() {
    // An upstream whose every answer is 64 KiB of valid JSON.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}/v1", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let _ = s.read(&mut buf).await;
                let body = format!(
                    r#"{{"id":"x","object":"chat.completion","choices":[{{"index":0,"message":{{"role":"assistant","content":"{}"}},"finish_reason":"stop"}}]}}"#,
                    "y".repeat(64 * 1024)
                );
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    let m = Manifest::new().with(Dep::at("big", "chat", "openai-compatible", &base).retries(0));
    let gw = start(&m, |c| c.max_upstream_answer_bytes = 16 * 1024).await;
    let (status, _, body) = one_chat(gw.addr, "chat").await;
    assert_eq!(status, 502, "{body}");
    let e = openai_error(&body);
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("larger than the gateway's limit of 16384 bytes")),
        "{body}"
    );
    // Within the limit the same answer passes.
    let gw = start(&m, |c| c.max_upstream_answer_bytes = 1024 * 1024).await;
    let (status, _, body) = one_chat(gw.addr, "chat").await;
    assert_eq!(status, 200, "{}", &body[..200.min(body.len())]);
}

#[test]
fn the_defaults_are_documented_ones() {
    let l = Limits::default();
    assert_eq!(l.max_header_bytes, 64 * 1024);
    assert_eq!(l.header_read_timeout, Duration::from_secs(30));
    assert_eq!(l.request_timeout, Some(Duration::from_secs(600)));
}
