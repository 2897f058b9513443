//! Rate limits across replicas (issue 8): two and three `modelgate-dataplane` processes
//! behind one deployment, with and without a real `redis-server` (started here on a
//! loopback port).
//!
//! Windows are 3 s (`--limit-window-seconds 3`) so that a test takes seconds; a burst is
//! sent just after a window starts and ends well before it closes, so all of it falls in
//! one window. Tolerances, stated per test:
//! - without Redis, each pod admits exactly `rpm / gateways` (the fleet share): the fleet
//!   admits exactly `gateways * (rpm / gateways)`, never more than `rpm`;
//! - with Redis, the fleet admits exactly `rpm` (Redis counts atomically): tolerance 0;
//! - `least-busy` across pods with Redis: each of two equal deployments gets between 40%
//!   and 60% of the requests (the spread measured is printed);
//! - Redis killed mid-run: zero failed requests, and limits fall back to local shares.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use modelgate_testkit::{
    ADMIN_TOKEN, Client, Dep, Manifest, MockUpstream, Reply, Resp, Secret, TempDir, binary,
    chat_body, compile_ok, eventually,
};
use serde_json::{Value, json};

/// The rate-limit window of every data plane here.
const WINDOW: Duration = Duration::from_secs(3);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `redis-server` on a loopback port, without persistence.
struct Redis {
    port: u16,
    proc: Option<Proc>,
}

impl Redis {
    fn start() -> Redis {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (tests/run installs it: apt-get install redis-server)");
        let redis = Redis {
            port,
            proc: Some(Proc(child)),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis.ping().as_deref() != Some("+PONG") {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn ping(&self) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        s.write_all(b"PING\r\n").ok()?;
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).trim().to_owned())
    }

    /// SIGKILL: as if the Redis pod died.
    fn kill(&mut self) {
        self.proc.take();
    }
}

/// One `modelgate-dataplane` process.
struct DataPlane {
    addr: SocketAddr,
    admin: SocketAddr,
    metrics: SocketAddr,
    _proc: Proc,
}

async fn start_fleet(n: usize, table: &Value, dir: &TempDir) -> Vec<DataPlane> {
    let table_file = dir.path().join("table.json");
    std::fs::write(&table_file, table.to_string()).expect("write the table");
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{ADMIN_TOKEN}\n")).expect("write the token");
    let bin: PathBuf = binary("modelgate-dataplane", "modelgate-dataplane");
    let mut fleet = Vec::new();
    for _ in 0..n {
        fleet.push(start_one(&bin, &token, &table_file).await);
    }
    fleet
}

/// One data plane on free ports, once it serves its table. A port that another test's
/// process took between `free_port()` and the child's bind makes the child exit (it binds
/// all three ports before serving), and what answered on that port was not this child:
/// ready means the child still runs and answers on its public *and* admin ports; else it
/// starts again on other ports.
async fn start_one(bin: &Path, token: &Path, table_file: &Path) -> DataPlane {
    let client = Client::new();
    for _ in 0..5 {
        let (port, admin, metrics) = (free_port(), free_port(), free_port());
        let mut child = Command::new(bin)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--admin-listen")
            .arg(format!("127.0.0.1:{admin}"))
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{metrics}"))
            .arg("--admin-token-file")
            .arg(token)
            .arg("--table-file")
            .arg(table_file)
            .args(["--limit-window-seconds", &WINDOW.as_secs().to_string()])
            .env("NO_PROXY", "*")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start modelgate-dataplane");
        let (addr, admin, metrics): (SocketAddr, SocketAddr, SocketAddr) = (
            format!("127.0.0.1:{port}").parse().expect("address"),
            format!("127.0.0.1:{admin}").parse().expect("address"),
            format!("127.0.0.1:{metrics}").parse().expect("address"),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                break;
            }
            let req = Request::get(format!("http://{addr}/health/readiness"))
                .body(Full::new(Bytes::new()))
                .expect("request");
            let ready = client
                .try_send(req)
                .await
                .is_ok_and(|r| r.status.is_success());
            if ready && TcpStream::connect(admin).is_ok() && matches!(child.try_wait(), Ok(None)) {
                return DataPlane {
                    addr,
                    admin,
                    metrics,
                    _proc: Proc(child),
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Exited (a port was taken) or never ready: stopped, and again on other ports.
        drop(Proc(child));
    }
    panic!("no data plane could start on free ports and load its table");
}

async fn admin(client: &Client, dp: &DataPlane, method: &str, body: Option<Value>) -> Resp {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{}/v1/fleet", dp.admin))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .expect("request");
    client.send(req).await
}

async fn set_fleet(client: &Client, fleet: &[DataPlane]) {
    for dp in fleet {
        let r = admin(
            client,
            dp,
            "PUT",
            Some(json!({"gateways": fleet.len(), "sidecars": 0})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["divisor"], fleet.len());
    }
}

async fn chat(client: &Client, dp: &DataPlane, model: &str) -> Resp {
    let req = Request::post(format!("http://{}/v1/chat/completions", dp.addr))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(chat_body(model).to_string())))
        .expect("request");
    client.send(req).await
}

/// Sleeps until just after the next window starts (windows are aligned on multiples of
/// their length since the Unix epoch, on this machine's clock, which Redis shares).
async fn window_start() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let w = WINDOW.as_millis() as u64;
    tokio::time::sleep(Duration::from_millis(w - now % w + 100)).await;
}

