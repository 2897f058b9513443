//! The HTTP client for upstreams: pooled keep-alive HTTP/1.1 connections, HTTPS through
//! rustls (ring) with the Mozilla roots plus an optional extra CA bundle (corporate CAs),
//! and egress proxies from `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` with `NO_PROXY`
//! (connections through a proxy are `CONNECT` tunnels; TLS to the upstream runs inside
//! the tunnel).
//!
//! The pool and the HTTP/1.1 exchange are ours ([`h1`]), not hyper's client: the request's
//! own task writes the request and reads the answer on the connection it holds (no
//! connection task, no channels between the two). A request takes the most recently used
//! idle connection to its upstream that is still open (or opens one when there is none,
//! never racing a connect against a checkout), and its connection goes back to the pool
//! as soon as the answer's body has been read to its end ([`UpstreamBody`]); a body
//! dropped early closes it. A request that a reused connection could not send (the
//! upstream closed it while idle) is sent again on a new connection; one whose answer
//! never came is an error, never sent twice.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, StatusCode, Uri, Version, header};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::net::TcpStream;
use tower_service::Service;

pub(crate) mod h1;

use h1::{Conn, Framing};
pub use h1::{ExchangeError, RawHeaders};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Idle connections are closed after this long unused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per upstream (more are closed when returned).
const MAX_IDLE_PER_UPSTREAM: usize = 1024;

/// Connects directly, or through a `CONNECT` tunnel when the proxy rules say so.
#[derive(Clone, Debug)]
pub struct ProxyConnector {
    http: HttpConnector,
    matcher: Arc<Matcher>,
}

impl Service<Uri> for ProxyConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        match self.matcher.intercept(&dst) {
            None => {
                let fut = self.http.call(dst);
                Box::pin(async move { fut.await.map_err(Into::into) })
            }
            Some(intercept) => {
                let mut tunnel = Tunnel::new(intercept.uri().clone(), self.http.clone());
                if let Some(auth) = intercept.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                Box::pin(async move {
                    std::future::poll_fn(|cx| tunnel.poll_ready(cx)).await?;
                    tunnel.call(dst).await.map_err(Into::into)
                })
            }
        }
    }
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The extra CA bundle could not be read.
    #[error("cannot read CA bundle {path}: {source}")]
    CaBundle {
        /// The file.
        path: String,
        /// The cause.
        source: rustls::pki_types::pem::Error,
    },
    /// A certificate in the bundle was refused.
    #[error("CA bundle {path}: {source}")]
    BadCertificate {
        /// The file.
        path: String,
        /// The cause.
        source: rustls::Error,
    },
    /// TLS setup failed.
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
}

/// Builds the client with proxy rules from the environment. `extra_ca` is a PEM bundle
/// trusted besides the Mozilla roots.
pub fn build(extra_ca: Option<&Path>) -> Result<HttpClient, ClientError> {
    build_with(extra_ca, Matcher::from_env())
}

/// Builds the client with explicit proxy rules.
pub fn build_with(extra_ca: Option<&Path>, proxies: Matcher) -> Result<HttpClient, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_ca {
        let display = path.display().to_string();
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|source| ClientError::CaBundle {
                path: display.clone(),
                source,
            })?;
        for cert in certs {
            roots
                .add(cert)
                .map_err(|source| ClientError::BadCertificate {
                    path: display.clone(),
                    source,
                })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(60)));
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(ProxyConnector {
            http,
            matcher: Arc::new(proxies),
        });
    Ok(HttpClient {
        inner: Arc::new(Inner {
            connector: https,
            idle: Mutex::new(HashMap::default()),
        }),
    })
}

/// Why an upstream request failed before an answer came.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The URI has no scheme or authority.
    #[error("invalid upstream URI `{0}`")]
    InvalidUri(String),
    /// No connection could be opened (DNS, TCP, proxy tunnel or TLS).
    #[error("cannot connect to {authority}: {source}")]
    Connect {
        /// The upstream.
        authority: String,
        /// The cause.
        source: BoxError,
    },
    /// The request could not be sent or its answer's head could not be read.
    #[error("{0}")]
    Send(#[source] ExchangeError),
    /// No answer head came before the request's deadline.
    #[error("no answer before the deadline")]
    TimedOut,
}

