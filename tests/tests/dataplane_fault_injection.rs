//! The data plane driven through every fault of the fault-injecting upstream
//! ([`modelgate_testkit::faults`]), over real sockets, with several deployments in a group
//! and a fallback group, counting what clients see. What issue 7 requires:
//! - non-streaming: no client-visible error while one deployment of the group or of its
//!   fallbacks is healthy;
//! - streaming: a failure before the first byte is retried invisibly; after it the client
//!   gets one OpenAI-shaped error event and no faked `[DONE]`;
//! - every error a client sees is OpenAI-shaped with the right status;
//! - memory stays bounded (the data-plane binary's RSS while a huge stream goes through and
//!   a huge answer meets the answer-size limit);
//! - cooldowns and recovery follow the settings (short real timeouts here; the cooldown
//!   arithmetic itself is unit tested on an injected clock in `dataplane/tests/router.rs`).

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use modelgate_testkit::http::Event;
use modelgate_testkit::{
    Dep, Fault, FaultUpstream, Gateway, Manifest, Resp, Sse, TempDir, When, binary, compile_ok,
    eventually, ms,
};
use serde_json::{Value, json};

/// Per-attempt timeouts of the fleet's deployments: short, so that hangs cost little.
const TIMEOUT: &str = "400ms";

/// A deployment of `model` at a fault upstream, with short timeouts.
fn dep(name: &str, model: &str, up: &FaultUpstream) -> Dep {
    Dep::at(name, model, "openai-compatible", &up.openai_base())
        .request_timeout(TIMEOUT)
        .first_byte_timeout(TIMEOUT)
        .idle_timeout(TIMEOUT)
}

/// Group `chat`: `a` and `b` (order 1) and `c` (order 2), two retries so that all three
/// are tried; group `backup`: `d`, the router's fallback for `chat`; group `solo`: `e`
/// alone, no retries, no fallback (to see the errors a client gets). Cooldowns out of
/// the way unless `settings` says otherwise.
struct Fleet {
    a: FaultUpstream,
    b: FaultUpstream,
    c: FaultUpstream,
    d: FaultUpstream,
    e: FaultUpstream,
    gw: Gateway,
}

impl Fleet {
    async fn start(settings: Value) -> Fleet {
        let a = FaultUpstream::start("a").await;
        let b = FaultUpstream::start("b").await;
        let c = FaultUpstream::start("c").await;
        let d = FaultUpstream::start("d").await;
        let e = FaultUpstream::start("e").await;
        let mut all = json!({
            "fallbacks": {"chat": ["backup"]},
            "cooldown": {"allowedFails": 100000, "cooldownTime": "1s"},
        });
        if let (Some(all), Some(extra)) = (all.as_object_mut(), settings.as_object()) {
            all.extend(extra.clone());
        }
        let gw = Gateway::with(
            &Manifest::new()
                .with(dep("a", "chat", &a).order(1).retries(2))
                .with(dep("b", "chat", &b).order(1).retries(2))
                .with(dep("c", "chat", &c).order(2).retries(2))
                .with(dep("d", "backup", &d).retries(1))
                .with(dep("e", "solo", &e).retries(0))
                .settings(all),
        )
        .await;
        Fleet { a, b, c, d, e, gw }
    }

    fn all(&self) -> [&FaultUpstream; 5] {
        [&self.a, &self.b, &self.c, &self.d, &self.e]
    }

    fn reset(&self) {
        for up in self.all() {
            up.set(Fault::None);
            up.clear_schedule();
            up.reset();
        }
    }

    /// `n` chat requests for `model` at once.
    async fn chats(&self, model: &str, n: usize) -> Vec<Resp> {
        join_all((0..n).map(|_| self.gw.chat(model))).await
    }

    /// `n` streaming chat requests for `model` at once, each read to its end.
    async fn streams(&self, model: &str, n: usize) -> Vec<Sse> {
        join_all((0..n).map(|_| async {
            let mut sse = self.gw.client.stream(self.gw.stream_request(model)).await;
            sse.read_to_end(ms(5_000)).await;
            sse
        }))
        .await
    }
}

