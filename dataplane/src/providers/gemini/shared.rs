//! The OpenAI side of a translation, shared by the Gemini and Bedrock translators: the
//! translation error, the caller's options, reading an OpenAI chat request (messages,
//! content parts, stop, token limits) and writing OpenAI answers (completions, chunks,
//! usage, ids). Nothing here is specific to one provider; it is meant to move beside the
//! other translators' shared code once they are wired into the proxy.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use serde_json::{Map, Value, json};

use crate::errors::ApiError;

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

    /// Records every key of `body` in `params` that is present and not null.
    pub(crate) fn present(
        &mut self,
        body: &Map<String, Value>,
        params: &[&str],
    ) -> Result<(), TranslateError> {
        for p in params {
            if body.get(*p).is_some_and(|v| !v.is_null()) {
                self.param(*p)?;
            }
        }
        Ok(())
    }
}

/// The request body as a JSON object.
pub(crate) fn object(body: &Value) -> Result<&Map<String, Value>, TranslateError> {
    body.as_object()
        .ok_or_else(|| TranslateError::InvalidBody("the body must be a JSON object".to_owned()))
}

/// `messages`, required and non-empty.
pub(crate) fn messages(body: &Map<String, Value>) -> Result<&[Value], TranslateError> {
    match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => Ok(m),
        Some(Value::Array(_)) => Err(TranslateError::param("messages", "must not be empty")),
        Some(_) => Err(TranslateError::param("messages", "must be an array")),
        None => Err(TranslateError::param("messages", "is required")),
    }
}

/// A message's `role`.
pub(crate) fn role(message: &Value, i: usize) -> Result<&str, TranslateError> {
    message
        .get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::param(format!("messages[{i}].role"), "must be a string"))
}

/// An optional number parameter.
pub(crate) fn number(body: &Map<String, Value>, key: &str) -> Result<Option<f64>, TranslateError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| TranslateError::param(key, "must be a number")),
    }
}

/// An optional non-negative integer parameter that fits a `u32`.
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
    body: &Map<String, Value>,
    options: &ChatOptions,
) -> Result<Option<u32>, TranslateError> {
    Ok(count(body, "max_completion_tokens")?
        .or(count(body, "max_tokens")?)
        .or(options.default_max_tokens))
}

/// `stop`: a string or an array of strings.
pub(crate) fn stop(body: &Map<String, Value>) -> Result<Vec<&str>, TranslateError> {
    match body.get("stop") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.as_str()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| {
                s.as_str()
                    .ok_or_else(|| TranslateError::param("stop", "must be a string or strings"))
            })
            .collect(),
        Some(_) => Err(TranslateError::param(
            "stop",
            "must be a string or an array of strings",
        )),
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
    message: &'a Value,
    i: usize,
) -> Result<Vec<ContentPart<'a>>, TranslateError> {
    let param = || format!("messages[{i}].content");
    match message.get("content") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![ContentPart::Text(s)]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| {
                content_part(p).map_err(|m| TranslateError::param(format!("{}[{j}]", param()), m))
            })
            .collect(),
        Some(_) => Err(TranslateError::param(
            param(),
            "must be a string or an array of content parts",
        )),
    }
}

fn content_part(p: &Value) -> Result<ContentPart<'_>, String> {
    let str_at = |ptr: &str| p.pointer(ptr).and_then(Value::as_str);
    match p.get("type").and_then(Value::as_str) {
        Some("text") => str_at("/text")
            .map(ContentPart::Text)
            .ok_or_else(|| "a text part needs a string `text`".to_owned()),
        // An assistant's refusal, sent back as history, is text to the model.
        Some("refusal") => str_at("/refusal")
            .map(ContentPart::Text)
            .ok_or_else(|| "a refusal part needs a string `refusal`".to_owned()),
        Some("image_url") => str_at("/image_url/url")
            .or_else(|| str_at("/image_url"))
            .map(ContentPart::Image)
            .ok_or_else(|| "an image_url part needs `image_url.url`".to_owned()),
        Some("input_audio") => match (str_at("/input_audio/data"), str_at("/input_audio/format")) {
            (Some(data), Some(format)) => Ok(ContentPart::Audio { data, format }),
            _ => Err("an input_audio part needs `input_audio.data` and `.format`".to_owned()),
        },
        Some("file") => str_at("/file/file_data")
            .map(ContentPart::File)
            .ok_or_else(|| "only files given inline as `file.file_data` are supported".to_owned()),
        Some(other) => Err(format!("content parts of type `{other}` are not supported")),
        None => Err("a content part needs a `type`".to_owned()),
    }
}

/// A message's content as text only (system messages, tool results).
pub(crate) fn text_parts(message: &Value, i: usize) -> Result<Vec<&str>, TranslateError> {
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
    /// The arguments, parsed (an object).
    pub(crate) arguments: Value,
}

/// An assistant message's `tool_calls`.
pub(crate) fn tool_calls(message: &Value, i: usize) -> Result<Vec<ToolCall<'_>>, TranslateError> {
    let Some(calls) = message.get("tool_calls").filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let calls = calls.as_array().ok_or_else(|| {
        TranslateError::param(format!("messages[{i}].tool_calls"), "must be an array")
    })?;
    calls
        .iter()
        .enumerate()
        .map(|(j, c)| {
            let param = format!("messages[{i}].tool_calls[{j}]");
            let id = c
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| TranslateError::param(param.clone(), "needs a string `id`"))?;
            let name = c
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    TranslateError::param(param.clone(), "needs a string `function.name`")
                })?;
            let arguments = match c.pointer("/function/arguments") {
                None | Some(Value::Null) => Value::Object(Map::new()),
                Some(Value::String(s)) if s.trim().is_empty() => Value::Object(Map::new()),
                Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => {
                        return Err(TranslateError::param(
                            format!("{param}.function.arguments"),
                            "must be a JSON object encoded as a string",
                        ));
                    }
                },
                Some(v @ Value::Object(_)) => v.clone(),
                Some(_) => {
                    return Err(TranslateError::param(
                        format!("{param}.function.arguments"),
                        "must be a string",
                    ));
                }
            };
            Ok(ToolCall {
                id,
                name,
                arguments,
            })
        })
        .collect()
}

