//! The HTTP client for upstreams: pooled keep-alive HTTP/1.1 connections, HTTPS through
//! rustls (ring) with the Mozilla roots plus an optional extra CA bundle (corporate CAs),
//! and egress proxies from `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` with `NO_PROXY`
//! (connections through a proxy are `CONNECT` tunnels; TLS to the upstream runs inside
//! the tunnel).
//!
//! The pool is ours rather than hyper-util's legacy client: a request takes the most
//! recently used idle connection to its upstream (or opens one when there is none, never
//! racing a connect against a checkout), and its connection goes back to the pool when
//! the answer's body has been read to the end ([`UpstreamBody`]); a body dropped early
//! closes it. A request that a reused connection could not send (the upstream closed it
//! while idle) is sent again on a new connection.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, header};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::net::TcpStream;
use tower_service::Service;

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
    /// The HTTP/1.1 handshake on a new connection failed.
    #[error("HTTP handshake with {authority} failed: {source}")]
    Handshake {
        /// The upstream.
        authority: String,
        /// The cause.
        source: hyper::Error,
    },
    /// The request could not be sent or its answer's head could not be read.
    #[error("{0}")]
    Send(#[source] hyper::Error),
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

type Key = (Scheme, Authority);

struct Inner {
    connector: HttpsConnector<ProxyConnector>,
    idle: Mutex<HashMap<Key, Vec<Idle>, foldhash::fast::RandomState>>,
}

struct Idle {
    sender: http1::SendRequest<Full<Bytes>>,
    since: Instant,
}

impl HttpClient {
    /// Sends `req` (an absolute URI) and returns the answer once its head has arrived.
    pub async fn request(
        &self,
        mut req: Request<Full<Bytes>>,
    ) -> Result<Response<UpstreamBody>, RequestError> {
        let uri = req.uri();
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(RequestError::InvalidUri(uri.to_string()));
        };
        let key: Key = (scheme.clone(), authority.clone());
        let connect_uri = uri.clone();
        // HTTP/1.1 to an origin (or through a tunnel): origin-form target and a Host.
        let path = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        if !req.headers().contains_key(header::HOST) {
            let host = host_header(&key.0, &key.1);
            req.headers_mut().insert(header::HOST, host);
        }
        *req.uri_mut() = Uri::from(path);
        let mut reused = self.checkout(&key);
        loop {
            let (mut sender, was_idle) = match reused.take() {
                Some(s) => (s, true),
                // Boxed: rare, and large (TCP, proxy tunnel, TLS); kept out of every
                // request's state machine.
                None => (
                    Box::pin(self.connect(&key, connect_uri.clone())).await?,
                    false,
                ),
            };
            if let Err(e) = sender.ready().await {
                if was_idle {
                    // Closed while idle: another idle one, or a new connection.
                    reused = self.checkout(&key);
                    continue;
                }
                return Err(RequestError::Send(e));
            }
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    let back = Some(Return {
                        pool: Arc::clone(&self.inner),
                        key,
                        sender,
                    });
                    return Ok(resp.map(|body| UpstreamBody {
                        inner: body,
                        back,
                        done: false,
                    }));
                }
                Err(mut e) => match e.take_message() {
                    // Never written: the connection was closing. Again, elsewhere.
                    Some(again) if was_idle => {
                        req = again;
                        reused = self.checkout(&key);
                    }
                    _ => return Err(RequestError::Send(e.into_error())),
                },
            }
        }
    }

    /// The most recently used open idle connection to `key`, if any.
    fn checkout(&self, key: &Key) -> Option<http1::SendRequest<Full<Bytes>>> {
        let mut idle = self.inner.idle.lock().ok()?;
        let list = idle.get_mut(key)?;
        while let Some(entry) = list.pop() {
            if !entry.sender.is_closed() && entry.since.elapsed() < IDLE_TIMEOUT {
                return Some(entry.sender);
            }
        }
        None
    }

    async fn connect(
        &self,
        key: &Key,
        uri: Uri,
    ) -> Result<http1::SendRequest<Full<Bytes>>, RequestError> {
        let mut connector = self.inner.connector.clone();
        let io = async {
            std::future::poll_fn(|cx| connector.poll_ready(cx)).await?;
            connector.call(uri).await
        }
        .await
        .map_err(|source| RequestError::Connect {
            authority: key.1.to_string(),
            source,
        })?;
        let (sender, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|source| RequestError::Handshake {
                authority: key.1.to_string(),
                source,
            })?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("upstream connection ended: {e}");
            }
        });
        Ok(sender)
    }
}

/// The `Host` header for an authority: without the scheme's default port.
fn host_header(scheme: &Scheme, authority: &Authority) -> HeaderValue {
    let default_port = if *scheme == Scheme::HTTPS { 443 } else { 80 };
    let host = match authority.port_u16() {
        Some(p) if p == default_port => authority.host(),
        _ => authority.as_str(),
    };
    HeaderValue::from_str(host).unwrap_or_else(|_| HeaderValue::from_static("localhost"))
}

/// A connection on its way back to the pool.
struct Return {
    pool: Arc<Inner>,
    key: Key,
    sender: http1::SendRequest<Full<Bytes>>,
}

/// An upstream answer's body. Read to its end, it gives its connection back to the pool;
/// dropped before, the connection is closed.
pub struct UpstreamBody {
    inner: Incoming,
    back: Option<Return>,
    done: bool,
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl HttpBody for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.done = true,
            Poll::Ready(Some(Err(_))) => self.back = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if !(self.done || self.inner.is_end_stream()) {
            return;
        }
        let Some(Return { pool, key, sender }) = self.back.take() else {
            return;
        };
        if sender.is_closed() {
            return;
        }
        let Ok(mut idle) = pool.idle.lock() else {
            return;
        };
        let list = idle.entry(key).or_default();
        // The oldest are first: drop those past the idle timeout.
        let expired = list
            .iter()
            .take_while(|e| e.since.elapsed() >= IDLE_TIMEOUT)
            .count();
        list.drain(..expired);
        if list.len() < MAX_IDLE_PER_UPSTREAM {
            list.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }
}
