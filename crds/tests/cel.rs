//! The CEL rules (`x-kubernetes-validations`) of both CRDs, evaluated by a real CEL
//! interpreter: kube-cel, through `kube::core::cel`, since no API server runs here.
//!
//! * Every rule in the generated schemas compiles, has a static message, and stays within
//!   the API server's cost budget.
//! * Good example objects pass with no error; bad examples (each a small mutation of a good
//!   one) fail with exactly the messages they name.
//! * Every rule (each place it is attached) is broken by at least one bad example, so a
//!   new rule without a test fails here.
//! * The Rust mirror (`ModelDeploymentSpec::validate`, `ModelGroupAliasSpec::validate`)
//!   reports the same `(path, message)` pairs as CEL for every example, and for a corpus
//!   of tricky strings put into every string field a rule checks.
//!
//! kube-cel runs regular expressions with Rust's `regex` crate; the API server runs them
//! with Go's RE2. See `regexes_mean_the_same_in_re2_and_rust` for where they differ.

use std::collections::{BTreeMap, BTreeSet};

use kube::core::cel::{CompiledSchema, ErrorKind, Validator, compile_schema, estimate_rule_cost};
use modelgate_crds::{API_VERSION, ModelDeploymentSpec, ModelGroupAliasSpec};
use serde_json::{Value, json};

// The messages of the rules, as users see them. They are spelled out here (not taken from
// crds/src) so that a changed message is a visible change to this test too.
const MODEL_NAME: &str = "model must be non-empty and contain no whitespace";
const WILDCARD: &str = "a wildcard model must have the form provider/* (for example openai/*)";
const WILDCARD_UPSTREAM: &str = "upstream.model of a wildcard model must be * or prefix/* (or unset); other models cannot use *";
const AZURE: &str = "provider azure needs apiBase (the resource endpoint) and apiVersion";
const BEDROCK_REGION: &str = "provider bedrock needs region";
const COMPATIBLE_BASE: &str = "provider openai-compatible needs apiBase";
const API_KEY: &str = "providers openai, azure, anthropic and gemini need an API key: credentials.secretKeyRef or credentials.keys.apiKey";
const BEDROCK_KEYS: &str =
    "provider bedrock needs credentials.secretName with keys.accessKeyId and keys.secretAccessKey";
const MOCK_ONLY: &str = "mock settings apply only to provider mock";
const REGION: &str = "region must be lowercase letters, digits and dashes (e.g. us-east-1)";
const UPSTREAM_MODEL_EMPTY: &str = "upstream.model must not be empty when set";
const API_VERSION_EMPTY: &str = "apiVersion must not be empty when set";
const URL: &str = "must be an http:// or https:// URL without spaces";
const DURATION: &str = "must be a duration such as 500ms, 30s, 1m30s or 1h";
const HEADER_NAME: &str = "header name must be a non-empty HTTP token";
const HEADER_SECRET: &str = "credentials never go into headers: use upstream.credentials";
const HEADER_VALUE: &str = "header value must not contain CR, LF or NUL";
const CREDENTIALS_FORM: &str =
    "credentials takes either secretKeyRef, or secretName together with keys";
const SECRET_NAME_EMPTY: &str = "Secret name must not be empty";
const SECRET_KEY_EMPTY: &str = "Secret key must not be empty";
const SECRET_NAME_FIELD_EMPTY: &str = "secretName must not be empty";
const KEYS_NONEMPTY: &str = "keys must name at least one key";
const PROBE_URL: &str =
    "probe url needs healthCheck.url, and healthCheck.url is only used by probe url";
const RPM: &str = "rpm must be at least 1";
const TPM: &str = "tpm must be at least 1";
const MAX_CONCURRENT: &str = "maxConcurrentRequests must be at least 1";
const WEIGHT_MIN: &str = "weight must be >= 0";
const WEIGHT_MAX: &str = "weight must be <= 1000000";
const ORDER_MIN: &str = "order must be >= 1";
const ORDER_MAX: &str = "order must be <= 1000";
const RETRIES: &str = "retries must be between 0 and 10";
const CONTEXT_WINDOW: &str = "contextWindow must be at least 1";
const MAX_OUTPUT: &str = "maxOutputTokens must be at least 1";
const INPUT_COST: &str = "inputCostPerToken must be >= 0";
const OUTPUT_COST: &str = "outputCostPerToken must be >= 0";
const ALIAS_NAME: &str = "alias must be non-empty and contain no whitespace or *";
const TARGET_MODEL: &str = "target model must be non-empty and contain no whitespace or *";
const TARGET_WEIGHT: &str = "at least one target needs a positive weight";
const TARGETS_UNIQUE: &str = "targets must not name the same model twice";
const SELF_REFERENCE: &str = "an alias cannot target or fall back to itself";
const FALLBACK_NAMES: &str = "fallbacks must be non-empty model names without whitespace or *";
const FALLBACKS_UNIQUE: &str = "fallbacks must not name the same model twice";

// ---------------------------------------------------------------------------------------
// Schemas and the rules in them
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Deployment,
    Alias,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Deployment => "ModelDeployment",
            Kind::Alias => "ModelGroupAlias",
        }
    }
}

/// The `openAPIV3Schema` of the generated CRD of `kind`.
fn schema(kind: Kind) -> Value {
    let crd = modelgate_crds::crds()
        .into_iter()
        .map(|(_, crd)| crd)
        .find(|crd| crd.spec.names.kind == kind.name())
        .unwrap_or_else(|| panic!("crds() has no CRD of kind {}", kind.name()));
    assert_eq!(
        crd.spec.versions.len(),
        1,
        "this test knows one version per CRD; extend it for {}",
        kind.name()
    );
    let crd = serde_json::to_value(&crd).expect("a CRD serializes to JSON");
    crd.pointer("/spec/versions/0/schema/openAPIV3Schema")
        .unwrap_or_else(|| panic!("the {} CRD has no openAPIV3Schema", kind.name()))
        .clone()
}

/// One `x-kubernetes-validations` entry and where it is attached.
#[derive(Clone, Debug)]
struct RuleSite {
    kind: Kind,
    /// Object path of the schema node, with `[*]` for list items (`spec.targets[*].model`).
    path: String,
    rule: String,
    message: Option<String>,
    /// The schema node the rule is attached to.
    node: Value,
}

impl RuleSite {
    fn key(&self) -> (Kind, String, String) {
        (self.kind, self.path.clone(), self.rule.clone())
    }
}

fn join(path: &str, segment: &str) -> String {
    if path.is_empty() {
        segment.to_owned()
    } else {
        format!("{path}.{segment}")
    }
}

/// Every rule reachable the way the API server walks a structural schema.
fn collect_rules(kind: Kind, node: &Value, path: &str, out: &mut Vec<RuleSite>) {
    if let Some(rules) = node
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        for rule in rules {
            out.push(RuleSite {
                kind,
                path: path.to_owned(),
                rule: rule
                    .get("rule")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                message: rule
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                node: node.clone(),
            });
        }
    }
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            collect_rules(kind, child, &join(path, name), out);
        }
    }
    if let Some(items) = node.get("items") {
        collect_rules(kind, items, &format!("{path}[*]"), out);
    }
    if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
        collect_rules(kind, values, &join(path, "*"), out);
    }
    for keyword in ["allOf", "anyOf", "oneOf"] {
        for branch in node
            .get(keyword)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            collect_rules(kind, branch, path, out);
        }
    }
}

