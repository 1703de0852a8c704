//! Custom body templates (BrainCert's "Webhook Body").
//!
//! A template is a JSON document written by an admin. Any string in it may
//! hold `{{path}}` placeholders:
//! - a string that is exactly one placeholder is replaced by the value at
//!   that path and keeps its JSON type (number, object, array, null, ...);
//! - placeholders inside a longer string are replaced by the value's text.
//!
//! A path is dot-separated keys into the event body (`payload.user.email`),
//! with numbers indexing arrays (`payload.groups.0.group_name`). Four names
//! starting with `$` refer to the event itself: `$event_id`, `$topic`,
//! `$tenant_id` and `$body` (the whole body).
//!
//! A template is at most [`MAX_TEMPLATE_BYTES`] long and [`MAX_DEPTH`] levels
//! deep, so the recursive walks below are bounded.

use super::{too_deep, MAX_DEPTH, MAX_INPUT_BYTES};
use crate::error::{Result, WebhookError};
use serde_json::{Map, Value};

/// Where a placeholder takes its value from.
#[derive(Debug, Clone, PartialEq)]
pub enum Path {
    EventId,
    Topic,
    TenantId,
    WholeBody,
    /// Keys (or array indexes) into the event body.
    Body(Vec<String>),
}

/// A piece of a string that mixes text and placeholders.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Value(Path),
}

/// A parsed template, ready to render many times.
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    Literal(Value),
    Whole(Path),
    Interpolated(Vec<Part>),
    Array(Vec<Template>),
    Object(Vec<(String, Template)>),
}

/// What a template is rendered against.
pub struct RenderContext<'a> {
    pub event_id: &'a str,
    pub topic: &'a str,
    pub tenant_id: &'a str,
    pub body: &'a Value,
}

const FIELD: &str = "body_template";

/// Longest template text accepted.
pub const MAX_TEMPLATE_BYTES: usize = 1024 * 1024;

impl Template {
    /// Parse a template, reporting the first problem with its location.
    pub fn parse(text: &str) -> Result<Template> {
        if text.len() > MAX_TEMPLATE_BYTES {
            return Err(WebhookError::invalid(
                FIELD,
                format!(
                    "is {} bytes; at most {MAX_TEMPLATE_BYTES} bytes are allowed",
                    text.len()
                ),
            ));
        }
        let value: Value = serde_json::from_str(text).map_err(|e| {
            WebhookError::invalid(
                FIELD,
                format!("must be a JSON document with {{{{path}}}} placeholders in strings; {e}"),
            )
        })?;
        Self::from_value(value, 0)
    }

    /// Recursive: `depth` is checked although serde_json already limits it,
    /// so a value built any other way is bounded too.
    fn from_value(value: Value, depth: usize) -> Result<Template> {
        if depth > MAX_DEPTH {
            return Err(too_deep(FIELD));
        }
        Ok(match value {
            Value::String(s) => parse_string(&s)?,
            Value::Array(items) => Template::Array(
                items
                    .into_iter()
                    .map(|v| Self::from_value(v, depth + 1))
                    .collect::<Result<_>>()?,
            ),
            Value::Object(map) => Template::Object(
                map.into_iter()
                    .map(|(k, v)| Ok((k, Self::from_value(v, depth + 1)?)))
                    .collect::<Result<_>>()?,
            ),
            other => Template::Literal(other),
        })
    }

    /// Every body path the template reads, in document order. Walks with
    /// its own stack: no recursion, whatever the depth.
    pub fn body_paths(&self) -> Vec<&[String]> {
        let mut out: Vec<&[String]> = Vec::new();
        let mut todo = vec![self];
        while let Some(t) = todo.pop() {
            match t {
                Template::Whole(Path::Body(p)) => out.push(p),
                Template::Interpolated(parts) => {
                    for part in parts {
                        if let Part::Value(Path::Body(p)) = part {
                            out.push(p);
                        }
                    }
                }
                Template::Array(items) => todo.extend(items.iter().rev()),
                Template::Object(fields) => todo.extend(fields.iter().rev().map(|(_, t)| t)),
                _ => {}
            }
        }
        out
    }

