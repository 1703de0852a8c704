//! The worker's SQL: claiming due deliveries, loading endpoints, recording
//! outcomes, pruning. Every statement takes SPI arguments; none is built
//! from data. Runs only on the worker's main thread.

use super::http::EndpointRow;
use super::plans::{replan_after_growth, run_saved, statistics_stale};
use super::types::{Attempt, DeliveryStatus, Verdict};
use crate::error::Result;
use pgrx::pg_sys::BuiltinOid::{
    FLOAT8ARRAYOID, FLOAT8OID, INT4ARRAYOID, INT8ARRAYOID, INT8OID, TEXTARRAYOID,
};
use pgrx::spi::SpiClient;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A claimed delivery, before its endpoint is attached.
pub struct Claimed {
    pub attempt: Attempt,
    /// False when the delivery's event no longer exists.
    pub event_found: bool,
    /// The body's size, when it is over the limit and was not loaded.
    pub body_too_large: Option<i64>,
    pub webhook_id: i64,
    pub webhook_version: f64,
}

/// The installed version of the extension in this database, if any.
pub fn extension_version(client: &SpiClient) -> Result<Option<String>> {
    Ok(client
        .select(
            "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'webhook_emitter'",
            None,
            &[],
        )?
        .first()
        .get::<String>(1)
        .unwrap_or(None))
}

/// Attempts interrupted by a crash or restart become due again at once.
/// Only one worker exists, so anything still "delivering" is orphaned.
///
/// A delivery whose attempts were interrupted [`POISON_INTERRUPTIONS`]
/// times (attempts started but never recorded) is set aside as dead: if it
/// is what crashes the worker, it must not put the server into a crash
/// loop, and the other deliveries go on.
pub fn release_orphans(client: &mut SpiClient) -> Result<usize> {
    let t = client.update(
        "WITH orphan AS (
             SELECT d.id, d.attempts - (SELECT count(*) FROM webhook.attempts a WHERE a.delivery_id = d.id) AS interrupted
               FROM webhook.deliveries d WHERE d.status = 'delivering')
         UPDATE webhook.deliveries d
            SET status = CASE WHEN o.interrupted >= $1 THEN 'dead' ELSE 'failed' END,
                next_attempt_at = now(), lease_until = NULL,
                last_error = CASE WHEN o.interrupted >= $1
                    THEN format('set aside: the worker stopped during %s of its attempts (a crash or restart); inspect it, then webhook.redeliver(%s)', o.interrupted, d.id)
                    ELSE 'interrupted: the worker stopped before this attempt finished' END
           FROM orphan o WHERE d.id = o.id",
        None,
        &[POISON_INTERRUPTIONS.into()],
    )?;
    Ok(t.len())
}

/// Interrupted attempts after which a delivery is set aside.
pub const POISON_INTERRUPTIONS: i64 = 3;

/// How many bytes of bodies a claim may load.
#[derive(Clone, Copy)]
pub struct ClaimBytes {
    /// In all (at least one delivery is claimed whatever its size).
    pub budget: i64,
    /// Per body: a larger body is not loaded and its delivery fails.
    pub max_body: i64,
}

