//! Where credentials go. `os.environ/NAME` becomes key `NAME` of the env Secret (created
//! by the user from their environment with the command [`super::Imported::secret_command`]
//! prints); a literal value is moved into one Secret manifest emitted with the resources.
//! Literal values are never copied into a resource, a warning or a command line.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use modelgate_crds::SecretKeySelector;
use serde_yaml::Value;

use super::values::{env_ref, is_env_name, scalar_text, type_name};
use super::{Ctx, Options};

/// The Secret keys collected so far. No `Debug`: it holds the literal values. A clone is
/// a snapshot: an entry that ends up skipped puts the one taken before it back.
#[derive(Clone, Default)]
pub(super) struct SecretSink {
    /// Keys of the env Secret (environment variable names).
    pub required_env: BTreeSet<String>,
    /// Keys of the env Secret composed from other variables (shell syntax).
    pub templates: BTreeMap<String, String>,
    /// Keys of the literal Secret, with their values.
    literals: BTreeMap<String, String>,
    /// Where each literal came from (the field) and the key it went to, for the warnings.
    moved: Vec<(String, String)>,
}

/// Where a secret value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Source {
    /// `os.environ/NAME`.
    Env(String),
    /// A value written in the config (or in its `environment_variables`).
    Literal(String),
}

impl SecretSink {
    /// One warning per literal moved into the literal Secret (emitted once every entry
    /// is known to be kept).
    pub fn moved_warnings(&self, opts: &Options) -> Vec<String> {
        self.moved
            .iter()
            .map(|(at, key)| {
                format!(
                    "{at} held a literal secret: it was moved into Secret {} (key {key}); keep that Secret out of git, and rotate the key if the config ever was in git",
                    opts.literal_secret
                )
            })
            .collect()
    }

    /// The Secret holding the literal values, if there are any.
    pub fn literal_secret(&self, opts: &Options) -> Option<Secret> {
        if self.literals.is_empty() {
            return None;
        }
        Some(Secret {
            metadata: ObjectMeta {
                name: Some(opts.literal_secret.clone()),
                namespace: Some(opts.namespace.clone()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/created-by".to_owned(),
                    "modelgate-import-litellm".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".to_owned()),
            string_data: Some(self.literals.clone()),
            ..Secret::default()
        })
    }
}

impl Ctx<'_> {
    /// Where a secret value comes from, without recording anything yet. `None` (with a
    /// warning) for a value that cannot be a secret.
    pub(super) fn secret_source(&mut self, v: &Value, at: &str) -> Option<Source> {
        let Some(text) = scalar_text(v) else {
            if !v.is_null() {
                self.warn(format!(
                    "{at} must be text, found {}; not translated",
                    type_name(v)
                ));
            }
            return None;
        };
        let text = text.trim();
        if text.is_empty() {
            self.warn(format!("{at} is empty; not translated"));
            return None;
        }
        let Some(name) = env_ref(text) else {
            return Some(Source::Literal(text.to_owned()));
        };
        if !is_env_name(name) {
            self.warn(format!(
                "{at}: os.environ/{name} is not a usable environment variable name (letters, digits and _); not translated"
            ));
            return None;
        }
        if let Some(value) = self.config_env.get(name).cloned() {
            // LiteLLM would read the value the config itself sets: a literal after all.
            self.used_config_env.insert(name.to_owned());
            return Some(Source::Literal(value));
        }
        Some(Source::Env(name.to_owned()))
    }

    /// Records a secret and returns the reference that replaces it. `literal_key` names
    /// the key a literal value is stored under in the literal Secret.
    pub(super) fn commit_secret(
        &mut self,
        source: Source,
        at: &str,
        literal_key: &str,
    ) -> SecretKeySelector {
        match source {
            Source::Env(name) => self.env_secret_ref(&name),
            Source::Literal(value) => {
                let key = self.store_literal(value, literal_key);
                self.secrets.moved.push((at.to_owned(), key.clone()));
                SecretKeySelector {
                    name: self.opts.literal_secret.clone(),
                    key,
                }
            }
        }
    }

    /// [`Self::secret_source`] and [`Self::commit_secret`] in one step.
    pub(super) fn secret(
        &mut self,
        v: &Value,
        at: &str,
        literal_key: &str,
    ) -> Option<SecretKeySelector> {
        let source = self.secret_source(v, at)?;
        Some(self.commit_secret(source, at, literal_key))
    }

    /// A reference to key `name` of the env Secret, which the user must fill.
    pub(super) fn env_secret_ref(&mut self, name: &str) -> SecretKeySelector {
        self.secrets.required_env.insert(name.to_owned());
        SecretKeySelector {
            name: self.opts.env_secret.clone(),
            key: name.to_owned(),
        }
    }

    /// A key of the env Secret whose value the secret command composes from other
    /// variables (`template` in shell syntax).
    pub(super) fn env_template_ref(&mut self, key: &str, template: String) -> SecretKeySelector {
        self.secrets.templates.insert(key.to_owned(), template);
        self.env_secret_ref(key)
    }

    /// Stores a literal under `key` (or `key-2`, … when taken by another value); the same
    /// value stored twice shares one key.
    pub(super) fn store_literal(&mut self, value: String, key: &str) -> String {
        if let Some((existing, _)) = self.secrets.literals.iter().find(|(_, v)| **v == value) {
            return existing.clone();
        }
        let mut candidate = key.to_owned();
        let mut n = 2;
        while self.secrets.literals.contains_key(&candidate) {
            candidate = format!("{key}-{n}");
            n += 1;
        }
        self.secrets.literals.insert(candidate.clone(), value);
        candidate
    }
}
