//! The validation rules of both resources, once as CEL (evaluated by the API server) and
//! once in Rust (for manifests that never meet an API server, such as `operator local`).
//!
//! Regular expressions spell whitespace as the explicit class `\t\n\x0B\f\r\x{85}\p{Z}`
//! (Unicode White_Space, the same set as Rust's `char::is_whitespace`) instead of `\s`,
//! which means less in the API server's RE2 than in Rust's regex.
//!
//! Every CEL rule's message is a constant here and the Rust twin reports the same message,
//! so the CEL tests can check that both sides reject the same objects for the same reasons.

use crate::alias::ModelGroupAliasSpec;
use crate::common::{
    DURATION_MESSAGE, MAX_DURATION, MAX_FALLBACKS, MAX_HEADER_NAME, MAX_HEADER_VALUE, MAX_HEADERS,
    MAX_MOCK_RESPONSE, MAX_MODEL_NAME, MAX_OBJECT_NAME, MAX_SECRET_KEY, MAX_SHORT_TEXT,
    MAX_TARGETS, MAX_URL, URL_MESSAGE, is_http_url, parse_duration,
};
use crate::deployment::{ModelDeploymentSpec, Probe, Provider, Upstream};

/// One rule an object breaks, with the path of the field that breaks it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FieldError {
    /// Path of the field, e.g. `spec.upstream.apiBase`.
    pub path: String,
    /// The rule's message (the same text as the CEL rule's `message`).
    pub message: String,
}

/// All of an object's rule violations as one message, `path: message; path: message`.
pub fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

pub(crate) const MODEL_NAME_RULE: &str = r"self.matches('^[^\\t\\n\\x0B\\f\\r\\x{85}\\p{Z}]+$')";
pub(crate) const MODEL_NAME_MESSAGE: &str = "model must be non-empty and contain no whitespace";
pub(crate) const WILDCARD_RULE: &str =
    r"!self.contains('*') || self.matches('^[A-Za-z0-9][A-Za-z0-9_.-]*/\\*$')";
pub(crate) const WILDCARD_MESSAGE: &str =
    "a wildcard model must have the form provider/* (for example openai/*)";
pub(crate) const WILDCARD_UPSTREAM_RULE: &str = r"!has(self.upstream.model) || (self.model.endsWith('/*') ? self.upstream.model.matches('^([^*\\t\\n\\x0B\\f\\r\\x{85}\\p{Z}]+/)?\\*$') : !self.upstream.model.contains('*'))";
pub(crate) const WILDCARD_UPSTREAM_MESSAGE: &str = "upstream.model of a wildcard model must be * or prefix/* (or unset); other models cannot use *";

pub(crate) const AZURE_RULE: &str =
    "self.provider != 'azure' || (has(self.apiBase) && has(self.apiVersion))";
pub(crate) const AZURE_MESSAGE: &str =
    "provider azure needs apiBase (the resource endpoint) and apiVersion";
pub(crate) const BEDROCK_REGION_RULE: &str = "self.provider != 'bedrock' || has(self.region)";
pub(crate) const BEDROCK_REGION_MESSAGE: &str = "provider bedrock needs region";
pub(crate) const COMPATIBLE_BASE_RULE: &str =
    "self.provider != 'openai-compatible' || has(self.apiBase)";
pub(crate) const COMPATIBLE_BASE_MESSAGE: &str = "provider openai-compatible needs apiBase";
pub(crate) const API_KEY_RULE: &str = "!(self.provider in ['openai', 'azure', 'anthropic', 'gemini']) || (has(self.credentials) && (has(self.credentials.secretKeyRef) || (has(self.credentials.keys) && has(self.credentials.keys.apiKey))))";
pub(crate) const API_KEY_MESSAGE: &str = "providers openai, azure, anthropic and gemini need an API key: credentials.secretKeyRef or credentials.keys.apiKey";
pub(crate) const BEDROCK_KEYS_RULE: &str = "self.provider != 'bedrock' || (has(self.credentials) && has(self.credentials.keys) && has(self.credentials.keys.accessKeyId) && has(self.credentials.keys.secretAccessKey))";
pub(crate) const BEDROCK_KEYS_MESSAGE: &str =
    "provider bedrock needs credentials.secretName with keys.accessKeyId and keys.secretAccessKey";
