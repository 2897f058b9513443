//! `load-report`: turns the load benchmark's JSON lines (one `loadgen` result per line,
//! labelled `direct`, `modelgate` or `nginx`, plus `{"kind": "rss", ...}` lines) into the
//! Markdown tables of BENCHMARKS.md: requests/s, p50 and p99 per target and concurrency,
//! the ratios and the added latency against the upstream called directly and against nginx,
//! and the targets checked at 64 connections.
//!
//! ```text
//! load-report results.jsonl
//! ```

#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::ExitCode;

use serde_json::Value;

const DIRECT: &str = "direct";
const MODELGATE: &str = "modelgate";
const NGINX: &str = "nginx";

/// One loadgen result.
#[derive(Debug, Clone)]
struct Run {
    label: String,
    mode: String,
    connections: u64,
    rate: Option<f64>,
    body_bytes: u64,
    rps: f64,
    p50: f64,
    p99: f64,
    errors: u64,
    lag_p99: Option<f64>,
    /// CPU time of the server (the upstream for `direct`, else the proxy) per request, µs.
    cpu_per_req: Option<f64>,
    /// How busy the server was over the run, in percent of one core.
    busy: Option<f64>,
    /// CPU time spent on other work during the run, in percent of one core.
    other: Option<f64>,
}

impl Run {
    fn from_json(v: &Value) -> Option<Self> {
        Some(Self {
            label: v.get("label")?.as_str()?.to_owned(),
            mode: v.get("mode")?.as_str()?.to_owned(),
            connections: v.get("connections")?.as_u64()?,
            rate: v.get("rate").and_then(Value::as_f64),
            body_bytes: v.get("body_bytes").and_then(Value::as_u64).unwrap_or(0),
            rps: v.get("rps")?.as_f64()?,
            p50: v.get("p50_us")?.as_f64()?,
            p99: v.get("p99_us")?.as_f64()?,
            errors: v.get("errors")?.as_u64()?,
            lag_p99: v.get("lag_p99_us").and_then(Value::as_f64),
            cpu_per_req: v.get("watched_cpu_us_per_req").and_then(Value::as_f64),
            busy: v.get("watched_busy_pct").and_then(Value::as_f64),
            other: v.get("other_cpu_pct").and_then(Value::as_f64),
        })
    }
}

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: load-report RESULTS.jsonl");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("load-report: cannot read {path}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut runs = Vec::new();
    let mut rss = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("load-report: {path}:{}: {e}", n + 1);
                return ExitCode::from(2);
            }
        };
        if v.get("kind").and_then(Value::as_str) == Some("rss") {
            rss.push(v);
        } else if let Some(r) = Run::from_json(&v) {
            runs.push(r);
        } else {
            eprintln!("load-report: {path}:{}: not a loadgen result", n + 1);
            return ExitCode::from(2);
        }
    }
    print!("{}", report(&runs, &rss));
    ExitCode::SUCCESS
}

/// Which runs compare with each other: same mode and same request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Kind<'a> {
    /// `closed` sorts before `rate`.
    mode: &'a str,
    body_bytes: u64,
}

fn find<'a>(runs: &'a [Run], label: &str, kind: Kind<'_>, connections: u64) -> Option<&'a Run> {
    runs.iter().find(|r| {
        r.label == label
            && r.mode == kind.mode
            && r.body_bytes == kind.body_bytes
            && r.connections == connections
    })
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "–".to_owned()
    }
}

fn added(a: f64, b: f64) -> String {
    format!("{:+.0}", a - b)
}

