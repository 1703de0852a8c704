//! The delivery threads. They only run HTTP (ureq) and rendering: no
//! Postgres call ever happens off the worker's main thread.

use super::http::{self, Job, Outcome};
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
        // Signals must reach only the main thread: Postgres' handlers set
        // the latch through FFI, which must never run on these threads.
        // Threads inherit the mask in force when they are spawned.
        let previous_mask = block_all_signals();
        let threads = (0..size.max(1))
            .filter_map(|i| {
                let jobs = Arc::clone(&job_rx);
                let results = result_tx.clone();
                std::thread::Builder::new()
                    .name(format!("webhook-http-{i}"))
                    .spawn(move || worker_thread(jobs, results, excerpt_bytes))
                    .ok()
            })
            .collect();
        restore_signals(&previous_mask);
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

fn block_all_signals() -> libc::sigset_t {
    // SAFETY: plain libc calls on local, initialised sigset_t values.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut previous);
        previous
    }
}

fn restore_signals(previous: &libc::sigset_t) {
    // SAFETY: restores a mask obtained from pthread_sigmask.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, previous, std::ptr::null_mut());
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
