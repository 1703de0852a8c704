//! The delivery's shared vocabulary, used by the worker, the store, the
//! HTTP threads and Send Test: a job (one attempt of one delivery), its
//! outcome, the verdict on it, and the statuses a delivery moves through.
//! The SQL side CHECKs the same status names (`deliveries_status_check`).

use super::http::Endpoint;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Status of one delivery (`webhook.deliveries.status`): every value the
/// SQL CHECK allows, though the worker itself writes only some of them.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Queued, due at `next_attempt_at`.
    Pending,
    /// Claimed by the worker under a lease.
    Delivering,
    /// A 2xx answer was received.
    Delivered,
    /// The last attempt failed; retried at `next_attempt_at`.
    Failed,
    /// No attempts left (or 410 Gone).
    Dead,
    /// Kept, not sent, while its webhook is disabled.
    Held,
    /// Its event's builder failed at the write; waits for
    /// `webhook.rebuild_events` (queued by `call_builder`).
    Unbuilt,
    /// A copy that came by logical replication: the database that queued
    /// it sends it, this one never does (set by a replica trigger in SQL).
    #[allow(dead_code)]
    Replicated,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivering => "delivering",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Dead => "dead",
            DeliveryStatus::Held => "held",
            DeliveryStatus::Unbuilt => "unbuilt",
            DeliveryStatus::Replicated => "replicated",
        }
    }
}

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
    pub agent: ureq::Agent,
}

/// What happened to one attempt.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub delivery_id: i64,
    pub webhook_id: i64,
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

/// How a finished attempt changes its delivery.
pub struct Verdict {
    pub outcome: Outcome,
    /// Delivered, Failed (retry after `retry_in`) or Dead.
    pub status: DeliveryStatus,
    pub retry_in: Option<Duration>,
}
