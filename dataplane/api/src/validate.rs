//! What makes a routing table whole. The operator validates every table it compiles and
//! the data plane validates every table it receives, with the same code.

use std::collections::BTreeSet;

use crate::table::RoutingTable;
use crate::{SCHEMA_VERSION, serves_provider};

/// A reason a table is refused whole.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// `schemaVersion` is 0 or absent.
    #[error("schemaVersion is missing (expected {SCHEMA_VERSION})")]
    SchemaVersionMissing,
    /// `schemaVersion` is newer than this data plane understands.
    #[error(
        "schemaVersion {found} is newer than this data plane understands ({supported}); upgrade the data plane"
    )]
    SchemaTooNew {
        /// The table's schema version.
        found: u32,
        /// The newest this build reads.
        supported: u32,
    },
    /// `version` is not the content hash of the table.
    #[error("version {declared} does not match the table's content hash {computed}")]
    VersionMismatch {
        /// The version the table carries.
        declared: String,
        /// The hash of its content.
        computed: String,
    },
    /// A list that must be sorted by its key is not, or repeats a key.
    #[error("{list} must be sorted by {key} without repeats (at {at:?})")]
    NotSortedOrRepeated {
        /// The list (`deployments`, `groups`, `aliases`).
        list: &'static str,
        /// Its key (`id`, `name`).
        key: &'static str,
        /// The entry out of order or repeated.
        at: String,
    },
    /// A deployment names a model group that is not in the table or does not list it.
    #[error("deployment {deployment:?} is not listed by group {group:?}")]
    DeploymentOutsideGroup {
        /// The deployment id.
        deployment: String,
        /// Its model.
        group: String,
    },
    /// A group lists a deployment that is missing or belongs to another model.
    #[error(
        "group {group:?} lists deployment {deployment:?}, which is missing or serves another model"
    )]
    BadGroupMember {
        /// The group.
        group: String,
        /// The listed deployment id.
        deployment: String,
    },
    /// A group without deployments.
    #[error("group {0:?} has no deployments")]
    EmptyGroup(String),
    /// An alias has the name of a group.
    #[error("alias {0:?} has the name of a model group")]
    AliasShadowsGroup(String),
    /// An alias target names a group that is not in the table.
    #[error("alias {alias:?} targets unknown group {group:?}")]
    UnknownTarget {
        /// The alias.
        alias: String,
        /// The target group.
        group: String,
    },
    /// An alias's shares are not finite, negative, or add up to nothing.
    #[error("alias {0:?} needs non-negative target shares that add up to more than 0")]
    BadShares(String),
    /// A fallback names neither a group nor an alias.
    #[error("{owner} falls back to unknown model {model:?}")]
    UnknownFallback {
        /// Who declares the fallback (`alias x`, `settings.fallbacks[y]`).
        owner: String,
        /// The unknown name.
        model: String,
    },
    /// A credential reference points at a missing credential or key.
    #[error(
        "{owner} refers to credential key {key:?} of {secret:?}, which the table does not carry"
    )]
    MissingCredential {
        /// Who refers to it (`deployment x`, `settings.masterKey`).
        owner: String,
        /// Credential id.
        secret: String,
        /// Key.
        key: String,
    },
    /// A duration that must be positive is zero.
    #[error("{0} must be greater than zero")]
    ZeroDuration(String),
    /// A number outside its range.
    #[error("{0}")]
    OutOfRange(String),
}

/// An entry this data plane cannot serve; it is left out, every other route stays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The deployment id.
    pub id: String,
    /// Why (`provider "x" is not served by this data plane`).
    pub reason: String,
}

fn sorted_unique<'a>(
    list: &'static str,
    key: &'static str,
    mut keys: impl Iterator<Item = &'a str>,
    errors: &mut Vec<TableError>,
) {
    let Some(mut prev) = keys.next() else { return };
    for k in keys {
        if k <= prev {
            errors.push(TableError::NotSortedOrRepeated {
                list,
                key,
                at: k.to_owned(),
            });
            return;
        }
        prev = k;
    }
}

