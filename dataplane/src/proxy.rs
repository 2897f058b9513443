//! Serving one completion, completion or embedding request: resolve the model, try
//! deployments with retries, fall back, and stream or return the answer.
//!
//! Order of attempts: for an alias, the target picked by share first, then its other
//! targets, then its fallbacks; for a group, the group; then the router's fallbacks for
//! the requested name. Within a group, up to `1 + retries` attempts, each on a deployment
//! not tried yet when there is one. Retryable failures (connect errors, timeouts, 408,
//! 429, 5xx) count towards cooldown; client errors (400, 401, 403, 404) return at once,
//! except a context-window error, which moves on to the context-window fallbacks.
//!
//! Streams: the first upstream event is awaited before the 200 is committed, so an early
//! failure is still retried; after it, chunks are forwarded as they arrive, and a failure
//! ends the stream with an error event (no `[DONE]` is faked).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::body::{Body, BoxError, full};
use crate::client::HttpClient;
use crate::errors::ApiError;
use crate::providers::{Endpoint, Provider, upstream_model};
use crate::router::{Route, Router, pick_alias_target};

/// Longest error body read from an upstream.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Longest non-streaming answer read from an upstream.
const MAX_ANSWER_BODY: usize = 256 * 1024 * 1024;

/// The two fields of a request body the router needs.
#[derive(serde::Deserialize)]
struct Peek<'a> {
    #[serde(borrow, default)]
    model: Option<Field<std::borrow::Cow<'a, str>>>,
    #[serde(default)]
    stream: Option<Field<bool>>,
}

/// A field of the expected type, or anything else (reported as that parameter's error).
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Field<T> {
    Expected(T),
    Other(serde::de::IgnoredAny),
}

/// How a request ended, for the response headers.
#[derive(Debug)]
pub struct Served {
    /// The response.
    pub response: Response<Body>,
    /// Deployment id that answered.
    pub deployment: Option<String>,
    /// Attempts made.
    pub attempts: u32,
}

/// One failed attempt.
struct Failure {
    error: ApiError,
    retryable: bool,
}

impl Failure {
    fn retryable(error: ApiError) -> Self {
        Self {
            error,
            retryable: true,
        }
    }

    fn from_status(status: StatusCode, body: &[u8], retry_after: Option<Duration>) -> Self {
        let error = ApiError::from_upstream(status, body, retry_after);
        let retryable = matches!(status.as_u16(), 408 | 409 | 429) || status.is_server_error();
        Self { error, retryable }
    }
}

/// The names to try, in order, for a request of `model`.
fn plan(router: &Router, model: &str) -> Result<VecDeque<(usize, String)>, ApiError> {
    let mut steps = VecDeque::new();
    match router.route(model) {
        None => return Err(ApiError::model_not_found(model)),
        Some(route) => expand(router, route, &mut steps, 0),
    }
    for f in router.settings().fallbacks.get(model).into_iter().flatten() {
        if let Some(route) = router.route(f) {
            expand(router, route, &mut steps, 0);
        }
    }
    if let Some((g, _)) = steps.front().cloned() {
        let name = router.groups[g].name.clone();
        if name != model {
            for f in router.settings().fallbacks.get(&name).into_iter().flatten() {
                if let Some(route) = router.route(f) {
                    expand(router, route, &mut steps, 0);
                }
            }
        }
    }
    Ok(steps)
}

/// Appends the groups a route leads to (an alias: its picked target, its other targets by
/// share, its fallbacks), skipping groups already planned.
fn expand(router: &Router, route: Route<'_>, steps: &mut VecDeque<(usize, String)>, depth: u8) {
    let push = |steps: &mut VecDeque<(usize, String)>, g: usize, m: &str| {
        if !steps.iter().any(|(x, _)| *x == g) {
            steps.push_back((g, m.to_owned()));
        }
    };
    match route {
        Route::Group(g, m) => push(steps, g, m),
        Route::Alias(a) => {
            let first = pick_alias_target(a);
            let (g, m, _) = &a.targets[first];
            push(steps, *g, m);
            let mut rest: Vec<&(usize, String, f64)> = a
                .targets
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != first)
                .map(|(_, t)| t)
                .collect();
            rest.sort_by(|x, y| y.2.total_cmp(&x.2));
            for (g, m, _) in rest {
                push(steps, *g, m);
            }
            if depth < 4 {
                for f in &a.fallbacks {
                    if let Some(r) = router.route(f) {
                        expand(router, r, steps, depth + 1);
                    }
                }
            }
        }
    }
}

