//! Is this JSON? The check every answer forwarded untouched goes through (an upstream's
//! `200` whose body is not JSON is its failure, not an answer).
//!
//! It accepts exactly what `serde_json::from_slice::<IgnoredAny>` accepts (the fuzz target
//! `json_valid` holds the two to each other): RFC 8259 grammar, any nesting depth, string
//! bytes unchecked beyond control characters and escapes (as serde_json skips strings it
//! does not keep). In one pass and without allocating below 64 levels of nesting, at a
//! third of the cost of driving serde's deserializer to ignore a value.

/// Bytes that end a run of plain string bytes: `"`, `\` and control characters.
const STRING_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Open containers, the innermost in bit 0 of `bits` (set for an object). Up to 64 levels
/// are bits of one integer; a deeper level (which serde_json also follows) pushes the
/// outermost bit to `deeper` and takes it back when it closes.
struct Nesting {
    bits: u64,
    depth: usize,
    deeper: Vec<bool>,
}

impl Nesting {
    fn new() -> Self {
        Nesting {
            bits: 0,
            depth: 0,
            deeper: Vec::new(),
        }
    }

    #[inline(always)]
    fn push(&mut self, object: bool) {
        if self.depth >= 64 {
            self.deeper.push(self.bits >> 63 != 0);
        }
        self.bits = (self.bits << 1) | u64::from(object);
        self.depth += 1;
    }

    /// The innermost open container (`true`: object); only called when one is open.
    #[inline(always)]
    fn top_is_object(&self) -> bool {
        self.bits & 1 != 0
    }

    #[inline(always)]
    fn pop(&mut self) {
        self.bits >>= 1;
        self.depth -= 1;
        if self.depth >= 64 && self.deeper.pop() == Some(true) {
            self.bits |= 1 << 63;
        }
    }
}

/// The first byte at or after `i` that is not JSON whitespace.
#[inline(always)]
fn ws(b: &[u8], mut i: usize) -> usize {
    // Compact JSON has none: one test for the usual case (whitespace is at most b' ').
    if b.get(i).is_some_and(|c| *c > b' ') {
        return i;
    }
    while let Some(b' ' | b'\n' | b'\t' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// True for each byte of `word` that ends a run of plain string bytes (`"`, `\\`, a
/// control character), as the high bit of that byte (SWAR, eight bytes at a time).
#[inline(always)]
fn stops(word: u64) -> u64 {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    let quote =
        (word ^ (ONES * u64::from(b'"'))).wrapping_sub(ONES) & !(word ^ (ONES * u64::from(b'"')));
    let backslash =
        (word ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES) & !(word ^ (ONES * u64::from(b'\\')));
    (control | quote | backslash) & HIGH
}

/// The first byte at or after `i` that ends a run of plain string bytes, or the end.
/// Most strings are short: their first thirty-two bytes are tested eight at a time (SWAR);
/// a longer run is searched with `memchr` for its quote or backslash, and checked for
/// control characters in one vectorised pass.
#[inline(always)]
fn plain_run(b: &[u8], mut i: usize) -> usize {
    for _ in 0..4 {
        let Some(chunk) = b.get(i..i + 8) else {
            while let Some(c) = b.get(i) {
                if STRING_STOP[usize::from(*c)] {
                    break;
                }
                i += 1;
            }
            return i;
        };
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let found = stops(u64::from_le_bytes(word));
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    let rest = b.get(i..).unwrap_or_default();
    let end = memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
    let run = &rest[..end];
    if run.iter().fold(0u8, |acc, c| acc | u8::from(*c < 0x20)) == 0 {
        i + end
    } else {
        i + run.iter().position(|c| *c < 0x20).unwrap_or(end)
    }
}

/// The end (after its closing quote) of the string whose content starts at `i`.
#[inline(always)]
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i = plain_run(b, i);
        let c = *b.get(i)?;
        i += 1;
        match c {
            b'"' => return Some(i),
            b'\\' => match *b.get(i)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 1,
                b'u' => {
                    let hex = b.get(i + 1..i + 5)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    i += 5;
                }
                _ => return None,
            },
            // A control character.
            _ => return None,
        }
    }
}

/// After the digits at `i`, and how many there were.
#[inline(always)]
fn digits(b: &[u8], mut i: usize) -> (usize, usize) {
    let start = i;
    while let Some(b'0'..=b'9') = b.get(i) {
        i += 1;
    }
    (i, i - start)
}

/// The end of the number at `i`.
#[inline(always)]
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i)? {
        b'0' => {
            i += 1;
            if let Some(b'0'..=b'9') = b.get(i) {
                return None;
            }
        }
        b'1'..=b'9' => i = digits(b, i + 1).0,
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        let (end, n) = digits(b, i + 1);
        if n == 0 {
            return None;
        }
        i = end;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        let (end, n) = digits(b, i);
        if n == 0 {
            return None;
        }
        i = end;
    }
    Some(i)
}

