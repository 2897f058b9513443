//! The operator's one error type. Each variant has a short [`Error::metric_label`] so that
//! errors become low-cardinality metric labels.

/// Everything the controller can fail at.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("{context}: {source}")]
    Kube {
        /// What was being done.
        context: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The resources are not served by the API server (CRDs not installed).
    #[error("{0}")]
    CrdsMissing(String),
    /// A data-plane pod could not be reached or refused a call.
    #[error(transparent)]
    Push(#[from] crate::push::PushError),
    /// The routing table could not be written into its snapshot Secrets.
    #[error("routing-table snapshot: {0}")]
    Snapshot(String),
    /// Leadership of the Lease was lost while leading.
    #[error("lost the lease {0}; stepping down")]
    LeaseLost(String),
    /// Local I/O (the admin token file, the listener).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The operator's configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
}

impl Error {
    /// A Kubernetes API error with what was being done.
    pub fn kube(context: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube {
            context: context.into(),
            source,
        }
    }

    /// A local I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A short, fixed label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kube",
            Error::CrdsMissing(_) => "crds_missing",
            Error::Push(_) => "push",
            Error::Snapshot(_) => "snapshot",
            Error::LeaseLost(_) => "lease_lost",
            Error::Io { .. } => "io",
            Error::Config(_) => "config",
        }
    }
}

/// The operator's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
