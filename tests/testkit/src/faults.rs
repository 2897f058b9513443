//! A fault-injecting mock upstream: an OpenAI chat-completions server (plain and
//! streaming) on `127.0.0.1` that, per request or on a schedule, breaks in the ways real
//! upstreams break — below HTTP as well as in it.
//!
//! ```ignore
//! let up = FaultUpstream::start("a").await;
//! up.set(Fault::Status(503));                          // every request from now on
//! up.then(Fault::Reset);                               // the next request only
//! up.schedule(When::Requests(10..20), Fault::HangBeforeHeaders); // requests #10..#19
//! up.schedule(When::Every { period: secs(10), faulty: secs(3) }, Fault::Status(500));
//! ```
//!
//! Which fault a request gets: the first queued one ([`FaultUpstream::then`]), else the
//! first schedule rule that matches it, else the default ([`FaultUpstream::set`],
//! [`Fault::None`] at start).
//!
//! It writes HTTP/1.1 by hand (hyper would not let it reset a connection, stop in the
//! middle of a chunk, or dribble a head byte by byte): a request is read whole
//! (`Content-Length` or chunked), answered, and the connection kept alive unless the fault
//! ends it. Streams are chunked SSE: [`FaultUpstream::chunks`] content chunks
//! (`"<name>:<i> "`), a finishing chunk and `[DONE]`. Answers name the upstream
//! (`"upstream": "<name>"`), as [`crate::MockUpstream`]'s do, and every request is
//! recorded in the same [`Recorded`] form (with the same process-wide sequence numbers).
//! [`FaultUpstream::counts`] says what it received and what it did.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::upstream::{Recorded, SEQUENCE};

/// Longest request head read.
const MAX_HEAD: usize = 64 * 1024;
/// Longest request body read.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// What the upstream does with one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A correct answer (a chat completion, or an SSE stream ending in `[DONE]`).
    None,
    /// This status with an OpenAI-shaped error body (5xx, 408, or any other).
    Status(u16),
    /// 429 `rate_limit_exceeded`, with `Retry-After: <secs>` when given.
    RateLimited(Option<u64>),
    /// Reads the request, then sends nothing, not even headers, until the peer closes.
    HangBeforeHeaders,
    /// Sends the headers and this many content chunks of a stream (of an answer: half its
    /// body), then nothing more, keeping the connection open until the peer closes.
    HangMidStream(usize),
    /// Reads the request, then resets the connection (`SO_LINGER` 0 and close: RST).
    Reset,
    /// Sends the headers and this many content chunks (of an answer: half its body), then
    /// resets the connection.
    ResetMidBody(usize),
    /// Sends the headers and this many content chunks (of an answer: half its body), then
    /// closes the connection (FIN) without ending the body.
    CloseMidBody(usize),
    /// `200` with a body that is not JSON (`application/json`, cut inside an object); for
    /// a stream, `data:` events that are not JSON, then `[DONE]`.
    MalformedJson,
    /// A broken SSE stream: one good content chunk, then a line that is no SSE field, an
    /// event that is not JSON and an event cut short, and the body ends (cleanly, as
    /// HTTP) without `[DONE]`. Non-streaming requests get it too.
    BrokenSse,
    /// The correct answer, head and body, one byte at a time with this gap.
    Slow(Duration),
    /// A correct `200` answer this big: a completion whose content is this many bytes, or
    /// a stream of at least this many bytes of content (16 KiB chunks). Written as it goes
    /// (never held whole).
    Huge(u64),
}

impl Fault {
    /// A short name (the key of [`FaultCounts::by_fault`]).
    pub fn label(&self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::Status(_) => "status",
            Fault::RateLimited(_) => "rate_limited",
            Fault::HangBeforeHeaders => "hang_before_headers",
            Fault::HangMidStream(_) => "hang_mid_stream",
            Fault::Reset => "reset",
            Fault::ResetMidBody(_) => "reset_mid_body",
            Fault::CloseMidBody(_) => "close_mid_body",
            Fault::MalformedJson => "malformed_json",
            Fault::BrokenSse => "broken_sse",
            Fault::Slow(_) => "slow",
            Fault::Huge(_) => "huge",
        }
    }
}

