//! `import litellm`: a realistic LiteLLM config becomes valid resources; every key left
//! untranslated is a warning naming it; no secret leaks out of the Secret; and what the
//! import emits compiles without a diagnostic once the Secrets it asks for exist.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use modelgate_crds::settings::RoutingStrategy;
use modelgate_crds::{Mode, ModelDeployment, Provider, RouterSettings, SecretKeySelector};
use modelgate_operator::compile::{Inputs, Kind, ObjectKey, Reason, SecretStore, compile};
use modelgate_operator::import::litellm::{
    ImportError, Imported, LitellmArgs, Options, convert, run_with,
};
use modelgate_operator::manifests::Manifests;

const NS: &str = "ai";
const FIXTURE: &str = "proxy_server_config.yaml";
const UNSERVED: &str = "unserved_providers.yaml";

/// Every literal secret written in the fixture.
const LITERALS: [&str; 4] = [
    "sk-literal-openai-0123456789abcdef",
    "sk-literal-master-key-9876",
    "literal-mistral-key-from-environment-variables",
    "sk-header-literal-do-not-copy",
];

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/litellm")
        .join(name)
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn import(name: &str) -> Imported {
    convert(&fixture(name), &Options::new(NS)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn import_str(yaml: &str) -> Imported {
    convert(yaml, &Options::new(NS)).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

fn deployment<'a>(imported: &'a Imported, name: &str) -> &'a ModelDeployment {
    imported
        .deployments
        .iter()
        .find(|d| d.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no deployment {name}; have {:?}", names(imported)))
}

fn names(imported: &Imported) -> Vec<&str> {
    imported
        .deployments
        .iter()
        .filter_map(|d| d.metadata.name.as_deref())
        .collect()
}

/// Asserts that one warning mentions every needle.
#[track_caller]
fn assert_warned(imported: &Imported, needles: &[&str]) {
    assert!(
        imported
            .warnings
            .iter()
            .any(|w| needles.iter().all(|n| w.contains(n))),
        "no warning mentions all of {needles:?}; warnings:\n{}",
        imported.warnings.join("\n")
    );
}

fn env_ref(key: &str) -> Option<SecretKeySelector> {
    Some(SecretKeySelector {
        name: "litellm-env".to_owned(),
        key: key.to_owned(),
    })
}

fn api_key_ref(d: &ModelDeployment) -> Option<SecretKeySelector> {
    d.spec
        .upstream
        .credentials
        .as_ref()
        .and_then(|c| c.secret_key_ref.clone())
}

#[test]
fn every_resource_is_valid_namespaced_and_uniquely_named() {
    let imported = import(FIXTURE);
    assert_eq!(imported.deployments.len(), 20, "{:?}", names(&imported));
    let mut seen = BTreeSet::new();
    for d in &imported.deployments {
        let name = d.metadata.name.clone().unwrap_or_default();
        assert!(
            d.spec.validate().is_empty(),
            "{name}: {:?}",
            d.spec.validate()
        );
        assert_eq!(d.metadata.namespace.as_deref(), Some(NS));
        assert!(name.len() <= 63, "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !name.starts_with('-')
                && !name.ends_with('-'),
            "{name} is not a DNS-1123 label"
        );
        assert!(seen.insert(name.clone()), "{name} twice");
    }
    for a in &imported.aliases {
        assert!(a.spec.validate().is_empty(), "{:?}", a.spec.validate());
        assert_eq!(a.metadata.namespace.as_deref(), Some(NS));
    }
    for s in &imported.secrets {
        assert_eq!(s.metadata.namespace.as_deref(), Some(NS));
    }
    assert!(
        imported.settings.validate().is_empty(),
        "{:?}",
        imported.settings.validate()
    );
    assert_eq!(imported.settings.kind.as_deref(), Some("RouterSettings"));
    assert_eq!(
        imported.settings.api_version.as_deref(),
        Some("modelgate.dev/v1alpha1")
    );
}

#[test]
fn entries_sharing_a_model_name_form_one_group() {
    let imported = import(FIXTURE);
    let eu = deployment(&imported, "gpt-4o-1");
    let us = deployment(&imported, "gpt-4o-2");
    let openai = deployment(&imported, "gpt-4o-3");
    for d in [eu, us, openai] {
        assert_eq!(d.spec.model, "gpt-4o");
    }

    let up = &eu.spec.upstream;
    assert_eq!(up.provider, Provider::Azure);
    assert_eq!(up.model.as_deref(), Some("gpt-4o-eu"));
    assert_eq!(
        up.api_base.as_deref(),
        Some("https://contoso-eu.openai.azure.com/")
    );
    assert_eq!(up.api_version.as_deref(), Some("2024-10-21"));
    assert_eq!(api_key_ref(eu), env_ref("AZURE_API_KEY_EU"));
    let limits = eu.spec.limits.clone().unwrap_or_default();
    assert_eq!((limits.rpm, limits.tpm), (Some(600), Some(200_000)));
    let timeouts = eu.spec.timeouts.clone().unwrap_or_default();
    assert_eq!(timeouts.request.as_deref(), Some("10m"));
    let stream = timeouts.stream.unwrap_or_default();
    assert_eq!(stream.first_byte.as_deref(), Some("30s"));
    assert_eq!(stream.idle.as_deref(), Some("30s"));
    let routing = eu.spec.routing.clone().unwrap_or_default();
    assert_eq!(
        (routing.weight, routing.order, routing.retries),
        (Some(2), Some(1), Some(3))
    );
    let info = eu.spec.model_info.clone().unwrap_or_default();
    assert_eq!(info.mode, Some(Mode::Chat));
    assert_eq!(info.base_model.as_deref(), Some("azure/gpt-4o"));
    assert_eq!(info.context_window, Some(128_000));
    assert_eq!(info.max_output_tokens, Some(16_384));
    assert_eq!(info.input_cost_per_token, Some(0.0000025));
    assert_eq!(info.output_cost_per_token, Some(0.00001));

    assert_eq!(us.spec.routing.clone().unwrap_or_default().weight, Some(1));

    // Second tier: OpenAI itself, with headers minus the credential.
    assert_eq!(openai.spec.upstream.provider, Provider::Openai);
    assert_eq!(api_key_ref(openai), env_ref("OPENAI_API_KEY"));
    let routing = openai.spec.routing.clone().unwrap_or_default();
    assert_eq!(
        (routing.weight, routing.order, routing.retries),
        (None, Some(2), Some(2))
    );
    assert_eq!(
        openai
            .spec
            .limits
            .clone()
            .unwrap_or_default()
            .max_concurrent_requests,
        Some(50)
    );
    let headers: BTreeMap<&str, &str> = openai
        .spec
        .upstream
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.value.as_str()))
        .collect();
    assert_eq!(
        headers,
        BTreeMap::from([
            ("X-Team", "platform"),
            ("OpenAI-Organization", "org-contoso")
        ])
    );

    let llama: Vec<_> = imported
        .deployments
        .iter()
        .filter(|d| d.spec.model == "llama-3.1-8b")
        .collect();
    assert_eq!(llama.len(), 2);
    assert_eq!(
        names(&imported)
            .iter()
            .filter(|n| n.starts_with("llama-3-1-8b-"))
            .count(),
        2
    );
}

