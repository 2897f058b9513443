//! JSON Schema (as OpenAI tools and `response_format` carry it) to the subset of OpenAPI
//! schema Gemini takes in `FunctionDeclaration.parameters` and `responseSchema`.
//!
//! Gemini refuses keys it does not know (`additionalProperties`, `$schema`, `$ref`,
//! `const`, most `format`s …). Local references (`#/$defs/…`, `#/definitions/…`) are
//! inlined, `type: [T, "null"]` and `anyOf` with a `null` branch become `nullable`,
//! `oneOf` becomes `anyOf`, a one-branch `allOf` is merged, `const` becomes a one-value
//! `enum`, and every other unknown key is dropped.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// How deep references and nesting may go (a recursive schema cannot be inlined).
const MAX_DEPTH: usize = 32;
/// How many schema nodes a cleaned schema may have once references are inlined (a
/// schema that references one definition many times grows exponentially).
const MAX_NODES: usize = 10_000;

/// Keys Gemini's `Schema` accepts, copied as they are (after cleaning their values).
const KEEP: &[&str] = &[
    "description",
    "title",
    "nullable",
    "maxItems",
    "minItems",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "default",
    "minimum",
    "maximum",
    "propertyOrdering",
];

/// Why a schema cannot be given to Gemini.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// A `$ref` that is not a local definition.
    #[error("unsupported $ref `{0}` (only local #/$defs and #/definitions references)")]
    Ref(String),
    /// Recursion through references, or nesting past the limit.
    #[error("schema nested deeper than {MAX_DEPTH} levels (a recursive $ref?)")]
    TooDeep,
    /// Too many nodes once references are inlined.
    #[error("schema larger than {MAX_NODES} nodes once its $refs are inlined")]
    TooLarge,
}

/// `schema` cleaned for Gemini, as a JSON tree (the tests' and tools' view of
/// [`clean_raw`]).
pub fn clean(schema: &Value) -> Result<Value, SchemaError> {
    let text = schema.to_string();
    let Ok(raw) = serde_json::from_str::<&RawValue>(&text) else {
        return Ok(Value::Object(serde_json::Map::new()));
    };
    let cleaned = clean_raw(raw)?;
    Ok(serde_json::to_value(&cleaned).unwrap_or(Value::Null))
}

/// `schema` (JSON text) cleaned for Gemini, borrowing from it: objects are read one level
/// at a time, and values copied as they are (descriptions, enums, bounds) are never
/// parsed, only passed on as written.
pub fn clean_raw(schema: &RawValue) -> Result<Schema<'_>, SchemaError> {
    let root = Fields::of(schema);
    let defs = root
        .as_ref()
        .and_then(|r| r.get("$defs").or_else(|| r.get("definitions")))
        .and_then(Fields::of);
    let mut budget = MAX_NODES;
    clean_at(root, defs.as_ref(), 0, &mut budget)
}

/// True for a schema (JSON text) with at least one property, or a reference or union to
/// resolve: Gemini refuses an object schema without properties.
pub fn has_properties(schema: &RawValue) -> bool {
    let Some(root) = Fields::of(schema) else {
        return false;
    };
    root.get("properties")
        .and_then(Fields::of)
        .is_some_and(|p| !p.0.is_empty())
        || root.get("$ref").is_some()
        || root.get("anyOf").is_some()
}

/// A JSON object read one level deep: its keys, and its values as written.
#[derive(Debug, Default)]
struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Fields<'a> {
    /// `raw` as an object, or `None` when it is not one.
    fn of(raw: &'a RawValue) -> Option<Self> {
        if !raw.get().starts_with('{') {
            return None;
        }
        serde_json::from_str(raw.get()).ok()
    }

    /// The value of `key` (the last one, as a JSON reader keeps it).
    fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Fields<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Fields<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(4).min(64));
                while let Some(Key(k)) = map.next_key()? {
                    fields.push((k, map.next_value::<&'de RawValue>()?));
                }
                Ok(Fields(fields))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Text::deserialize(d).map(|t| Key(t.0))
    }
}

/// A JSON string, borrowed when it has no escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// The string `raw` holds, if it is one.
fn text(raw: &RawValue) -> Option<Cow<'_, str>> {
    if !raw.get().starts_with('"') {
        return None;
    }
    serde_json::from_str::<Text<'_>>(raw.get())
        .ok()
        .map(|t| t.0)
}

