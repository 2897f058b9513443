//! `import litellm`: turns a LiteLLM proxy config (`proxy_server_config.yaml`) into
//! Modelgate resources.
//!
//! [`convert`] is pure: YAML text in, resources and warnings out. [`run`] is the CLI around
//! it: it reads the file, writes the resources to stdout (or `--output-dir`), and prints the
//! warnings and the `kubectl create secret` command the user still has to run on stderr.
//!
//! Two promises hold for every input:
//! - nothing is dropped silently: every key the importer does not translate, and every
//!   `model_list` entry it cannot turn into a valid `ModelDeployment`, is a warning naming
//!   the key and the entry;
//! - no secret lands in a resource: `os.environ/NAME` becomes a reference to key `NAME` of
//!   one Secret (`--env-secret`) created from the user's environment, and a literal key is
//!   moved into a Secret manifest of its own (and never printed).
//!
//! | LiteLLM | Modelgate |
//! | --- | --- |
//! | `model_list[]` (`model_name`) | one `ModelDeployment` each (`spec.model`); a shared name is one group |
//! | `litellm_params.model` prefix | `upstream.provider` + `upstream.model`; hosted OpenAI-compatible services get their public `apiBase` |
//! | `api_key`, `aws_*_key*` | `credentials` → env Secret key (`os.environ/NAME`) or the literal Secret |
//! | `rpm`, `tpm`, `max_parallel_requests` | `limits` |
//! | `timeout`, `stream_timeout` (seconds) | `timeouts.request`, `timeouts.stream.{firstByte,idle}` |
//! | `weight`, `order`, `num_retries`/`max_retries` | `routing` |
//! | `model_info` | `modelInfo` (`max_input_tokens` → `contextWindow`, `supports_reasoning` → `reasoning`) |
//! | `router_settings.model_group_alias` | one `ModelGroupAlias` each |
//! | `router_settings`, `litellm_settings` | `RouterSettings` (router_settings wins) |
//! | `general_settings.master_key` | `RouterSettings.masterKey` |
//! | `general_settings.background_health_checks`, `health_check_interval` | every deployment's `healthCheck` |
//!
//! The mapping itself lives in the submodules: `providers` (LiteLLM provider prefixes),
//! `deployments` (`model_list`), `settings` (`router_settings`, `litellm_settings`,
//! `general_settings`, `model_group_alias`), `secrets` (where credentials go) and
//! `values` (reading LiteLLM's loosely typed YAML).

mod deployments;
mod names;
mod providers;
mod secrets;
mod settings;
mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Secret;
use modelgate_crds::{ModelDeployment, ModelGroupAlias, RouterSettings};
use serde_yaml::Value;

use self::secrets::SecretSink;
use self::values::type_name;

/// Default name of the Secret holding every `os.environ/NAME` the config refers to.
pub const DEFAULT_ENV_SECRET: &str = "litellm-env";
/// Name of the Secret the literal keys found in the config are moved into.
pub const LITERAL_SECRET: &str = "litellm-imported-keys";
/// File written into `--output-dir` with the Secrets, deployments and aliases.
pub const RESOURCES_FILE: &str = "resources.yaml";
/// File written into `--output-dir` with the `RouterSettings` document.
pub const SETTINGS_FILE: &str = "settings.yaml";

/// Flags of `operator import litellm`.
#[derive(Debug, Clone, clap::Args)]
pub struct LitellmArgs {
    /// The LiteLLM proxy config to convert (proxy_server_config.yaml).
    pub file: PathBuf,
    /// Namespace of every resource written.
    #[arg(short, long, default_value = "default")]
    pub namespace: String,
    /// Secret that holds the environment variables the config reads with `os.environ/NAME`
    /// (one key per variable); the command that creates it is printed on stderr.
    #[arg(long, default_value = DEFAULT_ENV_SECRET)]
    pub env_secret: String,
    /// Write `resources.yaml` (kubectl-appliable) and `settings.yaml` (RouterSettings) into
    /// this directory instead of one YAML stream on stdout.
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
}

