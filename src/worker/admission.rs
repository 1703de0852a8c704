//! How many requests each endpoint may have in flight, on which lane, and
//! when they may start.
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
//!
//! It also paces endpoints: a webhook's `rate_limit_per_second` is a token
//! bucket holding a fiftieth of a second's worth (at least one request),
//! so no second sees more than the limit plus that; a 429 or 503 with
//! `Retry-After` pauses that endpoint alone (up to a minute here; the
//! delivery itself is retried after the full delay).

use crate::http::job::{Job, Outcome};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// An attempt at least this long marks its endpoint slow.
const SLOW_MS: f64 = 1000.0;
/// Windows (in flight plus parked) a fast endpoint may hold; see `limit`.
const FAST_DEPTH: usize = 16;
/// Seconds of its rate limit a rate-limited endpoint may hold claimed
/// before claims leave it out: more would only wait here, under a lease.
const RATE_LIMIT_DEPTH_SECS: u32 = 2;
/// Longest pause a `Retry-After` imposes on an endpoint's other jobs
/// (they are claimed, under a lease, while they wait).
const MAX_PAUSE: Duration = Duration::from_secs(60);

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
    /// The webhook's `rate_limit_per_second`, as of its latest job.
    rate_limit: Option<u32>,
    /// Requests the rate limit allows to start now (token bucket).
    tokens: f64,
    refilled: Instant,
    paused_until: Option<Instant>,
}

impl Load {
    fn new() -> Load {
        Load {
            in_flight: 0,
            waiting: VecDeque::new(),
            speed: Speed::Unproven,
            rate_limit: None,
            tokens: 1.0,
            refilled: Instant::now(),
            paused_until: None,
        }
    }

    /// Whether a request to this endpoint may start now; takes a token.
    fn may_start(&mut self, rate_limit: Option<u32>, now: Instant) -> bool {
        if self.paused_until.is_some_and(|until| now < until) {
            return false;
        }
        self.paused_until = None;
        let Some(rate) = rate_limit else {
            return true;
        };
        let rate = f64::from(rate);
        let burst = (rate / 50.0).max(1.0);
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Start the parked jobs that fit the window, the worker's share
    /// (`room`, taken from as they start), the rate and any pause.
    fn release(&mut self, caps: Caps, room: &mut usize, now: Instant, out: &mut Vec<Admitted>) {
        while self.in_flight < caps.of(self.speed) && *room > 0 {
            let Some(rate) = self.waiting.front().map(|j| j.endpoint.rate_limit) else {
                break;
            };
            if !self.may_start(rate, now) {
                break;
            }
            if let Some(job) = self.waiting.pop_front() {
                self.in_flight += 1;
                *room -= 1;
                out.push(Admitted {
                    job,
                    slow_lane: self.speed == Speed::Slow,
                });
            }
        }
    }

    fn idle(&self) -> bool {
        self.in_flight == 0 && self.waiting.is_empty()
    }
}

/// A job to hand to the pool now, and whether it goes on the slow lane.
pub struct Admitted {
    pub job: Job,
    pub slow_lane: bool,
}

/// In-flight caps: `max` for endpoints proven fast, `modest` otherwise.
#[derive(Clone, Copy)]
struct Caps {
    modest: usize,
    max: usize,
}

impl Caps {
    fn of(self, speed: Speed) -> usize {
        match speed {
            Speed::Fast => self.max,
            Speed::Unproven | Speed::Slow => self.modest,
        }
    }
}

pub struct Admission {
    caps: Caps,
    endpoints: HashMap<i64, Load>,
    /// Requests this worker may have in flight in all: its share of
    /// `webhook.max_concurrency` among the databases with work (see
    /// `wakeup::share`).
    share: usize,
    in_flight: usize,
}

impl Admission {
    pub fn new(max_concurrency: usize, max_per_endpoint: usize) -> Admission {
        let mut a = Admission {
            caps: Caps { modest: 1, max: 1 },
            endpoints: HashMap::new(),
            share: max_concurrency.max(1),
            in_flight: 0,
        };
        a.configure(max_concurrency, max_per_endpoint);
        a
    }

    /// Apply (re)loaded settings; jobs already in flight are not affected.
    pub fn configure(&mut self, max_concurrency: usize, max_per_endpoint: usize) {
        let max = max_per_endpoint.max(1);
        self.caps = Caps {
            modest: (max_concurrency / 8).clamp(1, max),
            max,
        };
    }

    /// Set this worker's share of the cluster's concurrency. Requests
    /// already in flight above it finish; no new one starts until the
    /// total is under it.
    pub fn set_share(&mut self, share: usize) {
        self.share = share.max(1);
    }

    /// Start nothing more (the worker is exiting): jobs still parked stay
    /// claimed, and their leases bring them back after the restart.
    pub fn close(&mut self) {
        self.share = 0;
    }

    /// Room left in the worker's share.
    fn room(&self) -> usize {
        self.share.saturating_sub(self.in_flight)
    }

    /// Requests in flight plus parked for one webhook.
    pub fn load(&self, webhook_id: i64) -> usize {
        self.endpoints
            .get(&webhook_id)
            .map_or(0, |l| l.in_flight + l.waiting.len())
    }

