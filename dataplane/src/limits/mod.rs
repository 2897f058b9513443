//! Per-deployment `rpm`, `tpm` and fleet-wide `maxConcurrentRequests`, held across
//! replicas (issue 8).
//!
//! - **Windows**: fixed, aligned on multiples of the window length (`--limit-window-seconds`,
//!   60 by default; tests shorten it) since the Unix epoch, so pods and Redis agree on them.
//!   `Retry-After` for a deployment at its limit is the end of the current window.
//! - **Before the call** a request is checked and reserved: one request, and an estimate of
//!   its tokens ([`estimate_tokens`]: the characters of its prompt text / 4, plus its
//!   `max_tokens`). **After the call** the estimate is replaced by the upstream's reported
//!   usage ([`Reservation::set_usage`]); a request that was never sent is given back.
//! - **Without Redis** each pod enforces its share: the limit divided by the fleet size the
//!   operator sends (`PUT /v1/fleet`: Ready gateway pods; 1 until told, and in local mode),
//!   rounded down and never below 1; `--limit-divisor N` fixes the divisor instead (a
//!   sidecar that should get a set share). A fleet-wide `maxConcurrentRequests` is divided
//!   the same way; a per-pod one applies as written.
//! - **With Redis** ([`redis`]) one script round trip checks and reserves against the whole
//!   fleet's counts. Redis unreachable or slower than [`REDIS_TIMEOUT`]: the request is
//!   decided on local shares instead, counted in `modelgate_limits_redis_fallbacks_total`
//!   and logged (at most once per 10 s); Redis is not asked again for a second.

pub mod local;
pub mod redis;

use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use modelgate_dataplane_api::{ConcurrencyScope, Fleet, Limits};
use serde_json::{Value, json};

pub use local::{Counters, Exceeded, Shares};

/// Longest wait for Redis before deciding on local shares.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(50);
/// How long Redis is left alone after a failure before it is asked again.
const REDIS_BACKOFF_MS: u64 = 1_000;
/// Least time between two log lines about Redis trouble.
const LOG_EVERY_MS: u64 = 10_000;
/// How long the fleet's in-flight counts Redis reported are used by `least-busy`.
const FLEET_VIEW_FRESH_MS: u64 = 2_000;

/// Milliseconds since the Unix epoch; injected so that windows can be tested.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now.
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock that moves only when told (tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock at `ms`.
    pub fn at(ms: u64) -> Self {
        Self(AtomicU64::new(ms))
    }

    /// Moves the clock forward.
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Why a request may not go to a deployment now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Denied {
    /// The limit reached.
    pub exceeded: Exceeded,
    /// When to try again.
    pub retry_after: Duration,
}

/// Counters of the limiter, for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests answered 429 because every deployment they could go to was at a rate
    /// limit.
    pub rejected: AtomicU64,
    /// Decisions made on local shares because Redis failed or was slow.
    pub redis_fallbacks: AtomicU64,
    /// Decisions Redis made.
    pub redis_decisions: AtomicU64,
    last_log_ms: AtomicU64,
}

/// The limiter of one pod: options, fleet size, the Redis connection, and its clock.
/// Per-deployment counters live with the deployment's state ([`Counters`]).
#[derive(Debug)]
pub struct Limiter {
    clock: Arc<dyn Clock>,
    window_ms: AtomicU64,
    /// Fixed divisor of the limits (0: the operator's gateway count).
    divisor_override: AtomicU32,
    fleet: Mutex<Fleet>,
    gateways: AtomicU32,
    redis: ArcSwapOption<redis::Shared>,
    /// The Redis URL configured (a secret: never logged, never served).
    redis_url: Mutex<Option<String>>,
    pod: String,
    /// Counters for `/metrics`.
    pub stats: Stats,
    redis_down: AtomicBool,
}

impl Default for Limiter {
    fn default() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }
}

