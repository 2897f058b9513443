//! Property tests of the compiler: inputs in any order give byte-identical output, every
//! table it produces is whole, and a bad object never changes another object's routes.

mod support;

use modelgate_crds::{ModelDeployment, ModelGroupAlias, RouterSettings};
use modelgate_dataplane_api::{RoutingTable, canonical_json};
use modelgate_operator::compile::{Compiled, SecretStore};
use proptest::prelude::*;
use support::*;

const NAMESPACES: [&str; 3] = ["a", "b", "c"];
const MODELS: [&str; 6] = ["m0", "m1", "m2", "p/*", "p/x", "al0"];
const ALIASES: [&str; 4] = ["al0", "al1", "al2", "al3"];

#[derive(Clone, Debug)]
struct DeploymentCase {
    ns: usize,
    model: usize,
    openai: bool,
    has_secret: bool,
    weight: u8,
    order: u8,
    created: u16,
}

#[derive(Clone, Debug)]
struct AliasCase {
    ns: usize,
    alias: usize,
    targets: Vec<(usize, u8)>,
    fallback: Option<usize>,
    created: u16,
}

fn deployment_case() -> impl Strategy<Value = DeploymentCase> {
    (
        0..3usize,
        0..MODELS.len(),
        any::<bool>(),
        any::<bool>(),
        0..4u8,
        1..3u8,
        0..3000u16,
    )
        .prop_map(
            |(ns, model, openai, has_secret, weight, order, created)| DeploymentCase {
                ns,
                model,
                openai,
                has_secret,
                weight,
                order,
                created,
            },
        )
}

fn alias_case() -> impl Strategy<Value = AliasCase> {
    let names = MODELS.len() + ALIASES.len();
    (
        0..3usize,
        0..ALIASES.len(),
        prop::collection::vec((0..names, 0..3u8), 1..4),
        prop::option::of(0..names),
        0..3000u16,
    )
        .prop_map(|(ns, alias, targets, fallback, created)| AliasCase {
            ns,
            alias,
            targets,
            fallback,
            created,
        })
}

fn target_name(i: usize) -> &'static str {
    if i < MODELS.len() {
        MODELS[i]
    } else {
        ALIASES[i - MODELS.len()]
    }
}

fn build(
    deps: &[DeploymentCase],
    aliases: &[AliasCase],
) -> (Vec<ModelDeployment>, Vec<ModelGroupAlias>) {
    let deployments = deps
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let upstream = if c.openai {
                "{provider: openai, credentials: {secretKeyRef: {name: keys, key: openai}}}"
            } else {
                "{provider: mock}"
            };
            let spec = format!(
                "{{model: {:?}, upstream: {upstream}, routing: {{weight: {}, order: {}}}}}",
                MODELS[c.model], c.weight, c.order
            );
            created_at(
                deployment(NAMESPACES[c.ns], &format!("d{i}"), &spec),
                i64::from(c.created),
            )
        })
        .collect();
    let aliases = aliases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut targets: Vec<String> = Vec::new();
            let mut seen = Vec::new();
            for (t, w) in &c.targets {
                let name = target_name(*t);
                if !seen.contains(&name) {
                    seen.push(name);
                    targets.push(format!("{{model: {name:?}, weight: {w}}}"));
                }
            }
            let fallbacks = c
                .fallback
                .map(|f| format!(", fallbacks: [{:?}]", target_name(f)))
                .unwrap_or_default();
            let spec = format!(
                "{{alias: {:?}, targets: [{}]{fallbacks}}}",
                ALIASES[c.alias],
                targets.join(", ")
            );
            created_at(
                alias(NAMESPACES[c.ns], &format!("x{i}"), &spec),
                i64::from(c.created),
            )
        })
        .collect();
    (deployments, aliases)
}

fn store(deps: &[DeploymentCase]) -> SecretStore {
    let mut entries: Vec<SecretEntry<'_>> = Vec::new();
    for c in deps {
        if c.openai && c.has_secret {
            entries.push((NAMESPACES[c.ns], "keys", &[("openai", "sk-test")]));
        }
    }
    secrets(&entries)
}

fn all_diagnostics(c: &Compiled) -> Vec<String> {
    c.diagnostics
        .iter()
        .flat_map(|(k, ds)| ds.iter().map(move |d| format!("{k}: {d}")))
        .collect()
}

