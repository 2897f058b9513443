//! `loadgen`: the load benchmark's HTTP/1.1 load generator.
//!
//! It opens `--connections` keep-alive connections (hyper's client connection API, one
//! connection per task, the connection driven inside that task) and sends OpenAI chat
//! completion requests for `--warmup` + `--duration` seconds, then prints one JSON object:
//! requests/s and the latency distribution (mean, p50, p90, p99, p99.9, max) of the
//! requests started after the warm-up, plus the errors seen.
//!
//! Two modes:
//! - closed loop (default): every connection sends its next request as soon as the previous
//!   answer has been read whole — the saturation throughput at that concurrency;
//! - open loop (`--rate R`): requests are scheduled at a fixed total rate of R req/s, spread
//!   evenly over the connections (connection k sends at `start + (k + j·N)/R`), whatever the
//!   answers do. Latency is measured from the moment a request is actually sent; how late
//!   sends were against their schedule is reported as `lag_p99_us` / `lag_max_us`: when those
//!   stay within the timer's granularity (tokio's 1 ms tick: about 2 ms at p99) the server
//!   kept up and the latencies are free of coordinated omission; when they grow, the target
//!   could not sustain the rate.
//!
//! ```text
//! loadgen --url http://127.0.0.1:18080/v1/chat/completions -c 64 -d 10 --warmup 1
//! loadgen --url http://127.0.0.1:18080/v1/chat/completions -c 64 -d 10 --rate 2000
//! ```
//!
//! Latencies are kept as sorted samples (nanoseconds), so percentiles are exact.
//!
//! `--watch-pid PID` (repeatable) also reports the CPU time those processes (all their
//! threads, from `/proc/PID/task/*/schedstat`) used during the measured window: in total,
//! per request, and as a share of one core — what a request costs the proxy under test.
//! `--upstream-pid PID` (repeatable) reports the same for the upstream behind the proxy:
//! the upstream does the same work per request whatever is in front of it, so a proxy's
//! CPU per request divided by the upstream's in the same run is its cost with the speed of
//! the machine at that moment taken out (a shared VM's speed drifts by 10% and more).
//! `other_cpu_pct` is the CPU time (in % of one core) the machine spent over the window on
//! anything but this process, the watched ones, the upstream and the `--bench-pid` ones:
//! other people's work, i.e. how noisy the measurement was.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpStream;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "HTTP/1.1 load generator: closed loop over N connections, or a fixed rate"
)]
struct Args {
    /// The URL every request is POSTed to (http only).
    #[arg(long)]
    url: String,
    /// Keep-alive connections (each has at most one request in flight).
    #[arg(short = 'c', long, default_value_t = 1)]
    connections: usize,
    /// Measured seconds (after the warm-up).
    #[arg(short = 'd', long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring starts (connections are opened during it).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Open loop: a fixed total rate in requests per second instead of a closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// The `model` of the default request body.
    #[arg(long, default_value = "bench")]
    model: String,
    /// The request body (JSON); by default a one-message chat completion request.
    #[arg(long)]
    body: Option<String>,
    /// Extra request header `Name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// Runtime worker threads (default: the CPUs this process may run on; 1: a
    /// single-threaded runtime).
    #[arg(long)]
    threads: Option<usize>,
    /// A label copied into the JSON output (e.g. the target's name).
    #[arg(long, default_value = "")]
    label: String,
    /// A process whose CPU time over the measured window is reported (repeatable).
    #[arg(long = "watch-pid")]
    watch_pids: Vec<u32>,
    /// Another process of the benchmark (e.g. the upstream behind the proxy under test):
    /// its CPU time is not counted as someone else's in `other_cpu_pct` (repeatable).
    #[arg(long = "bench-pid")]
    bench_pids: Vec<u32>,
    /// The upstream behind the proxy under test: its CPU time per request is reported
    /// too (repeatable).
    #[arg(long = "upstream-pid")]
    upstream_pids: Vec<u32>,
}