/// Serves one request whose body is `body` (already read and size-checked).
pub async fn serve(
    router: Arc<Router>,
    client: &HttpClient,
    endpoint: Endpoint,
    client_headers: &HeaderMap,
    body: Bytes,
) -> Served {
    let fail = |error: ApiError, attempts| Served {
        response: error.into_response(),
        deployment: None,
        attempts,
    };
    // Only `model` and `stream` are read here; the rest of the body is forwarded as it
    // came (a prompt is never copied into a tree unless it must be rewritten).
    let peek: Peek<'_> = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            return fail(
                ApiError::bad_request(format!(
                    "the request body must be a JSON object with a string `model`: {e}"
                )),
                0,
            );
        }
        Err(e) => return fail(ApiError::bad_request(format!("invalid JSON body: {e}")), 0),
    };
    let model = match &peek.model {
        Some(Field::Expected(m)) => m.as_ref(),
        Some(Field::Other(_)) => {
            return fail(
                ApiError::invalid_param("model", "`model` must be a string"),
                0,
            );
        }
        None => return fail(ApiError::invalid_param("model", "`model` is required"), 0),
    };
    let stream = match peek.stream {
        Some(Field::Expected(s)) => s,
        Some(Field::Other(_)) => {
            return fail(
                ApiError::invalid_param("stream", "`stream` must be a boolean"),
                0,
            );
        }
        None => false,
    };
    if stream && endpoint == Endpoint::Embeddings {
        return fail(
            ApiError::invalid_param("stream", "embeddings cannot be streamed"),
            0,
        );
    }
    let mut steps = match plan(&router, model) {
        Ok(s) => s,
        Err(e) => return fail(e, 0),
    };
    let settings = router.settings();
    // An error an upstream gave names the deployment that gave it in
    // `x-modelgate-deployment` (and so in the metrics), as an answer does.
    let upstream_error = |error: ApiError, attempts, id: &str| Served {
        response: error.into_response(),
        deployment: Some(id.to_owned()),
        attempts,
    };
    let mut attempts = 0u32;
    let mut last: Option<ApiError> = None;
    let mut last_from: Option<String> = None;
    let mut planned: Vec<usize> = steps.iter().map(|(g, _)| *g).collect();
    let mut context_fallbacks_used = false;
    while let Some((g, group_model)) = steps.pop_front() {
        let mut tried: Vec<usize> = Vec::new();
        let mut retries = None;
        loop {
            let now = Instant::now();
            let Some(t) = router.pick(g, &tried, now) else {
                break;
            };
            let target = &router.targets[t];
            let budget = *retries.get_or_insert(target.spec.retries);
            if tried.len() > budget as usize {
                break;
            }
            let repeat = tried.contains(&t);
            if repeat {
                // Same deployment again: back off, honouring Retry-After (capped).
                let wait = last
                    .as_ref()
                    .and_then(|e| e.retry_after)
                    .unwrap_or_else(|| Duration::from_millis(50 + fastrand::u64(..100)))
                    .min(Duration::from_secs(5));
                tokio::time::sleep(wait).await;
            }
            tried.push(t);
            attempts += 1;
            let started = Instant::now();
            let result = attempt(
                &router,
                client,
                t,
                endpoint,
                &group_model,
                model,
                &body,
                client_headers,
                stream,
            )
            .await;
            match result {
                Ok(response) => {
                    target.state.record_success(started.elapsed());
                    return Served {
                        response,
                        deployment: Some(target.spec.id.clone()),
                        attempts,
                    };
                }
                Err(f) if f.retryable => {
                    let cooled = target.state.record_failure(
                        Instant::now(),
                        settings.cooldown.allowed_fails,
                        Duration::from_millis(settings.cooldown.cooldown_ms),
                    );
                    tracing::warn!(
                        deployment = %target.spec.id,
                        status = f.error.status.as_u16(),
                        cooldown = cooled,
                        "attempt failed: {}", f.error.message
                    );
                    last = Some(f.error);
                    last_from = Some(target.spec.id.clone());
                }
                Err(f) if f.error.is_context_window() && !context_fallbacks_used => {
                    context_fallbacks_used = true;
                    let names = [model, router.groups[g].name.as_str()];
                    let mut next = VecDeque::new();
                    for name in names {
                        for cf in settings
                            .context_window_fallbacks
                            .get(name)
                            .into_iter()
                            .flatten()
                        {
                            if let Some(r) = router.route(cf) {
                                expand(&router, r, &mut next, 0);
                            }
                        }
                    }
                    if next.is_empty() {
                        return upstream_error(f.error, attempts, &target.spec.id);
                    }
                    planned.extend(next.iter().map(|(g, _)| *g));
                    steps = next;
                    last = Some(f.error);
                    last_from = Some(target.spec.id.clone());
                    break;
                }
                Err(f) => return upstream_error(f.error, attempts, &target.spec.id),
            }
        }
    }
    // Everything failed: when every deployment planned is cooling down, say when to
    // come back.
    let now = Instant::now();
    let mut earliest: Option<Instant> = None;
    let mut all_cooling = true;
    for g in &planned {
        match router.all_cooling_until(*g, now) {
            Some(t) => earliest = Some(earliest.map_or(t, |e| e.min(t))),
            None => all_cooling = false,
        }
    }
    if all_cooling && let Some(t) = earliest {
        let wait = t.saturating_duration_since(now);
        return fail(
            ApiError::rate_limited(
                format!(
                    "every deployment of `{model}` is cooling down after failures; retry after {}s",
                    wait.as_secs().max(1)
                ),
                Some(wait),
            ),
            attempts,
        );
    }
    match (last, last_from) {
        (Some(error), Some(id)) => upstream_error(error, attempts, &id),
        (error, _) => fail(
            // Nothing was tried: every deployment is at its concurrency limit.
            error.unwrap_or_else(|| {
                ApiError::rate_limited(
                    format!(
                        "every deployment of `{model}` is at its concurrency limit; retry shortly"
                    ),
                    Some(Duration::from_secs(1)),
                )
            }),
            attempts,
        ),
    }
}

