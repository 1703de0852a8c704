//! One HTTP attempt: render the body, sign it, POST it, classify the
//! answer. Runs on delivery threads and in Send Test; never calls Postgres.

use super::job::{Job, Outcome};
use super::policy::{DnsDeadline, DNS_TIMEOUT};
use super::redact::{redact_location, transport_error};
use crate::render::{render_body, signature, EventFacts};
use crate::settings::endpoint::Endpoint;
use std::io::Read;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const USER_AGENT: &str = concat!(
    "webhook_emitter/",
    env!("CARGO_PKG_VERSION"),
    " (PostgreSQL extension)"
);
/// Most response bytes read to keep a connection reusable; beyond this the
/// connection is dropped instead of drained.
const MAX_DRAIN_BYTES: u64 = 256 * 1024;
/// Longest TCP connect (per agent: less when webhook.request_timeout is
/// shorter). ureq's request timeout does not cover it once this is set.
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

fn retry_after(resp: &ureq::Response) -> Option<Duration> {
    if !matches!(resp.status(), 429 | 503) {
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

fn excerpt_of(resp: ureq::Response, keep: usize) -> (Option<serde_json::Value>, Option<String>) {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for name in resp.headers_names() {
        // A repeated name keeps its first value, as before.
        if pairs.iter().any(|(n, _)| *n == name) {
            continue;
        }
        if let Some(v) = resp.header(&name) {
            let v = v.to_owned();
            pairs.push((name, v));
        }
    }
    let headers = cap_headers(pairs);
    // Read (and so free the connection for reuse) up to MAX_DRAIN_BYTES.
    let mut buf = Vec::new();
    let _ = resp
        .into_reader()
        .take(MAX_DRAIN_BYTES)
        .read_to_end(&mut buf);
    buf.truncate(keep);
    let text = String::from_utf8_lossy(&buf).into_owned();
    (Some(headers), Some(text))
}

impl Endpoint {
    /// The longest one attempt can take: DNS, connect, then the request.
    pub fn max_attempt_duration(&self) -> Duration {
        self.timeout.min(DNS_TIMEOUT) + CONNECT_TIMEOUT + self.timeout
    }
}

/// Render, sign and POST one job. Never panics on bad input or network errors.
// ureq's own Result (with its large Error) passes between the closures
// here; boxing it would only add an allocation per request.
#[allow(clippy::result_large_err)]
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
        let mut req = agent
            .post(&ep.url)
            .timeout(ep.timeout)
            .set("Content-Type", ep.content_type.as_str())
            .set("webhook-id", &job_attempt.event_id)
            .set("webhook-timestamp", &timestamp.to_string())
            .set("webhook-type", &job_attempt.topic);
        if let Some(auth) = authorization {
            req = req.set("Authorization", auth);
        }
        if let Some(signatures) = &signatures {
            req = req.set("webhook-signature", signatures);
        }
        for (name, value) in &ep.headers {
            req = req.set(name, value);
        }
        // DNS gets its own deadline (ureq's timeout does not cover it).
        let dns_deadline = DnsDeadline::set(ep.timeout.min(DNS_TIMEOUT));
        let result = req.send_bytes(body.as_bytes());
        drop(dns_deadline);
        result
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
                Ok((token, Err(ureq::Error::Status(401, _)))) => oauth
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
    let response = match result {
        Ok(resp) => Some(resp),
        Err(ureq::Error::Status(_, resp)) => Some(resp),
        Err(ureq::Error::Transport(t)) => {
            // ureq's text starts with the full URL (query string included)
            // and may quote a header; the log is readable by PUBLIC.
            out.error = Some(transport_error(&t, &ep.url, &ep.secret_texts()));
            None
        }
    };
    if let Some(resp) = response {
        let code = resp.status();
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
        let (headers, excerpt) = excerpt_of(resp, excerpt_bytes);
        out.response_headers = headers;
        out.response_excerpt = excerpt;
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
