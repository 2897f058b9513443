//! Counters shared across replicas in Redis.
//!
//! Before a call, one script (one round trip) reads the deployment's counts of the current
//! window (Redis's clock, `TIME`, so every pod agrees on windows) and the requests in
//! flight on every pod, refuses when a limit would be overrun, and otherwise counts the
//! request, its estimated tokens and one more in flight for this pod. After the call, a
//! second script (sent in the background; the client never waits for it) replaces the
//! estimate with the real usage and releases the in-flight count.
//!
//! Keys (`{id}` is a hash tag, so one deployment's keys share a cluster slot):
//! `modelgate:{id}:r:<window>` requests, `modelgate:{id}:t:<window>` tokens (both expire
//! after two windows), `modelgate:{id}:if:<pod>` this pod's requests in flight and
//! `modelgate:{id}:pods` the pods that have some. In-flight keys expire [`IN_FLIGHT_TTL`]
//! after their last refresh (every third of it while requests are in flight), so the counts
//! of a pod that crashed go away on their own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::MultiplexedConnection;

use super::Exceeded;

/// How long a pod's in-flight count outlives its last refresh.
pub const IN_FLIGHT_TTL: Duration = Duration::from_secs(30);
/// Longest a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Least time between two connection attempts (a dead Redis is not hammered).
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

const RESERVE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local w = tonumber(ARGV[2])
local idx = math.floor(now / w)
local reset = (idx + 1) * w - now
local base = 'modelgate:{' .. ARGV[1] .. '}:'
local rk = base .. 'r:' .. idx
local tk = base .. 't:' .. idx
local pods = base .. 'pods'
local r = tonumber(redis.call('GET', rk) or '0')
local tok = tonumber(redis.call('GET', tk) or '0')
local inflight = 0
for _, p in ipairs(redis.call('SMEMBERS', pods)) do
  local v = redis.call('GET', base .. 'if:' .. p)
  if v then inflight = inflight + tonumber(v) else redis.call('SREM', pods, p) end
end
local rpm = tonumber(ARGV[3])
local tpm = tonumber(ARGV[4])
local conc = tonumber(ARGV[5])
local est = tonumber(ARGV[6])
local ttl = tonumber(ARGV[8])
local refused = 0
if rpm >= 0 and r >= rpm then
  refused = 1
elseif tpm >= 0 and (tok >= tpm or (tok + est > tpm and (tok > 0 or r > 0))) then
  refused = 2
elseif conc >= 0 and inflight >= conc then
  refused = 3
end
if refused == 0 then
  if rpm >= 0 or tpm >= 0 then
    r = redis.call('INCR', rk)
    redis.call('PEXPIRE', rk, w * 2)
    tok = redis.call('INCRBY', tk, est)
    redis.call('PEXPIRE', tk, w * 2)
  end
  local ik = base .. 'if:' .. ARGV[7]
  redis.call('INCR', ik)
  redis.call('PEXPIRE', ik, ttl)
  redis.call('SADD', pods, ARGV[7])
  redis.call('PEXPIRE', pods, ttl * 4)
  inflight = inflight + 1
end
return {refused, r, tok, inflight, reset, idx}
";

const SETTLE: &str = r"
local base = 'modelgate:{' .. ARGV[1] .. '}:'
local delta = tonumber(ARGV[3])
local tk = base .. 't:' .. ARGV[2]
if delta ~= 0 and redis.call('EXISTS', tk) == 1 then
  redis.call('INCRBY', tk, delta)
end
if ARGV[4] == '1' then
  local rk = base .. 'r:' .. ARGV[2]
  if tonumber(redis.call('GET', rk) or '0') > 0 then redis.call('DECR', rk) end
end
local ik = base .. 'if:' .. ARGV[5]
local v = tonumber(redis.call('GET', ik) or '0')
if v <= 1 then redis.call('DEL', ik) else redis.call('DECR', ik) end
return 0
";

/// Why Redis did not answer.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// Not connected (yet, or any more).
    #[error("not connected")]
    NotConnected,
    /// The command failed.
    #[error(transparent)]
    Command(#[from] redis::RedisError),
    /// The URL is not a `redis://` URL.
    #[error("only redis:// and unix URLs are supported (no TLS)")]
    Scheme,
}

/// One check-and-reserve request.
#[derive(Debug)]
pub struct Ask<'a> {
    /// Deployment id.
    pub deployment: &'a str,
    /// Window length.
    pub window_ms: u64,
    /// Requests per window (the whole fleet's limit).
    pub rpm: Option<u64>,
    /// Tokens per window.
    pub tpm: Option<u64>,
    /// Requests in flight across the fleet.
    pub concurrency: Option<u64>,
    /// Tokens estimated for this request.
    pub estimate: u64,
}

