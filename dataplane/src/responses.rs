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
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use crate::body::{Body, full};
use crate::client::HttpClient;
use crate::errors::ApiError;
use crate::headers::RawHeaders;
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

/// A `POST /v1/responses` continuing a session, pinned to the deployment holding it.
#[derive(Debug, Clone)]
pub struct Pinned {
    /// The target that must serve it.
    pub target: usize,
    /// The model the request's `model` asks of the target's group (for wildcards and
    /// `upstream.model`, as on any route to it).
    pub group_model: String,
    /// The body to forward, with the upstream's own response id restored.
    pub body: Bytes,
}

/// The wait before trying a deployment again: what it asked for (`Retry-After`), else
/// 50 to 150 ms, at most 5 s. The rule of every retry on one deployment.
pub fn backoff(retry_after: Option<Duration>) -> Duration {
    retry_after
        .unwrap_or_else(|| Duration::from_millis(50 + fastrand::u64(..100)))
        .min(Duration::from_secs(5))
}

/// For a `POST /v1/responses` of `model` continuing a session (`previous_response_id`):
/// where it must go. `None` when the request starts a new session.
///
/// The response's deployment must be one `model` reaches: through its group or alias,
/// their fallbacks or context-window fallbacks (any route the first request could have
/// taken). A follow-up naming a model that cannot reach it is a 400 naming both, rather
/// than an answer from a model the client did not ask for; an unknown `model` is the
/// usual 404.
pub fn pin(router: &Router, body: &Bytes, model: &str) -> Result<Option<Pinned>, ApiError> {
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
    let group_model = reaching(router, t, model, &id)?;
    object.insert("previous_response_id".to_owned(), Value::String(upstream));
    let body = serde_json::to_vec(&value)
        .map_err(|e| ApiError::internal(format!("cannot write the request body: {e}")))?;
    Ok(Some(Pinned {
        target: t,
        group_model,
        body: Bytes::from(body),
    }))
}

