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

/// The upstream request.
pub fn request(
    base: &str,
    api_key: Option<&str>,
    endpoint: Endpoint,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, ApiError> {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(format!("{base}{}", endpoint.path()));
    if let Some(key) = api_key {
        let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
            ApiError::internal("the deployment's API key is not a valid header value")
        })?;
        value.set_sensitive(true);
        builder = builder.header(header::AUTHORIZATION, value);
    }
    builder.body(Full::new(body)).map_err(bad_url)
}
