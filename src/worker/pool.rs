//! The delivery threads. They only run HTTP (`http::client`) and rendering: no
//! Postgres call ever happens off the worker's main thread.
//!
//! The pool owns the admission (`admission`: what each endpoint may have in
//! flight). A thread that finishes a request starts the jobs its endpoint
//! parked itself, under the admission's lock: the next request of a busy
//! endpoint does not wait for the main thread, which spends its time in
//! Postgres (a claim, a record or a fan-out takes milliseconds, in which
//! a fast receiver answers every request in flight).

use super::admission::{Admission, Admitted};
use crate::http::job::{Job, Outcome};
use crate::http::request;
use crate::http::threads::{spawn_quiet, yield_cpu};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// Two lanes of threads, each with its own queue: first attempts, and
/// retries plus endpoints known to be slow (see `admission`). Retries
/// mostly go to endpoints that were failing, often slowly (timeouts); in
/// their own lane they cannot hold every thread while fresh deliveries to
/// healthy endpoints wait.
pub struct Pool {
    lanes: Arc<Lanes>,
    admission: Arc<Mutex<Admission>>,
    results: Receiver<Outcome>,
    /// A result `wait` took off the channel, returned by the next `drain`.
    waited: Option<Outcome>,
    threads: Vec<JoinHandle<()>>,
}

/// Threads for (first attempts, retries) out of `size`: a quarter for
/// retries, at least one each (so `size` 1 runs two threads).
fn lane_sizes(size: usize) -> (usize, usize) {
    let retries = (size / 4).max(1);
    (size.saturating_sub(retries).max(1), retries)
}

/// The two lanes' queues.
struct Lanes {
    fresh: Sender<Job>,
    retries: Sender<Job>,
}

impl Lanes {
    /// Queue a job on its lane: first attempts to endpoints not known to
    /// be slow are fresh; retries and slow endpoints share the other lane.
    fn submit(&self, admitted: Admitted) {
        let lane = if admitted.slow_lane || admitted.job.attempt.attempt > 1 {
            &self.retries
        } else {
            &self.fresh
        };
        // A send error means every thread of the lane died; the lease
        // brings the delivery back.
        let _ = lane.send(admitted.job);
    }
}

/// The admission, whoever panicked while holding it (its counts are
/// updated before anything that could panic).
fn lock(admission: &Mutex<Admission>) -> MutexGuard<'_, Admission> {
    admission
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What each thread shares.
#[derive(Clone)]
struct Shared {
    lanes: Arc<Lanes>,
    admission: Arc<Mutex<Admission>>,
    results: Sender<Outcome>,
    excerpt_bytes: usize,
    /// The threads' niceness (`webhook.http_nice`).
    nice: i32,
}

/// Start one lane of `threads` threads reading `jobs`.
fn start_lane(
    name: &str,
    threads: usize,
    jobs: Receiver<Job>,
    shared: &Shared,
    handles: &mut Vec<JoinHandle<()>>,
) {
    let jobs = Arc::new(Mutex::new(jobs));
    for i in 0..threads {
        let jobs = Arc::clone(&jobs);
        let shared = shared.clone();
        // Signals must reach only the main thread (see `threads`).
        let spawned = spawn_quiet(format!("{name}-{i}"), move || {
            // The main thread is the pipeline's one serial stage: it takes
            // the CPU first (`webhook.http_nice`).
            yield_cpu(shared.nice);
            worker_thread(jobs, shared)
        });
        if let Ok(handle) = spawned {
            handles.push(handle);
        }
    }
}

