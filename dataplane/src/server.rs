//! The HTTP servers: the OpenAI API (port 4000; Anthropic's `/v1/messages` too; the
//! Responses API and its stored responses, see [`crate::responses`]) and the
//! token-protected admin API
//! (port 4001, over TLS when configured: see [`crate::tls`]), each an HTTP/1.1 accept
//! loop with graceful shutdown. The public port speaks HTTP/1.1 with our own connection
//! driver ([`h1`]); the admin and metrics ports, which carry few requests, with hyper's.

pub mod h1;

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, Version, header};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::app::App;
use crate::body::{Body, ReadError, RequestBody, json, read_limited, read_request};
use crate::errors::{ApiError, Dialect};
use crate::headers::RawHeaders;
use crate::info;
use crate::providers::Endpoint;
use crate::proxy;
use crate::timer::LazyTimer;
use crate::tls::ReloadingTls;

/// Response headers set on every answer (names made once, not parsed per request).
pub const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");
/// The deployment that answered.
pub const X_MODELGATE_DEPLOYMENT: http::HeaderName =
    http::HeaderName::from_static("x-modelgate-deployment");
/// Attempts made.
pub const X_MODELGATE_ATTEMPTS: http::HeaderName =
    http::HeaderName::from_static("x-modelgate-attempts");

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connection-level limits of a server (the binary's flags; `operator local` takes the
/// same). What a client sees at each:
///
/// - over `max_connections`: the connection is accepted, answered `503` (OpenAI error
///   JSON, `Retry-After: 1`, `connection: close`) and closed, so the client learns why
///   instead of hanging in the listen backlog;
/// - a request head over `max_header_bytes`, or with more than `max_headers` fields:
///   `431 Request Header Fields Too Large` (in OpenAI's shape on the public port, hyper's
///   on the others), then the connection closes;
/// - no complete request head within `header_read_timeout` (a slow-header client, or an
///   idle keep-alive connection: both timed from when the server starts waiting for a
///   head): the connection is closed without an answer (no request was made);
/// - no byte read or written for `idle_timeout` while the server waits on the client (a
///   client that stopped sending its body or stopped reading its answer): the connection
///   is closed;
/// - no answer begun within `request_timeout` (body upload, routing, retries and the
///   upstream's first byte together): `408` in OpenAI's shape.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Largest request head (request line and headers), bytes.
    pub max_header_bytes: usize,
    /// Most header fields in a request.
    pub max_headers: usize,
    /// Time a client has to send a whole request head (also how long an idle keep-alive
    /// connection stays open).
    pub header_read_timeout: Duration,
    /// Time a connection may make no progress while waiting on the client.
    pub idle_timeout: Duration,
    /// Time from a request's head to the start of its answer; `None`: unbounded.
    pub request_timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
            request_timeout: Some(Duration::from_secs(600)),
        }
    }
}

/// hyper's default header count: setting it costs a heap allocation per request, so it
/// is set only when it differs.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// Connections being refused at once (beyond it an over-limit connection is just closed).
const MAX_REFUSING: usize = 256;

/// A request to the public API: its head as the connection parsed it, the header fields
/// kept as they came (see [`RawHeaders`]), and its body.
#[derive(Debug)]
pub struct ApiRequest {
    /// The method.
    pub method: Method,
    /// The request target.
    pub uri: Uri,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// The header fields.
    pub headers: RawHeaders,
    /// The body.
    pub body: RequestBody,
}

impl From<Request<RequestBody>> for ApiRequest {
    /// A request hyper parsed (the metrics port's probes, tests).
    fn from(req: Request<RequestBody>) -> Self {
        let (parts, body) = req.into_parts();
        ApiRequest {
            method: parts.method,
            uri: parts.uri,
            version: parts.version,
            headers: RawHeaders::from_map(&parts.headers),
            body,
        }
    }
}

/// What a connection hands its handler, built from hyper's parse or from [`h1`]'s: a
/// `Request` on the admin and metrics ports, an [`ApiRequest`] on the public one.
pub(crate) trait FromWire: Send + 'static {
    /// From a request hyper parsed.
    fn from_hyper(req: Request<RequestBody>) -> Self;
    /// From a request [`h1`] parsed.
    fn from_h1(req: ApiRequest) -> Self;
}

