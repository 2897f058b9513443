//! OpenAI chat-completions wire types, as translators read and write them.
//!
//! Types named `…In` are read (they borrow from the bytes received: strings without
//! escapes and whole JSON values such as tool schemas are not copied); the others are
//! written (they borrow from what they were translated from). Unknown fields are ignored
//! on read. Only what some translation uses is modelled; a body forwarded untouched (the
//! OpenAI family) is never parsed here.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

// ---------------------------------------------------------------------------------------
// Requests.

/// A chat completion request, as a client sent it.
#[derive(Debug, Deserialize)]
pub struct ChatRequestIn<'a> {
    /// The messages.
    #[serde(borrow)]
    pub messages: Vec<MessageIn<'a>>,
    /// Legacy output limit.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Output limit.
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Top-k sampling (not OpenAI's, but vLLM's and Anthropic's).
    #[serde(default)]
    pub top_k: Option<u64>,
    /// Stop sequences.
    #[serde(borrow, default)]
    pub stop: Option<OneOrMany<'a, Cow<'a, str>>>,
    /// Streaming.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Streaming options.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Tools.
    #[serde(borrow, default)]
    pub tools: Option<Vec<ToolIn<'a>>>,
    /// Tool choice.
    #[serde(borrow, default)]
    pub tool_choice: Option<ToolChoiceIn<'a>>,
    /// `false` forbids several tool calls in one answer.
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    /// End-user id.
    #[serde(borrow, default)]
    pub user: Option<Cow<'a, str>>,
    /// Unsupported by some providers: token biases.
    #[serde(default)]
    pub logit_bias: Option<IgnoredAny>,
    /// Unsupported by some providers.
    #[serde(default)]
    pub presence_penalty: Option<f64>,
    /// Unsupported by some providers.
    #[serde(default)]
    pub frequency_penalty: Option<f64>,
    /// Unsupported by some providers.
    #[serde(default)]
    pub logprobs: Option<bool>,
    /// Unsupported by some providers.
    #[serde(default)]
    pub top_logprobs: Option<IgnoredAny>,
    /// Number of choices.
    #[serde(default)]
    pub n: Option<u64>,
    /// Sampling seed (Gemini takes it; others cannot).
    #[serde(default)]
    pub seed: Option<i64>,
    /// `{"type": "text" | "json_object" | "json_schema", …}`.
    #[serde(borrow, default)]
    pub response_format: Option<ResponseFormatIn<'a>>,
    /// OpenAI's processing tier.
    #[serde(default)]
    pub service_tier: Option<IgnoredAny>,
    /// Legacy function calling.
    #[serde(default)]
    pub functions: Option<IgnoredAny>,
    /// Legacy function calling.
    #[serde(default)]
    pub function_call: Option<IgnoredAny>,
    /// Reasoning effort of OpenAI's reasoning models.
    #[serde(default)]
    pub reasoning_effort: Option<IgnoredAny>,
    /// Audio output.
    #[serde(default)]
    pub audio: Option<IgnoredAny>,
    /// Output modalities.
    #[serde(borrow, default)]
    pub modalities: Option<Vec<Cow<'a, str>>>,
    /// Predicted outputs.
    #[serde(default)]
    pub prediction: Option<IgnoredAny>,
    /// OpenAI's built-in web search.
    #[serde(default)]
    pub web_search_options: Option<IgnoredAny>,
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct StreamOptions {
    /// A final chunk with usage and no choices.
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// `response_format`.
#[derive(Debug, Deserialize)]
pub struct ResponseFormatIn<'a> {
    /// `text`, `json_object` or `json_schema`.
    #[serde(borrow)]
    pub r#type: Cow<'a, str>,
    /// With `json_schema`: the schema.
    #[serde(borrow, default)]
    pub json_schema: Option<JsonSchemaIn<'a>>,
}

/// `response_format.json_schema`.
#[derive(Debug, Deserialize)]
pub struct JsonSchemaIn<'a> {
    /// The JSON schema of the output, as written.
    #[serde(borrow, default)]
    pub schema: Option<&'a RawValue>,
}

/// One message of a request.
#[derive(Debug, Deserialize)]
pub struct MessageIn<'a> {
    /// `system`, `developer`, `user`, `assistant`, `tool` (or legacy `function`).
    #[serde(borrow)]
    pub role: Cow<'a, str>,
    /// Text, or content parts.
    #[serde(borrow, default)]
    pub content: Option<OneOrMany<'a, PartIn<'a>>>,
    /// An assistant's tool calls.
    #[serde(borrow, default)]
    pub tool_calls: Option<Vec<ToolCallIn<'a>>>,
    /// The call a `tool` message answers.
    #[serde(borrow, default)]
    pub tool_call_id: Option<Cow<'a, str>>,
    /// The function a legacy `function` message answers.
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
}