    /// Reject placeholders that can never resolve: each body path must exist
    /// in the sample body of at least one of the webhook's topics.
    pub fn check_paths(&self, samples: &[(String, Value)]) -> Result<()> {
        for path in self.body_paths() {
            if !samples.iter().any(|(_, body)| lookup(body, path).is_some()) {
                let topics: Vec<&str> = samples.iter().map(|(t, _)| t.as_str()).collect();
                return Err(WebhookError::invalid(
                    FIELD,
                    format!(
                        "placeholder {{{{{}}}}} matches no field of the body of topic(s) {}; \
                         see SELECT sample_body FROM webhook.topics for the available paths",
                        path.join("."),
                        topics.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Render against an event. Paths that do not resolve give null (whole
    /// values) or nothing (inside text), so a receiver always gets a body.
    /// The output is capped as it grows at [`MAX_INPUT_BYTES`]: a small
    /// template repeating `{{$body}}` must not allocate gigabytes.
    pub fn render(&self, ctx: &RenderContext) -> Result<Value> {
        let mut budget = MAX_INPUT_BYTES;
        self.render_at(ctx, 0, &mut budget)
    }

    /// Recursive over the template, so bounded by [`MAX_DEPTH`]; `budget`
    /// is what the output may still grow by, in (approximate) bytes of JSON.
    fn render_at(&self, ctx: &RenderContext, depth: usize, budget: &mut usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(too_deep(FIELD));
        }
        Ok(match self {
            Template::Literal(v) => {
                spend(budget, json_size(v, *budget))?;
                v.clone()
            }
            Template::Whole(path) => match resolve_ref(path, ctx) {
                Resolved::Borrowed(v) => {
                    spend(budget, json_size(v, *budget))?;
                    v.clone()
                }
                Resolved::Owned(v) => {
                    spend(budget, json_size(&v, *budget))?;
                    v
                }
                Resolved::Missing => Value::Null,
            },
            Template::Interpolated(parts) => {
                let mut s = String::new();
                for part in parts {
                    let piece = match part {
                        Part::Text(t) => std::borrow::Cow::Borrowed(t.as_str()),
                        Part::Value(p) => match resolve_ref(p, ctx) {
                            Resolved::Borrowed(Value::String(v)) => {
                                std::borrow::Cow::Borrowed(v.as_str())
                            }
                            Resolved::Owned(Value::String(v)) => std::borrow::Cow::Owned(v),
                            Resolved::Borrowed(Value::Null)
                            | Resolved::Owned(Value::Null)
                            | Resolved::Missing => continue,
                            Resolved::Borrowed(other) => {
                                spend(budget, json_size(other, *budget))?;
                                std::borrow::Cow::Owned(other.to_string())
                            }
                            Resolved::Owned(other) => {
                                spend(budget, json_size(&other, *budget))?;
                                std::borrow::Cow::Owned(other.to_string())
                            }
                        },
                    };
                    spend(budget, piece.len())?;
                    s.push_str(&piece);
                }
                Value::String(s)
            }
            Template::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|t| {
                        spend(budget, 1)?;
                        t.render_at(ctx, depth + 1, budget)
                    })
                    .collect::<Result<_>>()?,
            ),
            Template::Object(fields) => {
                let mut map = Map::with_capacity(fields.len());
                for (k, t) in fields {
                    spend(budget, k.len() + 4)?;
                    map.insert(k.clone(), t.render_at(ctx, depth + 1, budget)?);
                }
                Value::Object(map)
            }
        })
    }
}

/// Take `bytes` from the output budget, or fail when it is spent.
fn spend(budget: &mut usize, bytes: usize) -> Result<()> {
    match budget.checked_sub(bytes) {
        Some(left) => {
            *budget = left;
            Ok(())
        }
        None => Err(WebhookError::too_complex(
            FIELD,
            format!(
                "the rendered body would exceed {MAX_INPUT_BYTES} bytes; repeat large values less"
            ),
        )),
    }
}

/// About how many bytes `v` takes as JSON, counted up to just past
/// `limit` (then the walk stops). Walks with its own stack.
fn json_size(v: &Value, limit: usize) -> usize {
    let mut size = 0usize;
    let mut todo = vec![v];
    while let Some(v) = todo.pop() {
        size = size.saturating_add(match v {
            Value::Null | Value::Bool(_) => 5,
            Value::Number(_) => 24,
            Value::String(s) => s.len() + 2,
            Value::Array(items) => {
                todo.extend(items.iter());
                items.len() + 2
            }
            Value::Object(fields) => {
                todo.extend(fields.values());
                fields.keys().map(|k| k.len() + 4).sum::<usize>() + 2
            }
        });
        if size > limit {
            return size;
        }
    }
    size
}

fn parse_string(s: &str) -> Result<Template> {
    if !s.contains("{{") {
        if s.contains("}}") {
            return Err(WebhookError::invalid(
                FIELD,
                format!("\"}}}}\" without \"{{{{\" in {s:?}"),
            ));
        }
        return Ok(Template::Literal(Value::String(s.to_owned())));
    }
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        let (text, after) = rest.split_at(start);
        if text.contains("}}") {
            return Err(WebhookError::invalid(
                FIELD,
                format!("\"}}}}\" without \"{{{{\" in {s:?}"),
            ));
        }
        if !text.is_empty() {
            parts.push(Part::Text(text.to_owned()));
        }
        let after = &after[2..];
        let end = after.find("}}").ok_or_else(|| {
            WebhookError::invalid(
                FIELD,
                format!("placeholder not closed with \"}}}}\" in {s:?}"),
            )
        })?;
        parts.push(Part::Value(parse_path(after[..end].trim())?));
        rest = &after[end + 2..];
    }
    if rest.contains("}}") {
        return Err(WebhookError::invalid(
            FIELD,
            format!("\"}}}}\" without \"{{{{\" in {s:?}"),
        ));
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_owned()));
    }
    Ok(match parts.as_slice() {
        [Part::Value(p)] => Template::Whole(p.clone()),
        _ => Template::Interpolated(parts),
    })
}

fn parse_path(p: &str) -> Result<Path> {
    let path = match p {
        "$event_id" => Path::EventId,
        "$topic" => Path::Topic,
        "$tenant_id" => Path::TenantId,
        "$body" => Path::WholeBody,
        _ if p.starts_with('$') => {
            return Err(WebhookError::invalid(
                FIELD,
                format!("unknown placeholder {{{{{p}}}}}; allowed: $event_id, $topic, $tenant_id, $body or a body path like payload.user.email"),
            ))
        }
        _ => {
            let segments: Vec<String> = p.split('.').map(str::to_owned).collect();
            let valid = |seg: &String| {
                !seg.is_empty()
                    && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            };
            if !segments.iter().all(valid) {
                return Err(WebhookError::invalid(
                    FIELD,
                    format!("placeholder {{{{{p}}}}} is not a path: use dot-separated keys of letters, digits, _ or -, e.g. payload.user.email"),
                ));
            }
            Path::Body(segments)
        }
    };
    Ok(path)
}

/// A placeholder's value: borrowed from the body where it is one of its
/// parts (so its size is known before anything is copied).
enum Resolved<'v> {
    Borrowed(&'v Value),
    Owned(Value),
    Missing,
}

fn resolve_ref<'v>(path: &Path, ctx: &RenderContext<'v>) -> Resolved<'v> {
    match path {
        Path::EventId => Resolved::Owned(Value::String(ctx.event_id.to_owned())),
        Path::Topic => Resolved::Owned(Value::String(ctx.topic.to_owned())),
        Path::TenantId => Resolved::Owned(Value::String(ctx.tenant_id.to_owned())),
        Path::WholeBody => Resolved::Borrowed(ctx.body),
        Path::Body(segments) => {
            lookup(ctx.body, segments).map_or(Resolved::Missing, Resolved::Borrowed)
        }
    }
}

