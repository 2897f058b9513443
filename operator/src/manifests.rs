//! Reads resource manifests from YAML files and folders: `ModelDeployment`,
//! `ModelGroupAlias`, `v1` `Secret` (their `data` or `stringData` supply credentials),
//! `RouterSettings` documents and `List`s of those. Objects without a namespace go into
//! `default`. Used by local mode, `check`, and the tests.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use modelgate_crds::settings::{SETTINGS_API_VERSION, SETTINGS_KIND};
use modelgate_crds::{API_VERSION, ModelDeployment, ModelGroupAlias, RouterSettings};
use serde::Deserialize;

use crate::compile::{DEFAULT_NAMESPACE, SecretStore};

/// Why manifests could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A file or folder could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A document is not valid YAML.
    #[error("{path}: document {doc}: not valid YAML: {source}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// 1-based document number within the file.
        doc: usize,
        /// The cause.
        source: serde_yaml::Error,
    },
    /// A document does not fit its kind.
    #[error("{path}: document {doc} ({kind}): {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based document number.
        doc: usize,
        /// The document's kind.
        kind: String,
        /// What is wrong.
        message: String,
    },
    /// A settings file was given although the manifests hold a `RouterSettings` too.
    #[error("{0} given, but the manifests hold a RouterSettings document too; give one")]
    SettingsTwice(PathBuf),
    /// The settings file is not a `RouterSettings` document.
    #[error("{path}: {message}")]
    Settings {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The same object is defined twice.
    #[error("{kind} {namespace}/{name} is defined twice ({first} and {second})")]
    Duplicate {
        /// Kind.
        kind: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Where it was first defined.
        first: String,
        /// Where it was defined again.
        second: String,
    },
}

