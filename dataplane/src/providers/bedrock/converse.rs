//! OpenAI chat completions ⇄ Bedrock Converse and ConverseStream.
//!
//! - [`chat_request`]: an OpenAI chat request to a [`ConverseRequest`] (borrowing from
//!   the request): system messages to `system`, turns to `messages` of text, image,
//!   `toolUse` and `toolResult` blocks (consecutive turns of one role merged, as Bedrock
//!   requires alternation), `inferenceConfig`, `toolConfig`.
//! - [`chat_response`]: a Converse answer to a `chat.completion`.
//! - [`ChunkTranslator`] / [`StreamDecoder`]: ConverseStream's event-stream messages to
//!   `chat.completion.chunk` server-sent events (typed, written straight to the output),
//!   the usage chunk from the final `metadata` event; exception messages become errors.
//! - [`error`] and [`exception`]: HTTP error answers and in-stream exceptions to
//!   OpenAI-shaped [`ApiError`]s.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use bytes::BytesMut;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::eventstream::{self, EventStreamError};
use super::wire::{
    self, ContentBlock, ConverseRequest, ConverseResponse, EmptyObject, ImageBlock, ImageSource,
    InferenceConfig, InputSchema, Message, NamedTool, Role, SystemBlock, Tool, ToolChoice,
    ToolConfig, ToolResultBlock, ToolResultContent, ToolSchema, ToolSpec, ToolUseBlock,
};
use crate::errors::ApiError;
use crate::providers::gemini::shared::{
    self, ChatOptions, ChunkHeader, ContentPart, TranslateError, Translated, Unsupported, Usage,
};
use crate::providers::openai::wire::{self as openai, ChatRequestIn, Delta, MessageIn};

/// The provider name in messages.
const PROVIDER: &str = "Bedrock Converse";

/// OpenAI parameters Converse has no equivalent for.
const UNSUPPORTED: &[&str] = &[
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "top_k",
    "audio",
    "modalities",
    "prediction",
    "service_tier",
    "reasoning_effort",
    "web_search_options",
    "functions",
    "function_call",
];

