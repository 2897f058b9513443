//! Azure OpenAI: `POST {base}/openai/deployments/{deployment}/chat/completions?api-version=…`
//! with the key in the `api-key` header. The deployment name is the upstream model id.
//! The Responses API is `POST {base}/openai/responses?api-version=…` (the deployment in
//! the body's `model`), as Azure documents it.

use bytes::Bytes;
use http::{HeaderValue, Method, Request};
use http_body_util::Full;

use super::{Endpoint, bad_url, percent_encode as encode};
use crate::errors::ApiError;

/// The upstream request.
pub fn request(
    base: &str,
    api_version: &str,
    api_key: Option<&str>,
    endpoint: Endpoint,
    deployment: &str,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, ApiError> {
    // The Responses API has no deployment segment: the deployment is the body's `model`.
    let uri = if endpoint == Endpoint::Responses {
        format!(
            "{base}/openai/responses?api-version={}",
            encode(api_version)
        )
    } else {
        format!(
            "{base}/openai/deployments/{}{}?api-version={}",
            encode(deployment),
            endpoint.path(),
            encode(api_version)
        )
    };
    let mut builder = Request::builder().method(Method::POST).uri(uri);
    if let Some(key) = api_key {
        let mut value = HeaderValue::from_str(key).map_err(|_| {
            ApiError::internal("the deployment's API key is not a valid header value")
        })?;
        value.set_sensitive(true);
        builder = builder.header("api-key", value);
    }
    builder.body(Full::new(body)).map_err(bad_url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_url_and_key_header() {
        let req = request(
            "https://x.openai.azure.com",
            "2024-10-21",
            Some("k"),
            Endpoint::Chat,
            "gpt 4o",
            Bytes::new(),
        )
        .expect("request");
        assert_eq!(
            req.uri(),
            "https://x.openai.azure.com/openai/deployments/gpt%204o/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(req.headers()["api-key"], "k");
    }

    #[test]
    fn responses_url_has_no_deployment_segment() {
        let req = request(
            "https://x.openai.azure.com",
            "2025-03-01-preview",
            None,
            Endpoint::Responses,
            "gpt-4o",
            Bytes::new(),
        )
        .expect("request");
        assert_eq!(
            req.uri(),
            "https://x.openai.azure.com/openai/responses?api-version=2025-03-01-preview"
        );
    }
}
