//! `router_settings`, `litellm_settings` and `general_settings` → one `RouterSettings`
//! document; `router_settings.model_group_alias` → `ModelGroupAlias`es;
//! `environment_variables` → values for `os.environ/` references.
//!
//! Where both sections set the same thing, `router_settings` wins (as in LiteLLM, whose
//! router takes its own settings over the module-wide ones), with a warning when they
//! disagree.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use modelgate_crds::alias::ModelGroupAliasSpec;
use modelgate_crds::deployment::{HealthCheck, StreamTimeouts, Timeouts};
use modelgate_crds::settings::{
    Cooldown, RoutingStrategy, SETTINGS_API_VERSION, SETTINGS_KIND, SecretValueSource,
};
use modelgate_crds::{AliasTarget, ModelGroupAlias, RouterSettings, SecretKeySelector};
use modelgate_dataplane::providers::percent_encode;
use serde_yaml::{Mapping, Value};

use super::Ctx;
use super::names;
use super::secrets::Source;
use super::values::{env_ref, key_text, scalar_text, type_name};

/// Key of the env Secret that holds a Redis URL composed from host, port and password.
pub(super) const REDIS_URL_KEY: &str = "MODELGATE_REDIS_URL";

/// A section as a mapping; a warning (and `None`) for anything else but nothing.
fn section<'v>(ctx: &mut Ctx<'_>, v: Option<&'v Value>, name: &str) -> Option<&'v Mapping> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::Mapping(m)) => Some(m),
        Some(other) => {
            ctx.warn(format!(
                "{name} must be a mapping, found {}; not translated",
                type_name(other)
            ));
            None
        }
    }
}

/// Warns about every key of `m` not in `known`, with a hint for the well-known ones.
fn warn_unread(ctx: &mut Ctx<'_>, m: &Mapping, section: &str, known: &[&str]) {
    for k in m.keys() {
        let key = key_text(k);
        if known.contains(&key.as_str()) {
            continue;
        }
        let hint = match key.as_str() {
            "callbacks" | "success_callback" | "failure_callback" | "service_callbacks" => {
                " (Modelgate has no logging callbacks; it exports Prometheus metrics)"
            }
            "cache" | "cache_params" => " (Modelgate has no response cache)",
            "database_url" | "store_model_in_db" | "disable_spend_logs" => {
                " (Modelgate keeps no database: no virtual keys or spend tracking)"
            }
            "pass_through_endpoints" => " (Modelgate has no pass-through endpoints)",
            "alerting" | "alerting_threshold" => {
                " (use the data plane's Prometheus metrics for alerts)"
            }
            "default_fallbacks" | "content_policy_fallbacks" => {
                " (Modelgate has fallbacks per model group: settings.fallbacks)"
            }
            "guardrails" => " (Modelgate has no guardrails)",
            _ => "",
        };
        ctx.warn(format!("{section}.{key}: not translated{hint}"));
    }
}

/// Reads `environment_variables`: LiteLLM exports them at startup, so `os.environ/NAME`
/// can read them.
pub(super) fn read_environment_variables(ctx: &mut Ctx<'_>, v: Option<&Value>) {
    let Some(m) = section(ctx, v, "environment_variables") else {
        return;
    };
    for (k, v) in m {
        let name = key_text(k);
        match scalar_text(v) {
            Some(value) if env_ref(&value).is_none() => {
                ctx.config_env.insert(name, value);
            }
            _ => ctx.warn(format!(
                "environment_variables.{name}: not a plain value; not translated"
            )),
        }
    }
}

/// Says which `environment_variables` were used and which were dropped.
pub(super) fn report_environment_variables(ctx: &mut Ctx<'_>) {
    if ctx.config_env.is_empty() {
        return;
    }
    let unused: Vec<&str> = ctx
        .config_env
        .keys()
        .filter(|k| !ctx.used_config_env.contains(*k))
        .map(String::as_str)
        .collect();
    let used: Vec<&str> = ctx.used_config_env.iter().map(String::as_str).collect();
    let mut msg = "environment_variables: not translated as such".to_owned();
    if !used.is_empty() {
        msg.push_str(&format!(
            "; used for os.environ/ references: {}",
            used.join(", ")
        ));
    }
    if !unused.is_empty() {
        msg.push_str(&format!(
            "; not used, not carried over (set them where they are needed): {}",
            unused.join(", ")
        ));
    }
    ctx.warn(msg);
}

