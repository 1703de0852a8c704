//! "Send Test": post a topic's sample body to a webhook right now, exactly
//! as a real delivery would be sent, and log it as a test delivery.

use crate::api::preview::sample_event;
use crate::delivery::http::{self, AgentSettings, Attempt, Endpoint, Job};
use crate::delivery::policy::AddressPolicy;
use crate::delivery::store;
use crate::error::{OrRaise, Result, WebhookError};
use crate::guc;
use pgrx::prelude::*;
use std::sync::Arc;
use std::time::Duration;

type TestResult = (Option<i32>, Option<String>, f64, Option<String>, i64);

/// Post `topic`'s sample body (default: the webhook's first topic) to webhook
/// `webhook_id`, synchronously, with its content type, template, auth,
/// headers and signature. Returns the response and records a test delivery.
// pgrx spells a named result row as a tuple of name!() types.
#[allow(clippy::type_complexity)]
#[pg_extern(volatile)]
fn send_test(
    webhook_id: i64,
    topic: default!(Option<&str>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(status_code, Option<i32>),
        name!(response_excerpt, Option<String>),
        name!(duration_ms, f64),
        name!(error, Option<String>),
        name!(delivery_id, i64),
    ),
> {
    let result = Spi::connect_mut(|client| -> Result<TestResult> {
        let timeout = Duration::from_millis(guc::REQUEST_TIMEOUT_MS.get().max(100) as u64);
        let (row, _) = store::load_endpoints(client, vec![webhook_id])?
            .into_iter()
            .next()
            .ok_or(WebhookError::NotFound { what: "webhook", key: webhook_id.to_string() })?;
        let topics: Vec<String> = client
            .select("SELECT topics FROM webhook.webhooks WHERE id = $1", Some(1), &[webhook_id.into()])?
            .first()
            .get::<Vec<String>>(1)?
            .unwrap_or_default();
        let topic = match topic {
            Some(t) => t.to_owned(),
            None => topics.first().cloned().unwrap_or_default(),
        };
        let event = sample_event(client, &topic)?;
        let endpoint = Endpoint::from_row(row, timeout)?;
        let agent = http::build_agent(&AgentSettings {
            policy: AddressPolicy::parse(&guc::string(&guc::ALLOWED_HOSTS))?,
            ca_file: Some(guc::string(&guc::CA_FILE)).filter(|s| !s.is_empty()),
            pool_size: 1,
        })?;
        let job = Job {
            attempt: Attempt {
                delivery_id: 0,
                attempt: 1,
                event_id: event.id.clone(),
                topic: topic.clone(),
                tenant_id: event.tenant_id.clone(),
                body: event.body.clone(),
            },
            endpoint: Arc::new(endpoint),
            agent,
        };
        let outcome = http::send(&job, guc::RESPONSE_EXCERPT_BYTES.get().max(0) as usize);
        let status = if outcome.delivered() { "delivered" } else { "dead" };
        let delivery_id: i64 = client
            .update(
                "WITH e AS (INSERT INTO webhook.events (id, topic, body, tenant_id, is_test)
                            VALUES ($1, $2, $3::json, $4, true) RETURNING id)
                 INSERT INTO webhook.deliveries (event_id, webhook_id, status, attempts, is_test,
                        last_attempt_at, last_status_code, last_error, delivered_at)
                 SELECT e.id, $5, $6, 1, true, now(), $7, $8, CASE WHEN $6 = 'delivered' THEN now() END FROM e
                 RETURNING id",
                None,
                &[
                    event.id.as_str().into(),
                    topic.as_str().into(),
                    event.body.as_str().into(),
                    event.tenant_id.as_str().into(),
                    webhook_id.into(),
                    status.into(),
                    outcome.status_code.map(i32::from).into(),
                    outcome.error.clone().into(),
                ],
            )?
            .first()
            .get::<i64>(1)?
            .unwrap_or_default();
        client.update(
            "INSERT INTO webhook.attempts (delivery_id, attempt, started_at, duration_ms, status_code,
                    response_headers, response_excerpt, error)
             VALUES ($1, 1, now(), $2, $3, $4::jsonb, $5, $6)",
            None,
            &[
                delivery_id.into(),
                outcome.duration_ms.into(),
                outcome.status_code.map(i32::from).into(),
                outcome.response_headers.as_ref().map(|h| h.to_string()).into(),
                outcome.response_excerpt.clone().into(),
                outcome.error.clone().into(),
            ],
        )?;
        Ok((outcome.status_code.map(i32::from), outcome.response_excerpt, outcome.duration_ms, outcome.error, delivery_id))
    })
    .or_raise();
    TableIterator::once(result)
}
