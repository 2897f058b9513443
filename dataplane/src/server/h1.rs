//! HTTP/1.1 on one public connection, driven by the connection's own task.
//!
//! hyper's server costs about a third of a proxied request's instructions (its
//! `HeaderMap` parse, dispatcher and encoder, and a header-read timer and a request timer
//! each armed and removed per request). This server keeps what the public port needs and
//! no more: request heads parsed by `httparse` into one shared copy of the head, bodies
//! framed by the upstream client's [`Framing`] over the same [`ReadBuf`], answers written
//! with one vectored write (head, then the body's own bytes, uncopied), and every timer of
//! a connection armed once and moved only when it fires.
//!
//! What a client sees:
//! - keep-alive (HTTP/1.1 by default, HTTP/1.0 with `Connection: keep-alive`) and
//!   pipelining (the next head is parsed from bytes already read);
//! - a head over [`Limits::max_header_bytes`] or with more than [`Limits::max_headers`]
//!   fields: `431` in OpenAI's error shape, then the connection closes; a malformed head,
//!   `Content-Length` or `Transfer-Encoding`: `400`, then it closes;
//! - no whole head within [`Limits::header_read_timeout`] (also how long an idle
//!   keep-alive connection waits for its next request): closed without an answer;
//! - no answer begun within [`Limits::request_timeout`]: `408`, then it closes;
//! - `Expect: 100-continue` is answered when the handler first reads the body; bodies
//!   may be chunked; a handler that answers without reading the whole body gets its answer
//!   sent with `Connection: close`;
//! - a client that closes its connection while its request is being served (before or
//!   during the answer) cancels it: the handler's future is dropped, and with it the
//!   upstream request;
//! - shutdown: an idle connection closes at once, a busy one after its answer.

use std::future::{Future, poll_fn};
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap};
use http::{Method, Response, StatusCode, Uri, Version};
use http_body::{Body as _, Frame};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::{ExtraHead, IdleIo, IntoAnswer, Limits};
use crate::body::{Body, BoxError, RequestBody};
use crate::client::h1::{
    Framing, ReadBuf, Step, copy_head, items, offsets, parse_length, push_number,
};
use crate::errors::ApiError;
use crate::headers::RawHeaders;
use crate::timer::LazyTimer;

/// Header slots parsed on the stack; a `max_headers` above this takes a heap array.
const STACK_HEADERS: usize = 128;
/// Most pieces handed to one vectored write.
const MAX_IOVECS: usize = 64;
/// Body bytes gathered before they are written even though the body has more ready.
const COALESCE: usize = 64 * 1024;
/// Bytes of a pipelined next request read while the current one is served.
const MAX_PIPELINED: usize = 64 * 1024;
/// How long, and how much, an unread request body is drained after an early answer
/// before the connection closes (closing with unread bytes would reset the connection
/// under the answer).
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 256 * 1024;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

// ---------------------------------------------------------------------------------------
// Request heads.

/// Why a request head cannot be served.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeadError {
    /// The head is larger than the limit.
    #[error("the request head is larger than {0} bytes")]
    TooLarge(usize),
    /// More header fields than the limit.
    #[error("the request has more than {0} header fields")]
    TooManyHeaders(usize),
    /// Not an HTTP/1.x request head.
    #[error("malformed request head: {0}")]
    Malformed(&'static str),
}

impl HeadError {
    /// The answer a client gets.
    fn into_api_error(self) -> ApiError {
        let mut e = ApiError::bad_request(self.to_string());
        if matches!(self, HeadError::TooLarge(_) | HeadError::TooManyHeaders(_)) {
            e.status = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
            e.code = Some("request_header_fields_too_large");
        }
        e
    }
}

/// A parsed request head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) version: Version,
    pub(crate) headers: RawHeaders,
    /// How the body is delimited (`Length(0)`: none).
    pub(crate) framing: Framing,
    /// The body, when all of it came with the head (copied with it, in one piece).
    pub(crate) whole: Option<Bytes>,
    /// The client allows another request on this connection.
    pub(crate) keep_alive: bool,
    /// `Expect: 100-continue`.
    pub(crate) expect_continue: bool,
}

/// What the framing headers of a request say.
#[derive(Default)]
struct RequestFraming {
    length: Option<u64>,
    /// `Some(true)` when the last transfer coding is chunked.
    chunked: Option<bool>,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
}

