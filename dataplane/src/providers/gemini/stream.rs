//! `streamGenerateContent?alt=sse` to OpenAI `chat.completion.chunk`s, incrementally.
//!
//! Three layers: [`crate::sse::Decoder`] splits bytes (cut anywhere) into server-sent
//! events with a bounded buffer; [`parse_event`] reads one event's data as a
//! [`StreamEvent`]; [`ChunkTranslator`] turns events into chunks. [`StreamDecoder`] chains
//! them: feed it the upstream body as it arrives, then call [`StreamDecoder::finish`] at
//! its end.
//!
//! Each Gemini event is a whole `GenerateContentResponse` holding the next piece of each
//! candidate: text deltas, whole function calls, and at the end a `finishReason` and
//! `usageMetadata`. The first chunk of each choice carries the role; function calls become
//! tool-call deltas with their `index`; the usage chunk (`stream_options.include_usage`)
//! comes from [`StreamDecoder::finish`], after every finish reason. Chunks are written
//! with the typed OpenAI wire structs straight into the output buffer.

use bytes::BytesMut;
use serde_json::Value;
use serde_json::value::RawValue;

use super::shared::{self, ChunkHeader, Usage};
use super::wire::GenerateContentResponse;
use crate::errors::ApiError;
use crate::providers::openai::wire::Delta;
use crate::sse;

/// The longest server-sent event accepted by default.
pub const MAX_EVENT_LEN: usize = crate::sse::MAX_EVENT_BYTES;

/// Why a Gemini stream cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StreamError {
    /// An event longer than the limit.
    #[error("Gemini stream event longer than {max} bytes")]
    EventTooLong {
        /// The limit.
        max: usize,
    },
    /// An event that is not a `GenerateContentResponse`.
    #[error("invalid Gemini stream event: {0}")]
    Json(String),
    /// Gemini sent an error event.
    #[error("{0}")]
    Upstream(ApiError),
    /// The stream ended before every candidate finished.
    #[error("the Gemini stream ended before its finish reason")]
    Truncated,
    /// Data was fed after an error or after the end.
    #[error("the Gemini stream already ended")]
    Ended,
}

impl StreamError {
    /// The error as a client sees it: Gemini's own error as mapped by
    /// [`super::error`], else a 502.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            StreamError::Upstream(e) => e.clone(),
            other => ApiError::bad_gateway(other.to_string()),
        }
    }
}

/// One Gemini stream event.
#[derive(Debug)]
pub enum StreamEvent<'a> {
    /// The next piece of the answer.
    Chunk(GenerateContentResponse<'a>),
    /// An error (`{"error": {...}}`), mapped as [`super::error`] does.
    Error(ApiError),
}

/// Reads one event's data.
pub fn parse_event(data: &[u8]) -> Result<StreamEvent<'_>, StreamError> {
    let trimmed = data.trim_ascii_start();
    if trimmed.starts_with(b"[") || contains_error_key(trimmed) {
        let value: Value =
            serde_json::from_slice(trimmed).map_err(|e| StreamError::Json(e.to_string()))?;
        let is_error = value.get("error").is_some() || value.pointer("/0/error").is_some();
        if is_error {
            let status = value
                .pointer("/error/code")
                .or_else(|| value.pointer("/0/error/code"))
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .and_then(|c| http::StatusCode::from_u16(c).ok())
                .unwrap_or(http::StatusCode::BAD_GATEWAY);
            return Ok(StreamEvent::Error(super::error(status, trimmed, None)));
        }
    }
    serde_json::from_slice(trimmed)
        .map(StreamEvent::Chunk)
        .map_err(|e| StreamError::Json(e.to_string()))
}

/// A cheap look for a top-level `"error"` key before parsing a typed event.
fn contains_error_key(data: &[u8]) -> bool {
    data.windows(7).take(64).any(|w| w == b"\"error\"")
}

/// The state of one choice of a streamed answer.
#[derive(Debug, Default)]
struct Choice {
    index: u32,
    tool_calls: usize,
    finished: bool,
}

/// Turns Gemini stream events into OpenAI chunks.
#[derive(Debug)]
pub struct ChunkTranslator {
    header: ChunkHeader,
    id_from_upstream: bool,
    include_usage: bool,
    choices: Vec<Choice>,
    usage: Option<Usage>,
    done: bool,
}

/// More candidates than any request can ask for (`n`) mean a broken stream.
const MAX_CHOICES: usize = 128;

impl ChunkTranslator {
    /// A translator for an answer to `model` (the name the client asked for), with the
    /// usage chunk at the end when `include_usage`.
    pub fn new(model: &str, include_usage: bool) -> Self {
        Self {
            header: ChunkHeader::new(model),
            id_from_upstream: false,
            include_usage,
            choices: Vec::new(),
            usage: None,
            done: false,
        }
    }

    fn choice(&mut self, index: u32, out: &mut BytesMut) -> Result<usize, StreamError> {
        if let Some(i) = self.choices.iter().position(|c| c.index == index) {
            return Ok(i);
        }
        if self.choices.len() >= MAX_CHOICES {
            return Err(StreamError::Json(format!(
                "more than {MAX_CHOICES} candidates"
            )));
        }
        self.choices.push(Choice {
            index,
            ..Choice::default()
        });
        self.header.write(out, index, shared::role_delta(), None);
        Ok(self.choices.len() - 1)
    }