/// When a schedule rule applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum When {
    /// To requests numbered in this range (the first request the upstream reads is 1).
    Requests(Range<u64>),
    /// To requests arriving in this window of time since the upstream's clock started
    /// (at start, or [`FaultUpstream::restart_clock`]).
    Window(Range<Duration>),
    /// Repeatedly: in every `period` since the clock started, during its first `faulty`.
    Every {
        /// Length of one cycle.
        period: Duration,
        /// How long the fault lasts at the start of each cycle.
        faulty: Duration,
    },
    /// To every `n`th request (n, 2n, …).
    EveryNth(u64),
}

impl When {
    fn matches(&self, number: u64, since_epoch: Duration) -> bool {
        match self {
            When::Requests(r) => r.contains(&number),
            When::Window(w) => w.contains(&since_epoch),
            When::Every { period, faulty } => {
                let period = period.as_nanos().max(1);
                since_epoch.as_nanos() % period < faulty.as_nanos()
            }
            When::EveryNth(n) => *n > 0 && number.is_multiple_of(*n),
        }
    }
}

/// What the upstream received and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Connections accepted.
    pub connections: u64,
    /// Requests read whole.
    pub requests: u64,
    /// Of which asked for a stream.
    pub streams: u64,
    /// Answers sent whole and correct ([`Fault::None`], [`Fault::Slow`], [`Fault::Huge`]).
    pub answered: u64,
    /// Requests by the fault they got ([`Fault::label`]).
    pub by_fault: BTreeMap<&'static str, u64>,
    /// Requests whose peer went away while the upstream hung or wrote slowly.
    pub abandoned: u64,
    /// Body bytes written, over every answer.
    pub body_bytes: u64,
}

impl FaultCounts {
    /// Requests that got this fault.
    pub fn of(&self, fault: &Fault) -> u64 {
        self.by_fault.get(fault.label()).copied().unwrap_or(0)
    }
}

#[derive(Debug)]
struct Script {
    default: Fault,
    queue: VecDeque<Fault>,
    rules: Vec<(When, Fault)>,
    epoch: Instant,
    chunks: usize,
    chunk_delay: Duration,
}

#[derive(Debug)]
struct Shared {
    name: String,
    script: Mutex<Script>,
    counts: Mutex<FaultCounts>,
    requests: Mutex<Vec<Recorded>>,
    record: bool,
}

impl Shared {
    fn counts(&self) -> MutexGuard<'_, FaultCounts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn script(&self) -> MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running fault-injecting upstream; stops (closing every connection) when dropped.
#[derive(Debug)]
pub struct FaultUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FaultUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultUpstream {
    /// Starts an upstream called `name` on `127.0.0.1:0`, answering correctly.
    pub async fn start(name: &str) -> FaultUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a fault upstream on 127.0.0.1");
        Self::serve(name, listener, true)
    }

    /// Starts an upstream on `listener`; `record` keeps every request (tests) or none
    /// (long runs, where only [`FaultUpstream::counts`] matter).
    pub fn serve(name: &str, listener: TcpListener, record: bool) -> FaultUpstream {
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            script: Mutex::new(Script {
                default: Fault::None,
                queue: VecDeque::new(),
                rules: Vec::new(),
                epoch: Instant::now(),
                chunks: 3,
                chunk_delay: Duration::ZERO,
            }),
            counts: Mutex::new(FaultCounts::default()),
            requests: Mutex::new(Vec::new()),
            record,
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        FaultUpstream { addr, shared, task }
    }

    /// The upstream's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:port/v1` (the OpenAI API base).
    pub fn openai_base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// What every request gets from now on, when nothing queued or scheduled applies.
    pub fn set(&self, fault: Fault) {
        self.shared.script().default = fault;
    }

    /// Queues a fault for one request; queued faults are used in order, first of all.
    pub fn then(&self, fault: Fault) -> &Self {
        self.shared.script().queue.push_back(fault);
        self
    }

    /// Adds a schedule rule (rules are tried in the order added).
    pub fn schedule(&self, when: When, fault: Fault) -> &Self {
        self.shared.script().rules.push((when, fault));
        self
    }

    /// Removes every schedule rule and queued fault (the default stays).
    pub fn clear_schedule(&self) {
        let mut s = self.shared.script();
        s.rules.clear();
        s.queue.clear();
    }

    /// Restarts the clock of [`When::Window`] and [`When::Every`] rules.
    pub fn restart_clock(&self) {
        self.shared.script().epoch = Instant::now();
    }

    /// Content chunks per stream (3 at start).
    pub fn chunks(&self, n: usize) -> &Self {
        self.shared.script().chunks = n;
        self
    }

