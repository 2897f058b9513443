//! The OpenAI side of a translation, shared by the Gemini and Bedrock translators: the
//! translation error, the caller's options, reading an OpenAI chat request into the
//! borrowing wire types of [`crate::providers::openai::wire`] ([`parse_chat`]) and the
//! helpers over them (messages, content parts, tool calls with their arguments as raw
//! JSON, stop, token limits), and writing OpenAI answers and chunks with the typed write
//! structs there (usage, ids). No `serde_json::Value` tree is built for a chat request or
//! answer. Nothing here is specific to one provider.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use http::StatusCode;
use serde_json::error::Category;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::errors::ApiError;
use crate::providers::openai::wire::{
    self as openai, ChatRequestIn, MessageIn, OneOrMany, PartIn, ToolChoiceIn,
};

/// Why an OpenAI request cannot be translated for a provider, or a provider's answer
/// cannot be translated back.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TranslateError {
    /// The request body is not a JSON object of the expected shape.
    #[error("invalid request body: {0}")]
    InvalidBody(String),
    /// A parameter has a value the translation cannot use.
    #[error("invalid `{param}`: {message}")]
    InvalidParam {
        /// The parameter, as a path into the request (`messages[2].content`).
        param: String,
        /// What is wrong with it.
        message: String,
    },
    /// A parameter the provider cannot take, present while `dropParams` is off.
    #[error(
        "`{param}` is not supported by {provider}; remove it, or turn on the router's `dropParams` to drop it"
    )]
    Unsupported {
        /// The parameter.
        param: String,
        /// The provider's name.
        provider: &'static str,
    },
    /// The provider's answer is not of the shape its API documents.
    #[error("unexpected answer from {provider}: {message}")]
    UpstreamBody {
        /// The provider's name.
        provider: &'static str,
        /// What was wrong with it.
        message: String,
    },
}

impl TranslateError {
    /// An invalid parameter.
    pub fn param(param: impl Into<String>, message: impl Into<String>) -> Self {
        TranslateError::InvalidParam {
            param: param.into(),
            message: message.into(),
        }
    }
}

impl From<TranslateError> for ApiError {
    fn from(e: TranslateError) -> Self {
        let message = e.to_string();
        match e {
            TranslateError::InvalidBody(_) => ApiError::bad_request(message),
            TranslateError::InvalidParam { param, .. }
            | TranslateError::Unsupported { param, .. } => ApiError::invalid_param(&param, message),
            TranslateError::UpstreamBody { .. } => ApiError::bad_gateway(message),
        }
    }
}

/// How a chat request is translated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChatOptions {
    /// Drop parameters the provider cannot take instead of refusing the request (the
    /// router's `dropParams`).
    pub drop_params: bool,
    /// The output token limit to send when the request sets none (the deployment's
    /// `modelInfo.maxOutputTokens`).
    pub default_max_tokens: Option<u32>,
}

/// A translated request and the parameters dropped on the way.
#[derive(Debug)]
pub struct Translated<T> {
    /// The provider request.
    pub body: T,
    /// Parameters the request had that the provider cannot take, dropped because
    /// [`ChatOptions::drop_params`] was on.
    pub dropped: Vec<String>,
}

/// Collects unsupported parameters: refuses the first one unless dropping is on.
#[derive(Debug)]
pub(crate) struct Unsupported<'o> {
    options: &'o ChatOptions,
    provider: &'static str,
    pub(crate) dropped: Vec<String>,
}

impl<'o> Unsupported<'o> {
    pub(crate) fn new(options: &'o ChatOptions, provider: &'static str) -> Self {
        Self {
            options,
            provider,
            dropped: Vec::new(),
        }
    }

    /// Records `param` as unsupported: an error unless `dropParams` is on.
    pub(crate) fn param(&mut self, param: impl Into<String>) -> Result<(), TranslateError> {
        let param = param.into();
        if !self.options.drop_params {
            return Err(TranslateError::Unsupported {
                param,
                provider: self.provider,
            });
        }
        if !self.dropped.contains(&param) {
            self.dropped.push(param);
        }
        Ok(())
    }

