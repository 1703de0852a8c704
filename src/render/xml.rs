//! The JSON-to-XML mapping used for `application/xml` webhooks.
//!
//! - The document is `<?xml version="1.0" encoding="UTF-8"?>` and one root
//!   element `<webhook>` holding the JSON body.
//! - An object member becomes an element named after its key. A key that is
//!   not a safe XML name (empty, starts with a digit or `xml`, has spaces or
//!   other punctuation) becomes `<entry key="the key">`.
//! - The JSON type is carried by a `type` attribute: none for strings,
//!   `object`, `array`, `number`, `boolean` and `null` otherwise. Array
//!   elements are `<item>` children, in order.
//! - Text is escaped (`&`, `<`, `>`, and CR as `&#13;` so it survives XML
//!   line-end normalisation). A string holding characters XML 1.0 cannot
//!   carry at all (control characters) is written as a JSON string literal
//!   with `encoding="json"`; a key like that uses `key-json` instead of `key`.
//!
//! The mapping is lossless: [`from_xml`] reads it back to the same JSON.
//! Both directions stop at [`MAX_DEPTH`] levels of nesting.

use super::{too_deep, too_large, MAX_DEPTH, MAX_INPUT_BYTES};
use crate::error::{Result, WebhookError};
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::name::QName;
use quick_xml::{Reader, Writer};
use serde_json::{Map, Number, Value};
use std::borrow::Cow;

const ROOT: &str = "webhook";

/// Render a JSON value as an XML document (at most [`MAX_DEPTH`] levels).
pub fn to_xml(value: &Value) -> Result<String> {
    let mut writer = Writer::new(Vec::with_capacity(1024));
    // Writing into a Vec cannot fail; errors are ignored deliberately.
    let _ = writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    write_element(&mut writer, ROOT, None, value, 0)?;
    Ok(String::from_utf8(writer.into_inner()).unwrap_or_default())
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

fn is_safe_name(key: &str) -> bool {
    let mut chars = key.chars();
    let first_ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_');
    first_ok
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !key.to_ascii_lowercase().starts_with("xml")
}

/// Escape for element text: the usual three plus CR.
fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            _ => out.push(c),
        }
    }
    out
}

/// Escape for attribute values: quotes and whitespace that parsers normalise.
fn escape_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            _ => out.push(c),
        }
    }
    out
}

/// An attribute whose value is already escaped (quick-xml's own escaping
/// leaves tabs and line ends, which parsers would normalise away).
fn raw_attr(name: &'static [u8], escaped: String) -> Attribute<'static> {
    Attribute {
        key: QName(name),
        value: Cow::Owned(escaped.into_bytes()),
    }
}

/// Write `value` (nested `depth` levels down) as element `name`. Recursive,
/// so the depth is checked: a value built in Rust has no parser limit.
fn write_element(
    w: &mut Writer<Vec<u8>>,
    name: &str,
    key: Option<&str>,
    value: &Value,
    depth: usize,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(too_deep("body"));
    }
    // XML is several times the JSON it comes from: capped as it grows.
    if w.get_ref().len() > MAX_INPUT_BYTES {
        return Err(too_large("body", w.get_ref().len(), MAX_INPUT_BYTES));
    }
    let mut start = BytesStart::new(name);
    if let Some(key) = key {
        if key.chars().all(is_xml_char) {
            start.push_attribute(raw_attr(b"key", escape_attr(key)));
        } else {
            let json = Value::String(key.to_owned()).to_string();
            start.push_attribute(raw_attr(b"key-json", escape_attr(&json)));
        }
    }
    let type_attr = match value {
        Value::String(_) => None,
        Value::Object(_) => Some("object"),
        Value::Array(_) => Some("array"),
        Value::Number(_) => Some("number"),
        Value::Bool(_) => Some("boolean"),
        Value::Null => Some("null"),
    };
    if let Some(t) = type_attr {
        start.push_attribute(("type", t));
    }
    let text: Option<String> = match value {
        Value::String(s) if s.chars().all(is_xml_char) => Some(escape_text(s)),
        Value::String(s) => {
            start.push_attribute(("encoding", "json"));
            Some(escape_text(&Value::String(s.clone()).to_string()))
        }
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let empty = match value {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Null => true,
        _ => text.as_deref().is_some_and(str::is_empty),
    };
    if empty {
        let _ = w.write_event(Event::Empty(start));
        return Ok(());
    }
    let _ = w.write_event(Event::Start(start));
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if is_safe_name(k) {
                    write_element(w, k, None, v, depth + 1)?;
                } else {
                    write_element(w, "entry", Some(k), v, depth + 1)?;
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                write_element(w, "item", None, v, depth + 1)?;
            }
        }
        _ => {
            let t = text.unwrap_or_default();
            let _ = w.write_event(Event::Text(BytesText::from_escaped(t)));
        }
    }
    let _ = w.write_event(Event::End(BytesEnd::new(name)));
    Ok(())
}

/// One element being read back.
struct Frame {
    key: Option<String>,
    kind: String,
    json_encoded: bool,
    text: String,
    members: Vec<(String, Value)>,
}

fn bad(m: impl Into<String>) -> WebhookError {
    WebhookError::Render(format!("not a webhook XML document: {}", m.into()))
}

