//! `ModelDeployment`: one upstream deployment of a model (LiteLLM: one `model_list` entry).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    Condition, DURATION_MESSAGE, DURATION_RULE, MAX_DURATION, MAX_HEADER_NAME, MAX_HEADER_VALUE,
    MAX_HEADERS, MAX_MOCK_RESPONSE, MAX_MODEL_NAME, MAX_OBJECT_NAME, MAX_SECRET_KEY,
    MAX_SHORT_TEXT, MAX_URL, SecretKeySelector, URL_MESSAGE, URL_RULE,
};
use crate::rules::{self, FieldError};

/// One upstream deployment of a model. Every `ModelDeployment` with the same `spec.model`
/// forms a model group: requests for that model are load-balanced across them.
#[allow(clippy::duplicated_attributes)] // printcolumn(type_ = "string") repeats by design
#[derive(CustomResource, KubeSchema, Clone, Debug, Deserialize, Serialize, PartialEq)]
#[kube(
    group = "modelgate.dev",
    version = "v1alpha1",
    kind = "ModelDeployment",
    doc = "One upstream deployment of a model; deployments with the same spec.model form a model group.",
    plural = "modeldeployments",
    namespaced,
    status = "ModelDeploymentStatus",
    shortname = "md",
    category = "modelgate",
    printcolumn(
        name = "Model",
        type_ = "string",
        json_path = ".spec.model",
        description = "Public model name clients send"
    ),
    printcolumn(
        name = "Provider",
        type_ = "string",
        json_path = ".spec.upstream.provider",
        description = "Upstream provider"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Every data-plane pod serves this generation"
    ),
    printcolumn(
        name = "Healthy",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Healthy\")].status",
        description = "The upstream answers health checks"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(rules::WILDCARD_UPSTREAM_RULE).message(rules::WILDCARD_UPSTREAM_MESSAGE))]
pub struct ModelDeploymentSpec {
    /// Public model name clients send in the `model` field (LiteLLM `model_name`). All
    /// deployments with the same name form one model group. `provider/*` is a wildcard
    /// group: a request for `provider/x` is served with `x` as the upstream model.
    #[x_kube(validation = kube::core::Rule::new(rules::MODEL_NAME_RULE).message(rules::MODEL_NAME_MESSAGE))]
    #[x_kube(validation = kube::core::Rule::new(rules::WILDCARD_RULE).message(rules::WILDCARD_MESSAGE))]
    #[schemars(length(max = MAX_MODEL_NAME))]
    pub model: String,

    /// Where requests for this deployment go.
    pub upstream: Upstream,

    /// Rate and concurrency limits of this deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,

    /// Timeouts for requests to this deployment; router defaults apply when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,

    /// How this deployment takes part in load balancing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<Routing>,

    /// What the model is and costs; shown by `/model/info` and used by routing strategies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_info: Option<ModelInfo>,

    /// Active health checking of this deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
}

/// The upstream provider of a deployment.
#[derive(
    Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    /// Canned answers with a configurable delay, for demos and load tests; needs no key.
    Mock,
    /// The OpenAI API.
    Openai,
    /// Any server speaking the OpenAI API (vLLM, Ollama, TGI, Groq, …); needs `apiBase`.
    OpenaiCompatible,
    /// Azure OpenAI; needs `apiBase` and `apiVersion`.
    Azure,
    /// Anthropic's Messages API.
    Anthropic,
    /// Google's Gemini API.
    Gemini,
    /// AWS Bedrock (Converse); needs `region`.
    Bedrock,
}

impl Provider {
    /// Every provider, in declaration order.
    pub const ALL: [Provider; 7] = [
        Provider::Mock,
        Provider::Openai,
        Provider::OpenaiCompatible,
        Provider::Azure,
        Provider::Anthropic,
        Provider::Gemini,
        Provider::Bedrock,
    ];

