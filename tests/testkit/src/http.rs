//! A small HTTP/1.1 client for tests: whole responses, and SSE streams read event by event
//! with the time each event arrived.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as Legacy;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// How long a test waits for any one response before failing.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// A pooled HTTP/1.1 client.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Legacy<HttpConnector, Full<Bytes>>,
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

/// A whole response.
#[derive(Clone, Debug)]
pub struct Resp {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Resp {
    /// The body as JSON; panics (showing the body) when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `x-modelgate-attempts` as a number.
    pub fn attempts(&self) -> Option<u32> {
        self.header("x-modelgate-attempts")?.parse().ok()
    }

    /// `x-modelgate-deployment`.
    pub fn deployment(&self) -> Option<&str> {
        self.header("x-modelgate-deployment")
    }

    /// The `upstream` field of a mock upstream's answer.
    pub fn upstream(&self) -> Option<String> {
        serde_json::from_slice::<Value>(&self.body)
            .ok()?
            .get("upstream")?
            .as_str()
            .map(str::to_owned)
    }

    /// Panics unless the body is an OpenAI-shaped error; returns its `error` object.
    pub fn openai_error(&self) -> Value {
        let v = self.json();
        let e = v
            .get("error")
            .unwrap_or_else(|| panic!("no `error` in {v}"))
            .clone();
        assert!(e["message"].is_string(), "error.message: {v}");
        assert!(e["type"].is_string(), "error.type: {v}");
        assert!(e.get("param").is_some(), "error.param: {v}");
        assert!(e.get("code").is_some(), "error.code: {v}");
        e
    }
}

/// A request with a JSON body.
pub fn json_request(method: Method, url: &str, body: &Value) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid request")
}

/// A request with raw bytes as its body.
pub fn raw_request(method: Method, url: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(body.into()))
        .expect("a valid request")
}

/// Adds a header to a request.
pub fn with_header(mut req: Request<Full<Bytes>>, name: &str, value: &str) -> Request<Full<Bytes>> {
    req.headers_mut().insert(
        http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
        http::HeaderValue::from_str(value).expect("header value"),
    );
    req
}

