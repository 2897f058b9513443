//! The controller's state and its one task: compile on watch triggers, publish tables to
//! the pod workers and the snapshot, follow what every pod serves and reports, and derive
//! the desired status of every object.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Pod, Secret};
use kube::api::Api;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use modelgate_crds::{ConditionStatus, ModelDeployment, ModelGroupAlias, RouterSettings};
use modelgate_dataplane_api::RoutingTable;
use tokio::sync::{mpsc, watch};
use tokio::time::sleep_until;

use crate::compile::{self, Diagnostics, Inputs, Kind, SecretStore, Severity};
use crate::error::{Error, Result};
use crate::fleet::{self, Convergence, DataPlanePod, MergedHealth, PodKey, PodState};
use crate::snapshot;
use crate::status::{self, Observed};

use super::watch::{self as watches, TaskGuard, Trigger, fingerprint};
use super::worker::{self, FleetEvent, Published, Worker, WorkerConfig};
use super::writer::{self, StatusPatch};
use super::{Context, FIELD_MANAGER};

/// Longest Event note `events.k8s.io/v1` accepts, in bytes.
const MAX_EVENT_NOTE: usize = 1024;

/// Key of `settings.yaml` in the settings ConfigMap.
pub const SETTINGS_KEY: &str = "settings.yaml";

/// The reflector stores, one per watched namespace (or one for all).
struct Stores {
    deployments: Vec<Store<ModelDeployment>>,
    aliases: Vec<Store<ModelGroupAlias>>,
    secrets: Vec<Store<Secret>>,
    settings: Store<ConfigMap>,
    pods: Vec<Store<Pod>>,
    /// The watch tasks, stopped when the stores go.
    _tasks: Vec<TaskGuard>,
}

