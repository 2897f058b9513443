//! Active health checks: one task per deployment, on the deployment's interval and
//! timeout, whatever number of aliases reach it. The probe is the one its spec names:
//! the provider's model list (free; Anthropic's `GET /v1/models` with its key headers,
//! Gemini's `GET {base}/models` with the key in `x-goog-api-key`, never in the URL), a
//! minimal chat, completion or embedding request (a minimal message for Anthropic, a
//! minimal signed Converse call for Bedrock, which has no model list on its runtime
//! endpoint), or a GET of a URL. A reasoning model is never sent `max_tokens: 1` (it fails such
//! requests falsely) and is asked for low reasoning effort.
//!
//! Checks are jittered (the first one of each deployment lands at a random point of its
//! interval, later ones every interval ±10 %) and bounded: at most `concurrency` probes
//! are in flight at once, whatever the number of deployments (`--health-check-concurrency`),
//! so 10,000 deployments never probe at once and a new table does not fire a burst.
//!
//! Results land in each deployment's live state, with a reason code (bad credentials on a
//! 401/403, unreachable, timeout, upstream error) and the version of the table they were
//! reached under; `/health` and the admin health report read them. A reason never holds
//! the deployment's key, even when an upstream echoes it. When a new table is installed
//! the checks restart on its deployments.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use modelgate_dataplane_api::{HealthReason, HealthSource, Mode, Probe};
use serde_json::json;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::app::App;
use crate::client::HttpClient;
use crate::providers::{Endpoint, Provider, RequestContext};
use crate::router::{Health, Router, Target, wall_ms};

/// Probes in flight at once by default (`--health-check-concurrency`).
pub const DEFAULT_CONCURRENCY: usize = 32;

/// The longest wait before a deployment's first check after a table is installed.
const MAX_FIRST_DELAY: Duration = Duration::from_secs(30);

/// Runs health checks for whatever table is served, until `shutdown` turns true, with at
/// most `concurrency` probes in flight at once.
pub async fn run(app: Arc<App>, concurrency: usize, mut shutdown: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut current: Option<Arc<Router>> = None;
    let mut checks = JoinSet::new();
    let mut poll = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = poll.tick() => {}
            _ = crate::server::stopped(&mut shutdown) => break,
        }
        let router = app.router();
        let same = match (&router, &current) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if same {
            continue;
        }
        // A new set: dropping the old one aborts its checks and frees their tasks (an
        // aborted task's memory lives until its handle is dropped, so `abort_all` alone
        // would keep every old table's checks allocated). Their permits go back with them.
        checks = JoinSet::new();
        current = router.clone();
        let Some(router) = router else { continue };
        for i in 0..router.targets.len() {
            if !router.targets[i].spec.health_check.enabled {
                continue;
            }
            let router = Arc::clone(&router);
            let client = app.client.clone();
            let permits = Arc::clone(&permits);
            checks.spawn(async move { check_forever(router, i, client, permits).await });
        }
    }
    checks.abort_all();
}

async fn check_forever(router: Arc<Router>, i: usize, client: HttpClient, permits: Arc<Semaphore>) {
    let target = &router.targets[i];
    let interval = Duration::from_millis(target.spec.health_check.interval_ms.max(1000));
    let version: Arc<str> = Arc::from(router.table.version.as_str());
    schedule(interval, permits, || async {
        // With Redis, one pod of the fleet probes each deployment per interval and the
        // others take its verdict; without it (or when Redis fails), every pod probes.
        let shared = router.limiter.redis_now();
        let mut claimed = false;
        if let Some(redis) = &shared {
            let hold = interval.mul_f64(0.8).as_millis() as u64;
            match tokio::time::timeout(REDIS_TIMEOUT, redis.claim_probe(&target.spec.id, hold))
                .await
            {
                Ok(Ok(true)) => claimed = true,
                Ok(Ok(false)) => {
                    if let Some(health) = fleet_verdict(redis, &target.spec.id).await {
                        target.state.set_health(health);
                        return;
                    }
                }
                _ => {}
            }
        }
        // Boxed: the probe's state machine is kilobytes and lives only while it runs;
        // inline, every one of a large table's sleeping check tasks would hold it.
        let mut health = Box::pin(check(target, &client)).await;
        health.table_version = Some(Arc::clone(&version));
        if health.healthy == Some(false) {
            tracing::warn!(
                deployment = %target.spec.id,
                reason = ?health.reason,
                code = ?health.code,
                "health check failed"
            );
        }
        if let (Some(redis), true) = (&shared, claimed) {
            let verdict = serde_json::to_string(&health).unwrap_or_default();
            let ttl = interval.mul_f64(2.5).as_millis() as u64;
            let publish = redis.publish_health(&target.spec.id, &verdict, ttl);
            if tokio::time::timeout(REDIS_TIMEOUT, publish).await.is_err() {
                tracing::debug!(deployment = %target.spec.id, "health verdict not shared: Redis timed out");
            }
        }
        target.state.set_health(health);
    })
    .await;
}

