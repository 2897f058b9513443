//! A programmable mock of Anthropic's Messages API: a real HTTP/1.1 server on
//! `127.0.0.1:0` answering `POST /v1/messages` (whole messages, or SSE streams of
//! `message_start`, `ping`, `content_block_*`, `message_delta`, `message_stop`) and
//! `GET /v1/models`, checking `anthropic-version` and, when asked, the `x-api-key`.
//!
//! ```ignore
//! let up = AnthropicUpstream::start("claude-a").await;
//! up.set(AnthropicReply::text("hi").tool("get_weather", json!({"city": "Paris"})));
//! up.then(AnthropicReply::fail(529, "overloaded_error", "Overloaded")); // next request only
//! up.then(AnthropicReply::text("x").error_event_after(1, "overloaded_error")); // mid-stream
//! ```
//!
//! By default it answers `answer from <name>` (its name tells tests which upstream
//! answered). Every request is recorded like [`crate::upstream::MockUpstream`]'s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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
pub struct AnthropicReply {
    text: Option<String>,
    tools: Vec<(String, Value)>,
    fail: Option<(StatusCode, String, String, Option<u64>)>,
    error_after: Option<(usize, String)>,
    delay: Duration,
}

impl AnthropicReply {
    /// A message with this text (streamed word by word).
    pub fn text(text: &str) -> Self {
        Self {
            text: Some(text.to_owned()),
            tools: Vec::new(),
            fail: None,
            error_after: None,
            delay: Duration::ZERO,
        }
    }

    /// Adds a `tool_use` block calling `name` with `input` (stop reason `tool_use`).
    pub fn tool(mut self, name: &str, input: Value) -> Self {
        self.tools.push((name.to_owned(), input));
        self
    }

    /// An error answer: `status` with `{"type":"error","error":{"type","message"}}`.
    pub fn fail(status: u16, error_type: &str, message: &str) -> Self {
        let status = StatusCode::from_u16(status).expect("a valid status");
        Self {
            fail: Some((status, error_type.to_owned(), message.to_owned(), None)),
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

    /// Streams: an `error` event of `error_type` after `k` text deltas (`0`: the error
    /// is the very first event). Whole answers ignore it.
    pub fn error_event_after(mut self, k: usize, error_type: &str) -> Self {
        self.error_after = Some((k, error_type.to_owned()));
        self
    }

    /// Waits this long before answering.
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

#[derive(Debug)]
struct Shared {
    name: String,
    script: Script<AnthropicReply>,
}

/// A running mock of Anthropic's API; stops when dropped.
#[derive(Debug)]
pub struct AnthropicUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for AnthropicUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The script: `set`, `then`, `require_key`, `requests`, `count`, `last`.
impl std::ops::Deref for AnthropicUpstream {
    type Target = Script<AnthropicReply>;

    fn deref(&self) -> &Script<AnthropicReply> {
        &self.shared.script
    }
}

impl AnthropicUpstream {
    /// Starts a mock called `name`.
    pub async fn start(name: &str) -> AnthropicUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a mock Anthropic upstream on 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            script: Script::new(AnthropicReply::text(&format!("answer from {name}"))),
        });
        let served = Arc::clone(&shared);
        let task = tokio::spawn(script::serve(listener, move |req| {
            handle(Arc::clone(&served), req)
        }));
        AnthropicUpstream { addr, shared, task }
    }

