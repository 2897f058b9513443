//! Providers: how a request for one deployment is sent upstream. One file each; the
//! OpenAI-compatible family (OpenAI itself, vLLM, Ollama, TGI, Groq, …) shares one.
//!
//! - [`openai`]: OpenAI and OpenAI-compatible servers (bearer auth, model rewrite).
//! - [`azure`]: Azure OpenAI (deployment URL, `api-version`, `api-key` header).
//! - [`mock`]: canned answers in-process, for demos and load tests.

pub mod azure;
pub mod mock;
pub mod openai;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, header};
use http_body_util::Full;
use modelgate_dataplane_api::Deployment;

use crate::errors::ApiError;

/// The OpenAI API endpoints the data plane serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`.
    Completions,
    /// `/v1/embeddings`.
    Embeddings,
}

impl Endpoint {
    /// The path below the API base.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/chat/completions",
            Endpoint::Completions => "/completions",
            Endpoint::Embeddings => "/embeddings",
        }
    }

    /// A short name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
        }
    }
}

/// How to reach one deployment.
#[derive(Clone, Debug)]
pub enum Provider {
    /// OpenAI or an OpenAI-compatible server at `base` (no trailing slash).
    OpenAi {
        /// API base, e.g. `https://api.openai.com/v1`.
        base: String,
    },
    /// Azure OpenAI.
    Azure {
        /// Resource endpoint, e.g. `https://x.openai.azure.com`.
        base: String,
        /// `api-version` query parameter.
        api_version: String,
    },
    /// Answered in-process.
    Mock(mock::Mock),
}

impl Provider {
    /// The provider for a table deployment; `None` for a provider this build cannot serve.
    pub fn for_deployment(d: &Deployment) -> Option<Provider> {
        match d.provider.as_str() {
            "openai" => Some(Provider::OpenAi {
                base: d
                    .api_base
                    .clone()
                    .unwrap_or_else(|| openai::DEFAULT_BASE.to_owned()),
            }),
            "openai-compatible" => Some(Provider::OpenAi {
                base: d.api_base.clone()?,
            }),
            "azure" => Some(Provider::Azure {
                base: d.api_base.clone()?,
                api_version: d.api_version.clone()?,
            }),
            "mock" => Some(Provider::Mock(mock::Mock::from_deployment(d))),
            _ => None,
        }
    }

    /// The upstream request for `endpoint` with `body`, for deployment `d`.
    pub fn request(
        &self,
        d: &Deployment,
        api_key: Option<&str>,
        endpoint: Endpoint,
        upstream_model: &str,
        body: Bytes,
        client_headers: &HeaderMap,
    ) -> Result<Request<Full<Bytes>>, ApiError> {
        let mut req = match self {
            Provider::OpenAi { base } => openai::request(base, api_key, endpoint, body)?,
            Provider::Azure { base, api_version } => {
                azure::request(base, api_version, api_key, endpoint, upstream_model, body)?
            }
            Provider::Mock(_) => {
                return Err(ApiError::internal(
                    "mock deployments are answered in-process",
                ));
            }
        };
        let headers = req.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for h in &d.headers {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(h.name.as_bytes()),
                HeaderValue::from_str(&h.value),
            ) {
                headers.insert(name, value);
            }
        }
        // W3C trace context passes through to the upstream.
        for name in ["traceparent", "tracestate"] {
            if let Some(v) = client_headers.get(name) {
                headers.insert(name, v.clone());
            }
        }
        Ok(req)
    }
}

/// The upstream model id for a request of `requested` to deployment `d`: its
/// `upstream_model`, with `*` standing for the part of a wildcard request after the
/// provider prefix.
pub fn upstream_model(d: &Deployment, requested: &str) -> String {
    if !d.upstream_model.contains('*') {
        return d.upstream_model.clone();
    }
    let suffix = requested
        .split_once('/')
        .map_or(requested, |(_, rest)| rest);
    d.upstream_model.replacen('*', suffix, 1)
}

/// Percent-encodes everything but RFC 3986's unreserved characters (URL path segments,
/// query values, userinfo).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn bad_url(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("cannot build the upstream URL: {e}"))
}
