//! Modelgate's data plane: the OpenAI-compatible proxy that routes by the routing table
//! the operator pushes.
//!
//! - [`table`]: accepting a routing table (decode, schema, revision, validation).
//! - [`router`]: the table compiled for serving, with live deployment state.
//! - [`proxy`]: one request: retries, fallbacks, cooldowns, streaming.
//! - [`providers`]: one file per upstream API, and the translators between APIs.
//! - [`sse`]: server-sent events: decoding upstream streams, writing clients' events.
//! - [`errors`]: the one place errors become responses.
//! - [`server`]: the public and admin HTTP servers; [`info`]: the read-only endpoints.
//! - [`tls`]: TLS for the admin API, following rotated certificate files.
//! - [`health`]: active health checks; [`metrics`]: Prometheus metrics on their own port.
//! - [`hardening`]: the hardening limits as flags (connections, heads, timeouts, sizes).
//! - [`app`]: shared state; [`client`]: the upstream HTTP client; [`json`]: the JSON
//!   validity check of answers forwarded untouched.

#![forbid(unsafe_code)]

pub mod app;
pub mod body;
pub mod client;
pub mod errors;
pub mod hardening;
pub mod headers;
pub mod health;
pub mod info;
pub mod json;
pub mod limits;
pub mod metrics;
pub mod providers;
pub mod proxy;
pub mod responses;
pub mod router;
pub mod rt;
pub mod server;
pub mod sse;
pub mod table;
mod timer;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::body::{Body, RequestBody};
use crate::metrics::{FirstFrame, Metrics};

pub use app::App;

/// Where and how the data plane serves.
#[derive(Clone, Debug)]
pub struct Config {
    /// The OpenAI API (default `0.0.0.0:4000`).
    pub listen: SocketAddr,
    /// The admin API (default `0.0.0.0:4001`); `None` disables it (local mode).
    pub admin_listen: Option<SocketAddr>,
    /// Prometheus metrics (default `0.0.0.0:9464`); `None` disables them.
    pub metrics_listen: Option<SocketAddr>,
    /// File holding the admin bearer token, re-read when it changes.
    pub admin_token_file: Option<PathBuf>,
    /// Certificate and key (PEM files, re-read when they change) for serving the admin
    /// API over TLS; `None` serves it over plain HTTP.
    pub admin_tls: Option<tls::TlsFiles>,
    /// Extra CA bundle (PEM) trusted for upstreams.
    pub ca_bundle: Option<PathBuf>,
    /// How long in-flight requests may take to finish on shutdown.
    pub drain_timeout: Duration,
    /// Health-check probes in flight at once, across every deployment.
    pub health_check_concurrency: usize,
    /// Connection-level limits of the public and admin ports.
    pub limits: server::Limits,
    /// Requests (streams included, until they end) served at once on the public port;
    /// more get a 503 with `Retry-After`.
    pub max_in_flight: usize,
    /// Largest non-streaming answer read from an upstream; a larger one is a 502.
    pub max_upstream_answer_bytes: usize,
}

impl Config {
    /// The defaults the binary's flags have, serving on `listen` with no admin API and
    /// no metrics.
    pub fn new(listen: SocketAddr) -> Config {
        Config {
            listen,
            admin_listen: None,
            metrics_listen: None,
            admin_token_file: None,
            admin_tls: None,
            ca_bundle: None,
            drain_timeout: Duration::from_secs(30),
            health_check_concurrency: health::DEFAULT_CONCURRENCY,
            limits: server::Limits::default(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_upstream_answer_bytes: proxy::DEFAULT_MAX_ANSWER_BYTES,
        }
    }
}

/// Requests in flight at once by default (`--max-in-flight`).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4096;

/// The bound sockets.
#[derive(Debug)]
pub struct Listeners {
    /// The OpenAI API.
    pub public: TcpListener,
    /// The admin API.
    pub admin: Option<TcpListener>,
    /// The admin API's TLS (its certificate files loaded), when configured.
    pub admin_tls: Option<Arc<tls::ReloadingTls>>,
    /// Metrics.
    pub metrics: Option<TcpListener>,
}

/// Why the data plane cannot start serving.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// A listener cannot be bound.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The admin API's certificate and key cannot be served.
    #[error("admin TLS: {error}")]
    Tls {
        /// What is wrong with them (its message includes its cause).
        error: tls::TlsError,
    },
}