    /// The name used in manifests and in the routing table (`openai-compatible`).
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Mock => "mock",
            Provider::Openai => "openai",
            Provider::OpenaiCompatible => "openai-compatible",
            Provider::Azure => "azure",
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
            Provider::Bedrock => "bedrock",
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where requests for a deployment go and how they authenticate.
#[derive(Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(rules::AZURE_RULE).message(rules::AZURE_MESSAGE))]
#[x_kube(validation = kube::core::Rule::new(rules::BEDROCK_REGION_RULE).message(rules::BEDROCK_REGION_MESSAGE))]
#[x_kube(validation = kube::core::Rule::new(rules::COMPATIBLE_BASE_RULE).message(rules::COMPATIBLE_BASE_MESSAGE))]
#[x_kube(validation = kube::core::Rule::new(rules::API_KEY_RULE).message(rules::API_KEY_MESSAGE))]
#[x_kube(validation = kube::core::Rule::new(rules::BEDROCK_KEYS_RULE).message(rules::BEDROCK_KEYS_MESSAGE))]
#[x_kube(validation = kube::core::Rule::new(rules::MOCK_ONLY_RULE).message(rules::MOCK_ONLY_MESSAGE))]
pub struct Upstream {
    /// The provider API spoken to the upstream.
    pub provider: Provider,
    /// The upstream's own model id (for Azure: the deployment name). Defaults to
    /// `spec.model`. For a wildcard model it may be `*` or `prefix/*`, where `*` stands
    /// for the part of the requested name after the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self.size() > 0").message("upstream.model must not be empty when set"))]
    #[schemars(length(max = MAX_MODEL_NAME))]
    pub model: Option<String>,
    /// Base URL of the upstream API, e.g. `https://api.openai.com/v1`; the provider's
    /// public endpoint when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new(URL_RULE).message(URL_MESSAGE))]
    #[schemars(length(max = MAX_URL))]
    pub api_base: Option<String>,
    /// API version sent to the upstream (Azure's `api-version`, Anthropic's `anthropic-version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self.size() > 0").message("apiVersion must not be empty when set"))]
    #[schemars(length(max = MAX_SHORT_TEXT))]
    pub api_version: Option<String>,
    /// Cloud region of the upstream (required for Bedrock, e.g. `us-east-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new(rules::REGION_RULE).message(rules::REGION_MESSAGE))]
    #[schemars(length(max = MAX_SHORT_TEXT))]
    pub region: Option<String>,
    /// Extra HTTP headers sent with every upstream request. Credentials never go here:
    /// `Authorization`, `api-key` and `x-api-key` are refused; use `credentials`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_HEADERS))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub headers: Vec<Header>,
    /// Where the upstream's credentials are: one Secret in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credentials>,
    /// Canned behaviour of the `mock` provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mock: Option<MockUpstream>,
}

/// One extra HTTP header sent to the upstream.
#[derive(Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[x_kube(validation = kube::core::Rule::new(rules::HEADER_NAME_RULE).message(rules::HEADER_NAME_MESSAGE))]
#[x_kube(validation = kube::core::Rule::new(rules::HEADER_SECRET_RULE).message(rules::HEADER_SECRET_MESSAGE))]
#[x_kube(validation = kube::core::Rule::new(rules::HEADER_VALUE_RULE).message(rules::HEADER_VALUE_MESSAGE))]
pub struct Header {
    /// Header name, e.g. `OpenAI-Organization`.
    #[schemars(length(max = MAX_HEADER_NAME))]
    pub name: String,
    /// Header value (not a secret: it is visible to anyone who can read the resource).
    #[schemars(length(max = MAX_HEADER_VALUE))]
    pub value: String,
}

/// The Secret holding a deployment's credentials. Either `secretKeyRef` (one API key) or
/// `secretName` with `keys` (providers that need several values, such as Bedrock).
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(rules::CREDENTIALS_FORM_RULE).message(rules::CREDENTIALS_FORM_MESSAGE))]
pub struct Credentials {
    /// The key of a Secret holding the API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeySelector>,
    /// Name of a Secret in the same namespace; `keys` says which of its keys hold what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self.size() > 0").message("secretName must not be empty"))]
    #[schemars(length(max = MAX_OBJECT_NAME))]
    pub secret_name: Option<String>,
    /// Which keys of `secretName` hold each credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<CredentialKeys>,
}