/// What `general_settings` gives.
#[derive(Debug, Default)]
pub(super) struct General {
    /// `master_key`.
    pub master_key: Option<SecretValueSource>,
    /// `background_health_checks` and `health_check_interval`, for every deployment.
    pub health_check: Option<HealthCheck>,
}

const GENERAL_KEYS: [&str; 3] = [
    "master_key",
    "background_health_checks",
    "health_check_interval",
];

/// Reads `general_settings`.
pub(super) fn general(ctx: &mut Ctx<'_>, v: Option<&Value>) -> General {
    let mut out = General::default();
    let Some(m) = section(ctx, v, "general_settings") else {
        return out;
    };
    if let Some(v) = m.get("master_key").filter(|v| !v.is_null()) {
        out.master_key = ctx
            .secret(v, "general_settings.master_key", "master-key")
            .map(|secret_key_ref| SecretValueSource { secret_key_ref });
    }
    let enabled = m
        .get("background_health_checks")
        .filter(|v| !v.is_null())
        .and_then(|v| ctx.boolean(v, "general_settings.background_health_checks"));
    let interval = m
        .get("health_check_interval")
        .filter(|v| !v.is_null())
        .and_then(|v| ctx.duration(v, "general_settings.health_check_interval"));
    if enabled.is_some() || interval.is_some() {
        out.health_check = Some(HealthCheck {
            enabled,
            interval,
            ..HealthCheck::default()
        });
    }
    warn_unread(ctx, m, "general_settings", &GENERAL_KEYS);
    out
}

/// Settings both `router_settings` and `litellm_settings` may set.
#[derive(Debug, Default)]
struct Shared {
    retries: Option<u32>,
    request_timeout: Option<String>,
    stream_timeout: Option<String>,
    allowed_fails: Option<u32>,
    cooldown_time: Option<String>,
    fallbacks: BTreeMap<String, Vec<String>>,
    context_window_fallbacks: BTreeMap<String, Vec<String>>,
}

/// Reads the shared settings of one section; `timeout_key` is `timeout` in
/// `router_settings` and `request_timeout` in `litellm_settings`.
fn shared(ctx: &mut Ctx<'_>, m: &Mapping, section: &str, timeout_key: &str) -> Shared {
    let get = |key: &str| {
        m.get(key)
            .filter(|v| !v.is_null())
            .map(|v| (v, format!("{section}.{key}")))
    };
    let mut out = Shared::default();
    if let Some((v, at)) = get("num_retries") {
        out.retries = ctx.integer(v, &at, 0).map(|n| {
            if n > 10 {
                ctx.warn(format!(
                    "{at} {n} is above Modelgate's limit of 10; using 10"
                ));
            }
            n.min(10) as u32
        });
    }
    if let Some((v, at)) = get(timeout_key) {
        out.request_timeout = ctx.duration(v, &at);
    }
    if let Some((v, at)) = get("stream_timeout") {
        out.stream_timeout = ctx.duration(v, &at);
    }
    if let Some((v, at)) = get("allowed_fails") {
        out.allowed_fails = ctx
            .integer(v, &at, 0)
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    }
    if let Some((v, at)) = get("cooldown_time") {
        out.cooldown_time = ctx.duration(v, &at);
    }
    if let Some((v, at)) = get("fallbacks") {
        out.fallbacks = fallbacks(ctx, v, &at);
    }
    if let Some((v, at)) = get("context_window_fallbacks") {
        out.context_window_fallbacks = fallbacks(ctx, v, &at);
    }
    out
}

