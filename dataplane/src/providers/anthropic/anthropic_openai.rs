//! Anthropic Messages (a client on `/v1/messages`) → OpenAI chat completions, and the
//! answers back: the front leg for deployments that do not speak Anthropic's API.
//!
//! Request: `system` → a system message; user turns → user messages, their
//! `tool_result` blocks → `tool` messages (placed first, right after the assistant's
//! calls, as OpenAI wants); `image` blocks → `image_url` parts (base64 as `data:` URLs),
//! PDF `document` blocks → `file` parts; assistant `tool_use` blocks → `tool_calls`
//! (input object → arguments string); `thinking` blocks of earlier turns are left out;
//! `tools`/`tool_choice` (auto/any/tool/none → auto/required/named/none,
//! `disable_parallel_tool_use` → `parallel_tool_calls: false`); `stop_sequences` →
//! `stop`; `max_tokens` (→ `max_completion_tokens` for reasoning models);
//! `metadata.user_id` → `user`. Streams ask for the usage chunk. What OpenAI chat has no
//! place for (`top_k`, `thinking`, Anthropic's server tools) is dropped under
//! `dropParams`, else refused with a 400 naming it.
//!
//! Answer: the first choice's text and tool calls as blocks, `finish_reason` →
//! `stop_reason`, usage. Stream: OpenAI chunks → `message_start`, one
//! `content_block_start`/`delta`/`stop` run per text or tool call, `message_delta` (stop
//! reason, usage) and `message_stop`, written as chunks arrive.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use serde_json::value::RawValue;

use super::wire::{
    Block, BlockDelta, BlockIn, BlockStart, EmptyObject, Event, Message, MessageDelta,
    MessagesRequestIn, Usage,
};
use super::{now_secs, stop_reason};
use crate::errors::ApiError;
use crate::providers::openai::wire::{
    ChatCompletionIn, ChatRequest, ChunkIn, Content, File, FunctionCall, FunctionDef, ImageUrl,
    Message as OpenAiMessage, NamedFunction, OneOrMany, Part, StreamOptions, Tool, ToolCall,
    ToolChoice, UsageIn,
};
use crate::providers::{RequestContext, ResponseContext, StreamTranslator, Translated, Translator};
use crate::sse;

/// The `/v1/messages` → OpenAI chat leg.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnthropicToOpenAi;

impl Translator for AnthropicToOpenAi {
    fn request(&self, cx: &RequestContext<'_>, body: &Bytes) -> Result<Translated, ApiError> {
        let parsed: MessagesRequestIn<'_> = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid Messages request: {e}")))?;
        let out = request(cx, &parsed)?;
        let bytes = serde_json::to_vec(&out)
            .map_err(|e| ApiError::internal(format!("cannot write the chat request: {e}")))?;
        Ok(Translated {
            body: Bytes::from(bytes),
            context: ResponseContext {
                include_usage: true,
                created: now_secs(),
                ..ResponseContext::default()
            },
        })
    }

    fn response(&self, _cx: &ResponseContext, body: Bytes) -> Result<Bytes, ApiError> {
        response(&body)
    }

    fn stream(&self, _cx: &ResponseContext) -> Box<dyn StreamTranslator> {
        Box::new(MessagesStream::default())
    }
}

fn borrow<'a>(c: &'a Cow<'a, str>) -> Cow<'a, str> {
    Cow::Borrowed(c.as_ref())
}

fn unsupported(cx: &RequestContext<'_>, param: &str) -> Result<(), ApiError> {
    if cx.drop_params {
        tracing::debug!(param, "dropped a parameter OpenAI chat cannot take");
        return Ok(());
    }
    Err(ApiError::invalid_param(
        param,
        format!(
            "`{param}` is not supported by this model's deployment (it speaks OpenAI chat completions); remove it, or turn on the router setting dropParams to drop it"
        ),
    ))
}