impl Limiter {
    /// A limiter on `clock`, with a 60 s window and a fleet of one.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            window_ms: AtomicU64::new(60_000),
            divisor_override: AtomicU32::new(0),
            fleet: Mutex::new(Fleet::default()),
            gateways: AtomicU32::new(1),
            redis: ArcSwapOption::empty(),
            redis_url: Mutex::new(None),
            pod: format!("{:016x}", fastrand::u64(..)),
            stats: Stats::default(),
            redis_down: AtomicBool::new(false),
        }
    }

    /// Sets the window length (at least 1 s is sensible; at least 1 ms is enforced).
    pub fn set_window(&self, window: Duration) {
        self.window_ms
            .store((window.as_millis() as u64).max(1), Ordering::Relaxed);
    }

    /// The window length.
    pub fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms())
    }

    fn window_ms(&self) -> u64 {
        self.window_ms.load(Ordering::Relaxed)
    }

    /// Divides limits by `n` whatever the operator says (`None`: by the gateway count).
    pub fn set_divisor(&self, n: Option<u32>) {
        self.divisor_override
            .store(n.unwrap_or(0), Ordering::Relaxed);
    }

    /// What limits are divided by without Redis.
    pub fn divisor(&self) -> u64 {
        match self.divisor_override.load(Ordering::Relaxed) {
            0 => u64::from(self.gateways.load(Ordering::Relaxed).max(1)),
            n => u64::from(n),
        }
    }

    /// Sets the fleet size (from `PUT /v1/fleet`).
    pub fn set_fleet(&self, fleet: Fleet) {
        let mut f = self.fleet.lock().unwrap_or_else(|p| p.into_inner());
        if *f != fleet {
            tracing::info!(
                gateways = fleet.gateways,
                sidecars = fleet.sidecars,
                "fleet size changed"
            );
        }
        *f = fleet;
        self.gateways
            .store(fleet.gateways.max(1), Ordering::Relaxed);
    }

    /// The fleet size, the divisor in force and the Redis state, as `GET /v1/fleet` shows
    /// them (never the Redis URL).
    pub fn describe(&self) -> Value {
        let fleet = *self.fleet.lock().unwrap_or_else(|p| p.into_inner());
        json!({
            "gateways": fleet.gateways,
            "sidecars": fleet.sidecars,
            "divisor": self.divisor(),
            "windowMs": self.window_ms(),
            "redis": self.redis_state(),
        })
    }

    /// `off` (no Redis URL), `ok`, or `fallback` (Redis failing: local shares).
    pub fn redis_state(&self) -> &'static str {
        match self.redis.load().as_ref() {
            None => "off",
            Some(_) if self.redis_usable() => "ok",
            Some(_) => "fallback",
        }
    }

    fn redis_usable(&self) -> bool {
        self.redis
            .load()
            .as_ref()
            .is_some_and(|r| r.usable(self.clock.now_ms()))
    }

    /// The Redis connection, when one is configured and usable now (health checks share
    /// their verdicts through it).
    pub fn redis_now(&self) -> Option<Arc<redis::Shared>> {
        let now = self.clock.now_ms();
        self.redis.load_full().filter(|r| r.usable(now))
    }

    /// Uses Redis at `url` for shared counters (`None`: none). A new table with the same URL
    /// keeps the connection.
    pub fn configure_redis(&self, url: Option<&str>) {
        let mut current = self.redis_url.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_deref() == url {
            return;
        }
        *current = url.map(str::to_owned);
        let shared = url.and_then(|url| match redis::Shared::new(url, self.pod.clone()) {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                tracing::warn!("the Redis URL is not usable, limits are enforced per pod: {e}");
                None
            }
        });
        if let Some(s) = &shared {
            tracing::info!("limits shared through Redis");
            s.start();
        }
        self.redis.store(shared);
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The current window's index and when it ends (ms since the epoch).
    fn window_at(&self, now_ms: u64) -> (u64, u64) {
        let w = self.window_ms();
        let index = now_ms / w;
        (index, (index + 1) * w)
    }

    /// This pod's shares of `limits` when deciding locally.
    pub fn shares(&self, limits: &Limits) -> Shares {
        let d = self.divisor();
        let share = |l: u64| (l / d).max(1);
        Shares {
            rpm: limits.rpm.map(share),
            tpm: limits.tpm.map(share),
        }
    }

    /// Most requests this pod may have in flight at a deployment, `None` for no limit.
    /// Fleet-wide limits are divided like rpm unless Redis holds the fleet's count (then
    /// the script enforces them and a pod may take up to the whole limit).
    pub fn max_in_flight(&self, limits: &Limits) -> Option<u64> {
        let max = limits.max_concurrent_requests?;
        Some(match limits.concurrency_scope {
            ConcurrencyScope::Pod => max,
            ConcurrencyScope::Fleet if self.redis_usable() => max,
            ConcurrencyScope::Fleet => (max / self.divisor()).max(1),
        })
    }

    /// Whether a deployment may be picked now (no tokens reserved; [`Limiter::reserve`]
    /// decides for real). `Err` says when it may be picked again.
    pub fn admits(&self, limits: &Limits, counters: &Counters) -> Result<(), u64> {
        if limits.rpm.is_none() && limits.tpm.is_none() {
            return Ok(());
        }
        let now = self.now_ms();
        if let Some(until) = counters.refused_until(now) {
            return Err(until);
        }
        if self.redis_usable() {
            return Ok(());
        }
        let (index, end) = self.window_at(now);
        counters
            .check(index, self.shares(limits), 0)
            .map_err(|_| end)
    }

    /// When the deployment may be picked again, if it is at a limit now.
    pub fn limited_until(&self, limits: &Limits, counters: &Counters) -> Option<Duration> {
        let until = self.admits(limits, counters).err()?;
        Some(Duration::from_millis(until.saturating_sub(self.now_ms())))
    }

    /// Current use of the deployment relative to its limits (the larger of rpm and tpm),
    /// for `usage-based` routing: the fleet's when Redis reported it, else this pod's
    /// against its shares. 0 for a deployment without rpm or tpm.
    pub fn usage_ratio(&self, limits: &Limits, counters: &Counters) -> f64 {
        if limits.rpm.is_none() && limits.tpm.is_none() {
            return 0.0;
        }
        let (index, _) = self.window_at(self.now_ms());
        let (requests, tokens, shares) = match counters.fleet_usage(index) {
            Some((r, t)) if self.redis_usable() => (
                r,
                t,
                Shares {
                    rpm: limits.rpm,
                    tpm: limits.tpm,
                },
            ),
            _ => {
                let (r, t) = counters.usage(index);
                (r, t, self.shares(limits))
            }
        };
        let ratio =
            |used: u64, limit: Option<u64>| limit.map_or(0.0, |l| used as f64 / l.max(1) as f64);
        ratio(requests, shares.rpm).max(ratio(tokens, shares.tpm))
    }

    /// Requests in flight at the deployment on other pods, as Redis last reported (0
    /// without Redis), for `least-busy`.
    pub fn others_in_flight(&self, counters: &Counters) -> u64 {
        if self.redis.load().is_none() {
            return 0;
        }
        counters.others_in_flight(self.now_ms(), FLEET_VIEW_FRESH_MS)
    }

    /// Checks and reserves one request of `estimate` tokens at deployment `id`: against
    /// the fleet's counts in Redis when it answers in time, else against this pod's
    /// shares. The reservation, settled with the real usage, is given back when dropped.
    /// `share_in_flight` (`least-busy`) sends even an unlimited deployment's requests
    /// through Redis, so that every pod sees the fleet's requests in flight.
    pub async fn reserve(
        self: &Arc<Self>,
        id: &str,
        limits: &Limits,
        counters: &Arc<Counters>,
        estimate: u64,
        share_in_flight: bool,
    ) -> Result<Reservation, Denied> {
        let fleet_concurrency = match limits.concurrency_scope {
            ConcurrencyScope::Fleet => limits.max_concurrent_requests,
            ConcurrencyScope::Pod => None,
        };
        let counted = limits.rpm.is_some() || limits.tpm.is_some();
        let redis = self.redis.load_full();
        if !counted && ((fleet_concurrency.is_none() && !share_in_flight) || redis.is_none()) {
            return Ok(Reservation(None));
        }
        let now = self.now_ms();
        if let Some(redis) = redis.filter(|r| r.usable(now)) {
            let ask = redis::Ask {
                deployment: id,
                window_ms: self.window_ms(),
                rpm: limits.rpm,
                tpm: limits.tpm,
                concurrency: fleet_concurrency,
                estimate,
            };
            match tokio::time::timeout(REDIS_TIMEOUT, redis.reserve(&ask)).await {
                Ok(Ok(answer)) => {
                    redis.healthy();
                    self.redis_down.store(false, Ordering::Relaxed);
                    self.stats.redis_decisions.fetch_add(1, Ordering::Relaxed);
                    let local_index = now / self.window_ms();
                    if answer.refused.is_none() {
                        redis.hold(id);
                    }
                    let own = redis.own_in_flight(id);
                    counters.set_fleet(
                        local_index,
                        (answer.requests, answer.tokens),
                        answer.in_flight,
                        own,
                        now,
                    );
                    if let Some(exceeded) = answer.refused {
                        let wait = match exceeded {
                            Exceeded::Concurrency => 1_000,
                            _ => answer.reset_in_ms.max(1),
                        };
                        counters.refuse_until(now + wait);
                        return Err(Denied {
                            exceeded,
                            retry_after: Duration::from_millis(wait),
                        });
                    }
                    if counted {
                        counters.count(local_index, estimate);
                    }
                    return Ok(Reservation(Some(Arc::new(Held {
                        counted,
                        counters: Arc::clone(counters),
                        index: local_index,
                        estimate,
                        usage: AtomicU64::new(NO_USAGE),
                        cancelled: AtomicBool::new(false),
                        redis: Some((redis, id.to_owned(), answer.window)),
                    }))));
                }
                Ok(Err(e)) => self.redis_failed(&redis, &e.to_string()),
                Err(_) => self.redis_failed(
                    &redis,
                    &format!("no answer within {}ms", REDIS_TIMEOUT.as_millis()),
                ),
            }
        }
        if !counted {
            return Ok(Reservation(None));
        }
        let (index, end) = self.window_at(now);
        match counters.reserve(index, self.shares(limits), estimate) {
            Ok(()) => Ok(Reservation(Some(Arc::new(Held {
                counted: true,
                counters: Arc::clone(counters),
                index,
                estimate,
                usage: AtomicU64::new(NO_USAGE),
                cancelled: AtomicBool::new(false),
                redis: None,
            })))),
            Err(exceeded) => Err(Denied {
                exceeded,
                retry_after: Duration::from_millis(end.saturating_sub(now).max(1)),
            }),
        }
    }

    fn redis_failed(&self, redis: &Arc<redis::Shared>, why: &str) {
        let now = self.now_ms();
        redis.failed(now + REDIS_BACKOFF_MS);
        self.redis_down.store(true, Ordering::Relaxed);
        self.stats.redis_fallbacks.fetch_add(1, Ordering::Relaxed);
        let last = self.stats.last_log_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= LOG_EVERY_MS
            && self
                .stats
                .last_log_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                "Redis failed ({why}): limits fall back to this pod's share (1/{}) until it answers again",
                self.divisor()
            );
        }
    }

    /// The limiter's lines for `/metrics`.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let s = &self.stats;
        let _ = write!(
            out,
            "# HELP modelgate_limits_rejected_total Requests answered 429 because every deployment they could go to was at a rate limit.\n# TYPE modelgate_limits_rejected_total counter\nmodelgate_limits_rejected_total {}\n\
             # HELP modelgate_limits_redis_fallbacks_total Limit decisions made on local shares because Redis failed or was slow.\n# TYPE modelgate_limits_redis_fallbacks_total counter\nmodelgate_limits_redis_fallbacks_total {}\n\
             # HELP modelgate_limits_redis_decisions_total Limit decisions made by Redis.\n# TYPE modelgate_limits_redis_decisions_total counter\nmodelgate_limits_redis_decisions_total {}\n\
             # HELP modelgate_limits_redis_up 1 when Redis holds the limits, 0 when they fall back to local shares or no Redis is configured.\n# TYPE modelgate_limits_redis_up gauge\nmodelgate_limits_redis_up {}\n\
             # HELP modelgate_limits_divisor What limits are divided by without Redis (the gateway count).\n# TYPE modelgate_limits_divisor gauge\nmodelgate_limits_divisor {}\n",
            s.rejected.load(Ordering::Relaxed),
            s.redis_fallbacks.load(Ordering::Relaxed),
            s.redis_decisions.load(Ordering::Relaxed),
            u8::from(self.redis_state() == "ok"),
            self.divisor(),
        );
    }
}

