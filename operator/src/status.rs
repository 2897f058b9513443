//! Resource status derived from what the operator observed: the compiler's diagnostics
//! (`Accepted`), which pods serve which table (`Ready`, `dataplanes`), and the merged health
//! reports (`Healthy`, `health`, alias target counts). Pure functions: the controller
//! writes what they return, and only when it differs from what is there.

use std::collections::{BTreeMap, HashMap};

use modelgate_crds::{
    Condition, ConditionStatus, DataplaneCounts, HealthStatus, ModelDeployment,
    ModelDeploymentStatus, ModelGroupAlias, ModelGroupAliasStatus, ResolvedTarget,
};
use modelgate_dataplane_api::{Alias, RoutingTable};

use crate::compile::{Diagnostics, Kind, ObjectKey, Severity};
use crate::fleet::{Convergence, EntryKind, MergedHealth, PodKey, PodState};

/// Condition types.
pub const ACCEPTED: &str = "Accepted";
/// Condition types.
pub const READY: &str = "Ready";
/// Condition types.
pub const HEALTHY: &str = "Healthy";

/// Longest condition message written.
const MAX_MESSAGE: usize = 4096;
/// Longest `health.lastError` the CRD accepts.
const MAX_LAST_ERROR: usize = 4096;
/// Most resolved targets the CRD accepts in an alias's status (the summary names them all).
const MAX_RESOLVED_TARGETS: usize = 64;

/// `text` cut to at most `max_bytes` bytes on a character boundary, ending in `…` when cut.
pub fn cut(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    let mut end = max_bytes.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Everything status is derived from.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    /// The table served to the fleet.
    pub table: &'a RoutingTable,
    /// What the compiler said of each object.
    pub diagnostics: &'a Diagnostics,
    /// Which revision carries which generation.
    pub convergence: &'a Convergence,
    /// Every data-plane pod with what it serves.
    pub pods: &'a BTreeMap<PodKey, PodState>,
    /// Health merged across pods, by deployment id.
    pub health: &'a HashMap<String, MergedHealth>,
    /// Now, RFC 3339, for transition times.
    pub now: &'a str,
}

impl Observed<'_> {
    fn counts(&self, kind: EntryKind, id: &str, generation: i64) -> DataplaneCounts {
        let ready = self
            .pods
            .values()
            .filter(|p| self.convergence.pod_serves(p, kind, id, generation))
            .count();
        DataplaneCounts {
            ready: clamp(ready),
            total: clamp(self.pods.len()),
        }
    }

    fn table_version(&self, kind: EntryKind, id: &str, generation: i64) -> Option<String> {
        self.convergence
            .since(kind, id, generation)
            .and_then(|rev| self.convergence.version_of(rev))
            .map(str::to_owned)
    }
}

