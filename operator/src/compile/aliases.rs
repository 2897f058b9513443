//! `ModelGroupAlias` resources into flattened table aliases.
//!
//! An alias may target groups, other aliases, or concrete names served by a wildcard
//! group. Chains of aliases are flattened into shares of groups; cycles, missing targets
//! and missing fallbacks keep an alias out (and, in turn, every alias that needs it).

use std::collections::BTreeMap;

use modelgate_crds::rules::describe;
use modelgate_crds::{ModelGroupAlias, ModelGroupAliasSpec, RouterSettings};
use modelgate_dataplane_api as api;

use super::ownership::{Owners, check_name};
use super::{Diagnostics, Meta, Reason};

/// The wildcard group of `groups` that serves the concrete name `name`, if any.
pub(crate) fn wildcard_group_for<'a, V>(
    name: &str,
    groups: &'a BTreeMap<String, V>,
) -> Option<&'a str> {
    let pattern = api::wildcard_pattern(name)?;
    groups.get_key_value(&pattern).map(|(k, _)| k.as_str())
}

/// Why an alias could not be resolved.
#[derive(Clone, Debug)]
enum Failure {
    Missing(String),
    NotAccepted(String),
    Cycle,
}

/// Flattened targets: `(group, model) -> share`.
type Shares = BTreeMap<(String, String), f64>;

struct Resolver<'a> {
    specs: &'a BTreeMap<&'a str, &'a ModelGroupAliasSpec>,
    groups: &'a BTreeMap<String, api::Group>,
    state: BTreeMap<&'a str, Option<Result<Shares, Failure>>>,
    stack: Vec<&'a str>,
    cycles: BTreeMap<&'a str, String>,
}

impl<'a> Resolver<'a> {
    fn resolve(&mut self, name: &'a str) -> Result<Shares, Failure> {
        match self.state.get(name) {
            Some(Some(done)) => return done.clone(),
            Some(None) => {
                // `name` is on the stack: every alias from it to the top is on a cycle.
                let start = self.stack.iter().position(|n| *n == name).unwrap_or(0);
                let members = &self.stack[start..];
                let path = members
                    .iter()
                    .chain(std::iter::once(&name))
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" -> ");
                for m in members {
                    self.cycles.entry(m).or_insert_with(|| path.clone());
                }
                return Err(Failure::Cycle);
            }
            None => {}
        }
        let Some(spec) = self.specs.get(name).copied() else {
            return Err(Failure::Missing(name.to_owned()));
        };
        self.state.insert(name, None);
        self.stack.push(name);
        let total: f64 = spec.targets.iter().map(|t| t.weight().max(0) as f64).sum();
        let mut shares = Shares::new();
        let mut failure = None;
        for t in &spec.targets {
            let weight = t.weight().max(0) as f64 / total.max(f64::MIN_POSITIVE);
            let sub = if self.groups.contains_key(&t.model) {
                Ok(Shares::from([((t.model.clone(), t.model.clone()), 1.0)]))
            } else if self.specs.contains_key(t.model.as_str()) {
                match self.resolve(self.key_of(&t.model)) {
                    Ok(s) => Ok(s),
                    Err(Failure::Cycle) => Err(Failure::Cycle),
                    Err(_) => Err(Failure::NotAccepted(t.model.clone())),
                }
            } else if let Some(pattern) = wildcard_group_for(&t.model, self.groups) {
                Ok(Shares::from([((pattern.to_owned(), t.model.clone()), 1.0)]))
            } else {
                Err(Failure::Missing(t.model.clone()))
            };
            match sub {
                Ok(sub) => {
                    for (k, share) in sub {
                        *shares.entry(k).or_insert(0.0) += share * weight;
                    }
                }
                Err(f) => {
                    failure.get_or_insert(f);
                }
            }
        }
        self.stack.pop();
        let result = match failure {
            Some(f) => Err(f),
            None => Ok(shares),
        };
        self.state.insert(name, Some(result.clone()));
        result
    }

    /// The `'a` key of an alias name known to be in `specs`.
    fn key_of(&self, name: &str) -> &'a str {
        self.specs
            .get_key_value(name)
            .map(|(k, _)| *k)
            .unwrap_or_default()
    }
}

