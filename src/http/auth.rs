//! OAuth2 tokens for a webhook's client credentials (the credentials and the
//! (PEM certificate chain and key) and OAuth2 client credentials (a token
//! fetched from the token URL, cached until it expires, refreshed on 401).
//! Token requests run on delivery threads and never call Postgres.

use super::client::{Client, Post};
use super::redact::transport_error;
use crate::settings::credentials::{OAuth2, Token};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::time::{Duration, Instant};

/// Most bytes of a token endpoint's answer read.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;
/// A token is refreshed this long before its `expires_in` runs out (or a
/// tenth of its lifetime, when that is shorter).
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);

impl OAuth2 {
    /// The access token to send: the cached one while it is fresh (unless
    /// `stale`, the token a 401 just refused), else a new one.
    pub fn access_token(
        &self,
        agent: &Client,
        timeout: Duration,
        stale: Option<&str>,
    ) -> std::result::Result<String, String> {
        // A poisoned lock only means another thread panicked mid-fetch.
        let mut slot = self.token.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = slot.as_ref() {
            let fresh = t.refresh_at.is_none_or(|at| Instant::now() < at);
            if fresh && stale != Some(t.access_token.as_str()) {
                return Ok(t.access_token.clone());
            }
        }
        *slot = None;
        let token = self.fetch(agent, timeout)?;
        let value = token.access_token.clone();
        *slot = Some(token);
        Ok(value)
    }

    fn fetch(&self, agent: &Client, timeout: Duration) -> std::result::Result<Token, String> {
        let basic = B64.encode(format!(
            "{}:{}",
            form_encode(&self.client_id),
            form_encode(&self.client_secret)
        ));
        let mut form = String::from("grant_type=client_credentials");
        if let Some(scope) = &self.scope {
            form.push_str("&scope=");
            form.push_str(&form_encode(scope));
        }
        let fail = |what: String| format!("OAuth2 token request failed: {what}");
        let authorization = format!("Basic {basic}");
        let result = agent.post(&Post {
            url: &self.token_url,
            headers: &[
                ("Authorization", &authorization),
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Accept", "application/json"),
            ],
            body: form.as_bytes(),
            timeout,
            keep: MAX_TOKEN_RESPONSE,
            drain: MAX_TOKEN_RESPONSE as u64,
        });
        let raw = match result {
            Ok(resp) if (200..300).contains(&resp.status) => resp.body,
            // Not what it answered: an endpoint that echoes its request
            // would put the client credentials in the log PUBLIC reads.
            Ok(resp) => {
                return Err(fail(format!(
                    "the token endpoint answered HTTP {}",
                    resp.status
                )));
            }
            Err(e) => {
                let secrets = [
                    self.client_id.as_str(),
                    self.client_secret.as_str(),
                    basic.as_str(),
                ];
                return Err(fail(transport_error(&e.0, &self.token_url, &secrets)));
            }
        };
        parse_token(&raw, Instant::now()).map_err(fail)
    }
}

/// Parse a token endpoint's JSON answer (access_token, token_type,
/// expires_in) into a cached token.
fn parse_token(raw: &[u8], now: Instant) -> std::result::Result<Token, String> {
    let v: serde_json::Value = serde_json::from_slice(raw)
        .map_err(|e| format!("the token endpoint's answer is not JSON ({e})"))?;
    let access_token = v
        .get("access_token")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty() && !t.chars().any(|c| c.is_control() || c == ' '))
        .ok_or("the token endpoint's answer has no usable access_token")?
        .to_owned();
    if let Some(kind) = v.get("token_type").and_then(|t| t.as_str()) {
        if !kind.eq_ignore_ascii_case("bearer") {
            // Not quoted: the answer is the endpoint's text.
            return Err(
                "the token endpoint's token_type is not supported; only Bearer tokens are"
                    .to_owned(),
            );
        }
    }
    let lifetime = v.get("expires_in").and_then(|e| {
        e.as_u64()
            .or_else(|| e.as_str().and_then(|s| s.parse().ok()))
    });
    let refresh_at = lifetime.map(|secs| {
        let lifetime = Duration::from_secs(secs.min(365 * 24 * 3600));
        now + lifetime.saturating_sub(EXPIRY_MARGIN.min(lifetime / 10))
    });
    Ok(Token {
        access_token,
        refresh_at,
    })
}

/// application/x-www-form-urlencoded, as RFC 6749 asks for the client id
/// and secret in Basic auth too.
fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answers_are_parsed_with_their_expiry() {
        let now = Instant::now();
        let t = parse_token(
            br#"{"access_token":"abc","token_type":"bearer","expires_in":3600}"#,
            now,
        )
        .unwrap();
        assert_eq!(t.access_token, "abc");
        assert_eq!(t.refresh_at, Some(now + Duration::from_secs(3570)));
        let short = parse_token(br#"{"access_token":"x","expires_in":"10"}"#, now).unwrap();
        assert_eq!(short.refresh_at, Some(now + Duration::from_secs(9)));
        let forever = parse_token(br#"{"access_token":"x"}"#, now).unwrap();
        assert_eq!(forever.refresh_at, None);
        assert!(parse_token(br#"{"access_token":"x","token_type":"mac"}"#, now).is_err());
        assert!(parse_token(br#"{"token_type":"bearer"}"#, now).is_err());
        assert!(parse_token(br#"{"access_token":"a b"}"#, now).is_err());
        assert!(parse_token(b"<html>", now).is_err());
    }

    #[test]
    fn credentials_are_form_encoded() {
        assert_eq!(form_encode("a b&c:d"), "a+b%26c%3Ad");
    }
}