/// `GET /v1/fleet` (the fleet size, the divisor in force, the Redis state) and
/// `PUT /v1/fleet` (the operator's count, [`Fleet`]) on the admin API.
pub async fn fleet_endpoint(
    limiter: &Limiter,
    req: http::Request<crate::body::RequestBody>,
) -> http::Response<crate::body::Body> {
    use crate::errors::ApiError;
    use http_body_util::BodyExt;
    let json = |value: &Value| {
        let mut resp = http::Response::new(crate::body::json(value));
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        resp
    };
    match *req.method() {
        http::Method::GET => json(&limiter.describe()),
        http::Method::PUT => {
            let body = match http_body_util::Limited::new(req.into_body(), 64 * 1024)
                .collect()
                .await
            {
                Ok(b) => b.to_bytes(),
                Err(e) => {
                    return ApiError::bad_request(format!("cannot read the body: {e}"))
                        .into_response();
                }
            };
            match serde_json::from_slice::<Fleet>(&body) {
                Ok(fleet) => {
                    limiter.set_fleet(fleet);
                    json(&limiter.describe())
                }
                Err(e) => ApiError::bad_request(format!(
                    "the body must be {{\"gateways\": <count>, \"sidecars\": <count>}}: {e}"
                ))
                .into_response(),
            }
        }
        ref method => ApiError::method_not_allowed(method, "/v1/fleet").into_response(),
    }
}

