//! Outcome callbacks: the worker hands each queued outcome
//! (`webhook.outcomes`, written by `record.rs` with the delivery's final
//! status) to its webhook's callback, a function of one jsonb argument.
//!
//! Each call runs as the role that set the callback (never a superuser:
//! checked when it is set and again before each call), in a
//! security-restricted operation with `search_path = pg_catalog, pg_temp`
//! and every setting it makes undone, in a subtransaction of its own and
//! under `webhook.callback_timeout`. Its effects and its outcome's `done`
//! commit together, so an outcome is handed over exactly once; an error or
//! a timeout is kept on the outcome (`last_error`), logged, and retried on
//! the retry schedule, then the outcome is `dead` (and announced).
//!
//! A try is counted (and the outcome leased) in a transaction of its own,
//! flushed before the call, so a try that never ends (a crash, even one
//! that restarts the server) still counts. A
//! callback that catches the cancel and runs on is failed when it returns
//! (its work rolled back); one that outlives its time limit by as much
//! again is stopped for good: the worker ends (FATAL, which no handler
//! catches) and is started again, and the try counts.
//! Callbacks run on the worker's main thread between claims, for at most
//! [`BUDGET`] per loop turn; requests in flight go on meanwhile.

use super::claim::commit_durably;
use super::retry::RetrySchedule;
use super::settings::Settings;
use super::txn;
use crate::error::Result;
use crate::settings::api::RawJsonb;
use crate::write::builder::{contained_all, pinned_search_path};
use crate::write::definer::as_definer;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::IntoDatum;
use std::ffi::c_int;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// Most time a loop turn spends starting callbacks (one always runs).
const BUDGET: Duration = Duration::from_millis(200);

/// `TimeoutId`s of utils/timeout.h: `STATEMENT_TIMEOUT` (its handler
/// cancels the running statement) and `USER_TIMEOUT`, the first an
/// extension may register (PostgreSQL 17 added one before it).
const STATEMENT_TIMEOUT: c_int = 3;
#[cfg(feature = "pg18")]
const USER_TIMEOUT: c_int = 13;
#[cfg(not(feature = "pg18"))]
const USER_TIMEOUT: c_int = 12;

extern "C-unwind" {
    fn enable_timeout_after(id: c_int, delay_ms: c_int);
    fn disable_timeout(id: c_int, keep_indicator: bool);
    fn get_timeout_indicator(id: c_int, reset_indicator: bool) -> bool;
    fn RegisterTimeout(id: c_int, handler: extern "C" fn()) -> c_int;
}

extern "C" {
    /// PostgreSQL's own SetLatch, safe in a signal handler (pgrx's wrapper
    /// is for the main thread's normal flow).
    #[link_name = "SetLatch"]
    fn set_latch_in_handler(latch: *mut pg_sys::Latch);
}

/// The timeout that ends the worker when a callback outlives its limit.
static OVERRUN_TIMEOUT: AtomicI32 = AtomicI32::new(-1);

/// A callback ran past its time limit and its cancel: end the process the
/// way `pg_terminate_backend` would (FATAL at the next interrupt check,
/// which no exception handler can catch). Runs in a signal handler: only
/// flags and the latch.
extern "C" fn overrun() {
    // SAFETY: what PostgreSQL's die() does for SIGTERM: set the flags and
    // the latch, all async-signal-safe.
    unsafe {
        pg_sys::ProcDiePending = 1;
        pg_sys::InterruptPending = 1;
        set_latch_in_handler(pg_sys::MyLatch);
    }
}

fn overrun_timeout() -> c_int {
    let id = OVERRUN_TIMEOUT.load(Ordering::Relaxed);
    if id >= 0 {
        return id;
    }
    // SAFETY: registering a timeout handler once, on the main thread.
    let id = unsafe { RegisterTimeout(USER_TIMEOUT, overrun) };
    OVERRUN_TIMEOUT.store(id, Ordering::Relaxed);
    id
}

