//! The retry schedule: delays before each attempt, parsed from
//! `webhook.retry_schedule` ("0s,5s,5min,30min,2h,..."), with jitter.

use crate::error::{Result, WebhookError};
use rand::Rng;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    /// `delays[i]` is the wait before attempt `i + 1`; its length is the
    /// number of attempts before a delivery is dead.
    delays: Vec<Duration>,
}

fn parse_delay(item: &str) -> Option<Duration> {
    let item = item.trim();
    let split = item
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(item.len());
    let (num, unit) = item.split_at(split);
    let n: u64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "" | "s" | "sec" => n,
        "ms" => return Some(Duration::from_millis(n)),
        "m" | "min" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

impl RetrySchedule {
    pub fn parse(s: &str) -> Result<Self> {
        let delays = s
            .split(',')
            .map(|item| {
                parse_delay(item).ok_or_else(|| {
                    WebhookError::invalid(
                        "webhook.retry_schedule",
                        format!("{item:?} is not a delay; use e.g. 0s,5s,5min,30min,2h"),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RetrySchedule { delays })
    }

    /// The wait before the next attempt after attempt `attempt` (1-based)
    /// failed, or None when it was the last. `retry_after` (from a 429/503)
    /// lengthens the wait, up to `max_retry_after`.
    pub fn after_failure(
        &self,
        attempt: i32,
        retry_after: Option<Duration>,
        max_retry_after: Duration,
    ) -> Option<Duration> {
        let base = *self.delays.get(usize::try_from(attempt).ok()?)?;
        // +-10% jitter spreads retries of many deliveries that failed together.
        let jittered = if base.is_zero() {
            base
        } else {
            base.mul_f64(rand::thread_rng().gen_range(0.9..1.1))
        };
        Some(match retry_after {
            Some(ra) => jittered.max(ra.min(max_retry_after)),
            None => jittered,
        })
    }
}

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule::parse("0s,5s,5min,30min,2h,5h,10h,14h,20h,24h").unwrap_or(RetrySchedule {
            delays: vec![Duration::ZERO],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_has_ten_attempts_then_dies() {
        let s = RetrySchedule::default();
        assert!(s
            .after_failure(9, None, Duration::from_secs(86_400))
            .is_some());
        let max = Duration::from_secs(86_400);
        let d1 = s.after_failure(1, None, max).unwrap();
        assert!(d1 >= Duration::from_millis(4500) && d1 <= Duration::from_millis(5500));
        assert!(s.after_failure(10, None, max).is_none());
        let ra = s
            .after_failure(1, Some(Duration::from_secs(120)), max)
            .unwrap();
        assert_eq!(ra, Duration::from_secs(120));
        let capped = s
            .after_failure(1, Some(Duration::from_secs(999_999)), max)
            .unwrap();
        assert_eq!(capped, max);
        assert!(RetrySchedule::parse("1s,x").is_err());
        let ms = RetrySchedule::parse("0s,200ms")
            .unwrap()
            .after_failure(1, None, max)
            .unwrap()
            .as_millis();
        assert!(
            (180..=220).contains(&ms),
            "200ms with 10% jitter gave {ms}ms"
        );
    }
}
