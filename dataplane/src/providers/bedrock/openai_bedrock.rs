//! The Bedrock provider adapter: a deployment's endpoint, region and credentials
//! ([`Bedrock`]), and the translation leg OpenAI chat → Converse ([`OpenAiToBedrock`], the
//! static [`super::OPENAI_TO_BEDROCK`]): Converse for whole answers, ConverseStream (the
//! binary event-stream framing) for streams, Bedrock's errors to OpenAI-shaped ones. The
//! translations themselves are the pure functions of [`super::converse`].

use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::Full;
use modelgate_dataplane_api::{Deployment, RoutingTable};

use super::Credentials;
use super::converse::{self, StreamDecoder};
use crate::errors::ApiError;
use crate::providers::gemini::openai_gemini::chat_options;
use crate::providers::gemini::shared;
use crate::providers::{
    Endpoint, RequestContext, ResponseContext, StreamTranslator, Translated, Translator,
};

/// A Bedrock deployment's endpoint and credentials.
#[derive(Clone, Debug)]
pub struct Bedrock {
    /// Bedrock Runtime base without a trailing slash.
    pub base: String,
    /// The AWS region (the signing scope).
    pub region: String,
    /// The keys requests are signed with; `None` when the deployment names none (every
    /// request then fails with a clear error).
    pub credentials: Option<Credentials>,
}

impl Bedrock {
    /// From the table entry: the region from `upstream.region` (required), the base from
    /// `upstream.apiBase` else the region's endpoint, the keys from the credentials'
    /// `accessKeyId`, `secretAccessKey` and optional `sessionToken`. `None` without a
    /// region.
    pub fn from_deployment(d: &Deployment, table: &RoutingTable) -> Option<Bedrock> {
        let region = d.region.clone().filter(|r| !r.is_empty())?;
        let base = match &d.api_base {
            Some(b) => b.trim_end_matches('/').to_owned(),
            None => super::default_base(&region),
        };
        let credentials = d.credentials.as_ref().and_then(|c| {
            let value = |key: Option<&str>| {
                key.and_then(|k| table.credential_value(c, k))
                    .map(|v| v.expose().to_owned())
            };
            let id = value(c.access_key_id.as_deref())?;
            let secret = value(c.secret_access_key.as_deref())?;
            Some(Credentials::new(
                id,
                secret,
                value(c.session_token.as_deref()),
            ))
        });
        Some(Bedrock {
            base,
            region,
            credentials,
        })
    }

    /// The signed Converse (or, when `stream`, ConverseStream) request of `model_id` with
    /// `body` (already Converse's) and the deployment's `extra` headers, signed last.
    pub fn request(
        &self,
        model_id: &str,
        stream: bool,
        body: Bytes,
        extra: &HeaderMap,
    ) -> Result<Request<Full<Bytes>>, ApiError> {
        let credentials = self.credentials.as_ref().ok_or_else(|| {
            ApiError::internal(
                "the Bedrock deployment has no AWS credentials (accessKeyId and secretAccessKey)",
            )
        })?;
        super::http_request_with_headers(
            &self.base,
            &self.region,
            credentials,
            model_id,
            stream,
            body,
            extra,
            SystemTime::now(),
        )
    }
}

/// OpenAI chat completions → Bedrock Converse.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenAiToBedrock;

impl Translator for OpenAiToBedrock {
    fn request(&self, cx: &RequestContext<'_>, body: &Bytes) -> Result<Translated, ApiError> {
        if cx.endpoint != Endpoint::Chat {
            return Err(ApiError::bad_request(format!(
                "`{}` is a Bedrock Converse deployment: it serves chat completions only",
                cx.requested_model
            )));
        }
        let parsed = shared::parse_chat(body)?;
        let t = converse::chat_request(&parsed, &chat_options(cx))?;
        if !t.dropped.is_empty() {
            tracing::debug!(dropped = ?t.dropped, "dropped parameters Bedrock cannot take");
        }
        let mut out = Vec::with_capacity(body.len());
        serde_json::to_writer(&mut out, &t.body)
            .map_err(|e| ApiError::internal(format!("cannot write the Converse request: {e}")))?;
        Ok(Translated {
            body: Bytes::from(out),
            context: ResponseContext {
                include_usage: shared::include_usage(&parsed),
                created: shared::now_secs(),
                model: cx.requested_model.to_owned(),
                ..ResponseContext::default()
            },
        })
    }