/// Text of blocks joined (system prompts, tool results).
fn joined<'a>(blocks: &'a [BlockIn<'a>]) -> Cow<'a, str> {
    let mut texts = blocks
        .iter()
        .filter(|b| b.r#type == "text")
        .filter_map(|b| b.text.as_deref());
    match (texts.next(), texts.next()) {
        (None, _) => Cow::Borrowed(""),
        (Some(one), None) => Cow::Borrowed(one),
        (Some(a), Some(b)) => {
            let mut s = format!("{a}\n\n{b}");
            for t in texts {
                s.push_str("\n\n");
                s.push_str(t);
            }
            Cow::Owned(s)
        }
    }
}

/// The OpenAI chat request for a Messages request.
pub fn request<'a>(
    cx: &RequestContext<'a>,
    req: &'a MessagesRequestIn<'a>,
) -> Result<ChatRequest<'a>, ApiError> {
    if req.top_k.is_some() {
        unsupported(cx, "top_k")?;
    }
    if req
        .thinking
        .as_ref()
        .is_some_and(|t| t.r#type != "disabled")
    {
        unsupported(cx, "thinking")?;
    }
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    match &req.system {
        Some(OneOrMany::One(text)) => messages.push(text_message("system", borrow(text))),
        Some(OneOrMany::Many(blocks)) if !blocks.is_empty() => {
            messages.push(text_message("system", joined(blocks)));
        }
        _ => {}
    }
    for (i, turn) in req.messages.iter().enumerate() {
        let bad = |m: String| ApiError::invalid_param("messages", format!("messages[{i}]: {m}"));
        match (turn.role.as_ref(), &turn.content) {
            ("user", OneOrMany::One(text)) => messages.push(text_message("user", borrow(text))),
            ("assistant", OneOrMany::One(text)) => {
                messages.push(text_message("assistant", borrow(text)));
            }
            ("user", OneOrMany::Many(blocks)) => {
                let mut parts = Vec::new();
                for b in blocks {
                    match b.r#type.as_ref() {
                        "tool_result" => messages.push(OpenAiMessage {
                            role: "tool",
                            content: Some(Content::Text(match &b.content {
                                Some(OneOrMany::One(text)) => borrow(text),
                                Some(OneOrMany::Many(inner)) => joined(inner),
                                None => Cow::Borrowed(""),
                            })),
                            tool_calls: Vec::new(),
                            tool_call_id: Some(
                                b.tool_use_id.as_ref().map_or(Cow::Borrowed(""), borrow),
                            ),
                        }),
                        "text" => parts.push(Part::Text {
                            text: b.text.as_ref().map_or(Cow::Borrowed(""), borrow),
                        }),
                        "image" | "document" => parts.push(media(b).map_err(&bad)?),
                        "thinking" | "redacted_thinking" => {}
                        other => {
                            return Err(bad(format!(
                                "`{other}` blocks are not supported by this model's deployment"
                            )));
                        }
                    }
                }
                if !parts.is_empty() {
                    let content = match parts.as_slice() {
                        [Part::Text { .. }] => match parts.pop() {
                            Some(Part::Text { text }) => Content::Text(text),
                            _ => Content::Parts(parts),
                        },
                        _ => Content::Parts(parts),
                    };
                    messages.push(OpenAiMessage {
                        role: "user",
                        content: Some(content),
                        tool_calls: Vec::new(),
                        tool_call_id: None,
                    });
                }
            }
            ("assistant", OneOrMany::Many(blocks)) => {
                let mut text: Option<Cow<'a, str>> = None;
                let mut tool_calls = Vec::new();
                for b in blocks {
                    match b.r#type.as_ref() {
                        "text" => {
                            let t = b.text.as_ref().map_or(Cow::Borrowed(""), borrow);
                            text = Some(match text {
                                None => t,
                                Some(prev) => Cow::Owned(format!("{prev}{t}")),
                            });
                        }
                        "tool_use" => tool_calls.push(ToolCall {
                            id: b.id.as_ref().map_or(Cow::Borrowed(""), borrow),
                            r#type: "function",
                            function: FunctionCall {
                                name: b.name.as_ref().map_or(Cow::Borrowed(""), borrow),
                                arguments: Cow::Borrowed(b.input.map_or("{}", RawValue::get)),
                            },
                        }),
                        // Earlier reasoning is not sent back to another provider.
                        "thinking" | "redacted_thinking" => {}
                        other => {
                            return Err(bad(format!(
                                "`{other}` blocks are not supported by this model's deployment"
                            )));
                        }
                    }
                }
                messages.push(OpenAiMessage {
                    role: "assistant",
                    content: text.map(Content::Text),
                    tool_calls,
                    tool_call_id: None,
                });
            }
            (other, _) => return Err(bad(format!("unknown role `{other}`"))),
        }
    }
    let mut tools = Vec::new();
    for t in req.tools.iter().flatten() {
        if t.r#type.as_deref().is_some_and(|t| t != "custom") {
            // Anthropic's server tools (web search, code execution, …).
            unsupported(cx, "tools")?;
            continue;
        }
        tools.push(Tool {
            r#type: "function",
            function: FunctionDef {
                name: borrow(&t.name),
                description: t.description.as_ref().map(borrow),
                parameters: t.input_schema,
            },
        });
    }
    let (tool_choice, parallel_tool_calls) = match (&req.tool_choice, tools.is_empty()) {
        (Some(c), false) => {
            let choice = match c.r#type.as_ref() {
                "auto" => ToolChoice::Mode("auto"),
                "any" => ToolChoice::Mode("required"),
                "none" => ToolChoice::Mode("none"),
                "tool" => ToolChoice::Function {
                    r#type: "function",
                    function: NamedFunction {
                        name: c.name.as_ref().map_or(Cow::Borrowed(""), borrow),
                    },
                },
                other => {
                    return Err(ApiError::invalid_param(
                        "tool_choice",
                        format!("unknown tool_choice type `{other}`"),
                    ));
                }
            };
            (
                Some(choice),
                (c.disable_parallel_tool_use == Some(true)).then_some(false),
            )
        }
        _ => (None, None),
    };
    let stream = req.stream.unwrap_or(false);
    let reasoning = cx.deployment.model_info.reasoning;
    Ok(ChatRequest {
        model: cx.upstream_model,
        messages,
        max_tokens: req.max_tokens.filter(|_| !reasoning),
        max_completion_tokens: req.max_tokens.filter(|_| reasoning),
        stop: req
            .stop_sequences
            .as_ref()
            .filter(|s| !s.is_empty())
            .map(|s| s.iter().map(borrow).collect()),
        temperature: req.temperature,
        top_p: req.top_p,
        stream,
        stream_options: stream.then_some(StreamOptions {
            include_usage: Some(true),
        }),
        tools,
        tool_choice,
        parallel_tool_calls,
        user: req
            .metadata
            .as_ref()
            .and_then(|m| m.user_id.as_ref())
            .map(borrow),
    })
}