/// The end of the literal `word` at `i`.
#[inline(always)]
fn literal_end(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    (b.get(i..i + word.len())? == word).then_some(i + word.len())
}

/// The byte at `i`, or the first after it that is not whitespace, and its position.
/// Compact JSON has no whitespace between tokens: one test for the usual case (JSON's
/// whitespace bytes are all at most `b' '`).
#[inline(always)]
fn token(b: &[u8], i: usize) -> Option<(u8, usize)> {
    let c = *b.get(i)?;
    if c > b' ' {
        return Some((c, i));
    }
    let i = ws(b, i);
    Some((*b.get(i)?, i))
}

/// After the key at `i` (whitespace before it included) and its colon.
#[inline(always)]
fn key_end(b: &[u8], i: usize) -> Option<usize> {
    let (c, i) = token(b, i)?;
    if c != b'"' {
        return None;
    }
    let (c, i) = token(b, string_end(b, i + 1)?)?;
    (c == b':').then_some(i + 1)
}

/// True when `bytes` is one JSON value, with whitespace around it only.
pub fn is_valid(bytes: &[u8]) -> bool {
    skip_value(bytes, 0).is_some_and(|end| ws(bytes, end) == bytes.len())
}

/// Skips the JSON value at `i` (whitespace before it included): the position just after
/// it, or `None` when there is no valid value there.
fn skip_value(b: &[u8], mut i: usize) -> Option<usize> {
    let mut open = Nesting::new();
    'value: loop {
        let (c, at) = token(b, i)?;
        i = match c {
            b'"' => string_end(b, at + 1)?,
            b'{' => {
                let (c, at) = token(b, at + 1)?;
                if c == b'}' {
                    at + 1
                } else {
                    open.push(true);
                    i = key_end(b, at)?;
                    continue 'value;
                }
            }
            b'[' => {
                let (c, at) = token(b, at + 1)?;
                if c == b']' {
                    at + 1
                } else {
                    open.push(false);
                    i = at;
                    continue 'value;
                }
            }
            b'-' | b'0'..=b'9' => number_end(b, at)?,
            b't' => literal_end(b, at, b"true")?,
            b'f' => literal_end(b, at, b"false")?,
            b'n' => literal_end(b, at, b"null")?,
            _ => return None,
        };
        // After a value: a comma, or the end of its containers.
        while open.depth > 0 {
            let (c, at) = token(b, i)?;
            let object = open.top_is_object();
            if c == b',' {
                i = if object { key_end(b, at + 1)? } else { at + 1 };
                continue 'value;
            }
            if c != if object { b'}' } else { b']' } {
                return None;
            }
            i = at + 1;
            open.pop();
        }
        return Some(i);
    }
}

/// The JSON texts of the `model` and `stream` members of a request body.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ModelAndStream<'a> {
    /// `model`'s value, as written.
    pub model: Option<&'a [u8]>,
    /// `stream`'s value, as written.
    pub stream: Option<&'a [u8]>,
}