/// What every connection task shares.
#[derive(Debug)]
struct Plan {
    addr: SocketAddr,
    path: Uri,
    host: HeaderValue,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
    connections: usize,
    rate: Option<f64>,
    /// When load starts (the open-loop schedule's origin).
    start: Instant,
    /// When measuring starts (end of the warm-up).
    measure_from: Instant,
    /// When load stops.
    end: Instant,
}

/// What one connection task saw.
#[derive(Debug, Default)]
struct Seen {
    /// Latencies of the requests started after the warm-up, in nanoseconds.
    latencies: Vec<u64>,
    /// Open loop: how late each measured request was sent against its schedule (ns).
    lags: Vec<u64>,
    /// Failed requests (non-2xx answers, I/O errors), warm-up included.
    errors: u64,
    /// Connections opened.
    connects: u64,
    /// The first error, for the report.
    first_error: Option<String>,
}

impl Seen {
    fn error(&mut self, e: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }
}

fn main() -> Result<(), Error> {
    let args = Args::parse();
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(std::num::NonZeroUsize::get)
            .unwrap_or(1)
    });
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    let report = runtime.block_on(run(&args, threads))?;
    println!("{report}");
    let ok = report["requests"].as_u64().unwrap_or(0);
    if ok == 0 {
        return Err("no request succeeded".into());
    }
    Ok(())
}

