//! Recording outcomes: the deliveries' new status, the counters, endpoint
//! health, and `webhook.attempts`, whose only writer is `log_attempts`
//! (the worker's batches and Send Test). SPI arguments only.

use super::claim::Unwritten;
use super::in_flight::InFlight;
use super::plans::run_saved;
use super::verdict::Verdict;
use crate::error::Result;
use crate::http::job::Outcome;
use crate::status::DeliveryStatus;
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::pg_sys::BuiltinOid::{
    BOOLARRAYOID, FLOAT8ARRAYOID, FLOAT8OID, INT2ARRAYOID, INT4ARRAYOID, INT8ARRAYOID,
    TEXTARRAYOID, TIMESTAMPTZARRAYOID,
};
use pgrx::spi::SpiClient;
use std::time::{Duration, UNIX_EPOCH};

fn epoch(t: std::time::SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Recording a batch: the deliveries' new status, added to the counters
/// (`webhook.delivery_counters`, for `metrics()`) and to the hourly summary
/// (`webhook.delivery_stats`, for `webhook_health` and `delivery_latency`)
/// from what the statement returns as `ended`, one saved plan each and no
/// lookup of a delivery twice. A Send Test (redelivered) is left out of the
/// summary. Hours are UTC hours. `ended` is given by the statement
/// (`record_sql!(with ended)`): its columns are webhook_id, attempts,
/// is_test, outcome, code, started (epoch), duration (ms), latency (s) and
/// topic (NULL: not counted).
macro_rules! record_sql {
    ($ended:literal) => {
        concat!($ended, " counted AS (
     INSERT INTO webhook.delivery_counters AS c
         (webhook_id, topic, delivered, failed, dead, retried, latency_le, latency_sum, latency_count)
     SELECT x.webhook_id, x.topic,
            count(*) FILTER (WHERE x.outcome = 'delivered'),
            count(*) FILTER (WHERE x.outcome IN ('failed', 'held')),
            count(*) FILTER (WHERE x.outcome = 'dead'),
            count(*) FILTER (WHERE x.attempts > 1),
            -- Cumulative counts for each bound of webhook.latency_buckets().
            webhook.histogram_le(array_agg(x.latency) FILTER (WHERE x.outcome = 'delivered'),
                                 webhook.latency_buckets()),
            coalesce(sum(x.latency) FILTER (WHERE x.outcome = 'delivered'), 0),
            count(*) FILTER (WHERE x.outcome = 'delivered')
       FROM ended x
      WHERE x.topic IS NOT NULL
      GROUP BY x.webhook_id, x.topic
     ON CONFLICT (webhook_id, topic) DO UPDATE SET
         delivered = c.delivered + excluded.delivered,
         failed = c.failed + excluded.failed,
         dead = c.dead + excluded.dead,
         retried = c.retried + excluded.retried,
         latency_le = webhook.histogram_add(c.latency_le, excluded.latency_le),
         latency_sum = c.latency_sum + excluded.latency_sum,
         latency_count = c.latency_count + excluded.latency_count)
INSERT INTO webhook.delivery_stats AS s
    (webhook_id, hour, attempts, successes, delivered, dead, last_success_at, last_failure_at,
     round_trip_ms, round_trip_max_ms, latency_ms, latency_max_ms)
SELECT x.webhook_id, date_trunc('hour', to_timestamp(x.started), 'UTC'),
       count(*),
       count(*) FILTER (WHERE x.code BETWEEN 200 AND 299),
       count(*) FILTER (WHERE x.outcome = 'delivered'),
       count(*) FILTER (WHERE x.outcome = 'dead'),
       max(to_timestamp(x.started)) FILTER (WHERE x.code BETWEEN 200 AND 299),
       max(to_timestamp(x.started)) FILTER (WHERE x.code IS NULL OR x.code NOT BETWEEN 200 AND 299),
       webhook.histogram(array_agg(x.duration)),
       max(x.duration),
       webhook.histogram(array_agg(1000 * x.latency) FILTER (WHERE x.outcome = 'delivered')),
       max(1000 * x.latency) FILTER (WHERE x.outcome = 'delivered')
  FROM ended x
 WHERE NOT x.is_test
 GROUP BY x.webhook_id, date_trunc('hour', to_timestamp(x.started), 'UTC')
ON CONFLICT (webhook_id, hour) DO UPDATE SET
    attempts = s.attempts + excluded.attempts,
    successes = s.successes + excluded.successes,
    delivered = s.delivered + excluded.delivered,
    dead = s.dead + excluded.dead,
    last_success_at = greatest(s.last_success_at, excluded.last_success_at),
    last_failure_at = greatest(s.last_failure_at, excluded.last_failure_at),
    round_trip_ms = webhook.histogram_add(s.round_trip_ms, excluded.round_trip_ms),
    round_trip_max_ms = greatest(s.round_trip_max_ms, excluded.round_trip_max_ms),
    latency_ms = webhook.histogram_add(s.latency_ms, excluded.latency_ms),
    latency_max_ms = greatest(s.latency_max_ms, excluded.latency_max_ms)")
    };
}

/// Deliveries in the table, recorded only while still `delivering`. $1
/// ids, $2 statuses (delivered, failed, dead), $3 retry delays (s), $4 HTTP
/// statuses, $5 errors, $6 starts (epoch), $7 round trips (ms), $8 the
/// events' topics as claimed ('' when the event was gone: not counted), so
/// that no event is looked up again.
///
/// A failure of a webhook disabled meanwhile is held, not retried. The
/// webhook is a lookup, not a join: as a join, statistics that said the
/// queue was empty made the plan walk all of deliveries_webhook_idx for
/// every batch. `status || ''`: not the partial index's predicate, so the
/// plan never walks deliveries_leased_idx either.
const RECORD_UPDATE_SQL: &str = record_sql!(
    "WITH ended AS (
     UPDATE webhook.deliveries d
        SET status = CASE WHEN r.status = 'failed'
                           AND NOT (SELECT w.enabled FROM webhook.webhooks w WHERE w.id = d.webhook_id)
                          THEN 'held' ELSE r.status END,
            lease_until = NULL, last_status_code = r.code, last_error = r.err,
            next_attempt_at = CASE WHEN r.delay IS NULL THEN d.next_attempt_at
                                   ELSE now() + make_interval(secs => r.delay) END,
            delivered_at = CASE WHEN r.status = 'delivered' THEN now() END
       FROM unnest($1::bigint[], $2::text[], $3::float8[], $4::int[], $5::text[], $6::float8[], $7::float8[],
                   $8::text[])
            AS r(id, status, delay, code, err, started, duration, topic)
      WHERE d.id = r.id AND d.status || '' = 'delivering'
     RETURNING d.webhook_id, d.attempts, d.is_test, r.status AS outcome, r.code, r.started, r.duration,
               extract(epoch FROM d.delivered_at - d.created_at)::float8 AS latency,
               nullif(r.topic, '') AS topic),"
);

