//! Serving one chat completion, completion, embedding or Messages request: resolve the
//! model, try deployments with retries, fall back, translate for the deployment's API
//! when it is not the client's ([`crate::providers::legs`]), and stream or return the
//! answer.
//!
//! Order of attempts: for an alias, the target picked by share first, then its other
//! targets, then its fallbacks; for a group, the group; then the router's fallbacks for
//! the requested name. Within a group, up to `1 + retries` attempts, each on a deployment
//! not tried yet when there is one. Retryable failures (connect errors, timeouts, 408,
//! 429, 5xx) count towards cooldown; client errors (400, 401, 403, 404) return at once,
//! except a context-window error, which moves on to the context-window fallbacks.
//!
//! Streams: the first upstream event is awaited before the 200 is committed, so an early
//! failure is still retried; after it, chunks are forwarded (or translated, event by
//! event) as they arrive, and a failure ends the stream with an error event in the
//! client's dialect (no `[DONE]` or `message_stop` is faked).
//!
//! The Responses API (`/v1/responses`) goes through the same plan, passed through to the
//! OpenAI family and Azure only, with response ids rewritten to name the deployment; a
//! follow-up (`previous_response_id`) is pinned to that deployment ([`crate::responses`]).
//!
//! A deployment that cannot take the request at all (a parameter its provider lacks
//! without `dropParams`, an endpoint its provider does not have) is skipped without a
//! cooldown: another deployment of the group may take it; when none can, the client
//! gets that 400.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Response, header};
use http_body_util::{BodyExt, StreamBody};
use serde_json::Value;
use smallvec::SmallVec;
use tokio::sync::mpsc;

use crate::body::{Body, BoxError, full};
use crate::client::{HttpClient, RawHeaders, RequestError, UpstreamBody};
use crate::errors::{ApiError, Dialect};
use crate::limits::{Reservation, StreamUsage};
use crate::providers::{
    Endpoint, Legs, Provider, RequestContext, ResponseContext, StreamTranslator, legs,
    upstream_model,
};
use crate::router::{Route, Router, Target, pick_alias_target};

/// Longest error body read from an upstream.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Longest non-streaming answer read from an upstream by default
/// (`--max-upstream-answer-bytes`).
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 256 * 1024 * 1024;

/// Longest non-streaming answer read from an upstream: a process-wide setting (one data
/// plane per process; the binary and `operator local` set it at start).
static MAX_ANSWER_BODY: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(DEFAULT_MAX_ANSWER_BYTES);

/// Sets the longest non-streaming answer read from an upstream; a larger one fails the
/// attempt with a 502 that says so.
pub fn set_max_answer_bytes(limit: usize) {
    MAX_ANSWER_BODY.store(limit.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// The two fields of a request body the router needs.
#[derive(serde::Deserialize)]
struct Peek<'a> {
    #[serde(borrow, default)]
    model: Option<Field<std::borrow::Cow<'a, str>>>,
    #[serde(default)]
    stream: Option<Field<bool>>,
}

/// A field of the expected type, or anything else (reported as that parameter's error).
/// Read by hand rather than as an untagged enum, which would buffer the value first: this
/// runs on every request.
enum Field<T> {
    Expected(T),
    Other,
}

/// Visits any JSON value: `Expected` for the type the field wants, `Other` (skipped
/// whole) for anything else.
struct FieldVisitor<T>(std::marker::PhantomData<T>);

/// The visitor methods that make a value `Other`: the scalars named, and always null,
/// arrays and objects (skipped without being buffered).
macro_rules! anything_else {
    ($($name:ident: $ty:ty),*) => {
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        $(
            fn $name<E: serde::de::Error>(self, _: $ty) -> Result<Self::Value, E> {
                Ok(Field::Other)
            }
        )*
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Field::Other)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            Ok(Field::Other)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map
                .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                .is_some()
            {}
            Ok(Field::Other)
        }
    };
}

impl<'de> serde::de::Visitor<'de> for FieldVisitor<std::borrow::Cow<'de, str>> {
    type Value = Field<std::borrow::Cow<'de, str>>;

    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Field::Expected(std::borrow::Cow::Borrowed(v)))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Field::Expected(std::borrow::Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Field::Expected(std::borrow::Cow::Owned(v)))
    }

    anything_else!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64);
}

impl<'de> serde::de::Visitor<'de> for FieldVisitor<bool> {
    type Value = Field<bool>;

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Field::Expected(v))
    }

    anything_else!(visit_str: &str, visit_i64: i64, visit_u64: u64, visit_f64: f64);
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Field<std::borrow::Cow<'a, str>> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldVisitor::<std::borrow::Cow<'de, str>>(
            std::marker::PhantomData,
        ))
    }
}

impl<'de> serde::Deserialize<'de> for Field<bool> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldVisitor::<bool>(std::marker::PhantomData))
    }
}

/// What the router reads of a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead<'a> {
    /// The `model` asked for (borrowed from the body unless it held escapes).
    pub model: std::borrow::Cow<'a, str>,
    /// Whether the client asked for a stream.
    pub stream: bool,
}

/// Reads `model` and `stream` from a request body for `endpoint`, and nothing else: the
/// rest of the body is forwarded as it came (a prompt is never copied into a tree unless
/// it must be rewritten). Errors are the 400s the client gets.
///
/// One pass of [`crate::json::model_and_stream`] reads almost every body; what it leaves
/// to a full parser (escapes in keys or in `model`, a key twice, invalid JSON, which
/// then needs serde_json's error message) goes through [`read_head_slow`], whose result
/// it equals (the `request_head` fuzz target holds the two to each other).
pub fn read_head(endpoint: Endpoint, body: &[u8]) -> Result<RequestHead<'_>, ApiError> {
    match peek_fast(body) {
        Some(peek) => check_head(endpoint, peek),
        None => read_head_slow(endpoint, body),
    }
}