/// How long a health check waits for Redis before deciding alone.
const REDIS_TIMEOUT: Duration = crate::limits::REDIS_TIMEOUT;

/// Another pod's fresh verdict on `id`, if Redis has one.
async fn fleet_verdict(redis: &crate::limits::redis::Shared, id: &str) -> Option<Health> {
    let json = tokio::time::timeout(REDIS_TIMEOUT, redis.shared_health(id))
        .await
        .ok()?
        .ok()??;
    let health: Health = serde_json::from_str(&json).ok()?;
    Some(Health {
        source: Some(HealthSource::Fleet),
        ..health
    })
}

/// Runs `probe` forever: first after a random delay within `interval` (at most
/// [`MAX_FIRST_DELAY`]), so a new table's checks spread out, then every `interval`
/// ±10 %; each run holds one of `permits` (waiting for one when all are taken). Returns
/// when `permits` is closed.
pub async fn schedule<F, Fut>(interval: Duration, permits: Arc<Semaphore>, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let spread = interval.min(MAX_FIRST_DELAY);
    let first = Duration::from_millis(fastrand::u64(..=spread.as_millis() as u64));
    tokio::time::sleep(first).await;
    loop {
        {
            let Ok(_permit) = permits.acquire().await else {
                return;
            };
            probe().await;
        }
        tokio::time::sleep(interval.mul_f64(0.9 + fastrand::f64() * 0.2)).await;
    }
}

/// The probe a deployment gets: its spec's, except that a wildcard deployment (no single
/// model to name) always lists models.
pub fn probe_for(t: &Target) -> Probe {
    if t.spec.upstream_model.contains('*') {
        return Probe::ModelsList;
    }
    t.spec.health_check.probe
}

/// Runs one check of one deployment (its `table_version` is left for the caller, which
/// knows the table).
pub async fn check(t: &Target, client: &HttpClient) -> Health {
    let started = Instant::now();
    if matches!(t.provider, Provider::Bedrock(_)) && t.spec.upstream_model.contains('*') {
        // Bedrock Runtime lists no models, and a wildcard names none to call.
        return Health {
            healthy: None,
            reason: Some("a wildcard Bedrock deployment has no model to probe".to_owned()),
            last_check_ms: Some(wall_ms()),
            latency_ms: None,
            code: Some(HealthReason::NotProbed),
            source: Some(HealthSource::Check),
            table_version: None,
        };
    }
    let timeout = Duration::from_millis(t.spec.health_check.timeout_ms);
    let outcome = match &t.provider {
        Provider::Mock(_) => Ok(()),
        _ => match build_probe(t) {
            Ok(req) => match tokio::time::timeout(timeout, send(client, req)).await {
                Ok(r) => r,
                Err(_) => Err((
                    HealthReason::Timeout,
                    format!("no answer within {}ms", timeout.as_millis()),
                )),
            },
            Err(e) => Err((HealthReason::NotProbed, e)),
        },
    };
    let latency = started.elapsed();
    let (code, reason) = match outcome {
        Ok(()) => (None, None),
        Err((code, reason)) => (Some(code), Some(redact(reason, t))),
    };
    Health {
        healthy: Some(code.is_none()),
        reason,
        last_check_ms: Some(wall_ms()),
        latency_ms: Some(latency.as_millis() as u64),
        code,
        source: Some(HealthSource::Check),
        table_version: None,
    }
}