impl From<tls::TlsError> for BindError {
    fn from(error: tls::TlsError) -> Self {
        BindError::Tls { error }
    }
}

/// Binds the listeners (so that callers learn the ports before serving) and loads the
/// admin API's certificate and key, if any.
pub async fn bind(config: &Config) -> Result<Listeners, BindError> {
    // The admin API's TLS is not loaded without an admin listener (nothing would use it).
    let admin_tls = match (&config.admin_tls, config.admin_listen) {
        (Some(files), Some(_)) => Some(Arc::new(tls::ReloadingTls::new(files.clone())?)),
        _ => None,
    };
    let public = TcpListener::bind(config.listen).await?;
    let admin = match config.admin_listen {
        Some(a) => Some(TcpListener::bind(a).await?),
        None => None,
    };
    let metrics = match config.metrics_listen {
        Some(a) => Some(TcpListener::bind(a).await?),
        None => None,
    };
    Ok(Listeners {
        public,
        admin,
        admin_tls,
        metrics,
    })
}

/// The metric label of a path: a fixed set, never client input.
fn endpoint_label(path: &str) -> Option<&'static str> {
    match path {
        "/v1/chat/completions" | "/chat/completions" => Some("chat"),
        "/v1/completions" | "/completions" => Some("completions"),
        "/v1/embeddings" | "/embeddings" => Some("embeddings"),
        "/v1/messages" | "/messages" => Some("messages"),
        "/v1/responses" | "/responses" => Some("responses"),
        p if p.starts_with("/v1/responses/") || p.starts_with("/responses/") => {
            Some("responses_by_id")
        }
        _ => None,
    }
}

/// What the public port's handler shares across requests (one reference count per
/// request instead of three).
struct Public {
    app: Arc<App>,
    metrics: Arc<Metrics>,
    /// The bound on requests in flight.
    in_flight: Arc<Semaphore>,
}

/// The public API with metrics around it, and the bound on requests in flight. One
/// function rather than a wrapper around a wrapper, and an async block rather than an
/// async fn: an async fn keeps its arguments for as long as it runs, beside what it
/// moves them into, and every future awaited inside another is part of its state.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep the request twice in the state of every request in flight"
)]
fn measured(
    public: Arc<Public>,
    req: server::ApiRequest,
) -> impl std::future::Future<Output = (Response<Body>, server::ExtraHead)> + Send + 'static {
    async move {
        let Public {
            app,
            metrics,
            in_flight,
        } = &*public;
        let Some(endpoint) = endpoint_label(req.uri.path()) else {
            let (resp, outcome) =
                server::public_with_outcome(Arc::clone(app), req, Instant::now()).await;
            return (resp, outcome.extra);
        };
        // Held until the answer's body ends (a stream's last byte), so streams count.
        let Ok(permit) = Arc::clone(in_flight).try_acquire_owned() else {
            let mut e = errors::ApiError::unavailable(
                "the gateway is serving its limit of requests in flight; retry shortly",
            );
            e.retry_after = Some(Duration::from_secs(1));
            return (e.into_response(), server::ExtraHead::default());
        };
        let started = Instant::now();
        let guard = metrics.start();
        // Pinned where it is made: awaited as a temporary, the future was copied twice.
        let (resp, outcome) =
            std::pin::pin!(server::public_with_outcome(Arc::clone(app), req, started)).await;
        drop(guard);
        // The answer's time as the proxy read it (no second clock read), else now.
        let latency = outcome
            .answered
            .unwrap_or_else(Instant::now)
            .saturating_duration_since(started);
        let deployment = outcome
            .deployment()
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let streaming = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        // One lookup: the name read in place for the counts, taken for a stream's
        // time to first token.
        let stream_model = app.with_model_of(deployment, |model| {
            metrics.record(
                endpoint,
                model.map_or("", |m| m),
                deployment,
                resp.status().as_u16(),
                u64::from(outcome.attempts),
                latency,
            );
            streaming.then(|| model.map_or_else(|| Arc::from(""), Arc::clone))
        });
        let (parts, body) = resp.into_parts();
        let body = match stream_model {
            Some(model) => {
                let metrics = Arc::clone(metrics);
                FirstFrame::new(body, move || metrics.record_ttft(&model, started.elapsed()))
                    .boxed_unsync()
            }
            None => body,
        };
        let resp = Response::from_parts(
            parts,
            Held {
                body,
                _permit: permit,
            }
            .boxed_unsync(),
        );
        (resp, outcome.extra)
    }
}

