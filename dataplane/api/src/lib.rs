//! The contract between Modelgate's operator and its data plane.
//!
//! The operator compiles `ModelDeployment` and `ModelGroupAlias` resources into one
//! [`RoutingTable`] and pushes it to every data-plane pod; both sides call
//! [`RoutingTable::validate`]. This crate knows nothing of Kubernetes, HTTP or async
//! runtimes: it is plain serde data, a content hash and the rules that make a table whole.
//!
//! Credentials travel inside the table (the table is itself a secret), in one map
//! referenced by id. [`SecretValue`] serializes for real but never shows in `Debug`, and
//! [`RoutingTable::redacted`] is the view every log line and endpoint uses.

#![forbid(unsafe_code)]

mod canonical;
mod fleet;
mod health;
mod secret;
mod table;
mod validate;

pub use canonical::canonical_json;
pub use fleet::Fleet;
pub use health::{DeploymentHealth, HealthReason, HealthReport, HealthSource};
pub use secret::{REDACTED, SecretValue};
pub use table::*;
pub use validate::{Skipped, TableError};

/// The schema major version this crate reads and writes. A data plane refuses a table
/// whose `schemaVersion` is newer than this, because it cannot know what it would miss.
pub const SCHEMA_VERSION: u32 = 1;

/// Providers this data plane serves. The operator leaves deployments of any other provider
/// out of the table (`UnsupportedProvider`); a data plane older than its operator skips
/// them and reports them as skipped.
pub const SERVED_PROVIDERS: &[&str] = &[
    "mock",
    "openai",
    "openai-compatible",
    "azure",
    "anthropic",
    "gemini",
    "bedrock",
];

/// True when this data plane serves `provider`.
pub fn serves_provider(provider: &str) -> bool {
    SERVED_PROVIDERS.contains(&provider)
}

/// The wildcard group name (`provider/*`) that would serve the concrete model `name`
/// (`provider/x`), or `None` when `name` has no provider prefix or is itself a wildcard.
pub fn wildcard_pattern(name: &str) -> Option<String> {
    if name.ends_with("/*") {
        return None;
    }
    let (prefix, rest) = name.split_once('/')?;
    if prefix.is_empty() || rest.is_empty() {
        return None;
    }
    Some(format!("{prefix}/*"))
}
