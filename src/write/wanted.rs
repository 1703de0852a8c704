//! `webhook.topic_wanted(topic)`: does anyone receive this topic? Every
//! generated topic trigger asks it in its WHEN clause, so it runs for every
//! row written to a table that emits topics, subscribed or not: it must cost
//! next to nothing.
//!
//! Each backend caches the set of subscribed topics and keeps it until the
//! shared subscriptions generation moves: a statement trigger on
//! `webhook.webhooks`, `webhook.settings` and `webhook.topics` bumps it
//! after the commit that changed them (`subscriptions_changed`). The
//! transaction making such a change asks the tables on every call instead,
//! since its change is not committed and may roll back. `enqueue.rs` caches
//! the switch, the tenant id and the topics' envelopes under the same
//! generation.

use crate::shmem;
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::ffi::CStr;

/// The topics some webhook subscribes to (enabled or not: a disabled one
/// holds its events), none when the global switch is off.
const SUBSCRIBED_TOPICS: &CStr = c"SELECT DISTINCT t FROM webhook.settings s, webhook.webhook_list w, pg_catalog.unnest(w.topics) t WHERE s.enabled";

/// Which snapshot a cached read uses (here and in `enqueue.rs`).
#[derive(Clone, Copy)]
pub(crate) enum ReadAs {
    /// One taken now: what the cache keeps (not the statement's or the
    /// transaction's, which may predate the generation just read).
    Latest,
    /// The statement's: the uncached path, which must see this
    /// transaction's own changes.
    Current,
}

/// The subscribed topics as they were when `generation` was current.
struct SubscribedTopics {
    generation: u64,
    topics: HashSet<String>,
}

thread_local! {
    static CACHE: RefCell<Option<SubscribedTopics>> = const { RefCell::new(None) };
    /// Local transaction id of a transaction that changed the subscriptions.
    static CHANGED_IN: Cell<Option<u32>> = const { Cell::new(None) };
    /// `SUBSCRIBED_TOPICS`, prepared once per backend.
    static PLAN: Cell<pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
}

/// True when an event of `topic` would be queued for some webhook now.
#[pg_extern(stable, parallel_safe)]
pub(crate) fn topic_wanted(topic: &str) -> bool {
    let Some(generation) = cache_generation() else {
        return load_subscribed_topics(ReadAs::Current).contains(topic);
    };
    let cached = CACHE.with_borrow(|cache| {
        cache
            .as_ref()
            .filter(|c| c.generation == generation)
            .map(|c| c.topics.contains(topic))
    });
    if let Some(wanted) = cached {
        return wanted;
    }
    // The generation was read before this snapshot is taken: a commit it
    // misses bumps the generation later, and the next call reloads.
    let topics = load_subscribed_topics(ReadAs::Latest);
    let wanted = topics.contains(topic);
    CACHE.set(Some(SubscribedTopics { generation, topics }));
    wanted
}

/// After any change to the webhooks, the settings (switch, tenant id) or
/// the topic catalog (statement trigger on the three tables): this
/// transaction stops using the caches, and the others drop theirs when it
/// commits.
#[pg_trigger]
fn subscriptions_changed<'a>(
    _trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, PgHeapTupleError> {
    if !changed_in_this_transaction() {
        CHANGED_IN.set(Some(shmem::my_lxid()));
        shmem::bump_subscriptions_generation_at_commit();
    }
    CACHE.set(None);
    Ok(None)
}

/// The generation under which this backend may use (and fill) its caches
/// of the queueing settings; `None` when it must read the tables: not
/// preloaded (no shared generation), or the answer must reflect this
/// transaction's own change, or no new snapshot may be taken.
pub(crate) fn cache_generation() -> Option<u64> {
    shmem::subscriptions_generation()
        .filter(|_| !changed_in_this_transaction() && !in_parallel_mode())
}

/// Run a read-only kept plan with `args`, as `read_as` says.
///
/// # Safety
/// SPI must be connected, and `args` must match the plan's argument types.
pub(crate) unsafe fn execute_read_only(
    plan: pg_sys::SPIPlanPtr,
    args: *mut pg_sys::Datum,
    read_as: ReadAs,
) -> i32 {
    match read_as {
        ReadAs::Latest => pg_sys::SPI_execute_snapshot(
            plan,
            args,
            std::ptr::null(),
            pg_sys::GetLatestSnapshot(),
            std::ptr::null_mut(),
            true,
            false,
            0,
        ),
        // The active (statement) snapshot, usable in parallel mode too.
        ReadAs::Current => pg_sys::SPI_execute_plan(plan, args, std::ptr::null(), true, 0),
    }
}

fn changed_in_this_transaction() -> bool {
    CHANGED_IN.get() == Some(shmem::my_lxid())
}

fn in_parallel_mode() -> bool {
    unsafe { pg_sys::IsInParallelMode() }
}

/// Every subscribed topic, as `read_as` sees the tables.
fn load_subscribed_topics(read_as: ReadAs) -> HashSet<String> {
    Spi::connect(|_client| {
        let mut topics = HashSet::new();
        // SAFETY: SPI is connected for the closure's duration; the plan is
        // kept (SPI_keepplan) for the backend's life and revalidated by the
        // plan cache; the tuple table is read before SPI_finish frees it.
        unsafe {
            let status = execute_read_only(
                kept_plan(&PLAN, SUBSCRIBED_TOPICS, &[]),
                std::ptr::null_mut(),
                read_as,
            );
            if status != pg_sys::SPI_OK_SELECT as i32 {
                pgrx::error!("webhook.topic_wanted: reading the subscribed topics failed (SPI status {status})");
            }
            let table = pg_sys::SPI_tuptable;
            for row in 0..pg_sys::SPI_processed as usize {
                let value = pg_sys::SPI_getvalue(*(*table).vals.add(row), (*table).tupdesc, 1);
                if !value.is_null() {
                    topics.insert(CStr::from_ptr(value).to_string_lossy().into_owned());
                }
            }
        }
        topics
    })
}

/// `sql` (argument types `types`) as a plan kept in `slot` for the
/// backend's life, prepared on first use and revalidated by the plan cache
/// after DDL. Always the generic plan: no argument of the write path's
/// statements changes the best plan, and a custom plan would be planned
/// anew on every write.
///
/// # Safety
/// SPI must be connected.
pub(crate) unsafe fn kept_plan(
    slot: &'static std::thread::LocalKey<Cell<pg_sys::SPIPlanPtr>>,
    sql: &CStr,
    types: &[pg_sys::Oid],
) -> pg_sys::SPIPlanPtr {
    let plan = slot.get();
    if !plan.is_null() {
        return plan;
    }
    let mut types = types.to_vec();
    let plan = pg_sys::SPI_prepare_cursor(
        sql.as_ptr(),
        types.len() as i32,
        types.as_mut_ptr(),
        pg_sys::CURSOR_OPT_GENERIC_PLAN as i32,
    );
    if plan.is_null() || pg_sys::SPI_keepplan(plan) != 0 {
        pgrx::error!("webhook_emitter: preparing a write-path statement failed");
    }
    slot.set(plan);
    plan
}
