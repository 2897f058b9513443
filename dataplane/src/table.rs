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

/// Reads a table snapshot: a file (JSON, gzip accepted), or a folder where the operator's
/// snapshot Secrets are mounted: `parts` names how many parts `table.json.gz.000`,
/// `table.json.gz.001`, … make up the gzip-compressed table, concatenated in order (a table
/// larger than one Secret holds spans several).
pub fn read_snapshot(path: &std::path::Path) -> std::io::Result<Bytes> {
    if !path.is_dir() {
        return Ok(Bytes::from(std::fs::read(path)?));
    }
    let parts_text = std::fs::read_to_string(path.join("parts"))?;
    let parts: usize = parts_text.trim().parse().map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}/parts is not a number: {parts_text:?}", path.display()),
        )
    })?;
    if parts == 0 || parts > 64 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{}/parts must be between 1 and 64, not {parts}",
                path.display()
            ),
        ));
    }
    let mut out = Vec::new();
    for i in 0..parts {
        out.extend_from_slice(&std::fs::read(path.join(format!("table.json.gz.{i:03}")))?);
    }
    Ok(Bytes::from(out))
}

/// What changes when a snapshot file or folder is rewritten: modification times and
/// lengths of the file, or of every entry of the folder.
fn stamp(path: &std::path::Path) -> Option<Vec<(Option<std::time::SystemTime>, u64)>> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return Some(vec![(meta.modified().ok(), meta.len())]);
    }
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            // Follow the symlinks a Secret volume is made of.
            let m = std::fs::metadata(e.path()).ok()?;
            Some((e.file_name(), m.modified().ok(), m.len()))
        })
        .collect();
    entries.sort();
    Some(entries.into_iter().map(|(_, m, l)| (m, l)).collect())
}

/// Loads the table file (or snapshot folder, see [`read_snapshot`]) at startup and again
/// whenever it changes (the snapshot Secrets mounted by gateway pods are updated in place
/// by the kubelet), by the same rules as a push. Polls every `every` until `shutdown`
/// turns true. A torn read (parts of two tables) fails the content hash and is retried at
/// the next change.
pub async fn watch_file(
    app: std::sync::Arc<crate::App>,
    path: std::path::PathBuf,
    every: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut last = None;
    loop {
        let now = stamp(&path);
        if now.is_some() && now != last {
            last = now;
            match read_snapshot(&path) {
                Ok(bytes) => match maybe_gunzip(bytes) {
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

    #[test]
    fn a_snapshot_folder_is_read_part_by_part() {
        let dir = std::env::temp_dir().join(format!("modelgate-snapshot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("parts"), "3\n").expect("write");
        std::fs::write(dir.join("table.json.gz.000"), b"ab").expect("write");
        std::fs::write(dir.join("table.json.gz.001"), b"cd").expect("write");
        std::fs::write(dir.join("table.json.gz.002"), b"e").expect("write");
        // A stale part beyond `parts` is ignored.
        std::fs::write(dir.join("table.json.gz.003"), b"zz").expect("write");
        assert_eq!(&read_snapshot(&dir).expect("read")[..], b"abcde");
        let before = stamp(&dir);
        std::fs::write(dir.join("table.json.gz.001"), b"cdx").expect("write");
        assert_ne!(stamp(&dir), before);
        std::fs::write(dir.join("parts"), "4").expect("write");
        assert_eq!(&read_snapshot(&dir).expect("read")[..], b"abcdxezz");
        std::fs::remove_file(dir.join("table.json.gz.003")).expect("rm");
        assert!(read_snapshot(&dir).is_err(), "a missing part is an error");
        std::fs::write(dir.join("parts"), "many").expect("write");
        assert!(read_snapshot(&dir).is_err());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
