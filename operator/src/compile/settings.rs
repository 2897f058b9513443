//! The router settings document into the table's settings.
//!
//! An invalid field is reported and its default used, except the master key: a master key
//! whose Secret cannot be read stays referenced without a value, so the table fails
//! validation and is never served without the auth it asked for (fail closed).

use std::collections::BTreeMap;

use modelgate_crds::RouterSettings;
use modelgate_crds::settings::{RoutingStrategy, SecretValueSource};
use modelgate_dataplane_api as api;

use super::{CredentialSink, Diagnostics, ObjectKey, Reason, SecretStore};

pub(crate) fn compile_settings(
    s: &RouterSettings,
    namespace: &str,
    secrets: &SecretStore,
    key: &ObjectKey,
    creds: &mut CredentialSink,
    diags: &mut Diagnostics,
) -> api::Settings {
    let errors = s.validate();
    let bad = |path: &str| errors.iter().any(|e| e.path.starts_with(path));
    for e in &errors {
        diags.warn(
            key,
            Reason::InvalidSettings,
            format!("{e}; the default is used"),
        );
    }
    let defaults = api::Settings::default();
    let ms = |path: &str, v: Option<&String>, default: u64| -> u64 {
        match v {
            Some(v) if !bad(path) => modelgate_crds::parse_duration(v)
                .ok()
                .and_then(|d| u64::try_from(d.as_millis()).ok())
                .filter(|ms| *ms > 0)
                .unwrap_or(default),
            _ => default,
        }
    };
    let t = s.timeouts.as_ref();
    let st = t.and_then(|t| t.stream.as_ref());
    let timeouts = api::Timeouts {
        request_ms: ms(
            "timeouts.request",
            t.and_then(|t| t.request.as_ref()),
            defaults.timeouts.request_ms,
        ),
        stream_first_byte_ms: ms(
            "timeouts.stream.firstByte",
            st.and_then(|s| s.first_byte.as_ref()),
            defaults.timeouts.stream_first_byte_ms,
        ),
        stream_idle_ms: ms(
            "timeouts.stream.idle",
            st.and_then(|s| s.idle.as_ref()),
            defaults.timeouts.stream_idle_ms,
        ),
    };
    let c = s.cooldown.as_ref();
    let cooldown = api::Cooldown {
        allowed_fails: c
            .and_then(|c| c.allowed_fails)
            .unwrap_or(defaults.cooldown.allowed_fails),
        cooldown_ms: ms(
            "cooldown.cooldownTime",
            c.and_then(|c| c.cooldown_time.as_ref()),
            defaults.cooldown.cooldown_ms,
        ),
    };

    let mut resolve = |path: &str, source: &Option<SecretValueSource>, required: bool| {
        let source = source.as_ref()?;
        let r = &source.secret_key_ref;
        let id = CredentialSink::id(namespace, &r.name);
        match secrets.get(namespace, &r.name, &r.key) {
            Ok(value) => {
                creds.add(&id, &r.key, value);
                Some(api::SecretKeyRef {
                    secret: id,
                    key: r.key.clone(),
                })
            }
            Err(e) if required => {
                diags.error(
                    key,
                    Reason::InvalidSettings,
                    format!("{path}: {e}; no table is served until it can be read"),
                );
                Some(api::SecretKeyRef {
                    secret: id,
                    key: r.key.clone(),
                })
            }
            Err(e) => {
                diags.warn(
                    key,
                    Reason::InvalidSettings,
                    format!("{path}: {e}; limits are kept per data-plane pod instead"),
                );
                None
            }
        }
    };
    let master_key = resolve("masterKey", &s.master_key, true);
    let redis_url = resolve("redisUrl", &s.redis_url, false);

    api::Settings {
        routing_strategy: match s.routing_strategy.unwrap_or_default() {
            RoutingStrategy::SimpleShuffle => api::RoutingStrategy::SimpleShuffle,
            RoutingStrategy::LeastBusy => api::RoutingStrategy::LeastBusy,
            RoutingStrategy::LatencyBased => api::RoutingStrategy::LatencyBased,
            RoutingStrategy::LowestCost => api::RoutingStrategy::LowestCost,
            RoutingStrategy::UsageBased => api::RoutingStrategy::UsageBased,
        },
        latency_buffer: s
            .latency_buffer
            .filter(|_| !bad("latencyBuffer"))
            .unwrap_or(defaults.latency_buffer),
        retries: s
            .retries
            .filter(|_| !bad("retries"))
            .unwrap_or(defaults.retries),
        timeouts,
        cooldown,
        fallbacks: s.fallbacks.clone(),
        context_window_fallbacks: s.context_window_fallbacks.clone(),
        drop_params: s.drop_params.unwrap_or(false),
        max_request_body_bytes: s
            .max_request_body_bytes
            .filter(|b| *b > 0)
            .unwrap_or(defaults.max_request_body_bytes),
        master_key,
        redis_url,
    }
}

/// Drops fallback entries that name no accepted group or alias, with a warning each.
pub(crate) fn prune_fallbacks(
    settings: &mut api::Settings,
    groups: &BTreeMap<String, api::Group>,
    aliases: &[api::Alias],
    key: &ObjectKey,
    diags: &mut Diagnostics,
) {
    let known = |name: &str| {
        groups.contains_key(name)
            || aliases
                .binary_search_by(|a| a.name.as_str().cmp(name))
                .is_ok()
            || super::aliases::wildcard_group_for(name, groups).is_some()
    };
    for (kind, map) in [
        ("fallbacks", &mut settings.fallbacks),
        (
            "contextWindowFallbacks",
            &mut settings.context_window_fallbacks,
        ),
    ] {
        let mut kept = BTreeMap::new();
        for (from, tos) in std::mem::take(map) {
            if !known(&from) {
                diags.warn(
                    key,
                    Reason::MissingFallback,
                    format!("{kind}: {from:?} is not an accepted model group or alias; its fallbacks are ignored"),
                );
                continue;
            }
            let mut list = Vec::new();
            for to in tos {
                if known(&to) {
                    if !list.contains(&to) {
                        list.push(to);
                    }
                } else {
                    diags.warn(
                        key,
                        Reason::MissingFallback,
                        format!("{kind}[{from}]: {to:?} is not an accepted model group or alias; it is skipped"),
                    );
                }
            }
            if !list.is_empty() {
                kept.insert(from, list);
            }
        }
        *map = kept;
    }
}
