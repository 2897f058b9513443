//! A programmable mock upstream: a real HTTP/1.1 server on `127.0.0.1:0` that speaks the
//! OpenAI API (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`, `/v1/models`)
//! and the Azure OpenAI API (`/openai/deployments/{name}/…?api-version=…`, key in
//! `api-key`), whose behaviour a test scripts and changes while it runs.
//!
//! ```ignore
//! let up = MockUpstream::start("a").await;
//! up.set(Reply::ok());                              // every request, from now on
//! up.then(Reply::fail(503).retry_after(1));         // the next request only, in order
//! up.set(Reply::ok().chunks(5).chunk_delay(ms(100))); // streams: 5 chunks, 100 ms apart
//! ```
//!
//! Answers name the upstream that gave them (`"upstream": "<name>"` in every JSON body and
//! stream chunk, and chunk texts `"<name>:<i> "`). Every request is recorded (path, query,
//! headers, body, a sequence number shared by every mock upstream of the process, so
//! requests to several upstreams can be put in order), and counters tell how streams ended
//! and which requests their peer gave up on.
//!
//! It also speaks the Responses API (`POST /v1/responses`, Azure's
//! `/openai/responses?api-version=…`, `GET`/`DELETE /v1/responses/{id}`): responses get ids
//! `resp_<n>` (unique in the process) and are stored, so a `previous_response_id` or a
//! `GET` this upstream did not issue gets a 404, as on OpenAI; streams are
//! `response.created`, `response.output_text.delta`s and `response.completed` events.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = UnsyncBoxBody<Bytes, BoxError>;

/// Orders requests across every mock upstream of the process.
pub(crate) static SEQUENCE: AtomicU64 = AtomicU64::new(1);
/// Numbers Responses API ids across every mock upstream of the process.
static RESPONSE_IDS: AtomicU64 = AtomicU64::new(1);

/// What an upstream does with one request.
#[derive(Clone, Debug)]
pub struct Reply {
    kind: Kind,
    delay: Duration,
    chunks: usize,
    first_chunk_delay: Duration,
    chunk_delay: Duration,
    die_after: Option<usize>,
    stall_after: Option<usize>,
}

#[derive(Clone, Debug)]
enum Kind {
    Ok,
    Fail {
        status: StatusCode,
        body: Value,
        retry_after: Option<String>,
    },
    Hang,
}

impl Reply {
    fn with(kind: Kind) -> Self {
        Self {
            kind,
            delay: Duration::ZERO,
            chunks: 3,
            first_chunk_delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            die_after: None,
            stall_after: None,
        }
    }

    /// Answer: a JSON completion naming this upstream, or (for `"stream": true`) an SSE
    /// stream of [`Reply::chunks`] chunks, a finishing chunk, a usage chunk when
    /// `stream_options.include_usage` is set, and `[DONE]`.
    pub fn ok() -> Self {
        Self::with(Kind::Ok)
    }

    /// Fail with `status` and an OpenAI-shaped error body.
    pub fn fail(status: u16) -> Self {
        let status = StatusCode::from_u16(status).expect("a valid status code");
        let (kind, code) = match status.as_u16() {
            400 => ("invalid_request_error", Value::Null),
            401 => ("invalid_request_error", json!("invalid_api_key")),
            403 => ("permission_error", Value::Null),
            404 => ("invalid_request_error", json!("model_not_found")),
            429 => ("rate_limit_error", json!("rate_limit_exceeded")),
            _ => ("server_error", Value::Null),
        };
        let body = json!({"error": {
            "message": format!("mock upstream says {}", status.as_u16()),
            "type": kind,
            "param": null,
            "code": code,
        }});
        Self::with(Kind::Fail {
            status,
            body,
            retry_after: None,
        })
    }