/// LiteLLM's fallbacks: a list of single-key mappings, `[{"gpt-3.5-turbo": ["gpt-4"]}]`
/// (one mapping with several keys is taken too).
fn fallbacks(ctx: &mut Ctx<'_>, v: &Value, at: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let items: Vec<&Value> = match v {
        Value::Sequence(s) => s.iter().collect(),
        Value::Mapping(_) => vec![v],
        other => {
            ctx.warn(format!("{at} must be a list like [{{\"gpt-4o\": [\"gpt-4o-mini\"]}}], found {}; not translated", type_name(other)));
            return out;
        }
    };
    for (i, item) in items.into_iter().enumerate() {
        let Value::Mapping(m) = item else {
            ctx.warn(format!(
                "{at}[{i}] must be a mapping of a model to its fallbacks, found {}; not translated",
                type_name(item)
            ));
            continue;
        };
        for (k, targets) in m {
            let group = key_text(k);
            let names: Vec<&Value> = match targets {
                Value::Sequence(s) => s.iter().collect(),
                Value::Null => Vec::new(),
                other => vec![other],
            };
            let list = out.entry(group.clone()).or_default();
            for t in names {
                match scalar_text(t) {
                    Some(name) if name == group => ctx.warn(format!(
                        "{at}: {group} falls back to itself; that fallback is left out"
                    )),
                    Some(name) => {
                        if !list.contains(&name) {
                            list.push(name);
                        }
                    }
                    None => ctx.warn(format!(
                        "{at}.{group}: a fallback must be a model name, found {}; not translated",
                        type_name(t)
                    )),
                }
            }
            if list.is_empty() {
                out.remove(&group);
            }
        }
    }
    out
}

/// An alias read from `model_group_alias`, not yet checked.
#[derive(Debug)]
pub(super) struct AliasDraft {
    alias: String,
    target: String,
    hidden: bool,
    at: String,
}

const ROUTER_KEYS: [&str; 14] = [
    "routing_strategy",
    "routing_strategy_args",
    "model_group_alias",
    "num_retries",
    "timeout",
    "stream_timeout",
    "allowed_fails",
    "cooldown_time",
    "fallbacks",
    "context_window_fallbacks",
    "redis_host",
    "redis_port",
    "redis_password",
    "redis_url",
];

const LITELLM_KEYS: [&str; 8] = [
    "num_retries",
    "request_timeout",
    "stream_timeout",
    "fallbacks",
    "context_window_fallbacks",
    "allowed_fails",
    "cooldown_time",
    "drop_params",
];

