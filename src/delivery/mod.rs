//! Delivery: the background worker that claims queued deliveries, sends
//! them over HTTP on worker threads, and records outcomes and retries.

pub mod admission;
pub mod auth;
pub mod endpoints;
pub mod http;
pub mod launcher;
mod plans;
pub mod policy;
pub mod pool;
pub mod presence;
pub mod profile;
pub mod redact;
pub mod retry;
pub mod settings;
pub mod store;
pub mod threads;
pub mod txn;
pub mod types;
pub mod wakeup;
pub mod worker;

use pgrx::prelude::*;

/// Called from `_PG_init`: shared memory and the worker exist only when the
/// library is preloaded (`shared_preload_libraries`).
pub fn init() {
    if unsafe { !pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    wakeup::init_shmem();
    wakeup::install_commit_prepared_hook();
    launcher::register();
}
