//! The compiler, one scenario per rule: what is accepted, what is left out and why, and
//! that every other route stays.

mod support;

use std::path::PathBuf;

use modelgate_crds::RouterSettings;
use modelgate_dataplane_api::{REDACTED, TableError};
use modelgate_operator::compile::{Kind, ObjectKey, SecretStore, Severity};
use modelgate_operator::manifests::Manifests;
use support::*;

fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

fn settings(yaml: &str) -> RouterSettings {
    RouterSettings::from_yaml(yaml).unwrap_or_else(|e| panic!("settings: {e}"))
}

#[test]
fn quickstart_compiles_cleanly() {
    let m = Manifests::load(&[repo_path("examples/quickstart")]).expect("quickstart loads");
    let s = m.settings.clone().expect("quickstart has settings");
    let c = run(&m.deployments, &m.aliases, &m.secrets, &s);
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    c.table.validate().expect("table is whole");
    let t = &c.table;
    assert_eq!(
        t.groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
        ["embed", "large-chat", "small-chat"]
    );
    let chat = t.alias("chat").expect("alias chat");
    let shares: Vec<_> = chat
        .targets
        .iter()
        .map(|x| (x.group.as_str(), x.share))
        .collect();
    assert_eq!(shares, [("large-chat", 0.1), ("small-chat", 0.9)]);
    assert_eq!(chat.fallbacks, ["large-chat"]);
    // An alias of an alias is flattened onto groups.
    let mini = t.alias("gpt-4o-mini").expect("hidden alias");
    assert!(mini.hidden);
    assert_eq!(mini.targets, chat.targets);
    let a = t.deployment("default/small-chat-a").expect("deployment");
    assert_eq!((a.weight, a.order, a.retries), (3, 1, 2));
    assert_eq!(a.mock.as_ref().map(|m| m.delay_ms), Some(20));
    assert_eq!(a.timeouts.request_ms, 60_000, "router default applies");
    let large = t.deployment("default/large-chat").expect("deployment");
    assert_eq!(large.timeouts.stream_idle_ms, 5_000, "spec beats default");
    assert!(large.model_info.reasoning);
    assert_eq!(t.settings.cooldown.cooldown_ms, 30_000);
}

#[test]
fn missing_secret_or_key_leaves_only_that_deployment_out() {
    let good = mock("team", "good", "m");
    let no_secret = deployment(
        "team",
        "no-secret",
        "{model: m, upstream: {provider: openai, credentials: {secretKeyRef: {name: gone, key: k}}}}",
    );
    let no_key = deployment(
        "team",
        "no-key",
        "{model: m, upstream: {provider: openai, credentials: {secretKeyRef: {name: s, key: other}}}}",
    );
    let store = secrets(&[("team", "s", &[("k", "sk-secret-value")])]);
    let c = run(
        &[good, no_secret, no_key],
        &[],
        &store,
        &RouterSettings::default(),
    );
    assert_eq!(reasons(&c, &dkey("team", "no-secret")), ["MissingSecret"]);
    assert_eq!(reasons(&c, &dkey("team", "no-key")), ["MissingSecretKey"]);
    let msg = &c.diagnostics.of(&dkey("team", "no-key"))[0].message;
    assert!(msg.contains("team/s") && msg.contains("\"other\""), "{msg}");
    assert_eq!(
        c.table.group("m").map(|g| g.deployments.clone()),
        Some(vec!["team/good".to_owned()])
    );
    c.table.validate().expect("table is whole");
}

#[test]
fn credentials_carry_only_referenced_keys_and_never_show() {
    let d = deployment(
        "team",
        "oa",
        "{model: gpt, upstream: {provider: openai, credentials: {secretKeyRef: {name: keys, key: openai}}}}",
    );
    let store = secrets(&[(
        "team",
        "keys",
        &[("openai", "sk-live-abc\n"), ("unrelated", "do-not-copy")],
    )]);
    let c = run(&[d], &[], &store, &RouterSettings::default());
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    let cred = &c.table.credentials["team/keys"];
    assert_eq!(cred.len(), 1, "only the referenced key travels");
    assert_eq!(
        cred["openai"].expose(),
        "sk-live-abc",
        "trailing newline dropped"
    );
    let debug = format!("{:?}", c.table);
    assert!(!debug.contains("sk-live-abc"), "Debug shows no credential");
    let redacted = serde_json::to_string(&c.table.redacted()).expect("json");
    assert!(!redacted.contains("sk-live-abc") && redacted.contains(REDACTED));
    let wire = String::from_utf8(c.table.to_canonical_json()).expect("utf8");
    assert!(wire.contains("sk-live-abc"), "the wire form carries it");
}