    /// Gap before every content chunk after the first (none at start).
    pub fn chunk_delay(&self, d: Duration) -> &Self {
        self.shared.script().chunk_delay = d;
        self
    }

    /// What it received and did so far.
    pub fn counts(&self) -> FaultCounts {
        self.shared.counts().clone()
    }

    /// Requests read so far (numbered from 1; 0 before the first).
    pub fn count(&self) -> u64 {
        self.shared.counts().requests
    }

    /// Every request received so far (none when started without recording).
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Forgets counts and recorded requests (the script stays; request numbers start
    /// again from 1).
    pub fn reset(&self) {
        *self.shared.counts() = FaultCounts::default();
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
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
                shared.counts().connections += 1;
                connections.spawn(connection(stream, Arc::clone(&shared)));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// One request as read from the wire.
struct Request {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// How an answer left the connection.
enum After {
    KeepAlive,
    Close,
    Reset,
}

async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    loop {
        let req = match read_request(&stream, &mut buf).await {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => return,
        };
        let after = answer(&stream, &shared, req).await;
        match after {
            After::KeepAlive => {}
            After::Close => return,
            After::Reset => {
                let _ = stream.set_zero_linger();
                drop(stream);
                return;
            }
        }
    }
}

/// Decides the fault for a request and carries it out.
async fn answer(stream: &TcpStream, shared: &Arc<Shared>, req: Request) -> After {
    let request: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let streaming = request.get("stream").and_then(Value::as_bool) == Some(true);
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let number = {
        let mut c = shared.counts();
        c.requests += 1;
        if streaming {
            c.streams += 1;
        }
        c.requests
    };
    if shared.record {
        shared
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Recorded {
                seq: SEQUENCE.fetch_add(1, Ordering::SeqCst),
                at: Instant::now(),
                method: req.method.clone(),
                path: req.path.clone(),
                query: None,
                headers: req.headers.clone(),
                body: req.body.clone(),
            });
    }
    let chat = req.method == Method::POST
        && (req.path.ends_with("/chat/completions") || req.path == "/chat/completions");
    if !chat {
        let body = error_body(
            &format!("no route for {} {}", req.method, req.path),
            "invalid_request_error",
            None,
        );
        return write_json(stream, shared, 404, &body, &[]).await;
    }
    let (fault, chunks, chunk_delay) = {
        let mut s = shared.script();
        let since = s.epoch.elapsed();
        let fault = s.queue.pop_front().unwrap_or_else(|| {
            s.rules
                .iter()
                .find(|(w, _)| w.matches(number, since))
                .map_or_else(|| s.default.clone(), |(_, f)| f.clone())
        });
        (fault, s.chunks, s.chunk_delay)
    };
    *shared.counts().by_fault.entry(fault.label()).or_default() += 1;
    let answer = Answer {
        name: &shared.name,
        model: &model,
        chunks,
    };
    match fault {
        Fault::None => {
            let after = if streaming {
                write_stream(stream, shared, &answer.events(), chunk_delay).await
            } else {
                let body = answer.completion("");
                write_json(stream, shared, 200, &body, &[]).await
            };
            if matches!(after, After::KeepAlive) {
                shared.counts().answered += 1;
            }
            after
        }
        Fault::Status(status) => {
            let kind = match status {
                400 | 404 | 408 | 413 | 422 => "invalid_request_error",
                401 => "authentication_error",
                403 => "permission_error",
                _ => "server_error",
            };
            let body = error_body(&format!("fault upstream says {status}"), kind, None);
            write_json(stream, shared, status, &body, &[]).await
        }
        Fault::RateLimited(retry_after) => {
            let body = error_body(
                "fault upstream says 429",
                "rate_limit_error",
                Some("rate_limit_exceeded"),
            );
            let extra = retry_after.map(|s| ("retry-after", s.to_string()));
            let extra: Vec<(&str, String)> = extra.into_iter().collect();
            write_json(stream, shared, 429, &body, &extra).await
        }
        Fault::HangBeforeHeaders => {
            wait_for_close(stream).await;
            shared.counts().abandoned += 1;
            After::Close
        }
        Fault::HangMidStream(k) | Fault::ResetMidBody(k) | Fault::CloseMidBody(k) => {
            let sent = if streaming {
                let events = answer.events();
                let cut = k.min(events.len());
                write_stream_part(stream, shared, &events[..cut], chunk_delay).await
            } else {
                let body = answer.completion("");
                let h = head(200, "application/json", Some(body.len()), &[]);
                write_counted(stream, shared, &h, &body[..body.len() / 2]).await
            };
            if !matches!(sent, After::KeepAlive) {
                return After::Close;
            }
            match fault {
                Fault::HangMidStream(_) => {
                    wait_for_close(stream).await;
                    shared.counts().abandoned += 1;
                    After::Close
                }
                Fault::ResetMidBody(_) => After::Reset,
                _ => After::Close,
            }
        }
        Fault::Reset => After::Reset,
        Fault::MalformedJson => {
            if streaming {
                let events: Vec<Bytes> = vec![
                    Bytes::from(format!(
                        "data: {{\"id\": \"chunk-{}\", \"choices\": [{{\"delta\": \n\n",
                        shared.name
                    )),
                    Bytes::from_static(b"data: not json at all\n\n"),
                    Bytes::from_static(b"data: [DONE]\n\n"),
                ];
                write_stream(stream, shared, &events, Duration::ZERO).await
            } else {
                let body = Bytes::from(format!(
                    "{{\"id\": \"chatcmpl-{}\", \"object\": \"chat.completion\", \"choices\": [{{\"message\": ",
                    shared.name
                ));
                write_json(stream, shared, 200, &body, &[]).await
            }
        }
        Fault::BrokenSse => {
            let mut events = answer.events();
            events.truncate(1);
            events.push(Bytes::from_static(b"this line is no SSE field\n\n"));
            events.push(Bytes::from_static(b"data: {\"choices\": [{\"delta\n\n"));
            events.push(Bytes::from_static(
                b"data: {\"choices\": [{\"delta\": {\"content\": \"cut",
            ));
            write_stream(stream, shared, &events, Duration::ZERO).await
        }
        Fault::Slow(gap) => {
            let mut all = BytesMut::new();
            if streaming {
                all.extend_from_slice(&stream_head());
                for e in answer.events() {
                    all.extend_from_slice(&chunk_frame(&e));
                }
                all.extend_from_slice(b"0\r\n\r\n");
            } else {
                let body = answer.completion("");
                all.extend_from_slice(&head(200, "application/json", Some(body.len()), &[]));
                all.extend_from_slice(&body);
            }
            for byte in all.chunks(1) {
                if write_all(stream, byte).await.is_err() {
                    shared.counts().abandoned += 1;
                    return After::Close;
                }
                shared.counts().body_bytes += 1;
                tokio::time::sleep(gap).await;
            }
            shared.counts().answered += 1;
            After::KeepAlive
        }
        Fault::Huge(size) => {
            let after = if streaming {
                write_huge_stream(stream, shared, &answer, size).await
            } else {
                write_huge_answer(stream, shared, &answer, size).await
            };
            if matches!(after, After::KeepAlive) {
                shared.counts().answered += 1;
            }
            after
        }
    }
}

/// The correct answers to one request.
struct Answer<'a> {
    name: &'a str,
    model: &'a str,
    chunks: usize,
}

impl Answer<'_> {
    /// A chat completion naming this upstream, its content `content` or, when empty,
    /// `answer from <name>`.
    fn completion(&self, content: &str) -> Bytes {
        let text = if content.is_empty() {
            format!("answer from {}", self.name)
        } else {
            content.to_owned()
        };
        let v = self.completion_value(&text);
        Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
    }

