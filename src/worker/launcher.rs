//! The launcher: one background process per cluster that gives every
//! database where the extension exists its own delivery worker, as
//! TimescaleDB's and pg_cron-style schedulers do. It reads `pg_database`
//! (it connects to no database), starts a worker for each database it has
//! not seen yet (a worker that finds no extension says so and exits, and
//! is not started again until CREATE EXTENSION asks for it), restarts
//! workers that stopped, and forgets databases that were dropped.
//! A ProcessUtility hook stops a database's worker before DROP DATABASE or
//! CREATE DATABASE ... TEMPLATE it, which need it free of connections.

use crate::guc;
use crate::shmem::{self, SlotState};
use pgrx::bgworkers::*;
use pgrx::prelude::*;
use std::collections::HashMap;
use std::ffi::CStr;
use std::time::{Duration, Instant};

/// How often the launcher looks at `pg_database` without being asked.
const RESCAN_EVERY: Duration = Duration::from_secs(10);
/// A worker that stopped is started again after this long.
const RESTART_DELAY: Duration = Duration::from_secs(5);
/// How long DROP DATABASE waits for the database's worker to exit.
const PAUSE_WAIT: Duration = Duration::from_secs(5);

/// Register the launcher; called from `_PG_init` while preloading.
pub fn register() {
    BackgroundWorkerBuilder::new("webhook_emitter launcher")
        .set_type("webhook_emitter launcher")
        .set_function("webhook_emitter_launcher_main")
        .set_library("webhook_emitter")
        // A database connection without a database: shared catalogs only.
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
    install_utility_hook();
}

/// Connectable databases: (oid, name).
fn list_databases() -> Vec<(u32, String)> {
    let mut out = Vec::new();
    unsafe {
        pg_sys::StartTransactionCommand();
        let rel = pg_sys::table_open(
            pg_sys::DatabaseRelationId,
            pg_sys::AccessShareLock as pg_sys::LOCKMODE,
        );
        let scan = pg_sys::table_beginscan_catalog(rel, 0, std::ptr::null_mut());
        loop {
            let tuple = pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection);
            if tuple.is_null() {
                break;
            }
            let form = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_database>(tuple);
            // datconnlimit -2: a database whose DROP was interrupted.
            if (*form).datallowconn && !(*form).datistemplate && (*form).datconnlimit != -2 {
                let name = CStr::from_ptr((*form).datname.data.as_ptr())
                    .to_string_lossy()
                    .into_owned();
                out.push(((*form).oid.to_u32(), name));
            }
        }
        pg_sys::table_endscan(scan);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        pg_sys::CommitTransactionCommand();
    }
    out
}

/// Start a delivery worker for `database` in slot `slot`.
fn start_worker(database: u32, name: &str, slot: usize) -> Option<DynamicBackgroundWorker> {
    let arg = pg_sys::Datum::from(((slot as u64) << 32) | u64::from(database));
    let started =
        BackgroundWorkerBuilder::new(&format!("webhook_emitter delivery worker for {name}"))
            .set_type("webhook_emitter")
            .set_function("webhook_emitter_worker_main")
            .set_library("webhook_emitter")
            .enable_spi_access()
            .set_start_time(BgWorkerStartTime::RecoveryFinished)
            // The launcher restarts it (a postmaster restart would not know
            // whether the database still exists or has the extension).
            .set_restart_time(None)
            .set_argument(Some(arg))
            .set_notify_pid(unsafe { pg_sys::MyProcPid })
            .load_dynamic();
    match started {
        Ok(handle) => Some(handle),
        Err(_) => {
            warning!("webhook_emitter: cannot start the delivery worker for database {name:?}: no free background worker slot (raise max_worker_processes)");
            None
        }
    }
}