/// The items of `raw`, if it is an array.
fn items(raw: &RawValue) -> Option<Vec<&RawValue>> {
    struct Items<'a>(Vec<&'a RawValue>);
    impl<'de: 'a, 'a> Deserialize<'de> for Items<'a> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V<'a>(PhantomData<&'a ()>);
            impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
                type Value = Items<'a>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a JSON array")
                }
                fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
                    let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(4).min(64));
                    while let Some(item) = seq.next_element::<&'de RawValue>()? {
                        items.push(item);
                    }
                    Ok(Items(items))
                }
            }
            d.deserialize_seq(V(PhantomData))
        }
    }
    if !raw.get().starts_with('[') {
        return None;
    }
    serde_json::from_str::<Items<'_>>(raw.get())
        .ok()
        .map(|i| i.0)
}

/// A cleaned schema: an object whose keys are in the order they were set (a key set
/// again keeps its place and takes the new value).
#[derive(Debug, Default)]
pub struct Schema<'a>(Vec<(Cow<'a, str>, Node<'a>)>);

/// A value of a cleaned schema.
#[derive(Debug)]
enum Node<'a> {
    /// Copied as written.
    Raw(&'a RawValue),
    /// A string.
    Str(Cow<'a, str>),
    /// `true` (`nullable`).
    True,
    /// A cleaned schema.
    Schema(Schema<'a>),
    /// A list (`anyOf`, `required`, `enum`).
    List(Vec<Node<'a>>),
}

impl<'a> Schema<'a> {
    fn insert(&mut self, key: impl Into<Cow<'a, str>>, value: Node<'a>) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    fn get(&self, key: &str) -> Option<&Node<'a>> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut Node<'a>> {
        self.0.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// True when the schema has no keys.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keeps the last value of each key (properties of a schema that repeats a name).
    fn dedupe(&mut self) {
        if self.0.len() < 2 {
            return;
        }
        let mut seen: HashSet<Cow<'a, str>> = HashSet::with_capacity(self.0.len());
        let mut kept: Vec<(Cow<'a, str>, Node<'a>)> = Vec::with_capacity(self.0.len());
        for (k, v) in std::mem::take(&mut self.0).into_iter().rev() {
            if seen.insert(k.clone()) {
                kept.push((k, v));
            }
        }
        kept.reverse();
        self.0 = kept;
    }
}

impl Node<'_> {
    /// The string this node holds, if it is one.
    fn as_str(&self) -> Option<Cow<'_, str>> {
        match self {
            Node::Raw(raw) => text(raw),
            Node::Str(s) => Some(Cow::Borrowed(s)),
            _ => None,
        }
    }

    /// Same JSON value (strings compared as read, other raw values as written).
    fn same(&self, other: &Node<'_>) -> bool {
        match (self.as_str(), other.as_str()) {
            (Some(a), Some(b)) => a == b,
            _ => match (self, other) {
                (Node::Raw(a), Node::Raw(b)) => a.get() == b.get(),
                _ => false,
            },
        }
    }
}

impl Serialize for Schema<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Serialize for Node<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Raw(raw) => raw.serialize(s),
            Node::Str(t) => s.serialize_str(t),
            Node::True => s.serialize_bool(true),
            Node::Schema(schema) => schema.serialize(s),
            Node::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
        }
    }
}

fn clean_node<'a>(
    raw: &'a RawValue,
    defs: Option<&Fields<'a>>,
    depth: usize,
    budget: &mut usize,
) -> Result<Schema<'a>, SchemaError> {
    clean_at(Fields::of(raw), defs, depth, budget)
}