async fn run(args: &Args, threads: usize) -> Result<serde_json::Value, Error> {
    if args.connections == 0 {
        return Err("--connections must be at least 1".into());
    }
    let duration_ok = args.duration > 0.0 && args.duration < 3600.0;
    let warmup_ok = (0.0..600.0).contains(&args.warmup);
    if !(duration_ok && warmup_ok) {
        return Err("--duration must be in (0, 3600) s and --warmup in [0, 600) s".into());
    }
    if let Some(rate) = args.rate
        && !(rate > 0.0 && rate <= 10_000_000.0)
    {
        return Err("--rate must be in (0, 10000000] req/s".into());
    }
    let uri: Uri = args.url.parse()?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("{}: only http:// URLs are supported", args.url).into());
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("{}: no host", args.url))?
        .clone();
    let port = authority.port_u16().unwrap_or(80);
    let addr = tokio::net::lookup_host((authority.host(), port))
        .await?
        .next()
        .ok_or_else(|| format!("{}: the host does not resolve", args.url))?;
    let path: Uri = uri.path_and_query().map_or("/", |p| p.as_str()).parse()?;
    let body = match &args.body {
        Some(b) => b.clone(),
        None => json!({
            "model": args.model,
            "messages": [{"role": "user", "content": "Say ok."}],
            "max_tokens": 1,
        })
        .to_string(),
    };
    let mut headers = Vec::new();
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("header `{h}`: expected `Name: value`"))?;
        headers.push((
            HeaderName::from_bytes(name.trim().as_bytes())?,
            HeaderValue::from_str(value.trim())?,
        ));
    }
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let plan = Arc::new(Plan {
        addr,
        path,
        host: HeaderValue::from_str(authority.as_str())?,
        headers,
        body: Bytes::from(body),
        connections: args.connections,
        rate: args.rate,
        start,
        measure_from,
        end: measure_from + Duration::from_secs_f64(args.duration),
    });

    // CPU use over the measured window: the watched processes', and everything else the
    // machine ran that is not this benchmark (noise from other work).
    let watcher = {
        let watched = args.watch_pids.clone();
        let upstream = args.upstream_pids.clone();
        let mut ours = args.bench_pids.clone();
        ours.push(std::process::id());
        ours.extend(&watched);
        ours.extend(upstream.iter().filter(|p| !watched.contains(p)));
        let (from, to) = (plan.measure_from, plan.end);
        tokio::spawn(async move {
            let read = || {
                (
                    cpu_ns(&watched),
                    cpu_ns(&ours),
                    machine_busy_ns(),
                    cpu_ns(&upstream),
                )
            };
            tokio::time::sleep_until(from.into()).await;
            let before = read();
            tokio::time::sleep_until(to.into()).await;
            let after = read();
            let watched = after.0.saturating_sub(before.0);
            let upstream = after.3.saturating_sub(before.3);
            let other = match (before.2, after.2) {
                (Some(b), Some(a)) => Some(
                    a.saturating_sub(b)
                        .saturating_sub(after.1.saturating_sub(before.1)),
                ),
                _ => None,
            };
            (watched, other, upstream)
        })
    };
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..args.connections {
        tasks.spawn(connection(Arc::clone(&plan), index));
    }
    let mut all = Seen::default();
    while let Some(joined) = tasks.join_next().await {
        let seen = joined?;
        all.latencies.extend(seen.latencies);
        all.lags.extend(seen.lags);
        all.errors += seen.errors;
        all.connects += seen.connects;
        if all.first_error.is_none() {
            all.first_error = seen.first_error;
        }
    }
    let finished = Instant::now();
    let (watched_ns, other_ns, upstream_ns) = watcher.await?;
    let watched_ns = (!args.watch_pids.is_empty()).then_some(watched_ns);
    let upstream_ns = (!args.upstream_pids.is_empty()).then_some(upstream_ns);

    all.latencies.sort_unstable();
    all.lags.sort_unstable();
    let requests = all.latencies.len();
    let us = |ns: u64| (ns as f64 / 100.0).round() / 10.0;
    let pct = |v: &[u64], q: f64| -> f64 {
        if v.is_empty() {
            return 0.0;
        }
        // Nearest rank.
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        us(v[rank - 1])
    };
    let mean = if requests == 0 {
        0.0
    } else {
        us(all.latencies.iter().sum::<u64>() / requests as u64)
    };
    let measured = args.duration;
    let round = |x: f64, digits: i32| {
        let f = 10f64.powi(digits);
        (x * f).round() / f
    };
    let watched_ms = watched_ns.map(|ns| round(ns as f64 / 1e6, 1));
    // CPU nanoseconds as microseconds per request.
    let per_req = |ns: u64| round(ns as f64 / 1e3 / (requests.max(1) as f64), 2);
    let watched_per_req = watched_ns.map(per_req);
    let watched_busy = watched_ns.map(|ns| round(ns as f64 / 1e7 / measured, 1));
    let upstream_per_req = upstream_ns.map(per_req);
    Ok(json!({
        "label": args.label,
        "url": args.url,
        "body_bytes": plan.body.len(),
        "mode": if args.rate.is_some() { "rate" } else { "closed" },
        "connections": args.connections,
        "rate": args.rate,
        "threads": threads,
        "warmup_s": args.warmup,
        "duration_s": measured,
        "overrun_s": (finished.saturating_duration_since(plan.end).as_secs_f64() * 1000.0).round() / 1000.0,
        "requests": requests,
        "errors": all.errors,
        "connects": all.connects,
        "first_error": all.first_error,
        "rps": (requests as f64 / measured * 10.0).round() / 10.0,
        "mean_us": mean,
        "p50_us": pct(&all.latencies, 0.50),
        "p90_us": pct(&all.latencies, 0.90),
        "p99_us": pct(&all.latencies, 0.99),
        "p999_us": pct(&all.latencies, 0.999),
        "max_us": all.latencies.last().map_or(0.0, |&m| us(m)),
        "lag_p99_us": args.rate.map(|_| pct(&all.lags, 0.99)),
        "lag_max_us": args.rate.map(|_| all.lags.last().map_or(0.0, |&m| us(m))),
        "watched_pids": args.watch_pids,
        "watched_cpu_ms": watched_ms,
        "watched_cpu_us_per_req": watched_per_req,
        "watched_busy_pct": watched_busy,
        "upstream_pids": args.upstream_pids,
        "upstream_cpu_us_per_req": upstream_per_req,
        "other_cpu_pct": other_ns.map(|ns| round(ns as f64 / 1e7 / measured, 1)),
    }))
}