/// Everything read from a set of manifests.
#[derive(Debug, Default)]
pub struct Manifests {
    /// `ModelDeployment`s, namespaces filled in.
    pub deployments: Vec<ModelDeployment>,
    /// `ModelGroupAlias`es, namespaces filled in.
    pub aliases: Vec<ModelGroupAlias>,
    /// Secrets by namespace and name.
    pub secrets: SecretStore,
    /// The `RouterSettings` document, if one was given.
    pub settings: Option<RouterSettings>,
    /// Documents that were read but are of a kind this loader does not use.
    pub ignored: Vec<String>,
    seen: Vec<(String, String, String, String)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeMeta {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
}

impl Manifests {
    /// Reads every file given, and every `.yaml`, `.yml` and `.json` file under every
    /// folder given (recursively, in name order).
    pub fn load(paths: &[PathBuf]) -> Result<Self, ManifestError> {
        let mut files = Vec::new();
        for p in paths {
            collect_files(p, &mut files)?;
        }
        let mut out = Manifests::default();
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|source| ManifestError::Io {
                path: f.clone(),
                source,
            })?;
            out.add_str(&f, &text)?;
        }
        Ok(out)
    }

    /// Reads every document of one YAML stream; `origin` names it in errors.
    pub fn add_str(&mut self, origin: &Path, text: &str) -> Result<(), ManifestError> {
        for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let value =
                serde_yaml::Value::deserialize(doc).map_err(|source| ManifestError::Yaml {
                    path: origin.to_owned(),
                    doc: i + 1,
                    source,
                })?;
            self.add_value(origin, i + 1, value)?;
        }
        Ok(())
    }

    fn add_value(
        &mut self,
        origin: &Path,
        doc: usize,
        value: serde_yaml::Value,
    ) -> Result<(), ManifestError> {
        if value.is_null() {
            return Ok(());
        }
        let invalid = |kind: &str, message: String| ManifestError::Invalid {
            path: origin.to_owned(),
            doc,
            kind: kind.to_owned(),
            message,
        };
        let tm: TypeMeta = serde_yaml::from_value(value.clone())
            .map_err(|e| invalid("?", format!("not a Kubernetes object: {e}")))?;
        match (tm.api_version.as_str(), tm.kind.as_str()) {
            (API_VERSION, "ModelDeployment") => {
                let mut d: ModelDeployment =
                    serde_yaml::from_value(value).map_err(|e| invalid(&tm.kind, e.to_string()))?;
                fill_namespace(&mut d.metadata);
                self.note(origin, doc, &tm.kind, &d.metadata)?;
                self.deployments.push(d);
            }
            (API_VERSION, "ModelGroupAlias") => {
                let mut a: ModelGroupAlias =
                    serde_yaml::from_value(value).map_err(|e| invalid(&tm.kind, e.to_string()))?;
                fill_namespace(&mut a.metadata);
                self.note(origin, doc, &tm.kind, &a.metadata)?;
                self.aliases.push(a);
            }
            ("v1", "Secret") => {
                let mut s: Secret =
                    serde_yaml::from_value(value).map_err(|e| invalid(&tm.kind, e.to_string()))?;
                fill_namespace(&mut s.metadata);
                if s.metadata.name.is_none() {
                    return Err(invalid(&tm.kind, "metadata.name is required".to_owned()));
                }
                self.note(origin, doc, &tm.kind, &s.metadata)?;
                self.secrets.insert_secret(&s, DEFAULT_NAMESPACE);
            }
            (SETTINGS_API_VERSION, SETTINGS_KIND) => {
                let s: RouterSettings =
                    serde_yaml::from_value(value).map_err(|e| invalid(&tm.kind, e.to_string()))?;
                if self.settings.is_some() {
                    return Err(invalid(
                        &tm.kind,
                        "a second RouterSettings document; give exactly one".to_owned(),
                    ));
                }
                self.settings = Some(s);
            }
            ("v1", "List") => {
                let items = value
                    .get("items")
                    .and_then(|i| i.as_sequence())
                    .cloned()
                    .unwrap_or_default();
                for item in items {
                    self.add_value(origin, doc, item)?;
                }
            }
            (api_version, kind) => {
                if kind.is_empty() || api_version.is_empty() {
                    return Err(invalid(kind, "apiVersion and kind are required".to_owned()));
                }
                self.ignored.push(format!(
                    "{}: document {doc}: {api_version} {kind} is not used",
                    origin.display()
                ));
            }
        }
        Ok(())
    }

    fn note(
        &mut self,
        origin: &Path,
        doc: usize,
        kind: &str,
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) -> Result<(), ManifestError> {
        let ns = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        let here = format!("{} document {doc}", origin.display());
        if let Some((_, _, _, first)) = self
            .seen
            .iter()
            .find(|(k, n, m, _)| k == kind && *n == ns && *m == name && !name.is_empty())
        {
            return Err(ManifestError::Duplicate {
                kind: kind.to_owned(),
                namespace: ns,
                name,
                first: first.clone(),
                second: here,
            });
        }
        self.seen.push((kind.to_owned(), ns, name, here));
        Ok(())
    }

    /// The router settings: the `settings_file` if given, else the document among the
    /// manifests, else the defaults.
    pub fn settings(&self, settings_file: Option<&Path>) -> Result<RouterSettings, ManifestError> {
        let Some(path) = settings_file else {
            return Ok(self.settings.clone().unwrap_or_default());
        };
        if self.settings.is_some() {
            return Err(ManifestError::SettingsTwice(path.to_owned()));
        }
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Io {
            path: path.to_owned(),
            source,
        })?;
        RouterSettings::from_yaml(&text).map_err(|e| ManifestError::Settings {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Compiles everything read, as the operator would, with `settings` (see
    /// [`Manifests::settings`]) living in `settings_namespace`.
    pub fn compile(
        &self,
        settings: &RouterSettings,
        settings_namespace: &str,
        revision: u64,
    ) -> crate::compile::Compiled {
        crate::compile::compile(
            &crate::compile::Inputs {
                deployments: &self.deployments,
                aliases: &self.aliases,
                secrets: &self.secrets,
                settings,
                settings_namespace,
            },
            revision,
        )
    }

    /// Namespaces that hold at least one object.
    pub fn namespaces(&self) -> BTreeSet<String> {
        self.seen.iter().map(|(_, ns, _, _)| ns.clone()).collect()
    }
}

fn fill_namespace(meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) {
    if meta.namespace.as_deref().is_none_or(str::is_empty) {
        meta.namespace = Some(DEFAULT_NAMESPACE.to_owned());
    }
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), ManifestError> {
    let io = |source| ManifestError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_dir() {
        out.push(path.to_owned());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort();
    for e in entries {
        if e.is_dir() {
            collect_files(&e, out)?;
        } else if e
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| matches!(x, "yaml" | "yml" | "json"))
        {
            out.push(e);
        }
    }
    Ok(())
}