/// How many `x-kubernetes-validations` entries there are anywhere in `v`, however nested.
fn count_validations_anywhere(v: &Value) -> usize {
    match v {
        Value::Object(map) => map
            .iter()
            .map(|(k, child)| match child {
                Value::Array(rules) if k == "x-kubernetes-validations" => {
                    rules.len() + rules.iter().map(count_validations_anywhere).sum::<usize>()
                }
                _ => count_validations_anywhere(child),
            })
            .sum(),
        Value::Array(items) => items.iter().map(count_validations_anywhere).sum(),
        _ => 0,
    }
}

fn all_rules() -> Vec<RuleSite> {
    let mut out = Vec::new();
    for kind in [Kind::Deployment, Kind::Alias] {
        collect_rules(kind, &schema(kind), "", &mut out);
    }
    out
}

/// `spec.targets[3].model` becomes `spec.targets[*].model`.
fn normalize_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '[' && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push('*');
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Evaluation: CEL and the Rust mirror
// ---------------------------------------------------------------------------------------

/// A failed rule: the path of the offending field and the rule's message.
type Finding = (String, String);

struct Cel {
    validator: Validator,
    deployment: CompiledSchema,
    alias: CompiledSchema,
}

/// What CEL said about one object.
struct CelResult {
    findings: Vec<Finding>,
    /// `(kind, normalized path, rule)` of every rule that evaluated to false.
    broken: BTreeSet<(Kind, String, String)>,
    /// Errors that are not a rule evaluating to false (compile or runtime errors).
    other: Vec<String>,
}

impl Cel {
    fn new() -> Self {
        Cel {
            validator: Validator::new(),
            deployment: compile_schema(&schema(Kind::Deployment)),
            alias: compile_schema(&schema(Kind::Alias)),
        }
    }

    fn eval(&self, kind: Kind, object: &Value) -> CelResult {
        let compiled = match kind {
            Kind::Deployment => &self.deployment,
            Kind::Alias => &self.alias,
        };
        let mut result = CelResult {
            findings: Vec::new(),
            broken: BTreeSet::new(),
            other: Vec::new(),
        };
        if let Err(errors) = self.validator.validate_compiled(compiled, object, None) {
            for e in errors.iter() {
                if e.kind == ErrorKind::ValidationFailure {
                    result
                        .findings
                        .push((e.field_path.clone(), e.message.clone()));
                    result
                        .broken
                        .insert((kind, normalize_path(&e.field_path), e.rule.clone()));
                } else {
                    result.other.push(format!(
                        "{:?} at {:?} in rule {:?}: {}",
                        e.kind, e.field_path, e.rule, e.message
                    ));
                }
            }
        }
        result.findings.sort();
        result
    }
}

/// What the Rust mirror says about the `spec` of `object`.
fn mirror(kind: Kind, object: &Value) -> Result<Vec<Finding>, String> {
    let spec = object.get("spec").cloned().unwrap_or(Value::Null);
    let errors = match kind {
        Kind::Deployment => serde_json::from_value::<ModelDeploymentSpec>(spec)
            .map_err(|e| format!("spec does not deserialize into ModelDeploymentSpec: {e}"))?
            .validate(),
        Kind::Alias => serde_json::from_value::<ModelGroupAliasSpec>(spec)
            .map_err(|e| format!("spec does not deserialize into ModelGroupAliasSpec: {e}"))?
            .validate(),
    };
    let mut findings: Vec<Finding> = errors.into_iter().map(|e| (e.path, e.message)).collect();
    findings.sort();
    Ok(findings)
}

fn messages(findings: &[Finding]) -> Vec<&str> {
    let mut m: Vec<&str> = findings.iter().map(|(_, m)| m.as_str()).collect();
    m.sort_unstable();
    m
}

// ---------------------------------------------------------------------------------------
// Examples
// ---------------------------------------------------------------------------------------

fn object(kind: Kind, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": kind.name(),
        "metadata": { "name": name, "namespace": "default" },
        "spec": spec,
    })
}

/// A copy of `spec` changed by `f`.
fn edit(spec: Value, f: impl FnOnce(&mut Value)) -> Value {
    let mut spec = spec;
    f(&mut spec);
    spec
}

/// Removes the field at JSON pointer `pointer` (which must exist).
fn del(v: &mut Value, pointer: &str) {
    let (parent, key) = pointer
        .rsplit_once('/')
        .unwrap_or_else(|| panic!("bad pointer {pointer}"));
    let removed = v
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .and_then(|o| o.remove(key));
    assert!(removed.is_some(), "nothing to remove at {pointer} in {v}");
}

fn secret_key_ref(name: &str) -> Value {
    json!({ "secretKeyRef": { "name": name, "key": "api-key" } })
}

// Good ModelDeployment specs.

fn mock() -> Value {
    json!({
        "model": "demo",
        "upstream": { "provider": "mock", "mock": { "response": "Hello from the mock", "delay": "50ms" } },
    })
}

fn mock_bare() -> Value {
    json!({ "model": "mock-bare", "upstream": { "provider": "mock" } })
}

fn openai() -> Value {
    json!({
        "model": "gpt-4o",
        "upstream": {
            "provider": "openai",
            "model": "gpt-4o-2024-08-06",
            "credentials": secret_key_ref("openai"),
        },
    })
}

fn openai_keys() -> Value {
    json!({
        "model": "gpt-4o-mini",
        "upstream": {
            "provider": "openai",
            "apiBase": "https://api.openai.com/v1",
            "credentials": { "secretName": "openai", "keys": { "apiKey": "OPENAI_API_KEY" } },
        },
    })
}

fn compatible() -> Value {
    json!({
        "model": "llama-3.1-8b",
        "upstream": {
            "provider": "openai-compatible",
            "model": "meta-llama/Llama-3.1-8B-Instruct",
            "apiBase": "http://vllm.models.svc.cluster.local:8000/v1",
        },
    })
}

fn azure() -> Value {
    json!({
        "model": "gpt-4o",
        "upstream": {
            "provider": "azure",
            "model": "gpt4o-prod",
            "apiBase": "https://example.openai.azure.com",
            "apiVersion": "2024-10-21",
            "credentials": secret_key_ref("azure-openai"),
        },
    })
}

fn bedrock() -> Value {
    json!({
        "model": "claude-3-5-sonnet",
        "upstream": {
            "provider": "bedrock",
            "model": "anthropic.claude-3-5-sonnet-20240620-v1:0",
            "region": "us-east-1",
            "credentials": {
                "secretName": "aws",
                "keys": {
                    "accessKeyId": "AWS_ACCESS_KEY_ID",
                    "secretAccessKey": "AWS_SECRET_ACCESS_KEY",
                    "sessionToken": "AWS_SESSION_TOKEN",
                },
            },
        },
    })
}

fn anthropic() -> Value {
    json!({
        "model": "claude-sonnet",
        "upstream": {
            "provider": "anthropic",
            "model": "claude-sonnet-4-20250514",
            "apiVersion": "2023-06-01",
            "credentials": secret_key_ref("anthropic"),
        },
    })
}

