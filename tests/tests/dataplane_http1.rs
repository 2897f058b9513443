//! The public port's HTTP/1.1 on real sockets, byte by byte: keep-alive and pipelining,
//! `Expect: 100-continue`, chunked request bodies, HTTP/1.0, `HEAD`, malformed heads,
//! answers given before the body was read, and clients that go away mid-request.
//! (Head limits and timeouts are in `dataplane_hardening.rs`.)

use std::time::Duration;

use modelgate_testkit::raw::{RawResponse, read_all, read_one, read_response};
use modelgate_testkit::{Dep, Gateway, Manifest, MockUpstream, Reply, Secret, eventually, ms};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn chat_body(model: &str) -> String {
    format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#)
}

/// A chat request with `extra` header lines (each ending in `\r\n`).
fn chat(model: &str, extra: &str) -> String {
    let body = chat_body(model);
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn openai_error(resp: &RawResponse) -> Value {
    let v: Value = serde_json::from_str(&resp.body).unwrap_or_else(|e| panic!("{e}: {resp:?}"));
    for field in ["message", "type", "param", "code"] {
        assert!(v["error"].get(field).is_some(), "no {field} in {resp:?}");
    }
    v["error"].clone()
}

async fn gateway() -> (Gateway, MockUpstream) {
    let up = MockUpstream::start("a").await;
    let gw = Gateway::with(&Manifest::new().with(Dep::new("a", "chat", &up))).await;
    (gw, up)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_carries_many_requests_and_pipelined_ones_answer_in_order() {
    let (gw, up) = gateway().await;
    let mut s = TcpStream::connect(gw.addr).await.expect("connect");
    let mut pending = Vec::new();
    for i in 0..5 {
        s.write_all(chat("chat", &format!("x-request-id: seq-{i}\r\n")).as_bytes())
            .await
            .expect("send");
        let resp = read_one(&mut s, &mut pending).await;
        assert_eq!(resp.status, 200, "{resp:?}");
        assert_eq!(
            resp.header("x-request-id"),
            Some(format!("seq-{i}").as_str())
        );
        assert!(resp.header("date").is_some(), "{resp:?}");
        assert_eq!(resp.header("x-modelgate-deployment"), Some("default/a"));
    }
    // Three requests in one write, then a GET: four answers, in order.
    let mut burst = String::new();
    for i in 0..3 {
        burst.push_str(&chat("chat", &format!("x-request-id: burst-{i}\r\n")));
    }
    burst.push_str("GET /v1/models HTTP/1.1\r\nhost: x\r\nx-request-id: burst-models\r\n\r\n");
    s.write_all(burst.as_bytes()).await.expect("send");
    for i in 0..3 {
        let resp = read_one(&mut s, &mut pending).await;
        assert_eq!(resp.status, 200, "{resp:?}");
        assert_eq!(
            resp.header("x-request-id"),
            Some(format!("burst-{i}").as_str())
        );
        let answer: Value = serde_json::from_str(&resp.body).expect("json");
        assert_eq!(answer["object"], "chat.completion");
    }
    let models = read_one(&mut s, &mut pending).await;
    assert_eq!(models.header("x-request-id"), Some("burst-models"));
    assert!(models.body.contains("\"chat\""), "{models:?}");
    assert!(pending.is_empty());
    assert_eq!(up.count(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_and_chunked_bodies_reach_the_upstream_whole() {
    let (gw, up) = gateway().await;
    let body = chat_body("chat");

    // Expect: the gateway says 100 Continue before the client sends its body.
    let mut s = TcpStream::connect(gw.addr).await.expect("connect");
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.expect("head");
    let (interim, _) = read_all(&mut s, Duration::from_millis(500)).await;
    assert_eq!(interim, "HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(body.as_bytes()).await.expect("body");
    let resp = read_response(&mut s).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(up.last().expect("recorded").body, body.as_bytes());

    // Chunked, in pieces with pauses, a chunk extension and a trailer; then another
    // request on the same connection.
    let mut s = TcpStream::connect(gw.addr).await.expect("connect");
    s.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n",
    )
    .await
    .expect("head");
    let (a, b) = body.split_at(10);
    for piece in [
        format!("{:x};ext=1\r\n{a}\r\n", a.len()),
        format!("{:x}\r\n{b}\r\n", b.len()),
        "0\r\nx-trailer: t\r\n\r\n".to_owned(),
    ] {
        tokio::time::sleep(ms(30)).await;
        s.write_all(piece.as_bytes()).await.expect("piece");
    }
    let resp = read_response(&mut s).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(up.last().expect("recorded").body, body.as_bytes());
    s.write_all(chat("chat", "").as_bytes())
        .await
        .expect("send");
    assert_eq!(read_response(&mut s).await.status, 200);

    // A body sent in pieces with a content-length.
    let mut s = TcpStream::connect(gw.addr).await.expect("connect");
    let request = chat("chat", "");
    let (first, rest) = request.split_at(request.len() - 20);
    s.write_all(first.as_bytes()).await.expect("first");
    tokio::time::sleep(ms(50)).await;
    s.write_all(rest.as_bytes()).await.expect("rest");
    assert_eq!(read_response(&mut s).await.status, 200);
    assert_eq!(up.count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_0_head_and_connection_close_are_honoured() {
    let (gw, _up) = gateway().await;

    // HTTP/1.0 without keep-alive: one answer, then the connection closes.
    let mut s = TcpStream::connect(gw.addr).await.expect("connect");
    let body = chat_body("chat");
    s.write_all(
        format!(
            "POST /v1/chat/completions HTTP/1.0\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .expect("send");
    let (text, closed) = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("connection: close\r\n"), "{text}");
    assert!(closed, "an HTTP/1.0 connection closes after its answer");

    // HTTP/1.0 with keep-alive stays open.
    let mut s = TcpStream::connect(gw.addr).await.expect("connect");
    for _ in 0..2 {
        s.write_all(b"GET /v1/models HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
            .await
            .expect("send");
        let resp = read_response(&mut s).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("connection"), Some("keep-alive"));
    }

    // HEAD: the head of the GET, with its length, and no body.
    let mut s = TcpStream::connect(gw.addr).await.expect("connect");
    s.write_all(b"HEAD /v1/models HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .expect("send");
    let (text, closed) = read_all(&mut s, Duration::from_secs(5)).await;
    let (head, rest) = text.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(head.contains("content-length: "), "{text}");
    assert_eq!(rest, "", "HEAD answers carry no body");
    assert!(closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_heads_get_400_in_openai_shape_and_the_connection_closes() {
    let (gw, _up) = gateway().await;
    for request in [
        "POST /v1/chat/completions HTTP/1.1\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n",
        "POST /v1/chat/completions HTTP/1.1\r\ncontent-length: five\r\n\r\n",
        "POST /v1/chat/completions HTTP/1.1\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
        "POST /v1/chat/completions HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n",
        "POST /v1/chat/completions HTTP/1.1\r\nbad header\r\n\r\n",
        "GET /v1/models HTTP/9.9\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(gw.addr).await.expect("connect");
        s.write_all(request.as_bytes()).await.expect("send");
        let (text, closed) = read_all(&mut s, Duration::from_secs(5)).await;
        assert!(
            text.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{request:?}: {text}"
        );
        assert!(text.contains("connection: close\r\n"), "{text}");
        assert!(closed, "{request:?}: the connection closes");
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        let resp = RawResponse {
            status: 400,
            head: String::new(),
            body: body.to_owned(),
        };
        assert_eq!(openai_error(&resp)["type"], "invalid_request_error");
    }
    // The gateway serves on.
    let mut s = TcpStream::connect(gw.addr).await.expect("connect");
    s.write_all(chat("chat", "").as_bytes())
        .await
        .expect("send");
    assert_eq!(read_response(&mut s).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_given_before_the_body_was_read_closes_the_connection() {
    const MASTER: &str = "sk-master-http1";
    let up = MockUpstream::start("a").await;
    let gw = Gateway::with(
        &Manifest::new()
            .with(Secret::new("gw").entry("master", MASTER))
            .with(Dep::new("a", "chat", &up))
            .settings(json!({"masterKey": {"secretKeyRef": {"name": "gw", "key": "master"}}})),
    )
    .await;
    // No key, and a body that has not arrived: 401 at once, then the connection closes
    // (what follows on it would be the rest of the body, not a request).
    let mut s = TcpStream::connect(gw.addr).await.expect("connect");
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n{\"model\":")
        .await
        .expect("send");
    let (text, closed) = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{text}");
    assert!(text.contains("connection: close\r\n"), "{text}");
    assert!(closed);
    // With `Expect: 100-continue` the refusal comes without the body ever being asked for.
    let mut s = TcpStream::connect(gw.addr).await.expect("connect");
    s.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 100000000000\r\n\r\n",
    )
    .await
    .expect("send");
    let (text, _) = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(text.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{text}");
    assert!(!text.contains("100 Continue"), "{text}");
    assert_eq!(up.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_before_its_answer_cancels_the_upstream_request() {
    let (gw, up) = gateway().await;
    up.set(Reply::ok().delay(Duration::from_secs(30)));
    let mut s = TcpStream::connect(gw.addr).await.expect("connect");
    s.write_all(chat("chat", "").as_bytes())
        .await
        .expect("send");
    assert!(
        eventually(Duration::from_secs(5), || async { up.count() == 1 }).await,
        "the request reached the upstream"
    );
    drop(s);
    assert!(
        eventually(Duration::from_secs(5), || async {
            up.counts().abandoned == 1
        })
        .await,
        "the upstream request was not cancelled: {:?}",
        up.counts()
    );
    // And the gateway serves the next one.
    up.set(Reply::ok());
    let mut s = TcpStream::connect(gw.addr).await.expect("connect");
    s.write_all(chat("chat", "").as_bytes())
        .await
        .expect("send");
    assert_eq!(read_response(&mut s).await.status, 200);
}
