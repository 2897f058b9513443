//! OpenAI chat completions → Anthropic Messages, and the answers back.
//!
//! Request: `system`/`developer` messages become the top-level `system` (wherever they
//! stood); `tool` messages become `tool_result` blocks of a user turn; consecutive turns of
//! one role are merged (Anthropic wants them alternating); assistant `tool_calls` become
//! `tool_use` blocks (arguments parsed from their JSON string); images become `base64`
//! (`data:` URLs) or `url` sources, PDFs (`file.file_data`) `document` blocks; `max_tokens`
//! is required, so it defaults to `modelInfo.maxOutputTokens`, else 4096; `stop` →
//! `stop_sequences`; `tools` → `input_schema`; `tool_choice` auto/none/required/named →
//! auto/none/any/tool; `parallel_tool_calls: false` → `disable_parallel_tool_use`;
//! `user` → `metadata.user_id`. What Anthropic cannot take (`logit_bias`, non-zero
//! penalties, `logprobs`, `n` > 1, `seed`, `response_format` other than text, legacy
//! `functions`, `reasoning_effort`, audio, predictions, web search) is dropped under
//! `dropParams`, else refused with a 400 naming the parameter.
//!
//! Answer: text blocks joined, `tool_use` → `tool_calls`, `stop_reason` → `finish_reason`,
//! usage (cache reads and writes count as prompt tokens). Stream: Anthropic's events →
//! `chat.completion.chunk`s, one event at a time; tool calls are numbered among tool
//! calls only; a usage chunk when asked; `[DONE]` after `message_stop` only.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use serde_json::value::RawValue;

use super::wire::{
    Block, EventIn, MessageIn, MessagesRequest, Metadata, Role, Source, System, Tool, ToolChoice,
    ToolSchema, Turn, TurnContent, UsageIn,
};
use super::{DEFAULT_MAX_TOKENS, finish_reason, now_secs, split_data_url};
use crate::errors::ApiError;
use crate::providers::openai::wire::{
    ChatCompletion, ChatRequestIn, Choice, Chunk, ChunkChoice, Delta, FunctionCall, FunctionDelta,
    MessageIn as OpenAiMessage, OneOrMany, PartIn, PromptTokensDetails, ToolCall, ToolCallDelta,
    ToolChoiceIn, Usage,
};
use crate::providers::{
    Endpoint, RequestContext, ResponseContext, StreamTranslator, Translated, Translator,
};
use crate::sse;

/// The OpenAI chat → Anthropic leg.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenAiToAnthropic;

impl Translator for OpenAiToAnthropic {
    fn request(&self, cx: &RequestContext<'_>, body: &Bytes) -> Result<Translated, ApiError> {
        if cx.endpoint != Endpoint::Chat {
            return Err(ApiError::bad_request(format!(
                "`{}` has no {} on Anthropic deployments: Anthropic serves chat completions (and /v1/messages) only",
                cx.requested_model,
                match cx.endpoint {
                    Endpoint::Embeddings => "embeddings",
                    Endpoint::Completions => "legacy completions",
                    _ => "such endpoint",
                }
            )));
        }
        let parsed: ChatRequestIn<'_> = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid chat completion request: {e}")))?;
        let include_usage = parsed
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        let out = request(cx, &parsed)?;
        let bytes = serde_json::to_vec(&out)
            .map_err(|e| ApiError::internal(format!("cannot write the Anthropic request: {e}")))?;
        Ok(Translated {
            body: Bytes::from(bytes),
            context: ResponseContext {
                include_usage,
                created: now_secs(),
                ..ResponseContext::default()
            },
        })
    }

    fn response(&self, cx: &ResponseContext, body: Bytes) -> Result<Bytes, ApiError> {
        response(cx, &body)
    }

    fn stream(&self, cx: &ResponseContext) -> Box<dyn StreamTranslator> {
        Box::new(AnthropicStream::new(cx))
    }

    fn error(
        &self,
        status: StatusCode,
        _headers: &http::HeaderMap,
        body: &[u8],
        retry_after: Option<std::time::Duration>,
    ) -> ApiError {
        ApiError::from_anthropic(status, body, retry_after)
    }
}

fn borrow<'a>(c: &'a Cow<'a, str>) -> Cow<'a, str> {
    Cow::Borrowed(c.as_ref())
}

