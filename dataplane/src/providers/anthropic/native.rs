//! `/v1/messages` to an Anthropic deployment: nothing to translate. The body goes as it
//! came (only `model` is rewritten when the upstream's id differs), the answer and the
//! stream come back as they are. The stream is still read event by event, so that an
//! `error` event before anything reached the client is retried like an error status,
//! a later one counts as the deployment's failure, and a stream cut before
//! `message_stop` is reported rather than passed off as complete.

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use serde_json::Value;

use super::now_secs;
use super::openai_anthropic::error_event;
use crate::errors::ApiError;
use crate::providers::{RequestContext, ResponseContext, StreamTranslator, Translated, Translator};
use crate::sse;

/// The native pass-through leg.
#[derive(Debug, Clone, Copy, Default)]
pub struct Native;

impl Translator for Native {
    fn request(&self, cx: &RequestContext<'_>, body: &Bytes) -> Result<Translated, ApiError> {
        let body = if cx.requested_model == cx.upstream_model {
            body.clone()
        } else {
            let mut v: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
            let Some(object) = v.as_object_mut() else {
                return Err(ApiError::bad_request(
                    "the request body must be a JSON object",
                ));
            };
            object.insert(
                "model".to_owned(),
                Value::String(cx.upstream_model.to_owned()),
            );
            Bytes::from(
                serde_json::to_vec(&v)
                    .map_err(|e| ApiError::internal(format!("cannot write the request: {e}")))?,
            )
        };
        Ok(Translated {
            body,
            context: ResponseContext {
                include_usage: false,
                created: now_secs(),
                ..ResponseContext::default()
            },
        })
    }

    fn response(&self, _cx: &ResponseContext, body: Bytes) -> Result<Bytes, ApiError> {
        Ok(body)
    }

    fn stream(&self, _cx: &ResponseContext) -> Box<dyn StreamTranslator> {
        Box::new(NativeStream::default())
    }

    fn error(
        &self,
        status: StatusCode,
        _headers: &http::HeaderMap,
        body: &[u8],
        retry_after: Option<std::time::Duration>,
    ) -> ApiError {
        ApiError::from_anthropic(status, body, retry_after)
    }
}

/// Passes Anthropic events through, watching for `error` and `message_stop`.
#[derive(Debug, Default)]
pub struct NativeStream {
    decoder: sse::Decoder,
    done: bool,
}

#[derive(serde::Deserialize)]
struct Peek<'a> {
    #[serde(borrow)]
    r#type: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    error: Option<super::wire::ErrorIn<'a>>,
}

impl NativeStream {
    fn event(&mut self, event: &sse::Event, out: &mut BytesMut) -> Result<(), ApiError> {
        let peek: Peek<'_> = serde_json::from_slice(&event.data).map_err(|e| {
            ApiError::bad_gateway(format!("unreadable Anthropic stream event: {e}"))
        })?;
        match peek.r#type.as_ref() {
            "error" => {
                let t = peek.error.as_ref().and_then(|e| e.r#type.as_deref());
                return Err(error_event(&event.data, t));
            }
            "message_stop" => self.done = true,
            _ => {}
        }
        let name = match event.name_str() {
            "" => peek.r#type.as_ref(),
            n => n,
        };
        sse::write_event(out, name, &event.data);
        Ok(())
    }
}

impl StreamTranslator for NativeStream {
    fn feed(&mut self, bytes: &[u8], out: &mut BytesMut) -> Result<(), ApiError> {
        if self.done {
            return Ok(());
        }
        self.decoder.push(bytes);
        while let Some(event) = self
            .decoder
            .next_event()
            .map_err(|e| ApiError::bad_gateway(e.to_string()))?
        {
            self.event(&event, out)?;
            if self.done {
                break;
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut BytesMut) -> Result<(), ApiError> {
        if !self.done
            && let Some(event) = self.decoder.finish()
        {
            self.event(&event, out)?;
        }
        if self.done {
            Ok(())
        } else {
            Err(ApiError::bad_gateway(
                "the Anthropic stream ended before message_stop",
            ))
        }
    }
}
