//! AWS event-stream framing (`application/vnd.amazon.eventstream`), as ConverseStream
//! answers: an incremental [`Decoder`] (feed bytes cut anywhere, take whole messages)
//! that checks both CRCs and bounds the message size, and an [`encode`]r (for test
//! upstreams and fuzzing).
//!
//! A message is
//!
//! ```text
//! total length: u32 BE | headers length: u32 BE | prelude CRC32: u32 BE   (the prelude)
//! headers (headers length bytes) | payload | message CRC32: u32 BE
//! ```
//!
//! where the prelude CRC covers the first 8 bytes and the message CRC everything before
//! it. A header is `name length: u8 | name | type: u8 | value`, the value's encoding
//! depending on its type (booleans, integers of 1–8 bytes, `u16`-length-prefixed bytes
//! and strings, millisecond timestamps, UUIDs).

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The prelude: total length, headers length, prelude CRC.
const PRELUDE_LEN: usize = 12;
/// The smallest message: a prelude and a message CRC.
const MIN_MESSAGE_LEN: usize = PRELUDE_LEN + 4;
/// AWS's limit on one message.
pub const MAX_MESSAGE_LEN: usize = 16 * 1024 * 1024;
/// AWS's limit on the headers of one message.
pub const MAX_HEADERS_LEN: usize = 128 * 1024;

/// Why bytes are not a valid event stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventStreamError {
    /// The prelude's CRC does not match (a corrupt or misaligned stream).
    #[error("event-stream prelude CRC mismatch: expected {expected:08x}, computed {computed:08x}")]
    PreludeCrc {
        /// The CRC in the stream.
        expected: u32,
        /// The CRC of the bytes.
        computed: u32,
    },
    /// The message's CRC does not match.
    #[error("event-stream message CRC mismatch: expected {expected:08x}, computed {computed:08x}")]
    MessageCrc {
        /// The CRC in the stream.
        expected: u32,
        /// The CRC of the bytes.
        computed: u32,
    },
    /// A message longer than the limit.
    #[error("event-stream message of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Lengths that do not fit together.
    #[error("invalid event-stream lengths: total {total}, headers {headers}")]
    BadLengths {
        /// Total length.
        total: usize,
        /// Headers length.
        headers: usize,
    },
    /// A header that cannot be read or written.
    #[error("invalid event-stream header: {0}")]
    BadHeader(&'static str),
    /// The stream ended inside a message.
    #[error("the event stream ended inside a message ({0} bytes left over)")]
    Truncated(usize),
    /// Bytes fed after an error.
    #[error("the event stream already failed")]
    Failed,
}

/// A header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    /// Type 0 (`true`) or 1 (`false`).
    Bool(bool),
    /// Type 2.
    Byte(i8),
    /// Type 3.
    Short(i16),
    /// Type 4.
    Int(i32),
    /// Type 5.
    Long(i64),
    /// Type 6.
    Bytes(Bytes),
    /// Type 7.
    String(String),
    /// Type 8: milliseconds since the Unix epoch.
    Timestamp(i64),
    /// Type 9.
    Uuid([u8; 16]),
}

/// One header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Name (1–255 bytes).
    pub name: String,
    /// Value.
    pub value: HeaderValue,
}

impl Header {
    /// A string header.
    pub fn string(name: &str, value: &str) -> Self {
        Header {
            name: name.to_owned(),
            value: HeaderValue::String(value.to_owned()),
        }
    }
}

/// One message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Headers, in stream order.
    pub headers: Vec<Header>,
    /// Payload.
    pub payload: Bytes,
}

impl Message {
    /// The value of the first header named `name`.
    pub fn header(&self, name: &str) -> Option<&HeaderValue> {
        self.headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| &h.value)
    }

    /// The value of string header `name`.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        match self.header(name) {
            Some(HeaderValue::String(s)) => Some(s),
            _ => None,
        }
    }

    /// An event message: `:message-type: event`, `:event-type`, JSON content.
    pub fn event(event_type: &str, payload: impl Into<Bytes>) -> Self {
        Message {
            headers: vec![
                Header::string(":event-type", event_type),
                Header::string(":content-type", "application/json"),
                Header::string(":message-type", "event"),
            ],
            payload: payload.into(),
        }
    }

    /// An exception message: `:message-type: exception`, `:exception-type`.
    pub fn exception(exception_type: &str, payload: impl Into<Bytes>) -> Self {
        Message {
            headers: vec![
                Header::string(":exception-type", exception_type),
                Header::string(":content-type", "application/json"),
                Header::string(":message-type", "exception"),
            ],
            payload: payload.into(),
        }
    }
}

