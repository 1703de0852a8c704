//! The delivery threads. They only run HTTP (ureq) and rendering: no
//! Postgres call ever happens off the worker's main thread.

use crate::http::job::{Job, Outcome};
use crate::http::request;
use crate::http::threads::spawn_quiet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// Two lanes of threads, each with its own queue: first attempts, and
/// retries plus endpoints known to be slow (see `admission`). Retries
/// mostly go to endpoints that were failing, often slowly (timeouts); in
/// their own lane they cannot hold every thread while fresh deliveries to
/// healthy endpoints wait.
pub struct Pool {
    fresh: Option<Sender<Job>>,
    retries: Option<Sender<Job>>,
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

/// Start one lane of `threads` threads; returns its queue.
fn start_lane(
    name: &str,
    threads: usize,
    results: &Sender<Outcome>,
    excerpt_bytes: usize,
    handles: &mut Vec<JoinHandle<()>>,
) -> Sender<Job> {
    let (job_tx, job_rx) = channel::<Job>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    for i in 0..threads {
        let jobs = Arc::clone(&job_rx);
        let results = results.clone();
        // Signals must reach only the main thread (see `threads`).
        let spawned = spawn_quiet(format!("{name}-{i}"), move || {
            worker_thread(jobs, results, excerpt_bytes)
        });
        if let Ok(handle) = spawned {
            handles.push(handle);
        }
    }
    job_tx
}

impl Pool {
    pub fn new(size: usize, excerpt_bytes: usize) -> Pool {
        let (result_tx, result_rx) = channel::<Outcome>();
        let (fresh_threads, retry_threads) = lane_sizes(size);
        let mut threads = Vec::with_capacity(fresh_threads + retry_threads);
        let fresh = start_lane(
            "webhook-http",
            fresh_threads,
            &result_tx,
            excerpt_bytes,
            &mut threads,
        );
        let retries = start_lane(
            "webhook-retry",
            retry_threads,
            &result_tx,
            excerpt_bytes,
            &mut threads,
        );
        Pool {
            fresh: Some(fresh),
            retries: Some(retries),
            results: result_rx,
            waited: None,
            threads,
        }
    }

    /// Queue a job on its lane: first attempts to endpoints not known to
    /// be slow are fresh; retries and slow endpoints share the other lane.
    pub fn submit(&self, job: Job, slow_endpoint: bool) {
        let lane = if slow_endpoint || job.attempt.attempt > 1 {
            &self.retries
        } else {
            &self.fresh
        };
        if let Some(tx) = lane {
            // Threads exit only when the sender is dropped; a send error means
            // every thread of the lane died, and the lease brings the delivery back.
            let _ = tx.send(job);
        }
    }

    /// Block until an attempt finishes or `timeout` passes. The main loop
    /// waits here while requests are in flight, so a finished request is
    /// followed at once by the next (its endpoint's parked jobs are
    /// released on the main thread), not a tick later.
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
        self.fresh.take();
        self.retries.take();
        // Do not join: a thread may be blocked on a slow receiver; the
        // process is exiting and unfinished attempts are retried later.
        self.threads.clear();
    }
}

fn worker_thread(jobs: Arc<Mutex<Receiver<Job>>>, results: Sender<Outcome>, excerpt_bytes: usize) {
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
                attempt: job.attempt.attempt,
                started_at: SystemTime::now(),
                duration_ms: 0.0,
                status_code: None,
                response_headers: None,
                response_excerpt: None,
                error: Some("internal error while sending (panic); will retry".into()),
                retry_after: None,
            });
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