impl FromWire for Request<RequestBody> {
    fn from_hyper(req: Request<RequestBody>) -> Self {
        req
    }

    fn from_h1(req: ApiRequest) -> Self {
        let mut out = Request::new(req.body);
        *out.method_mut() = req.method;
        *out.uri_mut() = req.uri;
        *out.version_mut() = req.version;
        *out.headers_mut() = req.headers.to_map();
        out
    }
}

impl FromWire for ApiRequest {
    fn from_hyper(req: Request<RequestBody>) -> Self {
        ApiRequest::from(req)
    }

    fn from_h1(req: ApiRequest) -> Self {
        req
    }
}

/// Runs an accept loop until `shutdown` turns true, then lets open connections finish
/// (within `drain`), closing idle keep-alive connections at once.
pub async fn serve<H, F>(
    listener: TcpListener,
    handler: H,
    shutdown: watch::Receiver<bool>,
    drain: Duration,
) where
    H: Fn(Request<RequestBody>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output: IntoAnswer> + Send + 'static,
{
    accept_loop(
        listener,
        None,
        handler,
        shutdown,
        drain,
        Limits::default(),
        Engine::Hyper,
    )
    .await;
}

/// [`serve`] over TLS: each connection's handshake runs in the connection's own task (a
/// slow or failed handshake holds up no other connection and never stops the listener;
/// failures are logged at debug), with the pair [`ReloadingTls::current`] gives when the
/// connection arrives.
pub async fn serve_tls<H, F>(
    listener: TcpListener,
    tls: Arc<ReloadingTls>,
    handler: H,
    shutdown: watch::Receiver<bool>,
    drain: Duration,
) where
    H: Fn(Request<RequestBody>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output: IntoAnswer> + Send + 'static,
{
    accept_loop(
        listener,
        Some(tls),
        handler,
        shutdown,
        drain,
        Limits::default(),
        Engine::Hyper,
    )
    .await;
}

/// [`serve`] or [`serve_tls`] (with `tls`) under `limits`.
pub async fn serve_limited<H, F>(
    listener: TcpListener,
    tls: Option<Arc<ReloadingTls>>,
    handler: H,
    shutdown: watch::Receiver<bool>,
    drain: Duration,
    limits: Limits,
) where
    H: Fn(Request<RequestBody>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output: IntoAnswer> + Send + 'static,
{
    accept_loop(
        listener,
        tls,
        handler,
        shutdown,
        drain,
        limits,
        Engine::Hyper,
    )
    .await;
}

/// The public port: [`serve_limited`] without TLS, each connection driven by [`h1`]
/// instead of hyper (the same limits, answered the same way).
pub async fn serve_public<H, F>(
    listener: TcpListener,
    handler: H,
    shutdown: watch::Receiver<bool>,
    drain: Duration,
    limits: Limits,
) where
    H: Fn(ApiRequest) -> F + Clone + Send + Sync + 'static,
    F: Future<Output: IntoAnswer> + Send + 'static,
{
    accept_loop(
        listener,
        None,
        handler,
        shutdown,
        drain,
        limits,
        Engine::Own,
    )
    .await;
}

/// Which HTTP/1.1 implementation serves a port's connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    /// hyper's server connection.
    Hyper,
    /// [`h1::serve_connection`].
    Own,
}

async fn accept_loop<H, R, F>(
    listener: TcpListener,
    tls: Option<Arc<ReloadingTls>>,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
    limits: Limits,
    engine: Engine,
) where
    H: Fn(R) -> F + Clone + Send + Sync + 'static,
    R: FromWire,
    F: Future<Output: IntoAnswer> + Send + 'static,
{
    let limits = Arc::new(limits);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut connections = JoinSet::new();
    let mut refusing = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                    tracing::debug!(%peer, limit = limits.max_connections, "over the connection limit: refused");
                    if refusing.len() < MAX_REFUSING {
                        refusing.spawn(refuse(stream, limits.max_connections));
                    }
                    continue;
                };
                let stream = IdleIo::new(stream, limits.idle_timeout);
                let handler = handler.clone();
                let mut shutdown = shutdown.clone();
                let limits = Arc::clone(&limits);
                let Some(tls) = tls.clone() else {
                    connections.spawn(async move {
                        let _permit = permit;
                        match engine {
                            Engine::Own => h1::serve_connection(stream, handler, shutdown, &limits).await,
                            Engine::Hyper => connection(stream, handler, shutdown, &limits).await,
                        }
                    });
                    continue;
                };
                connections.spawn(async move {
                    let _permit = permit;
                    let acceptor = TlsAcceptor::from(tls.current());
                    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    let stream = tokio::select! {
                        done = handshake => match done {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, "TLS handshake failed: {e}");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        },
                        // Shutting down: no request has started on this connection yet.
                        _ = stopped(&mut shutdown) => return,
                    };
                    connection(stream, handler, shutdown, &limits).await;
                });
            }
            _ = stopped(&mut shutdown) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            Some(_) = refusing.join_next(), if !refusing.is_empty() => {}
        }
    }
    drop(listener);
    refusing.abort_all();
    let _ = tokio::time::timeout(drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.shutdown().await;
}

