//! New deliveries the fan-out claimed and the worker sends before they are
//! written: which ones it holds, and the `webhook.in_flight_batches` rows
//! that list them (sql/engine/state.sql). Each is inserted once, with its
//! outcome (`record.rs`); a batch's row is deleted once all of its
//! deliveries are recorded. A row the worker does not hold (a crash, a
//! restore) is recovered by `maintenance::recover_in_flight`.

use super::claim::Unwritten;
use std::collections::HashMap;

#[derive(Default)]
pub struct InFlight {
    unwritten: HashMap<i64, Unwritten>,
    batches: HashMap<i64, Batch>,
    /// Batches all of whose deliveries are recorded: their rows are
    /// deleted by the next record.
    done: Vec<i64>,
}

struct Batch {
    unrecorded: usize,
    /// One of its deliveries could not be recorded at all: the row stays,
    /// and is recovered once its lease runs out.
    lost: bool,
}

impl InFlight {
    /// A delivery claimed by the fan-out, handed to the pool.
    pub fn hold(&mut self, delivery_id: i64, unwritten: Unwritten) {
        self.batches
            .entry(unwritten.batch)
            .or_insert(Batch {
                unrecorded: 0,
                lost: false,
            })
            .unrecorded += 1;
        self.unwritten.insert(delivery_id, unwritten);
    }

    /// The delivery, when it is not written yet.
    pub fn unwritten(&self, delivery_id: i64) -> Option<&Unwritten> {
        self.unwritten.get(&delivery_id)
    }

    /// The batch rows to delete in the transaction that records these
    /// deliveries: those finished before, and those these finish.
    pub fn finished_by(&self, delivery_ids: &[i64]) -> Vec<i64> {
        let mut recorded: HashMap<i64, usize> = HashMap::new();
        for id in delivery_ids {
            if let Some(u) = self.unwritten.get(id) {
                *recorded.entry(u.batch).or_default() += 1;
            }
        }
        let mut out = self.done.clone();
        out.extend(recorded.into_iter().filter_map(|(batch, n)| {
            self.batches
                .get(&batch)
                .filter(|b| !b.lost && b.unrecorded == n)
                .map(|_| batch)
        }));
        out
    }

    /// These deliveries' outcomes are committed, and the rows of `deleted`
    /// with them.
    pub fn recorded(&mut self, delivery_ids: &[i64], deleted: &[i64]) {
        for id in delivery_ids {
            self.release(*id, false);
        }
        self.done.retain(|b| !deleted.contains(b));
    }

    /// This delivery's outcome could not be recorded: its batch's row stays
    /// for recovery once the lease runs out.
    pub fn lost(&mut self, delivery_id: i64) {
        self.release(delivery_id, true);
    }

    fn release(&mut self, delivery_id: i64, lost: bool) {
        let Some(u) = self.unwritten.remove(&delivery_id) else {
            return;
        };
        let Some(batch) = self.batches.get_mut(&u.batch) else {
            return;
        };
        batch.lost |= lost;
        batch.unrecorded = batch.unrecorded.saturating_sub(1);
        if batch.unrecorded == 0 {
            let lost = batch.lost;
            self.batches.remove(&u.batch);
            if !lost {
                self.done.push(u.batch);
            }
        }
    }

    /// The batch rows this worker holds (recovery leaves them alone): one
    /// with a lost delivery only until its others are recorded.
    pub fn held_batches(&self) -> Vec<i64> {
        self.batches
            .keys()
            .chain(self.done.iter())
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unwritten(batch: i64) -> Unwritten {
        Unwritten {
            batch,
            event_id: String::new(),
            event_created_at: None,
            slot: 0,
            claimed_at: None,
        }
    }

    #[test]
    fn a_batch_is_deleted_with_the_record_of_its_last_delivery() {
        let mut f = InFlight::default();
        f.hold(1, unwritten(10));
        f.hold(2, unwritten(10));
        f.hold(3, unwritten(11));
        assert!(f.finished_by(&[1]).is_empty());
        f.recorded(&[1], &[]);
        let deleted = f.finished_by(&[2, 3]);
        let mut sorted = deleted.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![10, 11]);
        f.recorded(&[2, 3], &deleted);
        assert!(f.held_batches().is_empty());
        assert!(f.unwritten(2).is_none());
    }

    #[test]
    fn a_batch_finished_outside_a_record_is_deleted_by_the_next() {
        let mut f = InFlight::default();
        f.hold(1, unwritten(10));
        f.hold(2, unwritten(12));
        // Recorded alone (its batch's record failed): nothing deleted then.
        f.recorded(&[1], &[]);
        let mut held = f.held_batches();
        held.sort_unstable();
        assert_eq!(held, vec![10, 12], "10 finished, its row not deleted yet");
        let deleted = f.finished_by(&[2]);
        let mut sorted = deleted.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![10, 12]);
        f.recorded(&[2], &deleted);
        assert!(f.held_batches().is_empty());
    }

    #[test]
    fn a_batch_with_a_lost_delivery_is_left_for_recovery() {
        let mut f = InFlight::default();
        f.hold(1, unwritten(10));
        f.hold(2, unwritten(10));
        f.lost(1);
        assert_eq!(f.held_batches(), vec![10], "delivery 2 is still out");
        assert!(f.finished_by(&[2]).is_empty(), "its row is not deleted");
        f.recorded(&[2], &[]);
        assert!(f.held_batches().is_empty(), "recovery may take it");
        assert!(f.finished_by(&[]).is_empty());
    }
}
