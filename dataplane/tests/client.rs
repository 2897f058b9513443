//! The upstream client's pool over real sockets: connections are reused once an answer
//! was read to its end, closed when it was not, replaced when the upstream closed them
//! while idle, and requests go out in origin form with a `Host`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use modelgate_dataplane::client::{self, HttpClient};
use tokio::net::TcpListener;

#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    /// (request target, Host) of every request.
    requests: Mutex<Vec<(String, String)>>,
}

/// A server that answers `/ok` with a sized body, `/chunked` with a chunked one,
/// `/slow` with a body that never ends; with `keep_alive` false it closes each
/// connection after its answer.
async fn server(keep_alive: bool) -> (String, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Seen::default());
    let state = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            state.connections.fetch_add(1, Ordering::SeqCst);
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let state = Arc::clone(&state);
                    async move {
                        let host = req
                            .headers()
                            .get(http::header::HOST)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        let target = req.uri().to_string();
                        state.requests.lock().expect("lock").push((target, host));
                        let body = match req.uri().path() {
                            "/chunked" => {
                                let frames = futures_util::stream::iter(["one ", "two"].map(|s| {
                                    Ok::<_, Infallible>(http_body::Frame::data(Bytes::from(s)))
                                }));
                                StreamBody::new(frames).boxed_unsync()
                            }
                            "/slow" => {
                                let frames = futures_util::stream::unfold(0u32, |n| async move {
                                    tokio::time::sleep(Duration::from_millis(20)).await;
                                    Some((
                                        Ok::<_, Infallible>(http_body::Frame::data(Bytes::from(
                                            "tick\n",
                                        ))),
                                        n + 1,
                                    ))
                                });
                                StreamBody::new(frames).boxed_unsync()
                            }
                            _ => Full::new(Bytes::from("ok")).boxed_unsync(),
                        };
                        Ok::<_, Infallible>(Response::new(body))
                    }
                });
                let _ = http1::Builder::new()
                    .keep_alive(keep_alive)
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), seen)
}

fn client() -> HttpClient {
    client::build_with(None, Matcher::builder().build()).expect("client")
}

fn get(url: String) -> Request<Full<Bytes>> {
    Request::post(url)
        .body(Full::new(Bytes::from_static(b"{}")))
        .expect("request")
}

async fn text(client: &HttpClient, url: String) -> String {
    let resp = client.request(get(url)).await.expect("answer");
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

#[tokio::test]
async fn answers_read_to_the_end_give_their_connection_back() {
    let (base, seen) = server(true).await;
    let client = client();
    for _ in 0..5 {
        assert_eq!(text(&client, format!("{base}/ok?x=1")).await, "ok");
        assert_eq!(text(&client, format!("{base}/chunked")).await, "one two");
    }
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1, "one connection");
    let requests = seen.requests.lock().expect("lock").clone();
    assert_eq!(requests.len(), 10);
    let authority = base.trim_start_matches("http://");
    assert_eq!(requests[0], ("/ok?x=1".to_owned(), authority.to_owned()));
    assert_eq!(requests[1], ("/chunked".to_owned(), authority.to_owned()));
}

#[tokio::test]
async fn concurrent_requests_open_connections_that_are_reused_afterwards() {
    let (base, seen) = server(true).await;
    let client = client();
    for _ in 0..3 {
        let all: Vec<_> = (0..4)
            .map(|_| {
                let client = client.clone();
                let url = format!("{base}/ok");
                tokio::spawn(async move { text(&client, url).await })
            })
            .collect();
        let mut resps = Vec::new();
        for a in all {
            resps.push(a.await.expect("task"));
        }
        assert!(resps.iter().all(|r| r == "ok"));
    }
    let opened = seen.connections.load(Ordering::SeqCst);
    assert!(
        (1..=4).contains(&opened),
        "at most one connection per concurrent request, then reused: {opened}"
    );
}

#[tokio::test]
async fn a_body_dropped_early_closes_its_connection() {
    let (base, seen) = server(true).await;
    let client = client();
    let resp = client
        .request(get(format!("{base}/slow")))
        .await
        .expect("answer");
    let mut body = resp.into_body();
    let first = body.frame().await.expect("a frame").expect("data");
    assert_eq!(first.into_data().expect("data"), Bytes::from("tick\n"));
    drop(body);
    // The half-read connection cannot carry another request: a new one is opened.
    assert_eq!(text(&client, format!("{base}/ok")).await, "ok");
    assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn connections_the_upstream_closes_are_replaced() {
    let (base, seen) = server(false).await;
    let client = client();
    for _ in 0..5 {
        assert_eq!(text(&client, format!("{base}/ok")).await, "ok");
        // Let the close arrive, so the next request finds the pooled connection dead.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen.connections.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn a_refused_connection_is_an_error_naming_the_upstream() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let err = client()
        .request(get(format!("http://{addr}/ok")))
        .await
        .expect_err("nothing listens");
    assert!(
        matches!(err, client::RequestError::Connect { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[tokio::test]
async fn a_uri_without_authority_is_refused() {
    let err = client()
        .request(get("/relative".to_owned()))
        .await
        .expect_err("no authority");
    assert!(
        matches!(err, client::RequestError::InvalidUri(_)),
        "{err:?}"
    );
}
