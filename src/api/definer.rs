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
    refuse_on_error: bool,
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

    // As PostgreSQL runs a table owner's index expressions: as the definer,
    // in a security-restricted operation (no SET ROLE, no temporary
    // objects left for the writer's session to run later), and with every
    // setting it changes undone on return, even a non-LOCAL set_config()
    // that would otherwise outlive the call (a search_path for the writer).
    // An error leaves both to the (sub)transaction abort.
    let mut caller = pg_sys::InvalidOid;
    let mut sec_context = 0;
    pg_sys::GetUserIdAndSecContext(&mut caller, &mut sec_context);
    pg_sys::SetUserIdAndSecContext(
        target.definer,
        sec_context
            | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
            | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
    );
    let guc_level = pg_sys::NewGUCNestLevel();
    let result = {
        let _emitting = EmittingGuard::enter(target.builder.map(|_| Rc::clone(&target)));
        pg_sys::ffi::pg_guard_ffi_boundary(|| call_function(call))
    };
    pg_sys::AtEOXact_GUC(false, guc_level);
    pg_sys::SetUserIdAndSecContext(caller, sec_context);
    (*fcinfo).isnull = (*call).isnull;
    pg_sys::pfree(call.cast());
    result
}

/// Sets `EMITTING` for the duration of a generated function's call and
/// restores the outer value however the call ends (an ERROR unwinds
/// through `emit_topic` as a Rust panic): nothing may call a builder
/// through `call_builder` once its trigger is done.
struct EmittingGuard(Option<Rc<Target>>);

impl EmittingGuard {
    fn enter(target: Option<Rc<Target>>) -> EmittingGuard {
        EmittingGuard(EMITTING.replace(target))
    }
}

impl Drop for EmittingGuard {
    fn drop(&mut self) {
        EMITTING.set(self.0.take());
    }
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

/// `webhook.call_builder(topic, key)`: the builder of the topic whose
/// trigger is running, called with `key`, by the oid `webhook.topics`
/// holds, never by name: a function made later under the same name (by
/// whoever may create in its schema) is not the one the definer chose.
/// The generated functions call it (as the definer, inside `emit_topic`).
/// Returns the body as json text, NULL when the builder returns NULL
/// (nothing is sent) or failed: unless the topic refuses the write on a
/// builder error, the event is then queued unbuilt, with the error and the
/// key, for `webhook.rebuild_events`.
#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION webhook.call_builder(topic text, key anyelement) RETURNS json\nLANGUAGE c /* Rust */\nAS 'MODULE_PATHNAME', 'call_builder_wrapper';"
)]
fn call_builder(topic: &str, key: pgrx::AnyElement) -> Option<String> {
    // Only the builder emit_topic is running (it looked the topic up),
    // with its own argument type: a datum of another type would be read
    // as that type. `topic` only names it in messages.
    let Some(target) = EMITTING.with_borrow(|e| e.clone()) else {
        denied(&format!("permission denied: webhook.call_builder serves the trigger of topic {topic} only (its generated function calls it)"))
    };
    let Some(builder) = target.builder else {
        denied(&format!("topic {topic} has no builder"))
    };
    if target.key_type != key.oid() {
        WebhookError::invalid(
            "key",
            format!("is not of the type the builder of topic {topic} takes"),
        )
        .raise()
    }
    // The definer (the current user here) must still be allowed to run it.
    // SAFETY: an ACL check of a function that exists (it was just looked up).
    if !unsafe { may_execute(builder) } {
        denied(&format!(
            "topic {}: its definer may no longer execute its builder",
            target.topic
        ));
    }
    // While the builder runs, nothing it calls may use call_builder (it
    // would choose a key of its own for the unbuilt path).
    let _serving = EmittingGuard::enter(None);
    if target.refuse_on_error {
        // SAFETY: the builder takes key_type (checked above).
        return unsafe { run_builder(builder, key.oid(), key.datum()) };
    }
    // SAFETY: as above; the key datum outlives the subtransaction (it is
    // the generated function's argument).
    match unsafe { contained(|| run_builder(builder, key.oid(), key.datum())) } {
        Ok(body) => body,
        Err(failure) => {
            // SAFETY: a datum of key_type, converted by its output function.
            let key_text = unsafe { datum_text(key.oid(), key.datum()) };
            let error = format!("builder {}: {}", function_name(builder), failure.text);
            pgrx::log!(
                "webhook_emitter: topic {}: the event of key {key_text} is queued unbuilt: {error}",
                target.topic
            );
            // As the extension owner, with the search_path pinned: the
            // definer's code (a condition's non-LOCAL set_config) may have
            // changed it, and this runs before emit_topic undoes that.
            let owner = extension_owner();
            as_role(owner, || {
                pinned_search_path(|| {
                    super::enqueue::queue_unbuilt(
                        &target.topic,
                        &key_text,
                        &error,
                        &failure.summary(&target.topic),
                    )
                })
            });
            None
        }
    }
}

