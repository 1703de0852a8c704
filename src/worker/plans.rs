//! The worker's saved plans, and the statistics they are made from.
//!
//! Every per-batch statement runs from a plan prepared once and kept. A
//! plan is only as good as the statistics it was costed with, so this
//! module also notices when they have fallen far behind the queue (the
//! table grew, or an ANALYZE counted none of a large uncommitted enqueue)
//! and makes the plans again.

use crate::error::Result;
use pgrx::datum::DatumWithOid;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiTupleTable};
use pgrx::{pg_sys::PgBuiltInOids, PgOid};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

thread_local! {
    /// The per-batch statements' plans, prepared on first use and kept
    /// (`SPI_keepplan`): a batch costs no parsing or planning. The plan
    /// cache revalidates them after DDL such as `ALTER EXTENSION UPDATE`.
    static SAVED_PLANS: RefCell<HashMap<&'static str, Rc<OwnedPreparedStatement>>> =
        RefCell::new(HashMap::new());
    /// The size of `webhook.deliveries`' partitions (bytes) when the saved plans were made.
    static PLANNED_FOR_BYTES: Cell<i64> = const { Cell::new(0) };
}

/// The size past which the saved plans are made again: twice the size they
/// were made for, and at least a megabyte more.
fn replan_threshold(planned_for: i64) -> i64 {
    planned_for
        .saturating_mul(2)
        .max(planned_for.saturating_add(1 << 20))
}

/// A generic plan is costed with the tables' size when it was made, and
/// PostgreSQL keeps it until an ANALYZE invalidates it. A claim planned
/// while the queue was empty (a worker idle since start) scanned the whole
/// deliveries table once a backlog arrived: 33 ms instead of 7 ms per 500
/// rows at 100k queued, worse as it grows. So the saved plans are dropped
/// whenever the table has more than doubled since they were made; the next
/// executions plan with its real size. Growth is geometric, so this
/// happens a few times in a table's life, never in a steady state.
///
/// Returns the row count the statistics give the table (`reltuples`).
pub fn replan_after_growth(client: &mut SpiClient) -> Result<f64> {
    let sizes = run_saved(
        client,
        // Its partitions (the log slots), or the table before 0.3.0.
        "SELECT coalesce(sum(pg_catalog.pg_relation_size(c.oid)), 0)::int8,
                CASE WHEN bool_and(c.reltuples < 0) THEN -1
                     ELSE sum(greatest(c.reltuples, 0)) END::float8
           FROM pg_catalog.pg_class c
          WHERE c.relkind = 'r'
            AND (c.oid = 'webhook.deliveries'::regclass
                 OR c.oid IN (SELECT i.inhrelid FROM pg_catalog.pg_inherits i
                               WHERE i.inhparent = 'webhook.deliveries'::regclass))",
        &[],
        &[],
    )?;
    let row = sizes.first();
    let bytes: i64 = row.get(1)?.unwrap_or(0);
    let counted_rows: f64 = row.get(2)?.unwrap_or(-1.0);
    let planned_for = PLANNED_FOR_BYTES.with(Cell::get);
    if bytes > replan_threshold(planned_for) {
        SAVED_PLANS.with(|plans| plans.borrow_mut().clear());
        PLANNED_FOR_BYTES.with(|p| p.set(bytes));
    }
    Ok(counted_rows)
}

/// Run `sql` (argument types `types`) through its saved plan.
pub fn run_saved<'conn>(
    client: &mut SpiClient<'conn>,
    sql: &'static str,
    types: &[PgBuiltInOids],
    args: &[DatumWithOid],
) -> Result<SpiTupleTable<'conn>> {
    let saved = SAVED_PLANS.with(|plans| plans.borrow().get(sql).cloned());
    let plan = match saved {
        Some(plan) => plan,
        None => {
            let oids: Vec<PgOid> = types.iter().map(|t| PgOid::BuiltIn(*t)).collect();
            let plan = Rc::new(client.prepare_mut(sql, &oids)?.keep());
            SAVED_PLANS.with(|plans| plans.borrow_mut().insert(sql, Rc::clone(&plan)));
            plan
        }
    };
    Ok(client.update(&*plan, None, args)?)
}

/// How often at most the worker analyzes `webhook.deliveries` itself (again
/// only while the statistics still count fewer rows than a claim took).
const ANALYZE_AT_MOST_EVERY: Duration = Duration::from_secs(10);

thread_local! {
    static LAST_ANALYZE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// After a claim: whether it took more rows than the statistics say the
/// deliveries table holds (`counted_rows`, its `reltuples`). Then they are
/// wrong, and every plan costed from them is suspect. That happens when an
/// ANALYZE (autovacuum's) runs while a large enqueue is uncommitted: it
/// counts none of its rows, and the next one may be a minute away. True
/// at most every `ANALYZE_AT_MOST_EVERY`.
pub fn statistics_stale(counted_rows: f64, claimed: usize) -> bool {
    // reltuples -1: never analyzed; the planner then estimates from the
    // table's size, which is not stale.
    if counted_rows < 0.0 || claimed as f64 <= counted_rows {
        return false;
    }
    let recent = LAST_ANALYZE
        .with(Cell::get)
        .is_some_and(|t| t.elapsed() < ANALYZE_AT_MOST_EVERY);
    if !recent {
        LAST_ANALYZE.with(|t| t.set(Some(Instant::now())));
    }
    !recent
}

/// Analyze the deliveries table; the new statistics invalidate the saved
/// plans. Skipped, not waited for, while another ANALYZE or VACUUM holds
/// it (the worker would stop delivering meanwhile). Only this table: its
/// statistics are the ones a claim proved wrong; the events table can be
/// far larger, and every statement reaches events by primary key.
pub fn analyze_queue(client: &mut SpiClient) -> Result<()> {
    client.update("ANALYZE (SKIP_LOCKED) webhook.deliveries", None, &[])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::statistics_stale;

    #[test]
    fn a_claim_larger_than_the_counted_rows_proves_the_statistics_stale_once_per_interval() {
        assert!(
            !statistics_stale(-1.0, 1000),
            "never analyzed: sized from the table"
        );
        assert!(!statistics_stale(5000.0, 1000));
        assert!(!statistics_stale(1000.0, 1000));
        assert!(statistics_stale(0.0, 1000));
        assert!(
            !statistics_stale(0.0, 1000),
            "again within ANALYZE_AT_MOST_EVERY"
        );
    }
}
