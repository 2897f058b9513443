//! `ModelGroupAlias`: a public name that points at model groups (LiteLLM `model_group_alias`).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Condition, MAX_FALLBACKS, MAX_MODEL_NAME, MAX_TARGETS};
use crate::deployment::DataplaneCounts;
use crate::rules::{self, FieldError};

/// A public model name that routes to one or more model groups: a weighted split across
/// targets (canaries, migrations) and fallbacks tried in order when every target fails.
#[allow(clippy::duplicated_attributes)] // printcolumn(type_ = "string") repeats by design
#[derive(CustomResource, KubeSchema, Clone, Debug, Deserialize, Serialize, PartialEq)]
#[kube(
    group = "modelgate.dev",
    version = "v1alpha1",
    kind = "ModelGroupAlias",
    doc = "A public model name that routes to model groups by weight, with fallbacks.",
    plural = "modelgroupaliases",
    namespaced,
    status = "ModelGroupAliasStatus",
    shortname = "mga",
    category = "modelgate",
    printcolumn(
        name = "Alias",
        type_ = "string",
        json_path = ".spec.alias",
        description = "Public name clients send"
    ),
    printcolumn(
        name = "Targets",
        type_ = "string",
        json_path = ".status.targetSummary",
        description = "Model groups the alias splits traffic across, with their shares"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Every data-plane pod serves this generation"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(rules::TARGET_WEIGHT_RULE).message(rules::TARGET_WEIGHT_MESSAGE))]
#[x_kube(validation = kube::core::Rule::new(rules::TARGETS_UNIQUE_RULE).message(rules::TARGETS_UNIQUE_MESSAGE))]
#[x_kube(validation = kube::core::Rule::new(rules::SELF_REFERENCE_RULE).message(rules::SELF_REFERENCE_MESSAGE))]
pub struct ModelGroupAliasSpec {
    /// The public name clients send in the `model` field.
    #[x_kube(validation = kube::core::Rule::new(rules::ALIAS_NAME_RULE).message(rules::ALIAS_NAME_MESSAGE))]
    #[schemars(length(max = MAX_MODEL_NAME))]
    pub alias: String,
    /// Model groups (or other aliases) the alias splits traffic across, by weight.
    #[schemars(length(max = MAX_TARGETS))]
    pub targets: Vec<AliasTarget>,
    /// Model groups (or aliases) tried in order when every target fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_FALLBACKS), inner(length(max = MAX_MODEL_NAME)))]
    #[x_kube(validation = kube::core::Rule::new(rules::FALLBACK_NAMES_RULE).message(rules::FALLBACK_NAMES_MESSAGE))]
    #[x_kube(validation = kube::core::Rule::new(rules::FALLBACKS_UNIQUE_RULE).message(rules::FALLBACKS_UNIQUE_MESSAGE))]
    pub fallbacks: Vec<String>,
    /// Route requests for the alias but leave it out of `/v1/models`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<bool>,
}

/// One target of an alias.
#[derive(Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
pub struct AliasTarget {
    /// Name of a model group or of another alias.
    #[x_kube(validation = kube::core::Rule::new(rules::TARGET_MODEL_RULE).message(rules::TARGET_MODEL_MESSAGE))]
    #[schemars(length(max = MAX_MODEL_NAME))]
    pub model: String,
    /// Relative share of the alias's traffic (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self >= 0").message("weight must be >= 0"))]
    #[x_kube(validation = kube::core::Rule::new("self <= 1000000").message("weight must be <= 1000000"))]
    pub weight: Option<i64>,
}

impl AliasTarget {
    /// The target's weight with its default applied.
    pub fn weight(&self) -> i64 {
        self.weight.unwrap_or(1)
    }
}

/// What the operator observed of a `ModelGroupAlias`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelGroupAliasStatus {
    /// `Accepted`, `Ready` and `Healthy` (at least one target has a healthy deployment).
    #[serde(default)]
    #[schemars(length(max = 8))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `.metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The model groups the alias resolves to, with their share and deployment counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub targets: Vec<ResolvedTarget>,
    /// The resolved targets in one line, e.g. `small-chat 90%, large-chat 10%` (the
    /// TARGETS column of `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub target_summary: Option<String>,
    /// How many data-plane pods serve this generation, out of how many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataplanes: Option<DataplaneCounts>,
    /// Content hash of the routing table that includes this generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub table_version: Option<String>,
}

/// A model group an alias resolves to.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedTarget {
    /// Name of the model group.
    #[schemars(length(max = MAX_MODEL_NAME))]
    pub model: String,
    /// Share of the alias's traffic this group receives, from 0 to 1.
    pub share: f64,
    /// Deployments in the group.
    pub deployments: i32,
    /// Deployments in the group that are healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<i32>,
}

impl ModelGroupAliasSpec {
    /// Checks every rule the CRD's CEL validations express, in Rust.
    pub fn validate(&self) -> Vec<FieldError> {
        rules::check_alias(self)
    }
}
