//! Transactions for the worker that survive an ERROR. pgrx's
//! `BackgroundWorker::transaction` lets an ERROR unwind to the worker's
//! entry point, which ends the process: one bad row or a DBA's trigger
//! would mean a crash loop, and the batch in flight sent twice. Here an
//! ERROR (or a Rust panic) rolls the transaction back and comes back as a
//! message; the worker decides what to do with it and keeps running.

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::PgTryBuilder;
use std::panic::AssertUnwindSafe;

/// Run `body` in its own transaction and commit it. An ERROR raised by the
/// body or by the commit rolls everything back and returns its message;
/// so does an `Err` the body returns (nothing half-done is committed).
/// The process, its memory and its other state are untouched.
pub fn run<R, E: std::fmt::Display>(body: impl FnOnce() -> Result<R, E>) -> Result<R, String> {
    unsafe {
        // now() is the transaction's start: it must be this moment.
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    let outcome = PgTryBuilder::new(AssertUnwindSafe(|| match body() {
        Ok(value) => {
            unsafe {
                pg_sys::PopActiveSnapshot();
                pg_sys::CommitTransactionCommand();
            }
            Ok(value)
        }
        Err(e) => Err(e.to_string()),
    }))
    .catch_others(|e| Err(describe(&e)))
    .execute();
    if outcome.is_err() {
        // The catch flushed the error state; the transaction (or a commit
        // that failed half way) is still open and is rolled back here,
        // which also pops the snapshot.
        unsafe { pg_sys::AbortCurrentTransaction() };
    }
    // A background worker never goes idle the way a client backend does, so
    // nothing else sends its table statistics: without this, autovacuum
    // never learns of the rows the worker inserts and deletes (attempts
    // above all) and the tables bloat without bound. Rate-limited inside
    // PostgreSQL (at most about once a second).
    unsafe { pg_sys::pgstat_report_stat(false) };
    outcome
}

/// The message of a caught ERROR or panic, with its detail when it has one.
fn describe(e: &CaughtError) -> String {
    let report = match e {
        CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r,
        CaughtError::RustPanic { ereport, .. } => ereport,
    };
    match report.detail() {
        Some(detail) => format!("{} ({detail})", report.message()),
        None => report.message().to_owned(),
    }
}
