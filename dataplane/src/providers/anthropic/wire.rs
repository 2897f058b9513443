//! Anthropic Messages API wire types (`POST /v1/messages`), as the translators read and
//! write them: requests, messages (answers), stream events and errors.
//!
//! Types named `…In` are read (they borrow from the bytes received; tool inputs and
//! schemas stay raw JSON); the others are written. Unknown fields are ignored on read, and
//! unknown block, delta and event types are read (as their `type`) and skipped by the
//! translators, as Anthropic asks of clients.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use crate::providers::openai::wire::{EmptyObject, ToolSchema};

use crate::providers::openai::wire::OneOrMany;

// ---------------------------------------------------------------------------------------
// Requests we write.

/// A Messages request.
#[derive(Debug, Serialize)]
pub struct MessagesRequest<'a> {
    /// The model id.
    pub model: &'a str,
    /// Alternating user and assistant turns.
    pub messages: Vec<Turn<'a>>,
    /// The system prompt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<System<'a>>,
    /// Output limit (required).
    pub max_tokens: u64,
    /// Stop sequences.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<Cow<'a, str>>,
    /// Sampling temperature (0 to 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Top-k sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u64>,
    /// Streaming.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// Tools.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool<'a>>,
    /// Tool choice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice<'a>>,
    /// Request metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata<'a>>,
}

/// The system prompt: text, or text blocks.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum System<'a> {
    /// One text.
    Text(Cow<'a, str>),
    /// Several texts.
    Blocks(Vec<Block<'a>>),
}

/// `user` or `assistant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The user (tool results included).
    User,
    /// The model.
    Assistant,
}

/// One turn.
#[derive(Debug, Serialize)]
pub struct Turn<'a> {
    /// Whose turn.
    pub role: Role,
    /// Its content.
    pub content: TurnContent<'a>,
}

/// A turn's content: text, or blocks.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum TurnContent<'a> {
    /// Text.
    Text(Cow<'a, str>),
    /// Blocks.
    Blocks(Vec<Block<'a>>),
}

impl<'a> TurnContent<'a> {
    /// The content as blocks.
    pub fn into_blocks(self) -> Vec<Block<'a>> {
        match self {
            TurnContent::Text(text) => vec![Block::Text { text }],
            TurnContent::Blocks(b) => b,
        }
    }
}

/// A content block we write.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block<'a> {
    /// Text.
    Text {
        /// The text.
        text: Cow<'a, str>,
    },
    /// An image.
    Image {
        /// Where it is.
        source: Source<'a>,
    },
    /// A document (a PDF).
    Document {
        /// Where it is.
        source: Source<'a>,
    },
    /// A tool call of the assistant.
    ToolUse {
        /// The call's id.
        id: Cow<'a, str>,
        /// The tool.
        name: Cow<'a, str>,
        /// Its input: a JSON object.
        input: Box<RawValue>,
    },
    /// A tool's result, in a user turn.
    ToolResult {
        /// The call answered.
        tool_use_id: Cow<'a, str>,
        /// The result.
        content: TurnContent<'a>,
    },
}

/// Where an image or document is.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Source<'a> {
    /// Inline, base64-encoded.
    Base64 {
        /// Its media type.
        media_type: Cow<'a, str>,
        /// Its bytes, base64.
        data: Cow<'a, str>,
    },
    /// At a URL.
    Url {
        /// The URL.
        url: Cow<'a, str>,
    },
}

/// A tool definition we write.
#[derive(Debug, Serialize)]
pub struct Tool<'a> {
    /// Its name.
    pub name: Cow<'a, str>,
    /// Its description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Cow<'a, str>>,
    /// Its JSON schema.
    pub input_schema: ToolSchema<'a>,
}

/// Tool choice we write.
#[derive(Debug, Serialize)]
pub struct ToolChoice<'a> {
    /// `auto`, `any`, `tool`, `none`.
    pub r#type: &'static str,
    /// The tool, for `tool`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Cow<'a, str>>,
    /// At most one tool call per answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_parallel_tool_use: Option<bool>,
}

/// Request metadata.
#[derive(Debug, Serialize)]
pub struct Metadata<'a> {
    /// An opaque end-user id.
    pub user_id: Cow<'a, str>,
}

// ---------------------------------------------------------------------------------------
// Answers and events we read.

/// A message (the answer of a non-streaming request).
#[derive(Debug, Deserialize)]
pub struct MessageIn<'a> {
    /// Message id (`msg_…`).
    #[serde(borrow, default)]
    pub id: Cow<'a, str>,
    /// The model that answered.
    #[serde(borrow, default)]
    pub model: Cow<'a, str>,
    /// Content blocks.
    #[serde(borrow, default)]
    pub content: Vec<BlockIn<'a>>,
    /// Why it stopped.
    #[serde(borrow, default)]
    pub stop_reason: Option<Cow<'a, str>>,
    /// Token usage.
    #[serde(default)]
    pub usage: UsageIn,
}