fn report(runs: &[Run], rss: &[Value]) -> String {
    let mut out = String::new();
    let mut kinds: Vec<Kind<'_>> = runs
        .iter()
        .map(|r| Kind {
            mode: r.mode.as_str(),
            body_bytes: r.body_bytes,
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // The headline figures (the smallest request body) first, then the larger bodies.
    let main_body = kinds.iter().map(|k| k.body_bytes).min().unwrap_or(0);
    kinds.sort_by_key(|k| (k.body_bytes != main_body, k.body_bytes, k.mode));
    for &kind in &kinds {
        let rate = kind.mode == "rate";
        let title = if rate {
            "Fixed rate (open loop)"
        } else {
            "Saturation (closed loop)"
        };
        let _ = writeln!(
            out,
            "\n### {title}, {}-byte request body\n",
            kind.body_bytes
        );
        let _ = writeln!(
            out,
            "| conns | target | req/s | p50 µs | p99 µs | req/s vs direct | +p50 µs vs direct | +p99 µs vs direct | req/s vs nginx | +p50 µs vs nginx | +p99 µs vs nginx | server CPU µs/req | server busy % | other work CPU % | errors |{}",
            if rate { " send lag p99 µs |" } else { "" }
        );
        let _ = writeln!(
            out,
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |{}",
            if rate { " ---: |" } else { "" }
        );
        let levels: BTreeSet<u64> = runs
            .iter()
            .filter(|r| r.mode == kind.mode && r.body_bytes == kind.body_bytes)
            .map(|r| r.connections)
            .collect();
        for &c in &levels {
            let direct = find(runs, DIRECT, kind, c);
            let nginx = find(runs, NGINX, kind, c);
            for label in [DIRECT, NGINX, MODELGATE] {
                let Some(r) = find(runs, label, kind, c) else {
                    continue;
                };
                let conns = match r.rate {
                    Some(rate) => format!("{c} @ {rate:.0}/s"),
                    None => c.to_string(),
                };
                let vs = |base: Option<&Run>| match base {
                    Some(b) if label != b.label => [
                        ratio(r.rps, b.rps),
                        added(r.p50, b.p50),
                        added(r.p99, b.p99),
                    ],
                    _ => [String::new(), String::new(), String::new()],
                };
                let [dr, d50, d99] = vs(direct);
                let [nr, n50, n99] = if label == MODELGATE {
                    vs(nginx)
                } else {
                    [String::new(), String::new(), String::new()]
                };
                let name = if label == MODELGATE {
                    "**modelgate**"
                } else {
                    label
                };
                let _ = write!(
                    out,
                    "| {conns} | {name} | {:.0} | {:.0} | {:.0} | {dr} | {d50} | {d99} | {nr} | {n50} | {n99} | {} | {} | {} | {} |",
                    r.rps,
                    r.p50,
                    r.p99,
                    r.cpu_per_req.map_or("–".to_owned(), |c| format!("{c:.1}")),
                    r.busy.map_or("–".to_owned(), |b| format!("{b:.0}")),
                    r.other.map_or("–".to_owned(), |o| format!("{o:.0}")),
                    r.errors
                );
                if rate {
                    let _ = write!(out, " {:.0} |", r.lag_p99.unwrap_or(0.0));
                }
                out.push('\n');
            }
        }
    }

    if !rss.is_empty() {
        let _ = writeln!(out, "\n### Memory\n");
        let _ = writeln!(
            out,
            "| process | deployments | RSS MiB | peak RSS (VmHWM) MiB |"
        );
        let _ = writeln!(out, "| --- | ---: | ---: | ---: |");
        for v in rss {
            let mib = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0) / 1024.0;
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} | {:.1} |",
                v.get("label").and_then(Value::as_str).unwrap_or("?"),
                v.get("deployments").and_then(Value::as_u64).unwrap_or(0),
                mib("rss_kib"),
                mib("hwm_kib"),
            );
        }
    }

    let _ = writeln!(out, "\n### Targets (64 connections)\n");
    let check = |ok: bool| if ok { "met" } else { "**missed**" };
    let closed = Kind {
        mode: "closed",
        body_bytes: main_body,
    };
    let fixed = Kind {
        mode: "rate",
        body_bytes: main_body,
    };
    match (
        find(runs, DIRECT, closed, 64),
        find(runs, NGINX, closed, 64),
        find(runs, MODELGATE, closed, 64),
    ) {
        (Some(d), Some(n), Some(m)) => {
            let _ = writeln!(
                out,
                "- throughput ≥ nginx: {:.0} vs {:.0} req/s ({}) — {}",
                m.rps,
                n.rps,
                ratio(m.rps, n.rps),
                check(m.rps >= n.rps)
            );
            let _ = writeln!(
                out,
                "- p50 added vs direct < 500 µs: {:+.0} µs — {}",
                m.p50 - d.p50,
                check(m.p50 - d.p50 < 500.0)
            );
            let _ = writeln!(
                out,
                "- p99 added vs direct < 1000 µs: {:+.0} µs — {}",
                m.p99 - d.p99,
                check(m.p99 - d.p99 < 1000.0)
            );
        }
        _ => {
            let _ = writeln!(out, "- (no complete 64-connection saturation runs)");
        }
    }
    let levels: BTreeSet<u64> = runs
        .iter()
        .filter(|r| r.mode == "rate" && r.body_bytes == main_body)
        .map(|r| r.connections)
        .collect();
    for c in levels {
        if let (Some(d), Some(m)) = (
            find(runs, DIRECT, fixed, c),
            find(runs, MODELGATE, fixed, c),
        ) {
            let _ = writeln!(
                out,
                "- at a fixed {:.0} req/s over {c} connections: p50 added {:+.0} µs, p99 added {:+.0} µs — {}",
                m.rate.unwrap_or(0.0),
                m.p50 - d.p50,
                m.p99 - d.p99,
                check(m.p50 - d.p50 < 500.0 && m.p99 - d.p99 < 1000.0)
            );
        }
    }
    for v in rss {
        if v.get("label").and_then(Value::as_str) == Some("modelgate-dataplane --table-file") {
            let rss = v.get("rss_kib").and_then(Value::as_f64).unwrap_or(0.0) / 1024.0;
            let _ = writeln!(
                out,
                "- data-plane RSS < 50 MiB with {} deployments: {rss:.1} MiB — {}",
                v.get("deployments").and_then(Value::as_u64).unwrap_or(0),
                check(rss < 50.0)
            );
        }
    }
    let errors: u64 = runs.iter().map(|r| r.errors).sum();
    if errors > 0 {
        let _ = writeln!(
            out,
            "- **{errors} failed requests** across the runs: the figures above are suspect"
        );
    }
    out
}