/// Keys inside a Secret, one per kind of credential.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(rules::KEYS_NONEMPTY_RULE).message(rules::KEYS_NONEMPTY_MESSAGE))]
pub struct CredentialKeys {
    /// Key holding the API key (OpenAI, Azure, Anthropic, Gemini, OpenAI-compatible servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_SECRET_KEY))]
    pub api_key: Option<String>,
    /// Key holding the AWS access key id (Bedrock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_SECRET_KEY))]
    pub access_key_id: Option<String>,
    /// Key holding the AWS secret access key (Bedrock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_SECRET_KEY))]
    pub secret_access_key: Option<String>,
    /// Key holding an AWS session token (Bedrock, temporary credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_SECRET_KEY))]
    pub session_token: Option<String>,
}

/// What the `mock` provider answers.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MockUpstream {
    /// Text of every chat or completion answer; a short greeting naming the model when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_MOCK_RESPONSE))]
    pub response: Option<String>,
    /// Delay before answering (and between streamed chunks), e.g. `50ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new(DURATION_RULE).message(DURATION_MESSAGE))]
    #[schemars(length(max = MAX_DURATION))]
    pub delay: Option<String>,
}

/// Rate and concurrency limits of one deployment.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Requests per minute this deployment accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self >= 1").message("rpm must be at least 1"))]
    pub rpm: Option<i64>,
    /// Tokens (prompt + completion) per minute this deployment accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self >= 1").message("tpm must be at least 1"))]
    pub tpm: Option<i64>,
    /// Requests in flight at once to this deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self >= 1").message("maxConcurrentRequests must be at least 1"))]
    pub max_concurrent_requests: Option<i64>,
    /// Whether `maxConcurrentRequests` holds per data-plane pod (default) or across the fleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_scope: Option<ConcurrencyScope>,
}

// Scope of a concurrency limit.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ConcurrencyScope {
    /// Each data-plane pod allows the limit.
    #[default]
    Pod,
    /// The limit holds across all data-plane pods together.
    Fleet,
}

/// Timeouts for requests to one deployment.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Timeouts {
    /// Longest a whole non-streaming request may take, e.g. `600s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new(DURATION_RULE).message(DURATION_MESSAGE))]
    #[schemars(length(max = MAX_DURATION))]
    pub request: Option<String>,
    /// Timeouts of streamed responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamTimeouts>,
}

/// Timeouts of a streamed response.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StreamTimeouts {
    /// Longest wait for the first byte of the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new(DURATION_RULE).message(DURATION_MESSAGE))]
    #[schemars(length(max = MAX_DURATION))]
    pub first_byte: Option<String>,
    /// Longest gap between two chunks of the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new(DURATION_RULE).message(DURATION_MESSAGE))]
    #[schemars(length(max = MAX_DURATION))]
    pub idle: Option<String>,
}

/// How a deployment takes part in load balancing.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Routing {
    /// Relative share of traffic within its priority tier (default 1; 0 takes none
    /// unless every other deployment of the tier is unavailable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self >= 0").message("weight must be >= 0"))]
    #[x_kube(validation = kube::core::Rule::new("self <= 1000000").message("weight must be <= 1000000"))]
    pub weight: Option<i64>,
    /// Priority tier: deployments with a lower order are tried first (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self >= 1").message("order must be >= 1"))]
    #[x_kube(validation = kube::core::Rule::new("self <= 1000").message("order must be <= 1000"))]
    pub order: Option<i64>,
    /// Retries for requests that fail on this deployment; the router default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self >= 0 && self <= 10").message("retries must be between 0 and 10"))]
    pub retries: Option<i64>,
}

/// What a model is and costs.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    /// The kind of requests the model serves (default `chat`); health probes follow it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// The model this deployment is an instance of, for cost and context lookups (e.g. `gpt-4o`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_MODEL_NAME))]
    pub base_model: Option<String>,
    /// Tokens of context the model accepts (input + output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self >= 1").message("contextWindow must be at least 1"))]
    pub context_window: Option<i64>,
    /// Most tokens the model writes in one answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self >= 1").message("maxOutputTokens must be at least 1"))]
    pub max_output_tokens: Option<i64>,
    /// Price of one input token, in US dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self >= 0.0").message("inputCostPerToken must be >= 0"))]
    pub input_cost_per_token: Option<f64>,
    /// Price of one output token, in US dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self >= 0.0").message("outputCostPerToken must be >= 0"))]
    pub output_cost_per_token: Option<f64>,
    /// A reasoning model (o-series, extended thinking): health probes never send it
    /// `max_tokens: 1` and ask for low reasoning effort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<bool>,
}