fn clean_at<'a>(
    obj: Option<Fields<'a>>,
    defs: Option<&Fields<'a>>,
    depth: usize,
    budget: &mut usize,
) -> Result<Schema<'a>, SchemaError> {
    if depth > MAX_DEPTH {
        return Err(SchemaError::TooDeep);
    }
    *budget = budget.checked_sub(1).ok_or(SchemaError::TooLarge)?;
    let Some(obj) = obj else {
        // `true`/`false` schemas and junk: an unconstrained schema.
        return Ok(Schema::default());
    };
    if let Some(reference) = obj.get("$ref").and_then(text) {
        let name = reference
            .strip_prefix("#/$defs/")
            .or_else(|| reference.strip_prefix("#/definitions/"))
            .ok_or_else(|| SchemaError::Ref(reference.clone().into_owned()))?;
        let target = defs
            .and_then(|d| d.get(name))
            .ok_or_else(|| SchemaError::Ref(reference.clone().into_owned()))?;
        let mut out = clean_node(target, defs, depth + 1, budget)?;
        // Sibling keywords of a `$ref` (a description, usually) still apply.
        if let Some(d) = obj.get("description") {
            out.insert("description", Node::Raw(d));
        }
        return Ok(out);
    }

    let mut out = Schema::default();
    // `allOf` with one branch is that branch; with several, their keys merged.
    if let Some(all) = obj.get("allOf").and_then(items) {
        for branch in all {
            let b = clean_node(branch, defs, depth + 1, budget)?;
            merge(&mut out, b);
        }
    }

    let mut nullable = false;
    if let Some(t) = obj.get("type") {
        if t.get().starts_with('"') {
            out.insert("type", Node::Raw(t));
        } else if let Some(types) = items(t) {
            let non_null: Vec<&RawValue> = types
                .iter()
                .copied()
                .filter(|t| text(t).as_deref() != Some("null"))
                .collect();
            nullable = non_null.len() < types.len();
            match non_null.as_slice() {
                [] => {}
                [one] => out.insert("type", Node::Raw(one)),
                many => {
                    let branches = many
                        .iter()
                        .map(|t| Node::Schema(Schema(vec![(Cow::Borrowed("type"), Node::Raw(t))])))
                        .collect();
                    out.insert("anyOf", Node::List(branches));
                }
            }
        }
    }

    let any_of = obj.get("anyOf").or_else(|| obj.get("oneOf"));
    if let Some(branches) = any_of.and_then(items) {
        let mut kept = Vec::with_capacity(branches.len());
        for b in branches {
            let fields = Fields::of(b);
            let is_null = fields
                .as_ref()
                .and_then(|f| f.get("type"))
                .and_then(text)
                .as_deref()
                == Some("null");
            if is_null {
                nullable = true;
                continue;
            }
            kept.push(clean_at(fields, defs, depth + 1, budget)?);
        }
        match kept.len() {
            0 => {}
            1 => {
                if let Some(only) = kept.pop() {
                    merge(&mut out, only);
                }
            }
            _ => out.insert(
                "anyOf",
                Node::List(kept.into_iter().map(Node::Schema).collect()),
            ),
        }
    }

    for key in KEEP {
        if let Some(v) = obj.get(key) {
            out.insert(*key, Node::Raw(v));
        }
    }

    if let Some(props) = obj.get("properties").and_then(Fields::of) {
        let mut cleaned = Schema(Vec::with_capacity(props.0.len()));
        for (name, p) in props.0 {
            cleaned
                .0
                .push((name, Node::Schema(clean_node(p, defs, depth + 1, budget)?)));
        }
        cleaned.dedupe();
        if let Some(required) = obj.get("required").and_then(items) {
            let names: HashSet<&str> = cleaned.0.iter().map(|(k, _)| k.as_ref()).collect();
            let required: Vec<Node<'a>> = required
                .into_iter()
                .filter(|r| text(r).is_some_and(|r| names.contains(r.as_ref())))
                .map(Node::Raw)
                .collect();
            if !required.is_empty() {
                out.insert("required", Node::List(required));
            }
        }
        if !cleaned.is_empty() {
            out.insert("properties", Node::Schema(cleaned));
        }
    }
    if let Some(items) = obj.get("items") {
        let cleaned = clean_node(items, defs, depth + 1, budget)?;
        out.insert("items", Node::Schema(cleaned));
    }

    // Gemini's `enum` is for strings only.
    let enum_values = match obj.get("enum") {
        Some(e) => items(e),
        None => obj.get("const").map(|c| vec![c]),
    };
    if let Some(values) = enum_values
        && !values.is_empty()
        && values.iter().all(|v| v.get().starts_with('"'))
    {
        out.insert(
            "enum",
            Node::List(values.into_iter().map(Node::Raw).collect()),
        );
        if out.get("type").is_none() {
            out.insert("type", Node::Str(Cow::Borrowed("string")));
        }
    }

    if let Some(format) = obj.get("format").and_then(text) {
        let ty = out.get("type").and_then(Node::as_str);
        let supported = matches!(
            (ty.as_deref(), format.as_ref()),
            (Some("string"), "enum" | "date-time")
                | (Some("integer"), "int32" | "int64")
                | (Some("number"), "float" | "double")
        );
        if supported {
            out.insert("format", Node::Str(format));
        }
    }

    if nullable {
        out.insert("nullable", Node::True);
    }
    Ok(out)
}

