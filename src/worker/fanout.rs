//! The fan-out: the write path queues one row per event; before each claim
//! the worker makes the deliveries of the events committed since the last
//! fan-out (`webhook.fan_out`, sql/engine/queue.sql).

use super::plans::run_saved;
use crate::error::Result;
use pgrx::spi::SpiClient;

/// Its transaction commits without waiting for the WAL flush: if a crash
/// loses it, it loses the progress row's new snapshot with the
/// deliveries, and the next fan-out makes them again. Nothing is sent
/// before the claim's commit, which waits for the WAL up to it, this
/// commit included.
const FAN_OUT_SQL: &str =
    "SELECT pg_catalog.set_config('synchronous_commit', 'off', true), webhook.fan_out()";

/// Make the deliveries of newly committed events; returns how many.
pub fn fan_out(client: &mut SpiClient) -> Result<i64> {
    let rows = run_saved(client, FAN_OUT_SQL, &[], &[])?;
    Ok(rows.first().get::<i64>(2)?.unwrap_or(0))
}
