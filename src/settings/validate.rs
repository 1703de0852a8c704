//! Validation of webhook settings. The registry's BEFORE INSERT/UPDATE
//! trigger calls these, so the SQL functions and plain DML are checked
//! exactly alike. Each error names the field and what is allowed.

use crate::error::{OrRaise, Result, WebhookError};
use crate::render::{signature, template::Template};
use pgrx::prelude::*;
use pgrx::{Json, JsonB};
use serde_json::Value;
use url::Url;

const MAX_URL_LEN: usize = 2048;

/// Headers the extension sets itself; a webhook may not override them.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "authorization",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "webhook-type",
    "te",
    "upgrade",
    "expect",
    "keep-alive",
    "proxy-authorization",
    "trailer",
];

/// Check a webhook URL: absolute http(s) with a host and no credentials.
pub fn validate_url(raw: &str) -> Result<Url> {
    validate_url_field("url", raw)
}

/// [`validate_url`] for another URL setting, named `field` in errors.
fn validate_url_field(field: &'static str, raw: &str) -> Result<Url> {
    if raw.is_empty() {
        return Err(WebhookError::invalid(
            field,
            "must not be empty; expected e.g. https://example.com/hooks",
        ));
    }
    if raw.len() > MAX_URL_LEN {
        return Err(WebhookError::invalid(
            field,
            format!(
                "is {} characters; at most {MAX_URL_LEN} are allowed",
                raw.len()
            ),
        ));
    }
    if raw.trim() != raw || raw.chars().any(char::is_control) {
        return Err(WebhookError::invalid(
            field,
            "must not contain spaces around it or control characters",
        ));
    }
    let url = Url::parse(raw).map_err(|e| {
        WebhookError::invalid(
            field,
            format!("{raw:?} is not a valid URL ({e}); expected e.g. https://example.com/hooks"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(WebhookError::invalid(
            field,
            format!(
                "scheme {:?} is not allowed; use http or https",
                url.scheme()
            ),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(WebhookError::invalid(field, format!("{raw:?} has no host")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(WebhookError::invalid(
            field,
            "must not embed credentials (user:password@host); use auth_username and auth_password",
        ));
    }
    Ok(url)
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Check extra headers: a JSON object of header name to string value.
pub fn validate_headers(headers: &Value) -> Result<()> {
    let field = "headers";
    let map = headers.as_object().ok_or_else(|| {
        WebhookError::invalid(
            field,
            "must be a JSON object of header name to value, e.g. {\"X-Team\": \"lms\"}",
        )
    })?;
    if map.len() > 50 {
        return Err(WebhookError::invalid(
            field,
            "at most 50 extra headers are allowed",
        ));
    }
    for (name, value) in map {
        if name.is_empty() || name.len() > 100 || !name.chars().all(is_token_char) {
            return Err(WebhookError::invalid(
                field,
                format!("header name {name:?} is invalid: use 1 to 100 letters, digits or !#$%&'*+-.^_`|~ (no spaces, colons, CR or LF)"),
            ));
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(WebhookError::invalid(
                field,
                format!("header {name:?} is set by webhook_emitter and cannot be overridden"),
            ));
        }
        let value = value.as_str().ok_or_else(|| {
            WebhookError::invalid(
                field,
                format!("the value of header {name:?} must be a JSON string"),
            )
        })?;
        if value.len() > 4096 || !value.chars().all(|c| c == '\t' || (' '..='~').contains(&c)) {
            return Err(WebhookError::invalid(
                field,
                format!("the value of header {name:?} must be printable ASCII (no CR, LF or other control characters), at most 4096 characters"),
            ));
        }
    }
    Ok(())
}

/// Parse a body template and check its paths against the topics' sample
/// bodies (`samples` is a JSON object of topic name to sample body).
pub fn validate_template(text: &str, samples: &Value) -> Result<Template> {
    let template = Template::parse(text)?;
    let samples: Vec<(String, Value)> = samples
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    template.check_paths(&samples)?;
    Ok(template)
}

/// Check OAuth2 client credentials: token URL, client id and secret all
/// given (or none, and no scope), each of sane length without control
/// characters.
pub fn validate_oauth2(
    token_url: Option<&str>,
    client_id: Option<&str>,
    client_secret: Option<&str>,
    scope: Option<&str>,
) -> Result<()> {
    let Some(url) = token_url else {
        if client_id.is_some() || client_secret.is_some() || scope.is_some() {
            return Err(WebhookError::invalid(
                "oauth2_token_url",
                "is required with oauth2_client_id, oauth2_client_secret or oauth2_scope",
            ));
        }
        return Ok(());
    };
    validate_url_field("oauth2_token_url", url)?;
    // RFC 6749: client id and secret are VSCHAR (printable ASCII and
    // space), scope tokens NQCHAR separated by spaces (checked below).
    let fields: [(&'static str, Option<&str>, usize, bool); 3] = [
        ("oauth2_client_id", client_id, 1024, true),
        ("oauth2_client_secret", client_secret, 4096, true),
        ("oauth2_scope", scope, 1024, false),
    ];
    if let Some(scope) = scope {
        let token_ok = |t: &str| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c == '!' || ('#'..='[').contains(&c) || (']'..='~').contains(&c))
        };
        if !scope.split(' ').all(token_ok) {
            return Err(WebhookError::invalid(
                "oauth2_scope",
                "must be scope tokens of printable ASCII without \" or \\, separated by single spaces (RFC 6749)",
            ));
        }
    }
    for (field, value, max, required) in fields {
        match value {
            None if required => {
                return Err(WebhookError::invalid(
                    field,
                    "is required with oauth2_token_url (client credentials need the client id and secret)",
                ))
            }
            None => {}
            Some(v) if v.is_empty() || v.len() > max || !v.chars().all(|c| (' '..='~').contains(&c)) => {
                return Err(WebhookError::invalid(
                    field,
                    format!("must be 1 to {max} characters of printable ASCII (RFC 6749)"),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Raises `22023` unless `url` is an absolute http(s) URL with a host and no
/// embedded credentials.
#[pg_extern(immutable, parallel_safe)]
fn check_url(url: &str) {
    validate_url(url).or_raise();
}

/// Raises `22023` unless `certificate` is a PEM certificate chain and `key`
/// the PEM private key of its first certificate.
#[pg_extern(immutable, parallel_safe)]
fn check_client_certificate(certificate: &str, key: &str) {
    super::credentials::ClientIdentity::from_pem(certificate, key).or_raise();
}

/// Raises `22023` naming the field unless the OAuth2 client credentials
/// are complete and well-formed (or all NULL).
#[pg_extern(immutable, parallel_safe)]
fn check_oauth2(
    token_url: Option<&str>,
    client_id: Option<&str>,
    client_secret: Option<&str>,
    scope: Option<&str>,
) {
    validate_oauth2(token_url, client_id, client_secret, scope).or_raise();
}

/// Raises `22023` unless `headers` is an object of valid header names to
/// printable values that do not override the extension's own headers.
#[pg_extern(immutable, parallel_safe)]
fn check_headers(headers: JsonB) {
    validate_headers(&headers.0).or_raise();
}

/// Raises `22023` unless `secret` is `whsec_` + base64 of 24 to 64 bytes.
#[pg_extern(immutable, parallel_safe)]
fn check_signing_secret(secret: &str) {
    signature::decode_secret(secret).or_raise();
}

/// Raises `22023` unless `template` parses and each of its paths exists in
/// at least one of `samples` (an object of topic to sample body).
#[pg_extern(immutable, parallel_safe)]
fn check_body_template(template: &str, samples: Json) {
    validate_template(template, &samples.0).or_raise();
}

/// A fresh Standard Webhooks signing secret (`whsec_` + 32 random bytes).
#[pg_extern(volatile, parallel_safe)]
fn generate_signing_secret() -> String {
    signature::generate_secret()
}

/// Read an XML body produced by webhook_emitter back into JSON (the
/// mapping is lossless; useful to check what an XML receiver got).
#[pg_extern(immutable, parallel_safe)]
fn xml_to_json(xml: &str) -> Json {
    Json(crate::render::xml::from_xml(xml).or_raise())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls() {
        assert!(validate_url("https://example.com/hooks?x=1").is_ok());
        assert!(validate_url("http://127.0.0.1:8080/").is_ok());
        for bad in [
            "",
            "nota url",
            "ftp://example.com/",
            "https://",
            "https://u:p@example.com/",
            " https://x.com",
            "mailto:a@b.c",
            "https://user@example.com/",
        ] {
            let e = validate_url(bad).unwrap_err().to_string();
            assert!(e.starts_with("url: "), "{bad}: {e}");
        }
    }

    #[test]
    fn headers() {
        assert!(validate_headers(&json!({"X-Team": "lms", "X-Trace": "a b\tc"})).is_ok());
        for bad in [
            json!([]),
            json!({"Bad Name": "x"}),
            json!({"X-A": "a\r\nInjected: 1"}),
            json!({"X-A": 1}),
            json!({"Content-Type": "text/plain"}),
            json!({"": "x"}),
        ] {
            let e = validate_headers(&bad).unwrap_err().to_string();
            assert!(e.starts_with("headers: "), "{bad}: {e}");
        }
    }
}
