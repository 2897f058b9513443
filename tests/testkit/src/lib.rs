//! Shared support for Modelgate's tests (dev-only).
//!
//! - [`binary`]: the path of one of the workspace's binaries, built on demand, so that
//!   end-to-end tests run the real programs as a user would.
//! - [`repo_path`]: a path inside the repository.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

static BUILD: Mutex<()> = Mutex::new(());

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|e| panic!("repository root: {e}"))
}

/// A path inside the repository.
pub fn repo_path(rel: &str) -> PathBuf {
    repo_root().join(rel)
}

/// The path of the workspace binary `name` of package `package`, built first (a no-op
/// when it is up to date) with the same profile as the running test.
pub fn binary(package: &str, name: &str) -> PathBuf {
    // Tests run from <target>/<profile>/deps/<test>; binaries live in <target>/<profile>.
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current exe: {e}"));
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap_or_else(|| panic!("unexpected test location {}", exe.display()))
        .to_owned();
    let target_dir = profile_dir
        .parent()
        .unwrap_or_else(|| panic!("unexpected test location {}", exe.display()));
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let _guard = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(repo_root())
        .args(["build", "--quiet", "-p", package, "--bin", name])
        .arg("--target-dir")
        .arg(target_dir);
    if release {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {name}: {e}"));
    assert!(status.success(), "building {name} failed");
    let path = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "{} was not built", path.display());
    path
}
