//! A programmable mock of Google's Gemini API: a real HTTP/1.1 server on `127.0.0.1:0`
//! answering `POST /v1beta/models/{model}:generateContent`,
//! `:streamGenerateContent?alt=sse` (SSE of partial `GenerateContentResponse`s, the last
//! with the finish reason and `usageMetadata`), `:embedContent`, `:batchEmbedContents`
//! and `GET /v1beta/models`, checking `x-goog-api-key` when asked and refusing a key in
//! the URL.
//!
//! ```ignore
//! let up = GeminiUpstream::start("gem-a").await;
//! up.set(GeminiReply::text("hi").tool("get_weather", json!({"city": "Paris"})));
//! up.then(GeminiReply::fail(429, "RESOURCE_EXHAUSTED", "quota")); // next request only
//! ```
//!
//! By default it answers `answer from <name>`. Every request is recorded like
//! [`crate::upstream::MockUpstream`]'s.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::script::{self, Script};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = UnsyncBoxBody<Bytes, BoxError>;

/// What the mock does with one request.
#[derive(Clone, Debug)]
pub struct GeminiReply {
    text: String,
    tools: Vec<(String, Value)>,
    fail: Option<(StatusCode, String, String, Option<u64>)>,
}

impl GeminiReply {
    /// An answer with this text (streamed word by word).
    pub fn text(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            tools: Vec::new(),
            fail: None,
        }
    }

    /// Adds a `functionCall` part calling `name` with `args`.
    pub fn tool(mut self, name: &str, args: Value) -> Self {
        self.tools.push((name.to_owned(), args));
        self
    }

    /// An error answer: `status` with `{"error":{"code","message","status"}}`.
    pub fn fail(status: u16, error_status: &str, message: &str) -> Self {
        let status = StatusCode::from_u16(status).expect("a valid status");
        Self {
            fail: Some((status, error_status.to_owned(), message.to_owned(), None)),
            ..Self::text("")
        }
    }

    /// Adds `retry-after: secs` to a failure.
    pub fn retry_after(mut self, secs: u64) -> Self {
        if let Some(f) = &mut self.fail {
            f.3 = Some(secs);
        }
        self
    }
}

#[derive(Debug)]
struct Shared {
    script: Script<GeminiReply>,
}

/// A running mock of Gemini's API; stops when dropped.
#[derive(Debug)]
pub struct GeminiUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for GeminiUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The script: `set`, `then`, `require_key`, `requests`, `count`, `last`.
impl std::ops::Deref for GeminiUpstream {
    type Target = Script<GeminiReply>;

    fn deref(&self) -> &Script<GeminiReply> {
        &self.shared.script
    }
}

impl GeminiUpstream {
    /// Starts a mock called `name`.
    pub async fn start(name: &str) -> GeminiUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a mock Gemini upstream on 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            script: Script::new(GeminiReply::text(&format!("answer from {name}"))),
        });
        let served = Arc::clone(&shared);
        let task = tokio::spawn(script::serve(listener, move |req| {
            handle(Arc::clone(&served), req)
        }));
        GeminiUpstream { addr, shared, task }
    }

    /// `http://127.0.0.1:port/v1beta` (the deployment's `apiBase`).
    pub fn url(&self) -> String {
        format!("http://{}/v1beta", self.addr)
    }
}

fn error(status: StatusCode, error_status: &str, message: &str) -> Response<Body> {
    json_response(
        status,
        &json!({"error": {"code": status.as_u16(), "message": message, "status": error_status}}),
    )
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = shared.script.record(req).await;
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().map(str::to_owned);
    if query.as_deref().is_some_and(|q| q.contains("key=")) {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "the mock refuses keys in URLs",
        );
    }
    let required = shared.script.required_key();
    if let Some(key) = required
        && parts
            .headers
            .get("x-goog-api-key")
            .and_then(|v| v.to_str().ok())
            != Some(key.as_str())
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "API key not valid. Please pass a valid API key.",
        );
    }
    if parts.method == Method::GET && path == "/v1beta/models" {
        return json_response(
            StatusCode::OK,
            &json!({"models": [{"name": "models/gemini-mock", "displayName": "Mock"}]}),
        );
    }
    let Some((model, method)) = path
        .strip_prefix("/v1beta/models/")
        .and_then(|rest| rest.split_once(':'))
        .filter(|_| parts.method == Method::POST)
    else {
        return error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("no route for {} {path}", parts.method),
        );
    };
    let model = model.to_owned();
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                &format!("invalid JSON: {e}"),
            );
        }
    };
    let reply = shared.script.next_reply();
    if let Some((status, error_status, message, retry_after)) = &reply.fail {
        let mut resp = error(*status, error_status, message);
        if let Some(secs) = retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert("retry-after", v);
        }
        return resp;
    }
    match method {
        "embedContent" => {
            return json_response(
                StatusCode::OK,
                &json!({"embedding": {"values": [0.25, -0.5, 1.0]}}),
            );
        }
        "batchEmbedContents" => {
            let n = request["requests"].as_array().map_or(0, Vec::len);
            let embeddings: Vec<Value> = (0..n)
                .map(|i| json!({"values": [i as f64, 0.5, -1.0]}))
                .collect();
            return json_response(StatusCode::OK, &json!({"embeddings": embeddings}));
        }
        "generateContent" | "streamGenerateContent" => {}
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                &format!("no method {method}"),
            );
        }
    }
    if !request["contents"].is_array() {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "contents is required",
        );
    }
    let finish = "STOP";
    let usage = json!({"promptTokenCount": 11, "candidatesTokenCount": 7, "totalTokenCount": 18});
    let calls: Vec<Value> = reply
        .tools
        .iter()
        .map(|(name, args)| json!({"functionCall": {"name": name, "args": args}}))
        .collect();
    if method == "generateContent" {
        let mut parts_out = Vec::new();
        if !reply.text.is_empty() {
            parts_out.push(json!({"text": reply.text}));
        }
        parts_out.extend(calls);
        return json_response(
            StatusCode::OK,
            &json!({"candidates": [{"content": {"role": "model", "parts": parts_out}, "finishReason": finish, "index": 0}],
                "usageMetadata": usage, "modelVersion": model}),
        );
    }
    if query.as_deref() != Some("alt=sse") {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "the mock streams only with alt=sse",
        );
    }
    let mut events: Vec<Value> = Vec::new();
    for word in reply.text.split_inclusive(' ') {
        events.push(json!({"candidates": [{"content": {"role": "model", "parts": [{"text": word}]}, "index": 0}],
            "modelVersion": model}));
    }
    for call in calls {
        events.push(
            json!({"candidates": [{"content": {"role": "model", "parts": [call]}, "index": 0}],
            "modelVersion": model}),
        );
    }
    events.push(json!({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": finish, "index": 0}],
        "usageMetadata": usage, "modelVersion": model}));
    sse_response(events)
}

/// An SSE response sending each event as its own chunk.
fn sse_response(events: Vec<Value>) -> Response<Body> {
    let frames = futures_util::stream::iter(events.into_iter().map(|v| {
        Ok::<_, BoxError>(http_body::Frame::data(Bytes::from(format!(
            "data: {v}\r\n\r\n"
        ))))
    }));
    let mut resp = Response::new(StreamBody::new(frames).boxed_unsync());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    resp
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let bytes = Bytes::from(serde_json::to_vec_pretty(value).unwrap_or_default());
    let mut resp = Response::new(
        Full::new(bytes)
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    resp
}
