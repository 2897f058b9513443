//! JSON Schema (as OpenAI tools and `response_format` carry it) to the subset of OpenAPI
//! schema Gemini takes in `FunctionDeclaration.parameters` and `responseSchema`.
//!
//! Gemini refuses keys it does not know (`additionalProperties`, `$schema`, `$ref`,
//! `const`, most `format`s …). Local references (`#/$defs/…`, `#/definitions/…`) are
//! inlined, `type: [T, "null"]` and `anyOf` with a `null` branch become `nullable`,
//! `oneOf` becomes `anyOf`, a one-branch `allOf` is merged, `const` becomes a one-value
//! `enum`, and every other unknown key is dropped.

use serde_json::{Map, Value};

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

/// `schema` cleaned for Gemini.
pub fn clean(schema: &Value) -> Result<Value, SchemaError> {
    let root = schema.as_object();
    let defs = root.and_then(|r| r.get("$defs").or_else(|| r.get("definitions")));
    let mut budget = MAX_NODES;
    clean_at(schema, defs, 0, &mut budget)
}

fn clean_at(
    schema: &Value,
    defs: Option<&Value>,
    depth: usize,
    budget: &mut usize,
) -> Result<Value, SchemaError> {
    if depth > MAX_DEPTH {
        return Err(SchemaError::TooDeep);
    }
    *budget = budget.checked_sub(1).ok_or(SchemaError::TooLarge)?;
    let Some(obj) = schema.as_object() else {
        // `true`/`false` schemas and junk: an unconstrained schema.
        return Ok(Value::Object(Map::new()));
    };
    if let Some(reference) = obj.get("$ref").and_then(Value::as_str) {
        let name = reference
            .strip_prefix("#/$defs/")
            .or_else(|| reference.strip_prefix("#/definitions/"))
            .ok_or_else(|| SchemaError::Ref(reference.to_owned()))?;
        let target = defs
            .and_then(|d| d.get(name))
            .ok_or_else(|| SchemaError::Ref(reference.to_owned()))?;
        let mut out = clean_at(target, defs, depth + 1, budget)?;
        // Sibling keywords of a `$ref` (a description, usually) still apply.
        if let (Value::Object(out), Some(d)) = (&mut out, obj.get("description")) {
            out.insert("description".to_owned(), d.clone());
        }
        return Ok(out);
    }

    let mut out = Map::new();
    // `allOf` with one branch is that branch; with several, their keys merged.
    if let Some(all) = obj.get("allOf").and_then(Value::as_array) {
        for branch in all {
            if let Value::Object(b) = clean_at(branch, defs, depth + 1, budget)? {
                merge(&mut out, b);
            }
        }
    }

    let mut nullable = false;
    match obj.get("type") {
        Some(Value::String(t)) => {
            out.insert("type".to_owned(), Value::String(t.clone()));
        }
        Some(Value::Array(types)) => {
            let non_null: Vec<&Value> = types
                .iter()
                .filter(|t| t.as_str() != Some("null"))
                .collect();
            nullable = non_null.len() < types.len();
            match non_null.as_slice() {
                [] => {}
                [one] => {
                    out.insert("type".to_owned(), (*one).clone());
                }
                many => {
                    let branches = many
                        .iter()
                        .map(|t| {
                            let mut b = Map::new();
                            b.insert("type".to_owned(), (*t).clone());
                            Value::Object(b)
                        })
                        .collect();
                    out.insert("anyOf".to_owned(), Value::Array(branches));
                }
            }
        }
        _ => {}
    }

    let any_of = obj.get("anyOf").or_else(|| obj.get("oneOf"));
    if let Some(branches) = any_of.and_then(Value::as_array) {
        let mut kept = Vec::with_capacity(branches.len());
        for b in branches {
            if b.get("type").and_then(Value::as_str) == Some("null") {
                nullable = true;
                continue;
            }
            kept.push(clean_at(b, defs, depth + 1, budget)?);
        }
        match kept.len() {
            0 => {}
            1 => {
                if let Some(Value::Object(only)) = kept.pop() {
                    merge(&mut out, only);
                }
            }
            _ => {
                out.insert("anyOf".to_owned(), Value::Array(kept));
            }
        }
    }

    for key in KEEP {
        if let Some(v) = obj.get(*key) {
            out.insert((*key).to_owned(), v.clone());
        }
    }

    if let Some(Value::Object(props)) = obj.get("properties") {
        let mut cleaned = Map::new();
        for (name, p) in props {
            cleaned.insert(name.clone(), clean_at(p, defs, depth + 1, budget)?);
        }
        if let Some(Value::Array(required)) = obj.get("required") {
            let required: Vec<Value> = required
                .iter()
                .filter(|r| r.as_str().is_some_and(|r| cleaned.contains_key(r)))
                .cloned()
                .collect();
            if !required.is_empty() {
                out.insert("required".to_owned(), Value::Array(required));
            }
        }
        if !cleaned.is_empty() {
            out.insert("properties".to_owned(), Value::Object(cleaned));
        }
    }
    if let Some(items) = obj.get("items") {
        out.insert(
            "items".to_owned(),
            clean_at(items, defs, depth + 1, budget)?,
        );
    }

    // Gemini's `enum` is for strings only.
    let enum_values = obj
        .get("enum")
        .cloned()
        .or_else(|| obj.get("const").map(|c| Value::Array(vec![c.clone()])));
    if let Some(Value::Array(values)) = enum_values
        && !values.is_empty()
        && values.iter().all(Value::is_string)
    {
        out.insert("enum".to_owned(), Value::Array(values));
        out.entry("type")
            .or_insert_with(|| Value::String("string".to_owned()));
    }

    if let Some(format) = obj.get("format").and_then(Value::as_str) {
        let ty = out.get("type").and_then(Value::as_str);
        let supported = matches!(
            (ty, format),
            (Some("string"), "enum" | "date-time")
                | (Some("integer"), "int32" | "int64")
                | (Some("number"), "float" | "double")
        );
        if supported {
            out.insert("format".to_owned(), Value::String(format.to_owned()));
        }
    }

    if nullable {
        out.insert("nullable".to_owned(), Value::Bool(true));
    }
    Ok(Value::Object(out))
}

/// Merges `from` into `into`: properties and required lists are united, other keys of
/// `from` win.
fn merge(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (k, v) in from {
        match (k.as_str(), into.get_mut(&k), v) {
            ("properties", Some(Value::Object(a)), Value::Object(b)) => a.extend(b),
            ("required", Some(Value::Array(a)), Value::Array(b)) => {
                for r in b {
                    if !a.contains(&r) {
                        a.push(r);
                    }
                }
            }
            (_, _, v) => {
                into.insert(k, v);
            }
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
}
