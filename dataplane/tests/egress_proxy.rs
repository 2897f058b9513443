//! Upstream requests go through an egress proxy when the proxy rules say so: a real
//! `CONNECT` proxy on loopback sees the tunnel, and `NO_PROXY` hosts are reached directly.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::proxy::matcher::Matcher;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// An upstream answering every request with `ok` and closing.
async fn upstream() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    (addr, task)
}

/// A `CONNECT` proxy counting the tunnels it opened.
async fn connect_proxy(tunnels: Arc<AtomicUsize>) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let task = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let tunnels = Arc::clone(&tunnels);
            tokio::spawn(async move {
                let mut reader = BufReader::new(client);
                let mut line = String::new();
                if reader.read_line(&mut line).await.is_err() {
                    return;
                }
                let Some(target) = line
                    .strip_prefix("CONNECT ")
                    .and_then(|r| r.split_whitespace().next())
                else {
                    return;
                };
                let target = target.to_owned();
                // Skip the rest of the request head.
                loop {
                    let mut header = String::new();
                    match reader.read_line(&mut header).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) if header == "\r\n" => break,
                        Ok(_) => {}
                    }
                }
                let Ok(mut upstream) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                tunnels.fetch_add(1, Ordering::SeqCst);
                let mut client = reader.into_inner();
                if client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (addr, task)
}

async fn get(client: &modelgate_dataplane::client::HttpClient, url: &str) -> String {
    let req = http::Request::get(url)
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = client.request(req).await.expect("response");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::test]
async fn requests_tunnel_through_the_proxy_except_no_proxy_hosts() {
    let (up, up_task) = upstream().await;
    let tunnels = Arc::new(AtomicUsize::new(0));
    let (proxy, proxy_task) = connect_proxy(Arc::clone(&tunnels)).await;

    let via_proxy = Matcher::builder().http(format!("http://{proxy}")).build();
    let client = modelgate_dataplane::client::build_with(None, via_proxy).expect("client");
    assert_eq!(get(&client, &format!("http://{up}/v1/models")).await, "ok");
    assert_eq!(
        tunnels.load(Ordering::SeqCst),
        1,
        "the request went through the tunnel"
    );

    let bypass = Matcher::builder()
        .http(format!("http://{proxy}"))
        .no("127.0.0.1")
        .build();
    let client = modelgate_dataplane::client::build_with(None, bypass).expect("client");
    assert_eq!(get(&client, &format!("http://{up}/v1/models")).await, "ok");
    assert_eq!(
        tunnels.load(Ordering::SeqCst),
        1,
        "NO_PROXY hosts are reached directly"
    );

    up_task.abort();
    proxy_task.abort();
}