#[test]
fn rotated_secret_changes_version_and_revision_does_not() {
    let d = deployment(
        "team",
        "oa",
        "{model: gpt, upstream: {provider: openai, credentials: {secretKeyRef: {name: keys, key: k}}}}",
    );
    let s = RouterSettings::default();
    let one = run(
        std::slice::from_ref(&d),
        &[],
        &secrets(&[("team", "keys", &[("k", "one")])]),
        &s,
    );
    let again = run(
        std::slice::from_ref(&d),
        &[],
        &secrets(&[("team", "keys", &[("k", "one")])]),
        &s,
    );
    let two = run(
        std::slice::from_ref(&d),
        &[],
        &secrets(&[("team", "keys", &[("k", "two")])]),
        &s,
    );
    assert_eq!(one.table.version, again.table.version);
    assert_eq!(
        one.table.to_canonical_json(),
        again.table.to_canonical_json()
    );
    assert_ne!(one.table.version, two.table.version);
    let later = one.table.clone().seal(7);
    assert_eq!(later.revision, 7);
    assert_eq!(later.version, one.table.version);
}

#[test]
fn invalid_spec_repeats_the_cel_rules() {
    let azure = deployment(
        "team",
        "az",
        "{model: gpt, upstream: {provider: azure, apiBase: 'https://x.openai.azure.com', credentials: {secretKeyRef: {name: k, key: k}}}}",
    );
    let bad_duration = deployment(
        "team",
        "slow",
        "{model: gpt, upstream: {provider: mock}, timeouts: {request: 10 minutes}}",
    );
    let zero = deployment(
        "team",
        "zero",
        "{model: gpt, upstream: {provider: mock}, timeouts: {request: 0s}}",
    );
    let c = run(
        &[azure, bad_duration, zero],
        &[],
        &SecretStore::new(),
        &RouterSettings::default(),
    );
    for (name, needle) in [
        ("az", "provider azure needs apiBase"),
        ("slow", "spec.timeouts.request: must be a duration"),
        ("zero", "spec.timeouts.request must be greater than 0"),
    ] {
        let d = &c.diagnostics.of(&dkey("team", name))[0];
        assert_eq!(d.reason.as_str(), "InvalidSpec");
        assert!(d.message.contains(needle), "{name}: {}", d.message);
    }
    assert!(c.table.deployments.is_empty());
}

#[test]
fn every_crd_provider_is_served() {
    // `UnsupportedProvider` is for a CRD provider ahead of the data plane; today the data
    // plane serves every provider the CRDs define, so a deployment of each compiles into
    // the table (an unknown name is refused by the CRD schema before the compiler).
    for p in modelgate_crds::deployment::Provider::ALL {
        assert!(
            modelgate_dataplane_api::serves_provider(p.as_str()),
            "{p} is in the CRDs but not served"
        );
    }
    let specs = [
        (
            "oai",
            "{model: a, upstream: {provider: openai, credentials: {secretKeyRef: {name: k, key: k}}}}",
        ),
        (
            "compat",
            "{model: b, upstream: {provider: openai-compatible, apiBase: 'http://vllm:8000/v1'}}",
        ),
        (
            "az",
            "{model: c, upstream: {provider: azure, apiBase: 'https://x.openai.azure.com', apiVersion: '2024-10-21', credentials: {secretKeyRef: {name: k, key: k}}}}",
        ),
        (
            "claude",
            "{model: d, upstream: {provider: anthropic, credentials: {secretKeyRef: {name: k, key: k}}}}",
        ),
        (
            "gem",
            "{model: e, upstream: {provider: gemini, model: gemini-2.5-flash, credentials: {secretKeyRef: {name: k, key: k}}}}",
        ),
        (
            "br",
            "{model: f, upstream: {provider: bedrock, region: us-east-1, model: 'amazon.nova-lite-v1:0', credentials: {secretName: k, keys: {accessKeyId: k, secretAccessKey: s}}}}",
        ),
    ];
    let ds: Vec<_> = specs
        .iter()
        .map(|(name, spec)| deployment("team", name, spec))
        .chain([mock("team", "m", "m")])
        .collect();
    let c = run(
        &ds,
        &[],
        &secrets(&[("team", "k", &[("k", "v"), ("s", "w")])]),
        &RouterSettings::default(),
    );
    for (name, _) in specs {
        assert!(
            reasons(&c, &dkey("team", name)).is_empty(),
            "{name}: {:?}",
            c.diagnostics.of(&dkey("team", name))
        );
    }
    assert_eq!(c.table.deployments.len(), specs.len() + 1);
}

