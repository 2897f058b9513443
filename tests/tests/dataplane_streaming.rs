//! Streaming (SSE), on real sockets: chunks forwarded as they arrive, failures before the
//! first byte retried invisibly, failures after it ending the stream with an error event
//! (no `[DONE]` faked), stream timeouts, client disconnects cancelling the upstream, and
//! `stream_options.include_usage` end to end.

use std::time::{Duration, Instant};

use modelgate_testkit::http::{StreamEnd, json_request};
use modelgate_testkit::{Dep, Gateway, Manifest, MockUpstream, Reply, eventually, ms};
use serde_json::json;

/// Long enough for any event on a loaded machine, short enough to fail fast.
const WAIT: Duration = Duration::from_secs(10);

fn no_cooldown() -> serde_json::Value {
    json!({"cooldown": {"allowedFails": 1000, "cooldownTime": "1s"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_reach_the_client_as_the_upstream_sends_them() {
    let a = MockUpstream::start("a").await;
    let gap = ms(250);
    a.set(Reply::ok().chunks(6).chunk_delay(gap));
    let gw = Gateway::with(&Manifest::new().with(Dep::new("a", "chat", &a))).await;

    let sent = Instant::now();
    let mut sse = gw.client.stream(gw.stream_request("chat")).await;
    assert_eq!(sse.status, 200);
    assert_eq!(sse.header("content-type"), Some("text/event-stream"));
    assert_eq!(sse.header("x-modelgate-deployment"), Some("default/a"));
    assert_eq!(sse.header("x-modelgate-attempts"), Some("1"));
    sse.read_to_end(WAIT).await;
    assert!(matches!(sse.end, Some(StreamEnd::Closed)), "{:?}", sse.end);

    let chunks: Vec<Instant> = sse
        .events
        .iter()
        .filter(|e| e.content().is_some())
        .map(|e| e.at)
        .collect();
    assert_eq!(sse.text(), "a:0 a:1 a:2 a:3 a:4 a:5 ");
    assert_eq!(chunks.len(), 6);
    // The upstream spends 5 × 250 ms; a buffering proxy would deliver everything at the
    // end. The first chunk must arrive long before the last is sent, and the gaps must
    // survive (generous bounds for a loaded machine).
    let first = chunks[0].duration_since(sent);
    assert!(first < ms(900), "first chunk after {first:?}");
    let span = chunks[5].duration_since(chunks[0]);
    assert!(
        span >= ms(700),
        "6 chunks 250 ms apart arrived within {span:?}"
    );
    let spaced = chunks
        .windows(2)
        .filter(|w| w[1].duration_since(w[0]) >= gap / 2)
        .count();
    assert!(spaced >= 3, "only {spaced} of 5 gaps kept: {chunks:?}");
    assert!(sse.events.last().is_some_and(|e| e.is_done()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_usage_passes_through() {
    let a = MockUpstream::start("a").await;
    let gw = Gateway::with(&Manifest::new().with(Dep::new("a", "chat", &a))).await;
    let body = json!({
        "model": "chat",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let mut sse = gw
        .client
        .stream(json_request(
            http::Method::POST,
            &gw.url("/v1/chat/completions"),
            &body,
        ))
        .await;
    assert_eq!(sse.status, 200);
    sse.read_to_end(WAIT).await;
    assert_eq!(
        a.last().expect("a request").json()["stream_options"]["include_usage"],
        true,
        "the upstream is asked for usage"
    );
    let n = sse.events.len();
    assert!(n >= 3, "{:?}", sse.events);
    assert!(sse.events[n - 1].is_done());
    let usage = sse.events[n - 2].json();
    assert_eq!(usage["choices"], json!([]), "{usage}");
    assert_eq!(usage["usage"]["total_tokens"], 12, "{usage}");

    // Without it, no usage chunk.
    let mut sse = gw.client.stream(gw.stream_request("chat")).await;
    sse.read_to_end(WAIT).await;
    assert!(sse.events.iter().all(|e| e.json().get("usage").is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_before_the_first_byte_are_retried_invisibly() {
    let (first, second) = (
        MockUpstream::start("first").await,
        MockUpstream::start("second").await,
    );
    let gw = Gateway::with(
        &Manifest::new()
            .with(
                Dep::new("first", "chat", &first)
                    .order(1)
                    .first_byte_timeout("400ms"),
            )
            .with(Dep::new("second", "chat", &second).order(2))
            .settings(no_cooldown()),
    )
    .await;
    let cases = [
        ("500 before the stream", Reply::fail(500)),
        ("429 before the stream", Reply::fail(429)),
        ("dies before the first chunk", Reply::ok().die_after(0)),
        ("no headers within firstByte", Reply::hang()),
        (
            "no first chunk within firstByte",
            Reply::ok().first_chunk_delay(ms(2000)),
        ),
    ];
    for (what, reply) in cases {
        first.set(reply);
        first.reset();
        second.reset();
        let mut sse = gw.client.stream(gw.stream_request("chat")).await;
        assert_eq!(sse.status, 200, "{what}");
        assert_eq!(
            sse.header("x-modelgate-deployment"),
            Some("default/second"),
            "{what}"
        );
        assert_eq!(sse.header("x-modelgate-attempts"), Some("2"), "{what}");
        sse.read_to_end(WAIT).await;
        assert_eq!(sse.text(), "second:0 second:1 second:2 ", "{what}");
        assert!(
            sse.events.iter().all(|e| !e.is_error()),
            "{what}: {:?}",
            sse.events
        );
        assert!(sse.events.last().is_some_and(|e| e.is_done()), "{what}");
        assert_eq!((first.count(), second.count()), (1, 1), "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_before_the_first_byte_are_real_http_errors() {
    let (first, second, lone) = (
        MockUpstream::start("first").await,
        MockUpstream::start("second").await,
        MockUpstream::start("lone").await,
    );
    first.set(Reply::context_length_exceeded());
    lone.set(Reply::ok().first_chunk_delay(ms(5000)));
    let gw = Gateway::with(
        &Manifest::new()
            .with(Dep::new("first", "chat", &first).order(1))
            .with(Dep::new("second", "chat", &second).order(2))
            .with(
                Dep::new("lone", "lone", &lone)
                    .retries(0)
                    .first_byte_timeout("300ms"),
            ),
    )
    .await;
    // A client error: the upstream's status and JSON body, no stream, no retry.
    let mut sse = gw.client.stream(gw.stream_request("chat")).await;
    assert_eq!(sse.status, 400);
    assert_eq!(sse.header("content-type"), Some("application/json"));
    sse.read_to_end(WAIT).await;
    assert!(sse.events.is_empty(), "{:?}", sse.events);
    assert_eq!(second.count(), 0);

    // No first byte in time and nothing else to try: 504, as JSON.
    let started = Instant::now();
    let mut sse = gw.client.stream(gw.stream_request("lone")).await;
    assert_eq!(sse.status, 504);
    assert_eq!(sse.header("content-type"), Some("application/json"));
    assert!(started.elapsed() < ms(3000), "{:?}", started.elapsed());
    sse.read_to_end(WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_after_the_first_byte_ends_the_stream_with_an_error_event() {
    let (first, second) = (
        MockUpstream::start("first").await,
        MockUpstream::start("second").await,
    );
    first.set(Reply::ok().chunks(5).chunk_delay(ms(20)).die_after(2));
    let gw = Gateway::with(
        &Manifest::new()
            .with(Dep::new("first", "chat", &first).order(1))
            .with(Dep::new("second", "chat", &second).order(2))
            .settings(no_cooldown()),
    )
    .await;
    let mut sse = gw.client.stream(gw.stream_request("chat")).await;
    assert_eq!(sse.status, 200);
    sse.read_to_end(WAIT).await;
    assert!(matches!(sse.end, Some(StreamEnd::Closed)), "{:?}", sse.end);
    assert_eq!(
        sse.text(),
        "first:0 first:1 ",
        "the chunks sent before the failure"
    );
    let last = sse.events.last().expect("events");
    assert!(
        last.is_error(),
        "the stream ends with an error event: {:?}",
        sse.events
    );
    let e = &last.json()["error"];
    assert!(e["message"].is_string() && e["type"].is_string(), "{e}");
    assert!(
        sse.events.iter().all(|e| !e.is_done()),
        "no [DONE] after a failure"
    );
    assert_eq!(first.counts().died, 1);
    assert_eq!(second.count(), 0, "no retry after the first byte");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_gap_longer_than_the_stream_idle_timeout_ends_with_an_error_event() {
    let a = MockUpstream::start("a").await;
    a.set(Reply::ok().chunks(5).stall_after(2));
    let gw =
        Gateway::with(&Manifest::new().with(Dep::new("a", "chat", &a).idle_timeout("400ms"))).await;
    let mut sse = gw.client.stream(gw.stream_request("chat")).await;
    assert_eq!(sse.status, 200);
    sse.read_to_end(WAIT).await;
    assert!(matches!(sse.end, Some(StreamEnd::Closed)), "{:?}", sse.end);
    assert_eq!(sse.text(), "a:0 a:1 ");
    let chunks: Vec<_> = sse
        .events
        .iter()
        .filter(|e| e.content().is_some())
        .collect();
    let last = sse.events.last().expect("events");
    assert!(last.is_error(), "{:?}", sse.events);
    let gap = last.at.duration_since(chunks[1].at);
    assert!(
        gap >= ms(350) && gap < ms(5000),
        "error event {gap:?} after the last chunk (idle timeout 400 ms)"
    );
    assert!(sse.events.iter().all(|e| !e.is_done()), "no fake [DONE]");
    // The stalled upstream stream is abandoned.
    let cancelled = eventually(ms(5000), || async { a.counts().cancelled == 1 }).await;
    assert!(cancelled, "{:?}", a.counts());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_cancels_the_upstream_request() {
    let a = MockUpstream::start("a").await;
    a.set(Reply::ok().chunks(200).chunk_delay(ms(30)));
    let gw = Gateway::with(&Manifest::new().with(Dep::new("a", "chat", &a))).await;
    let mut sse = gw.client.stream(gw.stream_request("chat")).await;
    assert_eq!(sse.status, 200);
    for _ in 0..3 {
        assert!(sse.next(WAIT).await.is_some());
    }
    drop(sse);
    let dropped = Instant::now();
    let cancelled = eventually(ms(5000), || async { a.counts().cancelled == 1 }).await;
    let s = a.counts();
    assert!(
        cancelled,
        "the upstream never saw its stream cancelled: {s:?}"
    );
    assert_eq!(s.completed, 0);
    assert!(s.chunks < 100, "{s:?}");
    eprintln!(
        "upstream cancelled {:?} after the client left",
        dropped.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_while_the_upstream_is_silent_cancels_it_too() {
    // The upstream sends two chunks and then nothing (a model thinking); the client
    // gives up. The upstream request must not live on until the idle timeout (60 s).
    let a = MockUpstream::start("a").await;
    a.set(Reply::ok().chunks(5).stall_after(2));
    let gw =
        Gateway::with(&Manifest::new().with(Dep::new("a", "chat", &a).idle_timeout("60s"))).await;
    let mut sse = gw.client.stream(gw.stream_request("chat")).await;
    assert_eq!(sse.status, 200);
    for _ in 0..2 {
        assert!(sse.next(WAIT).await.is_some());
    }
    drop(sse);
    let cancelled = eventually(ms(5000), || async { a.counts().cancelled == 1 }).await;
    assert!(
        cancelled,
        "the upstream request outlived its client: {:?}",
        a.counts()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_stream_too() {
    let a = MockUpstream::start("a").await;
    let gw = Gateway::with(&Manifest::new().with(Dep::new("a", "chat", &a))).await;
    let mut sse = gw
        .client
        .stream(json_request(
            http::Method::POST,
            &gw.url("/v1/completions"),
            &json!({"model": "chat", "prompt": "hi", "stream": true}),
        ))
        .await;
    assert_eq!(sse.status, 200);
    sse.read_to_end(WAIT).await;
    assert_eq!(sse.text(), "a:0 a:1 a:2 ");
    assert_eq!(sse.events[0].json()["object"], "text_completion");
    assert!(sse.events.last().is_some_and(|e| e.is_done()));
    assert_eq!(a.last().expect("request").path, "/v1/completions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mid_stream_failures_count_towards_cooldown() {
    // A deployment that always breaks after its first chunk answers every first byte in
    // time; without counting mid-stream failures it would never cool down and every
    // stream sent to it would break.
    let (flaky, steady) = (
        MockUpstream::start("flaky").await,
        MockUpstream::start("steady").await,
    );
    flaky.set(Reply::ok().chunks(3).chunk_delay(ms(10)).die_after(1));
    let gw = Gateway::with(
        &Manifest::new()
            .with(
                Dep::new("flaky", "chat", &flaky)
                    .order(1)
                    .idle_timeout("300ms"),
            )
            .with(Dep::new("steady", "chat", &steady).order(2))
            .settings(json!({"cooldown": {"allowedFails": 2, "cooldownTime": "30s"}})),
    )
    .await;
    let mut broken = 0;
    for _ in 0..6 {
        let mut sse = gw.client.stream(gw.stream_request("chat")).await;
        assert_eq!(sse.status, 200);
        sse.read_to_end(WAIT).await;
        if sse.events.last().is_some_and(|e| e.is_error()) {
            broken += 1;
        } else {
            assert!(
                sse.events.last().is_some_and(|e| e.is_done()),
                "{:?}",
                sse.events
            );
        }
    }
    assert_eq!(
        broken, 2,
        "after allowedFails (2) broken streams the deployment cools down"
    );
    assert_eq!(flaky.count(), 2);
    assert_eq!(steady.count(), 4);

    // A stalled stream (idle timeout) is a failure too.
    let (stalling, steady) = (
        MockUpstream::start("stalling").await,
        MockUpstream::start("steady").await,
    );
    stalling.set(Reply::ok().chunks(3).stall_after(1));
    let gw = Gateway::with(
        &Manifest::new()
            .with(
                Dep::new("stalling", "chat", &stalling)
                    .order(1)
                    .idle_timeout("300ms"),
            )
            .with(Dep::new("steady", "chat", &steady).order(2))
            .settings(json!({"cooldown": {"allowedFails": 1, "cooldownTime": "30s"}})),
    )
    .await;
    for expected in ["stalling", "steady", "steady"] {
        let mut sse = gw.client.stream(gw.stream_request("chat")).await;
        sse.read_to_end(WAIT).await;
        assert_eq!(
            sse.header("x-modelgate-deployment"),
            Some(format!("default/{expected}").as_str())
        );
    }

    // A client that leaves is not the deployment's failure.
    let quitter = MockUpstream::start("quitter").await;
    quitter.set(Reply::ok().chunks(100).chunk_delay(ms(20)));
    let gw = Gateway::with(
        &Manifest::new()
            .with(Dep::new("quitter", "chat", &quitter))
            .settings(json!({"cooldown": {"allowedFails": 1, "cooldownTime": "30s"}})),
    )
    .await;
    for round in 1..=2u64 {
        let mut sse = gw.client.stream(gw.stream_request("chat")).await;
        assert_eq!(sse.status, 200, "round {round}");
        assert!(sse.next(WAIT).await.is_some());
        drop(sse);
        assert!(eventually(ms(5000), || async { quitter.counts().cancelled == round }).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_lets_streams_in_flight_finish() {
    let a = MockUpstream::start("a").await;
    a.set(Reply::ok().chunks(8).chunk_delay(ms(100)));
    let gw = Gateway::with(&Manifest::new().with(Dep::new("a", "chat", &a))).await;
    let mut sse = gw.client.stream(gw.stream_request("chat")).await;
    assert_eq!(sse.status, 200);
    assert!(sse.next(WAIT).await.is_some());
    gw.begin_shutdown();
    sse.read_to_end(WAIT).await;
    assert_eq!(sse.text(), "a:0 a:1 a:2 a:3 a:4 a:5 a:6 a:7 ");
    assert!(
        sse.events.last().is_some_and(|e| e.is_done()),
        "{:?}",
        sse.events
    );
    // New connections are no longer taken.
    let closed = eventually(ms(5000), || async {
        tokio::net::TcpStream::connect(gw.addr).await.is_err()
    })
    .await;
    assert!(closed, "the listener closes on shutdown");
}
