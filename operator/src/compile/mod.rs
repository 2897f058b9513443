//! The compiler: a pure function from resources to a routing table.
//!
//! `compile(deployments, aliases, secrets, settings) -> (RoutingTable, diagnostics)`.
//! It repeats every CEL rule of the CRDs (local mode has no API server), resolves
//! credentials and aliases, enforces namespace ownership of model names, and leaves out
//! each object it cannot serve with a diagnostic saying why, so that one bad resource never
//! takes another's route. Inputs in any order give byte-identical output.

mod aliases;
mod deployments;
pub mod diagnostics;
mod ownership;
mod secrets;
mod settings;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use modelgate_crds::{ModelDeployment, ModelGroupAlias, RouterSettings};
use modelgate_dataplane_api::{Credential, Group, RoutingTable, SCHEMA_VERSION, SecretValue};

pub use diagnostics::{Diagnostic, Diagnostics, Kind, ObjectKey, Reason, Severity};
pub use secrets::{SecretLookupError, SecretStore};

/// Namespace given to objects that carry none (local mode).
pub const DEFAULT_NAMESPACE: &str = "default";
/// Name under which diagnostics of the router settings are filed.
pub const SETTINGS_OBJECT_NAME: &str = "settings";

/// Everything the compiler reads.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// Every `ModelDeployment` of the watched namespaces.
    pub deployments: &'a [ModelDeployment],
    /// Every `ModelGroupAlias` of the watched namespaces.
    pub aliases: &'a [ModelGroupAlias],
    /// The Secrets they (and the settings) refer to.
    pub secrets: &'a SecretStore,
    /// The router settings.
    pub settings: &'a RouterSettings,
    /// Namespace of the settings document, where its Secret references point.
    pub settings_namespace: &'a str,
}

/// The compiler's output.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The routing table, sealed with the revision given to [`compile`].
    pub table: RoutingTable,
    /// What the compiler says about each object.
    pub diagnostics: Diagnostics,
}

impl Compiled {
    /// The key under which the settings' diagnostics are filed.
    pub fn settings_key(settings_namespace: &str) -> ObjectKey {
        ObjectKey::new(
            Kind::RouterSettings,
            settings_namespace,
            SETTINGS_OBJECT_NAME,
        )
    }
}

/// Where a resource's name and ordering facts come from.
#[derive(Clone, Debug)]
pub(crate) struct Meta {
    pub key: ObjectKey,
    pub generation: i64,
    pub created: Option<Time>,
}

impl Meta {
    fn of(kind: Kind, meta: &ObjectMeta) -> Option<Self> {
        let name = meta.name.clone().filter(|n| !n.is_empty())?;
        let namespace = meta
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        Some(Self {
            key: ObjectKey::new(kind, namespace, name),
            generation: meta.generation.unwrap_or(0),
            created: meta.creation_timestamp.clone(),
        })
    }

    /// Age order: oldest first, objects without a creation time after those with one,
    /// then namespace and name.
    pub fn age_key(&self) -> (bool, Option<&Time>, &str, &str) {
        (
            self.created.is_none(),
            self.created.as_ref(),
            &self.key.namespace,
            &self.key.name,
        )
    }
}

/// Collects credential values the table will carry: only keys something refers to.
#[derive(Default)]
pub(crate) struct CredentialSink {
    map: BTreeMap<String, Credential>,
}

impl CredentialSink {
    pub fn id(namespace: &str, name: &str) -> String {
        format!("{namespace}/{name}")
    }

    pub fn add(&mut self, id: &str, key: &str, value: &str) {
        if let Some(cred) = self.map.get_mut(id) {
            if cred.get(key).is_none_or(|v| v.expose() != value) {
                cred.insert(key.to_owned(), SecretValue::new(value));
            }
            return;
        }
        self.map.insert(
            id.to_owned(),
            Credential::from([(key.to_owned(), SecretValue::new(value))]),
        );
    }
}

