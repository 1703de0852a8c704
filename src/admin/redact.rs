//! URL masking for SQL: views and functions readable by PUBLIC show webhook
//! URLs through `webhook.redact_url(url)`, which hides paths and query
//! strings (often tokens) and credentials.

use pgrx::prelude::*;

/// `url` as `scheme://host[:port]/`, its path as `/<redacted>`, its query
/// as `?<redacted>`, its fragment as `#<redacted>`, without
/// user:password@; text that is not a URL gives `<unparseable URL>`.
#[pg_extern(immutable, parallel_safe)]
pub fn redact_url(url: &str) -> String {
    crate::http::redact::redact_url(url)
}