fn clamp(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A condition, keeping the previous transition time when the status did not move.
fn condition(
    previous: &[Condition],
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: String,
    generation: i64,
    now: &str,
) -> Condition {
    let last_transition_time = previous
        .iter()
        .find(|c| c.r#type == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.to_owned());
    let message = if message.len() > MAX_MESSAGE {
        cut(&message, MAX_MESSAGE)
    } else {
        message
    };
    Condition {
        r#type: type_.to_owned(),
        status,
        reason: reason.to_owned(),
        message,
        last_transition_time,
        observed_generation: Some(generation),
    }
}

/// The `Accepted` condition from the diagnostics: its status, reason and message.
fn accepted(
    diags: &Diagnostics,
    key: &ObjectKey,
    in_table: bool,
) -> (ConditionStatus, String, String) {
    if let Some(e) = diags.first_error(key) {
        return (
            ConditionStatus::False,
            e.reason.to_string(),
            e.message.clone(),
        );
    }
    if !in_table {
        return (
            ConditionStatus::False,
            "NotCompiled".to_owned(),
            "not in the routing table yet".to_owned(),
        );
    }
    let warnings: Vec<String> = diags
        .of(key)
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(|d| format!("{}: {}", d.reason, d.message))
        .collect();
    let message = if warnings.is_empty() {
        "compiled into the routing table".to_owned()
    } else {
        format!("compiled into the routing table; {}", warnings.join("; "))
    };
    (ConditionStatus::True, "Accepted".to_owned(), message)
}

/// The `Ready` condition from the data-plane counts.
fn ready(
    accepted: bool,
    counts: &DataplaneCounts,
    generation: i64,
) -> (ConditionStatus, &'static str, String) {
    if !accepted {
        return (
            ConditionStatus::False,
            "NotAccepted",
            "not in the routing table".to_owned(),
        );
    }
    if counts.total == 0 {
        return (
            ConditionStatus::False,
            "NoDataPlanes",
            "no data-plane pod is running".to_owned(),
        );
    }
    if counts.ready == counts.total {
        (
            ConditionStatus::True,
            "Served",
            format!(
                "generation {generation} is served by {}/{} data planes",
                counts.ready, counts.total
            ),
        )
    } else {
        (
            ConditionStatus::False,
            "Converging",
            format!(
                "generation {generation} is served by {}/{} data planes",
                counts.ready, counts.total
            ),
        )
    }
}

fn ms_to_rfc3339(ms: u64) -> Option<String> {
    let ts = k8s_openapi::jiff::Timestamp::from_millisecond(i64::try_from(ms).ok()?).ok()?;
    Some(ts.round(k8s_openapi::jiff::Unit::Second).ok()?.to_string())
}

/// The status a `ModelDeployment` should have.
pub fn deployment_status(obj: &ModelDeployment, seen: &Observed<'_>) -> ModelDeploymentStatus {
    let namespace = obj.metadata.namespace.clone().unwrap_or_default();
    let name = obj.metadata.name.clone().unwrap_or_default();
    let generation = obj.metadata.generation.unwrap_or(0);
    let id = format!("{namespace}/{name}");
    let key = ObjectKey::new(Kind::ModelDeployment, namespace, name);
    let previous = obj
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let entry = seen
        .table
        .deployment(&id)
        .filter(|d| d.generation == generation);
    let (acc_status, acc_reason, acc_message) = accepted(seen.diagnostics, &key, entry.is_some());
    let is_accepted = acc_status == ConditionStatus::True;
    let counts = seen.counts(EntryKind::Deployment, &id, generation);
    let (ready_status, ready_reason, ready_message) = ready(is_accepted, &counts, generation);
    let merged = seen.health.get(&id);
    let (healthy_status, healthy_reason, healthy_message) =
        match (is_accepted, merged.and_then(MergedHealth::healthy)) {
            (false, _) => (
                ConditionStatus::Unknown,
                "NotAccepted",
                "not in the routing table".to_owned(),
            ),
            (true, Some(true)) => {
                let m = merged.cloned().unwrap_or_default();
                (
                    ConditionStatus::True,
                    "Healthy",
                    format!(
                        "the upstream answers (checked by {} data plane{})",
                        m.checked,
                        if m.checked == 1 { "" } else { "s" }
                    ),
                )
            }
            (true, Some(false)) => {
                let m = merged.cloned().unwrap_or_default();
                (
                    ConditionStatus::False,
                    // The upstream refuses the key: a distinct reason (an admin must act).
                    match m.reason_code {
                        Some(modelgate_dataplane_api::HealthReason::BadCredentials) => {
                            "BadCredentials"
                        }
                        _ => "Unhealthy",
                    },
                    format!(
                        "{}/{} data planes see it failing: {}",
                        m.failing,
                        m.checked,
                        m.last_error.as_deref().unwrap_or("no answer")
                    ),
                )
            }
            (true, None) => {
                if entry.is_some_and(|d| !d.health_check.enabled) {
                    (
                        ConditionStatus::Unknown,
                        "HealthCheckDisabled",
                        "health checks are disabled and no traffic has failed".to_owned(),
                    )
                } else {
                    (
                        ConditionStatus::Unknown,
                        "NotChecked",
                        "no data plane has checked it yet".to_owned(),
                    )
                }
            }
        };
    let health = merged.filter(|_| is_accepted).map(|m| HealthStatus {
        last_check_time: m.last_check_ms.and_then(ms_to_rfc3339),
        latency_ms: m.latency_ms.and_then(|l| i64::try_from(l).ok()),
        last_error: if m.failing > 0 {
            m.last_error.as_deref().map(|e| cut(e, MAX_LAST_ERROR))
        } else {
            None
        },
    });
    ModelDeploymentStatus {
        conditions: [
            (ACCEPTED, acc_status, acc_reason.as_str(), acc_message),
            (READY, ready_status, ready_reason, ready_message),
            (HEALTHY, healthy_status, healthy_reason, healthy_message),
        ]
        .into_iter()
        .map(|(t, st, reason, message)| {
            condition(previous, t, st, reason, message, generation, seen.now)
        })
        .collect(),
        observed_generation: Some(generation),
        dataplanes: Some(counts),
        health,
        table_version: if is_accepted {
            seen.table_version(EntryKind::Deployment, &id, generation)
        } else {
            None
        },
    }
}

/// The status a `ModelGroupAlias` should have.
pub fn alias_status(obj: &ModelGroupAlias, seen: &Observed<'_>) -> ModelGroupAliasStatus {
    let namespace = obj.metadata.namespace.clone().unwrap_or_default();
    let name = obj.metadata.name.clone().unwrap_or_default();
    let generation = obj.metadata.generation.unwrap_or(0);
    let id = format!("{namespace}/{name}");
    let key = ObjectKey::new(Kind::ModelGroupAlias, namespace, name);
    let previous = obj
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let entry = seen
        .table
        .aliases
        .iter()
        .find(|a| a.id == id && a.generation == generation);
    let (acc_status, acc_reason, acc_message) = accepted(seen.diagnostics, &key, entry.is_some());
    let is_accepted = acc_status == ConditionStatus::True;
    let counts = seen.counts(EntryKind::Alias, &id, generation);
    let (ready_status, ready_reason, ready_message) = ready(is_accepted, &counts, generation);

    let mut targets = Vec::new();
    // Every deployment of every target has been checked.
    let mut all_checked = true;
    if let Some(alias) = entry.filter(|_| is_accepted) {
        for t in &alias.targets {
            let deployments = seen
                .table
                .group(&t.group)
                .map(|g| g.deployments.as_slice())
                .unwrap_or_default();
            let checked: Vec<bool> = deployments
                .iter()
                .filter_map(|d| seen.health.get(d).and_then(MergedHealth::healthy))
                .collect();
            all_checked &= !deployments.is_empty() && checked.len() == deployments.len();
            targets.push(ResolvedTarget {
                model: t.model.clone(),
                share: (t.share * 1e4).round() / 1e4,
                deployments: clamp(deployments.len()),
                healthy: (!checked.is_empty())
                    .then(|| clamp(checked.iter().filter(|h| **h).count())),
            });
        }
    }
    let any_healthy = targets.iter().any(|t| t.healthy.unwrap_or(0) > 0);
    let all_checked = all_checked && !targets.is_empty();
    let (healthy_status, healthy_reason, healthy_message) = if !is_accepted {
        (
            ConditionStatus::Unknown,
            "NotAccepted",
            "not in the routing table".to_owned(),
        )
    } else if any_healthy {
        let healthy: i32 = targets.iter().filter_map(|t| t.healthy).sum();
        let total: i32 = targets.iter().map(|t| t.deployments).sum();
        (
            ConditionStatus::True,
            "Healthy",
            format!("{healthy}/{total} deployments of its targets are healthy"),
        )
    } else if all_checked {
        (
            ConditionStatus::False,
            "NoHealthyTarget",
            "no deployment of any target is healthy".to_owned(),
        )
    } else {
        (
            ConditionStatus::Unknown,
            "NotChecked",
            "no deployment of its targets has been checked yet".to_owned(),
        )
    };
    if targets.len() > MAX_RESOLVED_TARGETS {
        // The largest shares; the summary line still names every group.
        targets.sort_by(|a, b| {
            b.share
                .total_cmp(&a.share)
                .then_with(|| a.model.cmp(&b.model))
        });
        targets.truncate(MAX_RESOLVED_TARGETS);
        targets.sort_by(|a, b| a.model.cmp(&b.model));
    }
    ModelGroupAliasStatus {
        conditions: [
            (ACCEPTED, acc_status, acc_reason.as_str(), acc_message),
            (READY, ready_status, ready_reason, ready_message),
            (HEALTHY, healthy_status, healthy_reason, healthy_message),
        ]
        .into_iter()
        .map(|(t, st, reason, message)| {
            condition(previous, t, st, reason, message, generation, seen.now)
        })
        .collect(),
        observed_generation: Some(generation),
        target_summary: entry.filter(|_| is_accepted).map(target_summary),
        targets,
        dataplanes: Some(counts),
        table_version: if is_accepted {
            seen.table_version(EntryKind::Alias, &id, generation)
        } else {
            None
        },
    }
}

/// True when two deployment statuses differ only in how fresh their health figures are
/// (check time and latency), which alone is not worth a write.
pub fn same_but_freshness(a: &ModelDeploymentStatus, b: &ModelDeploymentStatus) -> bool {
    let strip = |s: &ModelDeploymentStatus| {
        let mut s = s.clone();
        if let Some(h) = s.health.as_mut() {
            h.last_check_time = None;
            h.latency_ms = None;
        }
        s
    };
    strip(a) == strip(b)
}

/// Longest target summary written into `status.targetSummary`.
pub const MAX_TARGET_SUMMARY: usize = 1024;

/// One line naming the groups an alias resolves to, largest share first:
/// `small-chat 90%, large-chat 10%`. A target reached through a wildcard group shows the
/// concrete model (`openai/gpt-4o`). Cut to [`MAX_TARGET_SUMMARY`] bytes with `…`.
pub fn target_summary(alias: &Alias) -> String {
    let mut targets: Vec<_> = alias.targets.iter().collect();
    targets.sort_by(|a, b| {
        b.share
            .total_cmp(&a.share)
            .then_with(|| a.model.cmp(&b.model))
    });
    let mut out = String::new();
    for (i, t) in targets.iter().enumerate() {
        let part = format!(
            "{}{} {}",
            if i == 0 { "" } else { ", " },
            t.model,
            percent(t.share)
        );
        if out.len() + part.len() > MAX_TARGET_SUMMARY - '…'.len_utf8() {
            out.push('…');
            break;
        }
        out.push_str(&part);
    }
    out
}

/// A share from 0 to 1 as a percentage: whole numbers plainly, others with one decimal.
fn percent(share: f64) -> String {
    let p = share * 100.0;
    if (p - p.round()).abs() < 0.05 {
        format!("{}%", p.round())
    } else {
        format!("{p:.1}%")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelgate_dataplane_api::AliasTarget;

    fn alias(targets: &[(&str, f64)]) -> Alias {
        Alias {
            fallbacks: Vec::new(),
            generation: 1,
            hidden: false,
            id: "ns/a".to_owned(),
            name: "a".to_owned(),
            targets: targets
                .iter()
                .map(|(m, s)| AliasTarget {
                    group: (*m).to_owned(),
                    model: (*m).to_owned(),
                    share: *s,
                })
                .collect(),
        }
    }

    #[test]
    fn largest_share_first() {
        let a = alias(&[("large-chat", 0.1), ("small-chat", 0.9)]);
        assert_eq!(target_summary(&a), "small-chat 90%, large-chat 10%");
        let thirds = alias(&[("b", 1.0 / 3.0), ("a", 1.0 / 3.0), ("c", 1.0 / 3.0)]);
        assert_eq!(target_summary(&thirds), "a 33.3%, b 33.3%, c 33.3%");
        assert_eq!(
            target_summary(&alias(&[("x", 0.0), ("y", 1.0)])),
            "y 100%, x 0%"
        );
    }

    #[test]
    fn long_summaries_are_cut() {
        let name = "m".repeat(200);
        let targets: Vec<(String, f64)> = (0..16)
            .map(|i| (format!("{name}{i}"), 1.0 / 16.0))
            .collect();
        let refs: Vec<(&str, f64)> = targets.iter().map(|(n, s)| (n.as_str(), *s)).collect();
        let s = target_summary(&alias(&refs));
        assert!(
            s.len() <= MAX_TARGET_SUMMARY && s.ends_with('…'),
            "{}",
            s.len()
        );
    }
}
