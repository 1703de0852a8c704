//! A topic's JSON Schema (draft 2020-12), inferred from its sample body
//! (the body as delivered: every key it shows is required, with the type it
//! has there) and tightened by hand where the documents say more (an
//! enumeration, a value that may be null), through `overrides`: an object
//! of path to schema keywords, merged at that place. A path is dotted keys
//! from the body's root, `[]` standing for an array's items
//! (`payload.instructors[].id`); `""` is the root; `*.name` is every key
//! `name` at any depth (none is not an error).
//!
//! Stored in `webhook.topics.event_schema`, a generated column, so it is
//! always the one of the current sample and overrides.

use crate::error::{Result, WebhookError};
use serde_json::{json, Map, Value};

/// The dialect every schema declares.
pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// Deepest sample inferred (deeper values are left unconstrained).
const MAX_DEPTH: usize = 32;

/// Integer keys whose values may also be fractional in other bodies.
const FRACTIONAL_KEYS: &[&str] = &[
    "price",
    "amount",
    "total",
    "cost",
    "fee",
    "charge",
    "discount",
    "tax",
    "grade",
    "score",
    "percent",
    "percentage",
    "points",
    "rate",
];

/// The schema of a topic: inferred from `sample`, with `overrides` applied.
pub fn event_schema(
    topic: &str,
    title: &str,
    description: &str,
    sample: &Value,
    overrides: Option<&Value>,
) -> Result<Value> {
    let mut schema = infer(sample, "", 0);
    if is_row_event(sample) {
        nullable_row_columns(&mut schema);
    }
    if let Some(overrides) = overrides.filter(|o| !o.is_null()) {
        let map = overrides.as_object().ok_or_else(|| {
            WebhookError::invalid(
                "schema_overrides",
                "must be a JSON object of path to schema keywords, e.g. {\"payload.payment_type\": {\"enum\": [\"free\", \"paid\"]}}",
            )
        })?;
        for (path, keywords) in map {
            apply(&mut schema, path, keywords)?;
        }
    }
    let mut top = Map::new();
    top.insert("$schema".into(), DIALECT.into());
    top.insert(
        "$id".into(),
        format!("urn:webhook-emitter:topic:{topic}").into(),
    );
    top.insert("title".into(), title.into());
    top.insert("description".into(), description.into());
    if let Value::Object(inner) = schema {
        top.extend(inner);
    }
    Ok(Value::Object(top))
}

/// A row event (`webhook.watch`): its sample row shows each column with a
/// value, but a column may be NULL, and `old_row`/`changed_columns` are
/// null for an insert.
fn is_row_event(sample: &Value) -> bool {
    [
        "operation",
        "schema",
        "table",
        "row",
        "old_row",
        "changed_columns",
    ]
    .iter()
    .all(|k| sample.get(k).is_some())
}

/// In a row event's schema, every column of `row` and `old_row` may be
/// null, and so may `old_row` and `changed_columns`.
fn nullable_row_columns(schema: &mut Value) {
    let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    let mut row = properties.get("row").cloned().unwrap_or_else(|| json!({}));
    if let Some(columns) = row.get_mut("properties").and_then(Value::as_object_mut) {
        for column in columns.values_mut() {
            // The sample shows a column's zero value: an integer there
            // may be any number in a row (numeric, real).
            if let Some(t) = column.get("type").cloned() {
                let t = if t == "integer" { json!("number") } else { t };
                if let Some(map) = column.as_object_mut() {
                    map.insert("type".into(), json!([t, "null"]));
                }
            }
        }
    }
    properties.insert("row".into(), row.clone());
    if let Some(map) = row.as_object_mut() {
        map.insert("type".into(), json!(["object", "null"]));
    }
    properties.insert("old_row".into(), row);
    properties.insert(
        "changed_columns".into(),
        json!({"type": ["array", "null"], "items": {"type": "string"}}),
    );
}

fn infer(value: &Value, key: &str, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return json!({});
    }
    match value {
        Value::Object(map) => {
            let properties: Map<String, Value> = map
                .iter()
                .map(|(k, v)| (k.clone(), infer(v, k, depth + 1)))
                .collect();
            let required: Vec<Value> = map.keys().map(|k| Value::String(k.clone())).collect();
            json!({"type": "object", "properties": properties, "required": required})
        }
        Value::Array(items) => match items.first() {
            Some(first) => json!({"type": "array", "items": infer(first, key, depth + 1)}),
            None => json!({"type": "array"}),
        },
        Value::String(s) if is_date_time(s) => json!({"type": "string", "format": "date-time"}),
        Value::String(s) if is_date(s) => json!({"type": "string", "format": "date"}),
        Value::String(_) => json!({"type": "string"}),
        Value::Number(n) if n.is_i64() || n.is_u64() => {
            let key = key.to_ascii_lowercase();
            if FRACTIONAL_KEYS
                .iter()
                .any(|k| key == *k || key.ends_with(&format!("_{k}")))
            {
                json!({"type": "number"})
            } else {
                json!({"type": "integer"})
            }
        }
        Value::Number(_) => json!({"type": "number"}),
        Value::Bool(_) => json!({"type": "boolean"}),
        // The sample does not say what a null stands for: any value.
        Value::Null => json!({}),
    }
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `YYYY-MM-DD`.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && digits(&s[0..4])
        && b[4] == b'-'
        && digits(&s[5..7])
        && b[7] == b'-'
        && digits(&s[8..10])
}

