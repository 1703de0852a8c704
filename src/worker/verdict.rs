//! What the worker makes of an attempt: the verdict on one outcome.

use crate::http::job::Outcome;
use crate::status::DeliveryStatus;
use std::time::Duration;

/// How a finished attempt changes its delivery.
pub struct Verdict {
    pub outcome: Outcome,
    /// Delivered, Failed (retry after `retry_in`) or Dead.
    pub status: DeliveryStatus,
    pub retry_in: Option<Duration>,
}