#[allow(clippy::too_many_arguments)]
async fn attempt(
    router: &Router,
    client: &HttpClient,
    t: usize,
    endpoint: Endpoint,
    group_model: &str,
    requested_model: &str,
    body: &Bytes,
    client_headers: &HeaderMap,
    stream: bool,
) -> Result<Response<Body>, Failure> {
    let target = &router.targets[t];
    let d = &target.spec;
    let upstream = upstream_model(d, group_model);
    let guard = target.state.start();
    if let Provider::Mock(mock) = &target.provider {
        let request: Value = serde_json::from_slice(body).unwrap_or_default();
        let answer = mock.answer(endpoint, &upstream, &request).await;
        drop(guard);
        return Ok(answer);
    }
    let send_body = if requested_model == upstream {
        body.clone()
    } else {
        // Rewrite `model` (wildcards, `upstream.model`): the one case that builds a tree.
        let mut rewritten: Value = serde_json::from_slice(body).unwrap_or_default();
        rewritten["model"] = Value::String(upstream.clone());
        Bytes::from(serde_json::to_vec(&rewritten).unwrap_or_default())
    };
    let req = target
        .provider
        .request(
            d,
            target.api_key.as_ref().map(|k| k.expose()),
            endpoint,
            &upstream,
            send_body,
            client_headers,
        )
        .map_err(|error| Failure {
            error,
            retryable: false,
        })?;
    if !stream {
        let timeout = Duration::from_millis(d.timeouts.request_ms);
        let exchange = async {
            let resp = client.request(req).await.map_err(connect_failure)?;
            let (parts, body) = resp.into_parts();
            let limit = if parts.status.is_success() {
                MAX_ANSWER_BODY
            } else {
                MAX_ERROR_BODY
            };
            let bytes = read_upstream(body, limit).await?;
            Ok::<_, Failure>((parts, bytes))
        };
        let (parts, bytes) = match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(Failure::retryable(ApiError::timeout(format!(
                    "deployment {} did not answer within {}ms",
                    d.id, d.timeouts.request_ms
                ))));
            }
        };
        drop(guard);
        if !parts.status.is_success() {
            return Err(Failure::from_status(
                parts.status,
                &bytes,
                retry_after(&parts.headers),
            ));
        }
        let mut resp = Response::new(full(bytes));
        copy_content_type(&parts.headers, resp.headers_mut(), "application/json");
        return Ok(resp);
    }

    // Streaming: headers and the first event within the first-byte timeout.
    let first_byte = Duration::from_millis(d.timeouts.stream_first_byte_ms);
    let idle = Duration::from_millis(d.timeouts.stream_idle_ms);
    let deadline = tokio::time::Instant::now() + first_byte;
    let timed_out = || {
        Failure::retryable(ApiError::timeout(format!(
            "deployment {} sent no first byte within {}ms",
            d.id, d.timeouts.stream_first_byte_ms
        )))
    };
    let resp = match tokio::time::timeout_at(deadline, client.request(req)).await {
        Ok(r) => r.map_err(connect_failure)?,
        Err(_) => return Err(timed_out()),
    };
    let (parts, mut body) = resp.into_parts();
    if !parts.status.is_success() {
        let bytes =
            match tokio::time::timeout_at(deadline, read_upstream(body, MAX_ERROR_BODY)).await {
                Ok(r) => r?,
                Err(_) => Bytes::new(),
            };
        return Err(Failure::from_status(
            parts.status,
            &bytes,
            retry_after(&parts.headers),
        ));
    }
    let first = loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(timed_out()),
            Ok(None) => {
                return Err(Failure::retryable(ApiError::bad_gateway(format!(
                    "deployment {} ended the stream before the first event",
                    d.id
                ))));
            }
            Ok(Some(Err(e))) => {
                return Err(Failure::retryable(ApiError::bad_gateway(format!(
                    "deployment {} failed before the first event: {e}",
                    d.id
                ))));
            }
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) if !data.is_empty() => break data,
                _ => continue,
            },
        }
    };
    let (tx, rx) = mpsc::channel::<Result<http_body::Frame<Bytes>, BoxError>>(16);
    let id = d.id.clone();
    // A failure after the first byte is still the deployment's failure: it counts
    // towards cooldown as one before the first byte does (a client leaving does not).
    let state = Arc::clone(&target.state);
    let cooldown = &router.settings().cooldown;
    let (allowed_fails, cooldown_time) = (
        cooldown.allowed_fails,
        Duration::from_millis(cooldown.cooldown_ms),
    );
    let failed = move || {
        state.record_failure(Instant::now(), allowed_fails, cooldown_time);
    };
    tokio::spawn(async move {
        let _guard = guard;
        if tx.send(Ok(http_body::Frame::data(first))).await.is_err() {
            return;
        }
        loop {
            // Watch the client while waiting for the upstream: a client that leaves
            // while the upstream is silent (a model thinking) must cancel the upstream
            // request now, not at the next chunk or the idle timeout.
            let next = tokio::select! {
                biased;
                _ = tx.closed() => return,
                next = tokio::time::timeout(idle, body.frame()) => next,
            };
            match next {
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data()
                        && tx.send(Ok(http_body::Frame::data(data))).await.is_err()
                    {
                        // The client went away: dropping the upstream body cancels it.
                        return;
                    }
                }
                Ok(None) => return,
                Ok(Some(Err(e))) => {
                    failed();
                    let _ = tx
                        .send(Ok(stream_error_event(&format!(
                            "deployment {id} failed mid-stream: {e}"
                        ))))
                        .await;
                    return;
                }
                Err(_) => {
                    failed();
                    let _ = tx
                        .send(Ok(stream_error_event(&format!(
                            "deployment {id} sent nothing for {}ms",
                            idle.as_millis()
                        ))))
                        .await;
                    return;
                }
            }
        }
    });
    let stream = tokio_stream_from(rx);
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    copy_content_type(&parts.headers, resp.headers_mut(), "text/event-stream");
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

