//! The claim: leasing due deliveries with their event, by one statement
//! whose plan stays cheap whatever the statistics say. SPI arguments only;
//! runs on the worker's main thread.

use super::plans::{replan_after_growth, run_saved, statistics_stale};
use crate::error::Result;
use crate::http::job::Attempt;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys::BuiltinOid::{FLOAT8OID, INT8ARRAYOID, INT8OID};
use pgrx::spi::{SpiClient, SpiHeapTupleData};
use std::time::Duration;

/// A claimed delivery, before its endpoint is attached.
pub struct Claimed {
    pub attempt: Attempt,
    /// False when the delivery's event no longer exists.
    pub event_found: bool,
    /// The body's size, when it is over the limit and was not loaded.
    pub body_too_large: Option<i64>,
    pub webhook_id: i64,
    pub webhook_version: f64,
    /// A new delivery the fan-out claimed: not in `webhook.deliveries`
    /// until its outcome is recorded.
    pub unwritten: Option<Unwritten>,
}

/// What recording a new delivery claimed by the fan-out inserts besides
/// its outcome, and the `webhook.in_flight_batches` row that lists it.
pub struct Unwritten {
    pub batch: i64,
    pub event_id: String,
    pub event_created_at: Option<TimestampWithTimeZone>,
    pub slot: i16,
    /// When the fan-out claimed it: its `last_attempt_at`, as a claim sets it.
    pub claimed_at: Option<TimestampWithTimeZone>,
}

/// How many bytes of bodies a claim may load.
#[derive(Clone, Copy)]
pub struct ClaimBytes {
    /// In all (at least one delivery is claimed whatever its size).
    pub budget: i64,
    /// Per body: a larger body is not loaded and its delivery fails.
    pub max_body: i64,
}

/// What a claim may take: up to `limit` deliveries, none of the webhooks
/// `left_out` (at their limit, or paused), leased for `lease`, their bodies
/// within `bytes`.
pub struct ClaimRequest {
    pub limit: i64,
    pub left_out: Vec<i64>,
    pub lease: Duration,
    pub bytes: ClaimBytes,
}

impl ClaimRequest {
    /// A request for no delivery at all.
    pub fn nothing() -> ClaimRequest {
        ClaimRequest {
            limit: 0,
            left_out: Vec::new(),
            lease: Duration::ZERO,
            bytes: ClaimBytes {
                budget: 0,
                max_body: 0,
            },
        }
    }
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
     SELECT d.id, d.next_attempt_at, d.event_id, d.slot FROM webhook.deliveries d
      WHERE d.status IN ('pending', 'failed') AND d.order_key IS NULL
        AND d.next_attempt_at <= now()
        AND coalesce(d.webhook_id <> ALL ($2), true)
        AND (SELECT w.enabled FROM webhook.webhooks w WHERE w.id = d.webhook_id)
      ORDER BY d.next_attempt_at
      LIMIT $1
      FOR UPDATE OF d SKIP LOCKED),
 due_heads AS (
     SELECT d.id, d.next_attempt_at, d.event_id, d.slot FROM webhook.deliveries d
      WHERE d.id = ANY (ARRAY(SELECT id FROM ready_heads))
        AND d.status IN ('pending', 'failed') AND d.next_attempt_at <= now()
        AND (SELECT w.enabled FROM webhook.webhooks w WHERE w.id = d.webhook_id)
      FOR UPDATE OF d SKIP LOCKED),
 picked AS (
     SELECT due.id, due.next_attempt_at,
            -- octet_length of a stored text reads its size, not the text.
            (SELECT octet_length(e.body::text) FROM webhook.events e
              WHERE e.id = due.event_id AND e.slot = due.slot) AS bytes
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
              FROM webhook.events e WHERE e.id = d.event_id AND e.slot = d.slot),
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
pub fn claim(client: &mut SpiClient, request: &ClaimRequest) -> Result<(Vec<Claimed>, bool)> {
    let counted_rows = replan_after_growth(client)?;
    let rows = run_saved(
        client,
        CLAIM_SQL,
        &[INT8OID, INT8ARRAYOID, FLOAT8OID, INT8OID, INT8OID],
        &[
            request.limit.into(),
            request.left_out.clone().into(),
            request.lease.as_secs_f64().into(),
            request.bytes.budget.into(),
            request.bytes.max_body.into(),
        ],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(claimed_from(&row)?);
    }
    if !out.is_empty() {
        commit_durably(client)?;
    }
    let stale = statistics_stale(counted_rows, out.len());
    Ok((out, stale))
}

/// The worker's session commits without waiting for the WAL flush
/// (`settings::SESSION_SETTINGS`), except a transaction that claimed
/// deliveries: a claim counts each attempt before it is sent, and a
/// delivery whose attempts keep ending in a crash is set aside by that
/// count (`maintenance::release_orphans`). A crash that restarts the
/// server loses the WAL not yet flushed, and with it the count: the
/// claim (a fan-out's, with the deliveries it made) was undone, and the
/// delivery sent again as new after every restart. So such a transaction
/// waits for the local flush (not for a synchronous standby) before
/// anything is sent.
pub(crate) fn commit_durably(client: &mut SpiClient) -> Result<()> {
    run_saved(
        client,
        "SELECT pg_catalog.set_config('synchronous_commit', 'local', true)",
        &[],
        &[],
    )?;
    Ok(())
}

/// A claimed delivery from a row of `CLAIM_SQL` or of `webhook.fan_out`
/// (id, attempts, event id, [topic, tenant id, body, body size], webhook
/// id, webhook version).
pub(crate) fn claimed_from(row: &SpiHeapTupleData) -> Result<Claimed> {
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
    Ok(Claimed {
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
        unwritten: None,
    })
}
