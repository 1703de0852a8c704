//! How claimed deliveries reach the pool: what a claim may take now, the
//! fan-out's claims and the sync of held deliveries after it, and the
//! hand-over of what was claimed (a child of `delivery_loop`, whose
//! `Worker` it extends).

use super::super::claim;
use super::super::fanout;
use super::super::maintenance;
use super::super::plans;
use super::super::txn;
use super::{Worker, HELD_SYNC_EVERY};
use crate::http::job::{Attempt, Job, Outcome};
use pgrx::prelude::*;
use std::sync::Arc;
use std::time::Instant;

impl Worker {
    /// Make the deliveries of the events committed since the last fan-out,
    /// claiming the new ones there is room for when `claim` (no backlog is
    /// due: new deliveries must not pass older ones). Returns whether
    /// deliveries were made that it did not claim (a claim should follow),
    /// how many it claimed, and whether its batch has more events than the
    /// slice it read (fan out again). A failure is retried a poll interval later
    /// (the events wait in webhook.events: nothing is lost).
    ///
    /// Returns None, doing nothing, when it may not claim (or there is no
    /// room) unless `forced` (the poll interval passed): the events wait in
    /// webhook.events until they can be claimed as they are made, rather
    /// than be made 'pending' and then updated by a claim (a slice the
    /// worker claims is no larger than its claim). The poll's fan-out makes
    /// them anyway, so that held and ordered deliveries and a backlog's
    /// counts are never more than a poll interval behind.
    pub(super) fn fan_out(&mut self, claim: bool, forced: bool) -> Option<(bool, usize, bool)> {
        if self
            .fan_out_backoff
            .is_some_and(|until| Instant::now() < until)
        {
            return Some((false, 0, false));
        }
        let request = if claim { self.claim_request() } else { None };
        if request.is_none() && !forced {
            return None;
        }
        let fanned = match txn::run(|| {
            Spi::connect_mut(|client| fanout::fan_out(client, request.as_ref()))
        }) {
            Ok(fanned) => fanned,
            Err(e) => {
                warning!(
                    "webhook_emitter: making the deliveries of new events failed: {e}; retrying in {:?}",
                    self.settings.poll_interval
                );
                self.fan_out_backoff = Some(Instant::now() + self.settings.poll_interval);
                return Some((false, 0, false));
            }
        };
        self.fan_out_backoff = None;
        let claimed = fanned.claimed.len();
        if claimed > 0 {
            self.dispatch_claimed(fanned.claimed);
        }
        // In a transaction of its own: its failure cannot undo the fan-out.
        if fanned.statistics_stale {
            if let Err(e) = txn::run(|| Spi::connect_mut(plans::analyze_queue)) {
                warning!("webhook_emitter: analyzing webhook.deliveries failed: {e}");
            }
        }
        Some((fanned.made > claimed as i64, claimed, fanned.more))
    }

    /// A fan-out made deliveries it did not claim, maybe 'held' for a
    /// webhook being enabled meanwhile (the enable's trigger cannot see
    /// them): held deliveries follow their webhook's flag again, at most
    /// once a second.
    pub(super) fn sync_held_soon(&mut self) {
        if self
            .last_held_sync
            .is_some_and(|at| at.elapsed() < HELD_SYNC_EVERY)
        {
            return;
        }
        self.last_held_sync = Some(Instant::now());
        if let Err(e) = txn::run(|| Spi::connect_mut(maintenance::sync_held)) {
            warning!("webhook_emitter: syncing held deliveries failed: {e}");
        }
    }

    /// What a claim may take now, or None when there is too little room to
    /// be worth a claim (it waits until half the window is free) or no
    /// agent to send with.
    pub(super) fn claim_request(&mut self) -> Option<claim::ClaimRequest> {
        self.agent.as_ref()?;
        let window = (self.max_concurrency * 4).max(self.settings.batch_size as usize);
        // Jobs of rate-limited or paused webhooks at their limit wait for
        // their endpoint, not for this claim, which leaves those webhooks out.
        let held = self
            .outstanding
            .saturating_sub(self.pool.admission().held_by_left_out());
        let room = window.saturating_sub(held) as i64;
        let limit = self.settings.batch_size.min(room);
        // (Room in rows comes back as requests finish, recorded or not:
        // recording early for it would only make the record batches small.)
        if limit <= 0 || (held > 0 && room < (window / 2) as i64) {
            return None;
        }
        // Bodies in hand are bounded in bytes, not only in rows: writers
        // choose their sizes.
        let held_bytes: i64 = self.in_hand.values().sum();
        let bytes = claim::ClaimBytes {
            budget: self.settings.bytes_in_flight_cap() - held_bytes,
            max_body: self.settings.max_body_bytes,
        };
        if bytes.budget <= 0 && !self.in_hand.is_empty() {
            self.record_now = true;
            return None;
        }
        let left_out = self.pool.admission().left_out_ids();
        self.excluded = left_out.clone();
        Some(claim::ClaimRequest {
            limit,
            left_out,
            lease: self.settings.lease(),
            bytes,
        })
    }