/// Sends `n` chat requests at once, spread round-robin over the fleet; returns the
/// responses in order.
async fn burst(client: &Client, fleet: &[DataPlane], model: &str, n: usize) -> Vec<Resp> {
    let started = Instant::now();
    let sends = (0..n).map(|i| chat(client, &fleet[i % fleet.len()], model));
    let out = futures_util::future::join_all(sends).await;
    assert!(
        started.elapsed() < WINDOW / 2,
        "the burst took {:?}: it may straddle two windows",
        started.elapsed()
    );
    out
}

fn admitted(resps: &[Resp]) -> usize {
    for r in resps.iter().filter(|r| r.status != 200) {
        assert_eq!(r.status, 429, "{}", r.text());
        let e = r.openai_error();
        assert_eq!(e["code"], "rate_limit_exceeded", "{e}");
        let retry: u64 = r
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After on every 429");
        assert!(
            (1..=WINDOW.as_secs()).contains(&retry),
            "Retry-After {retry}s is the window's reset"
        );
    }
    resps.iter().filter(|r| r.status == 200).count()
}

fn limited(name: &str, model: &str, up: &MockUpstream, rpm: u64) -> Dep {
    Dep::new(name, model, up).spec_field("limits", json!({"rpm": rpm}))
}

fn table(manifest: &Manifest) -> Value {
    serde_json::to_value(compile_ok(&manifest.to_yaml(), 1)).expect("table JSON")
}

fn redis_settings(redis: &Redis, strategy: &str) -> (Secret, Value) {
    (
        Secret::new("redis").entry("url", &redis.url()),
        json!({
            "routingStrategy": strategy,
            "redisUrl": {"secretKeyRef": {"name": "redis", "key": "url"}},
        }),
    )
}

async fn wait_for_redis(client: &Client, fleet: &[DataPlane], want: &str) {
    for dp in fleet {
        let ok = eventually(Duration::from_secs(10), || async {
            admin(client, dp, "GET", None).await.json()["redis"] == want
        })
        .await;
        assert!(ok, "a data plane's Redis state never became {want}");
    }
}

