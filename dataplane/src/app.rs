//! The data plane's shared state: the router in service, the live state of deployments,
//! the upstream client, and the gate every new table passes.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::{ArcSwap, ArcSwapOption};
use modelgate_dataplane_api::{DeploymentHealth, HealthReport, RoutingTable, Skipped};

use crate::client::HttpClient;
use crate::router::{FastMap, Router, StateRegistry};
use crate::table::{Accepted, Refused, TableGate};

/// Everything the servers share.
#[derive(Debug)]
pub struct App {
    router: ArcSwapOption<Router>,
    /// Deployment id -> model group, for metric labels.
    models: ArcSwap<FastMap<String, Arc<str>>>,
    registry: StateRegistry,
    gate: Mutex<TableGate>,
    draining: AtomicBool,
    /// The upstream client.
    pub client: HttpClient,
}

impl App {
    /// An app serving no table yet.
    pub fn new(client: HttpClient) -> Arc<App> {
        Arc::new(App {
            router: ArcSwapOption::empty(),
            models: ArcSwap::default(),
            registry: StateRegistry::default(),
            gate: Mutex::new(TableGate::new()),
            draining: AtomicBool::new(false),
            client,
        })
    }

    /// The rate limiter: fleet size (`PUT /v1/fleet`), window, Redis.
    pub fn limiter(&self) -> &Arc<crate::limits::Limiter> {
        self.registry.limiter()
    }

    /// The router in service, if a table is loaded.
    pub fn router(&self) -> Option<Arc<Router>> {
        self.router.load_full()
    }

    /// Offers a table given as JSON bytes; on acceptance builds its router and swaps it in
    /// (requests in flight finish on the old one).
    pub fn offer_json(&self, body: &[u8]) -> Result<Accepted, Refused> {
        let mut gate = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        let (accepted, table) = gate.offer_json(body)?;
        Ok(self.install(table, accepted, &mut gate))
    }

    /// Offers a decoded table (local mode).
    pub fn offer(&self, table: RoutingTable) -> Result<Accepted, Refused> {
        let mut gate = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        let accepted = gate.offer(&table)?;
        Ok(self.install(table, accepted, &mut gate))
    }

    /// Builds and swaps in the router of an accepted table. Taking the gate proves the
    /// caller holds its lock, so two offers never interleave their swaps.
    fn install(
        &self,
        table: RoutingTable,
        mut accepted: Accepted,
        _locked: &mut TableGate,
    ) -> Accepted {
        if accepted.changed || self.router.load().is_none() {
            let router = Router::build(Arc::new(table), &self.registry);
            accepted.skipped = router.skipped.clone();
            for Skipped { id, reason } in &router.skipped {
                tracing::warn!(deployment = %id, "skipped: {reason}");
            }
            tracing::info!(
                revision = accepted.revision,
                version = %accepted.version,
                deployments = router.targets.len(),
                groups = router.groups.len(),
                aliases = router.aliases.len(),
                "routing table installed"
            );
            let models: FastMap<String, Arc<str>> = router
                .targets
                .iter()
                .map(|t| (t.spec.id.clone(), Arc::from(t.spec.model.as_str())))
                .collect();
            self.models.store(Arc::new(models));
            self.router.store(Some(Arc::new(router)));
        }
        accepted
    }

    /// The model group of a deployment of the table served.
    pub fn model_of(&self, deployment: &str) -> Option<Arc<str>> {
        self.with_model_of(deployment, |model| model.cloned())
    }

    /// `f` of the model group `deployment` serves, if any, looked up in place (no shared
    /// count touched unless `f` takes one).
    pub fn with_model_of<T>(&self, deployment: &str, f: impl FnOnce(Option<&Arc<str>>) -> T) -> T {
        f(self.models.load().get(deployment))
    }

    /// The revision and version served.
    pub fn served(&self) -> Option<(u64, String)> {
        let gate = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        gate.served().map(|(r, v)| (r, v.to_owned()))
    }

    /// Starts draining: readiness turns 503.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// True while draining.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// The health report of every deployment served.
    pub fn health_report(&self) -> HealthReport {
        let served = self.served();
        let Some(router) = self.router() else {
            return HealthReport::default();
        };
        let now = Instant::now();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut deployments: Vec<DeploymentHealth> = router
            .targets
            .iter()
            .map(|t| {
                let h = t.state.health();
                DeploymentHealth {
                    consecutive_failures: t.state.consecutive_failures(),
                    cooldown_until_ms: t
                        .state
                        .cooling_until(now)
                        .map(|until| wall + until.duration_since(now).as_millis() as u64),
                    healthy: h.healthy,
                    id: t.spec.id.clone(),
                    last_check_ms: h.last_check_ms,
                    latency_ms: h.latency_ms,
                    reason: h.reason,
                    reason_code: h.code,
                    source: h.source,
                    table_version: h.table_version.map(|v| v.to_string()),
                }
            })
            .collect();
        deployments.sort_by(|a, b| a.id.cmp(&b.id));
        HealthReport {
            deployments,
            revision: served.as_ref().map(|(r, _)| *r),
            version: served.map(|(_, v)| v),
        }
    }
}