/// Answers a connection over the limit with a 503 and closes it. The request is not
/// read, but what the client sent is drained (briefly) before closing, so that the
/// kernel does not reset the connection under the answer.
async fn refuse(mut stream: tokio::net::TcpStream, limit: usize) {
    let mut e = ApiError::unavailable(format!(
        "the gateway is serving its limit of {limit} connections; retry shortly"
    ));
    e.retry_after = Some(Duration::from_secs(1));
    let body = e.to_json();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let answered = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut left: usize = 64 * 1024;
        while left > 0 {
            let n = stream.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), answered).await;
}

/// A connection that fails once it has made no progress (no byte read or written) for
/// `timeout` while waiting on its peer. Progress is noted with a clock read; the timer is
/// only checked when a read or write has to wait, and is lazy (see [`crate::timer`]).
#[derive(Debug)]
pub struct IdleIo<IO> {
    pub(crate) io: IO,
    timeout: Duration,
    last: tokio::time::Instant,
    timer: LazyTimer,
}

impl<IO> IdleIo<IO> {
    /// Wraps `io`.
    pub fn new(io: IO, timeout: Duration) -> Self {
        IdleIo {
            io,
            timeout,
            last: tokio::time::Instant::now(),
            timer: LazyTimer::new(),
        }
    }

    fn progressed(&mut self) {
        self.last = tokio::time::Instant::now();
    }

    /// When a byte was last read or written (or the connection opened).
    pub fn last_progress(&self) -> tokio::time::Instant {
        self.last
    }

