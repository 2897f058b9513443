//! Google's Gemini API (`generativelanguage.googleapis.com/v1beta`) behind the OpenAI API:
//! the pure translations a provider adapter calls. Nothing here does I/O.
//!
//! - Chat: [`chat_request`] turns an OpenAI chat request (read by [`shared::parse_chat`])
//!   into a `generateContent` body ([`wire::GenerateContentRequest`], borrowing from the
//!   request; tool schemas are cleaned for Gemini by [`schema`]); [`chat_response`] writes
//!   the answer as a `chat.completion`; [`stream::StreamDecoder`] turns
//!   `streamGenerateContent?alt=sse` bytes into `chat.completion.chunk` events.
//! - Embeddings: [`embeddings_request`] and [`embeddings_response`] (`embedContent` for one
//!   input, `batchEmbedContents` for several).
//! - Errors: [`error`] maps an error answer to an OpenAI-shaped [`ApiError`].
//! - Transport: [`url`] and [`http_request`]; the key goes in the `x-goog-api-key` header,
//!   never in the URL, so that it never lands in a log line.
//!
//! The provider adapter (a deployment's endpoint, the static translator
//! [`OPENAI_TO_GEMINI`] wrapping these functions) is [`openai_gemini`].
//!
//! The OpenAI-side pieces shared with the Bedrock translator (the error type, options,
//! chunk and usage builders) are in [`shared`].

pub mod openai_gemini;
pub mod schema;
pub mod shared;
pub mod stream;
pub mod wire;

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::Full;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use self::shared::{
    ChatOptions, ContentPart, ToolChoice, TranslateError, Translated, Unsupported, Usage,
};
use self::wire::{
    Blob, Content, FileData, FunctionCall, FunctionCallingConfig, FunctionDeclaration,
    FunctionResponse, FunctionResult, GenerateContentRequest, GenerateContentResponse,
    GenerationConfig, Mode, Part, PartData, Role, Tool, ToolConfig,
};
use super::openai::wire::{self as openai, ChatRequestIn, MessageIn};
use super::percent_encode;
use crate::errors::ApiError;

pub use openai_gemini::{Gemini, OpenAiToGemini};

/// OpenAI chat completions and embeddings → Gemini.
pub static OPENAI_TO_GEMINI: OpenAiToGemini = OpenAiToGemini;

/// The Gemini API base.
pub const DEFAULT_BASE: &str = "https://generativelanguage.googleapis.com/v1beta";

/// The provider name in messages.
const PROVIDER: &str = "Gemini";

/// Separates a generated tool-call id from the thought signature it carries: Gemini's
/// thinking models need the signature of a function call back with the call, and an
/// OpenAI client only keeps the call's id.
const SIGNATURE_MARK: &str = "__thought__";

/// OpenAI parameters Gemini has no equivalent for.
const UNSUPPORTED: &[&str] = &[
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "audio",
    "modalities",
    "prediction",
    "service_tier",
    "reasoning_effort",
    "web_search_options",
    "functions",
    "function_call",
];

/// A Gemini API method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `generateContent`.
    Generate,
    /// `streamGenerateContent?alt=sse`.
    StreamGenerate,
    /// `embedContent`.
    Embed,
    /// `batchEmbedContents`.
    BatchEmbed,
}

/// The URL of `op` on `model` (`gemini-2.5-flash` or `models/gemini-2.5-flash`) at
/// `base` (no trailing slash; [`DEFAULT_BASE`] for Google's API).
pub fn url(base: &str, model: &str, op: Operation) -> String {
    let model = model.strip_prefix("models/").unwrap_or(model);
    let method = match op {
        Operation::Generate => ":generateContent",
        Operation::StreamGenerate => ":streamGenerateContent?alt=sse",
        Operation::Embed => ":embedContent",
        Operation::BatchEmbed => ":batchEmbedContents",
    };
    format!("{base}/models/{}{method}", percent_encode(model))
}