/// The outcome taken for a try: its id and the tries it now counts.
const TAKE_SQL: &str = "
UPDATE webhook.outcomes o SET tries = o.tries + 1, next_try_at = now() + make_interval(secs => $1)
 WHERE o.id = (SELECT x.id FROM webhook.outcomes x
                WHERE x.status IN ('pending', 'failed') AND x.next_try_at <= now()
                ORDER BY x.next_try_at, x.id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING o.id, o.tries";

/// The taken outcome, locked, with what its call needs.
const CALL_SQL: &str = "
SELECT o.argument, o.delivery_id, o.webhook_id, w.outcome_callback::oid, w.outcome_callback_owner::oid,
       w.outcome_callback::text,
       p.oid IS NOT NULL AND p.prokind = 'f' AND p.pronargs = 1 AND NOT p.proretset
           AND p.proargtypes[0] = 'jsonb'::regtype AND p.prorettype <> 'trigger'::regtype,
       coalesce(r.rolsuper, true),
       p.oid IS NOT NULL AND r.oid IS NOT NULL AND has_function_privilege(r.oid, p.oid, 'EXECUTE'),
       p.proowner = r.oid OR (SELECT s.rolsuper FROM pg_catalog.pg_roles s WHERE s.oid = p.proowner),
       r.oid IS NOT NULL AND pg_has_role(r.oid, 'webhook_admin', 'USAGE')
  FROM webhook.outcomes o
  JOIN webhook.webhooks w ON w.id = o.webhook_id
  LEFT JOIN pg_catalog.pg_proc p ON p.oid = w.outcome_callback
  LEFT JOIN pg_catalog.pg_roles r ON r.oid = w.outcome_callback_owner
 WHERE o.id = $1 AND o.status IN ('pending', 'failed')
   FOR UPDATE OF o";

/// One loop turn's callbacks, each try in transactions of its own (an
/// error there is logged and leaves the outcome due). True when more are
/// due.
pub fn turn(settings: &Settings) -> bool {
    let started = Instant::now();
    let timeout = settings.callback_timeout;
    // The lease: the call's time limit, its grace, and some.
    let lease = (timeout * 2 + Duration::from_secs(5)).as_secs_f64();
    loop {
        if started.elapsed() >= BUDGET {
            return true;
        }
        let taken = txn::run(|| {
            Spi::connect_mut(|client| -> Result<Option<(i64, i32)>> {
                let rows = client.update(TAKE_SQL, None, &[lease.into()])?;
                if rows.is_empty() {
                    return Ok(None);
                }
                let row = rows.first();
                let taken = (
                    row.get::<i64>(1)?.unwrap_or_default(),
                    row.get::<i32>(2)?.unwrap_or_default(),
                );
                // The try counts even if the call crashes the server: its
                // count is flushed before the call (as a claim's is).
                commit_durably(client)?;
                Ok(Some(taken))
            })
        });
        let (id, tries) = match taken {
            Ok(Some(taken)) => taken,
            Ok(None) => return false,
            Err(e) => {
                warning!("webhook_emitter: taking an outcome for its callback failed: {e}");
                return false;
            }
        };
        let schedule = &settings.schedule;
        if let Err(e) =
            txn::run(|| Spi::connect_mut(|client| run_one(client, schedule, timeout, id, tries)))
        {
            warning!("webhook_emitter: the outcome callback of outcome {id} could not run: {e}");
        }
    }
}

/// Call the callback of outcome `id` (taken for its try `tries`) and
/// settle it.
fn run_one(
    client: &mut SpiClient,
    schedule: &RetrySchedule,
    timeout: Duration,
    id: i64,
    tries: i32,
) -> Result<()> {
    let rows = client.update(CALL_SQL, None, &[id.into()])?;
    if rows.is_empty() {
        return Ok(());
    }
    let row = rows.first();
    let delivery_id: i64 = row.get(2)?.unwrap_or_default();
    let webhook_id: i64 = row.get(3)?.unwrap_or_default();
    let callback: Option<pg_sys::Oid> = row.get(4)?;
    let owner: Option<pg_sys::Oid> = row.get(5)?;
    let name: String = row.get(6)?.unwrap_or_default();
    let flag =
        |i: usize, default: bool| -> Result<bool> { Ok(row.get::<bool>(i)?.unwrap_or(default)) };
    let (fits, superuser, may_execute, owns, admin) = (
        flag(7, false)?,
        flag(8, true)?,
        flag(9, false)?,
        flag(10, false)?,
        flag(11, false)?,
    );
    let argument: Option<RawJsonb> = row.get(1)?;
    // The previous try was the last, and never ended: the worker stopped
    // during it (a crash, or a callback past its time limit).
    let result = if tries > 1
        && schedule
            .after_failure(tries - 1, None, Duration::ZERO)
            .is_none()
    {
        Err("the worker stopped during its last try (a crash, or a callback that outlived its time limit)".to_owned())
    } else {
        match (callback, owner, argument) {
            (None, _, _) | (_, None, _) => {
                Err("the webhook has no outcome callback any more".to_owned())
            }
            _ if !fits => Err(format!(
                "{name} is not a function of one jsonb argument (any more)"
            )),
            _ if superuser => {
                Err("its owner is a superuser now; callbacks never run as one".into())
            }
            _ if !may_execute => Err(format!("its owner may not execute {name}")),
            _ if !owns => Err(format!("{name} belongs to another role now")),
            _ if !admin => Err("its owner is no longer a member of webhook_admin".into()),
            (_, _, None) => Err("the outcome has no argument".into()),
            (Some(function), Some(owner), Some(argument)) => {
                call(function, owner, argument, timeout)
            }
        }
    };
    settle(
        client,
        schedule,
        (id, delivery_id, webhook_id, tries),
        result,
    )
}

/// Call `function(argument)` (by oid, through fmgr) as `owner`, contained,
/// cancelled after `timeout`, failed if it ran longer anyway, and ended for
/// good (the worker with it) after as much again.
fn call(
    function: pg_sys::Oid,
    owner: pg_sys::Oid,
    argument: RawJsonb,
    timeout: Duration,
) -> std::result::Result<(), String> {
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128 / 2) as c_int;
    let overrun = overrun_timeout();
    let datum = argument.into_datum();
    let started = Instant::now();
    // SAFETY: a subtransaction around the call on the worker's main thread;
    // both timeouts are disarmed whatever the call did.
    let outcome = unsafe {
        contained_all(|| {
            as_definer(owner, || {
                pinned_search_path(|| {
                    enable_timeout_after(STATEMENT_TIMEOUT, ms);
                    enable_timeout_after(overrun, ms.saturating_mul(2).max(ms + 1000));
                    call_by_oid(function, datum.unwrap_or(pg_sys::Datum::from(0usize)));
                    // It caught the cancel and ran on: its work is undone.
                    let took = started.elapsed();
                    if took > timeout + Duration::from_millis(50) {
                        ereport!(
                            ERROR,
                            PgSqlErrorCode::ERRCODE_QUERY_CANCELED,
                            format!(
                                "ran for {} ms, past webhook.callback_timeout ({} ms), after catching its cancel",
                                took.as_millis(),
                                timeout.as_millis()
                            )
                        );
                    }
                })
            })
        })
    };
    // SAFETY: timeout bookkeeping and advisory locks of this process.
    unsafe {
        disable_timeout(overrun, false);
        disable_timeout(STATEMENT_TIMEOUT, false);
        // A timeout that fired as the call returned must not cancel what
        // the worker does next.
        if get_timeout_indicator(STATEMENT_TIMEOUT, true) {
            pg_sys::QueryCancelPending = 0;
        }
    }
    // Session advisory locks outlive a subtransaction: none may stay with
    // the worker.
    let _ = Spi::run("SELECT pg_catalog.pg_advisory_unlock_all()");
    outcome.map_err(|failure| failure.text)
}

