//! The SQL-facing management API implemented in Rust: validation helpers
//! used by the registry trigger, body previews, Send Test, and the write
//! path's cached test of whether a topic is wanted.

pub mod builder;
pub mod definer;
pub mod enqueue;
pub mod preview;
pub mod rebuild;
pub mod redact;
pub mod send_test;
pub mod validate;
pub mod wanted;