    /// Called when the peer keeps us waiting: an error once it has been idle too long.
    ///
    /// The timer is moved lazily: progress only reads the clock, and a timer that fires
    /// while the connection has made progress since is moved to the new deadline then
    /// (once per timeout, not once per wait).
    fn waiting(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        self.timer.set(self.last + self.timeout);
        if self.timer.poll_expired(cx) {
            Poll::Ready(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no progress for {:?}", self.timeout),
            ))
        } else {
            Poll::Pending
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for IdleIo<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.progressed();
                Poll::Ready(r)
            }
            Poll::Pending => this.waiting(cx).map(Err),
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for IdleIo<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(r) => {
                this.progressed();
                Poll::Ready(r)
            }
            Poll::Pending => this.waiting(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                this.progressed();
                Poll::Ready(r)
            }
            Poll::Pending => this.waiting(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => this.waiting(cx).map(Err),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Serves HTTP/1.1 on one connection until the client closes it, or, once `shutdown`
/// turns true, until its request in flight (if any) is answered.
async fn connection<IO, H, R, F>(
    io: IO,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
    limits: &Limits,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(R) -> F + Clone + Send + Sync + 'static,
    R: FromWire,
    F: Future<Output: IntoAnswer> + Send + 'static,
{
    let request_timeout = limits.request_timeout;
    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
        // Boxed once here: the handler's state machine is large, and hyper moves the
        // service future it is given.
        let answer = Box::pin(handler(R::from_hyper(req.map(RequestBody::Hyper))));
        async move {
            let Some(limit) = request_timeout else {
                return Ok::<_, Infallible>(answer.await.into_response());
            };
            Ok(match tokio::time::timeout(limit, answer).await {
                Ok(answered) => answered.into_response(),
                Err(_) => request_timed_out(limit),
            })
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes);
    if limits.max_headers != HYPER_DEFAULT_MAX_HEADERS {
        builder.max_headers(limits.max_headers);
    }
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stopped(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// The 408 of a request whose answer did not begin within the request timeout.
pub(crate) fn request_timed_out(limit: Duration) -> Response<Body> {
    let mut e = ApiError::timeout(format!(
        "the request was not answered within the gateway's request timeout of {}s",
        limit.as_secs_f64()
    ));
    e.status = StatusCode::REQUEST_TIMEOUT;
    e.code = Some("request_timeout");
    let mut resp = e.into_response();
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// Resolves once `shutdown` turns true (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// The request id: the client's `x-request-id`, or a new one.
fn request_id(headers: &RawHeaders) -> RequestId {
    match headers
        .value(X_REQUEST_ID.as_str())
        .filter(|v| !v.is_empty() && v.len() <= 128)
    {
        Some(given) => RequestId::Given(given),
        None => RequestId::made(fastrand::u128(..)),
    }
}

/// An `x-request-id`: the client's, or one made here. A made one is kept as its bytes
/// (no header value, which would be an allocation and a check per request).
#[derive(Debug, Clone)]
pub enum RequestId {
    /// The client's.
    Given(HeaderValue),
    /// 128 random bits in lower-case hex.
    Made([u8; 32]),
}

impl RequestId {
    /// `bits` in hex, without the formatting machinery (every request).
    fn made(bits: u128) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut id = [0u8; 32];
        for (i, digit) in id.iter_mut().enumerate() {
            *digit = HEX[((bits >> (124 - 4 * i)) & 0xf) as usize];
        }
        RequestId::Made(id)
    }

    /// The value's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            RequestId::Given(v) => v.as_bytes(),
            RequestId::Made(id) => id,
        }
    }
}

/// Compares two secrets in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The key a client presented: `Authorization: Bearer`, `api-key` or `x-api-key`.
/// `get` looks a header up by its lower-case name.
fn presented_key<'a>(get: impl Fn(&str) -> Option<&'a [u8]>) -> Option<&'a [u8]> {
    if let Some(v) = get("authorization") {
        let prefix = b"Bearer ";
        if v.len() > prefix.len() && v[..prefix.len()].eq_ignore_ascii_case(prefix) {
            return Some(&v[prefix.len()..]);
        }
        return Some(v);
    }
    get("api-key").or_else(|| get("x-api-key"))
}

/// The value of `x-modelgate-attempts`: a static one for the usual few (no allocation).
fn attempts_value(n: u32) -> HeaderValue {
    const FEW: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    match usize::try_from(n).ok().and_then(|i| FEW.get(i)) {
        Some(s) => HeaderValue::from_static(s),
        None => HeaderValue::from(n),
    }
}

/// The public OpenAI API, its answer with every header in it.
pub async fn public(app: Arc<App>, req: ApiRequest) -> Response<Body> {
    let (resp, outcome) = public_with_outcome(app, req, std::time::Instant::now()).await;
    (resp, outcome.extra).into_response()
}

/// The headers an answer of the public API carries beside its own: the request's id, who
/// answered, and a forwarded answer's content type. They are handed to the connection apart from the response, which writes
/// them into the head (no header-map insert per answer); a connection served by hyper
/// inserts them ([`IntoAnswer::into_response`]).
#[derive(Debug, Default, Clone)]
pub struct ExtraHead {
    /// `content-type`, when the response's own headers do not carry it.
    pub content_type: Option<HeaderValue>,
    /// `x-request-id`.
    pub request_id: Option<RequestId>,
    /// `x-modelgate-deployment`: the deployment that answered (or gave the error).
    pub deployment: Option<HeaderValue>,
    /// `x-modelgate-attempts`, for a proxied request.
    pub attempts: Option<HeaderValue>,
}

impl ExtraHead {
    /// The fields, in the order they are written.
    pub fn fields(&self) -> impl Iterator<Item = (&'static http::HeaderName, &[u8])> {
        /// Their names, made once (no name built and dropped per answer).
        static NAMES: [http::HeaderName; 4] = [
            http::header::CONTENT_TYPE,
            X_MODELGATE_DEPLOYMENT,
            X_MODELGATE_ATTEMPTS,
            X_REQUEST_ID,
        ];
        let [content_type, deployment, attempts, request_id] = &NAMES;
        [
            (
                content_type,
                self.content_type.as_ref().map(HeaderValue::as_bytes),
            ),
            (
                deployment,
                self.deployment.as_ref().map(HeaderValue::as_bytes),
            ),
            (attempts, self.attempts.as_ref().map(HeaderValue::as_bytes)),
            (
                request_id,
                self.request_id.as_ref().map(RequestId::as_bytes),
            ),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
    }
}

/// What a handler answers with: a response, and the headers to write beside its own.
pub trait IntoAnswer: Send + 'static {
    /// The response and the extra headers.
    fn into_answer(self) -> (Response<Body>, ExtraHead);

