//! Shared memory that ties backends, the launcher and the per-database
//! delivery workers together: one slot per database (its worker's PGPROC
//! number, whether the extension was found there, whether a DROP/CREATE
//! DATABASE needs it free), and the launcher's PGPROC number.
//!
//! Waking at commit: a transaction that queued deliveries registers a
//! commit callback that sets the latch of its database's worker. A
//! rolled-back transaction never reaches the callback, so it wakes nobody.

use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgAtomic, PgXactCallbackEvent};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};

/// Databases that can have a delivery worker at the same time.
pub const MAX_DATABASES: usize = 128;
/// "Not marked absent" in `absent_generation`.
const NOT_ABSENT: u32 = u32::MAX;

/// The shared table. Slots are claimed by compare-and-swap on `database`
/// and freed by the launcher when their database is gone.
pub struct Registry {
    launcher_procno: AtomicI32,
    /// Someone asked the launcher to look at the databases again.
    rescan: AtomicBool,
    database: [AtomicU32; MAX_DATABASES],
    /// PGPROC number of the database's running worker, or -1.
    procno: [AtomicI32; MAX_DATABASES],
    /// Bumped at the commit of CREATE EXTENSION / ALTER EXTENSION UPDATE.
    request_generation: [AtomicU32; MAX_DATABASES],
    /// The request generation a worker saw before it found no extension
    /// there; the database counts as without the extension while this
    /// equals `request_generation` (a later request makes it stale).
    absent_generation: [AtomicU32; MAX_DATABASES],
    /// A DROP or CREATE DATABASE needs this database free of connections.
    stopping: [AtomicBool; MAX_DATABASES],
    /// The launcher registered a worker that has not published itself yet.
    starting: [AtomicBool; MAX_DATABASES],
    /// The database's worker has requests in flight or parked: it counts
    /// when the HTTP concurrency is shared out (see `share`).
    busy: [AtomicBool; MAX_DATABASES],
    /// Bumped after every commit that changed webhooks or the global
    /// switch: backends drop their cached set of wanted topics.
    subscriptions_generation: AtomicU64,
    /// Transactions that changed them and were prepared (two-phase commit,
    /// as Citus applies the coordinator's registry): the generation is
    /// bumped when one is seen committed after a COMMIT PREPARED, from
    /// whichever session ran it (0: free).
    prepared_changes: [AtomicU32; PREPARED_CHANGES],
    /// More were prepared than `prepared_changes` holds: every COMMIT
    /// PREPARED bumps the generation.
    prepared_overflow: AtomicBool,
}

const PREPARED_CHANGES: usize = 32;

// SAFETY: only atomics, valid in shared memory at any address.
unsafe impl PGRXSharedMemory for Registry {}

impl Default for Registry {
    fn default() -> Registry {
        Registry {
            launcher_procno: AtomicI32::new(-1),
            rescan: AtomicBool::new(false),
            database: std::array::from_fn(|_| AtomicU32::new(0)),
            procno: std::array::from_fn(|_| AtomicI32::new(-1)),
            request_generation: std::array::from_fn(|_| AtomicU32::new(0)),
            absent_generation: std::array::from_fn(|_| AtomicU32::new(NOT_ABSENT)),
            stopping: std::array::from_fn(|_| AtomicBool::new(false)),
            starting: std::array::from_fn(|_| AtomicBool::new(false)),
            busy: std::array::from_fn(|_| AtomicBool::new(false)),
            subscriptions_generation: AtomicU64::new(0),
            prepared_changes: std::array::from_fn(|_| AtomicU32::new(0)),
            prepared_overflow: AtomicBool::new(false),
        }
    }
}

static REGISTRY: PgAtomic<Registry> = unsafe { PgAtomic::new(c"webhook_emitter_registry") };

static SHMEM_READY: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Local transaction id for which a commit callback is already registered.
    static REGISTERED_FOR: Cell<u32> = const { Cell::new(0) };
    /// This backend's database's slot (a backend never changes database).
    static MY_SLOT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Reserve the shared memory; only possible while preloading.
pub fn init_shmem() {
    pg_shmem_init!(REGISTRY = Registry::default());
    SHMEM_READY.store(true, Ordering::Relaxed);
}

fn registry() -> Option<&'static Registry> {
    SHMEM_READY.load(Ordering::Relaxed).then(|| REGISTRY.get())
}