#[test]
fn anthropic_deployments_are_served() {
    let d = deployment(
        "team",
        "claude",
        "{model: claude, upstream: {provider: anthropic, model: claude-sonnet-4-5, credentials: {secretKeyRef: {name: k, key: k}}}}",
    );
    let c = run(
        &[d],
        &[],
        &secrets(&[("team", "k", &[("k", "v")])]),
        &RouterSettings::default(),
    );
    assert!(reasons(&c, &dkey("team", "claude")).is_empty());
    let d = &c.table.deployments[0];
    assert_eq!(d.provider, "anthropic");
    assert_eq!(
        d.health_check.probe,
        modelgate_dataplane_api::Probe::ModelsList
    );
}

#[test]
fn alias_cycles_and_what_depends_on_them() {
    let aliases = [
        alias("team", "a", "{alias: a, targets: [{model: b}]}"),
        alias("team", "b", "{alias: b, targets: [{model: a}]}"),
        alias("team", "c", "{alias: c, targets: [{model: a}, {model: m}]}"),
        alias("team", "ok", "{alias: ok, targets: [{model: m}]}"),
    ];
    let c = run(
        &[mock("team", "m", "m")],
        &aliases,
        &SecretStore::new(),
        &RouterSettings::default(),
    );
    assert_eq!(reasons(&c, &akey("team", "a")), ["AliasCycle"]);
    assert_eq!(reasons(&c, &akey("team", "b")), ["AliasCycle"]);
    let cycle = &c.diagnostics.of(&akey("team", "b"))[0].message;
    assert!(cycle.contains("a -> b -> a"), "{cycle}");
    assert_eq!(reasons(&c, &akey("team", "c")), ["MissingTarget"]);
    assert!(c.diagnostics.is_accepted(&akey("team", "ok")));
    assert_eq!(c.table.aliases.len(), 1);
    c.table.validate().expect("table is whole");
}

#[test]
fn alias_conflicts() {
    let deployments = [mock("team", "m", "m"), mock("team", "n", "n")];
    let aliases = [
        created_at(
            alias("team", "shadow", "{alias: m, targets: [{model: n}]}"),
            1,
        ),
        created_at(
            alias("team", "first", "{alias: x, targets: [{model: m}]}"),
            1,
        ),
        created_at(
            alias("team", "second", "{alias: x, targets: [{model: n}]}"),
            2,
        ),
        alias("team", "missing", "{alias: y, targets: [{model: nowhere}]}"),
        alias(
            "team",
            "bad-fallback",
            "{alias: z, targets: [{model: m}], fallbacks: [nowhere]}",
        ),
        alias("team", "needs-bad", "{alias: w, targets: [{model: z}]}"),
    ];
    let c = run(
        &deployments,
        &aliases,
        &SecretStore::new(),
        &RouterSettings::default(),
    );
    assert_eq!(reasons(&c, &akey("team", "shadow")), ["AliasShadowsGroup"]);
    assert!(c.diagnostics.is_accepted(&akey("team", "first")));
    assert_eq!(reasons(&c, &akey("team", "second")), ["DuplicateAlias"]);
    assert_eq!(reasons(&c, &akey("team", "missing")), ["MissingTarget"]);
    assert_eq!(
        reasons(&c, &akey("team", "bad-fallback")),
        ["MissingFallback"]
    );
    assert_eq!(reasons(&c, &akey("team", "needs-bad")), ["MissingTarget"]);
    let names: Vec<_> = c.table.aliases.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["x"]);
    assert_eq!(c.table.aliases[0].id, "team/first");
    c.table.validate().expect("table is whole");
}

#[test]
fn a_model_name_belongs_to_the_namespace_of_its_oldest_resource() {
    let deployments = [
        created_at(mock("team-a", "gpt", "gpt"), 10),
        created_at(mock("team-b", "gpt", "gpt"), 20),
        created_at(mock("team-b", "other", "other"), 5),
    ];
    let aliases = [created_at(
        alias(
            "team-b",
            "steal",
            "{alias: gpt-alias, targets: [{model: gpt}]}",
        ),
        30,
    )];
    let c = run(
        &deployments,
        &aliases,
        &SecretStore::new(),
        &RouterSettings::default(),
    );
    assert_eq!(
        reasons(&c, &dkey("team-b", "gpt")),
        ["ModelOwnedByOtherNamespace"]
    );
    let msg = &c.diagnostics.of(&dkey("team-b", "gpt"))[0].message;
    assert!(
        msg.contains("team-a") && msg.contains("sharedModels"),
        "{msg}"
    );
    let g = c.table.group("gpt").expect("group");
    assert_eq!(
        (g.namespace.as_str(), g.deployments.as_slice()),
        ("team-a", &["team-a/gpt".to_owned()][..])
    );
    // Aliasing someone else's group is fine: it only routes to it.
    assert!(c.diagnostics.is_accepted(&akey("team-b", "steal")));

    // Shared by the settings: team-b joins the group.
    let shared = settings("sharedModels: [{model: gpt, namespaces: [team-b]}]");
    let c = run(&deployments, &aliases, &SecretStore::new(), &shared);
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    assert_eq!(c.table.group("gpt").map(|g| g.deployments.len()), Some(2));
}