/// New deliveries the fan-out claimed, inserted once, with their outcome;
/// one whose webhook is gone meanwhile goes with it. $1-$8 as above, $9
/// event ids, $10 the events' creation times, $11 their log slots, $12
/// webhook ids, $13 when they were claimed (their `last_attempt_at`). A
/// failure of a webhook disabled meanwhile is held.
const RECORD_INSERT_SQL: &str = record_sql!(
    "WITH batch AS MATERIALIZED (
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::float8[], $4::int[], $5::text[], $6::float8[],
                          $7::float8[], $8::text[], $9::text[], $10::timestamptz[], $11::int2[], $12::bigint[],
                          $13::timestamptz[])
            AS r(id, status, delay, code, err, started, duration, topic, event_id, created, slot, webhook, claimed)),
 inserted AS (
     INSERT INTO webhook.deliveries (id, event_id, webhook_id, status, attempts, next_attempt_at,
                                     last_attempt_at, last_status_code, last_error, delivered_at, created_at, slot)
     OVERRIDING SYSTEM VALUE
     SELECT r.id, r.event_id, r.webhook,
            CASE WHEN r.status = 'failed' AND NOT w.enabled THEN 'held' ELSE r.status END,
            1, CASE WHEN r.delay IS NULL THEN now() ELSE now() + make_interval(secs => r.delay) END,
            coalesce(r.claimed, to_timestamp(r.started)), r.code, r.err,
            CASE WHEN r.status = 'delivered' THEN now() END, coalesce(r.created, now()), r.slot
       FROM batch r
      CROSS JOIN LATERAL (SELECT w.enabled FROM webhook.webhooks w WHERE w.id = r.webhook OFFSET 0) w
     RETURNING deliveries.id, deliveries.webhook_id,
               extract(epoch FROM deliveries.delivered_at - deliveries.created_at)::float8 AS latency),
 ended AS (
     SELECT i.webhook_id, 1 AS attempts, false AS is_test, r.status AS outcome, r.code, r.started, r.duration,
            i.latency, nullif(r.topic, '') AS topic
       FROM inserted i JOIN batch r ON r.id = i.id),"
);

