//! Golden fixtures guard the wire format. `routing-table-v1.json` is what the operator's
//! compiler writes for `operator/tests/fixtures/golden/manifests.yaml` (checked there);
//! here the data-plane side must read it, find it whole, and write it back unchanged.

use modelgate_dataplane_api::{
    DecodeError, REDACTED, RoutingTable, SCHEMA_VERSION, TableError, canonical_json,
    wildcard_pattern,
};

const V1: &str = include_str!("fixtures/routing-table-v1.json");

fn v1() -> RoutingTable {
    serde_json::from_str(V1).expect("fixture decodes")
}

#[test]
fn v1_fixture_reads_whole_and_round_trips() {
    let table = v1();
    assert_eq!(table.schema_version, SCHEMA_VERSION);
    table.validate().expect("fixture is whole");
    // Writing it back loses and renames nothing.
    let fixture: serde_json::Value = serde_json::from_str(V1).expect("json");
    assert_eq!(table.to_canonical_json(), canonical_json(&fixture));
    // The content hash algorithm is part of the contract: the fixture's version is
    // the hash both sides compute.
    assert_eq!(table.version, table.content_hash());
    assert_eq!(
        table.version,
        "sha256:a8b7d2ba0f9b0c59fa50ee2ecab791070b92e552b15a78b2cde820458973d6b9"
    );
}

#[test]
fn fixture_lookups() {
    let t = v1();
    assert_eq!(t.group("gpt-4o").map(|g| g.deployments.len()), Some(2));
    let d = t.deployment("team-a/gpt-4o-openai").expect("deployment");
    let creds = d.credentials.as_ref().expect("credentials");
    let key = creds.api_key.as_deref().expect("api key");
    assert_eq!(
        t.credential_value(creds, key).map(|v| v.expose()),
        Some("sk-test-openai")
    );
    assert!(t.alias("gpt-4").is_some_and(|a| a.hidden));
    assert_eq!(
        wildcard_pattern("openai/gpt-4o-mini").as_deref(),
        Some("openai/*")
    );
    assert!(t.group("openai/*").is_some());
}

#[test]
fn redacted_view_hides_every_credential() {
    let t = v1();
    let redacted = serde_json::to_string(&t.redacted()).expect("json");
    for secret in [
        "sk-test-openai",
        "test-azure-key",
        "test-vllm-token",
        "sk-test-master",
        "test-password",
    ] {
        assert!(V1.contains(secret), "fixture carries {secret}");
        assert!(!redacted.contains(secret), "redacted view shows {secret}");
        assert!(!format!("{t:?}").contains(secret), "Debug shows {secret}");
    }
    assert!(redacted.contains(REDACTED));
    assert_eq!(t.redacted().version, t.version);
}

#[test]
fn newer_major_is_refused_with_a_clear_error() {
    let mut value: serde_json::Value = serde_json::from_str(V1).expect("json");
    value["schemaVersion"] = serde_json::json!(SCHEMA_VERSION + 1);
    // A newer major may also carry fields this build does not know.
    value["somethingNew"] = serde_json::json!({"x": 1});
    let table: RoutingTable = serde_json::from_value(value).expect("decodes");
    let errors = table.validate().expect_err("refused");
    assert_eq!(
        errors,
        [TableError::SchemaTooNew {
            found: SCHEMA_VERSION + 1,
            supported: SCHEMA_VERSION
        }]
    );
    assert!(errors[0].to_string().contains("upgrade the data plane"));
}

#[test]
fn decode_checks_the_hash_of_the_document_as_received() {
    let t = RoutingTable::decode(V1.as_bytes()).expect("decodes");
    assert_eq!(t, v1());
    // A field a newer operator added within the same major, hashed by that operator:
    // this build ignores the field but checks the version over the document as received.
    let mut value: serde_json::Value = serde_json::from_str(V1).expect("json");
    value["deployments"][0]["newKnob"] = serde_json::json!(true);
    // Not re-hashed: the typed content still matches the version, and the unknown field
    // is ignored, so what is served is exactly what the version names.
    let t = RoutingTable::decode(value.to_string().as_bytes()).expect("ignored field");
    assert_eq!(t, v1());
    let mut hashed = value.clone();
    if let Some(m) = hashed.as_object_mut() {
        m.remove("version");
        m.remove("revision");
    }
    value["version"] =
        serde_json::json!(format!("sha256:{}", sha256_hex(&canonical_json(&hashed))));
    let t = RoutingTable::decode(value.to_string().as_bytes()).expect("newer minor decodes");
    t.validate().expect("and is whole");
    assert_eq!(
        t.version,
        value["version"].as_str().unwrap_or_default(),
        "served under its own version"
    );
    // Tampering.
    let mut value: serde_json::Value = serde_json::from_str(V1).expect("json");
    value["deployments"][0]["weight"] = serde_json::json!(99);
    assert!(RoutingTable::decode(value.to_string().as_bytes()).is_err());
    assert!(matches!(
        RoutingTable::decode(b"[]"),
        Err(DecodeError::NotAnObject)
    ));
    assert!(matches!(
        RoutingTable::decode(b"{"),
        Err(DecodeError::Json(_))
    ));
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn serde_output_is_the_canonical_form() {
    // Struct fields are declared in the byte order of their JSON names, so serde's output
    // needs no re-sorting to be canonical; this holds them to it.
    let t = v1();
    let value = serde_json::to_value(&t).expect("json");
    assert_eq!(t.to_canonical_json(), canonical_json(&value));
}

#[test]
fn missing_credentials_are_reported() {
    let mut t = v1();
    t.credentials.clear();
    let t = t.seal(43);
    let errors = t.validate().expect_err("refused");
    assert!(
        errors
            .iter()
            .all(|e| matches!(e, TableError::MissingCredential { .. }))
    );
    assert_eq!(errors.len(), 6, "{errors:?}");
}

#[test]
fn shares_read_back_as_the_bits_written_so_the_hash_holds() {
    // Any f64 a weighted alias can give, and some that parse one ULP off without an
    // exact float parser (1/3 of a weight of 3, found by the operator's property test).
    let mut shares = vec![
        1.0 / 3.0,
        2.0 / 3.0,
        1.0 / 7.0,
        0.1 + 0.2,
        1e-300,
        0.999_999_999_999_999_9,
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..2000 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let (a, b) = ((x >> 40) % 97 + 1, (x >> 20) % 89 + 1);
        shares.push(a.min(b) as f64 / a.max(b) as f64);
        shares.push(f64::from_bits(0x3f00_0000_0000_0000 | (x >> 12)).min(1.0));
    }
    let mut table = v1();
    for chunk in shares.chunks(3) {
        for alias in &mut table.aliases {
            for (target, share) in alias.targets.iter_mut().zip(chunk) {
                target.share = *share;
            }
        }
        let sealed = table.clone().seal(7);
        let decoded = RoutingTable::decode(&sealed.to_canonical_json())
            .unwrap_or_else(|e| panic!("{chunk:?}: {e}"));
        assert_eq!(decoded, sealed);
    }
}