pub(crate) const MOCK_ONLY_RULE: &str = "!has(self.mock) || self.provider == 'mock'";
pub(crate) const MOCK_ONLY_MESSAGE: &str = "mock settings apply only to provider mock";
pub(crate) const REGION_RULE: &str = "self.matches('^[a-z0-9-]+$')";
pub(crate) const REGION_MESSAGE: &str =
    "region must be lowercase letters, digits and dashes (e.g. us-east-1)";

pub(crate) const HEADER_NAME_RULE: &str = "self.name.matches('^[A-Za-z0-9!#$%&*+.^_|~-]+$')";
pub(crate) const HEADER_NAME_MESSAGE: &str = "header name must be a non-empty HTTP token";
pub(crate) const HEADER_SECRET_RULE: &str = "!(self.name.lowerAscii() in ['authorization', 'proxy-authorization', 'api-key', 'x-api-key', 'x-goog-api-key'])";
pub(crate) const HEADER_SECRET_MESSAGE: &str =
    "credentials never go into headers: use upstream.credentials";
pub(crate) const HEADER_VALUE_RULE: &str = r"!self.value.matches('[\\r\\n\\x00]')";
pub(crate) const HEADER_VALUE_MESSAGE: &str = "header value must not contain CR, LF or NUL";
/// Header names that carry credentials and are refused in `upstream.headers`.
pub const SECRET_HEADERS: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "api-key",
    "x-api-key",
    "x-goog-api-key",
];

pub(crate) const CREDENTIALS_FORM_RULE: &str =
    "has(self.secretKeyRef) != has(self.secretName) && has(self.secretName) == has(self.keys)";
pub(crate) const CREDENTIALS_FORM_MESSAGE: &str =
    "credentials takes either secretKeyRef, or secretName together with keys";
pub(crate) const KEYS_NONEMPTY_RULE: &str = "has(self.apiKey) || has(self.accessKeyId) || has(self.secretAccessKey) || has(self.sessionToken)";
pub(crate) const KEYS_NONEMPTY_MESSAGE: &str = "keys must name at least one key";

pub(crate) const PROBE_URL_RULE: &str = "(has(self.probe) && self.probe == 'url') == has(self.url)";
pub(crate) const PROBE_URL_MESSAGE: &str =
    "probe url needs healthCheck.url, and healthCheck.url is only used by probe url";

pub(crate) const ALIAS_NAME_RULE: &str = r"self.matches('^[^*\\t\\n\\x0B\\f\\r\\x{85}\\p{Z}]+$')";
pub(crate) const ALIAS_NAME_MESSAGE: &str =
    "alias must be non-empty and contain no whitespace or *";
pub(crate) const TARGET_MODEL_RULE: &str = r"self.matches('^[^*\\t\\n\\x0B\\f\\r\\x{85}\\p{Z}]+$')";
pub(crate) const TARGET_MODEL_MESSAGE: &str =
    "target model must be non-empty and contain no whitespace or *";
pub(crate) const TARGET_WEIGHT_RULE: &str =
    "self.targets.exists(t, !has(t.weight) || t.weight > 0)";
pub(crate) const TARGET_WEIGHT_MESSAGE: &str = "at least one target needs a positive weight";
pub(crate) const TARGETS_UNIQUE_RULE: &str =
    "self.targets.all(t, self.targets.exists_one(u, u.model == t.model))";
pub(crate) const TARGETS_UNIQUE_MESSAGE: &str = "targets must not name the same model twice";
pub(crate) const SELF_REFERENCE_RULE: &str = "self.targets.all(t, t.model != self.alias) && (!has(self.fallbacks) || !self.fallbacks.exists(f, f == self.alias))";
pub(crate) const SELF_REFERENCE_MESSAGE: &str = "an alias cannot target or fall back to itself";
pub(crate) const FALLBACK_NAMES_RULE: &str =
    r"self.all(f, f.matches('^[^*\\t\\n\\x0B\\f\\r\\x{85}\\p{Z}]+$'))";
