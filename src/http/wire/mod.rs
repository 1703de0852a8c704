//! HTTP/1.1 on one connection: a request written in one piece (`write`:
//! one write, one segment for a small webhook, so the receiver wakes once),
//! and the answer read back within fixed bounds (`read`: head size, header
//! count, body bytes kept and drained). Generic over `Read` and bytes, so
//! both are tested without a network.

mod read;
mod write;

pub use read::{read_response, Response};
pub use write::write_post;

/// Why a request could not be made or answered, in words fit for a log
/// that PUBLIC reads: never the URL's path or query, never a header value.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpError(pub String);

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