/// A parameter Anthropic cannot take: dropped under `dropParams`, else a 400.
fn unsupported(cx: &RequestContext<'_>, param: &str, why: &str) -> Result<(), ApiError> {
    if cx.drop_params {
        tracing::debug!(param, "dropped a parameter Anthropic cannot take");
        return Ok(());
    }
    Err(ApiError::invalid_param(
        param,
        format!(
            "`{param}` is not supported by Anthropic deployments{why}; remove it, or turn on the router setting dropParams to drop it"
        ),
    ))
}

/// The Anthropic request for an OpenAI chat request.
pub fn request<'a>(
    cx: &RequestContext<'a>,
    req: &'a ChatRequestIn<'a>,
) -> Result<MessagesRequest<'a>, ApiError> {
    check_params(cx, req)?;
    let mut system: Vec<Cow<'a, str>> = Vec::new();
    let mut turns: Vec<Turn<'a>> = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.iter().enumerate() {
        message(i, m, &mut system, &mut turns)?;
    }
    let system = match system.len() {
        0 => None,
        1 => system.pop().map(System::Text),
        _ => Some(System::Blocks(
            system
                .into_iter()
                .map(|text| Block::Text { text })
                .collect(),
        )),
    };
    let stop_sequences = match &req.stop {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![borrow(s)],
        Some(OneOrMany::Many(v)) => v.iter().map(borrow).collect(),
    };
    let mut tools = Vec::new();
    for (i, t) in req.tools.iter().flatten().enumerate() {
        let kind = t.r#type.as_deref().unwrap_or_default();
        let Some(f) = t.function.as_ref().filter(|_| kind == "function") else {
            return Err(ApiError::invalid_param(
                "tools",
                format!(
                    "tools[{i}]: only `function` tools can be sent to Anthropic deployments, not `{kind}`"
                ),
            ));
        };
        tools.push(Tool {
            name: borrow(&f.name),
            description: f.description.as_ref().map(borrow),
            input_schema: ToolSchema::of(f.parameters),
        });
    }
    let disable_parallel = (req.parallel_tool_calls == Some(false)).then_some(true);
    let tool_choice = if tools.is_empty() {
        None
    } else {
        match &req.tool_choice {
            None => disable_parallel.map(|d| ToolChoice {
                r#type: "auto",
                name: None,
                disable_parallel_tool_use: Some(d),
            }),
            Some(ToolChoiceIn::Mode(m)) => {
                let r#type = match m.as_ref() {
                    "auto" => "auto",
                    "required" => "any",
                    "none" => "none",
                    other => {
                        return Err(ApiError::invalid_param(
                            "tool_choice",
                            format!("unknown tool_choice `{other}`"),
                        ));
                    }
                };
                Some(ToolChoice {
                    r#type,
                    name: None,
                    disable_parallel_tool_use: disable_parallel.filter(|_| r#type != "none"),
                })
            }
            Some(ToolChoiceIn::Function(name)) => Some(ToolChoice {
                r#type: "tool",
                name: Some(borrow(name)),
                disable_parallel_tool_use: disable_parallel,
            }),
        }
    };
    Ok(MessagesRequest {
        model: cx.upstream_model,
        messages: turns,
        system,
        max_tokens: req
            .max_completion_tokens
            .or(req.max_tokens)
            .or(cx.deployment.model_info.max_output_tokens)
            .unwrap_or(DEFAULT_MAX_TOKENS),
        stop_sequences,
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        stream: cx.stream,
        tools,
        tool_choice,
        metadata: req.user.as_ref().map(|u| Metadata { user_id: borrow(u) }),
    })
}