/// The claim statement: $1 the limit, $2 the left-out webhooks, $3 the
/// lease in seconds, $4 the bytes of bodies it may load (at least one
/// delivery is taken), $5 the largest body loaded (a larger one comes
/// back without its body, and its delivery fails).
///
/// The statement is written so that its plan stays cheap whatever the
/// statistics say. Statistics can say "empty" for a table of a million
/// rows: an autovacuum that ran while a large enqueue was uncommitted
/// counts none of its rows. A plan made then joined the claimed rows to
/// the deliveries and events tables by walking whole indexes, once per
/// row: a single claim ran for minutes. So every table is reached only
/// through an index condition (`= ANY` of the ids already chosen, or a
/// correlated lookup by primary key), never through a join the planner
/// could turn into a full scan; and the due rows are found by the due
/// index's order, with no estimate that would make "scan everything and
/// sort" look cheaper.
pub(crate) const CLAIM_SQL: &str = "WITH RECURSIVE heads AS (
     (SELECT d.webhook_id, d.order_key, d.id, d.status, d.next_attempt_at
        FROM webhook.deliveries d
       WHERE d.order_key IS NOT NULL AND d.status IN ('pending', 'failed', 'delivering', 'held')
       ORDER BY d.webhook_id, d.order_key, d.id LIMIT 1)
     UNION ALL
     SELECT n.* FROM heads h CROSS JOIN LATERAL (
         SELECT d.webhook_id, d.order_key, d.id, d.status, d.next_attempt_at
           FROM webhook.deliveries d
          WHERE d.order_key IS NOT NULL AND d.status IN ('pending', 'failed', 'delivering', 'held')
            AND (d.webhook_id, d.order_key) > (h.webhook_id, h.order_key)
          ORDER BY d.webhook_id, d.order_key, d.id LIMIT 1) n),
 ready_heads AS (
     SELECT h.id FROM heads h
      WHERE h.status IN ('pending', 'failed') AND h.next_attempt_at <= now()
        AND h.webhook_id <> ALL ($2)
      LIMIT $1),
 -- coalesce(): with one webhook, webhook_id's statistics make any
 -- `<> ALL` test look like it keeps no row, and a generic plan
 -- then sorts the whole queue instead of reading the due index.
 -- The enabled test is a correlated lookup, not a join.
 due_unordered AS (
     SELECT d.id, d.next_attempt_at, d.event_id FROM webhook.deliveries d
      WHERE d.status IN ('pending', 'failed') AND d.order_key IS NULL
        AND d.next_attempt_at <= now()
        AND coalesce(d.webhook_id <> ALL ($2), true)
        AND (SELECT w.enabled FROM webhook.webhooks w WHERE w.id = d.webhook_id)
      ORDER BY d.next_attempt_at
      LIMIT $1
      FOR UPDATE OF d SKIP LOCKED),
 due_heads AS (
     SELECT d.id, d.next_attempt_at, d.event_id FROM webhook.deliveries d
      WHERE d.id = ANY (ARRAY(SELECT id FROM ready_heads))
        AND d.status IN ('pending', 'failed') AND d.next_attempt_at <= now()
        AND (SELECT w.enabled FROM webhook.webhooks w WHERE w.id = d.webhook_id)
      FOR UPDATE OF d SKIP LOCKED),
 picked AS (
     SELECT due.id, due.next_attempt_at,
            -- octet_length of a stored text reads its size, not the text.
            (SELECT octet_length(e.body::text) FROM webhook.events e WHERE e.id = due.event_id) AS bytes
       FROM (SELECT * FROM due_unordered UNION ALL SELECT * FROM due_heads) due
      ORDER BY due.next_attempt_at LIMIT $1),
 -- Bodies are loaded up to $4 bytes in all (the first delivery always).
 within_budget AS (
     SELECT s.id FROM (
         SELECT p.id, p.loaded, sum(p.loaded) OVER (ORDER BY p.next_attempt_at, p.id ROWS UNBOUNDED PRECEDING) AS upto
           FROM (SELECT id, next_attempt_at, CASE WHEN bytes > $5 THEN 0 ELSE coalesce(bytes, 0) END AS loaded
                   FROM picked) p) s
      WHERE s.upto - s.loaded < $4)
 UPDATE webhook.deliveries d
    SET status = 'delivering', attempts = d.attempts + 1, last_attempt_at = now(),
        lease_until = now() + make_interval(secs => $3)
  WHERE d.id = ANY (ARRAY(SELECT id FROM within_budget))
 RETURNING d.id, d.attempts, d.event_id,
           (SELECT ARRAY[e.topic, e.tenant_id, CASE WHEN octet_length(e.body::text) <= $5 THEN e.body::text END,
                         octet_length(e.body::text)::text]
              FROM webhook.events e WHERE e.id = d.event_id),
           d.webhook_id,
           (SELECT extract(epoch FROM w.updated_at)::float8 FROM webhook.webhooks w WHERE w.id = d.webhook_id)";