/// This backend's PGPROC number (its index in `ProcGlobal->allProcs`).
/// PostgreSQL 17 replaced `PGPROC.pgprocno` with `MyProcNumber`.
fn my_procno() -> i32 {
    #[cfg(feature = "pg15")]
    // SAFETY: MyProc is set for every backend and background worker.
    return unsafe { (*pg_sys::MyProc).pgprocno };
    #[cfg(feature = "pg18")]
    // SAFETY: a plain global, set at backend start.
    return unsafe { pg_sys::MyProcNumber };
}

/// The current local transaction id. PostgreSQL 17 moved `PGPROC.lxid`
/// into `PGPROC.vxid`.
pub fn my_lxid() -> u32 {
    #[cfg(feature = "pg15")]
    // SAFETY: MyProc is set for every backend.
    return unsafe { (*pg_sys::MyProc).lxid };
    #[cfg(feature = "pg18")]
    // SAFETY: MyProc is set for every backend.
    return unsafe { (*pg_sys::MyProc).vxid.lxid };
}

fn my_database() -> u32 {
    unsafe { pg_sys::MyDatabaseId }.to_u32()
}

/// The PGPROC at `procno`, if it is a valid index.
fn proc_at(procno: i32) -> Option<*mut pg_sys::PGPROC> {
    unsafe {
        let proc_global = pg_sys::ProcGlobal;
        if procno < 0 || proc_global.is_null() || procno as u32 >= (*proc_global).allProcCount {
            return None;
        }
        Some((*proc_global).allProcs.add(procno as usize))
    }
}

fn set_latch_of(procno: i32) {
    if let Some(proc_) = proc_at(procno) {
        unsafe { pg_sys::SetLatch(&mut (*proc_).procLatch) };
    }
}

/// The slot of `database`, if it has one.
pub fn slot_of(database: u32) -> Option<usize> {
    let reg = registry()?;
    (0..MAX_DATABASES).find(|&i| reg.database[i].load(Ordering::Acquire) == database)
}

/// The slot of `database`, claiming a free one if it has none.
pub fn claim_slot(database: u32) -> Option<usize> {
    if let Some(i) = slot_of(database) {
        return Some(i);
    }
    let reg = registry()?;
    for i in 0..MAX_DATABASES {
        if reg.database[i]
            .compare_exchange(0, database, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return Some(i);
        }
        if reg.database[i].load(Ordering::Acquire) == database {
            return Some(i); // claimed by someone else meanwhile
        }
    }
    None
}

/// What the launcher knows about one database's slot.
#[derive(Default)]
pub struct SlotState {
    pub worker_running: bool,
    pub extension_absent: bool,
    /// The last worker here exited because it found no extension (so it
    /// did not crash: a new one needs no restart delay).
    pub left_for_absence: bool,
    pub stopping: bool,
}

pub fn slot_state(slot: usize) -> SlotState {
    let Some(reg) = registry() else {
        return SlotState::default();
    };
    SlotState {
        worker_running: reg.procno[slot].load(Ordering::Acquire) >= 0,
        extension_absent: reg.absent_generation[slot].load(Ordering::Acquire)
            == reg.request_generation[slot].load(Ordering::Acquire),
        left_for_absence: reg.absent_generation[slot].load(Ordering::Acquire) != NOT_ABSENT,
        stopping: reg.stopping[slot].load(Ordering::Acquire),
    }
}

/// Databases that have a slot, with the slot.
pub fn slots_in_use() -> Vec<(usize, u32)> {
    let Some(reg) = registry() else {
        return Vec::new();
    };
    (0..MAX_DATABASES)
        .filter_map(|i| {
            let db = reg.database[i].load(Ordering::Acquire);
            (db != 0).then_some((i, db))
        })
        .collect()
}

/// Forget a database that no longer exists (launcher only).
pub fn free_slot(slot: usize) {
    if let Some(reg) = registry() {
        reg.stopping[slot].store(false, Ordering::Release);
        reg.absent_generation[slot].store(NOT_ABSENT, Ordering::Release);
        reg.database[slot].store(0, Ordering::Release);
    }
}

/// The request generation of a slot, read by a worker before it looks
/// for the extension.
pub fn request_generation(slot: usize) -> u32 {
    registry().map_or(0, |r| r.request_generation[slot].load(Ordering::Acquire))
}

