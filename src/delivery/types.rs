//! The delivery's shared vocabulary: the statuses a delivery moves through.
//! The SQL side CHECKs the same names (`deliveries_status_check`).

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
        }
    }
}