/// The upstream request: `POST` to [`url`] with the key in `x-goog-api-key`.
pub fn http_request(
    base: &str,
    api_key: Option<&str>,
    model: &str,
    op: Operation,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, ApiError> {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(url(base, model, op))
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(key) = api_key {
        let mut value = HeaderValue::from_str(key).map_err(|_| {
            ApiError::internal("the deployment's API key is not a valid header value")
        })?;
        value.set_sensitive(true);
        builder = builder.header("x-goog-api-key", value);
    }
    builder
        .body(Full::new(body))
        .map_err(|e| ApiError::internal(format!("cannot build the upstream request: {e}")))
}

/// An OpenAI chat request ([`shared::parse_chat`] reads the body) as a `generateContent`
/// request, borrowing from it.
///
/// Parameters Gemini cannot take are refused with [`TranslateError::Unsupported`], or
/// dropped and listed in [`Translated::dropped`] when `options.drop_params` is on.
pub fn chat_request<'a>(
    req: &'a ChatRequestIn<'a>,
    options: &ChatOptions,
) -> Result<Translated<GenerateContentRequest<'a>>, TranslateError> {
    let messages = shared::messages(req)?;
    let mut unsupported = Unsupported::new(options, PROVIDER);
    unsupported.present(req, UNSUPPORTED)?;
    if req.parallel_tool_calls == Some(false) {
        unsupported.param("parallel_tool_calls")?;
    }

    // Built on the first tool message only (most requests have none).
    let mut names: Option<HashMap<&'a str, &'a str>> = None;
    let mut system: Vec<Part<'a>> = Vec::new();
    let mut contents: Vec<Content<'a>> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let (role, parts) = match m.role.as_ref() {
            "system" | "developer" => {
                system.extend(shared::text_parts(m, i)?.into_iter().map(Part::text));
                continue;
            }
            "user" => (Role::User, user_parts(m, i)?),
            "assistant" => (Role::Model, assistant_parts(m, i)?),
            "tool" => {
                let id = shared::tool_call_id(m, i)?;
                let names = names.get_or_insert_with(|| shared::tool_names(messages));
                let name = names.get(id).copied().ok_or_else(|| {
                    TranslateError::param(
                        format!("messages[{i}].tool_call_id"),
                        format!("no earlier assistant tool call has the id `{id}`"),
                    )
                })?;
                (Role::User, vec![function_response(m, i, name)?])
            }
            "function" => {
                let name = m.name.as_deref().ok_or_else(|| {
                    TranslateError::param(format!("messages[{i}].name"), "must be a string")
                })?;
                (Role::User, vec![function_response(m, i, name)?])
            }
            other => {
                return Err(TranslateError::param(
                    format!("messages[{i}].role"),
                    format!("unknown role `{other}`"),
                ));
            }
        };
        if parts.is_empty() {
            continue;
        }
        // Consecutive turns of one role are one turn (parallel tool results, above all).
        match contents.last_mut() {
            Some(last) if last.role == Some(role) => last.parts.extend(parts),
            _ => contents.push(Content {
                role: Some(role),
                parts,
            }),
        }
    }
    if contents.is_empty() {
        return Err(TranslateError::param(
            "messages",
            "Gemini needs at least one user or assistant message",
        ));
    }

    let tools = shared::function_tools(req)?;
    let mut declarations = Vec::with_capacity(tools.len());
    for (i, t) in tools.iter().enumerate() {
        let parameters = match t.parameters {
            Some(raw) => parameters(raw)
                .map_err(|e| TranslateError::param(format!("tools[{i}].function.parameters"), e))?,
            None => None,
        };
        declarations.push(FunctionDeclaration {
            name: t.name,
            description: t.description,
            parameters,
        });
    }
    let tool_config = shared::tool_choice(req)?.map(|choice| {
        let (mode, allowed) = match choice {
            ToolChoice::Auto => (Mode::Auto, Vec::new()),
            ToolChoice::None => (Mode::None, Vec::new()),
            ToolChoice::Required => (Mode::Any, Vec::new()),
            ToolChoice::Function(name) => (Mode::Any, vec![name]),
        };
        ToolConfig {
            function_calling_config: FunctionCallingConfig {
                mode,
                allowed_function_names: allowed,
            },
        }
    });

    let mut generation_config = GenerationConfig {
        temperature: req.temperature,
        top_p: req.top_p,
        // Not OpenAI's, but vLLM's and Anthropic's: clients of mixed aliases send it.
        top_k: shared::fit_u32(req.top_k, "top_k")?,
        max_output_tokens: shared::max_tokens(req, options)?,
        stop_sequences: shared::stop(req),
        candidate_count: shared::fit_u32(req.n, "n")?,
        presence_penalty: req.presence_penalty,
        frequency_penalty: req.frequency_penalty,
        seed: req.seed,
        ..GenerationConfig::default()
    };
    response_format(req, &mut generation_config, &mut unsupported)?;

    Ok(Translated {
        body: GenerateContentRequest {
            contents,
            system_instruction: (!system.is_empty()).then_some(Content {
                role: None,
                parts: system,
            }),
            tools: if declarations.is_empty() {
                Vec::new()
            } else {
                vec![Tool {
                    function_declarations: declarations,
                }]
            },
            tool_config,
            generation_config,
        },
        dropped: unsupported.dropped,
    })
}

