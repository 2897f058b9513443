//! Runs a pytest suite of the repository (`tests/python/`, `tests/e2e/`) as one Rust
//! test: finds the Python that `tests/run` installs the suites' packages into, bounds the
//! whole run, and fails with pytest's output when pytest fails.
//!
//! Python: `$MODELGATE_PYTHON`, else `<repo>/target/pyenv/bin/python` (the virtualenv that
//! `tests/run` creates from `tests/requirements.txt`).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::repo_root;

const INSTALL_HINT: &str = "run `bash tests/run` (it creates target/pyenv from tests/requirements.txt), \
     or `python3 -m venv target/pyenv && target/pyenv/bin/pip install -r tests/requirements.txt`, \
     or point MODELGATE_PYTHON at a Python with `pip install -r tests/requirements.txt` done";

/// The Python interpreter that has the suites' packages.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("MODELGATE_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let venv = repo_root().join("target/pyenv/bin/python");
    assert!(
        venv.exists(),
        "no Python for the pytest suites: MODELGATE_PYTHON is not set and {} does not exist; {INSTALL_HINT}",
        venv.display()
    );
    venv
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `pytest <suite>` from the repository root with `env` added, within `deadline`;
/// `modules` must import (checked first, for a clear hint when they are missing). Panics
/// with pytest's output when it fails or overruns; prints it when it passes.
pub fn run(suite: &str, modules: &[&str], env: &[(&str, PathBuf)], deadline: Duration) {
    let python = python();
    let imports = format!("import {}", modules.join(", "));
    let check = Command::new(&python)
        .args(["-c", &imports])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {INSTALL_HINT}", python.display()));
    assert!(
        check.status.success(),
        "{} cannot `{imports}`: {}; {INSTALL_HINT}",
        python.display(),
        text(&check.stderr).trim()
    );
    let root = repo_root();
    let log = std::env::temp_dir().join(format!(
        "modelgate-pytest-{}-{}.log",
        suite.replace('/', "-"),
        std::process::id()
    ));
    let out = std::fs::File::create(&log).expect("create the pytest log file");
    let err = out.try_clone().expect("clone the pytest log file");
    let started = Instant::now();
    let mut command = Command::new(&python);
    command
        .args(["-m", "pytest", suite, "-q", "-rxX", "--color=no"])
        .current_dir(&root)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let status = crate::exit_within(&mut child, deadline);
    if status.is_none() {
        // The suites' processes are pytest's children and die with it (PR_SET_PDEATHSIG).
        let _ = child.kill();
        let _ = child.wait();
    }
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let Some(status) = status else {
        panic!("{suite} did not finish within {deadline:?}; pytest's output:\n{output}");
    };
    assert!(
        status.success(),
        "{suite} failed ({status}) after {:.1?}; pytest's output:\n{output}",
        started.elapsed()
    );
    eprintln!("{output}");
}