    /// The response with the extra headers inserted (each value was a header value, or
    /// hex digits: none fails the check).
    fn into_response(self) -> Response<Body>
    where
        Self: Sized,
    {
        let (mut resp, extra) = self.into_answer();
        let headers = resp.headers_mut();
        for (name, value) in extra.fields() {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.insert(name.clone(), value);
            }
        }
        resp
    }
}

impl IntoAnswer for Response<Body> {
    fn into_answer(self) -> (Response<Body>, ExtraHead) {
        (self, ExtraHead::default())
    }
}

impl IntoAnswer for (Response<Body>, ExtraHead) {
    fn into_answer(self) -> (Response<Body>, ExtraHead) {
        self
    }
}

/// Who answered a public request and its other headers (handed to the metrics without
/// re-reading them, and to the connection to write).
#[derive(Debug, Default)]
pub struct Outcome {
    /// The request id and who answered, as headers.
    pub extra: ExtraHead,
    /// Attempts made.
    pub attempts: u32,
    /// When the answer came from the deployment, when that was read.
    pub answered: Option<std::time::Instant>,
}

impl Outcome {
    /// The deployment that answered (or gave the error), if any.
    pub fn deployment(&self) -> Option<&HeaderValue> {
        self.extra.deployment.as_ref()
    }
}

/// [`public`], and who answered.
///
/// What the request asks is decided when this is called (paths, auth, the body's size,
/// every answer that needs no upstream); the future returned holds only what is left to
/// do. The request itself is taken apart here, not kept whole in the state of the
/// request in flight: an async fn keeps each argument it was given for as long as it
/// runs, and every caller that held it whole kept another copy.
///
/// `arrived` is when the request came (read once by the caller).
pub fn public_with_outcome(
    app: Arc<App>,
    req: ApiRequest,
    arrived: std::time::Instant,
) -> impl Future<Output = (Response<Body>, Outcome)> + Send + 'static {
    let id = request_id(&req.headers);
    let next = decide(&app, req, arrived);
    async move {
        let mut outcome = Outcome::default();
        let resp = match next {
            Next::Answer(resp) => resp,
            Next::Proxy(call) => call.run(&app.client, &mut outcome).await,
            Next::Later(later) => {
                let (resp, later_outcome) = later.await;
                outcome = later_outcome;
                resp
            }
        };
        outcome.extra.request_id = Some(id);
        (resp, outcome)
    }
}

/// What is left to do for a public request once it is read.
enum Next {
    /// Its answer, made already.
    Answer(Response<Body>),
    /// Proxied, its whole body in hand (the common case).
    Proxy(ProxyCall),
    /// The slow paths (a body still to read, a stored response): boxed, so their state
    /// is not part of every request's.
    Later(Pin<Box<dyn Future<Output = (Response<Body>, Outcome)> + Send>>),
}

/// A request to proxy.
struct ProxyCall {
    router: Arc<crate::router::Router>,
    endpoint: Endpoint,
    headers: RawHeaders,
    body: Bytes,
    arrived: std::time::Instant,
}