    /// Records every parameter of `params` the request sets (not to `null`), in order.
    pub(crate) fn present(
        &mut self,
        req: &ChatRequestIn<'_>,
        params: &[&str],
    ) -> Result<(), TranslateError> {
        for p in params {
            if is_set(req, p) {
                self.param(*p)?;
            }
        }
        Ok(())
    }
}

/// Reads an OpenAI chat request body into the borrowing wire types (strings without
/// escapes, tool schemas and the like are not copied).
///
/// A body that is not a JSON object is [`TranslateError::InvalidBody`]; a value of the
/// wrong type is [`TranslateError::InvalidParam`] naming its path (`temperature`,
/// `messages[0].content`). The path is found by reading the body a second time, on the
/// error path only.
pub fn parse_chat(body: &[u8]) -> Result<ChatRequestIn<'_>, TranslateError> {
    // serde reads a struct from an array too: refuse anything but an object first.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(TranslateError::InvalidBody(
            "the body must be a JSON object".to_owned(),
        ));
    }
    serde_json::from_slice(body).map_err(|_| located(body))
}

/// The error of a body [`parse_chat`] could not read, with the parameter's path.
#[cold]
fn located(body: &[u8]) -> TranslateError {
    let mut de = serde_json::Deserializer::from_slice(body);
    let e = match serde_path_to_error::deserialize::<_, ChatRequestIn<'_>>(&mut de) {
        Ok(_) => {
            return TranslateError::InvalidBody(match de.end() {
                Err(e) => e.to_string(),
                Ok(()) => "unreadable chat completion request".to_owned(),
            });
        }
        Err(e) => e,
    };
    let path = e.path().to_string();
    let inner = e.into_inner();
    if inner.classify() != Category::Data {
        return TranslateError::InvalidBody(inner.to_string());
    }
    let message = inner.to_string();
    if path != "." {
        return TranslateError::param(path, message);
    }
    // A required key missing at the top level: the error names it, the path is empty.
    match message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
    {
        Some((field, _)) => TranslateError::param(field.to_owned(), "is required"),
        None => TranslateError::InvalidBody(message),
    }
}

/// The request body as a JSON object (embeddings, still read as a tree).
pub(crate) fn object(body: &Value) -> Result<&Map<String, Value>, TranslateError> {
    body.as_object()
        .ok_or_else(|| TranslateError::InvalidBody("the body must be a JSON object".to_owned()))
}

/// `messages`, non-empty.
pub(crate) fn messages<'a>(
    req: &'a ChatRequestIn<'a>,
) -> Result<&'a [MessageIn<'a>], TranslateError> {
    if req.messages.is_empty() {
        return Err(TranslateError::param("messages", "must not be empty"));
    }
    Ok(&req.messages)
}

/// True when the request sets `param` (to anything but `null`); false for names this
/// function does not know (every provider's list is checked by its tests).
pub(crate) fn is_set(req: &ChatRequestIn<'_>, param: &str) -> bool {
    match param {
        "logit_bias" => req.logit_bias.is_some(),
        "logprobs" => req.logprobs.is_some(),
        "top_logprobs" => req.top_logprobs.is_some(),
        "presence_penalty" => req.presence_penalty.is_some(),
        "frequency_penalty" => req.frequency_penalty.is_some(),
        "seed" => req.seed.is_some(),
        "top_k" => req.top_k.is_some(),
        "audio" => req.audio.is_some(),
        "modalities" => req.modalities.is_some(),
        "prediction" => req.prediction.is_some(),
        "service_tier" => req.service_tier.is_some(),
        "reasoning_effort" => req.reasoning_effort.is_some(),
        "web_search_options" => req.web_search_options.is_some(),
        "functions" => req.functions.is_some(),
        "function_call" => req.function_call.is_some(),
        _ => false,
    }
}

