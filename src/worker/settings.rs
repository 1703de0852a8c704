//! The worker's settings, read from the GUCs at start and on SIGHUP.

use super::retry::RetrySchedule;
use crate::guc;
use crate::http::agent::AgentSettings;
use pgrx::prelude::*;
use std::time::Duration;

/// Settings re-read on SIGHUP.
pub struct Settings {
    pub batch_size: i64,
    pub max_per_endpoint: usize,
    pub poll_interval: Duration,
    /// How long commits are gathered into one fan-out and claim
    /// (`webhook.batch_wait`, at most `poll_interval`).
    pub batch_wait: Duration,
    pub request_timeout: Duration,
    pub schedule: RetrySchedule,
    pub max_retry_after: Duration,
    pub disable_after: Duration,
    pub retention: Duration,
    /// Bodies larger than this are not loaded (their delivery fails).
    pub max_body_bytes: i64,
    pub agent: AgentSettings,
    /// Longest an outcome callback may run.
    pub callback_timeout: Duration,
}

fn secs(v: i32) -> Duration {
    Duration::from_secs(v.max(0) as u64)
}

impl Settings {
    /// Read the GUCs; a value that does not parse keeps `previous`'s (the
    /// last good one), or the default at start.
    pub fn load(max_concurrency: usize, previous: Option<&Settings>) -> Settings {
        let schedule =
            RetrySchedule::parse(&guc::string(&guc::RETRY_SCHEDULE)).unwrap_or_else(|e| {
                warning!("webhook_emitter: {e}; keeping the last valid schedule");
                previous.map_or_else(RetrySchedule::default, |p| p.schedule.clone())
            });
        let (agent, error) = AgentSettings::from_gucs(max_concurrency);
        let poll_interval = Duration::from_millis(guc::POLL_INTERVAL_MS.get().max(10) as u64);
        if let Some(e) = error {
            warning!("webhook_emitter: {e}; only public addresses are allowed");
        }
        Settings {
            batch_size: i64::from(guc::BATCH_SIZE.get()),
            max_per_endpoint: guc::MAX_PER_ENDPOINT.get().max(1) as usize,
            poll_interval,
            // Never longer than the poll interval, which bounds what waits
            // for the poll.
            batch_wait: Duration::from_millis(guc::BATCH_WAIT_MS.get().clamp(1, 1000) as u64)
                .min(poll_interval),
            request_timeout: guc::request_timeout(),
            schedule,
            max_retry_after: secs(guc::MAX_RETRY_AFTER_S.get()),
            disable_after: secs(guc::DISABLE_AFTER_S.get()),
            retention: secs(guc::RETENTION_S.get()),
            max_body_bytes: i64::from(guc::MAX_BODY_BYTES.get().max(1024)),
            agent,
            callback_timeout: Duration::from_millis(guc::CALLBACK_TIMEOUT_MS.get().max(1) as u64),
        }
    }

    /// Leases outlive the longest request, so a live attempt is never re-claimed.
    /// Most bytes of bodies the worker holds in flight at once.
    pub fn bytes_in_flight_cap(&self) -> i64 {
        self.max_body_bytes.saturating_mul(4)
    }

    pub fn lease(&self) -> Duration {
        self.request_timeout.max(Duration::from_secs(300)) * 2
    }
}

