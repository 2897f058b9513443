//! Talking to data-plane pods on their admin port: pushing a routing table
//! (`PUT /v1/routing-table`), reading the health report (`GET /v1/health-report`, which also
//! says which table a pod serves). Every call carries the bearer token from a mounted file,
//! re-read when the file changes; over TLS when configured, verifying the pod against a CA
//! bundle.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use modelgate_dataplane_api::{Fleet, HealthReport};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};

/// Why a call to a data-plane pod failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The pod could not be reached or the call did not finish in time.
    #[error("data plane {addr} unreachable: {message}")]
    Unreachable {
        /// The pod's admin address.
        addr: SocketAddr,
        /// What went wrong.
        message: String,
    },
    /// The pod serves a later revision than the one offered.
    #[error("data plane {addr} serves a later revision: {message}")]
    Stale {
        /// The pod's admin address.
        addr: SocketAddr,
        /// The pod's message.
        message: String,
    },
    /// The pod answered with an error status.
    #[error("data plane {addr} answered {status}: {message}")]
    Refused {
        /// The pod's admin address.
        addr: SocketAddr,
        /// The status code.
        status: u16,
        /// The pod's error message.
        message: String,
    },
    /// The admin token file cannot be read.
    #[error("admin token file {path}: {message}")]
    Token {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The TLS configuration is unusable.
    #[error("data-plane TLS: {0}")]
    Tls(String),
}

impl PushError {
    /// True for failures worth retrying soon (unreachable, overloaded).
    pub fn is_transient(&self) -> bool {
        match self {
            PushError::Unreachable { .. } => true,
            PushError::Refused { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// What a pod said after a push.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct Served {
    /// Revision now served.
    pub revision: u64,
    /// Version now served.
    pub version: String,
    /// Entries the pod left out, with why.
    #[serde(default)]
    pub skipped: Vec<SkippedEntry>,
}

/// One entry a pod could not serve.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct SkippedEntry {
    /// Deployment or alias id.
    pub id: String,
    /// Why.
    pub reason: String,
}

/// The bearer token, read from a file and re-read when it changes.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    cached: Mutex<Option<CachedToken>>,
}

/// A token with the modification time and length of the file it was read from.
#[derive(Debug)]
struct CachedToken {
    stamp: (Option<SystemTime>, u64),
    token: Arc<str>,
}

impl TokenFile {
    /// A token read from `path`.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            cached: Mutex::new(None),
        }
    }

    /// The current token.
    pub fn get(&self) -> Result<Arc<str>, PushError> {
        let err = |message: String| PushError::Token {
            path: self.path.display().to_string(),
            message,
        };
        let meta = std::fs::metadata(&self.path).map_err(|e| err(e.to_string()))?;
        let stamp = (meta.modified().ok(), meta.len());
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cached.as_ref()
            && c.stamp == stamp
        {
            return Ok(c.token.clone());
        }
        let text = std::fs::read_to_string(&self.path).map_err(|e| err(e.to_string()))?;
        let token: Arc<str> = Arc::from(text.trim());
        if token.is_empty() {
            return Err(err("the file is empty".to_owned()));
        }
        *cached = Some(CachedToken {
            stamp,
            token: token.clone(),
        });
        Ok(token)
    }
}

/// TLS towards the data planes' admin port.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// PEM CA bundle the pods' certificates must chain to.
    pub ca_pem: Option<Vec<u8>>,
    /// Name checked in the pods' certificates instead of their IP.
    pub server_name: Option<String>,
}

type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client for data-plane admin APIs.
#[derive(Clone, Debug)]
pub struct DataPlaneClient {
    client: HttpsClient,
    tls: bool,
    token: Arc<TokenFile>,
    timeout: Duration,
}

impl DataPlaneClient {
    /// A client using `token` on every call, over TLS when `tls` has a CA bundle, each
    /// call bounded by `timeout`.
    pub fn new(
        token: Arc<TokenFile>,
        tls: &TlsOptions,
        timeout: Duration,
    ) -> Result<Self, PushError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        if let Some(pem) = &tls.ca_pem {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| PushError::Tls(format!("CA bundle: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| PushError::Tls(format!("CA bundle: {e}")))?;
            }
            if roots.is_empty() {
                return Err(PushError::Tls(
                    "the CA bundle holds no certificate".to_owned(),
                ));
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| PushError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let builder = HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http();
        let builder = match &tls.server_name {
            Some(name) => {
                let name = ServerName::try_from(name.clone())
                    .map_err(|e| PushError::Tls(format!("server name {name:?}: {e}")))?;
                builder.with_server_name_resolver(FixedServerNameResolver::new(name))
            }
            None => builder,
        };
        let connector = builder.enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(2)
            .build(connector);
        Ok(Self {
            client,
            tls: tls.ca_pem.is_some(),
            token,
            timeout,
        })
    }

    fn uri(&self, addr: SocketAddr, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{addr}{path}")
    }

    async fn call(
        &self,
        addr: SocketAddr,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), PushError> {
        let token = self.token.get()?;
        let req = Request::builder()
            .method(method)
            .uri(self.uri(addr, path))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| PushError::Unreachable {
                addr,
                message: e.to_string(),
            })?;
        let unreachable = |message: String| PushError::Unreachable { addr, message };
        let call = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| unreachable(error_chain(&e)))?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| unreachable(e.to_string()))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| unreachable(format!("no answer within {:?}", self.timeout)))?
    }

    /// Pushes a table (JSON, optionally gzip-compressed) to the pod at `addr`.
    pub async fn push(&self, addr: SocketAddr, table: Bytes) -> Result<Served, PushError> {
        let (status, body) = self
            .call(addr, Method::PUT, "/v1/routing-table", table)
            .await?;
        if status == StatusCode::CONFLICT {
            return Err(PushError::Stale {
                addr,
                message: error_message(&body),
            });
        }
        decode(addr, status, &body, "answer")
    }

    /// Tells the pod the fleet size (`PUT /v1/fleet`): outside the table, so its version
    /// and every status stay as they are.
    pub async fn put_fleet(&self, addr: SocketAddr, fleet: Fleet) -> Result<(), PushError> {
        let body = serde_json::to_vec(&fleet).map_err(|e| PushError::Unreachable {
            addr,
            message: e.to_string(),
        })?;
        let (status, body) = self
            .call(addr, Method::PUT, "/v1/fleet", Bytes::from(body))
            .await?;
        decode::<serde_json::Value>(addr, status, &body, "fleet answer").map(|_| ())
    }

    /// The pod's health report (which also names the table it serves).
    pub async fn health_report(&self, addr: SocketAddr) -> Result<HealthReport, PushError> {
        let (status, body) = self
            .call(addr, Method::GET, "/v1/health-report", Bytes::new())
            .await?;
        decode(addr, status, &body, "health report")
    }
}

/// A successful answer's JSON, or the pod's error.
fn decode<T: serde::de::DeserializeOwned>(
    addr: SocketAddr,
    status: StatusCode,
    body: &[u8],
    what: &str,
) -> Result<T, PushError> {
    let refused = |message| PushError::Refused {
        addr,
        status: status.as_u16(),
        message,
    };
    if !status.is_success() {
        return Err(refused(error_message(body)));
    }
    serde_json::from_slice(body).map_err(|e| refused(format!("unreadable {what}: {e}")))
}

/// The `error.message` of an OpenAI-shaped error body, or the body itself (cut short).
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            text.chars().take(512).collect()
        })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
