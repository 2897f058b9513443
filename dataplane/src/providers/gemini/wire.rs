//! Gemini API wire types (`v1beta`): the request bodies Modelgate sends, which borrow
//! from the OpenAI request they translate, and the answers it reads, which borrow from
//! the answer's bytes where they can. Only the fields the translation uses are declared;
//! unknown fields of an answer are ignored.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

pub use super::schema::Schema;

/// `models.generateContent` and `models.streamGenerateContent` request body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentRequest<'a> {
    /// The conversation.
    pub contents: Vec<Content<'a>>,
    /// System instructions (text parts, no role).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_instruction: Option<Content<'a>>,
    /// Function declarations.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool<'a>>,
    /// How the model may call functions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig<'a>>,
    /// Sampling and output settings.
    #[serde(skip_serializing_if = "GenerationConfig::is_empty")]
    pub generation_config: GenerationConfig<'a>,
}

/// Who said a [`Content`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The user (and function results).
    User,
    /// The model.
    Model,
}

/// One turn of the conversation.
#[derive(Debug, Serialize)]
pub struct Content<'a> {
    /// `user` or `model`; absent in `systemInstruction`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// What was said.
    pub parts: Vec<Part<'a>>,
}

/// One part of a turn.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Part<'a> {
    /// The content.
    #[serde(flatten)]
    pub data: PartData<'a>,
    /// The opaque signature a thinking model attached to this part (sent back unchanged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<Cow<'a, str>>,
}

impl<'a> Part<'a> {
    /// A text part.
    pub fn text(text: impl Into<Cow<'a, str>>) -> Self {
        Part {
            data: PartData::Text(text.into()),
            thought_signature: None,
        }
    }
}

/// The content of a [`Part`]: exactly one of these keys.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PartData<'a> {
    /// `text`.
    Text(Cow<'a, str>),
    /// `inlineData`: base64 bytes.
    InlineData(Blob<'a>),
    /// `fileData`: a URI the API fetches.
    FileData(FileData<'a>),
    /// `functionCall`: a call the model made.
    FunctionCall(FunctionCall<'a>),
    /// `functionResponse`: a call's result.
    FunctionResponse(FunctionResponse<'a>),
}

/// Inline bytes.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blob<'a> {
    /// IANA media type.
    pub mime_type: Cow<'a, str>,
    /// Base64 data.
    pub data: &'a str,
}

/// Data by URI.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileData<'a> {
    /// IANA media type.
    pub mime_type: Cow<'a, str>,
    /// Where the data is.
    pub file_uri: &'a str,
}

/// A function call in the history.
#[derive(Debug, Serialize)]
pub struct FunctionCall<'a> {
    /// Function name.
    pub name: &'a str,
    /// Arguments (an object), as the client wrote them.
    pub args: &'a RawValue,
}

/// A function's result in the history.
#[derive(Debug, Serialize)]
pub struct FunctionResponse<'a> {
    /// Function name (Gemini matches results to calls by name).
    pub name: &'a str,
    /// The result (an object).
    pub response: FunctionResult<'a>,
}

/// A function's result: Gemini takes an object.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum FunctionResult<'a> {
    /// The tool answered a JSON object: sent as written.
    Json(Cow<'a, RawValue>),
    /// Any other answer: `{"content": <text>}`.
    Text {
        /// The tool's answer.
        content: Cow<'a, str>,
    },
}

/// A set of function declarations.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool<'a> {
    /// The functions.
    pub function_declarations: Vec<FunctionDeclaration<'a>>,
}

/// One function the model may call.
#[derive(Debug, Serialize)]
pub struct FunctionDeclaration<'a> {
    /// Name.
    pub name: &'a str,
    /// What it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    /// Its parameters, as Gemini's subset of OpenAPI schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Schema<'a>>,
}

/// `toolConfig`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig<'a> {
    /// How functions may be called.
    pub function_calling_config: FunctionCallingConfig<'a>,
}

/// `functionCallingConfig`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionCallingConfig<'a> {
    /// The mode.
    pub mode: Mode,
    /// With [`Mode::Any`]: the functions that may be called.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_function_names: Vec<&'a str>,
}

/// Function-calling modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Mode {
    /// The model decides.
    Auto,
    /// The model must call a function.
    Any,
    /// The model must not call functions.
    None,
}

/// `generationConfig`.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationConfig<'a> {
    /// Sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Top-k sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Output token limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// Stop sequences.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<&'a str>,
    /// Number of candidates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_count: Option<u32>,
    /// Presence penalty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Frequency penalty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// Sampling seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// `application/json` for JSON output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_mime_type: Option<&'static str>,
    /// The schema of JSON output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_schema: Option<Schema<'a>>,
}

impl GenerationConfig<'_> {
    /// True when nothing is set (the key is then left out).
    pub fn is_empty(&self) -> bool {
        self.temperature.is_none()
            && self.top_p.is_none()
            && self.top_k.is_none()
            && self.max_output_tokens.is_none()
            && self.stop_sequences.is_empty()
            && self.candidate_count.is_none()
            && self.presence_penalty.is_none()
            && self.frequency_penalty.is_none()
            && self.seed.is_none()
            && self.response_mime_type.is_none()
            && self.response_schema.is_none()
    }
}

