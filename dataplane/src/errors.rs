//! Errors as clients see them. Every error the data plane answers with is an [`ApiError`]
//! and becomes a response in exactly one place, [`ApiError::into_response_as`], in the
//! shape of the API the client speaks ([`Dialect`]): OpenAI's
//! `{"error": {"message", "type", "param", "code"}}`, or Anthropic's
//! `{"type": "error", "error": {"type", "message"}}` on `/v1/messages`, with the status
//! code the official SDKs map to the right exception.
//!
//! Upstream errors are read here too: OpenAI-shaped bodies ([`ApiError::from_upstream`])
//! and Anthropic's ([`ApiError::from_anthropic`]: `overloaded_error` (529) becomes a
//! retryable 503, "prompt is too long" a context-window error).

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

use crate::body::{Body, full};

/// An error a client receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable message (never a credential, never a prompt).
    pub message: String,
    /// OpenAI error `type`.
    pub kind: &'static str,
    /// The request parameter at fault, if any.
    pub param: Option<String>,
    /// Machine-readable code.
    pub code: Option<&'static str>,
    /// Sent as `Retry-After` (whole seconds, rounded up).
    pub retry_after: Option<Duration>,
}

/// The error shape a client expects: that of the API it called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Dialect {
    /// OpenAI's (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`, …).
    #[default]
    OpenAi,
    /// Anthropic's (`/v1/messages`).
    Anthropic,
}

/// Anthropic's error types kept as an error's `kind` (a fixed set: a kind never echoes
/// arbitrary upstream text).
const ANTHROPIC_TYPES: [&str; 10] = [
    "invalid_request_error",
    "authentication_error",
    "billing_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "api_error",
    "timeout_error",
    "overloaded_error",
];

#[derive(Serialize)]
struct AnthropicEnvelope<'a> {
    r#type: &'static str,
    error: AnthropicInner<'a>,
}

