//! Rendering: turning a queued event body (JSON text built in SQL) into the
//! bytes a webhook receives, per the webhook's content type and template.
//! Pure Rust, no Postgres calls: the delivery threads use it too.

pub mod signature;
pub mod template;
pub mod xml;

use crate::error::{Result, WebhookError};
use serde_json::Value;
use template::{RenderContext, Template};

/// Deepest nesting (JSON arrays/objects, XML elements, template levels) any
/// parser or renderer here accepts. Every recursion over input is bounded by
/// it, so hostile input gets an error instead of overflowing the stack (a
/// backend crash). serde_json's own parser stops at 128 too.
pub const MAX_DEPTH: usize = 128;

/// Largest document read back from XML or re-rendered from a stored body.
pub const MAX_INPUT_BYTES: usize = 64 * 1024 * 1024;

/// The error for input nested deeper than [`MAX_DEPTH`].
pub fn too_deep(field: &'static str) -> WebhookError {
    WebhookError::too_complex(
        field,
        format!("nesting deeper than {MAX_DEPTH} levels is not supported; flatten the document"),
    )
}

/// The error for input larger than `limit` bytes.
pub fn too_large(field: &'static str, len: usize, limit: usize) -> WebhookError {
    WebhookError::too_complex(
        field,
        format!("is {len} bytes; at most {limit} bytes are supported"),
    )
}

/// The two body formats the vendor documents offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    Json,
    Xml,
}

impl ContentType {
    pub const ALLOWED: &'static str = "application/json, application/xml";

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "application/json" => Ok(ContentType::Json),
            "application/xml" => Ok(ContentType::Xml),
            other => Err(WebhookError::invalid(
                "content_type",
                format!("{other:?} is not supported; allowed: {}", Self::ALLOWED),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Json => "application/json",
            ContentType::Xml => "application/xml",
        }
    }
}

/// The event facts a body is rendered from.
pub struct EventFacts<'a> {
    pub id: &'a str,
    pub topic: &'a str,
    pub tenant_id: &'a str,
    /// The body as stored (JSON text, key order as built).
    pub body: &'a str,
}

/// Render an event's body for one webhook.
pub fn render_body(
    event: &EventFacts,
    content_type: ContentType,
    template: Option<&Template>,
) -> Result<String> {
    if template.is_none() && content_type == ContentType::Json {
        // The stored text is already the document: send it byte for byte.
        return Ok(event.body.to_owned());
    }
    if event.body.len() > MAX_INPUT_BYTES {
        return Err(too_large("body", event.body.len(), MAX_INPUT_BYTES));
    }
    let body: Value = serde_json::from_str(event.body).map_err(|e| {
        WebhookError::Render(format!(
            "stored body of event {} is not JSON: {e}",
            event.id
        ))
    })?;
    let value = match template {
        Some(t) => t.render(&RenderContext {
            event_id: event.id,
            topic: event.topic,
            tenant_id: event.tenant_id,
            body: &body,
        })?,
        None => body,
    };
    match content_type {
        ContentType::Json => Ok(value.to_string()),
        ContentType::Xml => xml::to_xml(&value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_without_template_is_byte_for_byte() {
        let body = r#"{"b":1,  "a":[2]}"#;
        let ev = EventFacts {
            id: "e",
            topic: "t",
            tenant_id: "x",
            body,
        };
        assert_eq!(render_body(&ev, ContentType::Json, None).unwrap(), body);
        let xml = render_body(&ev, ContentType::Xml, None).unwrap();
        assert!(xml.contains("<b type=\"number\">1</b>"), "{xml}");
        let t = Template::parse(r#"{"id":"{{$event_id}}","a":"{{a}}"}"#).unwrap();
        assert_eq!(
            render_body(&ev, ContentType::Json, Some(&t)).unwrap(),
            r#"{"id":"e","a":[2]}"#
        );
    }
}
