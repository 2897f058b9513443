//! The runtime router: tiers, strategies, limits, cooldowns, and live state that
//! survives table swaps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use modelgate_dataplane::router::{Route, Router, StateRegistry};
use modelgate_dataplane_api::{RoutingStrategy, RoutingTable, SCHEMA_VERSION};
use serde_json::{Value, json};

/// A deployment entry: `(id, model, weight, order)`.
fn deployment(id: &str, model: &str, weight: u32, order: u32) -> Value {
    json!({
        "id": id, "generation": 1, "model": model, "provider": "mock",
        "upstreamModel": if model.ends_with("/*") { "*" } else { model },
        "limits": {"concurrencyScope": "pod"},
        "timeouts": {"requestMs": 1000, "streamFirstByteMs": 1000, "streamIdleMs": 1000},
        "weight": weight, "order": order, "retries": 2,
        "modelInfo": {"mode": "chat", "reasoning": false},
        "healthCheck": {"enabled": false, "intervalMs": 60000, "timeoutMs": 1000, "probe": "models-list"},
    })
}

fn table(
    deployments: Vec<Value>,
    strategy: RoutingStrategy,
    edit: impl FnOnce(&mut Value),
) -> Arc<RoutingTable> {
    let mut groups: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for d in &deployments {
        groups
            .entry(d["model"].as_str().expect("model").to_owned())
            .or_default()
            .push(d["id"].as_str().expect("id").to_owned());
    }
    let mut deployments = deployments;
    deployments.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let mut t = serde_json::to_value(RoutingTable::default()).expect("json");
    t["schemaVersion"] = json!(SCHEMA_VERSION);
    t["settings"] = serde_json::to_value(modelgate_dataplane_api::Settings {
        routing_strategy: strategy,
        ..Default::default()
    })
    .expect("json");
    t["deployments"] = json!(deployments);
    t["groups"] = json!(
        groups
            .into_iter()
            .map(|(name, mut ids)| {
                ids.sort();
                json!({"name": name, "namespace": "ns", "deployments": ids})
            })
            .collect::<Vec<_>>()
    );
    edit(&mut t);
    let table: RoutingTable = serde_json::from_value(t).expect("table");
    let table = table.seal(1);
    table.validate().expect("whole table");
    Arc::new(table)
}

fn group(router: &Router, name: &str) -> usize {
    router.group_by_name(name).expect("group")
}

fn id(router: &Router, i: usize) -> &str {
    &router.targets[i].spec.id
}

#[test]
fn weighted_choice_follows_weights() {
    let registry = StateRegistry::default();
    let r = Router::build(
        table(
            vec![
                deployment("ns/a", "m", 3, 1),
                deployment("ns/b", "m", 1, 1),
                deployment("ns/zero", "m", 0, 1),
            ],
            RoutingStrategy::SimpleShuffle,
            |_| {},
        ),
        &registry,
    );
    let g = group(&r, "m");
    let mut a = 0;
    let n = 4000;
    for _ in 0..n {
        let i = r.pick(g, &[], Instant::now()).expect("pick");
        assert_ne!(
            id(&r, i),
            "ns/zero",
            "weight 0 takes nothing while others can"
        );
        if id(&r, i) == "ns/a" {
            a += 1;
        }
    }
    let share = f64::from(a) / f64::from(n);
    assert!((0.70..0.80).contains(&share), "share of a: {share}");
}

#[test]
fn lower_order_first_then_the_next_tier() {
    let registry = StateRegistry::default();
    let r = Router::build(
        table(
            vec![
                deployment("ns/primary", "m", 1, 1),
                deployment("ns/backup", "m", 1, 2),
            ],
            RoutingStrategy::SimpleShuffle,
            |_| {},
        ),
        &registry,
    );
    let g = group(&r, "m");
    let now = Instant::now();
    let first = r.pick(g, &[], now).expect("pick");
    assert_eq!(id(&r, first), "ns/primary");
    // Tried already: the next tier.
    let second = r.pick(g, &[first], now).expect("pick");
    assert_eq!(id(&r, second), "ns/backup");
    // Everything tried: a retry may reuse the best tier.
    assert_eq!(r.pick(g, &[first, second], now), Some(first));
    // Primary cooling down: backup.
    let primary = &r.targets[first].state;
    assert!(primary.record_failure(now, 1, Duration::from_secs(30)));
    assert_eq!(
        r.pick(g, &[], now).map(|i| id(&r, i).to_owned()).as_deref(),
        Some("ns/backup")
    );
    assert!(r.all_cooling_until(g, now).is_none());
}

