//! On Citus, a worker node's registry is the coordinator's copy
//! (sql/engine/cluster.sql), and `webhook.registry_guard` refuses other
//! changes there. What the delivery worker writes to `webhook.webhooks`
//! is this node's own state (an endpoint failing, disabled after failing or
//! a 410, a deleted webhook removed): it marks those statements here, in
//! process memory no SQL can set (an outcome callback runs in this process
//! too, but never inside a mark).

use pgrx::prelude::*;
use std::cell::Cell;

thread_local! {
    static WRITING: Cell<bool> = const { Cell::new(false) };
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
