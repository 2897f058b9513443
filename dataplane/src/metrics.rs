//! Prometheus metrics, served on their own port (9464 by default) so Prometheus can scrape
//! without the admin token. Labels come only from the routing table (model and deployment
//! names) and fixed sets (endpoint, status), never from client input, so cardinality is
//! bounded by the table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::app::App;
use crate::body::{Body, BoxError};
use crate::router::FastMap;

/// Upper bounds of the latency histograms, seconds.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0,
];

/// Observations by bucket: `counts[i]` holds those above `BUCKETS[i - 1]` and at most
/// `BUCKETS[i]` (one increment per observation; the cumulative counts Prometheus wants
/// are summed when rendered).
#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(i) = BUCKETS.iter().position(|le| seconds <= *le) {
            self.counts[i] += 1;
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn add(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
        self.sum += other.sum;
        self.count += other.count;
    }
}

/// What one deployment answered as one model: request counts by endpoint and status,
/// and latency by endpoint. A deployment serves a handful of pairs, so they are short
/// lists searched in place, not maps hashed per request.
#[derive(Debug)]
struct ModelSeries {
    model: String,
    counts: Vec<(&'static str, u16, u64)>,
    latency: Vec<(&'static str, Histogram)>,
}

/// The series every answered request updates, under one lock (one acquisition and one
/// hash per request): by deployment, then by model (one, unless a table changed the
/// deployment's model). Latency by model is summed over deployments when rendered.
#[derive(Debug, Default)]
struct Series {
    by_deployment: FastMap<String, Vec<ModelSeries>>,
}

/// Every metric of one data-plane process. Series are found by borrowed keys, so
/// recording a request allocates only the first time a series appears.
#[derive(Debug, Default)]
pub struct Metrics {
    series: Mutex<Series>,
    ttft: Mutex<FastMap<String, Histogram>>,
    attempts: AtomicU64,
    in_flight: AtomicI64,
}

/// Counts one request in flight until dropped.
#[derive(Debug)]
pub struct InFlightGuard<'a>(&'a Metrics);

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Counts a request in flight.
    pub fn start(&self) -> InFlightGuard<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlightGuard(self)
    }

    /// Records a finished (or, for streams, committed) request.
    pub fn record(
        &self,
        endpoint: &'static str,
        model: &str,
        deployment: &str,
        status: u16,
        attempts: u64,
        latency: Duration,
    ) {
        if let Ok(mut series) = self.series.lock() {
            let by_deployment = &mut series.by_deployment;
            let models = match by_deployment.get_mut(deployment) {
                Some(m) => m,
                None => by_deployment.entry(deployment.to_owned()).or_default(),
            };
            let s = entry(
                models,
                |m| m.model == model,
                || ModelSeries {
                    model: model.to_owned(),
                    counts: Vec::new(),
                    latency: Vec::new(),
                },
            );
            entry(
                &mut s.counts,
                |(e, st, _)| *e == endpoint && *st == status,
                || (endpoint, status, 0),
            )
            .2 += 1;
            entry(
                &mut s.latency,
                |(e, _)| *e == endpoint,
                || (endpoint, Histogram::default()),
            )
            .1
            .observe(latency.as_secs_f64());
        }
        self.attempts.fetch_add(attempts, Ordering::Relaxed);
    }

    /// Records the time to the first streamed byte.
    pub fn record_ttft(&self, model: &str, ttft: Duration) {
        if let Ok(mut m) = self.ttft.lock() {
            m.entry(model.to_owned())
                .or_default()
                .observe(ttft.as_secs_f64());
        }
    }

    /// The Prometheus text exposition of every metric, with live state from `app`.
    pub fn render(&self, app: &App) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP modelgate_requests_total Requests answered, by endpoint, model, deployment and status.\n# TYPE modelgate_requests_total counter\n");
        let series = self.series.lock().ok();
        if let Some(series) = &series {
            let mut rows: Vec<(&str, &str, &str, u16, u64)> = series
                .by_deployment
                .iter()
                .flat_map(|(deployment, models)| {
                    models.iter().flat_map(move |s| {
                        s.counts.iter().map(move |(endpoint, status, v)| {
                            (
                                *endpoint,
                                s.model.as_str(),
                                deployment.as_str(),
                                *status,
                                *v,
                            )
                        })
                    })
                })
                .collect();
            rows.sort_unstable();
            for (endpoint, model, deployment, status, v) in rows {
                let _ = writeln!(
                    out,
                    "modelgate_requests_total{{endpoint=\"{endpoint}\",model=\"{}\",deployment=\"{}\",status=\"{status}\"}} {v}",
                    escape(model),
                    escape(deployment),
                );
            }
        }
        out.push_str("# HELP modelgate_request_duration_seconds Time to the response (headers, for streams).\n# TYPE modelgate_request_duration_seconds histogram\n");
        if let Some(series) = &series {
            let mut sorted: BTreeMap<(&str, &str), Histogram> = BTreeMap::new();
            for s in series.by_deployment.values().flatten() {
                for (endpoint, h) in &s.latency {
                    sorted
                        .entry((*endpoint, s.model.as_str()))
                        .or_default()
                        .add(h);
                }
            }
            for ((endpoint, model), h) in &sorted {
                histogram(
                    &mut out,
                    "modelgate_request_duration_seconds",
                    &format!("endpoint=\"{endpoint}\",model=\"{}\"", escape(model)),
                    h,
                );
            }
        }
        out.push_str("# HELP modelgate_time_to_first_token_seconds Time to the first streamed byte.\n# TYPE modelgate_time_to_first_token_seconds histogram\n");
        if let Ok(m) = self.ttft.lock() {
            let sorted: BTreeMap<&str, &Histogram> =
                m.iter().map(|(k, v)| (k.as_str(), v)).collect();
            for (model, h) in sorted {
                histogram(
                    &mut out,
                    "modelgate_time_to_first_token_seconds",
                    &format!("model=\"{}\"", escape(model)),
                    h,
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP modelgate_upstream_attempts_total Upstream attempts, retries included.\n# TYPE modelgate_upstream_attempts_total counter\nmodelgate_upstream_attempts_total {}",
            self.attempts.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP modelgate_in_flight_requests Requests being served.\n# TYPE modelgate_in_flight_requests gauge\nmodelgate_in_flight_requests {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        if let Some(router) = app.router() {
            let now = Instant::now();
            out.push_str("# HELP modelgate_deployment_in_flight Requests in flight per deployment.\n# TYPE modelgate_deployment_in_flight gauge\n");
            for t in &router.targets {
                let _ = writeln!(
                    out,
                    "modelgate_deployment_in_flight{{deployment=\"{}\"}} {}",
                    escape(&t.spec.id),
                    t.state.in_flight()
                );
            }
            out.push_str("# HELP modelgate_deployment_cooldown 1 while a deployment is cooling down.\n# TYPE modelgate_deployment_cooldown gauge\n");
            for t in &router.targets {
                let _ = writeln!(
                    out,
                    "modelgate_deployment_cooldown{{deployment=\"{}\"}} {}",
                    escape(&t.spec.id),
                    u8::from(t.state.cooling_until(now).is_some())
                );
            }
            out.push_str("# HELP modelgate_deployment_healthy 1 healthy, 0 unhealthy, -1 not checked yet.\n# TYPE modelgate_deployment_healthy gauge\n");
            for t in &router.targets {
                let v = match t.state.health().healthy {
                    Some(true) => 1,
                    Some(false) => 0,
                    None => -1,
                };
                let _ = writeln!(
                    out,
                    "modelgate_deployment_healthy{{deployment=\"{}\"}} {v}",
                    escape(&t.spec.id)
                );
            }
        }
        app.limiter().render_metrics(&mut out);
        if let Some((revision, version)) = app.served() {
            let _ = writeln!(
                out,
                "# HELP modelgate_table_info The routing table served.\n# TYPE modelgate_table_info gauge\nmodelgate_table_info{{revision=\"{revision}\",version=\"{}\"}} 1",
                escape(&version)
            );
        }
        out
    }
}