/// `function(datum)` through fmgr; a NULL result (a void function) is fine.
///
/// # Safety
/// `function` takes one jsonb; `datum` is a jsonb datum.
unsafe fn call_by_oid(function: pg_sys::Oid, datum: pg_sys::Datum) {
    let mut flinfo: pg_sys::FmgrInfo = std::mem::zeroed();
    pg_sys::fmgr_info(function, &mut flinfo);
    let Some(entry) = flinfo.fn_addr else {
        return;
    };
    let size = std::mem::size_of::<pg_sys::FunctionCallInfoBaseData>()
        + std::mem::size_of::<pg_sys::NullableDatum>();
    let call = pg_sys::palloc0(size) as pg_sys::FunctionCallInfo;
    (*call).flinfo = &mut flinfo;
    (*call).nargs = 1;
    (*call).fncollation = pg_sys::InvalidOid;
    let args = (*call).args.as_mut_slice(1);
    args[0].value = datum;
    args[0].isnull = false;
    pg_sys::ffi::pg_guard_ffi_boundary(|| entry(call));
}

/// Record how a try went: done, or failed and due again on the retry
/// schedule, or dead (announced) when no try is left.
fn settle(
    client: &mut SpiClient,
    schedule: &RetrySchedule,
    (id, delivery_id, webhook_id, tries): (i64, i64, i64, i32),
    result: std::result::Result<(), String>,
) -> Result<()> {
    let (status, retry_in, error) = match &result {
        Ok(()) => ("done", None, None),
        Err(e) => match schedule.after_failure(tries, None, Duration::ZERO) {
            Some(wait) => ("failed", Some(wait.as_secs_f64()), Some(e.clone())),
            None => ("dead", None, Some(e.clone())),
        },
    };
    if let Some(e) = &error {
        warning!(
            "webhook_emitter: the outcome callback of webhook {webhook_id} failed for delivery {delivery_id} (try {tries}): {e}"
        );
    }
    client.update(
        "UPDATE webhook.outcomes
            SET status = $2, last_error = $3,
                next_try_at = CASE WHEN $4::float8 IS NULL THEN now()
                                   ELSE now() + make_interval(secs => $4::float8) END,
                done_at = CASE WHEN $2 IN ('done', 'dead') THEN now() END
          WHERE id = $1",
        None,
        &[id.into(), status.into(), error.into(), retry_in.into()],
    )?;
    if status == "dead" {
        // No error text: listeners may be anyone, the error is
        // webhook_admin's (webhook.outcomes.last_error).
        client.update(
            "SELECT webhook.notify('outcome_dead', jsonb_build_object('outcome_id', $1::bigint,
                 'delivery_id', $2::bigint, 'webhook_id', $3::bigint))",
            None,
            &[id.into(), delivery_id.into(), webhook_id.into()],
        )?;
    }
    Ok(())
}
