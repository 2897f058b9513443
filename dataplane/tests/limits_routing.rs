//! Rate limits in the router: a deployment at its limit is not picked, `usage-based` picks
//! the lowest use relative to the limits, `least-busy` never goes negative and breaks ties
//! at random, a fleet-wide concurrency limit is divided by the fleet size.

use std::sync::Arc;
use std::time::{Duration, Instant};

use modelgate_dataplane::router::{Router, StateRegistry};
use modelgate_dataplane_api::{Fleet, RoutingStrategy, RoutingTable, SCHEMA_VERSION};
use serde_json::{Value, json};

fn deployment(id: &str, limits: Value) -> Value {
    json!({
        "id": id, "generation": 1, "model": "m", "provider": "mock", "upstreamModel": "m",
        "limits": limits,
        "timeouts": {"requestMs": 1000, "streamFirstByteMs": 1000, "streamIdleMs": 1000},
        "weight": 1, "order": 1, "retries": 2,
        "modelInfo": {"mode": "chat", "reasoning": false},
        "healthCheck": {"enabled": false, "intervalMs": 60000, "timeoutMs": 1000, "probe": "models-list"},
    })
}

fn table(deployments: Vec<Value>, strategy: RoutingStrategy) -> Arc<RoutingTable> {
    let mut deployments = deployments;
    deployments.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let ids: Vec<&str> = deployments
        .iter()
        .map(|d| d["id"].as_str().expect("id"))
        .collect();
    let mut t = serde_json::to_value(RoutingTable::default()).expect("json");
    t["schemaVersion"] = json!(SCHEMA_VERSION);
    t["settings"] = serde_json::to_value(modelgate_dataplane_api::Settings {
        routing_strategy: strategy,
        ..Default::default()
    })
    .expect("json");
    t["groups"] = json!([{"name": "m", "namespace": "ns", "deployments": ids}]);
    t["deployments"] = json!(deployments);
    let table: RoutingTable = serde_json::from_value(t).expect("table");
    let table = table.seal(1);
    table.validate().expect("whole table");
    Arc::new(table)
}

fn index(r: &Router, id: &str) -> usize {
    r.targets
        .iter()
        .position(|t| t.spec.id == id)
        .expect("deployment")
}

async fn reserve(r: &Router, i: usize) -> bool {
    let t = &r.targets[i];
    r.limiter
        .reserve(&t.spec.id, &t.spec.limits, &t.state.limits, 0, false)
        .await
        .map(std::mem::forget)
        .is_ok()
}

#[tokio::test]
async fn a_deployment_at_its_limit_is_not_picked_and_429_waits_for_the_window() {
    let registry = StateRegistry::default();
    let r = Router::build(
        table(
            vec![
                deployment("ns/a", json!({"concurrencyScope": "pod", "rpm": 1})),
                deployment("ns/b", json!({"concurrencyScope": "pod", "rpm": 2})),
            ],
            RoutingStrategy::SimpleShuffle,
        ),
        &registry,
    );
    let g = r.group_by_name("m").expect("group");
    let (a, b) = (index(&r, "ns/a"), index(&r, "ns/b"));
    let now = Instant::now();
    assert!(reserve(&r, a).await);
    assert!(!reserve(&r, a).await, "a's rpm is 1");
    for _ in 0..50 {
        assert_eq!(r.pick(g, &[], now), Some(b), "a is at its limit");
    }
    assert_eq!(r.all_limited_until(g, now), None, "b still has room");
    assert!(reserve(&r, b).await && reserve(&r, b).await);
    assert_eq!(r.pick(g, &[], now), None);
    let wait = r
        .all_limited_until(g, now)
        .expect("every deployment is limited");
    assert!(
        wait <= r.limiter.window() && wait > Duration::ZERO,
        "{wait:?}"
    );
}

#[tokio::test]
async fn usage_based_picks_the_lowest_use_relative_to_the_limits() {
    let registry = StateRegistry::default();
    let r = Router::build(
        table(
            vec![
                deployment("ns/small", json!({"concurrencyScope": "pod", "rpm": 10})),
                deployment("ns/big", json!({"concurrencyScope": "pod", "rpm": 100})),
            ],
            RoutingStrategy::UsageBased,
        ),
        &registry,
    );
    let g = r.group_by_name("m").expect("group");
    let (small, big) = (index(&r, "ns/small"), index(&r, "ns/big"));
    for _ in 0..5 {
        assert!(reserve(&r, small).await);
    }
    for _ in 0..20 {
        assert!(reserve(&r, big).await);
    }
    // small: 5/10 = 50% used; big: 20/100 = 20%.
    for _ in 0..50 {
        assert_eq!(r.pick(g, &[], Instant::now()), Some(big));
    }
    for _ in 0..30 {
        assert!(reserve(&r, big).await);
    }
    // big: 50/100, as used as small: either, at random.
    let picks: Vec<usize> = (0..200)
        .filter_map(|_| r.pick(g, &[], Instant::now()))
        .collect();
    assert!(picks.contains(&small) && picks.contains(&big));
}

#[test]
fn least_busy_never_goes_negative_and_breaks_ties_at_random() {
    let registry = StateRegistry::default();
    let r = Router::build(
        table(
            vec![
                deployment("ns/a", json!({"concurrencyScope": "pod"})),
                deployment("ns/b", json!({"concurrencyScope": "pod"})),
            ],
            RoutingStrategy::LeastBusy,
        ),
        &registry,
    );
    let g = r.group_by_name("m").expect("group");
    let (a, b) = (index(&r, "ns/a"), index(&r, "ns/b"));
    let guard = r.targets[a].state.start();
    for _ in 0..20 {
        assert_eq!(r.pick(g, &[], Instant::now()), Some(b));
    }
    drop(guard);
    drop(r.targets[a].state.start());
    assert_eq!(r.targets[a].state.in_flight(), 0);
    let picks: Vec<usize> = (0..200)
        .filter_map(|_| r.pick(g, &[], Instant::now()))
        .collect();
    let to_a = picks.iter().filter(|i| **i == a).count();
    assert!(
        (50..=150).contains(&to_a),
        "ties at random: {to_a} of 200 to a"
    );
}

#[test]
fn a_fleet_wide_concurrency_limit_is_divided_by_the_fleet() {
    let registry = StateRegistry::default();
    let r = Router::build(
        table(
            vec![deployment(
                "ns/a",
                json!({"concurrencyScope": "fleet", "maxConcurrentRequests": 4}),
            )],
            RoutingStrategy::SimpleShuffle,
        ),
        &registry,
    );
    registry.limiter().set_fleet(Fleet {
        gateways: 2,
        sidecars: 0,
    });
    let g = r.group_by_name("m").expect("group");
    let a = index(&r, "ns/a");
    let held = [r.targets[a].state.start(), r.targets[a].state.start()];
    assert_eq!(
        r.pick(g, &[], Instant::now()),
        None,
        "2 of 4 on each of 2 pods"
    );
    drop(held);
    assert_eq!(r.pick(g, &[], Instant::now()), Some(a));
}