pub(crate) const FALLBACK_NAMES_MESSAGE: &str =
    "fallbacks must be non-empty model names without whitespace or *";
pub(crate) const FALLBACKS_UNIQUE_RULE: &str = "self.all(f, self.exists_one(g, g == f))";
pub(crate) const FALLBACKS_UNIQUE_MESSAGE: &str = "fallbacks must not name the same model twice";

/// True for a `provider/*` wildcard model name.
pub fn is_wildcard(model: &str) -> bool {
    model.contains('*')
}

/// The Rust twin of [`WILDCARD_RULE`]: `provider/*` with a provider of `[A-Za-z0-9_.-]`
/// starting with a letter or digit.
fn wildcard_ok(model: &str) -> bool {
    if !model.contains('*') {
        return true;
    }
    let Some(prefix) = model.strip_suffix("/*") else {
        return false;
    };
    let mut chars = prefix.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn name_ok(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c == '*')
}

struct Errors(Vec<FieldError>);

impl Errors {
    fn check(&mut self, ok: bool, path: &str, message: &str) {
        if !ok {
            self.0.push(FieldError {
                path: path.to_owned(),
                message: message.to_owned(),
            });
        }
    }

    fn duration(&mut self, value: Option<&String>, path: &str) {
        if let Some(v) = value {
            self.check(
                v.len() <= MAX_DURATION && parse_duration(v).is_ok(),
                path,
                DURATION_MESSAGE,
            );
        }
    }

    /// The schema's `maxLength` (in characters, as the API server counts them).
    fn max_len(&mut self, value: Option<&str>, max: usize, path: &str) {
        if let Some(v) = value
            && v.chars().count() > max
        {
            self.0.push(FieldError {
                path: path.to_owned(),
                message: format!("may not be longer than {max} characters"),
            });
        }
    }

    /// The schema's `maxItems`.
    fn max_items(&mut self, len: usize, max: usize, path: &str) {
        if len > max {
            self.0.push(FieldError {
                path: path.to_owned(),
                message: format!("may not have more than {max} items"),
            });
        }
    }

    fn at_least(&mut self, value: Option<i64>, min: i64, path: &str, message: &str) {
        if let Some(v) = value {
            self.check(v >= min, path, message);
        }
    }
}

/// The schema's length bounds (`maxLength`, `maxItems`) of a deployment, which the API
/// server checks before any CEL rule.
fn deployment_bounds(e: &mut Errors, spec: &ModelDeploymentSpec) {
    let u = &spec.upstream;
    e.max_len(Some(&spec.model), MAX_MODEL_NAME, "spec.model");
    e.max_len(u.model.as_deref(), MAX_MODEL_NAME, "spec.upstream.model");
    e.max_len(u.api_base.as_deref(), MAX_URL, "spec.upstream.apiBase");
    e.max_len(
        u.api_version.as_deref(),
        MAX_SHORT_TEXT,
        "spec.upstream.apiVersion",
    );
    e.max_len(u.region.as_deref(), MAX_SHORT_TEXT, "spec.upstream.region");
    e.max_items(u.headers.len(), MAX_HEADERS, "spec.upstream.headers");
    for (i, h) in u.headers.iter().enumerate() {
        // Paths are built only for a header that breaks a bound.
        if h.name.len() > MAX_HEADER_NAME || h.value.len() > MAX_HEADER_VALUE {
            let path = format!("spec.upstream.headers[{i}]");
            e.max_len(Some(&h.name), MAX_HEADER_NAME, &format!("{path}.name"));
            e.max_len(Some(&h.value), MAX_HEADER_VALUE, &format!("{path}.value"));
        }
    }
    if let Some(c) = &u.credentials {
        if let Some(r) = &c.secret_key_ref {
            e.max_len(
                Some(&r.name),
                MAX_OBJECT_NAME,
                "spec.upstream.credentials.secretKeyRef.name",
            );
            e.max_len(
                Some(&r.key),
                MAX_SECRET_KEY,
                "spec.upstream.credentials.secretKeyRef.key",
            );
        }
        e.max_len(
            c.secret_name.as_deref(),
            MAX_OBJECT_NAME,
            "spec.upstream.credentials.secretName",
        );
        if let Some(k) = &c.keys {
            for (v, path) in [
                (&k.api_key, "apiKey"),
                (&k.access_key_id, "accessKeyId"),
                (&k.secret_access_key, "secretAccessKey"),
                (&k.session_token, "sessionToken"),
            ] {
                e.max_len(
                    v.as_deref(),
                    MAX_SECRET_KEY,
                    &format!("spec.upstream.credentials.keys.{path}"),
                );
            }
        }
    }
    if let Some(m) = &u.mock {
        e.max_len(
            m.response.as_deref(),
            MAX_MOCK_RESPONSE,
            "spec.upstream.mock.response",
        );
    }
    if let Some(info) = &spec.model_info {
        e.max_len(
            info.base_model.as_deref(),
            MAX_MODEL_NAME,
            "spec.modelInfo.baseModel",
        );
    }
    if let Some(h) = &spec.health_check {
        e.max_len(h.url.as_deref(), MAX_URL, "spec.healthCheck.url");
    }
}