/// Compiles resources into a routing table sealed with `revision`.
///
/// Pure and deterministic: the same inputs, in any order, give a byte-identical table.
/// Every object that cannot be served is left out with an error diagnostic; everything
/// else is compiled in.
pub fn compile(inputs: &Inputs<'_>, revision: u64) -> Compiled {
    let mut diags = Diagnostics::default();
    let settings_key = Compiled::settings_key(inputs.settings_namespace);
    let watched: BTreeSet<&str> = inputs
        .settings
        .namespaces
        .iter()
        .map(String::as_str)
        .collect();
    let is_watched = |ns: &str| watched.is_empty() || watched.contains(ns);

    let mut creds = CredentialSink::default();
    let table_settings = settings::compile_settings(
        inputs.settings,
        inputs.settings_namespace,
        inputs.secrets,
        &settings_key,
        &mut creds,
        &mut diags,
    );

    // Deployments: per-object checks first, in a canonical order.
    let deployment_objects = dedupe(
        Kind::ModelDeployment,
        inputs.deployments.iter().map(|d| (&d.metadata, d)),
        &mut diags,
    );
    let alias_objects = dedupe(
        Kind::ModelGroupAlias,
        inputs.aliases.iter().map(|a| (&a.metadata, a)),
        &mut diags,
    );
    let deployment_objects: Vec<_> = deployment_objects
        .into_iter()
        .filter(|(meta, _)| not_watched(meta, is_watched(&meta.key.namespace), &mut diags))
        .collect();
    let alias_objects: Vec<_> = alias_objects
        .into_iter()
        .filter(|(meta, _)| not_watched(meta, is_watched(&meta.key.namespace), &mut diags))
        .collect();

    // Name ownership is decided over every named object, accepted or not, so that a
    // broken resource does not hand its name to another namespace.
    let owners = ownership::Owners::decide(&deployment_objects, &alias_objects);

    let mut candidates = Vec::new();
    for (meta, d) in &deployment_objects {
        if let Some(c) = deployments::compile_deployment(
            meta,
            &d.spec,
            &table_settings,
            inputs.secrets,
            &owners,
            inputs.settings,
            &mut diags,
        ) {
            candidates.push(c);
        }
    }

    // Groups from accepted deployments; credentials of accepted deployments only.
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let mut table_deployments = Vec::with_capacity(candidates.len());
    for c in candidates {
        for (id, key, value) in &c.secret_values {
            creds.add(id, key, value);
        }
        let d = c.deployment;
        groups
            .entry(d.model.clone())
            .or_insert_with(|| Group {
                name: d.model.clone(),
                namespace: owners.owner(&d.model).unwrap_or(&c.namespace).to_owned(),
                deployments: Vec::new(),
            })
            .deployments
            .push(d.id.clone());
        table_deployments.push(d);
    }
    table_deployments.sort_by(|a, b| a.id.cmp(&b.id));
    for g in groups.values_mut() {
        g.deployments.sort();
    }

    let table_aliases = aliases::compile_aliases(
        &alias_objects,
        &groups,
        &owners,
        inputs.settings,
        &mut diags,
    );

    let mut table_settings = table_settings;
    settings::prune_fallbacks(
        &mut table_settings,
        &groups,
        &table_aliases,
        &settings_key,
        &mut diags,
    );

    let table = RoutingTable {
        schema_version: SCHEMA_VERSION,
        revision: 0,
        version: String::new(),
        settings: table_settings,
        deployments: table_deployments,
        groups: groups.into_values().collect(),
        aliases: table_aliases,
        credentials: creds.map,
    }
    .seal(revision);
    Compiled {
        table,
        diagnostics: diags,
    }
}

fn not_watched(meta: &Meta, watched: bool, diags: &mut Diagnostics) -> bool {
    if !watched {
        diags.error(
            &meta.key,
            Reason::NamespaceNotWatched,
            format!(
                "namespace {} is not among the router settings' namespaces",
                meta.key.namespace
            ),
        );
    }
    watched
}

/// Sorts objects by namespace/name and keeps one per namespace/name — the first by
/// serialized content, so the choice does not depend on input order; objects without a
/// name are reported.
fn dedupe<'a, T: serde::Serialize>(
    kind: Kind,
    objects: impl Iterator<Item = (&'a ObjectMeta, &'a T)>,
    diags: &mut Diagnostics,
) -> Vec<(Meta, &'a T)> {
    let mut named: Vec<(Meta, &'a T)> = Vec::new();
    for (meta, obj) in objects {
        match Meta::of(kind, meta) {
            Some(m) => named.push((m, obj)),
            None => diags.error(
                &ObjectKey::new(
                    kind,
                    meta.namespace
                        .clone()
                        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
                    "",
                ),
                Reason::MissingName,
                format!("a {} without metadata.name cannot be served", kind.as_str()),
            ),
        }
    }
    named.sort_by(|a, b| a.0.key.cmp(&b.0.key));
    let mut out: Vec<(Meta, &'a T)> = Vec::with_capacity(named.len());
    let mut rest = named.into_iter().peekable();
    while let Some(first) = rest.next() {
        let mut same = vec![first];
        while let Some(next) = rest.next_if(|n| n.0.key == same[0].0.key) {
            same.push(next);
        }
        if same.len() > 1 {
            // Only repeated names pay for serializing, to pick one independent of order.
            same.sort_by_cached_key(|(_, obj)| serde_json::to_string(obj).unwrap_or_default());
            diags.warn(
                &same[0].0.key,
                Reason::DuplicateObject,
                format!(
                    "{} is defined {} times; one definition is used",
                    same[0].0.key,
                    same.len()
                ),
            );
        }
        if let Some(chosen) = same.into_iter().next() {
            out.push(chosen);
        }
    }
    out
}
