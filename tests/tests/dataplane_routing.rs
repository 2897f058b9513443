//! Routing, on real sockets: the data plane in-process, mock upstreams on 127.0.0.1.
//! `model` → alias (weighted split) → group (weighted split) → deployment, priority tiers,
//! `provider/*` wildcards, the three endpoints, OpenAI and Azure upstream requests.

use std::collections::HashMap;
use std::sync::Arc;

use modelgate_testkit::{Alias, Dep, Gateway, Manifest, MockUpstream, Reply, Secret, ms};
use serde_json::json;

/// Sends `n` chat requests for `model`, `concurrency` at a time; counts answers by
/// `x-modelgate-deployment`, checking that each names the upstream that answered.
async fn spread(
    gw: &Arc<Gateway>,
    model: &str,
    n: usize,
    concurrency: usize,
) -> HashMap<String, usize> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let gw = Arc::clone(gw);
        let model = model.to_owned();
        let share = n / concurrency + usize::from(worker < n % concurrency);
        tasks.spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..share {
                let r = gw.chat(&model).await;
                assert_eq!(r.status, 200, "{}", r.text());
                let deployment = r.deployment().expect("x-modelgate-deployment").to_owned();
                let upstream = r.upstream().expect("an answer from a mock upstream");
                assert_eq!(
                    deployment,
                    format!("default/{upstream}"),
                    "the header names the deployment that answered"
                );
                assert_eq!(r.attempts(), Some(1));
                seen.push(upstream);
            }
            seen
        });
    }
    while let Some(seen) = tasks.join_next().await {
        for s in seen.expect("worker") {
            *counts.entry(s).or_default() += 1;
        }
    }
    counts
}

