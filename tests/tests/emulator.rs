//! The Kubernetes API emulator's own tests (`tests/emulator/test_emulator.py`): what the
//! operator's end-to-end scenario relies on — resource versions, generations, `/status`,
//! server-side apply, conflicts, selectors, watches, discovery — checked over HTTP and with
//! the real `kubectl`.

use std::time::Duration;

use modelgate_testkit::pytest;

#[test]
fn emulator_suite() {
    // It takes ~20 s; a loaded machine is slower.
    pytest::run(
        "tests/emulator",
        &["pytest", "kmock", "yaml"],
        &[],
        Duration::from_secs(300),
    );
}
