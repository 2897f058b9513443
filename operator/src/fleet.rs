//! What the operator knows of the data-plane fleet: which pods there are, which table each
//! serves, what each reports of every deployment's health. Pure state; the controller feeds
//! it from the Pod watch and the per-pod workers, and derives status from it.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::core::v1::Pod;
use modelgate_dataplane_api::{Fleet, HealthReason, HealthReport, RoutingTable};

/// Label that marks data-plane pods, gateway pods and sidecars alike.
pub const DATAPLANE_LABEL: &str = "modelgate.dev/dataplane";
/// Name of the container port of the admin API.
pub const ADMIN_PORT_NAME: &str = "modelgate-admin";
/// Label (and value) of the chart's gateway pods; a data-plane pod without it is a sidecar.
pub const GATEWAY_LABEL: (&str, &str) = ("app.kubernetes.io/component", "dataplane");
/// Admin port used when no container port carries [`ADMIN_PORT_NAME`].
pub const DEFAULT_ADMIN_PORT: u16 = 4001;

/// `namespace/name` of a pod.
pub type PodKey = String;

/// A data-plane pod the operator pushes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataPlanePod {
    /// `namespace/name`.
    pub key: PodKey,
    /// The pod's uid: a new uid under the same name is a new pod.
    pub uid: String,
    /// Admin API address (pod IP and admin port).
    pub admin: SocketAddr,
    /// Sum of the containers' restart counts: a change means a process restarted.
    pub restarts: i32,
    /// A gateway pod (the chart's Deployment), not a sidecar.
    pub gateway: bool,
    /// The pod's `Ready` condition is true.
    pub ready: bool,
}

impl DataPlanePod {
    /// The data-plane pod a Pod object describes; `None` when it is not a data-plane pod,
    /// has no IP yet, or is terminating.
    pub fn from_pod(pod: &Pod) -> Option<Self> {
        let labels = pod.metadata.labels.as_ref()?;
        if labels.get(DATAPLANE_LABEL).map(String::as_str) != Some("true") {
            return None;
        }
        if pod.metadata.deletion_timestamp.is_some() {
            return None;
        }
        let status = pod.status.as_ref()?;
        if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
            return None;
        }
        let ip: IpAddr = status.pod_ip.as_deref()?.parse().ok()?;
        let port = pod
            .spec
            .as_ref()
            .into_iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(ADMIN_PORT_NAME))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .unwrap_or(DEFAULT_ADMIN_PORT);
        let restarts = status
            .container_statuses
            .iter()
            .flatten()
            .map(|c| c.restart_count)
            .sum();
        let ready = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let gateway = labels.get(GATEWAY_LABEL.0).map(String::as_str) == Some(GATEWAY_LABEL.1);
        Some(Self {
            gateway,
            ready,
            key: format!(
                "{}/{}",
                pod.metadata.namespace.as_deref().unwrap_or_default(),
                pod.metadata.name.as_deref().unwrap_or_default()
            ),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            admin: SocketAddr::new(ip, port),
            restarts,
        })
    }
}

/// The fleet size each data plane divides its limits by: Ready gateway pods, and Ready
/// sidecars (informational). Pods not Ready do not count: they serve nothing yet.
pub fn fleet_size<'a>(pods: impl IntoIterator<Item = &'a DataPlanePod>) -> Fleet {
    let mut fleet = Fleet {
        gateways: 0,
        sidecars: 0,
    };
    for p in pods.into_iter().filter(|p| p.ready) {
        if p.gateway {
            fleet.gateways += 1;
        } else {
            fleet.sidecars += 1;
        }
    }
    fleet
}

/// What one pod serves and reports.
#[derive(Clone, Debug, Default)]
pub struct PodState {
    /// Revision and version served, as last learned.
    pub served: Option<(u64, String)>,
    /// Entries the pod skipped from the table it serves.
    pub skipped: Vec<String>,
    /// The pod's latest health report.
    pub report: Option<HealthReport>,
    /// The latest error talking to the pod, cleared by the next success.
    pub error: Option<String>,
    /// A `PushFailed` Event was published since the last successful push.
    pub failure_announced: bool,
}

/// The kind of entry a convergence record is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryKind {
    /// A deployment.
    Deployment,
    /// An alias.
    Alias,
}

