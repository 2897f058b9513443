//! The committed CRD YAML in `crds/yaml/` must be exactly what the Rust types generate.
//!
//! Fix a failure with `cargo run -p modelgate-crds --bin crdgen -- crds/yaml` and commit
//! the result (delete a stale file by hand).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const REGENERATE: &str = "run `cargo run -p modelgate-crds --bin crdgen -- crds/yaml` from the workspace root and commit the result";

fn yaml_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("yaml")
}

#[test]
fn committed_yaml_matches_the_rust_types() {
    let dir = yaml_dir();
    let mut stale = Vec::new();
    for (file, crd) in modelgate_crds::crds() {
        let generated = modelgate_crds::crd_yaml(&crd)
            .unwrap_or_else(|e| panic!("cannot render the CRD of {file}: {e}"));
        let path = dir.join(file);
        match std::fs::read(&path) {
            Ok(committed) if committed == generated.as_bytes() => {}
            Ok(committed) => {
                let committed = String::from_utf8_lossy(&committed);
                let line = committed
                    .lines()
                    .zip(generated.lines())
                    .position(|(a, b)| a != b)
                    .map_or_else(
                        || {
                            format!(
                                "the files differ in length ({} committed lines, {} generated) or line endings",
                                committed.lines().count(),
                                generated.lines().count()
                            )
                        },
                        |i| {
                            format!(
                                "first difference at line {}:\n  committed: {:?}\n  generated: {:?}",
                                i + 1,
                                committed.lines().nth(i).unwrap_or_default(),
                                generated.lines().nth(i).unwrap_or_default()
                            )
                        },
                    );
                stale.push(format!("{} is out of date; {line}", path.display()));
            }
            Err(e) => stale.push(format!("{} cannot be read: {e}", path.display())),
        }
    }
    assert!(
        stale.is_empty(),
        "the committed CRD YAML drifted from the Rust types in crds/src:\n{}\n\n{REGENERATE}",
        stale.join("\n")
    );
}

#[test]
fn no_yaml_file_without_a_crd() {
    let dir = yaml_dir();
    let expected: BTreeSet<&str> = modelgate_crds::crds().into_iter().map(|(f, _)| f).collect();
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut unexpected = Vec::new();
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_yaml = name.ends_with(".yaml") || name.ends_with(".yml");
        if is_yaml && !expected.contains(name.as_str()) {
            unexpected.push(name);
        }
    }
    unexpected.sort();
    assert!(
        unexpected.is_empty(),
        "{} holds YAML that modelgate_crds::crds() does not generate: {unexpected:?}\n\
         delete them (a removed or renamed CRD), or add the CRD to crds(); then {REGENERATE}",
        dir.display()
    );
    assert!(
        !expected.is_empty(),
        "modelgate_crds::crds() returned no CRD"
    );
}
