//! Calling a topic's builder, and containing its failure.
//!
//! The generated trigger functions call `webhook.call_builder(topic, key)`
//! (as the definer, inside `emit_topic`, see `definer.rs`): it calls the
//! builder by oid and, unless the topic refuses the write on a builder
//! error, in a subtransaction of its own, so that a failing builder queues
//! its event unbuilt (`enqueue::queue_unbuilt`) instead of failing the
//! LMS's write. `rebuild.rs` builds those events again with the same
//! pieces.

use super::definer::{as_role, emitting, extension_owner, EmittingGuard};
use crate::error::WebhookError;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::ffi::CStr;

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
    let Some(target) = emitting() else {
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
    let outcome = contained_all(f);
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

/// `f` in a subtransaction of its own: an ERROR (a cancel included) rolls
/// back what `f` did and comes back as the `Failure`.
///
/// # Safety
/// On the main thread, inside a transaction.
pub(crate) unsafe fn contained_all<R>(f: impl FnOnce() -> R) -> Result<R, Failure> {
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
