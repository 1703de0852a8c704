//! webhook_emitter: LMS table writes become signed JSON/XML webhooks,
//! queued durably at commit and delivered by a background worker.
//!
//! Layout: `api` (SQL-callable management helpers), `render` (JSON, XML,
//! templates, signatures), `delivery` (worker, HTTP), `guc` (settings),
//! `error` (one error type mapped to SQLSTATEs). The tables, the topic
//! definitions (and the triggers generated from them) and the payload
//! builders are SQL, in `sql/` (`sql/topics/` for the documented topics).

use pgrx::prelude::*;

mod api;
mod delivery;
mod error;
mod guc;
mod render;

::pgrx::pg_module_magic!();

extension_sql_file!("../sql/registry.sql", name = "registry");
// The write path's cached subscription test and its queueing step are
// Rust (api::wanted, api::enqueue).
extension_sql_file!(
    "../sql/queue.sql",
    name = "queue",
    requires = [
        "registry",
        api::wanted::topic_wanted,
        api::wanted::subscriptions_changed,
        api::enqueue::enqueue
    ]
);
// Topic changes go through webhook.change_topic, which runs them as the
// extension owner (Rust, api::definer).
extension_sql_file!(
    "../sql/topic_definitions.sql",
    name = "topic_definitions",
    requires = [
        "queue",
        api::definer::change_topic,
        api::builder::call_builder
    ]
);
// The webhook list masks URLs with webhook.redact_url (a Rust function).
extension_sql_file!(
    "../sql/log.sql",
    name = "log",
    requires = ["topic_definitions", api::redact::redact_url]
);
extension_sql_file!("../sql/metrics.sql", name = "metrics", requires = ["log"]);
extension_sql_file!(
    "../sql/lms_schema.sql",
    name = "lms_schema",
    requires = ["metrics"]
);
// The documented LMS topics: shared helpers, then one file per group of
// tables with its builders and topic definitions.
extension_sql_file!(
    "../sql/topics/common.sql",
    name = "topics_common",
    requires = ["lms_schema"]
);
extension_sql_file!(
    "../sql/topics/users.sql",
    name = "topics_users",
    requires = ["topics_common"]
);
extension_sql_file!(
    "../sql/topics/courses.sql",
    name = "topics_courses",
    requires = ["topics_users"]
);
extension_sql_file!(
    "../sql/topics/tests.sql",
    name = "topics_tests",
    requires = ["topics_courses"]
);
extension_sql_file!(
    "../sql/topics/products.sql",
    name = "topics_products",
    requires = ["topics_tests"]
);
extension_sql_file!(
    "../sql/topics/enrollments.sql",
    name = "topics_enrollments",
    requires = ["topics_products"]
);
extension_sql_file!(
    "../sql/topics/orders.sql",
    name = "topics_orders",
    requires = ["topics_enrollments"]
);
extension_sql_file!(
    "../sql/topics/coursework.sql",
    name = "topics_coursework",
    requires = ["topics_orders"]
);
extension_sql_file!(
    "../sql/topics/announcements.sql",
    name = "topics_announcements",
    requires = ["topics_coursework"]
);
extension_sql_file!("../sql/grants.sql", name = "grants", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    guc::init();
    delivery::init();
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