async fn metric(client: &Client, dp: &DataPlane, name: &str) -> f64 {
    let req = Request::get(format!("http://{}/metrics", dp.metrics))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let text = client.send(req).await.text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_redis_each_pod_enforces_its_fleet_share() {
    let up = MockUpstream::start("up").await;
    let dir = TempDir::new("limits-local");
    let client = Client::new();
    let m = Manifest::new().with(limited("a", "chat", &up, 30));
    let fleet = start_fleet(3, &table(&m), &dir).await;

    // Before the operator's word every pod thinks it is alone: the whole limit each, the
    // bug this fixes (3 pods would allow 3 x 30).
    let r = admin(&client, &fleet[0], "GET", None).await;
    assert_eq!(r.json()["divisor"], 1, "{}", r.text());
    assert_eq!(r.json()["redis"], "off");

    set_fleet(&client, &fleet).await;
    window_start().await;
    let resps = burst(&client, &fleet, "chat", 60).await;
    // 20 requests reach each pod; each admits its share, 30 / 3 = 10.
    assert_eq!(admitted(&resps), 30, "3 pods x a share of 10");
    for (i, dp) in fleet.iter().enumerate() {
        let mine = resps
            .iter()
            .enumerate()
            .filter(|(j, r)| j % 3 == i && r.status == 200)
            .count();
        assert_eq!(mine, 10, "pod {i} admitted {mine}, its share is 10");
        assert!(metric(&client, dp, "modelgate_limits_rejected_total").await >= 10.0);
    }

    // A share never rounds to 0: rpm 2 over 3 pods still admits 1 per pod (the bound is
    // then gateways x 1 = 3, stated in ARCHITECTURE.md).
    let m = Manifest::new().with(limited("a", "chat", &up, 2));
    for dp in &fleet {
        let req = Request::put(format!("http://{}/v1/routing-table", dp.admin))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .body(Full::new(Bytes::from({
                let mut t = compile_ok(&m.to_yaml(), 2);
                t.revision = 2;
                serde_json::to_vec(&t).expect("json")
            })))
            .expect("request");
        let r = client.send(req).await;
        assert!(r.status.is_success(), "{}", r.text());
    }
    window_start().await;
    let resps = burst(&client, &fleet, "chat", 12).await;
    assert_eq!(admitted(&resps), 3);

    // Bad input to the fleet endpoint: a clear error, nothing changed.
    let r = admin(
        &client,
        &fleet[0],
        "PUT",
        Some(json!({"gateways": "three"})),
    )
    .await;
    assert_eq!(r.status, 400);
    r.openai_error();
    assert_eq!(
        admin(&client, &fleet[0], "GET", None).await.json()["gateways"],
        3
    );
    let r = admin(&client, &fleet[0], "DELETE", None).await;
    assert_eq!(r.status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_redis_two_and_three_pods_hold_the_exact_limit() {
    let redis = Redis::start();
    let up = MockUpstream::start("up").await;
    let client = Client::new();
    for n in [2usize, 3] {
        let dir = TempDir::new("limits-redis");
        let (secret, settings) = redis_settings(&redis, "simple-shuffle");
        // A model per round, so the rounds' counts in Redis do not meet.
        let model = format!("chat-{n}");
        let m = Manifest::new()
            .with(limited(&format!("a{n}"), &model, &up, 20))
            .with(secret)
            .settings(settings);
        let fleet = start_fleet(n, &table(&m), &dir).await;
        set_fleet(&client, &fleet).await;
        wait_for_redis(&client, &fleet, "ok").await;
        window_start().await;
        let resps = burst(&client, &fleet, &model, 60).await;
        // Exact across the fleet: tolerance 0 (shares would give 2 x 10 or 3 x 6 = 18).
        assert_eq!(admitted(&resps), 20, "{n} pods share one limit of 20");
        let mut decided = 0.0;
        for dp in &fleet {
            decided += metric(&client, dp, "modelgate_limits_redis_decisions_total").await;
            assert_eq!(
                metric(&client, dp, "modelgate_limits_redis_fallbacks_total").await,
                0.0
            );
        }
        // Every admission and at least one refusal; later refusals may come from the
        // refusal a pod remembers until the window ends (no round trip).
        assert!(decided > 20.0, "Redis decided {decided} of 60");
        // The next window admits again.
        window_start().await;
        let resps = burst(&client, &fleet, &model, 10).await;
        assert_eq!(admitted(&resps), 10);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn least_busy_spreads_load_across_pods_through_redis() {
    let redis = Redis::start();
    let a = MockUpstream::start("a").await;
    let b = MockUpstream::start("b").await;
    for up in [&a, &b] {
        up.set(Reply::ok().delay(Duration::from_millis(150)));
    }
    let dir = TempDir::new("limits-least-busy");
    let client = Client::new();
    let (secret, settings) = redis_settings(&redis, "least-busy");
    let m = Manifest::new()
        .with(Dep::new("a", "chat", &a))
        .with(Dep::new("b", "chat", &b))
        .with(secret)
        .settings(settings);
    let fleet = start_fleet(3, &table(&m), &dir).await;
    set_fleet(&client, &fleet).await;
    wait_for_redis(&client, &fleet, "ok").await;
    // 24 clients, 8 per pod, 10 rounds each.
    let clients = (0..24).map(|i| {
        let client = client.clone();
        let dp = &fleet[i % 3];
        async move {
            for _ in 0..10 {
                let r = chat(&client, dp, "chat").await;
                assert_eq!(r.status, 200, "{}", r.text());
            }
        }
    });
    futures_util::future::join_all(clients).await;
    let (na, nb) = (a.count(), b.count());
    let share = na as f64 / (na + nb) as f64;
    println!(
        "least-busy over 3 pods through Redis: a {na}, b {nb} ({:.1}% / {:.1}%)",
        share * 100.0,
        (1.0 - share) * 100.0
    );
    assert_eq!(na + nb, 240);
    assert!(
        (0.4..=0.6).contains(&share),
        "least-busy spread a {na} / b {nb}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_redis_degrades_to_local_shares_with_zero_failed_requests() {
    let mut redis = Redis::start();
    let up = MockUpstream::start("up").await;
    up.set(Reply::ok().delay(Duration::from_millis(5)));
    let dir = TempDir::new("limits-redis-kill");
    let client = Client::new();
    let (secret, settings) = redis_settings(&redis, "simple-shuffle");
    let m = Manifest::new()
        // Limited, but far above what this test sends: no request may fail.
        .with(limited("steady", "steady", &up, 100_000))
        .with(limited("tight", "tight", &up, 20))
        .with(secret)
        .settings(settings);
    let fleet = start_fleet(2, &table(&m), &dir).await;
    set_fleet(&client, &fleet).await;
    wait_for_redis(&client, &fleet, "ok").await;

    // Steady traffic from 8 clients for 3 s; Redis is killed after 1 s.
    let stop_at = Instant::now() + Duration::from_secs(3);
    let clients = (0..8).map(|i| {
        let client = client.clone();
        let dp = &fleet[i % 2];
        async move {
            let mut n = 0;
            while Instant::now() < stop_at {
                let r = chat(&client, dp, "steady").await;
                assert_eq!(r.status, 200, "a request failed: {}", r.text());
                n += 1;
            }
            n
        }
    });
    let killer = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        redis.kill();
    };
    let (counts, ()) = tokio::join!(futures_util::future::join_all(clients), killer);
    let sent: usize = counts.iter().sum();
    assert!(sent > 50, "only {sent} requests were sent");
    let mut fallbacks = 0.0;
    for dp in &fleet {
        fallbacks += metric(&client, dp, "modelgate_limits_redis_fallbacks_total").await;
        assert_eq!(metric(&client, dp, "modelgate_limits_redis_up").await, 0.0);
    }
    assert!(fallbacks >= 1.0, "no fallback counted");
    wait_for_redis(&client, &fleet, "fallback").await;

    // Limits still hold, on local shares: 20 / 2 pods = 10 each.
    window_start().await;
    let resps = burst(&client, &fleet, "tight", 40).await;
    assert_eq!(admitted(&resps), 20, "2 pods x a share of 10");
}

/// Streams to a tpm-limited OpenAI-family deployment ask the upstream for usage when the
/// client did not, strip that chunk from the client's stream, and count the reported tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_counted_by_reported_usage_stripped_unless_asked() {
    use modelgate_testkit::Gateway;
    let up = MockUpstream::start("up").await;
    let m = Manifest::new()
        .with(Dep::new("a", "chat", &up).spec_field("limits", json!({"tpm": 1_000_000})));
    let gw = Gateway::with(&m).await;

    let mut sse = gw.client.stream(gw.stream_request("chat")).await;
    assert_eq!(sse.status, 200);
    let events = sse.read_to_end(Duration::from_secs(10)).await.to_vec();
    assert!(events.last().is_some_and(|e| e.is_done()), "{events:?}");
    assert!(
        events
            .iter()
            .all(|e| e.json().get("usage").is_none_or(Value::is_null)),
        "the usage chunk the client did not ask for reached it: {events:?}"
    );
    let asked = &up.requests()[0];
    assert_eq!(asked.json()["stream_options"]["include_usage"], true);

    // The client asks: the upstream's usage chunk reaches it.
    let mut body = chat_body("chat");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let req = Request::post(gw.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    let mut sse = gw.client.stream(req).await;
    let events = sse.read_to_end(Duration::from_secs(10)).await.to_vec();
    assert!(
        events
            .iter()
            .any(|e| e.json()["usage"]["total_tokens"].as_u64().is_some()),
        "{events:?}"
    );

    // Both streams were counted by their reported usage (12 tokens each), not by the
    // estimate (the prompt's characters / 4).
    let router = gw.app.router().expect("a table");
    let t = &router.targets[0];
    let usage = router.limiter.usage_ratio(&t.spec.limits, &t.state.limits);
    assert!(
        (usage - 24.0 / 1_000_000.0).abs() < 1e-12,
        "tokens counted: {}",
        usage * 1_000_000.0
    );
}

/// A request whose estimate (prompt characters / 4 + `max_tokens`) would overrun what is
/// left of the tpm window is not sent: 429 with the window's reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_would_overrun_tpm_is_not_sent() {
    use modelgate_testkit::Gateway;
    let up = MockUpstream::start("up").await;
    let m =
        Manifest::new().with(Dep::new("a", "chat", &up).spec_field("limits", json!({"tpm": 100})));
    let gw = Gateway::with(&m).await;
    let send = |max_tokens: u64| {
        let mut body = chat_body("chat");
        body["max_tokens"] = json!(max_tokens);
        gw.client.send(
            Request::post(gw.url("/v1/chat/completions"))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))
                .expect("request"),
        )
    };
    // Alone in the window: sent; the upstream reports 12 tokens, which replace the estimate.
    assert_eq!(send(90).await.status, 200);
    // 12 + 90 and more would overrun 100.
    let r = send(90).await;
    assert_eq!(r.status, 429, "{}", r.text());
    let e = r.openai_error();
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("rate limit")),
        "{e}"
    );
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(up.count(), 1, "the second request was not sent");
    // A small request still fits.
    assert_eq!(send(10).await.status, 200);
}