/// An SSE event carrying an OpenAI-shaped error, ending a stream that already began.
fn stream_error_event(message: &str) -> http_body::Frame<Bytes> {
    let error = ApiError::bad_gateway(message);
    let mut event = b"data: ".to_vec();
    event.extend_from_slice(&error.to_json());
    event.extend_from_slice(b"\n\n");
    http_body::Frame::data(Bytes::from(event))
}

fn tokio_stream_from(
    rx: mpsc::Receiver<Result<http_body::Frame<Bytes>, BoxError>>,
) -> impl futures_util::Stream<Item = Result<http_body::Frame<Bytes>, BoxError>> {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed()
}

fn connect_failure(e: hyper_util::client::legacy::Error) -> Failure {
    Failure::retryable(ApiError::bad_gateway(format!(
        "upstream connection failed: {e}"
    )))
}

async fn read_upstream(body: Incoming, limit: usize) -> Result<Bytes, Failure> {
    let limited = http_body_util::Limited::new(body, limit);
    limited.collect().await.map(|c| c.to_bytes()).map_err(|e| {
        Failure::retryable(ApiError::bad_gateway(format!("upstream body failed: {e}")))
    })
}

/// The wait an upstream asked for: OpenAI's `retry-after-ms`, else `Retry-After` in
/// seconds (an HTTP-date is not honoured: the default backoff applies).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let read = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    if let Some(ms) = read("retry-after-ms").filter(|v| v.is_finite() && *v >= 0.0) {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    read("retry-after")
        .filter(|v| v.is_finite() && *v >= 0.0 && *v < 86_400.0)
        .map(Duration::from_secs_f64)
}

fn copy_content_type(from: &HeaderMap, to: &mut HeaderMap, default: &'static str) {
    let value = from
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static(default));
    to.insert(header::CONTENT_TYPE, value);
}