fn open_frame(e: &BytesStart) -> Result<Frame> {
    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
    let mut frame = Frame {
        key: Some(name),
        kind: "string".into(),
        json_encoded: false,
        text: String::new(),
        members: Vec::new(),
    };
    for attr in e.attributes() {
        let attr = attr.map_err(|e| bad(e.to_string()))?;
        let value = attr
            .unescape_value()
            .map_err(|e| bad(e.to_string()))?
            .into_owned();
        match attr.key.as_ref() {
            b"type" => frame.kind = value,
            b"key" => frame.key = Some(value),
            b"key-json" => {
                frame.key = Some(serde_json::from_str(&value).map_err(|e| bad(e.to_string()))?)
            }
            b"encoding" => frame.json_encoded = value == "json",
            _ => {}
        }
    }
    Ok(frame)
}

fn close_frame(f: Frame) -> Result<(String, Value)> {
    let value = match f.kind.as_str() {
        "object" => Value::Object(f.members.into_iter().collect::<Map<_, _>>()),
        "array" => Value::Array(f.members.into_iter().map(|(_, v)| v).collect()),
        "null" => Value::Null,
        "boolean" => Value::Bool(f.text.trim() == "true"),
        "number" => {
            let n: Number = f
                .text
                .trim()
                .parse()
                .map_err(|_| bad(format!("bad number {:?}", f.text)))?;
            Value::Number(n)
        }
        _ if f.json_encoded => serde_json::from_str(&f.text).map_err(|e| bad(e.to_string()))?,
        _ => Value::String(f.text),
    };
    Ok((f.key.unwrap_or_default(), value))
}

/// Read a document written by [`to_xml`] back into JSON. The reader keeps its
/// own stack, but the value it builds is dropped and serialised recursively,
/// so elements deeper than [`MAX_DEPTH`] are refused (the root is level 0).
pub fn from_xml(xml: &str) -> Result<Value> {
    if xml.len() > MAX_INPUT_BYTES {
        return Err(too_large("xml", xml.len(), MAX_INPUT_BYTES));
    }
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Value> = None;
    loop {
        let event = reader.read_event().map_err(|e| bad(e.to_string()))?;
        if matches!(event, Event::Start(_) | Event::Empty(_)) && stack.len() > MAX_DEPTH {
            return Err(too_deep("xml"));
        }
        match event {
            Event::Start(e) => stack.push(open_frame(&e)?),
            Event::Empty(e) => {
                let (k, v) = close_frame(open_frame(&e)?)?;
                match stack.last_mut() {
                    Some(parent) => parent.members.push((k, v)),
                    None => root = Some(v),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text
                        .push_str(&t.unescape().map_err(|e| bad(e.to_string()))?);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::End(_) => {
                let frame = stack.pop().ok_or_else(|| bad("unbalanced end tag"))?;
                let (k, v) = close_frame(frame)?;
                match stack.last_mut() {
                    Some(parent) => parent.members.push((k, v)),
                    None => root = Some(v),
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    root.ok_or_else(|| bad("no root element"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_every_json_type_and_hostile_text() {
        let v = json!({
            "id": "01J", "n": 12.5, "neg": -3, "ok": true, "none": null, "empty": "",
            "list": [1, "two", {"x": null}, [], {}], "obj": {},
            "text": "a <b> & \"c\" 'd' ]]> é 😀 \r\n\ttab",
            "ctrl": "bell\u{7}nul\u{0}",
            "1bad key": "k", "xmlish": 1, "": "empty key", "k\u{1}": "ctrl key"
        });
        let xml = to_xml(&v).unwrap();
        assert!(
            xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><webhook type=\"object\">"),
            "{xml}"
        );
        assert!(!xml.contains("]]>"));
        assert_eq!(from_xml(&xml).unwrap(), v);
    }

    #[test]
    fn scalars_at_the_root_round_trip() {
        for v in [json!(null), json!("s"), json!(3), json!([])] {
            assert_eq!(from_xml(&to_xml(&v).unwrap()).unwrap(), v);
        }
    }

    /// `levels` arrays nested in each other, built without recursion.
    fn nested(levels: usize) -> Value {
        let mut v = json!([]);
        for _ in 1..levels {
            v = Value::Array(vec![v]);
        }
        v
    }

    /// Drop a deep value without recursing (its own Drop would overflow).
    fn flatten_drop(v: Value) {
        let mut todo = vec![v];
        while let Some(v) = todo.pop() {
            if let Value::Array(items) = v {
                todo.extend(items);
            }
        }
    }

    #[test]
    fn depth_limit_is_the_same_both_ways() {
        let ok = nested(MAX_DEPTH + 1);
        assert_eq!(from_xml(&to_xml(&ok).unwrap()).unwrap(), ok);
        let deep = nested(MAX_DEPTH + 2);
        assert!(matches!(
            to_xml(&deep),
            Err(WebhookError::TooComplex { field: "body", .. })
        ));
        flatten_drop(deep);
    }

    #[test]
    fn hostile_depth_is_an_error_not_a_crash() {
        let n = 100_000;
        let xml = format!("{}{}", "<a type=\"array\">".repeat(n), "</a>".repeat(n));
        let err = from_xml(&xml).unwrap_err();
        assert!(
            err.to_string().starts_with("xml: nesting deeper than"),
            "{err}"
        );
        let empties = format!("{}<b/>{}", "<a type=\"array\">".repeat(n), "</a>".repeat(n));
        assert!(from_xml(&empties).is_err());
        let deep = nested(n);
        assert!(to_xml(&deep).is_err());
        flatten_drop(deep);
    }
}