    /// The most one webhook should have in flight plus parked: a claim
    /// skips webhooks at this limit. A window and as much again, except
    /// that an endpoint proven fast may have `FAST_DEPTH` windows parked:
    /// it empties a window in a few milliseconds, less than a claim
    /// takes, and without that depth its requests would stop while the
    /// next claim runs.
    /// A rate-limited endpoint holds no more than `RATE_LIMIT_DEPTH_SECS`
    /// of its rate.
    pub fn limit(&self, webhook_id: i64) -> usize {
        let load = self.endpoints.get(&webhook_id);
        let speed = load.map_or(Speed::Unproven, |l| l.speed);
        let by_speed = match speed {
            Speed::Fast => self.caps.max * FAST_DEPTH,
            Speed::Unproven | Speed::Slow => self.caps.of(speed) * 2,
        };
        match load.and_then(|l| l.rate_limit) {
            Some(rate) => {
                by_speed.min((rate.saturating_mul(RATE_LIMIT_DEPTH_SECS)).max(1) as usize)
            }
            None => by_speed,
        }
    }

    /// Whether the next claim leaves this webhook out: it holds its limit,
    /// or its endpoint is paused by a `Retry-After`.
    fn left_out(&self, webhook_id: i64, now: Instant) -> bool {
        self.load(webhook_id) >= self.limit(webhook_id)
            || self
                .endpoints
                .get(&webhook_id)
                .and_then(|l| l.paused_until)
                .is_some_and(|until| now < until)
    }

    /// The webhooks the next claim leaves out.
    pub fn left_out_ids(&self) -> Vec<i64> {
        let now = Instant::now();
        self.endpoints
            .keys()
            .copied()
            .filter(|&id| self.left_out(id, now))
            .collect()
    }

    /// Jobs held by rate-limited or paused webhooks the next claim leaves
    /// out: they wait for their endpoint's rate or pause, maybe for minutes,
    /// not for the claim, so they must not take its room, or they would hold
    /// back every other webhook's deliveries. (A fast endpoint at its limit
    /// sends its jobs within milliseconds: the claim waits for that, rather
    /// than run a claim that leaves out the only webhook with work, which
    /// steps over all of its due deliveries for nothing.)
    pub fn held_by_left_out(&self) -> usize {
        let now = Instant::now();
        self.endpoints
            .iter()
            .filter(|(_, load)| {
                load.rate_limit.is_some() || load.paused_until.is_some_and(|until| now < until)
            })
            .filter(|(&id, _)| self.left_out(id, now))
            .map(|(&id, _)| self.load(id))
            .sum()
    }

    /// Send now if the endpoint has a free slot (and a token), else park.
    pub fn admit(&mut self, job: Job) -> Option<Admitted> {
        let id = job.endpoint.id;
        let rate = job.endpoint.rate_limit;
        let caps = self.caps;
        let load = self.endpoints.entry(id).or_insert_with(Load::new);
        load.rate_limit = rate;
        if load.in_flight < caps.of(load.speed)
            && self.in_flight < self.share
            && load.waiting.is_empty()
            && load.may_start(rate, Instant::now())
        {
            load.in_flight += 1;
            self.in_flight += 1;
            Some(Admitted {
                job,
                slow_lane: load.speed == Speed::Slow,
            })
        } else {
            load.waiting.push_back(job);
            None
        }
    }

    /// An attempt finished: learn the endpoint's speed (and any pause it
    /// asked for) from it and release the parked jobs that now fit.
    pub fn finished(&mut self, outcome: &Outcome) -> Vec<Admitted> {
        let caps = self.caps;
        let Some(load) = self.endpoints.get_mut(&outcome.webhook_id) else {
            return Vec::new();
        };
        load.in_flight = load.in_flight.saturating_sub(1);
        self.in_flight = self.in_flight.saturating_sub(1);
        let mut room = self.share.saturating_sub(self.in_flight);
        if outcome.duration_ms >= SLOW_MS {
            load.speed = Speed::Slow;
        } else if outcome.status_code.is_some() {
            load.speed = Speed::Fast;
        }
        let now = Instant::now();
        if matches!(outcome.status_code, Some(429 | 503)) {
            if let Some(wait) = outcome.retry_after {
                load.paused_until = Some(now + wait.min(MAX_PAUSE));
            }
        }
        let mut out = Vec::new();
        load.release(caps, &mut room, now, &mut out);
        self.in_flight += out.len();
        if load.idle() && load.speed != Speed::Slow && load.paused_until.is_none() {
            // Idle endpoints are forgotten (a fast one proves itself again
            // at once); slow and paused ones stay marked.
            self.endpoints.remove(&outcome.webhook_id);
        }
        out
    }

    /// Parked jobs whose rate-limit token or pause has come due, or that
    /// fit again after the worker's share grew or another endpoint's
    /// request finished.
    pub fn release_due(&mut self) -> Vec<Admitted> {
        let caps = self.caps;
        let now = Instant::now();
        let mut room = self.room();
        let mut out = Vec::new();
        for load in self.endpoints.values_mut() {
            if !load.waiting.is_empty() {
                load.release(caps, &mut room, now, &mut out);
            }
        }
        self.in_flight += out.len();
        out
    }
}