/// The model `model` asks of target `t`'s group on some route of `model` (the request's
/// plan, then the context-window fallbacks of `model` and of every planned group); a 400
/// naming the model and the deployment when none reaches it.
fn reaching(router: &Router, t: usize, model: &str, id: &str) -> Result<String, ApiError> {
    let mut steps = crate::proxy::plan(router, model)?;
    let settings = router.settings();
    let mut names = vec![model];
    names.extend(steps.iter().map(|(g, _)| router.groups[*g].name.as_str()));
    let mut more = crate::proxy::Steps::new();
    for name in names {
        for f in settings
            .context_window_fallbacks
            .get(name)
            .into_iter()
            .flatten()
        {
            if let Some(route) = router.route(f) {
                crate::proxy::expand(router, route, &mut more, 0);
            }
        }
    }
    steps.extend(more);
    if let Some((_, m)) = steps
        .into_iter()
        .find(|(g, _)| router.groups[*g].members.contains(&t))
    {
        return Ok(m.to_owned());
    }
    let deployment = &router.targets[t].spec;
    let groups: Vec<&str> = router
        .groups
        .iter()
        .filter(|g| g.members.contains(&t))
        .map(|g| g.name.as_str())
        .collect();
    let served_as = match groups.as_slice() {
        [] => String::new(),
        [one] => format!(" (model `{one}`)"),
        many => format!(" (models `{}`)", many.join("`, `")),
    };
    Err(ApiError::invalid_param(
        "model",
        format!(
            "`previous_response_id` {id} names a response stored by deployment {}{served_as}, \
             which model `{model}` does not route to: continue the session with a model that \
             reaches that deployment, or start a new one without `previous_response_id`",
            deployment.id
        ),
    ))
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
///
/// It also follows the events' `sequence_number`s, so that a failure after the first
/// byte ends the stream with the Responses API's own `error` event, numbered next
/// ([`StreamTranslator::error_event`]), not the chat completions' error chunk.
#[derive(Debug)]
pub struct IdRewriter {
    deployment: String,
    decoder: sse::Decoder,
    /// The highest `sequence_number` passed on.
    last_sequence: Option<u64>,
}

/// The one field of a stream event read to number an error event after it.
#[derive(serde::Deserialize)]
struct Sequenced {
    #[serde(default)]
    sequence_number: Option<u64>,
}

impl IdRewriter {
    /// A rewriter for a stream of `deployment`.
    pub fn new(deployment: &str) -> Self {
        Self {
            deployment: deployment.to_owned(),
            decoder: sse::Decoder::new(sse::MAX_EVENT_BYTES),
            last_sequence: None,
        }
    }

    fn write(&mut self, event: sse::Event, out: &mut BytesMut) {
        if event.data.windows(15).any(|w| w == b"sequence_number")
            && let Ok(Sequenced {
                sequence_number: Some(n),
            }) = serde_json::from_slice(&event.data)
        {
            self.last_sequence = Some(self.last_sequence.map_or(n, |last| last.max(n)));
        }
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

    fn error_event(&mut self, error: &ApiError, out: &mut BytesMut) -> bool {
        let sequence_number = self.last_sequence.map_or(0, |n| n.saturating_add(1));
        self.last_sequence = Some(sequence_number);
        let event = ErrorEvent {
            kind: "error",
            code: error.code.unwrap_or(error.kind),
            message: &error.message,
            param: error.param.as_deref(),
            sequence_number,
        };
        match serde_json::to_vec(&event) {
            Ok(json) => {
                sse::write_event(out, "error", &json);
                true
            }
            Err(_) => false,
        }
    }
}

/// The Responses API's stream `error` event.
#[derive(serde::Serialize)]
struct ErrorEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    code: &'a str,
    message: &'a str,
    param: Option<&'a str>,
    sequence_number: u64,
}

/// `GET`/`DELETE /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`,
/// `POST /v1/responses/{id}/cancel`: sent to the deployment the id names, whatever its
/// health (no other deployment holds the response). `rest` is the path after
/// `/responses/`; `query` the client's query string; `client_headers` the client's
/// request headers (W3C trace context passes through, as on every upstream call).
///
/// Retried as any call pinned to one deployment is: up to `1 + retries` attempts on
/// connection failures, timeouts, 408, 429 and 5xx, waiting [`backoff`] between them
/// (the upstream's `Retry-After` when it gave one); those failures count towards the
/// deployment's cooldown. Client errors (404 for a response the upstream forgot, 401, …)
/// return at once.
pub async fn by_id(
    router: &Router,
    client: &HttpClient,
    method: &Method,
    rest: &str,
    query: Option<&str>,
    client_headers: &RawHeaders,
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
    let answered = |response: Response<Body>| (response, Some(d.id.clone()));
    let tail = match suffix {
        Some(s) => format!("/{s}"),
        None => String::new(),
    };
    let uri = match &target.provider {
        Provider::OpenAi { base, .. } => {
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
            return answered(
                ApiError::bad_request(format!(
                    "deployment {} does not serve the Responses API",
                    d.id
                ))
                .into_response(),
            );
        }
    };
    let mut headers = HeaderMap::new();
    if let Some(key) = target.api_key.as_ref().map(|k| k.expose()) {
        let value =
            match &target.provider {
                Provider::Azure { .. } => HeaderValue::from_str(key)
                    .map(|v| (header::HeaderName::from_static("api-key"), v)),
                _ => HeaderValue::from_str(&format!("Bearer {key}"))
                    .map(|v| (header::AUTHORIZATION, v)),
            };
        match value {
            Ok((name, mut v)) => {
                v.set_sensitive(true);
                headers.insert(name, v);
            }
            Err(_) => {
                return answered(
                    ApiError::internal("the deployment's API key is not a valid header value")
                        .into_response(),
                );
            }
        }
    }
    for h in &d.headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_str(&h.value),
        ) {
            headers.insert(name, value);
        }
    }
    crate::providers::trace_headers(client_headers, &mut headers);
    let timeout = Duration::from_millis(d.timeouts.request_ms);
    let cooldown = &router.settings().cooldown;
    let mut attempts = 0u32;
    let mut last: Option<ApiError> = None;
    let error = loop {
        if attempts > 0 {
            tokio::time::sleep(backoff(last.as_ref().and_then(|e| e.retry_after))).await;
        }
        attempts += 1;
        let mut req = match Request::builder()
            .method(method.clone())
            .uri(uri.as_str())
            .body(Full::new(Bytes::new()))
        {
            Ok(r) => r,
            Err(e) => {
                break ApiError::internal(format!("cannot build the upstream request: {e}"));
            }
        };
        req.headers_mut().extend(headers.clone());
        let exchange = async {
            let resp = client
                .request(req)
                .await
                .map_err(|e| ApiError::bad_gateway(format!("upstream connection failed: {e}")))?;
            let (status, headers) = (resp.status, resp.headers);
            let bytes = http_body_util::Limited::new(resp.body, MAX_BODY)
                .collect()
                .await
                .map(|c| c.to_bytes())
                .map_err(|e| ApiError::bad_gateway(format!("upstream body failed: {e}")))?;
            Ok::<_, ApiError>((status, headers, bytes))
        };
        let error = match tokio::time::timeout(timeout, exchange).await {
            Err(_) => ApiError::timeout(format!(
                "deployment {} did not answer within {}ms",
                d.id, d.timeouts.request_ms
            )),
            Ok(Err(e)) => e,
            Ok(Ok((status, headers, bytes))) if !status.is_success() => ApiError::from_upstream(
                status,
                &bytes,
                crate::proxy::retry_after(&headers.to_map()),
            ),
            Ok(Ok((_, _, bytes))) => {
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
                return answered(resp);
            }
        };
        if !error.is_retryable() {
            break error;
        }
        target.state.record_failure(
            std::time::Instant::now(),
            cooldown.allowed_fails,
            Duration::from_millis(cooldown.cooldown_ms),
        );
        if attempts > d.retries {
            break error;
        }
        tracing::warn!(
            deployment = %d.id,
            status = error.status.as_u16(),
            "{method} /v1/responses/{{id}} attempt failed: {}", error.message
        );
        last = Some(error);
    };
    answered(error.into_response())
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
    fn a_failure_ends_the_stream_with_a_numbered_error_event() {
        let mut r = IdRewriter::new("d1");
        let mut out = BytesMut::new();
        let input = b"event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\"}}\n\nevent: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":4,\"delta\":\"hi\"}\n\n";
        r.feed(input, &mut out).expect("feed");
        out.clear();
        let error = ApiError::bad_gateway("deployment d1 failed mid-stream");
        assert!(r.error_event(&error, &mut out));
        let text = String::from_utf8(out.to_vec()).expect("utf8");
        let data = text
            .strip_prefix("event: error\ndata: ")
            .and_then(|t| t.strip_suffix("\n\n"))
            .unwrap_or_else(|| panic!("not one error event: {text:?}"));
        let event: Value = serde_json::from_str(data).expect("json");
        assert_eq!(event["type"], "error");
        assert_eq!(event["sequence_number"], 5);
        assert_eq!(event["message"], "deployment d1 failed mid-stream");
        assert_eq!(event["code"], error.code.unwrap_or(error.kind));
        assert!(event["param"].is_null());
        // Nothing was numbered yet: the error is event 0.
        let mut fresh = IdRewriter::new("d1");
        out.clear();
        assert!(fresh.error_event(&error, &mut out));
        assert!(String::from_utf8_lossy(&out).contains("\"sequence_number\":0"));
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