/// A worker found no (usable) extension in its database at `generation`.
pub fn mark_absent(slot: usize, generation: u32) {
    if let Some(reg) = registry() {
        reg.absent_generation[slot].store(generation, Ordering::Release);
    }
}

/// A worker found the extension: a later exit is a crash or a stop.
pub fn mark_present(slot: usize) {
    if let Some(reg) = registry() {
        reg.absent_generation[slot].store(NOT_ABSENT, Ordering::Release);
    }
}

/// Called by the launcher once started.
pub fn publish_launcher() {
    if let Some(reg) = registry() {
        reg.launcher_procno.store(my_procno(), Ordering::Release);
    }
}

/// Take the launcher's "look again" request.
pub fn take_rescan() -> bool {
    registry().is_some_and(|r| r.rescan.swap(false, Ordering::AcqRel))
}

/// Ask the launcher to look at the databases again, now.
pub fn wake_launcher() {
    if let Some(reg) = registry() {
        reg.rescan.store(true, Ordering::Release);
        set_latch_of(reg.launcher_procno.load(Ordering::Acquire));
    }
}

/// The launcher is about to start a worker for `slot` (or, with false,
/// that worker never started).
pub fn set_starting(slot: usize, starting: bool) {
    if let Some(reg) = registry() {
        reg.starting[slot].store(starting, Ordering::Release);
    }
}

/// Called by a worker once connected; withdrawn when the process exits,
/// however it exits. Returns false when its database is being dropped or
/// copied (the worker should exit at once).
pub fn publish_worker(slot: usize) -> bool {
    let Some(reg) = registry() else { return true };
    reg.procno[slot].store(my_procno(), Ordering::Release);
    reg.starting[slot].store(false, Ordering::Release);
    unsafe extern "C-unwind" fn withdraw(_code: i32, slot: pg_sys::Datum) {
        if let Some(reg) = registry() {
            reg.procno[slot.value()].store(-1, Ordering::Release);
            reg.busy[slot.value()].store(false, Ordering::Release);
        }
        wake_launcher();
    }
    unsafe { pg_sys::before_shmem_exit(Some(withdraw), pg_sys::Datum::from(slot)) };
    !reg.stopping[slot].load(Ordering::Acquire)
}

/// Whether the worker of `slot` has requests in flight or parked.
pub fn set_busy(slot: usize, busy: bool) {
    if let Some(reg) = registry() {
        reg.busy[slot].store(busy, Ordering::Release);
    }
}

/// The requests the worker of `slot` may have in flight: an equal part of
/// `total` (`webhook.max_concurrency`) among the databases whose workers
/// are busy, itself included; at least one. One busy database gets it all;
/// three busy schools get a third each, so no database's backlog can take
/// the HTTP capacity the others need.
pub fn share(slot: usize, total: usize) -> usize {
    let Some(reg) = registry() else { return total };
    let others = (0..MAX_DATABASES)
        .filter(|&s| s != slot && reg.busy[s].load(Ordering::Acquire))
        .count();
    (total / (others + 1)).max(1)
}

/// PID of the worker serving `slot`, if one runs.
fn worker_pid(slot: usize) -> Option<i32> {
    let procno = registry()?.procno[slot].load(Ordering::Acquire);
    let proc_ = proc_at(procno)?;
    let pid = unsafe { (*proc_).pid };
    (pid > 0).then_some(pid)
}

/// Stop the worker of `database` before a statement that needs the
/// database free of connections (DROP DATABASE, CREATE DATABASE from it as
/// a template); the launcher starts it again once the transaction ends
/// (and only if the database still exists). Waits up to `wait` for it.
pub fn pause_worker(database: u32, wait: std::time::Duration) {
    let Some(slot) = slot_of(database) else {
        return;
    };
    let Some(reg) = registry() else { return };
    reg.stopping[slot].store(true, Ordering::Release);
    let release = move || {
        if let Some(reg) = registry() {
            reg.stopping[slot].store(false, Ordering::Release);
        }
        wake_launcher();
    };
    pgrx::register_xact_callback(PgXactCallbackEvent::Commit, release);
    pgrx::register_xact_callback(PgXactCallbackEvent::Abort, release);
    // A worker may be running, or registered and still connecting: wait
    // until neither, signalling each running one once.
    let deadline = std::time::Instant::now() + wait;
    let mut signalled = None;
    while std::time::Instant::now() < deadline {
        let running = reg.procno[slot].load(Ordering::Acquire) >= 0;
        if !running && !reg.starting[slot].load(Ordering::Acquire) {
            break;
        }
        if let Some(pid) = worker_pid(slot).filter(|p| signalled != Some(*p)) {
            unsafe { libc::kill(pid, libc::SIGTERM) };
            signalled = Some(pid);
        }
        unsafe { pg_sys::pg_usleep(10_000) };
        pg_sys::check_for_interrupts!();
    }
}

