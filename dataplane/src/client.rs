//! The HTTP client for upstreams: pooled keep-alive connections, HTTPS through rustls
//! (ring) with the Mozilla roots plus an optional extra CA bundle (corporate CAs).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The upstream client.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

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

/// Builds the client. `extra_ca` is a PEM bundle trusted besides the Mozilla roots.
pub fn build(extra_ca: Option<&Path>) -> Result<HttpClient, ClientError> {
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
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .build(https))
}
