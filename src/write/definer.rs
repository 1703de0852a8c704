//! Who a topic's code runs as.
//!
//! A topic's generated trigger function (schema `webhook_triggers`) calls
//! its builder and, for `commit` topics, re-reads the row and its
//! condition. That code must run with the rights of the role that defined
//! the topic (its *definer*), never more. Before 0.3.0 the generated
//! function was `SECURITY DEFINER` and owned by the definer, who could
//! therefore alter it (`SECURITY INVOKER`, a new body) and run code as
//! whoever wrote the table next, a superuser included.
//!
//! Now every generated object is created and owned by the extension owner,
//! through `webhook.change_topic` (which records the caller as the definer
//! and does the change as the extension owner), and the triggers call
//! `webhook.emit_topic(topic)`: it finds the topic's definer and generated
//! function in `webhook.topics` and calls that function with the user id
//! switched to the definer, as `SECURITY DEFINER` would, without anyone
//! but the extension owner owning what runs. Nobody else may execute
//! `emit_topic`, so only the extension's own code can create triggers that
//! call it (CREATE TRIGGER checks EXECUTE), and its argument is trusted.

use super::wanted::{self, ReadAs};
use crate::error::WebhookError;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::rc::Rc;

/// The topic's definer, generated function and builder, when all are
/// sound: the function is the extension owner's and not `SECURITY
/// DEFINER`, the definer still exists, and the builder (if any) belongs to
/// the definer or a superuser (anyone else could replace its body). Every operator is qualified: the writer's
/// `search_path` must not choose them. The writer has no USAGE on schema
/// `webhook_triggers`, so the function is found in `pg_proc`, not by
/// `to_regprocedure` (which would check it).
const TOPIC_TARGET: &CStr = c"
SELECT t.definer::pg_catalog.oid, p.oid, t.builder::pg_catalog.oid,
       (SELECT b.proargtypes[0] FROM pg_catalog.pg_proc b WHERE b.oid OPERATOR(pg_catalog.=) t.builder::pg_catalog.oid),
       (pg_catalog.parse_ident(t.source_table))[1], (pg_catalog.parse_ident(t.source_table))[2],
       t.timing OPERATOR(pg_catalog.=) 'commit' AND t.condition IS NOT NULL,
       t.on_builder_error OPERATOR(pg_catalog.=) 'refuse',
       t.timing OPERATOR(pg_catalog.=) 'before_delete'
  FROM webhook.topics t
  JOIN pg_catalog.pg_proc p
    ON p.proname OPERATOR(pg_catalog.=) t.trigger_function
   AND p.pronargs OPERATOR(pg_catalog.=) 0
   AND p.pronamespace OPERATOR(pg_catalog.=) (SELECT n.oid FROM pg_catalog.pg_namespace n
                                               WHERE n.nspname OPERATOR(pg_catalog.=) 'webhook_triggers')
 WHERE t.topic OPERATOR(pg_catalog.=) $1
   AND NOT p.prosecdef
   AND p.proowner OPERATOR(pg_catalog.=) (SELECT e.extowner FROM pg_catalog.pg_extension e
                                           WHERE e.extname OPERATOR(pg_catalog.=) 'webhook_emitter')
   AND EXISTS (SELECT FROM pg_catalog.pg_roles r
                WHERE r.oid OPERATOR(pg_catalog.=) t.definer::pg_catalog.oid)
   AND (t.builder IS NULL OR EXISTS (
        SELECT FROM pg_catalog.pg_proc b JOIN pg_catalog.pg_roles o ON o.oid OPERATOR(pg_catalog.=) b.proowner
         WHERE b.oid OPERATOR(pg_catalog.=) t.builder::pg_catalog.oid
           AND (o.rolsuper OR b.proowner OPERATOR(pg_catalog.=) t.definer::pg_catalog.oid)))";

/// What `emit_topic` runs for a topic, and as whom.
pub(crate) struct Target {
    pub topic: String,
    pub definer: pg_sys::Oid,
    function: pg_sys::Oid,
    pub builder: Option<pg_sys::Oid>,
    /// The type of the builder's argument (the key, or the array of keys).
    pub key_type: pg_sys::Oid,
    /// The topic's table by name (schema, relation), as stored.
    table: (CString, CString),
    /// The generated function reads the table again by that name (a
    /// commit topic with a condition).
    rereads: bool,
    /// A builder error fails the write (`on_builder_error = 'refuse'`)
    /// instead of queuing the event unbuilt.
    pub refuse_on_error: bool,
    /// Built before the delete (timing `before_delete`).
    before_delete: bool,
}

/// Targets as they were when `generation` was current (bounded by
/// `webhook.topics`: only topics that exist are kept).
struct Targets {
    generation: u64,
    by_topic: HashMap<String, Rc<Target>>,
}