/// An OpenAI chat request ([`shared::parse_chat`] reads the body) as a Converse request,
/// borrowing from it.
///
/// Parameters Converse cannot take are refused with [`TranslateError::Unsupported`], or
/// dropped and listed in [`Translated::dropped`] when `options.drop_params` is on.
pub fn chat_request<'a>(
    req: &'a ChatRequestIn<'a>,
    options: &ChatOptions,
) -> Result<Translated<ConverseRequest<'a>>, TranslateError> {
    let messages = shared::messages(req)?;
    let mut unsupported = Unsupported::new(options, PROVIDER);
    unsupported.present(req, UNSUPPORTED)?;
    if req.parallel_tool_calls == Some(false) {
        unsupported.param("parallel_tool_calls")?;
    }
    if shared::fit_u32(req.n, "n")?.is_some_and(|n| n > 1) {
        unsupported.param("n")?;
    }
    if req
        .response_format
        .as_ref()
        .is_some_and(|f| f.r#type != "text")
    {
        unsupported.param("response_format")?;
    }

    let mut system = Vec::new();
    let mut turns: Vec<Message<'a>> = Vec::new();
    let mut tool_history = false;
    for (i, m) in messages.iter().enumerate() {
        let (role, blocks) = match m.role.as_ref() {
            "system" | "developer" => {
                system.extend(
                    shared::text_parts(m, i)?
                        .into_iter()
                        .filter(|t| !t.is_empty())
                        .map(|text| SystemBlock { text }),
                );
                continue;
            }
            "user" => (Role::User, user_blocks(m, i)?),
            "assistant" => {
                let blocks = assistant_blocks(m, i)?;
                tool_history |= blocks.iter().any(|b| matches!(b, ContentBlock::ToolUse(_)));
                (Role::Assistant, blocks)
            }
            "tool" => {
                tool_history = true;
                (Role::User, vec![tool_result(m, i)?])
            }
            other => {
                return Err(TranslateError::param(
                    format!("messages[{i}].role"),
                    format!("role `{other}` is not supported by {PROVIDER}"),
                ));
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => turns.push(Message {
                role,
                content: blocks,
            }),
        }
    }
    if turns.is_empty() {
        return Err(TranslateError::param(
            "messages",
            "Converse needs at least one user or assistant message",
        ));
    }

    let tools = shared::function_tools(req)?;
    let choice = shared::tool_choice(req)?;
    let tool_config = if tools.is_empty() {
        None
    } else if choice == Some(shared::ToolChoice::None) && !tool_history {
        // No tools offered is how Converse says "do not call tools".
        None
    } else {
        if choice == Some(shared::ToolChoice::None) {
            // Converse must see the tools to read the history's tool calls, and has no
            // "none" choice.
            unsupported.param("tool_choice")?;
        }
        let tools = tools
            .iter()
            .map(|t| Tool {
                tool_spec: ToolSpec {
                    name: t.name,
                    description: t.description,
                    input_schema: InputSchema {
                        json: ToolSchema::of(t.parameters),
                    },
                },
            })
            .collect();
        let tool_choice = match choice {
            None | Some(shared::ToolChoice::None) => None,
            Some(shared::ToolChoice::Auto) => Some(ToolChoice::Auto(EmptyObject {})),
            Some(shared::ToolChoice::Required) => Some(ToolChoice::Any(EmptyObject {})),
            Some(shared::ToolChoice::Function(name)) => Some(ToolChoice::Tool(NamedTool { name })),
        };
        Some(ToolConfig { tools, tool_choice })
    };

    Ok(Translated {
        body: ConverseRequest {
            messages: turns,
            system,
            inference_config: InferenceConfig {
                max_tokens: shared::max_tokens(req, options)?,
                temperature: req.temperature,
                top_p: req.top_p,
                stop_sequences: shared::stop(req),
            },
            tool_config,
        },
        dropped: unsupported.dropped,
    })
}

/// A user message's blocks: text and images (base64 `data:` URLs; Converse cannot fetch
/// URLs).
fn user_blocks<'a>(
    m: &'a MessageIn<'a>,
    i: usize,
) -> Result<Vec<ContentBlock<'a>>, TranslateError> {
    let mut blocks = Vec::new();
    for (j, p) in shared::content_parts(m, i)?.into_iter().enumerate() {
        let param = || format!("messages[{i}].content[{j}]");
        match p {
            ContentPart::Text("") => {}
            ContentPart::Text(t) => blocks.push(ContentBlock::Text(Cow::Borrowed(t))),
            ContentPart::Image(url) => {
                let (mime, data) = shared::data_url(url).ok_or_else(|| {
                    TranslateError::param(
                        param(),
                        "Bedrock Converse takes images as base64 data: URLs only",
                    )
                })?;
                let format = match mime {
                    "image/png" => "png",
                    "image/jpeg" | "image/jpg" => "jpeg",
                    "image/gif" => "gif",
                    "image/webp" => "webp",
                    other => {
                        return Err(TranslateError::param(
                            param(),
                            format!("image type `{other}` is not supported (png, jpeg, gif, webp)"),
                        ));
                    }
                };
                blocks.push(ContentBlock::Image(ImageBlock {
                    format,
                    source: ImageSource { bytes: data },
                }));
            }
            ContentPart::Audio { .. } | ContentPart::File(_) => {
                return Err(TranslateError::param(
                    param(),
                    "Bedrock Converse takes text and images only",
                ));
            }
        }
    }
    Ok(blocks)
}

/// An assistant message's blocks: its text, then its tool calls.
fn assistant_blocks<'a>(
    m: &'a MessageIn<'a>,
    i: usize,
) -> Result<Vec<ContentBlock<'a>>, TranslateError> {
    let mut blocks: Vec<ContentBlock<'a>> = shared::text_parts(m, i)?
        .into_iter()
        .filter(|t| !t.trim().is_empty())
        .map(|t| ContentBlock::Text(Cow::Borrowed(t)))
        .collect();
    for call in shared::tool_calls(m, i)? {
        blocks.push(ContentBlock::ToolUse(ToolUseBlock {
            tool_use_id: call.id,
            name: call.name,
            input: call.arguments,
        }));
    }
    Ok(blocks)
}

/// A tool message as a `toolResult` block: a JSON object as `json` (as written), else
/// text.
fn tool_result<'a>(m: &'a MessageIn<'a>, i: usize) -> Result<ContentBlock<'a>, TranslateError> {
    let id = shared::tool_call_id(m, i)?;
    let content = match shared::json_result(shared::text(m, i)?) {
        Ok(json) => ToolResultContent::Json(json),
        Err(text) => ToolResultContent::Text(text),
    };
    Ok(ContentBlock::ToolResult(ToolResultBlock {
        tool_use_id: id,
        content: vec![content],
    }))
}

