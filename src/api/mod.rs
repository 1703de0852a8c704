//! The SQL-facing management API implemented in Rust: validation helpers
//! used by the registry trigger, body previews, and Send Test.

pub mod preview;
pub mod redact;
pub mod send_test;
pub mod validate;