    fn completion_value(&self, content: &str) -> Value {
        json!({
            "id": format!("chatcmpl-{}", self.name),
            "object": "chat.completion",
            "created": 0,
            "model": self.model,
            "upstream": self.name,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": null,
                "finish_reason": "stop",
            }],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
        })
    }

    /// One SSE event of a chat stream.
    fn chunk(&self, content: Option<&str>, finish: Value) -> Bytes {
        let delta = content.map_or_else(|| json!({}), |c| json!({"content": c}));
        let v = json!({
            "id": format!("chunk-{}", self.name),
            "object": "chat.completion.chunk",
            "created": 0,
            "model": self.model,
            "upstream": self.name,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        Bytes::from(format!("data: {v}\n\n"))
    }

    /// The events of a correct stream: the content chunks, the finishing chunk, `[DONE]`.
    fn events(&self) -> Vec<Bytes> {
        let mut events: Vec<Bytes> = (0..self.chunks)
            .map(|i| self.chunk(Some(&format!("{}:{i} ", self.name)), Value::Null))
            .collect();
        events.push(self.chunk(None, json!("stop")));
        events.push(Bytes::from_static(b"data: [DONE]\n\n"));
        events
    }
}

/// An OpenAI-shaped error body.
fn error_body(message: &str, kind: &str, code: Option<&str>) -> Bytes {
    Bytes::from(
        serde_json::to_vec(
            &json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
        )
        .unwrap_or_default(),
    )
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// A response head; with a length it is `Content-Length`, without, chunked.
fn head(status: u16, content_type: &str, length: Option<usize>, extra: &[(&str, String)]) -> Bytes {
    let mut h = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\n",
        reason(status)
    );
    match length {
        Some(n) => h.push_str(&format!("content-length: {n}\r\n")),
        None => h.push_str("transfer-encoding: chunked\r\n"),
    }
    for (name, value) in extra {
        h.push_str(&format!("{name}: {value}\r\n"));
    }
    h.push_str("\r\n");
    Bytes::from(h)
}

fn stream_head() -> Bytes {
    head(
        200,
        "text/event-stream",
        None,
        &[("cache-control", "no-cache".to_owned())],
    )
}

/// One chunk of a chunked body.
fn chunk_frame(data: &[u8]) -> Bytes {
    let mut f = BytesMut::with_capacity(data.len() + 12);
    f.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    f.extend_from_slice(data);
    f.extend_from_slice(b"\r\n");
    f.freeze()
}

async fn write_or_close(stream: &TcpStream, head: &[u8], body: &[u8]) -> After {
    let mut all = Vec::with_capacity(head.len() + body.len());
    all.extend_from_slice(head);
    all.extend_from_slice(body);
    match write_all(stream, &all).await {
        Ok(()) => After::KeepAlive,
        Err(_) => After::Close,
    }
}

/// A whole JSON answer (`Content-Length`) with this status.
async fn write_json(
    stream: &TcpStream,
    shared: &Shared,
    status: u16,
    body: &[u8],
    extra: &[(&str, String)],
) -> After {
    let h = head(status, "application/json", Some(body.len()), extra);
    write_counted(stream, shared, &h, body).await
}

async fn write_counted(stream: &TcpStream, shared: &Shared, head: &[u8], body: &[u8]) -> After {
    let after = write_or_close(stream, head, body).await;
    shared.counts().body_bytes += body.len() as u64;
    after
}

/// Writes a whole chunked SSE stream of `events` (`delay` before each content event after
/// the first).
async fn write_stream(
    stream: &TcpStream,
    shared: &Shared,
    events: &[Bytes],
    delay: Duration,
) -> After {
    if let After::KeepAlive = write_stream_part(stream, shared, events, delay).await {
        match write_all(stream, b"0\r\n\r\n").await {
            Ok(()) => After::KeepAlive,
            Err(_) => After::Close,
        }
    } else {
        After::Close
    }
}

/// Writes the head and `events` of a chunked SSE stream, without ending it.
async fn write_stream_part(
    stream: &TcpStream,
    shared: &Shared,
    events: &[Bytes],
    delay: Duration,
) -> After {
    if write_all(stream, &stream_head()).await.is_err() {
        return After::Close;
    }
    for (i, e) in events.iter().enumerate() {
        if i > 0 && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if write_all(stream, &chunk_frame(e)).await.is_err() {
            return After::Close;
        }
        shared.counts().body_bytes += e.len() as u64;
    }
    After::KeepAlive
}

/// A completion whose content is `size` bytes of `x`, written 64 KiB at a time.
async fn write_huge_answer(
    stream: &TcpStream,
    shared: &Shared,
    answer: &Answer<'_>,
    size: u64,
) -> After {
    const MARK: &str = "@@CONTENT@@";
    let template = serde_json::to_string(&answer.completion_value(MARK)).unwrap_or_default();
    let Some((before, after)) = template.split_once(MARK) else {
        return After::Close;
    };
    let length = before.len() as u64 + size + after.len() as u64;
    let h = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n{before}"
    );
    if write_all(stream, h.as_bytes()).await.is_err() {
        return After::Close;
    }
    let piece = vec![b'x'; 64 * 1024];
    let mut left = size;
    while left > 0 {
        let n = left.min(piece.len() as u64) as usize;
        if write_all(stream, &piece[..n]).await.is_err() {
            shared.counts().abandoned += 1;
            return After::Close;
        }
        shared.counts().body_bytes += n as u64;
        left -= n as u64;
    }
    match write_all(stream, after.as_bytes()).await {
        Ok(()) => After::KeepAlive,
        Err(_) => After::Close,
    }
}

