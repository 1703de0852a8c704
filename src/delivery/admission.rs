//! How many requests each endpoint may have in flight, and on which lane.
//!
//! A fixed pool of blocking HTTP threads is only as good as the share one
//! endpoint can take of it. Endpoints start "unproven" with a modest share
//! (an eighth of `webhook.max_concurrency`, at most `max_per_endpoint`), so
//! several endpoints that never answer cannot fill the pool before anyone
//! knows they hang. An attempt answered quickly proves the endpoint fast:
//! it may then use `max_per_endpoint`. An attempt that took a second or
//! more marks it slow: it keeps the modest share and sends on the slow
//! lane (shared with retries), away from the threads fresh deliveries to
//! healthy endpoints use.

use super::types::{Job, Outcome};
use std::collections::{HashMap, VecDeque};

/// An attempt at least this long marks its endpoint slow.
const SLOW_MS: f64 = 1000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Speed {
    Unproven,
    Fast,
    Slow,
}

struct Load {
    in_flight: usize,
    waiting: VecDeque<Job>,
    speed: Speed,
}

/// A job to hand to the pool now, and whether it goes on the slow lane.
pub struct Admitted {
    pub job: Job,
    pub slow_lane: bool,
}

pub struct Admission {
    max_per_endpoint: usize,
    modest: usize,
    endpoints: HashMap<i64, Load>,
}

impl Admission {
    pub fn new(max_concurrency: usize, max_per_endpoint: usize) -> Admission {
        let mut a = Admission {
            max_per_endpoint: 1,
            modest: 1,
            endpoints: HashMap::new(),
        };
        a.configure(max_concurrency, max_per_endpoint);
        a
    }

    /// Apply (re)loaded settings; jobs already in flight are not affected.
    pub fn configure(&mut self, max_concurrency: usize, max_per_endpoint: usize) {
        self.max_per_endpoint = max_per_endpoint.max(1);
        self.modest = (max_concurrency / 8).clamp(1, self.max_per_endpoint);
    }

    fn cap(&self, speed: Speed) -> usize {
        match speed {
            Speed::Fast => self.max_per_endpoint,
            Speed::Unproven | Speed::Slow => self.modest,
        }
    }

    /// Requests in flight plus parked for one webhook.
    pub fn load(&self, webhook_id: i64) -> usize {
        self.endpoints
            .get(&webhook_id)
            .map_or(0, |l| l.in_flight + l.waiting.len())
    }

    /// The most one webhook should have in flight plus parked: a claim
    /// skips webhooks at this limit.
    pub fn limit(&self, webhook_id: i64) -> usize {
        let speed = self
            .endpoints
            .get(&webhook_id)
            .map_or(Speed::Unproven, |l| l.speed);
        self.cap(speed) * 2
    }

    /// Webhooks with a full window and as much parked again.
    pub fn saturated(&self) -> Vec<i64> {
        self.endpoints
            .keys()
            .copied()
            .filter(|id| self.load(*id) >= self.limit(*id))
            .collect()
    }

    /// Send now if the endpoint has a free slot, else park the job.
    pub fn admit(&mut self, job: Job) -> Option<Admitted> {
        let id = job.endpoint.id;
        let (modest, max) = (self.modest, self.max_per_endpoint);
        let load = self.endpoints.entry(id).or_insert(Load {
            in_flight: 0,
            waiting: VecDeque::new(),
            speed: Speed::Unproven,
        });
        let cap = if load.speed == Speed::Fast {
            max
        } else {
            modest
        };
        if load.in_flight < cap && load.waiting.is_empty() {
            load.in_flight += 1;
            Some(Admitted {
                job,
                slow_lane: load.speed == Speed::Slow,
            })
        } else {
            load.waiting.push_back(job);
            None
        }
    }

    /// An attempt finished: learn the endpoint's speed from it and release
    /// the parked jobs that now fit.
    pub fn finished(&mut self, outcome: &Outcome) -> Vec<Admitted> {
        let (modest, max) = (self.modest, self.max_per_endpoint);
        let Some(load) = self.endpoints.get_mut(&outcome.webhook_id) else {
            return Vec::new();
        };
        load.in_flight = load.in_flight.saturating_sub(1);
        if outcome.duration_ms >= SLOW_MS {
            load.speed = Speed::Slow;
        } else if outcome.status_code.is_some() {
            load.speed = Speed::Fast;
        }
        let cap = if load.speed == Speed::Fast {
            max
        } else {
            modest
        };
        let mut out = Vec::new();
        while load.in_flight < cap {
            let Some(job) = load.waiting.pop_front() else {
                break;
            };
            load.in_flight += 1;
            out.push(Admitted {
                job,
                slow_lane: load.speed == Speed::Slow,
            });
        }
        if load.in_flight == 0 && load.waiting.is_empty() && load.speed != Speed::Slow {
            // Idle endpoints are forgotten (a fast one proves itself again
            // at once); slow ones stay marked until they answer quickly.
            self.endpoints.remove(&outcome.webhook_id);
        }
        out
    }
}