impl Stores {
    fn start(ctx: &Context, tx: &mpsc::UnboundedSender<Trigger>) -> Self {
        let c = &ctx.client;
        let scopes: Vec<Option<String>> =
            if ctx.config.watch_namespaces.iter().all(String::is_empty) {
                vec![None]
            } else {
                ctx.config
                    .watch_namespaces
                    .iter()
                    .filter(|n| !n.is_empty())
                    .map(|n| Some(n.clone()))
                    .collect()
            };
        fn api<K>(c: &kube::Client, ns: &Option<String>) -> Api<K>
        where
            K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
            K::DynamicType: Default,
        {
            match ns {
                Some(ns) => Api::namespaced(c.clone(), ns),
                None => Api::all(c.clone()),
            }
        }
        // Secrets of the watched namespaces and of the operator's (the settings' Secrets),
        // except the operator's own snapshot Secrets.
        let mut secret_scopes = scopes.clone();
        if !secret_scopes.contains(&None)
            && !secret_scopes.contains(&Some(ctx.config.namespace.clone()))
        {
            secret_scopes.push(Some(ctx.config.namespace.clone()));
        }
        let secret_cfg =
            watcher::Config::default().labels(&format!("!{}", snapshot::SNAPSHOT_LABEL));
        let pod_cfg =
            watcher::Config::default().labels(&format!("{}=true", fleet::DATAPLANE_LABEL));
        let cr_fp = |o: &ModelDeployment| {
            fingerprint(&(
                o.uid(),
                o.metadata.generation,
                o.metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.to_string()),
            ))
        };
        let alias_fp = |o: &ModelGroupAlias| {
            fingerprint(&(
                o.uid(),
                o.metadata.generation,
                o.metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.to_string()),
            ))
        };
        let secret_fp = |o: &Secret| {
            let data: Vec<(&String, &Vec<u8>)> =
                o.data.iter().flatten().map(|(k, v)| (k, &v.0)).collect();
            fingerprint(&(o.uid(), data, &o.string_data))
        };
        let settings_fp = |o: &ConfigMap| fingerprint(&(o.uid(), &o.data));
        let pod_fp = |o: &Pod| fingerprint(&format!("{:?}", DataPlanePod::from_pod(o)));
        fn keep<K: Resource + Clone + 'static>(
            tasks: &mut Vec<TaskGuard>,
            (store, guard): (Store<K>, TaskGuard),
        ) -> Store<K>
        where
            K::DynamicType: Eq + std::hash::Hash + Clone,
        {
            tasks.push(guard);
            store
        }
        let mut tasks = Vec::new();
        let deployments = scopes
            .iter()
            .map(|ns| {
                keep(
                    &mut tasks,
                    watches::spawn(
                        "modeldeployments",
                        api(c, ns),
                        watcher::Config::default(),
                        Trigger::Compile,
                        cr_fp,
                        tx.clone(),
                    ),
                )
            })
            .collect();
        let aliases = scopes
            .iter()
            .map(|ns| {
                keep(
                    &mut tasks,
                    watches::spawn(
                        "modelgroupaliases",
                        api(c, ns),
                        watcher::Config::default(),
                        Trigger::Compile,
                        alias_fp,
                        tx.clone(),
                    ),
                )
            })
            .collect();
        let secrets = secret_scopes
            .iter()
            .map(|ns| {
                keep(
                    &mut tasks,
                    watches::spawn(
                        "secrets",
                        api(c, ns),
                        secret_cfg.clone(),
                        Trigger::Compile,
                        secret_fp,
                        tx.clone(),
                    ),
                )
            })
            .collect();
        let settings = keep(
            &mut tasks,
            watches::spawn(
                "settings",
                Api::namespaced(c.clone(), &ctx.config.namespace),
                watcher::Config::default()
                    .fields(&format!("metadata.name={}", ctx.config.settings_configmap)),
                Trigger::Compile,
                settings_fp,
                tx.clone(),
            ),
        );
        // Pods everywhere the fleet may run: sidecars live in the apps' namespaces.
        let pod_scopes = if scopes.contains(&None) {
            vec![None]
        } else {
            let mut ns = scopes.clone();
            if !ns.contains(&Some(ctx.config.namespace.clone())) {
                ns.push(Some(ctx.config.namespace.clone()));
            }
            ns
        };
        let pods = pod_scopes
            .iter()
            .map(|n| {
                keep(
                    &mut tasks,
                    watches::spawn(
                        "pods",
                        api(c, n),
                        pod_cfg.clone(),
                        Trigger::Pods,
                        pod_fp,
                        tx.clone(),
                    ),
                )
            })
            .collect();
        Stores {
            deployments,
            aliases,
            secrets,
            settings,
            pods,
            _tasks: tasks,
        }
    }

    async fn wait_until_ready(&self) {
        for s in &self.deployments {
            let _ = s.wait_until_ready().await;
        }
        for s in &self.aliases {
            let _ = s.wait_until_ready().await;
        }
        for s in &self.secrets {
            let _ = s.wait_until_ready().await;
        }
        let _ = self.settings.wait_until_ready().await;
        for s in &self.pods {
            let _ = s.wait_until_ready().await;
        }
    }

    fn deployments(&self) -> Vec<Arc<ModelDeployment>> {
        self.deployments.iter().flat_map(Store::state).collect()
    }

    fn aliases(&self) -> Vec<Arc<ModelGroupAlias>> {
        self.aliases.iter().flat_map(Store::state).collect()
    }
}

/// What was last announced through Events, per object.
#[derive(Debug, Default, Clone, PartialEq)]
struct Announced {
    accepted: Option<(ConditionStatus, String)>,
    served_generation: Option<i64>,
}

/// The controller's state.
pub struct Controller {
    ctx: Context,
    stores: Stores,
    settings: RouterSettings,
    settings_problem: Option<String>,
    revision: u64,
    table: Arc<RoutingTable>,
    compiled_once: bool,
    diagnostics: Diagnostics,
    convergence: Convergence,
    published: watch::Sender<Option<Arc<Published>>>,
    pods: BTreeMap<PodKey, PodState>,
    workers: HashMap<PodKey, Worker>,
    health: HashMap<String, MergedHealth>,
    announced: HashMap<(Kind, String, String), Announced>,
    statuses: watch::Sender<Arc<Vec<StatusPatch>>>,
    events: mpsc::UnboundedSender<(ObjectReference, Event)>,
    fleet_tx: mpsc::UnboundedSender<FleetEvent>,
    /// Ready gateway pods and sidecars, told to every pod (`PUT /v1/fleet`).
    fleet_size: watch::Sender<modelgate_dataplane_api::Fleet>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("revision", &self.revision)
            .field("pods", &self.pods.len())
            .finish_non_exhaustive()
    }
}