impl ProxyCall {
    async fn run(
        self,
        client: &crate::client::HttpClient,
        outcome: &mut Outcome,
    ) -> Response<Body> {
        // Boxed: the proxy's state machine is kilobytes, and each future that held it
        // inline would be copied whole into its caller's state when awaited.
        let served = Box::pin(proxy::serve(
            self.router,
            client,
            self.endpoint,
            &self.headers,
            self.body,
            self.arrived,
        ))
        .await;
        outcome.extra.deployment = served.deployment;
        outcome.extra.attempts = Some(attempts_value(served.attempts));
        outcome.extra.content_type = served.content_type;
        outcome.attempts = served.attempts;
        outcome.answered = served.answered;
        served.response
    }
}

/// Reads a public request as far as that can go without waiting.
fn decide(app: &Arc<App>, req: ApiRequest, arrived: std::time::Instant) -> Next {
    let ApiRequest {
        method,
        uri,
        headers,
        body,
        ..
    } = req;
    let path = uri.path();
    // HEAD is answered as GET (the server sends the head alone).
    let read_only = method == Method::GET || method == Method::HEAD;
    match (read_only, path) {
        (true, "/health/liveliness" | "/health/liveness") => {
            return Next::Answer(json_response(StatusCode::OK, &json!({"status": "alive"})));
        }
        (true, "/health/readiness") => {
            let (status, text) = if app.draining() {
                (StatusCode::SERVICE_UNAVAILABLE, "draining")
            } else if app.router().is_none() {
                (StatusCode::SERVICE_UNAVAILABLE, "no routing table loaded")
            } else {
                (StatusCode::OK, "ready")
            };
            let served = app.served();
            return Next::Answer(json_response(
                status,
                &json!({"status": text, "revision": served.as_ref().map(|s| s.0), "version": served.map(|s| s.1)}),
            ));
        }
        _ => {}
    }
    let endpoint = match path {
        "/v1/chat/completions" | "/chat/completions" => Some(Endpoint::Chat),
        "/v1/completions" | "/completions" => Some(Endpoint::Completions),
        "/v1/embeddings" | "/embeddings" => Some(Endpoint::Embeddings),
        // Anthropic's Messages API (Claude SDKs send their key as `x-api-key`).
        "/v1/messages" | "/messages" => Some(Endpoint::Messages),
        "/v1/responses" | "/responses" => Some(Endpoint::Responses),
        _ => None,
    };
    // Errors in the shape of the API the client called.
    let dialect = endpoint.map_or(Dialect::OpenAi, Endpoint::dialect);
    let Some(router) = app.router() else {
        return Next::Answer(
            ApiError::unavailable("no routing table loaded yet").into_response_as(dialect),
        );
    };
    if let Some(key) = &router.master_key {
        let ok = presented_key(|name| headers.get(name))
            .is_some_and(|k| constant_time_eq(k, key.expose().as_bytes()));
        if !ok {
            return Next::Answer(ApiError::unauthorized().into_response_as(dialect));
        }
    }
    // A stored response: to the deployment its id names.
    if let Some(prefix) = ["/v1/responses/", "/responses/"]
        .into_iter()
        .find(|p| path.starts_with(p))
    {
        let app = Arc::clone(app);
        return Next::Later(Box::pin(async move {
            let rest = &uri.path()[prefix.len()..];
            let (resp, deployment) =
                crate::responses::by_id(&router, &app.client, &method, rest, uri.query(), &headers)
                    .await;
            let mut outcome = Outcome::default();
            outcome.extra.deployment = deployment.and_then(|d| HeaderValue::from_str(&d).ok());
            (resp, outcome)
        }));
    }
    if let Some(endpoint) = endpoint {
        if method != Method::POST {
            return Next::Answer(
                ApiError::method_not_allowed(&method, path).into_response_as(dialect),
            );
        }
        let limit = router.settings().max_request_body_bytes;
        return match body {
            RequestBody::Full(bytes) => {
                let body = bytes.unwrap_or_default();
                if body.len() as u64 > limit {
                    return Next::Answer(ApiError::too_large(limit).into_response_as(dialect));
                }
                Next::Proxy(ProxyCall {
                    router,
                    endpoint,
                    headers,
                    body,
                    arrived,
                })
            }
            // A body not read yet is refused by its stated length before any of it is
            // read.
            _ if headers
                .get("content-length")
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|len| len > limit) =>
            {
                Next::Answer(ApiError::too_large(limit).into_response_as(dialect))
            }
            body => {
                let app = Arc::clone(app);
                Next::Later(Box::pin(async move {
                    let body = match read_request(body, limit).await {
                        Ok(b) => b,
                        Err(ReadError::TooLarge(l)) => {
                            return (
                                ApiError::too_large(l).into_response_as(dialect),
                                Outcome::default(),
                            );
                        }
                        Err(ReadError::Io(e)) => {
                            return (
                                ApiError::bad_request(format!("cannot read the request body: {e}"))
                                    .into_response_as(dialect),
                                Outcome::default(),
                            );
                        }
                    };
                    let mut outcome = Outcome::default();
                    let call = ProxyCall {
                        router,
                        endpoint,
                        headers,
                        body,
                        arrived,
                    };
                    let resp = call.run(&app.client, &mut outcome).await;
                    (resp, outcome)
                }))
            }
        };
    }
    if !read_only {
        return Next::Answer(if info::is_info_path(path) {
            ApiError::method_not_allowed(&method, path).into_response()
        } else {
            ApiError::not_found(path).into_response()
        });
    }
    Next::Answer(match info::get(&router, path) {
        Some(Ok(value)) => json_response(StatusCode::OK, &value),
        Some(Err(e)) => e.into_response(),
        None => ApiError::not_found(path).into_response(),
    })
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(json(value));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The admin token: a file re-read when it changes; during a rotation the previous token
/// stays valid until the next change.
#[derive(Debug)]
pub struct AdminToken {
    path: Option<PathBuf>,
    tokens: Mutex<(Option<Bytes>, Option<Bytes>)>,
}

