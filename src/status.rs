//! The statuses a delivery moves through, shared by the write path (which
//! queues `pending`, `held`, `unbuilt`) and the worker. The SQL side
//! CHECKs the same names (`deliveries_status_check`).

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