/// With Redis, a deployment is probed once per interval across the fleet: one pod claims
/// each round's check and the others take its verdict (reported with source `fleet`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_checks_are_shared_through_redis() {
    let redis = Redis::start();
    let up = MockUpstream::start("up").await;
    let client = Client::new();
    let dir = TempDir::new("health-redis");
    let (secret, settings) = redis_settings(&redis, "simple-shuffle");
    let m = Manifest::new()
        .with(Dep::new("probed", "probed", &up).spec_field(
            "healthCheck",
            json!({"enabled": true, "interval": "1s", "timeout": "1s", "probe": "models-list"}),
        ))
        .with(secret)
        .settings(settings);
    let fleet = start_fleet(3, &table(&m), &dir).await;
    wait_for_redis(&client, &fleet, "ok").await;
    // Let the first (randomly spread) round pass, then count probes over a while.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let probes = || {
        up.requests()
            .iter()
            .filter(|r| r.path.ends_with("/models"))
            .count()
    };
    let before = probes();
    let span = Duration::from_secs(6);
    tokio::time::sleep(span).await;
    let probed = probes() - before;
    // Three pods probing alone would make ~18 (one a second each); shared, one pod a
    // round: at most ~7 (rounds start at slightly different times on each pod, so a
    // claim may lapse just before another pod's round: a margin of 3).
    assert!(
        (1..=9).contains(&probed),
        "{probed} probes in {span:?} from 3 pods sharing checks"
    );
    // Every pod knows the deployment is healthy; at least one from another pod's check.
    let mut sources = Vec::new();
    for dp in &fleet {
        let req = Request::get(format!("http://{}/v1/health-report", dp.admin))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .body(Full::new(Bytes::new()))
            .expect("request");
        let report = client.send(req).await.json();
        let d = &report["deployments"][0];
        assert_eq!(d["healthy"], true, "{report}");
        sources.push(d["source"].as_str().unwrap_or("").to_owned());
    }
    assert!(
        sources.iter().any(|s| s == "fleet"),
        "no pod took another's verdict: {sources:?}"
    );
}