fn check_params(cx: &RequestContext<'_>, req: &ChatRequestIn<'_>) -> Result<(), ApiError> {
    let checks: [(&str, bool, &str); 15] = [
        ("logit_bias", req.logit_bias.is_some(), ""),
        (
            "presence_penalty",
            req.presence_penalty.is_some_and(|v| v != 0.0),
            "",
        ),
        (
            "frequency_penalty",
            req.frequency_penalty.is_some_and(|v| v != 0.0),
            "",
        ),
        ("logprobs", req.logprobs == Some(true), ""),
        ("top_logprobs", req.top_logprobs.is_some(), ""),
        (
            "n",
            req.n.is_some_and(|n| n != 1),
            " (one choice per request)",
        ),
        ("seed", req.seed.is_some(), ""),
        (
            "response_format",
            req.response_format
                .as_ref()
                .is_some_and(|f| f.r#type != "text"),
            " (no JSON mode)",
        ),
        ("functions", req.functions.is_some(), " (use `tools`)"),
        (
            "function_call",
            req.function_call.is_some(),
            " (use `tool_choice`)",
        ),
        ("reasoning_effort", req.reasoning_effort.is_some(), ""),
        ("audio", req.audio.is_some(), ""),
        (
            "modalities",
            req.modalities
                .iter()
                .flatten()
                .any(|m| m.as_ref() != "text"),
            "",
        ),
        ("prediction", req.prediction.is_some(), ""),
        ("web_search_options", req.web_search_options.is_some(), ""),
    ];
    for (param, present, why) in checks {
        if present {
            unsupported(cx, param, why)?;
        }
    }
    Ok(())
}

/// Adds one OpenAI message to the system prompt or the turns.
fn message<'a>(
    i: usize,
    m: &'a OpenAiMessage<'a>,
    system: &mut Vec<Cow<'a, str>>,
    turns: &mut Vec<Turn<'a>>,
) -> Result<(), ApiError> {
    let bad = |msg: String| ApiError::invalid_param("messages", format!("messages[{i}]: {msg}"));
    match m.role.as_ref() {
        "system" | "developer" => match &m.content {
            Some(OneOrMany::One(text)) => system.push(borrow(text)),
            Some(OneOrMany::Many(parts)) => {
                for p in parts {
                    if let Some(text) = p.text.as_ref().filter(|_| p.r#type == "text") {
                        system.push(borrow(text));
                    }
                }
            }
            None => {}
        },
        "user" => {
            let content = match &m.content {
                Some(OneOrMany::One(text)) => TurnContent::Text(borrow(text)),
                Some(OneOrMany::Many(parts)) => TurnContent::Blocks(
                    parts
                        .iter()
                        .map(|p| part(p).map_err(&bad))
                        .collect::<Result<_, _>>()?,
                ),
                None => return Err(bad("a user message needs content".to_owned())),
            };
            push(turns, Role::User, content);
        }
        "assistant" => {
            let mut blocks = Vec::new();
            match &m.content {
                Some(OneOrMany::One(text)) if !text.is_empty() => {
                    blocks.push(Block::Text { text: borrow(text) });
                }
                Some(OneOrMany::Many(parts)) => {
                    for p in parts {
                        let text = match p.r#type.as_ref() {
                            "text" => p.text.as_ref(),
                            "refusal" => p.refusal.as_ref(),
                            other => {
                                return Err(bad(format!(
                                    "an assistant message cannot hold a `{other}` part"
                                )));
                            }
                        };
                        if let Some(text) = text.filter(|t| !t.is_empty()) {
                            blocks.push(Block::Text { text: borrow(text) });
                        }
                    }
                }
                _ => {}
            }
            for call in m.tool_calls.iter().flatten() {
                blocks.push(Block::ToolUse {
                    id: borrow(&call.id),
                    name: borrow(&call.function.name),
                    input: arguments(&call.function.arguments).map_err(|e| {
                        bad(format!(
                            "the arguments of tool call `{}` {e}",
                            call.function.name
                        ))
                    })?,
                });
            }
            if blocks.is_empty() {
                // Nothing said and nothing called: Anthropic refuses empty turns.
                return Ok(());
            }
            let content = match blocks.len() {
                1 if matches!(blocks[0], Block::Text { .. }) => match blocks.pop() {
                    Some(Block::Text { text }) => TurnContent::Text(text),
                    Some(other) => TurnContent::Blocks(vec![other]),
                    None => return Ok(()),
                },
                _ => TurnContent::Blocks(blocks),
            };
            push(turns, Role::Assistant, content);
        }
        "tool" => {
            let Some(id) = &m.tool_call_id else {
                return Err(bad("a tool message needs `tool_call_id`".to_owned()));
            };
            let content = match &m.content {
                Some(OneOrMany::One(text)) => TurnContent::Text(borrow(text)),
                Some(OneOrMany::Many(parts)) => TurnContent::Blocks(
                    parts
                        .iter()
                        .map(|p| part(p).map_err(&bad))
                        .collect::<Result<_, _>>()?,
                ),
                None => TurnContent::Text(Cow::Borrowed("")),
            };
            push(
                turns,
                Role::User,
                TurnContent::Blocks(vec![Block::ToolResult {
                    tool_use_id: borrow(id),
                    content,
                }]),
            );
        }
        other => {
            return Err(bad(format!(
                "role `{other}` is not supported by Anthropic deployments"
            )));
        }
    }
    Ok(())
}