/// What the script said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// The limit that refused the request; `None`: reserved.
    pub refused: Option<Exceeded>,
    /// The fleet's requests in the window (this one included when reserved).
    pub requests: u64,
    /// The fleet's tokens in the window.
    pub tokens: u64,
    /// Requests in flight at the deployment on every pod.
    pub in_flight: u64,
    /// Milliseconds until the window ends.
    pub reset_in_ms: u64,
    /// Redis's window index.
    pub window: u64,
}

/// The shared Redis connection of one pod.
#[derive(Debug)]
pub struct Shared {
    client: redis::Client,
    conn: ArcSwapOption<MultiplexedConnection>,
    connecting: AtomicBool,
    /// When the last connection attempt started.
    last_attempt: Mutex<Option<std::time::Instant>>,
    /// Not asked before then (ms since the epoch, the limiter's clock).
    down_until: AtomicU64,
    pod: String,
    /// This pod's requests in flight through Redis, by deployment.
    held: Mutex<HashMap<String, u64>>,
    reserve: redis::Script,
    settle: redis::Script,
    heartbeat: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.lock().ok().and_then(|mut h| h.take()) {
            h.abort();
        }
    }
}

fn to_i64(n: Option<u64>) -> i64 {
    n.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX))
}

impl Shared {
    /// A connection to `url` for pod `pod` (connected by [`Shared::start`]).
    pub fn new(url: &str, pod: String) -> Result<Self, RedisError> {
        if !(url.starts_with("redis://") || url.starts_with("unix://")) {
            return Err(RedisError::Scheme);
        }
        let client = redis::Client::open(url)?;
        Ok(Self {
            client,
            conn: ArcSwapOption::empty(),
            connecting: AtomicBool::new(false),
            last_attempt: Mutex::new(None),
            down_until: AtomicU64::new(0),
            pod,
            held: Mutex::new(HashMap::new()),
            reserve: redis::Script::new(RESERVE),
            settle: redis::Script::new(SETTLE),
            heartbeat: Mutex::new(None),
        })
    }

    /// Connects in the background and starts refreshing this pod's in-flight keys.
    pub fn start(self: &Arc<Self>) {
        self.connect();
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak: Weak<Self> = Arc::downgrade(self);
        let task = handle.spawn(async move {
            let mut tick = tokio::time::interval(IN_FLIGHT_TTL / 3);
            loop {
                tick.tick().await;
                let Some(this) = weak.upgrade() else {
                    return;
                };
                this.refresh().await;
            }
        });
        if let Ok(mut h) = self.heartbeat.lock() {
            *h = Some(task);
        }
    }

    /// Starts connecting unless connected or connecting.
    fn connect(self: &Arc<Self>) {
        if self.conn.load().is_some() || self.connecting.swap(true, Ordering::AcqRel) {
            return;
        }
        {
            let mut last = self.last_attempt.lock().unwrap_or_else(|p| p.into_inner());
            let now = std::time::Instant::now();
            if last.is_some_and(|t| now.duration_since(t) < RECONNECT_EVERY) {
                self.connecting.store(false, Ordering::Release);
                return;
            }
            *last = Some(now);
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.connecting.store(false, Ordering::Release);
            return;
        };
        let this = Arc::clone(self);
        handle.spawn(async move {
            let attempt = tokio::time::timeout(
                CONNECT_TIMEOUT,
                this.client.get_multiplexed_async_connection(),
            )
            .await;
            match attempt {
                Ok(Ok(conn)) => {
                    this.conn.store(Some(Arc::new(conn)));
                    tracing::info!("connected to Redis");
                }
                Ok(Err(e)) => tracing::debug!("cannot connect to Redis: {e}"),
                Err(_) => tracing::debug!("cannot connect to Redis: timed out"),
            }
            this.connecting.store(false, Ordering::Release);
        });
    }

    /// Whether Redis may be asked at `now_ms` (connected and not backing off). Starts a
    /// connection attempt when there is none.
    pub fn usable(self: &Arc<Self>, now_ms: u64) -> bool {
        if self.conn.load().is_none() {
            self.connect();
            return false;
        }
        now_ms >= self.down_until.load(Ordering::Relaxed)
    }

    /// Redis failed: leave it alone until `until_ms` and reconnect.
    pub fn failed(self: &Arc<Self>, until_ms: u64) {
        self.down_until.store(until_ms, Ordering::Relaxed);
        self.conn.store(None);
        self.connect();
    }

    /// Redis answered.
    pub fn healthy(&self) {
        self.down_until.store(0, Ordering::Relaxed);
    }