/// A tool's parameters schema for Gemini: cleaned ([`schema::clean_raw`]), or none for a
/// schema without properties (Gemini refuses an object schema without properties; a
/// function without parameters has none).
fn parameters(raw: &RawValue) -> Result<Option<schema::Schema<'_>>, String> {
    if !schema::has_properties(raw) {
        return Ok(None);
    }
    schema::clean_raw(raw).map(Some).map_err(|e| e.to_string())
}

/// `response_format` to `responseMimeType` / `responseSchema`.
fn response_format<'a>(
    req: &'a ChatRequestIn<'a>,
    config: &mut GenerationConfig<'a>,
    unsupported: &mut Unsupported<'_>,
) -> Result<(), TranslateError> {
    let Some(format) = &req.response_format else {
        return Ok(());
    };
    match format.r#type.as_ref() {
        "text" => {}
        "json_object" => config.response_mime_type = Some("application/json"),
        "json_schema" => {
            config.response_mime_type = Some("application/json");
            if let Some(raw) = format.json_schema.as_ref().and_then(|j| j.schema) {
                match schema::clean_raw(raw) {
                    Ok(cleaned) => config.response_schema = Some(cleaned),
                    // JSON output without the schema is better than nothing, if allowed.
                    Err(_) => unsupported.param("response_format.json_schema.schema")?,
                }
            }
        }
        _ => {
            return Err(TranslateError::param(
                "response_format",
                "`type` must be `text`, `json_object` or `json_schema`",
            ));
        }
    }
    Ok(())
}

/// A user message's parts.
fn user_parts<'a>(m: &'a MessageIn<'a>, i: usize) -> Result<Vec<Part<'a>>, TranslateError> {
    shared::content_parts(m, i)?
        .into_iter()
        .enumerate()
        .map(|(j, p)| {
            let data = match p {
                ContentPart::Text(t) => PartData::Text(Cow::Borrowed(t)),
                ContentPart::Image(url) | ContentPart::File(url) => media(url)
                    .map_err(|e| TranslateError::param(format!("messages[{i}].content[{j}]"), e))?,
                ContentPart::Audio { data, format } => PartData::InlineData(Blob {
                    mime_type: Cow::Owned(format!("audio/{format}")),
                    data,
                }),
            };
            Ok(Part {
                data,
                thought_signature: None,
            })
        })
        .collect()
}