/// One content part.
#[derive(Debug, Deserialize)]
pub struct PartIn<'a> {
    /// `text`, `image_url`, `input_audio`, `file`, `refusal`.
    #[serde(borrow)]
    pub r#type: Cow<'a, str>,
    /// Text of a `text` part.
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
    /// Text of a `refusal` part.
    #[serde(borrow, default)]
    pub refusal: Option<Cow<'a, str>>,
    /// An `image_url` part's image.
    #[serde(borrow, default)]
    pub image_url: Option<ImageUrl<'a>>,
    /// A `file` part's file.
    #[serde(borrow, default)]
    pub file: Option<FileIn<'a>>,
    /// An `input_audio` part's audio.
    #[serde(borrow, default)]
    pub input_audio: Option<InputAudioIn<'a>>,
}

/// `image_url`: `{"url": …}`, or (as some clients send it) the URL itself.
#[derive(Debug, Serialize)]
pub struct ImageUrl<'a> {
    /// A `data:` or `http(s):` URL.
    pub url: Cow<'a, str>,
}

impl<'de: 'a, 'a> Deserialize<'de> for ImageUrl<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Url<'a> {
            #[serde(borrow)]
            url: Cow<'a, str>,
        }
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = ImageUrl<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a URL or a {\"url\"} object")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(ImageUrl {
                    url: Cow::Borrowed(v),
                })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ImageUrl {
                    url: Cow::Owned(v.to_owned()),
                })
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
                let u = Url::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(ImageUrl { url: u.url })
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// An `input_audio` part's audio.
#[derive(Debug, Deserialize)]
pub struct InputAudioIn<'a> {
    /// Base64 data.
    #[serde(borrow, default)]
    pub data: Option<Cow<'a, str>>,
    /// `wav`, `mp3`, …
    #[serde(borrow, default)]
    pub format: Option<Cow<'a, str>>,
}

/// A `file` part's file.
#[derive(Debug, Deserialize)]
pub struct FileIn<'a> {
    /// A `data:` URL.
    #[serde(borrow, default)]
    pub file_data: Option<Cow<'a, str>>,
    /// An uploaded file (OpenAI's Files API: nothing another provider can read).
    #[serde(borrow, default)]
    pub file_id: Option<Cow<'a, str>>,
}

/// A tool call of an assistant message (or of an answer).
#[derive(Debug, Deserialize)]
pub struct ToolCallIn<'a> {
    /// The call's id.
    #[serde(borrow, default)]
    pub id: Cow<'a, str>,
    /// The function called.
    #[serde(borrow)]
    pub function: FunctionCallIn<'a>,
}

/// The function of a tool call.
#[derive(Debug, Deserialize)]
pub struct FunctionCallIn<'a> {
    /// Its name.
    #[serde(borrow, default)]
    pub name: Cow<'a, str>,
    /// Its arguments: a JSON text in a string (`null` reads as none; an object, which
    /// some clients send, as its JSON text).
    #[serde(borrow, default, deserialize_with = "arguments")]
    pub arguments: Cow<'a, str>,
}

/// A tool call's `arguments`: a string, `null` (empty), or an object (its JSON text).
fn arguments<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Cow<'a, str>, D::Error> {
    struct V<'a>(PhantomData<&'a ()>);
    impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
        type Value = Cow<'a, str>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(""))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(""))
        }
        fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
            let object = serde_json::Map::<String, serde_json::Value>::deserialize(
                de::value::MapAccessDeserializer::new(map),
            )?;
            Ok(Cow::Owned(serde_json::Value::Object(object).to_string()))
        }
    }
    d.deserialize_any(V(PhantomData))
}

/// A tool definition.
#[derive(Debug, Deserialize)]
pub struct ToolIn<'a> {
    /// `function` (some clients leave it out).
    #[serde(borrow, default)]
    pub r#type: Option<Cow<'a, str>>,
    /// The function.
    #[serde(borrow, default)]
    pub function: Option<FunctionDefIn<'a>>,
}

/// A function definition.
#[derive(Debug, Deserialize)]
pub struct FunctionDefIn<'a> {
    /// Its name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// Its description.
    #[serde(borrow, default)]
    pub description: Option<Cow<'a, str>>,
    /// Its JSON schema, as written.
    #[serde(borrow, default)]
    pub parameters: Option<&'a RawValue>,
}