    /// Checks and reserves (see the module docs).
    pub async fn reserve(&self, ask: &Ask<'_>) -> Result<Answer, RedisError> {
        let conn = self.conn.load_full().ok_or(RedisError::NotConnected)?;
        let mut conn = (*conn).clone();
        let (refused, requests, tokens, in_flight, reset, window): (i64, i64, i64, i64, i64, i64) =
            self.reserve
                .arg(ask.deployment)
                .arg(ask.window_ms.max(1))
                .arg(to_i64(ask.rpm))
                .arg(to_i64(ask.tpm))
                .arg(to_i64(ask.concurrency))
                .arg(ask.estimate)
                .arg(&self.pod)
                .arg(IN_FLIGHT_TTL.as_millis() as u64)
                .invoke_async(&mut conn)
                .await?;
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(Answer {
            refused: match refused {
                1 => Some(Exceeded::Rpm),
                2 => Some(Exceeded::Tpm),
                3 => Some(Exceeded::Concurrency),
                _ => None,
            },
            requests: n(requests),
            tokens: n(tokens),
            in_flight: n(in_flight),
            reset_in_ms: n(reset),
            window: n(window),
        })
    }

    /// Claims the health check of deployment `id` for the next `hold_ms`: true when this
    /// pod is to probe it now (no other pod claimed it within that time).
    pub async fn claim_probe(&self, id: &str, hold_ms: u64) -> Result<bool, RedisError> {
        let conn = self.conn.load_full().ok_or(RedisError::NotConnected)?;
        let mut conn = (*conn).clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("mg:probe:{id}"))
            .arg(&self.pod)
            .arg("NX")
            .arg("PX")
            .arg(hold_ms.max(1))
            .query_async(&mut conn)
            .await?;
        Ok(set.is_some())
    }

    /// Publishes this pod's verdict on deployment `id` (JSON) for `ttl_ms`.
    pub async fn publish_health(
        &self,
        id: &str,
        verdict: &str,
        ttl_ms: u64,
    ) -> Result<(), RedisError> {
        let conn = self.conn.load_full().ok_or(RedisError::NotConnected)?;
        let mut conn = (*conn).clone();
        let () = redis::cmd("SET")
            .arg(format!("mg:health:{id}"))
            .arg(verdict)
            .arg("PX")
            .arg(ttl_ms.max(1))
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// The latest verdict on deployment `id` another pod published, if still fresh.
    pub async fn shared_health(&self, id: &str) -> Result<Option<String>, RedisError> {
        let conn = self.conn.load_full().ok_or(RedisError::NotConnected)?;
        let mut conn = (*conn).clone();
        let verdict: Option<String> = redis::cmd("GET")
            .arg(format!("mg:health:{id}"))
            .query_async(&mut conn)
            .await?;
        Ok(verdict)
    }

    /// Counts one request of this pod in flight at `id` (its key is refreshed meanwhile).
    pub fn hold(&self, id: &str) {
        if let Ok(mut h) = self.held.lock() {
            *h.entry(id.to_owned()).or_default() += 1;
        }
    }

    /// This pod's requests in flight at `id` through Redis.
    pub fn own_in_flight(&self, id: &str) -> u64 {
        self.held
            .lock()
            .ok()
            .and_then(|h| h.get(id).copied())
            .unwrap_or(0)
    }

    /// Settles a reservation in the background: `tokens` more or fewer in window `window`,
    /// one request fewer when `uncount`, one fewer in flight.
    pub fn settle(self: Arc<Self>, id: String, window: u64, tokens: i64, uncount: bool) {
        if let Ok(mut h) = self.held.lock()
            && let Some(n) = h.get_mut(&id)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                h.remove(&id);
            }
        }
        let Some(conn) = self.conn.load_full() else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        handle.spawn(async move {
            let mut conn = (*conn).clone();
            let mut invocation = self.settle.arg(&id);
            invocation
                .arg(window)
                .arg(tokens)
                .arg(if uncount { "1" } else { "0" })
                .arg(&self.pod);
            let call = invocation.invoke_async::<i64>(&mut conn);
            // Not settled (Redis gone): the in-flight key expires on its own; the
            // estimate stands for the tokens.
            let _ = tokio::time::timeout(Duration::from_secs(2), call).await;
        });
    }

    /// Refreshes the TTL of this pod's in-flight keys.
    async fn refresh(&self) {
        let ids: Vec<String> = match self.held.lock() {
            Ok(h) => h.keys().cloned().collect(),
            Err(_) => return,
        };
        if ids.is_empty() {
            return;
        }
        let Some(conn) = self.conn.load_full() else {
            return;
        };
        let mut conn = (*conn).clone();
        let mut pipe = redis::pipe();
        let ttl = IN_FLIGHT_TTL.as_millis() as u64;
        for id in &ids {
            pipe.cmd("PEXPIRE")
                .arg(format!("modelgate:{{{id}}}:if:{}", self.pod))
                .arg(ttl)
                .ignore();
        }
        let _ =
            tokio::time::timeout(Duration::from_secs(2), pipe.query_async::<()>(&mut conn)).await;
    }
}
