//! Compile time of a large fleet: 10,000 deployments in 2,000 groups across 10
//! namespaces, 1,000 aliases (a third of them aliases of aliases), credentials from Secrets.
//!
//! Run: `cargo bench -p modelgate-operator --bench compile`.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use modelgate_crds::{ModelDeployment, ModelGroupAlias, RouterSettings};
use modelgate_operator::compile::{Inputs, SecretStore, compile};

const DEPLOYMENTS: usize = 10_000;
const GROUPS: usize = 2_000;
const ALIASES: usize = 1_000;
const NAMESPACES: usize = 10;

fn fleet() -> (Vec<ModelDeployment>, Vec<ModelGroupAlias>, SecretStore) {
    let mut deployments = Vec::with_capacity(DEPLOYMENTS);
    for i in 0..DEPLOYMENTS {
        let group = i % GROUPS;
        let ns = group % NAMESPACES;
        let spec = if i % 2 == 0 {
            format!(
                r#"{{"model":"model-{group}","upstream":{{"provider":"openai","model":"gpt-4o-{i}","credentials":{{"secretKeyRef":{{"name":"keys","key":"openai"}}}}}},
                "limits":{{"rpm":600,"tpm":100000}},"routing":{{"weight":{w},"order":{o}}},
                "timeouts":{{"request":"60s","stream":{{"firstByte":"10s","idle":"30s"}}}},
                "modelInfo":{{"mode":"chat","contextWindow":128000,"inputCostPerToken":0.0000025,"outputCostPerToken":0.00001}},
                "healthCheck":{{"interval":"30s","timeout":"5s"}}}}"#,
                w = 1 + i % 3,
                o = 1 + i % 2
            )
        } else {
            format!(
                r#"{{"model":"model-{group}","upstream":{{"provider":"openai-compatible","apiBase":"http://vllm-{i}.inference.svc:8000/v1","headers":[{{"name":"X-Team","value":"ns-{ns}"}}]}},"modelInfo":{{"mode":"chat"}}}}"#
            )
        };
        let spec = serde_json::from_str(&spec).expect("deployment spec");
        let mut d = ModelDeployment::new(&format!("d-{i}"), spec);
        d.metadata.namespace = Some(format!("ns-{ns}"));
        d.metadata.generation = Some(1);
        deployments.push(d);
    }
    let mut aliases = Vec::with_capacity(ALIASES);
    for i in 0..ALIASES {
        let ns = i % NAMESPACES;
        let targets = if i % 3 == 2 {
            // An alias of two earlier aliases.
            format!(
                r#"[{{"model":"alias-{}","weight":1}},{{"model":"alias-{}","weight":3}}]"#,
                i - 1,
                i - 2
            )
        } else {
            format!(
                r#"[{{"model":"model-{}","weight":9}},{{"model":"model-{}","weight":1}},{{"model":"model-{}"}}]"#,
                i % GROUPS,
                (i + 1) % GROUPS,
                (i + 7) % GROUPS
            )
        };
        let spec = format!(
            r#"{{"alias":"alias-{i}","targets":{targets},"fallbacks":["model-{}"]}}"#,
            (i + 3) % GROUPS
        );
        let spec = serde_json::from_str(&spec).expect("alias spec");
        let mut a = ModelGroupAlias::new(&format!("a-{i}"), spec);
        a.metadata.namespace = Some(format!("ns-{ns}"));
        aliases.push(a);
    }
    let mut secrets = SecretStore::new();
    for ns in 0..NAMESPACES {
        secrets.insert(
            format!("ns-{ns}"),
            "keys",
            BTreeMap::from([("openai".to_owned(), format!("sk-ns-{ns}").into_bytes())]),
        );
    }
    (deployments, aliases, secrets)
}

fn bench(c: &mut Criterion) {
    let (deployments, aliases, secrets) = fleet();
    let settings = RouterSettings::default();
    let inputs = Inputs {
        deployments: &deployments,
        aliases: &aliases,
        secrets: &secrets,
        settings: &settings,
        settings_namespace: "modelgate-system",
    };
    let check = compile(&inputs, 1);
    assert!(
        check.diagnostics.is_empty(),
        "{:?}",
        check.diagnostics.iter().next()
    );
    assert_eq!(check.table.deployments.len(), DEPLOYMENTS);
    assert_eq!(check.table.aliases.len(), ALIASES);
    eprintln!(
        "table: {} bytes of canonical JSON",
        check.table.to_canonical_json().len()
    );

    let mut group = c.benchmark_group("compile");
    group.sample_size(20);
    group.bench_function("10k_deployments_1k_aliases", |b| {
        b.iter(|| compile(black_box(&inputs), 1))
    });
    group.bench_function("10k_deployments_1k_aliases_canonical_json", |b| {
        b.iter(|| black_box(&check.table).to_canonical_json())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
