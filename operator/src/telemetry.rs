//! The operator's own small HTTP server: `/metrics` (Prometheus text), `/healthz` (the
//! process runs) and `/readyz` (connected to the API server: leading with caches synced,
//! or standing by), and the metrics it serves.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Response, StatusCode, header};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Upper bounds of the duration histograms, seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if s <= *le {
                self.counts[i] += 1;
            }
        }
        self.sum += s;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str) {
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {}", self.counts[i]);
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

/// Everything the operator counts.
#[derive(Debug, Default)]
pub struct Metrics {
    reconciles: Mutex<BTreeMap<&'static str, u64>>,
    pushes: Mutex<BTreeMap<&'static str, u64>>,
    status_writes: Mutex<BTreeMap<&'static str, u64>>,
    compile: Mutex<Histogram>,
    push: Mutex<Histogram>,
    revision: AtomicU64,
    deployments: AtomicU64,
    aliases: AtomicU64,
    rejected: AtomicU64,
    dataplanes: AtomicU64,
    leader: AtomicBool,
    ready: AtomicBool,
}

fn bump(map: &Mutex<BTreeMap<&'static str, u64>>, label: &'static str) {
    *map.lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(label)
        .or_default() += 1;
}

impl Metrics {
    /// A compile of the whole table, `ok` or an error label.
    pub fn reconciled(&self, result: &'static str, took: Duration) {
        bump(&self.reconciles, result);
        self.compile
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(took);
    }

    /// A push to one pod, `ok` or an error label.
    pub fn pushed(&self, result: &'static str, took: Duration) {
        bump(&self.pushes, result);
        self.push
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(took);
    }

    /// A status write, `ok` or an error label.
    pub fn status_written(&self, result: &'static str) {
        bump(&self.status_writes, result);
    }

    /// The table now served to the fleet.
    pub fn table(&self, revision: u64, deployments: usize, aliases: usize, rejected: usize) {
        self.revision.store(revision, Ordering::Relaxed);
        self.deployments
            .store(deployments as u64, Ordering::Relaxed);
        self.aliases.store(aliases as u64, Ordering::Relaxed);
        self.rejected.store(rejected as u64, Ordering::Relaxed);
    }

    /// Data-plane pods known.
    pub fn dataplanes(&self, n: usize) {
        self.dataplanes.store(n as u64, Ordering::Relaxed);
    }

    /// Whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.store(leading, Ordering::Relaxed);
    }

    /// Whether `/readyz` answers 200.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters = [
            (
                "modelgate_operator_reconciles_total",
                "Compiles of the whole routing table, by result.",
                &self.reconciles,
            ),
            (
                "modelgate_operator_pushes_total",
                "Routing-table pushes to data-plane pods, by result.",
                &self.pushes,
            ),
            (
                "modelgate_operator_status_writes_total",
                "Status writes, by result.",
                &self.status_writes,
            ),
        ];
        for (name, help, map) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (label, n) in map.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                let _ = writeln!(out, "{name}{{result=\"{label}\"}} {n}");
            }
        }
        let histograms = [
            (
                "modelgate_operator_compile_seconds",
                "Time to compile the whole routing table.",
                &self.compile,
            ),
            (
                "modelgate_operator_push_seconds",
                "Time of one push to one data-plane pod.",
                &self.push,
            ),
        ];
        for (name, help, h) in histograms {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            h.lock()
                .unwrap_or_else(|p| p.into_inner())
                .render(&mut out, name);
        }
        let gauges = [
            (
                "modelgate_operator_table_revision",
                "Revision of the routing table served to the fleet.",
                self.revision.load(Ordering::Relaxed),
            ),
            (
                "modelgate_operator_table_deployments",
                "Deployments in the routing table.",
                self.deployments.load(Ordering::Relaxed),
            ),
            (
                "modelgate_operator_table_aliases",
                "Aliases in the routing table.",
                self.aliases.load(Ordering::Relaxed),
            ),
            (
                "modelgate_operator_rejected_objects",
                "Objects left out of the routing table.",
                self.rejected.load(Ordering::Relaxed),
            ),
            (
                "modelgate_operator_dataplanes",
                "Data-plane pods known.",
                self.dataplanes.load(Ordering::Relaxed),
            ),
            (
                "modelgate_operator_leader",
                "1 when this replica leads.",
                u64::from(self.leader.load(Ordering::Relaxed)),
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        out
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until the process ends.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("metrics listener: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move {
                    let (status, body) = match (req.method(), req.uri().path()) {
                        (&Method::GET, "/metrics") => (StatusCode::OK, metrics.render()),
                        (&Method::GET, "/healthz") => (StatusCode::OK, "ok\n".to_owned()),
                        (&Method::GET, "/readyz") if metrics.is_ready() => {
                            (StatusCode::OK, "ok\n".to_owned())
                        }
                        (&Method::GET, "/readyz") => {
                            (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_owned())
                        }
                        _ => (StatusCode::NOT_FOUND, "not found\n".to_owned()),
                    };
                    Response::builder()
                        .status(status)
                        .header(header::CONTENT_TYPE, "text/plain; version=0.0.4")
                        .body(Full::new(Bytes::from(body)))
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Binds the metrics listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