impl RequestFraming {
    fn read(&mut self, name: &[u8], value: &[u8]) -> Result<(), HeadError> {
        if name.eq_ignore_ascii_case(b"content-length") {
            let mut any = false;
            for part in items(value) {
                any = true;
                let n = parse_length(part)
                    .map_err(|_| HeadError::Malformed("invalid content-length"))?;
                match self.length {
                    Some(l) if l != n => {
                        return Err(HeadError::Malformed("conflicting content-length values"));
                    }
                    _ => self.length = Some(n),
                }
            }
            if !any {
                return Err(HeadError::Malformed("invalid content-length"));
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.chunked = Some(
                items(value)
                    .next_back()
                    .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked")),
            );
        } else if name.eq_ignore_ascii_case(b"connection") {
            for t in items(value) {
                self.close |= t.eq_ignore_ascii_case(b"close");
                self.keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            self.expect_continue |= value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        }
        Ok(())
    }
}

/// Parses a request head at the start of `buf`: `Ok(None)` when it is not complete yet,
/// else the head and its length.
pub(crate) fn parse_head(
    buf: &[u8],
    limits: &Limits,
    heads: &mut BytesMut,
) -> Result<Option<(Head, usize)>, HeadError> {
    let mut stack: [MaybeUninit<httparse::Header<'_>>; STACK_HEADERS] =
        [const { MaybeUninit::uninit() }; STACK_HEADERS];
    let mut heap;
    let slots: &mut [MaybeUninit<httparse::Header<'_>>] = if limits.max_headers < STACK_HEADERS {
        &mut stack[..limits.max_headers + 1]
    } else {
        heap = Vec::new();
        heap.resize_with(limits.max_headers + 1, MaybeUninit::uninit);
        &mut heap
    };
    let mut parsed = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut parsed,
        buf,
        slots,
    ) {
        Ok(httparse::Status::Complete(len)) if len > limits.max_header_bytes => {
            return Err(HeadError::TooLarge(limits.max_header_bytes));
        }
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > limits.max_header_bytes => {
            return Err(HeadError::TooLarge(limits.max_header_bytes));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::TooManyHeaders(limits.max_headers));
        }
        Err(e) => {
            return Err(HeadError::Malformed(match e {
                httparse::Error::HeaderName => "invalid header name",
                httparse::Error::HeaderValue => "invalid header value",
                httparse::Error::Version => "not HTTP/1.x",
                httparse::Error::Token => "invalid method",
                _ => "invalid request line",
            }));
        }
    };
    if parsed.headers.len() > limits.max_headers {
        return Err(HeadError::TooManyHeaders(limits.max_headers));
    }
    let method = Method::from_bytes(parsed.method.unwrap_or("").as_bytes())
        .map_err(|_| HeadError::Malformed("invalid method"))?;
    let version = if parsed.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    // One copy of the head (and of the body when it came whole with it); the target and
    // the body are slices of it, the header fields ranges in it (httparse checked their
    // names and values).
    let target = offsets(buf, len, parsed.path.unwrap_or("").as_bytes())
        .ok_or(HeadError::Malformed("invalid request target"))?;
    let mut framing = RequestFraming::default();
    for h in parsed.headers.iter() {
        framing.read(h.name.as_bytes(), h.value)?;
    }
    let RequestFraming {
        length,
        chunked,
        close,
        keep_alive,
        expect_continue,
    } = framing;
    let body = match (chunked, length) {
        // Both: a smuggling attempt (RFC 9112 §6.3 allows refusing it).
        (Some(_), Some(_)) => {
            return Err(HeadError::Malformed(
                "both content-length and transfer-encoding",
            ));
        }
        (Some(true), None) => Framing::Chunked(Default::default()),
        (Some(false), None) => {
            return Err(HeadError::Malformed(
                "transfer-encoding does not end with chunked",
            ));
        }
        (None, length) => Framing::Length(length.unwrap_or(0)),
    };
    let (shared, whole, base) = copy_head(buf, len, &body, heads, parsed.headers)
        .ok_or(HeadError::Malformed("invalid header field"))?;
    let target = base + target.0 as usize..base + target.1 as usize;
    let uri = match known_target(&shared[target.clone()]) {
        Some(uri) => uri,
        None => Uri::from_maybe_shared(shared.slice(target))
            .map_err(|_| HeadError::Malformed("invalid request target"))?,
    };
    let headers = RawHeaders::from_table(shared, parsed.headers.len());
    let keep_alive = if version == Version::HTTP_11 {
        !close
    } else {
        keep_alive && !close
    };
    Ok(Some((
        Head {
            method,
            uri,
            version,
            headers,
            framing: body,
            whole,
            keep_alive,
            expect_continue: expect_continue && version == Version::HTTP_11,
        },
        len,
    )))
}

// ---------------------------------------------------------------------------------------
// Streamed request bodies (the slow path: the body was not whole in the first read).

#[derive(Debug, Default)]
struct Slot {
    /// Read and not yet taken by the handler.
    chunk: Option<Bytes>,
    /// The body's end: `Ok` complete, `Err` the connection failed.
    end: Option<Result<(), String>>,
    /// The handler is waiting for the body.
    wanted: bool,
    waker: Option<Waker>,
}

/// A request body the connection reads as the handler asks for it.
#[derive(Debug)]
pub struct StreamedBody {
    slot: Arc<Mutex<Slot>>,
}

impl StreamedBody {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn poll_frame(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut slot = self.lock();
        if let Some(chunk) = slot.chunk.take() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        match &slot.end {
            Some(Ok(())) => Poll::Ready(None),
            Some(Err(e)) => Poll::Ready(Some(Err(e.clone().into()))),
            None => {
                slot.wanted = true;
                if !slot.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    slot.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    pub(crate) fn is_end_stream(&self) -> bool {
        let slot = self.lock();
        slot.chunk.is_none() && matches!(slot.end, Some(Ok(())))
    }
}

/// The connection's side of a [`StreamedBody`].
struct Pump {
    framing: Framing,
    slot: Arc<Mutex<Slot>>,
    /// `100 Continue` is still owed when the body is first wanted.
    expect_continue: bool,
}

impl Pump {
    fn new(framing: Framing, expect_continue: bool) -> (Pump, StreamedBody) {
        let slot = Arc::new(Mutex::new(Slot::default()));
        (
            Pump {
                framing,
                slot: Arc::clone(&slot),
                expect_continue,
            },
            StreamedBody { slot },
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn finish(&self, end: Result<(), String>) {
        let mut slot = self.lock();
        slot.end = Some(end);
        if let Some(w) = slot.waker.take() {
            w.wake();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Timers armed once per connection.

/// The request target when it is one of the API's usual paths: parsed once and cloned
/// (a static path: nothing counted or copied), not parsed per request.
fn known_target(target: &[u8]) -> Option<Uri> {
    const PATHS: [&str; 8] = [
        "/v1/chat/completions",
        "/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/messages",
        "/v1/responses",
        "/v1/models",
        "/health/readiness",
    ];
    static KNOWN: std::sync::LazyLock<[Uri; PATHS.len()]> =
        std::sync::LazyLock::new(|| PATHS.map(Uri::from_static));
    let i = PATHS.iter().position(|p| p.as_bytes() == target)?;
    KNOWN.get(i).cloned()
}

// ---------------------------------------------------------------------------------------
// The connection.

/// How serving one request ended before its answer could be written.
enum InFlight<A> {
    Answered(A),
    TimedOut(Duration),
    /// The client closed the connection or it failed.
    Gone,
}

struct Conn<IO> {
    io: IdleIo<IO>,
    buf: ReadBuf,
    /// Bytes to write, in order.
    out: Vec<Bytes>,
    /// Of `out[0]`, already written.
    written: usize,
    /// Where answer heads and chunk-size lines are written; each is split off as the
    /// `Bytes` written, and once those are gone the next reuses the same memory (no
    /// allocation per answer).
    heads: BytesMut,
    /// Where request heads are copied (see [`copy_head`]).
    request_heads: BytesMut,
    head_timer: LazyTimer,
    request_timer: LazyTimer,
}

/// Serves requests on `io` until the client closes it, a limit closes it, or `shutdown`
/// turns true (at once when idle, after the answer in flight otherwise).
pub(crate) async fn serve_connection<IO, H, R, F>(
    io: IdleIo<IO>,
    handler: H,
    shutdown: watch::Receiver<bool>,
    limits: &Limits,
) where
    IO: AsyncRead + AsyncWrite + Unpin,
    H: Fn(R) -> F,
    R: super::FromWire,
    F: Future<Output: IntoAnswer> + Send + 'static,
{
    let mut conn = Conn {
        io,
        buf: ReadBuf::default(),
        out: Vec::with_capacity(4),
        written: 0,
        heads: BytesMut::new(),
        request_heads: BytesMut::new(),
        head_timer: LazyTimer::new(),
        request_timer: LazyTimer::new(),
    };
    let draining = shutdown.clone();
    let mut stop = Stop {
        wait: Box::pin(async move {
            let mut shutdown = shutdown;
            super::stopped(&mut shutdown).await;
        }),
        draining: draining.clone(),
        registered: false,
    };
    loop {
        // The head: from bytes already read (pipelining), or waited for. Timed from the
        // connection's last progress (the previous answer's last write, or its opening),
        // which the connection noted already: no clock read per request.
        conn.head_timer
            .set(conn.io.last_progress() + limits.header_read_timeout);
        let head = poll_fn(|cx| conn.poll_head(cx, limits, &mut stop)).await;
        let (head, len) = match head {
            Ok(Some(h)) => h,
            Ok(None) => return,
            Err(e) => {
                let resp = e.into_api_error().into_response();
                let _ = conn
                    .answer(resp, &ExtraHead::default(), false, Version::HTTP_11, false)
                    .await;
                conn.close(false).await;
                return;
            }
        };
        conn.buf.consume(len);
        let Head {
            method,
            uri,
            version,
            headers,
            framing,
            whole,
            keep_alive,
            expect_continue,
        } = head;
        // The body: whole from the bytes read (the common case), or streamed.
        let (body, mut pump) = match framing {
            Framing::Length(0) => (RequestBody::Full(None), None),
            _ if let Some(body) = whole => {
                conn.buf.consume(body.len());
                (RequestBody::Full(Some(body)), None)
            }
            framing => {
                let (pump, body) = Pump::new(framing, expect_continue);
                (RequestBody::Streamed(body), Some(pump))
            }
        };
        let head_only = method == Method::HEAD;
        let req = R::from_h1(super::ApiRequest {
            method,
            uri,
            version,
            headers,
            body,
        });
        // Boxed once: the handler's state machine is large. The request is timed from its
        // head's last read.
        let mut answer = Box::pin(handler(req));
        if let Some(limit) = limits.request_timeout {
            conn.request_timer.set(conn.io.last_progress() + limit);
        }
        let timeout = limits.request_timeout;
        let served =
            poll_fn(|cx| conn.poll_in_flight(cx, answer.as_mut(), pump.as_mut(), timeout)).await;
        drop(answer);
        let ((resp, extra), timed_out) = match served {
            InFlight::Answered(answered) => (answered.into_answer(), false),
            InFlight::TimedOut(limit) => (
                (super::request_timed_out(limit), ExtraHead::default()),
                true,
            ),
            InFlight::Gone => return,
        };
        let body_read = pump.as_ref().is_none_or(|p| p.framing.is_done());
        let keep_alive = keep_alive
            && body_read
            && !timed_out
            && !*draining.borrow()
            && !connection_close(resp.headers());
        if conn
            .answer(resp, &extra, head_only, version, keep_alive)
            .await
            .is_err()
        {
            return;
        }
        if !keep_alive {
            conn.close(!body_read).await;
            return;
        }
    }
}

/// The server's shutdown, as an idle connection waits for it.
struct Stop {
    /// Resolves at shutdown; polled once, it keeps the connection's task registered.
    wait: Pin<Box<dyn Future<Output = ()> + Send>>,
    draining: watch::Receiver<bool>,
    registered: bool,
}

impl Stop {
    /// True once shutdown has begun. The watch is registered on the first call (the
    /// connection's task is woken at shutdown); later calls only read the flag.
    fn is_stopped(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.registered {
            self.registered = true;
            return self.wait.as_mut().poll(cx).is_ready();
        }
        // A sender gone counts as shutdown, as it does for the watch.
        *self.draining.borrow() || self.draining.has_changed().is_err()
    }
}

/// True when an answer's own headers ask for the connection to close.
fn connection_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| items(v.as_bytes()).any(|t| t.eq_ignore_ascii_case(b"close")))
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Conn<IO> {
    /// The next request head; `Ok(None)` when the connection should close without an
    /// answer (the client closed it, the head timed out, or shutdown while idle).
    fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
        limits: &Limits,
        stop: &mut Stop,
    ) -> Poll<Result<Option<(Head, usize)>, HeadError>> {
        loop {
            if !self.buf.is_empty()
                && let Some(parsed) =
                    parse_head(self.buf.filled(), limits, &mut self.request_heads)?
            {
                return Poll::Ready(Ok(Some(parsed)));
            }
            match self.buf.poll_fill(&mut self.io, cx) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Ok(None)),
                Poll::Ready(Ok(_)) => continue,
                Poll::Pending => {}
            }
            if self.head_timer.poll_expired(cx) {
                return Poll::Ready(Ok(None));
            }
            // Shutting down: an idle connection closes; a head already begun is served.
            if self.buf.is_empty() && stop.is_stopped(cx) {
                return Poll::Ready(Ok(None));
            }
            return Poll::Pending;
        }
    }

    /// Drives the handler, and beside it the request body it reads, the request timeout
    /// and the client's end of the connection.
    fn poll_in_flight<A>(
        &mut self,
        cx: &mut Context<'_>,
        mut answer: Pin<&mut (impl Future<Output = A> + ?Sized)>,
        mut pump: Option<&mut Pump>,
        timeout: Option<Duration>,
    ) -> Poll<InFlight<A>> {
        loop {
            if let Poll::Ready(resp) = answer.as_mut().poll(cx) {
                return Poll::Ready(InFlight::Answered(resp));
            }
            if let Some(limit) = timeout
                && self.request_timer.poll_expired(cx)
            {
                return Poll::Ready(InFlight::TimedOut(limit));
            }
            // A `100 Continue` owed, or written partly.
            if !self.out.is_empty() {
                match self.poll_write_out(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(_)) => return Poll::Ready(InFlight::Gone),
                    Poll::Pending => return Poll::Pending,
                }
            }
            match pump.as_deref_mut() {
                Some(p) if !p.framing.is_done() => match self.poll_pump(cx, p) {
                    Poll::Ready(true) => continue,
                    Poll::Ready(false) => return Poll::Ready(InFlight::Gone),
                    Poll::Pending => return Poll::Pending,
                },
                _ => {}
            }
            // The body is read: watch for the client going away (a pipelined request's
            // bytes are kept, up to a bound). A short read cleared the socket's readiness,
            // so this costs no system call while the client is quiet.
            return if self.poll_client_gone(cx) {
                Poll::Ready(InFlight::Gone)
            } else {
                Poll::Pending
            };
        }
    }

    /// Feeds the streamed body: `Ready(true)` when the handler has something new to
    /// read, `Ready(false)` when the connection failed, `Pending` when waiting (on the
    /// client, or on the handler to want more).
    fn poll_pump(&mut self, cx: &mut Context<'_>, pump: &mut Pump) -> Poll<bool> {
        {
            let slot = pump.lock();
            // Not asked for yet, or not taken: nothing is read (the client waits).
            if !slot.wanted || slot.chunk.is_some() {
                return Poll::Pending;
            }
        }
        if pump.expect_continue {
            pump.expect_continue = false;
            self.out.push(Bytes::from_static(CONTINUE));
            return Poll::Ready(true);
        }
        loop {
            let (used, step) = match pump.framing.step(self.buf.filled()) {
                Ok(s) => s,
                Err(e) => {
                    pump.finish(Err(format!("invalid request body: {e}")));
                    return Poll::Ready(false);
                }
            };
            match step {
                Step::Data(range) => {
                    let data = Bytes::copy_from_slice(&self.buf.filled()[range]);
                    self.buf.consume(used);
                    let mut slot = pump.lock();
                    slot.chunk = Some(data);
                    slot.wanted = false;
                    if pump.framing.is_done() {
                        slot.end = Some(Ok(()));
                    }
                    if let Some(w) = slot.waker.take() {
                        w.wake();
                    }
                    return Poll::Ready(true);
                }
                Step::Continue => self.buf.consume(used),
                Step::End => {
                    self.buf.consume(used);
                    pump.finish(Ok(()));
                    return Poll::Ready(true);
                }
                Step::NeedMore => match ready!(self.buf.poll_fill(&mut self.io, cx)) {
                    Ok(0) => {
                        pump.finish(Err("the client closed the connection mid-body".into()));
                        return Poll::Ready(false);
                    }
                    Err(e) => {
                        pump.finish(Err(format!("cannot read the request body: {e}")));
                        return Poll::Ready(false);
                    }
                    Ok(_) => {}
                },
            }
        }
    }

    /// True when the client has closed its end (or the connection failed). Reads into
    /// the window without the idle timer: the client is not the one keeping us waiting.
    fn poll_client_gone(&mut self, cx: &mut Context<'_>) -> bool {
        if self.buf.filled().len() >= MAX_PIPELINED {
            return false;
        }
        loop {
            match self.buf.poll_fill(&mut self.io.io, cx) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return true,
                Poll::Ready(Ok(_)) if self.buf.filled().len() >= MAX_PIPELINED => return false,
                Poll::Ready(Ok(_)) => {}
                Poll::Pending => return false,
            }
        }
    }

    /// Writes what `out` holds.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let mut slices = [io::IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (i, piece) in self.out.iter().take(MAX_IOVECS).enumerate() {
                let piece = if i == 0 {
                    &piece[self.written..]
                } else {
                    &piece[..]
                };
                slices[count] = io::IoSlice::new(piece);
                count += 1;
            }
            let n = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..count]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.advance(n);
        }
        Poll::Ready(Ok(()))
    }

    fn advance(&mut self, mut n: usize) {
        let mut done = 0;
        for piece in &self.out {
            let left = piece.len() - if done == 0 { self.written } else { 0 };
            if n < left {
                break;
            }
            n -= left;
            done += 1;
            self.written = 0;
        }
        self.out.drain(..done);
        if let Some(first) = self.out.first() {
            self.written = if done == 0 { self.written + n } else { n };
            debug_assert!(self.written <= first.len());
        } else {
            self.written = 0;
        }
    }

    /// Writes an answer: its head, then its body (by length when the body knows it, else
    /// chunked, or until the connection closes for HTTP/1.0). An `Err` means the
    /// connection cannot carry anything more (the client went away, or the body failed
    /// after its head was sent).
    async fn answer(
        &mut self,
        resp: Response<Body>,
        extra: &ExtraHead,
        head_only: bool,
        version: Version,
        keep_alive: bool,
    ) -> Result<(), ()> {
        let (parts, mut body) = resp.into_parts();
        let status = parts.status;
        let bodiless = status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        let length = if body.is_end_stream() {
            Some(0)
        } else {
            body.size_hint().exact()
        };
        let mode = match length {
            _ if bodiless => Mode::None,
            Some(n) => Mode::Length(n),
            None if version == Version::HTTP_11 => Mode::Chunked,
            None => Mode::Close,
        };
        let keep_alive = keep_alive && mode != Mode::Close;
        encode_head(
            &mut self.heads,
            status,
            &parts.headers,
            extra,
            mode,
            version,
            keep_alive,
        );
        self.out.push(self.heads.split().freeze());
        if head_only || mode == Mode::None {
            drop(body);
            return poll_fn(|cx| self.poll_write_out(cx)).await.map_err(|_| ());
        }
        let mut ended = false;
        poll_fn(|cx| self.poll_answer_body(cx, &mut body, mode, &mut ended)).await
    }

    fn poll_answer_body(
        &mut self,
        cx: &mut Context<'_>,
        body: &mut Body,
        mode: Mode,
        ended: &mut bool,
    ) -> Poll<Result<(), ()>> {
        loop {
            // Gather what the body has ready.
            let mut gathered = 0;
            while !*ended && gathered < COALESCE && self.out.len() < MAX_IOVECS - 2 {
                match Pin::new(&mut *body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        let Ok(data) = frame.into_data() else {
                            continue; // trailers: not sent
                        };
                        if data.is_empty() {
                            continue;
                        }
                        gathered += data.len();
                        if mode == Mode::Chunked {
                            push_number(&mut self.heads, data.len() as u64, 16);
                            self.heads.extend_from_slice(b"\r\n");
                            self.out.push(self.heads.split().freeze());
                            self.out.push(data);
                            self.out.push(Bytes::from_static(b"\r\n"));
                        } else {
                            self.out.push(data);
                        }
                    }
                    Poll::Ready(Some(Err(e))) => {
                        tracing::debug!("answer body failed after its head: {e}");
                        return Poll::Ready(Err(()));
                    }
                    Poll::Ready(None) => {
                        *ended = true;
                        if mode == Mode::Chunked {
                            self.out.push(Bytes::from_static(b"0\r\n\r\n"));
                        }
                    }
                    Poll::Pending => break,
                }
            }
            if !self.out.is_empty() {
                match self.poll_write_out(cx) {
                    Poll::Ready(Ok(())) => continue,
                    Poll::Ready(Err(_)) => return Poll::Ready(Err(())),
                    Poll::Pending => return Poll::Pending,
                }
            }
            if *ended {
                return Poll::Ready(Ok(()));
            }
            // The body keeps us waiting (a stream between events): a client that goes
            // away cancels it.
            return if self.poll_client_gone(cx) {
                Poll::Ready(Err(()))
            } else {
                Poll::Pending
            };
        }
    }

    /// Closes the connection after the last answer. With a request body left unread,
    /// what the client still sends is read and dropped for a moment first, so the
    /// kernel does not reset the connection under the answer.
    async fn close(&mut self, linger: bool) {
        use tokio::io::AsyncWriteExt;
        let _ = self.io.shutdown().await;
        if !linger {
            return;
        }
        // Read into the connection's own window (no buffer in this future's state, which
        // every connection's task carries).
        let mut left = LINGER_BYTES;
        let drained = poll_fn(|cx| {
            loop {
                self.buf.consume(self.buf.filled().len());
                match ready!(self.buf.poll_fill(&mut self.io.io, cx)) {
                    Ok(0) | Err(_) => return Poll::Ready(()),
                    Ok(n) => left = left.saturating_sub(n),
                }
                if left == 0 {
                    return Poll::Ready(());
                }
            }
        });
        let _ = tokio::time::timeout(LINGER, drained).await;
    }
}

