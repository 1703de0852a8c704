//! Spawning helper threads (HTTP, DNS, Send Test). Postgres' signal
//! handlers set the latch and interrupt flags through FFI and must only ever
//! run on the process's main thread, so these threads start with every
//! signal blocked. A thread inherits the mask in force when it is spawned.

use std::io;
use std::thread::JoinHandle;

/// Spawn `f` on a named thread that never receives signals.
pub fn spawn_quiet<F, T>(name: String, f: F) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let previous = block_all_signals();
    let spawned = std::thread::Builder::new().name(name).spawn(f);
    restore_signals(&previous);
    spawned
}

/// Lower the calling thread's priority to `nice` (0-19), for good: an
/// unprivileged process may raise its niceness, never lower it. A failure
/// leaves the thread as it was.
#[cfg(target_os = "linux")]
pub fn yield_cpu(nice: i32) {
    if nice <= 0 {
        return;
    }
    // SAFETY: setpriority on the calling thread's own id (on Linux a thread
    // id names that one thread for PRIO_PROCESS).
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice.min(19));
    }
}

/// Elsewhere a thread's priority is its process's.
#[cfg(not(target_os = "linux"))]
pub fn yield_cpu(_nice: i32) {}

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
