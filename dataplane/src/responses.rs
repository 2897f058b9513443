//! OpenAI's Responses API (`/v1/responses`) with session affinity.
//!
//! Responses are stateful upstream: a follow-up naming `previous_response_id`, and
//! `GET`/`DELETE /v1/responses/{id}`, only make sense on the deployment that stored the
//! response. So the ids clients see say which deployment served them:
//!
//! ```text
//! resp_mg_<base64url(deployment id, no padding)>.<upstream id>
//! ```
//!
//! (base64url has no `.`, so the first `.` after the prefix splits the two; the id holds
//! the deployment's table id, never a key or a URL). Answers and stream events have their
//! response id rewritten into this form ([`rewrite_answer`], [`IdRewriter`]); requests
//! carrying one are decoded ([`pin`], [`by_id`]), sent to that deployment only, with the
//! upstream's own id restored. An id in another form is a 400; an id whose deployment is
//! no longer in the table is a 404 `response_not_found` — never a random route.
//!
//! Only OpenAI, OpenAI-compatible and Azure deployments serve this endpoint
//! ([`crate::providers::Provider::serves`]); the body passes through untouched but for
//! `model` and `previous_response_id`.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use crate::body::{Body, full};
use crate::client::HttpClient;
use crate::errors::ApiError;
use crate::providers::{Provider, StreamTranslator, percent_encode};
use crate::router::Router;
use crate::sse;

/// The prefix of every response id the gateway hands out.
const PREFIX: &str = "resp_mg_";
/// Longest answer read for `GET /v1/responses/{id}`.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// The id a client sees for response `upstream_id` of deployment `deployment`.
pub fn encode_id(deployment: &str, upstream_id: &str) -> String {
    format!(
        "{PREFIX}{}.{upstream_id}",
        URL_SAFE_NO_PAD.encode(deployment)
    )
}

/// The deployment id and upstream id inside a gateway response id (400 when it is not one).
pub fn decode_id(id: &str) -> Result<(String, String), ApiError> {
    let Some(rest) = id.strip_prefix(PREFIX) else {
        return Err(ApiError::invalid_param(
            "previous_response_id",
            format!(
                "`{id}` is not a response id issued by this gateway (they start with `{PREFIX}`): \
                 pass the `id` the gateway returned, not the upstream's"
            ),
        ));
    };
    let malformed = || {
        ApiError::invalid_param(
            "previous_response_id",
            format!("`{id}` is a malformed gateway response id"),
        )
    };
    let (deployment, upstream) = rest.split_once('.').ok_or_else(malformed)?;
    if upstream.is_empty() {
        return Err(malformed());
    }
    let deployment = URL_SAFE_NO_PAD
        .decode(deployment)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|d| !d.is_empty())
        .ok_or_else(malformed)?;
    Ok((deployment, upstream.to_owned()))
}

/// The target index serving response `id`, and the upstream's id.
pub fn resolve(router: &Router, id: &str) -> Result<(usize, String), ApiError> {
    let (deployment, upstream) = decode_id(id)?;
    match router.targets.iter().position(|t| t.spec.id == deployment) {
        Some(t) => Ok((t, upstream)),
        None => {
            let mut e = ApiError::bad_request(format!(
                "response {id} was served by deployment {deployment}, which no longer exists"
            ));
            e.status = StatusCode::NOT_FOUND;
            e.code = Some("response_not_found");
            Err(e)
        }
    }
}

/// For a `POST /v1/responses` continuing a session (`previous_response_id`): the target
/// that must serve it and the body to forward (with the upstream's id restored). `None`
/// when the request starts a new session.
pub fn pin(router: &Router, body: &Bytes) -> Result<Option<(usize, Bytes)>, ApiError> {
    // Cheap check first: most requests carry no previous id and are never parsed twice.
    if !body
        .windows(b"previous_response_id".len())
        .any(|w| w == b"previous_response_id")
    {
        return Ok(None);
    }
    let mut value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let Some(object) = value.as_object_mut() else {
        return Ok(None);
    };
    let id = match object.get("previous_response_id") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(ApiError::invalid_param(
                "previous_response_id",
                "`previous_response_id` must be a string",
            ));
        }
    };
    let (t, upstream) = resolve(router, &id)?;
    object.insert("previous_response_id".to_owned(), Value::String(upstream));
    let body = serde_json::to_vec(&value)
        .map_err(|e| ApiError::internal(format!("cannot write the request body: {e}")))?;
    Ok(Some((t, Bytes::from(body))))
}