/// Appends a turn, merged into the last one when it has the same role.
fn push<'a>(turns: &mut Vec<Turn<'a>>, role: Role, content: TurnContent<'a>) {
    if let Some(last) = turns.last_mut()
        && last.role == role
    {
        let mut blocks =
            std::mem::replace(&mut last.content, TurnContent::Blocks(Vec::new())).into_blocks();
        blocks.extend(content.into_blocks());
        last.content = TurnContent::Blocks(blocks);
        return;
    }
    turns.push(Turn { role, content });
}

/// One content part of a user (or tool) message.
fn part<'a>(p: &'a PartIn<'a>) -> Result<Block<'a>, String> {
    match p.r#type.as_ref() {
        "text" => Ok(Block::Text {
            text: p.text.as_ref().map_or(Cow::Borrowed(""), borrow),
        }),
        "image_url" => {
            let url = p
                .image_url
                .as_ref()
                .map(|i| i.url.as_ref())
                .ok_or("an image_url part needs `image_url.url`")?;
            Ok(Block::Image {
                source: source(url).ok_or(
                    "an image must be a data: URL (base64) or an http(s) URL for Anthropic deployments",
                )?,
            })
        }
        "file" => {
            let data = p
                .file
                .as_ref()
                .and_then(|f| f.file_data.as_deref())
                .and_then(split_data_url)
                .ok_or(
                    "a file part must carry `file_data` as a base64 data: URL for Anthropic deployments (uploaded file ids cannot be read there)",
                )?;
            Ok(Block::Document {
                source: Source::Base64 {
                    media_type: Cow::Borrowed(data.0),
                    data: Cow::Borrowed(data.1),
                },
            })
        }
        other => Err(format!(
            "`{other}` content is not supported by Anthropic deployments"
        )),
    }
}

fn source(url: &str) -> Option<Source<'_>> {
    if let Some((media_type, data)) = split_data_url(url) {
        return Some(Source::Base64 {
            media_type: Cow::Borrowed(media_type),
            data: Cow::Borrowed(data),
        });
    }
    (url.starts_with("https://") || url.starts_with("http://")).then_some(Source::Url {
        url: Cow::Borrowed(url),
    })
}

/// A tool call's arguments (a JSON text) as a tool input (a JSON object).
fn arguments(args: &str) -> Result<Box<RawValue>, &'static str> {
    let trimmed = args.trim();
    if trimmed.is_empty() {
        return RawValue::from_string("{}".to_owned()).map_err(|_| "cannot be written");
    }
    if !trimmed.starts_with('{') {
        return Err("must be a JSON object");
    }
    RawValue::from_string(trimmed.to_owned()).map_err(|_| "are not valid JSON")
}

/// Prompt tokens (cache reads and writes included) and the cached part.
fn prompt_tokens(u: &UsageIn) -> (u64, Option<u64>) {
    let total = u.input_tokens.unwrap_or(0)
        + u.cache_creation_input_tokens.unwrap_or(0)
        + u.cache_read_input_tokens.unwrap_or(0);
    (total, u.cache_read_input_tokens)
}

fn usage(prompt: u64, cached: Option<u64>, completion: u64) -> Usage {
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        prompt_tokens_details: cached.map(|c| PromptTokensDetails {
            cached_tokens: Some(c),
        }),
        completion_tokens_details: None,
    }
}