/// `expected ± tolerance`, with a message showing every count.
fn assert_near(counts: &HashMap<String, usize>, key: &str, expected: usize, tolerance: usize) {
    let got = counts.get(key).copied().unwrap_or(0);
    assert!(
        got.abs_diff(expected) <= tolerance,
        "{key}: {got} requests, expected {expected} ± {tolerance}; all: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alias_splits_by_target_weight_then_groups_by_deployment_weight() {
    let (a, b, c) = (
        MockUpstream::start("a").await,
        MockUpstream::start("b").await,
        MockUpstream::start("c").await,
    );
    // alias `smart` → 3:1 between groups `small` and `large`; `small` splits 1:1
    // between deployments a and b.
    let gw = Arc::new(
        Gateway::with(
            &Manifest::new()
                .with(Dep::new("a", "small", &a).weight(1))
                .with(Dep::new("b", "small", &b).weight(1))
                .with(Dep::new("c", "large", &c))
                .with(Alias::new("smart").target("small", 3).target("large", 1)),
        )
        .await,
    );
    let n = 800;
    let counts = spread(&gw, "smart", n, 8).await;
    // Binomial spread: σ ≈ 12 for c (p = 1/4) and ≈ 13 for a, b (p = 3/8); ±5σ.
    assert_near(&counts, "c", n / 4, 70);
    assert_near(&counts, "a", n * 3 / 8, 70);
    assert_near(&counts, "b", n * 3 / 8, 70);
    assert_eq!(
        a.count() + b.count() + c.count(),
        n,
        "one upstream request each"
    );

    // The upstream is asked for the group's model, never the alias.
    for r in a.requests().iter().chain(c.requests().iter()).take(20) {
        let m = r.model().expect("model");
        assert!(m == "small" || m == "large", "upstream asked for {m}");
    }

    // The group by its own name splits by deployment weight only.
    a.reset();
    b.reset();
    c.reset();
    let counts = spread(&gw, "small", 400, 8).await;
    assert_near(&counts, "a", 200, 60);
    assert_near(&counts, "b", 200, 60);
    assert_eq!(c.count(), 0, "`small` never reaches `large`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_weights_split_a_group() {
    let (a, b) = (
        MockUpstream::start("a").await,
        MockUpstream::start("b").await,
    );
    let gw = Arc::new(
        Gateway::with(
            &Manifest::new()
                .with(Dep::new("a", "chat", &a).weight(3))
                .with(Dep::new("b", "chat", &b).weight(1)),
        )
        .await,
    );
    let counts = spread(&gw, "chat", 400, 8).await;
    // p = 3/4, σ ≈ 8.7; ±5σ.
    assert_near(&counts, "a", 300, 45);
    assert_near(&counts, "b", 100, 45);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alias_chains_resolve_to_groups() {
    let a = MockUpstream::start("a").await;
    let gw = Gateway::with(
        &Manifest::new()
            .with(Dep::new("a", "base", &a))
            .with(Alias::new("middle").target("base", 1))
            .with(Alias::new("outer").target("middle", 1)),
    )
    .await;
    let r = gw.chat("outer").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.deployment(), Some("default/a"));
    assert_eq!(a.last().and_then(|r| r.model()).as_deref(), Some("base"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lower_order_first_higher_only_while_the_lower_tier_is_down_or_cooling() {
    let (p1, p2, backup) = (
        MockUpstream::start("p1").await,
        MockUpstream::start("p2").await,
        MockUpstream::start("backup").await,
    );
    let gw = Gateway::with(
        &Manifest::new()
            .with(Dep::new("p1", "chat", &p1).order(1))
            .with(Dep::new("p2", "chat", &p2).order(1))
            .with(Dep::new("backup", "chat", &backup).order(2))
            .settings(json!({"cooldown": {"allowedFails": 1, "cooldownTime": "1s"}})),
    )
    .await;

    for _ in 0..40 {
        let r = gw.chat("chat").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_ne!(
            r.deployment(),
            Some("default/backup"),
            "tier 2 while tier 1 is up"
        );
    }
    assert!(
        p1.count() > 0 && p2.count() > 0,
        "both tier-1 deployments serve"
    );
    assert_eq!(backup.count(), 0);

    // One tier-1 deployment down: the other tier-1 deployment, not the backup.
    p1.set(Reply::fail(500));
    for _ in 0..10 {
        let r = gw.chat("chat").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.deployment(), Some("default/p2"));
    }
    assert_eq!(backup.count(), 0, "tier 2 while a tier-1 deployment is up");

    // The whole tier down: the backup answers; once both are cooling down, requests go
    // straight to the backup without trying them.
    p2.set(Reply::fail(500));
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.deployment(), Some("default/backup"));
    let (n1, n2) = (p1.count(), p2.count());
    for _ in 0..5 {
        let r = gw.chat("chat").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.deployment(), Some("default/backup"));
        assert_eq!(
            r.attempts(),
            Some(1),
            "cooling deployments are skipped, not tried"
        );
    }
    assert!(
        p1.count() + p2.count() <= n1 + n2 + 2,
        "tier 1 is skipped while cooling down"
    );

    // Back up after the cooldown: tier 1 again.
    p1.set(Reply::ok());
    p2.set(Reply::ok());
    let back = modelgate_testkit::eventually(ms(5000), || async {
        gw.chat("chat").await.deployment() != Some("default/backup")
    })
    .await;
    assert!(back, "tier 1 serves again once its cooldown ends");
    for _ in 0..10 {
        let r = gw.chat("chat").await;
        assert_ne!(r.deployment(), Some("default/backup"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcards_forward_the_name_after_the_provider_prefix() {
    let (wild, prefixed, exact) = (
        MockUpstream::start("wild").await,
        MockUpstream::start("prefixed").await,
        MockUpstream::start("exact").await,
    );
    let gw = Gateway::with(
        &Manifest::new()
            .with(Dep::new("wild", "openai/*", &wild))
            .with(Dep::new("prefixed", "fireworks/*", &prefixed).upstream_model("accounts/fw/*"))
            .with(Dep::new("exact", "openai/gpt-4o", &exact)),
    )
    .await;

    let r = gw.chat("openai/gpt-4o-mini").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.deployment(), Some("default/wild"));
    assert_eq!(
        wild.last().and_then(|r| r.model()).as_deref(),
        Some("gpt-4o-mini")
    );

    let r = gw.chat("fireworks/llama-v3").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        prefixed.last().and_then(|r| r.model()).as_deref(),
        Some("accounts/fw/llama-v3")
    );

    // A concrete group beats the wildcard that would also match it.
    let r = gw.chat("openai/gpt-4o").await;
    assert_eq!(r.deployment(), Some("default/exact"));
    assert_eq!(
        exact.last().and_then(|r| r.model()).as_deref(),
        Some("openai/gpt-4o")
    );

    // No wildcard for the prefix: not found.
    let r = gw.chat("anthropic/claude").await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.openai_error()["code"], "model_not_found");
    assert_eq!(wild.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_models_are_404_model_not_found() {
    let a = MockUpstream::start("a").await;
    let gw = Gateway::with(&Manifest::new().with(Dep::new("a", "chat", &a))).await;
    for path in ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"] {
        let r = gw
            .post(
                path,
                &json!({"model": "nope", "messages": [], "prompt": "x", "input": "x"}),
            )
            .await;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        let e = r.openai_error();
        assert_eq!(e["code"], "model_not_found", "{e}");
        assert_eq!(e["param"], "model", "{e}");
        assert_eq!(e["type"], "invalid_request_error", "{e}");
    }
    let r = gw.get("/v1/models/nope").await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.openai_error()["code"], "model_not_found");
    assert_eq!(a.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_with_and_without_v1_reaches_the_matching_upstream_path() {
    let a = MockUpstream::start("a").await;
    let gw = Gateway::with(
        &Manifest::new()
            .with(Dep::new("a", "chat", &a))
            .with(Dep::new("e", "embed", &a).info("mode", json!("embedding"))),
    )
    .await;
    let cases = [
        (
            "/v1/chat/completions",
            "chat",
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            "/v1/chat/completions",
            "chat.completion",
        ),
        (
            "/chat/completions",
            "chat",
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            "/v1/chat/completions",
            "chat.completion",
        ),
        (
            "/v1/completions",
            "chat",
            json!({"prompt": "hi"}),
            "/v1/completions",
            "text_completion",
        ),
        (
            "/completions",
            "chat",
            json!({"prompt": "hi"}),
            "/v1/completions",
            "text_completion",
        ),
        (
            "/v1/embeddings",
            "embed",
            json!({"input": ["a", "b"]}),
            "/v1/embeddings",
            "list",
        ),
        (
            "/embeddings",
            "embed",
            json!({"input": "a"}),
            "/v1/embeddings",
            "list",
        ),
    ];
    for (path, model, mut body, upstream_path, object) in cases {
        body["model"] = json!(model);
        let r = gw.post(path, &body).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.json()["object"], object, "{path}");
        assert_eq!(r.header("content-type"), Some("application/json"), "{path}");
        let seen = a.last().expect("a request");
        assert_eq!(seen.path, upstream_path, "{path}");
        // The body reaches the upstream as the client sent it (model unchanged here).
        assert_eq!(seen.json(), body, "{path}");
    }
    // Embeddings cannot stream.
    let r = gw
        .post(
            "/v1/embeddings",
            &json!({"model": "embed", "input": "a", "stream": true}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.openai_error()["param"], "stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_upstreams_get_their_key_headers_and_model() {
    let a = MockUpstream::start("a").await;
    a.require_key("sk-upstream-a");
    let gw = Gateway::with(
        &Manifest::new()
            .with(Secret::new("keys").entry("a", "sk-upstream-a"))
            .with(
                Dep::new("a", "chat", &a)
                    .provider("openai")
                    .upstream_model("gpt-4o-2024-08-06")
                    .key("keys", "a")
                    .header("OpenAI-Organization", "org-test"),
            ),
    )
    .await;
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = a.last().expect("a request");
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.header("authorization"), Some("Bearer sk-upstream-a"));
    assert_eq!(seen.header("openai-organization"), Some("org-test"));
    assert_eq!(seen.model().as_deref(), Some("gpt-4o-2024-08-06"));
    assert_eq!(seen.json()["messages"][0]["content"], "Say hello.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_upstreams_get_the_deployment_url_api_version_and_api_key() {
    let az = MockUpstream::start("az").await;
    az.require_key("azure-key-1");
    let gw = Gateway::with(
        &Manifest::new()
            .with(Secret::new("azure").entry("key", "azure-key-1"))
            .with(Dep::azure("az", "gpt-4o", &az, "my-gpt4o", "2024-10-21").key("azure", "key"))
            .with(
                Dep::azure("az-embed", "embed", &az, "my-embed", "2024-10-21")
                    .key("azure", "key")
                    .info("mode", json!("embedding")),
            ),
    )
    .await;
    let r = gw.chat("gpt-4o").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.deployment(), Some("default/az"));
    let seen = az.last().expect("a request");
    assert_eq!(seen.path, "/openai/deployments/my-gpt4o/chat/completions");
    assert_eq!(seen.query.as_deref(), Some("api-version=2024-10-21"));
    assert_eq!(seen.header("api-key"), Some("azure-key-1"));
    assert_eq!(
        seen.header("authorization"),
        None,
        "Azure takes the key in api-key only"
    );

    let r = gw
        .post("/v1/embeddings", &json!({"model": "embed", "input": "x"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = az.last().expect("a request");
    assert_eq!(seen.path, "/openai/deployments/my-embed/embeddings");
    assert_eq!(seen.query.as_deref(), Some("api-version=2024-10-21"));

    // A stream goes the same way.
    let mut sse = gw.client.stream(gw.stream_request("gpt-4o")).await;
    assert_eq!(sse.status, 200);
    sse.read_to_end(ms(5000)).await;
    assert!(
        sse.events.last().is_some_and(|e| e.is_done()),
        "{:?}",
        sse.events
    );
    assert_eq!(
        az.last().expect("a request").path,
        "/openai/deployments/my-gpt4o/chat/completions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_busy_prefers_the_idle_deployment() {
    let (slow, fast) = (
        MockUpstream::start("slow").await,
        MockUpstream::start("fast").await,
    );
    slow.set(Reply::ok().delay(ms(1500)));
    let gw = Arc::new(
        Gateway::with(
            &Manifest::new()
                .with(Dep::new("slow", "chat", &slow))
                .with(Dep::new("fast", "chat", &fast))
                .settings(json!({"routingStrategy": "least-busy"})),
        )
        .await,
    );
    // Occupy `slow` with one request (retry until it lands there), then the next
    // requests must all go to the idle `fast`.
    let mut pinned = None;
    for _ in 0..20 {
        let gw2 = Arc::clone(&gw);
        let task = tokio::spawn(async move { gw2.chat("chat").await });
        let landed =
            modelgate_testkit::eventually(ms(1000), || async { slow.count() + fast.count() > 0 })
                .await;
        assert!(landed);
        if slow.count() == 1 {
            pinned = Some(task);
            break;
        }
        task.await.expect("request");
        fast.reset();
    }
    let pinned = pinned.expect("a request landed on `slow` within 20 tries");
    for _ in 0..5 {
        let r = gw.chat("chat").await;
        assert_eq!(
            r.deployment(),
            Some("default/fast"),
            "least-busy picks the idle one"
        );
    }
    assert_eq!(pinned.await.expect("request").status, 200);
}