/// A stream of at least `size` bytes of content, in chunks of 16 KiB of content each,
/// then the finishing chunk and `[DONE]`.
async fn write_huge_stream(
    stream: &TcpStream,
    shared: &Shared,
    answer: &Answer<'_>,
    size: u64,
) -> After {
    if write_all(stream, &stream_head()).await.is_err() {
        return After::Close;
    }
    let content = "x".repeat(16 * 1024);
    let event = chunk_frame(&answer.chunk(Some(&content), Value::Null));
    let mut sent = 0u64;
    while sent < size {
        if write_all(stream, &event).await.is_err() {
            shared.counts().abandoned += 1;
            return After::Close;
        }
        sent += content.len() as u64;
        shared.counts().body_bytes += event.len() as u64;
    }
    let mut end = BytesMut::new();
    end.extend_from_slice(&chunk_frame(&answer.chunk(None, json!("stop"))));
    end.extend_from_slice(&chunk_frame(b"data: [DONE]\n\n"));
    end.extend_from_slice(b"0\r\n\r\n");
    match write_all(stream, &end).await {
        Ok(()) => After::KeepAlive,
        Err(_) => After::Close,
    }
}

/// Waits until the peer closes the connection (or it fails), discarding what it sends.
async fn wait_for_close(stream: &TcpStream) {
    let mut scratch = [0u8; 4096];
    loop {
        if stream.readable().await.is_err() {
            return;
        }
        match stream.try_read(&mut scratch) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

async fn write_all(stream: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        stream.writable().await?;
        match stream.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads more bytes into `buf`; `Ok(0)` at the end of the stream.
async fn read_more(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    let mut scratch = [0u8; 16 * 1024];
    loop {
        stream.readable().await?;
        match stream.try_read(&mut scratch) {
            Ok(n) => {
                buf.extend_from_slice(&scratch[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads one request (head, then a `Content-Length` or chunked body); `None` when the
/// peer closed between requests.
async fn read_request(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<Option<Request>> {
    let end = loop {
        if let Some(pos) = find(buf, b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > MAX_HEAD {
            return Err(invalid("request head too large"));
        }
        if read_more(stream, buf).await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(invalid("connection closed inside a request head"))
            };
        }
    };
    let raw = buf.split_to(end + 4);
    let text = std::str::from_utf8(&raw).map_err(|_| invalid("request head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = Method::from_bytes(first.next().unwrap_or_default().as_bytes())
        .map_err(|_| invalid("bad method"))?;
    let target = first.next().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default().to_owned();
    let mut headers = HeaderMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(invalid("bad header line"));
        };
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) {
            headers.append(n, v);
        }
    }
    let chunked = headers
        .get(http::header::TRANSFER_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        read_chunked(stream, buf).await?
    } else {
        let length: usize = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .map_or(Ok(0), str::parse)
            .map_err(|_| invalid("bad content-length"))?;
        if length > MAX_BODY {
            return Err(invalid("request body too large"));
        }
        while buf.len() < length {
            if read_more(stream, buf).await? == 0 {
                return Err(invalid("connection closed inside a request body"));
            }
        }
        buf.split_to(length).freeze()
    };
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
    }))
}

async fn read_chunked(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<Bytes> {
    let mut body = BytesMut::new();
    loop {
        let line_end = loop {
            if let Some(pos) = find(buf, b"\r\n") {
                break pos;
            }
            if read_more(stream, buf).await? == 0 {
                return Err(invalid("connection closed inside a chunk size"));
            }
        };
        let line = buf.split_to(line_end + 2);
        let size_text = std::str::from_utf8(&line[..line_end])
            .map_err(|_| invalid("bad chunk size"))?
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| invalid("bad chunk size"))?;
        if body.len() + size > MAX_BODY {
            return Err(invalid("request body too large"));
        }
        while buf.len() < size + 2 {
            if read_more(stream, buf).await? == 0 {
                return Err(invalid("connection closed inside a chunk"));
            }
        }
        if size == 0 {
            // No trailers expected: the last chunk is followed by an empty line.
            let _ = buf.split_to(2);
            return Ok(body.freeze());
        }
        body.extend_from_slice(&buf[..size]);
        let _ = buf.split_to(size + 2);
    }
}