/// OpenAI's `finish_reason` for a Converse `stopReason`.
pub fn finish_reason(reason: &str) -> &'static str {
    match reason {
        "tool_use" => "tool_calls",
        "max_tokens" | "model_context_window_exceeded" => "length",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        _ => "stop",
    }
}

/// Converse token counts as OpenAI usage: prompt tokens include those read from and
/// written to the cache.
fn usage(u: &wire::TokenUsage) -> Usage {
    let cache_read = u.cache_read_input_tokens.unwrap_or(0);
    let prompt = u.input_tokens + cache_read + u.cache_write_input_tokens.unwrap_or(0);
    Usage {
        prompt,
        completion: u.output_tokens,
        total: u.total_tokens,
        cached: u.cache_read_input_tokens,
        reasoning: None,
    }
}

/// A Converse answer as an OpenAI `chat.completion` (JSON) for `model` (the name the
/// client asked for), `created` at that Unix time. Tool inputs pass through as the model
/// wrote them.
pub fn chat_response(body: &[u8], model: &str, created: u64) -> Result<Vec<u8>, TranslateError> {
    let answer: ConverseResponse<'_> =
        serde_json::from_slice(body).map_err(|e| TranslateError::UpstreamBody {
            provider: PROVIDER,
            message: e.to_string(),
        })?;
    let mut text: Vec<Cow<'_, str>> = Vec::new();
    let mut reasoning: Vec<Cow<'_, str>> = Vec::new();
    let mut calls = Vec::new();
    for block in answer.output.message.iter().flat_map(|m| &m.content) {
        if let Some(t) = &block.text {
            text.push(Cow::Borrowed(t));
        } else if let Some(call) = &block.tool_use {
            calls.push(openai::ToolCall {
                id: Cow::Borrowed(&call.tool_use_id),
                r#type: "function",
                function: openai::FunctionCall {
                    name: Cow::Borrowed(&call.name),
                    arguments: Cow::Borrowed(call.input.map_or("{}", RawValue::get)),
                },
            });
        } else if let Some(t) = block
            .reasoning_content
            .as_ref()
            .and_then(|r| r.reasoning_text.as_ref())
            .and_then(|r| r.text.as_ref())
        {
            reasoning.push(Cow::Borrowed(t));
        }
    }
    let finish = match answer.stop_reason.as_deref() {
        Some(r) if !calls.is_empty() && matches!(r, "tool_use" | "end_turn") => "tool_calls",
        Some(r) => finish_reason(r),
        None if !calls.is_empty() => "tool_calls",
        None => "stop",
    };
    let id = shared::new_id("chatcmpl-");
    let completion = openai::ChatCompletion {
        id: &id,
        object: "chat.completion",
        created,
        model,
        choices: vec![openai::Choice::assistant(
            0,
            (!text.is_empty()).then(|| shared::join(&text, "")),
            (!reasoning.is_empty()).then(|| shared::join(&reasoning, "")),
            calls,
            Some(finish),
        )],
        usage: answer.usage.as_ref().map(|u| usage(u).to_wire()),
    };
    shared::write_answer(&completion, PROVIDER, body.len())
}

