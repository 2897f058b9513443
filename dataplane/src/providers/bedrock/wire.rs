//! Bedrock Runtime Converse and ConverseStream wire types: the request body Modelgate
//! sends, which borrows from the OpenAI request it translates, and the answer and stream
//! events it reads. Only the fields the translation uses are declared; unknown fields of
//! an answer (the streams' `p` padding among them) are ignored.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use crate::providers::openai::wire::{EmptyObject, ToolSchema};

/// `Converse` / `ConverseStream` request body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseRequest<'a> {
    /// The conversation (alternating user and assistant turns, starting with the user).
    pub messages: Vec<Message<'a>>,
    /// System prompts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<SystemBlock<'a>>,
    /// Sampling and output settings.
    #[serde(skip_serializing_if = "InferenceConfig::is_empty")]
    pub inference_config: InferenceConfig<'a>,
    /// Tools.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig<'a>>,
}

/// Who said a [`Message`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The user (and tool results).
    User,
    /// The model.
    Assistant,
}

/// One turn.
#[derive(Debug, Serialize)]
pub struct Message<'a> {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub content: Vec<ContentBlock<'a>>,
}

/// A content block: exactly one of these keys.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ContentBlock<'a> {
    /// Text.
    Text(Cow<'a, str>),
    /// An image.
    Image(ImageBlock<'a>),
    /// A tool call the model made.
    ToolUse(ToolUseBlock<'a>),
    /// A tool's result.
    ToolResult(ToolResultBlock<'a>),
}

/// An image.
#[derive(Debug, Serialize)]
pub struct ImageBlock<'a> {
    /// `png`, `jpeg`, `gif` or `webp`.
    pub format: &'static str,
    /// The bytes.
    pub source: ImageSource<'a>,
}

/// Image bytes (base64 in JSON).
#[derive(Debug, Serialize)]
pub struct ImageSource<'a> {
    /// Base64 data.
    pub bytes: &'a str,
}

/// A tool call in the history.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseBlock<'a> {
    /// The call's id.
    pub tool_use_id: &'a str,
    /// Tool name.
    pub name: &'a str,
    /// Arguments (an object), as the client wrote them.
    pub input: &'a RawValue,
}

/// A tool result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResultBlock<'a> {
    /// The call it answers.
    pub tool_use_id: &'a str,
    /// The result.
    pub content: Vec<ToolResultContent<'a>>,
}

/// A piece of a tool result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolResultContent<'a> {
    /// Text.
    Text(Cow<'a, str>),
    /// A JSON object, as the tool wrote it.
    Json(Cow<'a, RawValue>),
}

/// A system prompt.
#[derive(Debug, Serialize)]
pub struct SystemBlock<'a> {
    /// Its text.
    pub text: &'a str,
}

/// `inferenceConfig`.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceConfig<'a> {
    /// Output token limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Stop sequences.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<&'a str>,
}

impl InferenceConfig<'_> {
    /// True when nothing is set (the key is then left out).
    pub fn is_empty(&self) -> bool {
        self.max_tokens.is_none()
            && self.temperature.is_none()
            && self.top_p.is_none()
            && self.stop_sequences.is_empty()
    }
}

/// `toolConfig`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig<'a> {
    /// The tools.
    pub tools: Vec<Tool<'a>>,
    /// How the model must use them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice<'a>>,
}

/// A tool.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool<'a> {
    /// Its specification.
    pub tool_spec: ToolSpec<'a>,
}

/// A tool's specification.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec<'a> {
    /// Name.
    pub name: &'a str,
    /// What it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    /// Its input's JSON schema.
    pub input_schema: InputSchema<'a>,
}

/// A tool's input schema.
#[derive(Debug, Serialize)]
pub struct InputSchema<'a> {
    /// The JSON schema.
    pub json: ToolSchema<'a>,
}

/// `toolChoice`: exactly one key.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolChoice<'a> {
    /// The model decides.
    Auto(EmptyObject),
    /// At least one tool call.
    Any(EmptyObject),
    /// This tool.
    Tool(NamedTool<'a>),
}

/// A tool by name.
#[derive(Debug, Serialize)]
pub struct NamedTool<'a> {
    /// Its name.
    pub name: &'a str,
}

/// A `Converse` answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseResponse<'a> {
    /// The answer.
    #[serde(borrow)]
    pub output: Output<'a>,
    /// Why it stopped.
    #[serde(borrow, default)]
    pub stop_reason: Option<Cow<'a, str>>,
    /// Token counts.
    #[serde(default)]
    pub usage: Option<TokenUsage>,
}