/// `error` without the deployment's key in its message: an upstream may echo the key it
/// refused, and the message reaches the client, the logs and the health report.
pub fn redact_error(mut error: crate::errors::ApiError, t: &Target) -> crate::errors::ApiError {
    error.message = redact(std::mem::take(&mut error.message), t);
    error
}

/// `text` without the deployment's key: an upstream may echo the key it refused.
fn redact(text: String, t: &Target) -> String {
    match t.api_key.as_ref().map(|k| k.expose()) {
        Some(key) if key.len() >= 4 && text.contains(key) => text.replace(key, "[redacted]"),
        _ => text,
    }
}

async fn send(
    client: &HttpClient,
    req: Request<Full<Bytes>>,
) -> Result<(), (HealthReason, String)> {
    let resp = client
        .request(req)
        .await
        .map_err(|e| (HealthReason::Unreachable, format!("connection failed: {e}")))?;
    let status = resp.status();
    // Drain (bounded) so the connection can be reused.
    let body = http_body_util::Limited::new(resp.into_body(), 64 * 1024)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    if status.is_success() {
        return Ok(());
    }
    let detail = crate::errors::ApiError::from_upstream(status, &body, None).message;
    Err(match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => (
            HealthReason::BadCredentials,
            format!("bad credentials ({status}): {detail}"),
        ),
        _ => (HealthReason::UpstreamError, format!("{status}: {detail}")),
    })
}

fn build_probe(t: &Target) -> Result<Request<Full<Bytes>>, String> {
    let d = &t.spec;
    let key = t.api_key.as_ref().map(|k| k.expose());
    let probe = probe_for(t);
    let get = |uri: String| -> Result<Request<Full<Bytes>>, String> {
        let mut b = Request::builder().method(Method::GET).uri(uri);
        if let Provider::Anthropic(a) = &t.provider {
            let headers = a
                .auth_headers(key, &crate::headers::RawHeaders::default())
                .map_err(|e| e.message)?;
            let mut req = b.body(Full::new(Bytes::new())).map_err(|e| e.to_string())?;
            req.headers_mut().extend(headers);
            return Ok(req);
        }
        if let Some(key) = key {
            let (name, value) = match &t.provider {
                Provider::Azure { .. } => ("api-key", key.to_owned()),
                Provider::Gemini(_) => ("x-goog-api-key", key.to_owned()),
                _ => ("authorization", format!("Bearer {key}")),
            };
            let mut v = HeaderValue::from_str(&value)
                .map_err(|_| "the API key is not a valid header value".to_owned())?;
            v.set_sensitive(true);
            b = b.header(name, v);
        }
        b.body(Full::new(Bytes::new())).map_err(|e| e.to_string())
    };
    match probe {
        Probe::Url => {
            let url = d
                .health_check
                .url
                .clone()
                .ok_or("probe url without a url")?;
            Request::builder()
                .method(Method::GET)
                .uri(url)
                .body(Full::new(Bytes::new()))
                .map_err(|e| e.to_string())
        }
        Probe::ModelsList => match &t.provider {
            Provider::OpenAi { base, .. } => get(format!("{base}/models")),
            Provider::Azure { base, api_version } => {
                get(format!("{base}/openai/models?api-version={api_version}"))
            }
            Provider::Anthropic(a) => get(a.models_url()),
            Provider::Gemini(g) => get(g.models_url()),
            Provider::Bedrock(_) => translated_probe(t, Probe::Chat),
            Provider::Mock(_) => Err("mock deployments are not probed over HTTP".to_owned()),
        },
        Probe::Chat | Probe::Completion | Probe::Embedding => {
            let (endpoint, body) = match &t.provider {
                // Anthropic has only chat: any probe of a request is a minimal message.
                Provider::Anthropic(_) => (Endpoint::Messages, anthropic_probe_body(t)),
                Provider::Gemini(_) | Provider::Bedrock(_) => return translated_probe(t, probe),
                _ => probe_body(t, probe),
            };
            let mut req = t
                .provider
                .request(
                    d,
                    key,
                    endpoint,
                    &d.upstream_model,
                    body,
                    &crate::headers::RawHeaders::default(),
                    false,
                )
                .map_err(|e| e.message)?;
            req.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(req)
        }
    }
}

