//! The routing-table wire types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::canonical::canonical_json;
use crate::secret::SecretValue;
use crate::validate::TableError;

/// Why bytes received on the wire are not a routing table.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or JSON of the wrong shape.
    #[error("not a routing table: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON, but not an object.
    #[error("not a routing table: the document is not a JSON object")]
    NotAnObject,
    /// A table this build must refuse.
    #[error("{0}")]
    Invalid(TableError),
}

/// Feeds serialized bytes straight into a hasher.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything a data plane needs to route: deployments, the groups they form, aliases,
/// router settings and the credentials they use.
///
/// - `schema_version` is the major version of this format ([`crate::SCHEMA_VERSION`]).
/// - `revision` orders deliveries: a data plane never replaces a table with one of a lower
///   revision, so a push delivered late cannot roll it back.
/// - Fields a newer operator adds within the same major are ignored by older data planes;
///   anything an older data plane must not ignore takes a new major.
/// - `version` is the content hash (`sha256:<hex>`) of the canonical JSON of every field
///   but `version` and `revision`, credentials included: the same content always has the
///   same version, and a rotated Secret changes it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutingTable {
    /// Every alias, sorted by name, with targets flattened to groups.
    pub aliases: Vec<Alias>,
    /// Credentials by id (`namespace/secret-name`): only the keys something refers to.
    pub credentials: BTreeMap<String, Credential>,
    /// Every deployment, sorted by id.
    pub deployments: Vec<Deployment>,
    /// Every model group, sorted by name.
    pub groups: Vec<Group>,
    /// Monotonic delivery number.
    pub revision: u64,
    /// Major version of the table format.
    pub schema_version: u32,
    /// Router-wide settings.
    pub settings: Settings,
    /// Content hash, `sha256:<hex>`.
    pub version: String,
}

/// The keys of one Secret that the table refers to, with their values.
pub type Credential = BTreeMap<String, SecretValue>;

/// One key of one credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Key inside the credential.
    pub key: String,
    /// Credential id (`namespace/secret-name`).
    pub secret: String,
}

/// Router-wide settings, with every default applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// Per model name: names tried when a request exceeds the context window.
    pub context_window_fallbacks: BTreeMap<String, Vec<String>>,
    /// When failing deployments are skipped.
    pub cooldown: Cooldown,
    /// Drop parameters a provider cannot take instead of answering 400.
    pub drop_params: bool,
    /// Per model name: names tried in order when every deployment fails.
    pub fallbacks: BTreeMap<String, Vec<String>>,
    /// For `latency-based`: deployments within this fraction of the fastest count as fastest.
    pub latency_buffer: f64,
    /// The key clients must present; no auth when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_key: Option<SecretKeyRef>,
    /// Largest request body accepted, in bytes.
    pub max_request_body_bytes: u64,
    /// Redis URL for limits shared across replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<SecretKeyRef>,
    /// Default retries of a failed request.
    pub retries: u32,
    /// How a deployment is picked within a priority tier.
    pub routing_strategy: RoutingStrategy,
    /// Default timeouts.
    pub timeouts: Timeouts,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            routing_strategy: RoutingStrategy::SimpleShuffle,
            latency_buffer: 0.1,
            retries: 2,
            timeouts: Timeouts::default(),
            cooldown: Cooldown::default(),
            fallbacks: BTreeMap::new(),
            context_window_fallbacks: BTreeMap::new(),
            drop_params: false,
            max_request_body_bytes: 32 * 1024 * 1024,
            master_key: None,
            redis_url: None,
        }
    }
}

/// How a deployment is picked among the eligible ones of a priority tier.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoutingStrategy {
    /// Weighted random choice.
    #[default]
    SimpleShuffle,
    /// Fewest requests in flight.
    LeastBusy,
    /// Lowest moving average of latency.
    LatencyBased,
    /// Cheapest by model costs.
    LowestCost,
    /// Lowest rpm/tpm use relative to limits.
    UsageBased,
}

