//! The fleet size the operator tells each data-plane pod (`PUT /v1/fleet` on the admin
//! port). It travels outside the routing table: scaling the fleet never changes the table's
//! version or any status.

use serde::{Deserialize, Serialize};

/// How many data planes share the fleet's limits, as the operator counts them.
///
/// Without Redis each pod enforces its share of a deployment's `rpm` and `tpm` (and of a
/// fleet-wide `maxConcurrentRequests`): the limit divided by `gateways`, never below 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fleet {
    /// Ready gateway pods (the chart's data-plane Deployment).
    pub gateways: u32,
    /// Ready sidecars (data planes inside apps' pods); informational: a sidecar's share is
    /// also the limit divided by `gateways` unless it is started with a fixed divisor.
    #[serde(default)]
    pub sidecars: u32,
}

impl Default for Fleet {
    /// One pod: the whole limit (local mode, or before the operator's first word).
    fn default() -> Self {
        Self {
            gateways: 1,
            sidecars: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_camel_case_and_defaults_sidecars() {
        let f: Fleet = serde_json::from_str(r#"{"gateways": 3}"#).expect("fleet");
        assert_eq!(
            f,
            Fleet {
                gateways: 3,
                sidecars: 0
            }
        );
        assert!(serde_json::from_str::<Fleet>(r#"{"gateways": -1}"#).is_err());
        assert!(serde_json::from_str::<Fleet>(r#"{}"#).is_err());
    }
}