    /// Writes the chunks of one event to `out` (as server-sent events).
    pub fn event(
        &mut self,
        event: &GenerateContentResponse<'_>,
        out: &mut BytesMut,
    ) -> Result<(), StreamError> {
        if self.done {
            return Err(StreamError::Ended);
        }
        if !self.id_from_upstream
            && let Some(id) = &event.response_id
        {
            self.header.id = format!("chatcmpl-{id}");
            self.id_from_upstream = true;
        }
        if let Some(u) = &event.usage_metadata {
            self.usage = Some(super::usage(u));
        }
        for (position, c) in event.candidates.iter().enumerate() {
            let index = c
                .index
                .unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX));
            let slot = self.choice(index, out)?;
            for p in c.content.iter().flat_map(|c| &c.parts) {
                if let Some(f) = &p.function_call {
                    let id = super::tool_call_id(f.id.as_deref(), p.thought_signature.as_deref());
                    let args = f.args.map_or("{}", RawValue::get);
                    let n = self.choices[slot].tool_calls;
                    self.choices[slot].tool_calls += 1;
                    let delta = shared::tool_call_delta(n, Some(&id), Some(&f.name), args);
                    self.header.write(out, index, delta, None);
                } else if let Some(t) = p.text.as_deref().filter(|t| !t.is_empty()) {
                    let delta = if p.thought == Some(true) {
                        Delta {
                            reasoning_content: Some(t),
                            ..Delta::default()
                        }
                    } else {
                        Delta {
                            content: Some(t),
                            ..Delta::default()
                        }
                    };
                    self.header.write(out, index, delta, None);
                }
            }
            if let Some(reason) = &c.finish_reason {
                let choice = &mut self.choices[slot];
                if !choice.finished {
                    choice.finished = true;
                    let finish = if choice.tool_calls > 0 {
                        "tool_calls"
                    } else {
                        super::finish_reason(reason)
                    };
                    self.header
                        .write(out, index, Delta::default(), Some(finish));
                }
            }
        }
        let blocked = event
            .prompt_feedback
            .as_ref()
            .is_some_and(|f| f.block_reason.is_some());
        if event.candidates.is_empty() && blocked {
            let slot = self.choice(0, out)?;
            if !self.choices[slot].finished {
                self.choices[slot].finished = true;
                self.header
                    .write(out, 0, Delta::default(), Some("content_filter"));
            }
        }
        Ok(())
    }

    /// The end of the stream: writes the usage chunk when asked for, or fails with
    /// [`StreamError::Truncated`] when a choice never finished.
    pub fn finish(&mut self, out: &mut BytesMut) -> Result<(), StreamError> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        if self.choices.is_empty() || self.choices.iter().any(|c| !c.finished) {
            return Err(StreamError::Truncated);
        }
        if self.include_usage {
            self.header.write_usage(out, self.usage.unwrap_or_default());
        }
        Ok(())
    }
}

/// A Gemini SSE stream to OpenAI chunks, incrementally.
#[derive(Debug)]
pub struct StreamDecoder {
    sse: sse::Decoder,
    translator: ChunkTranslator,
    failed: bool,
}

impl StreamDecoder {
    /// A decoder for an answer to `model` (the name the client asked for), with the usage
    /// chunk at the end when `include_usage` ([`shared::include_usage`] reads it from the
    /// request).
    pub fn new(model: &str, include_usage: bool) -> Self {
        Self::with_max_event_len(model, include_usage, MAX_EVENT_LEN)
    }

    /// As [`StreamDecoder::new`], refusing events longer than `max` bytes.
    pub fn with_max_event_len(model: &str, include_usage: bool, max: usize) -> Self {
        Self {
            sse: sse::Decoder::new(max),
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
        self.sse.push(bytes);
        let result = self.drain(out);
        self.fail_on(result)
    }

    /// The end of the body: writes the last chunks (the usage chunk when asked for; not
    /// `[DONE]`).
    pub fn finish(&mut self, out: &mut BytesMut) -> Result<(), StreamError> {
        if self.failed {
            return Err(StreamError::Ended);
        }
        let result = self.drain(out).and_then(|()| {
            // Some servers end the body right after the last `data:` line.
            if let Some(last) = self.sse.finish() {
                self.event(&last.data, out)?;
            }
            self.translator.finish(out)
        });
        self.fail_on(result)
    }

    fn drain(&mut self, out: &mut BytesMut) -> Result<(), StreamError> {
        loop {
            match self.sse.next_event() {
                Ok(Some(event)) => self.event(&event.data, out)?,
                Ok(None) => return Ok(()),
                Err(sse::TooLarge(max)) => return Err(StreamError::EventTooLong { max }),
            }
        }
    }

    fn event(&mut self, data: &[u8], out: &mut BytesMut) -> Result<(), StreamError> {
        if data.trim_ascii().is_empty() || data.trim_ascii() == b"[DONE]" {
            return Ok(());
        }
        match parse_event(data)? {
            StreamEvent::Chunk(event) => self.translator.event(&event, out),
            StreamEvent::Error(e) => Err(StreamError::Upstream(e)),
        }
    }

    fn fail_on(&mut self, result: Result<(), StreamError>) -> Result<(), StreamError> {
        if result.is_err() {
            self.failed = true;
        }
        result
    }
}