/// A `generateContent` answer, and each event of a streamed one.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentResponse<'a> {
    /// The candidates.
    #[serde(borrow, default)]
    pub candidates: Vec<Candidate<'a>>,
    /// Why the prompt was blocked, if it was.
    #[serde(borrow, default)]
    pub prompt_feedback: Option<PromptFeedback<'a>>,
    /// Token counts.
    #[serde(default)]
    pub usage_metadata: Option<UsageMetadata>,
    /// The answer's id.
    #[serde(borrow, default)]
    pub response_id: Option<Cow<'a, str>>,
}

/// One candidate answer.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate<'a> {
    /// What the model said.
    #[serde(borrow, default)]
    pub content: Option<CandidateContent<'a>>,
    /// Why it stopped (`STOP`, `MAX_TOKENS`, `SAFETY`, …).
    #[serde(borrow, default)]
    pub finish_reason: Option<Cow<'a, str>>,
    /// The candidate's index (absent for the first).
    #[serde(default)]
    pub index: Option<u32>,
}

/// A candidate's content.
#[derive(Debug, Default, Deserialize)]
pub struct CandidateContent<'a> {
    /// The parts.
    #[serde(borrow, default)]
    pub parts: Vec<CandidatePart<'a>>,
}

/// One part of an answer.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CandidatePart<'a> {
    /// Text.
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
    /// True when `text` is a thought summary, not the answer.
    #[serde(default)]
    pub thought: Option<bool>,
    /// A function call.
    #[serde(borrow, default)]
    pub function_call: Option<CandidateFunctionCall<'a>>,
    /// The signature of the model's thinking, to send back with the call.
    #[serde(borrow, default)]
    pub thought_signature: Option<Cow<'a, str>>,
}

/// A function call the model made.
#[derive(Debug, Default, Deserialize)]
pub struct CandidateFunctionCall<'a> {
    /// Call id, when the API gave one.
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    /// Function name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// Arguments (an object), as Gemini wrote them.
    #[serde(borrow, default)]
    pub args: Option<&'a RawValue>,
}

/// `promptFeedback`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptFeedback<'a> {
    /// Why the prompt was blocked (`SAFETY`, `BLOCKLIST`, `PROHIBITED_CONTENT`, …).
    #[serde(borrow, default)]
    pub block_reason: Option<Cow<'a, str>>,
}

/// `usageMetadata`.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    /// Prompt tokens (cached ones included).
    #[serde(default)]
    pub prompt_token_count: u64,
    /// Answer tokens.
    #[serde(default)]
    pub candidates_token_count: u64,
    /// Thinking tokens.
    #[serde(default)]
    pub thoughts_token_count: Option<u64>,
    /// Prompt tokens read from the cache.
    #[serde(default)]
    pub cached_content_token_count: Option<u64>,
    /// Tokens of tool-use prompts.
    #[serde(default)]
    pub tool_use_prompt_token_count: Option<u64>,
    /// Everything.
    #[serde(default)]
    pub total_token_count: Option<u64>,
}

/// An error answer: `{"error": {"code", "message", "status", "details"}}`.
#[derive(Debug, Deserialize)]
pub struct ErrorBody<'a> {
    /// The error.
    #[serde(borrow)]
    pub error: ErrorDetail<'a>,
}

/// The error of an [`ErrorBody`].
#[derive(Debug, Default, Deserialize)]
pub struct ErrorDetail<'a> {
    /// HTTP status code.
    #[serde(default)]
    pub code: Option<u16>,
    /// Message.
    #[serde(borrow, default)]
    pub message: Cow<'a, str>,
    /// Canonical status (`RESOURCE_EXHAUSTED`, `INVALID_ARGUMENT`, …).
    #[serde(borrow, default)]
    pub status: Option<Cow<'a, str>>,
    /// Typed details (`google.rpc.RetryInfo` among them).
    #[serde(default)]
    pub details: Vec<Value>,
}

/// `models.embedContent` request body (also one entry of a batch).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EmbedContentRequest<'a> {
    /// `models/{model}`.
    pub model: Cow<'a, str>,
    /// The text to embed.
    pub content: Content<'a>,
    /// Truncate the embedding to this many dimensions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_dimensionality: Option<u32>,
}

/// `models.batchEmbedContents` request body.
#[derive(Debug, Serialize)]
pub struct BatchEmbedContentsRequest<'a> {
    /// One request per input.
    pub requests: Vec<EmbedContentRequest<'a>>,
}

/// An embedding.
#[derive(Debug, Default, Deserialize)]
pub struct ContentEmbedding {
    /// The vector.
    #[serde(default)]
    pub values: Vec<f32>,
}

/// `models.embedContent` answer.
#[derive(Debug, Deserialize)]
pub struct EmbedContentResponse {
    /// The embedding.
    pub embedding: ContentEmbedding,
}

/// `models.batchEmbedContents` answer.
#[derive(Debug, Deserialize)]
pub struct BatchEmbedContentsResponse {
    /// One embedding per input, in order.
    #[serde(default)]
    pub embeddings: Vec<ContentEmbedding>,
}