#[test]
fn providers_map_to_modelgate_providers() {
    let imported = import(FIXTURE);
    let compat = |name: &str, model: &str, base: &str, key: Option<&str>| {
        let d = deployment(&imported, name);
        assert_eq!(
            d.spec.upstream.provider,
            Provider::OpenaiCompatible,
            "{name}"
        );
        assert_eq!(d.spec.upstream.model.as_deref(), Some(model), "{name}");
        assert_eq!(d.spec.upstream.api_base.as_deref(), Some(base), "{name}");
        assert_eq!(api_key_ref(d), key.and_then(env_ref), "{name}");
    };
    compat(
        "llama-3-1-8b-1",
        "meta-llama/Llama-3.1-8B-Instruct",
        "http://vllm.inference.svc.cluster.local:8000/v1",
        Some("VLLM_API_KEY"),
    );
    compat(
        "llama-3-1-8b-2",
        "llama3.1:8b",
        "http://ollama.inference.svc.cluster.local:11434/v1",
        None,
    );
    compat(
        "qwen-coder",
        "Qwen/Qwen2.5-Coder-32B-Instruct",
        "https://llm.internal.contoso.example/v1",
        Some("INTERNAL_LLM_KEY"),
    );
    compat(
        "llama-3-3-70b-1",
        "llama-3.3-70b-versatile",
        "https://api.groq.com/openai/v1",
        Some("GROQ_API_KEY"),
    );
    compat(
        "llama-3-3-70b-2",
        "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "https://api.together.xyz/v1",
        Some("TOGETHERAI_API_KEY"),
    );
    compat(
        "deepseek-chat",
        "deepseek-chat",
        "https://api.deepseek.com/v1",
        Some("DEEPSEEK_API_KEY"),
    );
    compat(
        "llama-3-1-405b",
        "accounts/fireworks/models/llama-v3p1-405b-instruct",
        "https://api.fireworks.ai/inference/v1",
        Some("FIREWORKS_AI_API_KEY"),
    );
    compat(
        "grok-2",
        "grok-2-latest",
        "https://api.x.ai/v1",
        Some("XAI_API_KEY"),
    );
    compat(
        "llama-3-1-70b",
        "meta-llama/Meta-Llama-3.1-70B-Instruct",
        "https://api.deepinfra.com/v1/openai",
        Some("DEEPINFRA_API_KEY"),
    );
    compat(
        "sonar-pro",
        "sonar-pro",
        "https://api.perplexity.ai",
        Some("PERPLEXITYAI_API_KEY"),
    );
    let mistral = deployment(&imported, "mistral-large");
    assert_eq!(
        mistral.spec.upstream.api_base.as_deref(),
        Some("https://api.mistral.ai/v1")
    );

    let embedding = deployment(&imported, "text-embedding-3-small");
    assert_eq!(embedding.spec.upstream.provider, Provider::Openai);
    assert_eq!(
        embedding.spec.model_info.clone().unwrap_or_default().mode,
        Some(Mode::Embedding)
    );

    let reasoner = deployment(&imported, "deepseek-reasoner");
    let info = reasoner.spec.model_info.clone().unwrap_or_default();
    assert_eq!(
        (info.reasoning, info.max_output_tokens),
        (Some(true), Some(8192))
    );
}

#[test]
fn wildcard_entries_become_wildcard_deployments() {
    let imported = import(FIXTURE);
    for (name, model, provider) in [
        ("openai-wildcard", "openai/*", Provider::Openai),
        ("groq-wildcard", "groq/*", Provider::OpenaiCompatible),
        (
            "openrouter-wildcard",
            "openrouter/*",
            Provider::OpenaiCompatible,
        ),
    ] {
        let d = deployment(&imported, name);
        assert_eq!(d.spec.model, model);
        assert_eq!(d.spec.upstream.provider, provider);
        assert_eq!(d.spec.upstream.model.as_deref(), Some("*"));
    }
    assert_eq!(
        deployment(&imported, "openrouter-wildcard")
            .spec
            .upstream
            .api_base
            .as_deref(),
        Some("https://openrouter.ai/api/v1")
    );
}

