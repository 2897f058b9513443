//! The read-only endpoints: `/v1/models`, `/model/info` and `/model_group/info` in the
//! shapes OpenAI and LiteLLM clients expect, and `/health`. Credentials never appear:
//! these read only the non-secret fields of the table.

use std::collections::BTreeSet;
use std::time::Instant;

use serde_json::{Value, json};

use crate::errors::ApiError;
use crate::router::{Router, Target, wall_ms};

/// True for a path this module serves.
pub fn is_info_path(path: &str) -> bool {
    matches!(
        path,
        "/v1/models"
            | "/models"
            | "/model/info"
            | "/v1/model/info"
            | "/model_group/info"
            | "/health"
    ) || path.starts_with("/v1/models/")
}

/// The answer to `GET path`, or `None` when the path is not an info path.
pub fn get(router: &Router, path: &str) -> Option<Result<Value, ApiError>> {
    Some(match path {
        "/v1/models" | "/models" => Ok(models(router)),
        "/model/info" | "/v1/model/info" => Ok(model_info(router)),
        "/model_group/info" => Ok(model_group_info(router)),
        "/health" => Ok(health(router)),
        _ => {
            let id = path.strip_prefix("/v1/models/")?;
            model(router, id)
        }
    })
}

fn model_entry(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": "modelgate"})
}

/// Every group and every non-hidden alias.
fn models(router: &Router) -> Value {
    let mut names: BTreeSet<&str> = router.groups.iter().map(|g| g.name.as_str()).collect();
    names.extend(
        router
            .aliases
            .values()
            .filter(|a| !a.hidden)
            .map(|a| a.name.as_str()),
    );
    json!({"object": "list", "data": names.into_iter().map(model_entry).collect::<Vec<_>>()})
}

fn model(router: &Router, id: &str) -> Result<Value, ApiError> {
    match router.route(id) {
        Some(_) => Ok(model_entry(id)),
        None => Err(ApiError::model_not_found(id)),
    }
}

fn litellm_row(model_name: &str, t: &Target) -> Value {
    let d = &t.spec;
    let info = &d.model_info;
    json!({
        "model_name": model_name,
        "litellm_params": {
            "model": format!("{}/{}", d.provider, d.upstream_model),
            "api_base": d.api_base,
            "api_version": d.api_version,
            "region_name": d.region,
            "rpm": d.limits.rpm,
            "tpm": d.limits.tpm,
            "max_parallel_requests": d.limits.max_concurrent_requests,
            "timeout": d.timeouts.request_ms as f64 / 1000.0,
            "stream_timeout": d.timeouts.stream_first_byte_ms as f64 / 1000.0,
            "weight": d.weight,
            "order": d.order,
            "num_retries": d.retries,
        },
        "model_info": {
            "id": d.id,
            "mode": info.mode,
            "base_model": info.base_model,
            "max_input_tokens": info.context_window,
            "max_output_tokens": info.max_output_tokens,
            "max_tokens": info.max_output_tokens,
            "input_cost_per_token": info.input_cost_per_token,
            "output_cost_per_token": info.output_cost_per_token,
            "supports_reasoning": info.reasoning,
            "litellm_provider": d.provider,
        },
    })
}

/// One row per deployment, and each deployment again under every listed alias reaching
/// it (hidden aliases are routed but listed nowhere).
fn model_info(router: &Router) -> Value {
    let mut rows = Vec::new();
    for g in &router.groups {
        for i in &g.members {
            rows.push(litellm_row(&g.name, &router.targets[*i]));
        }
    }
    let mut aliases: Vec<_> = router.aliases.values().filter(|a| !a.hidden).collect();
    aliases.sort_by(|a, b| a.name.cmp(&b.name));
    for a in aliases {
        let mut seen = BTreeSet::new();
        for (g, _, _) in &a.targets {
            for i in &router.groups[*g].members {
                if seen.insert(*i) {
                    rows.push(litellm_row(&a.name, &router.targets[*i]));
                }
            }
        }
    }
    json!({"data": rows})
}

fn group_row(router: &Router, name: &str, members: &[usize]) -> Value {
    let targets: Vec<&Target> = members.iter().map(|i| &router.targets[*i]).collect();
    let providers: BTreeSet<&str> = targets.iter().map(|t| t.spec.provider.as_str()).collect();
    let first = targets.first().map(|t| &t.spec.model_info);
    let sum = |f: fn(&Target) -> Option<u64>| -> Option<u64> {
        let values: Vec<u64> = targets.iter().filter_map(|t| f(t)).collect();
        (!values.is_empty()).then(|| values.iter().sum())
    };
    json!({
        "model_group": name,
        "providers": providers,
        "mode": first.map(|i| i.mode),
        "max_input_tokens": first.and_then(|i| i.context_window),
        "max_output_tokens": first.and_then(|i| i.max_output_tokens),
        "input_cost_per_token": first.and_then(|i| i.input_cost_per_token),
        "output_cost_per_token": first.and_then(|i| i.output_cost_per_token),
        "rpm": sum(|t| t.spec.limits.rpm),
        "tpm": sum(|t| t.spec.limits.tpm),
        "deployments": members.len(),
    })
}

/// One row per group and per listed alias.
fn model_group_info(router: &Router) -> Value {
    let mut rows: Vec<Value> = router
        .groups
        .iter()
        .map(|g| group_row(router, &g.name, &g.members))
        .collect();
    let mut aliases: Vec<_> = router.aliases.values().filter(|a| !a.hidden).collect();
    aliases.sort_by(|a, b| a.name.cmp(&b.name));
    for a in aliases {
        let mut members: Vec<usize> = Vec::new();
        for (g, _, _) in &a.targets {
            for i in &router.groups[*g].members {
                if !members.contains(i) {
                    members.push(*i);
                }
            }
        }
        rows.push(group_row(router, &a.name, &members));
    }
    json!({"data": rows})
}

/// The latest health of each deployment: once per deployment, whatever aliases reach it,
/// with what the admin health report says of it (no credential is in either: the
/// reasons are redacted where they are made).
fn health(router: &Router) -> Value {
    let mut healthy = Vec::new();
    let mut unhealthy = Vec::new();
    let mut unknown = Vec::new();
    let now = Instant::now();
    let wall = wall_ms();
    for t in &router.targets {
        let h = t.state.health();
        let cooldown_until_ms = t
            .state
            .cooling_until(now)
            .map(|until| wall + until.duration_since(now).as_millis() as u64);
        let row = json!({
            "id": t.spec.id,
            "model": t.spec.model,
            "provider": t.spec.provider,
            "api_base": t.spec.api_base,
            "healthy": h.healthy,
            "last_check_ms": h.last_check_ms,
            "latency_ms": h.latency_ms,
            "error": h.reason,
            "reason_code": h.code,
            "source": h.source,
            "consecutive_failures": t.state.consecutive_failures(),
            "cooldown_until_ms": cooldown_until_ms,
            "table_version": h.table_version.as_deref(),
        });
        match h.healthy {
            Some(true) => healthy.push(row),
            Some(false) => unhealthy.push(row),
            None => unknown.push(row),
        }
    }
    json!({
        "healthy_count": healthy.len(),
        "unhealthy_count": unhealthy.len(),
        "unknown_count": unknown.len(),
        "healthy_endpoints": healthy,
        "unhealthy_endpoints": unhealthy,
        "unknown_endpoints": unknown,
        "table_version": router.table.version,
    })
}
