//! Waking the worker at commit: the worker publishes its PGPROC number in
//! shared memory; a transaction that queued deliveries registers a commit
//! callback that sets the worker's latch. A rolled-back transaction never
//! reaches the callback, so it wakes nobody.

use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PgAtomic, PgXactCallbackEvent};
use std::cell::Cell;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

/// PGPROC number of the running worker, or -1.
static WORKER_PROCNO: PgAtomic<AtomicI32> =
    unsafe { PgAtomic::new(c"webhook_emitter_worker_procno") };
/// OID of the database the worker serves: commits elsewhere do not wake it.
static WORKER_DATABASE: PgAtomic<AtomicU32> =
    unsafe { PgAtomic::new(c"webhook_emitter_worker_database") };

thread_local! {
    /// Local transaction id for which a commit callback is already registered.
    static REGISTERED_FOR: Cell<u32> = const { Cell::new(0) };
}

static SHMEM_READY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Reserve the shared memory; only possible while preloading.
pub fn init_shmem() {
    pg_shmem_init!(WORKER_PROCNO = AtomicI32::new(-1));
    pg_shmem_init!(WORKER_DATABASE = AtomicU32::new(0));
    SHMEM_READY.store(true, Ordering::Relaxed);
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
fn my_lxid() -> u32 {
    #[cfg(feature = "pg15")]
    // SAFETY: MyProc is set for every backend.
    return unsafe { (*pg_sys::MyProc).lxid };
    #[cfg(feature = "pg18")]
    // SAFETY: MyProc is set for every backend.
    return unsafe { (*pg_sys::MyProc).vxid.lxid };
}

/// Called by the worker once connected.
pub fn publish_worker() {
    let procno = my_procno();
    let database = unsafe { pg_sys::MyDatabaseId }.to_u32();
    WORKER_DATABASE.get().store(database, Ordering::SeqCst);
    WORKER_PROCNO.get().store(procno, Ordering::SeqCst);
}

/// Called by the worker on exit.
pub fn withdraw_worker() {
    WORKER_PROCNO.get().store(-1, Ordering::SeqCst);
}

fn set_worker_latch() {
    if !SHMEM_READY.load(Ordering::Relaxed) {
        return;
    }
    let procno = WORKER_PROCNO.get().load(Ordering::SeqCst);
    if procno < 0 {
        return;
    }
    unsafe {
        let proc_global = pg_sys::ProcGlobal;
        if proc_global.is_null() || procno as u32 >= (*proc_global).allProcCount {
            return;
        }
        let proc_ = (*proc_global).allProcs.add(procno as usize);
        pg_sys::SetLatch(&mut (*proc_).procLatch);
    }
}

/// Wake the delivery worker when the current transaction commits (once per
/// transaction, however often it is called). Called by `webhook.enqueue`.
#[pg_extern(volatile, parallel_unsafe)]
fn wake_worker_at_commit() {
    if !SHMEM_READY.load(Ordering::Relaxed) {
        return; // not preloaded: no worker to wake
    }
    if WORKER_DATABASE.get().load(Ordering::Relaxed) != unsafe { pg_sys::MyDatabaseId }.to_u32() {
        return; // the worker serves another database
    }
    let lxid = my_lxid();
    if REGISTERED_FOR.with(|r| r.get()) == lxid {
        return;
    }
    REGISTERED_FOR.with(|r| r.set(lxid));
    pgrx::register_xact_callback(PgXactCallbackEvent::Commit, set_worker_latch);
}
