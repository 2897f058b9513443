//! Header fields as they came off the wire: one copy of the head and where each field lies
//! in it. A request or an answer passing through the proxy has one or two of its fields
//! read; building an `http::HeaderMap` of every field (a name parse, a value check, a hash
//! and two allocations) is left to the paths that need one ([`RawHeaders::to_map`]: error
//! answers, which translators read whole). httparse has checked every name and value.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Header fields over one shared buffer: the fields' table first, [`FIELD`] bytes per
/// field (see [`put_field`]), then the bytes it points into. The table is written into the
/// connection's buffer with the head's copy, so a head's fields take no allocation.
#[derive(Clone, Debug, Default)]
pub struct RawHeaders {
    buf: Bytes,
    count: u32,
}

/// The size of one field in a [`RawHeaders`] table: name start, name end, value start and
/// value end, offsets in the whole buffer, as little-endian `u32`s.
pub(crate) const FIELD: usize = 16;

/// The offset at byte `at` of a table's field.
#[inline(always)]
fn offset(field: &[u8; FIELD], at: usize) -> usize {
    u32::from_le_bytes([field[at], field[at + 1], field[at + 2], field[at + 3]]) as usize
}

/// Appends one field to a table (see [`RawHeaders`]).
pub(crate) fn put_field(out: &mut BytesMut, (ns, ne, vs, ve): (u32, u32, u32, u32)) {
    let mut field = [0u8; FIELD];
    field[..4].copy_from_slice(&ns.to_le_bytes());
    field[4..8].copy_from_slice(&ne.to_le_bytes());
    field[8..12].copy_from_slice(&vs.to_le_bytes());
    field[12..].copy_from_slice(&ve.to_le_bytes());
    out.put_slice(&field);
}

impl RawHeaders {
    /// The `count` fields whose table starts `buf` (every range within it, names and
    /// values checked by the parser that found them).
    pub(crate) fn from_table(buf: Bytes, count: usize) -> Self {
        let headers = RawHeaders {
            count: u32::try_from(count).unwrap_or(0),
            buf,
        };
        debug_assert!(headers.buf.len() >= count * FIELD);
        debug_assert!(
            headers
                .fields()
                .all(|f| f.1 <= headers.buf.len() && f.3 <= headers.buf.len())
        );
        headers
    }

    /// The fields' table.
    fn table(&self) -> &[[u8; FIELD]] {
        let bytes = self
            .buf
            .get(..self.count as usize * FIELD)
            .unwrap_or_default();
        bytes.as_chunks::<FIELD>().0
    }

    /// The fields' ranges: (name start, name end, value start, value end).
    fn fields(&self) -> impl Iterator<Item = (usize, usize, usize, usize)> + '_ {
        self.table()
            .iter()
            .map(|f| (offset(f, 0), offset(f, 4), offset(f, 8), offset(f, 12)))
    }

    /// The fields of `map`, in its order (a request that came through hyper, or a test's).
    pub fn from_map(map: &HeaderMap) -> Self {
        let mut text = Vec::new();
        let mut ranges = Vec::with_capacity(map.len());
        for (name, value) in map {
            let ns = text.len();
            text.extend_from_slice(name.as_str().as_bytes());
            let ne = text.len();
            text.extend_from_slice(value.as_bytes());
            ranges.push((ns, ne, text.len()));
        }
        let base = ranges.len() * FIELD;
        let mut buf = BytesMut::with_capacity(base + text.len());
        let mut count = 0;
        for (ns, ne, ve) in ranges {
            let (Ok(ns), Ok(ne), Ok(ve)) = (
                u32::try_from(base + ns),
                u32::try_from(base + ne),
                u32::try_from(base + ve),
            ) else {
                break;
            };
            put_field(&mut buf, (ns, ne, ne, ve));
            count += 1;
        }
        // Fields left out (past 4 GiB) leave their table slots unwritten: pad them.
        buf.resize(base, 0);
        buf.put_slice(&text);
        RawHeaders::from_table(buf.freeze(), count)
    }

    /// The (value start, value end) of the first field named `name` (case-insensitive).
    fn find(&self, name: &str) -> Option<(usize, usize)> {
        let name = name.as_bytes();
        self.table().iter().find_map(|f| {
            let field = self.buf.get(offset(f, 0)..offset(f, 4))?;
            is_name(field, name).then(|| (offset(f, 8), offset(f, 12)))
        })
    }

    /// The first value of `name` (case-insensitive), as bytes.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let (start, end) = self.find(name)?;
        self.buf.get(start..end)
    }

    /// The first value of `name`, as a header value sharing the head's bytes.
    pub fn value(&self, name: &str) -> Option<HeaderValue> {
        let (start, end) = self.find(name)?;
        HeaderValue::from_maybe_shared(self.buf.slice(start..end)).ok()
    }

    /// The first value of `name`, as [`RawHeaders::value`]; a clone of `usual` (no
    /// reference to the head kept, nothing checked) when it is that.
    pub fn value_or(&self, name: &str, usual: &HeaderValue) -> Option<HeaderValue> {
        let (start, end) = self.find(name)?;
        if self.buf.get(start..end) == Some(usual.as_bytes()) {
            return Some(usual.clone());
        }
        HeaderValue::from_maybe_shared(self.buf.slice(start..end)).ok()
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Every field in a `HeaderMap` (values share the head's bytes).
    pub fn to_map(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.len());
        for (ns, ne, vs, ve) in self.fields() {
            if let (Some(name), Some(value)) = (
                self.buf.get(ns..ne),
                self.buf.get(vs..ve).map(|_| self.buf.slice(vs..ve)),
            ) && let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name),
                HeaderValue::from_maybe_shared(value),
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
