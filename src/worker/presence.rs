//! Whether a delivery worker's database has the extension, and the
//! worker's half of the launcher's protocol: a worker that finds none marks
//! its slot (with the request generation it saw first, so a CREATE
//! EXTENSION committed meanwhile is not missed) and exits; the launcher
//! does not start it again until CREATE EXTENSION asks.

use super::{maintenance, txn};
use crate::shmem;
use pgrx::bgworkers::BackgroundWorker;
use pgrx::prelude::*;
use std::time::Duration;

/// Whether this database has the extension at the library's version.
enum ExtensionState {
    Ready,
    Absent,
    /// Installed at another version: wait for ALTER EXTENSION UPDATE.
    OtherVersion(String),
}

fn extension_state() -> Result<ExtensionState, String> {
    let version = txn::run(|| Spi::connect(maintenance::extension_version))?;
    Ok(match version {
        None => ExtensionState::Absent,
        Some(v) if v == env!("CARGO_PKG_VERSION") => ExtensionState::Ready,
        Some(v) => ExtensionState::OtherVersion(v),
    })
}

/// Wait until the extension is usable here; false when it is not installed
/// (the slot is marked so the launcher does not start us again until
/// CREATE EXTENSION asks) or when asked to stop.
pub fn wait_for_extension(slot: usize, poll: Duration) -> bool {
    let mut warned = false;
    loop {
        let generation = shmem::request_generation(slot);
        match extension_state() {
            Ok(ExtensionState::Ready) => {
                shmem::mark_present(slot);
                return true;
            }
            Ok(ExtensionState::Absent) => {
                shmem::mark_absent(slot, generation);
                return false;
            }
            Ok(ExtensionState::OtherVersion(v)) if !warned => {
                warned = true;
                log!(
                    "webhook_emitter: the extension here is at version {v}, the library at {}; waiting for ALTER EXTENSION webhook_emitter UPDATE",
                    env!("CARGO_PKG_VERSION")
                );
            }
            Ok(ExtensionState::OtherVersion(_)) => {}
            Err(e) => warning!("webhook_emitter: cannot check for the extension: {e}"),
        }
        if !BackgroundWorker::wait_latch(Some(poll.max(Duration::from_secs(1)))) {
            return false;
        }
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
    }
}

/// After a failed claim: true when the extension was dropped here (the
/// slot is marked and the worker should exit).
pub fn extension_dropped(slot: usize) -> bool {
    let generation = shmem::request_generation(slot);
    if let Ok(ExtensionState::Absent) = extension_state() {
        shmem::mark_absent(slot, generation);
        return true;
    }
    false
}