/// [`read_head`] by serde_json alone.
pub fn read_head_slow(endpoint: Endpoint, body: &[u8]) -> Result<RequestHead<'_>, ApiError> {
    let peek: Peek<'_> = match serde_json::from_slice(body) {
        // A struct reads from a JSON array too (its fields in order): only an object is a
        // request, whatever its first elements are.
        Ok(_) if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') => {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object with a string `model`",
            ));
        }
        Ok(p) => p,
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            return Err(ApiError::bad_request(format!(
                "the request body must be a JSON object with a string `model`: {e}"
            )));
        }
        Err(e) => return Err(ApiError::bad_request(format!("invalid JSON body: {e}"))),
    };
    check_head(endpoint, peek)
}

/// `model` and `stream` as serde_json reads them into [`Peek`], from the one-pass scan;
/// `None` when only the full parser can say. serde reads these two values whole (a
/// string decoded and checked to be UTF-8, a number parsed, where it may overflow), and
/// skips arrays and objects as the scan does: strings with escapes or invalid UTF-8 and
/// numbers are left to it.
fn peek_fast(body: &[u8]) -> Option<Peek<'_>> {
    /// A plain string's text (no escapes, valid UTF-8).
    fn plain(raw: &[u8]) -> Option<&str> {
        match raw {
            [b'"', inner @ .., b'"'] if !inner.contains(&b'\\') => std::str::from_utf8(inner).ok(),
            _ => None,
        }
    }
    let found = crate::json::model_and_stream(body)?;
    let model = match found.model {
        None | Some(b"null") => None,
        Some(raw @ [b'"', ..]) => Some(Field::Expected(std::borrow::Cow::Borrowed(plain(raw)?))),
        Some(b"true" | b"false" | [b'[' | b'{', ..]) => Some(Field::Other),
        Some(_) => return None,
    };
    let stream = match found.stream {
        None | Some(b"null") => None,
        Some(b"true") => Some(Field::Expected(true)),
        Some(b"false") => Some(Field::Expected(false)),
        Some(raw @ [b'"', ..]) => {
            plain(raw)?;
            Some(Field::Other)
        }
        Some([b'[' | b'{', ..]) => Some(Field::Other),
        Some(_) => return None,
    };
    Some(Peek { model, stream })
}

fn check_head(endpoint: Endpoint, peek: Peek<'_>) -> Result<RequestHead<'_>, ApiError> {
    let model = match peek.model {
        Some(Field::Expected(m)) => m,
        Some(Field::Other) => {
            return Err(ApiError::invalid_param("model", "`model` must be a string"));
        }
        None => return Err(ApiError::invalid_param("model", "`model` is required")),
    };
    let stream = match peek.stream {
        Some(Field::Expected(s)) => s,
        Some(Field::Other) => {
            return Err(ApiError::invalid_param(
                "stream",
                "`stream` must be a boolean",
            ));
        }
        None => false,
    };
    if stream && endpoint == Endpoint::Embeddings {
        return Err(ApiError::invalid_param(
            "stream",
            "embeddings cannot be streamed",
        ));
    }
    Ok(RequestHead { model, stream })
}

/// How a request ended, for the response headers.
#[derive(Debug)]
pub struct Served {
    /// The response.
    pub response: Response<Body>,
    /// Deployment id that answered.
    pub deployment: Option<HeaderValue>,
    /// Attempts made.
    pub attempts: u32,
    /// The answer's content type when it is not among the response's headers (the
    /// connection writes it; no header map is built for the usual answer).
    pub content_type: Option<HeaderValue>,
    /// When the answer came (read once, for the deployment's latency and the metrics').
    pub answered: Option<Instant>,
}

impl Served {
    /// A request no deployment answered: `response` is the error, from `deployment`
    /// when one gave it.
    fn failed(response: Response<Body>, deployment: Option<HeaderValue>, attempts: u32) -> Self {
        Served {
            response,
            deployment,
            attempts,
            content_type: None,
            answered: None,
        }
    }

    /// `target`'s answer to the attempt begun at `started`, its latency recorded.
    fn answered(target: &Target, answered: Answered, started: Instant, attempts: u32) -> Self {
        let at = answered.at.unwrap_or_else(Instant::now);
        target
            .state
            .record_success(at.saturating_duration_since(started));
        Served {
            response: answered.response,
            deployment: Some(target.id_header.clone()),
            attempts,
            content_type: answered.content_type,
            answered: Some(at),
        }
    }
}

/// An attempt's answer: the response, its content type when kept apart from its
/// headers, and when the answer came when that was read already.
struct Answered {
    response: Response<Body>,
    content_type: Option<HeaderValue>,
    at: Option<Instant>,
}

impl From<Response<Body>> for Answered {
    fn from(response: Response<Body>) -> Self {
        Answered {
            response,
            content_type: None,
            at: None,
        }
    }
}

/// One failed attempt.
struct Failure {
    error: ApiError,
    retryable: bool,
    /// The deployment cannot take this request at all (nothing was sent).
    unfit: bool,
}

impl Failure {
    fn retryable(error: ApiError) -> Self {
        Self {
            error,
            retryable: true,
            unfit: false,
        }
    }

    /// Retryable or not by the error's status.
    fn of(error: ApiError) -> Self {
        Self {
            retryable: error.is_retryable(),
            error,
            unfit: false,
        }
    }
}

/// The groups a request may be served by, in the order they are tried, each with the
/// model asked of it. Inline: a plan rarely has more than a few (no allocation).
pub(crate) type Steps<'a> = SmallVec<[(usize, &'a str); 4]>;

/// Deployments, by index: those a request tried, or that could not take it.
type Tried = SmallVec<[usize; 4]>;

