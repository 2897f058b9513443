//! Manifests for tests, written with small builders and compiled with the operator's own
//! compiler into a [`RoutingTable`].
//!
//! ```ignore
//! let m = Manifest::new()
//!     .with(Dep::new("a", "chat", &a).weight(3))
//!     .with(Dep::new("b", "chat", &b).weight(1).order(2))
//!     .with(Alias::new("smart").target("chat", 1))
//!     .settings(json!({"cooldown": {"allowedFails": 1, "cooldownTime": "1s"}}));
//! let table = compile_ok(&m.to_yaml(), 1);
//! ```
//!
//! Documents are written as JSON (which YAML reads), so a builder is a `serde_json` value
//! with helpers; [`Manifest::raw`] takes any YAML document as is.

use std::path::Path;

use modelgate_dataplane_api::RoutingTable;
use modelgate_operator::compile::{self, Compiled, Severity};
use modelgate_operator::manifests::Manifests;
use serde_json::{Value, json};

use crate::upstream::MockUpstream;

/// A `ModelDeployment`.
#[derive(Clone, Debug)]
pub struct Dep(Value);

impl Dep {
    /// An `openai-compatible` deployment of model `model` at the mock upstream `up`
    /// (namespace `default`, so its id is `default/<name>`), with active health checks off
    /// so that the upstream sees only the test's traffic.
    pub fn new(name: &str, model: &str, up: &MockUpstream) -> Self {
        Self::at(name, model, "openai-compatible", &up.openai_base())
    }

    /// A deployment of `provider` at `api_base`.
    pub fn at(name: &str, model: &str, provider: &str, api_base: &str) -> Self {
        Self(json!({
            "apiVersion": "modelgate.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": name},
            "spec": {
                "model": model,
                "upstream": {"provider": provider, "apiBase": api_base},
                "healthCheck": {"enabled": false},
            },
        }))
    }

    /// An Azure OpenAI deployment: `up` is the resource endpoint, `deployment` the Azure
    /// deployment name, its key in `key` of Secret `secret`.
    pub fn azure(
        name: &str,
        model: &str,
        up: &MockUpstream,
        deployment: &str,
        api_version: &str,
    ) -> Self {
        let mut d = Self::at(name, model, "azure", &up.url());
        d.0["spec"]["upstream"]["model"] = json!(deployment);
        d.0["spec"]["upstream"]["apiVersion"] = json!(api_version);
        d
    }

    /// A deployment on the built-in `mock` provider.
    pub fn mock(name: &str, model: &str) -> Self {
        Self(json!({
            "apiVersion": "modelgate.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": name},
            "spec": {
                "model": model,
                "upstream": {"provider": "mock"},
                "healthCheck": {"enabled": false},
            },
        }))
    }

    fn spec(&mut self, section: &str, key: &str, value: Value) {
        let spec = &mut self.0["spec"];
        if !spec[section].is_object() {
            spec[section] = json!({});
        }
        spec[section][key] = value;
    }

    /// `metadata.namespace`.
    pub fn namespace(mut self, ns: &str) -> Self {
        self.0["metadata"]["namespace"] = json!(ns);
        self
    }

    /// `spec.upstream.provider`.
    pub fn provider(mut self, provider: &str) -> Self {
        self.spec("upstream", "provider", json!(provider));
        self
    }

    /// `spec.upstream.model`.
    pub fn upstream_model(mut self, model: &str) -> Self {
        self.spec("upstream", "model", json!(model));
        self
    }

    /// `spec.upstream.credentials.secretKeyRef`.
    pub fn key(mut self, secret: &str, key: &str) -> Self {
        self.spec(
            "upstream",
            "credentials",
            json!({"secretKeyRef": {"name": secret, "key": key}}),
        );
        self
    }

    /// An extra upstream header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let upstream = &mut self.0["spec"]["upstream"];
        if !upstream["headers"].is_array() {
            upstream["headers"] = json!([]);
        }
        if let Some(list) = upstream["headers"].as_array_mut() {
            list.push(json!({"name": name, "value": value}));
        }
        self
    }

    /// `spec.routing.weight`.
    pub fn weight(mut self, w: u32) -> Self {
        self.spec("routing", "weight", json!(w));
        self
    }

    /// `spec.routing.order`.
    pub fn order(mut self, o: u32) -> Self {
        self.spec("routing", "order", json!(o));
        self
    }

    /// `spec.routing.retries`.
    pub fn retries(mut self, r: u32) -> Self {
        self.spec("routing", "retries", json!(r));
        self
    }

    /// `spec.timeouts.request`, e.g. `"300ms"`.
    pub fn request_timeout(mut self, d: &str) -> Self {
        self.spec("timeouts", "request", json!(d));
        self
    }

    /// `spec.timeouts.stream.firstByte`.
    pub fn first_byte_timeout(mut self, d: &str) -> Self {
        self.stream_timeout("firstByte", d);
        self
    }

    /// `spec.timeouts.stream.idle`.
    pub fn idle_timeout(mut self, d: &str) -> Self {
        self.stream_timeout("idle", d);
        self
    }

    /// Sets `spec.timeouts.stream.<key>`, creating the objects on the way.
    fn stream_timeout(&mut self, key: &str, d: &str) {
        let t = &mut self.0["spec"]["timeouts"];
        if !t.is_object() {
            *t = json!({});
        }
        if !t["stream"].is_object() {
            t["stream"] = json!({});
        }
        t["stream"][key] = json!(d);
    }

    /// `spec.limits.maxConcurrentRequests`.
    pub fn max_concurrent(mut self, n: u32) -> Self {
        self.spec("limits", "maxConcurrentRequests", json!(n));
        self
    }

    /// A `spec.modelInfo` field, e.g. `("mode", json!("chat"))`.
    pub fn info(mut self, key: &str, value: Value) -> Self {
        self.spec("modelInfo", key, value);
        self
    }

    /// `spec.upstream.mock` of a `mock` deployment.
    pub fn mock_answer(mut self, response: &str, delay: &str) -> Self {
        self.spec(
            "upstream",
            "mock",
            json!({"response": response, "delay": delay}),
        );
        self
    }

    /// Any `spec` field, replacing what is there.
    pub fn spec_field(mut self, key: &str, value: Value) -> Self {
        self.0["spec"][key] = value;
        self
    }
}