    fn response(&self, cx: &ResponseContext, body: Bytes) -> Result<Bytes, ApiError> {
        Ok(Bytes::from(converse::chat_response(
            &body, &cx.model, cx.created,
        )?))
    }

    fn stream(&self, cx: &ResponseContext) -> Box<dyn StreamTranslator> {
        Box::new(BedrockStream {
            decoder: StreamDecoder::new(&cx.model, cx.include_usage),
        })
    }

    fn error(
        &self,
        status: StatusCode,
        headers: &http::HeaderMap,
        body: &[u8],
        retry_after: Option<Duration>,
    ) -> ApiError {
        converse::error(status, body, converse::error_type(headers), retry_after)
    }
}

/// One ConverseStream to OpenAI chunks (the role chunk held back until the next one:
/// [`converse::ChunkTranslator`]).
struct BedrockStream {
    decoder: StreamDecoder,
}

impl StreamTranslator for BedrockStream {
    fn feed(&mut self, bytes: &[u8], out: &mut BytesMut) -> Result<(), ApiError> {
        self.decoder.feed(bytes, out).map_err(|e| e.to_api_error())
    }

    fn finish(&mut self, out: &mut BytesMut) -> Result<(), ApiError> {
        self.decoder.finish(out).map_err(|e| e.to_api_error())?;
        crate::sse::write_done(out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::bedrock::{SERVICE, sigv4};
    use http::HeaderValue;

    fn bedrock() -> Bedrock {
        Bedrock {
            base: "http://127.0.0.1:9".to_owned(),
            region: "eu-west-3".to_owned(),
            credentials: Some(Credentials::new("AKID", "secret", Some("tok".to_owned()))),
        }
    }

    #[test]
    fn extra_headers_are_signed_and_cannot_replace_the_signing_ones() {
        let mut extra = HeaderMap::new();
        extra.insert("x-team", HeaderValue::from_static("search"));
        extra.insert("x-amz-date", HeaderValue::from_static("19990101T000000Z"));
        extra.insert("content-type", HeaderValue::from_static("text/plain"));
        let req = bedrock()
            .request("m:1", true, Bytes::from_static(b"{}"), &extra)
            .expect("request");
        assert_eq!(req.uri(), "http://127.0.0.1:9/model/m%3A1/converse-stream");
        let (parts, _) = req.into_parts();
        assert_eq!(parts.headers["x-team"], "search");
        assert_eq!(parts.headers["content-type"], "application/json");
        assert_ne!(parts.headers["x-amz-date"], "19990101T000000Z");
        let auth = parts.headers["authorization"].to_str().unwrap_or("");
        assert!(auth.contains("x-team"), "{auth}");
        sigv4::verify(
            &parts,
            b"{}",
            &Credentials::new("AKID", "secret", Some("tok".to_owned())),
            "eu-west-3",
            SERVICE,
            sigv4::Settings::default(),
        )
        .expect("verifies");
    }

    #[test]
    fn no_credentials_is_a_clear_error() {
        let b = Bedrock {
            credentials: None,
            ..bedrock()
        };
        let e = b
            .request("m", false, Bytes::new(), &HeaderMap::new())
            .expect_err("no keys");
        assert!(e.message.contains("AWS credentials"), "{}", e.message);
    }

    #[test]
    fn the_role_chunk_is_held_until_the_next_one() {
        let mut s = OpenAiToBedrock.stream(&ResponseContext::default());
        let mut out = BytesMut::new();
        let start = super::super::eventstream::encode(&super::super::eventstream::Message::event(
            "messageStart",
            r#"{"role":"assistant"}"#,
        ))
        .expect("encode");
        s.feed(&start, &mut out).expect("feed");
        assert!(out.is_empty(), "held back");
        let delta = super::super::eventstream::encode(&super::super::eventstream::Message::event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"hi"}}"#,
        ))
        .expect("encode");
        s.feed(&delta, &mut out).expect("feed");
        let text = String::from_utf8_lossy(&out);
        assert_eq!(text.matches("data: ").count(), 2, "{text}");
        assert!(text.find("assistant") < text.find("hi"), "{text}");
    }
}