#[test]
fn cooldown_needs_allowed_fails_within_a_minute_and_ends() {
    let registry = StateRegistry::default();
    let r = Router::build(
        table(
            vec![deployment("ns/a", "m", 1, 1)],
            RoutingStrategy::SimpleShuffle,
            |_| {},
        ),
        &registry,
    );
    let g = group(&r, "m");
    let s = &r.targets[0].state;
    let t0 = Instant::now();
    assert!(!s.record_failure(t0, 3, Duration::from_secs(10)));
    assert!(
        !s.record_failure(t0 + Duration::from_secs(61), 3, Duration::from_secs(10)),
        "the first failure aged out"
    );
    assert!(!s.record_failure(t0 + Duration::from_secs(62), 3, Duration::from_secs(10)));
    assert!(s.record_failure(t0 + Duration::from_secs(63), 3, Duration::from_secs(10)));
    let now = t0 + Duration::from_secs(64);
    assert_eq!(r.pick(g, &[], now), None);
    assert_eq!(
        r.all_cooling_until(g, now),
        Some(t0 + Duration::from_secs(73))
    );
    assert!(
        r.pick(g, &[], t0 + Duration::from_secs(74)).is_some(),
        "cooldown ends"
    );
    assert_eq!(s.consecutive_failures(), 4);
    s.record_success(Duration::from_millis(5));
    assert_eq!(s.consecutive_failures(), 0);
}

#[test]
fn live_state_survives_a_table_swap() {
    let registry = StateRegistry::default();
    let old = Router::build(
        table(
            vec![deployment("ns/a", "m", 1, 1)],
            RoutingStrategy::SimpleShuffle,
            |_| {},
        ),
        &registry,
    );
    let now = Instant::now();
    assert!(
        old.targets[0]
            .state
            .record_failure(now, 1, Duration::from_secs(30))
    );
    let guard = old.targets[0].state.start();
    let new = Router::build(
        table(
            vec![deployment("ns/a", "m", 5, 1), deployment("ns/b", "m", 1, 1)],
            RoutingStrategy::SimpleShuffle,
            |_| {},
        ),
        &registry,
    );
    let a = new.targets.iter().find(|t| t.spec.id == "ns/a").expect("a");
    assert!(a.state.cooling_until(now).is_some(), "cooldown kept");
    assert_eq!(a.state.in_flight(), 1, "in-flight count kept");
    drop(guard);
    assert_eq!(a.state.in_flight(), 0, "never negative, never leaked");
}

#[test]
fn least_busy_and_concurrency_limits() {
    let registry = StateRegistry::default();
    let r = Router::build(
        table(
            vec![deployment("ns/a", "m", 1, 1), deployment("ns/b", "m", 1, 1)],
            RoutingStrategy::LeastBusy,
            |t| t["deployments"][0]["limits"]["maxConcurrentRequests"] = json!(1),
        ),
        &registry,
    );
    let g = group(&r, "m");
    let a = r
        .targets
        .iter()
        .position(|t| t.spec.id == "ns/a")
        .expect("a");
    let b = 1 - a;
    let _busy_b = r.targets[b].state.start();
    let _busy_b2 = r.targets[b].state.start();
    assert_eq!(r.pick(g, &[], Instant::now()), Some(a), "least busy");
    let _busy_a = r.targets[a].state.start();
    // a is at its limit of 1: b, although busier.
    assert_eq!(r.pick(g, &[], Instant::now()), Some(b));
}

