//! The rules a webhook's settings must follow, each in one place: every
//! rule about the values of the row itself is here (`check_webhook`, which
//! the registry's trigger calls for every INSERT and for every UPDATE that
//! changes a setting); the rules that read other tables (unique names,
//! known topics, ordering and filter paths, templates against the topics'
//! samples) are in the trigger (`sql/engine/registry.sql`).

use super::credentials::ClientIdentity;
use super::validate::{validate_headers, validate_oauth2, validate_url};
use crate::error::{OrRaise, Result, WebhookError};
use crate::render::signature;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{Map, Value};

/// Integer settings: the column, the range allowed, and what the value
/// means (said in the error). NULL is always allowed: it means the default.
const INTEGER_SETTINGS: &[(&str, i64, i64, &str)] = &[
    (
        "rate_limit_per_second",
        1,
        100_000,
        "requests per second, or NULL for no limit",
    ),
    (
        "timeout_ms",
        100,
        300_000,
        "milliseconds, or NULL for webhook.request_timeout",
    ),
];

/// The content types a webhook can be sent.
const CONTENT_TYPES: &[&str] = &["application/json", "application/xml"];

/// Longest bearer token.
const MAX_BEARER_TOKEN: usize = 4096;

/// Raises `22023` naming the setting unless the webhook row (as JSON, one
/// key per column) follows every rule about its own values.
#[pg_extern(immutable, parallel_safe)]
fn check_webhook(webhook: JsonB) {
    let empty = Map::new();
    check(webhook.0.as_object().unwrap_or(&empty)).or_raise();
}

/// [`check_webhook`] on the row's columns.
pub fn check(row: &Map<String, Value>) -> Result<()> {
    let text = |column: &str| row.get(column).and_then(Value::as_str);
    let given = |column: &str| row.get(column).is_some_and(|v| !v.is_null());

    match text("url") {
        None => return Err(WebhookError::invalid("url", "must not be null")),
        Some(url) => {
            validate_url(url)?;
        }
    }
    match text("content_type") {
        Some(t) if CONTENT_TYPES.contains(&t) => {}
        other => {
            return Err(WebhookError::invalid(
                "content_type",
                format!(
                    "{} is not supported; allowed: {}",
                    other.map_or("NULL".to_owned(), |t| format!(
                        "'{}'",
                        t.replace('\'', "''")
                    )),
                    CONTENT_TYPES.join(", ")
                ),
            ))
        }
    }
    let (username, password) = (text("auth_username"), text("auth_password"));
    if username.is_some() != password.is_some() {
        return Err(WebhookError::invalid(
            "auth_username, auth_password",
            "HTTP Basic auth needs both a username and a password, or neither",
        ));
    }
    if let (Some(user), Some(password)) = (username, password) {
        if user.is_empty()
            || user.contains(':')
            || user.chars().any(char::is_control)
            || password.chars().any(char::is_control)
        {
            return Err(WebhookError::invalid(
                "auth_username",
                "must be non-empty without colons or control characters (and auth_password without control characters)",
            ));
        }
    }
    if let Some(headers) = row.get("headers").filter(|h| !h.is_null()) {
        validate_headers(headers)?;
    }
    if let Some(secret) = text("signing_secret") {
        signature::decode_secret(secret)?;
    }
    if given("previous_signing_secret") != given("previous_signing_secret_until") {
        return Err(WebhookError::invalid(
            "previous_signing_secret, previous_signing_secret_until",
            "give both or neither (update_webhook(id, rotate_signing_secret => true) sets them)",
        ));
    }
    if let Some(secret) = text("previous_signing_secret") {
        signature::decode_secret(secret)?;
    }
    if let Some(token) = text("bearer_token") {
        // RFC 6750's b64token: what an Authorization header can carry.
        let body = token.trim_end_matches('=');
        let b64token = !body.is_empty()
            && body
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~+/".contains(c));
        if token.chars().count() > MAX_BEARER_TOKEN || !b64token {
            return Err(WebhookError::invalid(
                "bearer_token",
                "must be 1 to 4096 characters of A-Z, a-z, 0-9 and - . _ ~ + / (then = padding), as RFC 6750 allows",
            ));
        }
        if username.is_some() {
            return Err(WebhookError::invalid(
                "bearer_token",
                "cannot be combined with auth_username/auth_password (both are sent as the Authorization header); use one of them",
            ));
        }
    }
    for &(column, min, max, meaning) in INTEGER_SETTINGS {
        if let Some(value) = row.get(column).and_then(Value::as_i64) {
            if !(min..=max).contains(&value) {
                return Err(WebhookError::invalid(
                    column,
                    format!("{value} is out of range; allowed: {min} to {max} {meaning}"),
                ));
            }
        }
    }
    let (certificate, key) = (text("client_certificate"), text("client_key"));
    if certificate.is_some() != key.is_some() {
        return Err(WebhookError::invalid(
            "client_certificate, client_key",
            "mTLS needs both a PEM certificate and its PEM private key, or neither",
        ));
    }
    if let (Some(certificate), Some(key)) = (certificate, key) {
        let https = text("url").is_some_and(|u| {
            u.get(..8)
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
        });
        if !https {
            return Err(WebhookError::invalid(
                "client_certificate",
                "a client certificate is presented only over TLS; the url must start with https://",
            ));
        }
        ClientIdentity::from_pem(certificate, key)?;
    }
    validate_oauth2(
        text("oauth2_token_url"),
        text("oauth2_client_id"),
        text("oauth2_client_secret"),
        text("oauth2_scope"),
    )?;
    if given("oauth2_token_url") && (username.is_some() || given("bearer_token")) {
        return Err(WebhookError::invalid(
            "oauth2_token_url",
            "OAuth2 cannot be combined with auth_username/auth_password or bearer_token (each is sent as the Authorization header); use one of them",
        ));
    }
    Ok(())
}

