//! A programmable mock of AWS Bedrock Runtime's Converse API: a real HTTP/1.1 server on
//! `127.0.0.1:0` answering `POST /model/{modelId}/converse` (JSON) and
//! `/model/{modelId}/converse-stream` (the binary `application/vnd.amazon.eventstream`
//! framing, written with the data plane's own encoder: `messageStart`,
//! `contentBlockStart/Delta/Stop`, `messageStop`, `metadata` with usage). Every request
//! must carry a SigV4 signature that verifies with the mock's credentials and region
//! (checked with the data plane's `sigv4::verify`); others get 403
//! `InvalidSignatureException`, with why in the message.
//!
//! ```ignore
//! let up = BedrockUpstream::start("br-a", "us-east-1", Credentials::new("AKID", "secret", None)).await;
//! up.set(BedrockReply::text("hi").tool("get_weather", json!({"city": "Paris"})));
//! up.then(BedrockReply::fail(429, "ThrottlingException", "slow down")); // next request only
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
use modelgate_dataplane::providers::bedrock::eventstream::{self, Message};
use modelgate_dataplane::providers::bedrock::{SERVICE, sigv4};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use modelgate_dataplane::providers::bedrock::Credentials;

use crate::script::{self, Script};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = UnsyncBoxBody<Bytes, BoxError>;

/// What the mock does with one request.
#[derive(Clone, Debug)]
pub struct BedrockReply {
    text: String,
    tools: Vec<(String, Value)>,
    fail: Option<(StatusCode, String, String)>,
    exception_after: Option<(usize, String)>,
}

impl BedrockReply {
    /// An answer with this text (streamed word by word).
    pub fn text(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            tools: Vec::new(),
            fail: None,
            exception_after: None,
        }
    }

    /// Adds a `toolUse` block calling `name` with `input` (stop reason `tool_use`).
    pub fn tool(mut self, name: &str, input: Value) -> Self {
        self.tools.push((name.to_owned(), input));
        self
    }

    /// An error answer: `status`, `x-amzn-errortype: <kind>`, `{"message"}`.
    pub fn fail(status: u16, kind: &str, message: &str) -> Self {
        let status = StatusCode::from_u16(status).expect("a valid status");
        Self {
            fail: Some((status, kind.to_owned(), message.to_owned())),
            ..Self::text("")
        }
    }

    /// Streams: an exception message of `kind` after `k` text deltas (`0`: first).
    pub fn exception_after(mut self, k: usize, kind: &str) -> Self {
        self.exception_after = Some((k, kind.to_owned()));
        self
    }
}

#[derive(Debug)]
struct Shared {
    credentials: Credentials,
    region: String,
    script: Script<BedrockReply>,
}

/// A running mock of Bedrock Runtime; stops when dropped.
#[derive(Debug)]
pub struct BedrockUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for BedrockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The script: `set`, `then`, `require_key`, `requests`, `count`, `last`.
impl std::ops::Deref for BedrockUpstream {
    type Target = Script<BedrockReply>;

    fn deref(&self) -> &Script<BedrockReply> {
        &self.shared.script
    }
}