/// Lease up to `limit` due deliveries of enabled webhooks not in
/// `left_out` (at their limit, or paused).
///
/// Unordered deliveries are taken by due time. An ordered webhook's
/// delivery is taken only at the head of its sequence (no earlier one of
/// the same webhook and key still pending, failed, delivering or held): a
/// skip scan over `deliveries_sequence_idx` visits one row per sequence, so
/// a long sequence blocked behind a retry costs the claim nothing.
///
/// Also says whether the claim proved the queue's statistics stale (see
/// `plans::statistics_stale`); the caller then analyzes the queue
/// (`plans::analyze_queue`) in a transaction of its own, so that a failure
/// there cannot undo the claim.
pub fn claim(
    client: &mut SpiClient,
    limit: i64,
    left_out: Vec<i64>,
    lease: Duration,
    bytes: ClaimBytes,
) -> Result<(Vec<Claimed>, bool)> {
    let counted_rows = replan_after_growth(client)?;
    let rows = run_saved(
        client,
        CLAIM_SQL,
        &[INT8OID, INT8ARRAYOID, FLOAT8OID, INT8OID, INT8OID],
        &[
            limit.into(),
            left_out.into(),
            lease.as_secs_f64().into(),
            bytes.budget.into(),
            bytes.max_body.into(),
        ],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        // topic, tenant_id, body; NULL when the event row is gone (deleted
        // by hand: pruning never removes an event a delivery refers to).
        let event: Option<Vec<Option<String>>> = row.get(4)?;
        let event_found = event.is_some();
        let mut event = event.unwrap_or_default().into_iter();
        let mut next = || event.next().flatten();
        let (topic, tenant_id, body, size) = (next(), next(), next(), next());
        // A body over the limit comes back as its size alone.
        let body_too_large = match (&body, size) {
            (None, Some(size)) if event_found => size.parse::<i64>().ok(),
            _ => None,
        };
        out.push(Claimed {
            event_found,
            body_too_large,
            attempt: Attempt {
                delivery_id: row.get(1)?.unwrap_or_default(),
                attempt: row.get(2)?.unwrap_or_default(),
                event_id: row.get(3)?.unwrap_or_default(),
                topic: topic.unwrap_or_default(),
                tenant_id: tenant_id.unwrap_or_default(),
                body: body.unwrap_or_default(),
            },
            webhook_id: row.get(5)?.unwrap_or_default(),
            webhook_version: row.get(6)?.unwrap_or_default(),
        });
    }
    let stale = statistics_stale(counted_rows, out.len());
    Ok((out, stale))
}

const ENDPOINT_COLUMNS: &str =
    "SELECT id, url, content_type, body_template, auth_username, auth_password,
        signing_secret, headers::text, timeout_ms, extract(epoch FROM updated_at)::float8,
        previous_signing_secret, extract(epoch FROM previous_signing_secret_until)::float8,
        bearer_token, rate_limit_per_second, ordering, client_certificate, client_key,
        oauth2_token_url, oauth2_client_id, oauth2_client_secret, oauth2_scope
   FROM webhook.webhooks WHERE id = ANY ($1)";

/// Webhook settings by id, with their version (updated_at).
pub fn load_endpoints(client: &SpiClient, ids: Vec<i64>) -> Result<Vec<(EndpointRow, f64)>> {
    let rows = client.select(ENDPOINT_COLUMNS, None, &[ids.into()])?;
    let mut out = Vec::new();
    for row in rows {
        let headers: String = row.get(8)?.unwrap_or_else(|| "{}".into());
        out.push((
            EndpointRow {
                id: row.get(1)?.unwrap_or_default(),
                url: row.get(2)?.unwrap_or_default(),
                content_type: row.get(3)?.unwrap_or_default(),
                body_template: row.get(4)?,
                auth_username: row.get(5)?,
                auth_password: row.get(6)?,
                signing_secret: row.get(7)?,
                headers: serde_json::from_str(&headers).unwrap_or_default(),
                timeout_ms: row.get(9)?,
                previous_signing_secret: row.get(11)?,
                previous_signing_secret_until: row.get(12)?,
                bearer_token: row.get(13)?,
                rate_limit_per_second: row.get(14)?,
                ordering: row.get(15)?.unwrap_or_default(),
                client_certificate: row.get(16)?,
                client_key: row.get(17)?,
                oauth2_token_url: row.get(18)?,
                oauth2_client_id: row.get(19)?,
                oauth2_client_secret: row.get(20)?,
                oauth2_scope: row.get(21)?,
            },
            row.get(10)?.unwrap_or_default(),
        ));
    }
    Ok(out)
}