/// Decodes an event stream incrementally. Memory is bounded by the largest message
/// accepted plus what one [`Decoder::feed`] brings.
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
    max_message_len: usize,
    failed: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder with AWS's limit ([`MAX_MESSAGE_LEN`]).
    pub fn new() -> Self {
        Self::with_max_message_len(MAX_MESSAGE_LEN)
    }

    /// A decoder refusing messages longer than `max` bytes.
    pub fn with_max_message_len(max: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            max_message_len: max,
            failed: false,
        }
    }

    /// Appends bytes; whole messages are then taken with [`Decoder::next_message`].
    pub fn feed(&mut self, bytes: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Feeds `bytes` and returns every message they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Message>, EventStreamError> {
        self.feed(bytes);
        let mut out = Vec::new();
        while let Some(m) = self.next_message()? {
            out.push(m);
        }
        Ok(out)
    }

    /// The next whole message, `None` until one is buffered. After an error the decoder
    /// stays failed: a stream cannot be resynchronised once framing is lost.
    pub fn next_message(&mut self) -> Result<Option<Message>, EventStreamError> {
        if self.failed {
            return Err(EventStreamError::Failed);
        }
        let result = self.decode();
        if result.is_err() {
            self.failed = true;
            self.buf = BytesMut::new();
        }
        result
    }

    /// The end of the stream: an error if it stopped inside a message.
    pub fn finish(&self) -> Result<(), EventStreamError> {
        if self.failed {
            return Err(EventStreamError::Failed);
        }
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(EventStreamError::Truncated(self.buf.len()))
        }
    }

    fn decode(&mut self) -> Result<Option<Message>, EventStreamError> {
        if self.buf.len() < PRELUDE_LEN {
            return Ok(None);
        }
        let total = be_u32(&self.buf[0..4]) as usize;
        let headers_len = be_u32(&self.buf[4..8]) as usize;
        let expected = be_u32(&self.buf[8..12]);
        let computed = crc32fast::hash(&self.buf[0..8]);
        if expected != computed {
            return Err(EventStreamError::PreludeCrc { expected, computed });
        }
        if total > self.max_message_len {
            return Err(EventStreamError::TooLarge {
                len: total,
                max: self.max_message_len,
            });
        }
        if total < MIN_MESSAGE_LEN
            || headers_len > MAX_HEADERS_LEN
            || headers_len > total - MIN_MESSAGE_LEN
        {
            return Err(EventStreamError::BadLengths {
                total,
                headers: headers_len,
            });
        }
        if self.buf.len() < total {
            // Reserve once for the rest of this message instead of growing piecemeal.
            self.buf.reserve(total - self.buf.len());
            return Ok(None);
        }
        let mut frame = self.buf.split_to(total).freeze();
        let expected = be_u32(&frame[total - 4..]);
        let computed = crc32fast::hash(&frame[..total - 4]);
        if expected != computed {
            return Err(EventStreamError::MessageCrc { expected, computed });
        }
        frame.advance(PRELUDE_LEN);
        let mut headers_bytes = frame.split_to(headers_len);
        frame.truncate(frame.len() - 4);
        let headers = read_headers(&mut headers_bytes)?;
        Ok(Some(Message {
            headers,
            payload: frame,
        }))
    }
}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

fn read_headers(b: &mut Bytes) -> Result<Vec<Header>, EventStreamError> {
    let mut headers = Vec::new();
    while b.has_remaining() {
        let name_len = usize::from(b.get_u8());
        if name_len == 0 || b.remaining() < name_len + 1 {
            return Err(EventStreamError::BadHeader("bad name length"));
        }
        let name = std::str::from_utf8(&b[..name_len])
            .map_err(|_| EventStreamError::BadHeader("name is not UTF-8"))?
            .to_owned();
        b.advance(name_len);
        let need = |b: &Bytes, n: usize| {
            if b.remaining() < n {
                Err(EventStreamError::BadHeader("value runs past the headers"))
            } else {
                Ok(())
            }
        };
        let value = match b.get_u8() {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => {
                need(b, 1)?;
                HeaderValue::Byte(b.get_i8())
            }
            3 => {
                need(b, 2)?;
                HeaderValue::Short(b.get_i16())
            }
            4 => {
                need(b, 4)?;
                HeaderValue::Int(b.get_i32())
            }
            5 => {
                need(b, 8)?;
                HeaderValue::Long(b.get_i64())
            }
            t @ (6 | 7) => {
                need(b, 2)?;
                let len = usize::from(b.get_u16());
                need(b, len)?;
                let bytes = b.split_to(len);
                if t == 6 {
                    HeaderValue::Bytes(bytes)
                } else {
                    HeaderValue::String(
                        String::from_utf8(bytes.to_vec())
                            .map_err(|_| EventStreamError::BadHeader("string is not UTF-8"))?,
                    )
                }
            }
            8 => {
                need(b, 8)?;
                HeaderValue::Timestamp(b.get_i64())
            }
            9 => {
                need(b, 16)?;
                let mut u = [0u8; 16];
                b.copy_to_slice(&mut u);
                HeaderValue::Uuid(u)
            }
            _ => return Err(EventStreamError::BadHeader("unknown value type")),
        };
        headers.push(Header { name, value });
    }
    Ok(headers)
}

