//! Event ids: ULIDs, unique and sortable by creation time (pruning finds
//! old events through the primary key because of it). Monotonic within a
//! backend: the events one session queues sort in the order it queued them
//! even within a millisecond, which the fan-out's order of deliveries (an
//! ordered webhook's sequence) relies on.

use pgrx::prelude::*;
use std::cell::RefCell;

thread_local! {
    static GENERATOR: RefCell<ulid::Generator> = const { RefCell::new(ulid::Generator::new()) };
}

/// A new event id: a ULID, unique and sortable by creation time.
#[pg_extern(volatile, parallel_safe)]
pub(crate) fn new_event_id() -> String {
    GENERATOR
        .with_borrow_mut(|generator| generator.generate())
        // 2^80 ids in one millisecond exhausted the monotonic sequence.
        .unwrap_or_else(|_| ulid::Ulid::new())
        .to_string()
}