impl AdminToken {
    /// Tokens read from `path` (no token file: the admin API refuses every request).
    pub fn from_file(path: Option<PathBuf>) -> Self {
        // Read the token the pod starts with now, not at the first admin request: if the
        // file is rotated before that request, the starting token is the "previous" one
        // and must stay valid during the rotation.
        let initial = path.as_deref().and_then(Self::read);
        Self {
            path,
            tokens: Mutex::new((initial, None)),
        }
    }

    fn read(path: &std::path::Path) -> Option<Bytes> {
        std::fs::read(path)
            .ok()
            .map(|b| Bytes::from(String::from_utf8_lossy(&b).trim().to_owned()))
            .filter(|b| !b.is_empty())
    }

    /// True when `presented` is the current or the previous token.
    pub fn check(&self, presented: Option<&[u8]>) -> bool {
        let Some(path) = &self.path else {
            return false;
        };
        let current = Self::read(path);
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cur) = current
            && tokens.0.as_ref() != Some(&cur)
        {
            let old = tokens.0.take();
            *tokens = (Some(cur), old);
        }
        let Some(presented) = presented else {
            return false;
        };
        [&tokens.0, &tokens.1]
            .into_iter()
            .flatten()
            .any(|t| constant_time_eq(t, presented))
    }
}

/// The admin API.
pub async fn admin(
    app: Arc<App>,
    token: Arc<AdminToken>,
    req: Request<RequestBody>,
) -> Response<Body> {
    let headers = req.headers();
    if !token.check(presented_key(|name| {
        headers.get(name).map(HeaderValue::as_bytes)
    })) {
        return ApiError::unauthorized().into_response();
    }
    let path = req.uri().path().to_owned();
    match (req.method().clone(), path.as_str()) {
        (Method::PUT, "/v1/routing-table") => {
            let body = match read_limited(req.into_body(), 512 * 1024 * 1024).await {
                Ok(b) => b,
                Err(e) => return ApiError::bad_request(e.to_string()).into_response(),
            };
            let body = match crate::table::maybe_gunzip(body) {
                Ok(b) => b,
                Err(e) => return ApiError::bad_request(e.to_string()).into_response(),
            };
            match app.offer_json(&body) {
                Ok(a) => json_response(
                    StatusCode::OK,
                    &json!({
                        "revision": a.revision,
                        "version": a.version,
                        "changed": a.changed,
                        "skipped": a.skipped.iter().map(|s| json!({"id": s.id, "reason": s.reason})).collect::<Vec<_>>(),
                    }),
                ),
                Err(refused) => {
                    let status = match refused {
                        crate::table::Refused::Stale { .. }
                        | crate::table::Refused::Conflict { .. } => StatusCode::CONFLICT,
                        _ => StatusCode::UNPROCESSABLE_ENTITY,
                    };
                    let mut e = ApiError::bad_request(refused.to_string());
                    e.status = status;
                    e.into_response()
                }
            }
        }
        (Method::GET, "/v1/routing-table/version") => match app.served() {
            Some((revision, version)) => json_response(
                StatusCode::OK,
                &json!({"revision": revision, "version": version}),
            ),
            None => ApiError::unavailable("no routing table loaded yet").into_response(),
        },
        (Method::GET, "/v1/health-report") => {
            let report = app.health_report();
            json_response(
                StatusCode::OK,
                &serde_json::to_value(report).unwrap_or_default(),
            )
        }
        (_, "/v1/fleet") => crate::limits::fleet_endpoint(app.limiter(), req).await,
        (method, path) => ApiError::method_not_allowed(&method, path).into_response(),
    }
}