#[test]
fn untranslated_keys_and_skipped_entries_are_warnings_naming_them() {
    let imported = import(FIXTURE);
    for needles in [
        &["model_list[3] (gpt-4o-mini)", "litellm_params.temperature"][..],
        &["model_list[3] (gpt-4o-mini)", "model_info.supports_vision"],
        &[
            "model_list[5] (llama-3.1-8b)",
            "litellm_params.input_cost_per_second",
        ],
        &[
            "model_list[2] (gpt-4o)",
            "extra_headers.Authorization",
            "not copied",
        ],
        &[
            "model_list[6] (llama-3.1-8b)",
            "headers.X-Api-Key",
            "not copied",
        ],
        &["model_list[20] (command-r-plus)", "skipped", "cohere"],
        &["model_list[21] (gemini-vertex)", "skipped", "vertex_ai"],
        &[
            "model_list[21] (gemini-vertex)",
            "litellm_params.vertex_project",
        ],
        &["general_settings.database_url", "not translated"],
        &["general_settings.pass_through_endpoints", "not translated"],
        &["litellm_settings.success_callback", "not translated"],
        &["litellm_settings.failure_callback", "not translated"],
        &["litellm_settings.callbacks", "not translated"],
        &["litellm_settings.set_verbose", "not translated"],
        &["router_settings.enable_pre_call_checks", "not translated"],
        &["environment_variables", "LANGFUSE_HOST"],
        &["finetune_settings", "not translated"],
        &["guardrails", "not translated"],
        &["x-openai-defaults", "not translated"],
        &[
            "router_settings.num_retries",
            "litellm_settings.num_retries",
        ],
        &[
            "router_settings.timeout",
            "litellm_settings.request_timeout",
        ],
    ] {
        assert_warned(&imported, needles);
    }
    assert!(
        !imported
            .warnings
            .iter()
            .any(|w| w.contains("model_info.id")),
        "model_info.id is ignored silently"
    );
    assert!(
        imported
            .deployments
            .iter()
            .all(|d| d.spec.model != "command-r-plus")
    );
    assert!(
        imported
            .deployments
            .iter()
            .all(|d| d.spec.model != "gemini-vertex")
    );
}

#[test]
fn literal_secrets_live_only_in_the_emitted_secret() {
    let imported = import(FIXTURE);
    assert_eq!(imported.secrets.len(), 1);
    let secret = &imported.secrets[0];
    assert_eq!(
        secret.metadata.name.as_deref(),
        Some("litellm-imported-keys")
    );
    let data = secret.string_data.clone().unwrap_or_default();
    let values: BTreeSet<&str> = data.values().map(String::as_str).collect();
    assert_eq!(
        values,
        BTreeSet::from([LITERALS[0], LITERALS[1], LITERALS[2]]),
        "the header credential is dropped, not stored"
    );

    let mut public = String::new();
    for d in &imported.deployments {
        public.push_str(&serde_yaml::to_string(d).unwrap_or_default());
    }
    for a in &imported.aliases {
        public.push_str(&serde_yaml::to_string(a).unwrap_or_default());
    }
    public.push_str(&imported.settings_yaml().unwrap_or_default());
    public.push_str(&imported.warnings.join("\n"));
    public.push_str(&imported.secret_command().unwrap_or_default());
    public.push_str(&format!("{imported:?}"));
    for literal in LITERALS {
        assert!(!public.contains(literal), "{literal} leaked");
    }

    // In the stream, only the Secret document holds them.
    let stream = imported.to_yaml_stream().unwrap_or_default();
    for doc in stream.split("---\n") {
        if LITERALS.iter().any(|l| doc.contains(l)) {
            assert!(
                doc.contains("kind: Secret"),
                "literal outside a Secret:\n{doc}"
            );
        }
    }

    let mini = deployment(&imported, "gpt-4o-mini");
    let literal_ref = api_key_ref(mini).unwrap_or_else(|| panic!("gpt-4o-mini has no key"));
    assert_eq!(literal_ref.name, "litellm-imported-keys");
    assert_eq!(
        data.get(&literal_ref.key).map(String::as_str),
        Some(LITERALS[0])
    );
    let master = imported
        .settings
        .master_key
        .clone()
        .map(|m| m.secret_key_ref);
    assert_eq!(
        master.as_ref().map(|m| m.name.as_str()),
        Some("litellm-imported-keys")
    );
    let master_key = master.map(|m| m.key).unwrap_or_default();
    assert_eq!(data.get(&master_key).map(String::as_str), Some(LITERALS[1]));

    // os.environ/MISTRAL_API_KEY reads a value the config itself sets: a literal too.
    let mistral = api_key_ref(deployment(&imported, "mistral-large"));
    assert_eq!(
        mistral.as_ref().map(|m| m.name.as_str()),
        Some("litellm-imported-keys")
    );
    assert_warned(
        &imported,
        &[
            "general_settings.master_key",
            "literal",
            "litellm-imported-keys",
        ],
    );
    assert_warned(
        &imported,
        &["model_list[3] (gpt-4o-mini)", "literal", "rotate"],
    );
}

