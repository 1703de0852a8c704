//! The management API implemented in Rust: validation of webhook settings
//! (called by the registry's trigger), body previews, Send Test, rebuilding
//! unbuilt events, URL redaction for the webhook list.

pub mod preview;
pub mod rebuild;
pub mod redact;
pub mod send_test;
pub mod validate;