/// The tool name of every tool call id in `messages` (tool results name the call by id,
/// some providers need the function's name).
pub(crate) fn tool_names(messages: &[Value]) -> HashMap<&str, &str> {
    let mut names = HashMap::new();
    for m in messages {
        for c in m
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let (Some(id), Some(name)) = (
                c.get("id").and_then(Value::as_str),
                c.pointer("/function/name").and_then(Value::as_str),
            ) {
                names.insert(id, name);
            }
        }
    }
    names
}

/// A tool message's `tool_call_id`.
pub(crate) fn tool_call_id(message: &Value, i: usize) -> Result<&str, TranslateError> {
    message
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            TranslateError::param(format!("messages[{i}].tool_call_id"), "must be a string")
        })
}

/// A function tool of `tools`.
#[derive(Debug)]
pub(crate) struct FunctionTool<'a> {
    pub(crate) name: &'a str,
    pub(crate) description: Option<&'a str>,
    pub(crate) parameters: Option<&'a Value>,
}

/// `tools`: function tools only.
pub(crate) fn function_tools(
    body: &Map<String, Value>,
) -> Result<Vec<FunctionTool<'_>>, TranslateError> {
    let Some(tools) = body.get("tools").filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let tools = tools
        .as_array()
        .ok_or_else(|| TranslateError::param("tools", "must be an array"))?;
    tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let param = format!("tools[{i}]");
            match t.get("type").and_then(Value::as_str) {
                Some("function") | None => {}
                Some(other) => {
                    return Err(TranslateError::param(
                        param,
                        format!("tools of type `{other}` are not supported"),
                    ));
                }
            }
            let f = t
                .get("function")
                .ok_or_else(|| TranslateError::param(param.clone(), "needs `function`"))?;
            let name = f.get("name").and_then(Value::as_str).ok_or_else(|| {
                TranslateError::param(param.clone(), "needs a string `function.name`")
            })?;
            let parameters = f.get("parameters").filter(|v| !v.is_null());
            if parameters.is_some_and(|p| !p.is_object()) {
                return Err(TranslateError::param(
                    format!("{param}.function.parameters"),
                    "must be a JSON schema object",
                ));
            }
            Ok(FunctionTool {
                name,
                description: f.get("description").and_then(Value::as_str),
                parameters,
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
pub(crate) fn tool_choice(
    body: &Map<String, Value>,
) -> Result<Option<ToolChoice<'_>>, TranslateError> {
    match body.get("tool_choice") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Ok(Some(ToolChoice::Auto)),
            "none" => Ok(Some(ToolChoice::None)),
            "required" => Ok(Some(ToolChoice::Required)),
            _ => Err(TranslateError::param(
                "tool_choice",
                "must be `auto`, `none`, `required` or a function",
            )),
        },
        Some(v) => v
            .pointer("/function/name")
            .and_then(Value::as_str)
            .map(|n| Some(ToolChoice::Function(n)))
            .ok_or_else(|| TranslateError::param("tool_choice", "needs `function.name`")),
    }
}

/// `stream_options.include_usage`.
pub fn include_usage(body: &Value) -> bool {
    body.pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
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
    /// OpenAI's `usage` object.
    pub(crate) fn to_json(self) -> Value {
        let mut u = json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.total.unwrap_or(self.prompt + self.completion),
        });
        if let Some(c) = self.cached {
            u["prompt_tokens_details"] = json!({ "cached_tokens": c });
        }
        if let Some(r) = self.reasoning {
            u["completion_tokens_details"] = json!({ "reasoning_tokens": r });
        }
        u
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

    /// A chunk with one choice.
    pub(crate) fn choice(&self, index: u64, delta: Value, finish_reason: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{ "index": index, "delta": delta, "finish_reason": finish_reason }],
        })
    }

    /// The usage chunk, with no choices (`stream_options.include_usage`).
    pub(crate) fn usage(&self, usage: Usage) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage.to_json(),
        })
    }
}

/// A `chat.completion` object.
pub(crate) fn completion(
    id: &str,
    model: &str,
    choices: Vec<Value>,
    usage: Option<Usage>,
) -> Value {
    let mut c = json!({
        "id": id,
        "object": "chat.completion",
        "created": now_secs(),
        "model": model,
        "choices": choices,
    });
    if let Some(u) = usage {
        c["usage"] = u.to_json();
    }
    c
}

/// A tool call of an answer, OpenAI-shaped; `index` is set in streamed deltas.
pub(crate) fn tool_call_json(index: Option<usize>, id: &str, name: &str, arguments: &str) -> Value {
    let mut call = json!({
        "id": id,
        "type": "function",
        "function": { "name": name, "arguments": arguments },
    });
    if let Some(i) = index {
        call["index"] = json!(i);
    }
    call
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

/// Reads a text as a JSON object when it is one (tool results), else `None`.
pub(crate) fn json_object(text: &str) -> Option<Value> {
    let t = text.trim_start();
    if !t.starts_with('{') {
        return None;
    }
    serde_json::from_str::<Value>(t)
        .ok()
        .filter(Value::is_object)
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
