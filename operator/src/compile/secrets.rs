//! The Secrets the compiler may read, by namespace and name.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

/// Why a Secret value could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretLookupError {
    /// No such Secret.
    #[error("Secret {namespace}/{name} does not exist")]
    MissingSecret {
        /// Namespace looked in.
        namespace: String,
        /// Secret name.
        name: String,
    },
    /// The Secret has no such key.
    #[error("Secret {namespace}/{name} has no key {key:?}")]
    MissingKey {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// The missing key.
        key: String,
    },
    /// The value is empty or not UTF-8 text.
    #[error("key {key:?} of Secret {namespace}/{name} is {problem}")]
    InvalidValue {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// The key.
        key: String,
        /// `empty` or `not UTF-8 text`.
        problem: &'static str,
    },
}

/// Secret data by `(namespace, name)`. Values are the decoded bytes of `data` (and
/// `stringData`, which wins, as the API server merges it).
#[derive(Clone, Default)]
pub struct SecretStore {
    /// namespace -> name -> key -> value.
    secrets: BTreeMap<String, BTreeMap<String, BTreeMap<String, Vec<u8>>>>,
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: values are credentials.
        f.debug_list()
            .entries(
                self.secrets
                    .iter()
                    .flat_map(|(ns, names)| names.keys().map(move |n| format!("{ns}/{n}"))),
            )
            .finish()
    }
}

impl SecretStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a Secret's data.
    pub fn insert(
        &mut self,
        namespace: impl Into<String>,
        name: impl Into<String>,
        data: BTreeMap<String, Vec<u8>>,
    ) {
        self.secrets
            .entry(namespace.into())
            .or_default()
            .insert(name.into(), data);
    }

    /// Adds a Kubernetes Secret; one without a namespace goes into `default_namespace`.
    /// A Secret without a name is ignored (it cannot be referred to).
    pub fn insert_secret(&mut self, secret: &Secret, default_namespace: &str) {
        let Some(name) = secret.metadata.name.clone() else {
            return;
        };
        let namespace = secret
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| default_namespace.to_owned());
        let mut data: BTreeMap<String, Vec<u8>> = secret
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        for (k, v) in secret.string_data.iter().flatten() {
            data.insert(k.clone(), v.clone().into_bytes());
        }
        self.insert(namespace, name, data);
    }

    /// True when the Secret exists.
    pub fn contains(&self, namespace: &str, name: &str) -> bool {
        self.secrets
            .get(namespace)
            .is_some_and(|names| names.contains_key(name))
    }

    /// Number of Secrets held.
    pub fn len(&self) -> usize {
        self.secrets.values().map(BTreeMap::len).sum()
    }

    /// True when no Secret is held.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// One value as text. A trailing newline (as `kubectl create secret --from-file`
    /// leaves from most files) is not part of the credential and is dropped.
    pub fn get(&self, namespace: &str, name: &str, key: &str) -> Result<&str, SecretLookupError> {
        let data = self
            .secrets
            .get(namespace)
            .and_then(|names| names.get(name))
            .ok_or_else(|| SecretLookupError::MissingSecret {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })?;
        let bytes = data.get(key).ok_or_else(|| SecretLookupError::MissingKey {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            key: key.to_owned(),
        })?;
        let invalid = |problem| SecretLookupError::InvalidValue {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            key: key.to_owned(),
            problem,
        };
        let text = std::str::from_utf8(bytes).map_err(|_| invalid("not UTF-8 text"))?;
        let text = text.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            return Err(invalid("empty"));
        }
        Ok(text)
    }
}
