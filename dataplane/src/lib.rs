//! Modelgate's data plane: the OpenAI-compatible proxy that routes by the routing table
//! the operator pushes.
//!
//! - [`table`]: accepting a routing table (decode, schema, revision, validation).
//! - [`router`]: the table compiled for serving, with live deployment state.
//! - [`proxy`]: one request: retries, fallbacks, cooldowns, streaming.
//! - [`providers`]: one file per upstream API.
//! - [`errors`]: the one place errors become responses.
//! - [`server`]: the public and admin HTTP servers; [`info`]: the read-only endpoints.
//! - [`app`]: shared state; [`client`]: the upstream HTTP client.

#![forbid(unsafe_code)]

pub mod app;
pub mod body;
pub mod client;
pub mod errors;
pub mod info;
pub mod providers;
pub mod proxy;
pub mod router;
pub mod server;
pub mod table;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use app::App;

/// Where and how the data plane serves.
#[derive(Clone, Debug)]
pub struct Config {
    /// The OpenAI API (default `0.0.0.0:4000`).
    pub listen: SocketAddr,
    /// The admin API (default `0.0.0.0:4001`); `None` disables it (local mode).
    pub admin_listen: Option<SocketAddr>,
    /// File holding the admin bearer token, re-read when it changes.
    pub admin_token_file: Option<PathBuf>,
    /// Extra CA bundle (PEM) trusted for upstreams.
    pub ca_bundle: Option<PathBuf>,
    /// How long in-flight requests may take to finish on shutdown.
    pub drain_timeout: Duration,
}

/// Binds the listeners (so that callers learn the ports before serving).
pub async fn bind(config: &Config) -> std::io::Result<(TcpListener, Option<TcpListener>)> {
    let public = TcpListener::bind(config.listen).await?;
    let admin = match config.admin_listen {
        Some(a) => Some(TcpListener::bind(a).await?),
        None => None,
    };
    Ok((public, admin))
}

/// Serves until `shutdown` turns true: readiness turns 503, listeners close, and
/// connections finish within the drain timeout.
pub async fn run(
    app: Arc<App>,
    config: &Config,
    public: TcpListener,
    admin: Option<TcpListener>,
    shutdown: watch::Receiver<bool>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    {
        let app = Arc::clone(&app);
        let shutdown = shutdown.clone();
        let drain = config.drain_timeout;
        tasks.spawn(async move {
            server::serve(
                public,
                move |req| server::public(Arc::clone(&app), req),
                shutdown,
                drain,
            )
            .await;
        });
    }
    if let Some(admin) = admin {
        let app = Arc::clone(&app);
        let token = Arc::new(server::AdminToken::from_file(
            config.admin_token_file.clone(),
        ));
        let shutdown = shutdown.clone();
        let drain = config.drain_timeout;
        tasks.spawn(async move {
            server::serve(
                admin,
                move |req| server::admin(Arc::clone(&app), Arc::clone(&token), req),
                shutdown,
                drain,
            )
            .await;
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
}