impl BedrockUpstream {
    /// Starts a mock called `name`, accepting requests signed with `credentials` for
    /// `region`.
    pub async fn start(name: &str, region: &str, credentials: Credentials) -> BedrockUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a mock Bedrock upstream on 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            credentials,
            region: region.to_owned(),
            script: Script::new(BedrockReply::text(&format!("answer from {name}"))),
        });
        let served = Arc::clone(&shared);
        let task = tokio::spawn(script::serve(listener, move |req| {
            handle(Arc::clone(&served), req)
        }));
        BedrockUpstream { addr, shared, task }
    }

    /// `http://127.0.0.1:port` (the deployment's `apiBase`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response<Body> {
    let mut resp = json_response(status, &json!({"message": message}));
    if let Ok(v) = HeaderValue::from_str(kind) {
        resp.headers_mut().insert("x-amzn-errortype", v);
    }
    resp
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = shared.script.record(req).await;
    let path = parts.uri.path().to_owned();
    if let Err(e) = sigv4::verify(
        &parts,
        &body,
        &shared.credentials,
        &shared.region,
        SERVICE,
        sigv4::Settings::default(),
    ) {
        return error(
            StatusCode::FORBIDDEN,
            "InvalidSignatureException",
            &format!("The request signature we calculated does not match: {e}"),
        );
    }
    let stream = match path.rsplit_once('/') {
        Some((prefix, "converse")) if prefix.starts_with("/model/") => false,
        Some((prefix, "converse-stream")) if prefix.starts_with("/model/") => true,
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                &format!("no route for {} {path}", parts.method),
            );
        }
    };
    if parts.method != Method::POST {
        return error(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            "POST only",
        );
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                &format!("invalid JSON: {e}"),
            );
        }
    };
    if !request["messages"].is_array() || request.get("model").is_some() {
        return error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "messages is required and model is not a body field",
        );
    }
    let reply = shared.script.next_reply();
    if let Some((status, kind, message)) = &reply.fail {
        return error(*status, kind, message);
    }
    let stop_reason = if reply.tools.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    };
    let usage = json!({"inputTokens": 11, "outputTokens": 7, "totalTokens": 18});
    if !stream {
        let mut content = Vec::new();
        if !reply.text.is_empty() {
            content.push(json!({"text": reply.text}));
        }
        for (i, (name, input)) in reply.tools.iter().enumerate() {
            content.push(json!({"toolUse": {"toolUseId": format!("tooluse_{i}"), "name": name, "input": input}}));
        }
        return json_response(
            StatusCode::OK,
            &json!({"output": {"message": {"role": "assistant", "content": content}},
                "stopReason": stop_reason, "usage": usage, "metrics": {"latencyMs": 5}}),
        );
    }
    let mut messages = vec![Message::event(
        "messageStart",
        json!({"role": "assistant"}).to_string(),
    )];
    let exception = |kind: &str| {
        Message::exception(
            kind,
            json!({"message": format!("mock says {kind}")}).to_string(),
        )
    };
    let mut index = 0;
    if !reply.text.is_empty() {
        for (k, word) in reply.text.split_inclusive(' ').enumerate() {
            if let Some((after, kind)) = &reply.exception_after
                && *after == k
            {
                messages.push(exception(kind));
                return stream_response(&messages);
            }
            messages.push(Message::event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": word}}).to_string(),
            ));
        }
        messages.push(Message::event(
            "contentBlockStop",
            json!({"contentBlockIndex": 0}).to_string(),
        ));
        index += 1;
    }
    for (i, (name, input)) in reply.tools.iter().enumerate() {
        messages.push(Message::event(
            "contentBlockStart",
            json!({"contentBlockIndex": index, "start": {"toolUse": {"toolUseId": format!("tooluse_{i}"), "name": name}}}).to_string(),
        ));
        let json = input.to_string();
        let (a, b) = json.split_at(json.len() / 2);
        for piece in [a, b] {
            messages.push(Message::event(
                "contentBlockDelta",
                json!({"contentBlockIndex": index, "delta": {"toolUse": {"input": piece}}})
                    .to_string(),
            ));
        }
        messages.push(Message::event(
            "contentBlockStop",
            json!({"contentBlockIndex": index}).to_string(),
        ));
        index += 1;
    }
    if let Some((_, kind)) = &reply.exception_after {
        messages.push(exception(kind));
        return stream_response(&messages);
    }
    messages.push(Message::event(
        "messageStop",
        json!({"stopReason": stop_reason}).to_string(),
    ));
    messages.push(Message::event(
        "metadata",
        json!({"usage": usage, "metrics": {"latencyMs": 5}}).to_string(),
    ));
    stream_response(&messages)
}

/// An event-stream response sending each message as its own chunk.
fn stream_response(messages: &[Message]) -> Response<Body> {
    let frames: Vec<Result<http_body::Frame<Bytes>, BoxError>> = messages
        .iter()
        .map(|m| {
            eventstream::encode(m)
                .map(http_body::Frame::data)
                .map_err(|e| Box::new(e) as BoxError)
        })
        .collect();
    let mut resp =
        Response::new(StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.amazon.eventstream"),
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