/// One connection's task: connects (again after a failure, a bounded number of times)
/// and sends requests until the end of the run.
async fn connection(plan: Arc<Plan>, index: usize) -> Seen {
    const MAX_CONNECTS: u64 = 1000;
    let mut seen = Seen::default();
    // Open loop: the index of this connection's next slot in the schedule.
    let mut slot: u64 = 0;
    while Instant::now() < plan.end && seen.connects < MAX_CONNECTS {
        seen.connects += 1;
        let (mut sender, conn) = match connect(plan.addr).await {
            Ok(c) => c,
            Err(e) => {
                seen.error(format!("connect: {e}"));
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let outcome = {
            let work = requests(&plan, index, &mut sender, &mut seen, &mut slot);
            tokio::pin!(work);
            tokio::pin!(conn);
            tokio::select! {
                done = &mut work => done,
                closed = &mut conn => Err(match closed {
                    Ok(()) => "the server closed the connection".into(),
                    Err(e) => format!("connection: {e}").into(),
                }),
            }
        };
        match outcome {
            Ok(()) => break,
            Err(e) => seen.error(e),
        }
    }
    seen
}

async fn connect(
    addr: SocketAddr,
) -> Result<
    (
        SendRequest<Full<Bytes>>,
        http1::Connection<TokioIo<TcpStream>, Full<Bytes>>,
    ),
    Error,
> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(http1::handshake(TokioIo::new(stream)).await?)
}

fn request(plan: &Plan) -> Result<Request<Full<Bytes>>, Error> {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(plan.path.clone())
        .header(HOST, plan.host.clone())
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in &plan.headers {
        builder = builder.header(name, value);
    }
    Ok(builder.body(Full::new(plan.body.clone()))?)
}

/// Sends requests on one connection until the end of the run (`Ok`) or a connection
/// failure (`Err`). Non-2xx answers are counted as errors and the loop goes on.
async fn requests(
    plan: &Plan,
    index: usize,
    sender: &mut SendRequest<Full<Bytes>>,
    seen: &mut Seen,
    slot: &mut u64,
) -> Result<(), Error> {
    loop {
        let scheduled = match plan.rate {
            None => None,
            Some(rate) => {
                let k = index as f64 + *slot as f64 * plan.connections as f64;
                let at = plan.start + Duration::from_secs_f64(k / rate);
                *slot += 1;
                if at >= plan.end {
                    return Ok(());
                }
                tokio::time::sleep_until(at.into()).await;
                Some(at)
            }
        };
        sender.ready().await?;
        let sent = Instant::now();
        if sent >= plan.end {
            return Ok(());
        }
        let resp = sender.send_request(request(plan)?).await?;
        let status = resp.status();
        resp.into_body().collect().await?;
        let done = Instant::now();
        if !status.is_success() {
            seen.error(format!("HTTP status {status}"));
            continue;
        }
        if sent >= plan.measure_from {
            seen.latencies.push(nanos(done - sent));
            if let Some(at) = scheduled {
                seen.lags.push(nanos(sent.saturating_duration_since(at)));
            }
        }
    }
}

/// CPU time used so far by every thread of every process in `pids`, in nanoseconds
/// (`/proc/PID/task/TID/schedstat`, first field). Threads that already exited are not
/// counted; processes that are gone count zero.
fn cpu_ns(pids: &[u32]) -> u64 {
    let mut total = 0;
    for pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("schedstat"))
                && let Some(ns) = text
                    .split_whitespace()
                    .next()
                    .and_then(|f| f.parse::<u64>().ok())
            {
                total += ns;
            }
        }
    }
    total
}

/// Busy time of all CPUs so far (`/proc/stat`: user, nice, system, irq, softirq, steal), in
/// nanoseconds, assuming the usual USER_HZ of 100.
fn machine_busy_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .map(|&i| f.get(i).copied().unwrap_or(0))
        .sum::<u64>();
    Some(busy * 10_000_000)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