/// Record a batch of finished attempts: the attempt log, the deliveries'
/// new status (new ones the fan-out claimed, `in_flight`, inserted), the
/// outcomes of webhooks with a callback (`with_callback`: their ids), the
/// dead ones announced, and endpoint health (failing_since, 410,
/// auto-disable). The `webhook.in_flight_batches` rows `finished_batches`
/// are deleted with it.
pub fn record(
    client: &mut SpiClient,
    verdicts: &[Verdict],
    disable_after: Duration,
    with_callback: &[i64],
    in_flight: &InFlight,
    finished_batches: &[i64],
) -> Result<()> {
    if !finished_batches.is_empty() {
        run_saved(
            client,
            "DELETE FROM webhook.in_flight_batches WHERE id = ANY ($1)",
            &[INT8ARRAYOID],
            &[finished_batches.to_vec().into()],
        )?;
    }
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
    let (new, written): (Vec<&Verdict>, Vec<&Verdict>) = verdicts
        .iter()
        .partition(|v| in_flight.unwritten(v.outcome.delivery_id).is_some());
    record_statuses(client, &written, None)?;
    let unwritten: Vec<&Unwritten> = new
        .iter()
        .filter_map(|v| in_flight.unwritten(v.outcome.delivery_id))
        .collect();
    record_statuses(client, &new, Some(&unwritten))?;
    let outcomes: Vec<&Outcome> = verdicts.iter().map(|v| &v.outcome).collect();
    log_attempts(client, &outcomes)?;
    let for_callbacks: Vec<&Verdict> = verdicts
        .iter()
        .filter(|v| with_callback.contains(&v.outcome.webhook_id))
        .collect();
    queue_outcomes(client, &for_callbacks)?;
    let dead: Vec<i64> = verdicts
        .iter()
        .filter(|v| v.status == DeliveryStatus::Dead)
        .map(|v| v.outcome.delivery_id)
        .collect();
    notify_dead(client, dead)?;
    record_health(client, verdicts, disable_after)
}

/// The deliveries' new status, with the counters and the hourly summary:
/// updated (`RECORD_UPDATE_SQL`), or inserted when they are new ones the
/// fan-out claimed (`unwritten`, in the same order: `RECORD_INSERT_SQL`).
fn record_statuses(
    client: &mut SpiClient,
    verdicts: &[&Verdict],
    unwritten: Option<&[&Unwritten]>,
) -> Result<()> {
    if verdicts.is_empty() {
        return Ok(());
    }
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
    let started: Vec<f64> = verdicts
        .iter()
        .map(|v| epoch(v.outcome.started_at))
        .collect();
    let durations: Vec<f64> = verdicts.iter().map(|v| v.outcome.duration_ms).collect();
    let topics: Vec<&str> = verdicts.iter().map(|v| v.outcome.topic.as_str()).collect();
    let mut types = vec![
        INT8ARRAYOID,
        TEXTARRAYOID,
        FLOAT8ARRAYOID,
        INT4ARRAYOID,
        TEXTARRAYOID,
        FLOAT8ARRAYOID,
        FLOAT8ARRAYOID,
        TEXTARRAYOID,
    ];
    let mut args: Vec<DatumWithOid> = vec![
        ids.into(),
        statuses.into(),
        delays.into(),
        codes.into(),
        errors.into(),
        started.into(),
        durations.into(),
        topics.into(),
    ];
    let sql = match unwritten {
        None => RECORD_UPDATE_SQL,
        Some(new) => {
            let event_ids: Vec<&str> = new.iter().map(|u| u.event_id.as_str()).collect();
            let created: Vec<Option<TimestampWithTimeZone>> =
                new.iter().map(|u| u.event_created_at).collect();
            let slots: Vec<i16> = new.iter().map(|u| u.slot).collect();
            let webhook_ids: Vec<i64> = verdicts.iter().map(|v| v.outcome.webhook_id).collect();
            let claimed: Vec<Option<TimestampWithTimeZone>> =
                new.iter().map(|u| u.claimed_at).collect();
            types.extend([
                TEXTARRAYOID,
                TIMESTAMPTZARRAYOID,
                INT2ARRAYOID,
                INT8ARRAYOID,
                TIMESTAMPTZARRAYOID,
            ]);
            args.extend([
                event_ids.into(),
                created.into(),
                slots.into(),
                webhook_ids.into(),
                claimed.into(),
            ]);
            RECORD_INSERT_SQL
        }
    };
    run_saved(client, sql, &types, &args)?;
    Ok(())
}

