//! The worker's upkeep of the queue: orphaned and expired leases, held
//! deliveries following their webhook, deleted webhooks, the log's rotation,
//! pruning of callback outcomes. SPI
//! arguments only; runs on the worker's main thread. `Upkeep` decides when.

use super::in_flight::InFlight;
use super::txn;
use crate::error::Result;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Maintenance (the log's rotation, pruning, held deliveries, expired leases) runs this often
/// at most (more often for short retentions).
const MAINTAIN_EVERY: Duration = Duration::from_secs(60);
/// Outcomes per pruning transaction: short locks, little bloat per commit.
const PRUNE_BATCH: i64 = 5000;
/// Time one loop turn may spend pruning; a turn that runs out of it comes
/// back on the next turn, so pruning keeps pace with any drain rate without
/// holding up claims for long.
const PRUNE_BUDGET: Duration = Duration::from_millis(100);

/// When the worker loop runs the upkeep below.
pub struct Upkeep {
    last_maintenance: Instant,
    /// The last pruning turn ran out of budget: more is old enough.
    pub prune_behind: bool,
}

impl Default for Upkeep {
    fn default() -> Self {
        Upkeep {
            last_maintenance: Instant::now(),
            prune_behind: false,
        }
    }
}

impl Upkeep {
    /// Pruning outcomes, the log's rotation, held deliveries and expired
    /// leases, every `MAINTAIN_EVERY` (sooner for short retentions);
    /// pruning continues on the next loop
    /// turns while it has more to do.
    pub fn maybe_run(
        &mut self,
        retention: Duration,
        in_hand: &HashMap<i64, i64>,
        in_flight: &mut InFlight,
    ) {
        let every = (retention / 4).clamp(Duration::from_secs(1), MAINTAIN_EVERY);
        let due = self.last_maintenance.elapsed() >= every;
        if !due && !self.prune_behind {
            return;
        }
        let started = Instant::now();
        let mut pruned = 0;
        self.prune_behind = false;
        while started.elapsed() < PRUNE_BUDGET {
            let n = txn::run(|| {
                Spi::connect_mut(|client| prune_outcomes(client, retention, PRUNE_BATCH))
            })
            .unwrap_or_else(|e| {
                warning!("webhook_emitter: pruning outcomes failed: {e}");
                0
            });
            pruned += n;
            if (n as i64) < PRUNE_BATCH {
                break;
            }
            self.prune_behind = started.elapsed() >= PRUNE_BUDGET;
        }
        if pruned > 0 {
            debug1!("webhook_emitter: pruned {pruned} outcomes");
        }
        if !due {
            return;
        }
        self.last_maintenance = Instant::now();
        // First (in a transaction of its own: a batch row that cannot be
        // recovered holds up nothing else): the rotation waits for the
        // batch rows of its slot.
        recover_lost_batches(in_flight);
        match txn::run(|| Spi::connect_mut(|client| rotate_log(client, retention))) {
            Ok(done) if done == "emptied" => {
                log!("webhook_emitter: the delivery log's oldest slot was emptied")
            }
            Ok(done) if done == "in flight" => debug1!(
                "webhook_emitter: the delivery log's oldest slot waits for deliveries of its events being sent"
            ),
            Ok(done) if done.starts_with("moved ") => log!(
                "webhook_emitter: emptying the delivery log's oldest slot: {} rows moved out (unfinished deliveries, their events with all of their deliveries and attempts, events not fanned out yet)",
                &done["moved ".len()..]
            ),
            Ok(_) => {}
            Err(e) => warning!("webhook_emitter: rotating the delivery log failed: {e}"),
        }
        let mine: Vec<i64> = in_hand.keys().copied().collect();
        sync_registry_logged();
        txn::run(|| {
            Spi::connect_mut(|client| -> crate::error::Result<(usize, usize)> {
                remove_deleted_webhooks(client)?;
                prune_summary(client, retention)?;
                Ok((release_expired_leases(client, mine)?, sync_held(client)?))
            })
        })
        .map(|(leases, held)| {
            if leases > 0 {
                log!("webhook_emitter: {leases} deliveries with an expired lease are due again");
            }
            if held > 0 {
                debug1!("webhook_emitter: {held} deliveries moved to or from held");
            }
        })
        .unwrap_or_else(|e| warning!("webhook_emitter: maintenance failed: {e}"));
    }
}

/// Delete the batch rows whose deliveries are all recorded (a record
/// deletes them, but a quiet worker may not record again soon, and a
/// rotation waits for them), and recover those nobody holds whose lease ran
/// out.
fn recover_lost_batches(in_flight: &mut InFlight) {
    let finished = in_flight.finished_by(&[]);
    let held = in_flight.held_batches();
    let recovered = txn::run(|| {
        Spi::connect_mut(|client| -> Result<usize> {
            client.update(
                "DELETE FROM webhook.in_flight_batches WHERE id = ANY ($1)",
                None,
                &[finished.clone().into()],
            )?;
            recover_in_flight(client, held.clone(), false)
        })
    });
    match recovered {
        Ok(n) => {
            in_flight.recorded(&[], &finished);
            if n > 0 {
                log!("webhook_emitter: {n} deliveries sent before their outcome could be written are due again");
            }
        }
        Err(e) => warning!("webhook_emitter: recovering deliveries in flight failed: {e}"),
    }
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

/// Interrupted attempts after which a delivery is set aside.
pub const POISON_INTERRUPTIONS: i64 = 3;

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
           FROM orphan o WHERE d.id = o.id
         RETURNING d.id, d.status",
        None,
        &[POISON_INTERRUPTIONS.into()],
    )?;
    let mut dead = Vec::new();
    let released = t.len();
    for row in t {
        if row.get::<String>(2)?.as_deref() == Some("dead") {
            dead.extend(row.get::<i64>(1)?);
        }
    }
    super::record::notify_dead(client, dead)?;
    Ok(released)
}