/// One message in event-stream framing.
pub fn encode(message: &Message) -> Result<Bytes, EventStreamError> {
    let mut headers = BytesMut::new();
    for h in &message.headers {
        let name = h.name.as_bytes();
        let name_len = u8::try_from(name.len())
            .ok()
            .filter(|n| *n > 0)
            .ok_or(EventStreamError::BadHeader("names are 1 to 255 bytes"))?;
        headers.put_u8(name_len);
        headers.put_slice(name);
        match &h.value {
            HeaderValue::Bool(true) => headers.put_u8(0),
            HeaderValue::Bool(false) => headers.put_u8(1),
            HeaderValue::Byte(v) => {
                headers.put_u8(2);
                headers.put_i8(*v);
            }
            HeaderValue::Short(v) => {
                headers.put_u8(3);
                headers.put_i16(*v);
            }
            HeaderValue::Int(v) => {
                headers.put_u8(4);
                headers.put_i32(*v);
            }
            HeaderValue::Long(v) => {
                headers.put_u8(5);
                headers.put_i64(*v);
            }
            HeaderValue::Bytes(v) => put_sized(&mut headers, 6, v)?,
            HeaderValue::String(v) => put_sized(&mut headers, 7, v.as_bytes())?,
            HeaderValue::Timestamp(v) => {
                headers.put_u8(8);
                headers.put_i64(*v);
            }
            HeaderValue::Uuid(v) => {
                headers.put_u8(9);
                headers.put_slice(v);
            }
        }
    }
    if headers.len() > MAX_HEADERS_LEN {
        return Err(EventStreamError::BadHeader("headers over 128 KiB"));
    }
    let total = MIN_MESSAGE_LEN + headers.len() + message.payload.len();
    if total > MAX_MESSAGE_LEN {
        return Err(EventStreamError::TooLarge {
            len: total,
            max: MAX_MESSAGE_LEN,
        });
    }
    let mut out = BytesMut::with_capacity(total);
    // Both fit in u32: they are under MAX_MESSAGE_LEN.
    out.put_u32(u32::try_from(total).unwrap_or(u32::MAX));
    out.put_u32(u32::try_from(headers.len()).unwrap_or(u32::MAX));
    let prelude_crc = crc32fast::hash(&out[..8]);
    out.put_u32(prelude_crc);
    out.put_slice(&headers);
    out.put_slice(&message.payload);
    let crc = crc32fast::hash(&out);
    out.put_u32(crc);
    Ok(out.freeze())
}

fn put_sized(out: &mut BytesMut, kind: u8, value: &[u8]) -> Result<(), EventStreamError> {
    let len = u16::try_from(value.len())
        .map_err(|_| EventStreamError::BadHeader("byte and string values are under 64 KiB"))?;
    out.put_u8(kind);
    out.put_u16(len);
    out.put_slice(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_header_type_round_trips() {
        let message = Message {
            headers: vec![
                Header {
                    name: "t".into(),
                    value: HeaderValue::Bool(true),
                },
                Header {
                    name: "f".into(),
                    value: HeaderValue::Bool(false),
                },
                Header {
                    name: "b".into(),
                    value: HeaderValue::Byte(-3),
                },
                Header {
                    name: "s".into(),
                    value: HeaderValue::Short(-300),
                },
                Header {
                    name: "i".into(),
                    value: HeaderValue::Int(70_000),
                },
                Header {
                    name: "l".into(),
                    value: HeaderValue::Long(-5_000_000_000),
                },
                Header {
                    name: "by".into(),
                    value: HeaderValue::Bytes(Bytes::from_static(b"\x00\x01")),
                },
                Header::string("str", "hé"),
                Header {
                    name: "ts".into(),
                    value: HeaderValue::Timestamp(1_700_000_000_000),
                },
                Header {
                    name: "u".into(),
                    value: HeaderValue::Uuid([7; 16]),
                },
            ],
            payload: Bytes::from_static(b"{\"x\":1}"),
        };
        let bytes = encode(&message).expect("encode");
        let mut d = Decoder::new();
        assert_eq!(d.push(&bytes).expect("decode"), vec![message]);
        d.finish().expect("nothing left");
    }

    #[test]
    fn empty_message_is_sixteen_bytes() {
        let bytes = encode(&Message::default()).expect("encode");
        assert_eq!(bytes.len(), 16);
        let mut d = Decoder::new();
        assert_eq!(d.push(&bytes).expect("decode"), vec![Message::default()]);
    }
}
