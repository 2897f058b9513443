//! `load-report`: turns the load benchmark's JSON lines (one `loadgen` result per line,
//! labelled `direct`, `modelgate` or `nginx`, plus `{"kind": "rss", ...}` lines) into the
//! Markdown tables of BENCHMARKS.md: requests/s, p50 and p99 per target and concurrency
//! (the median over the rounds when a run was repeated),
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
    /// The server's CPU per request divided by the upstream's in the same run: its cost
    /// with the machine's speed at the time taken out (1 for `direct`).
    relative_cpu: Option<f64>,
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
            relative_cpu: match (
                v.get("watched_cpu_us_per_req").and_then(Value::as_f64),
                v.get("upstream_cpu_us_per_req").and_then(Value::as_f64),
            ) {
                (Some(server), Some(upstream)) if upstream > 0.0 => Some(server / upstream),
                _ => None,
            },
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

/// Every run of `label` at `connections` of `kind`, in the order they ran (one per round).
fn rounds<'a>(runs: &'a [Run], label: &str, kind: Kind<'_>, connections: u64) -> Vec<&'a Run> {
    runs.iter()
        .filter(|r| {
            r.label == label
                && r.mode == kind.mode
                && r.body_bytes == kind.body_bytes
                && r.connections == connections
        })
        .collect()
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// The runs of `label` at `connections` of `kind` as one: each figure the median over the
/// rounds (the rounds interleave the targets, so slow spells of the machine fall on all
/// of them), errors summed.
fn find(runs: &[Run], label: &str, kind: Kind<'_>, connections: u64) -> Option<Run> {
    let all = rounds(runs, label, kind, connections);
    let first = *all.first()?;
    let med = |f: fn(&Run) -> Option<f64>| median(all.iter().filter_map(|r| f(r)).collect());
    Some(Run {
        rps: med(|r| Some(r.rps)).unwrap_or(first.rps),
        p50: med(|r| Some(r.p50)).unwrap_or(first.p50),
        p99: med(|r| Some(r.p99)).unwrap_or(first.p99),
        errors: all.iter().map(|r| r.errors).sum(),
        lag_p99: med(|r| r.lag_p99),
        cpu_per_req: med(|r| r.cpu_per_req),
        relative_cpu: med(|r| r.relative_cpu),
        busy: med(|r| r.busy),
        other: med(|r| r.other),
        ..first.clone()
    })
}

/// Modelgate's throughput against nginx's in each round (paired in the order they ran).
fn round_ratios(runs: &[Run], kind: Kind<'_>, connections: u64) -> Vec<f64> {
    paired(runs, kind, connections, |r| Some(r.rps))
}

/// Modelgate's figure `f` against nginx's in each round where both have it (paired in
/// the order they ran).
fn paired(runs: &[Run], kind: Kind<'_>, connections: u64, f: fn(&Run) -> Option<f64>) -> Vec<f64> {
    let nginx = rounds(runs, NGINX, kind, connections);
    let modelgate = rounds(runs, MODELGATE, kind, connections);
    nginx
        .iter()
        .zip(&modelgate)
        .filter_map(|(n, m)| match (f(m), f(n)) {
            (Some(m), Some(n)) if n > 0.0 => Some(m / n),
            _ => None,
        })
        .collect()
}

fn each_round(ratios: &[f64]) -> String {
    let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}×")).collect();
    each.join(", ")
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
        let most = runs
            .iter()
            .filter(|r| r.mode == kind.mode && r.body_bytes == kind.body_bytes)
            .map(|r| rounds(runs, &r.label, kind, r.connections).len())
            .max()
            .unwrap_or(1);
        let _ = writeln!(
            out,
            "\n### {title}, {}-byte request body{}\n",
            kind.body_bytes,
            if most > 1 {
                format!(" (medians of {most} interleaved rounds)")
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            out,
            "| conns | target | req/s | p50 µs | p99 µs | req/s vs direct | +p50 µs vs direct | +p99 µs vs direct | req/s vs nginx | +p50 µs vs nginx | +p99 µs vs nginx | server CPU µs/req | server CPU ÷ upstream's | server busy % | other work CPU % | errors |{}",
            if rate { " send lag p99 µs |" } else { "" }
        );
        let _ = writeln!(
            out,
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |{}",
            if rate { " ---: |" } else { "" }
        );
        let levels: BTreeSet<u64> = runs
            .iter()
            .filter(|r| r.mode == kind.mode && r.body_bytes == kind.body_bytes)
            .map(|r| r.connections)
            .collect();
        for &c in &levels {
            let direct = find(runs, DIRECT, kind, c);
            let direct = direct.as_ref();
            let nginx = find(runs, NGINX, kind, c);
            let nginx = nginx.as_ref();
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
                    "| {conns} | {name} | {:.0} | {:.0} | {:.0} | {dr} | {d50} | {d99} | {nr} | {n50} | {n99} | {} | {} | {} | {} | {} |",
                    r.rps,
                    r.p50,
                    r.p99,
                    r.cpu_per_req.map_or("–".to_owned(), |c| format!("{c:.1}")),
                    r.relative_cpu.map_or("–".to_owned(), |c| format!("{c:.2}")),
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
            let per_round = round_ratios(runs, closed, 64);
            let _ = writeln!(
                out,
                "- throughput ≥ nginx: {:.0} vs {:.0} req/s ({}{}) — {}",
                m.rps,
                n.rps,
                ratio(m.rps, n.rps),
                if per_round.len() > 1 {
                    format!("; per round: {}", each_round(&per_round))
                } else {
                    String::new()
                },
                check(m.rps >= n.rps)
            );
            // What decides the throughput when the proxy's core is the limit, measured
            // whatever the limit was: CPU per request, each divided by the upstream's in
            // its own run.
            let cost = paired(runs, closed, 64, |r| r.relative_cpu);
            if let Some(med) = median(cost.clone()) {
                let _ = writeln!(
                    out,
                    "- CPU per request against nginx's (each divided by the upstream's in its run): {med:.2}×{}",
                    if cost.len() > 1 {
                        format!("; per round: {}", each_round(&cost))
                    } else {
                        String::new()
                    }
                );
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(label: &str, rps: f64, p50: f64, errors: u64) -> Run {
        Run {
            label: label.to_owned(),
            mode: "closed".to_owned(),
            connections: 64,
            rate: None,
            body_bytes: 81,
            rps,
            p50,
            p99: p50 * 2.0,
            errors,
            lag_p99: None,
            cpu_per_req: Some(rps / 1000.0),
            relative_cpu: Some(rps / 50.0),
            busy: None,
            other: None,
        }
    }

    #[test]
    fn rounds_are_merged_into_medians_and_paired_for_the_ratios() {
        let runs = vec![
            run(DIRECT, 130.0, 5.0, 0),
            run(NGINX, 100.0, 10.0, 0),
            run(MODELGATE, 99.0, 9.0, 1),
            run(NGINX, 90.0, 30.0, 0),
            run(MODELGATE, 95.0, 8.0, 0),
            run(NGINX, 110.0, 20.0, 0),
            run(MODELGATE, 120.0, 7.0, 2),
        ];
        let kind = Kind {
            mode: "closed",
            body_bytes: 81,
        };
        let n = find(&runs, NGINX, kind, 64).expect("nginx");
        assert_eq!((n.rps, n.p50, n.p99), (100.0, 20.0, 40.0));
        let m = find(&runs, MODELGATE, kind, 64).expect("modelgate");
        assert_eq!((m.rps, m.p50, m.errors), (99.0, 8.0, 3));
        assert_eq!(m.cpu_per_req, Some(0.099));
        let ratios = round_ratios(&runs, kind, 64);
        assert_eq!(ratios.len(), 3);
        assert!((ratios[1] - 95.0 / 90.0).abs() < 1e-9);
        assert_eq!(find(&runs, DIRECT, kind, 64).map(|d| d.rps), Some(130.0));
        assert!(find(&runs, DIRECT, kind, 16).is_none());
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        let text = report(&runs, &[]);
        assert!(text.contains("medians of 3 interleaved rounds"), "{text}");
        assert!(text.contains("per round: 0.99×, 1.06×, 1.09×"), "{text}");
        assert_eq!(m.relative_cpu, Some(99.0 / 50.0));
        assert!(
            text.contains("CPU per request against nginx's (each divided by the upstream's in its run): 1.06×; per round: 0.99×, 1.06×, 1.09×"),
            "{text}"
        );
        // Figures from loadgen's JSON: the server's CPU per request over the upstream's.
        let line = serde_json::json!({"label": NGINX, "mode": "closed", "connections": 64,
            "rps": 1.0, "p50_us": 1.0, "p99_us": 1.0, "errors": 0,
            "watched_cpu_us_per_req": 18.0, "upstream_cpu_us_per_req": 9.0});
        assert_eq!(
            Run::from_json(&line).and_then(|r| r.relative_cpu),
            Some(2.0)
        );
    }
}