fn gemini() -> Value {
    json!({
        "model": "gemini-2.0-flash",
        "upstream": {
            "provider": "gemini",
            "credentials": { "secretName": "google", "keys": { "apiKey": "GEMINI_API_KEY" } },
        },
    })
}

fn wildcard() -> Value {
    json!({
        "model": "openai/*",
        "upstream": { "provider": "openai", "model": "*", "credentials": secret_key_ref("openai") },
    })
}

fn wildcard_prefix() -> Value {
    json!({
        "model": "hf/*",
        "upstream": {
            "provider": "openai-compatible",
            "model": "meta-llama/*",
            "apiBase": "http://tgi.models:8080/v1",
        },
    })
}

fn wildcard_plain() -> Value {
    json!({
        "model": "anthropic/*",
        "upstream": { "provider": "anthropic", "credentials": secret_key_ref("anthropic") },
    })
}

/// Every optional section filled in.
fn full() -> Value {
    json!({
        "model": "llama-3.1-70b",
        "upstream": {
            "provider": "openai-compatible",
            "model": "meta-llama/Llama-3.1-70B-Instruct",
            "apiBase": "https://llm.internal.example.com/v1",
            "apiVersion": "v1",
            "region": "eu-west-1",
            "headers": [
                { "name": "OpenAI-Organization", "value": "org-123" },
                { "name": "X-Request-Source", "value": "modelgate gateway" },
            ],
            "credentials": { "secretKeyRef": { "name": "vllm", "key": "token" } },
        },
        "limits": { "rpm": 600, "tpm": 100_000, "maxConcurrentRequests": 32, "concurrencyScope": "fleet" },
        "timeouts": { "request": "600s", "stream": { "firstByte": "30s", "idle": "1m30s" } },
        "routing": { "weight": 3, "order": 2, "retries": 2 },
        "modelInfo": {
            "mode": "chat",
            "baseModel": "llama-3.1-70b",
            "contextWindow": 131_072,
            "maxOutputTokens": 4096,
            "inputCostPerToken": 0.000_000_59,
            "outputCostPerToken": 0.000_000_79,
            "reasoning": false,
        },
        "healthCheck": {
            "enabled": true,
            "interval": "30s",
            "timeout": "5s",
            "probe": "url",
            "url": "https://llm.internal.example.com/health",
        },
    })
}

fn health_models_list() -> Value {
    json!({
        "model": "demo",
        "upstream": { "provider": "mock" },
        "healthCheck": { "enabled": false, "interval": "1h", "timeout": "500ms", "probe": "models-list" },
    })
}

fn embedding() -> Value {
    json!({
        "model": "text-embedding-3-small",
        "upstream": { "provider": "openai", "credentials": secret_key_ref("openai") },
        "modelInfo": { "mode": "embedding", "contextWindow": 8191 },
        "healthCheck": { "probe": "embedding", "interval": "2m", "timeout": "1.5s" },
    })
}

/// Limits at the edge of what the rules allow.
fn lower_bounds() -> Value {
    json!({
        "model": "edge-low",
        "upstream": { "provider": "mock", "mock": { "delay": "0s" } },
        "limits": { "rpm": 1, "tpm": 1, "maxConcurrentRequests": 1, "concurrencyScope": "pod" },
        "timeouts": { "request": "1ms", "stream": { "firstByte": "1h30m", "idle": "2m3s4ms" } },
        "routing": { "weight": 0, "order": 1, "retries": 0 },
        "modelInfo": { "contextWindow": 1, "maxOutputTokens": 1, "inputCostPerToken": 0, "outputCostPerToken": 0.0 },
    })
}

fn upper_bounds() -> Value {
    json!({
        "model": "edge-high",
        "upstream": { "provider": "mock" },
        "routing": { "weight": 1_000_000, "order": 1000, "retries": 10 },
    })
}

// Good ModelGroupAlias specs.

fn weighted() -> Value {
    json!({
        "alias": "gpt-4",
        "targets": [ { "model": "gpt-4o", "weight": 9 }, { "model": "gpt-4o-mini", "weight": 1 } ],
    })
}

fn zero_beside_positive() -> Value {
    json!({
        "alias": "canary",
        "targets": [ { "model": "llama-3.1-8b", "weight": 0 }, { "model": "llama-3.1-70b" } ],
    })
}

fn with_fallbacks() -> Value {
    json!({
        "alias": "smart",
        "targets": [ { "model": "claude-sonnet" } ],
        "fallbacks": [ "gpt-4o", "gemini-2.0-flash" ],
        "hidden": true,
    })
}

fn single_target() -> Value {
    json!({
        "alias": "default",
        "targets": [ { "model": "openai/gpt-4o-mini", "weight": 1_000_000 } ],
        "fallbacks": [],
        "hidden": false,
    })
}

struct Example {
    name: &'static str,
    kind: Kind,
    object: Value,
    /// The messages CEL must report (none for a good example), in any order.
    expect: Vec<&'static str>,
}

fn good(name: &'static str, kind: Kind, spec: Value) -> Example {
    Example {
        name,
        kind,
        object: object(kind, "good", spec),
        expect: Vec::new(),
    }
}

fn bad(name: &'static str, kind: Kind, spec: Value, expect: &[&'static str]) -> Example {
    Example {
        name,
        kind,
        object: object(kind, "bad", spec),
        expect: expect.to_vec(),
    }
}

fn good_examples() -> Vec<Example> {
    use Kind::{Alias as A, Deployment as D};
    vec![
        good("mock with response and delay", D, mock()),
        good("mock without settings", D, mock_bare()),
        good("openai with secretKeyRef", D, openai()),
        good("openai with secretName and keys.apiKey", D, openai_keys()),
        good("openai-compatible with apiBase", D, compatible()),
        good("azure with apiBase, apiVersion and key", D, azure()),
        good("bedrock with region and AWS keys", D, bedrock()),
        good("anthropic", D, anthropic()),
        good("gemini", D, gemini()),
        good("wildcard openai/* with upstream.model *", D, wildcard()),
        good(
            "wildcard hf/* with upstream.model prefix/*",
            D,
            wildcard_prefix(),
        ),
        good("wildcard without upstream.model", D, wildcard_plain()),
        good(
            "every section: headers, limits, timeouts, routing, modelInfo, url probe",
            D,
            full(),
        ),
        good("models-list probe without url", D, health_models_list()),
        good("embedding probe", D, embedding()),
        good("lowest allowed numbers", D, lower_bounds()),
        good("highest allowed numbers", D, upper_bounds()),
        good(
            "header value with spaces and tabs",
            D,
            edit(full(), |s| {
                s["upstream"]["headers"][1]["value"] = json!("a\tb c")
            }),
        ),
        good(
            "credentials for openai-compatible as secretName and keys",
            D,
            edit(compatible(), |s| {
                s["upstream"]["credentials"] =
                    json!({ "secretName": "vllm", "keys": { "apiKey": "token" } });
            }),
        ),
        good("alias with weighted targets", A, weighted()),
        good(
            "alias with a zero-weight target beside a positive one",
            A,
            zero_beside_positive(),
        ),
        good("alias with fallbacks, hidden", A, with_fallbacks()),
        good(
            "alias with one target at the weight limit",
            A,
            single_target(),
        ),
        good(
            "alias whose target is another alias",
            A,
            json!({ "alias": "best", "targets": [ { "model": "smart" } ], "fallbacks": [ "gpt-4" ] }),
        ),
    ]
}