/// An image or file URL: `data:` URLs inline, others by URI with a media type guessed
/// from the extension.
fn media(url: &str) -> Result<PartData<'_>, String> {
    if let Some((mime, data)) = shared::data_url(url) {
        return Ok(PartData::InlineData(Blob {
            mime_type: Cow::Borrowed(mime),
            data,
        }));
    }
    if url.starts_with("data:") {
        return Err("data URLs must be base64: data:<media type>;base64,<data>".to_owned());
    }
    if !(url.starts_with("https://") || url.starts_with("http://") || url.starts_with("gs://")) {
        return Err("expected a data: URL or an http(s):// or gs:// URL".to_owned());
    }
    let mime = shared::mime_from_extension(url).ok_or_else(|| {
        "cannot tell the media type of this URL from its extension; send it as a data: URL"
            .to_owned()
    })?;
    Ok(PartData::FileData(FileData {
        mime_type: Cow::Borrowed(mime),
        file_uri: url,
    }))
}

/// An assistant message's parts: its text, then its tool calls.
fn assistant_parts<'a>(m: &'a MessageIn<'a>, i: usize) -> Result<Vec<Part<'a>>, TranslateError> {
    let mut parts: Vec<Part<'a>> = shared::text_parts(m, i)?
        .into_iter()
        .filter(|t| !t.is_empty())
        .map(Part::text)
        .collect();
    for call in shared::tool_calls(m, i)? {
        let signature = call
            .id
            .split_once(SIGNATURE_MARK)
            .map(|(_, s)| Cow::Borrowed(s));
        parts.push(Part {
            data: PartData::FunctionCall(FunctionCall {
                name: call.name,
                args: call.arguments,
            }),
            thought_signature: signature,
        });
    }
    Ok(parts)
}

/// A tool result: the object itself when it is a JSON object, else its text as
/// `{"content": …}`.
fn function_response<'a>(
    m: &'a MessageIn<'a>,
    i: usize,
    name: &'a str,
) -> Result<Part<'a>, TranslateError> {
    let response = match shared::json_result(shared::text(m, i)?) {
        Ok(json) => FunctionResult::Json(json),
        Err(content) => FunctionResult::Text { content },
    };
    Ok(Part {
        data: PartData::FunctionResponse(FunctionResponse { name, response }),
        thought_signature: None,
    })
}

/// OpenAI's `finish_reason` for a Gemini `finishReason`.
pub fn finish_reason(reason: &str) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ => "stop",
    }
}

/// Gemini's token counts as OpenAI usage (thinking tokens count as completion tokens).
pub(crate) fn usage(u: &wire::UsageMetadata) -> Usage {
    let prompt = u.prompt_token_count + u.tool_use_prompt_token_count.unwrap_or(0);
    let completion = u.candidates_token_count + u.thoughts_token_count.unwrap_or(0);
    Usage {
        prompt,
        completion,
        total: u.total_token_count,
        cached: u.cached_content_token_count,
        reasoning: u.thoughts_token_count,
    }
}

/// A tool-call id for a Gemini function call: its own id when it has one, else a new
/// one, carrying the call's thought signature.
pub(crate) fn tool_call_id(id: Option<&str>, signature: Option<&str>) -> String {
    let base = id
        .filter(|id| !id.is_empty())
        .map_or_else(|| shared::new_id("call_"), str::to_owned);
    match signature {
        Some(s) if !s.is_empty() => format!("{base}{SIGNATURE_MARK}{s}"),
        _ => base,
    }
}

fn parse_answer(body: &[u8]) -> Result<GenerateContentResponse<'_>, TranslateError> {
    serde_json::from_slice(body).map_err(|e| TranslateError::UpstreamBody {
        provider: PROVIDER,
        message: e.to_string(),
    })
}

