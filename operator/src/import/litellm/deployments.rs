//! `model_list` → `ModelDeployment`s: one per entry, entries sharing a `model_name`
//! becoming several deployments of one group.
//!
//! An entry is read in three steps: the provider (from the `litellm_params.model` prefix),
//! the fields Modelgate has (upstream, limits, timeouts, routing, model info), and a
//! warning listing every key left over. An entry that still fails `validate()` is skipped
//! with a warning naming it.

use std::collections::BTreeMap;

use modelgate_crds::common::is_http_url;
use modelgate_crds::deployment::{
    CredentialKeys, Credentials, Header, HealthCheck, Limits, ModelInfo, Routing, StreamTimeouts,
    Timeouts, Upstream,
};
use modelgate_crds::rules::SECRET_HEADERS;
use modelgate_crds::{Mode, ModelDeployment, ModelDeploymentSpec, Provider};
use serde_yaml::{Mapping, Value};

use super::names;
use super::providers::{self, OLLAMA_BASE, OPENAI_HOST, ProviderSpec, Resolved};
use super::secrets::Source;
use super::values::{key_text, scalar_text, type_name};
use super::{Ctx, ImportError};

/// Azure `api-version` used when the config and the environment give none (LiteLLM
/// falls back to a built-in default as well).
pub(super) const AZURE_DEFAULT_API_VERSION: &str = "2024-10-21";

/// Keys of an entry itself that are read.
const ENTRY_KEYS: [&str; 5] = ["model_name", "litellm_params", "model_info", "rpm", "tpm"];

/// Keys of `litellm_params` that are read.
const PARAM_KEYS: [&str; 26] = [
    "model",
    "custom_llm_provider",
    "api_base",
    "api_version",
    "api_key",
    "organization",
    "aws_region_name",
    "region_name",
    "aws_bedrock_runtime_endpoint",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "rpm",
    "tpm",
    "max_parallel_requests",
    "timeout",
    "stream_timeout",
    "weight",
    "order",
    "max_retries",
    "num_retries",
    "extra_headers",
    "headers",
    "input_cost_per_token",
    "output_cost_per_token",
    "base_model",
];

/// Keys of `model_info` that are read (`id` is LiteLLM's own bookkeeping: ignored).
const INFO_KEYS: [&str; 10] = [
    "id",
    "mode",
    "base_model",
    "max_tokens",
    "max_output_tokens",
    "max_input_tokens",
    "input_cost_per_token",
    "output_cost_per_token",
    "supports_reasoning",
    "context_window",
];

/// An entry converted but not yet named.
struct Draft {
    model_name: String,
    at: String,
    spec: ModelDeploymentSpec,
    /// LiteLLM's `weight`, applied per group once every entry is read.
    weight: Option<f64>,
}

/// Converts `model_list`. `health_check` comes from `general_settings` and applies to
/// every deployment.
pub(super) fn convert_model_list(
    ctx: &mut Ctx<'_>,
    list: Option<&Value>,
    health_check: Option<&HealthCheck>,
) -> Result<Vec<ModelDeployment>, ImportError> {
    let entries = match list {
        None | Some(Value::Null) => {
            ctx.warn("model_list: missing or empty; no ModelDeployment imported");
            return Ok(Vec::new());
        }
        Some(Value::Sequence(s)) => s,
        Some(other) => {
            return Err(ImportError::WrongType {
                path: "model_list".to_owned(),
                expected: "a list of models",
                found: type_name(other),
            });
        }
    };

    let mut drafts = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        // A skipped entry must not leave a key in a Secret or a name in the command.
        let snapshot = (ctx.secrets.clone(), ctx.used_config_env.clone());
        let Some(mut draft) = convert_entry(ctx, index, entry)? else {
            (ctx.secrets, ctx.used_config_env) = snapshot;
            continue;
        };
        draft.spec.health_check = health_check.cloned();
        let errors = draft.spec.validate();
        if errors.is_empty() {
            drafts.push(draft);
        } else {
            (ctx.secrets, ctx.used_config_env) = snapshot;
            let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
            ctx.warn(format!(
                "{}: skipped, not a valid ModelDeployment: {}",
                draft.at,
                list.join("; ")
            ));
        }
    }

    apply_weights(ctx, &mut drafts);

    let bases: Vec<String> = drafts.iter().map(|d| names::label(&d.model_name)).collect();
    let names = names::assign(&bases);
    Ok(drafts
        .into_iter()
        .zip(names)
        .map(|(d, name)| {
            let mut md = ModelDeployment::new(&name, d.spec);
            md.metadata.namespace = Some(ctx.opts.namespace.clone());
            md
        })
        .collect())
}

