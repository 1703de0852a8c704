//! The delivery threads. They only run HTTP (ureq) and rendering: no
//! Postgres call ever happens off the worker's main thread.

use super::http::{self, Job, Outcome};
use super::threads::spawn_quiet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::SystemTime;

pub struct Pool {
    jobs: Option<Sender<Job>>,
    results: Receiver<Outcome>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    pub fn new(size: usize, excerpt_bytes: usize) -> Pool {
        let (job_tx, job_rx) = channel::<Job>();
        let (result_tx, result_rx) = channel::<Outcome>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        // Signals must reach only the main thread (see `threads`).
        let threads = (0..size.max(1))
            .filter_map(|i| {
                let jobs = Arc::clone(&job_rx);
                let results = result_tx.clone();
                spawn_quiet(format!("webhook-http-{i}"), move || {
                    worker_thread(jobs, results, excerpt_bytes)
                })
                .ok()
            })
            .collect();
        Pool {
            jobs: Some(job_tx),
            results: result_rx,
            threads,
        }
    }

    pub fn submit(&self, job: Job) {
        if let Some(tx) = &self.jobs {
            // Threads exit only when the sender is dropped; a send error means
            // every thread died, and the lease brings the delivery back.
            let _ = tx.send(job);
        }
    }

    /// Finished attempts, without blocking.
    pub fn drain(&self) -> Vec<Outcome> {
        let mut out = Vec::new();
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
        self.jobs.take();
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
        let outcome = catch_unwind(AssertUnwindSafe(|| http::send(&job, excerpt_bytes)))
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