/// Usage not reported (yet).
const NO_USAGE: u64 = u64::MAX;

/// A request counted against a deployment's limits. Clones share it; when the last one
/// drops, the counts are settled: the estimate replaced by the reported usage (kept when
/// none was reported), the request given back when it was never sent, and the in-flight
/// count in Redis released.
#[derive(Clone, Debug, Default)]
pub struct Reservation(Option<Arc<Held>>);

#[derive(Debug)]
struct Held {
    /// Counted in the local window too (rpm or tpm set).
    counted: bool,
    counters: Arc<Counters>,
    index: u64,
    estimate: u64,
    usage: AtomicU64,
    cancelled: AtomicBool,
    /// Redis, the deployment id and Redis's window index.
    redis: Option<(Arc<redis::Shared>, String, u64)>,
}

impl Reservation {
    /// True when the request counts against some limit (its usage is worth reading).
    pub fn is_counted(&self) -> bool {
        self.0.is_some()
    }

    /// The tokens the upstream reported using.
    pub fn set_usage(&self, tokens: u64) {
        if let Some(h) = &self.0 {
            h.usage.store(tokens.min(NO_USAGE - 1), Ordering::Relaxed);
        }
    }

    /// The request was never sent: give the request and its tokens back.
    pub fn cancel(&self) {
        if let Some(h) = &self.0 {
            h.cancelled.store(true, Ordering::Relaxed);
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let cancelled = self.cancelled.load(Ordering::Relaxed);
        let estimate = i64::try_from(self.estimate).unwrap_or(i64::MAX);
        let delta = if cancelled {
            -estimate
        } else {
            match self.usage.load(Ordering::Relaxed) {
                NO_USAGE => 0,
                used => i64::try_from(used).unwrap_or(i64::MAX) - estimate,
            }
        };
        if self.counted {
            self.counters.settle(self.index, delta, cancelled);
        }
        if let Some((redis, id, window)) = self.redis.take() {
            redis.settle(id, window, delta, cancelled);
        }
    }
}

/// A cheap estimate of a request's tokens: the characters of its prompt text (message
/// contents and text parts, `system`, `prompt`, `input`, `instructions`) divided by 4,
/// plus the output it allows (`max_tokens`, `max_completion_tokens` or
/// `max_output_tokens`; 0 when none is set, so output is counted only once reported).
/// Images and other non-text parts count nothing.
pub fn estimate_tokens(body: &[u8]) -> u64 {
    #[derive(serde::Deserialize, Default)]
    #[serde(default)]
    struct Req {
        messages: Option<Value>,
        system: Option<Value>,
        prompt: Option<Value>,
        input: Option<Value>,
        instructions: Option<Value>,
        max_tokens: Option<u64>,
        max_completion_tokens: Option<u64>,
        max_output_tokens: Option<u64>,
    }
    fn chars(v: &Value) -> usize {
        match v {
            Value::String(s) => s.chars().count(),
            Value::Array(items) => items.iter().map(chars).sum(),
            Value::Object(o) => ["content", "text", "input_text"]
                .iter()
                .filter_map(|k| o.get(*k))
                .map(chars)
                .sum(),
            _ => 0,
        }
    }
    let Ok(r) = serde_json::from_slice::<Req>(body) else {
        return 0;
    };
    let text: usize = [&r.messages, &r.system, &r.prompt, &r.input, &r.instructions]
        .into_iter()
        .flatten()
        .map(chars)
        .sum();
    let out = r
        .max_tokens
        .or(r.max_completion_tokens)
        .or(r.max_output_tokens)
        .unwrap_or(0);
    (text as u64).div_ceil(4).saturating_add(out)
}

/// The total tokens in a JSON answer's `usage` (OpenAI's `total_tokens`, or its prompt
/// and completion tokens, or Anthropic's input and output tokens).
pub fn usage_of(answer: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Answer {
        usage: Option<Value>,
    }
    let a: Answer = serde_json::from_slice(answer).ok()?;
    usage_tokens(a.usage.as_ref()?)
}

/// The total tokens of a `usage` object.
pub fn usage_tokens(usage: &Value) -> Option<u64> {
    let get = |k: &str| usage.get(k).and_then(Value::as_u64);
    if let Some(t) = get("total_tokens") {
        return Some(t);
    }
    let pair = |a: &str, b: &str| match (get(a), get(b)) {
        (None, None) => None,
        (x, y) => Some(x.unwrap_or(0) + y.unwrap_or(0)),
    };
    pair("prompt_tokens", "completion_tokens").or_else(|| {
        pair("input_tokens", "output_tokens").map(|t| {
            t + get("cache_creation_input_tokens").unwrap_or(0)
                + get("cache_read_input_tokens").unwrap_or(0)
        })
    })
}

/// Watches the client's side of a stream for usage, and strips OpenAI's usage-only chunk
/// (`"choices": []` with `usage`) when the client did not ask for it (the data plane
/// asked the upstream for it to count tokens). Events are passed through whole: bytes of
/// an event split across frames wait for its end.
#[derive(Debug)]
pub struct UsageTap {
    strip: bool,
    pending: Vec<u8>,
    /// Tokens seen so far: the latest total (OpenAI), or input + output (Anthropic).
    input: u64,
    output: u64,
    total: Option<u64>,
}

impl UsageTap {
    /// A tap; `strip` removes the usage-only chunk.
    pub fn new(strip: bool) -> Self {
        Self {
            strip,
            pending: Vec::new(),
            input: 0,
            output: 0,
            total: None,
        }
    }