/// The upstream client: cheap to clone (one shared pool).
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

/// An upstream: TLS or not, and its authority as the URI spells it. Compared and hashed
/// as bytes (`Authority`'s own `Hash` and `Eq` fold case byte by byte, on every request).
#[derive(Clone, Debug)]
struct Key {
    https: bool,
    authority: Authority,
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.https == other.https && self.authority.as_str() == other.authority.as_str()
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.https.hash(state);
        self.authority.as_str().hash(state);
    }
}

/// An upstream connection: TCP, TLS on it when the upstream is `https`. Boxed: the TLS
/// state makes it over a kilobyte, and it moves between the pool and the requests.
type Connection = Box<Conn<TokioIo<MaybeHttpsStream<TokioIo<TcpStream>>>>>;

struct Inner {
    connector: HttpsConnector<ProxyConnector>,
    idle: Mutex<HashMap<Key, Upstream, foldhash::fast::RandomState>>,
}

/// One upstream's idle connections, and its `Host` header made once.
struct Upstream {
    idle: Vec<Idle>,
    host: HeaderValue,
}

impl Upstream {
    fn new(key: &Key) -> Self {
        Upstream {
            idle: Vec::new(),
            host: host_header(key.https, &key.authority),
        }
    }
}

struct Idle {
    conn: Connection,
    since: Instant,
}

impl Inner {
    /// Puts a connection whose answer was read to its end back in the pool.
    /// `now` is the time, read by the caller.
    fn put(&self, key: Key, conn: Connection, now: Instant) {
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        let list = &mut idle.entry(key).or_insert_with_key(Upstream::new).idle;
        // The oldest are first: drop those past the idle timeout.
        let expired = list
            .iter()
            .take_while(|e| now.saturating_duration_since(e.since) >= IDLE_TIMEOUT)
            .count();
        if expired > 0 {
            list.drain(..expired);
        }
        if list.len() < MAX_IDLE_PER_UPSTREAM {
            list.push(Idle { conn, since: now });
        }
    }
}

/// The bytes of a request body (a `Full` gives its one frame at once).
fn full_bytes(mut body: Full<Bytes>) -> Bytes {
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(&mut body).poll_frame(&mut cx) {
        Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
        _ => Bytes::new(),
    }
}