impl Controller {
    /// Runs the controller until it fails for good (it retries everything it can).
    pub async fn run(ctx: Context) -> Result<()> {
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.config.namespace);
        // Continue the revision sequence of the snapshot (a previous leader's).
        let recorded = loop {
            match snapshot::read(&secrets, &ctx.config.table_secret).await {
                Ok(r) => break r,
                Err(e) => {
                    tracing::warn!("cannot read the snapshot, retrying: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let (trigger_tx, mut triggers) = mpsc::unbounded_channel();
        let stores = Stores::start(&ctx, &trigger_tx);
        let (fleet_tx, mut fleet_rx) = mpsc::unbounded_channel();
        let (published, published_rx) = watch::channel(None);
        let (statuses, statuses_rx) = watch::channel(Arc::new(Vec::new()));
        let (events, events_rx) = mpsc::unbounded_channel();
        // Background writers, stopped when this controller stops (leadership lost).
        let _writers = [
            tokio::spawn(writer::run(
                ctx.client.clone(),
                ctx.metrics.clone(),
                ctx.config.health_refresh,
                statuses_rx,
            )),
            tokio::spawn(publish_events(ctx.recorder.clone(), events_rx)),
            tokio::spawn(write_snapshots(
                secrets,
                ctx.config.namespace.clone(),
                ctx.config.table_secret.clone(),
                published_rx,
            )),
        ]
        .map(|t| TaskGuard::new(&t));

        let mut this = Controller {
            ctx,
            stores,
            settings: RouterSettings::default(),
            settings_problem: None,
            revision: recorded.as_ref().map(|r| r.0).unwrap_or(0),
            table: Arc::new(RoutingTable::default()),
            compiled_once: false,
            diagnostics: Diagnostics::default(),
            convergence: Convergence::default(),
            published,
            pods: BTreeMap::new(),
            workers: HashMap::new(),
            health: HashMap::new(),
            announced: HashMap::new(),
            statuses,
            events,
            fleet_tx,
            fleet_size: watch::Sender::new(fleet::fleet_size([])),
        };
        let recorded_version = recorded.map(|r| r.1);
        tracing::info!(
            revision = this.revision,
            "waiting for the watches' first lists"
        );
        this.stores.wait_until_ready().await;
        this.compile(recorded_version.as_deref());
        this.sync_pods();
        this.derive_statuses();

        let debounce = this.ctx.config.debounce;
        let mut compile_at: Option<tokio::time::Instant> = None;
        let mut status_at: Option<tokio::time::Instant> = None;
        let far = || tokio::time::Instant::now() + Duration::from_secs(3600);
        loop {
            tokio::select! {
                t = triggers.recv() => match t {
                    Some(Trigger::Compile) => {
                        compile_at.get_or_insert_with(|| tokio::time::Instant::now() + debounce);
                    }
                    Some(Trigger::Pods) => {
                        this.sync_pods();
                        status_at.get_or_insert_with(|| tokio::time::Instant::now() + Duration::from_millis(100));
                    }
                    None => return Err(Error::Config("the watches stopped".to_owned())),
                },
                () = sleep_until(compile_at.unwrap_or_else(far)), if compile_at.is_some() => {
                    compile_at = None;
                    this.compile(None);
                    status_at.get_or_insert_with(tokio::time::Instant::now);
                }
                e = fleet_rx.recv() => {
                    if let Some(e) = e {
                        this.on_fleet_event(e);
                        status_at.get_or_insert_with(|| tokio::time::Instant::now() + Duration::from_millis(100));
                    }
                }
                () = sleep_until(status_at.unwrap_or_else(far)), if status_at.is_some() => {
                    status_at = None;
                    this.derive_statuses();
                }
            }
        }
    }

    /// Reads the settings ConfigMap; keeps the last good settings when it is broken.
    fn read_settings(&mut self) {
        let cm = self.stores.settings.state().into_iter().find(|c| {
            c.metadata.name.as_deref() == Some(self.ctx.config.settings_configmap.as_str())
        });
        let Some(cm) = cm else {
            self.settings = RouterSettings::default();
            self.settings_problem = None;
            return;
        };
        let text = cm
            .data
            .as_ref()
            .and_then(|d| d.get(SETTINGS_KEY))
            .cloned()
            .unwrap_or_default();
        match RouterSettings::from_yaml(&text) {
            Ok(s) => {
                self.settings = s;
                self.settings_problem = None;
            }
            Err(e) => {
                let problem = format!(
                    "{SETTINGS_KEY} is not a RouterSettings document ({e}); the last good settings stay in force"
                );
                if self.settings_problem.as_deref() != Some(problem.as_str()) {
                    tracing::error!(configmap = %self.ctx.config.settings_configmap, "{problem}");
                    self.event(
                        cm.object_ref(&()),
                        EventType::Warning,
                        "InvalidSettings",
                        "Compile",
                        problem.clone(),
                    );
                    self.settings_problem = Some(problem);
                }
            }
        }
    }

    fn event(
        &self,
        regarding: ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let _ = self.events.send((
            regarding,
            Event {
                type_,
                reason: reason.to_owned(),
                note: Some(status::cut(&note, MAX_EVENT_NOTE)),
                action: action.to_owned(),
                secondary: None,
            },
        ));
    }

    /// Compiles the whole table; publishes it when its version changed.
    /// `recorded_version` is the snapshot's version at startup: the same content keeps the
    /// snapshot's revision.
    fn compile(&mut self, recorded_version: Option<&str>) {
        let started = Instant::now();
        self.read_settings();
        let deployments: Vec<ModelDeployment> = self
            .stores
            .deployments()
            .iter()
            .map(|d| (**d).clone())
            .collect();
        let aliases: Vec<ModelGroupAlias> = self
            .stores
            .aliases()
            .iter()
            .map(|a| (**a).clone())
            .collect();
        let mut secrets = SecretStore::new();
        for store in &self.stores.secrets {
            for s in store.state() {
                secrets.insert_secret(&s, compile::DEFAULT_NAMESPACE);
            }
        }
        let compiled = compile::compile(
            &Inputs {
                deployments: &deployments,
                aliases: &aliases,
                secrets: &secrets,
                settings: &self.settings,
                settings_namespace: &self.ctx.config.namespace,
            },
            self.revision + 1,
        );
        let took = started.elapsed();
        self.diagnostics = compiled.diagnostics;
        let settings_key = compile::Compiled::settings_key(&self.ctx.config.namespace);
        for d in self.diagnostics.of(&settings_key) {
            match d.severity {
                Severity::Error => tracing::error!("router settings: {}: {}", d.reason, d.message),
                Severity::Warning => tracing::warn!("router settings: {}: {}", d.reason, d.message),
            }
        }
        let mut table = compiled.table;
        if let Err(problems) = table.validate() {
            let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
            tracing::error!(
                "the compiled table cannot be served, the last one stays: {}",
                text.join("; ")
            );
            self.ctx.metrics.reconciled("invalid_table", took);
            return;
        }
        self.ctx.metrics.reconciled("ok", took);
        let unchanged = if self.compiled_once {
            table.version == self.table.version
        } else {
            recorded_version == Some(table.version.as_str())
        };
        if unchanged && (self.compiled_once || self.revision > 0) {
            if !self.compiled_once {
                table = table.seal(self.revision);
                self.adopt(table);
            }
            return;
        }
        self.revision += 1;
        tracing::info!(
            revision = self.revision,
            version = %table.version,
            deployments = table.deployments.len(),
            aliases = table.aliases.len(),
            rejected = self.diagnostics.error_count(),
            compile_ms = took.as_millis() as u64,
            "new routing table"
        );
        self.adopt(table);
    }

    /// Makes `table` the one served to the fleet.
    fn adopt(&mut self, table: RoutingTable) {
        self.compiled_once = true;
        self.revision = table.revision;
        self.convergence.record(&table);
        let gz = snapshot::gzip(&table.to_canonical_json());
        self.ctx.metrics.table(
            table.revision,
            table.deployments.len(),
            table.aliases.len(),
            self.diagnostics.error_count(),
        );
        let published = Arc::new(Published {
            revision: table.revision,
            version: table.version.clone(),
            gz: Bytes::from(gz),
        });
        self.table = Arc::new(table);
        self.published.send_replace(Some(published));
    }

    /// Starts, restarts, nudges and stops pod workers to match the Pod watch.
    fn sync_pods(&mut self) {
        let mut current: HashMap<PodKey, DataPlanePod> = HashMap::new();
        for store in &self.stores.pods {
            for pod in store.state() {
                if let Some(p) = DataPlanePod::from_pod(&pod) {
                    current.insert(p.key.clone(), p);
                }
            }
        }
        self.workers.retain(|k, w| {
            let keep = current
                .get(k)
                .is_some_and(|p| p.uid == w.pod.uid && p.admin == w.pod.admin);
            if !keep {
                tracing::info!(pod = %k, "data-plane pod gone or replaced");
            }
            keep
        });
        self.pods
            .retain(|k, _| self.workers.contains_key(k) || current.contains_key(k));
        // The fleet size moves with readiness; workers tell their pods when it changes
        // (never a table version or a status change).
        let size = fleet::fleet_size(current.values());
        self.fleet_size.send_if_modified(|f| {
            let changed = *f != size;
            if changed {
                tracing::info!(
                    gateways = size.gateways,
                    sidecars = size.sidecars,
                    "fleet size"
                );
                *f = size;
            }
            changed
        });
        for (key, pod) in current {
            match self.workers.get_mut(&key) {
                Some(w) => {
                    if w.pod.restarts != pod.restarts {
                        // A container restarted: check at once what it serves.
                        w.pod.restarts = pod.restarts;
                        w.nudge.notify_one();
                    }
                }
                None => {
                    tracing::info!(pod = %key, admin = %pod.admin, "data-plane pod found");
                    self.pods.insert(key.clone(), PodState::default());
                    let w = worker::start(
                        pod,
                        self.ctx.dataplanes.clone(),
                        self.published.subscribe(),
                        self.fleet_size.subscribe(),
                        self.fleet_tx.clone(),
                        self.ctx.metrics.clone(),
                        WorkerConfig {
                            poll: self.ctx.config.poll_interval,
                            attempts: 4,
                            backoff: Duration::from_millis(100),
                        },
                    );
                    self.workers.insert(key, w);
                }
            }
        }
        self.ctx.metrics.dataplanes(self.pods.len());
        self.merge_health();
    }

    fn merge_health(&mut self) {
        self.health = fleet::merge_health(self.pods.values().filter_map(|p| p.report.as_ref()));
    }

    fn on_fleet_event(&mut self, e: FleetEvent) {
        match e {
            FleetEvent::Served { pod, served } => {
                if let Some(p) = self.pods.get_mut(&pod) {
                    p.served = Some((served.revision, served.version));
                    p.skipped = served.skipped.into_iter().map(|s| s.id).collect();
                    p.error = None;
                    p.failure_announced = false;
                }
            }
            FleetEvent::Report { pod, report } => {
                if let Some(p) = self.pods.get_mut(&pod) {
                    let now = report.revision.zip(report.version.clone());
                    if now != p.served {
                        p.skipped.clear();
                    }
                    p.served = now;
                    p.report = Some(report);
                    p.error = None;
                }
                self.merge_health();
            }
            FleetEvent::Failed { pod, error } => {
                if let Some(p) = self.pods.get_mut(&pod) {
                    // One Event per failure streak: only a successful push ends it (a
                    // pod that answers health polls but refuses the table is still
                    // failing).
                    let first = !p.failure_announced;
                    p.failure_announced = true;
                    p.served = None;
                    p.report = None;
                    p.error = Some(error.clone());
                    if first && let Some(w) = self.workers.get(&pod) {
                        let (namespace, name) = pod.split_once('/').unwrap_or(("", &pod));
                        let regarding = ObjectReference {
                            api_version: Some("v1".to_owned()),
                            kind: Some("Pod".to_owned()),
                            namespace: Some(namespace.to_owned()),
                            name: Some(name.to_owned()),
                            uid: Some(w.pod.uid.clone()),
                            ..ObjectReference::default()
                        };
                        self.event(regarding, EventType::Warning, "PushFailed", "Push", error);
                    }
                }
                self.merge_health();
            }
            FleetEvent::Ahead { pod, revision } => {
                if revision >= self.revision && self.compiled_once {
                    tracing::warn!(pod = %pod, revision, "a data plane serves a later revision than this operator's; continuing above it");
                    self.revision = revision;
                    let table = (*self.table).clone().seal(revision + 1);
                    self.adopt(table);
                }
            }
        }
    }

    /// Derives every object's desired status and hands the set to the writer; publishes
    /// Events for acceptance changes and for generations newly served everywhere.
    fn derive_statuses(&mut self) {
        if !self.compiled_once {
            return;
        }
        let now = k8s_openapi::jiff::Timestamp::now()
            .round(k8s_openapi::jiff::Unit::Second)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let seen = Observed {
            table: &self.table,
            diagnostics: &self.diagnostics,
            convergence: &self.convergence,
            pods: &self.pods,
            health: &self.health,
            now: &now,
        };
        let mut patches = Vec::new();
        let mut events = Vec::new();
        let mut announced = std::mem::take(&mut self.announced);
        let mut live = std::collections::HashSet::new();
        let mut plan = Plan {
            announced: &mut announced,
            live: &mut live,
            events: &mut events,
            patches: &mut patches,
        };
        for d in self.stores.deployments() {
            let desired = status::deployment_status(&d, &seen);
            let freshness_only = d
                .status
                .as_ref()
                .is_some_and(|s| status::same_but_freshness(s, &desired));
            let conditions = d.status.as_ref().map(|s| s.conditions.as_slice());
            plan.object(
                Kind::ModelDeployment,
                &*d,
                d.status.as_ref(),
                &desired,
                (conditions, &desired.conditions),
                freshness_only,
            );
        }
        for a in self.stores.aliases() {
            let desired = status::alias_status(&a, &seen);
            let conditions = a.status.as_ref().map(|s| s.conditions.as_slice());
            plan.object(
                Kind::ModelGroupAlias,
                &*a,
                a.status.as_ref(),
                &desired,
                (conditions, &desired.conditions),
                false,
            );
        }
        announced.retain(|k, _| live.contains(k));
        self.announced = announced;
        for (regarding, type_, reason, action, note) in events {
            self.event(regarding, type_, reason, action, note);
        }
        self.statuses.send_replace(Arc::new(patches));
    }
}

type PendingEvent = (
    ObjectReference,
    EventType,
    &'static str,
    &'static str,
    String,
);

/// What one pass over the objects decides: status patches and Events.
struct Plan<'a> {
    announced: &'a mut HashMap<(Kind, String, String), Announced>,
    live: &'a mut std::collections::HashSet<(Kind, String, String)>,
    events: &'a mut Vec<PendingEvent>,
    patches: &'a mut Vec<StatusPatch>,
}

impl Plan<'_> {
    /// Plans one object: the Events its new conditions deserve, and a status patch unless
    /// it already has the desired status.
    fn object<K, S>(
        &mut self,
        kind: Kind,
        obj: &K,
        current: Option<&S>,
        desired: &S,
        (current_conditions, desired_conditions): (
            Option<&[modelgate_crds::Condition]>,
            &[modelgate_crds::Condition],
        ),
        freshness_only: bool,
    ) where
        K: Resource<DynamicType = ()>,
        S: PartialEq + serde::Serialize,
    {
        let key = (kind, obj.namespace().unwrap_or_default(), obj.name_any());
        self.live.insert(key.clone());
        announce(
            self.announced,
            &key,
            current_conditions,
            desired_conditions,
            obj.meta().generation.unwrap_or(0),
            obj.object_ref(&()),
            self.events,
        );
        if current == Some(desired) {
            return;
        }
        self.patches.push(StatusPatch {
            kind,
            namespace: key.1,
            name: key.2,
            status: serde_json::to_value(desired).unwrap_or_default(),
            freshness_only,
        });
    }
}

/// Decides which Events an object's new conditions deserve: `Accepted`/`Rejected` when
/// acceptance changes, `Pushed` when a generation is first served by every data plane.
/// What the object's current status already says counts as announced (an operator restart
/// does not repeat Events).
fn announce(
    announced: &mut HashMap<(Kind, String, String), Announced>,
    key: &(Kind, String, String),
    current: Option<&[modelgate_crds::Condition]>,
    desired: &[modelgate_crds::Condition],
    generation: i64,
    regarding: ObjectReference,
    out: &mut Vec<PendingEvent>,
) {
    let find = |conds: &[modelgate_crds::Condition], t: &str| {
        conds.iter().find(|c| c.r#type == t).cloned()
    };
    let entry = announced.entry(key.clone()).or_insert_with(|| {
        let current = current.unwrap_or_default();
        Announced {
            accepted: find(current, status::ACCEPTED).map(|c| (c.status, c.reason)),
            served_generation: find(current, status::READY)
                .filter(|c| c.status == ConditionStatus::True)
                .and_then(|c| c.observed_generation),
        }
    });
    if let Some(acc) = find(desired, status::ACCEPTED) {
        let now = Some((acc.status, acc.reason.clone()));
        if entry.accepted != now {
            entry.accepted = now;
            match acc.status {
                ConditionStatus::True => out.push((
                    regarding.clone(),
                    EventType::Normal,
                    "Accepted",
                    "Compile",
                    acc.message.clone(),
                )),
                _ => out.push((
                    regarding.clone(),
                    EventType::Warning,
                    "Rejected",
                    "Compile",
                    format!("{}: {}", acc.reason, acc.message),
                )),
            }
        }
    }
    if let Some(ready) = find(desired, status::READY)
        && ready.status == ConditionStatus::True
        && entry.served_generation != Some(generation)
    {
        entry.served_generation = Some(generation);
        out.push((
            regarding,
            EventType::Normal,
            "Pushed",
            "Push",
            ready.message.clone(),
        ));
    }
}

async fn publish_events(
    recorder: kube::runtime::events::Recorder,
    mut rx: mpsc::UnboundedReceiver<(ObjectReference, Event)>,
) {
    while let Some((regarding, event)) = rx.recv().await {
        if let Err(e) = recorder.publish(&event, &regarding).await {
            tracing::warn!(reason = %event.reason, "cannot publish an Event: {e}");
        }
    }
}

async fn write_snapshots(
    api: Api<Secret>,
    namespace: String,
    base: String,
    mut rx: watch::Receiver<Option<Arc<Published>>>,
) {
    let mut delay = Duration::from_millis(500);
    let mut retry = false;
    loop {
        if retry {
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(30));
        } else {
            if rx.changed().await.is_err() {
                return;
            }
            delay = Duration::from_millis(500);
        }
        let Some(p) = rx.borrow_and_update().clone() else {
            continue;
        };
        let result = match snapshot::secrets(&base, &namespace, p.revision, &p.version, &p.gz) {
            Ok(secrets) => snapshot::write(&api, FIELD_MANAGER, &secrets).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                tracing::debug!(revision = p.revision, "snapshot written");
                retry = false;
            }
            Err(e) => {
                tracing::warn!(
                    revision = p.revision,
                    "cannot write the snapshot, retrying: {e}"
                );
                retry = true;
            }
        }
    }
}