// The kind of requests a model serves.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    Deserialize,
    Serialize,
    JsonSchema,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Chat completions.
    #[default]
    Chat,
    /// Legacy text completions.
    Completion,
    /// Embeddings.
    Embedding,
    /// Image generation.
    ImageGeneration,
    /// Speech to text.
    AudioTranscription,
    /// Text to speech.
    AudioSpeech,
    /// Document reranking.
    Rerank,
}

impl Mode {
    /// The name used in manifests and in the routing table.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Chat => "chat",
            Mode::Completion => "completion",
            Mode::Embedding => "embedding",
            Mode::ImageGeneration => "image-generation",
            Mode::AudioTranscription => "audio-transcription",
            Mode::AudioSpeech => "audio-speech",
            Mode::Rerank => "rerank",
        }
    }
}

/// Active health checking of a deployment.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(rules::PROBE_URL_RULE).message(rules::PROBE_URL_MESSAGE))]
pub struct HealthCheck {
    /// Whether the data plane checks this deployment actively (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Time between two checks (default `60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new(DURATION_RULE).message(DURATION_MESSAGE))]
    #[schemars(length(max = MAX_DURATION))]
    pub interval: Option<String>,
    /// Longest a check may take (default `10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new(DURATION_RULE).message(DURATION_MESSAGE))]
    #[schemars(length(max = MAX_DURATION))]
    pub timeout: Option<String>,
    /// What a check sends. Defaults to the provider's model list where it has one, else
    /// a minimal request of the model's mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<Probe>,
    /// URL fetched by the `url` probe (2xx is healthy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new(URL_RULE).message(URL_MESSAGE))]
    #[schemars(length(max = MAX_URL))]
    pub url: Option<String>,
}

// What an active health check sends.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Probe {
    /// List the provider's models (free where the provider has such an endpoint).
    ModelsList,
    /// A minimal chat completion.
    Chat,
    /// A minimal text completion.
    Completion,
    /// A minimal embedding.
    Embedding,
    /// A GET of `healthCheck.url`.
    Url,
}

impl Probe {
    /// The name used in manifests and in the routing table.
    pub fn as_str(self) -> &'static str {
        match self {
            Probe::ModelsList => "models-list",
            Probe::Chat => "chat",
            Probe::Completion => "completion",
            Probe::Embedding => "embedding",
            Probe::Url => "url",
        }
    }
}

/// What the operator observed of a `ModelDeployment`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelDeploymentStatus {
    /// `Accepted` (compiled into the routing table), `Ready` (every data-plane pod serves
    /// this generation) and `Healthy` (the upstream answers).
    #[serde(default)]
    #[schemars(length(max = 8))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `.metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// How many data-plane pods serve this generation, out of how many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataplanes: Option<DataplaneCounts>,
    /// The latest health of the upstream, merged across data-plane pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthStatus>,
    /// Content hash of the routing table that includes this generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub table_version: Option<String>,
}

/// Data-plane pods serving a resource.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub struct DataplaneCounts {
    /// Pods serving a table that includes this generation.
    pub ready: i32,
    /// Data-plane pods known to the operator.
    pub total: i32,
}

/// Health of an upstream as last seen by the data planes.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HealthStatus {
    /// When the upstream was last checked (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"), length(max = 64))]
    pub last_check_time: Option<String>,
    /// Latency of the last check, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<i64>,
    /// The last error the upstream gave (never a credential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub last_error: Option<String>,
}

impl ModelDeploymentSpec {
    /// Checks every rule the CRD's CEL validations express, in Rust, so that manifests
    /// read without an API server (local mode) are held to the same rules.
    pub fn validate(&self) -> Vec<FieldError> {
        rules::check_deployment(self)
    }
}