/// A whole answer with its top-level `id` in the gateway's form (an answer that is not
/// a JSON object, or has no string `id`, goes as it came).
pub fn rewrite_answer(deployment: &str, bytes: Bytes) -> Bytes {
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return bytes;
    };
    let Some(Value::String(id)) = value.get_mut("id") else {
        return bytes;
    };
    *id = encode_id(deployment, id);
    serde_json::to_vec(&value).map_or(bytes, Bytes::from)
}

/// Rewrites the response id in a Responses stream (`response.created`,
/// `response.in_progress`, `response.completed`, … carry it as `response.id`), event by
/// event; every other event, and the `event:` names, go as they came.
#[derive(Debug)]
pub struct IdRewriter {
    deployment: String,
    decoder: sse::Decoder,
}

impl IdRewriter {
    /// A rewriter for a stream of `deployment`.
    pub fn new(deployment: &str) -> Self {
        Self {
            deployment: deployment.to_owned(),
            decoder: sse::Decoder::new(sse::MAX_EVENT_BYTES),
        }
    }

    fn write(&self, event: sse::Event, out: &mut BytesMut) {
        let mut data = event.data.clone();
        if data.windows(11).any(|w| w == b"\"response\":")
            && let Ok(mut value) = serde_json::from_slice::<Value>(&data)
            && let Some(Value::String(id)) = value.pointer_mut("/response/id")
        {
            *id = encode_id(&self.deployment, id);
            if let Ok(v) = serde_json::to_vec(&value) {
                data = Bytes::from(v);
            }
        }
        match &event.name {
            Some(_) => sse::write_event(out, event.name_str(), &data),
            None => sse::write_data(out, &data),
        }
    }
}