/// Which revision first carried each entry's current generation, and which revisions this
/// operator produced (so a pod serving someone else's table is not counted).
#[derive(Debug, Default)]
pub struct Convergence {
    introduced: HashMap<(EntryKind, String), (i64, u64)>,
    produced: BTreeMap<u64, String>,
}

/// Revisions remembered as produced.
const PRODUCED_KEPT: usize = 256;

impl Convergence {
    /// Records a table this operator now serves to the fleet.
    pub fn record(&mut self, table: &RoutingTable) {
        self.produced.insert(table.revision, table.version.clone());
        while self.produced.len() > PRODUCED_KEPT {
            self.produced.pop_first();
        }
        let mut seen: HashMap<(EntryKind, String), (i64, u64)> =
            HashMap::with_capacity(table.deployments.len() + table.aliases.len());
        let entries = table
            .deployments
            .iter()
            .map(|d| (EntryKind::Deployment, &d.id, d.generation))
            .chain(
                table
                    .aliases
                    .iter()
                    .map(|a| (EntryKind::Alias, &a.id, a.generation)),
            );
        for (kind, id, generation) in entries {
            let key = (kind, id.clone());
            let since = match self.introduced.get(&key) {
                Some((g, rev)) if *g == generation => *rev,
                _ => table.revision,
            };
            seen.insert(key, (generation, since));
        }
        self.introduced = seen;
    }

    /// The revision from which the entry's generation `generation` is served, if the
    /// current table carries it.
    pub fn since(&self, kind: EntryKind, id: &str, generation: i64) -> Option<u64> {
        self.introduced
            .get(&(kind, id.to_owned()))
            .filter(|(g, _)| *g == generation)
            .map(|(_, rev)| *rev)
    }

    /// The version of a revision this operator produced.
    pub fn version_of(&self, revision: u64) -> Option<&str> {
        self.produced.get(&revision).map(String::as_str)
    }

    /// True when `pod` serves a table of this operator's that carries the entry's
    /// generation and did not skip the entry.
    pub fn pod_serves(&self, pod: &PodState, kind: EntryKind, id: &str, generation: i64) -> bool {
        let Some(since) = self.since(kind, id, generation) else {
            return false;
        };
        let Some((revision, version)) = &pod.served else {
            return false;
        };
        *revision >= since
            && self.produced.get(revision) == Some(version)
            && !pod.skipped.iter().any(|s| s == id)
    }
}

/// One deployment's health merged across the pods that checked it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MergedHealth {
    /// Pods that have an opinion (checked it or saw traffic fail).
    pub checked: usize,
    /// Of those, pods that see it failing.
    pub failing: usize,
    /// Latest check time over the pods (ms since the epoch).
    pub last_check_ms: Option<u64>,
    /// Median latency of the latest checks, ms.
    pub latency_ms: Option<u64>,
    /// A failing pod's reason.
    pub last_error: Option<String>,
    /// The kind of failure `last_error` describes; bad credentials win over any other
    /// (and bring their reason with them): they need an admin, not a retry.
    pub reason_code: Option<HealthReason>,
}

impl MergedHealth {
    /// `Some(true)` when every pod that checked it says it answers, `Some(false)` when any
    /// sees it failing, `None` when none has checked.
    pub fn healthy(&self) -> Option<bool> {
        (self.checked > 0).then_some(self.failing == 0)
    }
}