/// What [`convert`] needs besides the YAML.
#[derive(Clone)]
pub struct Options {
    /// Namespace of every resource emitted (and of the Secrets they refer to).
    pub namespace: String,
    /// Secret holding the `os.environ/NAME` values, key `NAME`.
    pub env_secret: String,
    /// Secret the literal keys found in the config are moved into.
    pub literal_secret: String,
    /// Environment seen at import time. Used only for `os.environ/NAME` in fields that are
    /// not secret (`api_base`, `api_version`, regions, numbers), each time with a warning;
    /// never for a credential, which always stays a Secret reference.
    pub env: BTreeMap<String, String>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: the environment may hold credentials.
        f.debug_struct("Options")
            .field("namespace", &self.namespace)
            .field("env_secret", &self.env_secret)
            .field("literal_secret", &self.literal_secret)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            namespace: "default".to_owned(),
            env_secret: DEFAULT_ENV_SECRET.to_owned(),
            literal_secret: LITERAL_SECRET.to_owned(),
            env: BTreeMap::new(),
        }
    }
}

impl Options {
    /// Default options in `namespace`, with an empty import environment.
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            ..Self::default()
        }
    }
}

/// The resources made from one LiteLLM config. Its `Debug` output leaves out the values
/// of the Secrets.
#[derive(Clone)]
pub struct Imported {
    /// One per translated `model_list` entry, in `model_list` order.
    pub deployments: Vec<ModelDeployment>,
    /// One per `router_settings.model_group_alias` entry, in file order.
    pub aliases: Vec<ModelGroupAlias>,
    /// Secrets holding the literal keys found in the config (none when it had none).
    pub secrets: Vec<Secret>,
    /// The `RouterSettings` document (`apiVersion` and `kind` set).
    pub settings: RouterSettings,
    /// Keys the env Secret must hold, each named after an environment variable; the values
    /// come from the user's environment (see [`Imported::secret_command`]).
    pub required_env: BTreeSet<String>,
    /// Keys of the env Secret (also in `required_env`) whose value is composed from other
    /// environment variables, in shell syntax, e.g. a Redis URL from host, port and
    /// password.
    pub env_templates: BTreeMap<String, String>,
    /// Everything not translated, or translated with a caveat. Never contains a secret.
    pub warnings: Vec<String>,
    /// Namespace everything was emitted into.
    pub namespace: String,
    /// Name of the env Secret.
    pub env_secret: String,
}

impl std::fmt::Debug for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secret names and keys only: the values are credentials.
        let secrets: Vec<(Option<&str>, Vec<&String>)> = self
            .secrets
            .iter()
            .map(|s| {
                let keys = s.string_data.iter().flat_map(|d| d.keys()).collect();
                (s.metadata.name.as_deref(), keys)
            })
            .collect();
        f.debug_struct("Imported")
            .field("deployments", &self.deployments)
            .field("aliases", &self.aliases)
            .field("secrets", &secrets)
            .field("settings", &self.settings)
            .field("required_env", &self.required_env)
            .field("env_templates", &self.env_templates)
            .field("warnings", &self.warnings)
            .field("namespace", &self.namespace)
            .field("env_secret", &self.env_secret)
            .finish()
    }
}

