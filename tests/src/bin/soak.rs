//! `soak`: the soak test's driver (tests/soak/run.sh runs it; results in BENCHMARKS.md).
//!
//! Against a running `modelgate-dataplane` (its OpenAI port, its admin port and token, its
//! pid), for `--minutes`:
//! - starts fault upstreams in-process ([`modelgate_testkit::faults`]): group `soak` has
//!   three deployments that fail and recover on a schedule (5xx, resets, 429s, hangs,
//!   cuts mid-stream, slow answers, each on its own period, all down together at the start
//!   of every cycle), group `soak-backup` one healthy deployment, the router's fallback
//!   for `soak`;
//! - pushes a routing table compiled from those manifests (the operator's compiler), then
//!   a new revision every `--swap-seconds`, alternating two variants (weights changed, a
//!   fourth deployment added and removed);
//! - sends a fixed rate of chat completions over `--connections` workers, every
//!   `--stream-every`th one streaming, each checked: a 200 with a whole answer, or a
//!   whole stream ending in `[DONE]`;
//! - reports requests served, client-visible errors by cause, latency (p50, p99, max) per
//!   minute, the upstreams' fault counts, and the data plane's RSS at start, per minute
//!   and at the end, as Markdown on stdout and JSON in `--json`.
//!
//! Client-visible errors are expected only where issue 7 allows them: a stream cut after
//! its first byte (an error event, no `[DONE]`). Anything else is counted as a failure and
//! makes the exit status 1.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use modelgate_testkit::http::{Event, json_request};
use modelgate_testkit::{Client, Dep, Fault, FaultUpstream, Manifest, When, chat_body, compile_ok};
use serde_json::{Value, json};
use tokio::net::TcpListener;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Parser)]
#[command(
    name = "soak",
    about = "Soak test: mixed load through a data plane while upstreams fail and tables swap"
)]
struct Args {
    /// The data plane's OpenAI API, e.g. http://127.0.0.1:19000.
    #[arg(long)]
    url: String,
    /// Its admin API, e.g. http://127.0.0.1:19001.
    #[arg(long)]
    admin: String,
    /// File holding the admin token.
    #[arg(long)]
    token_file: std::path::PathBuf,
    /// The data plane's pid (for its RSS).
    #[arg(long)]
    pid: u32,
    /// Minutes of load.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Requests per second, over all workers.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Concurrent workers.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Every n-th request streams.
    #[arg(long, default_value_t = 2)]
    stream_every: u64,
    /// Seconds between table pushes.
    #[arg(long, default_value_t = 3.0)]
    swap_seconds: f64,
    /// Length of the upstreams' fault cycle, in seconds.
    #[arg(long, default_value_t = 60.0)]
    cycle_seconds: f64,
    /// Where to write the JSON report.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// What one request ended as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Ok,
    /// A stream ended by an error event after its first byte (allowed).
    StreamErrorEvent,
    /// An HTTP error status.
    Status(u16),
    /// 200 but not the answer (not JSON, wrong content).
    BadAnswer,
    /// A stream that ended without `[DONE]` and without an error event, or broke.
    StreamCut,
    /// The exchange failed (connection, timeout).
    Transport,
}

impl Outcome {
    fn cause(self) -> String {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::StreamErrorEvent => "stream error event after the first byte".into(),
            Outcome::Status(s) => format!("HTTP {s}"),
            Outcome::BadAnswer => "200 with a wrong or broken answer".into(),
            Outcome::StreamCut => "stream cut without an error event or [DONE]".into(),
            Outcome::Transport => {
                "transport error (connection, client timeout, a body that broke)".into()
            }
        }
    }

    fn allowed(self) -> bool {
        matches!(self, Outcome::Ok | Outcome::StreamErrorEvent)
    }
}

/// Latencies and outcomes of one minute.
#[derive(Debug, Default)]
struct Minute {
    latencies_us: Vec<u64>,
    outcomes: BTreeMap<Outcome, u64>,
    streams: u64,
    rss_kib: u64,
}