pub(crate) fn check_deployment(spec: &ModelDeploymentSpec) -> Vec<FieldError> {
    let mut e = Errors(Vec::new());
    deployment_bounds(&mut e, spec);
    e.check(
        !spec.model.is_empty() && !spec.model.chars().any(char::is_whitespace),
        "spec.model",
        MODEL_NAME_MESSAGE,
    );
    e.check(wildcard_ok(&spec.model), "spec.model", WILDCARD_MESSAGE);
    if let Some(upstream_model) = &spec.upstream.model {
        let ok = if spec.model.ends_with("/*") {
            upstream_model == "*"
                || upstream_model.strip_suffix("/*").is_some_and(|p| {
                    !p.is_empty() && !p.chars().any(|c| c == '*' || c.is_whitespace())
                })
        } else {
            !upstream_model.contains('*')
        };
        e.check(ok, "spec", WILDCARD_UPSTREAM_MESSAGE);
    }
    check_upstream(&mut e, &spec.upstream);
    if let Some(limits) = &spec.limits {
        e.at_least(limits.rpm, 1, "spec.limits.rpm", "rpm must be at least 1");
        e.at_least(limits.tpm, 1, "spec.limits.tpm", "tpm must be at least 1");
        e.at_least(
            limits.max_concurrent_requests,
            1,
            "spec.limits.maxConcurrentRequests",
            "maxConcurrentRequests must be at least 1",
        );
    }
    if let Some(t) = &spec.timeouts {
        e.duration(t.request.as_ref(), "spec.timeouts.request");
        if let Some(s) = &t.stream {
            e.duration(s.first_byte.as_ref(), "spec.timeouts.stream.firstByte");
            e.duration(s.idle.as_ref(), "spec.timeouts.stream.idle");
        }
    }
    if let Some(r) = &spec.routing {
        e.at_least(r.weight, 0, "spec.routing.weight", "weight must be >= 0");
        if let Some(w) = r.weight {
            e.check(
                w <= 1_000_000,
                "spec.routing.weight",
                "weight must be <= 1000000",
            );
        }
        e.at_least(r.order, 1, "spec.routing.order", "order must be >= 1");
        if let Some(o) = r.order {
            e.check(o <= 1000, "spec.routing.order", "order must be <= 1000");
        }
        if let Some(n) = r.retries {
            e.check(
                (0..=10).contains(&n),
                "spec.routing.retries",
                "retries must be between 0 and 10",
            );
        }
    }
    if let Some(info) = &spec.model_info {
        e.at_least(
            info.context_window,
            1,
            "spec.modelInfo.contextWindow",
            "contextWindow must be at least 1",
        );
        e.at_least(
            info.max_output_tokens,
            1,
            "spec.modelInfo.maxOutputTokens",
            "maxOutputTokens must be at least 1",
        );
        if let Some(c) = info.input_cost_per_token {
            e.check(
                c >= 0.0,
                "spec.modelInfo.inputCostPerToken",
                "inputCostPerToken must be >= 0",
            );
        }
        if let Some(c) = info.output_cost_per_token {
            e.check(
                c >= 0.0,
                "spec.modelInfo.outputCostPerToken",
                "outputCostPerToken must be >= 0",
            );
        }
    }
    if let Some(h) = &spec.health_check {
        e.duration(h.interval.as_ref(), "spec.healthCheck.interval");
        e.duration(h.timeout.as_ref(), "spec.healthCheck.timeout");
        if let Some(url) = &h.url {
            e.check(is_http_url(url), "spec.healthCheck.url", URL_MESSAGE);
        }
        e.check(
            (h.probe == Some(Probe::Url)) == h.url.is_some(),
            "spec.healthCheck",
            PROBE_URL_MESSAGE,
        );
    }
    e.0
}