    /// Passes `data` through, returning what goes to the client now.
    pub fn feed(&mut self, data: &[u8]) -> bytes::Bytes {
        self.pending.extend_from_slice(data);
        let mut out = Vec::with_capacity(self.pending.len());
        let mut start = 0;
        while let Some(end) = find_event_end(&self.pending[start..]) {
            let event = self.pending[start..start + end].to_vec();
            if !self.inspect(&event) {
                out.extend_from_slice(&event);
            }
            start += end;
        }
        self.pending.drain(..start);
        bytes::Bytes::from(out)
    }

    /// What is left when the stream ends (an unterminated last event).
    pub fn finish(&mut self) -> bytes::Bytes {
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() && self.inspect(&rest) {
            return bytes::Bytes::new();
        }
        bytes::Bytes::from(rest)
    }

    /// The tokens the stream reported, if any.
    pub fn tokens(&self) -> Option<u64> {
        self.total
            .or_else(|| (self.input + self.output > 0).then_some(self.input + self.output))
    }

    /// Reads an event's usage; true when the event is to be dropped.
    fn inspect(&mut self, event: &[u8]) -> bool {
        if !contains(event, b"\"usage\"") {
            return false;
        }
        let mut drop_it = false;
        for line in event.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(data) = line.strip_prefix(b"data:") else {
                continue;
            };
            let Ok(v) = serde_json::from_slice::<Value>(data.trim_ascii()) else {
                continue;
            };
            // OpenAI: a chunk's `usage`; Anthropic: `message.usage` in message_start,
            // `usage` in message_delta.
            if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
                if let Some(t) = u.get("total_tokens").and_then(Value::as_u64) {
                    self.total = Some(t);
                } else {
                    self.input = self
                        .input
                        .max(u.get("input_tokens").and_then(Value::as_u64).unwrap_or(0));
                    self.output = self
                        .output
                        .max(u.get("output_tokens").and_then(Value::as_u64).unwrap_or(0));
                }
                let usage_only = v
                    .get("choices")
                    .and_then(Value::as_array)
                    .is_some_and(Vec::is_empty);
                drop_it = self.strip && usage_only;
            } else if let Some(u) = v.get("message").and_then(|m| m.get("usage")) {
                self.input = self
                    .input
                    .max(u.get("input_tokens").and_then(Value::as_u64).unwrap_or(0));
            }
        }
        drop_it
    }
}