impl HttpClient {
    /// Sends `req` (an absolute URI) and returns the answer once its head has arrived.
    /// The request goes out in origin form with a `Host` (the URI's authority unless the
    /// request names one) and its body's `Content-Length`; hop-by-hop headers are not
    /// forwarded.
    ///
    /// The head is encoded and an idle connection taken when this is called; the future
    /// holds what the exchange needs and not the request (an async fn would keep the
    /// request, and its parts beside it, for as long as it runs).
    pub fn request(
        &self,
        req: Request<Full<Bytes>>,
    ) -> impl Future<Output = Result<Answer, RequestError>> + Send + '_ {
        self.request_at(req, Instant::now(), None)
    }

    /// [`HttpClient::request`], the time being `now` (read by the caller already: idle
    /// connections are checked against it), failing with [`RequestError::TimedOut`] when
    /// no answer head has come by `deadline`. The connection's own timer checks the
    /// deadline (see [`crate::timer`]): no timer is registered per request.
    pub fn request_at(
        &self,
        req: Request<Full<Bytes>>,
        now: Instant,
        deadline: Option<tokio::time::Instant>,
    ) -> impl Future<Output = Result<Answer, RequestError>> + Send + '_ {
        let mut p = match self.prepare(req, now) {
            Ok(p) => p,
            Err(e) => return futures_util::future::Either::Left(std::future::ready(Err(e))),
        };
        futures_util::future::Either::Right(async move {
            loop {
                let (mut conn, was_idle) = match p.reused.take() {
                    Some(c) => (c, true),
                    // Boxed: rare, and large (TCP, proxy tunnel, TLS); kept out of every
                    // request's state machine.
                    None => {
                        let connect = Box::pin(self.connect(&p.key, p.uri.clone()));
                        let conn = match deadline {
                            Some(d) => tokio::time::timeout_at(d, connect)
                                .await
                                .map_err(|_| RequestError::TimedOut)??,
                            None => connect.await?,
                        };
                        (conn, false)
                    }
                };
                // The exchange, raced with the connection's timer (taken out of it while
                // the exchange holds the connection).
                let mut timer = std::mem::take(&mut conn.timer);
                match deadline {
                    Some(d) => timer.set(d),
                    None => timer.clear(),
                }
                let exchanged = {
                    let mut exchange =
                        std::pin::pin!(conn.exchange(&p.head, &p.body, p.coalesced, &p.method));
                    std::future::poll_fn(|cx| {
                        if let Poll::Ready(out) = exchange.as_mut().poll(cx) {
                            return Poll::Ready(Some(out));
                        }
                        if timer.poll_expired(cx) {
                            Poll::Ready(None)
                        } else {
                            Poll::Pending
                        }
                    })
                    .await
                };
                conn.timer = timer;
                let answer = match exchanged {
                    Some(Ok(answer)) => answer,
                    // Closed while idle: another idle one, or a new connection.
                    Some(Err(ExchangeError::Write(_))) if was_idle => {
                        p.reused = self.checkout(&p.key, Instant::now()).0;
                        continue;
                    }
                    Some(Err(e)) => return Err(RequestError::Send(e)),
                    None => return Err(RequestError::TimedOut),
                };
                let mut body = UpstreamBody {
                    conn: Some(conn),
                    framing: answer.framing,
                    back: answer.keep_alive.then(|| Return {
                        pool: Arc::clone(&self.inner),
                        key: p.key,
                    }),
                    done: false,
                    whole: answer.whole,
                };
                if body.framing.is_done() {
                    body.finish(Instant::now());
                }
                return Ok(Answer {
                    status: answer.status,
                    version: answer.version,
                    headers: answer.headers,
                    body,
                });
            }
        })
    }

    /// What a request's exchange needs: its upstream, an idle connection to it if there
    /// is one, the head (with the body when small) and the body.
    fn prepare(&self, req: Request<Full<Bytes>>, now: Instant) -> Result<Prepared, RequestError> {
        let (parts, body) = req.into_parts();
        let uri = parts.uri;
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(RequestError::InvalidUri(uri.to_string()));
        };
        let key = Key {
            https: *scheme == Scheme::HTTPS,
            authority: authority.clone(),
        };
        let (reused, host) = self.checkout(&key, now);
        let host = match parts.headers.get(header::HOST) {
            Some(h) => h.clone(),
            None => host,
        };
        let target = uri.path_and_query().map_or("/", |p| p.as_str());
        let body = full_bytes(body);
        let (head, coalesced) =
            h1::encode_head(&parts.method, target, &host, &parts.headers, &body);
        Ok(Prepared {
            key,
            reused,
            head,
            body,
            coalesced,
            method: parts.method,
            uri,
        })
    }

    /// The most recently used idle connection to `key` that is still open, if any, and
    /// the upstream's `Host` header; `now` is the time.
    fn checkout(&self, key: &Key, now: Instant) -> (Option<Connection>, HeaderValue) {
        let Ok(mut idle) = self.inner.idle.lock() else {
            return (None, host_header(key.https, &key.authority));
        };
        let upstream = match idle.get_mut(key) {
            Some(u) => u,
            None => idle.entry(key.clone()).or_insert_with_key(Upstream::new),
        };
        let host = upstream.host.clone();
        while let Some(mut entry) = upstream.idle.pop() {
            if now.saturating_duration_since(entry.since) < IDLE_TIMEOUT && entry.conn.is_reusable()
            {
                return (Some(entry.conn), host);
            }
        }
        (None, host)
    }

    async fn connect(&self, key: &Key, uri: Uri) -> Result<Connection, RequestError> {
        let mut connector = self.inner.connector.clone();
        let io = async {
            std::future::poll_fn(|cx| connector.poll_ready(cx)).await?;
            connector.call(uri).await
        }
        .await
        .map_err(|source| RequestError::Connect {
            authority: key.authority.to_string(),
            source,
        })?;
        Ok(Box::new(Conn::new(TokioIo::new(io))))
    }
}

