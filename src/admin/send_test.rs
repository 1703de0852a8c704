//! "Send Test": post a topic's sample body to a webhook right now, exactly
//! as a real delivery would be sent, and log it as a test delivery.
//!
//! The request runs on a helper thread (signals blocked, no Postgres calls)
//! while the session waits in short latch sleeps that check for interrupts,
//! so query cancel and statement_timeout stop it with their usual errors.
//! Only plain reads happen before the request: no webhook row is locked
//! while it runs.

use super::preview::{sample_event, StoredEvent};
use crate::error::{OrRaise, Result, WebhookError};
use crate::guc;
use crate::http::agent::{build_agent, AgentSettings};
use crate::http::job::{Attempt, Job, Outcome};
use crate::http::request;
use crate::http::threads::spawn_quiet;
use crate::settings::endpoint::{self, Endpoint};
use crate::worker::record::log_attempts;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

type TestResult = (Option<i32>, Option<String>, f64, Option<String>, i64);

/// How long each sleep between interrupt checks lasts.
const WAIT_SLICE: Duration = Duration::from_millis(10);
/// Grace beyond the attempt's own deadlines before the session gives up.
const WAIT_MARGIN: Duration = Duration::from_secs(1);

/// Post `topic`'s sample body (default: the webhook's first topic) to webhook
/// `webhook_id`, synchronously, with its content type, template, auth,
/// headers and signature. Returns the response and records a test delivery.
// pgrx spells a named result row as a tuple of name!() types.
// SECURITY DEFINER: webhook_admin may execute it but not write the queue
// tables it records the test delivery in.
#[allow(clippy::type_complexity)]
#[pg_extern(volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
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
    // A standby can send but not record: refuse before anything is sent.
    // SAFETY: reads shared recovery state.
    if unsafe { pg_sys::RecoveryInProgress() } {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            "send_test: this server is a standby (in recovery); Send Test records its attempt in the delivery log, which only the primary can write",
            "Run webhook.send_test on the primary."
        );
    }
    let (endpoint, topic, event) = Spi::connect(|client| -> Result<_> {
        // Plain SELECTs: they take no row locks.
        let (row, _) = endpoint::load(client, vec![webhook_id])?
            .into_iter()
            .next()
            .ok_or(WebhookError::NotFound {
                what: "webhook",
                key: webhook_id.to_string(),
            })?;
        let topic = match topic {
            Some(t) => t.to_owned(),
            None => row.topics.first().cloned().unwrap_or_default(),
        };
        let event = sample_event(client, &topic)?;
        let endpoint = Endpoint::from_row(row, guc::request_timeout())?;
        Ok((endpoint, topic, event))
    })
    .or_raise();
    let settings = match AgentSettings::from_gucs(1) {
        (_, Some(e)) => Err(e),
        (settings, None) => Ok(settings),
    }
    .or_raise();
    let agent = build_agent(&settings, endpoint.client_identity.as_ref()).or_raise();
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
    let outcome = send_interruptibly(job, guc::response_excerpt_bytes());
    let result = Spi::connect_mut(|client| -> Result<TestResult> {
        let delivery_id = record(client, webhook_id, &topic, &event, &outcome)?;
        Ok((
            outcome.status_code.map(i32::from),
            outcome.response_excerpt.clone(),
            outcome.duration_ms,
            outcome.error.clone(),
            delivery_id,
        ))
    })
    .or_raise();
    TableIterator::once(result)
}

/// Run the request on a helper thread; wait for it in short slices,
/// checking for cancel and statement_timeout between them (which raise and
/// abandon the thread: it only holds its own data and ends on its deadline).
fn send_interruptibly(job: Job, excerpt_bytes: usize) -> Outcome {
    let limit = job.endpoint.max_attempt_duration() + WAIT_MARGIN;
    let failed = {
        let (webhook_id, started_at) = (job.endpoint.id, SystemTime::now());
        let topic = job.attempt.topic.clone();
        move |error: String| Outcome {
            delivery_id: 0,
            webhook_id,
            topic: topic.clone(),
            attempt: 1,
            started_at,
            duration_ms: 0.0,
            status_code: None,
            response_headers: None,
            response_excerpt: None,
            error: Some(error),
            retry_after: None,
        }
    };
    let (tx, rx) = channel();
    let spawned = spawn_quiet("webhook-send-test".into(), move || {
        let outcome = catch_unwind(AssertUnwindSafe(|| request::send(&job, excerpt_bytes)));
        // The session may have been cancelled meanwhile: nobody to tell.
        let _ = tx.send(outcome.ok());
    });
    if let Err(e) = spawned {
        return failed(format!("cannot start the request thread: {e}"));
    }
    let started = Instant::now();
    loop {
        match rx.try_recv() {
            Ok(Some(outcome)) => return outcome,
            Ok(None) | Err(TryRecvError::Disconnected) => {
                return failed("internal error while sending (panic)".into())
            }
            Err(TryRecvError::Empty) => {}
        }
        if started.elapsed() >= limit {
            return failed(format!(
                "no answer within {} ms; the request was abandoned",
                limit.as_millis()
            ));
        }
        sleep_interruptibly(WAIT_SLICE);
    }
}

/// Sleep on the latch (which cancel and timeout signals set), then raise
/// any pending interrupt: query cancel, statement_timeout, termination.
fn sleep_interruptibly(slice: Duration) {
    let flags = (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32;
    let ms = slice.as_millis().min(1000) as std::ffi::c_long;
    // SAFETY: the session's own latch, on the session's main thread.
    unsafe {
        pg_sys::WaitLatch(pg_sys::MyLatch, flags, ms, pg_sys::PG_WAIT_EXTENSION);
        pg_sys::ResetLatch(pg_sys::MyLatch);
    }
    check_for_interrupts!();
}

/// Log the test as a delivery with one attempt; returns the delivery id.
fn record(
    client: &mut pgrx::spi::SpiClient,
    webhook_id: i64,
    topic: &str,
    event: &StoredEvent,
    outcome: &Outcome,
) -> Result<i64> {
    let status = if outcome.delivered() {
        "delivered"
    } else {
        "dead"
    };
    let delivery_id: i64 = client
        .update(
            "WITH e AS (INSERT INTO webhook.events (id, topic, body, tenant_id, is_test)
                        VALUES ($1, $2, $3::json, $4, true) RETURNING id, slot)
             INSERT INTO webhook.deliveries (event_id, webhook_id, status, attempts, is_test,
                    last_attempt_at, last_status_code, last_error, delivered_at, slot)
             SELECT e.id, $5, $6, 1, true, now(), $7, $8, CASE WHEN $6 = 'delivered' THEN now() END, e.slot FROM e
             RETURNING id",
            None,
            &[
                event.id.as_str().into(),
                topic.into(),
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
    let logged = Outcome {
        delivery_id,
        ..outcome.clone()
    };
    log_attempts(client, &[&logged])?;
    Ok(delivery_id)
}