impl Pool {
    pub fn new(size: usize, excerpt_bytes: usize, nice: i32, admission: Admission) -> Pool {
        let (result_tx, result_rx) = channel::<Outcome>();
        let (fresh_tx, fresh_rx) = channel::<Job>();
        let (retries_tx, retries_rx) = channel::<Job>();
        let shared = Shared {
            lanes: Arc::new(Lanes {
                fresh: fresh_tx,
                retries: retries_tx,
            }),
            admission: Arc::new(Mutex::new(admission)),
            results: result_tx,
            excerpt_bytes,
            nice,
        };
        let (fresh_threads, retry_threads) = lane_sizes(size);
        let mut threads = Vec::with_capacity(fresh_threads + retry_threads);
        start_lane(
            "webhook-http",
            fresh_threads,
            fresh_rx,
            &shared,
            &mut threads,
        );
        start_lane(
            "webhook-retry",
            retry_threads,
            retries_rx,
            &shared,
            &mut threads,
        );
        Pool {
            lanes: shared.lanes,
            admission: shared.admission,
            results: result_rx,
            waited: None,
            threads,
        }
    }

    /// The admission, for a look or a change (never held across Postgres
    /// work: the threads take it after every request).
    pub fn admission(&self) -> MutexGuard<'_, Admission> {
        lock(&self.admission)
    }

    /// Send a job now if its endpoint has room, else park it.
    pub fn dispatch(&self, job: Job) {
        let admitted = self.admission().admit(job);
        if let Some(admitted) = admitted {
            self.lanes.submit(admitted);
        }
    }

    /// Start parked jobs whose rate-limit token or pause came due, or that
    /// fit the worker's share again.
    pub fn release_due(&self) {
        let released = self.admission().release_due();
        for admitted in released {
            self.lanes.submit(admitted);
        }
    }

    /// Start no more jobs (the worker is exiting).
    pub fn close(&self) {
        self.admission().close();
    }

    /// Block until an attempt finishes or `timeout` passes. The main loop
    /// waits here while requests are in flight, so a finished request is
    /// recorded, and room for the next claim seen, at once, not a tick
    /// later.
    pub fn wait(&mut self, timeout: Duration) {
        if self.waited.is_none() {
            self.waited = self.results.recv_timeout(timeout).ok();
        }
    }

    /// Finished attempts, without blocking.
    pub fn drain(&mut self) -> Vec<Outcome> {
        let mut out: Vec<Outcome> = self.waited.take().into_iter().collect();
        loop {
            match self.results.try_recv() {
                Ok(o) => out.push(o),
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => return out,
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Do not join: a thread may be blocked on a slow receiver; the
        // process is exiting and unfinished attempts are retried later.
        self.threads.clear();
    }
}

fn worker_thread(jobs: Arc<Mutex<Receiver<Job>>>, shared: Shared) {
    let Shared {
        lanes,
        admission,
        results,
        excerpt_bytes,
        ..
    } = shared;
    loop {
        let job = match jobs.lock() {
            Ok(rx) => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
            Err(_) => return,
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| request::send(&job, excerpt_bytes)))
            .unwrap_or_else(|_| Outcome {
                delivery_id: job.attempt.delivery_id,
                webhook_id: job.endpoint.id,
                topic: job.attempt.topic.clone(),
                attempt: job.attempt.attempt,
                started_at: SystemTime::now(),
                duration_ms: 0.0,
                status_code: None,
                response_headers: None,
                response_excerpt: None,
                error: Some("internal error while sending (panic); will retry".into()),
                retry_after: None,
            });
        // The endpoint's parked jobs that now fit start at once; the main
        // thread learns of the outcome afterwards. (They fit the worker's
        // share as the main thread last set it, once per loop turn: a share
        // that shrinks because another database got busy is followed within
        // one turn, as requests already in flight above it always were.)
        // A panic here must not lose the outcome: the main thread counts on
        // each one to free its room.
        let released = catch_unwind(AssertUnwindSafe(|| lock(&admission).finished(&outcome)))
            .unwrap_or_default();
        for admitted in released {
            lanes.submit(admitted);
        }
        if results.send(outcome).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_get_a_quarter_and_each_lane_a_thread() {
        assert_eq!(lane_sizes(0), (1, 1));
        assert_eq!(lane_sizes(1), (1, 1));
        assert_eq!(lane_sizes(2), (1, 1));
        assert_eq!(lane_sizes(7), (6, 1));
        assert_eq!(lane_sizes(8), (6, 2));
        assert_eq!(lane_sizes(64), (48, 16));
        assert_eq!(lane_sizes(1024), (768, 256));
    }
}
