//! The Gemini provider adapter: a deployment's endpoint ([`Gemini`]) and the translation
//! leg OpenAI → Gemini ([`OpenAiToGemini`], the static [`super::OPENAI_TO_GEMINI`]):
//! chat completions to `generateContent` / `streamGenerateContent?alt=sse`, embeddings to
//! `embedContent` / `batchEmbedContents`, and Gemini's errors to OpenAI-shaped ones. The
//! translations themselves are the pure functions of [`super`].

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Request, StatusCode};
use http_body_util::Full;
use modelgate_dataplane_api::Deployment;
use serde_json::Value;

use super::shared::{self, ChatOptions};
use super::stream::StreamDecoder;
use super::{EmbeddingEncoding, Operation};
use crate::errors::ApiError;
use crate::providers::{
    Endpoint, RequestContext, ResponseContext, StreamTranslator, Translated, Translator,
};

/// A Gemini deployment's endpoint.
#[derive(Clone, Debug)]
pub struct Gemini {
    /// API base without a trailing slash (`…/v1beta`).
    pub base: String,
}

impl Gemini {
    /// From the table entry: `upstream.apiBase`, else Google's API.
    pub fn from_deployment(d: &Deployment) -> Gemini {
        let base = d.api_base.as_deref().unwrap_or(super::DEFAULT_BASE);
        Gemini {
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// `{base}/models` (the health probe; the key goes in a header).
    pub fn models_url(&self) -> String {
        format!("{}/models", self.base)
    }

    /// The upstream request for `endpoint` with `body` (already Gemini's), the method
    /// chosen by `stream` for chat and by the body's shape for embeddings (a batch is a
    /// `requests` list).
    pub fn request(
        &self,
        api_key: Option<&str>,
        endpoint: Endpoint,
        model: &str,
        stream: bool,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, ApiError> {
        let op = match endpoint {
            Endpoint::Embeddings if body.starts_with(b"{\"requests\"") => Operation::BatchEmbed,
            Endpoint::Embeddings => Operation::Embed,
            _ if stream => Operation::StreamGenerate,
            _ => Operation::Generate,
        };
        super::http_request(&self.base, api_key, model, op, body)
    }
}

/// OpenAI chat completions and embeddings → Gemini.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenAiToGemini;

fn parse(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

/// Writes a request body, with room for about `size_hint` bytes from the start.
fn write(value: &impl serde::Serialize, size_hint: usize) -> Result<Bytes, ApiError> {
    let mut out = Vec::with_capacity(size_hint);
    serde_json::to_writer(&mut out, value)
        .map_err(|e| ApiError::internal(format!("cannot write the Gemini request: {e}")))?;
    Ok(Bytes::from(out))
}

/// The translation options of a request context.
pub(crate) fn chat_options(cx: &RequestContext<'_>) -> ChatOptions {
    ChatOptions {
        drop_params: cx.drop_params,
        default_max_tokens: cx
            .deployment
            .model_info
            .max_output_tokens
            .and_then(|n| u32::try_from(n).ok()),
    }
}

impl Translator for OpenAiToGemini {
    fn request(&self, cx: &RequestContext<'_>, body: &Bytes) -> Result<Translated, ApiError> {
        let mut context = ResponseContext {
            created: shared::now_secs(),
            model: cx.requested_model.to_owned(),
            ..ResponseContext::default()
        };
        let body = match cx.endpoint {
            Endpoint::Chat => {
                let parsed = shared::parse_chat(body)?;
                let t = super::chat_request(&parsed, &chat_options(cx))?;
                if !t.dropped.is_empty() {
                    tracing::debug!(dropped = ?t.dropped, "dropped parameters Gemini cannot take");
                }
                context.include_usage = shared::include_usage(&parsed);
                write(&t.body, body.len())?
            }
            Endpoint::Embeddings => {
                let value = parse(body)?;
                context.base64 = EmbeddingEncoding::of(&value)? == EmbeddingEncoding::Base64;
                let r = super::embeddings_request(&value, cx.upstream_model)?;
                context.embeddings = true;
                context.batch = r.method() == Operation::BatchEmbed;
                Bytes::from(r.to_json().map_err(|e| {
                    ApiError::internal(format!("cannot write the Gemini request: {e}"))
                })?)
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "`{}` has no legacy completions on Gemini deployments: use chat completions",
                    cx.requested_model
                )));
            }
        };
        Ok(Translated { body, context })
    }

    fn response(&self, cx: &ResponseContext, body: Bytes) -> Result<Bytes, ApiError> {
        if !cx.embeddings {
            return Ok(Bytes::from(super::chat_response(
                &body, &cx.model, cx.created,
            )?));
        }
        let value = {
            let op = if cx.batch {
                Operation::BatchEmbed
            } else {
                Operation::Embed
            };
            let encoding = if cx.base64 {
                EmbeddingEncoding::Base64
            } else {
                EmbeddingEncoding::Float
            };
            super::embeddings_response(&body, op, &cx.model, encoding)?
        };
        serde_json::to_vec(&value)
            .map(Bytes::from)
            .map_err(|e| ApiError::internal(format!("cannot write the answer: {e}")))
    }

    fn stream(&self, cx: &ResponseContext) -> Box<dyn StreamTranslator> {
        Box::new(GeminiStream {
            decoder: StreamDecoder::new(&cx.model, cx.include_usage),
        })
    }

    fn error(
        &self,
        status: StatusCode,
        _headers: &http::HeaderMap,
        body: &[u8],
        retry_after: Option<Duration>,
    ) -> ApiError {
        super::error(status, body, retry_after)
    }
}

/// One Gemini SSE stream to OpenAI chunks.
struct GeminiStream {
    decoder: StreamDecoder,
}

impl StreamTranslator for GeminiStream {
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

    #[test]
    fn the_operation_follows_the_stream_flag_and_the_body() {
        let g = Gemini {
            base: "https://g.example/v1beta".to_owned(),
        };
        let uri = |endpoint, stream, body: &'static [u8]| {
            g.request(
                Some("k"),
                endpoint,
                "gemini-2.5-flash",
                stream,
                Bytes::from_static(body),
            )
            .map(|r| r.uri().to_string())
            .unwrap_or_default()
        };
        assert_eq!(
            uri(Endpoint::Chat, false, b"{}"),
            "https://g.example/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            uri(Endpoint::Chat, true, b"{}"),
            "https://g.example/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            uri(Endpoint::Embeddings, false, b"{\"content\":{}}"),
            "https://g.example/v1beta/models/gemini-2.5-flash:embedContent"
        );
        assert_eq!(
            uri(Endpoint::Embeddings, false, b"{\"requests\":[]}"),
            "https://g.example/v1beta/models/gemini-2.5-flash:batchEmbedContents"
        );
        let req = g
            .request(Some("k"), Endpoint::Chat, "m", false, Bytes::new())
            .expect("request");
        assert_eq!(req.headers()["x-goog-api-key"], "k");
        assert!(req.headers()["x-goog-api-key"].is_sensitive());
    }
}
