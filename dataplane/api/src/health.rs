//! The health report a data plane serves on its admin port (`GET /v1/health-report`) and
//! the operator merges into each resource's status.

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
}