/// An optional count parameter that must fit a `u32`.
pub(crate) fn fit_u32(value: Option<u64>, key: &str) -> Result<Option<u32>, TranslateError> {
    value
        .map(|n| {
            u32::try_from(n)
                .map_err(|_| TranslateError::param(key, "must be a non-negative integer"))
        })
        .transpose()
}

/// An optional non-negative integer parameter that fits a `u32` (embeddings' tree).
pub(crate) fn count(body: &Map<String, Value>, key: &str) -> Result<Option<u32>, TranslateError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| TranslateError::param(key, "must be a non-negative integer")),
    }
}

/// The output token limit: `max_completion_tokens`, else `max_tokens`, else the default.
pub(crate) fn max_tokens(
    req: &ChatRequestIn<'_>,
    options: &ChatOptions,
) -> Result<Option<u32>, TranslateError> {
    Ok(fit_u32(req.max_completion_tokens, "max_completion_tokens")?
        .or(fit_u32(req.max_tokens, "max_tokens")?)
        .or(options.default_max_tokens))
}

/// `stop`: a string or an array of strings.
pub(crate) fn stop<'a>(req: &'a ChatRequestIn<'a>) -> Vec<&'a str> {
    match &req.stop {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s.as_ref()],
        Some(OneOrMany::Many(items)) => items.iter().map(AsRef::as_ref).collect(),
    }
}

/// One part of a message's content.
#[derive(Debug)]
pub(crate) enum ContentPart<'a> {
    /// Text.
    Text(&'a str),
    /// An image by URL (`data:` or remote).
    Image(&'a str),
    /// Audio, base64 data and its format (`wav`, `mp3`).
    Audio { data: &'a str, format: &'a str },
    /// A file, as a `data:` URL.
    File(&'a str),
}

/// A message's `content`: a string, an array of parts, or absent/null (no parts).
pub(crate) fn content_parts<'a>(
    message: &'a MessageIn<'a>,
    i: usize,
) -> Result<Vec<ContentPart<'a>>, TranslateError> {
    match &message.content {
        None => Ok(Vec::new()),
        Some(OneOrMany::One(s)) => Ok(vec![ContentPart::Text(s)]),
        Some(OneOrMany::Many(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| {
                content_part(p)
                    .map_err(|m| TranslateError::param(format!("messages[{i}].content[{j}]"), m))
            })
            .collect(),
    }
}

fn content_part<'a>(p: &'a PartIn<'a>) -> Result<ContentPart<'a>, String> {
    match p.r#type.as_ref() {
        "text" => p
            .text
            .as_deref()
            .map(ContentPart::Text)
            .ok_or_else(|| "a text part needs a string `text`".to_owned()),
        // An assistant's refusal, sent back as history, is text to the model.
        "refusal" => p
            .refusal
            .as_deref()
            .map(ContentPart::Text)
            .ok_or_else(|| "a refusal part needs a string `refusal`".to_owned()),
        "image_url" => p
            .image_url
            .as_ref()
            .map(|i| ContentPart::Image(&i.url))
            .ok_or_else(|| "an image_url part needs `image_url.url`".to_owned()),
        "input_audio" => match p.input_audio.as_ref().map(|a| (&a.data, &a.format)) {
            Some((Some(data), Some(format))) => Ok(ContentPart::Audio { data, format }),
            _ => Err("an input_audio part needs `input_audio.data` and `.format`".to_owned()),
        },
        "file" => p
            .file
            .as_ref()
            .and_then(|f| f.file_data.as_deref())
            .map(ContentPart::File)
            .ok_or_else(|| "only files given inline as `file.file_data` are supported".to_owned()),
        other => Err(format!("content parts of type `{other}` are not supported")),
    }
}

/// A message's content as text only (system messages, tool results).
pub(crate) fn text_parts<'a>(
    message: &'a MessageIn<'a>,
    i: usize,
) -> Result<Vec<&'a str>, TranslateError> {
    content_parts(message, i)?
        .into_iter()
        .map(|p| match p {
            ContentPart::Text(t) => Ok(t),
            _ => Err(TranslateError::param(
                format!("messages[{i}].content"),
                "only text is supported in this message",
            )),
        })
        .collect()
}

