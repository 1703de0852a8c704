//! One attempt as the HTTP layer sees it: what to send (`Attempt`), with
//! which endpoint and client (`Job`), and what happened (`Outcome`). Used
//! by the worker's delivery threads and by Send Test.

use crate::settings::endpoint::Endpoint;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// One attempt of one delivery: what the claim returns and the request sends.
pub struct Attempt {
    pub delivery_id: i64,
    pub attempt: i32,
    pub event_id: String,
    pub topic: String,
    pub tenant_id: String,
    pub body: String,
}

/// An attempt with the endpoint and client that make it.
pub struct Job {
    pub attempt: Attempt,
    pub endpoint: Arc<Endpoint>,
    /// The HTTP client (cheap to clone; rebuilt when settings change).
    pub agent: crate::http::client::Client,
}

/// What happened to one attempt.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub delivery_id: i64,
    pub webhook_id: i64,
    /// The event's topic, as claimed ('' when its event was gone): the
    /// record statement counts by it without looking the event up again.
    pub topic: String,
    pub attempt: i32,
    pub started_at: SystemTime,
    pub duration_ms: f64,
    pub status_code: Option<u16>,
    pub response_headers: Option<serde_json::Value>,
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
    pub retry_after: Option<Duration>,
}

impl Outcome {
    pub fn delivered(&self) -> bool {
        self.error.is_none() && self.status_code.is_some_and(|c| (200..300).contains(&c))
    }
    pub fn gone(&self) -> bool {
        self.status_code == Some(410)
    }
}
