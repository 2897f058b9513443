//! Who owns a model name: the namespace of its oldest resource (then namespace/name
//! order). Another namespace may use the name only when the router settings share it, so
//! that no team can take another's traffic by naming a model.
//!
//! A `provider/*` wildcard group claims every `provider/x` it would serve. Between a
//! wildcard and a concrete name of different namespaces, the older claim wins: a concrete
//! name created after another namespace's wildcard is refused (`WildcardConflict`), and a
//! wildcard created after another namespace's concrete name leaves that name to its owner
//! (an exact name always routes before a wildcard).

use std::collections::BTreeMap;

use modelgate_crds::{ModelDeployment, ModelGroupAlias, RouterSettings};

// Ownership is over every named object, accepted or not: a broken resource keeps its
// name while its owners fix it, instead of handing it to another namespace.

use super::{Meta, ObjectKey};

/// Owners of model and alias names.
pub(crate) struct Owners {
    /// Name -> the oldest object (deployment or alias) claiming it.
    names: BTreeMap<String, Meta>,
    /// Alias name -> the oldest alias defining it.
    aliases: BTreeMap<String, ObjectKey>,
}

impl Owners {
    pub fn decide(
        deployments: &[(Meta, &ModelDeployment)],
        aliases: &[(Meta, &ModelGroupAlias)],
    ) -> Self {
        fn keep_oldest<'a>(map: &mut BTreeMap<&'a str, &'a Meta>, name: &'a str, meta: &'a Meta) {
            let slot = map.entry(name).or_insert(meta);
            if meta.age_key() < slot.age_key() {
                *slot = meta;
            }
        }
        let mut names: BTreeMap<&str, &Meta> = BTreeMap::new();
        let mut alias_owners: BTreeMap<&str, &Meta> = BTreeMap::new();
        for (meta, d) in deployments {
            keep_oldest(&mut names, d.spec.model.as_str(), meta);
        }
        for (meta, a) in aliases {
            keep_oldest(&mut names, a.spec.alias.as_str(), meta);
            keep_oldest(&mut alias_owners, a.spec.alias.as_str(), meta);
        }
        Self {
            names: names
                .into_iter()
                .map(|(k, m)| (k.to_owned(), m.clone()))
                .collect(),
            aliases: alias_owners
                .into_iter()
                .map(|(k, m)| (k.to_owned(), m.key.clone()))
                .collect(),
        }
    }

    /// Namespace owning the model or alias name `name`.
    pub fn owner(&self, name: &str) -> Option<&str> {
        self.names.get(name).map(|m| m.key.namespace.as_str())
    }

    /// The oldest alias defining `name`.
    pub fn alias_owner(&self, name: &str) -> Option<&ObjectKey> {
        self.aliases.get(name)
    }

    /// The wildcard group (`provider/*`) that a concrete `name` falls under, with the
    /// namespace owning it, when that wildcard's claim is older than the name's own.
    pub fn wildcard_over(&self, name: &str) -> Option<(String, &str)> {
        let pattern = modelgate_dataplane_api::wildcard_pattern(name)?;
        let wildcard = self.names.get(&pattern)?;
        let older = self
            .names
            .get(name)
            .is_none_or(|own| wildcard.age_key() < own.age_key());
        older.then_some((pattern, wildcard.key.namespace.as_str()))
    }
}

/// Checks that `namespace` may use `name`; the error message when it may not.
pub(crate) fn check_name(
    owners: &Owners,
    settings: &RouterSettings,
    name: &str,
    namespace: &str,
) -> Result<(), (super::Reason, String)> {
    let owner = owners.owner(name);
    if let Some(owner) = owner
        && owner != namespace
        && !settings.shares(name, namespace)
    {
        return Err((
            super::Reason::ModelOwnedByOtherNamespace,
            format!(
                "model name {name:?} belongs to namespace {owner} (it has the oldest resource with that name); \
                 list {namespace} for {name:?} under sharedModels in the router settings to share it"
            ),
        ));
    }
    if let Some((pattern, owner)) = owners.wildcard_over(name)
        && owner != namespace
        && !settings.shares(&pattern, namespace)
        && !settings.shares(name, namespace)
    {
        return Err((
            super::Reason::WildcardConflict,
            format!(
                "model name {name:?} falls under wildcard group {pattern:?} of namespace {owner}; \
                 list {namespace} for {pattern:?} under sharedModels in the router settings to allow it"
            ),
        ));
    }
    Ok(())
}