fn routes(c: &Compiled) -> String {
    let t = &c.table;
    serde_json::to_string(&(
        &t.deployments,
        &t.groups,
        &t.aliases,
        &t.settings,
        &t.credentials,
    ))
    .unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_order_gives_the_same_bytes(
        deps in prop::collection::vec(deployment_case(), 0..12),
        aliases in prop::collection::vec(alias_case(), 0..6),
        seed in any::<u64>(),
    ) {
        let (d, a) = build(&deps, &aliases);
        let secrets = store(&deps);
        let settings = RouterSettings::default();
        let first = run(&d, &a, &secrets, &settings);
        prop_assert!(first.table.validate().is_ok(), "{:?}", first.table.validate());
        // serde's output is the canonical form, and decodes back to the same table.
        let wire = first.table.to_canonical_json();
        let value = serde_json::to_value(&first.table).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&wire, &canonical_json(&value));
        let decoded = RoutingTable::decode(&wire).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&decoded, &first.table);

        let mut d2 = d.clone();
        let mut a2 = a.clone();
        shuffle(&mut d2, seed);
        shuffle(&mut a2, seed.rotate_left(17));
        let second = run(&d2, &a2, &secrets, &settings);
        prop_assert_eq!(first.table.to_canonical_json(), second.table.to_canonical_json());
        prop_assert_eq!(&first.table.version, &second.table.version);
        prop_assert_eq!(all_diagnostics(&first), all_diagnostics(&second));
    }

    #[test]
    fn a_bad_object_changes_no_other_route(
        deps in prop::collection::vec(deployment_case(), 1..10),
        aliases in prop::collection::vec(alias_case(), 0..5),
        kind in 0..6usize,
        pick in any::<prop::sample::Index>(),
    ) {
        let (d, a) = build(&deps, &aliases);
        let secrets = store(&deps);
        let settings = RouterSettings::default();
        let base = run(&d, &a, &secrets, &settings);

        let existing_model = pick.get(&d).spec.model.clone();
        let owner_ns = base.table.group(&existing_model).map(|g| g.namespace.clone());
        let mut d2 = d.clone();
        let mut a2 = a.clone();
        let newest = 3500;
        match kind {
            // Breaks a CRD rule.
            0 => d2.push(created_at(deployment("a", "bad", &format!(
                "{{model: {existing_model:?}, upstream: {{provider: mock}}, routing: {{order: 0}}}}"
            )), newest)),
            // Its Secret does not exist.
            1 => d2.push(created_at(deployment("b", "bad", &format!(
                "{{model: {existing_model:?}, upstream: {{provider: openai, credentials: {{secretKeyRef: {{name: nowhere, key: k}}}}}}}}"
            )), newest)),
            // Its Secret lacks the keys it names (every CRD provider is served now, so
            // an unserved provider can no longer be the bad object).
            2 => d2.push(created_at(deployment("c", "bad", &format!(
                "{{model: {existing_model:?}, upstream: {{provider: bedrock, region: us-east-1, credentials: {{secretName: keys, keys: {{accessKeyId: no-such-key, secretAccessKey: no-such-key}}}}}}}}"
            )), newest)),
            // An alias with a missing target.
            3 => a2.push(created_at(alias("a", "bad", "{alias: fresh, targets: [{model: nowhere}]}"), newest)),
            // Two aliases in a cycle.
            4 => {
                a2.push(created_at(alias("a", "bad1", "{alias: fresh1, targets: [{model: fresh2}]}"), newest));
                a2.push(created_at(alias("b", "bad2", "{alias: fresh2, targets: [{model: fresh1}]}"), newest));
            }
            // A newer deployment of another namespace claiming an owned model.
            _ => {
                let Some(owner) = owner_ns else { return Ok(()) };
                let other = NAMESPACES.iter().find(|n| **n != owner).copied().unwrap_or("a");
                d2.push(created_at(deployment(other, "bad", &format!(
                    "{{model: {existing_model:?}, upstream: {{provider: mock}}}}"
                )), newest));
            }
        }
        let with_bad = run(&d2, &a2, &secrets, &settings);
        prop_assert_eq!(routes(&base), routes(&with_bad));
        prop_assert_eq!(&base.table.version, &with_bad.table.version);
        // Every object of the base keeps exactly what was said about it.
        for (key, diags) in base.diagnostics.iter() {
            prop_assert_eq!(diags, with_bad.diagnostics.of(key));
        }
        prop_assert!(with_bad.diagnostics.error_count() > base.diagnostics.error_count());
    }
}

/// Every route of `base` is in `grown`, unchanged.
fn routes_kept(base: &Compiled, grown: &Compiled) -> Result<(), TestCaseError> {
    for d in &base.table.deployments {
        prop_assert_eq!(
            Some(d),
            grown.table.deployment(&d.id),
            "deployment {}",
            d.id
        );
    }
    for g in &base.table.groups {
        prop_assert_eq!(Some(g), grown.table.group(&g.name), "group {}", g.name);
    }
    for a in &base.table.aliases {
        prop_assert_eq!(Some(a), grown.table.alias(&a.name), "alias {}", a.name);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A team cannot take another team's traffic: whatever a namespace with nothing in the
    /// fleet yet creates, every route that existed stays as it was.
    #[test]
    fn a_new_namespace_takes_no_route(
        deps in prop::collection::vec(deployment_case(), 1..10),
        aliases in prop::collection::vec(alias_case(), 0..5),
        new_deps in prop::collection::vec(deployment_case(), 0..3),
        new_aliases in prop::collection::vec(alias_case(), 0..3),
    ) {
        let (d, a) = build(&deps, &aliases);
        let secrets = store(&deps);
        let settings = RouterSettings::default();
        let base = run(&d, &a, &secrets, &settings);
        let (mut nd, mut na) = build(&new_deps, &new_aliases);
        let mut d2 = d.clone();
        let mut a2 = a.clone();
        for (i, mut x) in nd.drain(..).enumerate() {
            x.metadata.namespace = Some("newcomer".to_owned());
            x.metadata.name = Some(format!("new-d{i}"));
            d2.push(created_at(x, 3500));
        }
        for (i, mut x) in na.drain(..).enumerate() {
            x.metadata.namespace = Some("newcomer".to_owned());
            x.metadata.name = Some(format!("new-x{i}"));
            a2.push(created_at(x, 3500));
        }
        let grown = run(&d2, &a2, &secrets, &settings);
        routes_kept(&base, &grown)?;
    }
}

/// A deterministic Fisher-Yates shuffle (xorshift), so failures reproduce from the seed.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut x = seed | 1;
    for i in (1..items.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let j = (x % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}