/// Reads `router_settings` and `litellm_settings` into the settings document (without
/// `masterKey`, which comes from `general_settings`) and the alias drafts.
pub(super) fn router(
    ctx: &mut Ctx<'_>,
    router: Option<&Value>,
    litellm: Option<&Value>,
) -> (RouterSettings, Vec<AliasDraft>) {
    let mut settings = RouterSettings {
        api_version: Some(SETTINGS_API_VERSION.to_owned()),
        kind: Some(SETTINGS_KIND.to_owned()),
        ..RouterSettings::default()
    };
    let mut aliases = Vec::new();

    let lit = match section(ctx, litellm, "litellm_settings") {
        Some(m) => {
            warn_unread(ctx, m, "litellm_settings", &LITELLM_KEYS);
            if let Some(v) = m.get("drop_params").filter(|v| !v.is_null()) {
                settings.drop_params = ctx.boolean(v, "litellm_settings.drop_params");
            }
            shared(ctx, m, "litellm_settings", "request_timeout")
        }
        None => Shared::default(),
    };
    let rtr = match section(ctx, router, "router_settings") {
        Some(m) => {
            warn_unread(ctx, m, "router_settings", &ROUTER_KEYS);
            if let Some(v) = m.get("routing_strategy").filter(|v| !v.is_null()) {
                settings.routing_strategy = routing_strategy(ctx, v);
            }
            if let Some(v) = m.get("routing_strategy_args").filter(|v| !v.is_null()) {
                settings.latency_buffer = routing_strategy_args(ctx, v);
            }
            if let Some(v) = m.get("model_group_alias").filter(|v| !v.is_null()) {
                aliases = alias_drafts(ctx, v);
            }
            settings.redis_url = redis(ctx, m);
            shared(ctx, m, "router_settings", "timeout")
        }
        None => Shared::default(),
    };

    settings.retries = pick(ctx, "num_retries", "num_retries", rtr.retries, lit.retries);
    let request = pick(
        ctx,
        "timeout",
        "request_timeout",
        rtr.request_timeout,
        lit.request_timeout,
    );
    let stream = pick(
        ctx,
        "stream_timeout",
        "stream_timeout",
        rtr.stream_timeout,
        lit.stream_timeout,
    );
    if request.is_some() || stream.is_some() {
        settings.timeouts = Some(Timeouts {
            request,
            stream: stream.map(|d| StreamTimeouts {
                first_byte: Some(d.clone()),
                idle: Some(d),
            }),
        });
    }
    let allowed_fails = pick(
        ctx,
        "allowed_fails",
        "allowed_fails",
        rtr.allowed_fails,
        lit.allowed_fails,
    );
    let cooldown_time = pick(
        ctx,
        "cooldown_time",
        "cooldown_time",
        rtr.cooldown_time,
        lit.cooldown_time,
    );
    if allowed_fails.is_some() || cooldown_time.is_some() {
        settings.cooldown = Some(Cooldown {
            allowed_fails,
            cooldown_time,
        });
    }
    settings.fallbacks = merge_fallbacks(ctx, "fallbacks", rtr.fallbacks, lit.fallbacks);
    settings.context_window_fallbacks = merge_fallbacks(
        ctx,
        "context_window_fallbacks",
        rtr.context_window_fallbacks,
        lit.context_window_fallbacks,
    );
    (settings, aliases)
}

/// `router_settings` over `litellm_settings`, with a warning when they disagree.
fn pick<T: PartialEq + Debug>(
    ctx: &mut Ctx<'_>,
    router_key: &str,
    litellm_key: &str,
    router: Option<T>,
    litellm: Option<T>,
) -> Option<T> {
    match (router, litellm) {
        (Some(r), Some(l)) => {
            if r != l {
                ctx.warn(format!(
                    "router_settings.{router_key} ({r:?}) wins over litellm_settings.{litellm_key} ({l:?})"
                ));
            }
            Some(r)
        }
        (r, l) => r.or(l),
    }
}

fn merge_fallbacks(
    ctx: &mut Ctx<'_>,
    key: &str,
    router: BTreeMap<String, Vec<String>>,
    litellm: BTreeMap<String, Vec<String>>,
) -> BTreeMap<String, Vec<String>> {
    let mut out = litellm;
    for (group, list) in router {
        if let Some(old) = out.get(&group)
            && *old != list
        {
            ctx.warn(format!(
                "router_settings.{key} for {group} wins over litellm_settings.{key} ({old:?})"
            ));
        }
        out.insert(group, list);
    }
    out
}

fn routing_strategy(ctx: &mut Ctx<'_>, v: &Value) -> Option<RoutingStrategy> {
    let at = "router_settings.routing_strategy";
    let s = ctx.text(v, at)?;
    let strategy = match s.as_str() {
        "simple-shuffle" => RoutingStrategy::SimpleShuffle,
        "least-busy" => RoutingStrategy::LeastBusy,
        "usage-based-routing" | "usage-based-routing-v2" => RoutingStrategy::UsageBased,
        "latency-based-routing" => RoutingStrategy::LatencyBased,
        "cost-based-routing" => RoutingStrategy::LowestCost,
        other => {
            ctx.warn(format!(
                "{at} {other:?} has no Modelgate equivalent; not translated (the default simple-shuffle applies)"
            ));
            return None;
        }
    };
    Some(strategy)
}