/// A `generateContent` answer as an OpenAI `chat.completion` (JSON) for `model` (the
/// name the client asked for), `created` at that Unix time.
///
/// A prompt Gemini blocked (`promptFeedback.blockReason`, no candidates) becomes an answer
/// with no content and `finish_reason: "content_filter"`, as a blocked candidate does: the
/// request was valid, the provider declined it, and OpenAI clients handle that finish
/// reason. Function-call arguments pass through as Gemini wrote them.
pub fn chat_response(body: &[u8], model: &str, created: u64) -> Result<Vec<u8>, TranslateError> {
    let answer = parse_answer(body)?;
    let mut choices = Vec::with_capacity(answer.candidates.len().max(1));
    for (i, c) in answer.candidates.iter().enumerate() {
        let mut text: Vec<Cow<'_, str>> = Vec::new();
        let mut reasoning: Vec<Cow<'_, str>> = Vec::new();
        let mut calls = Vec::new();
        for p in c.content.iter().flat_map(|c| &c.parts) {
            if let Some(f) = &p.function_call {
                calls.push(openai::ToolCall {
                    id: Cow::Owned(tool_call_id(
                        f.id.as_deref(),
                        p.thought_signature.as_deref(),
                    )),
                    r#type: "function",
                    function: openai::FunctionCall {
                        name: Cow::Borrowed(&f.name),
                        arguments: Cow::Borrowed(f.args.map_or("{}", RawValue::get)),
                    },
                });
            } else if let Some(t) = &p.text {
                if p.thought == Some(true) {
                    reasoning.push(Cow::Borrowed(t));
                } else {
                    text.push(Cow::Borrowed(t));
                }
            }
        }
        let finish = match c.finish_reason.as_deref() {
            _ if !calls.is_empty() => "tool_calls",
            Some(r) => finish_reason(r),
            None => "stop",
        };
        choices.push(openai::Choice::assistant(
            c.index
                .unwrap_or_else(|| u32::try_from(i).unwrap_or(u32::MAX)),
            (!text.is_empty()).then(|| shared::join(&text, "")),
            (!reasoning.is_empty()).then(|| shared::join(&reasoning, "")),
            calls,
            Some(finish),
        ));
    }
    if choices.is_empty() {
        let blocked = answer
            .prompt_feedback
            .as_ref()
            .and_then(|f| f.block_reason.as_deref())
            .is_some();
        choices.push(openai::Choice::assistant(
            0,
            None,
            None,
            Vec::new(),
            Some(if blocked { "content_filter" } else { "stop" }),
        ));
    }
    let id = answer
        .response_id
        .as_deref()
        .map_or_else(|| shared::new_id("chatcmpl-"), |r| format!("chatcmpl-{r}"));
    let completion = openai::ChatCompletion {
        id: &id,
        object: "chat.completion",
        created,
        model,
        choices,
        usage: answer.usage_metadata.as_ref().map(|u| usage(u).to_wire()),
    };
    shared::write_answer(&completion, PROVIDER, body.len())
}