/// Timeouts, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeouts {
    /// A whole non-streaming request.
    pub request_ms: u64,
    /// The first byte of a stream.
    pub stream_first_byte_ms: u64,
    /// The gap between two chunks of a stream.
    pub stream_idle_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            request_ms: 600_000,
            stream_first_byte_ms: 60_000,
            stream_idle_ms: 60_000,
        }
    }
}

/// When failing deployments are skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cooldown {
    /// Failures within a minute that put a deployment in cooldown.
    pub allowed_fails: u32,
    /// How long a deployment stays in cooldown, in milliseconds.
    pub cooldown_ms: u64,
}

impl Default for Cooldown {
    fn default() -> Self {
        Self {
            allowed_fails: 3,
            cooldown_ms: 60_000,
        }
    }
}

/// One upstream deployment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// Base URL of the upstream API; the provider's public endpoint when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base: Option<String>,
    /// API version sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Where the credentials are in [`RoutingTable::credentials`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<DeploymentCredentials>,
    /// `.metadata.generation` of the resource this entry was compiled from.
    pub generation: i64,
    /// Extra headers sent upstream.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Header>,
    /// Active health checking.
    pub health_check: HealthCheck,
    /// Stable id, `namespace/name` of the `ModelDeployment`.
    pub id: String,
    /// Limits; `None` for no limit.
    pub limits: Limits,
    /// Canned answers of the `mock` provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mock: Option<Mock>,
    /// Name of the model group (`spec.model`; `provider/*` for a wildcard group).
    pub model: String,
    /// What the model is and costs.
    pub model_info: ModelInfo,
    /// Priority tier; lower is tried first.
    pub order: u32,
    /// Provider name (`openai`, `azure`, …). A string, so that a data plane can skip a
    /// provider it does not know instead of refusing the whole table.
    pub provider: String,
    /// Cloud region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Retries of a request that fails here.
    pub retries: u32,
    /// Timeouts, with router defaults applied.
    pub timeouts: Timeouts,
    /// The upstream's model id; contains `*` for a wildcard group, standing for the
    /// requested name after the provider prefix.
    pub upstream_model: String,
    /// Relative share of traffic within its priority tier.
    pub weight: u32,
}

impl Deployment {
    /// True when the deployment serves a `provider/*` wildcard group.
    pub fn is_wildcard(&self) -> bool {
        self.model.ends_with("/*")
    }
}

/// One extra HTTP header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Header name.
    pub name: String,
    /// Header value.
    pub value: String,
}

/// Which keys of which credential a deployment uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentCredentials {
    /// Key holding the AWS access key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// Key holding the API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// Credential id in [`RoutingTable::credentials`].
    pub secret: String,
    /// Key holding the AWS secret access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    /// Key holding the AWS session token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
}

impl DeploymentCredentials {
    /// Every key this deployment uses, with its role.
    pub fn keys(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("apiKey", self.api_key.as_deref()),
            ("accessKeyId", self.access_key_id.as_deref()),
            ("secretAccessKey", self.secret_access_key.as_deref()),
            ("sessionToken", self.session_token.as_deref()),
        ]
        .into_iter()
        .filter_map(|(role, key)| key.map(|k| (role, k)))
    }
}

/// Limits of one deployment; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Whether `max_concurrent_requests` holds per pod or across the fleet.
    pub concurrency_scope: ConcurrencyScope,
    /// Requests in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_requests: Option<u64>,
    /// Requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    /// Tokens per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
}

/// Scope of a concurrency limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConcurrencyScope {
    /// Per data-plane pod.
    #[default]
    Pod,
    /// Across every data-plane pod.
    Fleet,
}

/// What the model is and costs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    /// The model this is an instance of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_model: Option<String>,
    /// Tokens of context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u64>,
    /// US dollars per input token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_cost_per_token: Option<f64>,
    /// Most output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    /// The kind of requests served.
    pub mode: Mode,
    /// US dollars per output token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_cost_per_token: Option<f64>,
    /// A reasoning model.
    pub reasoning: bool,
}