#[test]
fn the_secret_command_covers_every_env_var_in_one_command() {
    let imported = import(FIXTURE);
    let expected: BTreeSet<String> = [
        "AZURE_API_KEY_EU",
        "AZURE_API_KEY_US",
        "DEEPINFRA_API_KEY",
        "DEEPSEEK_API_KEY",
        "FIREWORKS_AI_API_KEY",
        "GROQ_API_KEY",
        "INTERNAL_LLM_KEY",
        "MODELGATE_REDIS_URL",
        "OPENAI_API_KEY",
        "OPENROUTER_API_KEY",
        "PERPLEXITYAI_API_KEY",
        "TOGETHERAI_API_KEY",
        "VLLM_API_KEY",
        "XAI_API_KEY",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(imported.required_env, expected);

    let cmd = imported.secret_command().unwrap_or_default();
    assert!(
        cmd.starts_with("kubectl create secret generic litellm-env -n ai "),
        "{cmd}"
    );
    assert_eq!(cmd.matches("kubectl").count(), 1);
    for name in expected.iter().filter(|n| *n != "MODELGATE_REDIS_URL") {
        assert!(
            cmd.contains(&format!("--from-literal={name}=\"${name}\"")),
            "{name}: {cmd}"
        );
    }
    assert!(
        cmd.contains(
            "--from-literal=MODELGATE_REDIS_URL=\"redis://:${REDIS_PASSWORD}@${REDIS_HOST}:${REDIS_PORT}\""
        ),
        "{cmd}"
    );

    // Every env reference points into the one env Secret, at a key the command fills.
    for d in &imported.deployments {
        if let Some(r) = api_key_ref(d)
            && r.name == "litellm-env"
        {
            assert!(expected.contains(&r.key), "{}", r.key);
        }
    }

    let none = import_str("model_list: []\n");
    assert_eq!(none.secret_command(), None);
}

#[test]
fn model_group_aliases_in_both_forms() {
    let imported = import(FIXTURE);
    let aliases: Vec<(&str, &str, Vec<&str>, Option<bool>)> = imported
        .aliases
        .iter()
        .map(|a| {
            (
                a.metadata.name.as_deref().unwrap_or_default(),
                a.spec.alias.as_str(),
                a.spec.targets.iter().map(|t| t.model.as_str()).collect(),
                a.spec.hidden,
            )
        })
        .collect();
    assert_eq!(
        aliases,
        vec![
            ("gpt-4", "gpt-4", vec!["gpt-4o"], None),
            ("gpt-4-turbo", "gpt-4-turbo", vec!["gpt-4o"], Some(true)),
            ("llama-3", "llama-3", vec!["llama-3.3-70b"], None),
        ]
    );

    // An alias may not shadow a model group; a missing target is warned about.
    let odd = import_str(
        "model_list:\n\
         - {model_name: gpt-4o, litellm_params: {model: openai/gpt-4o, api_key: os.environ/K}}\n\
         router_settings:\n  model_group_alias:\n    gpt-4o: gpt-4o-mini\n    gpt-5: nowhere\n    gpt-3: {hidden: true}\n",
    );
    assert_eq!(odd.aliases.len(), 1);
    assert_warned(&odd, &["model_group_alias.gpt-4o", "skipped", "shadow"]);
    assert_warned(&odd, &["model_group_alias.gpt-5", "nowhere"]);
    assert_warned(&odd, &["model_group_alias.gpt-3", "skipped"]);
}

#[test]
fn settings_are_mapped() {
    let imported = import(FIXTURE);
    let s = &imported.settings;
    assert_eq!(s.routing_strategy, Some(RoutingStrategy::UsageBased));
    assert_eq!(
        s.retries,
        Some(3),
        "router_settings wins over litellm_settings"
    );
    let timeouts = s.timeouts.clone().unwrap_or_default();
    assert_eq!(timeouts.request.as_deref(), Some("30s"));
    let cooldown = s.cooldown.clone().unwrap_or_default();
    assert_eq!(cooldown.allowed_fails, Some(3));
    assert_eq!(cooldown.cooldown_time.as_deref(), Some("30s"));
    assert_eq!(
        s.fallbacks,
        BTreeMap::from([
            ("gpt-4o".to_owned(), vec!["gpt-4o-mini".to_owned()]),
            ("llama-3.1-8b".to_owned(), vec!["llama-3.3-70b".to_owned()]),
        ])
    );
    assert_eq!(
        s.context_window_fallbacks,
        BTreeMap::from([("gpt-4o-mini".to_owned(), vec!["gpt-4o".to_owned()])])
    );
    assert_eq!(s.drop_params, Some(true));
    assert_eq!(
        s.redis_url.clone().map(|r| r.secret_key_ref),
        env_ref("MODELGATE_REDIS_URL")
    );
    assert!(s.master_key.is_some());

    // general_settings' background health checks apply to every deployment.
    for d in &imported.deployments {
        let h = d.spec.health_check.clone().unwrap_or_default();
        assert_eq!((h.enabled, h.interval.as_deref()), (Some(true), Some("5m")));
    }

    // The document reads back as RouterSettings.
    let text = imported.settings_yaml().unwrap_or_default();
    let back = RouterSettings::from_yaml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(&back, s);
}

#[test]
fn seconds_become_durations_and_strategies_map() {
    let imported = import_str(
        "router_settings:\n  timeout: 600\n  stream_timeout: 30\n  cooldown_time: 0.5\n\
         litellm_settings:\n  num_retries: 25\n  fallbacks: [{a: [b, c]}, {d: e}]\n",
    );
    let t = imported.settings.timeouts.clone().unwrap_or_default();
    assert_eq!(t.request.as_deref(), Some("10m"));
    let stream = t.stream.unwrap_or_default();
    assert_eq!(stream.first_byte.as_deref(), Some("30s"));
    let cooldown = imported.settings.cooldown.clone().unwrap_or_default();
    assert_eq!(cooldown.cooldown_time.as_deref(), Some("500ms"));
    assert_eq!(imported.settings.retries, Some(10));
    assert_warned(&imported, &["litellm_settings.num_retries", "10"]);
    assert_eq!(
        imported.settings.fallbacks,
        BTreeMap::from([
            ("a".to_owned(), vec!["b".to_owned(), "c".to_owned()]),
            ("d".to_owned(), vec!["e".to_owned()]),
        ])
    );

    for (litellm, modelgate) in [
        ("simple-shuffle", RoutingStrategy::SimpleShuffle),
        ("least-busy", RoutingStrategy::LeastBusy),
        ("usage-based-routing", RoutingStrategy::UsageBased),
        ("usage-based-routing-v2", RoutingStrategy::UsageBased),
        ("latency-based-routing", RoutingStrategy::LatencyBased),
        ("cost-based-routing", RoutingStrategy::LowestCost),
    ] {
        let i = import_str(&format!(
            "router_settings: {{routing_strategy: {litellm}}}\n"
        ));
        assert_eq!(i.settings.routing_strategy, Some(modelgate), "{litellm}");
    }
    let unknown = import_str("router_settings: {routing_strategy: provider-budget-routing}\n");
    assert_eq!(unknown.settings.routing_strategy, None);
    assert_warned(&unknown, &["routing_strategy", "provider-budget-routing"]);

    let latency = import_str(
        "router_settings: {routing_strategy: latency-based-routing, routing_strategy_args: {lowest_latency_buffer: 0.5, ttl: 10}}\n",
    );
    assert_eq!(latency.settings.latency_buffer, Some(0.5));
    assert_warned(&latency, &["routing_strategy_args.ttl", "not translated"]);
}

#[test]
fn malformed_input_is_a_clear_error() {
    let err = |yaml: &str| match convert(yaml, &Options::new(NS)) {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(e) => e,
    };
    assert!(matches!(err("model_list: [\n  - {"), ImportError::Yaml(_)));
    assert!(matches!(err(""), ImportError::Empty));
    assert!(matches!(
        err("- just\n- a list\n"),
        ImportError::WrongType { .. }
    ));
    let e = err("model_list: {model_name: gpt-4o}\n");
    assert!(
        matches!(&e, ImportError::WrongType { path, .. } if path == "model_list"),
        "{e}"
    );
    assert!(e.to_string().contains("model_list must be a list"), "{e}");
    let e = err("model_list:\n  - litellm_params: {model: openai/gpt-4o}\n");
    assert!(
        matches!(e, ImportError::MissingModelName { index: 0 }),
        "{e}"
    );
    assert_eq!(e.to_string(), "model_list[0] has no model_name");
    let e = err(
        "model_list:\n  - {model_name: a, litellm_params: {model: openai/a}}\n  - {model_name: b}\n",
    );
    assert!(
        matches!(e, ImportError::MissingModel { index: 1, .. }),
        "{e}"
    );
    assert!(matches!(
        err("model_list:\n  - 42\n"),
        ImportError::WrongType { .. }
    ));
    assert!(matches!(
        err("model_list:\n  - {model_name: a, litellm_params: [x]}\n"),
        ImportError::WrongType { .. }
    ));
    let bad_ns = convert("model_list: []\n", &Options::new("Not_A_Namespace"));
    assert!(matches!(bad_ns, Err(ImportError::InvalidOption { .. })));
}

#[test]
fn entries_that_cannot_be_made_valid_are_skipped_with_a_warning() {
    let imported = import_str(
        r#"
model_list:
  - model_name: azure-no-base
    litellm_params: {model: azure/gpt-4o, api_key: os.environ/AZURE_API_KEY}
  - model_name: vllm-no-base
    litellm_params: {model: hosted_vllm/llama}
  - model_name: "*"
    litellm_params: {model: "*"}
  - model_name: "openai/gpt-4*"
    litellm_params: {model: "openai/gpt-4*", api_key: os.environ/OPENAI_API_KEY}
  - model_name: azure-env-base
    litellm_params: {model: azure/dep, api_base: os.environ/MY_AZURE_BASE, api_key: os.environ/AZURE_API_KEY}
  - model_name: bad-values
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/OPENAI_API_KEY
      rpm: lots
      tpm: 0
      order: 0
      timeout: -1
      num_retries: 99
      extra_headers: [not, a, mapping]
    model_info: [not, a, mapping]
  - model_name: mixed-aws
    litellm_params:
      model: bedrock/anthropic.claude-3-haiku
      aws_region_name: us-east-1
      aws_access_key_id: os.environ/AWS_ACCESS_KEY_ID
      aws_secret_access_key: literal-secret
"#,
    );
    assert_eq!(names(&imported), ["bad-values"]);
    assert_warned(
        &imported,
        &["model_list[0] (azure-no-base)", "skipped", "api_base"],
    );
    assert_warned(
        &imported,
        &["model_list[1] (vllm-no-base)", "skipped", "api_base"],
    );
    assert_warned(&imported, &["model_list[2] (*)", "skipped", "catch-all"]);
    assert_warned(
        &imported,
        &["model_list[3] (openai/gpt-4*)", "skipped", "provider/*"],
    );
    assert_warned(
        &imported,
        &["model_list[4] (azure-env-base)", "MY_AZURE_BASE"],
    );
    assert_warned(&imported, &["model_list[4] (azure-env-base)", "skipped"]);
    assert_warned(
        &imported,
        &["model_list[6] (mixed-aws)", "skipped", "one Secret"],
    );
    for field in ["rpm", "tpm", "order", "timeout", "extra_headers"] {
        assert_warned(
            &imported,
            &[
                "model_list[5] (bad-values)",
                &format!("litellm_params.{field}"),
            ],
        );
    }
    assert_warned(&imported, &["model_list[5] (bad-values)", "model_info"]);
    let d = deployment(&imported, "bad-values");
    assert_eq!(d.spec.routing.clone().unwrap_or_default().retries, Some(10));
    assert_eq!(d.spec.limits, None);
    assert!(
        !imported
            .warnings
            .iter()
            .any(|w| w.contains("literal-secret"))
    );
    assert!(
        imported.secrets.is_empty(),
        "nothing stored for a skipped entry"
    );
    assert_eq!(
        imported.required_env,
        BTreeSet::from(["OPENAI_API_KEY".to_owned()]),
        "only the kept entry's key is asked for"
    );

    // A literal key of an entry that is then skipped is not kept either.
    let skipped = import_str(
        "model_list:\n  - {model_name: 'bad name', litellm_params: {model: openai/x, api_key: sk-skipped-literal}}\n",
    );
    assert!(skipped.deployments.is_empty() && skipped.secrets.is_empty());
    assert!(
        !skipped
            .warnings
            .iter()
            .any(|w| w.contains("moved into Secret"))
    );
    assert_warned(
        &skipped,
        &["model_list[0] (bad name)", "skipped", "whitespace"],
    );
}

#[test]
fn custom_llm_provider_bare_models_and_ollama_defaults() {
    let imported = import_str(
        r#"
model_list:
  - {model_name: local, litellm_params: {model: llama3, custom_llm_provider: ollama, api_base: "http://ollama:11434/"}}
  - {model_name: laptop, litellm_params: {model: ollama/llama3}}
  - {model_name: mystery, litellm_params: {model: some-model}}
  - {model_name: instruct, litellm_params: {model: text-completion-openai/gpt-3.5-turbo-instruct, api_key: os.environ/K}}
"#,
    );
    let local = deployment(&imported, "local");
    assert_eq!(local.spec.upstream.provider, Provider::OpenaiCompatible);
    assert_eq!(local.spec.upstream.model.as_deref(), Some("llama3"));
    assert_eq!(
        local.spec.upstream.api_base.as_deref(),
        Some("http://ollama:11434/v1")
    );
    let laptop = deployment(&imported, "laptop");
    assert_eq!(
        laptop.spec.upstream.api_base.as_deref(),
        Some("http://localhost:11434/v1")
    );
    assert_warned(&imported, &["model_list[1] (laptop)", "localhost"]);
    let mystery = deployment(&imported, "mystery");
    assert_eq!(mystery.spec.upstream.provider, Provider::Openai);
    assert_eq!(api_key_ref(mystery), env_ref("OPENAI_API_KEY"));
    assert_warned(
        &imported,
        &["model_list[2] (mystery)", "no provider prefix", "openai"],
    );
    assert_warned(
        &imported,
        &["model_list[2] (mystery)", "no api_key", "OPENAI_API_KEY"],
    );
    let instruct = deployment(&imported, "instruct");
    assert_eq!(instruct.spec.upstream.provider, Provider::Openai);
    assert_eq!(
        instruct.spec.model_info.clone().unwrap_or_default().mode,
        Some(Mode::Completion)
    );
}

#[test]
fn non_secret_env_references_resolve_from_the_import_environment() {
    let yaml = "model_list:\n  - model_name: gpt-4o\n    litellm_params:\n      model: azure/dep\n      api_base: os.environ/MY_AZURE_BASE\n      api_key: os.environ/AZURE_API_KEY\n      rpm: os.environ/RPM\n";
    let mut opts = Options::new(NS);
    opts.env
        .insert("MY_AZURE_BASE".into(), "https://x.openai.azure.com".into());
    opts.env.insert("RPM".into(), "100".into());
    opts.env.insert("AZURE_API_KEY".into(), "never-read".into());
    opts.env
        .insert("AZURE_API_VERSION".into(), "2024-06-01".into());
    let imported = convert(yaml, &opts).unwrap_or_else(|e| panic!("{e}"));
    let d = deployment(&imported, "gpt-4o");
    assert_eq!(
        d.spec.upstream.api_base.as_deref(),
        Some("https://x.openai.azure.com")
    );
    assert_eq!(d.spec.upstream.api_version.as_deref(), Some("2024-06-01"));
    assert_eq!(d.spec.limits.clone().unwrap_or_default().rpm, Some(100));
    assert_eq!(
        api_key_ref(d),
        env_ref("AZURE_API_KEY"),
        "secrets never resolve"
    );
    assert!(!format!("{imported:?} {opts:?}").contains("never-read"));
    assert_warned(
        &imported,
        &[
            "litellm_params.api_base",
            "MY_AZURE_BASE",
            "environment of the import",
        ],
    );
}

#[test]
fn weights_follow_litellm_within_a_priority_tier() {
    let imported = import_str(
        r#"
model_list:
  - {model_name: m, litellm_params: {model: openai/a, api_key: os.environ/K, weight: 0.7}}
  - {model_name: m, litellm_params: {model: openai/b, api_key: os.environ/K, weight: 0.3}}
  - {model_name: m, litellm_params: {model: openai/c, api_key: os.environ/K}}
  - {model_name: m, litellm_params: {model: openai/d, api_key: os.environ/K, order: 2}}
"#,
    );
    let weights: Vec<Option<i64>> = imported
        .deployments
        .iter()
        .map(|d| d.spec.routing.clone().unwrap_or_default().weight)
        .collect();
    assert_eq!(weights, [Some(700), Some(300), Some(0), None]);
    assert_eq!(names(&imported), ["m-1", "m-2", "m-3", "m-4"]);
    assert_warned(&imported, &["model group m", "scaled by 1000"]);
    assert_warned(&imported, &["model_list[2] (m)", "weight 0"]);
}

#[test]
fn literal_redis_settings_become_one_url_in_the_literal_secret() {
    let imported = import_str(
        "router_settings: {redis_host: redis.cache.svc, redis_port: 6380, redis_password: 'p@ss:word'}\n",
    );
    let r = imported
        .settings
        .redis_url
        .clone()
        .map(|r| r.secret_key_ref);
    assert_eq!(
        r.as_ref().map(|r| r.name.as_str()),
        Some("litellm-imported-keys")
    );
    let data = imported.secrets[0].string_data.clone().unwrap_or_default();
    assert_eq!(
        data.get("redis-url").map(String::as_str),
        Some("redis://:p%40ss%3Aword@redis.cache.svc:6380")
    );
    assert!(!imported.warnings.iter().any(|w| w.contains("p@ss")));

    let url = import_str("router_settings: {redis_url: os.environ/REDIS_URL}\n");
    assert_eq!(
        url.settings.redis_url.map(|r| r.secret_key_ref),
        env_ref("REDIS_URL")
    );
}

#[test]
fn output_is_deterministic() {
    let a = import(FIXTURE);
    let b = import(FIXTURE);
    assert_eq!(a.to_yaml_stream().ok(), b.to_yaml_stream().ok());
    assert_eq!(a.warnings, b.warnings);
}

/// The env Secret filled with a dummy value per key, plus the emitted Secrets.
fn secrets_for(imported: &Imported) -> SecretStore {
    let mut store = SecretStore::new();
    let env: BTreeMap<String, Vec<u8>> = imported
        .required_env
        .iter()
        .map(|k| {
            let value = if k.contains("REDIS_URL") {
                "redis://:dummy@redis.ai.svc:6379".to_owned()
            } else {
                format!("dummy-{k}")
            };
            (k.clone(), value.into_bytes())
        })
        .collect();
    store.insert(NS, imported.env_secret.clone(), env);
    for s in &imported.secrets {
        store.insert_secret(s, NS);
    }
    store
}

#[test]
fn the_imported_fixture_compiles_without_diagnostics() {
    let imported = import(FIXTURE);
    // Through the manifest loader, as `local` and `check` read the stream.
    let mut manifests = Manifests::default();
    let stream = imported.to_yaml_stream().unwrap_or_else(|e| panic!("{e}"));
    manifests
        .add_str(Path::new("imported.yaml"), &stream)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(manifests.deployments.len(), imported.deployments.len());
    assert_eq!(manifests.aliases.len(), imported.aliases.len());
    assert_eq!(manifests.settings.as_ref(), Some(&imported.settings));

    let secrets = secrets_for(&imported);
    let compiled = compile(
        &Inputs {
            deployments: &manifests.deployments,
            aliases: &manifests.aliases,
            secrets: &secrets,
            settings: &imported.settings,
            settings_namespace: NS,
        },
        1,
    );
    let diags: Vec<String> = compiled
        .diagnostics
        .iter()
        .flat_map(|(k, ds)| ds.iter().map(move |d| format!("{k}: {d}")))
        .collect();
    assert!(diags.is_empty(), "diagnostics:\n{}", diags.join("\n"));
    assert_eq!(compiled.table.deployments.len(), imported.deployments.len());
    assert_eq!(compiled.table.aliases.len(), imported.aliases.len());
}

#[test]
fn providers_the_data_plane_does_not_serve_yet_are_emitted_and_reported() {
    let imported = import(UNSERVED);
    let providers: Vec<(&str, Provider)> = imported
        .deployments
        .iter()
        .map(|d| {
            (
                d.metadata.name.as_deref().unwrap_or_default(),
                d.spec.upstream.provider,
            )
        })
        .collect();
    assert_eq!(
        providers,
        [
            ("claude-3-5-sonnet", Provider::Anthropic),
            ("claude-3-haiku", Provider::Anthropic),
            ("gemini-1-5-pro", Provider::Gemini),
            ("bedrock-claude", Provider::Bedrock),
            ("bedrock-llama", Provider::Bedrock),
        ]
    );
    for d in &imported.deployments {
        assert!(d.spec.validate().is_empty(), "{:?}", d.spec.validate());
    }
    // A bare claude-* model: anthropic, with the key LiteLLM would read.
    assert_eq!(
        api_key_ref(deployment(&imported, "claude-3-haiku")),
        env_ref("ANTHROPIC_API_KEY")
    );
    let bedrock = deployment(&imported, "bedrock-claude");
    assert_eq!(bedrock.spec.upstream.region.as_deref(), Some("us-east-1"));
    let creds = bedrock
        .spec
        .upstream
        .credentials
        .clone()
        .unwrap_or_default();
    assert_eq!(creds.secret_name.as_deref(), Some("litellm-env"));
    let keys = creds.keys.unwrap_or_default();
    assert_eq!(keys.access_key_id.as_deref(), Some("AWS_ACCESS_KEY_ID"));
    assert_eq!(
        keys.secret_access_key.as_deref(),
        Some("AWS_SECRET_ACCESS_KEY")
    );
    assert_eq!(keys.session_token.as_deref(), Some("AWS_SESSION_TOKEN"));
    let literal = deployment(&imported, "bedrock-llama");
    assert_eq!(
        literal.spec.upstream.model.as_deref(),
        Some("meta.llama3-70b-instruct-v1:0"),
        "converse/ is Bedrock's route, not part of the model id"
    );
    assert_eq!(literal.spec.upstream.region.as_deref(), Some("eu-west-1"));
    let creds = literal
        .spec
        .upstream
        .credentials
        .clone()
        .unwrap_or_default();
    assert_eq!(creds.secret_name.as_deref(), Some("litellm-imported-keys"));
    let stored: BTreeSet<String> = imported.secrets[0]
        .string_data
        .clone()
        .unwrap_or_default()
        .into_values()
        .collect();
    assert!(
        stored.contains("AKIALITERALEXAMPLE01") && stored.contains("literal-aws-secret-access-key")
    );
    let public = imported
        .deployments
        .iter()
        .map(|d| serde_yaml::to_string(d).unwrap_or_default())
        .collect::<String>();
    assert!(
        !public.contains("AKIALITERALEXAMPLE01")
            && !public.contains("literal-aws-secret-access-key")
    );

    let secrets = secrets_for(&imported);
    let compiled = compile(
        &Inputs {
            deployments: &imported.deployments,
            aliases: &imported.aliases,
            secrets: &secrets,
            settings: &imported.settings,
            settings_namespace: NS,
        },
        1,
    );
    for d in &imported.deployments {
        let name = d.metadata.name.clone().unwrap_or_default();
        let key = ObjectKey::new(Kind::ModelDeployment, NS, name.as_str());
        let first = compiled.diagnostics.first_error(&key);
        // Every provider is served: each imported deployment (Bedrock's AWS keys and
        // region, Gemini's key included) compiles without an error.
        assert_eq!(
            first.map(|d| d.reason),
            None::<Reason>,
            "{name}: {:?}",
            compiled.diagnostics.of(&key)
        );
    }
}

#[test]
fn run_writes_resources_and_settings_into_the_output_dir() {
    let dir = std::env::temp_dir().join(format!("modelgate-import-litellm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let args = LitellmArgs {
        file: fixture_path(FIXTURE),
        namespace: NS.to_owned(),
        env_secret: "team-env".to_owned(),
        output_dir: Some(dir.clone()),
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    run_with(&args, &mut stdout, &mut stderr).unwrap_or_else(|e| panic!("{e:#}"));
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(
        stdout.is_empty(),
        "with --output-dir nothing goes to stdout"
    );
    assert!(
        stderr.contains("kubectl create secret generic team-env -n ai"),
        "{stderr}"
    );
    assert!(stderr.contains("resources.yaml"), "{stderr}");
    let resources = std::fs::read_to_string(dir.join("resources.yaml")).unwrap_or_default();
    let settings = std::fs::read_to_string(dir.join("settings.yaml")).unwrap_or_default();
    assert!(!resources.contains("kind: RouterSettings"));
    assert!(resources.contains("kind: Secret") && resources.contains("kind: ModelDeployment"));
    assert!(
        resources.contains("name: team-env"),
        "--env-secret names the env Secret"
    );
    let parsed = RouterSettings::from_yaml(&settings).unwrap_or_else(|e| panic!("{e}"));
    assert!(parsed.validate().is_empty());
    let loaded = Manifests::load(std::slice::from_ref(&dir)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.deployments.len(), 20);
    assert!(loaded.settings.is_some());
    let _ = std::fs::remove_dir_all(&dir);

    let missing = LitellmArgs {
        file: fixture_path("does-not-exist.yaml"),
        ..args
    };
    let err = run_with(&missing, &mut Vec::new(), &mut Vec::new());
    assert!(err.is_err_and(|e| format!("{e:#}").contains("does-not-exist.yaml")));
}

#[test]
fn the_binary_imports_the_fixture() {
    let out = Command::new(env!("CARGO_BIN_EXE_modelgate-operator"))
        .args(["import", "litellm", "-n", NS])
        .arg(fixture_path(FIXTURE))
        .output()
        .unwrap_or_else(|e| panic!("cannot run the binary: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\n{stderr}", out.status);
    let mut kinds = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&stdout) {
        let v = <serde_yaml::Value as serde::Deserialize>::deserialize(doc)
            .unwrap_or_else(|e| panic!("stdout is not YAML: {e}"));
        kinds.push(
            v.get("kind")
                .and_then(|k| k.as_str())
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(kinds.first().map(String::as_str), Some("Secret"));
    assert_eq!(kinds.last().map(String::as_str), Some("RouterSettings"));
    assert_eq!(kinds.iter().filter(|k| *k == "ModelDeployment").count(), 20);
    assert_eq!(kinds.iter().filter(|k| *k == "ModelGroupAlias").count(), 3);
    assert!(
        stderr.contains("kubectl create secret generic litellm-env -n ai"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--from-literal=OPENAI_API_KEY=\"$OPENAI_API_KEY\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: model_list[20] (command-r-plus): skipped"),
        "{stderr}"
    );
    for literal in LITERALS {
        assert!(!stderr.contains(literal), "{literal} on stderr");
    }

    let dir = std::env::temp_dir().join(format!("modelgate-import-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "model_list:\n  - litellm_params: {model: openai/x}\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_modelgate-operator"))
        .args(["import", "litellm"])
        .arg(&bad)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the binary: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("model_list[0] has no model_name"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

mod arbitrary_input {
    //! Any YAML shaped roughly like a LiteLLM config: the import never panics, and whatever
    //! it emits is valid.

    use proptest::prelude::*;
    use serde_yaml::{Mapping, Value};

    use super::*;

    const WORDS: [&str; 24] = [
        "openai/gpt-4o",
        "azure/dep",
        "groq/*",
        "openai/*",
        "*",
        "gpt-4o",
        "claude-3",
        "bedrock/converse/x",
        "ollama/llama3",
        "cohere/x",
        "os.environ/KEY",
        "os.environ/bad-name",
        "sk-literal",
        "https://a.example/v1",
        "not a url",
        "us-east-1",
        "600",
        "0.5",
        "",
        "a b",
        "true",
        "simple-shuffle",
        "latency-based-routing",
        "chat",
    ];
    const KEYS: [&str; 40] = [
        "model",
        "api_base",
        "api_key",
        "api_version",
        "aws_region_name",
        "region_name",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "rpm",
        "tpm",
        "max_parallel_requests",
        "timeout",
        "stream_timeout",
        "weight",
        "order",
        "max_retries",
        "num_retries",
        "extra_headers",
        "headers",
        "organization",
        "custom_llm_provider",
        "mode",
        "base_model",
        "max_tokens",
        "max_input_tokens",
        "input_cost_per_token",
        "supports_reasoning",
        "routing_strategy",
        "model_group_alias",
        "fallbacks",
        "context_window_fallbacks",
        "cooldown_time",
        "allowed_fails",
        "redis_host",
        "redis_password",
        "redis_url",
        "master_key",
        "drop_params",
        "unknown_key",
    ];

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| Value::Number(n.into())),
            (-1e6f64..1e6).prop_map(|f| Value::Number(f.into())),
            prop::sample::select(WORDS.to_vec()).prop_map(|s| Value::String(s.to_owned())),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Sequence),
                prop::collection::vec((prop::sample::select(KEYS.to_vec()), inner), 0..4).prop_map(
                    |kv| {
                        Value::Mapping(
                            kv.into_iter()
                                .map(|(k, v)| (Value::String(k.to_owned()), v))
                                .collect::<Mapping>(),
                        )
                    }
                ),
            ]
        })
    }

    fn section() -> impl Strategy<Value = Value> {
        prop::collection::btree_map(prop::sample::select(KEYS.to_vec()), value(), 0..6).prop_map(
            |m| {
                Value::Mapping(
                    m.into_iter()
                        .map(|(k, v)| (Value::String(k.to_owned()), v))
                        .collect(),
                )
            },
        )
    }

    fn entry() -> impl Strategy<Value = Value> {
        (
            prop::sample::select(WORDS.to_vec()),
            prop::sample::select(WORDS.to_vec()),
            section(),
            section(),
        )
            .prop_map(|(name, model, params, info)| {
                let mut params = match params {
                    Value::Mapping(m) => m,
                    _ => Mapping::new(),
                };
                params.insert("model".into(), Value::String(model.to_owned()));
                let mut e = Mapping::new();
                e.insert("model_name".into(), Value::String(name.to_owned()));
                e.insert("litellm_params".into(), Value::Mapping(params));
                e.insert("model_info".into(), info);
                Value::Mapping(e)
            })
    }

    fn config() -> impl Strategy<Value = Value> {
        (
            prop::collection::vec(entry(), 0..6),
            section(),
            section(),
            section(),
            section(),
        )
            .prop_map(|(models, router, litellm, general, env)| {
                let mut m = Mapping::new();
                m.insert("model_list".into(), Value::Sequence(models));
                m.insert("router_settings".into(), router);
                m.insert("litellm_settings".into(), litellm);
                m.insert("general_settings".into(), general);
                m.insert("environment_variables".into(), env);
                Value::Mapping(m)
            })
    }

    proptest! {
        #[test]
        fn never_panics_and_emits_only_valid_resources(cfg in config()) {
            let yaml = serde_yaml::to_string(&cfg).unwrap_or_default();
            if let Ok(imported) = convert(&yaml, &Options::new(NS)) {
                for d in &imported.deployments {
                    prop_assert!(d.spec.validate().is_empty(), "{:?}\n{yaml}", d.spec.validate());
                }
                for a in &imported.aliases {
                    prop_assert!(a.spec.validate().is_empty(), "{:?}\n{yaml}", a.spec.validate());
                }
                prop_assert!(imported.settings.validate().is_empty(), "{yaml}");
                let stream = imported.to_yaml_stream();
                prop_assert!(stream.is_ok());
                let mut manifests = Manifests::default();
                prop_assert!(
                    manifests.add_str(Path::new("x.yaml"), &stream.unwrap_or_default()).is_ok()
                );
            }
        }
    }
}