#[derive(Serialize)]
struct AnthropicInner<'a> {
    r#type: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    message: &'a str,
    r#type: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after: None,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 400 naming the parameter at fault.
    pub fn invalid_param(param: &str, message: impl Into<String>) -> Self {
        Self {
            param: Some(param.to_owned()),
            ..Self::bad_request(message)
        }
    }

    /// 401: missing or wrong key.
    pub fn unauthorized() -> Self {
        Self {
            code: Some("invalid_api_key"),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "Missing or invalid API key: send Authorization: Bearer <key>.",
            )
        }
    }

    /// 404: no such model.
    pub fn model_not_found(model: &str) -> Self {
        Self {
            param: Some("model".to_owned()),
            code: Some("model_not_found"),
            ..Self::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!("The model `{model}` does not exist or you do not have access to it."),
            )
        }
    }

    /// 404: no such route.
    pub fn not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("Unknown path {path}."),
        )
    }

    /// 405.
    pub fn method_not_allowed(method: &http::Method, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            format!("{method} is not allowed on {path}."),
        )
    }

    /// 413: the body is over the limit.
    pub fn too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("Request body is larger than {limit} bytes."),
        )
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        Self {
            code: Some("rate_limit_exceeded"),
            retry_after,
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message)
        }
    }

    /// 503: nothing can serve right now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            message,
        )
    }

    /// 504: the upstream did not answer in time.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, "timeout", message)
    }

    /// 502: the upstream failed.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "upstream_error", message)
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    /// An upstream's error answer, passed on with its status and message.
    pub fn from_upstream(status: StatusCode, body: &[u8], retry_after: Option<Duration>) -> Self {
        let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let error = parsed.as_ref().and_then(|v| v.get("error"));
        let message = error
            .and_then(|e| {
                e.get("message")
                    .and_then(|m| m.as_str())
                    .or_else(|| e.as_str())
            })
            .map(str::to_owned)
            .unwrap_or_else(|| {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                if text.is_empty() {
                    format!("upstream answered {status}")
                } else {
                    text.chars().take(1000).collect()
                }
            });
        let kind = openai_kind(status);
        let code = error
            .and_then(|e| e.get("code"))
            .and_then(|c| c.as_str())
            .and_then(known_code);
        Self {
            status,
            message,
            kind,
            param: error
                .and_then(|e| e.get("param"))
                .and_then(|p| p.as_str())
                .map(str::to_owned),
            code,
            retry_after,
        }
    }

    /// An Anthropic error answer (`{"type": "error", "error": {"type", "message"}}`):
    /// the status kept, except `overloaded_error` (529), which becomes a 503 (retryable;
    /// what an OpenAI client sees when no other deployment could answer); Anthropic's
    /// error type kept as `kind`; "prompt is too long" and friends become context-window
    /// errors (`context_length_exceeded`), so context-window fallbacks apply.
    pub fn from_anthropic(status: StatusCode, body: &[u8], retry_after: Option<Duration>) -> Self {
        #[derive(serde::Deserialize)]
        struct Body<'a> {
            #[serde(borrow)]
            error: Option<Inner<'a>>,
        }
        #[derive(serde::Deserialize)]
        struct Inner<'a> {
            #[serde(borrow, default)]
            r#type: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow, default)]
            message: Option<std::borrow::Cow<'a, str>>,
        }
        let parsed: Option<Body<'_>> = serde_json::from_slice(body).ok();
        let inner = parsed.and_then(|b| b.error);
        let upstream_type = inner
            .as_ref()
            .and_then(|i| i.r#type.as_deref())
            .and_then(|t| ANTHROPIC_TYPES.iter().find(|k| **k == t).copied());
        let Some(message) = inner.and_then(|i| i.message) else {
            // Not Anthropic's shape (a proxy in front of it): read it as OpenAI's.
            let mut e = Self::from_upstream(status, body, retry_after);
            if status.as_u16() == 529 {
                e.status = StatusCode::SERVICE_UNAVAILABLE;
                e.kind = "overloaded_error";
            }
            return e;
        };
        let overloaded = status.as_u16() == 529 || upstream_type == Some("overloaded_error");
        let status = if overloaded {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            status
        };
        let kind = if overloaded {
            "overloaded_error"
        } else {
            upstream_type.unwrap_or_else(|| openai_kind(status))
        };
        let lower = message.to_ascii_lowercase();
        let context_window = status == StatusCode::BAD_REQUEST
            && (lower.contains("prompt is too long")
                || lower.contains("exceed context limit")
                || lower.contains("context window"));
        Self {
            status,
            message: message.into_owned(),
            kind,
            param: None,
            code: context_window.then_some("context_length_exceeded"),
            retry_after,
        }
    }

    /// A context-window error of the gateway's own making or a provider's.
    pub fn context_window(message: impl Into<String>) -> Self {
        Self {
            code: Some("context_length_exceeded"),
            ..Self::bad_request(message)
        }
    }

    /// True for errors that mean the prompt does not fit the model's context window.
    pub fn is_context_window(&self) -> bool {
        self.code == Some("context_length_exceeded")
    }

    /// True when another attempt (elsewhere, or later) may succeed: timeouts, conflicts,
    /// rate limits and server errors.
    pub fn is_retryable(&self) -> bool {
        matches!(self.status.as_u16(), 408 | 409 | 429) || self.status.is_server_error()
    }

    /// The error's type in Anthropic's vocabulary.
    pub fn anthropic_type(&self) -> &'static str {
        let known = ANTHROPIC_TYPES.iter().find(|k| **k == self.kind).copied();
        match (self.status.as_u16(), known) {
            (_, Some("overloaded_error")) | (529, _) => "overloaded_error",
            (401, _) => "authentication_error",
            (402, _) => "billing_error",
            (403, _) => "permission_error",
            (404, _) => "not_found_error",
            (413, _) => "request_too_large",
            (429, _) => "rate_limit_error",
            (408 | 504, _) => "timeout_error",
            (s, _) if s >= 500 => "api_error",
            (_, Some(t)) => t,
            _ => "invalid_request_error",
        }
    }

    /// The JSON body in `dialect`'s shape.
    pub fn to_json_as(&self, dialect: Dialect) -> Bytes {
        match dialect {
            Dialect::OpenAi => self.to_json(),
            Dialect::Anthropic => {
                let envelope = AnthropicEnvelope {
                    r#type: "error",
                    error: AnthropicInner {
                        r#type: self.anthropic_type(),
                        message: &self.message,
                    },
                };
                Bytes::from(serde_json::to_vec(&envelope).unwrap_or_default())
            }
        }
    }

    /// The JSON body.
    pub fn to_json(&self) -> Bytes {
        let envelope = Envelope {
            error: Inner {
                message: &self.message,
                r#type: self.kind,
                param: self.param.as_deref(),
                code: self.code,
            },
        };
        Bytes::from(serde_json::to_vec(&envelope).unwrap_or_default())
    }

    /// The response in OpenAI's shape.
    pub fn into_response(self) -> Response<Body> {
        self.into_response_as(Dialect::OpenAi)
    }

    /// The response in `dialect`'s shape: the one place an error becomes HTTP. An
    /// overloaded upstream is a 529 for Anthropic clients (their SDKs' `OverloadedError`).
    pub fn into_response_as(self, dialect: Dialect) -> Response<Body> {
        let mut resp = Response::new(full(self.to_json_as(dialect)));
        *resp.status_mut() = match dialect {
            Dialect::Anthropic if self.kind == "overloaded_error" => {
                StatusCode::from_u16(529).unwrap_or(self.status)
            }
            _ => self.status,
        };
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        // Every 429 says when to come back (1 s when nobody said).
        let retry_after = match (self.retry_after, self.status) {
            (Some(after), _) => Some(after),
            (None, StatusCode::TOO_MANY_REQUESTS) => Some(Duration::from_secs(1)),
            (None, _) => None,
        };
        if let Some(after) = retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                headers.insert(header::RETRY_AFTER, v);
            }
        }
        // The server does not read the rest of an oversized body; say the connection ends
        // so that clients do not reuse it.
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// OpenAI's error type for an upstream status.
fn openai_kind(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 404 | 409 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        408 | 504 => "timeout",
        429 => "rate_limit_error",
        _ => "upstream_error",
    }
}