fn denied(message: &str) -> ! {
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        message.to_owned()
    );
}

/// Call a one-argument builder through the function manager (as
/// OidFunctionCall1 does, but allowing a NULL result) and return the body
/// as text, as ::json made it; an ERROR propagates.
///
/// # Safety
/// `key` is a datum of type `key_type`, which `builder` takes.
pub(crate) unsafe fn run_builder(
    builder: pg_sys::Oid,
    key_type: pg_sys::Oid,
    key: pg_sys::Datum,
) -> Option<String> {
    let mut flinfo: pg_sys::FmgrInfo = std::mem::zeroed();
    pg_sys::fmgr_info(builder, &mut flinfo);
    let Some(function) = flinfo.fn_addr else {
        WebhookError::Internal(format!("the builder {builder:?} has no entry point")).raise()
    };
    let size = std::mem::size_of::<pg_sys::FunctionCallInfoBaseData>()
        + std::mem::size_of::<pg_sys::NullableDatum>();
    let call = pg_sys::palloc0(size) as pg_sys::FunctionCallInfo;
    (*call).flinfo = &mut flinfo;
    (*call).nargs = 1;
    (*call).fncollation = pg_sys::get_typcollation(key_type);
    let args = (*call).args.as_mut_slice(1);
    args[0].value = key;
    args[0].isnull = false;
    let result = pg_sys::ffi::pg_guard_ffi_boundary(|| function(call));
    if (*call).isnull {
        return None;
    }
    // json or jsonb (define_topic checks): their text, as ::json made it.
    let mut output = pg_sys::InvalidOid;
    let mut varlena = false;
    pg_sys::getTypeOutputInfo(pg_sys::get_func_rettype(builder), &mut output, &mut varlena);
    let text = pg_sys::OidOutputFunctionCall(output, result);
    Some(CStr::from_ptr(text).to_string_lossy().into_owned())
}

/// `f` in a subtransaction of its own, as the procedural languages run an
/// exception block: an ERROR is rolled back with everything `f` did and
/// comes back as its message (with its SQLSTATE); the transaction goes on.
///
/// # Safety
/// `f` must leave no pointer into memory of the subtransaction behind
/// (what it returns is Rust-owned).
pub(crate) unsafe fn contained<R>(f: impl FnOnce() -> R) -> Result<R, Failure> {
    let memory = pg_sys::CurrentMemoryContext;
    let owner = pg_sys::CurrentResourceOwner;
    pg_sys::BeginInternalSubTransaction(std::ptr::null());
    pg_sys::MemoryContextSwitchTo(memory);
    let outcome = pgrx::PgTryBuilder::new(std::panic::AssertUnwindSafe(|| {
        let result = f();
        pg_sys::ReleaseCurrentSubTransaction();
        Ok(result)
    }))
    .catch_others(|caught| Err(describe(&caught)))
    .execute();
    if outcome.is_err() {
        // The catch flushed the error state; the subtransaction is undone.
        pg_sys::RollbackAndReleaseCurrentSubTransaction();
    }
    pg_sys::MemoryContextSwitchTo(memory);
    pg_sys::CurrentResourceOwner = owner;
    // A cancel (statement_timeout, pg_cancel_backend) and a failed ASSERT
    // are not the builder's error: they stop the statement, as PL/pgSQL's
    // WHEN OTHERS lets them.
    if let Err(failure) = &outcome {
        let code = match failure.sqlstate.as_str() {
            "57014" => Some(PgSqlErrorCode::ERRCODE_QUERY_CANCELED),
            "P0004" => Some(PgSqlErrorCode::ERRCODE_ASSERT_FAILURE),
            _ => None,
        };
        if let Some(code) = code {
            ereport!(ERROR, code, failure.message.clone());
        }
    }
    outcome
}