/// The status and OpenAI error type of a Bedrock error type (`ThrottlingException`,
/// `throttlingException`, …); `None` for types not known here.
fn classify(kind: &str) -> Option<(StatusCode, &'static str)> {
    let k = kind.to_ascii_lowercase();
    Some(match k.trim_end_matches("exception") {
        "throttling" | "servicequotaexceeded" | "toomanyrequests" => {
            (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error")
        }
        "accessdenied" => (StatusCode::FORBIDDEN, "permission_error"),
        "unrecognizedclient"
        | "invalidsignature"
        | "incompletesignature"
        | "expiredtoken"
        | "missingauthenticationtoken"
        | "invalidclienttokenid" => (StatusCode::UNAUTHORIZED, "authentication_error"),
        "validation" => (StatusCode::BAD_REQUEST, "invalid_request_error"),
        "resourcenotfound" => (StatusCode::NOT_FOUND, "invalid_request_error"),
        "serviceunavailable" | "modelnotready" => {
            (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable")
        }
        "internalserver" => (StatusCode::INTERNAL_SERVER_ERROR, "upstream_error"),
        "modeltimeout" => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
        "modelerror" | "modelstreamerror" => (StatusCode::BAD_GATEWAY, "upstream_error"),
        _ => return None,
    })
}

/// An OpenAI-shaped error from a Bedrock error type, its message, and the status to use
/// for a type not known here.
fn mapped(kind: Option<&str>, message: Option<&str>, status: StatusCode) -> ApiError {
    let (status, openai_kind) = kind.and_then(classify).unwrap_or_else(|| {
        let fallback = ApiError::from_upstream(status, b"", None);
        (status, fallback.kind)
    });
    let message = match message.map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => m.chars().take(2000).collect(),
        None => match kind {
            Some(k) => format!("Bedrock answered {status}: {k}"),
            None => format!("Bedrock answered {status}"),
        },
    };
    let context_window =
        status == StatusCode::BAD_REQUEST && shared::mentions_context_window(&message);
    shared::upstream_error(status, openai_kind, message, context_window, None)
}

/// How a Bedrock error answer looks to an OpenAI client. `error_type` is the answer's
/// `x-amzn-errortype` header ([`error_type`] reads it); without it the type is read from
/// the body's `__type`, else guessed from the status.
///
/// `ThrottlingException` → 429, `AccessDeniedException` → 403, signature and token
/// errors → 401, `ValidationException` → 400 (a context-window error when its message
/// says the input is too long), `ResourceNotFoundException` → 404,
/// `ServiceUnavailableException`/`ModelNotReadyException` → 503,
/// `InternalServerException` → 500, `ModelTimeoutException` → 504, `ModelErrorException`
/// (424) → 502. Retryable errors are exactly those with status 408, 429 or 5xx (the
/// proxy's rule).
pub fn error(
    status: StatusCode,
    body: &[u8],
    error_type: Option<&str>,
    retry_after: Option<Duration>,
) -> ApiError {
    let parsed: wire::ErrorBody<'_> = serde_json::from_slice(body).unwrap_or_default();
    let from_body = parsed
        .kind
        .as_deref()
        .map(|k| k.rsplit('#').next().unwrap_or(k));
    let from_status = match status.as_u16() {
        424 => Some("ModelErrorException"),
        408 => Some("ModelTimeoutException"),
        _ => None,
    };
    let kind = error_type
        .map(|t| t.split(':').next().unwrap_or(t))
        .or(from_body)
        .filter(|k| !k.is_empty())
        .or(from_status);
    if parsed.message.is_none() && kind.is_none() {
        return ApiError::from_upstream(status, body, retry_after);
    }
    let mut e = mapped(kind, parsed.message.as_deref(), status);
    e.retry_after = retry_after;
    e
}

/// The error type of an error answer: its `x-amzn-errortype` header without the part
/// after `:`.
pub fn error_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(':').next().unwrap_or(v))
}

/// An exception message of a ConverseStream (`:exception-type` and its JSON payload).
pub fn exception(kind: &str, payload: &[u8]) -> ApiError {
    let parsed: wire::ErrorBody<'_> = serde_json::from_slice(payload).unwrap_or_default();
    mapped(
        Some(kind),
        parsed.message.as_deref(),
        StatusCode::BAD_GATEWAY,
    )
}

/// Why a ConverseStream cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StreamError {
    /// The event-stream framing is broken.
    #[error("Bedrock stream: {0}")]
    Framing(#[from] EventStreamError),
    /// An event whose payload is not what Converse documents.
    #[error("invalid Bedrock stream event `{event}`: {message}")]
    Event {
        /// The event type.
        event: String,
        /// What is wrong.
        message: String,
    },
    /// Bedrock sent an exception.
    #[error("{0}")]
    Upstream(ApiError),
    /// The stream ended before `messageStop`.
    #[error("the Bedrock stream ended before messageStop")]
    Truncated,
    /// Data was fed after an error or after the end.
    #[error("the Bedrock stream already ended")]
    Ended,
}

impl StreamError {
    /// The error as a client sees it: Bedrock's own exception as [`exception`] maps it,
    /// else a 502.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            StreamError::Upstream(e) => e.clone(),
            other => ApiError::bad_gateway(other.to_string()),
        }
    }
}

