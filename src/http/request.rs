//! One HTTP attempt: render the body, sign it, POST it, classify the
//! answer. Runs on delivery threads and in Send Test; never calls Postgres.

use super::client::Post;
use super::job::{Job, Outcome};
use super::redact::{redact_location, transport_error};
use super::wire::Response;
use crate::render::{render_body, signature, EventFacts};
use crate::settings::endpoint::Endpoint;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const USER_AGENT: &str = concat!(
    "webhook_emitter/",
    env!("CARGO_PKG_VERSION"),
    " (PostgreSQL extension)"
);
/// Most response bytes read to keep a connection reusable; beyond this the
/// connection is dropped instead of drained.
pub const MAX_DRAIN_BYTES: u64 = 256 * 1024;
/// Longest TCP connect (per agent: less when webhook.request_timeout is
/// shorter); within the request's own deadline.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most response headers kept per attempt, the truncation marker included.
const MAX_HEADERS: usize = 50;
/// Most bytes of header names plus values kept per attempt, marker included.
const MAX_HEADER_BYTES: usize = 8 * 1024;
/// Added (with value "true") when headers were dropped or cut short.
pub const TRUNCATED_HEADER: &str = "x-webhook-emitter-truncated";

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn retry_after(resp: &Response) -> Option<Duration> {
    if !matches!(resp.status, 429 | 503) {
        return None;
    }
    resp.header("retry-after")?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// The longest prefix of `s` of at most `max` bytes ending on a char boundary.
fn prefix(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Response headers as kept in the log: at most [`MAX_HEADERS`] entries and
/// [`MAX_HEADER_BYTES`] of names and values, like the body excerpt, so a
/// hostile receiver cannot bloat the attempt log. What is cut is marked.
fn cap_headers(pairs: Vec<(String, String)>) -> serde_json::Value {
    let total = pairs.len();
    let mut kept: Vec<(String, String)> = Vec::new();
    // Room for the marker is reserved up front.
    let mut budget = MAX_HEADER_BYTES - TRUNCATED_HEADER.len() - "true".len();
    let mut truncated = false;
    for (name, value) in pairs.into_iter().take(MAX_HEADERS) {
        if name.len() > budget {
            truncated = true;
            break;
        }
        budget -= name.len();
        let short = prefix(&value, budget);
        budget -= short.len();
        truncated = short.len() < value.len();
        kept.push((name, short.to_owned()));
        if truncated {
            break;
        }
    }
    if truncated || kept.len() < total {
        kept.truncate(MAX_HEADERS - 1);
        kept.push((TRUNCATED_HEADER.to_owned(), "true".to_owned()));
    }
    serde_json::Value::Object(
        kept.into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect(),
    )
}

/// The answer's headers (a repeated name keeps its first value) and the
/// kept start of its body, as the log stores them.
fn excerpt_of(resp: Response) -> (Option<serde_json::Value>, Option<String>) {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (name, value) in resp.headers {
        if !pairs.iter().any(|(n, _)| *n == name) {
            pairs.push((name, value));
        }
    }
    let headers = cap_headers(pairs);
    let text = String::from_utf8_lossy(&resp.body).into_owned();
    (Some(headers), Some(text))
}

impl Endpoint {
    /// The longest one attempt can take: each request ends at its own
    /// deadline, DNS, connect and TLS included; with OAuth2 an attempt may
    /// make four (a token, the request, and after a 401 both again).
    pub fn max_attempt_duration(&self) -> Duration {
        let requests = if self.oauth2.is_some() { 4 } else { 1 };
        self.timeout * requests
    }
}

/// Render, sign and POST one job. Never panics on bad input or network errors.
pub fn send(job: &Job, excerpt_bytes: usize) -> Outcome {
    let ep = &job.endpoint;
    let agent = &job.agent;
    let job_attempt = &job.attempt;
    let started_at = SystemTime::now();
    let clock = Instant::now();
    let mut out = Outcome {
        delivery_id: job_attempt.delivery_id,
        webhook_id: ep.id,
        topic: job_attempt.topic.clone(),
        attempt: job_attempt.attempt,
        started_at,
        duration_ms: 0.0,
        status_code: None,
        response_headers: None,
        response_excerpt: None,
        error: None,
        retry_after: None,
    };
    let facts = EventFacts {
        id: &job_attempt.event_id,
        topic: &job_attempt.topic,
        tenant_id: &job_attempt.tenant_id,
        body: &job_attempt.body,
    };
    let body = match render_body(&facts, ep.content_type, ep.template.as_ref()) {
        Ok(b) => b,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    let timestamp = unix_now();
    let timestamp_text = timestamp.to_string();
    let signatures = ep.secret_key.as_ref().map(|key| {
        let mut signatures =
            signature::sign(key, &job_attempt.event_id, timestamp, body.as_bytes());
        // During a rotation's overlap both secrets sign (space-separated,
        // as Standard Webhooks allows): receivers verify with either.
        if let Some((previous, until)) = &ep.previous_key {
            if SystemTime::now() < *until {
                signatures.push(' ');
                signatures.push_str(&signature::sign(
                    previous,
                    &job_attempt.event_id,
                    timestamp,
                    body.as_bytes(),
                ));
            }
        }
        signatures
    });
    let post = |authorization: Option<&str>| {
        let mut headers: Vec<(&str, &str)> = vec![
            ("Content-Type", ep.content_type.as_str()),
            ("webhook-id", &job_attempt.event_id),
            ("webhook-timestamp", &timestamp_text),
            ("webhook-type", &job_attempt.topic),
        ];
        if let Some(auth) = authorization {
            headers.push(("Authorization", auth));
        }
        if let Some(signatures) = &signatures {
            headers.push(("webhook-signature", signatures));
        }
        for (name, value) in &ep.headers {
            headers.push((name, value));
        }
        agent.post(&Post {
            url: &ep.url,
            headers: &headers,
            body: body.as_bytes(),
            timeout: ep.timeout,
            keep: excerpt_bytes,
            drain: MAX_DRAIN_BYTES,
        })
    };
    let result = match &ep.oauth2 {
        None => post(ep.authorization.as_deref()),
        Some(oauth) => {
            let sent = oauth.access_token(agent, ep.timeout, None).map(|token| {
                let result = post(Some(&format!("Bearer {token}")));
                (token, result)
            });
            // A 401 means the cached token was revoked or expired early:
            // fetch a new one once and send again.
            let sent = match sent {
                Ok((token, Ok(resp))) if resp.status == 401 => oauth
                    .access_token(agent, ep.timeout, Some(&token))
                    .map(|fresh| post(Some(&format!("Bearer {fresh}")))),
                other => other.map(|(_, result)| result),
            };
            match sent {
                Ok(result) => result,
                Err(e) => {
                    out.error = Some(e);
                    out.duration_ms = clock.elapsed().as_secs_f64() * 1000.0;
                    return out;
                }
            }
        }
    };
    match result {
        Err(e) => {
            out.error = Some(transport_error(&e.0, &ep.url, &ep.secret_texts()));
        }
        Ok(resp) => {
            let code = resp.status;
            out.status_code = Some(code);
            out.retry_after = retry_after(&resp);
            if (300..400).contains(&code) {
                let target = resp
                    .header("location")
                    .map_or_else(|| "?".to_owned(), |l| redact_location(&ep.url, l));
                out.error = Some(format!(
                    "redirect {code} to {target} not followed; update the webhook URL"
                ));
            } else if !(200..300).contains(&code) {
                out.error = Some(format!("receiver answered HTTP {code}"));
            }
            let (headers, excerpt) = excerpt_of(resp);
            out.response_headers = headers;
            out.response_excerpt = excerpt;
        }
    }
    out.duration_ms = clock.elapsed().as_secs_f64() * 1000.0;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bytes(v: &serde_json::Value) -> usize {
        v.as_object().map_or(0, |m| {
            m.iter()
                .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
                .sum()
        })
    }

    #[test]
    fn response_headers_are_capped_in_count_and_bytes() {
        let few = vec![("a".to_string(), "1".to_string()), ("b".into(), "2".into())];
        assert_eq!(cap_headers(few), json!({"a": "1", "b": "2"}));

        let exactly: Vec<_> = (0..MAX_HEADERS)
            .map(|i| (format!("h{i}"), "v".to_string()))
            .collect();
        let h = cap_headers(exactly);
        assert_eq!(h.as_object().map(|m| m.len()), Some(MAX_HEADERS));
        assert!(h.get(TRUNCATED_HEADER).is_none());

        let many: Vec<_> = (0..200)
            .map(|i| (format!("x-h{i}"), "v".repeat(10)))
            .collect();
        let h = cap_headers(many);
        assert_eq!(h.as_object().map(|m| m.len()), Some(MAX_HEADERS));
        assert_eq!(h[TRUNCATED_HEADER], "true");
        assert!(h.get("x-h0").is_some() && h.get("x-h49").is_none());

        let huge: Vec<_> = (0..10)
            .map(|i| (format!("x-big{i}"), "é".repeat(5000)))
            .collect();
        let h = cap_headers(huge);
        assert!(bytes(&h) <= MAX_HEADER_BYTES, "{}", bytes(&h));
        assert_eq!(h[TRUNCATED_HEADER], "true");
        let cut = h["x-big0"].as_str().unwrap_or_default();
        assert!(cut.len() > 8000 && cut.chars().all(|c| c == 'é'));
    }
}
