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
//! Callbacks run on the worker's main thread between claims, for at most
//! [`BUDGET`] per loop turn; requests in flight go on meanwhile.

use super::retry::RetrySchedule;
use crate::error::Result;
use crate::settings::api::RawJsonb;
use crate::write::builder::{contained_all, pinned_search_path};
use crate::write::definer::as_definer;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use std::time::{Duration, Instant};

/// Most time a loop turn spends starting callbacks (one always runs).
pub const BUDGET: Duration = Duration::from_millis(200);
/// Outcomes locked per turn.
const BATCH: i64 = 50;

/// `STATEMENT_TIMEOUT` of PostgreSQL's `TimeoutId` (utils/timeout.h; the
/// same in 15 to 18), whose handler cancels the running statement.
const STATEMENT_TIMEOUT: std::ffi::c_int = 3;

extern "C-unwind" {
    fn enable_timeout_after(id: std::ffi::c_int, delay_ms: std::ffi::c_int);
    fn disable_timeout(id: std::ffi::c_int, keep_indicator: bool);
    fn get_timeout_indicator(id: std::ffi::c_int, reset_indicator: bool) -> bool;
}

const DUE_SQL: &str = "
SELECT o.id, o.argument, o.tries, o.delivery_id, o.webhook_id, w.outcome_callback::oid,
       w.outcome_callback_owner::oid, w.outcome_callback::text,
       p.oid IS NOT NULL AND p.prokind = 'f' AND p.pronargs = 1 AND p.proargtypes[0] = 'jsonb'::regtype,
       coalesce(r.rolsuper, true),
       p.oid IS NOT NULL AND r.oid IS NOT NULL AND has_function_privilege(r.oid, p.oid, 'EXECUTE'),
       p.oid::regproc::text
  FROM webhook.outcomes o
  JOIN webhook.webhooks w ON w.id = o.webhook_id
  LEFT JOIN pg_catalog.pg_proc p ON p.oid = w.outcome_callback
  LEFT JOIN pg_catalog.pg_roles r ON r.oid = w.outcome_callback_owner
 WHERE o.status IN ('pending', 'failed') AND o.next_try_at <= now()
 ORDER BY o.next_try_at, o.id
 LIMIT $1
 FOR UPDATE OF o SKIP LOCKED";

/// One due outcome and what its call needs.
struct Due {
    id: i64,
    tries: i32,
    delivery_id: i64,
    webhook_id: i64,
    /// The callback's name (qualified, from the catalog) and its owner, or
    /// why it cannot be called.
    call: std::result::Result<(String, pg_sys::Oid), String>,
}

/// One loop turn's callbacks, in a transaction of their own (an error
/// there is logged and leaves the outcomes due). True when more are due.
pub fn turn(settings: &super::settings::Settings) -> bool {
    let (schedule, timeout) = (&settings.schedule, settings.callback_timeout);
    match super::txn::run(|| Spi::connect_mut(|client| run_due(client, schedule, timeout))) {
        Ok((_, more)) => more,
        Err(e) => {
            warning!("webhook_emitter: running outcome callbacks failed: {e}");
            false
        }
    }
}

