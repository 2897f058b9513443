//! Raw HTTP/1.1 over a `TcpStream`, for tests of what exactly goes over the wire (heads,
//! framing, pipelining, closes) where a real client would hide it.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// One answer read off the wire.
#[derive(Clone, Debug)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// The head, lower-cased (status line and headers).
    pub head: String,
    /// The body (de-chunked when it was chunked).
    pub body: String,
}

impl RawResponse {
    /// The value of header `name` (lower-case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            (n.trim() == name).then(|| v.trim())
        })
    }
}

/// Reads from `s` until the peer closes or `within` passes: (bytes, closed by the peer).
pub async fn read_all(s: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

/// Reads one whole answer framed by `content-length` or chunked coding from `s`, leaving
/// whatever follows it in `pending` (pipelined answers). Panics after 10 s or when the
/// connection closes first.
pub async fn read_one(s: &mut TcpStream, pending: &mut Vec<u8>) -> RawResponse {
    let mut buf = [0u8; 8192];
    loop {
        if let Some((resp, used)) = parse(pending) {
            pending.drain(..used);
            return resp;
        }
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .expect("read");
        assert!(
            n > 0,
            "closed before a whole answer: {}",
            String::from_utf8_lossy(pending)
        );
        pending.extend_from_slice(&buf[..n]);
    }
}

/// Reads one whole answer from `s` (see [`read_one`]).
pub async fn read_response(s: &mut TcpStream) -> RawResponse {
    read_one(s, &mut Vec::new()).await
}

/// A whole answer at the start of `data`, and its length; `None` while incomplete.
fn parse(data: &[u8]) -> Option<(RawResponse, usize)> {
    let end = data.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut resp = RawResponse {
        status,
        head,
        body: String::new(),
    };
    let start = end + 4;
    if resp.header("transfer-encoding") == Some("chunked") {
        let mut at = start;
        let mut body = Vec::new();
        loop {
            let line_end = data[at..].windows(2).position(|w| w == b"\r\n")? + at;
            let size =
                usize::from_str_radix(String::from_utf8_lossy(&data[at..line_end]).trim(), 16)
                    .expect("a chunk size");
            let chunk = line_end + 2;
            if data.len() < chunk + size + 2 {
                return None;
            }
            if size == 0 {
                resp.body = String::from_utf8_lossy(&body).into_owned();
                return Some((resp, chunk + 2));
            }
            body.extend_from_slice(&data[chunk..chunk + size]);
            at = chunk + size + 2;
        }
    }
    let len = resp
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    if data.len() < start + len {
        return None;
    }
    resp.body = String::from_utf8_lossy(&data[start..start + len]).into_owned();
    Some((resp, start + len))
}
