//! `RouterSettings`: the router-wide settings document (LiteLLM `router_settings` and
//! `litellm_settings`). The same YAML is the operator ConfigMap's `settings.yaml`, the
//! `--settings` file of local mode, and what `import litellm` writes.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{DURATION_MESSAGE, SecretKeySelector, parse_duration};
use crate::deployment::Timeouts;

/// `apiVersion` of the settings document.
pub const SETTINGS_API_VERSION: &str = "modelgate.dev/v1alpha1";
/// `kind` of the settings document.
pub const SETTINGS_KIND: &str = "RouterSettings";

/// Router-wide settings. Every field is optional; unknown fields are an error, so a typo
/// never silently falls back to a default.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouterSettings {
    /// Always `modelgate.dev/v1alpha1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Always `RouterSettings`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// How a deployment is picked within a group's priority tier (default `simple-shuffle`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_strategy: Option<RoutingStrategy>,
    /// For `latency-based`: deployments within this fraction of the fastest are picked at
    /// random (default 0.1, i.e. 10%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_buffer: Option<f64>,
    /// Retries of a failed request, across deployments (default 2); a deployment's
    /// `spec.routing.retries` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Default timeouts of every deployment (request `600s`, stream first byte `60s`, idle `60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    /// When deployments are skipped after failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<Cooldown>,
    /// Model groups (or aliases) tried in order when every deployment of a group fails.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fallbacks: BTreeMap<String, Vec<String>>,
    /// Groups tried when a request is too long for a group's context window.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context_window_fallbacks: BTreeMap<String, Vec<String>>,
    /// Drop request parameters a provider cannot take instead of answering 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_params: Option<bool>,
    /// Largest request body accepted, in bytes (default 32 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_body_bytes: Option<u64>,
    /// The key clients must send (`Authorization: Bearer …`); no auth when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_key: Option<SecretValueSource>,
    /// A `redis://` URL (password included) for limits shared across replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<SecretValueSource>,
    /// Namespaces whose resources feed the fleet; every namespace when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Model names other namespaces may join or alias besides the namespace that owns them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_models: Vec<SharedModel>,
}

/// How a deployment is picked among the eligible ones of a group.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RoutingStrategy {
    /// Weighted random choice.
    #[default]
    SimpleShuffle,
    /// Fewest requests in flight; ties broken at random.
    LeastBusy,
    /// Lowest moving average of latency (time to first token for streams).
    LatencyBased,
    /// Cheapest by `modelInfo` costs.
    LowestCost,
    /// Lowest current rpm/tpm use relative to the deployment's limits.
    UsageBased,
}

impl RoutingStrategy {
    /// The name used in settings and in the routing table.
    pub fn as_str(self) -> &'static str {
        match self {
            RoutingStrategy::SimpleShuffle => "simple-shuffle",
            RoutingStrategy::LeastBusy => "least-busy",
            RoutingStrategy::LatencyBased => "latency-based",
            RoutingStrategy::LowestCost => "lowest-cost",
            RoutingStrategy::UsageBased => "usage-based",
        }
    }
}

/// When a failing deployment is skipped.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cooldown {
    /// Failures within a minute that put a deployment in cooldown (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_fails: Option<u32>,
    /// How long a deployment stays in cooldown (default `60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_time: Option<String>,
}

/// A value read from a Secret in the settings' own namespace.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretValueSource {
    /// The Secret and key holding the value.
    pub secret_key_ref: SecretKeySelector,
}

/// A model name that namespaces other than its owner may use.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SharedModel {
    /// The model (group or alias) name.
    pub model: String,
    /// Namespaces that may add deployments to it or define it as an alias.
    pub namespaces: Vec<String>,
}

/// A problem with a settings document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingsError {
    /// Path of the field, e.g. `cooldown.cooldownTime`.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for SettingsError {}

impl RouterSettings {
    /// Reads a settings document from YAML. An empty document is the default settings.
    pub fn from_yaml(text: &str) -> Result<Self, serde_yaml::Error> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml::from_str(text)
    }

    /// Checks what the type system cannot: header fields, durations and ranges.
    pub fn validate(&self) -> Vec<SettingsError> {
        let mut errors = Vec::new();
        let mut err = |path: &str, message: String| {
            errors.push(SettingsError {
                path: path.to_owned(),
                message,
            })
        };
        if let Some(v) = &self.api_version
            && v != SETTINGS_API_VERSION
        {
            err(
                "apiVersion",
                format!("must be {SETTINGS_API_VERSION}, not {v:?}"),
            );
        }
        if let Some(k) = &self.kind
            && k != SETTINGS_KIND
        {
            err("kind", format!("must be {SETTINGS_KIND}, not {k:?}"));
        }
        if let Some(b) = self.latency_buffer
            && !(0.0..=10.0).contains(&b)
        {
            err("latencyBuffer", "must be between 0 and 10".to_owned());
        }
        if let Some(r) = self.retries
            && r > 10
        {
            err("retries", "must be between 0 and 10".to_owned());
        }
        let mut duration = |path: &str, v: &Option<String>| {
            if let Some(v) = v
                && parse_duration(v).is_err()
            {
                err(path, format!("{v:?} {DURATION_MESSAGE}"));
            }
        };
        if let Some(t) = &self.timeouts {
            duration("timeouts.request", &t.request);
            if let Some(s) = &t.stream {
                duration("timeouts.stream.firstByte", &s.first_byte);
                duration("timeouts.stream.idle", &s.idle);
            }
        }
        if let Some(c) = &self.cooldown {
            duration("cooldown.cooldownTime", &c.cooldown_time);
        }
        for (path, source) in [
            ("masterKey", &self.master_key),
            ("redisUrl", &self.redis_url),
        ] {
            if let Some(s) = source
                && (s.secret_key_ref.name.is_empty() || s.secret_key_ref.key.is_empty())
            {
                errors.push(SettingsError {
                    path: format!("{path}.secretKeyRef"),
                    message: "needs a Secret name and key".to_owned(),
                });
            }
        }
        if let Some(0) = self.max_request_body_bytes {
            errors.push(SettingsError {
                path: "maxRequestBodyBytes".to_owned(),
                message: "must be at least 1".to_owned(),
            });
        }
        for (i, s) in self.shared_models.iter().enumerate() {
            if s.model.is_empty() || s.namespaces.is_empty() {
                errors.push(SettingsError {
                    path: format!("sharedModels[{i}]"),
                    message: "needs a model and at least one namespace".to_owned(),
                });
            }
        }
        errors
    }

    /// True when `namespace` may use `model` although another namespace owns it.
    pub fn shares(&self, model: &str, namespace: &str) -> bool {
        self.shared_models
            .iter()
            .any(|s| s.model == model && s.namespaces.iter().any(|n| n == namespace))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_document_is_default() {
        assert_eq!(
            RouterSettings::from_yaml("  \n").ok(),
            Some(RouterSettings::default())
        );
    }

    #[test]
    fn unknown_fields_are_errors() {
        let err = RouterSettings::from_yaml("routingStrategy: least-busy\nretires: 3\n");
        assert!(err.is_err());
    }

    #[test]
    fn validation_finds_bad_values() {
        let s = RouterSettings::from_yaml(
            "kind: Nope\nretries: 11\ncooldown: {cooldownTime: 5 minutes}\n",
        )
        .expect("parses");
        let paths: Vec<_> = s.validate().into_iter().map(|e| e.path).collect();
        assert_eq!(paths, ["kind", "retries", "cooldown.cooldownTime"]);
    }
}
