//! Server-sent events: an incremental decoder for upstream streams, and the writers of
//! the two framings clients receive (OpenAI's `data:`-only events ending with
//! `data: [DONE]`, Anthropic's named `event:` + `data:` events).
//!
//! The decoder takes the body's frames as they arrive, cut anywhere (inside a line, inside
//! a `\r\n`), and yields each event once its blank line has arrived. Memory is bounded: an
//! event larger than the decoder's limit is an error, not an ever-growing buffer. Lines end
//! with `\n`, `\r\n` (or a lone `\r` before `\n`); comments (`:` lines) and fields other
//! than `event` and `data` are ignored; several `data` lines are joined with `\n`.

use bytes::{Bytes, BytesMut};

/// Largest event accepted from an upstream (a tool call's arguments or a long text delta
/// fit many times over).
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// One decoded event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field, when there was one.
    pub name: Option<Bytes>,
    /// The `data:` payload (lines joined with `\n`).
    pub data: Bytes,
}

impl Event {
    /// The event name as text (`""` when there was none or it is not UTF-8).
    pub fn name_str(&self) -> &str {
        self.name
            .as_deref()
            .and_then(|n| std::str::from_utf8(n).ok())
            .unwrap_or("")
    }
}

/// An event larger than the decoder's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an upstream stream event is larger than {0} bytes")]
pub struct TooLarge(pub usize);

/// Incremental SSE decoder.
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
    /// Start of the first line not yet scanned for its end.
    line: usize,
    limit: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(MAX_EVENT_BYTES)
    }
}

impl Decoder {
    /// A decoder refusing events over `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            line: 0,
            limit,
        }
    }

    /// Adds bytes received.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete event, `Ok(None)` when more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<Event>, TooLarge> {
        loop {
            let Some(nl) = self.buf[self.line..].iter().position(|b| *b == b'\n') else {
                if self.buf.len() > self.limit {
                    return Err(TooLarge(self.limit));
                }
                return Ok(None);
            };
            let end = self.line + nl;
            let line = &self.buf[self.line..end];
            if line.is_empty() || line == b"\r" {
                // A blank line: the event is everything before it.
                let body_len = self.line;
                let raw = self.buf.split_to(end + 1).freeze();
                self.line = 0;
                if let Some(event) = parse(raw.slice(..body_len)) {
                    return Ok(Some(event));
                }
                continue;
            }
            self.line = end + 1;
        }
    }

    /// At the end of the body: the last event when its blank line never came (some
    /// servers end the body right after the last `data:` line).
    pub fn finish(&mut self) -> Option<Event> {
        let rest = std::mem::take(&mut self.buf).freeze();
        self.line = 0;
        parse(rest)
    }
}

/// The fields of one event's lines; `None` for an event with no data (comments only).
fn parse(raw: Bytes) -> Option<Event> {
    let mut name = None;
    let mut data: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut start = 0;
    while start < raw.len() {
        let end = raw[start..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(raw.len(), |p| start + p);
        let mut line_end = end;
        if line_end > start && raw[line_end - 1] == b'\r' {
            line_end -= 1;
        }
        let line = &raw[start..line_end];
        if !line.is_empty() && line[0] != b':' {
            let (field, value_at) = match line.iter().position(|b| *b == b':') {
                Some(colon) => {
                    let mut v = start + colon + 1;
                    if raw.get(v) == Some(&b' ') {
                        v += 1;
                    }
                    (&line[..colon], v)
                }
                None => (line, line_end),
            };
            let value = raw.slice(value_at.min(line_end)..line_end);
            match field {
                b"event" => name = Some(value),
                b"data" => match (&mut joined, &data) {
                    (Some(j), _) => {
                        j.extend_from_slice(b"\n");
                        j.extend_from_slice(&value);
                    }
                    (None, Some(first)) => {
                        let mut j = BytesMut::with_capacity(first.len() + value.len() + 1);
                        j.extend_from_slice(first);
                        j.extend_from_slice(b"\n");
                        j.extend_from_slice(&value);
                        joined = Some(j);
                    }
                    (None, None) => data = Some(value),
                },
                _ => {}
            }
        }
        start = end + 1;
    }
    let data = match joined {
        Some(j) => j.freeze(),
        None => data?,
    };
    Some(Event { name, data })
}

/// Writes an OpenAI-style event: `data: <json>\n\n`.
pub fn write_data(out: &mut BytesMut, json: &[u8]) {
    out.reserve(json.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
}

/// Writes OpenAI's end of stream, `data: [DONE]\n\n`.
pub fn write_done(out: &mut BytesMut) {
    out.extend_from_slice(b"data: [DONE]\n\n");
}

/// Writes a named event: `event: <name>\ndata: <json>\n\n` (Anthropic's framing).
pub fn write_event(out: &mut BytesMut, name: &str, json: &[u8]) {
    out.reserve(name.len() + json.len() + 16);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
}

/// Serializes `value` as an OpenAI-style event.
pub fn write_json_data(out: &mut BytesMut, value: &impl serde::Serialize) {
    let json = serde_json::to_vec(value).unwrap_or_default();
    write_data(out, &json);
}

/// Serializes `value` as a named event.
pub fn write_json_event(out: &mut BytesMut, name: &str, value: &impl serde::Serialize) {
    let json = serde_json::to_vec(value).unwrap_or_default();
    write_event(out, name, &json);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[&[u8]]) -> Vec<(String, String)> {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        for part in input {
            d.push(part);
            while let Some(e) = d.next_event().expect("within the limit") {
                out.push((
                    e.name_str().to_owned(),
                    String::from_utf8_lossy(&e.data).into_owned(),
                ));
            }
        }
        if let Some(e) = d.finish() {
            out.push((
                e.name_str().to_owned(),
                String::from_utf8_lossy(&e.data).into_owned(),
            ));
        }
        out
    }

    #[test]
    fn events_cut_anywhere() {
        let whole: &[u8] =
            b"event: ping\ndata: {\"type\":\"ping\"}\n\n: comment\n\ndata: a\r\ndata: b\r\n\r\ndata:[DONE]\n\n";
        let expected = vec![
            ("ping".to_owned(), "{\"type\":\"ping\"}".to_owned()),
            (String::new(), "a\nb".to_owned()),
            (String::new(), "[DONE]".to_owned()),
        ];
        assert_eq!(all(&[whole]), expected);
        for cut in 0..whole.len() {
            let (a, b) = whole.split_at(cut);
            assert_eq!(all(&[a, b]), expected, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(all(&bytes), expected);
    }

    #[test]
    fn last_event_without_blank_line() {
        assert_eq!(
            all(&[b"data: x\n\ndata: y\n"]),
            vec![
                (String::new(), "x".to_owned()),
                (String::new(), "y".to_owned())
            ]
        );
    }

    #[test]
    fn oversized_events_are_refused() {
        let mut d = Decoder::new(16);
        d.push(b"data: 0123456789abcdef0123");
        assert_eq!(d.next_event(), Err(TooLarge(16)));
    }
}