/// A `ModelGroupAlias`.
#[derive(Clone, Debug)]
pub struct Alias(Value);

impl Alias {
    /// An alias `name` (object name and alias alike) with no targets yet.
    pub fn new(name: &str) -> Self {
        Self(json!({
            "apiVersion": "modelgate.dev/v1alpha1",
            "kind": "ModelGroupAlias",
            "metadata": {"name": name},
            "spec": {"alias": name, "targets": []},
        }))
    }

    /// Adds a target with a weight.
    pub fn target(mut self, model: &str, weight: u32) -> Self {
        if let Some(t) = self.0["spec"]["targets"].as_array_mut() {
            t.push(json!({"model": model, "weight": weight}));
        }
        self
    }

    /// Adds a fallback.
    pub fn fallback(mut self, model: &str) -> Self {
        let spec = &mut self.0["spec"];
        if !spec["fallbacks"].is_array() {
            spec["fallbacks"] = json!([]);
        }
        if let Some(f) = spec["fallbacks"].as_array_mut() {
            f.push(json!(model));
        }
        self
    }

    /// Routed but not listed.
    pub fn hidden(mut self) -> Self {
        self.0["spec"]["hidden"] = json!(true);
        self
    }
}

/// A `v1 Secret` with `stringData`.
#[derive(Clone, Debug)]
pub struct Secret(Value);

impl Secret {
    /// A Secret `name` in namespace `default`.
    pub fn new(name: &str) -> Self {
        Self(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "stringData": {},
        }))
    }

    /// Adds a key.
    pub fn entry(mut self, key: &str, value: &str) -> Self {
        self.0["stringData"][key] = json!(value);
        self
    }
}

/// A set of documents.
#[derive(Clone, Debug, Default)]
pub struct Manifest {
    docs: Vec<String>,
}

/// Anything that is one manifest document.
pub trait Document {
    /// The document as YAML (or JSON) text.
    fn to_doc(&self) -> String;
}

impl Document for Dep {
    fn to_doc(&self) -> String {
        self.0.to_string()
    }
}

impl Document for Alias {
    fn to_doc(&self) -> String {
        self.0.to_string()
    }
}

impl Document for Secret {
    fn to_doc(&self) -> String {
        self.0.to_string()
    }
}

impl Manifest {
    /// No documents.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a document.
    pub fn with(mut self, doc: impl Document) -> Self {
        self.docs.push(doc.to_doc());
        self
    }

    /// Adds a YAML document as is.
    pub fn raw(mut self, yaml: &str) -> Self {
        self.docs.push(yaml.to_owned());
        self
    }

    /// Adds the `RouterSettings` document with these fields.
    pub fn settings(mut self, fields: Value) -> Self {
        let mut doc = json!({"apiVersion": "modelgate.dev/v1alpha1", "kind": "RouterSettings"});
        if let (Some(d), Some(f)) = (doc.as_object_mut(), fields.as_object()) {
            d.extend(f.clone());
        }
        self.docs.push(doc.to_string());
        self
    }

    /// The multi-document YAML stream.
    pub fn to_yaml(&self) -> String {
        self.docs.join("\n---\n")
    }
}

/// Compiles a YAML manifest stream (deployments, aliases, Secrets, one `RouterSettings`)
/// with the operator's compiler, sealed with `revision`.
pub fn compile_yaml(yaml: &str, revision: u64) -> Compiled {
    let mut manifests = Manifests::default();
    manifests
        .add_str(Path::new("test.yaml"), yaml)
        .unwrap_or_else(|e| panic!("manifest: {e}\n{yaml}"));
    let settings = manifests.settings.clone().unwrap_or_default();
    manifests.compile(&settings, compile::DEFAULT_NAMESPACE, revision)
}

/// Compiles a manifest stream and panics on any error diagnostic (a test's manifest is
/// meant to compile whole).
pub fn compile_ok(yaml: &str, revision: u64) -> RoutingTable {
    let compiled = compile_yaml(yaml, revision);
    let errors: Vec<String> = compiled
        .diagnostics
        .iter()
        .flat_map(|(key, diags)| {
            diags
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .map(move |d| format!("{key}: {}: {}", d.reason, d.message))
        })
        .collect();
    assert!(errors.is_empty(), "manifest left objects out: {errors:#?}");
    compiled
        .table
        .validate()
        .unwrap_or_else(|e| panic!("the compiled table is not valid: {e:?}"));
    compiled.table
}
