//! The background worker's main loop. The main thread owns every Postgres
//! interaction (claim, record, prune); HTTP runs on the pool's threads.
//! What goes to the pool is `intake`'s, what comes back `outcomes`'.
//! It sleeps on its latch, which committing writers set (see `crate::shmem`),
//! with `webhook.poll_interval` as a fallback.

use super::admission::Admission;
use super::callbacks;
use super::endpoints::EndpointCache;
use super::in_flight::InFlight;
use super::latch::{sleep_past_latch, wait_on_latch};
use super::maintenance;
use super::maintenance::Upkeep;
use super::pool::Pool;
use super::presence;
use super::profile::{LoopProfile, Phase};
use super::settings::Settings;
use super::txn;
use crate::guc;
use crate::http::job::Outcome;
use crate::shmem;
use pgrx::bgworkers::*;
use pgrx::prelude::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

// How claimed deliveries reach the pool (an `impl Worker` of its own).
#[path = "intake.rs"]
mod intake;
// How finished attempts are recorded (the other half of the loop's work).
#[path = "outcomes.rs"]
mod outcomes;

/// While requests are in flight the loop checks for results this often.
const BUSY_TICK: Duration = Duration::from_millis(2);
/// Outcomes are recorded in batches: one transaction per `outcomes::RECORD_BATCH`,
/// or per this long, rather than one per loop turn (each transaction and each
/// statement has a fixed cost that a fast receiver makes dominant).
const RECORD_DELAY: Duration = Duration::from_millis(20);
/// While the fan-out claims the new deliveries, the claim still runs this
/// often for the older ones that came due (retries, released, replayed).
const DUE_CLAIM_EVERY: Duration = Duration::from_millis(100);
/// Held deliveries are synced with their webhook's flag at most this often
/// after fan-outs (the maintenance does it every minute besides).
const HELD_SYNC_EVERY: Duration = Duration::from_secs(1);

struct Worker {
    settings: Settings,
    agent: Option<crate::http::client::Client>,
    pool: Pool,
    max_concurrency: usize,
    endpoints: EndpointCache,
    /// Outcomes were handed to callbacks since they last ran.
    callbacks_due: bool,
    last_callbacks: Instant,
    outstanding: usize,
    /// Webhooks the last claim skipped as saturated.
    excluded: Vec<i64>,
    /// One of them has room again: claim without waiting for the poll.
    capacity_freed: bool,
    /// An ordered webhook's outcome was recorded, which may make the next
    /// delivery of its sequence claimable: claim without waiting.
    sequence_advanced: bool,
    /// Finished attempts not yet recorded, and when the oldest finished.
    /// Attempts that failed before any request (unusable webhook settings)
    /// join them too.
    unrecorded: Vec<Outcome>,
    unrecorded_since: Option<Instant>,
    /// A claim found no room for bodies: what finished is recorded at once
    /// (the bodies it holds are what the claim waits for).
    record_now: bool,
    /// Deliveries claimed and not yet recorded (their leases are live),
    /// with the bytes of body each holds.
    in_hand: HashMap<i64, i64>,
    /// Those of them the fan-out claimed, not written yet.
    in_flight: InFlight,
    /// When pruning and the other upkeep run next.
    upkeep: Upkeep,
    /// After a failed claim, the next one waits until then.
    claim_backoff: Option<Instant>,
    /// After a failed fan-out, the next one waits until then.
    fan_out_backoff: Option<Instant>,
    /// When held deliveries were last synced after a fan-out.
    last_held_sync: Option<Instant>,
    profile: LoopProfile,
    /// Last value published with `shmem::set_busy`.
    busy: bool,
}