/// The worker session's settings.
///
/// - `synchronous_commit = off`: the worker's own commits (outcomes,
///   pruning, fan-outs that claim nothing) need not wait for the WAL
///   flush. Losing the last few of them in a crash only resends those
///   attempts (same webhook-id), which a crash does anyway for attempts in
///   flight. Events are made durable by the writers' commits, which keep
///   the server's setting. A transaction that claims deliveries waits for
///   the local flush (`claim::commit_durably`): the attempts it counts are
///   what sets aside a delivery that keeps crashing the worker.
/// - `jit = off`: the statements are short, but the claim's estimated cost
///   grows with the queue, and above jit_above_cost every execution
///   compiled its expressions again (a claim of 1,000 rows over a million
///   queued: 75 ms with JIT, 17 ms without).
/// - `enable_sort = off`: every statement of the worker reads its rows in
///   an index's order. With statistics that say the queue is empty, "scan
///   the queue and sort it" and "read the due index" cost nearly the same
///   to the planner, and the first was sometimes chosen for the claim.
/// - The rest pin what a database owner could otherwise set for every
///   session of the database (`ALTER DATABASE ... SET`), which the worker,
///   a superuser session, must not take: a `search_path` that puts the
///   owner's functions before `pg_catalog` (`evil.now()` run as a
///   superuser), timeouts or read-only defaults that would stall delivery,
///   date styles that change how timestamps are read back.
pub(crate) const SESSION_SETTINGS: [(&std::ffi::CStr, &std::ffi::CStr); 24] = [
    // A database owner can `ALTER DATABASE ... SET role`: the worker would
    // run as that role (and fail to read the webhooks).
    (c"role", c"none"),
    (c"synchronous_commit", c"off"),
    (c"jit", c"off"),
    (c"enable_sort", c"off"),
    (c"search_path", c"pg_catalog, pg_temp"),
    (c"statement_timeout", c"0"),
    (c"lock_timeout", c"0"),
    (c"idle_in_transaction_session_timeout", c"0"),
    (c"default_transaction_read_only", c"off"),
    (c"default_transaction_isolation", c"read committed"),
    (c"DateStyle", c"ISO, MDY"),
    (c"IntervalStyle", c"postgres"),
    // The planner's defaults: with index scans off (say) every claim would
    // read the whole queue.
    (c"enable_indexscan", c"on"),
    (c"enable_indexonlyscan", c"on"),
    (c"enable_bitmapscan", c"on"),
    (c"enable_nestloop", c"on"),
    (c"enable_hashjoin", c"on"),
    (c"enable_mergejoin", c"on"),
    (c"work_mem", c"4MB"),
    (c"random_page_cost", c"4"),
    (c"seq_page_cost", c"1"),
    (c"cpu_tuple_cost", c"0.01"),
    (c"cpu_index_tuple_cost", c"0.005"),
    (c"plan_cache_mode", c"auto"),
];

/// Session settings that exist from PostgreSQL 17 on.
#[cfg(feature = "pg18")]
pub(crate) const SESSION_SETTINGS_SINCE_17: [(&std::ffi::CStr, &std::ffi::CStr); 1] =
    [(c"transaction_timeout", c"0")];
#[cfg(not(feature = "pg18"))]
pub(crate) const SESSION_SETTINGS_SINCE_17: [(&std::ffi::CStr, &std::ffi::CStr); 0] = [];

/// Every setting the worker session pins, for this PostgreSQL major.
pub(crate) fn session_settings(
) -> impl Iterator<Item = (&'static std::ffi::CStr, &'static std::ffi::CStr)> {
    SESSION_SETTINGS
        .into_iter()
        .chain(SESSION_SETTINGS_SINCE_17)
}

/// Pin the worker session's settings, over whatever the database's and
/// the role's settings gave it at connection: [`restore_session_user`],
/// then [`session_settings`].
pub(crate) fn pin_session() {
    restore_session_user();
    for (name, value) in session_settings() {
        // SAFETY: plain GUC assignments on the worker's main thread.
        unsafe {
            pgrx::pg_sys::SetConfigOption(
                name.as_ptr(),
                value.as_ptr(),
                pgrx::pg_sys::GucContext::PGC_USERSET,
                pgrx::pg_sys::GucSource::PGC_S_SESSION,
            );
        }
    }
}

/// The worker connects as the bootstrap superuser, but a database owner's
/// `ALTER DATABASE ... SET session_authorization` is applied at connection
/// (the worker would be that role, and fail to read the queue): set it
/// back, in a transaction since the role is looked up. Then `role` and the
/// rest of [`session_settings`] apply.
fn restore_session_user() {
    pgrx::bgworkers::BackgroundWorker::transaction(|| {
        // SAFETY: catalog lookup and GUC assignment inside a transaction,
        // on the worker's main thread.
        unsafe {
            let name = pgrx::pg_sys::GetUserNameFromId(
                pgrx::pg_sys::Oid::from(pgrx::pg_sys::BOOTSTRAP_SUPERUSERID),
                false,
            );
            pgrx::pg_sys::SetConfigOption(
                c"session_authorization".as_ptr(),
                name,
                pgrx::pg_sys::GucContext::PGC_SUSET,
                pgrx::pg_sys::GucSource::PGC_S_SESSION,
            );
        }
    });
}