    /// `http://127.0.0.1:port` (the deployment's `apiBase`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn error(status: StatusCode, error_type: &str, message: &str) -> Response<Body> {
    json_response(
        status,
        &json!({"type": "error", "error": {"type": error_type, "message": message}}),
    )
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = shared.script.record(req).await;
    let path = parts.uri.path().to_owned();
    if parts.headers.get("anthropic-version").is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "anthropic-version: header is required",
        );
    }
    let required = shared.script.required_key();
    if let Some(key) = required
        && parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(key.as_str())
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid x-api-key",
        );
    }
    match (&parts.method, path.as_str()) {
        (&Method::GET, "/v1/models") => {
            return json_response(
                StatusCode::OK,
                &json!({"data": [{"type": "model", "id": format!("{}-model", shared.name), "display_name": "Mock", "created_at": "2025-01-01T00:00:00Z"}], "has_more": false, "first_id": null, "last_id": null}),
            );
        }
        (&Method::POST, "/v1/messages") => {}
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "not_found_error",
                &format!("no route for {} {path}", parts.method),
            );
        }
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &format!("invalid JSON: {e}"),
            );
        }
    };
    if !request["max_tokens"].is_u64() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "max_tokens: Field required",
        );
    }
    if !request["messages"].is_array() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "messages: Field required",
        );
    }
    let reply = shared.script.next_reply();
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    if let Some((status, error_type, message, retry_after)) = &reply.fail {
        let mut resp = error(*status, error_type, message);
        if let Some(secs) = retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert("retry-after", v);
        }
        return resp;
    }
    let model = request["model"].as_str().unwrap_or_default().to_owned();
    let id = format!("msg_{}", shared.name);
    let text = reply.text.clone().unwrap_or_default();
    let stop_reason = if reply.tools.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    };
    if request["stream"] != json!(true) {
        let usage = json!({"input_tokens": 11, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 2, "output_tokens": 7});
        let mut content = Vec::new();
        if !text.is_empty() {
            content.push(json!({"type": "text", "text": text}));
        }
        for (i, (name, input)) in reply.tools.iter().enumerate() {
            content.push(json!({"type": "tool_use", "id": format!("toolu_{i}"), "name": name, "input": input}));
        }
        return json_response(
            StatusCode::OK,
            &json!({"id": id, "type": "message", "role": "assistant", "model": model,
                "content": content, "stop_reason": stop_reason, "stop_sequence": null, "usage": usage}),
        );
    }
    let mut events: Vec<(String, Value)> = Vec::new();
    let ev = |events: &mut Vec<(String, Value)>, v: Value| {
        let name = v["type"].as_str().unwrap_or_default().to_owned();
        events.push((name, v));
    };
    let error_event = |t: &str| json!({"type": "error", "error": {"type": t, "message": format!("mock says {t}")}});
    if let Some((0, t)) = &reply.error_after {
        ev(&mut events, error_event(t));
        return sse_response(events);
    }
    ev(
        &mut events,
        json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 11, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 2, "output_tokens": 1}}}),
    );
    ev(&mut events, json!({"type": "ping"}));
    let mut index = 0;
    if !text.is_empty() {
        ev(
            &mut events,
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        );
        for (k, word) in text.split_inclusive(' ').enumerate() {
            if let Some((after, t)) = &reply.error_after
                && *after == k
            {
                ev(&mut events, error_event(t));
                return sse_response(events);
            }
            ev(
                &mut events,
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}}),
            );
        }
        ev(
            &mut events,
            json!({"type": "content_block_stop", "index": 0}),
        );
        index += 1;
    }
    for (i, (name, input)) in reply.tools.iter().enumerate() {
        ev(
            &mut events,
            json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": format!("toolu_{i}"), "name": name, "input": {}}}),
        );
        let json = input.to_string();
        let (a, b) = json.split_at(json.len() / 2);
        for piece in ["", a, b] {
            ev(
                &mut events,
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": piece}}),
            );
        }
        ev(
            &mut events,
            json!({"type": "content_block_stop", "index": index}),
        );
        index += 1;
    }
    if let Some((_, t)) = &reply.error_after {
        ev(&mut events, error_event(t));
        return sse_response(events);
    }
    ev(
        &mut events,
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": 7}}),
    );
    ev(&mut events, json!({"type": "message_stop"}));
    sse_response(events)
}

/// An SSE response sending each event as its own chunk.
fn sse_response(events: Vec<(String, Value)>) -> Response<Body> {
    let frames = futures_util::stream::iter(events.into_iter().map(|(name, v)| {
        Ok::<_, BoxError>(http_body::Frame::data(Bytes::from(format!(
            "event: {name}\ndata: {v}\n\n"
        ))))
    }));
    let mut resp = Response::new(StreamBody::new(frames).boxed_unsync());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    resp
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let bytes = Bytes::from(serde_json::to_vec(value).unwrap_or_default());
    let mut resp = Response::new(
        Full::new(bytes)
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