/// An answer's head: the status line, its headers but the framing ones (written from
/// `mode`), then `extra`'s, `connection` as `keep_alive` says, and `date`.
fn encode_head(
    out: &mut BytesMut,
    status: StatusCode,
    headers: &HeaderMap,
    extra: &ExtraHead,
    mode: Mode,
    version: Version,
    keep_alive: bool,
) {
    out.reserve(256 + headers.len() * 48);
    if status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.extend_from_slice(b" ");
        out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in headers {
        if name == header::CONNECTION
            || name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::DATE
            || name.as_str() == "keep-alive"
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // An extra field is one the response does not carry itself (written once).
    debug_assert!(extra.fields().all(|(name, _)| !headers.contains_key(name)));
    for (name, value) in extra.fields() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    match mode {
        Mode::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            push_number(out, n, 10);
            out.extend_from_slice(b"\r\n");
        }
        Mode::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Mode::Close | Mode::None => {}
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if version == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"date: ");
    date::write(out);
    out.extend_from_slice(b"\r\n\r\n");
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// No body (1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// Until the connection closes (HTTP/1.0 without a known length).
    Close,
}

/// The `Date` header's value, made once a second per thread.
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }

    pub(super) fn write(out: &mut bytes::BytesMut) {
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        CACHED.with(|c| {
            let mut c = c.borrow_mut();
            if c.0 != secs {
                *c = (secs, httpdate::fmt_http_date(now));
            }
            out.extend_from_slice(c.1.as_bytes());
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    fn parse(text: &str) -> Result<Option<(Head, usize)>, HeadError> {
        parse_head(text.as_bytes(), &limits(), &mut BytesMut::new())
    }

    fn head(text: &str) -> Head {
        match parse(text) {
            Ok(Some((h, len))) => {
                assert_eq!(len, text.find("\r\n\r\n").map_or(0, |i| i + 4));
                h
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn a_body_that_came_whole_is_taken_with_the_head_and_only_then() {
        let text = "POST / HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello, and the next request";
        let (h, len) = parse(text).expect("ok").expect("complete");
        assert_eq!(&text[len..len + 5], "hello");
        assert_eq!(h.whole.as_deref(), Some(&b"hello"[..]));
        assert_eq!(h.headers.get("content-length"), Some(&b"5"[..]));
        // Not all of it yet, or none at all: nothing taken.
        let (h, _) = parse("POST / HTTP/1.1\r\ncontent-length: 5\r\n\r\nhel")
            .expect("ok")
            .expect("complete");
        assert!(h.whole.is_none());
        assert!(head("GET / HTTP/1.1\r\n\r\n").whole.is_none());
        let (h, _) =
            parse("POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
                .expect("ok")
                .expect("complete");
        assert!(h.whole.is_none());
    }

    #[test]
    fn heads_are_parsed_with_their_framing_and_keep_alive() {
        let h = head(
            "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nX-Request-Id: r1\r\n\r\n",
        );
        assert_eq!(h.method, Method::POST);
        assert_eq!(h.uri.path(), "/v1/chat/completions");
        assert_eq!(h.uri.query(), Some("x=1"));
        assert_eq!(h.framing, Framing::Length(12));
        assert!(h.keep_alive);
        assert!(!h.expect_continue);
        assert_eq!(h.headers.get("x-request-id"), Some(&b"r1"[..]));

        let h = head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(0));
        assert!(!h.keep_alive);

        let h = head("GET / HTTP/1.0\r\n\r\n");
        assert!(!h.keep_alive);
        let h = head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(h.keep_alive);

        let h = head(
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nExpect: 100-continue\r\n\r\n",
        );
        assert_eq!(h.framing, Framing::Chunked(Default::default()));
        assert!(h.expect_continue);

        // Repeated equal lengths are one length.
        let h = head("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(5));
    }

    #[test]
    fn partial_heads_wait_for_more() {
        assert!(matches!(
            parse("POST /v1/chat HTTP/1.1\r\nHost: a\r\n"),
            Ok(None)
        ));
        assert!(matches!(parse("PO"), Ok(None)));
    }

    #[test]
    fn broken_framing_is_refused() {
        for text in [
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/2.0\r\n\r\n",
            "POST\r\n\r\n",
            "P@ST / HTTP/1.1\r\n\r\n",
            "POST / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        ] {
            assert!(
                matches!(parse(text), Err(HeadError::Malformed(_))),
                "{text:?}: {:?}",
                parse(text)
            );
        }
    }

    #[test]
    fn heads_over_the_limits_are_431() {
        let small = Limits {
            max_header_bytes: 64,
            max_headers: 3,
            ..Limits::default()
        };
        let long = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(100));
        let e = parse_head(long.as_bytes(), &small, &mut BytesMut::new()).expect_err("too large");
        assert_eq!(e, HeadError::TooLarge(64));
        // Unfinished but already over the limit.
        let e = parse_head(&long.as_bytes()[..80], &small, &mut BytesMut::new())
            .expect_err("too large");
        assert_eq!(e, HeadError::TooLarge(64));
        let many = "GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\n\r\n";
        let e = parse_head(many.as_bytes(), &small, &mut BytesMut::new()).expect_err("too many");
        assert_eq!(e, HeadError::TooManyHeaders(3));
        let three = "GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n";
        assert!(
            parse_head(three.as_bytes(), &small, &mut BytesMut::new())
                .expect("ok")
                .is_some()
        );
        assert_eq!(
            e.into_api_error().status,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        // A limit above the stack slots takes a heap array.
        let wide = Limits {
            max_headers: 300,
            ..Limits::default()
        };
        let mut text = String::from("GET / HTTP/1.1\r\n");
        for i in 0..200 {
            text.push_str(&format!("x-h{i}: {i}\r\n"));
        }
        text.push_str("\r\n");
        let (h, _) = parse_head(text.as_bytes(), &wide, &mut BytesMut::new())
            .expect("ok")
            .expect("complete");
        assert_eq!(h.headers.len(), 200);
    }

    #[test]
    fn numbers_are_written_in_decimal_and_hex() {
        for n in [0u64, 7, 10, 255, 272, 65_536, u64::MAX] {
            let (mut dec, mut hex) = (BytesMut::new(), BytesMut::new());
            push_number(&mut dec, n, 10);
            push_number(&mut hex, n, 16);
            assert_eq!(&dec[..], n.to_string().as_bytes());
            assert_eq!(&hex[..], format!("{n:x}").as_bytes());
        }
    }

    #[test]
    fn usual_targets_are_the_uris_a_parse_gives() {
        for path in [
            "/v1/chat/completions",
            "/chat/completions",
            "/v1/embeddings",
            "/health/readiness",
        ] {
            let known = known_target(path.as_bytes()).expect("known");
            assert_eq!(known, Uri::from_static(path));
            let h = head(&format!("POST {path} HTTP/1.1\r\nhost: x\r\n\r\n"));
            assert_eq!(h.uri.path(), path);
            assert_eq!(h.uri.query(), None);
        }
        // Anything else is parsed: a query, a longer or shorter path, another case.
        for other in [
            "/v1/chat/completions?x=1",
            "/v1/chat/completions/",
            "/v1/chat",
            "/V1/models",
        ] {
            assert!(known_target(other.as_bytes()).is_none(), "{other}");
        }
    }

    #[test]
    fn partial_writes_advance_through_the_pieces() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (near, _far) = tokio::io::duplex(64);
            let mut conn = Conn {
                io: IdleIo::new(near, Duration::from_secs(1)),
                buf: ReadBuf::default(),
                out: vec![
                    Bytes::from_static(b"abc"),
                    Bytes::from_static(b"de"),
                    Bytes::from_static(b"fghij"),
                ],
                written: 0,
                heads: BytesMut::new(),
                request_heads: BytesMut::new(),
                head_timer: LazyTimer::new(),
                request_timer: LazyTimer::new(),
            };
            conn.advance(2);
            assert_eq!((conn.out.len(), conn.written), (3, 2));
            conn.advance(1);
            assert_eq!((conn.out.len(), conn.written), (2, 0));
            conn.advance(3);
            assert_eq!((conn.out.len(), conn.written), (1, 1));
            conn.advance(4);
            assert!(conn.out.is_empty());
            assert_eq!(conn.written, 0);
        });
    }
}
