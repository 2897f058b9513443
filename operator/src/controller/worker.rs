//! One task per data-plane pod: pushes the current table as soon as the pod appears, again
//! whenever the table changes or the pod turns out to serve something else (it restarted,
//! or a push was lost), and polls its health report, which also says what it serves.
//! Pushes are retried with bounded, jittered backoff; a pod that keeps refusing is tried
//! again at the next poll, never in a tight loop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use modelgate_dataplane_api::{Fleet, HealthReport};
use tokio::sync::{Notify, mpsc, watch};

use crate::fleet::{DataPlanePod, PodKey};
use crate::push::{DataPlaneClient, PushError, Served};
use crate::telemetry::Metrics;

/// A table ready to push: its revision, version and gzip-compressed JSON.
#[derive(Debug)]
pub struct Published {
    /// Revision.
    pub revision: u64,
    /// Version (content hash).
    pub version: String,
    /// The table's canonical JSON, gzip-compressed.
    pub gz: Bytes,
}

/// What a worker tells the controller.
#[derive(Debug)]
pub enum FleetEvent {
    /// The pod accepted a push.
    Served {
        /// The pod.
        pod: PodKey,
        /// What it serves now.
        served: Served,
    },
    /// The pod's latest health report.
    Report {
        /// The pod.
        pod: PodKey,
        /// The report.
        report: HealthReport,
    },
    /// A push or poll failed.
    Failed {
        /// The pod.
        pod: PodKey,
        /// Why (never a credential).
        error: String,
    },
    /// The pod serves a later revision than the one offered (another operator's lineage).
    Ahead {
        /// The pod.
        pod: PodKey,
        /// The revision it serves.
        revision: u64,
    },
}

/// How a worker behaves.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// How often the health report is polled.
    pub poll: Duration,
    /// Push attempts per round before waiting for the next poll.
    pub attempts: u32,
    /// First retry delay; doubles per attempt.
    pub backoff: Duration,
}

/// A running worker.
#[derive(Debug)]
pub struct Worker {
    /// The pod as last seen.
    pub pod: DataPlanePod,
    /// Wakes the worker to check the pod at once.
    pub nudge: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a worker for `pod`.
pub fn start(
    pod: DataPlanePod,
    client: DataPlaneClient,
    desired: watch::Receiver<Option<Arc<Published>>>,
    fleet: watch::Receiver<Fleet>,
    events: mpsc::UnboundedSender<FleetEvent>,
    metrics: Arc<Metrics>,
    config: WorkerConfig,
) -> Worker {
    let nudge = Arc::new(Notify::new());
    let task = tokio::spawn(run(
        pod.clone(),
        client,
        (desired, fleet),
        events,
        metrics,
        config,
        nudge.clone(),
    ));
    Worker { pod, nudge, task }
}

fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.75 + fastrand::f64() * 0.5)
}