/// The item of `list` that `is` picks, pushed from `make` when there is none (the short
/// lists of [`ModelSeries`]).
fn entry<T>(list: &mut Vec<T>, is: impl Fn(&T) -> bool, make: impl FnOnce() -> T) -> &mut T {
    let i = match list.iter().position(is) {
        Some(i) => i,
        None => {
            list.push(make());
            list.len() - 1
        }
    };
    &mut list[i]
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let mut below = 0;
    for (le, n) in BUCKETS.iter().zip(h.counts) {
        below += n;
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {below}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
}

/// Escapes a label value.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A body that reports when its first frame passes (time to first token).
pub struct FirstFrame<F: FnOnce() + Send> {
    inner: Body,
    on_first: Option<F>,
}

impl<F: FnOnce() + Send> std::fmt::Debug for FirstFrame<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirstFrame")
            .field("waiting", &self.on_first.is_some())
            .finish_non_exhaustive()
    }
}

impl<F: FnOnce() + Send> FirstFrame<F> {
    /// Wraps `inner`; `on_first` runs when the first data frame is polled out.
    pub fn new(inner: Body, on_first: F) -> Self {
        Self {
            inner,
            on_first: Some(on_first),
        }
    }
}

impl<F: FnOnce() + Send + Unpin> HttpBody for FirstFrame<F> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && frame.is_data()
            && let Some(f) = this.on_first.take()
        {
            f();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(metrics: &Metrics) -> String {
        let client = crate::client::build(None).expect("client");
        metrics.render(&App::new(client))
    }

    #[test]
    fn requests_and_latency_are_counted_by_their_labels() {
        let m = Metrics::default();
        let ms = Duration::from_millis;
        m.record("chat", "gpt", "ns/a", 200, 1, ms(3));
        m.record("chat", "gpt", "ns/a", 200, 1, ms(30));
        m.record("chat", "gpt", "ns/a", 502, 2, ms(2000));
        m.record("chat", "gpt", "ns/b", 200, 1, Duration::from_micros(100));
        m.record("embeddings", "emb", "ns/c", 200, 1, ms(99_000));
        // A table moved ns/b to another model: counted under that one from then on.
        m.record("chat", "gpt-2", "ns/b", 200, 1, ms(7));
        let text = rendered(&m);
        for line in [
            r#"modelgate_requests_total{endpoint="chat",model="gpt",deployment="ns/a",status="200"} 2"#,
            r#"modelgate_requests_total{endpoint="chat",model="gpt",deployment="ns/a",status="502"} 1"#,
            r#"modelgate_requests_total{endpoint="chat",model="gpt",deployment="ns/b",status="200"} 1"#,
            r#"modelgate_requests_total{endpoint="chat",model="gpt-2",deployment="ns/b",status="200"} 1"#,
            r#"modelgate_requests_total{endpoint="embeddings",model="emb",deployment="ns/c",status="200"} 1"#,
            // Latency by model: ns/a and ns/b summed, the buckets cumulative.
            r#"modelgate_request_duration_seconds_bucket{endpoint="chat",model="gpt",le="0.001"} 1"#,
            r#"modelgate_request_duration_seconds_bucket{endpoint="chat",model="gpt",le="0.0025"} 1"#,
            r#"modelgate_request_duration_seconds_bucket{endpoint="chat",model="gpt",le="0.005"} 2"#,
            r#"modelgate_request_duration_seconds_bucket{endpoint="chat",model="gpt",le="0.05"} 3"#,
            r#"modelgate_request_duration_seconds_bucket{endpoint="chat",model="gpt",le="2.5"} 4"#,
            r#"modelgate_request_duration_seconds_bucket{endpoint="chat",model="gpt",le="60"} 4"#,
            r#"modelgate_request_duration_seconds_bucket{endpoint="chat",model="gpt",le="+Inf"} 4"#,
            r#"modelgate_request_duration_seconds_count{endpoint="chat",model="gpt"} 4"#,
            r#"modelgate_request_duration_seconds_bucket{endpoint="chat",model="gpt-2",le="0.01"} 1"#,
            // Above the last bound: only in +Inf.
            r#"modelgate_request_duration_seconds_bucket{endpoint="embeddings",model="emb",le="60"} 0"#,
            r#"modelgate_request_duration_seconds_bucket{endpoint="embeddings",model="emb",le="+Inf"} 1"#,
            "modelgate_upstream_attempts_total 7",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        let sum = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(
                    r#"modelgate_request_duration_seconds_sum{endpoint="chat",model="gpt"} "#,
                )
            })
            .and_then(|v| v.parse::<f64>().ok())
            .expect("sum");
        assert!((sum - 2.0331).abs() < 1e-9, "{sum}");
    }
}
