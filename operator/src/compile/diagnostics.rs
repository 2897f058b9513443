//! What the compiler has to say about each object: why it was left out of the table, or
//! what it should know although it was compiled in. These become the `Accepted` condition
//! (reason and message) of each resource's status.

use std::collections::BTreeMap;
use std::fmt;

/// The kind of object a diagnostic is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A `ModelDeployment`.
    ModelDeployment,
    /// A `ModelGroupAlias`.
    ModelGroupAlias,
    /// The `RouterSettings` document.
    RouterSettings,
}

impl Kind {
    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ModelDeployment => "ModelDeployment",
            Kind::ModelGroupAlias => "ModelGroupAlias",
            Kind::RouterSettings => "RouterSettings",
        }
    }
}

/// Identifies one object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// Its kind.
    pub kind: Kind,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl ObjectKey {
    /// A key for `kind` `namespace/name`.
    pub fn new(kind: Kind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind.as_str(), self.namespace, self.name)
    }
}

/// Whether a diagnostic keeps the object out of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The object is left out of the table.
    Error,
    /// The object is compiled in; something about it deserves attention.
    Warning,
}

/// Why an object was left out (or deserves attention). PascalCase, as Kubernetes
/// condition reasons are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// The object breaks a rule of its CRD (the same rules as its CEL validations).
    InvalidSpec,
    /// The object has no name.
    MissingName,
    /// Two objects of one kind with the same namespace and name were given.
    DuplicateObject,
    /// A referenced Secret does not exist.
    MissingSecret,
    /// A referenced Secret lacks the key.
    MissingSecretKey,
    /// A Secret value is empty or not UTF-8.
    InvalidSecretValue,
    /// The provider is defined but not served by this data plane yet.
    UnsupportedProvider,
    /// The model name belongs to another namespace.
    ModelOwnedByOtherNamespace,
    /// The name falls under a wildcard group of another namespace, or an alias targets a
    /// wildcard pattern.
    WildcardConflict,
    /// An alias has the name of a model group.
    AliasShadowsGroup,
    /// The alias name is already defined by an older alias.
    DuplicateAlias,
    /// Aliases point at each other in a circle.
    AliasCycle,
    /// An alias target is neither an accepted group nor an accepted alias.
    MissingTarget,
    /// A fallback is neither an accepted group nor an accepted alias.
    MissingFallback,
    /// The object's namespace does not feed the fleet (router settings `namespaces`).
    NamespaceNotWatched,
    /// The router settings have an invalid or unresolvable field.
    InvalidSettings,
}

impl Reason {
    /// The reason as written into a condition.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidSpec => "InvalidSpec",
            Reason::MissingName => "MissingName",
            Reason::DuplicateObject => "DuplicateObject",
            Reason::MissingSecret => "MissingSecret",
            Reason::MissingSecretKey => "MissingSecretKey",
            Reason::InvalidSecretValue => "InvalidSecretValue",
            Reason::UnsupportedProvider => "UnsupportedProvider",
            Reason::ModelOwnedByOtherNamespace => "ModelOwnedByOtherNamespace",
            Reason::WildcardConflict => "WildcardConflict",
            Reason::AliasShadowsGroup => "AliasShadowsGroup",
            Reason::DuplicateAlias => "DuplicateAlias",
            Reason::AliasCycle => "AliasCycle",
            Reason::MissingTarget => "MissingTarget",
            Reason::MissingFallback => "MissingFallback",
            Reason::NamespaceNotWatched => "NamespaceNotWatched",
            Reason::InvalidSettings => "InvalidSettings",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing the compiler says about one object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Diagnostic {
    /// Whether the object was left out.
    pub severity: Severity,
    /// Machine-readable reason.
    pub reason: Reason,
    /// Human-readable message; never contains a credential.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{sev}: {}: {}", self.reason, self.message)
    }
}

/// Diagnostics of every object, in a stable order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics {
    by_object: BTreeMap<ObjectKey, Vec<Diagnostic>>,
}

impl Diagnostics {
    /// Records a diagnostic.
    pub fn push(&mut self, key: &ObjectKey, severity: Severity, reason: Reason, message: String) {
        let list = self.by_object.entry(key.clone()).or_default();
        let d = Diagnostic {
            severity,
            reason,
            message,
        };
        if !list.contains(&d) {
            list.push(d);
        }
    }

    /// Records an error: the object is left out.
    pub fn error(&mut self, key: &ObjectKey, reason: Reason, message: impl Into<String>) {
        self.push(key, Severity::Error, reason, message.into());
    }

    /// Records a warning.
    pub fn warn(&mut self, key: &ObjectKey, reason: Reason, message: impl Into<String>) {
        self.push(key, Severity::Warning, reason, message.into());
    }

    /// The diagnostics of one object (empty when it compiled cleanly).
    pub fn of(&self, key: &ObjectKey) -> &[Diagnostic] {
        self.by_object.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// True when no error keeps the object out.
    pub fn is_accepted(&self, key: &ObjectKey) -> bool {
        !self.of(key).iter().any(|d| d.severity == Severity::Error)
    }

    /// The first error of an object: the reason and message of its `Accepted=False`.
    pub fn first_error(&self, key: &ObjectKey) -> Option<&Diagnostic> {
        self.of(key).iter().find(|d| d.severity == Severity::Error)
    }

    /// Every object with at least one diagnostic.
    pub fn iter(&self) -> impl Iterator<Item = (&ObjectKey, &[Diagnostic])> {
        self.by_object.iter().map(|(k, v)| (k, v.as_slice()))
    }

    /// True when nothing was said about any object.
    pub fn is_empty(&self) -> bool {
        self.by_object.is_empty()
    }

    /// Number of errors over all objects.
    pub fn error_count(&self) -> usize {
        self.by_object
            .values()
            .flatten()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }
}
