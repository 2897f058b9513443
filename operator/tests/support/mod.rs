//! Builders for compiler tests: resources from compact YAML, Secrets, and a one-call
//! compile.

#![allow(dead_code)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use modelgate_crds::{ModelDeployment, ModelGroupAlias, RouterSettings};
use modelgate_operator::compile::{Compiled, Inputs, Kind, ObjectKey, SecretStore, compile};

/// A `ModelDeployment` `namespace/name` with `spec` given as YAML.
pub fn deployment(namespace: &str, name: &str, spec: &str) -> ModelDeployment {
    let spec = serde_yaml::from_str(spec).unwrap_or_else(|e| panic!("spec of {name}: {e}"));
    let mut d = ModelDeployment::new(name, spec);
    d.metadata.namespace = Some(namespace.to_owned());
    d.metadata.generation = Some(1);
    d
}

/// A mock-provider deployment of `model`.
pub fn mock(namespace: &str, name: &str, model: &str) -> ModelDeployment {
    deployment(
        namespace,
        name,
        &format!("{{model: {model:?}, upstream: {{provider: mock}}}}"),
    )
}

/// A `ModelGroupAlias` `namespace/name` with `spec` given as YAML.
pub fn alias(namespace: &str, name: &str, spec: &str) -> ModelGroupAlias {
    let spec = serde_yaml::from_str(spec).unwrap_or_else(|e| panic!("spec of {name}: {e}"));
    let mut a = ModelGroupAlias::new(name, spec);
    a.metadata.namespace = Some(namespace.to_owned());
    a.metadata.generation = Some(1);
    a
}

/// Sets the creation time to `secs` seconds after the epoch.
pub fn created_at<T: kube::Resource>(mut obj: T, secs: i64) -> T {
    let ts = jiff_timestamp(secs);
    obj.meta_mut().creation_timestamp = Some(ts);
    obj
}

fn jiff_timestamp(secs: i64) -> Time {
    let json =
        serde_json::Value::String(format!("2026-01-01T00:{:02}:{:02}Z", secs / 60, secs % 60));
    serde_json::from_value(json).unwrap_or_else(|e| panic!("timestamp: {e}"))
}

/// One Secret: `(namespace, name, [(key, value)])`.
pub type SecretEntry<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// A Secret store holding the given Secrets.
pub fn secrets(entries: &[SecretEntry<'_>]) -> SecretStore {
    let mut store = SecretStore::new();
    for (ns, name, kv) in entries {
        let data: BTreeMap<String, Vec<u8>> = kv
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect();
        store.insert(*ns, *name, data);
    }
    store
}

/// Compiles with settings in namespace `modelgate-system`, revision 1.
pub fn run(
    deployments: &[ModelDeployment],
    aliases: &[ModelGroupAlias],
    secrets: &SecretStore,
    settings: &RouterSettings,
) -> Compiled {
    compile(
        &Inputs {
            deployments,
            aliases,
            secrets,
            settings,
            settings_namespace: "modelgate-system",
        },
        1,
    )
}

/// Key of a deployment.
pub fn dkey(ns: &str, name: &str) -> ObjectKey {
    ObjectKey::new(Kind::ModelDeployment, ns, name)
}

/// Key of an alias.
pub fn akey(ns: &str, name: &str) -> ObjectKey {
    ObjectKey::new(Kind::ModelGroupAlias, ns, name)
}

/// The reason names of an object's diagnostics.
pub fn reasons(c: &Compiled, key: &ObjectKey) -> Vec<&'static str> {
    c.diagnostics
        .of(key)
        .iter()
        .map(|d| d.reason.as_str())
        .collect()
}