fn epoch(t: std::time::SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Record a batch of finished attempts: the attempt log, the deliveries'
/// new status, and endpoint health (failing_since, 410, auto-disable).
pub fn record(client: &mut SpiClient, verdicts: &[Verdict], disable_after: Duration) -> Result<()> {
    if verdicts.is_empty() {
        return Ok(());
    }
    // Lock order webhooks → deliveries, the order delete_webhook takes
    // (its cascade reaches the deliveries last): without it, the counters'
    // foreign key check below would wait for a delete that waits for the
    // delivery rows updated here, a deadlock. KEY SHARE does not wait for
    // an admin's update_webhook.
    let mut webhooks: Vec<i64> = verdicts.iter().map(|v| v.outcome.webhook_id).collect();
    webhooks.sort_unstable();
    webhooks.dedup();
    run_saved(
        client,
        "SELECT FROM webhook.webhooks WHERE id = ANY ($1) ORDER BY id FOR KEY SHARE",
        &[INT8ARRAYOID],
        &[webhooks.into()],
    )?;
    let ids: Vec<i64> = verdicts.iter().map(|v| v.outcome.delivery_id).collect();
    let statuses: Vec<&str> = verdicts.iter().map(|v| v.status.as_str()).collect();
    let delays: Vec<Option<f64>> = verdicts
        .iter()
        .map(|v| v.retry_in.map(|d| d.as_secs_f64()))
        .collect();
    let codes: Vec<Option<i32>> = verdicts
        .iter()
        .map(|v| v.outcome.status_code.map(i32::from))
        .collect();
    let errors: Vec<Option<String>> = verdicts.iter().map(|v| v.outcome.error.clone()).collect();
    // A failure of a webhook disabled meanwhile is held, not retried. The
    // webhook is a lookup, not a join: as a join, statistics that said the
    // queue was empty made the plan walk all of deliveries_webhook_idx
    // for every batch. status || '': not the partial index's predicate, so
    // the plan never walks deliveries_leased_idx either.
    run_saved(
        client,
        "UPDATE webhook.deliveries d
            SET status = CASE WHEN r.status = 'failed'
                               AND NOT (SELECT w.enabled FROM webhook.webhooks w WHERE w.id = d.webhook_id)
                              THEN 'held' ELSE r.status END,
                lease_until = NULL, last_status_code = r.code, last_error = r.err,
                next_attempt_at = CASE WHEN r.delay IS NULL THEN d.next_attempt_at
                                       ELSE now() + make_interval(secs => r.delay) END,
                delivered_at = CASE WHEN r.status = 'delivered' THEN now() END
           FROM unnest($1::bigint[], $2::text[], $3::float8[], $4::int[], $5::text[]) AS r(id, status, delay, code, err)
          WHERE d.id = r.id AND d.status || '' = 'delivering'",
        &[INT8ARRAYOID, TEXTARRAYOID, FLOAT8ARRAYOID, INT4ARRAYOID, TEXTARRAYOID],
        &[ids.clone().into(), statuses.clone().into(), delays.into(), codes.clone().into(), errors.clone().into()],
    )?;
    // Monotonic counters for webhook.metrics(), in the same transaction.
    run_saved(
        client,
        "SELECT webhook.count_outcomes($1, $2)",
        &[INT8ARRAYOID, TEXTARRAYOID],
        &[ids.clone().into(), statuses.into()],
    )?;
    let attempts: Vec<i32> = verdicts.iter().map(|v| v.outcome.attempt).collect();
    let started: Vec<f64> = verdicts
        .iter()
        .map(|v| epoch(v.outcome.started_at))
        .collect();
    let durations: Vec<f64> = verdicts.iter().map(|v| v.outcome.duration_ms).collect();
    let headers: Vec<Option<String>> = verdicts
        .iter()
        .map(|v| v.outcome.response_headers.as_ref().map(|h| h.to_string()))
        .collect();
    let excerpts: Vec<Option<String>> = verdicts
        .iter()
        .map(|v| {
            v.outcome
                .response_excerpt
                .as_ref()
                .map(|s| s.replace('\0', ""))
        })
        .collect();
    run_saved(
        client,
        "INSERT INTO webhook.attempts (delivery_id, attempt, started_at, duration_ms, status_code,
                                       response_headers, response_excerpt, error)
         SELECT r.id, r.attempt, to_timestamp(r.started), r.duration, r.code, r.headers::jsonb, r.excerpt, r.err
           FROM unnest($1::bigint[], $2::int[], $3::float8[], $4::float8[], $5::int[], $6::text[], $7::text[], $8::text[])
                AS r(id, attempt, started, duration, code, headers, excerpt, err)
          -- OFFSET 0: a primary-key lookup per attempt, never a join.
          WHERE EXISTS (SELECT FROM webhook.deliveries d WHERE d.id = r.id OFFSET 0)",
        &[INT8ARRAYOID, INT4ARRAYOID, FLOAT8ARRAYOID, FLOAT8ARRAYOID, INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID],
        &[ids.into(), attempts.into(), started.into(), durations.into(), codes.into(), headers.into(), excerpts.into(), errors.into()],
    )?;
    record_health(client, verdicts, disable_after)
}