/// A request ready to go out (see [`HttpClient::request`]).
struct Prepared {
    key: Key,
    reused: Option<Connection>,
    /// The head, with the body in it when `coalesced`.
    head: Vec<u8>,
    body: Bytes,
    coalesced: bool,
    method: http::Method,
    /// For a new connection.
    uri: Uri,
}

/// An upstream's answer, its head read.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// The headers, as they came (see [`RawHeaders`]).
    pub headers: RawHeaders,
    /// The body, read by whoever polls it.
    pub body: UpstreamBody,
}

impl Answer {
    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The body.
    pub fn into_body(self) -> UpstreamBody {
        self.body
    }
}

/// The `Host` header for an authority: without the scheme's default port.
fn host_header(https: bool, authority: &Authority) -> HeaderValue {
    let default_port = if https { 443 } else { 80 };
    let host = match authority.port_u16() {
        Some(p) if p == default_port => authority.host(),
        _ => authority.as_str(),
    };
    HeaderValue::from_str(host).unwrap_or_else(|_| HeaderValue::from_static("localhost"))
}

/// Where a connection goes back once its answer has been read.
struct Return {
    pool: Arc<Inner>,
    key: Key,
}

/// An upstream answer's body, read by whoever polls it (no connection task). Read to
/// its end, it gives its connection back to the pool at once; dropped before, or after
/// an error, the connection is closed.
pub struct UpstreamBody {
    conn: Option<Connection>,
    framing: Framing,
    /// `None` when the connection cannot carry another request.
    back: Option<Return>,
    done: bool,
    /// The body copied with the head when all of it came with it (its bytes are still
    /// in the read window): what [`UpstreamBody::take_whole`] hands over.
    whole: Option<Bytes>,
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("framing", &self.framing)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl UpstreamBody {
    /// The whole body, when its length is known and every byte of it has already been
    /// read with the head (the common case for small answers): taken at once, and the
    /// connection goes back to the pool (idle since `now`, the time read by the caller).
    /// `None` leaves the body as it was.
    pub fn take_whole(&mut self, limit: usize, now: Instant) -> Option<Bytes> {
        let n = usize::try_from(self.framing.exact()?).ok()?;
        if self.done || n > limit {
            return None;
        }
        let conn = self.conn.as_mut()?;
        let buffered = conn.buf.filled();
        if buffered.len() < n {
            return None;
        }
        let data = match self.whole.take() {
            Some(whole) if whole.len() == n => whole,
            _ => Bytes::copy_from_slice(&buffered[..n]),
        };
        conn.buf.consume(n);
        self.framing = Framing::Length(0);
        self.finish(now);
        Some(data)
    }

    /// The body is complete: its connection goes back to the pool when it may carry
    /// another request and nothing unasked follows the answer (idle from `now`).
    fn finish(&mut self, now: Instant) {
        self.done = true;
        if let (Some(conn), Some(back)) = (self.conn.take(), self.back.take())
            && conn.buf.is_empty()
        {
            back.pool.put(back.key, conn, now);
        }
    }
}

impl HttpBody for UpstreamBody {
    type Data = Bytes;
    type Error = ExchangeError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ExchangeError>>> {
        let this = self.get_mut();
        let Some(conn) = this.conn.as_mut() else {
            return Poll::Ready(None);
        };
        match ready!(conn.poll_body(cx, &mut this.framing)) {
            Some(Ok(data)) => {
                if this.framing.is_done() {
                    this.finish(Instant::now());
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Some(Err(e)) => {
                this.conn = None;
                this.done = true;
                Poll::Ready(Some(Err(e)))
            }
            None => {
                this.finish(Instant::now());
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing.exact() {
            Some(n) if !self.done => SizeHint::with_exact(n),
            _ if self.done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
