//! The delivery worker: the launcher that starts one per database, its
//! loop (`delivery_loop`), claiming (`claim`), sending on a pool of threads
//! (`pool`, `admission`), recording outcomes (`record`, `verdict`),
//! retries (`retry`), upkeep (`maintenance`), and the cache of endpoints.

pub mod admission;
pub mod claim;
pub mod delivery_loop;
pub mod endpoints;
pub mod launcher;
pub mod maintenance;
mod plans;
pub mod pool;
pub mod presence;
pub mod profile;
pub mod record;
pub mod retry;
pub mod settings;
pub mod txn;
pub mod verdict;

use pgrx::prelude::*;

/// Called from `_PG_init`: shared memory and the worker exist only when the
/// library is preloaded (`shared_preload_libraries`).
pub fn init() {
    if unsafe { !pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    crate::shmem::init_shmem();
    crate::write::wake::install_commit_prepared_hook();
    launcher::register();
}
