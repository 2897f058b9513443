//! OpenAI and OpenAI-compatible servers: `POST {base}/chat/completions` with
//! `Authorization: Bearer <key>` when the deployment has a key. Bodies go as they came;
//! [`wire`] holds the OpenAI chat types that translators to and from other APIs use.

pub mod wire;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, header};
use http_body_util::Full;

use super::{Endpoint, bad_url};
use crate::errors::ApiError;

/// OpenAI's public API base.
pub const DEFAULT_BASE: &str = "https://api.openai.com/v1";

/// The upstream URIs of one deployment, parsed once when the table is installed (a URI
/// parse per request is measurable on the proxy's hot path).
#[derive(Clone, Debug)]
pub struct Uris {
    chat: Option<http::Uri>,
    completions: Option<http::Uri>,
    embeddings: Option<http::Uri>,
    responses: Option<http::Uri>,
}

impl Uris {
    /// The URIs under `base`; one that does not parse is reported when used.
    pub fn new(base: &str) -> Self {
        let at = |e: Endpoint| http::Uri::try_from(format!("{base}{}", e.path())).ok();
        Self {
            chat: at(Endpoint::Chat),
            completions: at(Endpoint::Completions),
            embeddings: at(Endpoint::Embeddings),
            responses: at(Endpoint::Responses),
        }
    }

    fn get(&self, endpoint: Endpoint) -> Option<&http::Uri> {
        match endpoint {
            Endpoint::Chat => self.chat.as_ref(),
            Endpoint::Completions => self.completions.as_ref(),
            Endpoint::Embeddings => self.embeddings.as_ref(),
            Endpoint::Responses => self.responses.as_ref(),
            Endpoint::Messages => None,
        }
    }
}

/// The upstream request.
pub fn request(
    base: &str,
    uris: &Uris,
    api_key: Option<&str>,
    endpoint: Endpoint,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, ApiError> {
    let uri = match uris.get(endpoint) {
        Some(uri) => uri.clone(),
        None => http::Uri::try_from(format!("{base}{}", endpoint.path()))
            .map_err(|e| bad_url(http::Error::from(e)))?,
    };
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = uri;
    if let Some(key) = api_key {
        let mut bearer = Vec::with_capacity(7 + key.len());
        bearer.extend_from_slice(b"Bearer ");
        bearer.extend_from_slice(key.as_bytes());
        let mut value = HeaderValue::from_bytes(&bearer).map_err(|_| {
            ApiError::internal("the deployment's API key is not a valid header value")
        })?;
        value.set_sensitive(true);
        req.headers_mut().insert(header::AUTHORIZATION, value);
    }
    Ok(req)
}
