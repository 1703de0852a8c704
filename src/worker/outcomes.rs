//! Recording what the pool finished: the endpoints get their room back at
//! once, and outcomes are written in batches (`record.rs`), one by one
//! when a batch fails (a child of `delivery_loop`, whose `Worker` it
//! extends; `intake` is the other half, what goes to the pool).

use super::super::record;
use super::super::txn;
use super::super::verdict::Verdict;
use super::{Worker, RECORD_DELAY};
use crate::http::job::Outcome;
use crate::status::DeliveryStatus;
use pgrx::prelude::*;
use std::time::{Duration, Instant};

/// Outcomes recorded per transaction at most (or per `RECORD_DELAY`).
const RECORD_BATCH: usize = 500;

impl Worker {
    fn finished(&mut self, outcome: &Outcome) {
        self.outstanding = self.outstanding.saturating_sub(1);
        let id = outcome.webhook_id;
        // (Its endpoint's parked jobs were started by the thread that sent
        // it: `pool`.)
        let admission = self.pool.admission();
        if self.excluded.contains(&id) && admission.load(id) < admission.limit(id) {
            // A webhook the last claim skipped has room again.
            self.capacity_freed = true;
        }
    }

    /// Take finished attempts from the pool (their endpoints get room at
    /// once) and record them when a batch is full, the oldest has waited
    /// `RECORD_DELAY`, an ordered webhook's sequence waits on one, or
    /// `now`. Returns how many were recorded.
    pub(super) fn record_finished(&mut self, now: bool) -> usize {
        let outcomes = self.pool.drain();
        for o in &outcomes {
            self.finished(o);
        }
        // Only the new outcomes need looking at: an ordered one is recorded
        // in the turn it arrives, so none waits among the older ones.
        let ordered_waiting = outcomes
            .iter()
            .any(|o| self.endpoints.ordered(o.webhook_id));
        self.unrecorded.extend(outcomes);
        if self.unrecorded.is_empty() {
            return 0;
        }
        let since = *self.unrecorded_since.get_or_insert_with(Instant::now);
        let due = now
            || ordered_waiting
            || self.record_now
            || self.unrecorded.len() >= RECORD_BATCH
            || since.elapsed() >= RECORD_DELAY;
        if !due {
            return 0;
        }
        self.unrecorded_since = None;
        self.record_now = false;
        let outcomes = std::mem::take(&mut self.unrecorded);
        for o in &outcomes {
            self.in_hand.remove(&o.delivery_id);
        }
        self.sequence_advanced |= ordered_waiting;
        let n = outcomes.len();
        self.profile.count(n, 0);
        let verdicts: Vec<Verdict> = outcomes
            .into_iter()
            .map(|o| {
                self.settings
                    .schedule
                    .verdict(o, self.settings.max_retry_after)
            })
            .collect();
        let disable_after = self.settings.disable_after;
        let with_callback = self.endpoints.with_callback(&verdicts);
        self.callbacks_due |= !with_callback.is_empty();
        let ids: Vec<i64> = verdicts.iter().map(|v| v.outcome.delivery_id).collect();
        let finished_batches = self.in_flight.finished_by(&ids);
        let recorded = txn::run(|| {
            Spi::connect_mut(|client| {
                record::record(
                    client,
                    &verdicts,
                    disable_after,
                    &with_callback,
                    &self.in_flight,
                    &finished_batches,
                )
            })
        });
        match recorded {
            Ok(()) => self.in_flight.recorded(&ids, &finished_batches),
            Err(e) => {
                warning!(
                    "webhook_emitter: recording {n} outcomes failed: {e}; recording them one by one"
                );
                for verdict in &verdicts {
                    self.record_alone(verdict, disable_after);
                }
            }
        }
        n
    }

    /// Record one outcome in its own transaction, after its batch failed. An
    /// outcome that cannot be recorded (a row or a trigger that rejects it)
    /// ends its delivery `failed` (`dead` when no retry is left) with the
    /// error as `last_error`; only if even that fails does the lease bring
    /// it back later. Other deliveries are never held up by it.
    fn record_alone(&mut self, verdict: &Verdict, disable_after: Duration) {
        let one = std::slice::from_ref(verdict);
        let id = verdict.outcome.delivery_id;
        let with_callback = self.endpoints.with_callback(one);
        let Err(e) = txn::run(|| {
            Spi::connect_mut(|client| {
                record::record(
                    client,
                    one,
                    disable_after,
                    &with_callback,
                    &self.in_flight,
                    &[],
                )
            })
        }) else {
            self.in_flight.recorded(&[id], &[]);
            return;
        };
        let retry_in = match verdict.status {
            DeliveryStatus::Delivered | DeliveryStatus::Failed => self
                .settings
                .schedule
                .after_failure(verdict.outcome.attempt, None, self.settings.max_retry_after),
            _ => None,
        };
        let error = format!(
            "recording the outcome of attempt {} failed: {e}",
            verdict.outcome.attempt
        );
        warning!("webhook_emitter: delivery {id}: {error}");
        let unwritten = self.in_flight.unwritten(id);
        let marked = txn::run(|| {
            Spi::connect_mut(|client| {
                record::mark_unrecordable(
                    client,
                    id,
                    verdict.outcome.webhook_id,
                    unwritten,
                    retry_in,
                    &error,
                )
            })
        });
        match marked {
            Ok(()) => self.in_flight.recorded(&[id], &[]),
            Err(e) => {
                warning!("webhook_emitter: delivery {id} could not be marked failed either ({e}); its lease will bring it back");
                self.in_flight.lost(id);
            }
        }
    }
}