/// Resolves on SIGTERM or Ctrl-C (Ctrl-C alone where there are no Unix signals).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_headers_are_written_in_order_or_inserted() {
        let extra = ExtraHead {
            content_type: None,
            request_id: Some(RequestId::Given(HeaderValue::from_static("abc"))),
            deployment: Some(HeaderValue::from_static("ns/d")),
            attempts: None,
        };
        let names: Vec<http::HeaderName> = extra.fields().map(|(n, _)| n.clone()).collect();
        assert_eq!(names, [X_MODELGATE_DEPLOYMENT, X_REQUEST_ID]);
        let all = ExtraHead {
            attempts: Some(attempts_value(2)),
            content_type: Some(HeaderValue::from_static("application/json")),
            ..extra.clone()
        };
        let names: Vec<http::HeaderName> = all.fields().map(|(n, _)| n.clone()).collect();
        assert_eq!(
            names,
            [
                header::CONTENT_TYPE,
                X_MODELGATE_DEPLOYMENT,
                X_MODELGATE_ATTEMPTS,
                X_REQUEST_ID
            ]
        );
        // Through hyper: inserted into the response's own headers.
        let resp = (ApiError::not_found("/x").into_response(), all).into_response();
        assert_eq!(resp.headers()[X_REQUEST_ID], "abc");
        assert_eq!(resp.headers()[X_MODELGATE_DEPLOYMENT], "ns/d");
        assert_eq!(resp.headers()[X_MODELGATE_ATTEMPTS], "2");
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        let plain = ApiError::not_found("/x").into_response().into_response();
        assert!(plain.headers().get(X_REQUEST_ID).is_none());
        // A made id: 32 lower-case hex digits, the bits in order.
        let made = RequestId::made(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
        assert_eq!(made.as_bytes(), b"0123456789abcdeffedcba9876543210");
        let extra = ExtraHead {
            request_id: Some(made),
            ..ExtraHead::default()
        };
        let resp = (ApiError::not_found("/x").into_response(), extra).into_response();
        assert_eq!(
            resp.headers()[X_REQUEST_ID],
            "0123456789abcdeffedcba9876543210"
        );
        assert_eq!(RequestId::made(0).as_bytes(), &[b'0'; 32]);
    }

    #[test]
    fn attempts_values_are_the_decimal_count() {
        for n in [0, 1, 9, 10, 123, u32::MAX] {
            assert_eq!(
                attempts_value(n).to_str().ok(),
                Some(n.to_string().as_str())
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_fails_only_after_a_whole_timeout_without_progress() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut io = IdleIo::new(near, Duration::from_secs(10));
        // A byte every 6 s for 30 s: never 10 s without progress.
        let feeder = tokio::spawn(async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(6)).await;
                far.write_all(b"x").await.expect("write");
            }
            far
        });
        let mut buf = [0u8; 8];
        for _ in 0..5 {
            assert_eq!(io.read(&mut buf).await.expect("progress"), 1);
        }
        let _far = feeder.await.expect("feeder");
        let started = tokio::time::Instant::now();
        let err = io.read(&mut buf).await.expect_err("idle");
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }
}
