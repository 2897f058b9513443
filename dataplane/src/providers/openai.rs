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

/// The upstream URIs of one deployment, parsed on first use and kept (a URI parse per
/// request is measurable on the proxy's hot path; parsing every deployment's up front
/// would cost memory for deployments that never see traffic).
#[derive(Clone, Debug, Default)]
pub struct Uris(std::sync::OnceLock<Box<[Option<http::Uri>; 4]>>);

impl Uris {
    /// The URI of `endpoint` under `base`; `None` when it does not parse (reported by the
    /// caller) or the endpoint is not OpenAI's.
    fn get(&self, base: &str, endpoint: Endpoint) -> Option<&http::Uri> {
        let i = match endpoint {
            Endpoint::Chat => 0,
            Endpoint::Completions => 1,
            Endpoint::Embeddings => 2,
            Endpoint::Responses => 3,
            Endpoint::Messages => return None,
        };
        let all = self.0.get_or_init(|| {
            Box::new(
                [
                    Endpoint::Chat,
                    Endpoint::Completions,
                    Endpoint::Embeddings,
                    Endpoint::Responses,
                ]
                .map(|e| http::Uri::try_from(format!("{base}{}", e.path())).ok()),
            )
        });
        all[i].as_ref()
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
    let uri = match uris.get(base, endpoint) {
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