/// `tool_choice`: a mode or a named function.
#[derive(Debug)]
pub enum ToolChoiceIn<'a> {
    /// `"auto"`, `"none"`, `"required"`.
    Mode(Cow<'a, str>),
    /// `{"type": "function", "function": {"name"}}`.
    Function(Cow<'a, str>),
}

impl<'de: 'a, 'a> Deserialize<'de> for ToolChoiceIn<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Named<'a> {
            #[serde(borrow)]
            function: NameOnly<'a>,
        }
        #[derive(Deserialize)]
        struct NameOnly<'a> {
            #[serde(borrow)]
            name: Cow<'a, str>,
        }
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = ToolChoiceIn<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a {\"type\": \"function\"} object")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(ToolChoiceIn::Mode(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ToolChoiceIn::Mode(Cow::Owned(v.to_owned())))
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
                let named = Named::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(ToolChoiceIn::Function(named.function.name))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// A string, or a list of `T` (message content, `stop`).
#[derive(Debug)]
pub enum OneOrMany<'a, T> {
    /// A string.
    One(Cow<'a, str>),
    /// A list.
    Many(Vec<T>),
}

impl<'de: 'a, 'a, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<'a, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a, T>(PhantomData<(&'a (), T)>);
        impl<'de: 'a, 'a, T: Deserialize<'de>> Visitor<'de> for V<'a, T> {
            type Value = OneOrMany<'a, T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(OneOrMany::One(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(OneOrMany::One(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(OneOrMany::Many(items))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// Written by us: a chat completion request (the `/v1/messages` front leg).
#[derive(Debug, Serialize)]
pub struct ChatRequest<'a> {
    /// The upstream model.
    pub model: &'a str,
    /// The messages.
    pub messages: Vec<Message<'a>>,
    /// Output limit (older servers' name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Output limit (reasoning models' name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    /// Stop sequences.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<Vec<Cow<'a, str>>>,
    /// Sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Streaming.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// Streaming options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Tools.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool<'a>>,
    /// Tool choice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice<'a>>,
    /// `false` forbids several tool calls in one answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// End-user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Cow<'a, str>>,
}

/// One message we write.
#[derive(Debug, Serialize)]
pub struct Message<'a> {
    /// Its role.
    pub role: &'static str,
    /// Text or parts (absent for an assistant message with only tool calls).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Content<'a>>,
    /// An assistant's tool calls.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall<'a>>,
    /// The call a `tool` message answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<Cow<'a, str>>,
}

/// Message content we write.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Content<'a> {
    /// Text.
    Text(Cow<'a, str>),
    /// Parts.
    Parts(Vec<Part<'a>>),
}

/// A content part we write.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part<'a> {
    /// Text.
    Text {
        /// The text.
        text: Cow<'a, str>,
    },
    /// An image.
    ImageUrl {
        /// The image.
        image_url: ImageUrl<'a>,
    },
    /// A file (a PDF as a `data:` URL).
    File {
        /// The file.
        file: File<'a>,
    },
}

/// A file we write.
#[derive(Debug, Serialize)]
pub struct File<'a> {
    /// A name for it.
    pub filename: &'a str,
    /// A `data:` URL.
    pub file_data: String,
}

/// A tool call we write.
#[derive(Debug, Serialize)]
pub struct ToolCall<'a> {
    /// The call's id.
    pub id: Cow<'a, str>,
    /// `function`.
    pub r#type: &'static str,
    /// The function called.
    pub function: FunctionCall<'a>,
}

/// The function of a tool call we write.
#[derive(Debug, Serialize)]
pub struct FunctionCall<'a> {
    /// Its name.
    pub name: Cow<'a, str>,
    /// Its arguments (a JSON text).
    pub arguments: Cow<'a, str>,
}

/// A tool definition we write.
#[derive(Debug, Serialize)]
pub struct Tool<'a> {
    /// `function`.
    pub r#type: &'static str,
    /// The function.
    pub function: FunctionDef<'a>,
}

/// A function definition we write.
#[derive(Debug, Serialize)]
pub struct FunctionDef<'a> {
    /// Its name.
    pub name: Cow<'a, str>,
    /// Its description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Cow<'a, str>>,
    /// Its JSON schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<&'a RawValue>,
}

/// A tool's input schema as a provider wants it: the client's JSON schema as written, or
/// for a tool without parameters the empty object schema (Anthropic and Bedrock require
/// one).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ToolSchema<'a> {
    /// As the client wrote it.
    Raw(&'a RawValue),
    /// `{"type": "object", "properties": {}}`.
    Empty {
        /// `object`.
        r#type: &'static str,
        /// No properties.
        properties: EmptyObject,
    },
}

