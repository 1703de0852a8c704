//! A webhook's settings: the one column list read from `webhook.webhooks`,
//! by name, into one typed model (`Endpoint`) that the worker, the HTTP
//! layer and Send Test all use. A new per-webhook setting is a column here,
//! a field of `EndpointRow` and `Endpoint`, and its SQL (see UPGRADING.md).

use super::credentials::{ClientIdentity, OAuth2};
use crate::error::Result;
use crate::render::template::Template;
use crate::render::{signature, ContentType};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use pgrx::spi::{SpiClient, SpiHeapTupleData};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Request timeouts are clamped to the range webhook.request_timeout and
/// timeout_ms allow, whatever a caller passes.
const MIN_REQUEST_TIMEOUT: Duration = Duration::from_millis(100);
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// A webhook's delivery settings, parsed once and shared by its jobs.
#[derive(Debug)]
pub struct Endpoint {
    pub id: i64,
    pub url: String,
    pub content_type: ContentType,
    pub template: Option<Template>,
    pub authorization: Option<String>,
    pub secret_key: Option<Vec<u8>>,
    /// The secret a rotation replaced, still signing until the overlap ends.
    pub previous_key: Option<(Vec<u8>, SystemTime)>,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    /// Most requests started per second (None: no limit).
    pub rate_limit: Option<u32>,
    /// Ordered delivery (fifo or per_key): the worker claims again as soon
    /// as one of its outcomes is recorded, since that frees the next.
    pub ordered: bool,
    /// The mTLS certificate and key this endpoint presents.
    pub client_identity: Option<ClientIdentity>,
    /// OAuth2 client credentials; the token replaces `authorization`.
    pub oauth2: Option<OAuth2>,
    /// This endpoint's own HTTP client, when it presents a client
    /// certificate (the shared client presents none).
    pub agent: Option<crate::http::client::Client>,
    /// Outcomes go to the webhook's callback (`webhook.outcomes`).
    pub outcome_callback: bool,
}

/// The columns of `webhook.webhooks` an endpoint is built from, each read
/// by its name in `EndpointRow::read`; `version` is the row's `updated_at`,
/// by which the worker knows a cached endpoint is stale.
const SETTINGS_SQL: &str =
    "SELECT id, url, content_type, body_template, auth_username, auth_password,
        signing_secret, headers::text AS headers, timeout_ms, topics,
        previous_signing_secret,
        extract(epoch FROM previous_signing_secret_until)::float8 AS previous_signing_secret_until,
        bearer_token, rate_limit_per_second, ordering, client_certificate, client_key,
        oauth2_token_url, oauth2_client_id, oauth2_client_secret, oauth2_scope,
        outcome_callback IS NOT NULL AS has_outcome_callback,
        extract(epoch FROM updated_at)::float8 AS version
   FROM webhook.webhooks WHERE id = ANY ($1)";

/// The settings of webhooks `ids` as stored, each with its version. Plain
/// reads: no row is locked.
pub fn load(client: &SpiClient, ids: Vec<i64>) -> Result<Vec<(EndpointRow, f64)>> {
    let mut out = Vec::new();
    for row in client.select(SETTINGS_SQL, None, &[ids.into()])? {
        out.push((
            EndpointRow::read(&row)?,
            row.get_by_name("version")?.unwrap_or_default(),
        ));
    }
    Ok(out)
}

/// Raw webhook columns as read from `webhook.webhooks`.
pub struct EndpointRow {
    pub id: i64,
    /// The subscribed topics (Send Test's default topic is the first).
    pub topics: Vec<String>,
    pub url: String,
    pub content_type: String,
    pub body_template: Option<String>,
    pub auth_username: Option<String>,
    pub auth_password: Option<String>,
    pub signing_secret: Option<String>,
    pub headers: serde_json::Value,
    pub timeout_ms: Option<i32>,
    pub previous_signing_secret: Option<String>,
    /// Seconds since the Unix epoch.
    pub previous_signing_secret_until: Option<f64>,
    pub bearer_token: Option<String>,
    pub rate_limit_per_second: Option<i32>,
    pub ordering: String,
    pub client_certificate: Option<String>,
    pub client_key: Option<String>,
    pub oauth2_token_url: Option<String>,
    pub oauth2_client_id: Option<String>,
    pub oauth2_client_secret: Option<String>,
    pub oauth2_scope: Option<String>,
    /// An outcome callback is set (the worker queues its outcomes).
    pub has_outcome_callback: bool,
}