/// The groups to try, in order, for a request of `model`, each with the model name to
/// ask it for (borrowed from the router or from `model`).
pub(crate) fn plan<'a>(router: &'a Router, model: &'a str) -> Result<Steps<'a>, ApiError> {
    let mut steps = Steps::new();
    match router.route(model) {
        None => return Err(ApiError::model_not_found(model)),
        Some(route) => expand(router, route, &mut steps, 0),
    }
    for f in router.settings().fallbacks.get(model).into_iter().flatten() {
        if let Some(route) = router.route(f) {
            expand(router, route, &mut steps, 0);
        }
    }
    if let Some(&(g, _)) = steps.first() {
        let name = router.groups[g].name.as_str();
        if name != model {
            for f in router.settings().fallbacks.get(name).into_iter().flatten() {
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
pub(crate) fn expand<'a>(router: &'a Router, route: Route<'a>, steps: &mut Steps<'a>, depth: u8) {
    let push = |steps: &mut Steps<'a>, g: usize, m: &'a str| {
        if !steps.iter().any(|(x, _)| *x == g) {
            steps.push((g, m));
        }
    };
    match route {
        Route::Group(g, m) => push(steps, g, m),
        Route::Alias(a) => {
            let first = pick_alias_target(a);
            let (g, m, _) = &a.targets[first];
            push(steps, *g, m);
            let mut rest: Vec<&'a (usize, String, f64)> = a
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

/// The output of `fut`, or `None` when `deadline` passes first (as
/// `tokio::time::timeout_at`, for a future pinned by its caller, so it is not moved).
async fn within<F: Future>(
    deadline: tokio::time::Instant,
    mut fut: std::pin::Pin<&mut F>,
) -> Option<F::Output> {
    let mut expired = std::pin::pin!(tokio::time::sleep_until(deadline));
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(out) = fut.as_mut().poll(cx) {
            return std::task::Poll::Ready(Some(out));
        }
        expired.as_mut().poll(cx).map(|()| None)
    })
    .await
}

/// Serves one request whose body is `body` (already read and size-checked), which came
/// at `arrived` (the first routing decision and the first attempt's timeout run from
/// there: no clock read for either).
pub async fn serve(
    router: Arc<Router>,
    client: &HttpClient,
    endpoint: Endpoint,
    client_headers: &RawHeaders,
    body: Bytes,
    arrived: Instant,
) -> Served {
    let dialect = endpoint.dialect();
    let fail =
        |error: ApiError, attempts| Served::failed(error.into_response_as(dialect), None, attempts);
    let head = match read_head(endpoint, &body) {
        Ok(h) => h,
        Err(e) => return fail(e, 0),
    };
    let (model, stream) = (head.model.as_ref(), head.stream);
    if endpoint == Endpoint::Responses {
        match crate::responses::pin(&router, &body, model) {
            Ok(None) => {}
            Ok(Some(p)) => {
                // Boxed: kept out of the state of every other request.
                return Box::pin(serve_pinned(
                    &router,
                    client,
                    &p,
                    model,
                    client_headers,
                    stream,
                ))
                .await;
            }
            Err(e) => return fail(e, 0),
        }
    }
    let mut steps = match plan(&router, model) {
        Ok(s) => s,
        Err(e) => return fail(e, 0),
    };
    let settings = router.settings();
    // An error an upstream gave names the deployment that gave it in
    // `x-modelgate-deployment` (and so in the metrics), as an answer does.
    let upstream_error = |error: ApiError, attempts, id: &HeaderValue| {
        Served::failed(error.into_response_as(dialect), Some(id.clone()), attempts)
    };
    let mut attempts = 0u32;
    let mut last: Option<ApiError> = None;
    let mut last_from: Option<HeaderValue> = None;
    let mut planned: Tried = steps.iter().map(|(g, _)| *g).collect();
    let mut context_fallbacks_used = false;
    // Tokens estimated for rate limits, computed once when a deployment has a tpm limit.
    let mut estimate: Option<u64> = None;
    // The earliest a deployment that refused a reservation may be tried again.
    let mut limited_for: Option<Duration> = None;
    let mut next_step = 0;
    // The time of the first routing decision: the request's arrival.
    let mut arrival = Some(arrived);
    while let Some(&(g, group_model)) = steps.get(next_step) {
        next_step += 1;
        let mut tried = Tried::new();
        let mut unfit = Tried::new();
        let mut retries = None;
        loop {
            let now = arrival.take().unwrap_or_else(Instant::now);
            let Some(t) = router.pick(g, &tried, now) else {
                break;
            };
            if unfit.contains(&t) {
                // Every deployment of the group was tried; this one cannot take it anyway.
                break;
            }
            let target = &router.targets[t];
            let budget = *retries.get_or_insert(target.spec.retries);
            // Deployments that could not take the request at all used no retry.
            if tried.len() - unfit.len() > budget as usize {
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
            // Rate limits: check and reserve; a deployment at its limit is passed over
            // like one that cannot take the request (no retry used, no cooldown).
            let reservation = match reserve(&router, t, &body, &mut estimate).await {
                Ok(r) => r,
                Err(wait) => {
                    limited_for = Some(limited_for.map_or(wait, |w| w.min(wait)));
                    tried.push(t);
                    unfit.push(t);
                    continue;
                }
            };
            tried.push(t);
            // The first attempt starts when the request came, unless a rate limit's
            // reservation (which may ask Redis) came between.
            let started = if attempts == 0 && !reservation.is_counted() {
                now
            } else {
                Instant::now()
            };
            attempts += 1;
            let result = attempt(
                &router,
                client,
                t,
                endpoint,
                group_model,
                model,
                &body,
                client_headers,
                stream,
                &reservation,
                started,
            )
            .await;
            match &result {
                Ok(_) => {}
                // Nothing was sent: the request and its tokens are given back.
                Err(f) if f.unfit => reservation.cancel(),
                // Sent and failed: the request counts, tokens were not used.
                Err(_) => reservation.set_usage(0),
            }
            drop(reservation);
            match result {
                Ok(answered) => return Served::answered(target, answered, started, attempts),
                Err(f) if f.unfit => {
                    tracing::debug!(
                        deployment = %target.spec.id,
                        "deployment cannot take the request: {}", f.error.message
                    );
                    unfit.push(t);
                    last = Some(f.error);
                    last_from = Some(target.id_header.clone());
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
                    last_from = Some(target.id_header.clone());
                }
                Err(f) if f.error.is_context_window() && !context_fallbacks_used => {
                    context_fallbacks_used = true;
                    let names = [model, router.groups[g].name.as_str()];
                    let mut next = Steps::new();
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
                        return upstream_error(f.error, attempts, &target.id_header);
                    }
                    planned.extend(next.iter().map(|(g, _)| *g));
                    steps = next;
                    next_step = 0;
                    last = Some(f.error);
                    last_from = Some(target.id_header.clone());
                    break;
                }
                Err(f) => {
                    target
                        .state
                        .observe_refusal(f.error.status, &router.table.version);
                    return upstream_error(f.error, attempts, &target.id_header);
                }
            }
        }
    }
    // Everything failed: when every deployment planned is at a rate limit (or cooling
    // down), say when the first may be tried again.
    let now = Instant::now();
    if let Some(wait) = planned
        .iter()
        .map(|g| router.all_limited_until(*g, now))
        .try_fold(None, |e: Option<Duration>, w| {
            w.map(|w| Some(e.map_or(w, |e| e.min(w))))
        })
        .flatten()
    {
        router
            .limiter
            .stats
            .rejected
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return fail(
            ApiError::rate_limited(
                format!(
                    "every deployment of `{model}` is at its rate limit; retry after {}s",
                    wait.as_secs_f64().ceil().max(1.0)
                ),
                Some(wait),
            ),
            attempts,
        );
    }
    // When every deployment planned is cooling down, say when to come back.
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
            // Nothing was tried: every deployment is at a rate limit (a request larger
            // than what is left of a tpm window) or at its concurrency limit.
            error.unwrap_or_else(|| match limited_for {
                Some(wait) => ApiError::rate_limited(
                    format!(
                        "every deployment of `{model}` is at its rate limit; retry after {}s",
                        wait.as_secs_f64().ceil().max(1.0)
                    ),
                    Some(wait),
                ),
                None => ApiError::rate_limited(
                    format!(
                        "every deployment of `{model}` is at its concurrency limit; retry shortly"
                    ),
                    Some(Duration::from_secs(1)),
                ),
            }),
            attempts,
        ),
    }
}

/// Serves a Responses API follow-up (`previous_response_id`) on the one deployment that
/// stored the session: up to `1 + retries` attempts there, never another deployment (no
/// other can continue the session). It is tried even when cooling down or unhealthy:
/// the alternative is a certain failure, while the deployment may well have recovered,
/// and its own answer is a better error for the client than ours.
async fn serve_pinned(
    router: &Router,
    client: &HttpClient,
    pinned: &crate::responses::Pinned,
    model: &str,
    client_headers: &RawHeaders,
    stream: bool,
) -> Served {
    let t = pinned.target;
    let target = &router.targets[t];
    let settings = router.settings();
    let mut attempts = 0u32;
    let mut last: Option<ApiError> = None;
    loop {
        if attempts > 0 {
            let wait = crate::responses::backoff(last.as_ref().and_then(|e| e.retry_after));
            tokio::time::sleep(wait).await;
        }
        attempts += 1;
        let started = Instant::now();
        let result = attempt(
            router,
            client,
            t,
            Endpoint::Responses,
            &pinned.group_model,
            model,
            &pinned.body,
            client_headers,
            stream,
            // A pinned follow-up can go nowhere else: not held back by rate limits.
            &Reservation::default(),
            started,
        )
        .await;
        let error = match result {
            Ok(answered) => break Served::answered(target, answered, started, attempts),
            Err(f) if f.retryable => {
                target.state.record_failure(
                    Instant::now(),
                    settings.cooldown.allowed_fails,
                    Duration::from_millis(settings.cooldown.cooldown_ms),
                );
                f.error
            }
            Err(f) => {
                target
                    .state
                    .observe_refusal(f.error.status, &router.table.version);
                f.error
            }
        };
        let retryable = error.is_retryable() && attempts <= target.spec.retries;
        if !retryable {
            break Served::failed(
                error.into_response_as(Dialect::OpenAi),
                Some(target.id_header.clone()),
                attempts,
            );
        }
        tracing::warn!(
            deployment = %target.spec.id,
            status = error.status.as_u16(),
            "pinned Responses attempt failed: {}", error.message
        );
        last = Some(error);
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
    client_headers: &RawHeaders,
    stream: bool,
    reservation: &Reservation,
    // When the attempt began (its whole-request timeout runs from there).
    started: Instant,
) -> Result<Answered, Failure> {
    let target = &router.targets[t];
    let d = &target.spec;
    if !target.provider.serves(endpoint) {
        return Err(Failure {
            error: ApiError::bad_request(format!(
                "`{requested_model}` cannot serve the Responses API (/v1/responses): deployment {} is a {} deployment; only OpenAI, OpenAI-compatible and Azure deployments can",
                d.id, d.provider
            )),
            retryable: false,
            unfit: true,
        });
    }
    let upstream = upstream_model(d, group_model);
    let dialect = endpoint.dialect();
    let legs = legs(endpoint, &target.provider);
    let mut strip_usage = false;
    // The body for this deployment: as it came, with `model` rewritten, or translated.
    let (send_body, front_cx, back_cx) = if legs.is_passthrough() {
        let send_body = if requested_model == upstream {
            body.clone()
        } else {
            // Rewrite `model` (wildcards, `upstream.model`): the one case that builds a tree.
            let mut rewritten: Value = serde_json::from_slice(body).unwrap_or_default();
            if let Some(object) = rewritten.as_object_mut() {
                object.insert("model".to_owned(), Value::String(upstream.to_string()));
            }
            Bytes::from(serde_json::to_vec(&rewritten).unwrap_or_default())
        };
        // A stream counted against a limit: ask an OpenAI-family upstream for its usage
        // (the chunk is stripped from the client's stream unless it asked too).
        let send_body = match (&target.provider, endpoint) {
            (
                Provider::OpenAi { .. } | Provider::Azure { .. },
                Endpoint::Chat | Endpoint::Completions,
            ) if stream && reservation.is_counted() => {
                match crate::limits::with_include_usage(&send_body) {
                    Some(b) => {
                        strip_usage = true;
                        b
                    }
                    None => send_body,
                }
            }
            _ => send_body,
        };
        (send_body, None, None)
    } else {
        let cx = RequestContext {
            endpoint,
            deployment: d,
            requested_model,
            upstream_model: &upstream,
            stream,
            drop_params: router.settings().drop_params,
        };
        // A translated OpenAI chat stream counted against a limit: the translator emits the
        // usage chunk (every provider reports usage) when the body asks for it, and the
        // chunk is stripped from the client's stream unless the client asked too.
        let asked;
        let body = if stream && endpoint == Endpoint::Chat && reservation.is_counted() {
            match crate::limits::with_include_usage(body) {
                Some(b) => {
                    strip_usage = true;
                    asked = b;
                    &asked
                }
                None => body,
            }
        } else {
            body
        };
        legs.request(&cx, body).map_err(|error| Failure {
            error,
            retryable: false,
            unfit: true,
        })?
    };
    let guard = target.state.start();
    if let Provider::Mock(mock) = &target.provider {
        let request: Value = serde_json::from_slice(&send_body).unwrap_or_default();
        let answer = mock.answer(legs.upstream, &upstream, &request).await;
        drop(guard);
        if legs.is_passthrough() {
            return Ok(answer.into());
        }
        return translate_local(answer, legs, front_cx, back_cx, dialect)
            .await
            .map(Answered::from)
            .map_err(Failure::of);
    }
    let req = target
        .provider
        .request(
            d,
            target.api_key.as_ref().map(|k| k.expose()),
            legs.upstream,
            &upstream,
            send_body,
            client_headers,
            stream,
        )
        .map_err(|error| Failure {
            error,
            retryable: false,
            unfit: false,
        })?;
    if !stream {
        let deadline =
            tokio::time::Instant::from_std(started + Duration::from_millis(d.timeouts.request_ms));
        let timed_out = || {
            Failure::retryable(ApiError::timeout(format!(
                "deployment {} did not answer within {}ms",
                d.id, d.timeouts.request_ms
            )))
        };
        // The head within the deadline (the upstream connection's timer checks it). Pinned
        // where it is made: awaited as a temporary, the future was copied twice.
        let answer = std::pin::pin!(client.request_at(req, started, Some(deadline)))
            .await
            .map_err(|e| request_failure(e, timed_out))?;
        // When the answer came: for the pool, the deployment's latency and the metrics
        // (one clock read).
        let at = Instant::now();
        let limit = if answer.status.is_success() {
            MAX_ANSWER_BODY.load(std::sync::atomic::Ordering::Relaxed)
        } else {
            MAX_ERROR_BODY
        };
        let (status, headers, mut body) = (answer.status, answer.headers, answer.body);
        let bytes = match body.take_whole(limit, at) {
            Some(whole) => whole,
            // A body that did not come whole with its head (chunked, large, slow), within
            // the same deadline. Boxed: the rare case, and collecting it takes hundreds of
            // bytes.
            None => match within(deadline, Box::pin(read_upstream(body, limit)).as_mut()).await {
                Some(read) => read?,
                None => return Err(timed_out()),
            },
        };
        drop(guard);
        if !status.is_success() {
            return Err(Failure::of(upstream_error(
                &legs, target, status, &headers, &bytes,
            )));
        }
        if reservation.is_counted()
            && let Some(tokens) = crate::limits::usage_of(&bytes)
        {
            reservation.set_usage(tokens);
        }
        if legs.is_passthrough() {
            // A 200 whose body is not JSON is the deployment's failure, not an answer.
            if !crate::json::is_valid(&bytes) {
                return Err(Failure::retryable(ApiError::bad_gateway(format!(
                    "deployment {} answered with a body that is not JSON",
                    d.id
                ))));
            }
            let bytes = if endpoint == Endpoint::Responses {
                crate::responses::rewrite_answer(&d.id, bytes)
            } else {
                bytes
            };
            return Ok(Answered {
                response: Response::new(full(bytes)),
                content_type: Some(content_type_of(&headers, &APPLICATION_JSON)),
                at: Some(at),
            });
        }
        let answer = legs
            .response(front_cx.as_ref(), back_cx.as_ref(), bytes)
            .map_err(Failure::of)?;
        return Ok(Answered {
            response: Response::new(full(answer)),
            content_type: Some(APPLICATION_JSON.clone()),
            at: Some(at),
        });
    }

    // Streaming: headers and the first event within the first-byte timeout.
    let first_byte = Duration::from_millis(d.timeouts.stream_first_byte_ms);
    let idle = Duration::from_millis(d.timeouts.stream_idle_ms);
    let now = Instant::now();
    let deadline = tokio::time::Instant::from_std(now + first_byte);
    let timed_out = || {
        Failure::retryable(ApiError::timeout(format!(
            "deployment {} sent no first byte within {}ms",
            d.id, d.timeouts.stream_first_byte_ms
        )))
    };
    let resp = std::pin::pin!(client.request_at(req, now, Some(deadline)))
        .await
        .map_err(|e| request_failure(e, timed_out))?;
    let crate::client::Answer {
        status,
        headers,
        mut body,
        ..
    } = resp;
    if !status.is_success() {
        let bytes =
            match tokio::time::timeout_at(deadline, read_upstream(body, MAX_ERROR_BODY)).await {
                Ok(r) => r?,
                Err(_) => Bytes::new(),
            };
        return Err(Failure::of(upstream_error(
            &legs, target, status, &headers, &bytes,
        )));
    }
    let mut translator: Option<Box<dyn StreamTranslator>> = if endpoint == Endpoint::Responses {
        Some(Box::new(crate::responses::IdRewriter::new(&d.id)))
    } else {
        legs.stream(front_cx.as_ref(), back_cx.as_ref())
            .or_else(|| OpenAiStreamCheck::for_passthrough(endpoint, dialect))
    };
    let mut out = BytesMut::new();
    // The first event (translated: the first event the client would get), or the whole
    // stream when it ended within it.
    let (first, ended) = loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(timed_out()),
            Ok(None) => {
                if let Some(x) = translator.as_mut() {
                    x.finish(&mut out).map_err(Failure::of)?;
                    if !out.is_empty() {
                        break (out.split().freeze(), true);
                    }
                }
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
                Ok(data) if !data.is_empty() => match translator.as_mut() {
                    None => break (data, false),
                    Some(x) => {
                        x.feed(&data, &mut out).map_err(Failure::of)?;
                        if !out.is_empty() {
                            break (out.split().freeze(), false);
                        }
                    }
                },
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
    let mut usage = StreamUsage::new(reservation, strip_usage);
    tokio::spawn(async move {
        let _guard = guard;
        let mut first = usage.feed(first);
        if ended {
            first = [first, usage.finish()].concat().into();
        }
        if tx.send(Ok(http_body::Frame::data(first))).await.is_err() || ended {
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
            let error = match next {
                Ok(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let (data, error) = match translator.as_mut() {
                        None => (data, None),
                        Some(x) => {
                            let result = x.feed(&data, &mut out);
                            // What was translated before an error goes first.
                            (out.split().freeze(), result.err())
                        }
                    };
                    let data = usage.feed(data);
                    if !data.is_empty() && tx.send(Ok(http_body::Frame::data(data))).await.is_err()
                    {
                        // The client went away: dropping the upstream body cancels it.
                        return;
                    }
                    match error {
                        None => continue,
                        Some(e) => e,
                    }
                }
                Ok(None) => {
                    let Some(x) = translator.as_mut() else {
                        let rest = usage.finish();
                        if !rest.is_empty() {
                            let _ = tx.send(Ok(http_body::Frame::data(rest))).await;
                        }
                        return;
                    };
                    let result = x.finish(&mut out);
                    let rest = usage.feed(out.split().freeze());
                    let rest: Bytes = [rest, usage.finish()].concat().into();
                    if !rest.is_empty() {
                        let _ = tx.send(Ok(http_body::Frame::data(rest))).await;
                    }
                    match result {
                        Ok(()) => return,
                        Err(e) => e,
                    }
                }
                Ok(Some(Err(e))) => {
                    ApiError::bad_gateway(format!("deployment {id} failed mid-stream: {e}"))
                }
                Err(_) => ApiError::bad_gateway(format!(
                    "deployment {id} sent nothing for {}ms",
                    idle.as_millis()
                )),
            };
            if error.is_retryable() {
                failed();
            }
            let event = stream_error_event(dialect, &error, translator.as_deref_mut());
            let _ = tx.send(Ok(event)).await;
            return;
        }
    });
    let stream = tokio_stream_from(rx);
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    if legs.is_passthrough() {
        copy_content_type(&headers, resp.headers_mut(), &EVENT_STREAM);
    } else {
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(resp.into())
}

/// Checks and reserves deployment `t`'s rate limits for this request (the token
/// estimate is computed once, and only for a deployment with a tpm limit). `Err` when the
/// deployment is at a limit.
async fn reserve(
    router: &Router,
    t: usize,
    body: &Bytes,
    estimate: &mut Option<u64>,
) -> Result<Reservation, Duration> {
    let target = &router.targets[t];
    let limits = &target.spec.limits;
    let tokens = match limits.tpm {
        Some(_) => *estimate.get_or_insert_with(|| crate::limits::estimate_tokens(body)),
        None => 0,
    };
    router
        .limiter
        .reserve(
            &target.spec.id,
            limits,
            &target.state.limits,
            tokens,
            router.settings().routing_strategy
                == modelgate_dataplane_api::RoutingStrategy::LeastBusy,
        )
        .await
        .map_err(|denied| {
            tracing::debug!(
                deployment = %target.spec.id,
                limit = ?denied.exceeded,
                retry_after_ms = denied.retry_after.as_millis() as u64,
                "deployment at its rate limit"
            );
            denied.retry_after
        })
}

/// A JSON answer.
fn json_answer(bytes: Bytes) -> Response<Body> {
    let mut resp = Response::new(full(bytes));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Translates an answer made in-process (the mock provider): whole, or as a stream
/// translated frame by frame.
async fn translate_local(
    answer: Response<Body>,
    legs: Legs,
    front_cx: Option<ResponseContext>,
    back_cx: Option<ResponseContext>,
    dialect: Dialect,
) -> Result<Response<Body>, ApiError> {
    let (parts, body) = answer.into_parts();
    let streaming = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !parts.status.is_success() {
        let bytes = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        return Err(legs.error(parts.status, &parts.headers, &bytes, None));
    }
    match legs.stream(front_cx.as_ref(), back_cx.as_ref()) {
        Some(translator) if streaming => {
            let mut resp = Response::new(translated_body(body, translator, dialect));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            Ok(resp)
        }
        _ => {
            let bytes = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .map_err(|e| ApiError::internal(format!("the answer failed: {e}")))?;
            Ok(json_answer(legs.response(
                front_cx.as_ref(),
                back_cx.as_ref(),
                bytes,
            )?))
        }
    }
}

/// `body` translated frame by frame; a translation error ends it with an error event.
fn translated_body(body: Body, translator: Box<dyn StreamTranslator>, dialect: Dialect) -> Body {
    struct State {
        body: Body,
        translator: Box<dyn StreamTranslator>,
        out: BytesMut,
        ended: bool,
    }
    let state = State {
        body,
        translator,
        out: BytesMut::new(),
        ended: false,
    };
    let frames = futures_util::stream::unfold(state, move |mut s| async move {
        loop {
            if s.ended {
                return None;
            }
            let result = match s.body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => s.translator.feed(&data, &mut s.out),
                    Err(_) => Ok(()),
                },
                Some(Err(e)) => Err(ApiError::bad_gateway(format!("the answer failed: {e}"))),
                None => {
                    s.ended = true;
                    s.translator.finish(&mut s.out)
                }
            };
            if let Err(e) = result {
                s.ended = true;
                let mut bytes = s.out.split();
                let event = stream_error_event(dialect, &e, Some(s.translator.as_mut()));
                if let Ok(data) = event.into_data() {
                    bytes.extend_from_slice(&data);
                }
                return Some((Ok::<_, BoxError>(http_body::Frame::data(bytes.freeze())), s));
            }
            if !s.out.is_empty() {
                let data = s.out.split().freeze();
                return Some((Ok(http_body::Frame::data(data)), s));
            }
        }
    });
    StreamBody::new(frames).boxed_unsync()
}

/// An SSE event carrying an error, ending a stream that already began: the stream's own
/// when its API has one (the Responses API's `event: error`, see
/// [`StreamTranslator::error_event`]), else the client dialect's: OpenAI's
/// `data: {"error": …}`, or Anthropic's `event: error`.
fn stream_error_event(
    dialect: Dialect,
    error: &ApiError,
    translator: Option<&mut (dyn StreamTranslator + 'static)>,
) -> http_body::Frame<Bytes> {
    let mut event = BytesMut::new();
    if let Some(x) = translator
        && x.error_event(error, &mut event)
    {
        return http_body::Frame::data(event.freeze());
    }
    let json = error.to_json_as(dialect);
    event.reserve(json.len() + 24);
    match dialect {
        Dialect::OpenAi => crate::sse::write_data(&mut event, &json),
        Dialect::Anthropic => crate::sse::write_event(&mut event, "error", &json),
    }
    http_body::Frame::data(event.freeze())
}

/// Checks an OpenAI stream passed through as it is (chat and completions): events are
/// forwarded whole once complete, each `data:` must be JSON or `[DONE]`, and the stream
/// must end with `[DONE]` (or an error event of the upstream's own). A broken stream is
/// the deployment's failure: retried before the first event, an error event after it —
/// never garbage or a cut stream passed on as if whole.
struct OpenAiStreamCheck {
    decoder: crate::sse::Decoder,
    done: bool,
    last_was_error: bool,
}

impl OpenAiStreamCheck {
    fn for_passthrough(endpoint: Endpoint, dialect: Dialect) -> Option<Box<dyn StreamTranslator>> {
        let openai = dialect == Dialect::OpenAi
            && matches!(endpoint, Endpoint::Chat | Endpoint::Completions);
        openai.then(|| {
            Box::new(OpenAiStreamCheck {
                decoder: crate::sse::Decoder::default(),
                done: false,
                last_was_error: false,
            }) as Box<dyn StreamTranslator>
        })
    }

    fn event(&mut self, event: &crate::sse::Event, out: &mut BytesMut) -> Result<(), ApiError> {
        if self.done {
            // Anything after `[DONE]` is dropped.
            return Ok(());
        }
        if event.data.as_ref() == b"[DONE]" {
            self.done = true;
        } else {
            let value: serde_json::Value = serde_json::from_slice(&event.data).map_err(|_| {
                ApiError::bad_gateway("the upstream sent a stream event that is not JSON")
            })?;
            self.last_was_error = value.get("error").is_some();
        }
        match event.name.as_deref() {
            Some(name) if !name.is_empty() => {
                crate::sse::write_event(out, event.name_str(), &event.data);
            }
            _ => crate::sse::write_data(out, &event.data),
        }
        Ok(())
    }
}

impl StreamTranslator for OpenAiStreamCheck {
    fn feed(&mut self, bytes: &[u8], out: &mut BytesMut) -> Result<(), ApiError> {
        self.decoder.push(bytes);
        while let Some(event) = self
            .decoder
            .next_event()
            .map_err(|e| ApiError::bad_gateway(e.to_string()))?
        {
            self.event(&event, out)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut BytesMut) -> Result<(), ApiError> {
        if let Some(event) = self.decoder.finish() {
            self.event(&event, out)?;
        }
        if self.done || self.last_was_error {
            Ok(())
        } else {
            Err(ApiError::bad_gateway(
                "the upstream ended the stream without [DONE]",
            ))
        }
    }
}

fn tokio_stream_from(
    rx: mpsc::Receiver<Result<http_body::Frame<Bytes>, BoxError>>,
) -> impl futures_util::Stream<Item = Result<http_body::Frame<Bytes>, BoxError>> {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed()
}

/// A request that got no answer head: `timed_out` when its deadline passed, else the
/// connection's failure.
fn request_failure(e: RequestError, timed_out: impl FnOnce() -> Failure) -> Failure {
    match e {
        RequestError::TimedOut => timed_out(),
        e => Failure::retryable(ApiError::bad_gateway(format!(
            "upstream connection failed: {e}"
        ))),
    }
}

async fn read_upstream(mut body: UpstreamBody, limit: usize) -> Result<Bytes, Failure> {
    if let Some(whole) = body.take_whole(limit, Instant::now()) {
        return Ok(whole);
    }
    let limited = http_body_util::Limited::new(body, limit);
    limited.collect().await.map(|c| c.to_bytes()).map_err(|e| {
        if e.downcast_ref::<http_body_util::LengthLimitError>()
            .is_some()
        {
            return Failure::retryable(ApiError::bad_gateway(format!(
                "the upstream's answer is larger than the gateway's limit of {limit} bytes"
            )));
        }
        Failure::retryable(ApiError::bad_gateway(format!("upstream body failed: {e}")))
    })
}

/// The wait an upstream asked for: OpenAI's `retry-after-ms`, else `Retry-After` in
/// seconds (an HTTP-date is not honoured: the default backoff applies).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let read = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    if let Some(ms) = read("retry-after-ms").filter(|v| v.is_finite() && *v >= 0.0) {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    read("retry-after")
        .filter(|v| v.is_finite() && *v >= 0.0 && *v < 86_400.0)
        .map(Duration::from_secs_f64)
}

fn copy_content_type(from: &RawHeaders, to: &mut HeaderMap, default: &'static HeaderValue) {
    to.insert(header::CONTENT_TYPE, content_type_of(from, default));
}

/// `application/json`, checked once (`HeaderValue::from_static` checks every byte each
/// time it runs); a clone shares the static bytes.
static APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
/// `text/event-stream`, as [`APPLICATION_JSON`].
static EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");

/// An upstream answer's content type, `default` when it has none.
fn content_type_of(from: &RawHeaders, default: &'static HeaderValue) -> HeaderValue {
    from.value_or("content-type", &APPLICATION_JSON)
        .unwrap_or_else(|| default.clone())
}

/// An upstream's error answer as the client's error (the key cut out); the translators
/// read its headers whole.
fn upstream_error(
    legs: &crate::providers::Legs,
    target: &Target,
    status: http::StatusCode,
    headers: &RawHeaders,
    bytes: &Bytes,
) -> ApiError {
    let headers = headers.to_map();
    crate::health::redact_error(
        legs.error(status, &headers, bytes, retry_after(&headers)),
        target,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(body: &str) -> Result<(String, bool), (u16, Option<String>, String)> {
        read_head(Endpoint::Chat, body.as_bytes())
            .map(|h| (h.model.into_owned(), h.stream))
            .map_err(|e| (e.status.as_u16(), e.param.clone(), e.message.clone()))
    }

    #[test]
    fn model_and_stream_are_read_and_the_rest_skipped() {
        assert_eq!(
            head(r#"{"messages":[{"role":"user","content":"hi"}],"model":"gpt","stream":true}"#),
            Ok(("gpt".into(), true))
        );
        assert_eq!(
            head(r#"{"model":"g\"p\u0074"}"#),
            Ok(("g\"pt".into(), false))
        );
        assert_eq!(
            head(r#"{"model":"m","stream":null,"x":{"a":[1,2,{"b":null}]}}"#),
            Ok(("m".into(), false))
        );
    }

    #[test]
    fn a_borrowed_model_is_not_copied() {
        let body = br#"{"model":"plain"}"#;
        let h = read_head(Endpoint::Chat, body).expect("valid");
        assert!(matches!(h.model, std::borrow::Cow::Borrowed("plain")));
    }

    #[test]
    fn wrong_types_name_their_parameter() {
        for body in [
            r#"{"model":1}"#,
            r#"{"model":true}"#,
            r#"{"model":["a"]}"#,
            r#"{"model":{"a":"b"}}"#,
        ] {
            let (status, param, _) = head(body).expect_err(body);
            assert_eq!((status, param.as_deref()), (400, Some("model")), "{body}");
        }
        for body in [
            r#"{"model":"m","stream":"yes"}"#,
            r#"{"model":"m","stream":1}"#,
            r#"{"model":"m","stream":[true]}"#,
            r#"{"model":"m","stream":{}}"#,
        ] {
            let (status, param, _) = head(body).expect_err(body);
            assert_eq!((status, param.as_deref()), (400, Some("stream")), "{body}");
        }
        for body in [r#"{}"#, r#"{"model":null}"#] {
            let (status, param, _) = head(body).expect_err(body);
            assert_eq!((status, param.as_deref()), (400, Some("model")), "{body}");
        }
    }

    #[test]
    fn the_one_pass_read_equals_serde_json_s() {
        for body in [
            r#"{"messages":[{"role":"user","content":"hi \u00e9 \"q\""}],"model":"gpt","stream":false}"#,
            r#"{"model":"g\"pt"}"#,
            r#"{"mod\u0065l":"escaped key"}"#,
            r#"{"model":"a","model":"b"}"#,
            r#"{"model":"a","stream":true,"stream":null}"#,
            r#"{"model":null,"stream":null}"#,
            r#"{"model":"m","stream":"true"}"#,
            r#"{"model":"m","n":01}"#,
            r#"{"model":"m","x":"\u12"}"#,
            r#"["gpt", true]"#,
            r#" {"model" : "spaced" , "stream" : true } "#,
            "{\"model\":\"m\",\"k\":\"\u{1}\"}",
            r#"{"model":"m","stream":"\ud800"}"#,
            r#"{"model":"m","stream":"plain"}"#,
            r#"{"model":"m","stream":1e999}"#,
            r#"{"model":1e999}"#,
            r#"{"model":-0.5,"stream":true}"#,
            r#"{"model":"\ud800x"}"#,
            r#"{"model":false}"#,
        ] {
            let expected = read_head_slow(Endpoint::Chat, body.as_bytes())
                .map_err(|e| (e.status, e.param, e.message));
            let got = read_head(Endpoint::Chat, body.as_bytes())
                .map_err(|e| (e.status, e.param, e.message));
            assert_eq!(got, expected, "{body}");
        }
        let bytes = b"{\"model\":\"m\xff\"}";
        assert_eq!(
            read_head(Endpoint::Chat, bytes).map_err(|e| e.message),
            read_head_slow(Endpoint::Chat, bytes).map_err(|e| e.message)
        );
        let bytes = b"{\"model\":\"m\",\"stream\":\"y\xffes\"}";
        assert_eq!(
            read_head(Endpoint::Chat, bytes).map_err(|e| e.message),
            read_head_slow(Endpoint::Chat, bytes).map_err(|e| e.message)
        );
        let bytes = b"{\"\xff\":1,\"model\":\"m\"}";
        assert_eq!(
            read_head(Endpoint::Chat, bytes).map_err(|e| e.message),
            read_head_slow(Endpoint::Chat, bytes).map_err(|e| e.message)
        );
    }

    #[test]
    fn broken_json_is_a_400() {
        for body in [
            "",
            "{",
            r#"{"model":"m""#,
            "[1]",
            "\"m\"",
            r#"{"model":"m",}"#,
        ] {
            let (status, _, _) = head(body).expect_err(body);
            assert_eq!(status, 400, "{body}");
        }
    }
}