/// A body holding a permit until it is dropped (its length and end passed through, so
/// a whole answer keeps its `content-length`).
struct Held {
    body: Body,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl http_body::Body for Held {
    type Data = bytes::Bytes;
    type Error = body::BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The metrics endpoint (and the health probes).
async fn metrics_endpoint(
    app: Arc<App>,
    metrics: Arc<Metrics>,
    req: Request<RequestBody>,
) -> Response<Body> {
    // The probes answer here too, so a sidecar can keep its API on 127.0.0.1 and still be
    // probed by the kubelet on the pod IP.
    if matches!(req.uri().path(), "/health/liveliness" | "/health/readiness") {
        return server::public(app, req.into()).await;
    }
    if req.method() != Method::GET || req.uri().path() != "/metrics" {
        return errors::ApiError::not_found(req.uri().path()).into_response();
    }
    let mut resp = Response::new(body::full(metrics.render(&app)));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    resp
}

/// Serves until `shutdown` turns true: readiness turns 503, listeners close, and
/// connections finish within the drain timeout.
pub async fn run(
    app: Arc<App>,
    config: &Config,
    listeners: Listeners,
    shutdown: watch::Receiver<bool>,
) {
    let Listeners {
        public,
        admin,
        admin_tls,
        metrics: metrics_listener,
    } = listeners;
    let metrics = Arc::new(Metrics::default());
    proxy::set_max_answer_bytes(config.max_upstream_answer_bytes);
    let in_flight = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    {
        let shared = Arc::new(Public {
            app: Arc::clone(&app),
            metrics: Arc::clone(&metrics),
            in_flight,
        });
        let shutdown = shutdown.clone();
        let drain = config.drain_timeout;
        let limits = config.limits.clone();
        tasks.spawn(async move {
            server::serve_public(
                public,
                move |req| measured(Arc::clone(&shared), req),
                shutdown,
                drain,
                limits,
            )
            .await;
        });
    }
    // The metrics port (with the probes) stays open while the others drain, so that
    // the kubelet reads readiness 503 "draining" rather than a refused connection; it
    // closes once they are done.
    let (metrics_stop, metrics_stopped) = watch::channel(false);
    let mut metrics_task = None;
    if let Some(listener) = metrics_listener {
        let app = Arc::clone(&app);
        let metrics = Arc::clone(&metrics);
        metrics_task = Some(tokio::spawn(async move {
            server::serve(
                listener,
                move |req| metrics_endpoint(Arc::clone(&app), Arc::clone(&metrics), req),
                metrics_stopped,
                Duration::from_secs(1),
            )
            .await;
        }));
    }
    tasks.spawn(health::run(
        Arc::clone(&app),
        config.health_check_concurrency,
        shutdown.clone(),
    ));
    if let Some(admin) = admin {
        let app = Arc::clone(&app);
        let token = Arc::new(server::AdminToken::from_file(
            config.admin_token_file.clone(),
        ));
        let shutdown = shutdown.clone();
        let drain = config.drain_timeout;
        let handler = move |req| server::admin(Arc::clone(&app), Arc::clone(&token), req);
        // The admin API takes routing tables of many megabytes: no request timeout shorter
        // than the public one's, same head limits.
        let limits = config.limits.clone();
        tasks.spawn(async move {
            server::serve_limited(admin, admin_tls, handler, shutdown, drain, limits).await;
        });
    }
    {
        let app = Arc::clone(&app);
        let mut shutdown = shutdown.clone();
        tasks.spawn(async move {
            server::stopped(&mut shutdown).await;
            app.drain();
        });
    }
    while tasks.join_next().await.is_some() {}
    let _ = metrics_stop.send(true);
    if let Some(t) = metrics_task {
        let _ = t.await;
    }
}