/// Ask for this database's worker, at commit (CREATE EXTENSION and ALTER
/// EXTENSION UPDATE call it): a worker that found no extension here before
/// is started again.
pub fn request_worker_at_commit() {
    if registry().is_none() {
        return; // not preloaded: no launcher to ask
    }
    pgrx::register_xact_callback(PgXactCallbackEvent::Commit, || {
        if let (Some(reg), Some(slot)) = (registry(), claim_slot(my_database())) {
            reg.request_generation[slot].fetch_add(1, Ordering::AcqRel);
        }
        wake_launcher();
    });
}

fn set_worker_latch() {
    let Some(reg) = registry() else { return };
    let slot = match MY_SLOT.with(Cell::get) {
        Some(slot) if reg.database[slot].load(Ordering::Acquire) == my_database() => slot,
        _ => match slot_of(my_database()) {
            Some(slot) => {
                MY_SLOT.with(|s| s.set(Some(slot)));
                slot
            }
            None => return, // no worker for this database
        },
    };
    set_latch_of(reg.procno[slot].load(Ordering::Acquire));
}

/// Wake this database's delivery worker when the current transaction
/// commits (once per transaction, however often it is called). Called by
/// `webhook.enqueue`.
pub fn wake_worker_at_commit() {
    if registry().is_none() {
        return; // not preloaded: no worker to wake
    }
    let lxid = my_lxid();
    if REGISTERED_FOR.with(|r| r.get()) == lxid {
        return;
    }
    REGISTERED_FOR.with(|r| r.set(lxid));
    pgrx::register_xact_callback(PgXactCallbackEvent::Commit, set_worker_latch);
}

/// The subscriptions generation (see `Registry`), or None when the library
/// is not preloaded (then nothing may be cached).
pub fn subscriptions_generation() -> Option<u64> {
    registry().map(|reg| reg.subscriptions_generation.load(Ordering::Acquire))
}

/// Bump the subscriptions generation when the current transaction commits:
/// after its changes are visible, so a backend that reads the new value and
/// then takes a snapshot sees them.
pub fn bump_subscriptions_generation_at_commit() {
    if registry().is_none() {
        return;
    }
    pgrx::register_xact_callback(PgXactCallbackEvent::Commit, || {
        if let Some(reg) = registry() {
            reg.subscriptions_generation.fetch_add(1, Ordering::AcqRel);
        }
    });
    // Prepared instead: its COMMIT PREPARED may come from another session.
    pgrx::register_xact_callback(PgXactCallbackEvent::PrePrepare, || {
        let Some(reg) = registry() else { return };
        // SAFETY: a transaction is being prepared in this backend.
        let xid = unsafe { pg_sys::GetTopTransactionIdIfAny() }.into_inner();
        if xid == 0 {
            return;
        }
        let stored = reg.prepared_changes.iter().any(|slot| {
            slot.compare_exchange(0, xid, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        });
        if !stored {
            reg.prepared_overflow.store(true, Ordering::Release);
        }
    });
}

/// After a COMMIT PREPARED or ROLLBACK PREPARED: bump the subscriptions
/// generation if a prepared change is now committed, and forget those that
/// ended.
pub fn bump_for_ended_prepared_changes() {
    let Some(reg) = registry() else { return };
    let mut committed = reg.prepared_overflow.load(Ordering::Acquire);
    for slot in &reg.prepared_changes {
        let xid = slot.load(Ordering::Acquire);
        if xid == 0 {
            continue;
        }
        let id = pg_sys::TransactionId::from_inner(xid);
        // SAFETY: plain lookups of a transaction's state.
        if unsafe { pg_sys::TransactionIdIsInProgress(id) } {
            continue;
        }
        committed |= unsafe { pg_sys::TransactionIdDidCommit(id) };
        let _ = slot.compare_exchange(xid, 0, Ordering::AcqRel, Ordering::Acquire);
    }
    if committed {
        reg.subscriptions_generation.fetch_add(1, Ordering::AcqRel);
    }
}
