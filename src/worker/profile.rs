//! Where the worker's main loop spends its time: waiting (on the latch or
//! for HTTP results), recording outcomes, claiming, and the rest. Logged at
//! DEBUG1 every `REPORT_EVERY` while there is work, so a DBA (or the drain
//! benchmark) can see which phase limits delivery without a profiler.

use pgrx::prelude::*;
use std::time::{Duration, Instant};

const REPORT_EVERY: Duration = Duration::from_secs(10);

#[derive(Clone, Copy)]
pub enum Phase {
    Waiting,
    Recording,
    Claiming,
    Other,
}

pub struct LoopProfile {
    spent: [Duration; 4],
    recorded: usize,
    claimed: usize,
    since: Instant,
}

impl LoopProfile {
    pub fn new() -> LoopProfile {
        LoopProfile {
            spent: [Duration::ZERO; 4],
            recorded: 0,
            claimed: 0,
            since: Instant::now(),
        }
    }

    /// Charge the time since `started` to `phase`.
    pub fn add(&mut self, phase: Phase, started: Instant) {
        self.spent[phase as usize] += started.elapsed();
    }

    pub fn count(&mut self, recorded: usize, claimed: usize) {
        self.recorded += recorded;
        self.claimed += claimed;
    }

    /// Log and restart the profile once per `REPORT_EVERY`, when it saw work.
    pub fn maybe_report(&mut self) {
        let wall = self.since.elapsed();
        if wall < REPORT_EVERY {
            return;
        }
        if self.recorded + self.claimed > 0 {
            let pct = |d: Duration| 100.0 * d.as_secs_f64() / wall.as_secs_f64();
            debug1!(
                "webhook_emitter: loop profile over {:.1} s: waiting {:.0}%, recording {:.0}%, claiming {:.0}%, other {:.0}%; {} claimed, {} recorded ({:.0}/s)",
                wall.as_secs_f64(),
                pct(self.spent[Phase::Waiting as usize]),
                pct(self.spent[Phase::Recording as usize]),
                pct(self.spent[Phase::Claiming as usize]),
                pct(self.spent[Phase::Other as usize]),
                self.claimed,
                self.recorded,
                self.recorded as f64 / wall.as_secs_f64()
            );
        }
        *self = LoopProfile::new();
    }
}