impl RoutingTable {
    /// Checks that the table is whole: a schema this build reads, sorted lists, and every reference (deployment to group, alias to
    /// group, fallback to model, deployment to credential) resolving. A table that fails
    /// is refused whole and the one already served keeps serving. (That `version` is the
    /// content hash is checked by [`RoutingTable::decode`] on the document as received.)
    pub fn validate(&self) -> Result<(), Vec<TableError>> {
        let mut errors = Vec::new();
        if self.schema_version == 0 {
            errors.push(TableError::SchemaVersionMissing);
        } else if self.schema_version > SCHEMA_VERSION {
            // Nothing else can be judged in a format this build does not know.
            return Err(vec![TableError::SchemaTooNew {
                found: self.schema_version,
                supported: SCHEMA_VERSION,
            }]);
        }
        sorted_unique(
            "deployments",
            "id",
            self.deployments.iter().map(|d| d.id.as_str()),
            &mut errors,
        );
        sorted_unique(
            "groups",
            "name",
            self.groups.iter().map(|g| g.name.as_str()),
            &mut errors,
        );
        sorted_unique(
            "aliases",
            "name",
            self.aliases.iter().map(|a| a.name.as_str()),
            &mut errors,
        );
        if !errors.is_empty() {
            // Lookups below rely on sorted lists.
            return Err(errors);
        }

        for d in &self.deployments {
            let listed = self
                .group(&d.model)
                .is_some_and(|g| g.deployments.binary_search(&d.id).is_ok());
            if !listed {
                errors.push(TableError::DeploymentOutsideGroup {
                    deployment: d.id.clone(),
                    group: d.model.clone(),
                });
            }
            if let Some(c) = &d.credentials {
                for (_, key) in c.keys() {
                    if self.credential_value(c, key).is_none() {
                        errors.push(TableError::MissingCredential {
                            owner: format!("deployment {}", d.id),
                            secret: c.secret.clone(),
                            key: key.to_owned(),
                        });
                    }
                }
            }
            for (what, ms) in [
                ("requestMs", d.timeouts.request_ms),
                ("streamFirstByteMs", d.timeouts.stream_first_byte_ms),
                ("streamIdleMs", d.timeouts.stream_idle_ms),
                ("healthCheck.intervalMs", d.health_check.interval_ms),
                ("healthCheck.timeoutMs", d.health_check.timeout_ms),
            ] {
                if ms == 0 {
                    errors.push(TableError::ZeroDuration(format!(
                        "deployment {} {what}",
                        d.id
                    )));
                }
            }
            if d.order == 0 {
                errors.push(TableError::OutOfRange(format!(
                    "deployment {} order must be at least 1",
                    d.id
                )));
            }
        }
        for g in &self.groups {
            if g.deployments.is_empty() {
                errors.push(TableError::EmptyGroup(g.name.clone()));
            }
            let mut seen = BTreeSet::new();
            for id in &g.deployments {
                let ok = seen.insert(id.as_str())
                    && self.deployment(id).is_some_and(|d| d.model == g.name);
                if !ok {
                    errors.push(TableError::BadGroupMember {
                        group: g.name.clone(),
                        deployment: id.clone(),
                    });
                }
            }
        }
        let known = |name: &str| {
            self.group(name).is_some()
                || self.alias(name).is_some()
                || crate::wildcard_pattern(name).is_some_and(|p| self.group(&p).is_some())
        };
        for a in &self.aliases {
            if self.group(&a.name).is_some() {
                errors.push(TableError::AliasShadowsGroup(a.name.clone()));
            }
            let mut total = 0.0;
            let mut shares_ok = true;
            for t in &a.targets {
                if self.group(&t.group).is_none() {
                    errors.push(TableError::UnknownTarget {
                        alias: a.name.clone(),
                        group: t.group.clone(),
                    });
                }
                shares_ok &= t.share.is_finite() && t.share >= 0.0;
                total += t.share;
            }
            if !shares_ok || total <= 0.0 || !total.is_finite() {
                errors.push(TableError::BadShares(a.name.clone()));
            }
            for f in &a.fallbacks {
                if !known(f) {
                    errors.push(TableError::UnknownFallback {
                        owner: format!("alias {}", a.name),
                        model: f.clone(),
                    });
                }
            }
        }
        let s = &self.settings;
        for (kind, map) in [
            ("fallbacks", &s.fallbacks),
            ("contextWindowFallbacks", &s.context_window_fallbacks),
        ] {
            for (from, tos) in map {
                for to in tos {
                    if !known(to) {
                        errors.push(TableError::UnknownFallback {
                            owner: format!("settings.{kind}[{from}]"),
                            model: to.clone(),
                        });
                    }
                }
            }
        }
        for (owner, r) in [
            ("settings.masterKey", &s.master_key),
            ("settings.redisUrl", &s.redis_url),
        ] {
            if let Some(r) = r
                && self.secret(r).is_none()
            {
                errors.push(TableError::MissingCredential {
                    owner: owner.to_owned(),
                    secret: r.secret.clone(),
                    key: r.key.clone(),
                });
            }
        }
        for (what, ms) in [
            ("settings.timeouts.requestMs", s.timeouts.request_ms),
            (
                "settings.timeouts.streamFirstByteMs",
                s.timeouts.stream_first_byte_ms,
            ),
            ("settings.timeouts.streamIdleMs", s.timeouts.stream_idle_ms),
            ("settings.cooldown.cooldownMs", s.cooldown.cooldown_ms),
        ] {
            if ms == 0 {
                errors.push(TableError::ZeroDuration(what.to_owned()));
            }
        }
        if !s.latency_buffer.is_finite() || s.latency_buffer < 0.0 {
            errors.push(TableError::OutOfRange(
                "settings.latencyBuffer must be a number >= 0".to_owned(),
            ));
        }
        if s.max_request_body_bytes == 0 {
            errors.push(TableError::OutOfRange(
                "settings.maxRequestBodyBytes must be at least 1".to_owned(),
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The deployments this data plane cannot serve (a provider it does not know). They are
    /// left out of routing and reported; every other route stays.
    pub fn skipped(&self) -> Vec<Skipped> {
        self.deployments
            .iter()
            .filter(|d| !serves_provider(&d.provider))
            .map(|d| Skipped {
                id: d.id.clone(),
                reason: format!("provider {:?} is not served by this data plane", d.provider),
            })
            .collect()
    }
}