    /// Hand claimed deliveries to the pool; those that cannot be sent fail
    /// like an attempt.
    pub(super) fn dispatch_claimed(&mut self, claimed: Vec<claim::Claimed>) {
        let Some(agent) = self.agent.clone() else {
            return;
        };
        let unusable = self.endpoints.refresh(&claimed, &self.settings);
        self.profile.count(0, claimed.len());
        for mut c in claimed {
            self.in_hand
                .insert(c.attempt.delivery_id, c.attempt.body.len() as i64);
            if let Some(unwritten) = c.unwritten.take() {
                self.in_flight.hold(c.attempt.delivery_id, unwritten);
            }
            if let Some(size) = c.body_too_large {
                self.unrecorded.push(failed_before_sending(
                    &c.attempt,
                    c.webhook_id,
                    format!(
                        "its body is {size} bytes, more than webhook.max_body_bytes ({}); it is not sent (raise the setting, then webhook.redeliver)",
                        self.settings.max_body_bytes
                    ),
                ));
                continue;
            }
            if !c.event_found {
                self.unrecorded.push(failed_before_sending(
                    &c.attempt,
                    c.webhook_id,
                    format!(
                        "its event {} no longer exists in webhook.events",
                        c.attempt.event_id
                    ),
                ));
                continue;
            }
            let Some(endpoint) = self.endpoints.get(c.webhook_id) else {
                // Fails like an attempt (and is retried on the schedule), so
                // it never sits "delivering"; other webhooks are unaffected.
                let why = unusable
                    .get(&c.webhook_id)
                    .map_or("its settings could not be loaded", String::as_str);
                self.unrecorded.push(failed_before_sending(
                    &c.attempt,
                    c.webhook_id,
                    format!("webhook {} has unusable settings: {why}", c.webhook_id),
                ));
                continue;
            };
            self.outstanding += 1;
            let job = Job {
                attempt: c.attempt,
                endpoint: Arc::clone(endpoint),
                // An endpoint with a client certificate has its own client.
                agent: endpoint.agent.clone().unwrap_or_else(|| agent.clone()),
            };
            self.pool.dispatch(job);
        }
        // Attempts that failed before sending are recorded like the others
        // (within RECORD_DELAY), not at the next poll.
        if !self.unrecorded.is_empty() {
            self.unrecorded_since.get_or_insert_with(Instant::now);
        }
    }

    /// Claim due deliveries and hand them to the pool. Returns whether more
    /// may be due (the claim was full), or None when there was too little
    /// room to be worth a claim.
    pub(super) fn claim_and_dispatch(&mut self) -> Option<bool> {
        if self
            .claim_backoff
            .is_some_and(|until| Instant::now() < until)
        {
            return None;
        }
        let request = self.claim_request()?;
        // What this claim answers (the fan-out's claims take new unordered
        // deliveries only, so they leave these set).
        self.capacity_freed = false;
        self.sequence_advanced = false;
        let claimed = match txn::run(|| Spi::connect_mut(|client| claim::claim(client, &request))) {
            Ok((claimed, statistics_stale)) => {
                if statistics_stale {
                    if let Err(e) = txn::run(|| Spi::connect_mut(plans::analyze_queue)) {
                        warning!("webhook_emitter: analyzing webhook.deliveries failed: {e}");
                    }
                }
                claimed
            }
            Err(e) => {
                // Nothing was claimed (the transaction rolled back); try
                // again after a poll interval rather than spin on the error.
                warning!(
                    "webhook_emitter: claiming deliveries failed: {e}; retrying in {:?}",
                    self.settings.poll_interval
                );
                self.claim_backoff = Some(Instant::now() + self.settings.poll_interval);
                return Some(false);
            }
        };
        self.claim_backoff = None;
        let n = claimed.len();
        self.dispatch_claimed(claimed);
        Some(n as i64 >= request.limit)
    }
}

/// The outcome of an attempt that could not even be made.
fn failed_before_sending(attempt: &Attempt, webhook_id: i64, error: String) -> Outcome {
    Outcome {
        delivery_id: attempt.delivery_id,
        webhook_id,
        topic: attempt.topic.clone(),
        attempt: attempt.attempt,
        started_at: std::time::SystemTime::now(),
        duration_ms: 0.0,
        status_code: None,
        response_headers: None,
        response_excerpt: None,
        error: Some(error),
        retry_after: None,
    }
}
