//! The runtime router: a routing table compiled into lookups by model name, with the live
//! state of every deployment (requests in flight, failures, cooldown, latency).
//!
//! A new [`Router`] is built for every accepted table and swapped in whole; requests in
//! flight keep the one they started with. Live state is keyed by deployment id in a
//! [`StateRegistry`] that outlives routers, so a table swap forgets no cooldown.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use modelgate_dataplane_api::{
    Deployment, HealthReason, HealthSource, RoutingStrategy, RoutingTable, SecretValue, Settings,
    Skipped, serves_provider, wildcard_pattern,
};

use crate::limits::{Counters, Limiter};
use crate::providers::Provider;

/// A map looked up on the request path: foldhash, not SipHash (keys come from the
/// routing table or are matched against it, so flooding is not a concern).
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Live state of one deployment, kept across table swaps.
#[derive(Debug, Default)]
pub struct DeploymentState {
    in_flight: AtomicU64,
    /// Moving average of latency (time to first byte for streams), microseconds; 0 = none.
    latency_us: AtomicU64,
    failures: Mutex<Failures>,
    health: Mutex<Health>,
    /// The latest verdict came from real traffic refusing the credentials: the next
    /// success clears it (one atomic load on the success path otherwise).
    refused_on_traffic: AtomicBool,
    /// Rate-limit counters (requests and tokens of the current window).
    pub limits: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Failures {
    recent: VecDeque<Instant>,
    cooldown_until: Option<Instant>,
    consecutive: u32,
}

/// The latest health of a deployment (serialized as pods share it through Redis; the
/// reason is already redacted).
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Health {
    /// `None` until first checked.
    pub healthy: Option<bool>,
    /// Why it is unhealthy.
    pub reason: Option<String>,
    /// When it was last checked (milliseconds since the Unix epoch).
    pub last_check_ms: Option<u64>,
    /// Latency of the last check.
    pub latency_ms: Option<u64>,
    /// The kind of failure `reason` describes.
    pub code: Option<HealthReason>,
    /// What reached the verdict: an active check or real traffic.
    pub source: Option<HealthSource>,
    /// Version of the table the verdict was reached under.
    pub table_version: Option<Arc<str>>,
}

/// Decrements the in-flight count when dropped, so the count never goes negative and
/// never leaks when a request is cancelled.
#[derive(Debug)]
pub struct InFlight(Arc<DeploymentState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl DeploymentState {
    /// Counts a request in flight until the guard drops.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Records a success: resets consecutive failures and feeds the latency average.
    pub fn record_success(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let old = self.latency_us.load(Ordering::Relaxed);
        let new = if old == 0 { us } else { (old * 4 + us) / 5 };
        self.latency_us.store(new, Ordering::Relaxed);
        if let Ok(mut f) = self.failures.lock() {
            f.consecutive = 0;
        }
        if self.refused_on_traffic.load(Ordering::Relaxed)
            && self.refused_on_traffic.swap(false, Ordering::Relaxed)
            && let Ok(mut h) = self.health.lock()
        {
            // The credentials work again (rotated upstream, or a transient refusal).
            let table_version = h.table_version.take();
            *h = Health {
                healthy: Some(true),
                last_check_ms: Some(wall_ms()),
                source: Some(HealthSource::Traffic),
                table_version,
                ..Health::default()
            };
        }
    }

    /// A passive check: an upstream answered real traffic with `status`, an error the
    /// client gets as it is (not retried, no cooldown). A 401 or 403 means the upstream
    /// refuses the deployment's credentials: the deployment is marked unhealthy with
    /// [`HealthReason::BadCredentials`] until a request or an active check succeeds.
    /// Other statuses say nothing about the deployment (a client's bad request).
    pub fn observe_refusal(&self, status: http::StatusCode, table_version: &str) {
        if status != http::StatusCode::UNAUTHORIZED && status != http::StatusCode::FORBIDDEN {
            return;
        }
        if let Ok(mut h) = self.health.lock() {
            *h = Health {
                healthy: Some(false),
                reason: Some(format!(
                    "bad credentials: the upstream answered {status} to a client's request"
                )),
                last_check_ms: Some(wall_ms()),
                latency_ms: None,
                code: Some(HealthReason::BadCredentials),
                source: Some(HealthSource::Traffic),
                table_version: Some(Arc::from(table_version)),
            };
            self.refused_on_traffic.store(true, Ordering::Relaxed);
        }
    }

    /// Records a failure; after `allowed_fails` failures within a minute the deployment
    /// cools down for `cooldown`. Returns true when this failure started a cooldown.
    pub fn record_failure(&self, now: Instant, allowed_fails: u32, cooldown: Duration) -> bool {
        let Ok(mut f) = self.failures.lock() else {
            return false;
        };
        f.consecutive = f.consecutive.saturating_add(1);
        let window = Duration::from_secs(60);
        while f
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            f.recent.pop_front();
        }
        f.recent.push_back(now);
        if f.recent.len() as u64 >= u64::from(allowed_fails.max(1)) {
            f.recent.clear();
            f.cooldown_until = Some(now + cooldown);
            return true;
        }
        false
    }

    /// When the deployment leaves cooldown, if it is in one at `now`.
    pub fn cooling_until(&self, now: Instant) -> Option<Instant> {
        let f = self.failures.lock().ok()?;
        f.cooldown_until.filter(|t| *t > now)
    }

    /// Consecutive failures.
    pub fn consecutive_failures(&self) -> u32 {
        self.failures.lock().map(|f| f.consecutive).unwrap_or(0)
    }

    /// Moving average latency.
    pub fn latency(&self) -> Option<Duration> {
        match self.latency_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// The latest health.
    pub fn health(&self) -> Health {
        self.health.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Sets the latest health (an active check's verdict replaces traffic's).
    pub fn set_health(&self, health: Health) {
        if let Ok(mut h) = self.health.lock() {
            *h = health;
            self.refused_on_traffic.store(false, Ordering::Relaxed);
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Live state by deployment id, and the rate limiter; outlives routers.
#[derive(Debug, Default)]
pub struct StateRegistry {
    states: Mutex<HashMap<String, Arc<DeploymentState>>>,
    limiter: Arc<Limiter>,
}

impl StateRegistry {
    /// The rate limiter every router of this registry uses.
    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.limiter
    }

    fn get(&self, id: &str) -> Arc<DeploymentState> {
        match self.states.lock() {
            Ok(mut m) => Arc::clone(m.entry(id.to_owned()).or_default()),
            Err(_) => Arc::default(),
        }
    }

    fn retain(&self, ids: &[&str]) {
        if let Ok(mut m) = self.states.lock() {
            m.retain(|k, _| ids.contains(&k.as_str()));
        }
    }
}

/// One deployment ready to serve.
#[derive(Debug)]
pub struct Target {
    /// The table entry.
    pub spec: Deployment,
    /// How to talk to it.
    pub provider: Provider,
    /// Its API key, if it has one.
    pub api_key: Option<SecretValue>,
    /// Live state.
    pub state: Arc<DeploymentState>,
    /// Its id as the `x-modelgate-deployment` header value, made once.
    pub id_header: http::HeaderValue,
}

/// A model group.
#[derive(Debug)]
pub struct GroupRt {
    /// Name.
    pub name: String,
    /// Indices into [`Router::targets`], sorted by `order`.
    pub members: Vec<usize>,
}

/// An alias.
#[derive(Debug)]
pub struct AliasRt {
    /// Name.
    pub name: String,
    /// `(group index, model requested from it, share)`.
    pub targets: Vec<(usize, String, f64)>,
    /// Fallback names.
    pub fallbacks: Vec<String>,
    /// Not listed.
    pub hidden: bool,
}

/// What a model name routes to.
#[derive(Debug, Clone, Copy)]
pub enum Route<'a> {
    /// A group (index), with the model name to request from it.
    Group(usize, &'a str),
    /// An alias.
    Alias(&'a AliasRt),
}

/// A routing table compiled for serving.
#[derive(Debug)]
pub struct Router {
    /// The table it was built from, less its deployments, which moved into `targets`
    /// (credentials included: never log or serve it whole).
    pub table: Arc<RoutingTable>,
    /// Every servable deployment.
    pub targets: Vec<Target>,
    /// Groups by index.
    pub groups: Vec<GroupRt>,
    group_index: FastMap<String, usize>,
    /// Aliases by name.
    pub aliases: FastMap<String, AliasRt>,
    /// Deployments left out, with why.
    pub skipped: Vec<Skipped>,
    /// The master key clients must send.
    pub master_key: Option<SecretValue>,
    /// The rate limiter (shared by every router of the registry).
    pub limiter: Arc<Limiter>,
}

impl Router {
    /// Builds a router from a validated table, taking live state from `registry`. The
    /// deployments move out of the table into the targets (cloned only when the table is
    /// shared), so a 10,000-deployment table is not held twice.
    pub fn build(table: Arc<RoutingTable>, registry: &StateRegistry) -> Router {
        let mut table = Arc::try_unwrap(table).unwrap_or_else(|shared| (*shared).clone());
        let mut skipped = table.skipped();
        let deployments = std::mem::take(&mut table.deployments);
        let mut targets = Vec::with_capacity(deployments.len());
        for d in deployments {
            if !serves_provider(&d.provider) {
                continue;
            }
            let Some(provider) = Provider::for_deployment(&d, &table) else {
                skipped.push(Skipped {
                    id: d.id.clone(),
                    reason: format!(
                        "provider {:?} is not served by this data plane, or the deployment lacks what it needs (apiBase, apiVersion, region)",
                        d.provider
                    ),
                });
                continue;
            };
            let api_key = d
                .credentials
                .as_ref()
                .and_then(|c| Some((c, c.api_key.as_deref()?)))
                .and_then(|(c, key)| table.credential_value(c, key))
                .cloned();
            let state = registry.get(&d.id);
            let id_header = http::HeaderValue::from_str(&d.id)
                .unwrap_or_else(|_| http::HeaderValue::from_static("invalid-id"));
            targets.push(Target {
                spec: d,
                provider,
                api_key,
                state,
                id_header,
            });
        }
        let by_id: HashMap<&str, usize> = targets
            .iter()
            .enumerate()
            .map(|(i, t)| (t.spec.id.as_str(), i))
            .collect();
        let mut groups = Vec::with_capacity(table.groups.len());
        let mut group_index =
            FastMap::with_capacity_and_hasher(table.groups.len(), Default::default());
        for g in &table.groups {
            let mut members: Vec<usize> = g
                .deployments
                .iter()
                .filter_map(|id| by_id.get(id.as_str()).copied())
                .collect();
            if members.is_empty() {
                continue;
            }
            members.sort_by_key(|i| (targets[*i].spec.order, *i));
            group_index.insert(g.name.clone(), groups.len());
            groups.push(GroupRt {
                name: g.name.clone(),
                members,
            });
        }
        let mut aliases =
            FastMap::with_capacity_and_hasher(table.aliases.len(), Default::default());
        for a in &table.aliases {
            let targets: Vec<(usize, String, f64)> = a
                .targets
                .iter()
                .filter_map(|t| Some((*group_index.get(&t.group)?, t.model.clone(), t.share)))
                .collect();
            if targets.is_empty() {
                continue;
            }
            aliases.insert(
                a.name.clone(),
                AliasRt {
                    name: a.name.clone(),
                    targets,
                    fallbacks: a.fallbacks.clone(),
                    hidden: a.hidden,
                },
            );
        }
        let master_key = table
            .settings
            .master_key
            .as_ref()
            .and_then(|r| table.secret(r))
            .cloned();
        let ids: Vec<&str> = targets.iter().map(|t| t.spec.id.as_str()).collect();
        registry.retain(&ids);
        let limiter = Arc::clone(&registry.limiter);
        limiter.configure_redis(
            table
                .settings
                .redis_url
                .as_ref()
                .and_then(|r| table.secret(r))
                .map(|v| v.expose()),
        );
        Router {
            table: Arc::new(table),
            targets,
            groups,
            group_index,
            aliases,
            skipped,
            master_key,
            limiter,
        }
    }

    /// Router-wide settings.
    pub fn settings(&self) -> &Settings {
        &self.table.settings
    }

    /// What `model` routes to: an alias, a group, or a wildcard group.
    pub fn route<'a>(&'a self, model: &'a str) -> Option<Route<'a>> {
        if let Some(a) = self.aliases.get(model) {
            return Some(Route::Alias(a));
        }
        if let Some(g) = self.group_index.get(model) {
            return Some(Route::Group(*g, model));
        }
        let pattern = wildcard_pattern(model)?;
        self.group_index
            .get(&pattern)
            .map(|g| Route::Group(*g, model))
    }

    /// The index of a group by name.
    pub fn group_by_name(&self, name: &str) -> Option<usize> {
        self.group_index.get(name).copied()
    }

    /// Picks the next deployment of group `g` to try: the lowest `order` tier that has an
    /// eligible deployment (not in cooldown, under its concurrency limit and its rpm/tpm
    /// limits, not excluded), then the strategy within the tier. When every deployment is
    /// excluded or busy, those tried already are allowed again (a retry may hit the same
    /// deployment); a deployment at a limit never is.
    pub fn pick(&self, g: usize, exclude: &[usize], now: Instant) -> Option<usize> {
        let group = self.groups.get(g)?;
        let eligible = |i: &usize, allow_tried: bool| {
            let t = &self.targets[*i];
            (allow_tried || !exclude.contains(i))
                && t.state.cooling_until(now).is_none()
                && self
                    .limiter
                    .max_in_flight(&t.spec.limits)
                    .is_none_or(|max| t.state.in_flight() < max)
                && self.limiter.admits(&t.spec.limits, &t.state.limits).is_ok()
        };
        for allow_tried in [false, true] {
            let mut start = 0;
            while start < group.members.len() {
                let order = self.targets[group.members[start]].spec.order;
                let len = group.members[start..]
                    .iter()
                    .take_while(|i| self.targets[**i].spec.order == order)
                    .count();
                // Inline: a tier rarely has many deployments (no allocation).
                let tier: smallvec::SmallVec<[usize; 8]> = group.members[start..start + len]
                    .iter()
                    .copied()
                    .filter(|i| eligible(i, allow_tried))
                    .collect();
                if !tier.is_empty() {
                    return Some(self.choose(&tier));
                }
                start += len;
            }
        }
        None
    }

    fn choose(&self, tier: &[usize]) -> usize {
        if tier.len() == 1 {
            return tier[0];
        }
        match self.settings().routing_strategy {
            RoutingStrategy::SimpleShuffle => self.weighted(tier),
            RoutingStrategy::UsageBased => {
                // Lowest use of rpm/tpm relative to the limits; ties (deployments without
                // limits, or equally used) by weight.
                let ratio = |i: &usize| {
                    let t = &self.targets[*i];
                    self.limiter.usage_ratio(&t.spec.limits, &t.state.limits)
                };
                let ratios: Vec<f64> = tier.iter().map(ratio).collect();
                let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
                let lowest: Vec<usize> = tier
                    .iter()
                    .zip(&ratios)
                    .filter(|(_, r)| **r <= min + 1e-9)
                    .map(|(i, _)| *i)
                    .collect();
                self.weighted(&lowest)
            }
            RoutingStrategy::LeastBusy => {
                // This pod's requests in flight, plus the other pods' as Redis last said
                // (none without Redis); ties broken at random.
                let busy = |i: &usize| {
                    let t = &self.targets[*i];
                    t.state.in_flight() + self.limiter.others_in_flight(&t.state.limits)
                };
                let counts: Vec<u64> = tier.iter().map(busy).collect();
                let min = counts.iter().copied().min().unwrap_or(0);
                let least: Vec<usize> = tier
                    .iter()
                    .zip(&counts)
                    .filter(|(_, c)| **c == min)
                    .map(|(i, _)| *i)
                    .collect();
                least[fastrand::usize(..least.len())]
            }
            RoutingStrategy::LatencyBased => {
                let buffer = self.settings().latency_buffer;
                // Deployments never measured go first, so that every one gets measured.
                let unmeasured: Vec<usize> = tier
                    .iter()
                    .copied()
                    .filter(|i| self.targets[*i].state.latency().is_none())
                    .collect();
                if !unmeasured.is_empty() {
                    return unmeasured[fastrand::usize(..unmeasured.len())];
                }
                let best = tier
                    .iter()
                    .filter_map(|i| self.targets[*i].state.latency())
                    .min()
                    .unwrap_or_default();
                let limit = best.mul_f64(1.0 + buffer);
                let fast: Vec<usize> = tier
                    .iter()
                    .copied()
                    .filter(|i| self.targets[*i].state.latency().is_some_and(|l| l <= limit))
                    .collect();
                fast[fastrand::usize(..fast.len())]
            }
            RoutingStrategy::LowestCost => {
                let cost = |i: &usize| {
                    let info = &self.targets[*i].spec.model_info;
                    info.input_cost_per_token.unwrap_or(0.0)
                        + info.output_cost_per_token.unwrap_or(0.0)
                };
                let min = tier.iter().map(cost).fold(f64::INFINITY, f64::min);
                let cheapest: Vec<usize> =
                    tier.iter().copied().filter(|i| cost(i) <= min).collect();
                cheapest[fastrand::usize(..cheapest.len())]
            }
        }
    }

    /// Weighted random choice; weight 0 is chosen only when every weight is 0.
    fn weighted(&self, tier: &[usize]) -> usize {
        let total: u64 = tier
            .iter()
            .map(|i| u64::from(self.targets[*i].spec.weight))
            .sum();
        if total == 0 {
            return tier[fastrand::usize(..tier.len())];
        }
        let mut roll = fastrand::u64(..total);
        for i in tier {
            let w = u64::from(self.targets[*i].spec.weight);
            if roll < w {
                return *i;
            }
            roll -= w;
        }
        tier[tier.len() - 1]
    }

    /// The earliest time any deployment of group `g` leaves cooldown, when all of them are
    /// cooling down at `now`.
    pub fn all_cooling_until(&self, g: usize, now: Instant) -> Option<Instant> {
        let group = self.groups.get(g)?;
        let mut earliest: Option<Instant> = None;
        for i in &group.members {
            let until = self.targets[*i].state.cooling_until(now)?;
            earliest = Some(earliest.map_or(until, |e| e.min(until)));
        }
        earliest
    }
}

impl Router {
    /// When every deployment of group `g` is at a rate limit or cooling down at `now`
    /// (and at least one is at a limit): how long until the first may be tried again.
    pub fn all_limited_until(&self, g: usize, now: Instant) -> Option<Duration> {
        let group = self.groups.get(g)?;
        let mut earliest: Option<Duration> = None;
        let mut limited = false;
        for i in &group.members {
            let t = &self.targets[*i];
            let wait = match self.limiter.limited_until(&t.spec.limits, &t.state.limits) {
                Some(w) => {
                    limited = true;
                    w
                }
                None => t.state.cooling_until(now)?.saturating_duration_since(now),
            };
            earliest = Some(earliest.map_or(wait, |e| e.min(wait)));
        }
        earliest.filter(|_| limited)
    }
}

/// Picks an alias target by share; returns its position in `alias.targets`.
pub fn pick_alias_target(alias: &AliasRt) -> usize {
    let total: f64 = alias.targets.iter().map(|t| t.2).sum();
    if total <= 0.0 {
        return 0;
    }
    let mut roll = fastrand::f64() * total;
    for (i, t) in alias.targets.iter().enumerate() {
        if roll < t.2 {
            return i;
        }
        roll -= t.2;
    }
    alias.targets.len() - 1
}
