//! Is this JSON? The check every answer forwarded untouched goes through (an upstream's
//! `200` whose body is not JSON is its failure, not an answer).
//!
//! It accepts exactly what `serde_json::from_slice::<IgnoredAny>` accepts (the fuzz target
//! `json_valid` holds the two to each other): RFC 8259 grammar, any nesting depth, string
//! bytes unchecked beyond control characters and escapes (as serde_json skips strings it
//! does not keep). In one pass and without allocating below 128 levels of nesting, at a
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

/// Open containers, innermost last: `true` for an object.
struct Nesting {
    bits: [u64; 2],
    depth: usize,
    deeper: Vec<bool>,
}

impl Nesting {
    fn push(&mut self, object: bool) {
        if self.depth < 128 {
            let (word, bit) = (self.depth / 64, self.depth % 64);
            if object {
                self.bits[word] |= 1 << bit;
            } else {
                self.bits[word] &= !(1 << bit);
            }
        } else {
            self.deeper.push(object);
        }
        self.depth += 1;
    }

    /// The innermost open container (`true`: object), if any.
    fn top(&self) -> Option<bool> {
        match self.depth {
            0 => None,
            d if d > 128 => self.deeper.last().copied(),
            d => Some(self.bits[(d - 1) / 64] & (1 << ((d - 1) % 64)) != 0),
        }
    }

    fn pop(&mut self) {
        if self.depth > 128 {
            self.deeper.pop();
        }
        self.depth = self.depth.saturating_sub(1);
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.b.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// A string whose opening quote was consumed.
    fn string(&mut self) -> bool {
        loop {
            let rest = self.b.get(self.pos..).unwrap_or_default();
            let Some(stop) = rest.iter().position(|c| STRING_STOP[usize::from(*c)]) else {
                return false;
            };
            self.pos += stop + 1;
            match rest[stop] {
                b'"' => return true,
                b'\\' => match self.peek() {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 1,
                    Some(b'u') => {
                        let hex = self.b.get(self.pos + 1..self.pos + 5);
                        if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                            return false;
                        }
                        self.pos += 5;
                    }
                    _ => return false,
                },
                // A control character.
                _ => return false,
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A number (its first byte not consumed).
    fn number(&mut self) -> bool {
        self.eat(b'-');
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return false;
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return false,
        }
        if self.eat(b'.') && self.digits() == 0 {
            return false;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return false;
            }
        }
        true
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        if self.b.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    /// An object key and its colon (the key's opening quote not consumed).
    fn key(&mut self) -> bool {
        self.ws();
        if !self.eat(b'"') || !self.string() {
            return false;
        }
        self.ws();
        self.eat(b':')
    }
}

/// True when `bytes` is one JSON value, with whitespace around it only.
pub fn is_valid(bytes: &[u8]) -> bool {
    skip_value(bytes, 0) == Some(bytes.len())
}

/// Skips the JSON value at `pos` (whitespace around it included): the position after
/// it, or `None` when there is no valid value there.
fn skip_value(bytes: &[u8], pos: usize) -> Option<usize> {
    let mut c = Cursor { b: bytes, pos };
    let mut open = Nesting {
        bits: [0; 2],
        depth: 0,
        deeper: Vec::new(),
    };
    'value: loop {
        c.ws();
        let scalar = match c.peek()? {
            b'{' => {
                c.pos += 1;
                c.ws();
                if c.eat(b'}') {
                    true
                } else {
                    open.push(true);
                    if !c.key() {
                        return None;
                    }
                    continue 'value;
                }
            }
            b'[' => {
                c.pos += 1;
                c.ws();
                if c.eat(b']') {
                    true
                } else {
                    open.push(false);
                    continue 'value;
                }
            }
            b'"' => {
                c.pos += 1;
                c.string()
            }
            b't' => c.literal(b"true"),
            b'f' => c.literal(b"false"),
            b'n' => c.literal(b"null"),
            b'-' | b'0'..=b'9' => c.number(),
            _ => false,
        };
        if !scalar {
            return None;
        }
        // After a value: a comma, or the end of its containers.
        loop {
            c.ws();
            let Some(object) = open.top() else {
                return Some(c.pos);
            };
            match c.peek() {
                Some(b',') => {
                    c.pos += 1;
                    if object && !c.key() {
                        return None;
                    }
                    continue 'value;
                }
                Some(b'}') if object => {}
                Some(b']') if !object => {}
                _ => return None,
            }
            c.pos += 1;
            open.pop();
        }
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
pub fn model_and_stream(bytes: &[u8]) -> Option<ModelAndStream<'_>> {
    let mut c = Cursor { b: bytes, pos: 0 };
    let mut found = ModelAndStream::default();
    c.ws();
    if !c.eat(b'{') {
        return None;
    }
    c.ws();
    if !c.eat(b'}') {
        loop {
            c.ws();
            if !c.eat(b'"') {
                return None;
            }
            let rest = bytes.get(c.pos..)?;
            let end = rest.iter().position(|b| STRING_STOP[usize::from(*b)])?;
            if rest[end] != b'"' {
                return None;
            }
            let key = &rest[..end];
            if !key.is_ascii() && std::str::from_utf8(key).is_err() {
                return None;
            }
            c.pos += end + 1;
            c.ws();
            if !c.eat(b':') {
                return None;
            }
            c.ws();
            let start = c.pos;
            c.pos = skip_value(bytes, start)?;
            let value = bytes[start..c.pos].trim_ascii_end();
            let slot = match key {
                b"model" => Some(&mut found.model),
                b"stream" => Some(&mut found.stream),
                _ => None,
            };
            if let Some(slot) = slot
                && slot.replace(value).is_some()
            {
                return None;
            }
            if c.eat(b',') {
                continue;
            }
            if c.eat(b'}') {
                break;
            }
            return None;
        }
    }
    c.ws();
    (c.pos == bytes.len()).then_some(found)
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