/// Announce deliveries that went dead (NOTIFY webhook_emitter).
pub fn notify_dead(client: &mut SpiClient, ids: Vec<i64>) -> Result<()> {
    if !ids.is_empty() {
        run_saved(
            client,
            "SELECT webhook.notify_dead_deliveries($1)",
            &[INT8ARRAYOID],
            &[ids.into()],
        )?;
    }
    Ok(())
}

/// Hand the outcomes of these attempts to their webhooks' callbacks
/// (`webhook.outcomes`, run by `callbacks.rs`): when the delivery ended,
/// and on a failed attempt when the webhook asks for those too. In the
/// transaction that records the outcome, so none is lost or added twice.
fn queue_outcomes(client: &mut SpiClient, verdicts: &[&Verdict]) -> Result<()> {
    if verdicts.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = verdicts.iter().map(|v| v.outcome.delivery_id).collect();
    let statuses: Vec<&str> = verdicts.iter().map(|v| v.status.as_str()).collect();
    let attempts: Vec<i32> = verdicts.iter().map(|v| v.outcome.attempt).collect();
    let codes: Vec<Option<i32>> = verdicts
        .iter()
        .map(|v| v.outcome.status_code.map(i32::from))
        .collect();
    let durations: Vec<f64> = verdicts.iter().map(|v| v.outcome.duration_ms).collect();
    let errors: Vec<Option<String>> = verdicts.iter().map(|v| v.outcome.error.clone()).collect();
    let headers: Vec<Option<String>> = verdicts
        .iter()
        .map(|v| v.outcome.response_headers.as_ref().map(|h| h.to_string()))
        .collect();
    let bodies: Vec<Option<String>> = verdicts
        .iter()
        .map(|v| {
            v.outcome
                .response_excerpt
                .as_ref()
                .map(|s| s.replace('\0', ""))
        })
        .collect();
    // A body that parses as JSON is handed over as JSON (cast by
    // PostgreSQL, numbers exact), any other as a string. jsonb refuses one
    // escape serde takes, \u0000: such a body goes as a string too, never
    // failing the batch.
    let json: Vec<bool> = bodies
        .iter()
        .map(|b| {
            b.as_deref().is_some_and(|t| {
                !t.contains("\\u0000") && serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok()
            })
        })
        .collect();
    run_saved(
        client,
        "INSERT INTO webhook.outcomes (delivery_id, webhook_id, argument)
         SELECT d.id, w.id, jsonb_build_object(
                    'delivery_id', d.id, 'event_id', d.event_id,
                    'topic', (SELECT e.topic FROM webhook.events e WHERE e.id = d.event_id AND e.slot = d.slot),
                    'webhook_id', w.id, 'webhook', w.name, 'status', r.status, 'attempt', r.attempt,
                    'http_status', r.code, 'duration_ms', r.duration, 'error', r.err,
                    'response_headers', r.headers::jsonb,
                    'response_body', CASE WHEN r.json THEN r.body::jsonb ELSE to_jsonb(r.body) END)
           FROM unnest($1::bigint[], $2::text[], $3::int[], $4::int[], $5::float8[], $6::text[], $7::text[],
                       $8::text[], $9::bool[]) AS r(id, status, attempt, code, duration, err, headers, body, json)
           JOIN webhook.deliveries d ON d.id = r.id
           JOIN webhook.webhooks w ON w.id = d.webhook_id
          WHERE w.outcome_callback IS NOT NULL
            AND (r.status IN ('delivered', 'dead') OR (r.status = 'failed' AND w.callback_on_failure))",
        &[INT8ARRAYOID, TEXTARRAYOID, INT4ARRAYOID, INT4ARRAYOID, FLOAT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, BOOLARRAYOID],
        &[ids.into(), statuses.into(), attempts.into(), codes.into(), durations.into(), errors.into(), headers.into(), bodies.into(), json.into()],
    )?;
    Ok(())
}