/// A probe of a provider that does not speak OpenAI (Gemini, Bedrock): the smallest
/// OpenAI request of the probe's kind (a chat for Bedrock, which has only chat),
/// translated by the provider's own leg with `dropParams` on (a reasoning model's
/// `reasoning_effort` is dropped where it cannot be sent), then built (signed, for
/// Bedrock) like any request.
fn translated_probe(t: &Target, probe: Probe) -> Result<Request<Full<Bytes>>, String> {
    let d = &t.spec;
    let probe = match t.provider {
        Provider::Bedrock(_) => Probe::Chat,
        _ => probe,
    };
    let (endpoint, body) = probe_body(t, probe);
    let translator = t
        .provider
        .translator()
        .ok_or("the provider has no translator")?;
    let cx = RequestContext {
        endpoint,
        deployment: d,
        requested_model: &d.upstream_model,
        upstream_model: &d.upstream_model,
        stream: false,
        drop_params: true,
    };
    let translated = translator.request(&cx, &body).map_err(|e| e.message)?;
    t.provider
        .request(
            d,
            t.api_key.as_ref().map(|k| k.expose()),
            endpoint,
            &d.upstream_model,
            translated.body,
            &crate::headers::RawHeaders::default(),
            false,
        )
        .map_err(|e| e.message)
}

/// The smallest Anthropic message request. `max_tokens` is required there: one token for
/// an ordinary model, a few dozen for a reasoning model (never one, which such models
/// may fail on).
pub fn anthropic_probe_body(t: &Target) -> Bytes {
    let d = &t.spec;
    let max_tokens = if d.model_info.reasoning { 32 } else { 1 };
    let value = json!({
        "model": d.upstream_model,
        "messages": [{"role": "user", "content": "ping"}],
        "max_tokens": max_tokens,
    });
    Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
}