thread_local! {
    /// The topic whose builder `emit_topic` is running right now:
    /// `call_builder` serves that call and nothing else (its EXECUTE is
    /// webhook_admin's, since the generated functions run as the definer),
    /// and takes the topic from here, not from its argument.
    static EMITTING: RefCell<Option<Rc<Target>>> = const { RefCell::new(None) };
    static TARGETS: RefCell<Option<Targets>> = const { RefCell::new(None) };
    static TARGET_PLAN: Cell<pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
}

#[no_mangle]
#[doc(hidden)]
pub extern "C" fn pg_finfo_emit_topic() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// `webhook.emit_topic()`, the function of every generated topic trigger
/// (its one argument: the topic). Calls the topic's generated function as
/// the topic's definer with the same trigger data, and returns its result.
///
/// # Safety
/// Called by the function manager with a valid `fcinfo`.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn emit_topic(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let context = (*fcinfo).context;
    if context.is_null() || !pgrx::is_a(context, pg_sys::NodeTag::T_TriggerData) {
        WebhookError::invalid(
            "webhook.emit_topic",
            "is a trigger function; topics create its triggers",
        )
        .raise()
    }
    let trigger = (*(context as *mut pg_sys::TriggerData)).tg_trigger;
    if (*trigger).tgnargs != 1 || (*trigger).tgargs.is_null() {
        WebhookError::invalid(
            "webhook.emit_topic",
            "takes one trigger argument, the topic",
        )
        .raise()
    }
    let topic = CStr::from_ptr(*(*trigger).tgargs).to_string_lossy();
    let target = target_of(&topic);
    let trigger_data = context as *mut pg_sys::TriggerData;
    let relation = (*(*trigger_data).tg_relation).rd_id;
    if target.rereads {
        check_table(&topic, &target, relation);
    }
    // An entity created and deleted in one transaction was never announced
    // (its created topic, built at commit, finds no row): its delete is
    // not announced either. The row is let through untouched.
    if target.before_delete && inserted_by_this_transaction((*trigger_data).tg_trigtuple) {
        return pg_sys::Datum::from((*trigger_data).tg_trigtuple);
    }

    let mut flinfo: pg_sys::FmgrInfo = std::mem::zeroed();
    pg_sys::fmgr_info(target.function, &mut flinfo);
    let Some(call_function) = flinfo.fn_addr else {
        WebhookError::Internal(format!(
            "the generated function of topic {topic} has no entry point"
        ))
        .raise()
    };
    let call = pg_sys::palloc0(std::mem::size_of::<pg_sys::FunctionCallInfoBaseData>())
        as pg_sys::FunctionCallInfo;
    (*call).flinfo = &mut flinfo;
    (*call).context = context;
    (*call).nargs = 0;

    let result = as_definer(target.definer, || {
        let _emitting = EmittingGuard::enter(target.builder.map(|_| Rc::clone(&target)));
        pg_sys::ffi::pg_guard_ffi_boundary(|| call_function(call))
    });
    (*fcinfo).isnull = (*call).isnull;
    pg_sys::pfree(call.cast());
    result
}

/// Sets `EMITTING` for the duration of a generated function's call and
/// restores the outer value however the call ends (an ERROR unwinds
/// through `emit_topic` as a Rust panic): nothing may call a builder
/// through `call_builder` once its trigger is done.
pub(crate) struct EmittingGuard(Option<Rc<Target>>);

impl EmittingGuard {
    pub(crate) fn enter(target: Option<Rc<Target>>) -> EmittingGuard {
        EmittingGuard(EMITTING.replace(target))
    }
}

impl Drop for EmittingGuard {
    fn drop(&mut self) {
        EMITTING.set(self.0.take());
    }
}

/// The topic whose builder `emit_topic` is running right now, if any.
pub(crate) fn emitting() -> Option<Rc<Target>> {
    EMITTING.with_borrow(|e| e.clone())
}

/// `f` as `definer`, the way PostgreSQL runs a table owner's index
/// expressions: in a security-restricted operation (no SET ROLE, no
/// temporary objects left for the caller's session to run later), and
/// with every setting it changes undone on return, even a non-LOCAL
/// set_config() that would otherwise outlive the call (a search_path for
/// the writer). An error leaves both to the (sub)transaction abort.
pub(crate) fn as_definer<R>(definer: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    let mut caller = pg_sys::InvalidOid;
    let mut sec_context = 0;
    // SAFETY: saving and restoring the user id and the GUC nesting around
    // `f`, as fmgr_security_definer does, on the backend's main thread.
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut caller, &mut sec_context);
        pg_sys::SetUserIdAndSecContext(
            definer,
            sec_context
                | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        );
    }
    let guc_level = unsafe { pg_sys::NewGUCNestLevel() };
    let result = f();
    unsafe {
        pg_sys::AtEOXact_GUC(false, guc_level);
        pg_sys::SetUserIdAndSecContext(caller, sec_context);
    }
    result
}

