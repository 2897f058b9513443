//! The committed CRDs must be valid `apiextensions.k8s.io/v1` objects, checked offline by
//! the PyPI tool `kubernetes-validate --strict` (it ships the Kubernetes JSON schemas).
//!
//! Install the tool with `pip install -r tests/requirements.txt` (from the workspace root).
//! The Kubernetes version validated against is the one the workspace builds `k8s-openapi`
//! for (its `v1_NN` feature in the root `Cargo.toml`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TOOL: &str = "kubernetes-validate";
const INSTALL: &str =
    "install it with `pip install -r tests/requirements.txt` from the workspace root";

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `1.NN.0` for the `v1_NN` feature of `k8s-openapi` in the workspace manifest.
fn kubernetes_version() -> String {
    let manifest_path = crate_dir().join("../Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", manifest_path.display()));
    let minor = manifest
        .lines()
        .filter(|l| l.trim_start().starts_with("k8s-openapi"))
        .find_map(|l| {
            let rest = &l[l.find("\"v1_")? + 4..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        })
        .unwrap_or_else(|| {
            panic!(
                "no `k8s-openapi = {{ ..., features = [\"v1_NN\"] }}` line in {}; \
                 this test validates against the Kubernetes version that feature names",
                manifest_path.display()
            )
        });
    format!("1.{minor}.0")
}

fn run(args: &[&str], files: &[&Path]) -> Output {
    let mut cmd = Command::new(TOOL);
    cmd.args(args).args(files);
    match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("`{TOOL}` was not found on PATH; {INSTALL}")
        }
        Err(e) => panic!("cannot run `{TOOL}`: {e}; {INSTALL}"),
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn committed_files() -> Vec<(PathBuf, String)> {
    modelgate_crds::crds()
        .into_iter()
        .map(|(file, crd)| {
            let name = crd.metadata.name.unwrap_or_default();
            (crate_dir().join("yaml").join(file), name)
        })
        .collect()
}

#[test]
fn committed_crds_pass_strict_validation() {
    let version = kubernetes_version();
    let files = committed_files();
    assert!(!files.is_empty(), "modelgate_crds::crds() returned no CRD");
    let paths: Vec<&Path> = files.iter().map(|(p, _)| p.as_path()).collect();
    let out = run(&["--strict", "--kubernetes-version", &version], &paths);
    let log = text(&out);
    assert!(
        out.status.success(),
        "`{TOOL} --strict --kubernetes-version {version}` rejected the committed CRDs \
         (exit {:?}):\n{log}",
        out.status.code()
    );
    // The tool exits 0 on a file without any resource, so check each CRD was validated.
    for (path, name) in &files {
        let expected = format!("passed for resource customresourcedefinition/{name}");
        assert!(
            log.lines()
                .any(|l| l.contains(&path.display().to_string()) && l.contains(&expected)),
            "`{TOOL}` did not report `{expected}` for {}:\n{log}",
            path.display()
        );
    }
}

/// The positive test above proves nothing unless the tool really rejects a bad CRD.
#[test]
fn strict_validation_rejects_an_unknown_field() {
    let version = kubernetes_version();
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    for (path, name) in committed_files() {
        let yaml = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        assert!(
            yaml.lines().any(|l| l == "spec:"),
            "{} has no top-level `spec:` line to break",
            path.display()
        );
        let broken: String = yaml
            .lines()
            .flat_map(|l| {
                let extra = (l == "spec:").then_some("  notARealField: true");
                std::iter::once(l).chain(extra)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let broken_path = tmp.join(format!("broken-{name}.yaml"));
        std::fs::write(&broken_path, &broken)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", broken_path.display()));

        let out = run(
            &["--strict", "--kubernetes-version", &version],
            &[&broken_path],
        );
        let log = text(&out);
        assert!(
            !out.status.success(),
            "`{TOOL} --strict` accepted a CRD with an unknown field under spec ({}):\n{log}",
            broken_path.display()
        );
        assert!(
            log.contains("notARealField")
                && log.contains(&format!("customresourcedefinition/{name}")),
            "`{TOOL} --strict` rejected {} for another reason than the unknown field:\n{log}",
            broken_path.display()
        );
        let _ = std::fs::remove_file(&broken_path);
    }
}