#[derive(Debug, Default)]
struct Record {
    minutes: Vec<Minute>,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// The fleet's manifests; `variant` 1 changes weights and adds a fourth deployment.
fn manifest(ups: &[FaultUpstream], variant: u64) -> Manifest {
    let dep = |name: &str, model: &str, up: &FaultUpstream| {
        Dep::at(name, model, "openai-compatible", &up.openai_base())
            .request_timeout("1s")
            .first_byte_timeout("1s")
            .idle_timeout("1s")
    };
    let mut m = Manifest::new()
        .with(
            dep("s1", "soak", &ups[0])
                .retries(2)
                .weight(1 + variant as u32),
        )
        .with(dep("s2", "soak", &ups[1]).retries(2))
        .with(dep("s3", "soak", &ups[2]).retries(2))
        .with(dep("backup", "soak-backup", &ups[3]).retries(1));
    if variant == 1 {
        m = m.with(dep("s4", "soak", &ups[2]).retries(2).weight(2));
    }
    m.settings(json!({
        "fallbacks": {"soak": ["soak-backup"]},
        "cooldown": {"allowedFails": 3, "cooldownTime": "2s"},
    }))
}

/// Schedules: each of the three `soak` upstreams fails in its own ways, and all three
/// are down together during the first 4 s of every cycle (the fallback group answers).
fn schedule(ups: &[FaultUpstream], cycle: Duration) {
    let all_down = When::Every {
        period: cycle,
        faulty: secs(4.0),
    };
    ups[0]
        .schedule(all_down.clone(), Fault::Status(503))
        .schedule(
            When::Every {
                period: cycle / 3,
                faulty: cycle / 12,
            },
            Fault::Reset,
        )
        .schedule(When::EveryNth(40), Fault::ResetMidBody(2))
        .schedule(When::EveryNth(97), Fault::MalformedJson);
    ups[1]
        .schedule(all_down.clone(), Fault::Reset)
        .schedule(
            When::Every {
                period: cycle / 2,
                faulty: cycle / 10,
            },
            Fault::RateLimited(Some(1)),
        )
        .schedule(When::EveryNth(53), Fault::HangBeforeHeaders)
        .schedule(When::EveryNth(61), Fault::CloseMidBody(1));
    ups[2]
        .schedule(all_down, Fault::HangBeforeHeaders)
        .schedule(When::EveryNth(29), Fault::Status(500))
        .schedule(When::EveryNth(71), Fault::HangMidStream(1))
        .schedule(When::EveryNth(83), Fault::Slow(Duration::from_millis(3)));
    for up in &ups[..3] {
        up.restart_clock();
    }
}

async fn push(client: &Client, admin: &str, token: &str, table: Value) -> Result<(), Error> {
    let req = hyper::Request::put(format!("{admin}/v1/routing-table"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            table.to_string(),
        )))?;
    let r = client.try_send(req).await?;
    if r.status != 200 {
        return Err(format!("table refused: {} {}", r.status, r.text()).into());
    }
    Ok(())
}

fn table(ups: &[FaultUpstream], variant: u64, revision: u64) -> Value {
    let t = compile_ok(&manifest(ups, variant).to_yaml(), revision);
    serde_json::from_slice(&t.to_canonical_json()).unwrap_or(Value::Null)
}