/// `f` with `search_path = pg_catalog, pg_temp`, every setting it changes
/// undone on return.
pub(crate) fn pinned_search_path<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: the GUC nesting is opened and closed around `f` on the main
    // thread; an error leaves it to the (sub)transaction abort.
    unsafe {
        let level = pg_sys::NewGUCNestLevel();
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            c"pg_catalog, pg_temp".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
        let result = f();
        pg_sys::AtEOXact_GUC(false, level);
        result
    }
}

/// An ERROR caught by `contained`.
pub(crate) struct Failure {
    /// Its message, SQLSTATE and detail, bounded: for webhook_admin only
    /// (`webhook.events.build_error`), since a builder's message may carry
    /// what its definer reads.
    pub text: String,
    pub sqlstate: String,
    /// The message alone.
    pub message: String,
}

impl Failure {
    /// What the delivery log, which PUBLIC reads, says of it.
    pub fn summary(&self, topic: &str) -> String {
        format!(
            "unbuilt: the builder of topic {topic} failed (SQLSTATE {}); webhook_admin finds the error in webhook.events.build_error",
            self.sqlstate
        )
    }
}

/// An ERROR's message, SQLSTATE and detail, bounded for the queue's rows.
fn describe(caught: &pgrx::pg_sys::panic::CaughtError) -> Failure {
    use pgrx::pg_sys::panic::CaughtError;
    let report = match caught {
        CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r,
        CaughtError::RustPanic { ereport, .. } => ereport,
    };
    let code = sqlstate(report.sql_error_code() as i32);
    let mut text = format!("{} (SQLSTATE {code})", report.message());
    if let Some(detail) = report.detail() {
        text.push_str(": ");
        text.push_str(detail);
    }
    const LIMIT: usize = 2000;
    if text.len() > LIMIT {
        let mut end = LIMIT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    Failure {
        text,
        sqlstate: code,
        message: report.message().to_owned(),
    }
}

/// The five characters of a SQLSTATE packed as MAKE_SQLSTATE packs them.
fn sqlstate(code: i32) -> String {
    (0..5)
        .map(|i| char::from(b'0' + ((code >> (6 * i)) & 0x3F) as u8))
        .collect()
}

/// A datum's text by its type's output function.
///
/// # Safety
/// `value` is a datum of type `type_oid`.
pub(crate) unsafe fn datum_text(type_oid: pg_sys::Oid, value: pg_sys::Datum) -> String {
    let mut output = pg_sys::InvalidOid;
    let mut varlena = false;
    pg_sys::getTypeOutputInfo(type_oid, &mut output, &mut varlena);
    let text = pg_sys::OidOutputFunctionCall(output, value);
    CStr::from_ptr(text).to_string_lossy().into_owned()
}

/// A function as regprocedure prints it (for messages).
pub(crate) fn function_name(function: pg_sys::Oid) -> String {
    // Qualified as under the pinned search_path, whatever the definer's
    // code set. SAFETY: regprocedureout of an oid; an unknown oid prints
    // as a number.
    pinned_search_path(|| unsafe {
        datum_text(pg_sys::REGPROCEDUREOID, pg_sys::Datum::from(function))
    })
}

/// Whether the current user may execute function `function`.
///
/// # Safety
/// `function` must exist.
unsafe fn may_execute(function: pg_sys::Oid) -> bool {
    #[cfg(feature = "pg15")]
    let result = pg_sys::pg_proc_aclcheck(function, pg_sys::GetUserId(), pg_sys::ACL_EXECUTE as _);
    #[cfg(not(feature = "pg15"))]
    let result = pg_sys::object_aclcheck(
        pg_sys::ProcedureRelationId,
        function,
        pg_sys::GetUserId(),
        pg_sys::ACL_EXECUTE as _,
    );
    result == pg_sys::AclResult::ACLCHECK_OK
}

/// For a topic whose generated function reads its table again by name
/// (commit, with a condition), the trigger must be on the table that name
/// resolves to now: had its owner renamed the table and put a view of its
/// own under the name, the re-read would run the view as the definer. A
/// partition's trigger is its partitioned table's.
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
    let partition_of = Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.pg_partition_root($1) OPERATOR(pg_catalog.=) $2",
        &[relation.into(), named.into()],
    );
    if !matches!(partition_of, Ok(Some(true))) {
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