fn text_message<'a>(role: &'static str, text: Cow<'a, str>) -> OpenAiMessage<'a> {
    OpenAiMessage {
        role,
        content: Some(Content::Text(text)),
        tool_calls: Vec::new(),
        tool_call_id: None,
    }
}

/// An image or document block as an OpenAI part.
fn media<'a>(b: &'a BlockIn<'a>) -> Result<Part<'a>, String> {
    let source = b
        .source
        .as_ref()
        .ok_or_else(|| format!("an {} block needs a source", b.r#type))?;
    let data_url = || {
        let media_type = source
            .media_type
            .as_deref()
            .unwrap_or("application/octet-stream");
        let data = source.data.as_deref().unwrap_or("");
        format!("data:{media_type};base64,{data}")
    };
    match (b.r#type.as_ref(), source.r#type.as_ref()) {
        ("image", "base64") => Ok(Part::ImageUrl {
            image_url: ImageUrl {
                url: Cow::Owned(data_url()),
            },
        }),
        ("image", "url") => Ok(Part::ImageUrl {
            image_url: ImageUrl {
                url: source.url.as_ref().map_or(Cow::Borrowed(""), borrow),
            },
        }),
        ("document", "base64") => Ok(Part::File {
            file: File {
                filename: "document.pdf",
                file_data: data_url(),
            },
        }),
        ("document", "text") => Ok(Part::Text {
            text: source.data.as_ref().map_or(Cow::Borrowed(""), borrow),
        }),
        (kind, other) => Err(format!(
            "{kind} sources of type `{other}` are not supported by this model's deployment"
        )),
    }
}

fn usage(u: Option<&UsageIn>) -> Usage {
    let Some(u) = u else {
        return Usage::default();
    };
    let cached = u.prompt_tokens_details.and_then(|d| d.cached_tokens);
    Usage {
        input_tokens: u.prompt_tokens.saturating_sub(cached.unwrap_or(0)),
        output_tokens: u.completion_tokens,
        cache_read_input_tokens: cached.filter(|c| *c > 0),
    }
}

/// A tool call's arguments as a tool input object (`{}` when they are not one: Anthropic
/// clients expect an object).
fn input(arguments: &str) -> Box<RawValue> {
    let trimmed = arguments.trim();
    if trimmed.starts_with('{')
        && let Ok(raw) = RawValue::from_string(trimmed.to_owned())
    {
        return raw;
    }
    RawValue::from_string("{}".to_owned()).unwrap_or_else(|_| {
        // `{}` is valid JSON: this branch cannot be taken.
        Box::<RawValue>::default()
    })
}

/// The Anthropic message for an OpenAI chat completion.
pub fn response(body: &[u8]) -> Result<Bytes, ApiError> {
    let c: ChatCompletionIn<'_> = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_gateway(format!("the upstream answer is not a chat completion: {e}"))
    })?;
    let Some(choice) = c.choices.first() else {
        return Err(ApiError::bad_gateway("the upstream answer has no choices"));
    };
    let mut content = Vec::new();
    let text = choice
        .message
        .content
        .as_ref()
        .or(choice.message.refusal.as_ref());
    if let Some(text) = text.filter(|t| !t.is_empty()) {
        content.push(Block::Text { text: borrow(text) });
    }
    for call in choice.message.tool_calls.iter().flatten() {
        content.push(Block::ToolUse {
            id: borrow(&call.id),
            name: borrow(&call.function.name),
            input: input(&call.function.arguments),
        });
    }
    let message = Message {
        id: &c.id,
        r#type: "message",
        role: "assistant",
        model: &c.model,
        content,
        stop_reason: Some(
            choice
                .finish_reason
                .as_deref()
                .map_or("end_turn", stop_reason),
        ),
        stop_sequence: None,
        usage: usage(c.usage.as_ref()),
    };
    serde_json::to_vec(&message)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(format!("cannot write the answer: {e}")))
}

