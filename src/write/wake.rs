//! Waking the delivery worker when a write commits: the SQL functions the
//! queue calls (the shared memory they use is `crate::shmem`), and the
//! hook that does it for `COMMIT PREPARED`.

use crate::shmem;
use pgrx::prelude::*;

/// Ask for this database's worker, at commit (CREATE EXTENSION and ALTER
/// EXTENSION UPDATE call it).
#[pg_extern(volatile, parallel_unsafe)]
fn request_worker() {
    shmem::request_worker_at_commit();
}

/// Wake this database's delivery worker when the current transaction
/// commits (once per transaction). Called by `webhook.enqueue`.
#[pg_extern(volatile, parallel_unsafe)]
fn wake_worker_at_commit() {
    shmem::wake_worker_at_commit();
}

/// The ProcessUtility hook in place before ours (another extension's).
static mut PREVIOUS_PROCESS_UTILITY: pg_sys::ProcessUtility_hook_type = None;

/// `COMMIT PREPARED` commits a transaction that another session prepared:
/// the commit callback that wakes the worker ran in no session (PREPARE
/// fires none), so the committing statement wakes it. Installed in every
/// backend from `_PG_init` (the library is preloaded).
pub fn install_commit_prepared_hook() {
    // SAFETY: _PG_init runs once per process, before any statement.
    unsafe {
        PREVIOUS_PROCESS_UTILITY = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
    }
}

/// No `pg_guard` here: an ERROR of the statement passes through this frame
/// (which holds nothing to drop) as PostgreSQL raised it, its context
/// included; only the wake-up is guarded.
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn process_utility(
    statement: *mut pg_sys::PlannedStmt,
    query: *const std::ffi::c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    completion: *mut pg_sys::QueryCompletion,
) {
    let node = (*statement).utilityStmt;
    let kind = if !node.is_null() && (*node).type_ == pg_sys::NodeTag::T_TransactionStmt {
        Some((*(node as *mut pg_sys::TransactionStmt)).kind)
    } else {
        None
    };
    if kind == Some(pg_sys::TransactionStmtKind::TRANS_STMT_COMMIT_PREPARED) {
        // When the transaction running COMMIT PREPARED commits (after the
        // prepared one is committed and visible).
        wake_worker_after_this_commit();
    }
    let ended_prepared = matches!(
        kind,
        Some(
            pg_sys::TransactionStmtKind::TRANS_STMT_COMMIT_PREPARED
                | pg_sys::TransactionStmtKind::TRANS_STMT_ROLLBACK_PREPARED
        )
    );
    match PREVIOUS_PROCESS_UTILITY {
        Some(previous) => previous(
            statement,
            query,
            read_only_tree,
            context,
            params,
            query_env,
            dest,
            completion,
        ),
        None => pg_sys::standard_ProcessUtility(
            statement,
            query,
            read_only_tree,
            context,
            params,
            query_env,
            dest,
            completion,
        ),
    }
    // The prepared transaction has ended: caches of the topics wanted
    // drop what it changed (its own commit callback ran in no session).
    if ended_prepared {
        bump_for_ended_prepared_changes();
    }
}

#[pg_guard]
extern "C-unwind" fn bump_for_ended_prepared_changes() {
    shmem::bump_for_ended_prepared_changes();
}

#[pg_guard]
extern "C-unwind" fn wake_worker_after_this_commit() {
    shmem::wake_worker_at_commit();
}
