//! The operator end to end, against the Kubernetes API emulator: runs the pytest scenario
//! in `tests/e2e/` (see its conftest.py) with the real `modelgate-operator` (two replicas,
//! leader election), two real `modelgate-dataplane` processes registered as Pods on
//! 127.0.0.2 and 127.0.0.3, mock upstreams, real `kubectl` and the official `openai` SDK.
//! The measured apply-to-served latencies land in `target/e2e-measurements.json`.

use std::time::Duration;

use modelgate_testkit::{binary, pytest};

#[test]
fn operator_end_to_end() {
    let operator = binary("modelgate-operator", "modelgate-operator");
    let dataplane = binary("modelgate-dataplane", "modelgate-dataplane");
    assert!(
        std::process::Command::new("kubectl")
            .args(["version", "--client"])
            .output()
            .is_ok_and(|o| o.status.success()),
        "kubectl is not on PATH; the end-to-end scenario drives the emulator with the real kubectl"
    );
    // It takes ~30 s; a loaded machine is slower.
    pytest::run(
        "tests/e2e",
        &["openai", "pytest", "kmock"],
        &[
            ("MODELGATE_OPERATOR_BIN", operator),
            ("MODELGATE_DATAPLANE_BIN", dataplane),
        ],
        Duration::from_secs(400),
    );
}