/// A message's text, joined: borrowed when it is one piece.
pub(crate) fn text<'a>(
    message: &'a MessageIn<'a>,
    i: usize,
) -> Result<Cow<'a, str>, TranslateError> {
    Ok(match text_parts(message, i)?.as_slice() {
        [] => Cow::Borrowed(""),
        [one] => Cow::Borrowed(one),
        many => Cow::Owned(many.concat()),
    })
}

/// `data:<mime>;base64,<data>` split into the media type and the base64 data.
pub(crate) fn data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mime = meta.strip_suffix(";base64")?;
    let mime = mime.split(';').next().unwrap_or(mime);
    (!mime.is_empty()).then_some((mime, data))
}

/// A media type guessed from a URL's file extension.
pub(crate) fn mime_from_extension(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        "wav" => "audio/wav",
        "mp3" => "audio/mp3",
        "flac" => "audio/flac",
        "mp4" => "video/mp4",
        "txt" => "text/plain",
        _ => return None,
    })
}

/// One tool call of an assistant message.
#[derive(Debug)]
pub(crate) struct ToolCall<'a> {
    pub(crate) id: &'a str,
    pub(crate) name: &'a str,
    /// The arguments: a JSON object, as the client wrote it inside the string.
    pub(crate) arguments: &'a RawValue,
}

/// `{}`.
pub(crate) fn empty_object() -> &'static RawValue {
    static EMPTY: LazyLock<Box<RawValue>> =
        LazyLock::new(|| RawValue::from_string("{}".to_owned()).unwrap_or_default());
    &EMPTY
}

/// `text` as raw JSON when it is a JSON object (surrounding whitespace left out).
pub(crate) fn raw_object(text: &str) -> Option<&RawValue> {
    let t = text.trim();
    if !t.starts_with('{') {
        return None;
    }
    serde_json::from_str::<&RawValue>(t).ok()
}

/// A tool result's text as raw JSON when it is a JSON object (borrowed from the request
/// when the text is), else the text back.
pub(crate) fn json_result(text: Cow<'_, str>) -> Result<Cow<'_, RawValue>, Cow<'_, str>> {
    match text {
        Cow::Borrowed(t) => raw_object(t).map(Cow::Borrowed).ok_or(Cow::Borrowed(t)),
        Cow::Owned(t) => match raw_object(&t) {
            Some(raw) => Ok(Cow::Owned(raw.to_owned())),
            None => Err(Cow::Owned(t)),
        },
    }
}

/// An assistant message's `tool_calls`.
pub(crate) fn tool_calls<'a>(
    message: &'a MessageIn<'a>,
    i: usize,
) -> Result<Vec<ToolCall<'a>>, TranslateError> {
    let Some(calls) = &message.tool_calls else {
        return Ok(Vec::new());
    };
    calls
        .iter()
        .enumerate()
        .map(|(j, c)| {
            let param = || format!("messages[{i}].tool_calls[{j}]");
            if c.function.name.is_empty() {
                return Err(TranslateError::param(
                    param(),
                    "needs a string `function.name`",
                ));
            }
            let arguments = if c.function.arguments.trim().is_empty() {
                empty_object()
            } else {
                raw_object(&c.function.arguments).ok_or_else(|| {
                    TranslateError::param(
                        format!("{}.function.arguments", param()),
                        "must be a JSON object encoded as a string",
                    )
                })?
            };
            Ok(ToolCall {
                id: &c.id,
                name: &c.function.name,
                arguments,
            })
        })
        .collect()
}

/// The tool name of every tool call id in `messages` (tool results name the call by id,
/// some providers need the function's name).
pub(crate) fn tool_names<'a>(messages: &'a [MessageIn<'a>]) -> HashMap<&'a str, &'a str> {
    let mut names = HashMap::new();
    for c in messages.iter().flat_map(|m| m.tool_calls.iter().flatten()) {
        names.insert(c.id.as_ref(), c.function.name.as_ref());
    }
    names
}