/// Why a config cannot be imported at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The text is not YAML.
    #[error("the config is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    /// The file holds nothing.
    #[error("the config is empty")]
    Empty,
    /// A value has the wrong shape.
    #[error("{path} must be {expected}, found {found}")]
    WrongType {
        /// Where the value is, e.g. `model_list`.
        path: String,
        /// What it must be.
        expected: &'static str,
        /// What it is.
        found: &'static str,
    },
    /// A `model_list` entry without `model_name`.
    #[error("model_list[{index}] has no model_name")]
    MissingModelName {
        /// Position in `model_list`.
        index: usize,
    },
    /// A `model_list` entry without `litellm_params.model`.
    #[error("model_list[{index}] ({model_name}) has no litellm_params.model")]
    MissingModel {
        /// Position in `model_list`.
        index: usize,
        /// Its `model_name`.
        model_name: String,
    },
    /// A flag value that cannot name a Kubernetes object.
    #[error("{option} {value:?} is not a valid Kubernetes name: {reason}")]
    InvalidOption {
        /// The flag, e.g. `--namespace`.
        option: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// State shared by the conversion steps: options, warnings, and where secrets go. No
/// `Debug`: it holds the literal secrets.
struct Ctx<'o> {
    opts: &'o Options,
    warnings: Vec<String>,
    secrets: SecretSink,
    /// `environment_variables` of the config: what LiteLLM would put into its environment.
    config_env: BTreeMap<String, String>,
    /// Names of `config_env` some `os.environ/` reference used.
    used_config_env: BTreeSet<String>,
}

impl<'o> Ctx<'o> {
    fn new(opts: &'o Options) -> Self {
        Self {
            opts,
            warnings: Vec::new(),
            secrets: SecretSink::default(),
            config_env: BTreeMap::new(),
            used_config_env: BTreeSet::new(),
        }
    }

    fn warn(&mut self, message: impl Into<String>) {
        self.warnings.push(message.into());
    }
}

/// Top-level keys of a LiteLLM config, each handled by its own step.
const KNOWN_TOP_LEVEL: [&str; 5] = [
    "model_list",
    "router_settings",
    "litellm_settings",
    "general_settings",
    "environment_variables",
];

/// Converts a LiteLLM proxy config into Modelgate resources.
///
/// Errors only when the input as a whole cannot be read (not YAML, `model_list` not a
/// list, an entry without `model_name` or `litellm_params.model`); everything else that
/// cannot be translated is left out with a warning. Every resource returned passes its
/// `validate()`.
pub fn convert(yaml: &str, opts: &Options) -> Result<Imported, ImportError> {
    check_name("--namespace", &opts.namespace, 63)?;
    check_name("--env-secret", &opts.env_secret, 253)?;
    check_name("literal Secret name", &opts.literal_secret, 253)?;

    let mut doc: Value = serde_yaml::from_str(yaml)?;
    doc.apply_merge()?;
    let root = match &doc {
        Value::Mapping(m) => m,
        Value::Null => return Err(ImportError::Empty),
        other => {
            return Err(ImportError::WrongType {
                path: "the config".to_owned(),
                expected: "a mapping of sections (model_list, router_settings, …)",
                found: type_name(other),
            });
        }
    };

    let mut ctx = Ctx::new(opts);
    settings::read_environment_variables(&mut ctx, root.get("environment_variables"));
    let general = settings::general(&mut ctx, root.get("general_settings"));
    let deployments = deployments::convert_model_list(
        &mut ctx,
        root.get("model_list"),
        general.health_check.as_ref(),
    )?;
    let model_names: BTreeSet<String> = deployments.iter().map(|d| d.spec.model.clone()).collect();
    let (mut settings, alias_drafts) = settings::router(
        &mut ctx,
        root.get("router_settings"),
        root.get("litellm_settings"),
    );
    settings.master_key = general.master_key;
    let aliases = settings::aliases(&mut ctx, alias_drafts, &model_names);
    let moved = ctx.secrets.moved_warnings(opts);
    ctx.warnings.extend(moved);
    settings::report_environment_variables(&mut ctx);

    for (key, _) in root {
        let key = values::key_text(key);
        if !KNOWN_TOP_LEVEL.contains(&key.as_str()) {
            let hint = match key.as_str() {
                "guardrails" => " (Modelgate has no guardrails)",
                "finetune_settings" | "files_settings" => {
                    " (Modelgate serves no fine-tuning or files API)"
                }
                "credential_list" => {
                    " (put credentials into Secrets and refer to them from each ModelDeployment)"
                }
                "include" => " (convert the included files one by one)",
                "mcp_servers" => " (Modelgate has no MCP gateway)",
                _ => "",
            };
            ctx.warn(format!("{key}: not translated{hint}"));
        }
    }

    let settings_errors = settings.validate();
    if !settings_errors.is_empty() {
        // Every field is built valid; should one slip through, say so before a loader does.
        let list: Vec<String> = settings_errors.iter().map(ToString::to_string).collect();
        ctx.warn(format!("RouterSettings: {}", list.join("; ")));
    }

    let secrets = ctx.secrets.literal_secret(opts).into_iter().collect();
    Ok(Imported {
        deployments,
        aliases,
        secrets,
        settings,
        required_env: std::mem::take(&mut ctx.secrets.required_env),
        env_templates: std::mem::take(&mut ctx.secrets.templates),
        warnings: ctx.warnings,
        namespace: opts.namespace.clone(),
        env_secret: opts.env_secret.clone(),
    })
}

