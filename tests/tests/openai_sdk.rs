//! The official `openai` Python SDK against a running data plane: runs the pytest suite in
//! `tests/python/` and fails when it fails, showing pytest's output.
//!
//! The suite itself starts what it needs (see `tests/python/conftest.py`): a programmable
//! upstream in Python's standard library on `127.0.0.1:0`, then `modelgate-operator local`
//! on a free `127.0.0.1` port from manifests pointing at it, waits for
//! `/health/readiness`, and stops the gateway at the end (and the gateway dies with
//! pytest if pytest is killed). Doing it there keeps the upstream's port, the manifests and
//! the tests in one place, and lets the suite run alone with pytest. This test builds the
//! gateway binary, finds Python, and bounds the whole run.
//!
//! Python: `$MODELGATE_PYTHON`, else `<repo>/target/pyenv/bin/python` (the virtualenv that
//! `tests/run` creates from `tests/requirements.txt`).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use modelgate_testkit::{binary, repo_root};

/// Longest the whole pytest run may take (it takes ~15 s; a loaded machine is slower).
const DEADLINE: Duration = Duration::from_secs(300);

const INSTALL_HINT: &str = "run `bash tests/run` (it creates target/pyenv from tests/requirements.txt), \
     or `python3 -m venv target/pyenv && target/pyenv/bin/pip install -r tests/requirements.txt`, \
     or point MODELGATE_PYTHON at a Python with `pip install -r tests/requirements.txt` done";

/// The Python interpreter that has `openai` and `pytest`.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("MODELGATE_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let venv = repo_root().join("target/pyenv/bin/python");
    assert!(
        venv.exists(),
        "no Python for the openai SDK suite: MODELGATE_PYTHON is not set and {} does not exist; {INSTALL_HINT}",
        venv.display()
    );
    venv
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn openai_python_sdk_suite() {
    let python = python();
    let check = Command::new(&python)
        .args([
            "-c",
            "import openai, pytest; print(openai.__version__, pytest.__version__)",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {INSTALL_HINT}", python.display()));
    assert!(
        check.status.success(),
        "{} cannot import openai and pytest: {}; {INSTALL_HINT}",
        python.display(),
        text(&check.stderr).trim()
    );
    eprintln!(
        "{}: openai, pytest {}",
        python.display(),
        text(&check.stdout).trim()
    );

    let operator = binary("modelgate-operator", "modelgate-operator");
    let root = repo_root();
    let log = std::env::temp_dir().join(format!("modelgate-openai-sdk-{}.log", std::process::id()));
    let out = std::fs::File::create(&log).expect("create the pytest log file");
    let err = out.try_clone().expect("clone the pytest log file");
    let started = Instant::now();
    let mut child = Command::new(&python)
        .args(["-m", "pytest", "tests/python", "-q", "-rxX", "--color=no"])
        .current_dir(&root)
        .env("MODELGATE_OPERATOR_BIN", &operator)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for pytest") {
            break Some(status);
        }
        if started.elapsed() > DEADLINE {
            // The gateway is pytest's child and dies with it (PR_SET_PDEATHSIG).
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let Some(status) = status else {
        panic!(
            "the openai SDK suite did not finish within {DEADLINE:?}; pytest's output:\n{output}"
        );
    };
    assert!(
        status.success(),
        "the openai SDK suite failed ({status}) after {:.1?}; pytest's output:\n{output}",
        started.elapsed()
    );
    eprintln!("{output}");
}
