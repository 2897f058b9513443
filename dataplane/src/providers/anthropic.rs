//! Anthropic's Messages API: `POST {base}/v1/messages` with the key in `x-api-key` and
//! `anthropic-version` (the deployment's `apiVersion`, else the client's header on
//! `/v1/messages`, else `2023-06-01`); `anthropic-beta` from a client passes through.
//!
//! Three translation legs live here, one file per pair of APIs (client API first):
//!
//! - [`openai_anthropic`] ([`OPENAI_TO_ANTHROPIC`]): OpenAI chat completions to an
//!   Anthropic deployment: request, answer, stream, errors.
//! - [`anthropic_openai`] ([`ANTHROPIC_TO_OPENAI`]): the `/v1/messages` front leg for
//!   deployments that speak OpenAI chat (and, chained with their own leg, any other).
//! - [`native`] ([`NATIVE`]): `/v1/messages` to an Anthropic deployment: the body as it
//!   came (the model rewritten when it differs), the stream as it came, but watched so
//!   that an `error` event before anything was sent is retried like an error status.
//!
//! Wire types are in [`wire`].

pub mod anthropic_openai;
pub mod native;
pub mod openai_anthropic;
pub mod wire;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request};
use http_body_util::Full;
use modelgate_dataplane_api::Deployment;

use super::bad_url;
use crate::errors::ApiError;
use crate::headers::RawHeaders;

pub use anthropic_openai::AnthropicToOpenAi;
pub use native::Native;
pub use openai_anthropic::OpenAiToAnthropic;

/// Anthropic's public API base.
pub const DEFAULT_BASE: &str = "https://api.anthropic.com";
/// The `anthropic-version` sent when neither the deployment nor the client names one.
pub const DEFAULT_VERSION: &str = "2023-06-01";
/// `max_tokens` when neither the request nor `modelInfo.maxOutputTokens` gives one.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// OpenAI chat completions → Anthropic Messages.
pub static OPENAI_TO_ANTHROPIC: OpenAiToAnthropic = OpenAiToAnthropic;
/// Anthropic Messages (inbound) → OpenAI chat completions.
pub static ANTHROPIC_TO_OPENAI: AnthropicToOpenAi = AnthropicToOpenAi;
/// Anthropic Messages (inbound) → Anthropic, natively.
pub static NATIVE: Native = Native;

/// An Anthropic deployment's endpoint.
#[derive(Clone, Debug)]
pub struct Anthropic {
    /// API base without `/v1` and without a trailing slash.
    pub base: String,
    /// `anthropic-version` set by the deployment (`upstream.apiVersion`).
    pub version: Option<String>,
}

impl Anthropic {
    /// From the table entry.
    pub fn from_deployment(d: &Deployment) -> Anthropic {
        let base = d
            .api_base
            .as_deref()
            .unwrap_or(DEFAULT_BASE)
            .trim_end_matches('/');
        // `…/v1` is accepted as the base too (the path below adds it).
        let base = base.strip_suffix("/v1").unwrap_or(base);
        Anthropic {
            base: base.to_owned(),
            version: d.api_version.clone(),
        }
    }

    /// `{base}/v1/messages`.
    pub fn messages_url(&self) -> String {
        format!("{}/v1/messages", self.base)
    }

    /// `{base}/v1/models` (the health probe).
    pub fn models_url(&self) -> String {
        format!("{}/v1/models", self.base)
    }

    /// The headers every request carries: the key and the API version.
    pub fn auth_headers(
        &self,
        api_key: Option<&str>,
        client_headers: &RawHeaders,
    ) -> Result<HeaderMap, ApiError> {
        let mut headers = HeaderMap::new();
        if let Some(key) = api_key {
            let mut value = HeaderValue::from_str(key).map_err(|_| {
                ApiError::internal("the deployment's API key is not a valid header value")
            })?;
            value.set_sensitive(true);
            headers.insert("x-api-key", value);
        }
        let version = match &self.version {
            Some(v) => HeaderValue::from_str(v).map_err(|_| {
                ApiError::internal("the deployment's apiVersion is not a valid header value")
            })?,
            None => client_headers
                .value("anthropic-version")
                .unwrap_or_else(|| HeaderValue::from_static(DEFAULT_VERSION)),
        };
        headers.insert("anthropic-version", version);
        if let Some(beta) = client_headers.value("anthropic-beta") {
            headers.insert("anthropic-beta", beta);
        }
        Ok(headers)
    }

    /// The upstream request (the body is already in Anthropic's format).
    pub fn request(
        &self,
        api_key: Option<&str>,
        body: Bytes,
        client_headers: &RawHeaders,
    ) -> Result<Request<Full<Bytes>>, ApiError> {
        let headers = self.auth_headers(api_key, client_headers)?;
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.messages_url())
            .body(Full::new(body))
            .map_err(bad_url)?;
        req.headers_mut().extend(headers);
        Ok(req)
    }
}

/// Finish reason (OpenAI) for a stop reason (Anthropic).
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn and whatever comes next.
        _ => "stop",
    }
}

/// Stop reason (Anthropic) for a finish reason (OpenAI).
pub fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// Unix seconds now.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A `data:` URL's media type and base64 payload (`data:image/png;base64,AAAA`).
pub fn split_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some((media_type, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls() {
        assert_eq!(
            split_data_url("data:image/png;base64,AAAA"),
            Some(("image/png", "AAAA"))
        );
        assert_eq!(split_data_url("data:image/png,AAAA"), None);
        assert_eq!(split_data_url("https://x/y.png"), None);
    }

    #[test]
    fn request_headers() {
        let a = Anthropic {
            base: "https://api.anthropic.com".to_owned(),
            version: None,
        };
        let mut client = HeaderMap::new();
        client.insert("anthropic-beta", HeaderValue::from_static("x-2025"));
        let req = a
            .request(Some("k"), Bytes::new(), &RawHeaders::from_map(&client))
            .expect("request");
        assert_eq!(req.uri(), "https://api.anthropic.com/v1/messages");
        assert_eq!(req.headers()["x-api-key"], "k");
        assert!(req.headers()["x-api-key"].is_sensitive());
        assert_eq!(req.headers()["anthropic-version"], DEFAULT_VERSION);
        assert_eq!(req.headers()["anthropic-beta"], "x-2025");
    }
}