impl StreamTranslator for IdRewriter {
    fn feed(&mut self, bytes: &[u8], out: &mut BytesMut) -> Result<(), ApiError> {
        self.decoder.push(bytes);
        while let Some(event) = self
            .decoder
            .next_event()
            .map_err(|e| ApiError::bad_gateway(e.to_string()))?
        {
            self.write(event, out);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut BytesMut) -> Result<(), ApiError> {
        if let Some(event) = self.decoder.finish() {
            self.write(event, out);
        }
        Ok(())
    }
}

/// `GET`/`DELETE /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`,
/// `POST /v1/responses/{id}/cancel`: sent to the deployment the id names, whatever its
/// health (no other deployment holds the response). `rest` is the path after
/// `/responses/`; `query` the client's query string.
pub async fn by_id(
    router: &Router,
    client: &HttpClient,
    method: &Method,
    rest: &str,
    query: Option<&str>,
) -> (Response<Body>, Option<String>) {
    let (id, suffix) = match rest.split_once('/') {
        Some((id, s)) => (id, Some(s)),
        None => (rest, None),
    };
    let allowed = matches!(
        (method, suffix),
        (&Method::GET | &Method::DELETE, None)
            | (&Method::GET, Some("input_items"))
            | (&Method::POST, Some("cancel"))
    );
    if !allowed {
        return (
            ApiError::method_not_allowed(method, &format!("/v1/responses/{rest}")).into_response(),
            None,
        );
    }
    let (t, upstream) = match resolve(router, id) {
        Ok(r) => r,
        Err(e) => return (e.into_response(), None),
    };
    let target = &router.targets[t];
    let d = &target.spec;
    let key = target.api_key.as_ref().map(|k| k.expose());
    let tail = match suffix {
        Some(s) => format!("/{s}"),
        None => String::new(),
    };
    let uri = match &target.provider {
        Provider::OpenAi { base } => {
            let q = query.map(|q| format!("?{q}")).unwrap_or_default();
            format!("{base}/responses/{}{tail}{q}", percent_encode(&upstream))
        }
        Provider::Azure { base, api_version } => {
            let q = query.map(|q| format!("&{q}")).unwrap_or_default();
            format!(
                "{base}/openai/responses/{}{tail}?api-version={}{q}",
                percent_encode(&upstream),
                percent_encode(api_version)
            )
        }
        _ => {
            return (
                ApiError::bad_request(format!(
                    "deployment {} does not serve the Responses API",
                    d.id
                ))
                .into_response(),
                Some(d.id.clone()),
            );
        }
    };
    let mut builder = Request::builder().method(method.clone()).uri(uri);
    if let Some(key) = key {
        let value = match &target.provider {
            Provider::Azure { .. } => HeaderValue::from_str(key).map(|v| ("api-key", v)),
            _ => HeaderValue::from_str(&format!("Bearer {key}"))
                .map(|v| (header::AUTHORIZATION.as_str(), v)),
        };
        match value {
            Ok((name, mut v)) => {
                v.set_sensitive(true);
                builder = builder.header(name, v);
            }
            Err(_) => {
                return (
                    ApiError::internal("the deployment's API key is not a valid header value")
                        .into_response(),
                    Some(d.id.clone()),
                );
            }
        }
    }
    for h in &d.headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_str(&h.value),
        ) {
            builder = builder.header(name, value);
        }
    }
    let req = match builder.body(Full::new(Bytes::new())) {
        Ok(r) => r,
        Err(e) => {
            return (
                ApiError::internal(format!("cannot build the upstream request: {e}"))
                    .into_response(),
                Some(d.id.clone()),
            );
        }
    };
    let timeout = Duration::from_millis(d.timeouts.request_ms);
    let exchange = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| ApiError::bad_gateway(format!("upstream connection failed: {e}")))?;
        let (parts, body) = resp.into_parts();
        let bytes = http_body_util::Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| ApiError::bad_gateway(format!("upstream body failed: {e}")))?;
        Ok::<_, ApiError>((parts, bytes))
    };
    let response = match tokio::time::timeout(timeout, exchange).await {
        Err(_) => ApiError::timeout(format!(
            "deployment {} did not answer within {}ms",
            d.id, d.timeouts.request_ms
        ))
        .into_response(),
        Ok(Err(e)) => e.into_response(),
        Ok(Ok((parts, bytes))) if !parts.status.is_success() => {
            ApiError::from_upstream(parts.status, &bytes, None).into_response()
        }
        Ok(Ok((_, bytes))) => {
            // input_items lists items, whose ids are not response ids.
            let bytes = if suffix.is_none() || suffix == Some("cancel") {
                rewrite_answer(&d.id, bytes)
            } else {
                bytes
            };
            let mut resp = Response::new(full(bytes));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
    };
    (response, Some(d.id.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        let id = encode_id("ns/openai-0_a.b", "resp_123.x");
        assert!(id.starts_with(PREFIX));
        let (d, u) = decode_id(&id).expect("decodes");
        assert_eq!(d, "ns/openai-0_a.b");
        assert_eq!(u, "resp_123.x");
    }

    #[test]
    fn foreign_and_malformed_ids_are_400() {
        assert_eq!(
            decode_id("resp_abc").expect_err("foreign").status,
            StatusCode::BAD_REQUEST
        );
        assert!(decode_id("resp_mg_!!!.x").is_err());
        assert!(decode_id("resp_mg_YQ").is_err());
    }

    #[test]
    fn stream_ids_are_rewritten_event_by_event() {
        let mut r = IdRewriter::new("d1");
        let mut out = BytesMut::new();
        let input = b"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\"}}\n\nevent: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}\n\n";
        r.feed(&input[..30], &mut out).expect("feed");
        r.feed(&input[30..], &mut out).expect("feed");
        r.finish(&mut out).expect("finish");
        let text = String::from_utf8(out.to_vec()).expect("utf8");
        assert!(text.contains(&encode_id("d1", "resp_1")), "{text}");
        assert!(
            text.contains("event: response.output_text.delta\n"),
            "{text}"
        );
        assert!(text.contains("\"delta\":\"hi\""), "{text}");
    }
}
