//! Event ids: ULIDs, unique and sortable by creation time (pruning finds
//! old events through the primary key because of it).

use pgrx::prelude::*;

/// A new event id: a ULID, unique and sortable by creation time.
#[pg_extern(volatile, parallel_safe)]
pub(crate) fn new_event_id() -> String {
    ulid::Ulid::new().to_string()
}
