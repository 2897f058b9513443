//! The HTTP client for upstreams: pooled keep-alive connections, HTTPS through rustls
//! (ring) with the Mozilla roots plus an optional extra CA bundle (corporate CAs), and
//! egress proxies from `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` with `NO_PROXY` (connections
//! through a proxy are `CONNECT` tunnels; TLS to the upstream runs inside the tunnel).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The upstream client.
pub type HttpClient = Client<HttpsConnector<ProxyConnector>, Full<Bytes>>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Connects directly, or through a `CONNECT` tunnel when the proxy rules say so.
#[derive(Clone, Debug)]
pub struct ProxyConnector {
    http: HttpConnector,
    matcher: Arc<Matcher>,
}

impl tower_service::Service<Uri> for ProxyConnector {
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
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .build(https))
}