fn check_upstream(e: &mut Errors, u: &Upstream) {
    let p = u.provider;
    if let Some(m) = &u.model {
        e.check(
            !m.is_empty(),
            "spec.upstream.model",
            "upstream.model must not be empty when set",
        );
    }
    if let Some(base) = &u.api_base {
        e.check(is_http_url(base), "spec.upstream.apiBase", URL_MESSAGE);
    }
    if let Some(v) = &u.api_version {
        e.check(
            !v.is_empty(),
            "spec.upstream.apiVersion",
            "apiVersion must not be empty when set",
        );
    }
    if let Some(r) = &u.region {
        e.check(
            !r.is_empty()
                && r.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "spec.upstream.region",
            REGION_MESSAGE,
        );
    }
    for (i, h) in u.headers.iter().enumerate() {
        let name_ok = !h.name.is_empty()
            && h.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&*+.^_|~-".contains(c));
        let not_secret = !SECRET_HEADERS
            .iter()
            .any(|s| s.eq_ignore_ascii_case(&h.name));
        let value_ok = !h.value.contains(['\r', '\n', '\0']);
        if !(name_ok && not_secret && value_ok) {
            let path = format!("spec.upstream.headers[{i}]");
            e.check(name_ok, &path, HEADER_NAME_MESSAGE);
            e.check(not_secret, &path, HEADER_SECRET_MESSAGE);
            e.check(value_ok, &path, HEADER_VALUE_MESSAGE);
        }
    }
    e.check(
        p != Provider::Azure || (u.api_base.is_some() && u.api_version.is_some()),
        "spec.upstream",
        AZURE_MESSAGE,
    );
    e.check(
        p != Provider::Bedrock || u.region.is_some(),
        "spec.upstream",
        BEDROCK_REGION_MESSAGE,
    );
    e.check(
        p != Provider::OpenaiCompatible || u.api_base.is_some(),
        "spec.upstream",
        COMPATIBLE_BASE_MESSAGE,
    );
    let creds = u.credentials.as_ref();
    let keys = creds.and_then(|c| c.keys.as_ref());
    let has_api_key = creds.is_some_and(|c| c.secret_key_ref.is_some())
        || keys.is_some_and(|k| k.api_key.is_some());
    e.check(
        !matches!(
            p,
            Provider::Openai | Provider::Azure | Provider::Anthropic | Provider::Gemini
        ) || has_api_key,
        "spec.upstream",
        API_KEY_MESSAGE,
    );
    e.check(
        p != Provider::Bedrock
            || keys.is_some_and(|k| k.access_key_id.is_some() && k.secret_access_key.is_some()),
        "spec.upstream",
        BEDROCK_KEYS_MESSAGE,
    );
    e.check(
        u.mock.is_none() || p == Provider::Mock,
        "spec.upstream",
        MOCK_ONLY_MESSAGE,
    );
    if let Some(c) = creds {
        e.check(
            c.secret_key_ref.is_some() != c.secret_name.is_some()
                && c.secret_name.is_some() == c.keys.is_some(),
            "spec.upstream.credentials",
            CREDENTIALS_FORM_MESSAGE,
        );
        if let Some(r) = &c.secret_key_ref {
            e.check(
                !r.name.is_empty(),
                "spec.upstream.credentials.secretKeyRef.name",
                "Secret name must not be empty",
            );
            e.check(
                !r.key.is_empty(),
                "spec.upstream.credentials.secretKeyRef.key",
                "Secret key must not be empty",
            );
        }
        if let Some(n) = &c.secret_name {
            e.check(
                !n.is_empty(),
                "spec.upstream.credentials.secretName",
                "secretName must not be empty",
            );
        }
        if let Some(k) = &c.keys {
            e.check(
                k.api_key.is_some()
                    || k.access_key_id.is_some()
                    || k.secret_access_key.is_some()
                    || k.session_token.is_some(),
                "spec.upstream.credentials.keys",
                KEYS_NONEMPTY_MESSAGE,
            );
        }
    }
    if let Some(m) = &u.mock {
        e.duration(m.delay.as_ref(), "spec.upstream.mock.delay");
    }
}