impl<'a> ToolSchema<'a> {
    /// The schema of a function's `parameters`, if it has any.
    pub fn of(parameters: Option<&'a RawValue>) -> Self {
        parameters.map_or(
            ToolSchema::Empty {
                r#type: "object",
                properties: EmptyObject {},
            },
            ToolSchema::Raw,
        )
    }
}

/// `{}`.
#[derive(Debug, Default, Serialize)]
pub struct EmptyObject {}

/// `tool_choice` we write.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ToolChoice<'a> {
    /// `"auto"`, `"none"`, `"required"`.
    Mode(&'static str),
    /// A named function.
    Function {
        /// `function`.
        r#type: &'static str,
        /// The function.
        function: NamedFunction<'a>,
    },
}

/// `{"name": …}`.
#[derive(Debug, Serialize)]
pub struct NamedFunction<'a> {
    /// The function's name.
    pub name: Cow<'a, str>,
}

// ---------------------------------------------------------------------------------------
// Answers.

/// Written by us: a chat completion.
#[derive(Debug, Serialize)]
pub struct ChatCompletion<'a> {
    /// Answer id.
    pub id: &'a str,
    /// `chat.completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The model that answered.
    pub model: &'a str,
    /// The choices (one unless `n` asked for more).
    pub choices: Vec<Choice<'a>>,
    /// Token usage (absent when the upstream reported none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// A choice of a completion we write.
#[derive(Debug, Serialize)]
pub struct Choice<'a> {
    /// Its position among the choices.
    pub index: u32,
    /// The message.
    pub message: AnswerMessage<'a>,
    /// Always `null`.
    pub logprobs: Option<()>,
    /// Why it stopped.
    pub finish_reason: Option<&'static str>,
}

impl<'a> Choice<'a> {
    /// The assistant's answer: text, reasoning and tool calls, and why it stopped.
    pub fn assistant(
        index: u32,
        content: Option<Cow<'a, str>>,
        reasoning_content: Option<Cow<'a, str>>,
        tool_calls: Vec<ToolCall<'a>>,
        finish_reason: Option<&'static str>,
    ) -> Self {
        Choice {
            index,
            message: AnswerMessage {
                role: "assistant",
                content,
                reasoning_content,
                tool_calls,
                refusal: None,
            },
            logprobs: None,
            finish_reason,
        }
    }
}

/// The message of a completion we write.
#[derive(Debug, Serialize)]
pub struct AnswerMessage<'a> {
    /// `assistant`.
    pub role: &'static str,
    /// The text (`null` when there is none).
    pub content: Option<Cow<'a, str>>,
    /// The model's reasoning (thought summaries), when the provider returns it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<Cow<'a, str>>,
    /// Tool calls.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall<'a>>,
    /// Always `null`.
    pub refusal: Option<()>,
}

/// Token usage we write.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Usage {
    /// Input tokens (cached ones included).
    pub prompt_tokens: u64,
    /// Output tokens.
    pub completion_tokens: u64,
    /// Their sum.
    pub total_tokens: u64,
    /// Cached input tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    /// Reasoning tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
}

/// `completion_tokens_details`.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct CompletionTokensDetails {
    /// Output tokens spent thinking (counted in `completion_tokens`).
    pub reasoning_tokens: u64,
}

/// `prompt_tokens_details`.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    /// Input tokens read from the cache.
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

/// Written by us: one stream chunk.
#[derive(Debug, Serialize)]
pub struct Chunk<'a> {
    /// Answer id.
    pub id: &'a str,
    /// `chat.completion.chunk`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The model that answers.
    pub model: &'a str,
    /// One choice, or none (the usage chunk).
    pub choices: &'a [ChunkChoice<'a>],
    /// Usage, on the last chunk only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// The choice of a chunk we write.
#[derive(Debug, Serialize)]
pub struct ChunkChoice<'a> {
    /// Which choice (0 unless several were asked for).
    pub index: u32,
    /// What is new.
    pub delta: Delta<'a>,
    /// Always `null`.
    pub logprobs: Option<()>,
    /// Why it stopped, on the finishing chunk.
    pub finish_reason: Option<&'static str>,
}

/// A chunk's delta we write.
#[derive(Debug, Default, Serialize)]
pub struct Delta<'a> {
    /// `assistant`, on the first chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// Text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
    /// The model's reasoning, when the provider streams it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<&'a str>,
    /// A tool call's start or arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