async fn one(client: &Client, url: &str, stream: bool) -> Outcome {
    let mut body = chat_body("soak");
    if stream {
        body["stream"] = json!(true);
    }
    let req = json_request(hyper::Method::POST, url, &body);
    if !stream {
        let Ok(r) = client.try_send(req).await else {
            return Outcome::Transport;
        };
        if r.status != 200 {
            return Outcome::Status(r.status.as_u16());
        }
        let Ok(v) = serde_json::from_slice::<Value>(&r.body) else {
            return Outcome::BadAnswer;
        };
        let up = v["upstream"].as_str().unwrap_or_default();
        return if !up.is_empty()
            && v.pointer("/choices/0/message/content") == Some(&json!(format!("answer from {up}")))
        {
            Outcome::Ok
        } else {
            Outcome::BadAnswer
        };
    }
    // Read whole (the client's timeout bounds it); a body that breaks is an error here.
    let Ok(r) = client.try_send(req).await else {
        return Outcome::Transport;
    };
    if r.status != 200 {
        return Outcome::Status(r.status.as_u16());
    }
    let body = String::from_utf8_lossy(&r.body);
    let events: Vec<Event> = body
        .split("\n\n")
        .filter_map(|raw| {
            let data: Vec<&str> = raw
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            (!data.is_empty()).then(|| Event {
                at: Instant::now(),
                data: data.join("\n"),
            })
        })
        .collect();
    let errors = events.iter().filter(|e| e.is_error()).count();
    let last_is_error = events.last().is_some_and(Event::is_error);
    let done = events.last().is_some_and(Event::is_done);
    let text: String = events.iter().filter_map(Event::content).collect();
    let whole = ["a", "b", "c", "d"]
        .iter()
        .any(|u| text == format!("{u}:0 {u}:1 {u}:2 "));
    match (errors, done) {
        (0, true) if whole => Outcome::Ok,
        (0, true) => Outcome::BadAnswer,
        (1, false) if last_is_error => Outcome::StreamErrorEvent,
        _ => Outcome::StreamCut,
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() -> Result<(), Error> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let ok = runtime.block_on(run(args))?;
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

async fn run(args: Args) -> Result<bool, Error> {
    if !(args.minutes > 0.0 && args.rate > 0.0 && args.connections > 0 && args.swap_seconds > 0.0) {
        return Err("--minutes, --rate, --connections and --swap-seconds must be positive".into());
    }
    let token = std::fs::read_to_string(&args.token_file)?.trim().to_owned();
    let mut ups = Vec::new();
    for name in ["a", "b", "c", "d"] {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        ups.push(FaultUpstream::serve(name, listener, false));
    }
    let client = Client::new();
    let mut revision = 1u64;
    push(&client, &args.admin, &token, table(&ups, 0, revision)).await?;
    let url = format!("{}/v1/chat/completions", args.url);

    // Warm up healthy for 5 s, then measure from a known RSS.
    let warm_end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < warm_end {
        one(&client, &url, false).await;
        one(&client, &url, true).await;
    }
    let rss_start = rss_kib(args.pid);
    for up in &ups {
        up.reset();
    }
    schedule(&ups, secs(args.cycle_seconds));

    let total = secs(args.minutes * 60.0);
    let start = Instant::now();
    let end = start + total;
    let minutes = (args.minutes.ceil() as usize).max(1);
    let record = Arc::new(Mutex::new(Record {
        minutes: (0..minutes).map(|_| Minute::default()).collect(),
    }));
    let sequence = Arc::new(AtomicU64::new(0));

    // Table swaps.
    let swapper = tokio::spawn({
        let client = client.clone();
        let token = token.clone();
        let admin = args.admin.clone();
        let every = secs(args.swap_seconds);
        let tables: Vec<Value> = (0..2).map(|v| table(&ups, v, 0)).collect();
        async move {
            let mut swaps = 0u64;
            let mut failures = 0u64;
            while Instant::now() + every < end {
                tokio::time::sleep(every).await;
                revision += 1;
                let mut t = tables[(revision % 2) as usize].clone();
                t["revision"] = json!(revision);
                match push(&client, &admin, &token, t).await {
                    Ok(()) => swaps += 1,
                    Err(e) => {
                        failures += 1;
                        eprintln!("soak: table push {revision} failed: {e}");
                    }
                }
            }
            (swaps, failures)
        }
    });

    // RSS each minute.
    let sampler = tokio::spawn({
        let record = Arc::clone(&record);
        let pid = args.pid;
        async move {
            for m in 0..minutes {
                let at = start + Duration::from_secs(60 * (m as u64 + 1));
                tokio::time::sleep_until(at.min(end).into()).await;
                let rss = rss_kib(pid);
                if let Some(min) = record
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .minutes
                    .get_mut(m)
                {
                    min.rss_kib = rss;
                }
            }
        }
    });

    // Workers: worker k sends at start + (k + j·N)/rate.
    let interval = secs(args.connections as f64 / args.rate);
    let workers: Vec<_> = (0..args.connections)
        .map(|k| {
            let client = client.clone();
            let url = url.clone();
            let record = Arc::clone(&record);
            let sequence = Arc::clone(&sequence);
            let stream_every = args.stream_every.max(1);
            let offset = secs(k as f64 / args.rate);
            tokio::spawn(async move {
                let mut next = start + offset;
                while next < end {
                    tokio::time::sleep_until(next.into()).await;
                    next += interval;
                    let n = sequence.fetch_add(1, Ordering::Relaxed);
                    let stream = n.is_multiple_of(stream_every);
                    let sent = Instant::now();
                    let outcome = one(&client, &url, stream).await;
                    let took = sent.elapsed();
                    let minute = ((sent - start).as_secs() / 60) as usize;
                    let mut r = record.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(m) = r.minutes.get_mut(minute) {
                        m.latencies_us.push(took.as_micros() as u64);
                        *m.outcomes.entry(outcome).or_default() += 1;
                        if stream {
                            m.streams += 1;
                        }
                    }
                    // Never fall behind by more than one slot (a slow answer delays only
                    // this worker's next request).
                    if next + interval < Instant::now() {
                        next = Instant::now();
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let (swaps, swap_failures) = swapper.await.unwrap_or((0, 0));
    let _ = sampler.await;
    // Let the data plane settle, then read its RSS.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_end = rss_kib(args.pid);

    let mut record = record.lock().unwrap_or_else(|p| p.into_inner());
    let mut totals: BTreeMap<Outcome, u64> = BTreeMap::new();
    let mut served = 0u64;
    let mut streams = 0u64;
    let mut rows = Vec::new();
    let mut all_latencies = Vec::new();
    println!(
        "| minute | requests | of which streams | client-visible errors | p50 ms | p99 ms | max ms | data-plane RSS MiB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, m) in record.minutes.iter_mut().enumerate() {
        m.latencies_us.sort_unstable();
        let n = m.latencies_us.len() as u64;
        let errors: u64 = m
            .outcomes
            .iter()
            .filter(|(o, _)| **o != Outcome::Ok)
            .map(|(_, c)| c)
            .sum();
        let p50 = percentile(&m.latencies_us, 0.50) as f64 / 1000.0;
        let p99 = percentile(&m.latencies_us, 0.99) as f64 / 1000.0;
        let max = m.latencies_us.last().copied().unwrap_or(0) as f64 / 1000.0;
        println!(
            "| {} | {n} | {} | {errors} | {p50:.1} | {p99:.1} | {max:.1} | {:.1} |",
            i + 1,
            m.streams,
            m.rss_kib as f64 / 1024.0
        );
        rows.push(
            json!({"minute": i + 1, "requests": n, "streams": m.streams, "errors": errors,
            "p50_ms": p50, "p99_ms": p99, "max_ms": max, "rss_kib": m.rss_kib}),
        );
        served += n;
        streams += m.streams;
        for (o, c) in &m.outcomes {
            *totals.entry(*o).or_default() += c;
        }
        all_latencies.extend_from_slice(&m.latencies_us);
    }
    all_latencies.sort_unstable();
    let failures: u64 = totals
        .iter()
        .filter(|(o, _)| !o.allowed())
        .map(|(_, c)| c)
        .sum();
    println!();
    println!(
        "requests: {served} ({streams} streams) in {:.1} min; table pushes: {swaps} ({swap_failures} refused or failed)",
        args.minutes
    );
    println!("outcomes:");
    for (o, c) in &totals {
        println!("- {}: {c}", o.cause());
    }
    println!(
        "latency over the run: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&all_latencies, 0.5) as f64 / 1000.0,
        percentile(&all_latencies, 0.99) as f64 / 1000.0,
        all_latencies.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    println!(
        "data-plane RSS: {:.1} MiB at start, {:.1} MiB at the end",
        rss_start as f64 / 1024.0,
        rss_end as f64 / 1024.0
    );
    let mut upstreams = serde_json::Map::new();
    for up in &ups {
        let c = up.counts();
        println!(
            "upstream {}: {} requests ({} streams), {} answered whole, faults {:?}",
            up.name(),
            c.requests,
            c.streams,
            c.answered,
            c.by_fault
                .iter()
                .filter(|(k, _)| **k != "none")
                .collect::<BTreeMap<_, _>>()
        );
        upstreams.insert(
            up.name().to_owned(),
            json!({"requests": c.requests, "streams": c.streams, "answered": c.answered, "faults": c.by_fault}),
        );
    }
    let report = json!({
        "minutes": args.minutes,
        "rate": args.rate,
        "connections": args.connections,
        "requests": served,
        "streams": streams,
        "outcomes": totals.iter().map(|(o, c)| (o.cause(), json!(c))).collect::<serde_json::Map<_, _>>(),
        "disallowed_errors": failures,
        "table_pushes": swaps,
        "table_push_failures": swap_failures,
        "p50_ms": percentile(&all_latencies, 0.5) as f64 / 1000.0,
        "p99_ms": percentile(&all_latencies, 0.99) as f64 / 1000.0,
        "rss_start_kib": rss_start,
        "rss_end_kib": rss_end,
        "per_minute": rows,
        "upstreams": upstreams,
    });
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    if failures > 0 {
        eprintln!("soak: {failures} client-visible errors that issue 7 does not allow");
    }
    Ok(failures == 0 && swap_failures == 0)
}