fn bad_examples() -> Vec<Example> {
    use Kind::{Alias as A, Deployment as D};
    let mut v = vec![
        // spec.model
        bad(
            "empty model",
            D,
            edit(mock(), |s| s["model"] = json!("")),
            &[MODEL_NAME],
        ),
        bad(
            "model with a space",
            D,
            edit(mock(), |s| s["model"] = json!("gpt 4o")),
            &[MODEL_NAME],
        ),
        bad(
            "model with a tab",
            D,
            edit(mock(), |s| s["model"] = json!("gpt\t4o")),
            &[MODEL_NAME],
        ),
        bad(
            "model *",
            D,
            edit(mock_bare(), |s| s["model"] = json!("*")),
            &[WILDCARD],
        ),
        bad(
            "model with * inside",
            D,
            edit(mock_bare(), |s| s["model"] = json!("gpt-*")),
            &[WILDCARD],
        ),
        bad(
            "wildcard with a nested path",
            D,
            edit(wildcard(), |s| s["model"] = json!("openai/gpt/*")),
            &[WILDCARD],
        ),
        bad(
            "wildcard provider starting with a dash",
            D,
            edit(wildcard(), |s| s["model"] = json!("-openai/*")),
            &[WILDCARD],
        ),
        bad(
            "wildcard with text after *",
            D,
            edit(mock_bare(), |s| s["model"] = json!("openai/*x")),
            &[WILDCARD],
        ),
        bad(
            "wildcard without provider",
            D,
            edit(mock_bare(), |s| s["model"] = json!("/*")),
            &[WILDCARD],
        ),
        bad(
            "wildcard with a space",
            D,
            edit(mock_bare(), |s| s["model"] = json!("open ai/*")),
            &[MODEL_NAME, WILDCARD],
        ),
        // spec: upstream.model against a wildcard model
        bad(
            "upstream.model with * for a plain model",
            D,
            edit(openai(), |s| s["upstream"]["model"] = json!("gpt-4o-*")),
            &[WILDCARD_UPSTREAM],
        ),
        bad(
            "fixed upstream.model for a wildcard model",
            D,
            edit(wildcard(), |s| s["upstream"]["model"] = json!("gpt-4o")),
            &[WILDCARD_UPSTREAM],
        ),
        bad(
            "wildcard upstream.model with a suffix",
            D,
            edit(wildcard_prefix(), |s| {
                s["upstream"]["model"] = json!("*-instruct")
            }),
            &[WILDCARD_UPSTREAM],
        ),
        bad(
            "wildcard upstream.model prefix with a space",
            D,
            edit(wildcard_prefix(), |s| {
                s["upstream"]["model"] = json!("meta llama/*")
            }),
            &[WILDCARD_UPSTREAM],
        ),
        bad(
            "wildcard upstream.model with two stars",
            D,
            edit(wildcard_prefix(), |s| {
                s["upstream"]["model"] = json!("a*/*")
            }),
            &[WILDCARD_UPSTREAM],
        ),
        bad(
            "empty upstream.model for a wildcard model",
            D,
            edit(wildcard(), |s| s["upstream"]["model"] = json!("")),
            &[UPSTREAM_MODEL_EMPTY, WILDCARD_UPSTREAM],
        ),
        // spec.upstream: provider requirements
        bad(
            "azure without apiVersion",
            D,
            edit(azure(), |s| del(s, "/upstream/apiVersion")),
            &[AZURE],
        ),
        bad(
            "azure without apiBase",
            D,
            edit(azure(), |s| del(s, "/upstream/apiBase")),
            &[AZURE],
        ),
        bad(
            "azure without a key",
            D,
            edit(azure(), |s| del(s, "/upstream/credentials")),
            &[API_KEY],
        ),
        bad(
            "bedrock without region",
            D,
            edit(bedrock(), |s| del(s, "/upstream/region")),
            &[BEDROCK_REGION],
        ),
        bad(
            "openai-compatible without apiBase",
            D,
            edit(compatible(), |s| del(s, "/upstream/apiBase")),
            &[COMPATIBLE_BASE],
        ),
        bad(
            "openai without credentials",
            D,
            edit(openai(), |s| del(s, "/upstream/credentials")),
            &[API_KEY],
        ),
        bad(
            "anthropic with only AWS keys",
            D,
            edit(anthropic(), |s| {
                s["upstream"]["credentials"] =
                    json!({ "secretName": "aws", "keys": { "accessKeyId": "id" } });
            }),
            &[API_KEY],
        ),
        bad(
            "gemini with keys but no apiKey",
            D,
            edit(gemini(), |s| {
                s["upstream"]["credentials"]["keys"] = json!({ "sessionToken": "t" })
            }),
            &[API_KEY],
        ),
        bad(
            "bedrock without secretAccessKey",
            D,
            edit(bedrock(), |s| {
                del(s, "/upstream/credentials/keys/secretAccessKey")
            }),
            &[BEDROCK_KEYS],
        ),
        bad(
            "bedrock with a secretKeyRef",
            D,
            edit(bedrock(), |s| {
                s["upstream"]["credentials"] = secret_key_ref("aws")
            }),
            &[BEDROCK_KEYS],
        ),
        bad(
            "bedrock without credentials",
            D,
            edit(bedrock(), |s| del(s, "/upstream/credentials")),
            &[BEDROCK_KEYS],
        ),
        bad(
            "mock settings on openai",
            D,
            edit(openai(), |s| {
                s["upstream"]["mock"] = json!({ "delay": "1s" })
            }),
            &[MOCK_ONLY],
        ),
        // spec.upstream fields
        bad(
            "empty upstream.model",
            D,
            edit(openai(), |s| s["upstream"]["model"] = json!("")),
            &[UPSTREAM_MODEL_EMPTY],
        ),
        bad(
            "apiBase without scheme",
            D,
            edit(compatible(), |s| {
                s["upstream"]["apiBase"] = json!("vllm:8000/v1")
            }),
            &[URL],
        ),
        bad(
            "apiBase without host",
            D,
            edit(compatible(), |s| {
                s["upstream"]["apiBase"] = json!("https:///v1")
            }),
            &[URL],
        ),
        bad(
            "apiBase with a space",
            D,
            edit(compatible(), |s| {
                s["upstream"]["apiBase"] = json!("http://vllm :8000")
            }),
            &[URL],
        ),
        bad(
            "apiBase ftp",
            D,
            edit(openai_keys(), |s| {
                s["upstream"]["apiBase"] = json!("ftp://api.openai.com")
            }),
            &[URL],
        ),
        bad(
            "empty apiVersion",
            D,
            edit(azure(), |s| s["upstream"]["apiVersion"] = json!("")),
            &[API_VERSION_EMPTY],
        ),
        bad(
            "upper-case region",
            D,
            edit(bedrock(), |s| s["upstream"]["region"] = json!("US-EAST-1")),
            &[REGION],
        ),
        bad(
            "empty region",
            D,
            edit(bedrock(), |s| s["upstream"]["region"] = json!("")),
            &[REGION],
        ),
        bad(
            "region with underscores",
            D,
            edit(bedrock(), |s| s["upstream"]["region"] = json!("us_east_1")),
            &[REGION],
        ),
        // spec.upstream.headers[*]
        bad(
            "header name with a space",
            D,
            edit(full(), |s| {
                s["upstream"]["headers"][0]["name"] = json!("Bad Header")
            }),
            &[HEADER_NAME],
        ),
        bad(
            "empty header name",
            D,
            edit(full(), |s| s["upstream"]["headers"][0]["name"] = json!("")),
            &[HEADER_NAME],
        ),
        bad(
            "header name with a colon",
            D,
            edit(full(), |s| {
                s["upstream"]["headers"][1]["name"] = json!("X-A:b")
            }),
            &[HEADER_NAME],
        ),
        bad(
            "Authorization header",
            D,
            edit(full(), |s| {
                s["upstream"]["headers"][0]["name"] = json!("Authorization")
            }),
            &[HEADER_SECRET],
        ),
        bad(
            "x-goog-api-key header in mixed case",
            D,
            edit(full(), |s| {
                s["upstream"]["headers"][1]["name"] = json!("X-Goog-Api-Key")
            }),
            &[HEADER_SECRET],
        ),
        bad(
            "api-key header",
            D,
            edit(full(), |s| {
                s["upstream"]["headers"][1]["name"] = json!("API-KEY")
            }),
            &[HEADER_SECRET],
        ),
        bad(
            "header value with CRLF",
            D,
            edit(full(), |s| {
                s["upstream"]["headers"][0]["value"] = json!("org\r\nX-Injected: 1")
            }),
            &[HEADER_VALUE],
        ),
        bad(
            "header value with NUL",
            D,
            edit(full(), |s| {
                s["upstream"]["headers"][1]["value"] = json!("a\u{0}b")
            }),
            &[HEADER_VALUE],
        ),
        bad(
            "two bad headers",
            D,
            edit(full(), |s| {
                s["upstream"]["headers"] = json!([
                    { "name": "proxy-authorization", "value": "x" },
                    { "name": "x y", "value": "line\n" },
                ]);
            }),
            &[HEADER_SECRET, HEADER_NAME, HEADER_VALUE],
        ),
        // spec.upstream.credentials
        bad(
            "credentials with both forms",
            D,
            edit(compatible(), |s| {
                s["upstream"]["credentials"] = json!({
                    "secretKeyRef": { "name": "a", "key": "b" },
                    "secretName": "c",
                    "keys": { "apiKey": "d" },
                });
            }),
            &[CREDENTIALS_FORM],
        ),
        bad(
            "secretName without keys",
            D,
            edit(compatible(), |s| {
                s["upstream"]["credentials"] = json!({ "secretName": "c" })
            }),
            &[CREDENTIALS_FORM],
        ),
        bad(
            "keys without secretName",
            D,
            edit(compatible(), |s| {
                s["upstream"]["credentials"] = json!({ "keys": { "apiKey": "d" } })
            }),
            &[CREDENTIALS_FORM],
        ),
        bad(
            "secretKeyRef with keys",
            D,
            edit(openai(), |s| {
                s["upstream"]["credentials"]["keys"] = json!({ "apiKey": "d" })
            }),
            &[CREDENTIALS_FORM],
        ),
        bad(
            "empty credentials on openai",
            D,
            edit(openai(), |s| s["upstream"]["credentials"] = json!({})),
            &[CREDENTIALS_FORM, API_KEY],
        ),
        bad(
            "empty Secret name",
            D,
            edit(openai(), |s| {
                s["upstream"]["credentials"]["secretKeyRef"]["name"] = json!("")
            }),
            &[SECRET_NAME_EMPTY],
        ),
        bad(
            "empty Secret key",
            D,
            edit(openai(), |s| {
                s["upstream"]["credentials"]["secretKeyRef"]["key"] = json!("")
            }),
            &[SECRET_KEY_EMPTY],
        ),
        bad(
            "empty secretName",
            D,
            edit(gemini(), |s| {
                s["upstream"]["credentials"]["secretName"] = json!("")
            }),
            &[SECRET_NAME_FIELD_EMPTY],
        ),
        bad(
            "empty keys",
            D,
            edit(compatible(), |s| {
                s["upstream"]["credentials"] = json!({ "secretName": "c", "keys": {} })
            }),
            &[KEYS_NONEMPTY],
        ),
        bad(
            "empty keys on gemini",
            D,
            edit(gemini(), |s| {
                s["upstream"]["credentials"]["keys"] = json!({})
            }),
            &[KEYS_NONEMPTY, API_KEY],
        ),
        // durations
        bad(
            "mock delay in words",
            D,
            edit(mock(), |s| s["upstream"]["mock"]["delay"] = json!("fast")),
            &[DURATION],
        ),
        bad(
            "request timeout without unit",
            D,
            edit(full(), |s| s["timeouts"]["request"] = json!("600")),
            &[DURATION],
        ),
        bad(
            "firstByte in days",
            D,
            edit(full(), |s| {
                s["timeouts"]["stream"]["firstByte"] = json!("1d")
            }),
            &[DURATION],
        ),
        bad(
            "negative idle timeout",
            D,
            edit(full(), |s| s["timeouts"]["stream"]["idle"] = json!("-1s")),
            &[DURATION],
        ),
        bad(
            "interval with a space",
            D,
            edit(full(), |s| s["healthCheck"]["interval"] = json!("1 m")),
            &[DURATION],
        ),
        bad(
            "timeout 5sec",
            D,
            edit(full(), |s| s["healthCheck"]["timeout"] = json!("5sec")),
            &[DURATION],
        ),
        bad(
            "duration .5s",
            D,
            edit(full(), |s| s["healthCheck"]["timeout"] = json!(".5s")),
            &[DURATION],
        ),
        // limits
        bad(
            "rpm 0",
            D,
            edit(full(), |s| s["limits"]["rpm"] = json!(0)),
            &[RPM],
        ),
        bad(
            "tpm negative",
            D,
            edit(full(), |s| s["limits"]["tpm"] = json!(-5)),
            &[TPM],
        ),
        bad(
            "maxConcurrentRequests 0",
            D,
            edit(full(), |s| s["limits"]["maxConcurrentRequests"] = json!(0)),
            &[MAX_CONCURRENT],
        ),
        // routing
        bad(
            "routing weight -1",
            D,
            edit(full(), |s| s["routing"]["weight"] = json!(-1)),
            &[WEIGHT_MIN],
        ),
        bad(
            "routing weight too large",
            D,
            edit(full(), |s| s["routing"]["weight"] = json!(1_000_001)),
            &[WEIGHT_MAX],
        ),
        bad(
            "order 0",
            D,
            edit(full(), |s| s["routing"]["order"] = json!(0)),
            &[ORDER_MIN],
        ),
        bad(
            "order 1001",
            D,
            edit(full(), |s| s["routing"]["order"] = json!(1001)),
            &[ORDER_MAX],
        ),
        bad(
            "retries -1",
            D,
            edit(full(), |s| s["routing"]["retries"] = json!(-1)),
            &[RETRIES],
        ),
        bad(
            "retries 11",
            D,
            edit(full(), |s| s["routing"]["retries"] = json!(11)),
            &[RETRIES],
        ),
        // modelInfo
        bad(
            "contextWindow 0",
            D,
            edit(full(), |s| s["modelInfo"]["contextWindow"] = json!(0)),
            &[CONTEXT_WINDOW],
        ),
        bad(
            "maxOutputTokens 0",
            D,
            edit(full(), |s| s["modelInfo"]["maxOutputTokens"] = json!(0)),
            &[MAX_OUTPUT],
        ),
        bad(
            "negative inputCostPerToken",
            D,
            edit(full(), |s| {
                s["modelInfo"]["inputCostPerToken"] = json!(-0.000_001)
            }),
            &[INPUT_COST],
        ),
        bad(
            "negative outputCostPerToken as an integer",
            D,
            edit(full(), |s| s["modelInfo"]["outputCostPerToken"] = json!(-1)),
            &[OUTPUT_COST],
        ),
        // healthCheck
        bad(
            "probe url without url",
            D,
            edit(full(), |s| del(s, "/healthCheck/url")),
            &[PROBE_URL],
        ),
        bad(
            "url with another probe",
            D,
            edit(health_models_list(), |s| {
                s["healthCheck"]["url"] = json!("http://demo/health")
            }),
            &[PROBE_URL],
        ),
        bad(
            "url without probe",
            D,
            edit(mock(), |s| {
                s["healthCheck"] = json!({ "url": "http://demo/health" })
            }),
            &[PROBE_URL],
        ),
        bad(
            "health url ftp",
            D,
            edit(full(), |s| {
                s["healthCheck"]["url"] = json!("ftp://x/health")
            }),
            &[URL],
        ),
        bad(
            "several mistakes at once",
            D,
            edit(full(), |s| {
                s["model"] = json!("my model");
                s["limits"]["rpm"] = json!(0);
                s["routing"]["retries"] = json!(99);
                s["upstream"]["region"] = json!("EU");
                del(s, "/upstream/apiBase");
            }),
            &[MODEL_NAME, RPM, RETRIES, REGION, COMPATIBLE_BASE],
        ),
        // ModelGroupAlias: spec
        bad(
            "every target weight 0",
            A,
            edit(zero_beside_positive(), |s| {
                s["targets"][1]["weight"] = json!(0)
            }),
            &[TARGET_WEIGHT],
        ),
        bad(
            "no targets",
            A,
            edit(weighted(), |s| s["targets"] = json!([])),
            &[TARGET_WEIGHT],
        ),
        bad(
            "the same target twice",
            A,
            edit(weighted(), |s| s["targets"][1]["model"] = json!("gpt-4o")),
            &[TARGETS_UNIQUE],
        ),
        bad(
            "alias targets itself",
            A,
            edit(weighted(), |s| s["targets"][0]["model"] = json!("gpt-4")),
            &[SELF_REFERENCE],
        ),
        bad(
            "alias falls back to itself",
            A,
            edit(with_fallbacks(), |s| s["fallbacks"][1] = json!("smart")),
            &[SELF_REFERENCE],
        ),
        // spec.alias
        bad(
            "empty alias",
            A,
            edit(weighted(), |s| s["alias"] = json!("")),
            &[ALIAS_NAME],
        ),
        bad(
            "alias with a space",
            A,
            edit(weighted(), |s| s["alias"] = json!("gpt 4")),
            &[ALIAS_NAME],
        ),
        bad(
            "wildcard alias",
            A,
            edit(weighted(), |s| s["alias"] = json!("openai/*")),
            &[ALIAS_NAME],
        ),
        // spec.targets[*]
        bad(
            "empty target model",
            A,
            edit(weighted(), |s| s["targets"][0]["model"] = json!("")),
            &[TARGET_MODEL],
        ),
        bad(
            "wildcard target",
            A,
            edit(weighted(), |s| s["targets"][1]["model"] = json!("openai/*")),
            &[TARGET_MODEL],
        ),
        bad(
            "target with a newline",
            A,
            edit(weighted(), |s| s["targets"][1]["model"] = json!("gpt\n4o")),
            &[TARGET_MODEL],
        ),
        bad(
            "negative target weight",
            A,
            edit(weighted(), |s| s["targets"][1]["weight"] = json!(-1)),
            &[WEIGHT_MIN],
        ),
        bad(
            "target weight too large",
            A,
            edit(weighted(), |s| s["targets"][0]["weight"] = json!(1_000_001)),
            &[WEIGHT_MAX],
        ),
        bad(
            "only target has a negative weight",
            A,
            edit(single_target(), |s| s["targets"][0]["weight"] = json!(-3)),
            &[WEIGHT_MIN, TARGET_WEIGHT],
        ),
        // spec.fallbacks
        bad(
            "empty fallback",
            A,
            edit(with_fallbacks(), |s| s["fallbacks"][0] = json!("")),
            &[FALLBACK_NAMES],
        ),
        bad(
            "wildcard fallback",
            A,
            edit(with_fallbacks(), |s| s["fallbacks"][0] = json!("openai/*")),
            &[FALLBACK_NAMES],
        ),
        bad(
            "fallback with a space",
            A,
            edit(with_fallbacks(), |s| {
                s["fallbacks"][1] = json!("gemini pro")
            }),
            &[FALLBACK_NAMES],
        ),
        bad(
            "the same fallback twice",
            A,
            edit(with_fallbacks(), |s| s["fallbacks"][1] = json!("gpt-4o")),
            &[FALLBACKS_UNIQUE],
        ),
        bad(
            "several alias mistakes at once",
            A,
            json!({
                "alias": "x",
                "targets": [ { "model": "x", "weight": 0 }, { "model": "x", "weight": 0 } ],
                "fallbacks": [ "y", "y", "" ],
            }),
            &[
                TARGET_WEIGHT,
                TARGETS_UNIQUE,
                SELF_REFERENCE,
                FALLBACK_NAMES,
                FALLBACKS_UNIQUE,
            ],
        ),
    ];

    v.push(bad(
        "x-api-key spelled with a Kelvin sign",
        D,
        edit(full(), |s| {
            s["upstream"]["headers"][0]["name"] = json!("x-api-\u{212A}ey")
        }),
        &[HEADER_NAME],
    ));
    v
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn every_rule_is_found_has_a_message_and_compiles() {
    let rules = all_rules();
    let mut problems = Vec::new();
    for kind in [Kind::Deployment, Kind::Alias] {
        let anywhere = count_validations_anywhere(&schema(kind));
        let walked = rules.iter().filter(|r| r.kind == kind).count();
        if anywhere != walked {
            problems.push(format!(
                "{}: {anywhere} x-kubernetes-validations entries in the schema, but only {walked} \
                 where the API server looks for them (properties/items/additionalProperties/allOf/anyOf/oneOf)",
                kind.name()
            ));
        }
        if walked == 0 {
            problems.push(format!("{}: no CEL rule found", kind.name()));
        }
    }
    for r in &rules {
        let at = format!("{} {:?} rule {:?}", r.kind.name(), r.path, r.rule);
        if r.rule.trim().is_empty() {
            problems.push(format!("{at}: empty rule"));
        }
        match &r.message {
            Some(m) if !m.trim().is_empty() => {}
            _ => problems.push(format!(
                "{at}: no static message (the Rust mirror reports messages, so every rule needs one)"
            )),
        }
        // Compile just this node's rules (the node's children are compiled too, but only
        // its own errors are looked at, so each bad rule is reported once).
        let compiled =
            compile_schema(&json!({ "x-kubernetes-validations": [ { "rule": r.rule } ] }));
        for e in compiled.compilation_errors() {
            problems.push(format!("{at}: does not compile: {e}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn good_examples_pass() {
    let cel = Cel::new();
    let mut failures = Vec::new();
    for ex in good_examples() {
        let r = cel.eval(ex.kind, &ex.object);
        if !r.findings.is_empty() || !r.other.is_empty() {
            failures.push(format!(
                "{:?}: expected no error, CEL reported {:?} {:?}\n  object: {}",
                ex.name, r.findings, r.other, ex.object
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "good examples rejected:\n{}",
        failures.join("\n")
    );
}

#[test]
fn bad_examples_fail_with_their_messages() {
    let cel = Cel::new();
    let mut failures = Vec::new();
    let mut names = BTreeSet::new();
    for ex in bad_examples() {
        assert!(
            names.insert(ex.name),
            "two bad examples named {:?}",
            ex.name
        );
        assert!(
            !ex.expect.is_empty(),
            "bad example {:?} expects no message",
            ex.name
        );
        let r = cel.eval(ex.kind, &ex.object);
        let mut expected = ex.expect.clone();
        expected.sort_unstable();
        let got = messages(&r.findings);
        if got != expected || !r.other.is_empty() {
            failures.push(format!(
                "{:?}: expected {expected:?}\n  CEL reported {:?}{}\n  object: {}",
                ex.name,
                r.findings,
                if r.other.is_empty() {
                    String::new()
                } else {
                    format!("\n  and errors {:?}", r.other)
                },
                ex.object
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "bad examples not rejected as expected:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_rule_is_broken_by_a_bad_example() {
    let cel = Cel::new();
    let mut broken = BTreeSet::new();
    let mut produced = BTreeSet::new();
    for ex in bad_examples() {
        let r = cel.eval(ex.kind, &ex.object);
        broken.extend(r.broken);
        produced.extend(r.findings.into_iter().map(|(_, m)| m));
    }
    let rules = all_rules();
    let mut missing = Vec::new();
    for r in &rules {
        if let Some(m) = &r.message
            && !produced.contains(m)
        {
            missing.push(format!(
                "message {m:?} (rule {:?} at {}) is produced by no bad example",
                r.rule, r.path
            ));
        }
        if !broken.contains(&r.key()) {
            missing.push(format!(
                "{} rule {:?} at {} is broken by no bad example",
                r.kind.name(),
                r.rule,
                if r.path.is_empty() { "<root>" } else { &r.path }
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "add a bad example to crds/tests/cel.rs for each of these:\n{}",
        missing.join("\n")
    );
}

fn compare_with_mirror(
    cel: &Cel,
    label: &str,
    kind: Kind,
    object: &Value,
    failures: &mut Vec<String>,
) {
    let r = cel.eval(kind, object);
    if !r.other.is_empty() {
        failures.push(format!(
            "{label}: CEL could not evaluate: {:?}\n  object: {object}",
            r.other
        ));
        return;
    }
    match mirror(kind, object) {
        Err(e) => failures.push(format!("{label}: {e}\n  object: {object}")),
        Ok(rust) if rust != r.findings => failures.push(format!(
            "{label}: the Rust mirror and CEL disagree\n  CEL:  {:?}\n  Rust: {rust:?}\n  object: {object}",
            r.findings
        )),
        Ok(_) => {}
    }
}

#[test]
fn rust_mirror_agrees_with_cel_on_every_example() {
    let cel = Cel::new();
    let mut failures = Vec::new();
    for ex in good_examples().into_iter().chain(bad_examples()) {
        compare_with_mirror(&cel, ex.name, ex.kind, &ex.object, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A string field a rule checks, and how to build an object with a value in it.
struct Site {
    name: &'static str,
    kind: Kind,
    place: fn(&str) -> Value,
}

fn sites() -> Vec<Site> {
    use Kind::{Alias as A, Deployment as D};
    fn md(spec: Value) -> Value {
        object(Kind::Deployment, "tricky", spec)
    }
    fn mga(spec: Value) -> Value {
        object(Kind::Alias, "tricky", spec)
    }
    vec![
        Site {
            name: "spec.model",
            kind: D,
            place: |s| md(edit(mock_bare(), |v| v["model"] = json!(s))),
        },
        Site {
            name: "spec.model of a deployment with upstream.model *",
            kind: D,
            place: |s| md(edit(wildcard(), |v| v["model"] = json!(s))),
        },
        Site {
            name: "upstream.model of a plain model",
            kind: D,
            place: |s| md(edit(openai(), |v| v["upstream"]["model"] = json!(s))),
        },
        Site {
            name: "upstream.model of a wildcard model",
            kind: D,
            place: |s| md(edit(wildcard(), |v| v["upstream"]["model"] = json!(s))),
        },
        Site {
            name: "upstream.apiBase",
            kind: D,
            place: |s| md(edit(compatible(), |v| v["upstream"]["apiBase"] = json!(s))),
        },
        Site {
            name: "upstream.apiVersion",
            kind: D,
            place: |s| md(edit(azure(), |v| v["upstream"]["apiVersion"] = json!(s))),
        },
        Site {
            name: "upstream.region",
            kind: D,
            place: |s| md(edit(bedrock(), |v| v["upstream"]["region"] = json!(s))),
        },
        Site {
            name: "upstream.headers[0].name",
            kind: D,
            place: |s| {
                md(edit(full(), |v| {
                    v["upstream"]["headers"][0]["name"] = json!(s)
                }))
            },
        },
        Site {
            name: "upstream.headers[1].value",
            kind: D,
            place: |s| {
                md(edit(full(), |v| {
                    v["upstream"]["headers"][1]["value"] = json!(s)
                }))
            },
        },
        Site {
            name: "credentials.secretKeyRef.name",
            kind: D,
            place: |s| {
                md(edit(openai(), |v| {
                    v["upstream"]["credentials"]["secretKeyRef"]["name"] = json!(s)
                }))
            },
        },
        Site {
            name: "credentials.secretName",
            kind: D,
            place: |s| {
                md(edit(gemini(), |v| {
                    v["upstream"]["credentials"]["secretName"] = json!(s)
                }))
            },
        },
        Site {
            name: "upstream.mock.delay",
            kind: D,
            place: |s| md(edit(mock(), |v| v["upstream"]["mock"]["delay"] = json!(s))),
        },
        Site {
            name: "timeouts.stream.idle",
            kind: D,
            place: |s| md(edit(full(), |v| v["timeouts"]["stream"]["idle"] = json!(s))),
        },
        Site {
            name: "healthCheck.url",
            kind: D,
            place: |s| md(edit(full(), |v| v["healthCheck"]["url"] = json!(s))),
        },
        Site {
            name: "spec.alias",
            kind: A,
            place: |s| mga(edit(weighted(), |v| v["alias"] = json!(s))),
        },
        Site {
            name: "spec.targets[1].model",
            kind: A,
            place: |s| mga(edit(weighted(), |v| v["targets"][1]["model"] = json!(s))),
        },
        Site {
            name: "spec.fallbacks[1]",
            kind: A,
            place: |s| mga(edit(with_fallbacks(), |v| v["fallbacks"][1] = json!(s))),
        },
    ]
}

/// Short strings (within every field's maxLength, which CEL does not check but the Rust
/// mirror does for durations) that probe the edges of the rules' regular expressions.
const TRICKY: &[&str] = &[
    "",
    " ",
    "a",
    "a b",
    " a",
    "a ",
    "a\tb",
    "a\nb",
    "a\rb",
    "a\u{0}b",
    "a\u{b}b",
    "a\u{c}b",
    "a\u{85}b",
    "a\u{a0}b",
    "a\u{2003}b",
    "a\u{2028}b",
    "a\u{3000}b",
    "a\u{200b}b",
    "é",
    "*",
    "a*",
    "*a",
    "**",
    "/*",
    "a/*",
    "A/*",
    "-a/*",
    "_a/*",
    "a_b.c-d/*",
    "a b/*",
    "a/b/*",
    "a/**",
    "a/*/b",
    "openai/*",
    "openai/gpt-4o",
    "gpt-4o",
    "smart",
    "gpt-4",
    "http://a",
    "https://a",
    "http://a:8/p?q#f",
    "https://",
    "https:///x",
    "https://?x",
    "https://#x",
    "https://a b",
    "http://a\u{a0}",
    "HTTP://a",
    "ftp://a",
    "//a",
    "0s",
    "500ms",
    "1.5s",
    "1h30m",
    "2m3s4ms",
    "1sms",
    "1ms5",
    "5",
    "s",
    "1d",
    ".5s",
    "1.s",
    "-1s",
    "1 s",
    "1e3s",
    "99999999999999999999h",
    "us-east-1",
    "US",
    "a-",
    "-",
    "a_b",
    "Authorization",
    "authorization",
    "PROXY-AUTHORIZATION",
    "x-api-key",
    "X-Api-Key",
    "x-goog-api-key",
    "api-key",
    "api-keys",
    "Content-Type",
    "X-A:b",
    "a'b",
    "a`b",
    "!#$%&*+.^_|~-",
    "a\"b",
    "a;b",
];

#[test]
fn rust_mirror_agrees_with_cel_on_tricky_strings() {
    let cel = Cel::new();
    let mut failures = Vec::new();
    for site in sites() {
        for s in TRICKY {
            let label = format!("{} = {s:?}", site.name);
            compare_with_mirror(&cel, &label, site.kind, &(site.place)(s), &mut failures);
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The API server refuses a CRD whose rule may cost more than its per-rule limit. kube-cel's
/// estimate (`estimate_rule_cost`) is a coarse heuristic, so the schema is also required to bound
/// every string, list and map (the API server's estimator relies on those bounds).
#[test]
fn rules_stay_within_the_cost_budget() {
    let mut problems = Vec::new();
    for r in all_rules() {
        let compiled = compile_schema(&r.node);
        // `estimate_rule_cost`, not `analyze_rule`: kube-cel 0.8's scope check takes the
        // variables of comprehensions (`t` in `self.targets.all(t, ...)`) for undeclared ones.
        for w in estimate_rule_cost(&r.rule, &compiled) {
            problems.push(format!(
                "{} rule {:?} at {:?}: {:?}: {}",
                r.kind.name(),
                r.rule,
                r.path,
                w.kind,
                w.message
            ));
        }
    }
    fn unbounded(node: &Value, path: &str, out: &mut Vec<String>) {
        let ty = node.get("type").and_then(Value::as_str);
        let has = |k: &str| node.get(k).is_some();
        match ty {
            Some("string") if !has("maxLength") && !has("enum") => {
                out.push(format!("{path}: string without maxLength"));
            }
            Some("array") if !has("maxItems") => out.push(format!("{path}: list without maxItems")),
            Some("object") if has("additionalProperties") && !has("maxProperties") => {
                out.push(format!("{path}: map without maxProperties"));
            }
            _ => {}
        }
        for (name, child) in node
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            unbounded(child, &join(path, name), out);
        }
        if let Some(items) = node.get("items") {
            unbounded(items, &format!("{path}[*]"), out);
        }
        if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
            unbounded(values, &join(path, "*"), out);
        }
    }
    for kind in [Kind::Deployment, Kind::Alias] {
        let mut out = Vec::new();
        unbounded(&schema(kind), "", &mut out);
        problems.extend(out.into_iter().map(|p| format!("{}: {p}", kind.name())));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// kube-cel evaluates `matches()` with Rust's `regex`, the API server with Go's RE2. They
/// agree on everything but the Perl classes `\s \S \d \D \w \W \b \B`, which are ASCII-only
/// in RE2 and Unicode-aware in Rust. A rule using them passes this test suite but behaves
/// differently on a real cluster, so such rules must use explicit classes instead.
#[test]
fn regexes_mean_the_same_in_re2_and_rust() {
    // Every rule spells whitespace as an explicit class; none may use a Perl class.
    let known: BTreeSet<&str> = BTreeSet::new();
    let mut offending: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in all_rules() {
        if let Some(class) = perl_class(&r.rule) {
            offending
                .entry(r.message.clone().unwrap_or_default())
                .or_default()
                .push(format!(
                    "{} {} uses {class}: {}",
                    r.kind.name(),
                    r.path,
                    r.rule
                ));
        }
    }
    let mut problems = Vec::new();
    for (message, places) in &offending {
        if !known.contains(message.as_str()) {
            problems.extend(places.iter().cloned());
        }
    }
    for message in &known {
        if !offending.contains_key(*message) {
            problems.push(format!(
                "the rule with message {message:?} no longer uses a Perl class: remove it from the FIXME(rules) list"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The first `\s`-style Perl class a regular expression in a CEL rule uses, if any. In a
/// (non-raw) CEL string literal the regex escape `\s` is written `\\s`, and `\\\\s` is a
/// literal backslash followed by `s`.
fn perl_class(rule: &str) -> Option<String> {
    let chars: Vec<char> = rule.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' {
            let start = i;
            while i < chars.len() && chars[i] == '\\' {
                i += 1;
            }
            let backslashes = i - start;
            if let Some(&c) = chars.get(i)
                && "sSdDwWbB".contains(c)
                && backslashes % 4 == 2
            {
                return Some(format!("\\{c}"));
            }
        } else {
            i += 1;
        }
    }
    None
}

#[test]
fn perl_class_detection() {
    assert_eq!(
        perl_class(r"self.matches('^\\S+$')").as_deref(),
        Some(r"\S")
    );
    assert_eq!(
        perl_class(r"self.matches('[^*\\s]')").as_deref(),
        Some(r"\s")
    );
    assert_eq!(perl_class(r"self.matches('[\\r\\n\\x00]')"), None);
    assert_eq!(
        perl_class(r"self.matches('^[^\\t\\n\\x0B\\f\\r\\x{85}\\p{Z}]+$')"),
        None
    );
    assert_eq!(perl_class(r"self.matches('^a\\\\s$')"), None);
}