/// RFC 3339: `YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)`.
fn is_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 20 || !is_date(&s[..10]) || !matches!(b[10], b'T' | b't') {
        return false;
    }
    let time = &s[11..];
    let tb = time.as_bytes();
    if tb.len() < 9
        || !digits(&time[0..2])
        || tb[2] != b':'
        || !digits(&time[3..5])
        || tb[5] != b':'
        || !digits(&time[6..8])
    {
        return false;
    }
    let mut rest = &time[8..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest.as_bytes() {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', ..] => {
            rest.len() == 6
                && digits(&rest[1..3])
                && rest.as_bytes()[3] == b':'
                && digits(&rest[4..6])
        }
        _ => false,
    }
}

/// Merge `keywords` into every property named `name`, at any depth.
fn apply_everywhere(schema: &mut Value, name: &str, add: &Map<String, Value>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        for (key, property) in properties.iter_mut() {
            if key == name {
                if let Some(target) = property.as_object_mut() {
                    target.extend(add.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
            apply_everywhere(property, name, add, depth + 1);
        }
    }
    if let Some(items) = schema.get_mut("items") {
        apply_everywhere(items, name, add, depth + 1);
    }
}

/// Merge `keywords` into the schema at `path`.
fn apply(schema: &mut Value, path: &str, keywords: &Value) -> Result<()> {
    let field = "schema_overrides";
    if let Some(name) = path.strip_prefix("*.") {
        let add = keywords.as_object().ok_or_else(|| {
            WebhookError::invalid(
                field,
                format!("{path}: must map to an object of schema keywords"),
            )
        })?;
        apply_everywhere(schema, name, add, 0);
        return Ok(());
    }
    let mut at = schema;
    if !path.is_empty() {
        for step in path.split('.') {
            let (name, items) = match step.strip_suffix("[]") {
                Some(name) => (name, true),
                None => (step, false),
            };
            if !name.is_empty() {
                at = at
                    .get_mut("properties")
                    .and_then(|p| p.get_mut(name))
                    .ok_or_else(|| {
                        WebhookError::invalid(
                            field,
                            format!("{path}: {name} is not a key of the sample body there"),
                        )
                    })?;
            }
            if items {
                at = at.get_mut("items").ok_or_else(|| {
                    WebhookError::invalid(
                        field,
                        format!("{path}: {name} is not a non-empty array in the sample body"),
                    )
                })?;
            }
        }
    }
    let (Some(target), Some(add)) = (at.as_object_mut(), keywords.as_object()) else {
        return Err(WebhookError::invalid(
            field,
            format!("{path}: must map to an object of schema keywords"),
        ));
    };
    for (k, v) in add {
        target.insert(k.clone(), v.clone());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_become_schemas_with_every_key_required() {
        let sample = json!({"id": "01H", "payload": {"user_id": 7, "price": 100, "at": "2024-02-14T10:30:00.000Z",
                             "day": "2024-02-14", "tags": [{"n": "x"}], "avatar_url": null, "ok": true}});
        let s = event_schema("user.created", "User Created", "d", &sample, None).unwrap();
        assert_eq!(s["$schema"], DIALECT);
        assert_eq!(s["required"], json!(["id", "payload"]));
        let p = &s["properties"]["payload"]["properties"];
        assert_eq!(p["user_id"], json!({"type": "integer"}));
        assert_eq!(p["price"], json!({"type": "number"}));
        assert_eq!(p["at"]["format"], "date-time");
        assert_eq!(p["day"]["format"], "date");
        assert_eq!(p["tags"]["items"]["required"], json!(["n"]));
        assert_eq!(p["avatar_url"], json!({}));
    }

    #[test]
    fn overrides_tighten_at_their_path_and_name_a_bad_one() {
        let sample = json!({"payload": {"payment_type": "paid", "items": [{"kind": "a"}]}});
        let overrides = json!({"payload.payment_type": {"enum": ["free", "paid"]},
                               "payload.items[].kind": {"enum": ["a", "b"]}});
        let s = event_schema("t", "T", "d", &sample, Some(&overrides)).unwrap();
        let p = &s["properties"]["payload"]["properties"];
        assert_eq!(p["payment_type"]["enum"], json!(["free", "paid"]));
        assert_eq!(
            p["items"]["items"]["properties"]["kind"]["enum"],
            json!(["a", "b"])
        );
        let bad = event_schema(
            "t",
            "T",
            "d",
            &sample,
            Some(&json!({"payload.nope": {"enum": [1]}})),
        );
        assert!(bad
            .unwrap_err()
            .to_string()
            .starts_with("schema_overrides: payload.nope: nope is not a key"));
    }

    #[test]
    fn a_row_event_allows_null_columns_and_any_number() {
        let sample = json!({"operation": "insert", "schema": "public", "table": "notes",
                            "row": {"id": 0, "note": ""}, "old_row": null, "changed_columns": null});
        let s = event_schema("public.notes.insert", "t", "d", &sample, None).unwrap();
        let row = &s["properties"]["row"];
        assert_eq!(row["properties"]["id"]["type"], json!(["number", "null"]));
        assert_eq!(row["properties"]["note"]["type"], json!(["string", "null"]));
        assert_eq!(
            s["properties"]["old_row"]["type"],
            json!(["object", "null"])
        );
    }

    #[test]
    fn date_times_are_rfc_3339() {
        assert!(is_date_time("2024-02-14T10:30:00Z"));
        assert!(is_date_time("2024-02-14T10:30:00.123+05:30"));
        assert!(!is_date_time("2024-02-14 10:30:00"));
        assert!(!is_date_time("2024-02-14T10:30:00"));
        assert!(!is_date("2024-2-14"));
    }
}