#[test]
fn latency_based_prefers_the_fastest_within_the_buffer() {
    let registry = StateRegistry::default();
    let r = Router::build(
        table(
            vec![
                deployment("ns/fast", "m", 1, 1),
                deployment("ns/slow", "m", 1, 1),
            ],
            RoutingStrategy::LatencyBased,
            |_| {},
        ),
        &registry,
    );
    let g = group(&r, "m");
    for t in &r.targets {
        let ms = if t.spec.id == "ns/fast" { 10 } else { 100 };
        t.state.record_success(Duration::from_millis(ms));
    }
    for _ in 0..200 {
        let i = r.pick(g, &[], Instant::now()).expect("pick");
        assert_eq!(id(&r, i), "ns/fast");
    }
}

#[test]
fn wildcards_and_aliases_route() {
    let registry = StateRegistry::default();
    let r = Router::build(
        table(
            vec![
                deployment("ns/any", "openai/*", 1, 1),
                deployment("ns/m", "m", 1, 1),
            ],
            RoutingStrategy::SimpleShuffle,
            |t| {
                t["aliases"] = json!([{
                    "name": "alias", "id": "ns/alias", "generation": 1, "hidden": true,
                    "targets": [{"group": "m", "model": "m", "share": 1.0}],
                }]);
            },
        ),
        &registry,
    );
    assert!(matches!(
        r.route("openai/gpt-4o"),
        Some(Route::Group(_, "openai/gpt-4o"))
    ));
    assert!(matches!(r.route("alias"), Some(Route::Alias(a)) if a.hidden));
    assert!(r.route("other/x").is_none());
    assert!(r.route("nope").is_none());
}

#[tokio::test]
async fn health_probes_suit_the_model_and_name_bad_credentials() {
    use modelgate_dataplane::health::{check, probe_body, probe_for};
    use modelgate_dataplane_api::Probe;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // An upstream that refuses the key.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        for _ in 0..4 {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await;
            let body = r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#;
            let resp = format!(
                "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    let base = format!("http://{addr}/v1");
    let registry = StateRegistry::default();
    let r = Router::build(
        table(
            vec![
                deployment("ns/chat", "chat", 1, 1),
                deployment("ns/o3", "o3", 1, 1),
                deployment("ns/any", "openai/*", 1, 1),
            ],
            RoutingStrategy::SimpleShuffle,
            |t| {
                for d in t["deployments"].as_array_mut().expect("array") {
                    d["provider"] = json!("openai-compatible");
                    d["apiBase"] = json!(base);
                    d["healthCheck"]["probe"] = json!("chat");
                    d["credentials"] = json!({"secret": "ns/keys", "apiKey": "k"});
                    if d["id"] == "ns/o3" {
                        d["modelInfo"]["reasoning"] = json!(true);
                    }
                }
                t["credentials"] = json!({"ns/keys": {"k": "sk-wrong"}});
            },
        ),
        &registry,
    );
    let by_id = |id: &str| r.targets.iter().find(|t| t.spec.id == id).expect("target");
    let body = |id: &str| -> Value {
        let t = by_id(id);
        let (_, bytes) = probe_body(t, probe_for(t));
        serde_json::from_slice(&bytes).expect("json")
    };
    assert_eq!(body("ns/chat")["max_tokens"], 1);
    let o3 = body("ns/o3");
    assert!(
        o3.get("max_tokens").is_none(),
        "never max_tokens: 1 for a reasoning model: {o3}"
    );
    assert_eq!(o3["reasoning_effort"], "low");
    assert_eq!(
        probe_for(by_id("ns/any")),
        Probe::ModelsList,
        "a wildcard has no model to name"
    );

    let client = modelgate_dataplane::client::build(None).expect("client");
    let h = check(by_id("ns/chat"), &client).await;
    assert_eq!(h.healthy, Some(false));
    let reason = h.reason.expect("reason");
    assert!(reason.starts_with("bad credentials (401"), "{reason}");
    assert!(!reason.contains("sk-wrong"), "no credential in the reason");
    server.abort();
}