/// Whether a row version was inserted by the current transaction (or one
/// of its subtransactions) rather than made by an UPDATE.
///
/// # Safety
/// `tuple` is a trigger's valid heap tuple (or null).
unsafe fn inserted_by_this_transaction(tuple: pg_sys::HeapTuple) -> bool {
    if tuple.is_null() || (*tuple).t_data.is_null() {
        return false;
    }
    let header = &*(*tuple).t_data;
    let updated = header.t_infomask & pg_sys::HEAP_UPDATED as u16 != 0;
    let frozen =
        header.t_infomask & pg_sys::HEAP_XMIN_FROZEN as u16 == pg_sys::HEAP_XMIN_FROZEN as u16;
    let xmin = header.t_choice.t_heap.t_xmin;
    !updated && !frozen && pg_sys::TransactionIdIsCurrentTransactionId(xmin)
}

/// For a topic whose generated function reads its table again by name
/// (commit, with a condition), the trigger must be on the table that name
/// resolves to now: had its owner renamed the table and put a view of its
/// own under the name, the re-read would run the view as the definer. A
/// partition's trigger is its partitioned table's, a Citus shard's its
/// distributed table's.
///
/// # Safety
/// Called from `emit_topic` with the trigger's relation.
unsafe fn check_table(topic: &str, target: &Target, relation: pg_sys::Oid) {
    let namespace = pg_sys::get_namespace_oid(target.table.0.as_ptr(), true);
    let named = if namespace == pg_sys::InvalidOid {
        pg_sys::InvalidOid
    } else {
        pg_sys::get_relname_relid(target.table.1.as_ptr(), namespace)
    };
    if named == relation && named != pg_sys::InvalidOid {
        return;
    }
    // On Citus, the trigger fires on a shard of the named table.
    let partition_or_shard_of = Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.pg_partition_root($1) OPERATOR(pg_catalog.=) $2
             OR webhook.citus_shard_of($1, $2)",
        &[relation.into(), named.into()],
    );
    if !matches!(partition_or_shard_of, Ok(Some(true))) {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "topic {topic}: its table {}.{} is no longer the table this trigger is on (renamed or replaced)",
                target.table.0.to_string_lossy(),
                target.table.1.to_string_lossy()
            ),
            "Redefine the topic on the table as it is named now."
        );
    }
}

/// The topic's target, from the per-backend cache (see `wanted.rs` for the
/// generation) or `webhook.topics`.
pub(crate) fn target_of(topic: &str) -> Rc<Target> {
    let Some(generation) = wanted::cache_generation() else {
        return load_target(topic, ReadAs::Current);
    };
    let cached = TARGETS.with_borrow(|targets| {
        targets
            .as_ref()
            .filter(|t| t.generation == generation)
            .and_then(|t| t.by_topic.get(topic).cloned())
    });
    if let Some(target) = cached {
        return target;
    }
    let target = load_target(topic, ReadAs::Latest);
    TARGETS.with_borrow_mut(|targets| {
        let targets = match targets {
            Some(t) if t.generation == generation => t,
            _ => targets.insert(Targets {
                generation,
                by_topic: HashMap::new(),
            }),
        };
        targets
            .by_topic
            .insert(topic.to_owned(), Rc::clone(&target));
    });
    target
}