/// New deliveries claimed by a fan-out and never recorded (a crash, a
/// restore, an outcome that could not be written), listed by
/// `webhook.in_flight_batches` rows this worker does not hold (`held`):
/// all of them (`all`, at start) or those whose lease ran out. Each one
/// not written (no delivery of its event to its webhook) is inserted
/// `delivering` under the batch's lease, under a new id if its own is
/// taken, for `release_orphans` or `release_expired_leases` to make due
/// again as an interrupted attempt; the row is deleted. Returns how many
/// were inserted.
pub fn recover_in_flight(client: &mut SpiClient, held: Vec<i64>, all: bool) -> Result<usize> {
    let t = client.update(
        "WITH lost AS (
             DELETE FROM webhook.in_flight_batches b
              WHERE b.id <> ALL ($1) AND ($2 OR b.lease_until < now())
             RETURNING b.*)
         INSERT INTO webhook.deliveries (id, event_id, webhook_id, status, attempts, last_attempt_at,
                                         lease_until, created_at, slot)
         OVERRIDING SYSTEM VALUE
         SELECT CASE WHEN EXISTS (SELECT FROM webhook.deliveries d WHERE d.id = u.id)
                     THEN nextval('webhook.deliveries_id_seq'::regclass) ELSE u.id END,
                u.event_id, u.webhook_id, 'delivering', 1, l.claimed_at, l.lease_until,
                coalesce(e.created_at, l.claimed_at), u.slot
           FROM lost l
          CROSS JOIN LATERAL unnest(l.deliveries, l.event_ids, l.webhook_ids, l.slots) AS u(id, event_id, webhook_id, slot)
           LEFT JOIN LATERAL (SELECT x.created_at FROM webhook.events x
                               WHERE x.id = u.event_id AND x.slot = u.slot OFFSET 0) e ON true
          WHERE NOT EXISTS (SELECT FROM webhook.deliveries d
                             WHERE d.event_id = u.event_id AND d.webhook_id = u.webhook_id)
            AND EXISTS (SELECT FROM webhook.webhooks w WHERE w.id = u.webhook_id FOR KEY SHARE)",
        None,
        &[held.into(), all.into()],
    )?;
    Ok(t.len())
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