impl Worker {
    fn new() -> Worker {
        let max_concurrency = guc::MAX_CONCURRENCY.get().max(1) as usize;
        let settings = Settings::load(max_concurrency, None);
        let excerpt = guc::response_excerpt_bytes();
        let mut w = Worker {
            agent: None,
            pool: Pool::new(
                max_concurrency,
                excerpt,
                guc::HTTP_NICE.get(),
                Admission::new(max_concurrency, settings.max_per_endpoint),
            ),
            max_concurrency,
            endpoints: EndpointCache::default(),
            callbacks_due: true,
            last_callbacks: Instant::now(),
            outstanding: 0,
            excluded: Vec::new(),
            capacity_freed: false,
            sequence_advanced: false,
            unrecorded: Vec::new(),
            unrecorded_since: None,
            record_now: false,
            in_hand: HashMap::new(),
            in_flight: InFlight::default(),
            upkeep: Upkeep::default(),
            claim_backoff: None,
            fan_out_backoff: None,
            last_held_sync: None,
            profile: LoopProfile::new(),
            busy: false,
            settings,
        };
        w.rebuild_agent();
        w
    }

    fn rebuild_agent(&mut self) {
        self.agent = match crate::http::agent::build_agent(&self.settings.agent, None) {
            Ok(a) => Some(a),
            Err(e) => {
                warning!("webhook_emitter: cannot build the HTTP client: {e}; deliveries wait until it is fixed");
                None
            }
        };
    }

    fn reload(&mut self) {
        unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        self.settings = Settings::load(self.max_concurrency, Some(&self.settings));
        self.pool
            .admission()
            .configure(self.max_concurrency, self.settings.max_per_endpoint);
        self.endpoints.clear();
        self.rebuild_agent();
    }

    /// Publish whether this worker has requests out, and take its share
    /// of `webhook.max_concurrency` among the busy databases.
    fn share_concurrency(&mut self, slot: usize) {
        let busy = self.outstanding > 0;
        if busy != self.busy {
            shmem::set_busy(slot, busy);
            self.busy = busy;
        }
        self.pool
            .admission()
            .set_share(shmem::share(slot, self.max_concurrency));
    }
}

