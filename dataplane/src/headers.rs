//! Header fields as they came off the wire: one copy of the head and where each field lies
//! in it. A request or an answer passing through the proxy has one or two of its fields
//! read; building an `http::HeaderMap` of every field (a name parse, a value check, a hash
//! and two allocations) is left to the paths that need one ([`RawHeaders::to_map`]: error
//! answers, which translators read whole). httparse has checked every name and value.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Header fields over one shared buffer.
#[derive(Clone, Debug, Default)]
pub struct RawHeaders {
    head: Bytes,
    /// (name start, name end, value start, value end) in `head`.
    fields: Vec<(u32, u32, u32, u32)>,
}

impl RawHeaders {
    /// Fields at the given ranges of `head` (every range within it, names and values
    /// checked by the parser that found them).
    pub(crate) fn new(head: Bytes, fields: Vec<(u32, u32, u32, u32)>) -> Self {
        debug_assert!(
            fields
                .iter()
                .all(|f| f.1 as usize <= head.len() && f.3 as usize <= head.len())
        );
        RawHeaders { head, fields }
    }

    /// The fields of `map`, in its order (a request that came through hyper, or a test's).
    pub fn from_map(map: &HeaderMap) -> Self {
        let mut head = BytesMut::new();
        let mut fields = Vec::with_capacity(map.len());
        for (name, value) in map {
            let (Ok(ns), Ok(ne), Ok(ve)) = (
                u32::try_from(head.len()),
                u32::try_from(head.len() + name.as_str().len()),
                u32::try_from(head.len() + name.as_str().len() + value.len()),
            ) else {
                break;
            };
            head.put_slice(name.as_str().as_bytes());
            head.put_slice(value.as_bytes());
            fields.push((ns, ne, ne, ve));
        }
        RawHeaders {
            head: head.freeze(),
            fields,
        }
    }

    /// The (value start, value end) of the first field named `name` (case-insensitive).
    fn find(&self, name: &str) -> Option<(usize, usize)> {
        let name = name.as_bytes();
        self.fields.iter().find_map(|&(ns, ne, vs, ve)| {
            let field = self.head.get(ns as usize..ne as usize)?;
            is_name(field, name).then_some((vs as usize, ve as usize))
        })
    }

    /// The first value of `name` (case-insensitive), as bytes.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let (start, end) = self.find(name)?;
        Some(&self.head[start..end])
    }

    /// The first value of `name`, as a header value sharing the head's bytes.
    pub fn value(&self, name: &str) -> Option<HeaderValue> {
        let (start, end) = self.find(name)?;
        HeaderValue::from_maybe_shared(self.head.slice(start..end)).ok()
    }

    /// The first value of `name`, as [`RawHeaders::value`]; a clone of `usual` (no
    /// reference to the head kept, nothing checked) when it is that.
    pub fn value_or(&self, name: &str, usual: &HeaderValue) -> Option<HeaderValue> {
        let (start, end) = self.find(name)?;
        if &self.head[start..end] == usual.as_bytes() {
            return Some(usual.clone());
        }
        HeaderValue::from_maybe_shared(self.head.slice(start..end)).ok()
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Every field in a `HeaderMap` (values share the head's bytes).
    pub fn to_map(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.fields.len());
        for &(ns, ne, vs, ve) in &self.fields {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(&self.head[ns as usize..ne as usize]),
                HeaderValue::from_maybe_shared(self.head.slice(vs as usize..ve as usize)),
            ) {
                map.append(name, value);
            }
        }
        map
    }
}

/// `field` is `name`, ASCII case aside. Where `name` has a letter, setting bit 5 of the
/// field's byte folds its case (and only a letter of either case becomes that letter);
/// every other byte is compared as it is: a byte at a time, without the generic fold of
/// both sides.
#[inline]
fn is_name(field: &[u8], name: &[u8]) -> bool {
    field.len() == name.len()
        && field.iter().zip(name).all(|(&f, &n)| {
            let n = n.to_ascii_lowercase();
            let fold = if n.is_ascii_lowercase() { 0x20 } else { 0 };
            f | fold == n
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_goes_through_and_back_with_every_field_in_order() {
        let mut map = HeaderMap::new();
        map.append("x-a", HeaderValue::from_static("1"));
        map.append("traceparent", HeaderValue::from_static("00-abc-def-01"));
        map.append("x-a", HeaderValue::from_static("2"));
        let raw = RawHeaders::from_map(&map);
        assert_eq!(raw.len(), 3);
        assert_eq!(raw.get("X-A"), Some(&b"1"[..]));
        assert_eq!(raw.get("TraceParent"), Some(&b"00-abc-def-01"[..]));
        assert_eq!(raw.get("missing"), None);
        assert_eq!(raw.value("traceparent").as_ref(), map.get("traceparent"));
        let back = raw.to_map();
        assert_eq!(back, map);
        // A map keeps a name's values together, in the order they came.
        let values: Vec<_> = back.get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);
        assert!(RawHeaders::default().is_empty());
    }

    #[test]
    fn names_match_as_ascii_case_insensitive_equality_does() {
        let bytes: Vec<u8> = (0u8..=255).collect();
        for name in [
            &b"content-type"[..],
            b"X-Api-Key",
            b"a_b",
            b"x~1",
            b"",
            b"@`[{",
        ] {
            // Every byte in every position of the name, against the generic fold.
            for at in 0..name.len() {
                for &b in &bytes {
                    let mut field = name.to_vec();
                    field[at] = b;
                    assert_eq!(
                        is_name(&field, name),
                        field.eq_ignore_ascii_case(name),
                        "{:?} vs {:?}",
                        String::from_utf8_lossy(&field),
                        String::from_utf8_lossy(name)
                    );
                }
            }
            assert!(is_name(name, name));
            assert!(!is_name(&[name, b"x"].concat(), name));
        }
    }
}