/// A tool call delta we write.
#[derive(Debug, Serialize)]
pub struct ToolCallDelta<'a> {
    /// Which tool call of the answer (counting tool calls only).
    pub index: usize,
    /// Its id, on its first delta.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    /// `function`, on its first delta.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#type: Option<&'static str>,
    /// Name (first delta) and arguments (a piece of JSON text).
    pub function: FunctionDelta<'a>,
}

/// A function delta we write.
#[derive(Debug, Serialize)]
pub struct FunctionDelta<'a> {
    /// Its name, on its first delta.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    /// A piece of its arguments.
    pub arguments: &'a str,
}

/// A chat completion, as an upstream sent it.
#[derive(Debug, Deserialize)]
pub struct ChatCompletionIn<'a> {
    /// Answer id.
    #[serde(borrow, default)]
    pub id: Cow<'a, str>,
    /// The model that answered.
    #[serde(borrow, default)]
    pub model: Cow<'a, str>,
    /// Choices (the first is used).
    #[serde(borrow, default)]
    pub choices: Vec<ChoiceIn<'a>>,
    /// Token usage.
    #[serde(default)]
    pub usage: Option<UsageIn>,
}

/// A choice of an upstream's completion.
#[derive(Debug, Deserialize)]
pub struct ChoiceIn<'a> {
    /// The message.
    #[serde(borrow)]
    pub message: AnswerMessageIn<'a>,
    /// Why it stopped.
    #[serde(borrow, default)]
    pub finish_reason: Option<Cow<'a, str>>,
}

/// The message of an upstream's completion.
#[derive(Debug, Deserialize)]
pub struct AnswerMessageIn<'a> {
    /// Text.
    #[serde(borrow, default)]
    pub content: Option<Cow<'a, str>>,
    /// A refusal.
    #[serde(borrow, default)]
    pub refusal: Option<Cow<'a, str>>,
    /// Tool calls.
    #[serde(borrow, default)]
    pub tool_calls: Option<Vec<ToolCallIn<'a>>>,
}

/// Token usage, as an upstream sent it.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct UsageIn {
    /// Input tokens.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Cached input tokens.
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

/// A stream chunk, as an upstream sent it (or an error event).
#[derive(Debug, Deserialize)]
pub struct ChunkIn<'a> {
    /// Answer id.
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    /// The model.
    #[serde(borrow, default)]
    pub model: Option<Cow<'a, str>>,
    /// Choices (the first is used).
    #[serde(borrow, default)]
    pub choices: Vec<ChunkChoiceIn<'a>>,
    /// Usage (the last chunk, when asked for).
    #[serde(default)]
    pub usage: Option<UsageIn>,
    /// An error event.
    #[serde(borrow, default)]
    pub error: Option<ErrorIn<'a>>,
}

/// A chunk's choice, as an upstream sent it.
#[derive(Debug, Deserialize)]
pub struct ChunkChoiceIn<'a> {
    /// What is new.
    #[serde(borrow, default)]
    pub delta: Option<DeltaIn<'a>>,
    /// Why it stopped.
    #[serde(borrow, default)]
    pub finish_reason: Option<Cow<'a, str>>,
}

/// A chunk's delta, as an upstream sent it.
#[derive(Debug, Deserialize)]
pub struct DeltaIn<'a> {
    /// Text.
    #[serde(borrow, default)]
    pub content: Option<Cow<'a, str>>,
    /// A refusal.
    #[serde(borrow, default)]
    pub refusal: Option<Cow<'a, str>>,
    /// Tool call pieces.
    #[serde(borrow, default)]
    pub tool_calls: Option<Vec<ToolCallDeltaIn<'a>>>,
}

/// A tool call piece, as an upstream sent it.
#[derive(Debug, Deserialize)]
pub struct ToolCallDeltaIn<'a> {
    /// Which tool call.
    #[serde(default)]
    pub index: Option<usize>,
    /// Its id (first piece).
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    /// Name and arguments.
    #[serde(borrow, default)]
    pub function: Option<FunctionDeltaIn<'a>>,
}

/// A function piece, as an upstream sent it.
#[derive(Debug, Deserialize)]
pub struct FunctionDeltaIn<'a> {
    /// Its name (first piece).
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    /// A piece of its arguments.
    #[serde(borrow, default)]
    pub arguments: Option<Cow<'a, str>>,
}

/// An OpenAI-shaped error object.
#[derive(Debug, Deserialize)]
pub struct ErrorIn<'a> {
    /// The message.
    #[serde(borrow, default)]
    pub message: Option<Cow<'a, str>>,
    /// The type.
    #[serde(borrow, default)]
    pub r#type: Option<Cow<'a, str>>,
}