/// The block being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(usize),
    Tool(usize),
}

/// OpenAI chunks → Anthropic events.
#[derive(Debug, Default)]
pub struct MessagesStream {
    decoder: sse::Decoder,
    started: bool,
    open: Option<Open>,
    next_block: usize,
    /// (OpenAI tool-call index, block index) of every tool call so far.
    tools: Vec<(usize, usize)>,
    stop: Option<&'static str>,
    usage: Usage,
    done: bool,
}

impl MessagesStream {
    fn emit(out: &mut BytesMut, event: &Event<'_>) {
        sse::write_json_event(out, event.name(), event);
    }

    fn start(&mut self, id: &str, model: &str, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        Self::emit(
            out,
            &Event::MessageStart {
                message: Message {
                    id,
                    r#type: "message",
                    role: "assistant",
                    model,
                    content: Vec::new(),
                    stop_reason: None,
                    stop_sequence: None,
                    usage: Usage::default(),
                },
            },
        );
    }

    fn close_block(&mut self, out: &mut BytesMut) {
        if let Some(open) = self.open.take() {
            let index = match open {
                Open::Text(i) | Open::Tool(i) => i,
            };
            Self::emit(out, &Event::ContentBlockStop { index });
        }
    }

    fn text(&mut self, text: &str, out: &mut BytesMut) {
        let index = match self.open {
            Some(Open::Text(i)) => i,
            _ => {
                self.close_block(out);
                let i = self.next_block;
                self.next_block += 1;
                self.open = Some(Open::Text(i));
                Self::emit(
                    out,
                    &Event::ContentBlockStart {
                        index: i,
                        content_block: BlockStart::Text { text: "" },
                    },
                );
                i
            }
        };
        Self::emit(
            out,
            &Event::ContentBlockDelta {
                index,
                delta: BlockDelta::TextDelta { text },
            },
        );
    }

