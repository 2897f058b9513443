//! The health report a data plane serves on its admin port (`GET /v1/health-report`) and
//! the operator merges into each resource's status.
//!
//! Fields are added within a schema as optional ones (`#[serde(default)]`), and the reason
//! code has a catch-all, so an operator reads the reports of older and newer data planes.

use serde::{Deserialize, Serialize};

/// What one data-plane pod knows of every deployment it serves.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    /// Deployments, sorted by id.
    pub deployments: Vec<DeploymentHealth>,
    /// Revision of the table served; `None` before the first table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// Version of the table served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The health of one deployment as one pod sees it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentHealth {
    /// Consecutive failed requests and checks.
    pub consecutive_failures: u32,
    /// End of the current cooldown (milliseconds since the Unix epoch), if cooling down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_until_ms: Option<u64>,
    /// `None` until first checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// Deployment id.
    pub id: String,
    /// When it was last checked (milliseconds since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_ms: Option<u64>,
    /// Latency of the last check, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Why it is unhealthy (never a credential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The kind of failure `reason` describes, for machines (absent from older data
    /// planes, and while healthy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<HealthReason>,
    /// Where the latest verdict came from: an active check or real traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<HealthSource>,
    /// Version of the routing table the latest verdict was reached under (the
    /// deployment's spec and credentials as that table had them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_version: Option<String>,
}

/// Why a deployment is unhealthy, in a word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HealthReason {
    /// The upstream refused the deployment's credentials (401 or 403).
    BadCredentials,
    /// No connection to the upstream.
    Unreachable,
    /// No answer within the check's timeout.
    Timeout,
    /// The upstream answered with an error status.
    UpstreamError,
    /// The deployment cannot be probed (no probe fits it).
    NotProbed,
    /// A reason this build does not know (a newer data plane's).
    #[serde(other)]
    Other,
}

impl HealthReason {
    /// The reason as a condition reason word (`BadCredentials`, …).
    pub fn as_condition_reason(self) -> &'static str {
        match self {
            HealthReason::BadCredentials => "BadCredentials",
            HealthReason::Unreachable => "Unreachable",
            HealthReason::Timeout => "Timeout",
            HealthReason::UpstreamError => "UpstreamError",
            HealthReason::NotProbed => "NotProbed",
            HealthReason::Other => "CheckFailed",
        }
    }
}

/// What produced a deployment's latest health verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HealthSource {
    /// An active health check.
    Check,
    /// A request from a client (a passive check).
    Traffic,
    /// Another pod's active check, shared through Redis (the deployment is probed once
    /// per interval across the fleet).
    Fleet,
    /// A source this build does not know.
    #[serde(other)]
    Other,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_reports_read_and_new_fields_round_trip() {
        // A report from a data plane before reason codes and table versions.
        let old = r#"{"deployments":[{"consecutiveFailures":2,"id":"a/b","healthy":false,"reason":"500"}],"revision":3}"#;
        let r: HealthReport = serde_json::from_str(old).expect("old report");
        assert_eq!(r.deployments[0].reason_code, None);
        assert_eq!(r.deployments[0].table_version, None);
        let new = DeploymentHealth {
            id: "a/b".into(),
            healthy: Some(false),
            reason_code: Some(HealthReason::BadCredentials),
            source: Some(HealthSource::Traffic),
            table_version: Some("sha256:00".into()),
            ..DeploymentHealth::default()
        };
        let json = serde_json::to_string(&new).expect("json");
        assert!(json.contains(r#""reasonCode":"badCredentials""#), "{json}");
        assert!(json.contains(r#""source":"traffic""#), "{json}");
        assert!(json.contains(r#""tableVersion":"sha256:00""#), "{json}");
        assert_eq!(
            serde_json::from_str::<DeploymentHealth>(&json).expect("back"),
            new
        );
        // A newer data plane's reason and source are read, not refused.
        let newer =
            r#"{"consecutiveFailures":0,"id":"x","reasonCode":"quotaExhausted","source":"gossip"}"#;
        let d: DeploymentHealth = serde_json::from_str(newer).expect("newer");
        assert_eq!(d.reason_code, Some(HealthReason::Other));
        assert_eq!(d.source, Some(HealthSource::Other));
    }
}