    /// Fail with 400 `context_length_exceeded`, as OpenAI does for a prompt that is too long.
    pub fn context_length_exceeded() -> Self {
        Self::fail(400).error_body(json!({"error": {
            "message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }}))
    }

    /// Never answer (not even headers) until the connection closes.
    pub fn hang() -> Self {
        Self::with(Kind::Hang)
    }

    /// Replaces the error body of a failure.
    pub fn error_body(mut self, body: Value) -> Self {
        if let Kind::Fail { body: b, .. } = &mut self.kind {
            *b = body;
        }
        self
    }

    /// Adds `Retry-After: secs` to a failure.
    pub fn retry_after(mut self, secs: u64) -> Self {
        if let Kind::Fail { retry_after, .. } = &mut self.kind {
            *retry_after = Some(secs.to_string());
        }
        self
    }

    /// Waits this long before answering (before the headers).
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }

    /// Streams `n` content chunks (default 3).
    pub fn chunks(mut self, n: usize) -> Self {
        self.chunks = n;
        self
    }

    /// Waits this long between the headers and the first chunk.
    pub fn first_chunk_delay(mut self, d: Duration) -> Self {
        self.first_chunk_delay = d;
        self
    }

    /// Waits this long before every chunk after the first.
    pub fn chunk_delay(mut self, d: Duration) -> Self {
        self.chunk_delay = d;
        self
    }

    /// Drops the connection (without ending the chunked body) after `k` content chunks.
    pub fn die_after(mut self, k: usize) -> Self {
        self.die_after = Some(k);
        self
    }

    /// Sends nothing more, keeping the connection open, after `k` content chunks.
    pub fn stall_after(mut self, k: usize) -> Self {
        self.stall_after = Some(k);
        self
    }
}

/// One request an upstream received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Position among the requests of every mock upstream of the process.
    pub seq: u64,
    /// When it arrived (its body read).
    pub at: Instant,
    /// Method.
    pub method: Method,
    /// Path, without the query.
    pub path: String,
    /// Query string, if any.
    pub query: Option<String>,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Recorded {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `model` of the body.
    pub fn model(&self) -> Option<String> {
        self.json()
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }
}

/// What happened to requests and streams, as the upstream saw it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Streams begun (headers sent).
    pub started: u64,
    /// Streams sent to the end (`[DONE]`).
    pub completed: u64,
    /// Streams whose body was dropped before the end because the peer went away (not
    /// counting [`Reply::die_after`], which the upstream does on purpose).
    pub cancelled: u64,
    /// Streams cut on purpose by [`Reply::die_after`].
    pub died: u64,
    /// Content chunks handed to the connection.
    pub chunks: u64,
    /// Requests given up by the peer before the upstream answered (while it waited in
    /// [`Reply::delay`] or [`Reply::hang`]).
    pub abandoned: u64,
}

#[derive(Debug)]
struct Shared {
    name: String,
    default: Mutex<Reply>,
    queue: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    key: Mutex<Option<String>>,
    streams: Mutex<Counts>,
    /// Responses API objects this upstream created (and not deleted).
    stored: Mutex<Vec<Value>>,
}

impl Shared {
    fn lock_counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running mock upstream; stops (closing every connection) when dropped.
#[derive(Debug)]
pub struct MockUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockUpstream {
    /// Starts an upstream called `name` (the name appears in its answers) answering
    /// [`Reply::ok`].
    pub async fn start(name: &str) -> MockUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a mock upstream on 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            default: Mutex::new(Reply::ok()),
            queue: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            key: Mutex::new(None),
            streams: Mutex::new(Counts::default()),
            stored: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        MockUpstream { addr, shared, task }
    }

    /// The upstream's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:port` (the Azure resource endpoint).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:port/v1` (the OpenAI API base).
    pub fn openai_base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// What every request gets from now on (after the queued replies).
    pub fn set(&self, reply: Reply) {
        *self
            .shared
            .default
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = reply;
    }

    /// Queues a reply for one request; queued replies are used in order before the default.
    pub fn then(&self, reply: Reply) -> &Self {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(reply);
        self
    }

    /// Requires this key (`Authorization: Bearer` on OpenAI paths, `api-key` on Azure
    /// paths); others get 401.
    pub fn require_key(&self, key: &str) {
        *self.shared.key.lock().unwrap_or_else(|p| p.into_inner()) = Some(key.to_owned());
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The inference requests (POSTs) received so far.
    pub fn count(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == Method::POST)
            .count()
    }

    /// The last request received.
    pub fn last(&self) -> Option<Recorded> {
        self.requests().pop()
    }

    /// What happened to requests and streams so far.
    pub fn counts(&self) -> Counts {
        *self.shared.lock_counts()
    }

    /// Forgets recorded requests and stream counts (the script stays).
    pub fn reset(&self) {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        *self.shared.lock_counts() = Counts::default();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Connections live in this set, so aborting the loop closes them all.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&shared);
                connections.spawn(async move {
                    let svc = service_fn(move |req| {
                        let shared = Arc::clone(&shared);
                        async move { Ok::<_, Infallible>(handle(shared, req).await) }
                    });
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Chat,
    Completions,
    Embeddings,
    Responses,
}

fn endpoint_of(rest: &str) -> Option<Endpoint> {
    match rest {
        "responses" => Some(Endpoint::Responses),
        "chat/completions" => Some(Endpoint::Chat),
        "completions" => Some(Endpoint::Completions),
        "embeddings" => Some(Endpoint::Embeddings),
        _ => None,
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().map(str::to_owned);
    shared
        .requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Recorded {
            seq: SEQUENCE.fetch_add(1, Ordering::SeqCst),
            at: Instant::now(),
            method: parts.method.clone(),
            path: path.clone(),
            query: query.clone(),
            headers: parts.headers.clone(),
            body: body.clone(),
        });
    let name = shared.name.clone();

    // A stored response (OpenAI's or Azure's path).
    if let Some(id) = path
        .strip_prefix("/v1/responses/")
        .or_else(|| path.strip_prefix("/responses/"))
        .or_else(|| path.strip_prefix("/openai/responses/"))
    {
        let mut stored = shared.stored.lock().unwrap_or_else(|p| p.into_inner());
        let Some(i) = stored.iter().position(|r| r["id"] == id) else {
            return error(
                StatusCode::NOT_FOUND,
                &format!("Response with id '{id}' not found."),
                None,
            );
        };
        return match parts.method {
            Method::GET => json_response(StatusCode::OK, &stored[i]),
            Method::DELETE => {
                stored.remove(i);
                json_response(
                    StatusCode::OK,
                    &json!({"id": id, "object": "response", "deleted": true}),
                )
            }
            _ => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed", None),
        };
    }

    if parts.method == Method::GET {
        return match path.as_str() {
            "/v1/models" | "/models" | "/openai/models" => json_response(
                StatusCode::OK,
                &json!({"object": "list", "data": [
                    {"id": format!("{name}-model"), "object": "model", "created": 0, "owned_by": name}
                ]}),
            ),
            _ => error(
                StatusCode::NOT_FOUND,
                &format!("no route for GET {path}"),
                None,
            ),
        };
    }
    if parts.method != Method::POST {
        return error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed", None);
    }

    // Which API, and the model answering: OpenAI names it in the body, Azure in the URL.
    let azure = path.strip_prefix("/openai/deployments/");
    let azure_responses = path == "/openai/responses";
    let (endpoint, azure_deployment) = match azure {
        // Azure's Responses API names the deployment in the body.
        None if azure_responses => (Some(Endpoint::Responses), None),
        Some(rest) => {
            let Some((deployment, op)) = rest.split_once('/') else {
                return error(StatusCode::NOT_FOUND, "Resource not found", None);
            };
            (endpoint_of(op), Some(deployment.to_owned()))
        }
        None => (
            endpoint_of(
                path.strip_prefix("/v1/")
                    .unwrap_or(path.trim_start_matches('/')),
            ),
            None,
        ),
    };
    let Some(endpoint) = endpoint else {
        return error(
            StatusCode::NOT_FOUND,
            &format!("no route for POST {path}"),
            None,
        );
    };
    let is_azure = azure_deployment.is_some() || azure_responses;
    if is_azure
        && !query
            .as_deref()
            .unwrap_or_default()
            .split('&')
            .any(|kv| kv.starts_with("api-version=") && kv.len() > "api-version=".len())
    {
        return error(
            StatusCode::NOT_FOUND,
            "Resource not found: the api-version query parameter is missing",
            None,
        );
    }
    let required = shared.key.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(key) = required {
        let presented = if is_azure {
            parts
                .headers
                .get("api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        } else {
            parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_owned)
        };
        if presented.as_deref() != Some(key.as_str()) {
            return error(
                StatusCode::UNAUTHORIZED,
                "Incorrect API key provided.",
                Some("invalid_api_key"),
            );
        }
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}"), None),
    };
    let model = azure_deployment.unwrap_or_else(|| {
        request
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    });

    let reply = {
        let queued = shared
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        queued.unwrap_or_else(|| {
            shared
                .default
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        })
    };
    let mut pending = Pending {
        shared: Arc::clone(&shared),
        answered: false,
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    if let Kind::Hang = reply.kind {
        std::future::pending::<()>().await;
    }
    pending.answered = true;
    match &reply.kind {
        Kind::Hang => unreachable!("a hanging reply never gets here"),
        Kind::Fail {
            status,
            body,
            retry_after,
        } => {
            let mut resp = json_response(*status, body);
            if let Some(after) = retry_after
                && let Ok(v) = HeaderValue::from_str(after)
            {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
        Kind::Ok if endpoint == Endpoint::Responses => {
            let previous = request.get("previous_response_id").and_then(Value::as_str);
            let mut stored = shared.stored.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(previous) = previous
                && !stored.iter().any(|r| r["id"] == previous)
            {
                return error(
                    StatusCode::NOT_FOUND,
                    &format!("Previous response with id '{previous}' not found."),
                    Some("previous_response_not_found"),
                );
            }
            let id = format!("resp_{}", RESPONSE_IDS.fetch_add(1, Ordering::SeqCst));
            let object = response_object(&name, &id, &model, previous, "completed");
            stored.push(object.clone());
            drop(stored);
            if request.get("stream").and_then(Value::as_bool) == Some(true) {
                responses_stream(&shared, &object, &reply)
            } else {
                json_response(StatusCode::OK, &object)
            }
        }
        Kind::Ok => {
            let stream = request.get("stream").and_then(Value::as_bool) == Some(true);
            if stream && endpoint != Endpoint::Embeddings {
                stream_response(&shared, endpoint, &model, &request, &reply)
            } else {
                json_response(StatusCode::OK, &answer(&name, endpoint, &model, &request))
            }
        }
    }
}

fn usage() -> Value {
    json!({"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12})
}

/// A Responses API object (OpenAI's shape, with `upstream` naming this upstream).
fn response_object(
    name: &str,
    id: &str,
    model: &str,
    previous: Option<&str>,
    status: &str,
) -> Value {
    json!({
        "id": id,
        "object": "response",
        "created_at": 0,
        "status": status,
        "model": model,
        "upstream": name,
        "previous_response_id": previous,
        "output": [{
            "type": "message",
            "id": format!("msg_{id}"),
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": format!("answer from {name}"), "annotations": []}],
        }],
        "parallel_tool_calls": true,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 5,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 7,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 12,
        },
    })
}

/// A Responses API stream: `response.created`, one `response.output_text.delta` per
/// chunk (`"<name>:<i> "`), `response.completed` (the stored object).
fn responses_stream(shared: &Arc<Shared>, object: &Value, reply: &Reply) -> Response<Body> {
    let name = &shared.name;
    let mut created = object.clone();
    created["status"] = json!("in_progress");
    created["output"] = json!([]);
    let item = format!("msg_{}", object["id"].as_str().unwrap_or_default());
    let frame = |event: &str, data: Value| format!("event: {event}\ndata: {data}\n\n");
    let mut events = vec![frame(
        "response.created",
        json!({"type": "response.created", "sequence_number": 0, "response": created}),
    )];
    for i in 0..reply.chunks {
        events.push(frame(
            "response.output_text.delta",
            json!({"type": "response.output_text.delta", "sequence_number": i + 1, "item_id": item, "output_index": 0, "content_index": 0, "delta": format!("{name}:{i} ")}),
        ));
    }
    events.push(frame(
        "response.completed",
        json!({"type": "response.completed", "sequence_number": reply.chunks + 1, "response": object}),
    ));
    frames_response(shared, events, reply)
}

fn answer(name: &str, endpoint: Endpoint, model: &str, request: &Value) -> Value {
    match endpoint {
        Endpoint::Responses => response_object(name, "resp_0", model, None, "completed"),
        Endpoint::Chat => json!({
            "id": format!("chatcmpl-{name}"),
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "upstream": name,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": format!("answer from {name}")},
                "logprobs": null,
                "finish_reason": "stop",
            }],
            "usage": usage(),
        }),
        Endpoint::Completions => json!({
            "id": format!("cmpl-{name}"),
            "object": "text_completion",
            "created": 0,
            "model": model,
            "upstream": name,
            "choices": [{"index": 0, "text": format!("answer from {name}"), "logprobs": null, "finish_reason": "stop"}],
            "usage": usage(),
        }),
        Endpoint::Embeddings => {
            let inputs = match request.get("input") {
                Some(Value::Array(items)) => items.len(),
                Some(_) => 1,
                None => 0,
            };
            json!({
                "object": "list",
                "model": model,
                "upstream": name,
                "data": (0..inputs).map(|i| json!({"object": "embedding", "index": i, "embedding": [0.6, 0.8]})).collect::<Vec<_>>(),
                "usage": {"prompt_tokens": 5, "total_tokens": 5},
            })
        }
    }
}

/// Counts a request whose handler is dropped before it answers.
struct Pending {
    shared: Arc<Shared>,
    answered: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.answered {
            self.shared.lock_counts().abandoned += 1;
        }
    }
}

/// Marks how a stream ended when its body is dropped.
struct StreamEnd {
    shared: Arc<Shared>,
    ended: bool,
}

impl Drop for StreamEnd {
    fn drop(&mut self) {
        if !self.ended {
            self.shared.lock_counts().cancelled += 1;
        }
    }
}

struct StreamState {
    end: StreamEnd,
    next: usize,
    events: Vec<String>,
    reply: Reply,
}

fn stream_response(
    shared: &Arc<Shared>,
    endpoint: Endpoint,
    model: &str,
    request: &Value,
    reply: &Reply,
) -> Response<Body> {
    let name = &shared.name;
    let chat = endpoint == Endpoint::Chat;
    let object = if chat {
        "chat.completion.chunk"
    } else {
        "text_completion"
    };
    let chunk = |content: Option<String>, finish: Value| {
        let choice = if chat {
            let delta = content.map_or_else(|| json!({}), |c| json!({"content": c}));
            json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish})
        } else {
            json!({"index": 0, "text": content.unwrap_or_default(), "logprobs": null, "finish_reason": finish})
        };
        json!({"id": format!("chunk-{name}"), "object": object, "created": 0, "model": model, "upstream": name, "choices": [choice]})
    };
    let mut events: Vec<String> = (0..reply.chunks)
        .map(|i| chunk(Some(format!("{name}:{i} ")), Value::Null).to_string())
        .collect();
    events.push(chunk(None, json!("stop")).to_string());
    if request.pointer("/stream_options/include_usage") == Some(&json!(true)) {
        events.push(
            json!({"id": format!("chunk-{name}"), "object": object, "created": 0, "model": model, "upstream": name, "choices": [], "usage": usage()})
                .to_string(),
        );
    }
    events.push("[DONE]".to_owned());
    let events = events
        .into_iter()
        .map(|e| format!("data: {e}\n\n"))
        .collect();
    frames_response(shared, events, reply)
}

/// Streams `events` (whole SSE frames) with the timing and faults of `reply` on the
/// first `reply.chunks` of them.
fn frames_response(shared: &Arc<Shared>, events: Vec<String>, reply: &Reply) -> Response<Body> {
    shared.lock_counts().started += 1;
    let state = StreamState {
        end: StreamEnd {
            shared: Arc::clone(shared),
            ended: false,
        },
        next: 0,
        events,
        reply: reply.clone(),
    };
    let frames = futures_util::stream::unfold(state, |mut s| async move {
        if s.end.ended {
            return None;
        }
        let i = s.next;
        // Content chunks are the first `chunks` events; timing and faults apply to them.
        if i < s.reply.chunks {
            if s.reply.stall_after == Some(i) {
                std::future::pending::<()>().await;
            }
            let wait = if i == 0 {
                s.reply.first_chunk_delay
            } else {
                s.reply.chunk_delay
            };
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            if s.reply.die_after == Some(i) {
                // Give the connection a moment to flush the chunks already sent: a
                // failing body makes hyper close the socket without flushing.
                tokio::time::sleep(Duration::from_millis(50)).await;
                s.end.ended = true;
                s.end.shared.lock_counts().died += 1;
                let e: BoxError = "mock upstream drops the connection mid-stream".into();
                return Some((Err(e), s));
            }
            s.end.shared.lock_counts().chunks += 1;
        }
        let Some(event) = s.events.get(i).cloned() else {
            s.end.ended = true;
            s.end.shared.lock_counts().completed += 1;
            return None;
        };
        s.next += 1;
        if s.next == s.events.len() {
            s.end.ended = true;
            s.end.shared.lock_counts().completed += 1;
        }
        let frame = http_body::Frame::data(Bytes::from(event));
        Some((Ok::<_, BoxError>(frame), s))
    });
    let mut resp = Response::new(StreamBody::new(frames).boxed_unsync());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
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

fn error(status: StatusCode, message: &str, code: Option<&str>) -> Response<Body> {
    json_response(
        status,
        &json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}}),
    )
}