/// Entry point of the launcher process.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn webhook_emitter_launcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi(None, None);
    shmem::publish_launcher();
    log!("webhook_emitter: launcher started");
    // Workers this launcher started, and when each database last got one.
    let mut handles: HashMap<u32, DynamicBackgroundWorker> = HashMap::new();
    let mut last_start: HashMap<u32, Instant> = HashMap::new();
    let mut last_scan: Option<Instant> = None;
    loop {
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        let asked = shmem::take_rescan();
        handles.retain(|db, h| {
            let stopped = matches!(
                h.pid(),
                Err(BackgroundWorkerStatus::Stopped | BackgroundWorkerStatus::PostmasterDied)
            );
            if stopped {
                // It may have died before it could publish itself.
                if let Some(slot) = shmem::slot_of(*db) {
                    shmem::set_starting(slot, false);
                }
            }
            !stopped
        });
        let scan_due = last_scan.is_none_or(|t| t.elapsed() >= RESCAN_EVERY);
        if asked || scan_due || restart_due(&last_start, &handles) {
            last_scan = Some(Instant::now());
            let only = guc::string(&guc::DATABASE);
            let databases: Vec<(u32, String)> = list_databases()
                .into_iter()
                .filter(|(_, name)| only.is_empty() || *name == only)
                .collect();
            // Dropped databases give their slot back.
            for (slot, db) in shmem::slots_in_use() {
                if !databases.iter().any(|(oid, _)| *oid == db)
                    && !shmem::slot_state(slot).worker_running
                {
                    shmem::free_slot(slot);
                    last_start.remove(&db);
                }
            }
            for (db, name) in &databases {
                let Some(slot) = shmem::claim_slot(*db) else {
                    warning!("webhook_emitter: no room for database {name:?}: at most {} databases get a delivery worker", shmem::MAX_DATABASES);
                    continue;
                };
                if !wants_worker(*db, slot, &handles, &last_start) {
                    continue;
                }
                shmem::set_starting(slot, true);
                match start_worker(*db, name, slot) {
                    Some(handle) => {
                        handles.insert(*db, handle);
                        last_start.insert(*db, Instant::now());
                    }
                    None => shmem::set_starting(slot, false),
                }
            }
        }
        // Woken by a request, by a worker starting or stopping (notify
        // pid), or by the timeout.
        if !BackgroundWorker::wait_latch(Some(Duration::from_secs(1))) {
            break;
        }
    }
    log!("webhook_emitter: launcher exiting");
}

/// Whether `database` (in `slot`) should get a worker now: none runs or is
/// starting, the extension was not found missing, no DROP/CREATE DATABASE
/// needs it free, and a worker that crashed or was stopped has waited
/// `RESTART_DELAY` (one asked for by CREATE EXTENSION starts at once).
fn wants_worker(
    database: u32,
    slot: usize,
    handles: &HashMap<u32, DynamicBackgroundWorker>,
    last_start: &HashMap<u32, Instant>,
) -> bool {
    let SlotState {
        worker_running,
        extension_absent,
        left_for_absence,
        stopping,
    } = shmem::slot_state(slot);
    let too_soon = !left_for_absence
        && last_start
            .get(&database)
            .is_some_and(|t| t.elapsed() < RESTART_DELAY);
    !(worker_running || handles.contains_key(&database) || extension_absent || stopping || too_soon)
}

/// Some database's worker stopped long enough ago to be started again.
fn restart_due(
    last_start: &HashMap<u32, Instant>,
    handles: &HashMap<u32, DynamicBackgroundWorker>,
) -> bool {
    last_start.keys().any(|db| {
        shmem::slot_of(*db).is_some_and(|slot| wants_worker(*db, slot, handles, last_start))
    })
}

static mut PREVIOUS_UTILITY_HOOK: pg_sys::ProcessUtility_hook_type = None;

fn install_utility_hook() {
    unsafe {
        PREVIOUS_UTILITY_HOOK = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(utility_hook);
    }
}

/// The database a statement needs free of connections: DROP DATABASE's,
/// or the template of CREATE DATABASE.
unsafe fn database_needed_free(stmt: *mut pg_sys::Node) -> Option<u32> {
    let name: *const std::ffi::c_char = unsafe {
        if pgrx::is_a(stmt, pg_sys::NodeTag::T_DropdbStmt) {
            (*(stmt as *mut pg_sys::DropdbStmt)).dbname
        } else if pgrx::is_a(stmt, pg_sys::NodeTag::T_CreatedbStmt) {
            let options = pgrx::PgList::<pg_sys::DefElem>::from_pg(
                (*(stmt as *mut pg_sys::CreatedbStmt)).options,
            );
            let template = options.iter_ptr().find(|d| {
                !(**d).defname.is_null() && CStr::from_ptr((**d).defname).to_bytes() == b"template"
            })?;
            pg_sys::defGetString(template)
        } else {
            return None;
        }
    };
    if name.is_null() {
        return None;
    }
    let oid = unsafe { pg_sys::get_database_oid(name, true) };
    (oid != pg_sys::InvalidOid).then(|| oid.to_u32())
}

#[pg_guard]
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn utility_hook(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const std::ffi::c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    unsafe {
        let stmt = (*pstmt).utilityStmt;
        if let Some(db) = database_needed_free(stmt) {
            shmem::pause_worker(db, PAUSE_WAIT);
        }
        // DROP EXTENSION: wake this database's worker at commit; its next
        // claim fails, it finds the extension gone and exits.
        if pgrx::is_a(stmt, pg_sys::NodeTag::T_DropStmt)
            && (*(stmt as *mut pg_sys::DropStmt)).removeType == pg_sys::ObjectType::OBJECT_EXTENSION
        {
            shmem::wake_worker_at_commit();
        }
        match PREVIOUS_UTILITY_HOOK {
            Some(previous) => previous(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
            None => pg_sys::standard_ProcessUtility(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
        }
    }
}
