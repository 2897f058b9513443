//! HTTP/1.1 on one upstream connection, driven by the request that uses it.
//!
//! The request task writes the request and reads the answer itself: no connection task,
//! no channels between the two, no second wake-up per I/O event (what hyper's client
//! connection costs on every request). The pieces are plain and separately tested: the
//! request head ([`encode_head`]), the answer head ([`parse_head`]: status, headers,
//! framing, keep-alive), the body framing ([`Framing::step`]: `Content-Length`, chunked,
//! until close) over a window of bytes read ([`ReadBuf`]), and the I/O that joins them
//! ([`Conn`]).

use std::io;
use std::mem::MaybeUninit;
use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

pub use crate::headers::RawHeaders;
use crate::headers::{FIELD, put_field};
use crate::timer::LazyTimer;

/// The largest answer head read (status line and headers).
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// The most headers an answer may have.
const MAX_HEADERS: usize = 128;
/// Bytes read at a time (and the read window's initial size).
const READ_SIZE: usize = 16 * 1024;
/// The longest chunk-size line (with extensions) of a chunked body.
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// The most trailer bytes after a chunked body.
const MAX_TRAILERS: usize = 16 * 1024;
/// Bodies up to this size are copied behind the head and written in one call.
const COALESCE: usize = 64 * 1024;
/// A connection's buffer for head copies is kept for the next head up to this size; a
/// larger one is let go once used.
const KEEP_HEADS: usize = 64 * 1024;

