//! On Citus, a worker node's registry is the coordinator's copy
//! (sql/engine/cluster.sql), and `webhook.registry_guard` refuses other
//! changes there. It lets through two writers, marked here in process
//! memory that no setting reaches:
//! - the delivery worker writing this node's own state (an endpoint
//!   failing, disabled after failing or a 410, a deleted webhook removed);
//!   an outcome callback runs in this process too, but never inside a mark;
//! - the copy's trigger applying the coordinator's rows, for the rest of
//!   that transaction (`begin_registry_apply`, which only a superuser may
//!   call), and the extension's own scripts, which Citus runs on every
//!   node.

use pgrx::prelude::*;
use std::cell::Cell;

thread_local! {
    static WRITING: Cell<bool> = const { Cell::new(false) };
    /// The local transaction applying the coordinator's registry rows.
    static APPLYING_IN: Cell<u32> = const { Cell::new(0) };
}

/// Marks this worker's own registry writes until dropped (also when an
/// error unwinds).
pub struct OwnState(());

impl OwnState {
    pub fn begin() -> OwnState {
        WRITING.with(|w| w.set(true));
        OwnState(())
    }
}

impl Drop for OwnState {
    fn drop(&mut self) {
        WRITING.with(|w| w.set(false));
    }
}

/// Whether this backend is the delivery worker writing its node's own
/// state (read by `webhook.registry_guard` and `webhook.registry_changed`).
#[pg_extern(stable, parallel_safe)]
fn writing_node_state() -> bool {
    WRITING.with(|w| w.get())
}

/// The current transaction applies the Citus coordinator's registry rows
/// (called by the copy's trigger; EXECUTE revoked from all but superusers).
#[pg_extern(volatile, parallel_unsafe)]
fn begin_registry_apply() {
    APPLYING_IN.with(|a| a.set(crate::shmem::my_lxid()));
}

/// Whether the current transaction applies the coordinator's registry rows,
/// or an extension script (CREATE or ALTER EXTENSION) is running.
#[pg_extern(stable, parallel_safe)]
fn applying_registry() -> bool {
    let lxid = crate::shmem::my_lxid();
    // SAFETY: a backend global PostgreSQL sets around extension scripts.
    let in_script = unsafe { pg_sys::creating_extension };
    in_script || (lxid != 0 && APPLYING_IN.with(|a| a.get()) == lxid)
}