/// A content block, as read (answers, stream starts and inbound requests alike).
#[derive(Debug, Deserialize)]
pub struct BlockIn<'a> {
    /// `text`, `image`, `document`, `tool_use`, `tool_result`, `thinking`, …
    #[serde(borrow)]
    pub r#type: Cow<'a, str>,
    /// Text of a `text` block.
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
    /// Id of a `tool_use` block.
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    /// Tool of a `tool_use` block.
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    /// Input of a `tool_use` block.
    #[serde(borrow, default)]
    pub input: Option<&'a RawValue>,
    /// Source of an `image` or `document` block.
    #[serde(borrow, default)]
    pub source: Option<SourceIn<'a>>,
    /// Call answered by a `tool_result` block.
    #[serde(borrow, default)]
    pub tool_use_id: Option<Cow<'a, str>>,
    /// Content of a `tool_result` block.
    #[serde(borrow, default)]
    pub content: Option<OneOrMany<'a, BlockIn<'a>>>,
    /// A failed tool call.
    #[serde(default)]
    pub is_error: Option<bool>,
}

/// Where an image or document is, as read.
#[derive(Debug, Deserialize)]
pub struct SourceIn<'a> {
    /// `base64`, `url`, `text`, …
    #[serde(borrow)]
    pub r#type: Cow<'a, str>,
    /// Media type of inline data.
    #[serde(borrow, default)]
    pub media_type: Option<Cow<'a, str>>,
    /// Inline data (base64, or text for a `text` source).
    #[serde(borrow, default)]
    pub data: Option<Cow<'a, str>>,
    /// URL of a `url` source.
    #[serde(borrow, default)]
    pub url: Option<Cow<'a, str>>,
}

/// Token usage, as read. Stream deltas carry cumulative counts, some optional.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct UsageIn {
    /// Uncached input tokens.
    #[serde(default)]
    pub input_tokens: Option<u64>,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: Option<u64>,
    /// Input tokens written to the cache.
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    /// Input tokens read from the cache.
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
}

/// One stream event (`data:` of an SSE event).
#[derive(Debug, Deserialize)]
pub struct EventIn<'a> {
    /// `message_start`, `content_block_start`, `content_block_delta`,
    /// `content_block_stop`, `message_delta`, `message_stop`, `ping`, `error`.
    #[serde(borrow)]
    pub r#type: Cow<'a, str>,
    /// The message, on `message_start`.
    #[serde(borrow, default)]
    pub message: Option<MessageIn<'a>>,
    /// The block's position, on block events.
    #[serde(default)]
    pub index: Option<usize>,
    /// The block, on `content_block_start`.
    #[serde(borrow, default)]
    pub content_block: Option<BlockIn<'a>>,
    /// What changed, on `content_block_delta` and `message_delta`.
    #[serde(borrow, default)]
    pub delta: Option<DeltaIn<'a>>,
    /// Cumulative usage, on `message_delta`.
    #[serde(default)]
    pub usage: Option<UsageIn>,
    /// The error, on `error`.
    #[serde(borrow, default)]
    pub error: Option<ErrorIn<'a>>,
}

/// A delta, as read.
#[derive(Debug, Deserialize)]
pub struct DeltaIn<'a> {
    /// `text_delta`, `input_json_delta`, `thinking_delta`, … (absent on `message_delta`).
    #[serde(borrow, default)]
    pub r#type: Option<Cow<'a, str>>,
    /// Text of a `text_delta`.
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
    /// JSON piece of an `input_json_delta`.
    #[serde(borrow, default)]
    pub partial_json: Option<Cow<'a, str>>,
    /// Why it stopped, on `message_delta`.
    #[serde(borrow, default)]
    pub stop_reason: Option<Cow<'a, str>>,
}

/// An error object.
#[derive(Debug, Deserialize)]
pub struct ErrorIn<'a> {
    /// Its type.
    #[serde(borrow, default)]
    pub r#type: Option<Cow<'a, str>>,
    /// Its message.
    #[serde(borrow, default)]
    pub message: Option<Cow<'a, str>>,
}

// ---------------------------------------------------------------------------------------
// Requests we read (`/v1/messages` inbound).

/// A Messages request, as a client sent it.
#[derive(Debug, Deserialize)]
pub struct MessagesRequestIn<'a> {
    /// Turns.
    #[serde(borrow)]
    pub messages: Vec<TurnIn<'a>>,
    /// System prompt.
    #[serde(borrow, default)]
    pub system: Option<OneOrMany<'a, BlockIn<'a>>>,
    /// Output limit.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Stop sequences.
    #[serde(borrow, default)]
    pub stop_sequences: Option<Vec<Cow<'a, str>>>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Top-k sampling (OpenAI has none).
    #[serde(default)]
    pub top_k: Option<IgnoredAny>,
    /// Streaming.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Tools.
    #[serde(borrow, default)]
    pub tools: Option<Vec<ToolIn<'a>>>,
    /// Tool choice.
    #[serde(borrow, default)]
    pub tool_choice: Option<ToolChoiceIn<'a>>,
    /// Metadata.
    #[serde(borrow, default)]
    pub metadata: Option<MetadataIn<'a>>,
    /// Extended thinking (OpenAI chat has no equivalent).
    #[serde(borrow, default)]
    pub thinking: Option<TypeIn<'a>>,
}