fn payload<'a, T: Deserialize<'a>>(event: &str, bytes: &'a [u8]) -> Result<T, StreamError> {
    serde_json::from_slice(bytes).map_err(|e| StreamError::Event {
        event: event.to_owned(),
        message: e.to_string(),
    })
}

/// Most tool calls one answer may make (a bound on the state a stream can build up).
const MAX_TOOL_CALLS: usize = 1024;

/// Turns ConverseStream messages into OpenAI chunks.
///
/// The role chunk of `messageStart` is held back until the next chunk: an exception
/// right after `messageStart` (throttling) then reaches the proxy before anything was
/// written for the client, so the request can still go to another deployment.
#[derive(Debug)]
pub struct ChunkTranslator {
    header: ChunkHeader,
    include_usage: bool,
    started: bool,
    /// The role chunk is due before the next chunk.
    role_pending: bool,
    /// Content block index → tool-call index.
    tools: HashMap<u64, usize>,
    stopped: bool,
    usage: Option<Usage>,
    usage_sent: bool,
    done: bool,
}

impl ChunkTranslator {
    /// A translator for an answer to `model` (the name the client asked for), with the
    /// usage chunk at the end when `include_usage`.
    pub fn new(model: &str, include_usage: bool) -> Self {
        Self {
            header: ChunkHeader::new(model),
            include_usage,
            started: false,
            role_pending: false,
            tools: HashMap::new(),
            stopped: false,
            usage: None,
            usage_sent: false,
            done: false,
        }
    }

    fn start(&mut self) {
        if !self.started {
            self.started = true;
            self.role_pending = true;
        }
    }

    /// Writes the role chunk if it is due.
    fn flush_role(&mut self, out: &mut BytesMut) {
        if self.role_pending {
            self.role_pending = false;
            self.header.write(out, 0, shared::role_delta(), None);
        }
    }

    /// Writes a chunk (after the role chunk, the first time).
    fn write(&mut self, out: &mut BytesMut, delta: Delta<'_>, finish: Option<&'static str>) {
        self.start();
        self.flush_role(out);
        self.header.write(out, 0, delta, finish);
    }

    fn send_usage(&mut self, out: &mut BytesMut) {
        if self.include_usage && !self.usage_sent {
            self.usage_sent = true;
            self.flush_role(out);
            self.header.write_usage(out, self.usage.unwrap_or_default());
        }
    }

    /// Writes the chunks of one message to `out` (as server-sent events).
    pub fn message(
        &mut self,
        message: &eventstream::Message,
        out: &mut BytesMut,
    ) -> Result<(), StreamError> {
        if self.done {
            return Err(StreamError::Ended);
        }
        match message.header_str(":message-type") {
            Some("event") => {}
            Some("exception") => {
                let kind = message.header_str(":exception-type").unwrap_or("exception");
                return Err(StreamError::Upstream(exception(kind, &message.payload)));
            }
            Some("error") => {
                let code = message.header_str(":error-code").unwrap_or("error");
                let text = message.header_str(":error-message").unwrap_or("");
                return Err(StreamError::Upstream(mapped(
                    Some(code),
                    Some(text),
                    StatusCode::BAD_GATEWAY,
                )));
            }
            other => {
                return Err(StreamError::Event {
                    event: other.unwrap_or("").to_owned(),
                    message: "unknown :message-type".to_owned(),
                });
            }
        }
        let event = message.header_str(":event-type").unwrap_or("");
        let bytes = &message.payload[..];
        match event {
            "messageStart" => self.start(),
            "contentBlockStart" => {
                let start: wire::ContentBlockStart<'_> = payload(event, bytes)?;
                if let Some(tool) = start.start.and_then(|s| s.tool_use) {
                    let index = self.tools.len();
                    if index >= MAX_TOOL_CALLS {
                        return Err(StreamError::Event {
                            event: event.to_owned(),
                            message: format!("more than {MAX_TOOL_CALLS} tool calls"),
                        });
                    }
                    self.tools.insert(start.content_block_index, index);
                    let delta = shared::tool_call_delta(
                        index,
                        Some(&tool.tool_use_id),
                        Some(&tool.name),
                        "",
                    );
                    self.write(out, delta, None);
                }
            }
            "contentBlockDelta" => {
                let delta: wire::ContentBlockDelta<'_> = payload(event, bytes)?;
                let Some(d) = delta.delta else {
                    return Ok(());
                };
                self.start();
                if let Some(t) = d.text.as_deref().filter(|t| !t.is_empty()) {
                    let chunk = Delta {
                        content: Some(t),
                        ..Delta::default()
                    };
                    self.write(out, chunk, None);
                } else if let Some(tool) = &d.tool_use {
                    let index = *self.tools.get(&delta.content_block_index).ok_or_else(|| {
                        StreamError::Event {
                            event: event.to_owned(),
                            message: "a tool input delta for a block that is not a tool call"
                                .to_owned(),
                        }
                    })?;
                    self.write(
                        out,
                        shared::tool_call_delta(index, None, None, &tool.input),
                        None,
                    );
                } else if let Some(t) = d.reasoning_content.as_ref().and_then(|r| r.text.as_deref())
                {
                    let chunk = Delta {
                        reasoning_content: Some(t),
                        ..Delta::default()
                    };
                    self.write(out, chunk, None);
                }
            }
            "messageStop" => {
                let stop: wire::MessageStop<'_> = payload(event, bytes)?;
                self.start();
                if !self.stopped {
                    self.stopped = true;
                    let reason = stop.stop_reason.as_deref().unwrap_or("end_turn");
                    let finish =
                        if !self.tools.is_empty() && matches!(reason, "tool_use" | "end_turn") {
                            "tool_calls"
                        } else {
                            finish_reason(reason)
                        };
                    self.write(out, Delta::default(), Some(finish));
                }
            }
            "metadata" => {
                let meta: wire::StreamMetadata = payload(event, bytes)?;
                if let Some(u) = &meta.usage {
                    self.usage = Some(usage(u));
                }
                if self.stopped {
                    self.send_usage(out);
                }
            }
            // `contentBlockStop`, and event types added later.
            _ => {}
        }
        Ok(())
    }

