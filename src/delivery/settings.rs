//! The worker's settings, read from the GUCs at start and on SIGHUP.

use super::http::AgentSettings;
use super::policy::AddressPolicy;
use super::retry::RetrySchedule;
use crate::guc;
use pgrx::prelude::*;
use std::time::Duration;

/// Settings re-read on SIGHUP.
pub struct Settings {
    pub batch_size: i64,
    pub max_per_endpoint: usize,
    pub poll_interval: Duration,
    pub request_timeout: Duration,
    pub schedule: RetrySchedule,
    pub max_retry_after: Duration,
    pub disable_after: Duration,
    pub retention: Duration,
    pub agent: AgentSettings,
}

fn secs(v: i32) -> Duration {
    Duration::from_secs(v.max(0) as u64)
}

impl Settings {
    /// Read the GUCs; a value that does not parse keeps `previous`'s (the
    /// last good one), or the default at start.
    pub fn load(max_concurrency: usize, previous: Option<&Settings>) -> Settings {
        let schedule =
            RetrySchedule::parse(&guc::string(&guc::RETRY_SCHEDULE)).unwrap_or_else(|e| {
                warning!("webhook_emitter: {e}; keeping the last valid schedule");
                previous.map_or_else(RetrySchedule::default, |p| p.schedule.clone())
            });
        let policy = AddressPolicy::parse(&guc::string(&guc::ALLOWED_HOSTS)).unwrap_or_else(|e| {
            warning!("webhook_emitter: {e}; only public addresses are allowed");
            AddressPolicy::default()
        });
        let ca_file = Some(guc::string(&guc::CA_FILE)).filter(|s| !s.is_empty());
        Settings {
            batch_size: i64::from(guc::BATCH_SIZE.get()),
            max_per_endpoint: guc::MAX_PER_ENDPOINT.get().max(1) as usize,
            poll_interval: Duration::from_millis(guc::POLL_INTERVAL_MS.get().max(10) as u64),
            request_timeout: guc::request_timeout(),
            schedule,
            max_retry_after: secs(guc::MAX_RETRY_AFTER_S.get()),
            disable_after: secs(guc::DISABLE_AFTER_S.get()),
            retention: secs(guc::RETENTION_S.get()),
            agent: AgentSettings {
                policy,
                ca_file,
                pool_size: max_concurrency,
            },
        }
    }

    /// Leases outlive the longest request, so a live attempt is never re-claimed.
    pub fn lease(&self) -> Duration {
        self.request_timeout.max(Duration::from_secs(300)) * 2
    }
}