/// A turn, as read.
#[derive(Debug, Deserialize)]
pub struct TurnIn<'a> {
    /// `user` or `assistant`.
    #[serde(borrow)]
    pub role: Cow<'a, str>,
    /// Text or blocks.
    #[serde(borrow)]
    pub content: OneOrMany<'a, BlockIn<'a>>,
}

/// A tool definition, as read.
#[derive(Debug, Deserialize)]
pub struct ToolIn<'a> {
    /// Absent or `custom` for client tools; a dated type for Anthropic's server tools.
    #[serde(borrow, default)]
    pub r#type: Option<Cow<'a, str>>,
    /// Its name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// Its description.
    #[serde(borrow, default)]
    pub description: Option<Cow<'a, str>>,
    /// Its JSON schema.
    #[serde(borrow, default)]
    pub input_schema: Option<&'a RawValue>,
}

/// Tool choice, as read.
#[derive(Debug, Deserialize)]
pub struct ToolChoiceIn<'a> {
    /// `auto`, `any`, `tool`, `none`.
    #[serde(borrow)]
    pub r#type: Cow<'a, str>,
    /// The tool, for `tool`.
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    /// At most one tool call per answer.
    #[serde(default)]
    pub disable_parallel_tool_use: Option<bool>,
}

/// Metadata, as read.
#[derive(Debug, Deserialize)]
pub struct MetadataIn<'a> {
    /// An opaque end-user id.
    #[serde(borrow, default)]
    pub user_id: Option<Cow<'a, str>>,
}

/// An object of which only `type` matters.
#[derive(Debug, Deserialize)]
pub struct TypeIn<'a> {
    /// Its `type`.
    #[serde(borrow)]
    pub r#type: Cow<'a, str>,
}

// ---------------------------------------------------------------------------------------
// Answers and events we write (`/v1/messages` inbound).

/// A message we write.
#[derive(Debug, Serialize)]
pub struct Message<'a> {
    /// Message id.
    pub id: &'a str,
    /// `message`.
    pub r#type: &'static str,
    /// `assistant`.
    pub role: &'static str,
    /// The model that answered.
    pub model: &'a str,
    /// Content blocks.
    pub content: Vec<Block<'a>>,
    /// Why it stopped.
    pub stop_reason: Option<&'static str>,
    /// The stop sequence hit (never known from OpenAI).
    pub stop_sequence: Option<()>,
    /// Token usage.
    pub usage: Usage,
}

/// Token usage we write.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Usage {
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from the cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
}

/// A stream event we write (its `type` is also the SSE event name).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event<'a> {
    /// The message begins (empty content).
    MessageStart {
        /// The message so far.
        message: Message<'a>,
    },
    /// A block begins.
    ContentBlockStart {
        /// Its position.
        index: usize,
        /// The block, empty.
        content_block: BlockStart<'a>,
    },
    /// A block grows.
    ContentBlockDelta {
        /// Its position.
        index: usize,
        /// What is new.
        delta: BlockDelta<'a>,
    },
    /// A block ends.
    ContentBlockStop {
        /// Its position.
        index: usize,
    },
    /// The message ends: why, and the usage.
    MessageDelta {
        /// Why it stopped.
        delta: MessageDelta,
        /// Cumulative usage.
        usage: Usage,
    },
    /// The end of the stream.
    MessageStop,
}

impl Event<'_> {
    /// Its SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            Event::MessageStart { .. } => "message_start",
            Event::ContentBlockStart { .. } => "content_block_start",
            Event::ContentBlockDelta { .. } => "content_block_delta",
            Event::ContentBlockStop { .. } => "content_block_stop",
            Event::MessageDelta { .. } => "message_delta",
            Event::MessageStop => "message_stop",
        }
    }
}

/// The empty block of `content_block_start`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockStart<'a> {
    /// Text.
    Text {
        /// `""`.
        text: &'static str,
    },
    /// A tool call.
    ToolUse {
        /// The call's id.
        id: &'a str,
        /// The tool.
        name: &'a str,
        /// `{}`.
        input: EmptyObject,
    },
}

/// A block delta we write.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockDelta<'a> {
    /// Text.
    TextDelta {
        /// The new text.
        text: &'a str,
    },
    /// A piece of a tool call's input JSON.
    InputJsonDelta {
        /// The piece.
        partial_json: &'a str,
    },
}

/// `message_delta`'s delta.
#[derive(Debug, Serialize)]
pub struct MessageDelta {
    /// Why it stopped.
    pub stop_reason: Option<&'static str>,
    /// Never known from OpenAI.
    pub stop_sequence: Option<()>,
}