pub(crate) fn check_alias(spec: &ModelGroupAliasSpec) -> Vec<FieldError> {
    let mut e = Errors(Vec::new());
    e.max_len(Some(&spec.alias), MAX_MODEL_NAME, "spec.alias");
    e.max_items(spec.targets.len(), MAX_TARGETS, "spec.targets");
    for (i, t) in spec.targets.iter().enumerate() {
        e.max_len(
            Some(&t.model),
            MAX_MODEL_NAME,
            &format!("spec.targets[{i}].model"),
        );
    }
    e.max_items(spec.fallbacks.len(), MAX_FALLBACKS, "spec.fallbacks");
    for (i, f) in spec.fallbacks.iter().enumerate() {
        e.max_len(Some(f), MAX_MODEL_NAME, &format!("spec.fallbacks[{i}]"));
    }
    e.check(name_ok(&spec.alias), "spec.alias", ALIAS_NAME_MESSAGE);
    for (i, t) in spec.targets.iter().enumerate() {
        let path = format!("spec.targets[{i}]");
        e.check(
            name_ok(&t.model),
            &format!("{path}.model"),
            TARGET_MODEL_MESSAGE,
        );
        e.at_least(
            t.weight,
            0,
            &format!("{path}.weight"),
            "weight must be >= 0",
        );
        if let Some(w) = t.weight {
            e.check(
                w <= 1_000_000,
                &format!("{path}.weight"),
                "weight must be <= 1000000",
            );
        }
    }
    e.check(
        spec.targets.iter().any(|t| t.weight() > 0),
        "spec",
        TARGET_WEIGHT_MESSAGE,
    );
    e.check(
        spec.targets
            .iter()
            .all(|t| spec.targets.iter().filter(|u| u.model == t.model).count() == 1),
        "spec",
        TARGETS_UNIQUE_MESSAGE,
    );
    e.check(
        spec.targets.iter().all(|t| t.model != spec.alias) && !spec.fallbacks.contains(&spec.alias),
        "spec",
        SELF_REFERENCE_MESSAGE,
    );
    e.check(
        spec.fallbacks.iter().all(|f| name_ok(f)),
        "spec.fallbacks",
        FALLBACK_NAMES_MESSAGE,
    );
    e.check(
        spec.fallbacks
            .iter()
            .all(|f| spec.fallbacks.iter().filter(|g| *g == f).count() == 1),
        "spec.fallbacks",
        FALLBACKS_UNIQUE_MESSAGE,
    );
    e.0
}

#[cfg(test)]
mod tests {
    use crate::{ModelDeploymentSpec, ModelGroupAliasSpec};

    #[test]
    fn schema_bounds_are_checked_too() {
        let long = "m".repeat(300);
        let spec: ModelDeploymentSpec = serde_json::from_value(serde_json::json!({
            "model": long, "upstream": {"provider": "mock"}
        }))
        .expect("spec");
        let errors = spec.validate();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            errors[0].to_string(),
            "spec.model: may not be longer than 256 characters"
        );

        let targets: Vec<_> = (0..17)
            .map(|i| serde_json::json!({"model": format!("m{i}")}))
            .collect();
        let alias: ModelGroupAliasSpec =
            serde_json::from_value(serde_json::json!({"alias": "a", "targets": targets}))
                .expect("spec");
        let errors = alias.validate();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            errors[0].to_string(),
            "spec.targets: may not have more than 16 items"
        );
    }
}