/// `routing_strategy_args`: only `lowest_latency_buffer` has an equivalent.
fn routing_strategy_args(ctx: &mut Ctx<'_>, v: &Value) -> Option<f64> {
    let at = "router_settings.routing_strategy_args";
    let Value::Mapping(m) = v else {
        ctx.warn(format!(
            "{at} must be a mapping, found {}; not translated",
            type_name(v)
        ));
        return None;
    };
    warn_unread(ctx, m, at, &["lowest_latency_buffer"]);
    let v = m.get("lowest_latency_buffer").filter(|v| !v.is_null())?;
    let field = format!("{at}.lowest_latency_buffer");
    match ctx.number(v, &field)? {
        b if (0.0..=10.0).contains(&b) => Some(b),
        b => {
            ctx.warn(format!(
                "{field} must be between 0 and 10, found {b}; not translated"
            ));
            None
        }
    }
}

/// `model_group_alias`: `{"gpt-4": "gpt-4o"}` or `{"gpt-4": {"model": "gpt-4o", "hidden": true}}`.
fn alias_drafts(ctx: &mut Ctx<'_>, v: &Value) -> Vec<AliasDraft> {
    let base = "router_settings.model_group_alias";
    let Value::Mapping(m) = v else {
        ctx.warn(format!(
            "{base} must be a mapping, found {}; not translated",
            type_name(v)
        ));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in m {
        let alias = key_text(k);
        let at = format!("{base}.{alias}");
        let (target, hidden) = match v {
            Value::Mapping(spec) => {
                warn_unread(ctx, spec, &at, &["model", "hidden"]);
                let target = spec
                    .get("model")
                    .and_then(|t| ctx.text(t, &format!("{at}.model")));
                let hidden = spec
                    .get("hidden")
                    .filter(|h| !h.is_null())
                    .and_then(|h| ctx.boolean(h, &format!("{at}.hidden")))
                    .unwrap_or(false);
                (target, hidden)
            }
            other => (ctx.text(other, &at), false),
        };
        match target {
            Some(target) => out.push(AliasDraft {
                alias,
                target,
                hidden,
                at,
            }),
            None => ctx.warn(format!("{at}: skipped: no target model")),
        }
    }
    out
}

/// Turns alias drafts into valid `ModelGroupAlias`es; `model_names` are the groups the
/// import emits.
pub(super) fn aliases(
    ctx: &mut Ctx<'_>,
    drafts: Vec<AliasDraft>,
    model_names: &BTreeSet<String>,
) -> Vec<ModelGroupAlias> {
    let alias_names: BTreeSet<String> = drafts.iter().map(|d| d.alias.clone()).collect();
    let mut specs = Vec::new();
    for d in drafts {
        if model_names.contains(&d.alias) {
            ctx.warn(format!(
                "{}: skipped: {} is also a model_name, and a Modelgate alias cannot shadow a model group",
                d.at, d.alias
            ));
            continue;
        }
        if !model_names.contains(&d.target) && !alias_names.contains(&d.target) {
            ctx.warn(format!(
                "{}: target {} is not a model_name of an imported deployment; the alias is not accepted until that model group exists",
                d.at, d.target
            ));
        }
        let spec = ModelGroupAliasSpec {
            alias: d.alias.clone(),
            targets: vec![AliasTarget {
                model: d.target,
                weight: None,
            }],
            fallbacks: Vec::new(),
            hidden: d.hidden.then_some(true),
        };
        let errors = spec.validate();
        if errors.is_empty() {
            specs.push(spec);
        } else {
            let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
            ctx.warn(format!(
                "{}: skipped, not a valid ModelGroupAlias: {}",
                d.at,
                list.join("; ")
            ));
        }
    }
    let bases: Vec<String> = specs.iter().map(|s| names::label(&s.alias)).collect();
    specs
        .into_iter()
        .zip(names::assign(&bases))
        .map(|(spec, name)| {
            let mut a = ModelGroupAlias::new(&name, spec);
            a.metadata.namespace = Some(ctx.opts.namespace.clone());
            a
        })
        .collect()
}

/// `redis_url`, or `redis_host`/`redis_port`/`redis_password` made into one URL.
fn redis(ctx: &mut Ctx<'_>, m: &Mapping) -> Option<SecretValueSource> {
    let get = |key: &str| m.get(key).filter(|v| !v.is_null());
    let parts = ["redis_host", "redis_port", "redis_password"];
    if let Some(url) = get("redis_url") {
        for key in parts {
            if get(key).is_some() {
                ctx.warn(format!(
                    "router_settings.{key}: not translated; redis_url is used instead"
                ));
            }
        }
        return ctx
            .secret(url, "router_settings.redis_url", "redis-url")
            .map(|secret_key_ref| SecretValueSource { secret_key_ref });
    }
    let Some(host) = get("redis_host") else {
        for key in ["redis_port", "redis_password"] {
            if get(key).is_some() {
                ctx.warn(format!(
                    "router_settings.{key}: not translated without redis_host"
                ));
            }
        }
        return None;
    };
    let at = "router_settings.redis_host/redis_port/redis_password";
    let host = ctx.secret_source(host, "router_settings.redis_host")?;
    let port = match get("redis_port") {
        Some(v) => ctx.secret_source(v, "router_settings.redis_port")?,
        None => Source::Literal("6379".to_owned()),
    };
    let password = match get("redis_password") {
        Some(v) => Some(ctx.secret_source(v, "router_settings.redis_password")?),
        None => None,
    };

    let literal = |s: &Source| matches!(s, Source::Literal(_));
    if literal(&host) && literal(&port) && password.as_ref().is_none_or(literal) {
        let text = |s: &Source| match s {
            Source::Literal(v) | Source::Env(v) => v.clone(),
        };
        let auth = password
            .as_ref()
            .map(|p| format!(":{}@", percent_encode(&text(p))))
            .unwrap_or_default();
        let url = format!("redis://{auth}{}:{}", text(&host), text(&port));
        if password.is_some() {
            ctx.warn(format!(
                "{at}: the Redis URL holds a literal password; it was moved into Secret {} (key redis-url); keep that Secret out of git, and rotate the password if the config ever was in git",
                ctx.opts.literal_secret
            ));
        } else {
            ctx.warn(format!(
                "{at}: made into one Redis URL, stored in Secret {} (key redis-url), since RouterSettings reads it from a Secret",
                ctx.opts.literal_secret
            ));
        }
        let key = ctx.store_literal(url, "redis-url");
        return Some(SecretValueSource {
            secret_key_ref: SecretKeySelector {
                name: ctx.opts.literal_secret.clone(),
                key,
            },
        });
    }
    if password.as_ref().is_some_and(literal) {
        ctx.warn(format!(
            "{at}: skipped: a literal redis_password with os.environ/ host or port cannot be made into one URL without showing the password; give the whole URL as redis_url"
        ));
        return None;
    }
    let shell = |s: &Source| match s {
        Source::Env(name) => format!("${{{name}}}"),
        Source::Literal(v) => shell_escape(v),
    };
    let auth = password
        .as_ref()
        .map(|p| format!(":{}@", shell(p)))
        .unwrap_or_default();
    let template = format!("redis://{auth}{}:{}", shell(&host), shell(&port));
    let names: Vec<&str> = [Some(&host), Some(&port), password.as_ref()]
        .into_iter()
        .flatten()
        .filter_map(|s| match s {
            Source::Env(n) => Some(n.as_str()),
            Source::Literal(_) => None,
        })
        .collect();
    ctx.warn(format!(
        "{at}: Modelgate reads one Redis URL; the secret command composes key {REDIS_URL_KEY} of Secret {} from {} (percent-encode a password with URL-reserved characters)",
        ctx.opts.env_secret,
        names.join(", ")
    ));
    let secret_key_ref = ctx.env_template_ref(REDIS_URL_KEY, template);
    Some(SecretValueSource { secret_key_ref })
}

/// Escapes text for a double-quoted shell string.
fn shell_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding() {
        assert_eq!(percent_encode("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
        assert_eq!(shell_escape("a\"$b`\\"), "a\\\"\\$b\\`\\\\");
    }
}