/// The OpenAI chat completion for an Anthropic message.
pub fn response(cx: &ResponseContext, body: &[u8]) -> Result<Bytes, ApiError> {
    let m: MessageIn<'_> = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_gateway(format!("the Anthropic answer is not a message: {e}"))
    })?;
    let mut texts = m
        .content
        .iter()
        .filter(|b| b.r#type == "text")
        .filter_map(|b| b.text.as_deref());
    let content: Option<Cow<'_, str>> = match (texts.next(), texts.next()) {
        (None, _) => None,
        (Some(one), None) => Some(Cow::Borrowed(one)),
        (Some(a), Some(b)) => {
            let mut joined = String::with_capacity(a.len() + b.len());
            joined.push_str(a);
            joined.push_str(b);
            texts.for_each(|t| joined.push_str(t));
            Some(Cow::Owned(joined))
        }
    };
    let tool_calls: Vec<ToolCall<'_>> = m
        .content
        .iter()
        .filter(|b| b.r#type == "tool_use")
        .map(|b| ToolCall {
            id: b.id.as_ref().map_or(Cow::Borrowed(""), borrow),
            r#type: "function",
            function: FunctionCall {
                name: b.name.as_ref().map_or(Cow::Borrowed(""), borrow),
                arguments: Cow::Borrowed(b.input.map_or("{}", RawValue::get)),
            },
        })
        .collect();
    let (prompt, cached) = prompt_tokens(&m.usage);
    let out = ChatCompletion {
        id: &m.id,
        object: "chat.completion",
        created: cx.created,
        model: &m.model,
        choices: vec![Choice::assistant(
            0,
            content,
            None,
            tool_calls,
            m.stop_reason.as_deref().map(finish_reason),
        )],
        usage: Some(usage(prompt, cached, m.usage.output_tokens.unwrap_or(0))),
    };
    serde_json::to_vec(&out)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(format!("cannot write the answer: {e}")))
}