/// Endpoint health never waits on a lock: a webhook row an admin holds
/// (an open transaction on it) is skipped now and updated with a later
/// batch of outcomes, so delivery never stalls behind it.
fn record_health(
    client: &mut SpiClient,
    verdicts: &[Verdict],
    disable_after: Duration,
) -> Result<()> {
    let mut ok: Vec<i64> = verdicts
        .iter()
        .filter(|v| v.status == DeliveryStatus::Delivered)
        .map(|v| v.outcome.webhook_id)
        .collect();
    ok.sort_unstable();
    ok.dedup();
    let mut failing: Vec<i64> = verdicts
        .iter()
        .filter(|v| {
            v.status != DeliveryStatus::Delivered
                && ok.binary_search(&v.outcome.webhook_id).is_err()
        })
        .map(|v| v.outcome.webhook_id)
        .collect();
    failing.sort_unstable();
    failing.dedup();
    let mut gone: Vec<i64> = verdicts
        .iter()
        .filter(|v| v.outcome.gone())
        .map(|v| v.outcome.webhook_id)
        .collect();
    gone.dedup();
    if !ok.is_empty() {
        client.update(
            "UPDATE webhook.webhooks SET failing_since = NULL WHERE id IN (SELECT l.id FROM webhook.webhooks l WHERE l.id = ANY ($1) FOR NO KEY UPDATE SKIP LOCKED) AND failing_since IS NOT NULL",
            None,
            &[ok.into()],
        )?;
    }
    if !failing.is_empty() {
        client.update(
            "UPDATE webhook.webhooks SET failing_since = now() WHERE id IN (SELECT l.id FROM webhook.webhooks l WHERE l.id = ANY ($1) FOR NO KEY UPDATE SKIP LOCKED) AND failing_since IS NULL",
            None,
            &[failing.clone().into()],
        )?;
        if !disable_after.is_zero() {
            client.update(
                "UPDATE webhook.webhooks
                    SET enabled = false, disabled_at = now(),
                        disabled_reason = format('failing without a success since %s (longer than webhook.disable_after)', failing_since)
                  WHERE id IN (SELECT l.id FROM webhook.webhooks l WHERE l.id = ANY ($1) FOR NO KEY UPDATE SKIP LOCKED) AND enabled AND failing_since < now() - make_interval(secs => $2)",
                None,
                &[failing.into(), disable_after.as_secs_f64().into()],
            )?;
        }
    }
    if !gone.is_empty() {
        client.update(
            "UPDATE webhook.webhooks
                SET enabled = false, disabled_at = now(),
                    disabled_reason = format('receiver answered 410 Gone at %s', now())
              WHERE id IN (SELECT l.id FROM webhook.webhooks l WHERE l.id = ANY ($1) FOR NO KEY UPDATE SKIP LOCKED) AND enabled",
            None,
            &[gone.into()],
        )?;
    }
    Ok(())
}

/// A delivery whose outcome could not be recorded: `failed`, due again
/// after `retry_in`, or `dead` when no retry is left; `error` says why.
pub fn mark_unrecordable(
    client: &mut SpiClient,
    delivery_id: i64,
    retry_in: Option<Duration>,
    error: &str,
) -> Result<()> {
    client.update(
        "UPDATE webhook.deliveries
            SET status = CASE WHEN $2::float8 IS NULL THEN 'dead' ELSE 'failed' END,
                next_attempt_at = CASE WHEN $2::float8 IS NULL THEN next_attempt_at
                                       ELSE now() + make_interval(secs => $2::float8) END,
                lease_until = NULL, last_error = $3
          WHERE id = $1 AND status = 'delivering'",
        None,
        &[
            delivery_id.into(),
            retry_in.map(|d| d.as_secs_f64()).into(),
            error.into(),
        ],
    )?;
    Ok(())
}