/// Every fault, with what it is called in failure messages.
fn every_fault() -> Vec<Fault> {
    vec![
        Fault::Status(500),
        Fault::Status(502),
        Fault::Status(503),
        Fault::Status(504),
        Fault::RateLimited(None),
        Fault::RateLimited(Some(1)),
        Fault::HangBeforeHeaders,
        Fault::HangMidStream(0),
        Fault::HangMidStream(2),
        Fault::Reset,
        Fault::ResetMidBody(0),
        Fault::ResetMidBody(2),
        Fault::CloseMidBody(0),
        Fault::CloseMidBody(2),
        Fault::MalformedJson,
        Fault::BrokenSse,
        // 5 ms a byte: a completion of ~500 bytes takes longer than the 400 ms timeout.
        Fault::Slow(ms(5)),
    ]
}

/// A problem with one client-visible answer, or `None` when it is a good answer from one
/// of `from`.
fn judge_answer(r: &Resp, from: &[&str]) -> Option<String> {
    if r.status != 200 {
        return Some(format!("status {}: {}", r.status, r.text()));
    }
    let Ok(v) = serde_json::from_slice::<Value>(&r.body) else {
        return Some(format!("200 but not JSON: {:.200}", r.text()));
    };
    let up = v["upstream"].as_str().unwrap_or_default();
    if !from.contains(&up) {
        return Some(format!("answered by {up:?}, not one of {from:?}: {v}"));
    }
    if v.pointer("/choices/0/message/content") != Some(&json!(format!("answer from {up}"))) {
        return Some(format!("wrong answer: {v}"));
    }
    None
}