    /// The end of the stream: writes the usage chunk when asked for and not sent yet, or
    /// fails with [`StreamError::Truncated`] without a `messageStop`.
    pub fn finish(&mut self, out: &mut BytesMut) -> Result<(), StreamError> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        if !self.stopped {
            return Err(StreamError::Truncated);
        }
        self.flush_role(out);
        self.send_usage(out);
        Ok(())
    }
}

/// ConverseStream bytes to OpenAI chunks, incrementally.
#[derive(Debug)]
pub struct StreamDecoder {
    decoder: eventstream::Decoder,
    translator: ChunkTranslator,
    failed: bool,
}

impl StreamDecoder {
    /// A decoder for an answer to `model` (the name the client asked for), with the usage
    /// chunk at the end when `include_usage` ([`shared::include_usage`] reads it from the
    /// request).
    pub fn new(model: &str, include_usage: bool) -> Self {
        Self::with_decoder(model, include_usage, eventstream::Decoder::new())
    }

    /// As [`StreamDecoder::new`], with the given framing decoder (a smaller message limit).
    pub fn with_decoder(model: &str, include_usage: bool, decoder: eventstream::Decoder) -> Self {
        Self {
            decoder,
            translator: ChunkTranslator::new(model, include_usage),
            failed: false,
        }
    }

    /// Feeds the next bytes of the body; writes the chunks they complete to `out`
    /// (`data: <chunk>` server-sent events). After an error, what was written before it
    /// stays in `out`, and the decoder stays failed.
    pub fn feed(&mut self, bytes: &[u8], out: &mut BytesMut) -> Result<(), StreamError> {
        if self.failed {
            return Err(StreamError::Ended);
        }
        self.decoder.feed(bytes);
        let result = self.drain(out);
        self.fail_on(result)
    }

    /// The end of the body: writes the last chunks (the usage chunk when asked for; not
    /// `[DONE]`).
    pub fn finish(&mut self, out: &mut BytesMut) -> Result<(), StreamError> {
        if self.failed {
            return Err(StreamError::Ended);
        }
        let result = self
            .drain(out)
            .and_then(|()| self.decoder.finish().map_err(StreamError::from))
            .and_then(|()| self.translator.finish(out));
        self.fail_on(result)
    }

    fn drain(&mut self, out: &mut BytesMut) -> Result<(), StreamError> {
        while let Some(message) = self.decoder.next_message()? {
            self.translator.message(&message, out)?;
        }
        Ok(())
    }

    fn fail_on(&mut self, result: Result<(), StreamError>) -> Result<(), StreamError> {
        if result.is_err() {
            self.failed = true;
        }
        result
    }
}