fn check_name(option: &'static str, value: &str, max: usize) -> Result<(), ImportError> {
    let reason = if value.is_empty() {
        Some("it is empty")
    } else if value.len() > max {
        Some("it is too long")
    } else if !value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    {
        Some("use lowercase letters, digits, '-' and '.'")
    } else if !value.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !value.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        Some("it must start and end with a letter or digit")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ImportError::InvalidOption {
            option,
            value: value.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

impl Imported {
    /// Everything as one multi-document YAML stream: Secrets, ModelDeployments,
    /// ModelGroupAliases, and last the RouterSettings document.
    pub fn to_yaml_stream(&self) -> Result<String, serde_yaml::Error> {
        let mut out = self.resources_yaml()?;
        out.push_str(&self.settings_yaml()?);
        Ok(out)
    }

    /// The kubectl-appliable part: Secrets, ModelDeployments and ModelGroupAliases.
    pub fn resources_yaml(&self) -> Result<String, serde_yaml::Error> {
        let mut out = String::new();
        for s in &self.secrets {
            push_doc(&mut out, s)?;
        }
        for d in &self.deployments {
            push_doc(&mut out, d)?;
        }
        for a in &self.aliases {
            push_doc(&mut out, a)?;
        }
        Ok(out)
    }

    /// The RouterSettings document.
    pub fn settings_yaml(&self) -> Result<String, serde_yaml::Error> {
        let mut out = String::new();
        push_doc(&mut out, &self.settings)?;
        Ok(out)
    }

    /// The one command that creates the env Secret from the user's environment, or `None`
    /// when the config refers to no environment variable.
    pub fn secret_command(&self) -> Option<String> {
        if self.required_env.is_empty() {
            return None;
        }
        let mut cmd = format!(
            "kubectl create secret generic {} -n {}",
            self.env_secret, self.namespace
        );
        for name in &self.required_env {
            let value = match self.env_templates.get(name) {
                Some(template) => template.clone(),
                None => format!("${name}"),
            };
            cmd.push_str(&format!(" \\\n    --from-literal={name}=\"{value}\""));
        }
        Some(cmd)
    }
}

fn push_doc<T: serde::Serialize>(out: &mut String, doc: &T) -> Result<(), serde_yaml::Error> {
    out.push_str("---\n");
    for line in serde_yaml::to_string(doc)?.lines() {
        out.push_str(&quote_yaml11_scalar(line));
        out.push('\n');
    }
    Ok(())
}

/// serde_yaml writes YAML 1.2, where `2024-10-21` and `on` are plain strings; kubectl and
/// other YAML 1.1 readers take them for a date or a boolean. Quote such plain scalars.
fn quote_yaml11_scalar(line: &str) -> std::borrow::Cow<'_, str> {
    let (prefix, value) = if let Some(i) = line.find(": ") {
        line.split_at(i + 2)
    } else if let Some(rest) = line.trim_start().strip_prefix("- ") {
        line.split_at(line.len() - rest.len())
    } else {
        return line.into();
    };
    if is_yaml11_special(value) {
        format!("{prefix}'{value}'").into()
    } else {
        line.into()
    }
}

fn is_yaml11_special(v: &str) -> bool {
    const BOOLS: [&str; 16] = [
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
        "OFF",
    ];
    if BOOLS.contains(&v) {
        return true;
    }
    // A YAML 1.1 timestamp starts with a full date: YYYY-M(M)-D(D).
    let mut parts = v.splitn(3, '-');
    let (Some(y), Some(m), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let d: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let digits = |s: &str, min: usize, max: usize| {
        (min..=max).contains(&s.len()) && s.chars().all(|c| c.is_ascii_digit())
    };
    digits(y, 4, 4) && digits(m, 1, 2) && digits(&d, 1, 2)
}

/// `operator import litellm`: converts the file, writes the resources, and tells the user
/// on stderr what was not translated and which Secret they still have to create.
pub fn run(args: &LitellmArgs) -> anyhow::Result<()> {
    run_with(
        args,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )
}

/// [`run`] with its standard output and standard error given.
pub fn run_with(
    args: &LitellmArgs,
    stdout: &mut dyn std::io::Write,
    stderr: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let opts = Options {
        namespace: args.namespace.clone(),
        env_secret: args.env_secret.clone(),
        literal_secret: LITERAL_SECRET.to_owned(),
        // vars() panics on a variable that is not Unicode; such a variable is skipped.
        env: std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect(),
    };
    let imported =
        convert(&text, &opts).with_context(|| format!("cannot import {}", args.file.display()))?;

    for w in &imported.warnings {
        writeln!(stderr, "warning: {w}")?;
    }
    match &args.output_dir {
        None => {
            stdout.write_all(imported.to_yaml_stream()?.as_bytes())?;
            stdout.flush()?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for (file, text) in [
                (RESOURCES_FILE, imported.resources_yaml()?),
                (SETTINGS_FILE, imported.settings_yaml()?),
            ] {
                let path = dir.join(file);
                std::fs::write(&path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            writeln!(
                stderr,
                "wrote {} (kubectl apply -f) and {} (RouterSettings)",
                dir.join(RESOURCES_FILE).display(),
                dir.join(SETTINGS_FILE).display()
            )?;
        }
    }
    writeln!(
        stderr,
        "imported {} ModelDeployment(s), {} ModelGroupAlias(es) and the RouterSettings into namespace {} ({} warning(s))",
        imported.deployments.len(),
        imported.aliases.len(),
        imported.namespace,
        imported.warnings.len()
    )?;
    for s in &imported.secrets {
        writeln!(
            stderr,
            "Secret {} holds the literal keys found in the config: apply it, keep it out of git, and rotate keys that ever were in git",
            s.metadata.name.as_deref().unwrap_or_default()
        )?;
    }
    if let Some(cmd) = imported.secret_command() {
        writeln!(
            stderr,
            "Before applying, create Secret {} from the environment variables the config reads:\n\n{cmd}\n",
            imported.env_secret
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod yaml11_tests {
    use super::quote_yaml11_scalar;

    #[test]
    fn dates_and_yaml11_booleans_are_quoted() {
        assert_eq!(
            quote_yaml11_scalar("    apiVersion: 2024-10-21"),
            "    apiVersion: '2024-10-21'"
        );
        assert_eq!(quote_yaml11_scalar("  - on"), "  - 'on'");
        assert_eq!(
            quote_yaml11_scalar("  apiVersion: 2024-10-21-preview"),
            "  apiVersion: '2024-10-21-preview'"
        );
        assert_eq!(quote_yaml11_scalar("  model: gpt-4o"), "  model: gpt-4o");
        assert_eq!(
            quote_yaml11_scalar("  apiVersion: '2024-10-21'"),
            "  apiVersion: '2024-10-21'"
        );
        assert_eq!(
            quote_yaml11_scalar("kind: ModelDeployment"),
            "kind: ModelDeployment"
        );
    }
}