/// LiteLLM's `weight`: when any deployment of a group's priority tier has one, those
/// without have weight 0 (LiteLLM's shuffle reads a missing weight as 0). Fractional
/// weights are scaled by 1000 across the tier, since Modelgate's weights are whole numbers.
fn apply_weights(ctx: &mut Ctx<'_>, drafts: &mut [Draft]) {
    // Weights compete within a priority tier: LiteLLM filters by `order` first.
    let mut tiers: BTreeMap<(String, i64), Vec<usize>> = BTreeMap::new();
    for (i, d) in drafts.iter().enumerate() {
        let order = d.spec.routing.as_ref().and_then(|r| r.order).unwrap_or(1);
        tiers
            .entry((d.model_name.clone(), order))
            .or_default()
            .push(i);
    }
    for ((model, _), members) in tiers {
        if members.iter().all(|&i| drafts[i].weight.is_none()) {
            continue;
        }
        let fractional = members
            .iter()
            .any(|&i| drafts[i].weight.is_some_and(|w| w.fract() != 0.0));
        let scale = if fractional { 1000.0 } else { 1.0 };
        if fractional {
            ctx.warn(format!(
                "model group {model}: fractional weights scaled by 1000 (Modelgate weights are whole numbers)"
            ));
        }
        for &i in &members {
            let d = &mut drafts[i];
            if d.weight.is_none() && members.len() > 1 {
                ctx.warnings.push(format!(
                    "{}: no weight while others in group {model} have one; weight 0, as in LiteLLM",
                    d.at
                ));
            }
            let w = (d.weight.unwrap_or(0.0) * scale)
                .round()
                .clamp(0.0, 1_000_000.0) as i64;
            d.spec.routing.get_or_insert_with(Routing::default).weight = Some(w);
        }
    }
}

/// Converts one entry: `Ok(None)` (with a warning) when it is skipped.
fn convert_entry(
    ctx: &mut Ctx<'_>,
    index: usize,
    entry: &Value,
) -> Result<Option<Draft>, ImportError> {
    let path = format!("model_list[{index}]");
    let Value::Mapping(m) = entry else {
        return Err(ImportError::WrongType {
            path,
            expected: "a mapping with model_name and litellm_params",
            found: type_name(entry),
        });
    };
    let model_name = m
        .get("model_name")
        .and_then(scalar_text)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .ok_or(ImportError::MissingModelName { index })?;
    let at = format!("{path} ({model_name})");
    let missing_model = || ImportError::MissingModel {
        index,
        model_name: model_name.clone(),
    };
    let params = match m.get("litellm_params") {
        Some(Value::Mapping(p)) => p,
        None | Some(Value::Null) => return Err(missing_model()),
        Some(other) => {
            return Err(ImportError::WrongType {
                path: format!("{path}.litellm_params"),
                expected: "a mapping",
                found: type_name(other),
            });
        }
    };
    let model = params
        .get("model")
        .and_then(scalar_text)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .ok_or_else(missing_model)?;
    let info = match m.get("model_info") {
        Some(Value::Mapping(i)) => Some(i),
        None | Some(Value::Null) => None,
        Some(other) => {
            ctx.warn(format!(
                "{at}: model_info must be a mapping, found {}; not translated",
                type_name(other)
            ));
            None
        }
    };

    let mut leftovers = unread(m, &ENTRY_KEYS, "");
    leftovers.extend(unread(params, &PARAM_KEYS, "litellm_params."));
    if let Some(info) = info {
        leftovers.extend(unread(info, &INFO_KEYS, "model_info."));
    }
    if !leftovers.is_empty() {
        ctx.warn(format!("{at}: not translated: {}", leftovers.join(", ")));
    }

    if model_name == "*" {
        ctx.warn(format!(
            "{at}: skipped: a catch-all model_name \"*\" has no Modelgate equivalent; add one provider/* wildcard per provider"
        ));
        return Ok(None);
    }

    let custom = params.get("custom_llm_provider").and_then(scalar_text);
    let (spec, upstream_model) = match providers::resolve(&model, custom.as_deref()) {
        Resolved::Served {
            spec,
            model: upstream_model,
            inferred,
        } => {
            if inferred
                && !(spec.provider == Provider::Openai && providers::looks_like_openai(&model))
            {
                ctx.warn(format!(
                    "{at}: litellm_params.model {model:?} has no provider prefix; assumed {}",
                    spec.provider
                ));
            }
            (spec, upstream_model)
        }
        Resolved::Unsupported { prefix } => {
            ctx.warn(format!(
                "{at}: skipped: provider {prefix:?} (litellm_params.model {model:?}) is not served by Modelgate"
            ));
            return Ok(None);
        }
    };

    let mut e = EntryReader {
        ctx,
        at: &at,
        params,
        spec,
    };
    let Some(upstream) = e.upstream(&model_name, upstream_model) else {
        return Ok(None);
    };
    let limits = e.limits(m);
    let timeouts = e.timeouts();
    let (routing, weight) = e.routing();
    let model_info = e.model_info(info);

    Ok(Some(Draft {
        model_name: model_name.clone(),
        at: at.clone(),
        spec: ModelDeploymentSpec {
            model: model_name,
            upstream,
            limits,
            timeouts,
            routing,
            model_info,
            health_check: None,
        },
        weight,
    }))
}

