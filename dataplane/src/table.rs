//! Accepting routing tables. Every table, whether pushed by the operator or read from the
//! snapshot file at startup, passes through [`TableGate::offer`]: it must decode, be of a
//! schema this build reads, not go back in revision, and be whole. A table that fails is
//! refused with its reasons and the one already served keeps serving; entries this build
//! cannot serve are skipped and reported, never a reason to refuse every route.

use std::io::Read;

use bytes::Bytes;
use modelgate_dataplane_api::{DecodeError, RoutingTable, Skipped, TableError};

/// Bodies and files may be gzip-compressed (the snapshot Secret stores them so).
pub fn maybe_gunzip(bytes: Bytes) -> Result<Bytes, std::io::Error> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(bytes.len() * 4);
        flate2::read::GzDecoder::new(&bytes[..])
            .take(1024 * 1024 * 1024)
            .read_to_end(&mut out)?;
        Ok(Bytes::from(out))
    } else {
        Ok(bytes)
    }
}

/// Loads the table file at startup and again whenever it changes (the snapshot Secret
/// mounted by gateway pods is updated in place by the kubelet), by the same rules as a
/// push. Polls every `every` until `shutdown` turns true.
pub async fn watch_file(
    app: std::sync::Arc<crate::App>,
    path: std::path::PathBuf,
    every: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut last: Option<(Option<std::time::SystemTime>, u64)> = None;
    loop {
        let meta = std::fs::metadata(&path)
            .ok()
            .map(|m| (m.modified().ok(), m.len()));
        if meta.is_some() && meta != last {
            last = meta;
            match std::fs::read(&path) {
                Ok(bytes) => match maybe_gunzip(Bytes::from(bytes)) {
                    Ok(bytes) => match app.offer_json(&bytes) {
                        Ok(a) if a.changed => {
                            tracing::info!(revision = a.revision, file = %path.display(), "table file loaded")
                        }
                        Ok(_) => {}
                        Err(Refused::Stale { .. }) => {}
                        Err(e) => {
                            tracing::error!(file = %path.display(), "table file refused: {e}")
                        }
                    },
                    Err(e) => {
                        tracing::error!(file = %path.display(), "table file is not valid gzip: {e}")
                    }
                },
                Err(e) => tracing::warn!(file = %path.display(), "cannot read the table file: {e}"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = crate::server::stopped(&mut shutdown) => return,
        }
    }
}

/// Why a table was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The body is not a routing table, or its version is not its content hash.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The table is older than the one served.
    #[error("revision {offered} is older than the served revision {served}")]
    Stale {
        /// The offered revision.
        offered: u64,
        /// The served revision.
        served: u64,
    },
    /// Same revision as the served table but different content.
    #[error("revision {revision} is already served with version {served}, not {offered}")]
    Conflict {
        /// The revision.
        revision: u64,
        /// Version served under it.
        served: String,
        /// Version offered under it.
        offered: String,
    },
    /// The table is not whole.
    #[error("invalid routing table: {}", join(.0))]
    Invalid(Vec<TableError>),
}

fn join(errors: &[TableError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What happened to an accepted table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The revision now served.
    pub revision: u64,
    /// The version now served.
    pub version: String,
    /// False when the table was already served (a repeated push).
    pub changed: bool,
    /// Entries left out because this build cannot serve them.
    pub skipped: Vec<Skipped>,
}

/// Decides which offered tables replace the served one.
#[derive(Debug, Default)]
pub struct TableGate {
    served: Option<(u64, String)>,
}

impl TableGate {
    /// A gate that serves nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The revision and version served, if any.
    pub fn served(&self) -> Option<(u64, &str)> {
        self.served.as_ref().map(|(r, v)| (*r, v.as_str()))
    }

    /// Decodes a table from JSON bytes (checking its version against the bytes received)
    /// and offers it.
    pub fn offer_json(&mut self, body: &[u8]) -> Result<(Accepted, RoutingTable), Refused> {
        let table = RoutingTable::decode(body)?;
        let accepted = self.offer(&table)?;
        Ok((accepted, table))
    }

    /// Checks a table against the served one and, when it passes, records it as served.
    pub fn offer(&mut self, table: &RoutingTable) -> Result<Accepted, Refused> {
        table.validate().map_err(Refused::Invalid)?;
        let mut changed = true;
        if let Some((revision, version)) = &self.served {
            if table.revision < *revision {
                return Err(Refused::Stale {
                    offered: table.revision,
                    served: *revision,
                });
            }
            if table.revision == *revision {
                if table.version != *version {
                    return Err(Refused::Conflict {
                        revision: *revision,
                        served: version.clone(),
                        offered: table.version.clone(),
                    });
                }
                changed = false;
            }
        }
        self.served = Some((table.revision, table.version.clone()));
        Ok(Accepted {
            revision: table.revision,
            version: table.version.clone(),
            changed,
            skipped: table.skipped(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelgate_dataplane_api::{
        Deployment, Group, HealthCheck, Limits, ModelInfo, Probe, SCHEMA_VERSION, Timeouts,
    };

    fn deployment(id: &str, model: &str, provider: &str) -> Deployment {
        Deployment {
            id: id.to_owned(),
            generation: 1,
            model: model.to_owned(),
            provider: provider.to_owned(),
            upstream_model: model.to_owned(),
            api_base: None,
            api_version: None,
            region: None,
            headers: Vec::new(),
            credentials: None,
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            weight: 1,
            order: 1,
            retries: 2,
            model_info: ModelInfo::default(),
            health_check: HealthCheck {
                enabled: true,
                interval_ms: 60_000,
                timeout_ms: 10_000,
                probe: Probe::ModelsList,
                url: None,
            },
            mock: None,
        }
    }

    fn table(revision: u64, providers: &[&str]) -> RoutingTable {
        let deployments: Vec<_> = providers
            .iter()
            .enumerate()
            .map(|(i, p)| deployment(&format!("ns/d{i}"), "m", p))
            .collect();
        RoutingTable {
            schema_version: SCHEMA_VERSION,
            groups: vec![Group {
                name: "m".to_owned(),
                namespace: "ns".to_owned(),
                deployments: deployments.iter().map(|d| d.id.clone()).collect(),
            }],
            deployments,
            ..RoutingTable::default()
        }
        .seal(revision)
    }

    #[test]
    fn revisions_only_go_forward() {
        let mut gate = TableGate::new();
        let five = table(5, &["mock"]);
        assert!(gate.offer(&five).is_ok_and(|a| a.changed));
        assert!(
            gate.offer(&five).is_ok_and(|a| !a.changed),
            "a repeated push is fine"
        );
        assert!(matches!(
            gate.offer(&table(4, &["mock"])),
            Err(Refused::Stale {
                offered: 4,
                served: 5
            })
        ));
        let conflicting = table(5, &["openai"]);
        assert!(matches!(
            gate.offer(&conflicting),
            Err(Refused::Conflict { .. })
        ));
        assert!(gate.offer(&table(6, &["openai"])).is_ok());
        assert_eq!(gate.served().map(|(r, _)| r), Some(6));
    }

    #[test]
    fn broken_tables_are_refused_whole_and_keep_the_old_one() {
        let mut gate = TableGate::new();
        assert!(gate.offer(&table(1, &["mock"])).is_ok());
        let mut broken = table(2, &["mock"]);
        broken.groups.clear();
        let broken = broken.seal(2);
        let err = gate.offer(&broken).expect_err("refused");
        assert!(err.to_string().contains("is not listed by group"), "{err}");
        assert_eq!(gate.served().map(|(r, _)| r), Some(1));

        let mut newer = serde_json::to_value(table(3, &["mock"])).expect("json");
        newer["schemaVersion"] = serde_json::json!(SCHEMA_VERSION + 1);
        let err = gate
            .offer_json(newer.to_string().as_bytes())
            .expect_err("refused");
        assert!(err.to_string().contains("upgrade the data plane"), "{err}");
        assert!(matches!(
            gate.offer_json(b"{\"nope\": 1}"),
            Err(Refused::Decode(_))
        ));
    }

    #[test]
    fn unknown_providers_are_skipped_not_fatal() {
        let mut gate = TableGate::new();
        let accepted = gate
            .offer(&table(1, &["mock", "cohere"]))
            .expect("accepted");
        assert_eq!(accepted.skipped.len(), 1);
        assert_eq!(accepted.skipped[0].id, "ns/d1");
    }
}
