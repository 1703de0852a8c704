//! The fan-out: the write path queues one row per event; the worker makes
//! the deliveries of the events committed since the last fan-out
//! (`webhook.fan_out`, sql/engine/queue.sql), and claims the new ones it
//! has room for in the same statement. Those are not inserted yet: one
//! `webhook.in_flight_batches` row lists them, and each is inserted once,
//! with its outcome (`record.rs`), rather than inserted and then updated.

use super::claim::{claimed_from, commit_durably, ClaimRequest, Claimed, Unwritten};
use super::plans::{replan_after_growth, run_saved, statistics_stale};
use crate::error::Result;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys::BuiltinOid::{FLOAT8OID, INT8ARRAYOID, INT8OID};
use pgrx::spi::SpiClient;

const FAN_OUT_SQL: &str = "SELECT * FROM webhook.fan_out($1, $2, $3, $4, $5)";

/// Deliveries a fan-out makes from which it checks the planner's statistics
/// and the table's growth (`plans`), as a claim does.
const CHECK_STATISTICS_FROM: i64 = 100;

/// What one fan-out did.
pub struct FannedOut {
    /// Deliveries made.
    pub made: i64,
    /// Those of them claimed for the worker.
    pub claimed: Vec<Claimed>,
    /// The batch has more events than this slice read: fan out again.
    pub more: bool,
    /// It made more deliveries than the statistics say the table holds:
    /// analyze it (see `plans::statistics_stale`; a drain's deliveries are
    /// made here, not claimed by the claim).
    pub statistics_stale: bool,
}

/// Make the deliveries of newly committed events, claiming new ones as
/// `claim` allows (none when `None`).
pub fn fan_out(client: &mut SpiClient, claim: Option<&ClaimRequest>) -> Result<FannedOut> {
    let none = ClaimRequest::nothing();
    let claim = claim.unwrap_or(&none);
    let rows = run_saved(
        client,
        FAN_OUT_SQL,
        &[INT8OID, INT8ARRAYOID, FLOAT8OID, INT8OID, INT8OID],
        &[
            claim.limit.into(),
            claim.left_out.clone().into(),
            claim.lease.as_secs_f64().into(),
            claim.bytes.budget.into(),
            claim.bytes.max_body.into(),
        ],
    )?;
    let mut made = 0;
    let mut more = false;
    let mut claimed = Vec::new();
    for row in rows {
        made = row.get::<i64>(7)?.unwrap_or(0);
        more = row.get::<bool>(8)?.unwrap_or(false);
        if row.get::<i64>(1)?.is_some() {
            let mut c = claimed_from(&row)?;
            c.unwritten = Some(Unwritten {
                batch: row.get(9)?.unwrap_or_default(),
                event_id: c.attempt.event_id.clone(),
                event_created_at: row.get::<TimestampWithTimeZone>(10)?,
                slot: row.get(11)?.unwrap_or_default(),
                claimed_at: row.get::<TimestampWithTimeZone>(12)?,
            });
            claimed.push(c);
        }
    }
    // A fan-out that claimed nothing commits without waiting for the WAL
    // flush, as the worker's session does: if a crash loses it, it loses
    // the progress row's new snapshot with the deliveries, and the next
    // fan-out makes them again. One that claimed waits, as a claim does.
    if !claimed.is_empty() {
        commit_durably(client)?;
    }
    // Only a fan-out of many rows can prove the statistics wrong, or grow
    // the table enough to plan again: a trickle's (one every few
    // milliseconds) does not pay for the catalog query.
    let statistics_stale = if made >= CHECK_STATISTICS_FROM {
        statistics_stale(replan_after_growth(client)?, made as usize)
    } else {
        false
    };
    Ok(FannedOut {
        made,
        claimed,
        more,
        statistics_stale,
    })
}