/// A stream's usage on its way to the client: read by a [`UsageTap`] when the request
/// counts against a limit (untouched otherwise), and given to the reservation when the
/// stream ends or is dropped.
#[derive(Debug)]
pub struct StreamUsage {
    tap: Option<UsageTap>,
    reservation: Reservation,
}

impl StreamUsage {
    /// Watches a stream for `reservation`; `strip` drops the usage-only chunk the data
    /// plane asked for.
    pub fn new(reservation: &Reservation, strip: bool) -> Self {
        Self {
            tap: reservation.is_counted().then(|| UsageTap::new(strip)),
            reservation: reservation.clone(),
        }
    }

    /// What of `data` goes to the client now.
    pub fn feed(&mut self, data: bytes::Bytes) -> bytes::Bytes {
        match &mut self.tap {
            None => data,
            Some(tap) => tap.feed(&data),
        }
    }

    /// What is left at the end of the stream.
    pub fn finish(&mut self) -> bytes::Bytes {
        self.tap.as_mut().map(UsageTap::finish).unwrap_or_default()
    }
}

impl Drop for StreamUsage {
    fn drop(&mut self) {
        if let Some(tokens) = self.tap.as_ref().and_then(UsageTap::tokens) {
            self.reservation.set_usage(tokens);
        }
    }
}

