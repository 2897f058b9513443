//! The compiler's output for a fixed set of manifests is the contract fixture the data
//! plane's golden tests read (`dataplane/api/tests/fixtures/routing-table-v1.json`). A
//! change to either side of the wire shows up here as a diff to review. Regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p modelgate-operator --test golden`.

use std::path::PathBuf;

use modelgate_operator::manifests::Manifests;

fn repo(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

#[test]
fn compiled_table_matches_the_contract_fixture() {
    let m = Manifests::load(&[repo("operator/tests/fixtures/golden/manifests.yaml")])
        .expect("manifests load");
    let settings = m.settings.clone().expect("settings");
    let compiled = m.compile(&settings, "modelgate-system", 42);
    assert!(
        compiled.diagnostics.is_empty(),
        "{:?}",
        compiled.diagnostics
    );
    compiled.table.validate().expect("whole table");
    let mut json = serde_json::to_string_pretty(&compiled.table).expect("json");
    json.push('\n');
    let fixture = repo("dataplane/api/tests/fixtures/routing-table-v1.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&fixture, &json).expect("write fixture");
    }
    let expected = std::fs::read_to_string(&fixture).expect("fixture exists");
    assert!(
        expected == json,
        "compiled table differs from {}; review the change and regenerate with UPDATE_GOLDEN=1\n{json}",
        fixture.display()
    );
}
