//! LiteLLM provider prefixes (`openai/`, `azure/`, `groq/`, …) and the Modelgate provider
//! each one becomes. Hosted OpenAI-compatible services become `openai-compatible` with
//! their public endpoint; a prefix not listed here is not served by Modelgate.

use modelgate_crds::Provider;

/// How one LiteLLM provider prefix is imported.
#[derive(Debug)]
pub(super) struct ProviderSpec {
    /// The LiteLLM prefix, e.g. `together_ai`.
    pub prefix: &'static str,
    /// The Modelgate provider.
    pub provider: Provider,
    /// The public endpoint, for hosted OpenAI-compatible services.
    pub default_base: Option<&'static str>,
    /// Variable LiteLLM reads the endpoint from when `api_base` is unset.
    pub base_env: Option<&'static str>,
    /// Variable LiteLLM reads the API key from when `api_key` is unset.
    pub key_env: Option<&'static str>,
}

const fn spec(
    prefix: &'static str,
    provider: Provider,
    default_base: Option<&'static str>,
    base_env: Option<&'static str>,
    key_env: Option<&'static str>,
) -> ProviderSpec {
    ProviderSpec {
        prefix,
        provider,
        default_base,
        base_env,
        key_env,
    }
}

use Provider::{Anthropic, Azure, Bedrock, Gemini, Openai, OpenaiCompatible};

/// Every LiteLLM prefix Modelgate serves. Columns: prefix, provider, public endpoint,
/// the variable LiteLLM reads the endpoint from, the variable it reads the key from.
#[rustfmt::skip]
pub(super) const PROVIDERS: &[ProviderSpec] = &[
    spec("openai",                  Openai,            None,                                           Some("OPENAI_API_BASE"),         Some("OPENAI_API_KEY")),
    spec("text-completion-openai",  Openai,            None,                                           Some("OPENAI_API_BASE"),         Some("OPENAI_API_KEY")),
    spec("azure",                   Azure,             None,                                           Some("AZURE_API_BASE"),          Some("AZURE_API_KEY")),
    spec("anthropic",               Anthropic,         None,                                           None,                            Some("ANTHROPIC_API_KEY")),
    spec("gemini",                  Gemini,            None,                                           None,                            Some("GEMINI_API_KEY")),
    spec("bedrock",                 Bedrock,           None,                                           None,                            None),
    spec("hosted_vllm",             OpenaiCompatible,  None,                                           Some("HOSTED_VLLM_API_BASE"),    None),
    spec("ollama",                  OpenaiCompatible,  Some(OLLAMA_BASE),                              Some("OLLAMA_API_BASE"),         None),
    spec("ollama_chat",             OpenaiCompatible,  Some(OLLAMA_BASE),                              Some("OLLAMA_API_BASE"),         None),
    spec("lm_studio",               OpenaiCompatible,  None,                                           Some("LM_STUDIO_API_BASE"),      None),
    spec("custom_openai",           OpenaiCompatible,  None,                                           None,                            None),
    spec("litellm_proxy",           OpenaiCompatible,  None,                                           Some("LITELLM_PROXY_API_BASE"),  Some("LITELLM_PROXY_API_KEY")),
    spec("groq",                    OpenaiCompatible,  Some("https://api.groq.com/openai/v1"),         None,                            Some("GROQ_API_KEY")),
    spec("together_ai",             OpenaiCompatible,  Some("https://api.together.xyz/v1"),            None,                            Some("TOGETHERAI_API_KEY")),
    spec("deepseek",                OpenaiCompatible,  Some("https://api.deepseek.com/v1"),            None,                            Some("DEEPSEEK_API_KEY")),
    spec("mistral",                 OpenaiCompatible,  Some("https://api.mistral.ai/v1"),              None,                            Some("MISTRAL_API_KEY")),
    spec("fireworks_ai",            OpenaiCompatible,  Some("https://api.fireworks.ai/inference/v1"),  None,                            Some("FIREWORKS_AI_API_KEY")),
    spec("xai",                     OpenaiCompatible,  Some("https://api.x.ai/v1"),                    None,                            Some("XAI_API_KEY")),
    spec("openrouter",              OpenaiCompatible,  Some("https://openrouter.ai/api/v1"),           None,                            Some("OPENROUTER_API_KEY")),
    spec("deepinfra",               OpenaiCompatible,  Some("https://api.deepinfra.com/v1/openai"),    None,                            Some("DEEPINFRA_API_KEY")),
    spec("perplexity",              OpenaiCompatible,  Some("https://api.perplexity.ai"),              None,                            Some("PERPLEXITYAI_API_KEY")),
    spec("cerebras",                OpenaiCompatible,  Some("https://api.cerebras.ai/v1"),             None,                            Some("CEREBRAS_API_KEY")),
    spec("sambanova",               OpenaiCompatible,  Some("https://api.sambanova.ai/v1"),            None,                            Some("SAMBANOVA_API_KEY")),
    spec("nvidia_nim",              OpenaiCompatible,  Some("https://integrate.api.nvidia.com/v1"),    None,                            Some("NVIDIA_NIM_API_KEY")),
];