impl Client {
    /// A client with a connection pool.
    pub fn new() -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        Self {
            inner: Legacy::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(http),
        }
    }

    /// Sends a request and returns the response with its body still streaming.
    pub async fn open(&self, req: Request<Full<Bytes>>) -> Response<Incoming> {
        let what = format!("{} {}", req.method(), req.uri());
        tokio::time::timeout(RESPONSE_TIMEOUT, self.inner.request(req))
            .await
            .unwrap_or_else(|_| panic!("{what}: no response within {RESPONSE_TIMEOUT:?}"))
            .unwrap_or_else(|e| panic!("{what}: {e:?}"))
    }

    /// Sends a request and reads the whole response.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Resp {
        let what = format!("{} {}", req.method(), req.uri());
        let resp = self.open(req).await;
        let (parts, body) = resp.into_parts();
        let body = tokio::time::timeout(RESPONSE_TIMEOUT, body.collect())
            .await
            .unwrap_or_else(|_| panic!("{what}: body not read within {RESPONSE_TIMEOUT:?}"))
            .unwrap_or_else(|e| panic!("{what}: body: {e:?}"))
            .to_bytes();
        Resp {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// Sends a request; `Err` when the exchange fails (no panic), for load loops.
    pub async fn try_send(&self, req: Request<Full<Bytes>>) -> Result<Resp, String> {
        let resp = tokio::time::timeout(RESPONSE_TIMEOUT, self.inner.request(req))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| format!("{e:?}"))?;
        let (parts, body) = resp.into_parts();
        let body = tokio::time::timeout(RESPONSE_TIMEOUT, body.collect())
            .await
            .map_err(|_| "body timed out".to_owned())?
            .map_err(|e| format!("{e:?}"))?
            .to_bytes();
        Ok(Resp {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// `GET url`.
    pub async fn get(&self, url: &str) -> Resp {
        self.send(
            Request::get(url)
                .body(Full::new(Bytes::new()))
                .expect("a valid request"),
        )
        .await
    }

    /// `GET url` with `Authorization: Bearer key`.
    pub async fn get_with_key(&self, url: &str, key: &str) -> Resp {
        self.send(
            Request::get(url)
                .header(header::AUTHORIZATION, format!("Bearer {key}"))
                .body(Full::new(Bytes::new()))
                .expect("a valid request"),
        )
        .await
    }

    /// `POST url` with a JSON body.
    pub async fn post(&self, url: &str, body: &Value) -> Resp {
        self.send(json_request(Method::POST, url, body)).await
    }

    /// Sends a request and reads its answer as a stream of SSE events.
    pub async fn stream(&self, req: Request<Full<Bytes>>) -> Sse {
        Sse::new(self.open(req).await)
    }
}

/// One SSE event as the client received it.
#[derive(Clone, Debug)]
pub struct Event {
    /// When the frame carrying its end arrived.
    pub at: Instant,
    /// The `data:` payload.
    pub data: String,
}

impl Event {
    /// The payload as JSON (`Null` for `[DONE]` or non-JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }

    /// True for `[DONE]`.
    pub fn is_done(&self) -> bool {
        self.data == "[DONE]"
    }

    /// True for an OpenAI-shaped error event.
    pub fn is_error(&self) -> bool {
        self.json().get("error").is_some()
    }

    /// The text of a content chunk (chat delta or completion text).
    pub fn content(&self) -> Option<String> {
        let v = self.json();
        let choice = v.get("choices")?.get(0)?;
        choice
            .pointer("/delta/content")
            .or_else(|| choice.get("text"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }
}

/// How a stream ended, as the client saw it.
#[derive(Debug)]
pub enum StreamEnd {
    /// The body ended normally.
    Closed,
    /// The body failed (the connection broke).
    Failed(String),
    /// Nothing arrived for the time given.
    TimedOut,
}

/// A response read as SSE.
#[derive(Debug)]
pub struct Sse {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// When the headers arrived.
    pub opened: Instant,
    body: Incoming,
    buf: BytesMut,
    /// Events received so far.
    pub events: Vec<Event>,
    /// Set once the body ended.
    pub end: Option<StreamEnd>,
}

impl Sse {
    fn new(resp: Response<Incoming>) -> Self {
        let (parts, body) = resp.into_parts();
        Self {
            status: parts.status,
            headers: parts.headers,
            opened: Instant::now(),
            body,
            buf: BytesMut::new(),
            events: Vec::new(),
            end: None,
        }
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The next event, waiting at most `wait`; `None` once the body ended (see
    /// [`Sse::end`]) or nothing came in time.
    pub async fn next(&mut self, wait: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(pos) = find(&self.buf, b"\n\n") {
                let raw = self.buf.split_to(pos + 2);
                let text = String::from_utf8_lossy(&raw).into_owned();
                let data: Vec<&str> = text
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if data.is_empty() {
                    continue;
                }
                let event = Event {
                    at: Instant::now(),
                    data: data.join("\n"),
                };
                self.events.push(event.clone());
                return Some(event);
            }
            if self.end.is_some() {
                return None;
            }
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => return None,
                Ok(None) => self.end = Some(StreamEnd::Closed),
                Ok(Some(Err(e))) => self.end = Some(StreamEnd::Failed(format!("{e:?}"))),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// Reads events until the body ends or nothing arrives for `idle`.
    pub async fn read_to_end(&mut self, idle: Duration) -> &[Event] {
        while self.next(idle).await.is_some() {}
        if self.end.is_none() {
            self.end = Some(StreamEnd::TimedOut);
        }
        &self.events
    }

    /// The content of every chunk received, joined.
    pub fn text(&self) -> String {
        self.events.iter().filter_map(Event::content).collect()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