/// The length of the first whole event in `buf` (through its blank line), if any.
fn find_event_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Adds `stream_options.include_usage: true` to a streaming request body that does not
/// set it, so that an OpenAI-family upstream reports the stream's usage. `None` when the
/// client set it (either way) or the body is not an object: nothing to strip then.
pub fn with_include_usage(body: &[u8]) -> Option<bytes::Bytes> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let object = v.as_object_mut()?;
    let options = object
        .entry("stream_options")
        .or_insert_with(|| Value::Object(Default::default()));
    let options = options.as_object_mut()?;
    if options.contains_key("include_usage") {
        return None;
    }
    options.insert("include_usage".to_owned(), Value::Bool(true));
    serde_json::to_vec(&v).ok().map(bytes::Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> (Arc<ManualClock>, Arc<Limiter>) {
        let clock = Arc::new(ManualClock::at(1_000_000));
        let l = Arc::new(Limiter::with_clock(clock.clone()));
        l.set_window(Duration::from_secs(10));
        (clock, l)
    }

    fn rpm(n: u64) -> Limits {
        Limits {
            rpm: Some(n),
            ..Limits::default()
        }
    }

    #[tokio::test]
    async fn local_share_is_the_limit_divided_by_the_fleet_never_below_one() {
        let (_, l) = limiter();
        assert_eq!(l.shares(&rpm(10)).rpm, Some(10));
        l.set_fleet(Fleet {
            gateways: 3,
            sidecars: 0,
        });
        assert_eq!(l.shares(&rpm(10)).rpm, Some(3));
        assert_eq!(l.shares(&rpm(2)).rpm, Some(1));
        l.set_fleet(Fleet {
            gateways: 0,
            sidecars: 4,
        });
        assert_eq!(l.divisor(), 1, "no gateway counted: the whole limit");
        l.set_divisor(Some(5));
        assert_eq!(l.shares(&rpm(10)).rpm, Some(2));
        l.set_divisor(None);
        let fleet_wide = Limits {
            max_concurrent_requests: Some(8),
            concurrency_scope: ConcurrencyScope::Fleet,
            ..Limits::default()
        };
        l.set_fleet(Fleet {
            gateways: 3,
            sidecars: 0,
        });
        assert_eq!(l.max_in_flight(&fleet_wide), Some(2));
        let per_pod = Limits {
            concurrency_scope: ConcurrencyScope::Pod,
            ..fleet_wide
        };
        assert_eq!(l.max_in_flight(&per_pod), Some(8));
    }

    #[tokio::test]
    async fn reserve_refuses_past_the_share_with_the_window_reset() {
        let (clock, l) = limiter();
        l.set_fleet(Fleet {
            gateways: 2,
            sidecars: 0,
        });
        let c = Arc::new(Counters::default());
        let limits = rpm(4);
        let held: Vec<Reservation> = vec![
            l.reserve("d", &limits, &c, 0, false).await.expect("1st"),
            l.reserve("d", &limits, &c, 0, false).await.expect("2nd"),
        ];
        let denied = l
            .reserve("d", &limits, &c, 0, false)
            .await
            .expect_err("share is 2");
        assert_eq!(denied.exceeded, Exceeded::Rpm);
        // The clock is at 1,000 s: a 10 s window ends at 1,010 s.
        assert_eq!(denied.retry_after, Duration::from_secs(10));
        assert!(l.admits(&limits, &c).is_err());
        assert_eq!(l.limited_until(&limits, &c), Some(Duration::from_secs(10)));
        clock.advance(Duration::from_millis(9_999));
        assert_eq!(
            l.reserve("d", &limits, &c, 0, false)
                .await
                .expect_err("same window")
                .retry_after,
            Duration::from_millis(1)
        );
        clock.advance(Duration::from_millis(1));
        l.reserve("d", &limits, &c, 0, false)
            .await
            .expect("next window");
        drop(held);
    }

    #[tokio::test]
    async fn usage_replaces_the_estimate_and_cancel_gives_everything_back() {
        let (_, l) = limiter();
        let c = Arc::new(Counters::default());
        let limits = Limits {
            tpm: Some(1_000),
            ..Limits::default()
        };
        let r = l.reserve("d", &limits, &c, 300, false).await.expect("fits");
        let index = 1_000_000 / 10_000;
        assert_eq!(c.usage(index), (1, 300));
        r.set_usage(120);
        let copy = r.clone();
        drop(r);
        assert_eq!(c.usage(index), (1, 300), "settled when the last copy drops");
        drop(copy);
        assert_eq!(c.usage(index), (1, 120));
        let r = l.reserve("d", &limits, &c, 50, false).await.expect("fits");
        r.cancel();
        drop(r);
        assert_eq!(c.usage(index), (1, 120));
        // No usage reported: the estimate stands.
        drop(l.reserve("d", &limits, &c, 80, false).await.expect("fits"));
        assert_eq!(c.usage(index), (2, 200));
        assert!((l.usage_ratio(&limits, &c) - 0.2).abs() < 1e-9);
    }

    #[tokio::test]
    async fn unlimited_deployments_reserve_nothing() {
        let (_, l) = limiter();
        let c = Arc::new(Counters::default());
        let r = l
            .reserve("d", &Limits::default(), &c, 10, true)
            .await
            .expect("no limit");
        assert!(!r.is_counted());
        assert_eq!(l.usage_ratio(&Limits::default(), &c), 0.0);
    }

    #[tokio::test]
    async fn an_unreachable_redis_falls_back_to_local_shares_within_the_timeout() {
        let (_, l) = limiter();
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        l.configure_redis(Some(&format!("redis://127.0.0.1:{port}/")));
        let c = Arc::new(Counters::default());
        let limits = rpm(1);
        let started = std::time::Instant::now();
        let held = l
            .reserve("d", &limits, &c, 0, false)
            .await
            .expect("local share");
        assert!(l.reserve("d", &limits, &c, 0, false).await.is_err());
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(l.redis_state(), "fallback");
        let mut m = String::new();
        l.render_metrics(&mut m);
        assert!(m.contains("modelgate_limits_redis_up 0"), "{m}");
        assert!(!l.describe().to_string().contains("127.0.0.1"));
        drop(held);
    }

    #[test]
    fn estimates_prompt_text_and_allowed_output() {
        let body = br#"{"model":"m","max_tokens":100,"messages":[
            {"role":"system","content":"12345678"},
            {"role":"user","content":[{"type":"text","text":"abcd"},{"type":"image_url","image_url":{"url":"data:xxxxxxxxxxxxxxxx"}}]}]}"#;
        assert_eq!(estimate_tokens(body), 3 + 100);
        assert_eq!(estimate_tokens(br#"{"model":"m","input":"abcdefgh"}"#), 2);
        assert_eq!(
            estimate_tokens(br#"{"model":"m","prompt":["ab","cd"],"max_completion_tokens":7}"#),
            8
        );
        assert_eq!(estimate_tokens(b"not json"), 0);
    }

    #[test]
    fn reads_usage_of_both_dialects() {
        assert_eq!(
            usage_of(br#"{"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#),
            Some(7)
        );
        assert_eq!(
            usage_of(br#"{"usage":{"prompt_tokens":3,"completion_tokens":4}}"#),
            Some(7)
        );
        assert_eq!(
            usage_of(br#"{"usage":{"input_tokens":5,"output_tokens":6}}"#),
            Some(11)
        );
        assert_eq!(usage_of(br#"{"choices":[]}"#), None);
    }

    #[test]
    fn tap_strips_the_usage_only_chunk_when_asked_and_reads_it_always() {
        let stream = b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3,\"total_tokens\":5}}\n\ndata: [DONE]\n\n";
        for split in [1, 7, 40, stream.len()] {
            let mut tap = UsageTap::new(true);
            let mut out = Vec::new();
            for part in stream.chunks(split) {
                out.extend_from_slice(&tap.feed(part));
            }
            out.extend_from_slice(&tap.finish());
            let text = String::from_utf8(out).expect("utf-8");
            assert!(!text.contains("usage"), "{text}");
            assert!(
                text.contains("\"hi\"") && text.ends_with("data: [DONE]\n\n"),
                "{text}"
            );
            assert_eq!(tap.tokens(), Some(5));
        }
        let mut tap = UsageTap::new(false);
        let out = tap.feed(stream);
        assert_eq!(&out[..], &stream[..]);
        assert_eq!(tap.tokens(), Some(5));
    }

    #[test]
    fn tap_reads_anthropic_usage() {
        let stream = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":7}}\n\n";
        let mut tap = UsageTap::new(true);
        let out = tap.feed(stream);
        assert_eq!(&out[..], &stream[..], "Anthropic events are never stripped");
        assert_eq!(tap.tokens(), Some(17));
    }

    #[test]
    fn include_usage_is_added_only_when_the_client_did_not_say() {
        let b = with_include_usage(br#"{"model":"m","stream":true}"#).expect("added");
        let v: Value = serde_json::from_slice(&b).expect("json");
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert!(with_include_usage(br#"{"stream_options":{"include_usage":false}}"#).is_none());
        assert!(with_include_usage(br#"{"stream_options":{"include_usage":true}}"#).is_none());
        assert!(with_include_usage(b"[1]").is_none());
    }
}