/// Keys of `m` not in `known`, prefixed for the warning.
fn unread(m: &Mapping, known: &[&str], prefix: &str) -> Vec<String> {
    m.keys()
        .map(key_text)
        .filter(|k| !known.contains(&k.as_str()))
        .map(|k| format!("{prefix}{k}"))
        .collect()
}

/// Reads the fields of one entry.
struct EntryReader<'c, 'o, 'a> {
    ctx: &'c mut Ctx<'o>,
    at: &'a str,
    params: &'a Mapping,
    spec: &'static ProviderSpec,
}

impl EntryReader<'_, '_, '_> {
    fn param(&self, key: &str) -> Option<&Value> {
        self.params.get(key).filter(|v| !v.is_null())
    }

    fn field(&self, key: &str) -> String {
        format!("{}: litellm_params.{key}", self.at)
    }

    fn text(&mut self, key: &str) -> Option<String> {
        let v = self.param(key)?.clone();
        let at = self.field(key);
        self.ctx.text(&v, &at)
    }

    fn integer(&mut self, key: &str, min: i64) -> Option<i64> {
        let v = self.param(key)?.clone();
        let at = self.field(key);
        self.ctx.integer(&v, &at, min)
    }

    fn duration(&mut self, key: &str) -> Option<String> {
        let v = self.param(key)?.clone();
        let at = self.field(key);
        self.ctx.duration(&v, &at)
    }

    fn number(&mut self, key: &str) -> Option<f64> {
        let v = self.param(key)?.clone();
        let at = self.field(key);
        self.ctx.number(&v, &at)
    }

    /// `api_base`, or the variable LiteLLM reads it from, or the provider's public
    /// endpoint. `Err(())` when `api_base` is given but cannot be used (warned).
    fn api_base(&mut self) -> Result<Option<String>, ()> {
        let given = self.param("api_base").is_some();
        let base = match self.text("api_base") {
            Some(b) => Some(b),
            None if given => return Err(()),
            None => match self.spec.base_env {
                Some(name) if self.ctx.env_is_set(name) => {
                    let at = format!("{}: api_base (unset; LiteLLM reads {name})", self.at);
                    self.ctx.plain_env(name, &at)
                }
                _ => None,
            },
        };
        match base {
            Some(b) if is_http_url(&b) => Ok(Some(b)),
            Some(b) => {
                self.ctx.warn(format!(
                    "{}: litellm_params.api_base {b:?} is not an http(s) URL; not translated",
                    self.at
                ));
                Err(())
            }
            None => Ok(self.spec.default_base.map(str::to_owned)),
        }
    }

    /// Where requests go; `None` (warned) when the entry must be skipped.
    fn upstream(&mut self, model_name: &str, upstream_model: String) -> Option<Upstream> {
        let at = self.at.to_owned();
        let mut provider = self.spec.provider;
        let mut api_base = match self.api_base() {
            Ok(base) => base,
            // Without its api_base an entry would silently reach another server.
            Err(()) => {
                self.ctx
                    .warn(format!("{at}: skipped: its api_base cannot be translated"));
                return None;
            }
        };
        let mut upstream_model = upstream_model;

        match self.spec.prefix {
            "openai" | "text-completion-openai" => {
                if let Some(base) = &api_base
                    && providers::host(base) != OPENAI_HOST
                {
                    provider = Provider::OpenaiCompatible;
                }
            }
            "ollama" | "ollama_chat" => {
                // Ollama's OpenAI-compatible API lives under /v1.
                let base = api_base.take().unwrap_or_else(|| OLLAMA_BASE.to_owned());
                let base = base.trim_end_matches('/');
                api_base = Some(if base.ends_with("/v1") {
                    base.to_owned()
                } else {
                    format!("{base}/v1")
                });
            }
            "bedrock" => {
                if let Some(rest) = upstream_model.strip_prefix("converse/") {
                    upstream_model = rest.to_owned();
                } else if let Some(rest) = upstream_model.strip_prefix("invoke/") {
                    self.ctx.warn(format!(
                        "{at}: bedrock/invoke/ becomes Bedrock's Converse API, the one Modelgate speaks"
                    ));
                    upstream_model = rest.to_owned();
                }
                if api_base.is_none()
                    && let Some(endpoint) = self.text("aws_bedrock_runtime_endpoint")
                {
                    if is_http_url(&endpoint) {
                        api_base = Some(endpoint);
                    } else {
                        self.ctx.warn(format!(
                            "{at}: litellm_params.aws_bedrock_runtime_endpoint {endpoint:?} is not an http(s) URL; not translated"
                        ));
                    }
                }
            }
            _ => {}
        }
        if let Some(base) = &api_base
            && matches!(
                providers::host(base).as_str(),
                "localhost" | "127.0.0.1" | "0.0.0.0" | "[::1]"
            )
        {
            self.ctx.warn(format!(
                "{at}: api_base {base} is this machine; inside a data-plane pod that is the pod itself, so point it at a Service"
            ));
        }
        if provider == Provider::OpenaiCompatible && api_base.is_none() {
            self.ctx.warn(format!(
                "{at}: skipped: provider {} needs api_base (an OpenAI-compatible endpoint)",
                self.spec.prefix
            ));
            return None;
        }

        let mut api_version = self.text("api_version");
        if provider == Provider::Azure {
            if api_base.is_none() {
                self.ctx.warn(format!(
                    "{at}: skipped: azure needs api_base (the resource endpoint, e.g. https://NAME.openai.azure.com)"
                ));
                return None;
            }
            if api_version.is_none() {
                let name = "AZURE_API_VERSION";
                api_version = if self.ctx.env_is_set(name) {
                    let at = format!("{at}: api_version (unset; LiteLLM reads {name})");
                    self.ctx.plain_env(name, &at)
                } else {
                    None
                };
                if api_version.is_none() {
                    self.ctx.warn(format!(
                        "{at}: no api_version; using {AZURE_DEFAULT_API_VERSION}"
                    ));
                    api_version = Some(AZURE_DEFAULT_API_VERSION.to_owned());
                }
            }
        }

        let region = if provider == Provider::Bedrock {
            let key = if self.param("aws_region_name").is_some() {
                "aws_region_name"
            } else {
                "region_name"
            };
            let region = match self.text(key) {
                Some(r) => Some(r),
                None if self.param(key).is_some() => None,
                // LiteLLM (boto3) falls back to the environment.
                None => ["AWS_REGION_NAME", "AWS_REGION"]
                    .into_iter()
                    .find(|name| self.ctx.env_is_set(name))
                    .and_then(|name| {
                        let at = format!("{at}: aws_region_name (unset; LiteLLM reads {name})");
                        self.ctx.plain_env(name, &at)
                    }),
            };
            region.map(|r| r.to_ascii_lowercase())
        } else {
            for key in [
                "aws_region_name",
                "region_name",
                "aws_bedrock_runtime_endpoint",
            ] {
                if self.param(key).is_some() {
                    self.ctx.warn(format!(
                        "{at}: litellm_params.{key} is only used by bedrock; not translated"
                    ));
                }
            }
            None
        };

        let headers = self.headers();
        let credentials = self.credentials(provider, model_name)?;

        Some(Upstream {
            provider,
            model: Some(upstream_model),
            api_base,
            api_version,
            region,
            headers,
            credentials,
            mock: None,
        })
    }

    /// `extra_headers`, `headers` and `organization`, minus anything carrying a credential.
    fn headers(&mut self) -> Vec<Header> {
        let at = self.at.to_owned();
        let mut headers: Vec<Header> = Vec::new();
        for key in ["extra_headers", "headers"] {
            let Some(v) = self.param(key).cloned() else {
                continue;
            };
            let field = format!("{at}: litellm_params.{key}");
            let Value::Mapping(map) = v else {
                self.ctx.warn(format!(
                    "{field} must be a mapping, found {}; not translated",
                    type_name(&v)
                ));
                continue;
            };
            for (k, v) in &map {
                let name = key_text(k);
                // Decided before the value is read, so that a credential is never resolved
                // or shown.
                if SECRET_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                    self.ctx.warn(format!(
                        "{field}.{name} carries a credential and is not copied into upstream.headers; give the key as litellm_params.api_key (it becomes credentials.secretKeyRef)"
                    ));
                    continue;
                }
                let vat = format!("{field}.{name}");
                if let Some(value) = self.ctx.text(v, &vat) {
                    push_header(self.ctx, &mut headers, &vat, name, value);
                }
            }
        }
        if let Some(org) = self.text("organization") {
            let vat = self.field("organization");
            push_header(
                self.ctx,
                &mut headers,
                &vat,
                "OpenAI-Organization".to_owned(),
                org,
            );
        }
        headers
    }

    /// `api_key`, or the AWS keys for Bedrock; LiteLLM's default variable when unset.
    /// `None` when the entry must be skipped.
    fn credentials(&mut self, provider: Provider, model_name: &str) -> Option<Option<Credentials>> {
        let at = self.at.to_owned();
        let base = names::label(model_name);
        if provider == Provider::Bedrock {
            if self.param("api_key").is_some() {
                self.ctx.warn(format!(
                    "{at}: litellm_params.api_key is not used for bedrock (Modelgate signs with AWS keys); not translated"
                ));
            }
            return self.bedrock_credentials(&base);
        }
        for key in [
            "aws_access_key_id",
            "aws_secret_access_key",
            "aws_session_token",
        ] {
            if self.param(key).is_some() {
                self.ctx.warn(format!(
                    "{at}: litellm_params.{key} is only used by bedrock; not translated"
                ));
            }
        }
        let field = self.field("api_key");
        let selector = match (self.param("api_key").cloned(), self.spec.key_env) {
            (Some(v), _) => self.ctx.secret_source(&v, &field).map(|source| {
                self.ctx
                    .commit_secret(source, &field, &format!("{base}-api-key"))
            }),
            // LiteLLM reads the provider's variable when no key is given; the OpenAI
            // prefix pointed at another server usually needs none.
            (None, Some(name))
                if !(self.spec.provider == Provider::Openai
                    && provider == Provider::OpenaiCompatible) =>
            {
                self.ctx.warn(format!(
                    "{at}: no api_key; LiteLLM would read {name} from its environment, so the key comes from {name} in Secret {}",
                    self.ctx.opts.env_secret
                ));
                Some(self.ctx.env_secret_ref(name))
            }
            (None, _) => None,
        };
        Some(selector.map(|s| Credentials {
            secret_key_ref: Some(s),
            ..Credentials::default()
        }))
    }

    fn bedrock_credentials(&mut self, base: &str) -> Option<Option<Credentials>> {
        let at = self.at.to_owned();
        let mut sources: Vec<(&'static str, Option<Source>)> = Vec::new();
        for (key, default) in [
            ("aws_access_key_id", Some("AWS_ACCESS_KEY_ID")),
            ("aws_secret_access_key", Some("AWS_SECRET_ACCESS_KEY")),
            ("aws_session_token", None),
        ] {
            let field = self.field(key);
            let source = match self.param(key).cloned() {
                Some(v) => self.ctx.secret_source(&v, &field),
                None => default.map(|name| {
                    self.ctx.warn(format!(
                        "{at}: no {key}; LiteLLM would read {name} from its environment, so it comes from {name} in Secret {}",
                        self.ctx.opts.env_secret
                    ));
                    Source::Env(name.to_owned())
                }),
            };
            sources.push((key, source));
        }
        let envs = sources
            .iter()
            .filter(|(_, s)| matches!(s, Some(Source::Env(_))))
            .count();
        let literals = sources
            .iter()
            .filter(|(_, s)| matches!(s, Some(Source::Literal(_))))
            .count();
        if envs > 0 && literals > 0 {
            self.ctx.warn(format!(
                "{at}: skipped: the AWS keys mix os.environ/ references and literal values, but Modelgate reads them from one Secret; use one kind for all"
            ));
            return None;
        }
        let mut keys = CredentialKeys::default();
        let mut secret_name = None;
        for (key, source) in sources {
            let Some(source) = source else { continue };
            let field = self.field(key);
            let literal_key = format!("{base}-{}", key.replace('_', "-"));
            let selector = self.ctx.commit_secret(source, &field, &literal_key);
            secret_name = Some(selector.name);
            let slot = match key {
                "aws_access_key_id" => &mut keys.access_key_id,
                "aws_secret_access_key" => &mut keys.secret_access_key,
                _ => &mut keys.session_token,
            };
            *slot = Some(selector.key);
        }
        Some(secret_name.map(|name| Credentials {
            secret_name: Some(name),
            keys: Some(keys),
            ..Credentials::default()
        }))
    }

    /// `rpm`, `tpm` (also at the entry's top level) and `max_parallel_requests`.
    fn limits(&mut self, entry: &Mapping) -> Option<Limits> {
        let top = |key: &str, this: &mut Self| -> Option<i64> {
            if this.param(key).is_some() {
                return this.integer(key, 1);
            }
            let v = entry.get(key).filter(|v| !v.is_null())?.clone();
            let at = format!("{}: {key}", this.at);
            this.ctx.integer(&v, &at, 1)
        };
        let limits = Limits {
            rpm: top("rpm", self),
            tpm: top("tpm", self),
            max_concurrent_requests: self.integer("max_parallel_requests", 1),
            concurrency_scope: None,
        };
        (limits != Limits::default()).then_some(limits)
    }

    /// `timeout` (whole request) and `stream_timeout` (LiteLLM's read timeout of a stream:
    /// both the wait for the first byte and the gap between chunks).
    fn timeouts(&mut self) -> Option<Timeouts> {
        let request = self.duration("timeout");
        let stream = self.duration("stream_timeout").map(|d| StreamTimeouts {
            first_byte: Some(d.clone()),
            idle: Some(d),
        });
        (request.is_some() || stream.is_some()).then_some(Timeouts { request, stream })
    }

    /// `order`, `num_retries` (or `max_retries`); `weight` is returned raw.
    fn routing(&mut self) -> (Option<Routing>, Option<f64>) {
        let weight = match self.number("weight") {
            Some(w) if w >= 0.0 => Some(w),
            Some(w) => {
                self.ctx.warn(format!(
                    "{}: must be >= 0, found {w}; not translated",
                    self.field("weight")
                ));
                None
            }
            None => None,
        };
        let order = self.integer("order", 1).map(|o| {
            if o > 1000 {
                self.ctx.warn(format!(
                    "{} {o} is above 1000; using 1000",
                    self.field("order")
                ));
            }
            o.min(1000)
        });
        let key = if self.param("num_retries").is_some() {
            "num_retries"
        } else {
            "max_retries"
        };
        if key == "num_retries" && self.param("max_retries").is_some() {
            self.ctx.warn(format!(
                "{}: litellm_params.num_retries and max_retries both set; num_retries is used",
                self.at
            ));
        }
        let retries = self.integer(key, 0).map(|r| {
            if r > 10 {
                self.ctx.warn(format!(
                    "{} {r} is above Modelgate's limit of 10; using 10",
                    self.field(key)
                ));
            }
            r.min(10)
        });
        let routing = Routing {
            weight: None,
            order,
            retries,
        };
        ((routing != Routing::default()).then_some(routing), weight)
    }

    fn model_info(&mut self, info: Option<&Mapping>) -> Option<ModelInfo> {
        let at = self.at.to_owned();
        let empty = Mapping::new();
        let info = info.unwrap_or(&empty);
        // A value from litellm_params, else from model_info (LiteLLM takes custom
        // pricing and base_model in either place).
        let read = |key: &str, this: &mut Self| -> Option<(Value, String)> {
            if PARAM_KEYS.contains(&key)
                && let Some(v) = this.param(key)
            {
                return Some((v.clone(), this.field(key)));
            }
            info.get(key)
                .filter(|v| !v.is_null())
                .map(|v| (v.clone(), format!("{at}: model_info.{key}")))
        };
        let mut out = ModelInfo::default();
        if let Some((v, field)) = read("mode", self) {
            out.mode = self.ctx.text(&v, &field).and_then(|m| match mode(&m) {
                Some(mode) => Some(mode),
                None => {
                    self.ctx.warn(format!(
                        "{field} {m:?} has no Modelgate equivalent; not translated"
                    ));
                    None
                }
            });
        } else if self.spec.prefix == "text-completion-openai" {
            out.mode = Some(Mode::Completion);
        }
        if let Some((v, field)) = read("base_model", self) {
            out.base_model = self.ctx.text(&v, &field);
        }
        let output_key = if info.contains_key("max_output_tokens") {
            "max_output_tokens"
        } else {
            "max_tokens"
        };
        if let Some(v) = info.get(output_key).filter(|v| !v.is_null()) {
            out.max_output_tokens =
                self.ctx
                    .integer(v, &format!("{at}: model_info.{output_key}"), 1);
        }
        let window_key = if info.contains_key("max_input_tokens") {
            "max_input_tokens"
        } else {
            "context_window"
        };
        if let Some(v) = info.get(window_key).filter(|v| !v.is_null()) {
            out.context_window = self
                .ctx
                .integer(v, &format!("{at}: model_info.{window_key}"), 1);
        }
        for (key, slot) in [
            ("input_cost_per_token", &mut out.input_cost_per_token),
            ("output_cost_per_token", &mut out.output_cost_per_token),
        ] {
            if let Some((v, field)) = read(key, self) {
                *slot = match self.ctx.number(&v, &field) {
                    Some(c) if c >= 0.0 => Some(c),
                    Some(c) => {
                        self.ctx
                            .warn(format!("{field} must be >= 0, found {c}; not translated"));
                        None
                    }
                    None => None,
                };
            }
        }
        if let Some(v) = info.get("supports_reasoning").filter(|v| !v.is_null()) {
            out.reasoning = self
                .ctx
                .boolean(v, &format!("{at}: model_info.supports_reasoning"));
        }
        (out != ModelInfo::default()).then_some(out)
    }
}

/// Adds a header (replacing one of the same name) when it is a valid HTTP header.
fn push_header(
    ctx: &mut Ctx<'_>,
    headers: &mut Vec<Header>,
    at: &str,
    name: String,
    value: String,
) {
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&*+.^_|~-".contains(c));
    if !name_ok || value.contains(['\r', '\n', '\0']) {
        ctx.warn(format!("{at} is not a valid HTTP header; not translated"));
        return;
    }
    headers.retain(|h| !h.name.eq_ignore_ascii_case(&name));
    headers.push(Header { name, value });
}

/// LiteLLM's `mode` as a Modelgate mode.
fn mode(m: &str) -> Option<Mode> {
    Some(match m {
        "chat" => Mode::Chat,
        "completion" => Mode::Completion,
        "embedding" => Mode::Embedding,
        "image_generation" => Mode::ImageGeneration,
        "audio_transcription" => Mode::AudioTranscription,
        "audio_speech" => Mode::AudioSpeech,
        "rerank" => Mode::Rerank,
        _ => return None,
    })
}