/// How a Gemini error answer looks to an OpenAI client.
///
/// The status follows Gemini's canonical `status` (`RESOURCE_EXHAUSTED` → 429,
/// `INVALID_ARGUMENT` → 400, `UNAUTHENTICATED` → 401, `PERMISSION_DENIED` → 403,
/// `NOT_FOUND` → 404, `UNAVAILABLE`/`INTERNAL` → 503/500, `DEADLINE_EXCEEDED` → 504),
/// else the HTTP status; an invalid key (reason `API_KEY_INVALID`, sent as a 400) is a
/// 401. Retryable errors are exactly those with status 408, 429 or 5xx
/// (the proxy's rule). A 400 whose message says the prompt is too long carries the
/// `context_length_exceeded` code, which triggers context-window fallbacks. The wait of a
/// `google.rpc.RetryInfo` detail becomes `Retry-After` (unless `retry_after`, from the
/// answer's header, is given).
pub fn error(status: StatusCode, body: &[u8], retry_after: Option<Duration>) -> ApiError {
    let parsed: Option<wire::ErrorBody<'_>> = serde_json::from_slice(body).ok().or_else(|| {
        // Streamed errors may come as a one-element array.
        serde_json::from_slice::<Vec<wire::ErrorBody<'_>>>(body)
            .ok()
            .and_then(|v| v.into_iter().next())
    });
    let Some(wire::ErrorBody { error: e }) = parsed else {
        return ApiError::from_upstream(status, body, retry_after);
    };
    // A wrong key is a 400 INVALID_ARGUMENT with reason API_KEY_INVALID.
    let bad_key = e
        .details
        .iter()
        .any(|d| d.get("reason").and_then(Value::as_str) == Some("API_KEY_INVALID"));
    let (status, kind) = match e.status.as_deref() {
        _ if bad_key => (StatusCode::UNAUTHORIZED, "authentication_error"),
        Some("RESOURCE_EXHAUSTED") => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error"),
        Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE") => {
            (StatusCode::BAD_REQUEST, "invalid_request_error")
        }
        Some("UNAUTHENTICATED") => (StatusCode::UNAUTHORIZED, "authentication_error"),
        Some("PERMISSION_DENIED") => (StatusCode::FORBIDDEN, "permission_error"),
        Some("NOT_FOUND") => (StatusCode::NOT_FOUND, "invalid_request_error"),
        Some("UNAVAILABLE") => (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"),
        Some("INTERNAL" | "UNKNOWN") => (StatusCode::INTERNAL_SERVER_ERROR, "upstream_error"),
        Some("DEADLINE_EXCEEDED") => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
        _ => {
            let status = e
                .code
                .and_then(|c| StatusCode::from_u16(c).ok())
                .filter(|s| s.is_client_error() || s.is_server_error())
                .unwrap_or(status);
            let fallback = ApiError::from_upstream(status, b"", None);
            (status, fallback.kind)
        }
    };
    let message = if e.message.is_empty() {
        format!("Gemini answered {status}")
    } else {
        e.message.chars().take(2000).collect()
    };
    let context_window =
        status == StatusCode::BAD_REQUEST && shared::mentions_context_window(&message);
    let retry_after = retry_after.or_else(|| retry_delay(&e.details));
    shared::upstream_error(status, kind, message, context_window, retry_after)
}

/// The `retryDelay` (`"37s"`, `"1.5s"`) of a `google.rpc.RetryInfo` detail.
fn retry_delay(details: &[Value]) -> Option<Duration> {
    details
        .iter()
        .filter(|d| {
            d.get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"))
        })
        .find_map(|d| d.get("retryDelay").and_then(Value::as_str))
        .and_then(|s| s.strip_suffix('s'))
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 86_400.0)
        .map(Duration::from_secs_f64)
}

/// An embeddings request for Gemini: one input or a batch.
#[derive(Debug)]
pub enum EmbedRequest<'a> {
    /// `embedContent`.
    One(wire::EmbedContentRequest<'a>),
    /// `batchEmbedContents`.
    Batch(wire::BatchEmbedContentsRequest<'a>),
}

impl EmbedRequest<'_> {
    /// The method to call.
    pub fn method(&self) -> Operation {
        match self {
            EmbedRequest::One(_) => Operation::Embed,
            EmbedRequest::Batch(_) => Operation::BatchEmbed,
        }
    }

    /// The JSON body.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        match self {
            EmbedRequest::One(r) => serde_json::to_vec(r),
            EmbedRequest::Batch(r) => serde_json::to_vec(r),
        }
    }
}

/// How the client wants the vectors (`encoding_format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmbeddingEncoding {
    /// JSON numbers.
    Float,
    /// Base64 of little-endian `f32`s (what the `openai` Python SDK asks for by default).
    Base64,
}