/// Entry point of the background worker process.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn webhook_emitter_worker_main(arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    // The launcher passes the slot (high 32 bits) and the database OID.
    let packed = arg.value() as u64;
    let (slot, database) = ((packed >> 32) as usize, packed as u32);
    if slot >= shmem::MAX_DATABASES {
        return;
    }
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(pg_sys::Oid::from(database)), None);
    if !shmem::publish_worker(slot) {
        return; // its database is being dropped or copied
    }
    super::settings::pin_session();
    let mut worker = Worker::new();
    if !presence::wait_for_extension(slot, worker.settings.poll_interval) {
        return; // no extension here: nothing to deliver
    }
    // New deliveries a crash left in flight first (a transaction of their
    // own: a row that cannot be recovered holds up nothing else), then
    // every delivery left delivering.
    let recovered = txn::run(|| {
        Spi::connect_mut(|client| maintenance::recover_in_flight(client, Vec::new(), true))
    })
    .unwrap_or_else(|e| {
        warning!("webhook_emitter: recovering deliveries in flight failed: {e}; their leases will");
        0
    });
    if recovered > 0 {
        log!("webhook_emitter: {recovered} deliveries in flight at a stop are sent again");
    }
    let orphans = txn::run(|| Spi::connect_mut(maintenance::release_orphans)).unwrap_or_else(|e| {
        warning!(
            "webhook_emitter: releasing interrupted deliveries failed: {e}; their leases will"
        );
        0
    });
    if orphans > 0 {
        log!("webhook_emitter: {orphans} interrupted deliveries are due again");
    }
    maintenance::sync_registry_logged();
    log!("webhook_emitter: {} started", BackgroundWorker::get_name());

    // Claims happen when a commit woke us, when the last claim was full (more
    // is due), or when the poll interval passed (retries coming due); not on
    // every tick spent waiting for HTTP results.
    let mut timeout = Duration::ZERO;
    let mut wake_pending = true;
    let mut more_due = false;
    let mut last_claim = Instant::now();
    // When a commit's wake-up was last answered, by a claim or by a fan-out
    // that claimed.
    let mut last_answer = Instant::now();
    // The fan-out runs after commits that queued events (they set the
    // latch), gathered like the claims, and at every poll interval.
    let mut fan_out_pending = true;
    let mut last_fan_out = Instant::now();
    // The last fan-out that answered commits (the gathering counts from it:
    // the poll's fan-outs do not make a commit after a quiet spell wait).
    let mut last_gathered_fan_out = Instant::now();
    // The fan-out claimed since the last claim.
    let mut claimed_at_fan_out = false;
    // The last fan-out due waited for room to claim what it makes.
    let mut fan_out_waits = false;
    loop {
        // A commit's wake-up claims (and fans out) at most this soon after
        // the last claim or fan-out that answered commits
        // (`webhook.batch_wait`): at a steady trickle of single-row commits,
        // a claim (and, after it, a record) per commit made the worker's
        // fixed cost per transaction the largest cost of every event. A
        // commit after a quiet spell is answered at once.
        let gather = worker.settings.batch_wait;
        let started = Instant::now();
        let (alive, latch_set) = if worker.outstanding > 0 {
            // Requests in flight: wake on the first result (or the tick),
            // then look at the latch without sleeping.
            worker.pool.wait(timeout);
            wait_on_latch(Duration::ZERO)
        } else if wake_pending && !timeout.is_zero() && timeout <= gather && worker.agent.is_some()
        {
            // Gathering commits for the next claim: a sleep that their
            // wake-ups do not cut short (SetLatch signals a process only
            // while it waits on its latch), so a stream of commits costs
            // one wake-up per claim, not a context switch per commit.
            sleep_past_latch(timeout);
            wait_on_latch(Duration::ZERO)
        } else {
            wait_on_latch(timeout)
        };
        worker.profile.add(Phase::Waiting, started);
        worker.profile.maybe_report();
        if !alive {
            break;
        }
        wake_pending |= latch_set;
        fan_out_pending |= latch_set;
        if BackgroundWorker::sighup_received() {
            worker.reload();
        }
        let started = Instant::now();
        let recorded = worker.record_finished(false);
        worker.profile.add(
            if recorded > 0 {
                Phase::Recording
            } else {
                Phase::Other
            },
            started,
        );
        let started = Instant::now();
        worker.share_concurrency(slot);
        // Parked jobs whose rate-limit token or pause came due.
        worker.pool.release_due();
        worker.profile.add(Phase::Other, started);
        let poll = worker.settings.poll_interval;
        let due_claim_overdue = claimed_at_fan_out && last_claim.elapsed() >= DUE_CLAIM_EVERY;
        if (fan_out_pending && last_gathered_fan_out.elapsed() >= gather)
            || last_fan_out.elapsed() >= poll
        {
            let answering = fan_out_pending;
            let started = Instant::now();
            // New deliveries are claimed as they are made unless the last
            // claim was full (a backlog: new ones must not pass it) or
            // claims back off; older ones that come due meanwhile are
            // claimed at least every DUE_CLAIM_EVERY (the fan-out leaves
            // the room to that claim when it is due).
            let may_claim = !more_due && worker.claim_backoff.is_none() && !due_claim_overdue;
            let forced = last_fan_out.elapsed() >= poll;
            match worker.fan_out(may_claim, forced) {
                Some((unclaimed, claimed, more)) => {
                    more_due |= unclaimed;
                    if unclaimed {
                        worker.sync_held_soon();
                    }
                    if claimed > 0 {
                        // The fan-out claimed: it answers the commits' wake-up.
                        wake_pending = false;
                        claimed_at_fan_out = true;
                        last_answer = Instant::now();
                    }
                    // A batch read in slices goes on at the next turn.
                    fan_out_pending = more;
                    fan_out_waits = false;
                    last_fan_out = Instant::now();
                    if answering {
                        last_gathered_fan_out = last_fan_out;
                    }
                }
                // Waiting for room (requests finishing wake the loop), or
                // for the poll.
                None => fan_out_waits = true,
            }
            worker.profile.add(Phase::Claiming, started);
        }
        if (wake_pending && last_answer.elapsed() >= gather)
            || (claimed_at_fan_out && last_claim.elapsed() >= DUE_CLAIM_EVERY)
            || more_due
            || worker.capacity_freed
            || worker.sequence_advanced
            || last_claim.elapsed() >= poll
        {
            let started = Instant::now();
            // A claim for the poll alone does not restart the gathering.
            let answering = wake_pending;
            let claimed = worker.claim_and_dispatch();
            worker.profile.add(Phase::Claiming, started);
            if let Some(full) = claimed {
                more_due = full;
                wake_pending = false;
                claimed_at_fan_out = false;
                // What held the fan-out back (a due claim, a backlog) may be
                // answered: it is tried again at the gathering pace, not the
                // poll's.
                fan_out_waits = false;
                last_claim = Instant::now();
                if answering {
                    last_answer = last_claim;
                }
            }
            // A claim that failed because DROP EXTENSION ran here ends the
            // worker (CREATE EXTENSION asks the launcher for a new one).
            if worker.claim_backoff.is_some() && presence::extension_dropped(slot) {
                log!("webhook_emitter: the extension was dropped from this database");
                break;
            }
        }
        let started = Instant::now();
        if worker.callbacks_due || worker.last_callbacks.elapsed() >= poll {
            worker.callbacks_due = callbacks::turn(&worker.settings);
            worker.last_callbacks = Instant::now();
        }
        worker.upkeep.maybe_run(
            worker.settings.retention,
            &worker.in_hand,
            &mut worker.in_flight,
        );
        worker.profile.add(Phase::Other, started);
        timeout = if worker.outstanding > 0 {
            BUSY_TICK
        } else if worker.agent.is_none() {
            // No HTTP client (its settings are wrong: logged): nothing can
            // be claimed (nor a claim's backoff end), so neither a commit's
            // wake-up nor a claim is retried at once (that spun the loop);
            // callbacks, pruning and recording go on, and a reload
            // (SIGHUP) wakes it.
            if worker.callbacks_due || worker.upkeep.prune_behind {
                Duration::ZERO
            } else {
                let mut wait = poll;
                if let Some(since) = worker.unrecorded_since {
                    wait = wait.min(RECORD_DELAY.saturating_sub(since.elapsed()));
                }
                wait
            }
        } else if let Some(until) = worker.claim_backoff {
            until.saturating_duration_since(Instant::now())
        } else if more_due
            || worker.sequence_advanced
            || worker.upkeep.prune_behind
            || worker.callbacks_due
        {
            Duration::ZERO
        } else {
            // The next claim or fan-out (a commit's, or the poll's), or the
            // recording of what finished, whichever is due first.
            let mut wait = if wake_pending {
                gather.saturating_sub(last_answer.elapsed())
            } else if claimed_at_fan_out {
                DUE_CLAIM_EVERY.saturating_sub(last_claim.elapsed())
            } else {
                poll.saturating_sub(last_claim.elapsed())
            };
            let next_fan_out = if fan_out_pending && !fan_out_waits {
                gather.saturating_sub(last_gathered_fan_out.elapsed())
            } else {
                poll.saturating_sub(last_fan_out.elapsed())
            };
            wait = wait.min(next_fan_out);
            if let Some(since) = worker.unrecorded_since {
                wait = wait.min(RECORD_DELAY.saturating_sub(since.elapsed()));
            }
            wait
        };
    }
    // SIGTERM or postmaster death: keep what already finished; attempts
    // still in flight are retried after restart (same webhook-id). The
    // threads start nothing more meanwhile.
    worker.pool.close();
    worker.record_finished(true);
    log!("webhook_emitter: {} exiting", BackgroundWorker::get_name());
    // The launcher starts the worker again (a DBA's pg_terminate_backend
    // restarts it rather than stopping delivery) unless the database or
    // the extension is gone or the server is shutting down.
}
