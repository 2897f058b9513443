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

use std::time::Duration;

use modelgate_testkit::{binary, pytest};

#[test]
fn openai_python_sdk_suite() {
    let operator = binary("modelgate-operator", "modelgate-operator");
    // It takes ~15 s; a loaded machine is slower.
    pytest::run(
        "tests/python",
        &["openai", "anthropic", "pytest"],
        &[("MODELGATE_OPERATOR_BIN", operator)],
        Duration::from_secs(300),
    );
}