/// Deliveries whose lease ran out and that this worker does not hold (a
/// lost job) are due again.
pub fn release_expired_leases(client: &mut SpiClient, held_by_worker: Vec<i64>) -> Result<usize> {
    let t = client.update(
        "UPDATE webhook.deliveries SET status = 'failed', next_attempt_at = now(), lease_until = NULL,
                last_error = 'lease expired: the attempt was lost; sending again'
         WHERE status = 'delivering' AND lease_until < now() AND id <> ALL ($1)",
        None,
        &[held_by_worker.into()],
    )?;
    Ok(t.len())
}

// The maintenance statements below reach the queue the way the claim
// does (see CLAIM_SQL): through `= ANY` of ids already chosen, never a
// join that stale statistics could turn into a full scan per row. OFFSET 0
// keeps the events' NOT EXISTS a lookup per event rather than an anti-join.

/// Held deliveries follow their webhook's enabled flag. The enable/disable
/// trigger does this at once; this sweep catches deliveries queued by a
/// writer that saw the flag before a concurrent change committed.
pub fn sync_held(client: &mut SpiClient) -> Result<usize> {
    let released = client.update(
        "UPDATE webhook.deliveries d SET status = 'pending', next_attempt_at = d.created_at
          WHERE d.status = 'held'
            AND d.webhook_id = ANY (ARRAY(SELECT w.id FROM webhook.webhooks w WHERE w.enabled))",
        None,
        &[],
    )?;
    let held = client.update(
        "UPDATE webhook.deliveries d SET status = 'held', lease_until = NULL
          WHERE d.status IN ('pending', 'failed') AND d.created_at > now() - interval '1 day'
            AND d.webhook_id = ANY (ARRAY(SELECT w.id FROM webhook.webhooks w WHERE NOT w.enabled))",
        None,
        &[],
    )?;
    Ok(released.len() + held.len())
}

/// Webhooks `delete_webhook` could not remove at once (writers were
/// queuing for them), removed now that nobody holds them; the others wait
/// for the next turn.
pub fn remove_deleted_webhooks(client: &mut SpiClient) -> Result<usize> {
    let removed = client.update(
        "DELETE FROM webhook.webhooks w WHERE w.id = ANY (ARRAY(
             SELECT x.id FROM webhook.webhooks x WHERE x.deletion_requested_at IS NOT NULL
                FOR UPDATE SKIP LOCKED))",
        None,
        &[],
    )?;
    Ok(removed.len())
}

/// Delete up to `batch` finished deliveries (and orphaned events) older
/// than `retention`; small batches keep locks short and bloat low.
pub fn prune(client: &mut SpiClient, retention: Duration, batch: i64) -> Result<usize> {
    let deleted = client.update(
        "WITH old AS (
             SELECT id FROM webhook.deliveries
              WHERE status IN ('delivered', 'dead', 'held') AND created_at < now() - make_interval(secs => $1)
              ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)
         DELETE FROM webhook.deliveries d WHERE d.id = ANY (ARRAY(SELECT id FROM old)) RETURNING d.id",
        None,
        &[retention.as_secs_f64().into(), batch.into()],
    )?;
    // ULIDs sort by creation time: every id below this one is older.
    let cutoff_ms = SystemTime::now()
        .checked_sub(retention)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64);
    let cutoff_id = ulid::Ulid::from_parts(cutoff_ms, 0).to_string();
    client.update(
        "DELETE FROM webhook.events e WHERE e.id = ANY (ARRAY(
             SELECT e2.id FROM webhook.events e2
              WHERE e2.id < $1
                AND NOT EXISTS (SELECT FROM webhook.deliveries d WHERE d.event_id = e2.id OFFSET 0)
              ORDER BY e2.id LIMIT $2))",
        None,
        &[cutoff_id.into(), batch.into()],
    )?;
    Ok(deleted.len())
}