/// The kind of requests a model serves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Chat completions.
    #[default]
    Chat,
    /// Text completions.
    Completion,
    /// Embeddings.
    Embedding,
    /// Image generation.
    ImageGeneration,
    /// Speech to text.
    AudioTranscription,
    /// Text to speech.
    AudioSpeech,
    /// Reranking.
    Rerank,
}

/// Active health checking of one deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// Whether active checks run.
    pub enabled: bool,
    /// Time between checks, in milliseconds.
    pub interval_ms: u64,
    /// What a check sends.
    pub probe: Probe,
    /// Longest a check may take, in milliseconds.
    pub timeout_ms: u64,
    /// URL of the `url` probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// What an active health check sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Probe {
    /// The provider's model list.
    ModelsList,
    /// A minimal chat completion.
    Chat,
    /// A minimal text completion.
    Completion,
    /// A minimal embedding.
    Embedding,
    /// A GET of the check's URL.
    Url,
}

/// Canned behaviour of the `mock` provider.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mock {
    /// Delay before answering and between streamed chunks, in milliseconds.
    pub delay_ms: u64,
    /// Text of every answer; a greeting naming the model when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
}

/// A model group: deployments sharing one public model name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// Ids of its deployments, sorted.
    pub deployments: Vec<String>,
    /// Public model name (`provider/*` for a wildcard group).
    pub name: String,
    /// Namespace that owns the name (that of its oldest deployment).
    pub namespace: String,
}

impl Group {
    /// True for a `provider/*` wildcard group.
    pub fn is_wildcard(&self) -> bool {
        self.name.ends_with("/*")
    }
}

/// An alias, flattened: its targets are model groups, whatever chain of aliases led there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alias {
    /// Names (groups or aliases) tried in order when every target fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
    /// `.metadata.generation` of the resource.
    pub generation: i64,
    /// Routed but not listed by `/v1/models`.
    pub hidden: bool,
    /// `namespace/name` of the `ModelGroupAlias`.
    pub id: String,
    /// Public name clients send.
    pub name: String,
    /// Model groups with their share of traffic (shares add up to 1).
    pub targets: Vec<AliasTarget>,
}

/// One flattened alias target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AliasTarget {
    /// The model group that serves it.
    pub group: String,
    /// The model name requested from the group: the group's name, or for a wildcard
    /// group the concrete name (`openai/gpt-4o` served by `openai/*`).
    pub model: String,
    /// Share of the alias's traffic, from 0 to 1.
    pub share: f64,
}

/// The fields the content hash covers: every field of [`RoutingTable`] but `revision`
/// and `version`, in the same (sorted) order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HashedContent<'a> {
    aliases: &'a [Alias],
    credentials: &'a BTreeMap<String, Credential>,
    deployments: &'a [Deployment],
    groups: &'a [Group],
    schema_version: u32,
    settings: &'a Settings,
}

impl RoutingTable {
    /// The content hash of this table (`sha256:<hex>`): over the canonical JSON of every
    /// field but `version` and `revision`.
    ///
    /// Every struct of the table declares its fields in the byte order of their JSON
    /// names, and every map is a `BTreeMap`, so serde's own output *is* the canonical JSON
    /// and no intermediate tree is built (a test holds the two equal).
    pub fn content_hash(&self) -> String {
        let content = HashedContent {
            aliases: &self.aliases,
            credentials: &self.credentials,
            deployments: &self.deployments,
            groups: &self.groups,
            schema_version: self.schema_version,
            settings: &self.settings,
        };
        // serde writes many small pieces; hash them in blocks.
        let mut writer = std::io::BufWriter::with_capacity(64 * 1024, HashWriter(Sha256::new()));
        // Writing into a hasher cannot fail, and plain data always serializes.
        let _ = serde_json::to_writer(&mut writer, &content);
        let _ = std::io::Write::flush(&mut writer);
        let (hasher, _) = writer.into_parts();
        format!("sha256:{}", hex::encode(hasher.0.finalize()))
    }