#[test]
fn an_alias_name_is_owned_too() {
    let aliases = [
        created_at(alias("team-a", "x", "{alias: x, targets: [{model: m}]}"), 1),
        created_at(alias("team-b", "x", "{alias: x, targets: [{model: m}]}"), 2),
    ];
    let deployments = [
        created_at(mock("team-a", "m", "m"), 0),
        // A newer deployment in another namespace cannot take the alias's name.
        created_at(mock("team-b", "x", "x"), 3),
    ];
    let c = run(
        &deployments,
        &aliases,
        &SecretStore::new(),
        &RouterSettings::default(),
    );
    assert_eq!(
        reasons(&c, &akey("team-b", "x")),
        ["ModelOwnedByOtherNamespace"]
    );
    assert_eq!(
        reasons(&c, &dkey("team-b", "x")),
        ["ModelOwnedByOtherNamespace"]
    );
    assert!(c.diagnostics.is_accepted(&akey("team-a", "x")));
}

#[test]
fn wildcards() {
    let deployments = [
        created_at(
            deployment(
                "team-a",
                "openai-any",
                "{model: 'openai/*', upstream: {provider: mock}}",
            ),
            1,
        ),
        created_at(mock("team-a", "pinned", "openai/gpt-4o"), 2),
        created_at(mock("team-b", "sneaky", "openai/gpt-4o-mini"), 3),
    ];
    let aliases = [alias(
        "team-a",
        "via-wildcard",
        "{alias: best, targets: [{model: openai/o3}, {model: openai/gpt-4o}]}",
    )];
    let c = run(
        &deployments,
        &aliases,
        &SecretStore::new(),
        &RouterSettings::default(),
    );
    assert!(
        c.diagnostics.is_accepted(&dkey("team-a", "pinned")),
        "same namespace may pin a name"
    );
    assert_eq!(reasons(&c, &dkey("team-b", "sneaky")), ["WildcardConflict"]);
    let any = c
        .table
        .deployment("team-a/openai-any")
        .expect("wildcard deployment");
    assert_eq!(any.upstream_model, "*");
    let best = c.table.alias("best").expect("alias");
    let targets: Vec<_> = best
        .targets
        .iter()
        .map(|t| (t.group.as_str(), t.model.as_str(), t.share))
        .collect();
    assert_eq!(
        targets,
        [
            ("openai/*", "openai/o3", 0.5),
            ("openai/gpt-4o", "openai/gpt-4o", 0.5)
        ]
    );
    c.table.validate().expect("table is whole");
}

#[test]
fn a_newer_wildcard_does_not_take_an_older_concrete_name() {
    let deployments = [
        created_at(mock("team-a", "pinned", "openai/gpt-4o"), 1),
        created_at(
            deployment(
                "team-b",
                "any",
                "{model: 'openai/*', upstream: {provider: mock}}",
            ),
            2,
        ),
    ];
    let c = run(
        &deployments,
        &[],
        &SecretStore::new(),
        &RouterSettings::default(),
    );
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    assert_eq!(
        c.table.group("openai/gpt-4o").map(|g| g.namespace.as_str()),
        Some("team-a")
    );
    assert_eq!(
        c.table.group("openai/*").map(|g| g.namespace.as_str()),
        Some("team-b")
    );
}