/// `output`.
#[derive(Debug, Default, Deserialize)]
pub struct Output<'a> {
    /// The assistant's message.
    #[serde(borrow, default)]
    pub message: Option<OutputMessage<'a>>,
}

/// The assistant's message.
#[derive(Debug, Default, Deserialize)]
pub struct OutputMessage<'a> {
    /// Its blocks.
    #[serde(borrow, default)]
    pub content: Vec<OutputBlock<'a>>,
}

/// A block of the answer (one key set; unknown kinds are all `None`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputBlock<'a> {
    /// Text.
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
    /// A tool call.
    #[serde(borrow, default)]
    pub tool_use: Option<OutputToolUse<'a>>,
    /// The model's reasoning.
    #[serde(borrow, default)]
    pub reasoning_content: Option<ReasoningContent<'a>>,
}

/// A tool call of the answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputToolUse<'a> {
    /// Its id.
    #[serde(borrow)]
    pub tool_use_id: Cow<'a, str>,
    /// Tool name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// Arguments, as the model wrote them.
    #[serde(borrow, default)]
    pub input: Option<&'a RawValue>,
}

/// `reasoningContent`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasoningContent<'a> {
    /// The reasoning text.
    #[serde(borrow, default)]
    pub reasoning_text: Option<ReasoningText<'a>>,
}

/// `reasoningText`.
#[derive(Debug, Default, Deserialize)]
pub struct ReasoningText<'a> {
    /// The text.
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
}

/// `usage`.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    /// Prompt tokens not read from or written to the cache.
    #[serde(default)]
    pub input_tokens: u64,
    /// Answer tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Everything.
    #[serde(default)]
    pub total_tokens: Option<u64>,
    /// Prompt tokens read from the cache.
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    /// Prompt tokens written to the cache.
    #[serde(default)]
    pub cache_write_input_tokens: Option<u64>,
}

/// `contentBlockStart`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockStart<'a> {
    /// What starts.
    #[serde(borrow, default)]
    pub start: Option<BlockStart<'a>>,
    /// The block's index in the message.
    #[serde(default)]
    pub content_block_index: u64,
}

/// The start of a block (only tool calls have one).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStart<'a> {
    /// A tool call.
    #[serde(borrow, default)]
    pub tool_use: Option<ToolUseStart<'a>>,
}

/// The start of a tool call.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseStart<'a> {
    /// Its id.
    #[serde(borrow)]
    pub tool_use_id: Cow<'a, str>,
    /// Tool name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
}

/// `contentBlockDelta`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockDelta<'a> {
    /// The delta.
    #[serde(borrow, default)]
    pub delta: Option<BlockDelta<'a>>,
    /// The block's index in the message.
    #[serde(default)]
    pub content_block_index: u64,
}

/// A delta (one key set).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockDelta<'a> {
    /// Text.
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
    /// A fragment of a tool call's JSON input.
    #[serde(borrow, default)]
    pub tool_use: Option<ToolUseDelta<'a>>,
    /// Reasoning.
    #[serde(borrow, default)]
    pub reasoning_content: Option<ReasoningDelta<'a>>,
}

/// A fragment of a tool call's input.
#[derive(Debug, Default, Deserialize)]
pub struct ToolUseDelta<'a> {
    /// The JSON fragment.
    #[serde(borrow, default)]
    pub input: Cow<'a, str>,
}

/// A fragment of reasoning.
#[derive(Debug, Default, Deserialize)]
pub struct ReasoningDelta<'a> {
    /// Its text.
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
}

/// `messageStop`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageStop<'a> {
    /// Why the model stopped.
    #[serde(borrow, default)]
    pub stop_reason: Option<Cow<'a, str>>,
}

/// `metadata`.
#[derive(Debug, Deserialize)]
pub struct StreamMetadata {
    /// Token counts.
    #[serde(default)]
    pub usage: Option<TokenUsage>,
}

/// An error body (`message` or `Message`).
#[derive(Debug, Default, Deserialize)]
pub struct ErrorBody<'a> {
    /// The message.
    #[serde(borrow, default, alias = "Message")]
    pub message: Option<Cow<'a, str>>,
    /// The error type (`com.amazon.coral.service#ValidationException`), when in the body.
    #[serde(borrow, default, rename = "__type")]
    pub kind: Option<Cow<'a, str>>,
}
