//! webhook_emitter: LMS table writes become signed JSON/XML webhooks,
//! queued durably at commit and delivered by a background worker.
//!
//! Layout, following the data: `write` (the write path: topic triggers,
//! builders, enqueue, waking the worker at commit), `admin` (the management
//! functions in Rust: previews, Send Test, rebuilds), `settings` (a
//! webhook's settings: model, API, rules), `catalog` (event schemas and the
//! OpenAPI document), `render`
//! (JSON, XML, templates, signatures), `http` (a webhook's endpoint, one
//! request, auth, address policy), `worker` (launcher, loop, claim, record,
//! retry), `stats` (the histograms of the delivery log's hourly summary),
//! `shmem` (shared memory), `guc` (settings), `error` (one error
//! type mapped to SQLSTATEs). SQL in `sql/engine/` (state.sql: tables;
//! the rest: functions, triggers, views) and `sql/lms/` (the LMS schema and
//! its documented topics).

use pgrx::prelude::*;

mod admin;
mod catalog;
mod error;
mod guc;
mod http;
mod render;
mod settings;
mod shmem;
mod stats;
mod status;
mod worker;
mod write;

::pgrx::pg_module_magic!();

// A topic's event schema is a generated column (catalog::infer_event_schema).
extension_sql_file!(
    "../sql/engine/state.sql",
    name = "state",
    requires = [catalog::infer_event_schema]
);
// The registry's COMMENTs name the Rust functions that write webhooks
// (settings::api), and its trigger calls their rules (settings::rules).
extension_sql_file!(
    "../sql/engine/registry.sql",
    name = "registry",
    requires = [
        "state",
        settings::api::create_webhook,
        settings::api::update_webhook,
        settings::rules::check_webhook
    ]
);
// The write path's cached subscription test and its queueing step are
// Rust (write::wanted, write::enqueue).
extension_sql_file!(
    "../sql/engine/queue.sql",
    name = "queue",
    requires = [
        "registry",
        write::wanted::topic_wanted,
        write::wanted::subscriptions_changed,
        write::enqueue::enqueue
    ]
);
// Topic changes go through webhook.change_topic, which runs them as the
// extension owner (Rust, write::definer).
extension_sql_file!(
    "../sql/engine/topics.sql",
    name = "topics",
    requires = [
        "queue",
        write::definer::change_topic,
        write::builder::call_builder
    ]
);
// The webhook list masks URLs with webhook.redact_url (a Rust function).
extension_sql_file!(
    "../sql/engine/log.sql",
    name = "log",
    requires = [
        "topics",
        admin::redact::redact_url,
        stats::histogram,
        stats::histogram_add,
        stats::histogram_percentile
    ]
);
extension_sql_file!(
    "../sql/engine/metrics.sql",
    name = "metrics",
    requires = ["log"]
);
// Citus: the registry copied to every node, and who may write it there
// (worker::node_state).
extension_sql_file!(
    "../sql/engine/cluster.sql",
    name = "cluster",
    requires = [
        "metrics",
        worker::node_state::writing_node_state,
        worker::node_state::begin_registry_apply,
        worker::node_state::applying_registry
    ]
);
// The LMS application: its schema, then the documented topics (shared
// helpers, then one file per group of tables with its builders and topic
// definitions).
extension_sql_file!(
    "../sql/lms/schema.sql",
    name = "lms_schema",
    requires = ["cluster"]
);
extension_sql_file!(
    "../sql/lms/topics/common.sql",
    name = "topics_common",
    requires = ["lms_schema"]
);
extension_sql_file!(
    "../sql/lms/topics/users.sql",
    name = "topics_users",
    requires = ["topics_common"]
);
extension_sql_file!(
    "../sql/lms/topics/courses.sql",
    name = "topics_courses",
    requires = ["topics_users"]
);
extension_sql_file!(
    "../sql/lms/topics/tests.sql",
    name = "topics_tests",
    requires = ["topics_courses"]
);
extension_sql_file!(
    "../sql/lms/topics/products.sql",
    name = "topics_products",
    requires = ["topics_tests"]
);
extension_sql_file!(
    "../sql/lms/topics/enrollments.sql",
    name = "topics_enrollments",
    requires = ["topics_products"]
);
extension_sql_file!(
    "../sql/lms/topics/orders.sql",
    name = "topics_orders",
    requires = ["topics_enrollments"]
);
extension_sql_file!(
    "../sql/lms/topics/coursework.sql",
    name = "topics_coursework",
    requires = ["topics_orders"]
);
extension_sql_file!(
    "../sql/lms/topics/announcements.sql",
    name = "topics_announcements",
    requires = ["topics_coursework"]
);
// Their event schemas' hand tightening (the catalog).
extension_sql_file!(
    "../sql/lms/topics/schemas.sql",
    name = "topics_schemas",
    requires = ["topics_announcements"]
);
extension_sql_file!("../sql/engine/grants.sql", name = "grants", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    guc::init();
    // Shared memory, the COMMIT PREPARED wake-up and the worker exist only
    // when the library is preloaded (shared_preload_libraries).
    // SAFETY: a flag PostgreSQL sets before loading preloaded libraries.
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        shmem::init_shmem();
        write::wake::install_commit_prepared_hook();
        worker::launcher::register();
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    include!("tests.rs");
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