/// Append attempts to `webhook.attempts`: the table's only writer. An
/// attempt whose delivery is gone (deleted meanwhile) is not logged.
pub fn log_attempts(client: &mut SpiClient, outcomes: &[&Outcome]) -> Result<()> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = outcomes.iter().map(|o| o.delivery_id).collect();
    let webhooks: Vec<i64> = outcomes.iter().map(|o| o.webhook_id).collect();
    let attempts: Vec<i32> = outcomes.iter().map(|o| o.attempt).collect();
    let started: Vec<f64> = outcomes.iter().map(|o| epoch(o.started_at)).collect();
    let durations: Vec<f64> = outcomes.iter().map(|o| o.duration_ms).collect();
    let codes: Vec<Option<i32>> = outcomes
        .iter()
        .map(|o| o.status_code.map(i32::from))
        .collect();
    let headers: Vec<Option<String>> = outcomes
        .iter()
        .map(|o| o.response_headers.as_ref().map(|h| h.to_string()))
        .collect();
    // text columns cannot hold NUL; a receiver may send it.
    let excerpts: Vec<Option<String>> = outcomes
        .iter()
        .map(|o| o.response_excerpt.as_ref().map(|s| s.replace('\0', "")))
        .collect();
    let errors: Vec<Option<String>> = outcomes.iter().map(|o| o.error.clone()).collect();
    run_saved(
        client,
        "INSERT INTO webhook.attempts (delivery_id, attempt, started_at, duration_ms, status_code,
                                       response_headers, response_excerpt, error, webhook_id, slot)
         SELECT r.id, r.attempt, to_timestamp(r.started), r.duration, r.code, r.headers::jsonb, r.excerpt, r.err, r.webhook,
                d.slot
           FROM unnest($1::bigint[], $2::int[], $3::float8[], $4::float8[], $5::int[], $6::text[], $7::text[], $8::text[], $9::bigint[])
                AS r(id, attempt, started, duration, code, headers, excerpt, err, webhook)
          -- In its delivery's log slot. OFFSET 0: a primary-key lookup per
          -- attempt, never a join.
          CROSS JOIN LATERAL (SELECT d.slot FROM webhook.deliveries d WHERE d.id = r.id OFFSET 0) d",
        &[INT8ARRAYOID, INT4ARRAYOID, FLOAT8ARRAYOID, FLOAT8ARRAYOID, INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID],
        &[ids.into(), attempts.into(), started.into(), durations.into(), codes.into(), headers.into(), excerpts.into(), errors.into(), webhooks.into()],
    )?;
    Ok(())
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
    // Each row is locked only when it changes: a lock taken on every batch
    // would rewrite the webhook's row beside the writers' KEY SHARE locks
    // (a MultiXact each time) for nothing.
    let _own = super::node_state::OwnState::begin();
    if !ok.is_empty() {
        run_saved(
            client,
            "UPDATE webhook.webhooks SET failing_since = NULL
              WHERE id IN (SELECT l.id FROM webhook.webhooks l
                            WHERE l.id = ANY ($1) AND l.failing_since IS NOT NULL FOR NO KEY UPDATE SKIP LOCKED)
                AND failing_since IS NOT NULL",
            &[INT8ARRAYOID],
            &[ok.into()],
        )?;
    }
    if !failing.is_empty() {
        run_saved(
            client,
            "UPDATE webhook.webhooks SET failing_since = now()
              WHERE id IN (SELECT l.id FROM webhook.webhooks l
                            WHERE l.id = ANY ($1) AND l.failing_since IS NULL FOR NO KEY UPDATE SKIP LOCKED)
                AND failing_since IS NULL",
            &[INT8ARRAYOID],
            &[failing.clone().into()],
        )?;
        if !disable_after.is_zero() {
            run_saved(
                client,
                "UPDATE webhook.webhooks
                    SET enabled = false, disabled_at = now(),
                        disabled_reason = format('failing without a success since %s (longer than webhook.disable_after)', failing_since)
                  WHERE id IN (SELECT l.id FROM webhook.webhooks l
                                WHERE l.id = ANY ($1) AND l.enabled AND l.failing_since < now() - make_interval(secs => $2)
                                  FOR NO KEY UPDATE SKIP LOCKED)
                    AND enabled AND failing_since < now() - make_interval(secs => $2)",
                &[INT8ARRAYOID, FLOAT8OID],
                &[failing.into(), disable_after.as_secs_f64().into()],
            )?;
        }
    }
    if !gone.is_empty() {
        run_saved(
            client,
            "UPDATE webhook.webhooks
                SET enabled = false, disabled_at = now(),
                    disabled_reason = format('receiver answered 410 Gone at %s', now())
              WHERE id IN (SELECT l.id FROM webhook.webhooks l
                            WHERE l.id = ANY ($1) AND l.enabled FOR NO KEY UPDATE SKIP LOCKED)
                AND enabled",
            &[INT8ARRAYOID],
            &[gone.into()],
        )?;
    }
    Ok(())
}

