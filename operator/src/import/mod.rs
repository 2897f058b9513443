//! Importers from other gateways' configuration.
//!
//! - [`litellm`]: `operator import litellm FILE` turns a LiteLLM proxy config
//!   (`proxy_server_config.yaml`) into `ModelDeployment`s, `ModelGroupAlias`es, the Secrets
//!   for literal keys found in the file, and a `RouterSettings` document.

pub mod litellm;
