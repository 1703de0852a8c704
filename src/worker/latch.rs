//! The worker's waits on its latch: a commit that queued events sets it
//! (`shmem::wake_worker_at_commit`); the loop tells that from a timeout.

use pgrx::bgworkers::BackgroundWorker;
use pgrx::pg_sys;
use std::time::Duration;

/// Sleep on the latch for at most `timeout`; returns (keep running, the
/// latch was set). Unlike `BackgroundWorker::wait_latch` it tells a commit
/// wake-up from a timeout.
pub fn wait_on_latch(timeout: Duration) -> (bool, bool) {
    let flags = (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_POSTMASTER_DEATH) as i32;
    let rc = unsafe {
        pg_sys::WaitLatch(
            pg_sys::MyLatch,
            flags,
            whole_ms(timeout),
            pg_sys::PG_WAIT_EXTENSION,
        )
    };
    let latch_set = rc & pg_sys::WL_LATCH_SET as i32 != 0;
    // Reset only a latch this wait saw set: one set after a timeout
    // returned stays set for the next wait, instead of being cleared unseen
    // (a commit's wake-up then waited for the next commit or the poll).
    if latch_set {
        unsafe { pg_sys::ResetLatch(pg_sys::MyLatch) };
    }
    pg_sys::check_for_interrupts!();
    let postmaster_died = rc & pg_sys::WL_POSTMASTER_DEATH as i32 != 0;
    (
        !postmaster_died && !BackgroundWorker::sigterm_received(),
        latch_set,
    )
}

/// Sleep for `timeout` whether or not the latch is set meanwhile (it stays
/// set for the next `wait_on_latch`); postmaster death still ends it.
pub fn sleep_past_latch(timeout: Duration) {
    let flags = (pg_sys::WL_TIMEOUT | pg_sys::WL_POSTMASTER_DEATH) as i32;
    unsafe {
        pg_sys::WaitLatch(
            pg_sys::MyLatch,
            flags,
            whole_ms(timeout),
            pg_sys::PG_WAIT_EXTENSION,
        )
    };
}

/// A WaitLatch timeout, rounded up: a wait of 0.4 ms must not become
/// WaitLatch(0), which returns at once (the loop would spin until the wait
/// is over).
fn whole_ms(timeout: Duration) -> std::ffi::c_long {
    timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as std::ffi::c_long
}
