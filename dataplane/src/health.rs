//! Active health checks: one task per deployment, on the deployment's interval and
//! timeout, whatever number of aliases reach it. The probe is the one its spec names:
//! the provider's model list (free; Anthropic's `GET /v1/models` with its key headers,
//! Gemini's `GET {base}/models` with the key in `x-goog-api-key`, never in the URL), a
//! minimal chat, completion or embedding request (a minimal message for Anthropic, a
//! minimal signed Converse call for Bedrock, which has no model list on its runtime
//! endpoint), or a GET of a URL. A reasoning model is never sent `max_tokens: 1` (it fails such
//! requests falsely) and is asked for low reasoning effort.
//!
//! Results land in each deployment's live state; `/health` and the admin health report
//! read them. When a new table is installed the checks restart on its deployments.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use modelgate_dataplane_api::{Mode, Probe};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::app::App;
use crate::client::HttpClient;
use crate::providers::{Endpoint, Provider, RequestContext};
use crate::router::{Health, Router, Target};

/// Runs health checks for whatever table is served, until `shutdown` turns true.
pub async fn run(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
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
        // would keep every old table's checks allocated).
        checks = JoinSet::new();
        current = router.clone();
        let Some(router) = router else { continue };
        for i in 0..router.targets.len() {
            if !router.targets[i].spec.health_check.enabled {
                continue;
            }
            let router = Arc::clone(&router);
            let client = app.client.clone();
            checks.spawn(async move { check_forever(router, i, client).await });
        }
    }
    checks.abort_all();
}

async fn check_forever(router: Arc<Router>, i: usize, client: HttpClient) {
    let target = &router.targets[i];
    let interval = Duration::from_millis(target.spec.health_check.interval_ms.max(1000));
    // Spread the first checks over the interval so that a new table does not fire every
    // probe at once.
    let jitter = Duration::from_millis(fastrand::u64(..=interval.as_millis().min(5_000) as u64));
    tokio::time::sleep(jitter).await;
    loop {
        let health = check(target, &client).await;
        if health.healthy == Some(false) {
            tracing::warn!(deployment = %target.spec.id, reason = ?health.reason, "health check failed");
        }
        target.state.set_health(health);
        let spread = interval.mul_f64(0.9 + fastrand::f64() * 0.2);
        tokio::time::sleep(spread).await;
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The probe a deployment gets: its spec's, except that a wildcard deployment (no single
/// model to name) always lists models.
pub fn probe_for(t: &Target) -> Probe {
    if t.spec.upstream_model.contains('*') {
        return Probe::ModelsList;
    }
    t.spec.health_check.probe
}

/// Runs one check of one deployment.
pub async fn check(t: &Target, client: &HttpClient) -> Health {
    let started = Instant::now();
    if matches!(t.provider, Provider::Bedrock(_)) && t.spec.upstream_model.contains('*') {
        // Bedrock Runtime lists no models, and a wildcard names none to call.
        return Health {
            healthy: None,
            reason: Some("a wildcard Bedrock deployment has no model to probe".to_owned()),
            last_check_ms: Some(now_ms()),
            latency_ms: None,
        };
    }
    let timeout = Duration::from_millis(t.spec.health_check.timeout_ms);
    let outcome = match &t.provider {
        Provider::Mock(_) => Ok(()),
        _ => match build_probe(t) {
            Ok(req) => match tokio::time::timeout(timeout, send(client, req)).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {}ms", timeout.as_millis())),
            },
            Err(e) => Err(e),
        },
    };
    let latency = started.elapsed();
    Health {
        healthy: Some(outcome.is_ok()),
        reason: outcome.err(),
        last_check_ms: Some(now_ms()),
        latency_ms: Some(latency.as_millis() as u64),
    }
}

async fn send(client: &HttpClient, req: Request<Full<Bytes>>) -> Result<(), String> {
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("connection failed: {e}"))?;
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
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            format!("bad credentials ({status}): {detail}")
        }
        _ => format!("{status}: {detail}"),
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
                .auth_headers(key, &http::HeaderMap::new())
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
            Provider::OpenAi { base } => get(format!("{base}/models")),
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
                    &http::HeaderMap::new(),
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
            &http::HeaderMap::new(),
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