pub(crate) fn compile_aliases(
    objects: &[(Meta, &ModelGroupAlias)],
    groups: &BTreeMap<String, api::Group>,
    owners: &Owners,
    settings: &RouterSettings,
    diags: &mut Diagnostics,
) -> Vec<api::Alias> {
    // Checks that need only the object itself and the names around it.
    let mut metas: BTreeMap<&str, &Meta> = BTreeMap::new();
    let mut specs: BTreeMap<&str, &ModelGroupAliasSpec> = BTreeMap::new();
    for (meta, a) in objects {
        let key = &meta.key;
        let spec = &a.spec;
        let errors = spec.validate();
        if !errors.is_empty() {
            diags.error(key, Reason::InvalidSpec, describe(&errors));
            continue;
        }
        if let Err((reason, msg)) = check_name(owners, settings, &spec.alias, &key.namespace) {
            diags.error(key, reason, msg);
            continue;
        }
        if let Some(owner) = owners.alias_owner(&spec.alias)
            && owner != key
        {
            diags.error(
                key,
                Reason::DuplicateAlias,
                format!(
                    "alias {:?} is already defined by the older {}/{}",
                    spec.alias, owner.namespace, owner.name
                ),
            );
            continue;
        }
        if groups.contains_key(&spec.alias) {
            diags.error(
                key,
                Reason::AliasShadowsGroup,
                format!(
                    "{:?} is the name of a model group; an alias cannot shadow it",
                    spec.alias
                ),
            );
            continue;
        }
        metas.insert(spec.alias.as_str(), meta);
        specs.insert(spec.alias.as_str(), spec);
    }

    // Resolve to a fixpoint: an alias that fails takes down the aliases that need it.
    loop {
        let mut resolver = Resolver {
            specs: &specs,
            groups,
            state: BTreeMap::new(),
            stack: Vec::new(),
            cycles: BTreeMap::new(),
        };
        let names: Vec<&str> = specs.keys().copied().collect();
        let mut resolved: BTreeMap<&str, Shares> = BTreeMap::new();
        let mut rejected: Vec<(&str, Reason, String)> = Vec::new();
        let mut results = Vec::new();
        for name in &names {
            results.push((*name, resolver.resolve(name)));
        }
        for (name, result) in results {
            match result {
                Ok(s) => {
                    resolved.insert(name, s);
                }
                Err(f) => {
                    let (reason, msg) = match (resolver.cycles.get(name), f) {
                        (Some(path), _) => {
                            (Reason::AliasCycle, format!("aliases form a cycle: {path}"))
                        }
                        (None, Failure::Cycle) => (
                            Reason::MissingTarget,
                            "a target leads into a cycle of aliases".to_owned(),
                        ),
                        (None, Failure::Missing(t)) => (
                            Reason::MissingTarget,
                            format!(
                                "target {t:?} is neither a model group with accepted deployments nor an alias"
                            ),
                        ),
                        (None, Failure::NotAccepted(t)) => (
                            Reason::MissingTarget,
                            format!("target alias {t:?} is not accepted"),
                        ),
                    };
                    rejected.push((name, reason, msg));
                }
            }
        }
        for name in resolved.keys() {
            let spec = specs[name];
            let missing: Vec<&String> = spec
                .fallbacks
                .iter()
                .filter(|f| {
                    !(groups.contains_key(f.as_str())
                        || resolved.contains_key(f.as_str())
                        || wildcard_group_for(f, groups).is_some())
                })
                .collect();
            if !missing.is_empty() {
                rejected.push((
                    name,
                    Reason::MissingFallback,
                    format!(
                        "fallbacks {missing:?} are neither model groups with accepted deployments nor accepted aliases"
                    ),
                ));
            }
        }
        if rejected.is_empty() {
            return resolved
                .into_iter()
                .map(|(name, shares)| {
                    let meta = metas[name];
                    let spec = specs[name];
                    api::Alias {
                        name: name.to_owned(),
                        id: format!("{}/{}", meta.key.namespace, meta.key.name),
                        generation: meta.generation,
                        targets: shares
                            .into_iter()
                            .map(|((group, model), share)| api::AliasTarget {
                                group,
                                model,
                                share,
                            })
                            .collect(),
                        fallbacks: spec.fallbacks.clone(),
                        hidden: spec.hidden.unwrap_or(false),
                    }
                })
                .collect();
        }
        for (name, reason, msg) in rejected {
            diags.error(&metas[name].key, reason, msg);
            specs.remove(name);
        }
    }
}