async fn run(
    pod: DataPlanePod,
    client: DataPlaneClient,
    // What to tell the pod: the table, and the fleet size.
    (mut desired, mut fleet): (
        watch::Receiver<Option<Arc<Published>>>,
        watch::Receiver<Fleet>,
    ),
    events: mpsc::UnboundedSender<FleetEvent>,
    metrics: Arc<Metrics>,
    config: WorkerConfig,
    nudge: Arc<Notify>,
) {
    let key = pod.key.clone();
    let send = |e: FleetEvent| {
        let _ = events.send(e);
    };
    // What the pod serves, as last learned; `None` when unknown.
    let mut served: Option<(u64, String)> = None;
    // A version the pod refused, and when to try it again.
    let mut refused: Option<(String, Instant)> = None;
    // The fleet size the pod was told, and the last error telling it (logged once).
    let mut fleet_sent: Option<Fleet> = None;
    let mut fleet_error: Option<String> = None;
    loop {
        let want = desired.borrow_and_update().clone();
        if let Some(want) = want {
            let current = served
                .as_ref()
                .is_some_and(|(r, v)| *v == want.version && *r >= want.revision);
            let held_off = refused
                .as_ref()
                .is_some_and(|(v, until)| *v == want.version && Instant::now() < *until);
            if !current && !held_off {
                match push(&pod, &client, &want, &metrics, &config).await {
                    Ok(s) => {
                        served = Some((s.revision, s.version.clone()));
                        refused = None;
                        send(FleetEvent::Served {
                            pod: key.clone(),
                            served: s,
                        });
                    }
                    Err(PushError::Stale { message, .. }) => {
                        tracing::warn!(pod = %key, "the pod serves a later revision: {message}");
                        match client.health_report(pod.admin).await {
                            Ok(report) => {
                                if let Some(revision) = report.revision {
                                    send(FleetEvent::Ahead {
                                        pod: key.clone(),
                                        revision,
                                    });
                                }
                                served = report.revision.zip(report.version.clone());
                                send(FleetEvent::Report {
                                    pod: key.clone(),
                                    report,
                                });
                            }
                            Err(e) => send(FleetEvent::Failed {
                                pod: key.clone(),
                                error: e.to_string(),
                            }),
                        }
                        refused = Some((want.version.clone(), Instant::now() + config.poll));
                    }
                    Err(e) => {
                        tracing::warn!(pod = %key, revision = want.revision, "push failed: {e}");
                        send(FleetEvent::Failed {
                            pod: key.clone(),
                            error: e.to_string(),
                        });
                        refused = Some((want.version.clone(), Instant::now() + config.poll));
                        served = None;
                    }
                }
            }
        }
        // The fleet size, outside the table: on appearance, on change, after a restart.
        let size = *fleet.borrow_and_update();
        if fleet_sent != Some(size) {
            match client.put_fleet(pod.admin, size).await {
                Ok(()) => {
                    tracing::debug!(pod = %key, gateways = size.gateways, "fleet size told");
                    fleet_sent = Some(size);
                    fleet_error = None;
                }
                Err(e) => {
                    // Tried again at the next poll.
                    let message = e.to_string();
                    if fleet_error.as_ref() != Some(&message) {
                        tracing::warn!(pod = %key, "cannot tell the pod the fleet size: {message}");
                        fleet_error = Some(message);
                    }
                }
            }
        }
        tokio::select! {
            r = desired.changed() => {
                if r.is_err() {
                    return;
                }
                continue;
            }
            r = fleet.changed() => {
                if r.is_err() {
                    return;
                }
                continue;
            }
            () = nudge.notified() => {}
            () = tokio::time::sleep(jitter(config.poll)) => {}
        }
        match client.health_report(pod.admin).await {
            Ok(report) => {
                let now = report.revision.zip(report.version.clone());
                if now != served {
                    // The pod restarted or was pushed by someone else: push again at once,
                    // and tell it the fleet size again.
                    refused = None;
                    fleet_sent = None;
                }
                served = now;
                send(FleetEvent::Report {
                    pod: key.clone(),
                    report,
                });
            }
            Err(e) => {
                send(FleetEvent::Failed {
                    pod: key.clone(),
                    error: e.to_string(),
                });
                served = None;
            }
        }
    }
}

async fn push(
    pod: &DataPlanePod,
    client: &DataPlaneClient,
    want: &Published,
    metrics: &Metrics,
    config: &WorkerConfig,
) -> Result<Served, PushError> {
    let mut delay = config.backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let started = Instant::now();
        let result = client.push(pod.admin, want.gz.clone()).await;
        let label = match &result {
            Ok(_) => "ok",
            Err(PushError::Stale { .. }) => "stale",
            Err(PushError::Unreachable { .. }) => "unreachable",
            Err(PushError::Refused { .. }) => "refused",
            Err(_) => "error",
        };
        metrics.pushed(label, started.elapsed());
        match result {
            Ok(s) => {
                tracing::info!(pod = %pod.key, revision = s.revision, version = %s.version, took_ms = started.elapsed().as_millis() as u64, "pushed");
                return Ok(s);
            }
            Err(e) if e.is_transient() && attempt < config.attempts => {
                tokio::time::sleep(jitter(delay)).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}