#[test]
fn master_key_fails_closed() {
    let s = settings("masterKey: {secretKeyRef: {name: admin, key: master}}");
    let d = [mock("team", "m", "m")];
    let missing = run(&d, &[], &SecretStore::new(), &s);
    let key = ObjectKey::new(Kind::RouterSettings, "modelgate-system", "settings");
    let diag = &missing.diagnostics.of(&key)[0];
    assert_eq!(
        (diag.severity, diag.reason.as_str()),
        (Severity::Error, "InvalidSettings")
    );
    let errors = missing
        .table
        .validate()
        .expect_err("a table without its master key is refused");
    assert!(
        matches!(errors[0], TableError::MissingCredential { .. }),
        "{errors:?}"
    );

    let store = secrets(&[("modelgate-system", "admin", &[("master", "sk-master")])]);
    let ok = run(&d, &[], &store, &s);
    assert!(ok.diagnostics.is_empty(), "{:?}", ok.diagnostics);
    ok.table.validate().expect("table is whole");
    let r = ok.table.settings.master_key.as_ref().expect("master key");
    assert_eq!(ok.table.secret(r).map(|v| v.expose()), Some("sk-master"));
}

#[test]
fn settings_fallbacks_to_unknown_models_are_dropped_with_a_warning() {
    let s = settings("fallbacks: {m: [n, nowhere], ghost: [m]}\ncontextWindowFallbacks: {m: [n]}");
    let c = run(
        &[mock("team", "m", "m"), mock("team", "n", "n")],
        &[],
        &SecretStore::new(),
        &s,
    );
    assert_eq!(
        c.table.settings.fallbacks.get("m"),
        Some(&vec!["n".to_owned()])
    );
    assert!(!c.table.settings.fallbacks.contains_key("ghost"));
    assert_eq!(c.table.settings.context_window_fallbacks.len(), 1);
    let key = ObjectKey::new(Kind::RouterSettings, "modelgate-system", "settings");
    let warnings = c.diagnostics.of(&key);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings.iter().all(|w| w.severity == Severity::Warning));
    c.table.validate().expect("table is whole");
}

#[test]
fn unwatched_namespaces_and_nameless_objects() {
    let s = settings("namespaces: [prod]");
    let mut nameless = mock("prod", "x", "x");
    nameless.metadata.name = None;
    let c = run(
        &[mock("prod", "m", "m"), mock("dev", "m", "m"), nameless],
        &[],
        &SecretStore::new(),
        &s,
    );
    assert_eq!(reasons(&c, &dkey("dev", "m")), ["NamespaceNotWatched"]);
    assert_eq!(reasons(&c, &dkey("prod", "")), ["MissingName"]);
    assert_eq!(c.table.deployments.len(), 1);
}

#[test]
fn duplicates_keep_one_definition_whatever_the_order() {
    let one = mock("team", "m", "m");
    let two = deployment(
        "team",
        "m",
        "{model: m, upstream: {provider: mock}, routing: {weight: 5}}",
    );
    let a = run(
        &[one.clone(), two.clone()],
        &[],
        &SecretStore::new(),
        &RouterSettings::default(),
    );
    let b = run(
        &[two, one],
        &[],
        &SecretStore::new(),
        &RouterSettings::default(),
    );
    assert_eq!(a.table.to_canonical_json(), b.table.to_canonical_json());
    assert_eq!(reasons(&a, &dkey("team", "m")), ["DuplicateObject"]);
}

#[test]
fn bedrock_keys_resolve_from_one_secret() {
    // The spec without keys fails the spec rules.
    let no_keys = deployment(
        "team",
        "br",
        "{model: claude, upstream: {provider: bedrock, region: us-east-1}}",
    );
    let c = run(
        &[no_keys],
        &[],
        &SecretStore::new(),
        &RouterSettings::default(),
    );
    let d = &c.diagnostics.of(&dkey("team", "br"))[0];
    assert!(d.message.contains("keys.accessKeyId"), "{}", d.message);

    // With keys, the deployment is served: region and the three keys reach the table.
    let with_keys = deployment(
        "team",
        "br",
        "{model: claude, upstream: {provider: bedrock, region: eu-west-3, credentials: {secretName: aws, keys: {accessKeyId: id, secretAccessKey: secret, sessionToken: token}}}}",
    );
    let c = run(
        &[with_keys],
        &[],
        &secrets(&[(
            "team",
            "aws",
            &[("id", "AKIA"), ("secret", "s"), ("token", "t")],
        )]),
        &RouterSettings::default(),
    );
    assert!(reasons(&c, &dkey("team", "br")).is_empty());
    let d = &c.table.deployments[0];
    assert_eq!(d.region.as_deref(), Some("eu-west-3"));
    let creds = d.credentials.as_ref().expect("credentials");
    assert_eq!(creds.access_key_id.as_deref(), Some("id"));
    assert_eq!(creds.secret_access_key.as_deref(), Some("secret"));
    assert_eq!(creds.session_token.as_deref(), Some("token"));
    assert_eq!(
        c.table
            .credential_value(creds, "secret")
            .map(|v| v.expose()),
        Some("s")
    );
}