/// Merges the reports of every pod, per deployment id.
pub fn merge_health<'a>(
    reports: impl Iterator<Item = &'a HealthReport>,
) -> HashMap<String, MergedHealth> {
    let mut latencies: HashMap<&str, Vec<u64>> = HashMap::new();
    let mut out: HashMap<String, MergedHealth> = HashMap::new();
    for report in reports {
        for d in &report.deployments {
            let Some(healthy) = d.healthy else { continue };
            let m = out.entry(d.id.clone()).or_default();
            m.checked += 1;
            if !healthy {
                m.failing += 1;
                let bad_credentials = d.reason_code == Some(HealthReason::BadCredentials);
                if m.last_error.is_none()
                    || (bad_credentials && m.reason_code != Some(HealthReason::BadCredentials))
                {
                    m.last_error = d.reason.clone();
                    m.reason_code = d.reason_code;
                }
            }
            m.last_check_ms = m.last_check_ms.max(d.last_check_ms);
            if let Some(l) = d.latency_ms {
                latencies.entry(d.id.as_str()).or_default().push(l);
            }
        }
    }
    for (id, mut ls) in latencies {
        ls.sort_unstable();
        if let Some(m) = out.get_mut(id) {
            m.latency_ms = ls.get(ls.len() / 2).copied();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use modelgate_dataplane_api::DeploymentHealth;

    fn pod(labels: &[(&str, &str)], ip: Option<&str>, port: Option<(&str, i32)>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("gw-1".into()),
                namespace: Some("modelgate".into()),
                uid: Some("u1".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).into(), (*v).into()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "gateway".into(),
                    ports: port.map(|(n, p)| {
                        vec![ContainerPort {
                            name: Some(n.into()),
                            container_port: p,
                            ..ContainerPort::default()
                        }]
                    }),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                pod_ip: ip.map(Into::into),
                phase: Some("Running".into()),
                ..PodStatus::default()
            }),
        }
    }

    #[test]
    fn data_plane_pods_are_found_by_label_with_their_admin_port() {
        let p = pod(
            &[(DATAPLANE_LABEL, "true")],
            Some("10.0.0.7"),
            Some((ADMIN_PORT_NAME, 9001)),
        );
        let d = DataPlanePod::from_pod(&p).expect("a data-plane pod");
        assert_eq!(d.key, "modelgate/gw-1");
        assert_eq!(d.admin, "10.0.0.7:9001".parse().expect("addr"));

        let p = pod(
            &[(DATAPLANE_LABEL, "true")],
            Some("10.0.0.7"),
            Some(("http", 80)),
        );
        assert_eq!(
            DataPlanePod::from_pod(&p).expect("pod").admin.port(),
            DEFAULT_ADMIN_PORT
        );

        assert!(
            DataPlanePod::from_pod(&pod(&[(DATAPLANE_LABEL, "false")], Some("10.0.0.7"), None))
                .is_none()
        );
        assert!(DataPlanePod::from_pod(&pod(&[], Some("10.0.0.7"), None)).is_none());
        assert!(DataPlanePod::from_pod(&pod(&[(DATAPLANE_LABEL, "true")], None, None)).is_none());
    }

    #[test]
    fn the_fleet_size_counts_ready_gateways_and_sidecars_apart() {
        use k8s_openapi::api::core::v1::PodCondition;
        let make = |gateway: bool, ready: &str| {
            let mut labels = vec![(DATAPLANE_LABEL, "true")];
            if gateway {
                labels.push(GATEWAY_LABEL);
            }
            let mut p = pod(&labels, Some("10.0.0.7"), None);
            if let Some(s) = p.status.as_mut() {
                s.conditions = Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: ready.into(),
                    ..PodCondition::default()
                }]);
            }
            DataPlanePod::from_pod(&p).expect("a data-plane pod")
        };
        let pods = [
            make(true, "True"),
            make(true, "True"),
            make(true, "False"),
            make(false, "True"),
        ];
        assert!(pods[0].gateway && pods[0].ready && !pods[2].ready && !pods[3].gateway);
        assert_eq!(
            fleet_size(&pods),
            Fleet {
                gateways: 2,
                sidecars: 1
            }
        );
        assert_eq!(
            fleet_size(&[]),
            Fleet {
                gateways: 0,
                sidecars: 0
            }
        );
    }

    /// `(id, healthy, latency ms, reason)`.
    type Entry<'a> = (&'a str, Option<bool>, Option<u64>, Option<&'a str>);

    fn report(entries: &[Entry<'_>]) -> HealthReport {
        HealthReport {
            deployments: entries
                .iter()
                .map(|(id, healthy, latency, reason)| DeploymentHealth {
                    id: (*id).into(),
                    healthy: *healthy,
                    latency_ms: *latency,
                    reason: reason.map(Into::into),
                    last_check_ms: Some(1000),
                    ..DeploymentHealth::default()
                })
                .collect(),
            revision: Some(1),
            version: Some("v".into()),
        }
    }

    #[test]
    fn health_is_merged_across_pods() {
        let a = report(&[
            ("ns/a", Some(true), Some(10), None),
            ("ns/b", Some(false), None, Some("connection refused")),
            ("ns/c", None, None, None),
        ]);
        let b = report(&[
            ("ns/a", Some(true), Some(30), None),
            ("ns/b", Some(true), Some(5), None),
        ]);
        let c = report(&[("ns/a", Some(true), Some(20), None)]);
        let merged = merge_health([&a, &b, &c].into_iter());
        assert_eq!(merged["ns/a"].healthy(), Some(true));
        assert_eq!(merged["ns/a"].latency_ms, Some(20));
        assert_eq!(merged["ns/b"].healthy(), Some(false));
        assert_eq!((merged["ns/b"].failing, merged["ns/b"].checked), (1, 2));
        assert_eq!(
            merged["ns/b"].last_error.as_deref(),
            Some("connection refused")
        );
        assert!(!merged.contains_key("ns/c"));
    }

    #[test]
    fn bad_credentials_win_the_merged_reason() {
        let mut a = report(&[("ns/a", Some(false), None, Some("503: overloaded"))]);
        a.deployments[0].reason_code = Some(HealthReason::UpstreamError);
        let mut b = report(&[("ns/a", Some(false), None, Some("bad credentials (401)"))]);
        b.deployments[0].reason_code = Some(HealthReason::BadCredentials);
        let c = report(&[("ns/a", Some(false), None, Some("an older pod's reason"))]);
        let merged = merge_health([&a, &b, &c].into_iter());
        assert_eq!(
            merged["ns/a"].reason_code,
            Some(HealthReason::BadCredentials)
        );
        assert_eq!(
            merged["ns/a"].last_error.as_deref(),
            Some("bad credentials (401)")
        );
        assert_eq!(merged["ns/a"].failing, 3);
    }

    fn table(revision: u64, version: &str, deployments: &[(&str, i64)]) -> RoutingTable {
        let mut t: RoutingTable = serde_json::from_str(include_str!(
            "../../dataplane/api/tests/fixtures/routing-table-v1.json"
        ))
        .expect("the contract's fixture");
        let template = t.deployments[0].clone();
        t.aliases.clear();
        t.deployments = deployments
            .iter()
            .map(|(id, generation)| {
                let mut d = template.clone();
                d.id = (*id).into();
                d.generation = *generation;
                d
            })
            .collect();
        t.revision = revision;
        t.version = version.into();
        t
    }

    #[test]
    fn a_pod_serves_a_generation_from_the_revision_that_introduced_it() {
        let mut c = Convergence::default();
        c.record(&table(1, "v1", &[("ns/a", 1), ("ns/b", 1)]));
        c.record(&table(2, "v2", &[("ns/a", 2), ("ns/b", 1)]));
        let on = |rev: u64, version: &str| PodState {
            served: Some((rev, version.into())),
            ..PodState::default()
        };
        // ns/b's generation 1 is in both revisions; ns/a's generation 2 only in 2.
        assert!(c.pod_serves(&on(1, "v1"), EntryKind::Deployment, "ns/b", 1));
        assert!(!c.pod_serves(&on(1, "v1"), EntryKind::Deployment, "ns/a", 2));
        assert!(c.pod_serves(&on(2, "v2"), EntryKind::Deployment, "ns/a", 2));
        // A stale generation is not served; neither is a table this operator did not make.
        assert!(!c.pod_serves(&on(2, "v2"), EntryKind::Deployment, "ns/a", 1));
        assert!(!c.pod_serves(&on(2, "other"), EntryKind::Deployment, "ns/a", 2));
        // An entry the pod skipped is not served by it.
        let mut skipped = on(2, "v2");
        skipped.skipped.push("ns/a".into());
        assert!(!c.pod_serves(&skipped, EntryKind::Deployment, "ns/a", 2));
        // A deployment removed from the table is served nowhere.
        c.record(&table(3, "v3", &[("ns/b", 1)]));
        assert!(!c.pod_serves(&on(3, "v3"), EntryKind::Deployment, "ns/a", 2));
        assert!(c.pod_serves(&on(3, "v3"), EntryKind::Deployment, "ns/b", 1));
    }
}