/// Run due callbacks; says how many ran and whether more are due now.
pub fn run_due(
    client: &mut SpiClient,
    schedule: &RetrySchedule,
    timeout: Duration,
) -> Result<(usize, bool)> {
    let rows = client.update(DUE_SQL, None, &[BATCH.into()])?;
    let started = Instant::now();
    let mut ran = 0;
    let mut more = rows.len() as i64 >= BATCH;
    let mut finished = Vec::new();
    for row in rows {
        if ran > 0 && started.elapsed() >= BUDGET {
            // The rest stay due (their locks go with this transaction).
            more = true;
            break;
        }
        let name: String = row.get(8)?.unwrap_or_default();
        let callback: Option<pg_sys::Oid> = row.get(6)?;
        let owner: Option<pg_sys::Oid> = row.get(7)?;
        let (fits, superuser, may_execute): (bool, bool, bool) = (
            row.get(9)?.unwrap_or(false),
            row.get(10)?.unwrap_or(true),
            row.get(11)?.unwrap_or(false),
        );
        let callable = match (callback, owner) {
            (None, _) | (_, None) => Err("the webhook has no outcome callback any more".to_owned()),
            _ if !fits => Err(format!(
                "{name} is not a function of one jsonb argument (any more)"
            )),
            _ if superuser => {
                Err("its owner is a superuser now; callbacks never run as one".into())
            }
            _ if !may_execute => Err(format!("its owner may not execute {name}")),
            (Some(_), Some(o)) => Ok((row.get::<String>(12)?.unwrap_or_default(), o)),
        };
        let due = Due {
            id: row.get(1)?.unwrap_or_default(),
            tries: row.get(3)?.unwrap_or_default(),
            delivery_id: row.get(4)?.unwrap_or_default(),
            webhook_id: row.get(5)?.unwrap_or_default(),
            call: callable,
        };
        let argument: Option<RawJsonb> = row.get(2)?;
        let result = match (&due.call, argument) {
            (Ok((function, owner)), Some(argument)) => call(function, *owner, argument, timeout),
            (Ok(_), None) => Err("the outcome has no argument".into()),
            (Err(why), _) => Err(why.clone()),
        };
        ran += 1;
        finished.push((due, result));
    }
    for (due, result) in finished {
        settle(client, schedule, &due, result)?;
    }
    Ok((ran, more))
}

/// Call `function(argument)` as `owner`, contained, within `timeout`.
/// `function` is the catalog's qualified name (regproc output): with the
/// jsonb argument it resolves to the checked function.
fn call(
    function: &str,
    owner: pg_sys::Oid,
    argument: RawJsonb,
    timeout: Duration,
) -> std::result::Result<(), String> {
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as std::ffi::c_int;
    // SAFETY: a subtransaction around the call on the worker's main thread;
    // the timeout is disarmed whatever the call did.
    let outcome = unsafe {
        contained_all(|| {
            as_definer(owner, || {
                pinned_search_path(|| {
                    enable_timeout_after(STATEMENT_TIMEOUT, ms);
                    // Identifier from the catalog; the outcome is the argument.
                    Spi::run_with_args(&format!("SELECT {function}($1)"), &[argument.into()])
                })
            })
        })
    };
    // SAFETY: timeout bookkeeping of this process.
    unsafe {
        disable_timeout(STATEMENT_TIMEOUT, false);
        // A timeout that fired as the call returned must not cancel what
        // the worker does next.
        if get_timeout_indicator(STATEMENT_TIMEOUT, true) {
            pg_sys::QueryCancelPending = 0;
        }
    }
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(failure) => Err(failure.text),
    }
}

/// Record how a call went: done, or failed and due again on the retry
/// schedule, or dead (announced) when no retry is left.
fn settle(
    client: &mut SpiClient,
    schedule: &RetrySchedule,
    due: &Due,
    result: std::result::Result<(), String>,
) -> Result<()> {
    let tries = due.tries.saturating_add(1);
    let (status, retry_in, error) = match &result {
        Ok(()) => ("done", None, None),
        Err(e) => match schedule.after_failure(tries, None, Duration::ZERO) {
            Some(wait) => ("failed", Some(wait.as_secs_f64()), Some(e.clone())),
            None => ("dead", None, Some(e.clone())),
        },
    };
    if let Some(e) = &error {
        warning!(
            "webhook_emitter: the outcome callback of webhook {} failed for delivery {} (try {tries}): {e}",
            due.webhook_id,
            due.delivery_id
        );
    }
    client.update(
        "UPDATE webhook.outcomes
            SET status = $2, tries = $3, last_error = $4,
                next_try_at = CASE WHEN $5::float8 IS NULL THEN next_try_at
                                   ELSE now() + make_interval(secs => $5::float8) END,
                done_at = CASE WHEN $2 IN ('done', 'dead') THEN now() END
          WHERE id = $1",
        None,
        &[
            due.id.into(),
            status.into(),
            tries.into(),
            error.clone().into(),
            retry_in.into(),
        ],
    )?;
    if status == "dead" {
        client.update(
            "SELECT webhook.notify('outcome_dead', jsonb_build_object('outcome_id', $1::bigint,
                 'delivery_id', $2::bigint, 'webhook_id', $3::bigint, 'error', left($4, 500)))",
            None,
            &[
                due.id.into(),
                due.delivery_id.into(),
                due.webhook_id.into(),
                error.into(),
            ],
        )?;
    }
    Ok(())
}
