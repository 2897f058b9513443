//! Modelgate's operator: compiles `ModelDeployment` and `ModelGroupAlias` resources into a
//! routing table for the data plane.
//!
//! - [`compile`]: the pure compiler, `(deployments, aliases, secrets, settings) -> (table,
//!   diagnostics)`; all Kubernetes I/O stays outside it.
//! - [`manifests`]: reads resource YAML from files (local mode, `check`, tests).
//! - [`local`]: `operator local`, the gateway on a laptop: manifests compiled and served in-process.
//! - [`import`]: turns a LiteLLM proxy config into Modelgate resources.
//! - [`status`]: pieces of resource status derived from the compiler's output.

#![forbid(unsafe_code)]

pub mod compile;
pub mod controller;
pub mod error;
pub mod fleet;
pub mod import;
pub mod leader;
pub mod local;
pub mod manifests;
pub mod push;
pub mod snapshot;
pub mod status;
pub mod telemetry;