impl EmbeddingEncoding {
    /// The request's `encoding_format`.
    pub fn of(body: &Value) -> Result<Self, TranslateError> {
        match body.get("encoding_format") {
            None | Some(Value::Null) => Ok(EmbeddingEncoding::Float),
            Some(v) => match v.as_str() {
                Some("float") => Ok(EmbeddingEncoding::Float),
                Some("base64") => Ok(EmbeddingEncoding::Base64),
                _ => Err(TranslateError::param(
                    "encoding_format",
                    "must be `float` or `base64`",
                )),
            },
        }
    }
}

/// An OpenAI embeddings request (the parsed body) for Gemini `model`: `embedContent` when
/// `input` is one string, `batchEmbedContents` when it is an array of strings. Token-id
/// inputs cannot be sent to Gemini and are refused; `dimensions` becomes
/// `outputDimensionality`.
pub fn embeddings_request<'a>(
    body: &'a Value,
    model: &str,
) -> Result<EmbedRequest<'a>, TranslateError> {
    let obj = shared::object(body)?;
    EmbeddingEncoding::of(body)?;
    let dimensions = shared::count(obj, "dimensions")?;
    let model: Cow<'a, str> = if model.starts_with("models/") {
        Cow::Owned(model.to_owned())
    } else {
        Cow::Owned(format!("models/{model}"))
    };
    let one = |text: &'a str| wire::EmbedContentRequest {
        model: model.clone(),
        content: Content {
            role: None,
            parts: vec![Part::text(text)],
        },
        output_dimensionality: dimensions,
    };
    let token_ids = || {
        TranslateError::param(
            "input",
            "Gemini embeds text only: send strings, not token ids",
        )
    };
    match obj.get("input") {
        Some(Value::String(s)) => Ok(EmbedRequest::One(one(s))),
        Some(Value::Array(items)) if !items.is_empty() => {
            let requests = items
                .iter()
                .map(|i| i.as_str().map(one).ok_or_else(token_ids))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(EmbedRequest::Batch(wire::BatchEmbedContentsRequest {
                requests,
            }))
        }
        Some(Value::Array(_)) => Err(TranslateError::param("input", "must not be empty")),
        Some(_) => Err(TranslateError::param(
            "input",
            "must be a string or an array of strings",
        )),
        None => Err(TranslateError::param("input", "is required")),
    }
}

/// A Gemini embeddings answer (of `op`, from [`EmbedRequest::method`]) as an OpenAI
/// embeddings list for `model`. Gemini does not count embedding tokens; usage is reported
/// as zero.
pub fn embeddings_response(
    body: &[u8],
    op: Operation,
    model: &str,
    encoding: EmbeddingEncoding,
) -> Result<Value, TranslateError> {
    let bad = |e: serde_json::Error| TranslateError::UpstreamBody {
        provider: PROVIDER,
        message: e.to_string(),
    };
    let vectors = match op {
        Operation::Embed => vec![
            serde_json::from_slice::<wire::EmbedContentResponse>(body)
                .map_err(bad)?
                .embedding,
        ],
        Operation::BatchEmbed => {
            serde_json::from_slice::<wire::BatchEmbedContentsResponse>(body)
                .map_err(bad)?
                .embeddings
        }
        Operation::Generate | Operation::StreamGenerate => {
            return Err(TranslateError::UpstreamBody {
                provider: PROVIDER,
                message: "not an embeddings method".to_owned(),
            });
        }
    };
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = match encoding {
                EmbeddingEncoding::Float => json!(v.values),
                EmbeddingEncoding::Base64 => {
                    let bytes: Vec<u8> = v.values.iter().flat_map(|f| f.to_le_bytes()).collect();
                    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
                }
            };
            json!({ "object": "embedding", "index": i, "embedding": embedding })
        })
        .collect();
    Ok(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": { "prompt_tokens": 0, "total_tokens": 0 },
    }))
}