/// Where LiteLLM finds Ollama when `api_base` is unset.
pub(super) const OLLAMA_BASE: &str = "http://localhost:11434";

/// Host of OpenAI's own API: `openai/` with any other `api_base` is OpenAI-compatible.
pub(super) const OPENAI_HOST: &str = "api.openai.com";

/// What a `litellm_params.model` resolves to.
#[derive(Debug)]
pub(super) enum Resolved {
    /// A provider Modelgate serves, and the model id to send it.
    Served {
        /// How the prefix is imported.
        spec: &'static ProviderSpec,
        /// The upstream model id (the part after the prefix).
        model: String,
        /// True when the model had no prefix and the provider was guessed from its name.
        inferred: bool,
    },
    /// A provider Modelgate does not serve.
    Unsupported {
        /// The LiteLLM provider prefix.
        prefix: String,
    },
}

fn find(prefix: &str) -> Option<&'static ProviderSpec> {
    PROVIDERS.iter().find(|p| p.prefix == prefix)
}

/// Resolves `litellm_params.model` (and `custom_llm_provider`, which LiteLLM lets override
/// the prefix).
pub(super) fn resolve(model: &str, custom_llm_provider: Option<&str>) -> Resolved {
    let (prefix, rest, inferred) = match (custom_llm_provider, model.split_once('/')) {
        (Some(p), _) => {
            let rest = model
                .strip_prefix(p)
                .and_then(|r| r.strip_prefix('/'))
                .unwrap_or(model);
            (p.to_owned(), rest, false)
        }
        (None, Some((prefix, rest))) => (prefix.to_owned(), rest, false),
        (None, None) => (infer(model).to_owned(), model, true),
    };
    match find(&prefix) {
        Some(spec) => Resolved::Served {
            spec,
            model: rest.to_owned(),
            inferred,
        },
        None => Resolved::Unsupported { prefix },
    }
}

/// LiteLLM's guess for a model without a prefix, for the providers Modelgate serves.
fn infer(model: &str) -> &'static str {
    let m = model.to_ascii_lowercase();
    if m.starts_with("claude") {
        "anthropic"
    } else if m.starts_with("gemini") {
        "gemini"
    } else {
        "openai"
    }
}

/// True for names OpenAI serves, so that guessing `openai` for them needs no warning.
pub(super) fn looks_like_openai(model: &str) -> bool {
    const PREFIXES: [&str; 14] = [
        "gpt-",
        "gpt4",
        "o1",
        "o3",
        "o4",
        "chatgpt",
        "text-embedding-",
        "dall-e",
        "whisper",
        "tts-",
        "davinci",
        "babbage",
        "omni-moderation",
        "ft:gpt",
    ];
    let m = model.to_ascii_lowercase();
    PREFIXES.iter().any(|p| m.starts_with(p))
}

/// The host of a URL (`https://host:port/path` → `host`), lowercased.
pub(super) fn host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        host_port.split_inclusive(']').next().unwrap_or(host_port)
    } else {
        host_port.split(':').next().unwrap_or(host_port)
    };
    host.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(model: &str) -> (Provider, String, bool) {
        match resolve(model, None) {
            Resolved::Served {
                spec,
                model,
                inferred,
            } => (spec.provider, model, inferred),
            Resolved::Unsupported { prefix } => panic!("{model}: unsupported {prefix}"),
        }
    }

    #[test]
    fn prefixes() {
        assert_eq!(served("openai/gpt-4o"), (Openai, "gpt-4o".into(), false));
        assert_eq!(served("azure/my-dep"), (Azure, "my-dep".into(), false));
        assert_eq!(
            served("groq/llama-3.1-8b-instant"),
            (OpenaiCompatible, "llama-3.1-8b-instant".into(), false)
        );
        assert_eq!(
            served("openrouter/anthropic/claude-3.5-sonnet"),
            (
                OpenaiCompatible,
                "anthropic/claude-3.5-sonnet".into(),
                false
            )
        );
        assert_eq!(served("gpt-4o"), (Openai, "gpt-4o".into(), true));
        assert_eq!(
            served("claude-3-haiku"),
            (Anthropic, "claude-3-haiku".into(), true)
        );
        assert_eq!(
            served("gemini-1.5-pro"),
            (Gemini, "gemini-1.5-pro".into(), true)
        );
        for unsupported in [
            "cohere/command-r",
            "vertex_ai/gemini-pro",
            "replicate/x",
            "meta-llama/Llama-3",
        ] {
            assert!(
                matches!(resolve(unsupported, None), Resolved::Unsupported { .. }),
                "{unsupported}"
            );
        }
        assert!(matches!(
            resolve("llama3", Some("ollama")),
            Resolved::Served {
                spec: ProviderSpec {
                    prefix: "ollama",
                    ..
                },
                ..
            }
        ));
    }

    #[test]
    fn hosts() {
        assert_eq!(host("https://api.openai.com/v1"), "api.openai.com");
        assert_eq!(host("http://user:pw@VLLM:8000/v1"), "vllm");
        assert_eq!(host("http://[::1]:8000"), "[::1]");
    }
}