impl EndpointRow {
    fn read(row: &SpiHeapTupleData) -> Result<EndpointRow> {
        let headers: String = row.get_by_name("headers")?.unwrap_or_else(|| "{}".into());
        Ok(EndpointRow {
            id: row.get_by_name("id")?.unwrap_or_default(),
            topics: row.get_by_name("topics")?.unwrap_or_default(),
            url: row.get_by_name("url")?.unwrap_or_default(),
            content_type: row.get_by_name("content_type")?.unwrap_or_default(),
            body_template: row.get_by_name("body_template")?,
            auth_username: row.get_by_name("auth_username")?,
            auth_password: row.get_by_name("auth_password")?,
            signing_secret: row.get_by_name("signing_secret")?,
            headers: serde_json::from_str(&headers).unwrap_or_default(),
            timeout_ms: row.get_by_name("timeout_ms")?,
            previous_signing_secret: row.get_by_name("previous_signing_secret")?,
            previous_signing_secret_until: row.get_by_name("previous_signing_secret_until")?,
            bearer_token: row.get_by_name("bearer_token")?,
            rate_limit_per_second: row.get_by_name("rate_limit_per_second")?,
            ordering: row.get_by_name("ordering")?.unwrap_or_default(),
            client_certificate: row.get_by_name("client_certificate")?,
            client_key: row.get_by_name("client_key")?,
            oauth2_token_url: row.get_by_name("oauth2_token_url")?,
            oauth2_client_id: row.get_by_name("oauth2_client_id")?,
            oauth2_client_secret: row.get_by_name("oauth2_client_secret")?,
            oauth2_scope: row.get_by_name("oauth2_scope")?,
            has_outcome_callback: row.get_by_name("has_outcome_callback")?.unwrap_or(false),
        })
    }
}

impl Endpoint {
    /// What the request carries that no log may show: the Authorization
    /// value (and the token or credentials in it), extra header values,
    /// OAuth2 client credentials.
    pub fn secret_texts(&self) -> Vec<&str> {
        let mut secrets: Vec<&str> = self.headers.iter().map(|(_, v)| v.as_str()).collect();
        if let Some(auth) = &self.authorization {
            secrets.push(auth);
            if let Some((_, credential)) = auth.split_once(' ') {
                secrets.push(credential);
            }
        }
        if let Some(oauth) = &self.oauth2 {
            secrets.push(&oauth.client_id);
            secrets.push(&oauth.client_secret);
        }
        secrets
    }

    pub fn from_row(row: EndpointRow, default_timeout: Duration) -> Result<Endpoint> {
        let authorization = match (row.auth_username, row.auth_password, row.bearer_token) {
            (Some(u), Some(p), _) => Some(format!("Basic {}", B64.encode(format!("{u}:{p}")))),
            (_, _, Some(token)) => Some(format!("Bearer {token}")),
            _ => None,
        };
        let previous_key = match (
            row.previous_signing_secret,
            row.previous_signing_secret_until,
        ) {
            (Some(secret), Some(until)) if until.is_finite() && until > 0.0 => Some((
                signature::decode_secret(&secret)?,
                UNIX_EPOCH + Duration::from_secs_f64(until.min(1e11)),
            )),
            _ => None,
        };
        let headers = row
            .headers
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let client_identity = match (&row.client_certificate, &row.client_key) {
            (Some(cert), Some(key)) => Some(ClientIdentity::from_pem(cert, key)?),
            _ => None,
        };
        let oauth2 = match (
            row.oauth2_token_url,
            row.oauth2_client_id,
            row.oauth2_client_secret,
        ) {
            (Some(url), Some(id), Some(secret)) => {
                Some(OAuth2::new(url, id, secret, row.oauth2_scope))
            }
            _ => None,
        };
        Ok(Endpoint {
            id: row.id,
            url: row.url,
            content_type: ContentType::parse(&row.content_type)?,
            template: row
                .body_template
                .as_deref()
                .map(Template::parse)
                .transpose()?,
            authorization,
            secret_key: row
                .signing_secret
                .as_deref()
                .map(signature::decode_secret)
                .transpose()?,
            previous_key,
            headers,
            timeout: clamp_timeout(row.timeout_ms.map_or(default_timeout, |ms| {
                Duration::from_millis(u64::try_from(ms).unwrap_or(0))
            })),
            rate_limit: row
                .rate_limit_per_second
                .and_then(|r| u32::try_from(r).ok())
                .filter(|r| *r > 0),
            ordered: row.ordering != "none",
            client_identity,
            oauth2,
            agent: None,
            outcome_callback: row.has_outcome_callback,
        })
    }
}

fn clamp_timeout(t: Duration) -> Duration {
    t.clamp(MIN_REQUEST_TIMEOUT, MAX_REQUEST_TIMEOUT)
}