/// Raises `22023` unless `callback` can be a webhook's outcome callback
/// run as `owner`: a function (not a procedure or aggregate) of one jsonb
/// argument, which `owner` (a webhook_admin member, not a superuser) owns
/// (or a superuser does) and may execute.
#[pg_extern(stable, parallel_safe)]
fn check_outcome_callback(callback: Option<pg_sys::Oid>, owner: Option<pg_sys::Oid>) {
    outcome_callback_problem(callback, owner)
        .map_or(Ok(()), |message| {
            Err(WebhookError::invalid("outcome_callback", message))
        })
        .or_raise();
}

/// Why `callback` cannot run as `owner`, or None.
fn outcome_callback_problem(
    callback: Option<pg_sys::Oid>,
    owner: Option<pg_sys::Oid>,
) -> Option<String> {
    let (Some(callback), Some(owner)) = (callback, owner) else {
        return Some("a callback and the role it runs as (outcome_callback_owner) go together; give both or neither".into());
    };
    let facts = Spi::connect(|client| {
        let row = client
            .select(
                "SELECT p.oid::regprocedure::text, p.prokind = 'f' AND p.pronargs = 1 AND NOT p.proretset
                        AND p.proargtypes[0] = 'jsonb'::regtype AND p.prorettype <> 'trigger'::regtype,
                        r.rolname::text, r.rolsuper,
                        r.oid IS NOT NULL AND p.oid IS NOT NULL
                            AND pg_catalog.has_function_privilege(r.oid, p.oid, 'EXECUTE'),
                        p.proowner = r.oid OR (SELECT o.rolsuper FROM pg_catalog.pg_roles o WHERE o.oid = p.proowner),
                        r.oid IS NOT NULL AND pg_catalog.pg_has_role(r.oid, 'webhook_admin', 'USAGE')
                   FROM (SELECT) one
                   LEFT JOIN pg_catalog.pg_proc p ON p.oid = $1
                   LEFT JOIN pg_catalog.pg_roles r ON r.oid = $2",
                Some(1),
                &[callback.into(), owner.into()],
            )?
            .first();
        Ok::<_, pgrx::spi::SpiError>((
            row.get::<String>(1)?,
            row.get::<bool>(2)?.unwrap_or(false),
            row.get::<String>(3)?,
            row.get::<bool>(4)?.unwrap_or(false),
            row.get::<bool>(5)?.unwrap_or(false),
            row.get::<bool>(6)?.unwrap_or(false),
            row.get::<bool>(7)?.unwrap_or(false),
        ))
    });
    let (name, fits, role, superuser, may_execute, owns, admin) = match facts {
        Ok(facts) => facts,
        Err(e) => return Some(format!("cannot be checked: {e}")),
    };
    let Some(name) = name else {
        return Some(format!("no function has oid {}", u32::from(callback)));
    };
    let Some(role) = role else {
        return Some(format!(
            "outcome_callback_owner: no role has oid {}",
            u32::from(owner)
        ));
    };
    if !fits {
        return Some(format!(
            "{name} must be a function of one jsonb argument (the outcome) returning one value or void, e.g. CREATE FUNCTION lms.on_outcome(outcome jsonb) RETURNS void"
        ));
    }
    if superuser {
        return Some(format!(
            "it would run as {role}, a superuser; set it as the role it should run as (SET ROLE, then update_webhook)"
        ));
    }
    if !may_execute {
        return Some(format!(
            "{role}, the role it runs as, may not execute {name}"
        ));
    }
    if !owns {
        return Some(format!(
            "{name} belongs to another role, who could change what it does while it runs as {role}; use a function {role} owns"
        ));
    }
    if !admin {
        return Some(format!(
            "{role}, the role it runs as, is not a member of webhook_admin"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Map<String, Value> {
        let mut base = json!({"url": "https://example.com/h", "content_type": "application/json"});
        for (k, val) in v.as_object().cloned().unwrap_or_default() {
            base[k] = val;
        }
        base.as_object().cloned().unwrap_or_default()
    }

    fn error(v: Value) -> String {
        check(&row(v))
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn integer_settings_name_the_setting_and_the_range() {
        assert_eq!(error(json!({"timeout_ms": 5000})), "");
        assert_eq!(
            error(json!({"timeout_ms": 50})),
            "timeout_ms: 50 is out of range; allowed: 100 to 300000 milliseconds, or NULL for webhook.request_timeout"
        );
        assert!(error(json!({"rate_limit_per_second": 0}))
            .starts_with("rate_limit_per_second: 0 is out of range"));
    }

    #[test]
    fn content_type_and_auth() {
        assert_eq!(
            error(json!({"content_type": "text/plain"})),
            "content_type: 'text/plain' is not supported; allowed: application/json, application/xml"
        );
        assert!(error(json!({"auth_username": "u"})).starts_with("auth_username, auth_password:"));
        assert!(error(json!({"auth_username": "a:b", "auth_password": "p"}))
            .starts_with("auth_username: must be non-empty"));
        assert!(
            error(json!({"bearer_token": "a b"})).starts_with("bearer_token: must be 1 to 4096")
        );
        assert_eq!(error(json!({"bearer_token": "abc.DEF-_~+/=="})), "");
        assert!(error(json!({"bearer_token": "=="})).starts_with("bearer_token: must be"));
    }
}