/// Error codes worth keeping from an upstream (a fixed set, so that a code never echoes
/// arbitrary upstream text into a `&'static str`).
fn known_code(code: &str) -> Option<&'static str> {
    const CODES: [&str; 6] = [
        "context_length_exceeded",
        "invalid_api_key",
        "model_not_found",
        "rate_limit_exceeded",
        "insufficient_quota",
        "content_filter",
    ];
    CODES.iter().find(|c| **c == code).copied()
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.kind,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_shape() {
        let e = ApiError::model_not_found("nope");
        let v: serde_json::Value = serde_json::from_slice(&e.to_json()).expect("json");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["param"], "model");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("nope"))
        );
        let resp =
            ApiError::rate_limited("slow down", Some(Duration::from_millis(1500))).into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
    }

    #[test]
    fn upstream_errors_keep_message_and_known_codes() {
        let body = br#"{"error":{"message":"This model's maximum context length is 8192 tokens","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
        let e = ApiError::from_upstream(StatusCode::BAD_REQUEST, body, None);
        assert!(e.is_context_window());
        assert_eq!(e.param.as_deref(), Some("messages"));
        let e = ApiError::from_upstream(StatusCode::BAD_GATEWAY, b"<html>oops</html>", None);
        assert_eq!(e.message, "<html>oops</html>");
        assert_eq!(e.code, None);
    }

    #[test]
    fn anthropic_errors() {
        let body = |t: &str, m: &str| {
            format!(r#"{{"type":"error","error":{{"type":"{t}","message":"{m}"}}}}"#)
        };
        let e = ApiError::from_anthropic(
            StatusCode::from_u16(529).expect("529"),
            body("overloaded_error", "Overloaded").as_bytes(),
            None,
        );
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(e.is_retryable());
        assert_eq!(e.message, "Overloaded");
        let resp = e.clone().into_response_as(Dialect::Anthropic);
        assert_eq!(resp.status().as_u16(), 529);
        let v: serde_json::Value =
            serde_json::from_slice(&e.to_json_as(Dialect::Anthropic)).expect("json");
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "overloaded_error");
        let e = ApiError::from_anthropic(
            StatusCode::BAD_REQUEST,
            body(
                "invalid_request_error",
                "prompt is too long: 208310 tokens > 200000 maximum",
            )
            .as_bytes(),
            None,
        );
        assert!(e.is_context_window());
        assert!(!e.is_retryable());
        let e = ApiError::from_anthropic(
            StatusCode::TOO_MANY_REQUESTS,
            body("rate_limit_error", "slow down").as_bytes(),
            Some(Duration::from_secs(7)),
        );
        assert_eq!(e.kind, "rate_limit_error");
        assert_eq!(e.into_response().headers()[header::RETRY_AFTER], "7");
        assert_eq!(
            ApiError::model_not_found("x").anthropic_type(),
            "not_found_error"
        );
        assert_eq!(ApiError::timeout("x").anthropic_type(), "timeout_error");
    }
}
