//! The admin API, on real sockets: token checks and rotation, revisions, broken tables
//! refused whole while the old one keeps serving, gzip bodies, skipped entries, and table
//! swaps under concurrent traffic with zero failed requests.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use modelgate_dataplane_api::RoutingTable;
use modelgate_testkit::{
    ADMIN_TOKEN, Alias, Dep, Gateway, Manifest, MockUpstream, Reply, compile_ok, eventually, ms,
};
use serde_json::{Value, json};

fn manifest(a: &MockUpstream) -> Manifest {
    Manifest::new().with(Dep::new("a", "chat", a))
}

async fn served(gw: &Gateway, token: &str) -> Value {
    let r = gw
        .client
        .get_with_key(&gw.admin_url("/v1/routing-table/version"), token)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_need_the_token() {
    let a = MockUpstream::start("a").await;
    let gw = Gateway::start().await;
    let table = compile_ok(&manifest(&a).to_yaml(), 1);
    let body = table.to_canonical_json();
    for (what, token) in [
        ("no token", None),
        ("wrong token", Some("nope")),
        ("empty", Some("")),
    ] {
        let r = gw.put_table(body.clone(), token).await;
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        r.openai_error();
    }
    assert_eq!(gw.get("/health/readiness").await.status, 503);
    let r = gw
        .client
        .get(&gw.admin_url("/v1/routing-table/version"))
        .await;
    assert_eq!(r.status, 401);

    let r = gw.put_table(body, Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["revision"], 1);
    assert_eq!(v["version"], table.version);
    assert_eq!(v["changed"], true);
    assert_eq!(v["skipped"], json!([]));
    let s = served(&gw, ADMIN_TOKEN).await;
    assert_eq!(s["revision"], 1);
    assert_eq!(s["version"], table.version);
    assert_eq!(gw.chat("chat").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revisions_only_go_forward() {
    let (a, b) = (
        MockUpstream::start("a").await,
        MockUpstream::start("b").await,
    );
    let gw = Gateway::start().await;
    let t5 = compile_ok(&manifest(&a).to_yaml(), 5);
    assert_eq!(gw.push(&t5).await.status, 200);

    // The same table again: fine, nothing changes.
    let r = gw.push(&t5).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["changed"], false);

    // The same content under a later revision: accepted.
    let t6 = compile_ok(&manifest(&a).to_yaml(), 6);
    assert_eq!(t6.version, t5.version);
    assert_eq!(gw.push(&t6).await.status, 200);

    // Older: 409, and nothing changes.
    let other = Manifest::new().with(Dep::new("b", "chat", &b));
    let r = gw.push(&compile_ok(&other.to_yaml(), 4)).await;
    assert_eq!(r.status, 409, "{}", r.text());
    let e = r.openai_error();
    assert!(
        e["message"].as_str().is_some_and(|m| m.contains("older")),
        "{e}"
    );
    // Same revision, different content: 409.
    let r = gw.push(&compile_ok(&other.to_yaml(), 6)).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(served(&gw, ADMIN_TOKEN).await["revision"], 6);
    assert_eq!(gw.chat("chat").await.upstream().as_deref(), Some("a"));

    let r = gw.push(&compile_ok(&other.to_yaml(), 7)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(gw.chat("chat").await.upstream().as_deref(), Some("b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_tables_are_refused_with_reasons_and_the_old_one_keeps_serving() {
    let a = MockUpstream::start("a").await;
    let gw = Gateway::with(&manifest(&a)).await;
    let good = served(&gw, ADMIN_TOKEN).await;
    let table = compile_ok(&manifest(&a).to_yaml(), 10);

    // Not JSON; not a table; a version that is not the content hash.
    let mut tampered: Value = serde_json::from_slice(&table.to_canonical_json()).expect("json");
    tampered["deployments"][0]["upstreamModel"] = json!("something-else");
    let mut newer = serde_json::from_slice::<Value>(&table.to_canonical_json()).expect("json");
    newer["schemaVersion"] = json!(99);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not JSON", b"{nope".to_vec(), ""),
        ("not a table", b"{\"hello\": 1}".to_vec(), ""),
        ("tampered", tampered.to_string().into_bytes(), "sha256"),
        ("newer schema", newer.to_string().into_bytes(), "upgrade"),
    ];
    for (what, body, reason) in cases {
        let r = gw.put_table(body, Some(ADMIN_TOKEN)).await;
        assert!(
            r.status == 400 || r.status == 422,
            "{what}: {} {}",
            r.status,
            r.text()
        );
        let e = r.openai_error();
        assert!(
            e["message"].as_str().is_some_and(|m| m.contains(reason)),
            "{what}: {e}"
        );
    }

    // Whole but inconsistent: a deployment no group lists (sealed, so the hash is right).
    let mut broken: RoutingTable = table.clone();
    broken.groups.clear();
    let broken = broken.seal(11);
    let r = gw.push(&broken).await;
    assert_eq!(r.status, 422, "{}", r.text());
    let e = r.openai_error();
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("default/a")),
        "the reason names the entry: {e}"
    );

    assert_eq!(
        served(&gw, ADMIN_TOKEN).await,
        good,
        "the old table is still served"
    );
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(gw.get("/health/readiness").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_this_build_cannot_serve_are_skipped_and_reported() {
    let (a, b) = (
        MockUpstream::start("a").await,
        MockUpstream::start("b").await,
    );
    let gw = Gateway::start().await;
    let mut table = compile_ok(
        &Manifest::new()
            .with(Dep::new("a", "chat", &a))
            .with(Dep::new("b", "future", &b))
            .to_yaml(),
        1,
    );
    // A provider from a newer operator.
    for d in &mut table.deployments {
        if d.id == "default/b" {
            d.provider = "cohere".to_owned();
        }
    }
    let table = table.seal(1);
    let r = gw.push(&table).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let skipped = r.json()["skipped"].clone();
    assert_eq!(skipped[0]["id"], "default/b", "{skipped}");
    assert!(skipped[0]["reason"].is_string(), "{skipped}");
    assert_eq!(gw.chat("chat").await.status, 200);
    let r = gw.chat("future").await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(b.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bodies_are_accepted() {
    let a = MockUpstream::start("a").await;
    let gw = Gateway::start().await;
    let table = compile_ok(&manifest(&a).to_yaml(), 3);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&table.to_canonical_json()).expect("gzip");
    let body = gz.finish().expect("gzip");
    let r = gw.put_table(Bytes::from(body), Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["version"], table.version);
    assert_eq!(gw.chat("chat").await.status, 200);

    // A corrupt gzip stream is refused, not served.
    let r = gw
        .put_table(
            Bytes::from_static(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert!(r.status.is_client_error(), "{} {}", r.status, r.text());
    r.openai_error();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_rotation_accepts_the_old_and_the_new_token() {
    let a = MockUpstream::start("a").await;
    let gw = Gateway::start().await;
    let push = |rev: u64, token: &'static str| {
        let body = compile_ok(&manifest(&a).to_yaml(), rev).to_canonical_json();
        let gw = &gw;
        async move { gw.put_table(body, Some(token)).await.status.as_u16() }
    };

    // Rotated before the operator's first push: the token the pod started with is the
    // old token, and is still accepted during the rotation.
    gw.rotate_token("token-2");
    assert_eq!(
        push(1, ADMIN_TOKEN).await,
        200,
        "the old token during a rotation"
    );
    assert_eq!(push(2, "token-2").await, 200, "the new token");
    assert_eq!(push(3, "token-3").await, 401, "not a token yet");

    // Another rotation: the newest two are accepted, the oldest no longer.
    gw.rotate_token("token-3");
    assert_eq!(push(4, "token-3").await, 200);
    assert_eq!(push(5, "token-2").await, 200);
    assert_eq!(push(6, ADMIN_TOKEN).await, 401, "two rotations ago");
}

/// Tables that all serve `chat`, with different shapes: deployments come and go, weights
/// and tiers change, and `chat` is now a group, now an alias.
fn swap_manifests(a: &MockUpstream, b: &MockUpstream) -> Vec<Manifest> {
    vec![
        Manifest::new().with(Dep::new("a", "chat", a)),
        Manifest::new()
            .with(Dep::new("a", "chat", a).weight(1))
            .with(Dep::new("b", "chat", b).weight(3)),
        Manifest::new().with(Dep::new("b", "chat", b)),
        Manifest::new()
            .with(Dep::new("a", "chat", a).order(2))
            .with(Dep::new("b2", "chat", b).order(1).retries(1)),
        Manifest::new()
            .with(Dep::new("a", "chat-a", a))
            .with(Dep::new("b", "chat-b", b))
            .with(Alias::new("chat").target("chat-a", 1).target("chat-b", 1)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_swaps_under_concurrent_traffic_fail_no_request() {
    let (a, b) = (
        MockUpstream::start("a").await,
        MockUpstream::start("b").await,
    );
    // A little upstream latency, so that swaps land while requests are in flight.
    a.set(Reply::ok().delay(ms(5)));
    b.set(Reply::ok().delay(ms(5)));
    let manifests = swap_manifests(&a, &b);
    let gw = Arc::new(Gateway::with(&manifests[0]).await);

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (gw, stop, ok) = (Arc::clone(&gw), Arc::clone(&stop), Arc::clone(&ok));
        clients.spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                // Half the clients stream.
                let result = if i % 2 == 0 {
                    gw.client
                        .try_send(gw.chat_request("chat"))
                        .await
                        .and_then(|r| {
                            if r.status == 200 && r.upstream().is_some() {
                                Ok(())
                            } else {
                                Err(format!("{} {}", r.status, r.text()))
                            }
                        })
                } else {
                    let mut sse = gw.client.stream(gw.stream_request("chat")).await;
                    let status = sse.status;
                    sse.read_to_end(Duration::from_secs(10)).await;
                    if status == 200 && sse.events.last().is_some_and(|e| e.is_done()) {
                        Ok(())
                    } else {
                        Err(format!("stream {status}: {:?} {:?}", sse.end, sse.events))
                    }
                };
                match result {
                    Ok(()) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => failures.push(e),
                }
            }
            failures
        });
    }

    let started = Instant::now();
    let mut pushes = 0;
    while started.elapsed() < Duration::from_secs(2) {
        let m = &manifests[pushes % manifests.len()];
        gw.apply(m).await;
        pushes += 1;
        tokio::time::sleep(ms(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    while let Some(f) = clients.join_next().await {
        failures.extend(f.expect("client"));
    }
    let ok = ok.load(Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} failed of {}: {:?}",
        failures.len(),
        ok + failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(pushes >= 10, "only {pushes} pushes");
    assert!(ok >= 50, "only {ok} requests in 2 s");
    eprintln!("{ok} requests, {pushes} table swaps, 0 failures");
    assert_eq!(
        served(&gw, ADMIN_TOKEN).await["revision"],
        u64::try_from(pushes + 1).expect("revision")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_swap_forgets_no_cooldown() {
    let (a, b) = (
        MockUpstream::start("a").await,
        MockUpstream::start("b").await,
    );
    let m = |weight: u32| {
        Manifest::new()
            .with(Dep::new("a", "chat", &a).order(1).weight(weight))
            .with(Dep::new("b", "chat", &b).order(2))
            .settings(json!({"cooldown": {"allowedFails": 1, "cooldownTime": "30s"}}))
    };
    let gw = Gateway::with(&m(1)).await;
    a.set(Reply::fail(500));
    let r = gw.chat("chat").await;
    assert_eq!(r.deployment(), Some("default/b"), "{}", r.text());
    assert_eq!(a.count(), 1);
    // A new table keeping deployment `a` (changed): `a` is still cooling down.
    gw.apply(&m(5)).await;
    for _ in 0..5 {
        assert_eq!(gw.chat("chat").await.deployment(), Some("default/b"));
    }
    assert_eq!(a.count(), 1, "the cooldown survived the swap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_master_key_takes_effect_with_the_table() {
    let a = MockUpstream::start("a").await;
    let m = |key: &str| {
        Manifest::new()
            .with(modelgate_testkit::Secret::new("gw").entry("master", key))
            .with(Dep::new("a", "chat", &a))
            .settings(json!({"masterKey": {"secretKeyRef": {"name": "gw", "key": "master"}}}))
    };
    let gw = Gateway::with(&m("sk-one")).await;
    let with_key = |key: &str| {
        modelgate_testkit::http::with_header(
            gw.chat_request("chat"),
            "authorization",
            &format!("Bearer {key}"),
        )
    };
    assert_eq!(gw.client.send(with_key("sk-one")).await.status, 200);
    gw.apply(&m("sk-two")).await;
    assert_eq!(gw.client.send(with_key("sk-one")).await.status, 401);
    assert_eq!(gw.client.send(with_key("sk-two")).await.status, 200);
    gw.apply(&manifest(&a)).await;
    assert_eq!(gw.chat("chat").await.status, 200, "no master key: open");
}

/// The admin health report and the public `/health`: active checks once per deployment
/// (however many aliases reach it), reason codes (bad credentials apart), latency, check
/// time and the table version each verdict was reached under; no key anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_say_why_and_under_which_table() {
    const GOOD: &str = "sk-health-good-0123456789";
    const WRONG: &str = "sk-health-wrong-9876543210";
    let (good, bad) = (
        MockUpstream::start("good").await,
        MockUpstream::start("bad").await,
    );
    good.require_key(GOOD);
    bad.require_key("sk-the-upstream-wants-another");
    let checked = json!({"enabled": true, "interval": "1s", "timeout": "1s"});
    let m = Manifest::new()
        .with(
            modelgate_testkit::Secret::new("keys")
                .entry("good", GOOD)
                .entry("wrong", WRONG),
        )
        .with(
            Dep::new("good", "chat", &good)
                .key("keys", "good")
                .spec_field("healthCheck", checked.clone()),
        )
        .with(
            // The mock lists models to anyone: a chat probe meets the key check.
            Dep::new("bad", "other", &bad)
                .key("keys", "wrong")
                .spec_field(
                    "healthCheck",
                    json!({"enabled": true, "interval": "1s", "timeout": "1s", "probe": "chat"}),
                ),
        )
        // Three names reach `good`: still one check per interval.
        .with(Alias::new("alias-one").target("chat", 1))
        .with(Alias::new("alias-two").target("chat", 1));
    let gw = Gateway::start().await;
    let table = gw.apply(&m).await;
    let report = || async {
        let r = gw
            .client
            .get_with_key(&gw.admin_url("/v1/health-report"), ADMIN_TOKEN)
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    let both_checked = eventually(Duration::from_secs(10), || async {
        let r = report().await;
        r["deployments"]
            .as_array()
            .is_some_and(|d| d.len() == 2 && d.iter().all(|d| d.get("healthy").is_some()))
    })
    .await;
    let r = report().await;
    assert!(both_checked, "{r:#}");
    assert_eq!(r["version"], table.version);
    let by_id = |id: &str| -> Value {
        r["deployments"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["id"] == id))
            .cloned()
            .unwrap_or_else(|| panic!("{id} in {r:#}"))
    };
    let g = by_id("default/good");
    assert_eq!(g["healthy"], true, "{g}");
    assert_eq!(g["source"], "check");
    assert_eq!(g["tableVersion"], table.version);
    assert!(g["latencyMs"].is_u64() && g["lastCheckMs"].is_u64(), "{g}");
    assert_eq!(g["consecutiveFailures"], 0);
    assert!(g.get("reasonCode").is_none(), "{g}");
    let b = by_id("default/bad");
    assert_eq!(b["healthy"], false, "{b}");
    assert_eq!(b["reasonCode"], "badCredentials", "{b}");
    assert!(
        b["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("bad credentials (401")),
        "{b}"
    );
    assert_eq!(b["tableVersion"], table.version);

    // `/health` on the public port: the same facts, no key.
    let h = gw.get("/health").await;
    assert_eq!(h.status, 200);
    let text = h.text();
    for key in [GOOD, WRONG] {
        assert!(!text.contains(key), "a key in /health: {text}");
    }
    let h = h.json();
    assert_eq!(
        (&h["healthy_count"], &h["unhealthy_count"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(h["table_version"], table.version);
    let row = &h["unhealthy_endpoints"][0];
    assert_eq!(row["id"], "default/bad");
    assert_eq!(row["reason_code"], "badCredentials");
    assert_eq!(row["table_version"], table.version);
    assert_eq!(row["consecutive_failures"], 0);
    let row = &h["healthy_endpoints"][0];
    assert_eq!(row["id"], "default/good");
    assert!(
        row["latency_ms"].is_u64() && row["last_check_ms"].is_u64(),
        "{row}"
    );
    let text = serde_json::to_string(&report().await).expect("json");
    for key in [GOOD, WRONG] {
        assert!(!text.contains(key), "a key in the health report: {text}");
    }

    // Once per deployment: over 3 s at a 1 s interval (±10 %), at most 4 probes of
    // `good`, not one per name reaching it.
    let probes = || {
        good.requests()
            .iter()
            .filter(|r| r.path.ends_with("/models"))
            .count()
    };
    let before = probes();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = probes() - before;
    assert!(
        (2..=4).contains(&during),
        "{during} probes of one deployment in 3 s"
    );
}

/// Passive checks: a 401 or 403 an upstream gives real traffic marks the deployment as
/// having bad credentials (not a generic failure, no cooldown); the client gets the error;
/// a later success clears it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_on_traffic_are_reported_as_bad_credentials() {
    const KEY: &str = "sk-passive-0123456789";
    let a = MockUpstream::start("a").await;
    a.require_key("sk-not-the-one-we-have");
    let gw = Gateway::start().await;
    let table = gw
        .apply(
            &Manifest::new()
                .with(modelgate_testkit::Secret::new("keys").entry("k", KEY))
                .with(Dep::new("a", "chat", &a).key("keys", "k")),
        )
        .await;
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 401, "{}", r.text());
    r.openai_error();
    assert!(!r.text().contains(KEY), "{}", r.text());
    let report = gw
        .client
        .get_with_key(&gw.admin_url("/v1/health-report"), ADMIN_TOKEN)
        .await
        .json();
    let d = &report["deployments"][0];
    assert_eq!(d["healthy"], false, "{report:#}");
    assert_eq!(d["reasonCode"], "badCredentials", "{report:#}");
    assert_eq!(d["source"], "traffic", "{report:#}");
    assert_eq!(d["tableVersion"], table.version);
    assert!(d.get("cooldownUntilMs").is_none(), "no cooldown: {d}");
    let h = gw.get("/health").await.json();
    assert_eq!(h["unhealthy_endpoints"][0]["reason_code"], "badCredentials");
    // A 403 reads the same way.
    a.require_key(KEY);
    a.then(Reply::fail(403));
    assert_eq!(gw.chat("chat").await.status, 403);
    let report = gw
        .client
        .get_with_key(&gw.admin_url("/v1/health-report"), ADMIN_TOKEN)
        .await
        .json();
    assert_eq!(report["deployments"][0]["reasonCode"], "badCredentials");
    // The key works again: the next answer clears it.
    assert_eq!(gw.chat("chat").await.status, 200);
    let report = gw
        .client
        .get_with_key(&gw.admin_url("/v1/health-report"), ADMIN_TOKEN)
        .await
        .json();
    let d = &report["deployments"][0];
    assert_eq!(d["healthy"], true, "{report:#}");
    assert!(d.get("reasonCode").is_none(), "{report:#}");
}