/// A delivery whose outcome could not be recorded: `failed`, due again
/// after `retry_in`, or `dead` when no retry is left; `error` says why. A
/// new one the fan-out claimed (`unwritten`) is inserted so, under a new id
/// if its own is taken (a logical replication subscriber's rows come with
/// the publisher's ids): it must not be lost to the collision that may
/// have failed its record.
pub fn mark_unrecordable(
    client: &mut SpiClient,
    delivery_id: i64,
    webhook_id: i64,
    unwritten: Option<&Unwritten>,
    retry_in: Option<Duration>,
    error: &str,
) -> Result<()> {
    let retry_in = retry_in.map(|d| d.as_secs_f64());
    match unwritten {
        Some(u) => client.update(
            "INSERT INTO webhook.deliveries (id, event_id, webhook_id, status, attempts, next_attempt_at,
                                             last_attempt_at, last_error, created_at, slot)
             OVERRIDING SYSTEM VALUE
             SELECT CASE WHEN EXISTS (SELECT FROM webhook.deliveries d WHERE d.id = $1)
                         THEN nextval('webhook.deliveries_id_seq'::regclass) ELSE $1 END,
                    $4, w.id, CASE WHEN $2::float8 IS NULL THEN 'dead' ELSE 'failed' END, 1,
                    now() + make_interval(secs => coalesce($2::float8, 0)), coalesce($8, now()), $3,
                    coalesce($5, now()), $6
               FROM webhook.webhooks w WHERE w.id = $7 FOR KEY SHARE",
            None,
            &[
                delivery_id.into(),
                retry_in.into(),
                error.into(),
                u.event_id.as_str().into(),
                u.event_created_at.into(),
                u.slot.into(),
                webhook_id.into(),
                u.claimed_at.into(),
            ],
        )?,
        None => client.update(
            "UPDATE webhook.deliveries
                SET status = CASE WHEN $2::float8 IS NULL THEN 'dead' ELSE 'failed' END,
                    next_attempt_at = CASE WHEN $2::float8 IS NULL THEN next_attempt_at
                                           ELSE now() + make_interval(secs => $2::float8) END,
                    lease_until = NULL, last_error = $3
              WHERE id = $1 AND status = 'delivering'",
            None,
            &[delivery_id.into(), retry_in.into(), error.into()],
        )?,
    };
    if retry_in.is_none() {
        notify_dead(client, vec![delivery_id])?;
    }
    Ok(())
}
