//! The routing-table snapshot: the latest table, gzip-compressed, in Secrets of the
//! operator's namespace that gateway pods mount, so a pod restarted while the operator is
//! down still starts with the last good table; the revision is kept beside it so a new
//! leader continues the sequence.
//!
//! Layout: Secret `<base>` holds `parts`, `revision`, `version` and the first part
//! `table.json.gz.000`; a table whose gzip is larger than [`PART_BYTES`] continues in
//! Secrets `<base>-1`, `<base>-2`, … each holding one key `table.json.gz.NNN`. Mounted
//! together (a projected volume), the data plane reads `parts` and concatenates the parts
//! in order (`--table-file <dir>`). Parts are written last-first and the manifest Secret
//! last, and a mixed read fails the table's content hash, so a reader never serves a torn
//! table: it keeps the one it has until the next consistent read.

use std::collections::BTreeMap;
use std::io::Write as _;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::error::{Error, Result};

/// Largest part stored in one Secret (Secrets are limited to 1 MiB; room is left for the
/// other keys and the metadata).
pub const PART_BYTES: usize = 900 * 1024;
/// Most Secrets one snapshot may span (the Helm chart mounts this many, optionally).
pub const MAX_PARTS: usize = 8;
/// Label carried by every snapshot Secret; the operator's own Secret watch ignores them.
pub const SNAPSHOT_LABEL: &str = "modelgate.dev/routing-table";
/// Key holding the number of parts.
pub const PARTS_KEY: &str = "parts";
/// Key holding the table's revision.
pub const REVISION_KEY: &str = "revision";
/// Key holding the table's version.
pub const VERSION_KEY: &str = "version";

/// Key of part `i`.
pub fn part_key(i: usize) -> String {
    format!("table.json.gz.{i:03}")
}

/// Name of the Secret holding part `i`.
pub fn secret_name(base: &str, i: usize) -> String {
    if i == 0 {
        base.to_owned()
    } else {
        format!("{base}-{i}")
    }
}

/// Gzip-compresses a table's JSON.
pub fn gzip(json: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(json.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(json);
    enc.finish().unwrap_or_default()
}

/// The Secrets holding a snapshot of a table (given as its gzip bytes), manifest first.
pub fn secrets(
    base: &str,
    namespace: &str,
    revision: u64,
    version: &str,
    gz: &[u8],
) -> Result<Vec<Secret>> {
    let chunks: Vec<&[u8]> = if gz.is_empty() {
        vec![gz]
    } else {
        gz.chunks(PART_BYTES).collect()
    };
    if chunks.len() > MAX_PARTS {
        return Err(Error::Snapshot(format!(
            "the compressed table is {} bytes, more than {MAX_PARTS} Secrets of {PART_BYTES} bytes hold",
            gz.len()
        )));
    }
    let mut out = Vec::with_capacity(chunks.len());
    for (i, chunk) in chunks.iter().enumerate() {
        let mut data = BTreeMap::new();
        data.insert(part_key(i), ByteString(chunk.to_vec()));
        if i == 0 {
            data.insert(
                PARTS_KEY.to_owned(),
                ByteString(chunks.len().to_string().into_bytes()),
            );
            data.insert(
                REVISION_KEY.to_owned(),
                ByteString(revision.to_string().into_bytes()),
            );
            data.insert(
                VERSION_KEY.to_owned(),
                ByteString(version.as_bytes().to_vec()),
            );
        }
        out.push(Secret {
            metadata: ObjectMeta {
                name: Some(secret_name(base, i)),
                namespace: Some(namespace.to_owned()),
                labels: Some(BTreeMap::from([(
                    SNAPSHOT_LABEL.to_owned(),
                    "true".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            data: Some(data),
            type_: Some("Opaque".to_owned()),
            ..Secret::default()
        });
    }
    Ok(out)
}

/// The revision and version a snapshot manifest Secret records.
pub fn recorded(secret: &Secret) -> Option<(u64, String)> {
    let data = secret.data.as_ref()?;
    let revision = std::str::from_utf8(&data.get(REVISION_KEY)?.0)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let version = String::from_utf8(data.get(VERSION_KEY)?.0.clone()).ok()?;
    Some((revision, version))
}

/// Reads the revision and version recorded in the snapshot, if there is one.
pub async fn read(api: &Api<Secret>, base: &str) -> Result<Option<(u64, String)>> {
    match api.get_opt(base).await {
        Ok(secret) => Ok(secret.as_ref().and_then(recorded)),
        Err(e) => Err(Error::kube(format!("reading Secret {base}"), e)),
    }
}

/// Writes a snapshot: continuation parts first, the manifest last; continuation Secrets
/// beyond the new part count are deleted.
pub async fn write(api: &Api<Secret>, field_manager: &str, secrets: &[Secret]) -> Result<()> {
    let params = PatchParams::apply(field_manager).force();
    for secret in secrets.iter().rev() {
        let name = secret.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &params, &Patch::Apply(secret))
            .await
            .map_err(|e| Error::kube(format!("writing Secret {name}"), e))?;
    }
    if let Some(first) = secrets.first() {
        let base = first.metadata.name.clone().unwrap_or_default();
        for i in secrets.len()..MAX_PARTS {
            let name = secret_name(&base, i);
            match api.delete(&name, &Default::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => break,
                Err(e) => {
                    tracing::warn!(secret = %name, "cannot delete an unused snapshot part: {e}");
                    break;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(secrets: &[Secret]) -> Vec<u8> {
        let parts: usize =
            std::str::from_utf8(&secrets[0].data.as_ref().expect("data")[PARTS_KEY].0)
                .expect("utf8")
                .parse()
                .expect("number");
        let mut out = Vec::new();
        for (i, s) in secrets.iter().enumerate().take(parts) {
            out.extend_from_slice(&s.data.as_ref().expect("data")[&part_key(i)].0);
        }
        out
    }

    #[test]
    fn a_small_table_fits_one_secret() {
        let gz = gzip(b"{\"a\":1}");
        let s = secrets("t", "ns", 7, "v1", &gz).expect("fits");
        assert_eq!(s.len(), 1);
        assert_eq!(recorded(&s[0]), Some((7, "v1".to_owned())));
        assert_eq!(join(&s), gz);
        assert_eq!(
            s[0].metadata.labels.as_ref().expect("labels")[SNAPSHOT_LABEL],
            "true"
        );
    }

    #[test]
    fn a_large_table_is_split_and_joins_back() {
        let gz: Vec<u8> = (0..(PART_BYTES * 2 + 10))
            .map(|i| (i % 251) as u8)
            .collect();
        let s = secrets("t", "ns", 1, "v", &gz).expect("fits");
        assert_eq!(s.len(), 3);
        assert_eq!(s[1].metadata.name.as_deref(), Some("t-1"));
        assert_eq!(s[2].metadata.name.as_deref(), Some("t-2"));
        assert!(
            s[1].data
                .as_ref()
                .expect("data")
                .get(REVISION_KEY)
                .is_none()
        );
        assert_eq!(join(&s), gz);
    }

    #[test]
    fn a_table_too_large_is_an_error() {
        let gz = vec![0u8; PART_BYTES * MAX_PARTS + 1];
        assert!(matches!(
            secrets("t", "ns", 1, "v", &gz),
            Err(Error::Snapshot(_))
        ));
    }
}