/// The `model` and `stream` members of a JSON object, read in one pass without building
/// anything. `None` when the body needs a full parser to be read as serde_json reads it
/// into a struct: not a valid JSON object, a key with an escape or not UTF-8, or `model`
/// or `stream` given twice.
pub fn model_and_stream(b: &[u8]) -> Option<ModelAndStream<'_>> {
    let mut found = ModelAndStream::default();
    let (c, i) = token(b, 0)?;
    if c != b'{' {
        return None;
    }
    let (c, mut i) = token(b, i + 1)?;
    if c == b'}' {
        i += 1;
    } else {
        loop {
            let (c, at) = token(b, i)?;
            if c != b'"' {
                return None;
            }
            let start = at + 1;
            // A key that is not plain bytes up to its quote (an escape: serde_json
            // compares the unescaped key; a control character: invalid) is the full
            // parser's.
            let end = plain_run(b, start);
            if b.get(end) != Some(&b'"') {
                return None;
            }
            let key = &b[start..end];
            if !key.is_ascii() && std::str::from_utf8(key).is_err() {
                return None;
            }
            let (c, at) = token(b, end + 1)?;
            if c != b':' {
                return None;
            }
            let (_, value_start) = token(b, at + 1)?;
            i = skip_value(b, value_start)?;
            let slot = match key {
                b"model" => Some(&mut found.model),
                b"stream" => Some(&mut found.stream),
                _ => None,
            };
            if let Some(slot) = slot
                && slot.replace(&b[value_start..i]).is_some()
            {
                return None;
            }
            let (c, at) = token(b, i)?;
            i = at + 1;
            match c {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
    }
    (ws(b, i) == b.len()).then_some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_says(text: &[u8]) -> bool {
        serde_json::from_slice::<serde::de::IgnoredAny>(text).is_ok()
    }

    #[test]
    fn agrees_with_serde_json_on_valid_and_broken_documents() {
        let cases: &[&[u8]] = &[
            br#"{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hi \"there\" \u00e9\n"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2.5e3,"total_tokens":-0.0E+1}}"#,
            b" \n\t\r[ ] ",
            b"{}",
            b"[[[[[]]]]]",
            b"\"\"",
            b"0",
            b"-0.5e-7",
            b"true",
            b"null",
            b"false ",
            b"",
            b"   ",
            b"{",
            b"[1,]",
            b"[,1]",
            b"{\"a\":1,}",
            b"{\"a\" 1}",
            b"{1:2}",
            b"{\"a\":}",
            b"[1 2]",
            b"[1}",
            b"{\"a\":1]",
            b"01",
            b"-",
            b"1.",
            b"1.e5",
            b"1e",
            b"1e+",
            b"+1",
            b".5",
            b"tru",
            b"nulll",
            b"\"unterminated",
            b"\"bad \\x escape\"",
            b"\"short \\u12\"",
            b"\"\\u12G4\"",
            b"\"control \x01 char\"",
            b"\"\xff\xfe not utf-8 but skipped\"",
            b"\"\\ud800 lone surrogate\"",
            b"{} {}",
            b"[]x",
            b"NaN",
            b"\xef\xbb\xbf{}",
        ];
        for case in cases {
            assert_eq!(
                is_valid(case),
                serde_says(case),
                "{}",
                String::from_utf8_lossy(case)
            );
        }
    }

    #[test]
    fn model_and_stream_are_found_or_left_to_the_full_parser() {
        fn read(text: &str) -> Option<ModelAndStream<'_>> {
            model_and_stream(text.as_bytes())
        }
        assert_eq!(
            read(
                r#" {"messages": [{"role": "user", "content": "hi \"x\""}], "model" : "gpt-4o" , "stream":true} "#
            ),
            Some(ModelAndStream {
                model: Some(&br#""gpt-4o""#[..]),
                stream: Some(&b"true"[..]),
            })
        );
        assert_eq!(read("{}"), Some(ModelAndStream::default()));
        assert_eq!(
            read(r#"{"model": {"a": [1, 2]}, "stream": null}"#),
            Some(ModelAndStream {
                model: Some(&br#"{"a": [1, 2]}"#[..]),
                stream: Some(&b"null"[..]),
            })
        );
        for full in [
            r#"{"model": "a", "model": "b"}"#,
            r#"{"stream": true, "stream": true}"#,
            r#"{"mod\u0065l": "a"}"#,
            r#"["model", "a"]"#,
            r#"{"model": "a",}"#,
            r#"{"model": "a"} x"#,
            r#"{"model": "a""#,
            "",
        ] {
            assert_eq!(read(full), None, "{full}");
        }
        assert_eq!(model_and_stream(b"{\"\xff\": 1}"), None);
    }

    #[test]
    fn string_scanning_finds_every_stop_at_every_offset() {
        for len in (0..40).chain([100, 1000]) {
            for stop in [
                &b"\""[..],
                b"\\n",
                b"\\u00e9",
                b"\x01",
                b"\x1f",
                b"\\q",
                b"\x7f",
                b"\xc3\xa9",
            ] {
                for at in 0..=len {
                    let mut doc = b"[\"".to_vec();
                    for k in 0..len {
                        if k == at {
                            doc.extend_from_slice(stop);
                        }
                        doc.push(b'a' + (k % 26) as u8);
                    }
                    doc.extend_from_slice(b"\"]");
                    assert_eq!(
                        is_valid(&doc),
                        serde_says(&doc),
                        "{}",
                        String::from_utf8_lossy(&doc)
                    );
                }
            }
        }
    }

    #[test]
    fn any_depth_is_followed() {
        for depth in [1, 63, 64, 65, 127, 128, 129, 130, 500] {
            let mut doc = Vec::new();
            for i in 0..depth {
                doc.extend_from_slice(if i % 2 == 0 { b"[" } else { b"{\"k\":" });
            }
            doc.extend_from_slice(b"1");
            for i in (0..depth).rev() {
                doc.push(if i % 2 == 0 { b']' } else { b'}' });
            }
            assert!(is_valid(&doc), "depth {depth}");
            assert_eq!(is_valid(&doc), serde_says(&doc));
            // The wrong closer at the deepest level is caught.
            let mut wrong = doc.clone();
            let last = depth - 1;
            wrong[doc.len() - depth] = if last % 2 == 0 { b'}' } else { b']' };
            assert!(!is_valid(&wrong), "depth {depth}");
            assert_eq!(is_valid(&wrong), serde_says(&wrong));
        }
    }
}