/// A tool message's `tool_call_id`.
pub(crate) fn tool_call_id<'a>(
    message: &'a MessageIn<'a>,
    i: usize,
) -> Result<&'a str, TranslateError> {
    message.tool_call_id.as_deref().ok_or_else(|| {
        TranslateError::param(format!("messages[{i}].tool_call_id"), "must be a string")
    })
}

/// A function tool of `tools`.
#[derive(Debug)]
pub(crate) struct FunctionTool<'a> {
    pub(crate) name: &'a str,
    pub(crate) description: Option<&'a str>,
    /// Its JSON schema (an object), as written.
    pub(crate) parameters: Option<&'a RawValue>,
}

/// `tools`: function tools only.
pub(crate) fn function_tools<'a>(
    req: &'a ChatRequestIn<'a>,
) -> Result<Vec<FunctionTool<'a>>, TranslateError> {
    let Some(tools) = &req.tools else {
        return Ok(Vec::new());
    };
    tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            match t.r#type.as_deref() {
                Some("function") | None => {}
                Some(other) => {
                    return Err(TranslateError::param(
                        format!("tools[{i}]"),
                        format!("tools of type `{other}` are not supported"),
                    ));
                }
            }
            let f = t
                .function
                .as_ref()
                .ok_or_else(|| TranslateError::param(format!("tools[{i}]"), "needs `function`"))?;
            if f.parameters
                .is_some_and(|p| !p.get().trim_start().starts_with('{'))
            {
                return Err(TranslateError::param(
                    format!("tools[{i}].function.parameters"),
                    "must be a JSON schema object",
                ));
            }
            Ok(FunctionTool {
                name: &f.name,
                description: f.description.as_deref(),
                parameters: f.parameters,
            })
        })
        .collect()
}

/// `tool_choice`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ToolChoice<'a> {
    /// The model decides.
    Auto,
    /// No tool calls.
    None,
    /// At least one tool call.
    Required,
    /// This function.
    Function(&'a str),
}

/// `tool_choice`, if given.
pub(crate) fn tool_choice<'a>(
    req: &'a ChatRequestIn<'a>,
) -> Result<Option<ToolChoice<'a>>, TranslateError> {
    match &req.tool_choice {
        None => Ok(None),
        Some(ToolChoiceIn::Mode(m)) => match m.as_ref() {
            "auto" => Ok(Some(ToolChoice::Auto)),
            "none" => Ok(Some(ToolChoice::None)),
            "required" => Ok(Some(ToolChoice::Required)),
            _ => Err(TranslateError::param(
                "tool_choice",
                "must be `auto`, `none`, `required` or a function",
            )),
        },
        Some(ToolChoiceIn::Function(name)) => Ok(Some(ToolChoice::Function(name))),
    }
}

/// `stream_options.include_usage`.
pub fn include_usage(req: &ChatRequestIn<'_>) -> bool {
    req.stream_options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false)
}

/// A random id: `prefix` and 24 alphanumeric characters.
pub(crate) fn new_id(prefix: &str) -> String {
    let mut id = String::with_capacity(prefix.len() + 24);
    id.push_str(prefix);
    id.extend(std::iter::repeat_with(fastrand::alphanumeric).take(24));
    id
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Token counts of one answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) prompt: u64,
    pub(crate) completion: u64,
    pub(crate) total: Option<u64>,
    pub(crate) cached: Option<u64>,
    pub(crate) reasoning: Option<u64>,
}

impl Usage {
    /// OpenAI's `usage`, as written in answers.
    pub(crate) fn to_wire(self) -> openai::Usage {
        openai::Usage {
            prompt_tokens: self.prompt,
            completion_tokens: self.completion,
            total_tokens: self.total.unwrap_or(self.prompt + self.completion),
            prompt_tokens_details: self.cached.map(|c| openai::PromptTokensDetails {
                cached_tokens: Some(c),
            }),
            completion_tokens_details: self.reasoning.map(|r| openai::CompletionTokensDetails {
                reasoning_tokens: r,
            }),
        }
    }
}