/// Why an exchange on a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// Writing the request failed.
    #[error("cannot write the request: {0}")]
    Write(#[source] io::Error),
    /// Reading the answer failed.
    #[error("cannot read the answer: {0}")]
    Read(#[source] io::Error),
    /// The upstream closed the connection before the answer's head was complete.
    #[error("the upstream closed the connection before answering")]
    ClosedBeforeAnswer,
    /// The upstream closed the connection before the end of the answer's body.
    #[error("the upstream closed the connection before the end of the answer")]
    ClosedEarly,
    /// The answer's head is not HTTP/1.x.
    #[error("invalid answer head: {0}")]
    Head(#[from] httparse::Error),
    /// The answer's head is larger than [`MAX_HEAD`].
    #[error("the answer's head is larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    /// A header of the answer is not a valid header.
    #[error("invalid header in the answer: {0}")]
    Header(&'static str),
    /// `Content-Length` is not one decimal number.
    #[error("invalid content-length in the answer")]
    ContentLength,
    /// The chunked body breaks the chunked coding.
    #[error("invalid chunked body: {0}")]
    Chunked(&'static str),
    /// The answer switches protocols, which a proxied request never asks for.
    #[error("the upstream answered 101 Switching Protocols")]
    SwitchingProtocols,
}

// ---------------------------------------------------------------------------------------
// The read window.

/// Bytes read from a connection and not consumed yet: `data[start..end]`. The vector is
/// zeroed once when it grows, then reused (no per-read initialisation).
#[derive(Debug)]
pub(crate) struct ReadBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl Default for ReadBuf {
    fn default() -> Self {
        ReadBuf {
            data: vec![0; READ_SIZE],
            start: 0,
            end: 0,
        }
    }
}

impl ReadBuf {
    /// The bytes not consumed yet.
    pub(crate) fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// True when nothing is left unconsumed.
    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Marks `n` bytes consumed.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Room for at least `min` more bytes at the end: moves the unconsumed bytes to the
    /// front, and grows the window when that is not enough.
    fn spare(&mut self, min: usize) -> &mut [u8] {
        if self.data.len() - self.end < min {
            if self.start > 0 {
                self.data.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.data.len() - self.end < min {
                self.data.resize(self.end + min.max(READ_SIZE), 0);
            }
        }
        &mut self.data[self.end..]
    }

    /// Reads once from `io` into the window: the number of bytes read, 0 at the end.
    pub(crate) fn poll_fill<T: AsyncRead + Unpin>(
        &mut self,
        io: &mut T,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        let spare = self.spare(READ_SIZE / 4);
        let mut buf = tokio::io::ReadBuf::new(spare);
        ready!(Pin::new(io).poll_read(cx, &mut buf))?;
        let n = buf.filled().len();
        self.end += n;
        Poll::Ready(Ok(n))
    }
}

/// Where `part`, a piece of the head httparse parsed from the first `len` bytes of `buf`,
/// lies in it: its start and end offsets (`None` outside the head).
pub(crate) fn offsets(buf: &[u8], len: usize, part: &[u8]) -> Option<(u32, u32)> {
    let start = (part.as_ptr() as usize).saturating_sub(buf.as_ptr() as usize);
    let end = start + part.len();
    match (u32::try_from(start), u32::try_from(end)) {
        (Ok(s), Ok(e)) if end <= len => Some((s, e)),
        _ => None,
    }
}

/// One copy of a parsed head (the first `len` bytes of `buf`) behind the table of its
/// `fields` (see [`RawHeaders`]), and of the body after it when `framing` gives its length
/// and all of it is in `buf`: the copy, that body as a slice of it, and where the head
/// starts in it; `None` when a field does not lie in the head. The copy is made in
/// `heads`, the connection's buffer for them: once the previous head's pieces are dropped,
/// the next one reuses its memory (no allocation per head).
pub(crate) fn copy_head(
    buf: &[u8],
    len: usize,
    framing: &Framing,
    heads: &mut BytesMut,
    fields: &[httparse::Header<'_>],
) -> Option<(Bytes, Option<Bytes>, usize)> {
    let whole = match *framing {
        Framing::Length(n) if n > 0 && ((buf.len() - len) as u64) >= n => usize::try_from(n).ok(),
        _ => None,
    };
    let base = fields.len() * FIELD;
    let copied = len + whole.unwrap_or(0);
    let n = base + copied;
    heads.reserve(n);
    if heads.capacity() > KEEP_HEADS && n <= KEEP_HEADS {
        // A large head's memory is not kept for the small ones after it.
        *heads = BytesMut::with_capacity(n);
    }
    let shift = u32::try_from(base).ok()?;
    let at = |part: &[u8]| {
        let (start, end) = offsets(buf, len, part)?;
        Some((start.checked_add(shift)?, end.checked_add(shift)?))
    };
    let start = heads.len();
    for h in fields {
        let (Some((ns, ne)), Some((vs, ve))) = (at(h.name.as_bytes()), at(h.value)) else {
            heads.truncate(start);
            return None;
        };
        put_field(heads, (ns, ne, vs, ve));
    }
    heads.extend_from_slice(&buf[..copied]);
    let shared = heads.split().freeze();
    let whole = whole.map(|w| shared.slice(base + len..base + len + w));
    Some((shared, whole, base))
}

/// Appends `n` in `radix` (10 or 16, lower-case), without the formatting machinery.
pub(crate) fn push_number(out: &mut impl BufMut, mut n: u64, radix: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = DIGITS[(n % radix) as usize];
        n /= radix;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&buf[i..]);
}

// ---------------------------------------------------------------------------------------
// The request head.

/// True for headers a proxy never forwards: connection-level, and the framing it writes
/// itself.
fn hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::CONTENT_LENGTH
        || name == header::TRANSFER_ENCODING
        || name == header::TE
        || name == header::TRAILER
        || name == header::UPGRADE
        || name == header::PROXY_AUTHORIZATION
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

/// The request's head (origin-form `target`, `host` first, the headers, the body's
/// `content-length`), followed by `body` when it is small enough to go in the same write.
/// A body without a `content-type` goes as `application/json`: every upstream API spoken
/// here is JSON, and no request needs a header map built for that one line. Returns the
/// bytes and whether the body is in them.
pub(crate) fn encode_head(
    method: &Method,
    target: &str,
    host: &HeaderValue,
    headers: &HeaderMap,
    body: &[u8],
) -> (Vec<u8>, bool) {
    let coalesce = body.len() <= COALESCE;
    let mut out =
        Vec::with_capacity(256 + headers.len() * 48 + if coalesce { body.len() } else { 0 });
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if name == header::HOST || hop_by_hop(name) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let sends_body = !body.is_empty()
        || !(method == Method::GET
            || method == Method::HEAD
            || method == Method::DELETE
            || method == Method::OPTIONS);
    if !body.is_empty() && !headers.contains_key(header::CONTENT_TYPE) {
        out.extend_from_slice(b"content-type: application/json\r\n");
    }
    if sends_body {
        out.extend_from_slice(b"content-length: ");
        push_number(&mut out, body.len() as u64, 10);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if coalesce {
        out.extend_from_slice(body);
    }
    (out, coalesce)
}

// ---------------------------------------------------------------------------------------
// The answer head.

/// An answer's head, parsed.
#[derive(Debug)]
pub(crate) struct Head {
    /// The status.
    pub(crate) status: StatusCode,
    /// HTTP/1.0 or HTTP/1.1.
    pub(crate) version: Version,
    /// The headers, as they came.
    pub(crate) headers: RawHeaders,
    /// How the body is delimited.
    pub(crate) framing: Framing,
    /// The body, when all of it came with the head (copied with it, in one piece; the
    /// bytes stay in the read window until taken).
    pub(crate) whole: Option<Bytes>,
    /// True when the connection may carry another request once the body is read.
    pub(crate) keep_alive: bool,
}

/// The comma-separated items of a header value, trimmed, empty ones skipped.
pub(crate) fn items(value: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// What the framing headers of an answer say, read as the headers are copied.
#[derive(Default)]
struct FramingHeaders {
    /// The one length every `Content-Length` value states (`Err` when they disagree or
    /// one is not a number).
    length: Option<Result<u64, ExchangeError>>,
    /// Whether the last transfer coding is `chunked` (`None`: no `Transfer-Encoding`).
    chunked: Option<bool>,
    /// `Connection: close` / `Connection: keep-alive` seen.
    close: bool,
    keep_alive: bool,
}

impl FramingHeaders {
    fn read(&mut self, name: &[u8], value: &[u8]) {
        if name.eq_ignore_ascii_case(b"content-length") {
            for part in items(value).chain(value.trim_ascii().is_empty().then_some(&b""[..])) {
                let n = parse_length(part);
                self.length = Some(match (self.length.take(), n) {
                    (_, Err(e)) | (Some(Err(e)), _) => Err(e),
                    (Some(Ok(l)), Ok(n)) if l != n => Err(ExchangeError::ContentLength),
                    (_, Ok(n)) => Ok(n),
                });
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if let Some(last) = items(value).next_back() {
                self.chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
            } else {
                self.chunked.get_or_insert(false);
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for t in items(value) {
                self.close |= t.eq_ignore_ascii_case(b"close");
                self.keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
}

/// One `Content-Length` value: decimal digits only.
pub(crate) fn parse_length(part: &[u8]) -> Result<u64, ExchangeError> {
    if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
        return Err(ExchangeError::ContentLength);
    }
    Ok(part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Parses an answer head at the start of `buf`: `Ok(None)` when it is not complete yet,
/// else the head and its length. An informational answer (1xx but 101) comes back as
/// such; the caller skips it.
pub(crate) fn parse_head(
    buf: &[u8],
    method: &Method,
    heads: &mut BytesMut,
) -> Result<Option<(Head, usize)>, ExchangeError> {
    let mut slots: [MaybeUninit<httparse::Header<'_>>; MAX_HEADERS] =
        [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .parse_response_with_uninit_headers(&mut parsed, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err(ExchangeError::HeadTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ExchangeError::Header("too many")),
        Err(e) => return Err(e.into()),
    };
    let code = parsed.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| ExchangeError::Header("status"))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(ExchangeError::SwitchingProtocols);
    }
    let version = if parsed.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let mut framing_headers = FramingHeaders::default();
    for h in parsed.headers.iter() {
        framing_headers.read(h.name.as_bytes(), h.value);
    }
    let FramingHeaders {
        length,
        chunked,
        close,
        keep_alive,
    } = framing_headers;
    let mut keep_alive = if version == Version::HTTP_11 {
        !close
    } else {
        keep_alive && !close
    };
    let bodiless = method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = match (bodiless, chunked, length) {
        (true, _, _) => Framing::Length(0),
        // A length beside a transfer coding is a smuggling attempt or a broken server:
        // the coding wins, and the connection is not trusted with another request.
        (false, Some(chunked), length) => {
            if length.is_some() || !chunked {
                keep_alive = false;
            }
            if chunked {
                Framing::Chunked(Chunked::default())
            } else {
                // Another coding last: the body runs until the connection closes.
                Framing::Close
            }
        }
        (false, None, Some(length)) => Framing::Length(length?),
        (false, None, None) => {
            keep_alive = false;
            Framing::Close
        }
    };
    // One copy of the head, its fields' table, and the body when all of it came with the
    // head.
    let (shared, whole, _) = copy_head(buf, len, &framing, heads, parsed.headers)
        .ok_or(ExchangeError::Header("value"))?;
    let headers = RawHeaders::from_table(shared, parsed.headers.len());
    Ok(Some((
        Head {
            status,
            version,
            headers,
            framing,
            whole,
            keep_alive,
        },
        len,
    )))
}

// ---------------------------------------------------------------------------------------
// Body framing.

/// How an answer's body is delimited, and how much of it is left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Framing {
    /// This many bytes left.
    Length(u64),
    /// Chunked coding.
    Chunked(Chunked),
    /// Until the connection closes.
    Close,
}

/// Where a chunked body is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Chunked {
    /// Before a chunk-size line.
    #[default]
    Size,
    /// In a chunk's data, this many bytes left.
    Data(u64),
    /// After a chunk's data, before its line end.
    DataEnd,
    /// In the trailers (after the last chunk), this many trailer bytes seen.
    Trailers(usize),
}

/// What one [`Framing::step`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Body data at this range of the input.
    Data(Range<usize>),
    /// Framing bytes consumed; step again.
    Continue,
    /// More input is needed.
    NeedMore,
    /// The body is complete.
    End,
}

/// One line of `input` (without its line end) and the bytes it spans with its line end;
/// `None` when no line end is there yet. A bare LF ends a line, as it does for most
/// servers.
fn line(input: &[u8]) -> Option<(&[u8], usize)> {
    let lf = input.iter().position(|b| *b == b'\n')?;
    let text = &input[..lf];
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    Some((text, lf + 1))
}

/// A chunk-size line's size (hexadecimal, extensions after `;` ignored).
fn chunk_size(text: &[u8]) -> Result<u64, ExchangeError> {
    let digits_end = text
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(text.len());
    let (digits, rest) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(ExchangeError::Chunked("a chunk size is not hexadecimal"));
    }
    let rest = rest.trim_ascii_start();
    if !(rest.is_empty() || rest.starts_with(b";")) {
        return Err(ExchangeError::Chunked("a chunk size is not hexadecimal"));
    }
    let significant = digits
        .iter()
        .position(|b| *b != b'0')
        .map_or(&digits[..0], |i| &digits[i..]);
    if significant.len() > 15 {
        return Err(ExchangeError::Chunked("a chunk size is too large"));
    }
    Ok(significant.iter().fold(0u64, |n, d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => d - b'A' + 10,
        };
        n * 16 + u64::from(v)
    }))
}

fn take(remaining: &mut u64, available: usize) -> usize {
    let n = usize::try_from(*remaining).map_or(available, |r| r.min(available));
    *remaining -= n as u64;
    n
}

impl Framing {
    /// Reads the start of `input`: the bytes consumed and what they were. The caller
    /// consumes them, and at [`Step::NeedMore`] reads more (at the end of the input,
    /// [`Framing::Close`] is complete and the others are cut short).
    pub(crate) fn step(&mut self, input: &[u8]) -> Result<(usize, Step), ExchangeError> {
        match self {
            Framing::Length(0) => Ok((0, Step::End)),
            Framing::Length(remaining) => {
                if input.is_empty() {
                    return Ok((0, Step::NeedMore));
                }
                let n = take(remaining, input.len());
                Ok((n, Step::Data(0..n)))
            }
            Framing::Close if input.is_empty() => Ok((0, Step::NeedMore)),
            Framing::Close => Ok((input.len(), Step::Data(0..input.len()))),
            Framing::Chunked(state) => match state {
                Chunked::Size => match line(input) {
                    None if input.len() > MAX_CHUNK_LINE => {
                        Err(ExchangeError::Chunked("a chunk-size line is too long"))
                    }
                    None => Ok((0, Step::NeedMore)),
                    Some((text, used)) => {
                        let size = chunk_size(text)?;
                        *state = if size == 0 {
                            Chunked::Trailers(0)
                        } else {
                            Chunked::Data(size)
                        };
                        Ok((used, Step::Continue))
                    }
                },
                Chunked::Data(remaining) => {
                    if input.is_empty() {
                        return Ok((0, Step::NeedMore));
                    }
                    let n = take(remaining, input.len());
                    if *remaining == 0 {
                        *state = Chunked::DataEnd;
                    }
                    Ok((n, Step::Data(0..n)))
                }
                Chunked::DataEnd => match input {
                    [] | [b'\r'] => Ok((0, Step::NeedMore)),
                    [b'\r', b'\n', ..] => {
                        *state = Chunked::Size;
                        Ok((2, Step::Continue))
                    }
                    [b'\n', ..] => {
                        *state = Chunked::Size;
                        Ok((1, Step::Continue))
                    }
                    _ => Err(ExchangeError::Chunked(
                        "a chunk does not end where its size says",
                    )),
                },
                Chunked::Trailers(seen) => match line(input) {
                    None if *seen + input.len() > MAX_TRAILERS => {
                        Err(ExchangeError::Chunked("the trailers are too large"))
                    }
                    None => Ok((0, Step::NeedMore)),
                    Some(([], used)) => {
                        *self = Framing::Length(0);
                        Ok((used, Step::End))
                    }
                    Some((_, used)) => {
                        *seen += used;
                        if *seen > MAX_TRAILERS {
                            return Err(ExchangeError::Chunked("the trailers are too large"));
                        }
                        Ok((used, Step::Continue))
                    }
                },
            },
        }
    }

    /// True once the body is complete.
    pub(crate) fn is_done(&self) -> bool {
        *self == Framing::Length(0)
    }

    /// The exact length left, when known.
    pub(crate) fn exact(&self) -> Option<u64> {
        match self {
            Framing::Length(n) => Some(*n),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// A connection.

/// One upstream connection and the bytes read from it but not consumed.
#[derive(Debug)]
pub(crate) struct Conn<T> {
    pub(crate) io: T,
    pub(crate) buf: ReadBuf,
    /// Where answer heads are copied (see [`copy_head`]).
    heads: BytesMut,
    /// The deadline of the exchange under way, if it has one: registered once for the
    /// connection's life, not per request.
    pub(crate) timer: LazyTimer,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Conn<T> {
    /// A new connection.
    pub(crate) fn new(io: T) -> Self {
        Conn {
            io,
            buf: ReadBuf::default(),
            heads: BytesMut::new(),
            timer: LazyTimer::new(),
        }
    }

    /// True when an idle connection can carry a request: the upstream has not closed
    /// it and sent nothing unasked. Never waits.
    pub(crate) fn is_reusable(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        // Ready means closed (0 bytes), an error, or bytes nobody asked for.
        self.buf.poll_fill(&mut self.io, &mut cx).is_pending()
    }

    /// Writes a request: `head` (which holds the body when `coalesced`), then `body`.
    pub(crate) async fn write(
        &mut self,
        head: &[u8],
        body: &[u8],
        coalesced: bool,
    ) -> Result<(), ExchangeError> {
        self.io
            .write_all(head)
            .await
            .map_err(ExchangeError::Write)?;
        if !coalesced && !body.is_empty() {
            self.io
                .write_all(body)
                .await
                .map_err(ExchangeError::Write)?;
        }
        self.io.flush().await.map_err(ExchangeError::Write)
    }

    /// Writes a request (see [`Conn::write`]) and reads its answer's head.
    pub(crate) async fn exchange(
        &mut self,
        head: &[u8],
        body: &[u8],
        coalesced: bool,
        method: &Method,
    ) -> Result<Head, ExchangeError> {
        self.write(head, body, coalesced).await?;
        self.read_head(method).await
    }

    /// Reads the answer's head (skipping informational answers).
    pub(crate) async fn read_head(&mut self, method: &Method) -> Result<Head, ExchangeError> {
        std::future::poll_fn(|cx| self.poll_head(cx, method)).await
    }

    fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
        method: &Method,
    ) -> Poll<Result<Head, ExchangeError>> {
        loop {
            if !self.buf.is_empty()
                && let Some((head, len)) = parse_head(self.buf.filled(), method, &mut self.heads)?
            {
                self.buf.consume(len);
                if head.status.is_informational() {
                    continue;
                }
                return Poll::Ready(Ok(head));
            }
            let n = ready!(self.buf.poll_fill(&mut self.io, cx)).map_err(ExchangeError::Read)?;
            if n == 0 {
                return Poll::Ready(Err(ExchangeError::ClosedBeforeAnswer));
            }
        }
    }

    /// The next piece of the body delimited by `framing`: `None` at its end.
    pub(crate) fn poll_body(
        &mut self,
        cx: &mut Context<'_>,
        framing: &mut Framing,
    ) -> Poll<Option<Result<Bytes, ExchangeError>>> {
        loop {
            let (used, step) = match framing.step(self.buf.filled()) {
                Ok(s) => s,
                Err(e) => return Poll::Ready(Some(Err(e))),
            };
            match step {
                Step::Data(range) => {
                    let data = Bytes::copy_from_slice(&self.buf.filled()[range]);
                    self.buf.consume(used);
                    return Poll::Ready(Some(Ok(data)));
                }
                Step::Continue => self.buf.consume(used),
                Step::End => {
                    self.buf.consume(used);
                    return Poll::Ready(None);
                }
                Step::NeedMore => match ready!(self.buf.poll_fill(&mut self.io, cx)) {
                    Err(e) => return Poll::Ready(Some(Err(ExchangeError::Read(e)))),
                    Ok(0) if *framing == Framing::Close => {
                        *framing = Framing::Length(0);
                        return Poll::Ready(None);
                    }
                    Ok(0) => return Poll::Ready(Some(Err(ExchangeError::ClosedEarly))),
                    Ok(_) => {}
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Head {
        match parse_head(text.as_bytes(), &Method::POST, &mut BytesMut::new()) {
            Ok(Some((h, len))) => {
                assert_eq!(len, text.find("\r\n\r\n").map_or(0, |i| i + 4));
                h
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }

    /// Runs `framing` over `input` fed in pieces of `piece` bytes; the body, and whether
    /// it ended before the input did.
    fn decode(
        mut framing: Framing,
        input: &[u8],
        piece: usize,
    ) -> Result<(Vec<u8>, bool), ExchangeError> {
        let mut pending: Vec<u8> = Vec::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            let (used, step) = framing.step(&pending)?;
            match step {
                Step::Data(r) => {
                    body.extend_from_slice(&pending[r]);
                    pending.drain(..used);
                }
                Step::Continue => {
                    pending.drain(..used);
                }
                Step::End => {
                    pending.drain(..used);
                    return Ok((body, true));
                }
                Step::NeedMore => {
                    if fed == input.len() {
                        return Ok((body, false));
                    }
                    let next = (fed + piece).min(input.len());
                    pending.extend_from_slice(&input[fed..next]);
                    fed = next;
                }
            }
        }
    }

    #[test]
    fn a_request_head_is_origin_form_with_host_first_and_a_length() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::HOST, HeaderValue::from_static("ignored"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert("traceparent", HeaderValue::from_static("00-ab-cd-01"));
        let host = HeaderValue::from_static("api.example:8080");
        let (bytes, coalesced) = encode_head(&Method::POST, "/v1/chat?x=1", &host, &headers, b"{}");
        assert!(coalesced);
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            "POST /v1/chat?x=1 HTTP/1.1\r\nhost: api.example:8080\r\ncontent-type: application/json\r\ntraceparent: 00-ab-cd-01\r\ncontent-length: 2\r\n\r\n{}"
        );
        let (bytes, _) = encode_head(&Method::GET, "/v1/models", &host, &HeaderMap::new(), b"");
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            "GET /v1/models HTTP/1.1\r\nhost: api.example:8080\r\n\r\n"
        );
        let big = vec![b'x'; COALESCE + 1];
        let (bytes, coalesced) = encode_head(&Method::POST, "/", &host, &HeaderMap::new(), &big);
        assert!(!coalesced);
        // No content-type given: JSON's.
        assert!(
            bytes.ends_with(
                format!(
                    "\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    big.len()
                )
                .as_bytes()
            )
        );
        let mut text = HeaderMap::new();
        text.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let (bytes, _) = encode_head(&Method::POST, "/", &host, &text, b"hi");
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            "POST / HTTP/1.1\r\nhost: api.example:8080\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nhi"
        );
    }

    #[test]
    fn answer_heads_give_status_headers_framing_and_keep_alive() {
        let h = head(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\nX-Request-Id: a\r\n\r\n",
        );
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(
            h.headers.get("content-type"),
            Some(&b"application/json"[..])
        );
        assert_eq!(h.headers.get("X-Request-ID"), Some(&b"a"[..]));
        assert_eq!(h.headers.value("x-request-id").expect("a value"), "a");
        assert_eq!(h.headers.get("x-absent"), None);
        let map = h.headers.to_map();
        assert_eq!(map.len(), 3);
        assert_eq!(map[header::CONTENT_TYPE], "application/json");
        assert_eq!(map["x-request-id"], "a");
        assert_eq!(h.framing, Framing::Length(12));
        assert!(h.keep_alive);
        assert!(h.whole.is_none());

        // A body that came whole is copied with its head, in one piece.
        let text = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}HTTP/1.1";
        let (h, len) = parse_head(text.as_bytes(), &Method::POST, &mut BytesMut::new())
            .expect("ok")
            .expect("complete");
        assert_eq!(&text[len..len + 2], "{}");
        assert_eq!(h.whole.as_deref(), Some(&b"{}"[..]));
        assert_eq!(h.headers.get("content-length"), Some(&b"2"[..]));
        let (h, _) = parse_head(
            b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n{}",
            &Method::POST,
            &mut BytesMut::new(),
        )
        .expect("ok")
        .expect("complete");
        assert!(h.whole.is_none());

        let h = head(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\nconnection: keep-alive, Close\r\n\r\n",
        );
        assert_eq!(h.framing, Framing::Chunked(Chunked::Size));
        assert!(!h.keep_alive);

        let h = head("HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\n");
        assert_eq!(h.version, Version::HTTP_10);
        assert!(!h.keep_alive);
        let h = head("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 3\r\n\r\n");
        assert!(h.keep_alive);

        // No length: until close, and never reused.
        let h = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(h.framing, Framing::Close);
        assert!(!h.keep_alive);
        // Both: the coding wins, the connection is not reused.
        let h = head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked(Chunked::Size));
        assert!(!h.keep_alive);
        // Repeated equal lengths are one length.
        let h = head("HTTP/1.1 200 OK\r\ncontent-length: 4, 4\r\ncontent-length: 4\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(4));
        let h = head("HTTP/1.1 204 No Content\r\ncontent-length: 9\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(0));
        let h = head("HTTP/1.1 100 Continue\r\n\r\n");
        assert!(h.status.is_informational());
    }

    #[test]
    fn head_copies_reuse_the_connections_buffer_once_let_go() {
        fn copy(text: &[u8], heads: &mut BytesMut) -> Head {
            let (h, _) = parse_head(text, &Method::POST, heads)
                .expect("ok")
                .expect("complete");
            h
        }
        let text = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        let length = |h: &Head| h.headers.get("content-length").map(<[u8]>::as_ptr);
        let mut heads = BytesMut::new();
        let first = copy(text, &mut heads);
        let at = length(&first);
        drop(first);
        // Let go: the next head is copied into the same memory.
        let second = copy(text, &mut heads);
        assert_eq!(length(&second), at);
        // Still held: the next goes elsewhere, and the one held is unchanged.
        let third = copy(text, &mut heads);
        assert_ne!(length(&third), at);
        for h in [&second, &third] {
            assert_eq!(h.whole.as_deref(), Some(&b"{}"[..]));
            assert_eq!(h.headers.get("content-length"), Some(&b"2"[..]));
        }
        drop((second, third));
        // A head larger than what is kept is not kept for the next.
        let big = format!(
            "HTTP/1.1 200 OK\r\nx-big: {}\r\ncontent-length: 0\r\n\r\n",
            "a".repeat(KEEP_HEADS)
        );
        drop(copy(big.as_bytes(), &mut heads));
        drop(copy(text, &mut heads));
        // What is left of the memory after the small head: not the large one's.
        assert!(heads.capacity() < KEEP_HEADS);
    }

    #[test]
    fn broken_answer_heads_are_errors_and_partial_ones_wait() {
        for bad in [
            "HTTP/1.1 200 OK\r\ncontent-length: 4\r\ncontent-length: 5\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length:\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "SSH-2.0-OpenSSH\r\n\r\n",
            "HTTP/1.1 99 Low\r\n\r\n",
        ] {
            assert!(
                parse_head(bad.as_bytes(), &Method::POST, &mut BytesMut::new()).is_err(),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse_head(
                b"HTTP/1.1 200 OK\r\ncontent-le",
                &Method::POST,
                &mut BytesMut::new()
            ),
            Ok(None)
        ));
        let mut huge = b"HTTP/1.1 200 OK\r\n".to_vec();
        while huge.len() < MAX_HEAD {
            huge.extend_from_slice(b"x-filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert!(matches!(
            parse_head(&huge, &Method::POST, &mut BytesMut::new()),
            Err(ExchangeError::HeadTooLarge | ExchangeError::Header(_))
        ));
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert!(matches!(
            parse_head(&many, &Method::POST, &mut BytesMut::new()),
            Err(ExchangeError::Header("too many"))
        ));
    }

    #[test]
    fn sized_bodies_end_at_their_length() {
        for piece in [1, 3, 100] {
            let (body, ended) = decode(Framing::Length(5), b"hello, and more", piece).expect("ok");
            assert_eq!((body.as_slice(), ended), (&b"hello"[..], true));
            let (body, ended) = decode(Framing::Length(9), b"hello", piece).expect("ok");
            assert_eq!((body.as_slice(), ended), (&b"hello"[..], false));
        }
    }

    #[test]
    fn chunked_bodies_decode_in_any_split() {
        let input =
            b"5;ext=1\r\nhello\r\n7\r\n, world\r\nA \r\n0123456789\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        for piece in 1..=input.len() {
            let (body, ended) = decode(Framing::Chunked(Chunked::Size), input, piece).expect("ok");
            assert_eq!(String::from_utf8_lossy(&body), "hello, world0123456789");
            assert!(ended, "piece {piece}");
        }
        let (body, ended) = decode(
            Framing::Chunked(Chunked::Size),
            b"000000000000000000003\r\nabc\r\n0\r\n\r\n",
            4,
        )
        .expect("leading zeros");
        assert_eq!((body.as_slice(), ended), (&b"abc"[..], true));
    }

    #[test]
    fn broken_chunked_bodies_are_errors() {
        for bad in [
            &b"zz\r\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhelloXX0\r\n\r\n",
            b"fffffffffffffffff\r\n",
            b"5 x\r\nhello\r\n",
            b"\r\n",
        ] {
            assert!(
                decode(Framing::Chunked(Chunked::Size), bad, 2).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = vec![b'1'; MAX_CHUNK_LINE + 2];
        assert!(decode(Framing::Chunked(Chunked::Size), &long, 64).is_err());
        let mut trailers = b"0\r\n".to_vec();
        while trailers.len() < MAX_TRAILERS + 100 {
            trailers.extend_from_slice(b"x-t: 1\r\n");
        }
        assert!(decode(Framing::Chunked(Chunked::Size), &trailers, 4096).is_err());
    }

    #[test]
    fn close_delimited_bodies_take_everything() {
        let (body, ended) = decode(Framing::Close, b"all of it", 2).expect("ok");
        assert_eq!((body.as_slice(), ended), (&b"all of it"[..], false));
    }

    #[test]
    fn the_read_window_compacts_and_grows() {
        let mut b = ReadBuf::default();
        let spare = b.spare(10);
        spare[..4].copy_from_slice(b"abcd");
        b.end += 4;
        b.consume(2);
        assert_eq!(b.filled(), b"cd");
        let room = b.spare(READ_SIZE);
        assert!(room.len() >= READ_SIZE);
        assert_eq!(b.filled(), b"cd");
        b.consume(2);
        assert!(b.is_empty());
    }

    #[tokio::test]
    async fn a_connection_reads_heads_and_bodies_and_sees_closes() {
        let (client, mut server) = tokio::io::duplex(64);
        let mut conn = Conn::new(client);
        assert!(conn.is_reusable(), "nothing sent, still open");
        let writer = tokio::spawn(async move {
            server
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
                .await
                .expect("write");
            server
        });
        let head = conn.read_head(&Method::POST).await.expect("head");
        assert_eq!(head.status, StatusCode::OK);
        let mut framing = head.framing;
        let mut body = Vec::new();
        while let Some(piece) = std::future::poll_fn(|cx| conn.poll_body(cx, &mut framing)).await {
            body.extend_from_slice(&piece.expect("data"));
        }
        assert_eq!(body, b"abc");
        assert!(framing.is_done());
        let server = writer.await.expect("writer");
        assert!(conn.is_reusable());
        drop(server);
        assert!(!conn.is_reusable(), "closed by the other side");
        assert!(matches!(
            conn.read_head(&Method::POST).await,
            Err(ExchangeError::ClosedBeforeAnswer)
        ));
    }
}
