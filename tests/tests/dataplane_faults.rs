//! Faults, on real sockets: retries to another deployment, non-retryable client errors,
//! alias and router fallbacks in order, context-window fallbacks, cooldowns and per-
//! deployment timeouts. Timeouts here are short real ones (hundreds of milliseconds).

use std::time::Instant;

use modelgate_testkit::{
    Alias, Dep, Gateway, Manifest, MockUpstream, Reply, dead_address, eventually, ms,
};
use serde_json::json;

/// Settings that keep cooldowns out of the way of retry tests.
fn no_cooldown() -> serde_json::Value {
    json!({"cooldown": {"allowedFails": 1000, "cooldownTime": "1s"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_failures_go_to_another_deployment() {
    let (first, second) = (
        MockUpstream::start("first").await,
        MockUpstream::start("second").await,
    );
    let dead = dead_address();
    let gw = Gateway::with(
        &Manifest::new()
            .with(
                Dep::new("first", "chat", &first)
                    .order(1)
                    .request_timeout("400ms"),
            )
            .with(Dep::new("second", "chat", &second).order(2))
            .with(
                Dep::at(
                    "dead",
                    "refused",
                    "openai-compatible",
                    &format!("http://{dead}/v1"),
                )
                .order(1),
            )
            .with(Dep::new("second-of-refused", "refused", &second).order(2))
            .settings(no_cooldown()),
    )
    .await;
    let cases = [
        ("500", Reply::fail(500)),
        ("502", Reply::fail(502)),
        ("503", Reply::fail(503)),
        ("429", Reply::fail(429)),
        ("408", Reply::fail(408)),
        ("timeout", Reply::hang()),
    ];
    for (what, reply) in cases {
        first.set(reply);
        first.reset();
        second.reset();
        let started = Instant::now();
        let r = gw.chat("chat").await;
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        assert_eq!(r.upstream().as_deref(), Some("second"), "{what}");
        assert_eq!(r.deployment(), Some("default/second"), "{what}");
        assert_eq!(r.attempts(), Some(2), "{what}");
        assert_eq!((first.count(), second.count()), (1, 1), "{what}");
        assert!(
            started.elapsed() < ms(10_000),
            "{what}: took {:?}",
            started.elapsed()
        );
    }

    // Connection refused.
    second.reset();
    let r = gw.chat("refused").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.deployment(), Some("default/second-of-refused"));
    assert_eq!(r.attempts(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_deployment_is_retried_with_backoff_then_the_last_error_is_returned() {
    let a = MockUpstream::start("a").await;
    let gw = Gateway::with(
        &Manifest::new()
            .with(Dep::new("a", "chat", &a).retries(2))
            .settings(no_cooldown()),
    )
    .await;
    a.set(Reply::fail(503));
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 503, "{}", r.text());
    let e = r.openai_error();
    assert_eq!(e["message"], "mock upstream says 503", "{e}");
    assert_eq!(r.attempts(), Some(3), "1 + retries");
    assert_eq!(a.count(), 3);

    // Recovers within the retries.
    a.reset();
    a.then(Reply::fail(500)).then(Reply::fail(502));
    a.set(Reply::ok());
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.attempts(), Some(3));

    // A retry of the same deployment honours Retry-After.
    a.reset();
    a.then(Reply::fail(429).retry_after(1));
    let started = Instant::now();
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.attempts(), Some(2));
    assert!(
        started.elapsed() >= ms(900),
        "Retry-After: 1 was not honoured: retried after {:?}",
        started.elapsed()
    );
    let reqs = a.requests();
    assert!(reqs[1].at.duration_since(reqs[0].at) >= ms(900));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_from_the_upstream_come_back_at_once() {
    let (first, second) = (
        MockUpstream::start("first").await,
        MockUpstream::start("second").await,
    );
    let gw = Gateway::with(
        &Manifest::new()
            .with(Dep::new("first", "chat", &first).order(1))
            .with(Dep::new("second", "chat", &second).order(2))
            .with(Alias::new("alias").target("chat", 1).fallback("other"))
            .with(Dep::new("other", "other", &second))
            .settings(json!({"fallbacks": {"chat": ["other"]}})),
    )
    .await;
    for status in [400u16, 401, 403, 404] {
        first.set(Reply::fail(status));
        first.reset();
        second.reset();
        for model in ["chat", "alias"] {
            let r = gw.chat(model).await;
            assert_eq!(r.status, status, "{model}: {}", r.text());
            let e = r.openai_error();
            assert_eq!(e["message"], format!("mock upstream says {status}"), "{e}");
            let kind = match status {
                401 => "authentication_error",
                403 => "permission_error",
                _ => "invalid_request_error",
            };
            assert_eq!(e["type"], kind, "{status}: {e}");
            assert_eq!(r.attempts(), Some(1), "{status}");
        }
        assert_eq!(first.count(), 2, "{status}");
        assert_eq!(second.count(), 0, "{status}: no retry, no fallback");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alias_fallbacks_then_router_fallbacks_in_order() {
    let g: Vec<MockUpstream> =
        futures_util::future::join_all(["g1", "g2", "g3", "g4", "g5"].map(MockUpstream::start))
            .await;
    let mut m = Manifest::new();
    for up in &g {
        m = m.with(Dep::new(up.name(), up.name(), up).retries(0));
    }
    let m = m
        .with(
            Alias::new("chat")
                .target("g1", 1)
                .fallback("g2")
                .fallback("g3"),
        )
        .settings(json!({
            "fallbacks": {"g1": ["g4"], "chat": ["g5"]},
            "cooldown": {"allowedFails": 1000, "cooldownTime": "1s"},
        }));
    let gw = Gateway::with(&m).await;

    for up in [&g[0], &g[1], &g[2], &g[4]] {
        up.set(Reply::fail(500));
    }
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream().as_deref(), Some("g4"));
    assert_eq!(r.attempts(), Some(5));
    // Order: the alias's target, its fallbacks in order, then the router's fallbacks
    // for the name requested (the alias), then for the group it led to.
    let mut order: Vec<(u64, &str)> = g
        .iter()
        .flat_map(|up| up.requests().into_iter().map(move |r| (r.seq, up.name())))
        .collect();
    order.sort();
    let names: Vec<&str> = order.iter().map(|(_, n)| *n).collect();
    assert_eq!(names, ["g1", "g2", "g3", "g5", "g4"]);

    // A fallback that answers ends the chain.
    for up in &g {
        up.reset();
    }
    g[1].set(Reply::ok());
    let r = gw.chat("chat").await;
    assert_eq!(r.upstream().as_deref(), Some("g2"));
    assert_eq!(r.attempts(), Some(2));
    assert_eq!(g[2].count() + g[3].count() + g[4].count(), 0);

    // The router's fallbacks of a group requested by name.
    for up in &g {
        up.reset();
    }
    g[1].set(Reply::fail(500));
    let r = gw.chat("g1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream().as_deref(), Some("g4"));
    assert_eq!(r.attempts(), Some(2));
    assert_eq!(
        g[1].count() + g[2].count() + g[4].count(),
        0,
        "only g1's own fallbacks"
    );

    // Everything fails: the last error, OpenAI-shaped.
    for up in &g {
        up.set(Reply::fail(502));
        up.reset();
    }
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 502, "{}", r.text());
    r.openai_error();
    assert_eq!(r.attempts(), Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_window_errors_go_to_context_window_fallbacks_only() {
    let (small, big, other, lone) = (
        MockUpstream::start("small").await,
        MockUpstream::start("big").await,
        MockUpstream::start("other").await,
        MockUpstream::start("lone").await,
    );
    small.set(Reply::context_length_exceeded());
    lone.set(Reply::context_length_exceeded());
    let gw = Gateway::with(
        &Manifest::new()
            .with(Dep::new("small", "small", &small))
            .with(Dep::new("big", "big", &big))
            .with(Dep::new("other", "other", &other))
            .with(Dep::new("lone", "lone", &lone))
            .with(Alias::new("chat").target("small", 1).fallback("other"))
            .settings(json!({
                "contextWindowFallbacks": {"small": ["big"]},
                "fallbacks": {"small": ["other"], "lone": ["other"]},
            })),
    )
    .await;
    for model in ["small", "chat"] {
        small.reset();
        let r = gw.chat(model).await;
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        assert_eq!(r.upstream().as_deref(), Some("big"), "{model}");
        assert_eq!(r.attempts(), Some(2), "{model}");
        assert_eq!(
            small.count(),
            1,
            "{model}: a context-window error is not retried"
        );
    }
    assert_eq!(
        other.count(),
        0,
        "ordinary fallbacks are not for context-window errors"
    );

    // No context-window fallback: the upstream's 400, with its code and param.
    let r = gw.chat("lone").await;
    assert_eq!(r.status, 400, "{}", r.text());
    let e = r.openai_error();
    assert_eq!(e["code"], "context_length_exceeded", "{e}");
    assert_eq!(e["param"], "messages", "{e}");
    assert_eq!(e["type"], "invalid_request_error", "{e}");
    assert_eq!(r.attempts(), Some(1));
    assert_eq!(other.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooldown_after_allowed_fails_then_429_with_retry_after_until_recovery() {
    let (a, b) = (
        MockUpstream::start("a").await,
        MockUpstream::start("b").await,
    );
    let gw = Gateway::with(
        &Manifest::new()
            .with(Dep::new("a", "chat", &a).retries(0))
            .with(Dep::new("b", "chat", &b).retries(0))
            .settings(json!({"cooldown": {"allowedFails": 2, "cooldownTime": "2s"}})),
    )
    .await;
    a.set(Reply::fail(500));
    // `a` fails; requests keep succeeding on `b` (retries 0: some fail on `a` first).
    let mut failures = 0;
    for _ in 0..20 {
        let r = gw.chat("chat").await;
        if r.status != 200 {
            failures += 1;
            assert_eq!(r.status, 500, "{}", r.text());
        }
    }
    assert!(
        failures <= 2,
        "{failures} failures: `a` fails twice and then cools down"
    );
    assert_eq!(a.count(), 2, "after allowedFails (2) `a` is skipped");

    // Both down: the requests that find every deployment cooling get 429 + Retry-After.
    b.set(Reply::fail(500));
    let mut cooling = None;
    for _ in 0..5 {
        let r = gw.chat("chat").await;
        if r.status == 429 {
            cooling = Some(r);
            break;
        }
        assert_eq!(r.status, 500, "{}", r.text());
    }
    let r = cooling.expect("a 429 once every deployment cools down");
    let e = r.openai_error();
    assert_eq!(e["type"], "rate_limit_error", "{e}");
    assert_eq!(e["code"], "rate_limit_exceeded", "{e}");
    let after: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&after), "Retry-After {after}");
    let (na, nb) = (a.count(), b.count());
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.attempts(), Some(0));
    assert_eq!(
        (a.count(), b.count()),
        (na, nb),
        "nothing is sent while cooling"
    );

    // The admin health report shows the cooldowns.
    let report = gw
        .client
        .get_with_key(
            &gw.admin_url("/v1/health-report"),
            modelgate_testkit::ADMIN_TOKEN,
        )
        .await
        .json();
    let cooling: Vec<&str> = report["deployments"]
        .as_array()
        .expect("deployments")
        .iter()
        .filter(|d| d["cooldownUntilMs"].is_u64())
        .filter_map(|d| d["id"].as_str())
        .collect();
    assert_eq!(cooling, ["default/a", "default/b"], "{report}");

    // After the cooldown the deployments are tried again.
    a.set(Reply::ok());
    b.set(Reply::ok());
    let recovered = eventually(ms(6000), || async { gw.chat("chat").await.status == 200 }).await;
    assert!(recovered, "requests succeed once the cooldown ends");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_deployment_request_timeout() {
    let (slow, patient) = (
        MockUpstream::start("slow").await,
        MockUpstream::start("patient").await,
    );
    slow.set(Reply::ok().delay(ms(1500)));
    patient.set(Reply::ok().delay(ms(700)));
    let gw = Gateway::with(
        &Manifest::new()
            .with(
                Dep::new("slow", "slow", &slow)
                    .retries(0)
                    .request_timeout("300ms"),
            )
            .with(
                Dep::new("patient", "patient", &patient)
                    .retries(0)
                    .request_timeout("5s"),
            )
            .settings(no_cooldown()),
    )
    .await;
    let started = Instant::now();
    let r = gw.chat("slow").await;
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.openai_error()["type"], "timeout");
    assert!(
        took >= ms(280) && took < ms(1400),
        "timed out after {took:?}"
    );
    // The timed-out upstream request is abandoned, not left running.
    let abandoned = eventually(ms(5000), || async { slow.counts().abandoned == 1 }).await;
    assert!(abandoned, "{:?}", slow.counts());

    // Another deployment's timeout is its own.
    let r = gw.chat("patient").await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_gives_up_cancels_the_upstream_request() {
    let a = MockUpstream::start("a").await;
    a.set(Reply::ok().delay(ms(20_000)));
    let gw = Gateway::with(&Manifest::new().with(Dep::new("a", "chat", &a))).await;
    let gave_up = tokio::time::timeout(ms(300), gw.chat("chat")).await;
    assert!(gave_up.is_err(), "the upstream takes 20 s");
    let abandoned = eventually(ms(5000), || async { a.counts().abandoned == 1 }).await;
    assert!(
        abandoned,
        "the upstream request outlived its client: {:?}",
        a.counts()
    );
    assert_eq!(a.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_requests_sends_the_overflow_elsewhere() {
    let (a, b) = (
        MockUpstream::start("a").await,
        MockUpstream::start("b").await,
    );
    a.set(Reply::ok().delay(ms(1500)));
    let gw = std::sync::Arc::new(
        Gateway::with(
            &Manifest::new()
                .with(Dep::new("a", "chat", &a).order(1).max_concurrent(1))
                .with(Dep::new("b", "chat", &b).order(2))
                .with(Dep::new("solo", "solo", &a).max_concurrent(1)),
        )
        .await,
    );
    let busy = {
        let gw = std::sync::Arc::clone(&gw);
        tokio::spawn(async move { gw.chat("chat").await })
    };
    assert!(eventually(ms(5000), || async { a.count() == 1 }).await);
    for _ in 0..3 {
        let r = gw.chat("chat").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.deployment(), Some("default/b"), "`a` is at its limit");
    }
    assert_eq!(busy.await.expect("request").deployment(), Some("default/a"));

    // A lone deployment at its limit: an OpenAI-shaped error at once, nothing sent.
    let busy = {
        let gw = std::sync::Arc::clone(&gw);
        tokio::spawn(async move { gw.chat("solo").await })
    };
    assert!(eventually(ms(5000), || async { a.count() == 2 }).await);
    let started = Instant::now();
    let r = gw.chat("solo").await;
    assert!(
        r.status == 429 || r.status == 503,
        "{} {}",
        r.status,
        r.text()
    );
    r.openai_error();
    assert!(started.elapsed() < ms(1000), "answered at once");
    assert_eq!(a.count(), 2);
    assert_eq!(busy.await.expect("request").status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_deployment_that_gave_them() {
    let (first, second) = (
        MockUpstream::start("first").await,
        MockUpstream::start("second").await,
    );
    let gw = Gateway::with(
        &Manifest::new()
            .with(Dep::new("first", "chat", &first).order(1).retries(1))
            .with(Dep::new("second", "chat", &second).order(2))
            .settings(no_cooldown()),
    )
    .await;
    // A client error from the upstream: that deployment answered.
    first.set(Reply::fail(400));
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.deployment(), Some("default/first"));
    assert_eq!(r.attempts(), Some(1));
    // Every attempt failed: the deployment whose error is returned.
    first.set(Reply::fail(500));
    second.set(Reply::fail(503));
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.deployment(), Some("default/second"));
    assert_eq!(r.attempts(), Some(2));
    // Errors no deployment gave name none.
    let r = gw.chat("nope").await;
    assert_eq!(r.deployment(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_429_reaches_the_client_with_its_retry_after() {
    let a = MockUpstream::start("a").await;
    a.set(Reply::fail(429).retry_after(7));
    let gw = Gateway::with(
        &Manifest::new()
            .with(Dep::new("a", "chat", &a).retries(0))
            .settings(no_cooldown()),
    )
    .await;
    let r = gw.chat("chat").await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("7"));
    let e = r.openai_error();
    assert_eq!(e["type"], "rate_limit_error", "{e}");
    assert_eq!(e["code"], "rate_limit_exceeded", "{e}");
}