    /// Sets `version` to the content hash and `revision` as given.
    pub fn seal(mut self, revision: u64) -> Self {
        self.revision = revision;
        self.version = self.content_hash();
        self
    }

    /// The table as canonical JSON (sorted keys, no whitespace): the bytes pushed to data
    /// planes and stored in the snapshot Secret.
    pub fn to_canonical_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a table received on the wire. The schema major is checked first (a newer one
    /// is refused before anything else is judged), then `version` is checked against the
    /// hash of the document *as received* — so fields added by a newer operator within the
    /// same major, which this build ignores, still count — and then the document is read.
    /// Call [`RoutingTable::validate`] on the result.
    pub fn decode(bytes: &[u8]) -> Result<RoutingTable, DecodeError> {
        // Fast path, the common case: the document decodes into this build's types and its
        // version is the hash of what they hold — nothing was ignored. No intermediate
        // tree is built (a 10,000-deployment table would cost tens of MiB of heap).
        if let Ok(table) = serde_json::from_slice::<RoutingTable>(bytes) {
            if table.schema_version > crate::SCHEMA_VERSION {
                return Err(DecodeError::Invalid(TableError::SchemaTooNew {
                    found: table.schema_version,
                    supported: crate::SCHEMA_VERSION,
                }));
            }
            if table.version == table.content_hash() {
                return Ok(table);
            }
        }
        Self::decode_as_received(bytes)
    }

    /// The slow path of [`RoutingTable::decode`]: the hash over the document as received,
    /// for a table carrying fields this build ignores (or a tampered one).
    fn decode_as_received(bytes: &[u8]) -> Result<RoutingTable, DecodeError> {
        let mut value: serde_json::Value = serde_json::from_slice(bytes)?;
        let Some(map) = value.as_object_mut() else {
            return Err(DecodeError::NotAnObject);
        };
        let schema = map
            .get("schemaVersion")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        if schema > u64::from(crate::SCHEMA_VERSION) {
            return Err(DecodeError::Invalid(TableError::SchemaTooNew {
                found: u32::try_from(schema).unwrap_or(u32::MAX),
                supported: crate::SCHEMA_VERSION,
            }));
        }
        let version = map.remove("version");
        let revision = map.remove("revision");
        let computed = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(canonical_json(&value)))
        );
        let declared = version
            .as_ref()
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if declared != computed {
            return Err(DecodeError::Invalid(TableError::VersionMismatch {
                declared,
                computed,
            }));
        }
        if let Some(map) = value.as_object_mut() {
            map.extend(version.map(|v| ("version".to_owned(), v)));
            map.extend(revision.map(|r| ("revision".to_owned(), r)));
        }
        Ok(serde_json::from_value(value)?)
    }

    /// A copy with every credential value replaced by [`crate::REDACTED`]; the view for
    /// logs and endpoints. `version` still names the real content.
    pub fn redacted(&self) -> RoutingTable {
        let mut t = self.clone();
        for cred in t.credentials.values_mut() {
            for v in cred.values_mut() {
                *v = SecretValue::redacted();
            }
        }
        t
    }

    /// The deployment with this id.
    pub fn deployment(&self, id: &str) -> Option<&Deployment> {
        self.deployments
            .binary_search_by(|d| d.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.deployments[i])
    }

    /// The group with this name.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups
            .binary_search_by(|g| g.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.groups[i])
    }

    /// The alias with this name.
    pub fn alias(&self, name: &str) -> Option<&Alias> {
        self.aliases
            .binary_search_by(|a| a.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.aliases[i])
    }

    /// The value a [`SecretKeyRef`] points at.
    pub fn secret(&self, r: &SecretKeyRef) -> Option<&SecretValue> {
        self.credentials.get(&r.secret)?.get(&r.key)
    }

    /// The value of one key of a deployment's credential.
    pub fn credential_value(
        &self,
        creds: &DeploymentCredentials,
        key: &str,
    ) -> Option<&SecretValue> {
        self.credentials.get(&creds.secret)?.get(key)
    }
}