/// A problem with one client-visible stream, or `None` when it is a whole, correct stream
/// from one of `from`.
fn judge_stream(s: &Sse, from: &[&str]) -> Option<String> {
    if s.status != 200 {
        return Some(format!("status {}", s.status));
    }
    let text = s.text();
    let whole = from.iter().any(|u| text == format!("{u}:0 {u}:1 {u}:2 "));
    let errors = s.events.iter().filter(|e| e.is_error()).count();
    let done = s.events.last().is_some_and(Event::is_done);
    if !whole || errors > 0 || !done {
        return Some(format!(
            "text {text:?}, {errors} error events, [DONE] last: {done}, end {:?}",
            s.end
        ));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_streaming_clients_see_no_error_while_a_deployment_is_healthy() {
    let fleet = Fleet::start(json!({})).await;
    let mut problems = Vec::new();
    let mut served = 0;
    for fault in every_fault() {
        // Two of the group's three deployments broken: the third answers.
        fleet.reset();
        fleet.a.set(fault.clone());
        fleet.b.set(fault.clone());
        for r in fleet.chats("chat", 4).await {
            served += 1;
            if let Some(p) = judge_answer(&r, &["c"]) {
                problems.push(format!("{fault:?} on a, b: {p}"));
            }
        }
        // The whole group broken: the fallback group answers.
        fleet.c.set(fault.clone());
        for r in fleet.chats("chat", 3).await {
            served += 1;
            if let Some(p) = judge_answer(&r, &["d"]) {
                problems.push(format!("{fault:?} on a, b, c: {p}"));
            }
        }
        let broken = [&fleet.a, &fleet.b, &fleet.c];
        let tried: u64 = broken.iter().map(|u| u.counts().of(&fault)).sum();
        assert!(
            tried >= 3,
            "{fault:?}: the broken deployments were tried {tried} times"
        );
    }
    assert!(
        problems.is_empty(),
        "{} of {served} requests saw an error:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_failing_before_the_first_byte_are_retried_invisibly() {
    let fleet = Fleet::start(json!({})).await;
    let before_first_byte = [
        Fault::Status(500),
        Fault::Status(503),
        Fault::RateLimited(None),
        Fault::RateLimited(Some(1)),
        Fault::HangBeforeHeaders,
        Fault::HangMidStream(0),
        Fault::Reset,
        Fault::ResetMidBody(0),
        Fault::CloseMidBody(0),
        Fault::MalformedJson,
        Fault::Slow(ms(5)),
    ];
    let mut problems = Vec::new();
    let mut served = 0;
    for fault in before_first_byte {
        fleet.reset();
        fleet.a.set(fault.clone());
        fleet.b.set(fault.clone());
        for s in fleet.streams("chat", 3).await {
            served += 1;
            if let Some(p) = judge_stream(&s, &["c"]) {
                problems.push(format!("{fault:?} on a, b: {p}"));
            }
        }
        fleet.c.set(fault.clone());
        for s in fleet.streams("chat", 2).await {
            served += 1;
            if let Some(p) = judge_stream(&s, &["d"]) {
                problems.push(format!("{fault:?} on a, b, c: {p}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {served} streams were not whole:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_failing_after_the_first_byte_end_with_one_error_event_and_no_done() {
    let fleet = Fleet::start(json!({})).await;
    let after_first_byte = [
        (Fault::HangMidStream(2), "e:0 e:1 "),
        (Fault::ResetMidBody(2), "e:0 e:1 "),
        (Fault::CloseMidBody(2), "e:0 e:1 "),
        (Fault::BrokenSse, "e:0 "),
        (Fault::HangMidStream(1), "e:0 "),
        (Fault::ResetMidBody(1), "e:0 "),
        (Fault::CloseMidBody(1), "e:0 "),
    ];
    for (fault, sent) in after_first_byte {
        fleet.reset();
        fleet.e.set(fault.clone());
        let mut s = fleet
            .gw
            .client
            .stream(fleet.gw.stream_request("solo"))
            .await;
        s.read_to_end(ms(5_000)).await;
        let what = format!("{fault:?}: {:?}, end {:?}", s.events, s.end);
        assert_eq!(s.status, 200, "{what}");
        assert_eq!(s.text(), sent, "{what}");
        let last = s.events.last().unwrap_or_else(|| panic!("{what}"));
        assert!(last.is_error(), "the last event is not an error: {what}");
        let e = &last.json()["error"];
        for field in ["message", "type", "param", "code"] {
            assert!(e.get(field).is_some(), "error.{field} missing: {what}");
        }
        assert!(
            e["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}"
        );
        assert_eq!(
            s.events.iter().filter(|e| e.is_error()).count(),
            1,
            "one error event: {what}"
        );
        assert!(!s.events.iter().any(Event::is_done), "[DONE] faked: {what}");
        // Nothing that is not JSON reaches the client.
        for ev in &s.events {
            assert!(
                ev.json().is_object(),
                "a broken event was forwarded: {what}"
            );
        }
        assert!(
            matches!(s.end, Some(modelgate_testkit::http::StreamEnd::Closed)),
            "the stream did not end cleanly: {what}"
        );
        assert_eq!(fleet.e.count(), 1, "no retry after the first byte: {what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_clients_see_are_openai_shaped_with_the_right_status() {
    let fleet = Fleet::start(json!({})).await;
    let cases: [(Fault, u16); 12] = [
        (Fault::Status(500), 500),
        (Fault::Status(502), 502),
        (Fault::Status(503), 503),
        (Fault::Status(504), 504),
        (Fault::RateLimited(None), 429),
        (Fault::RateLimited(Some(7)), 429),
        (Fault::HangBeforeHeaders, 504),
        (Fault::HangMidStream(0), 504),
        (Fault::Reset, 502),
        (Fault::CloseMidBody(0), 502),
        (Fault::MalformedJson, 502),
        (Fault::BrokenSse, 502),
    ];
    for (fault, status) in cases {
        for stream in [false, true] {
            if stream && fault == Fault::BrokenSse {
                // Broken after its first event: an error event, tested above.
                continue;
            }
            fleet.reset();
            fleet.e.set(fault.clone());
            let r = if stream {
                fleet.gw.client.send(fleet.gw.stream_request("solo")).await
            } else {
                fleet.gw.chat("solo").await
            };
            let what = format!("{fault:?}, stream {stream}: {} {}", r.status, r.text());
            assert_eq!(r.status.as_u16(), status, "{what}");
            let e = r.openai_error();
            assert!(
                e["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{what}"
            );
            assert!(
                r.header("content-type")
                    .is_some_and(|c| c.starts_with("application/json")),
                "{what}"
            );
            if status == 429 {
                let after: Option<u64> = r.header("retry-after").and_then(|v| v.parse().ok());
                assert!(after.is_some(), "429 without Retry-After: {what}");
                if fault == Fault::RateLimited(Some(7)) {
                    assert_eq!(after, Some(7), "the upstream's Retry-After: {what}");
                }
            }
            assert_eq!(r.deployment(), Some("default/e"), "{what}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_a_schedule_cool_deployments_down_and_they_recover() {
    // Two failures within a minute cool a deployment down for 1 s.
    let fleet = Fleet::start(json!({"cooldown": {"allowedFails": 2, "cooldownTime": "1s"}})).await;
    fleet.reset();
    // `a` resets its first two requests, then is healthy again.
    fleet.a.schedule(When::Requests(1..3), Fault::Reset);
    fleet.b.set(Fault::Status(503));
    fleet.c.set(Fault::Status(503));
    // Until `a` cools down, every request fails over to the fallback group.
    let mut seen = Vec::new();
    let started = Instant::now();
    while fleet.a.count() < 2 {
        let r = fleet.gw.chat("chat").await;
        assert!(judge_answer(&r, &["a", "d"]).is_none(), "{}", r.text());
        seen.push(r.upstream());
        assert!(started.elapsed() < ms(10_000), "a never tried: {seen:?}");
    }
    assert_eq!(fleet.a.counts().of(&Fault::Reset), 2);
    // Cooling down: `a` gets nothing, clients still get answers (from `d`).
    let cooled_at = Instant::now();
    let mut during = 0;
    while cooled_at.elapsed() < ms(600) {
        let r = fleet.gw.chat("chat").await;
        assert!(
            judge_answer(&r, &["d"]).is_none(),
            "while a cools down: {}",
            r.text()
        );
        during += 1;
    }
    assert!(during > 0);
    assert_eq!(fleet.a.count(), 2, "a cooling down got traffic");
    // After the cooldown it is tried again, and, healthy, answers.
    let recovered = eventually(ms(5_000), || async {
        fleet.gw.chat("chat").await.upstream().as_deref() == Some("a")
    })
    .await;
    assert!(recovered, "a never came back after its 1 s cooldown");
    assert!(
        cooled_at.elapsed() >= ms(700),
        "a came back after {:?}, before its cooldown ended",
        cooled_at.elapsed()
    );

    // A time window: `e` fails for 300 ms from now, then recovers by itself.
    fleet.e.restart_clock();
    fleet
        .e
        .schedule(When::Window(Duration::ZERO..ms(300)), Fault::Status(500));
    let r = fleet.gw.chat("solo").await;
    assert_eq!(r.status, 500, "{}", r.text());
    r.openai_error();
    tokio::time::sleep(ms(350)).await;
    let r = fleet.gw.chat("solo").await;
    assert!(judge_answer(&r, &["e"]).is_none(), "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_huge_answers_arrive_whole() {
    let up = FaultUpstream::start("p").await;
    let gw = Gateway::with(
        &Manifest::new().with(
            Dep::at("p", "patient", "openai-compatible", &up.openai_base())
                .request_timeout("30s")
                .first_byte_timeout("30s")
                .idle_timeout("30s"),
        ),
    )
    .await;
    // Byte by byte, within the timeout.
    up.set(Fault::Slow(ms(1)));
    let r = gw.chat("patient").await;
    assert!(judge_answer(&r, &["p"]).is_none(), "{}", r.text());
    let mut s = gw.client.stream(gw.stream_request("patient")).await;
    s.read_to_end(ms(10_000)).await;
    assert!(judge_stream(&s, &["p"]).is_none(), "{:?}", s.events);

    // 8 MiB in one completion, 32 MiB in one stream.
    up.set(Fault::Huge(8 << 20));
    let r = gw.chat("patient").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    let content = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(content.len(), 8 << 20);
    up.set(Fault::Huge(32 << 20));
    let mut s = gw.client.stream(gw.stream_request("patient")).await;
    s.read_to_end(ms(10_000)).await;
    assert!(s.events.last().is_some_and(Event::is_done), "{:?}", s.end);
    assert_eq!(s.text().len(), 32 << 20);
    assert!(!s.events.iter().any(Event::is_error));
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Stops the child when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binarys_memory_stays_bounded_under_huge_and_broken_answers() {
    let huge = FaultUpstream::start("huge").await;
    let broken = FaultUpstream::start("broken").await;
    let table = compile_ok(
        &Manifest::new()
            .with(
                Dep::at("huge", "huge", "openai-compatible", &huge.openai_base())
                    .retries(0)
                    .request_timeout("30s")
                    .first_byte_timeout("10s")
                    .idle_timeout("10s"),
            )
            .with(dep("broken", "broken", &broken))
            .to_yaml(),
        1,
    );
    let dir = TempDir::new("fault-rss");
    let table_file = dir.path().join("table.json");
    std::fs::write(&table_file, table.to_canonical_json()).expect("write the table");
    std::fs::write(dir.path().join("token"), "t0ken\n").expect("write the token");
    let (port, admin, metrics) = (free_port(), free_port(), free_port());
    let child = Child(
        std::process::Command::new(binary("modelgate-dataplane", "modelgate-dataplane"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--admin-listen")
            .arg(format!("127.0.0.1:{admin}"))
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{metrics}"))
            .arg("--admin-token-file")
            .arg(dir.path().join("token"))
            .arg("--table-file")
            .arg(&table_file)
            .args(["--max-upstream-answer-bytes", &(8u64 << 20).to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the data plane"),
    );
    let pid = child.0.id();
    let client = modelgate_testkit::Client::new();
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let ready = eventually(ms(20_000), || async {
        client
            .try_send(modelgate_testkit::http::json_request(
                http::Method::POST,
                &url,
                &modelgate_testkit::chat_body("broken"),
            ))
            .await
            .is_ok_and(|r| r.status == 200)
    })
    .await;
    assert!(ready, "the data plane binary never served");
    let stream_request = || {
        let mut body = modelgate_testkit::chat_body("huge");
        body["stream"] = json!(true);
        modelgate_testkit::http::json_request(http::Method::POST, &url, &body)
    };
    // Warm up (connection pools, buffers), then measure.
    huge.set(Fault::Huge(4 << 20));
    let _ = client
        .stream(stream_request())
        .await
        .read_to_end(ms(10_000))
        .await;
    let start = rss_kib(pid);

    // 64 MiB streamed through, and broken upstreams on many connections.
    huge.set(Fault::Huge(64 << 20));
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(start));
    let watch = tokio::spawn({
        let peak = std::sync::Arc::clone(&peak);
        async move {
            loop {
                peak.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(ms(20)).await;
            }
        }
    });
    let mut sse = client.stream(stream_request()).await;
    let mut received = 0usize;
    let mut done = false;
    while let Some(e) = sse.next(ms(10_000)).await {
        received += e.content().map_or(0, |c| c.len());
        done = e.is_done();
        // Keep what the client holds small: forget the events read.
        sse.events.clear();
    }
    assert!(
        received >= 64 << 20 && done,
        "only {received} bytes arrived"
    );
    // A 64 MiB answer against the 8 MiB answer limit: a clear 502, nothing held.
    huge.set(Fault::Huge(64 << 20));
    let r = client
        .send(modelgate_testkit::http::json_request(
            http::Method::POST,
            &url,
            &modelgate_testkit::chat_body("huge"),
        ))
        .await;
    assert_eq!(r.status, 502, "{:.300}", r.text());
    let e = r.openai_error();
    assert!(
        e["message"].as_str().is_some_and(|m| m.contains("limit")),
        "{e}"
    );
    for fault in [
        Fault::ResetMidBody(1),
        Fault::CloseMidBody(1),
        Fault::BrokenSse,
        Fault::MalformedJson,
    ] {
        broken.set(fault);
        let streams = (0..20).map(|_| {
            let client = client.clone();
            let mut body = modelgate_testkit::chat_body("broken");
            body["stream"] = json!(true);
            let req = modelgate_testkit::http::json_request(http::Method::POST, &url, &body);
            async move {
                let mut s = client.stream(req).await;
                s.read_to_end(ms(5_000)).await;
            }
        });
        join_all(streams).await;
    }
    watch.abort();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    let end = rss_kib(pid);
    eprintln!("data plane RSS: {start} KiB at start, {peak} KiB at most, {end} KiB at the end");
    // A stream is never held whole (64 MiB go through in a few MiB), and an answer is
    // held only up to the limit.
    assert!(
        peak < start + 32 * 1024,
        "RSS rose from {start} KiB to {peak} KiB while 64 MiB streamed through and a 64 MiB answer was refused"
    );
    assert!(
        end < start + 32 * 1024,
        "RSS grew from {start} KiB to {end} KiB"
    );
}