/// Identifies a streamed answer: every chunk carries the same id, time and model.
#[derive(Clone, Debug)]
pub(crate) struct ChunkHeader {
    pub(crate) id: String,
    pub(crate) created: u64,
    pub(crate) model: String,
}

impl ChunkHeader {
    pub(crate) fn new(model: &str) -> Self {
        Self {
            id: new_id("chatcmpl-"),
            created: now_secs(),
            model: model.to_owned(),
        }
    }

    /// Writes a chunk with one choice as a server-sent event.
    pub(crate) fn write(
        &self,
        out: &mut BytesMut,
        index: u32,
        delta: openai::Delta<'_>,
        finish_reason: Option<&'static str>,
    ) {
        let choices = [openai::ChunkChoice {
            index,
            delta,
            logprobs: None,
            finish_reason,
        }];
        crate::sse::write_json_data(
            out,
            &openai::Chunk {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: &self.model,
                choices: &choices,
                usage: None,
            },
        );
    }

    /// Writes the usage chunk, with no choices (`stream_options.include_usage`).
    pub(crate) fn write_usage(&self, out: &mut BytesMut, usage: Usage) {
        crate::sse::write_json_data(
            out,
            &openai::Chunk {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: &self.model,
                choices: &[],
                usage: Some(usage.to_wire()),
            },
        );
    }
}

/// The role chunk's delta: `{"role": "assistant", "content": ""}`.
pub(crate) fn role_delta() -> openai::Delta<'static> {
    openai::Delta {
        role: Some("assistant"),
        content: Some(""),
        ..openai::Delta::default()
    }
}

/// A tool call's delta: its start (`id` and `name`, with the arguments so far) or, with
/// neither, more of its arguments.
pub(crate) fn tool_call_delta<'a>(
    index: usize,
    id: Option<&'a str>,
    name: Option<&'a str>,
    arguments: &'a str,
) -> openai::Delta<'a> {
    openai::Delta {
        tool_calls: Some([openai::ToolCallDelta {
            index,
            id,
            r#type: id.map(|_| "function"),
            function: openai::FunctionDelta { name, arguments },
        }]),
        ..openai::Delta::default()
    }
}

/// Writes an OpenAI answer, with room for about `size_hint` bytes from the start.
pub(crate) fn write_answer(
    answer: &openai::ChatCompletion<'_>,
    provider: &'static str,
    size_hint: usize,
) -> Result<Vec<u8>, TranslateError> {
    let mut out = Vec::with_capacity(size_hint.saturating_add(256));
    serde_json::to_writer(&mut out, answer).map_err(|e| TranslateError::UpstreamBody {
        provider,
        message: format!("cannot write the answer: {e}"),
    })?;
    Ok(out)
}

/// An OpenAI-shaped upstream error: status, type, message, and the context-window code
/// that triggers the router's context-window fallbacks.
pub(crate) fn upstream_error(
    status: StatusCode,
    kind: &'static str,
    message: String,
    context_window: bool,
    retry_after: Option<Duration>,
) -> ApiError {
    let code = if context_window {
        Some("context_length_exceeded")
    } else {
        match status.as_u16() {
            429 => Some("rate_limit_exceeded"),
            401 => Some("invalid_api_key"),
            _ => None,
        }
    };
    ApiError {
        status,
        message,
        kind,
        param: None,
        code,
        retry_after,
    }
}

/// True when the provider's message says the prompt does not fit the context window.
pub(crate) fn mentions_context_window(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "too long",
        "too many tokens",
        "token count",
        "context length",
        "context window",
        "maximum number of tokens",
        "input tokens exceed",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

/// Joins texts without copying when there is only one.
pub(crate) fn join<'a>(texts: &[Cow<'a, str>], sep: &str) -> Cow<'a, str> {
    match texts {
        [] => Cow::Borrowed(""),
        [one] => one.clone(),
        many => Cow::Owned(
            many.iter()
                .map(AsRef::as_ref)
                .collect::<Vec<&str>>()
                .join(sep),
        ),
    }
}