/// The smallest request of the probe's kind. Reasoning models get no `max_tokens` (one
/// token is never enough for them) and low reasoning effort.
pub fn probe_body(t: &Target, probe: Probe) -> (Endpoint, Bytes) {
    let d = &t.spec;
    let model = d.upstream_model.as_str();
    let reasoning = d.model_info.reasoning;
    let value = match probe {
        Probe::Embedding => (
            Endpoint::Embeddings,
            json!({"model": model, "input": "ping"}),
        ),
        Probe::Completion if reasoning => (
            Endpoint::Completions,
            json!({"model": model, "prompt": "ping"}),
        ),
        Probe::Completion => (
            Endpoint::Completions,
            json!({"model": model, "prompt": "ping", "max_tokens": 1}),
        ),
        _ if d.model_info.mode == Mode::Embedding => (
            Endpoint::Embeddings,
            json!({"model": model, "input": "ping"}),
        ),
        _ if reasoning => (
            Endpoint::Chat,
            json!({"model": model, "messages": [{"role": "user", "content": "ping"}], "reasoning_effort": "low"}),
        ),
        _ => (
            Endpoint::Chat,
            json!({"model": model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}),
        ),
    };
    (
        value.0,
        Bytes::from(serde_json::to_vec(&value.1).unwrap_or_default()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Many deployments on one short interval: never more probes at once than permits,
    /// every deployment still checked, and the first checks spread over the interval.
    #[tokio::test(start_paused = true)]
    async fn probes_are_bounded_jittered_and_all_run() {
        const DEPLOYMENTS: usize = 200;
        const PERMITS: usize = 8;
        let permits = Arc::new(Semaphore::new(PERMITS));
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let runs = Arc::new(Mutex::new(vec![Vec::<Duration>::new(); DEPLOYMENTS]));
        let start = tokio::time::Instant::now();
        let mut tasks = JoinSet::new();
        for i in 0..DEPLOYMENTS {
            let (permits, now, peak, runs) = (
                Arc::clone(&permits),
                Arc::clone(&now),
                Arc::clone(&peak),
                Arc::clone(&runs),
            );
            tasks.spawn(async move {
                schedule(Duration::from_secs(10), permits, || {
                    let (now, peak, runs) =
                        (Arc::clone(&now), Arc::clone(&peak), Arc::clone(&runs));
                    async move {
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(n, Ordering::SeqCst);
                        runs.lock().expect("runs")[i].push(start.elapsed());
                        // A slow upstream: each probe takes 100 ms.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        now.fetch_sub(1, Ordering::SeqCst);
                    }
                })
                .await;
            });
        }
        tokio::time::sleep(Duration::from_secs(35)).await;
        let peak = peak.load(Ordering::SeqCst);
        assert!(peak <= PERMITS, "{peak} probes at once, bound {PERMITS}");
        assert!(peak >= 2, "probes do overlap up to the bound: {peak}");
        let runs = runs.lock().expect("runs").clone();
        for (i, r) in runs.iter().enumerate() {
            // First check within the interval (plus queueing), then about every 10 s.
            assert!(
                r.len() >= 3,
                "deployment {i} checked {} times in 35 s",
                r.len()
            );
            assert!(
                r[0] <= Duration::from_secs(11),
                "deployment {i} first at {:?}",
                r[0]
            );
            for w in r.windows(2) {
                let gap = w[1] - w[0];
                assert!(
                    gap >= Duration::from_millis(9_000) && gap <= Duration::from_millis(12_000),
                    "deployment {i}: {gap:?} between checks"
                );
            }
        }
        // Jitter: the first checks do not all land together.
        let mut firsts: Vec<Duration> = runs.iter().map(|r| r[0]).collect();
        firsts.sort();
        let spread = firsts[DEPLOYMENTS - 1] - firsts[0];
        assert!(
            spread >= Duration::from_secs(5),
            "first checks spread over {spread:?}"
        );
        let in_first_second = firsts
            .iter()
            .filter(|f| **f < Duration::from_secs(1))
            .count();
        assert!(
            in_first_second < DEPLOYMENTS / 4,
            "{in_first_second} first checks in the first second"
        );
        tasks.abort_all();
    }

    /// Passive checks: a 401/403 on real traffic is bad credentials, under the table it
    /// happened with; other statuses are not the deployment's fault; a success or an
    /// active check clears it.
    #[test]
    fn refusals_on_traffic_read_as_bad_credentials() {
        use crate::router::DeploymentState;
        let state = DeploymentState::default();
        state.observe_refusal(StatusCode::BAD_REQUEST, "sha256:1");
        state.observe_refusal(StatusCode::NOT_FOUND, "sha256:1");
        assert_eq!(
            state.health(),
            Health::default(),
            "a client's error says nothing"
        );
        state.observe_refusal(StatusCode::FORBIDDEN, "sha256:1");
        let h = state.health();
        assert_eq!(h.healthy, Some(false));
        assert_eq!(h.code, Some(HealthReason::BadCredentials));
        assert_eq!(h.source, Some(HealthSource::Traffic));
        assert_eq!(h.table_version.as_deref(), Some("sha256:1"));
        assert!(
            h.reason.as_deref().is_some_and(|r| r.contains("403")),
            "{h:?}"
        );
        state.record_success(Duration::from_millis(5));
        let h = state.health();
        assert_eq!((h.healthy, h.code), (Some(true), None));
        assert_eq!(h.table_version.as_deref(), Some("sha256:1"));
        // An active check's verdict replaces traffic's, and a later success leaves it.
        state.observe_refusal(StatusCode::UNAUTHORIZED, "sha256:2");
        let checked = Health {
            healthy: Some(false),
            reason: Some("503: overloaded".into()),
            code: Some(HealthReason::UpstreamError),
            source: Some(HealthSource::Check),
            ..Health::default()
        };
        state.set_health(checked.clone());
        state.record_success(Duration::from_millis(5));
        assert_eq!(state.health(), checked);
    }

    /// A closed semaphore (the checker going away) ends the schedule.
    #[tokio::test(start_paused = true)]
    async fn a_closed_semaphore_ends_the_schedule() {
        let permits = Arc::new(Semaphore::new(1));
        permits.close();
        let ran = AtomicUsize::new(0);
        schedule(Duration::from_secs(1), permits, || {
            ran.fetch_add(1, Ordering::SeqCst);
            async {}
        })
        .await;
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }
}