fn load_target(topic: &str, read_as: ReadAs) -> Rc<Target> {
    let found = Spi::connect(|_client| {
        // SAFETY: SPI is connected for the closure's duration; the kept
        // plan takes one text argument; the oids are copied out before
        // SPI_finish frees the tuple table.
        unsafe {
            let plan = wanted::kept_plan(&TARGET_PLAN, TOPIC_TARGET, &[pg_sys::TEXTOID]);
            let mut args = [pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(
                topic.as_ptr().cast(),
                topic.len() as i32,
            ))];
            let status = wanted::execute_read_only(plan, args.as_mut_ptr(), read_as);
            if status != pg_sys::SPI_OK_SELECT as i32 {
                pgrx::error!("webhook.emit_topic: reading the topic failed (SPI status {status})");
            }
            if pg_sys::SPI_processed == 0 {
                return None;
            }
            let table = pg_sys::SPI_tuptable;
            let row = *(*table).vals;
            let desc = (*table).tupdesc;
            let oid = |column: i32| {
                let mut is_null = false;
                let datum = pg_sys::SPI_getbinval(row, desc, column, &mut is_null);
                (!is_null).then(|| pg_sys::Oid::from(datum.value() as u32))
            };
            let name = |column: i32| {
                let value = pg_sys::SPI_getvalue(row, desc, column);
                (!value.is_null()).then(|| CStr::from_ptr(value).to_owned())
            };
            Some(Target {
                topic: topic.to_owned(),
                definer: oid(1)?,
                function: oid(2)?,
                builder: oid(3),
                key_type: oid(4).unwrap_or(pg_sys::InvalidOid),
                table: (name(5)?, name(6)?),
                rereads: name(7).is_some_and(|b| b.as_bytes() == b"t"),
                refuse_on_error: name(8).is_some_and(|b| b.as_bytes() == b"t"),
                before_delete: name(9).is_some_and(|b| b.as_bytes() == b"t"),
            })
        }
    });
    match found {
        Some(target) => Rc::new(target),
        #[allow(unreachable_code)]
        None => {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!(
                    "topic {topic}: its definition, its definer or its generated trigger function is missing or not the extension's"
                ),
                "Redefine the topic (webhook.define_topic(..., replace => true) or webhook.watch) or drop it."
            );
            unreachable!("ereport!(ERROR) does not return")
        }
    }
}

/// `webhook.change_topic(change, definition, replace)`: the one way the
/// topic catalog and the generated objects change. `change` is `save`
/// (`definition` a `webhook.topics` row as JSON) or `drop` (`{"topic": ..}`).
/// The caller, who must be a member of `webhook_admin` (or a superuser),
/// becomes the topic's definer; the change itself is made by
/// `webhook.change_topic_as_owner` running as the extension owner, which
/// checks what the definer may do (TRIGGER and SELECT on the table,
/// EXECUTE on the builder). Returns the saved row as JSON (NULL on drop).
#[pg_extern(volatile, parallel_unsafe)]
fn change_topic(change: &str, definition: pgrx::Json, replace: Option<bool>) -> Option<pgrx::Json> {
    let replace = replace.unwrap_or(false);
    // SAFETY: plain catalog lookups of the session's own user.
    let caller = unsafe { pg_sys::GetUserId() };
    let admin = unsafe { pg_sys::get_role_oid(c"webhook_admin".as_ptr(), true) };
    let allowed = unsafe {
        pg_sys::superuser_arg(caller)
            || (admin != pg_sys::InvalidOid && pg_sys::has_privs_of_role(caller, admin))
    };
    if !allowed {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "permission denied: defining, changing or dropping topics needs membership in webhook_admin"
        );
    }
    // On Citus the generated function is created on every node over one
    // connection per node, so what reads a distributed table before it
    // (the builder's proof) must use those connections too.
    Spi::run(
        "SELECT pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true)
          WHERE webhook.citus_node_role() OPERATOR(pg_catalog.<>) 'none'",
    )
    .unwrap_or_else(|e| WebhookError::from(e).raise());
    // The condition is parsed, and the builder proven, as the caller,
    // never as the extension owner.
    if change == "save" {
        Spi::run_with_args(
            "SELECT webhook.check_condition($1), webhook.check_builder($1)",
            &[pgrx::Json(definition.0.clone()).into()],
        )
        .unwrap_or_else(|e| WebhookError::from(e).raise());
    }
    let owner = extension_owner();
    as_role(owner, || {
        Spi::get_one_with_args::<pgrx::Json>(
            "SELECT webhook.change_topic_as_owner($1, $2, $3, $4)",
            &[
                change.into(),
                definition.into(),
                replace.into(),
                caller.into(),
            ],
        )
    })
    .unwrap_or_else(|e| WebhookError::from(e).raise())
}

/// The role that owns the extension: every generated object is its.
pub(crate) fn extension_owner() -> pg_sys::Oid {
    let owner = Spi::get_one::<pg_sys::Oid>(
        "SELECT e.extowner FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'webhook_emitter'",
    );
    match owner {
        Ok(Some(owner)) => owner,
        _ => WebhookError::Internal("the extension webhook_emitter is not installed here".into())
            .raise(),
    }
}

/// Run `f` with the current user id switched to `role`. An error leaves
/// the restore to the (sub)transaction abort, as for `SECURITY DEFINER`.
pub(crate) fn as_role<R>(role: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    let mut caller = pg_sys::InvalidOid;
    let mut sec_context = 0;
    // SAFETY: saving and setting the user id is what fmgr_security_definer
    // does around a call; both run on the backend's main thread.
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut caller, &mut sec_context);
        pg_sys::SetUserIdAndSecContext(
            role,
            sec_context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
        );
    }
    let result = f();
    unsafe { pg_sys::SetUserIdAndSecContext(caller, sec_context) };
    result
}