/// The status an Anthropic error type stands for (an `error` event has no status).
pub fn status_of_error_type(t: &str) -> StatusCode {
    match t {
        "invalid_request_error" => StatusCode::BAD_REQUEST,
        "authentication_error" => StatusCode::UNAUTHORIZED,
        "billing_error" => StatusCode::PAYMENT_REQUIRED,
        "permission_error" => StatusCode::FORBIDDEN,
        "not_found_error" => StatusCode::NOT_FOUND,
        "request_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "rate_limit_error" => StatusCode::TOO_MANY_REQUESTS,
        "timeout_error" => StatusCode::GATEWAY_TIMEOUT,
        "overloaded_error" => StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The error an Anthropic `error` event reports (its data is an error body).
pub fn error_event(data: &[u8], t: Option<&str>) -> ApiError {
    ApiError::from_anthropic(status_of_error_type(t.unwrap_or("api_error")), data, None)
}

/// Anthropic stream → OpenAI chunks.
#[derive(Debug)]
pub struct AnthropicStream {
    decoder: sse::Decoder,
    include_usage: bool,
    created: u64,
    id: String,
    model: String,
    /// The block index of each `tool_use` block, in order: the position is the OpenAI
    /// tool-call index.
    tools: Vec<usize>,
    prompt: u64,
    cached: Option<u64>,
    completion: u64,
    done: bool,
}

impl AnthropicStream {
    /// A translator for one stream.
    pub fn new(cx: &ResponseContext) -> Self {
        Self {
            decoder: sse::Decoder::default(),
            include_usage: cx.include_usage,
            created: cx.created,
            id: String::new(),
            model: String::new(),
            tools: Vec::new(),
            prompt: 0,
            cached: None,
            completion: 0,
            done: false,
        }
    }

    fn chunk(&self, out: &mut BytesMut, delta: Delta<'_>, finish: Option<&'static str>) {
        let choices = [ChunkChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason: finish,
        }];
        sse::write_json_data(
            out,
            &Chunk {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: &self.model,
                choices: &choices,
                usage: None,
            },
        );
    }

    fn usage(&mut self, u: &UsageIn) {
        if u.input_tokens.is_some()
            || u.cache_creation_input_tokens.is_some()
            || u.cache_read_input_tokens.is_some()
        {
            let (prompt, cached) = prompt_tokens(u);
            self.prompt = prompt;
            self.cached = cached.or(self.cached);
        }
        if let Some(o) = u.output_tokens {
            self.completion = o;
        }
    }

    fn event(&mut self, data: &[u8], out: &mut BytesMut) -> Result<(), ApiError> {
        let e: EventIn<'_> = serde_json::from_slice(data).map_err(|err| {
            ApiError::bad_gateway(format!("unreadable Anthropic stream event: {err}"))
        })?;
        match e.r#type.as_ref() {
            "message_start" => {
                if let Some(m) = &e.message {
                    self.id = m.id.as_ref().to_owned();
                    self.model = m.model.as_ref().to_owned();
                    self.usage(&m.usage);
                }
                self.chunk(
                    out,
                    Delta {
                        role: Some("assistant"),
                        content: Some(""),
                        ..Delta::default()
                    },
                    None,
                );
            }
            "content_block_start" => {
                let (Some(block), Some(index)) = (&e.content_block, e.index) else {
                    return Ok(());
                };
                match block.r#type.as_ref() {
                    "text" => {
                        if let Some(text) = block.text.as_deref().filter(|t| !t.is_empty()) {
                            self.chunk(
                                out,
                                Delta {
                                    content: Some(text),
                                    ..Delta::default()
                                },
                                None,
                            );
                        }
                    }
                    "tool_use" => {
                        let k = self.tools.len();
                        self.tools.push(index);
                        self.chunk(
                            out,
                            Delta {
                                tool_calls: Some([ToolCallDelta {
                                    index: k,
                                    id: block.id.as_deref(),
                                    r#type: Some("function"),
                                    function: FunctionDelta {
                                        name: block.name.as_deref(),
                                        arguments: "",
                                    },
                                }]),
                                ..Delta::default()
                            },
                            None,
                        );
                    }
                    // thinking, server tools, and blocks yet to come.
                    _ => {}
                }
            }
            "content_block_delta" => {
                let (Some(delta), Some(index)) = (&e.delta, e.index) else {
                    return Ok(());
                };
                match delta.r#type.as_deref() {
                    Some("text_delta") => {
                        if let Some(text) = delta.text.as_deref().filter(|t| !t.is_empty()) {
                            self.chunk(
                                out,
                                Delta {
                                    content: Some(text),
                                    ..Delta::default()
                                },
                                None,
                            );
                        }
                    }
                    Some("input_json_delta") => {
                        let k = self.tools.iter().position(|b| *b == index);
                        if let (Some(k), Some(piece)) =
                            (k, delta.partial_json.as_deref().filter(|p| !p.is_empty()))
                        {
                            self.chunk(
                                out,
                                Delta {
                                    tool_calls: Some([ToolCallDelta {
                                        index: k,
                                        id: None,
                                        r#type: None,
                                        function: FunctionDelta {
                                            name: None,
                                            arguments: piece,
                                        },
                                    }]),
                                    ..Delta::default()
                                },
                                None,
                            );
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(u) = &e.usage {
                    self.usage(u);
                }
                let finish = e
                    .delta
                    .as_ref()
                    .and_then(|d| d.stop_reason.as_deref())
                    .map_or("stop", finish_reason);
                self.chunk(out, Delta::default(), Some(finish));
            }
            "message_stop" => {
                if self.include_usage {
                    sse::write_json_data(
                        out,
                        &Chunk {
                            id: &self.id,
                            object: "chat.completion.chunk",
                            created: self.created,
                            model: &self.model,
                            choices: &[],
                            usage: Some(usage(self.prompt, self.cached, self.completion)),
                        },
                    );
                }
                sse::write_done(out);
                self.done = true;
            }
            "error" => {
                let t = e.error.as_ref().and_then(|x| x.r#type.as_deref());
                return Err(error_event(data, t));
            }
            // ping, content_block_stop, and events yet to come.
            _ => {}
        }
        Ok(())
    }
}

impl StreamTranslator for AnthropicStream {
    fn feed(&mut self, bytes: &[u8], out: &mut BytesMut) -> Result<(), ApiError> {
        if self.done {
            return Ok(());
        }
        self.decoder.push(bytes);
        while let Some(event) = self
            .decoder
            .next_event()
            .map_err(|e| ApiError::bad_gateway(e.to_string()))?
        {
            self.event(&event.data, out)?;
            if self.done {
                break;
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut BytesMut) -> Result<(), ApiError> {
        if !self.done
            && let Some(event) = self.decoder.finish()
        {
            self.event(&event.data, out)?;
        }
        if self.done {
            Ok(())
        } else {
            Err(ApiError::bad_gateway(
                "the Anthropic stream ended before message_stop",
            ))
        }
    }
}