/// `sync_registry` in a transaction of its own (a coordinator out of reach
/// fails this step alone), what it did logged.
pub fn sync_registry_logged() {
    match txn::run(|| Spi::connect_mut(sync_registry)) {
        Ok(0) => {}
        Ok(n) => log!("webhook_emitter: {n} registry rows taken from the Citus coordinator's copy"),
        Err(e) => warning!(
            "webhook_emitter: bringing the registry level with the coordinator's failed: {e}"
        ),
    }
}

/// Citus: a worker node's registry brought level with the coordinator's
/// copy where Citus placed it without applying it (`webhook.sync_registry`,
/// sql/engine/cluster.sql); nothing elsewhere, nor before the extension's
/// upgrade made the function. Returns the rows it changed.
pub fn sync_registry(client: &mut SpiClient) -> Result<i32> {
    let present = client
        .select(
            "SELECT pg_catalog.to_regprocedure('webhook.sync_registry()') IS NOT NULL",
            None,
            &[],
        )?
        .first()
        .get::<bool>(1)?
        .unwrap_or(false);
    if !present {
        return Ok(0);
    }
    let _own = super::node_state::OwnState::begin();
    Ok(client
        .update("SELECT webhook.sync_registry()", None, &[])?
        .first()
        .get::<i32>(1)?
        .unwrap_or(0))
}

/// Webhooks `delete_webhook` could not remove at once (writers were
/// queuing for them), removed now that nobody holds them; the others wait
/// for the next turn.
pub fn remove_deleted_webhooks(client: &mut SpiClient) -> Result<usize> {
    let _own = super::node_state::OwnState::begin();
    let removed = client.update(
        // Their deliveries go by cascade, and their attempts with them
        // (webhook.delete_attempts).
        "DELETE FROM webhook.webhooks w WHERE w.id = ANY (ARRAY(
             SELECT x.id FROM webhook.webhooks x WHERE x.deletion_requested_at IS NOT NULL
                FOR UPDATE SKIP LOCKED))",
        None,
        &[],
    )?;
    Ok(removed.len())
}

/// Rotate the delivery log's slots a step when one is old enough
/// (`webhook.rotate_log`: its unfinished rows moved out, then, once no
/// older snapshot remains, the slot emptied whole). Returns what it did.
pub fn rotate_log(client: &mut SpiClient, retention: Duration) -> Result<String> {
    Ok(client
        .update(
            "SELECT webhook.rotate_log(make_interval(secs => $1))",
            None,
            &[retention.as_secs_f64().into()],
        )?
        .first()
        .get::<String>(1)?
        .unwrap_or_default())
}

/// Delete up to `batch` outcomes handed over (or given up) before
/// `retention`: a work queue of the webhooks with a callback, not the log.
pub fn prune_outcomes(client: &mut SpiClient, retention: Duration, batch: i64) -> Result<usize> {
    let deleted = client.update(
        "DELETE FROM webhook.outcomes o WHERE o.id = ANY (ARRAY(
             SELECT x.id FROM webhook.outcomes x
              WHERE x.status IN ('done', 'dead') AND x.created_at < now() - make_interval(secs => $1)
              ORDER BY x.created_at LIMIT $2))",
        None,
        &[retention.as_secs_f64().into(), batch.into()],
    )?;
    Ok(deleted.len())
}

/// The hourly summary goes with the log it sums, a UTC hour at a time: a
/// few rows per webhook, so once per maintenance, not per pruning batch.
fn prune_summary(client: &mut SpiClient, retention: Duration) -> Result<()> {
    client.update(
        "DELETE FROM webhook.delivery_stats s
          WHERE s.hour < date_trunc('hour', now() - make_interval(secs => $1), 'UTC')",
        None,
        &[retention.as_secs_f64().into()],
    )?;
    Ok(())
}
