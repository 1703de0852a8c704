//! webhook_emitter: LMS table writes become signed JSON/XML webhooks,
//! queued durably at commit and delivered by a background worker.
//!
//! Layout: `api` (SQL-callable management helpers), `render` (JSON, XML,
//! templates, signatures), `delivery` (worker, HTTP), `guc` (settings),
//! `error` (one error type mapped to SQLSTATEs). The tables, triggers and
//! payload builders are SQL, in `sql/`.

use pgrx::prelude::*;

mod api;
mod delivery;
mod error;
mod guc;
mod render;

::pgrx::pg_module_magic!();

extension_sql_file!("../sql/registry.sql", name = "registry");
extension_sql_file!(
    "../sql/topics_data.sql",
    name = "topics_data",
    requires = ["registry"]
);
extension_sql_file!(
    "../sql/queue.sql",
    name = "queue",
    requires = ["topics_data"]
);
// The webhook list masks URLs with webhook.redact_url (a Rust function).
extension_sql_file!(
    "../sql/log.sql",
    name = "log",
    requires = ["queue", api::redact::redact_url]
);
extension_sql_file!("../sql/metrics.sql", name = "metrics", requires = ["log"]);
extension_sql_file!(
    "../sql/lms_schema.sql",
    name = "lms_schema",
    requires = ["metrics"]
);
extension_sql_file!(
    "../sql/lms_payloads.sql",
    name = "lms_payloads",
    requires = ["lms_schema"]
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