/// Follow `segments` into `value`: keys for objects, indexes for arrays.
pub fn lookup<'v>(value: &'v Value, segments: &[String]) -> Option<&'v Value> {
    segments.iter().try_fold(value, |v, seg| match v {
        Value::Object(map) => map.get(seg),
        Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(body: &Value) -> RenderContext<'_> {
        RenderContext {
            event_id: "01J",
            topic: "user.created",
            tenant_id: "acme",
            body,
        }
    }

    #[test]
    fn a_template_repeating_the_body_stops_at_the_output_cap() {
        // 2 MiB of body, repeated 64 times: 128 MiB of output.
        let body = json!({"payload": {"text": "x".repeat(2 * 1024 * 1024)}});
        let repeated = vec!["{{$body}}"; 64].join("\", \"");
        let t = Template::parse(&format!("[\"{repeated}\"]")).unwrap();
        let err = t.render(&ctx(&body)).unwrap_err();
        assert!(err.to_string().contains("would exceed"), "{err}");
        let inline = Template::parse(&format!("\"{}\"", "{{payload.text}}".repeat(64))).unwrap();
        assert!(inline.render(&ctx(&body)).is_err());
        // Under the cap it renders.
        let few = Template::parse("[\"{{$body}}\", \"{{payload.text}}\"]").unwrap();
        assert!(few.render(&ctx(&body)).is_ok());
    }

    #[test]
    fn whole_placeholder_keeps_json_type() {
        let body =
            json!({"payload": {"user_id": 7, "groups": [{"group_name": "A"}], "email": "a@b"}});
        let t = Template::parse(
            r#"{"uid":"{{payload.user_id}}","g":"{{ payload.groups }}","msg":"Hi {{payload.email}} ({{$topic}})","first":"{{payload.groups.0.group_name}}","n":1}"#,
        )
        .unwrap();
        let out = t.render(&ctx(&body)).unwrap();
        assert_eq!(
            out,
            json!({"uid": 7, "g": [{"group_name": "A"}], "msg": "Hi a@b (user.created)", "first": "A", "n": 1})
        );
    }

    #[test]
    fn bad_templates_are_rejected_with_the_field_name() {
        for bad in [
            r#"{"a":"{{payload.x"}"#,
            r#"{"a": }"#,
            r#"{"a":"{{}}"}"#,
            r#"{"a":"{{$nope}}"}"#,
            r#"{"a":"x}}"}"#,
            r#"{"a":"{{a b}}"}"#,
        ] {
            let err = Template::parse(bad).unwrap_err().to_string();
            assert!(err.starts_with("body_template: "), "{bad}: {err}");
        }
    }

    #[test]
    fn paths_are_checked_against_samples() {
        let t = Template::parse(r#"{"e":"{{payload.email}}"}"#).unwrap();
        let ok = vec![(
            "user.created".to_string(),
            json!({"payload": {"email": "x"}}),
        )];
        let bad = vec![(
            "group.created".to_string(),
            json!({"payload": {"group_id": 1}}),
        )];
        assert!(t.check_paths(&ok).is_ok());
        let err = t.check_paths(&bad).unwrap_err().to_string();
        assert!(
            err.contains("payload.email") && err.contains("group.created"),
            "{err}"
        );
    }

    #[test]
    fn missing_values_render_as_null_or_nothing() {
        let body = json!({});
        let t = Template::parse(r#"{"a":"{{x.y}}","b":"<{{x}}>"}"#).unwrap();
        assert_eq!(
            t.render(&ctx(&body)).unwrap(),
            json!({"a": null, "b": "<>"})
        );
    }

    #[test]
    fn deep_or_huge_templates_are_errors_not_crashes() {
        let n = 100_000;
        let deep = format!("{}{}", "[".repeat(n), "]".repeat(n));
        let err = Template::parse(&deep).unwrap_err().to_string();
        assert!(err.starts_with("body_template: "), "{err}");
        let huge = format!("\"{}\"", "x".repeat(MAX_TEMPLATE_BYTES));
        assert!(Template::parse(&huge).is_err());

        // A template tree built in Rust, deeper than any parser allows:
        // render stops at the limit and paths are collected without recursion.
        let mut t = Template::Whole(Path::Body(vec!["a".into()]));
        for _ in 0..n {
            t = Template::Array(vec![t]);
        }
        assert_eq!(t.body_paths().len(), 1);
        assert!(matches!(
            t.render(&ctx(&json!({}))),
            Err(WebhookError::TooComplex { .. })
        ));
        // Take the tree apart iteratively: its own Drop would recurse.
        let mut todo = vec![t];
        while let Some(t) = todo.pop() {
            if let Template::Array(items) = t {
                todo.extend(items);
            }
        }
    }
}
