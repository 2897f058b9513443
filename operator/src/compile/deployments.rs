//! One `ModelDeployment` into one routing-table deployment, or a diagnostic.

use modelgate_crds::deployment::{
    ConcurrencyScope, Credentials, Limits, ModelDeploymentSpec, ModelInfo, Routing,
};
use modelgate_crds::rules::describe;
use modelgate_crds::{Mode, Probe, Provider, RouterSettings, parse_duration};
use modelgate_dataplane_api as api;

use super::ownership::{Owners, check_name};
use super::secrets::SecretLookupError;
use super::{CredentialSink, Diagnostics, Meta, Reason, SecretStore};

/// Default interval of active health checks.
const HEALTH_INTERVAL_MS: u64 = 60_000;
/// Default timeout of active health checks.
const HEALTH_TIMEOUT_MS: u64 = 10_000;

/// A deployment that compiled, with the credential values it needs.
pub(crate) struct Candidate {
    pub deployment: api::Deployment,
    pub namespace: String,
    /// `(credential id, key, value)`.
    pub secret_values: Vec<(String, String, String)>,
}

pub(crate) fn compile_deployment(
    meta: &Meta,
    spec: &ModelDeploymentSpec,
    settings: &api::Settings,
    secrets: &SecretStore,
    owners: &Owners,
    router_settings: &RouterSettings,
    diags: &mut Diagnostics,
) -> Option<Candidate> {
    let key = &meta.key;
    let ns = key.namespace.as_str();

    let errors = spec.validate();
    if !errors.is_empty() {
        diags.error(key, Reason::InvalidSpec, describe(&errors));
        return None;
    }
    if let Err((reason, msg)) = check_name(owners, router_settings, &spec.model, ns) {
        diags.error(key, reason, msg);
        return None;
    }
    let provider = spec.upstream.provider;
    if !api::serves_provider(provider.as_str()) {
        diags.error(
            key,
            Reason::UnsupportedProvider,
            format!(
                "provider {provider} is not served by this version of the data plane (served: {})",
                api::SERVED_PROVIDERS.join(", ")
            ),
        );
        return None;
    }

    let mut bad_durations = Vec::new();
    let mut ms = |value: Option<&String>, path: &str, default: u64| -> u64 {
        match value.map(|v| parse_duration(v)) {
            None => default,
            Some(Ok(d)) if d.as_millis() > 0 => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            Some(_) => {
                bad_durations.push(format!("{path} must be greater than 0"));
                default
            }
        }
    };
    let timeouts_spec = spec.timeouts.as_ref();
    let stream_spec = timeouts_spec.and_then(|t| t.stream.as_ref());
    let timeouts = api::Timeouts {
        request_ms: ms(
            timeouts_spec.and_then(|t| t.request.as_ref()),
            "spec.timeouts.request",
            settings.timeouts.request_ms,
        ),
        stream_first_byte_ms: ms(
            stream_spec.and_then(|s| s.first_byte.as_ref()),
            "spec.timeouts.stream.firstByte",
            settings.timeouts.stream_first_byte_ms,
        ),
        stream_idle_ms: ms(
            stream_spec.and_then(|s| s.idle.as_ref()),
            "spec.timeouts.stream.idle",
            settings.timeouts.stream_idle_ms,
        ),
    };
    let hc = spec.health_check.as_ref();
    let health_interval = ms(
        hc.and_then(|h| h.interval.as_ref()),
        "spec.healthCheck.interval",
        HEALTH_INTERVAL_MS,
    );
    let health_timeout = ms(
        hc.and_then(|h| h.timeout.as_ref()),
        "spec.healthCheck.timeout",
        HEALTH_TIMEOUT_MS,
    );
    let mock_delay = spec
        .upstream
        .mock
        .as_ref()
        .and_then(|m| m.delay.as_ref())
        .map(|d| match parse_duration(d) {
            Ok(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            Err(_) => 0,
        })
        .unwrap_or(0);
    if !bad_durations.is_empty() {
        diags.error(key, Reason::InvalidSpec, bad_durations.join("; "));
        return None;
    }

    let mut secret_values = Vec::new();
    let credentials = match &spec.upstream.credentials {
        None => None,
        Some(c) => match resolve_credentials(ns, c, secrets, &mut secret_values) {
            Ok(c) => Some(c),
            Err(e) => {
                let reason = match e {
                    SecretLookupError::MissingSecret { .. } => Reason::MissingSecret,
                    SecretLookupError::MissingKey { .. } => Reason::MissingSecretKey,
                    SecretLookupError::InvalidValue { .. } => Reason::InvalidSecretValue,
                };
                diags.error(key, reason, e.to_string());
                return None;
            }
        },
    };

    let default_info = ModelInfo::default();
    let info = spec.model_info.as_ref().unwrap_or(&default_info);
    let mode = info.mode.unwrap_or_default();
    let probe = hc
        .and_then(|h| h.probe)
        .unwrap_or_else(|| default_probe(provider, mode));
    let default_routing = Routing::default();
    let routing = spec.routing.as_ref().unwrap_or(&default_routing);
    let default_limits = Limits::default();
    let limits = spec.limits.as_ref().unwrap_or(&default_limits);
    let positive = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
    let is_wildcard = spec.model.ends_with("/*");
    let upstream_model = match &spec.upstream.model {
        Some(m) => m.clone(),
        None if is_wildcard => "*".to_owned(),
        None => spec.model.clone(),
    };

    let deployment = api::Deployment {
        id: format!("{}/{}", ns, key.name),
        generation: meta.generation,
        model: spec.model.clone(),
        provider: provider.as_str().to_owned(),
        upstream_model,
        api_base: spec
            .upstream
            .api_base
            .as_ref()
            .map(|b| b.trim_end_matches('/').to_owned()),
        api_version: spec.upstream.api_version.clone(),
        region: spec.upstream.region.clone(),
        headers: spec
            .upstream
            .headers
            .iter()
            .map(|h| api::Header {
                name: h.name.clone(),
                value: h.value.clone(),
            })
            .collect(),
        credentials,
        limits: api::Limits {
            rpm: positive(limits.rpm),
            tpm: positive(limits.tpm),
            max_concurrent_requests: positive(limits.max_concurrent_requests),
            concurrency_scope: match limits.concurrency_scope.unwrap_or_default() {
                ConcurrencyScope::Pod => api::ConcurrencyScope::Pod,
                ConcurrencyScope::Fleet => api::ConcurrencyScope::Fleet,
            },
        },
        timeouts,
        weight: routing
            .weight
            .and_then(|w| u32::try_from(w).ok())
            .unwrap_or(1),
        order: routing
            .order
            .and_then(|o| u32::try_from(o).ok())
            .unwrap_or(1),
        retries: routing
            .retries
            .and_then(|r| u32::try_from(r).ok())
            .unwrap_or(settings.retries),
        model_info: api::ModelInfo {
            mode: map_mode(mode),
            base_model: info.base_model.clone(),
            context_window: positive(info.context_window),
            max_output_tokens: positive(info.max_output_tokens),
            input_cost_per_token: info.input_cost_per_token,
            output_cost_per_token: info.output_cost_per_token,
            reasoning: info.reasoning.unwrap_or(false),
        },
        health_check: api::HealthCheck {
            enabled: hc.and_then(|h| h.enabled).unwrap_or(true),
            interval_ms: health_interval,
            timeout_ms: health_timeout,
            probe: map_probe(probe),
            url: hc.and_then(|h| h.url.clone()),
        },
        mock: spec.upstream.mock.as_ref().map(|m| api::Mock {
            response: m.response.clone(),
            delay_ms: mock_delay,
        }),
    };
    Some(Candidate {
        deployment,
        namespace: ns.to_owned(),
        secret_values,
    })
}

fn resolve_credentials(
    ns: &str,
    c: &Credentials,
    secrets: &SecretStore,
    values: &mut Vec<(String, String, String)>,
) -> Result<api::DeploymentCredentials, SecretLookupError> {
    let (secret_name, out) = match (&c.secret_key_ref, &c.secret_name, &c.keys) {
        (Some(r), _, _) => (
            r.name.as_str(),
            api::DeploymentCredentials {
                secret: CredentialSink::id(ns, &r.name),
                api_key: Some(r.key.clone()),
                access_key_id: None,
                secret_access_key: None,
                session_token: None,
            },
        ),
        (None, Some(name), Some(keys)) => (
            name.as_str(),
            api::DeploymentCredentials {
                secret: CredentialSink::id(ns, name),
                api_key: keys.api_key.clone(),
                access_key_id: keys.access_key_id.clone(),
                secret_access_key: keys.secret_access_key.clone(),
                session_token: keys.session_token.clone(),
            },
        ),
        // The spec rules reject every other shape before this point.
        _ => {
            return Err(SecretLookupError::MissingSecret {
                namespace: ns.to_owned(),
                name: String::new(),
            });
        }
    };
    for (_, key) in out.keys() {
        let value = secrets.get(ns, secret_name, key)?;
        values.push((out.secret.clone(), key.to_owned(), value.to_owned()));
    }
    Ok(out)
}

/// The cheapest probe that tells whether the deployment answers: the provider's model
/// list where it has one (free), otherwise a minimal request of the model's mode.
fn default_probe(provider: Provider, mode: Mode) -> Probe {
    match provider {
        Provider::Mock
        | Provider::Openai
        | Provider::OpenaiCompatible
        | Provider::Azure
        | Provider::Anthropic
        | Provider::Gemini => Probe::ModelsList,
        Provider::Bedrock => match mode {
            Mode::Embedding => Probe::Embedding,
            Mode::Completion => Probe::Completion,
            _ => Probe::Chat,
        },
    }
}

fn map_mode(m: Mode) -> api::Mode {
    match m {
        Mode::Chat => api::Mode::Chat,
        Mode::Completion => api::Mode::Completion,
        Mode::Embedding => api::Mode::Embedding,
        Mode::ImageGeneration => api::Mode::ImageGeneration,
        Mode::AudioTranscription => api::Mode::AudioTranscription,
        Mode::AudioSpeech => api::Mode::AudioSpeech,
        Mode::Rerank => api::Mode::Rerank,
    }
}

fn map_probe(p: Probe) -> api::Probe {
    match p {
        Probe::ModelsList => api::Probe::ModelsList,
        Probe::Chat => api::Probe::Chat,
        Probe::Completion => api::Probe::Completion,
        Probe::Embedding => api::Probe::Embedding,
        Probe::Url => api::Probe::Url,
    }
}
