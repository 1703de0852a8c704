//! The management API implemented in Rust: body previews, Send Test,
//! rebuilding unbuilt events, URL redaction for the webhook list. Webhook
//! settings and their validation are `crate::settings`.

pub mod preview;
pub mod rebuild;
pub mod redact;
pub mod send_test;