    fn end(&mut self, out: &mut BytesMut) {
        self.start("", "", out);
        self.close_block(out);
        Self::emit(
            out,
            &Event::MessageDelta {
                delta: MessageDelta {
                    stop_reason: Some(self.stop.unwrap_or("end_turn")),
                    stop_sequence: None,
                },
                usage: self.usage,
            },
        );
        Self::emit(out, &Event::MessageStop);
        self.done = true;
    }

    fn event(&mut self, data: &[u8], out: &mut BytesMut) -> Result<(), ApiError> {
        if data == b"[DONE]" {
            self.end(out);
            return Ok(());
        }
        let chunk: ChunkIn<'_> = serde_json::from_slice(data)
            .map_err(|e| ApiError::bad_gateway(format!("unreadable upstream stream chunk: {e}")))?;
        if chunk.error.is_some() {
            return Err(ApiError::from_upstream(
                http::StatusCode::BAD_GATEWAY,
                data,
                None,
            ));
        }
        self.start(
            chunk.id.as_deref().unwrap_or(""),
            chunk.model.as_deref().unwrap_or(""),
            out,
        );
        if let Some(u) = &chunk.usage {
            self.usage = usage(Some(u));
        }
        let Some(choice) = chunk.choices.first() else {
            return Ok(());
        };
        if let Some(delta) = &choice.delta {
            if let Some(text) = delta
                .content
                .as_deref()
                .or(delta.refusal.as_deref())
                .filter(|t| !t.is_empty())
            {
                self.text(text, out);
            }
            for call in delta.tool_calls.iter().flatten() {
                let k = call.index.unwrap_or(0);
                let known = self.tools.iter().find(|(c, _)| *c == k).map(|(_, b)| *b);
                let block = match known {
                    Some(b) if call.id.is_none() => b,
                    _ => {
                        self.close_block(out);
                        let b = self.next_block;
                        self.next_block += 1;
                        self.tools.push((k, b));
                        self.open = Some(Open::Tool(b));
                        let function = call.function.as_ref();
                        Self::emit(
                            out,
                            &Event::ContentBlockStart {
                                index: b,
                                content_block: BlockStart::ToolUse {
                                    id: call.id.as_deref().unwrap_or(""),
                                    name: function.and_then(|f| f.name.as_deref()).unwrap_or(""),
                                    input: EmptyObject {},
                                },
                            },
                        );
                        b
                    }
                };
                if let Some(args) = call
                    .function
                    .as_ref()
                    .and_then(|f| f.arguments.as_deref())
                    .filter(|a| !a.is_empty())
                {
                    Self::emit(
                        out,
                        &Event::ContentBlockDelta {
                            index: block,
                            delta: BlockDelta::InputJsonDelta { partial_json: args },
                        },
                    );
                }
            }
        }
        if let Some(reason) = choice.finish_reason.as_deref() {
            self.stop = Some(stop_reason(reason));
            self.close_block(out);
        }
        Ok(())
    }
}

impl StreamTranslator for MessagesStream {
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
            return Ok(());
        }
        if self.stop.is_some() {
            // A server that ends without `[DONE]` after its finishing chunk.
            self.end(out);
            return Ok(());
        }
        Err(ApiError::bad_gateway(
            "the upstream stream ended before it finished",
        ))
    }
}