/// Merges `from` into `into`: properties and required lists are united, other keys of
/// `from` win.
fn merge<'a>(into: &mut Schema<'a>, from: Schema<'a>) {
    for (k, v) in from.0 {
        match (k.as_ref(), into.get_mut(&k), v) {
            ("properties", Some(Node::Schema(a)), Node::Schema(b)) => {
                for (name, p) in b.0 {
                    a.insert(name, p);
                }
            }
            ("required", Some(Node::List(a)), Node::List(b)) => {
                for r in b {
                    if !a.iter().any(|x| x.same(&r)) {
                        a.push(r);
                    }
                }
            }
            (_, _, v) => into.insert(k, v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn drops_unknown_keys_and_inlines_refs() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "city": {"type": "string", "format": "uri", "description": "City"},
                "unit": {"anyOf": [{"$ref": "#/$defs/Unit"}, {"type": "null"}]},
                "tags": {"type": ["array", "null"], "items": {"type": "string", "const": "x"}},
                "when": {"type": "string", "format": "date-time"}
            },
            "required": ["city", "missing"],
            "$defs": {"Unit": {"type": "string", "enum": ["c", "f"]}}
        });
        let cleaned = clean(&schema).expect("clean");
        assert_eq!(
            cleaned,
            json!({
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City"},
                    "unit": {"type": "string", "enum": ["c", "f"], "nullable": true},
                    "tags": {"type": "array", "nullable": true,
                             "items": {"type": "string", "enum": ["x"]}},
                    "when": {"type": "string", "format": "date-time"}
                },
                "required": ["city"]
            })
        );
    }

    #[test]
    fn recursive_refs_are_an_error() {
        let schema = json!({
            "$ref": "#/$defs/Node",
            "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}}
        });
        assert_eq!(clean(&schema), Err(SchemaError::TooDeep));
        let remote = json!({"$ref": "https://example.com/s.json"});
        assert!(matches!(clean(&remote), Err(SchemaError::Ref(_))));
        // Two references to the same definition at every level: 2^depth nodes.
        let mut defs = serde_json::Map::new();
        for i in 0..15 {
            let next = format!("#/$defs/D{}", i + 1);
            defs.insert(
                format!("D{i}"),
                json!({"type": "object", "properties": {"a": {"$ref": next}, "b": {"$ref": next}}}),
            );
        }
        defs.insert("D15".to_owned(), json!({"type": "string"}));
        let wide = json!({"$ref": "#/$defs/D0", "$defs": defs});
        assert_eq!(clean(&wide), Err(SchemaError::TooLarge));
    }

    #[test]
    fn values_pass_through_as_written_and_the_last_duplicate_wins() {
        let text = r#"{"type": "object", "additionalProperties": false, "properties": {
            "n": {"type": "number", "minimum": 1.50, "description": "a \"quoted\" one"},
            "s": {"type": "integer"},
            "s": {"type": "string", "enum": ["a", "b"]}
        }, "required": ["s", "gone", "n"]}"#;
        let raw: &RawValue = serde_json::from_str(text).expect("json");
        assert!(has_properties(raw));
        let cleaned = clean_raw(raw).expect("clean");
        let out = serde_json::to_string(&cleaned).expect("write");
        assert_eq!(
            out,
            r#"{"type":"object","required":["s","n"],"properties":{"n":{"type":"number","description":"a \"quoted\" one","minimum":1.50},"s":{"type":"string","enum":["a","b"]}}}"#
        );
        let empty: &RawValue =
            serde_json::from_str(r#"{"type": "object", "properties": {}}"#).expect("json");
        assert!(!has_properties(empty));
    }
}
