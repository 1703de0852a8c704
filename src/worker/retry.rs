//! The retry schedule: delays before each attempt, parsed from
//! `webhook.retry_schedule` ("0s,5s,5min,30min,2h,..."), with jitter.

use super::verdict::Verdict;
use crate::error::{Result, WebhookError};
use crate::http::job::Outcome;
use crate::status::DeliveryStatus;
use rand::Rng;
use std::time::Duration;

/// Longest delay a schedule item may ask for, and the longest wait after
/// any failure whatever Retry-After says: the wait becomes a SQL interval
/// (make_interval), which overflows long before Duration does.
pub const MAX_DELAY: Duration = Duration::from_secs(30 * 86_400);
/// Most delays (attempts) a schedule may list.
pub const MAX_ATTEMPTS: usize = 100;

const FIELD: &str = "webhook.retry_schedule";
const ALLOWED: &str = "each delay is a whole number with unit ms, s, min, h or d, \
     from 0s to 30d, at most 100 delays, e.g. 0s,5s,5min,30min,2h";

#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    /// `delays[i]` is the wait before attempt `i + 1`; its length is the
    /// number of attempts before a delivery is dead. Each is <= MAX_DELAY.
    delays: Vec<Duration>,
}

/// One item, or None when it is not a delay or longer than [`MAX_DELAY`].
fn parse_delay(item: &str) -> Option<Duration> {
    let item = item.trim();
    let split = item
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(item.len());
    let (num, unit) = item.split_at(split);
    let n: u64 = num.parse().ok()?;
    let delay = match unit.trim() {
        "" | "s" | "sec" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" | "min" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        "d" => Duration::from_secs(n.checked_mul(86_400)?),
        _ => return None,
    };
    (delay <= MAX_DELAY).then_some(delay)
}

/// `base` scaled by `factor`, never panicking and never above [`MAX_DELAY`].
fn scaled(base: Duration, factor: f64) -> Duration {
    Duration::try_from_secs_f64(base.as_secs_f64() * factor)
        .unwrap_or(base)
        .min(MAX_DELAY)
}

impl RetrySchedule {
    pub fn parse(s: &str) -> Result<Self> {
        let items: Vec<&str> = s.split(',').collect();
        if items.len() > MAX_ATTEMPTS {
            return Err(WebhookError::invalid(
                FIELD,
                format!("lists {} delays; {ALLOWED}", items.len()),
            ));
        }
        let delays = items
            .into_iter()
            .map(|item| {
                parse_delay(item).ok_or_else(|| {
                    WebhookError::invalid(
                        FIELD,
                        format!("{:?} is not an allowed delay; {ALLOWED}", item.trim()),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RetrySchedule { delays })
    }

    /// The wait before the next attempt after attempt `attempt` (1-based)
    /// failed, or None when it was the last. `retry_after` (from a 429/503)
    /// lengthens the wait, up to `max_retry_after`; never above [`MAX_DELAY`].
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
            scaled(base, rand::thread_rng().gen_range(0.9..1.1))
        };
        let wait = match retry_after {
            Some(ra) => jittered.max(ra.min(max_retry_after)),
            None => jittered,
        };
        Some(wait.min(MAX_DELAY))
    }

    /// What a finished attempt means for its delivery: delivered, dead (410,
    /// or no retry left), or failed and due again after the schedule's delay.
    pub fn verdict(&self, outcome: Outcome, max_retry_after: Duration) -> Verdict {
        if outcome.delivered() {
            return Verdict {
                outcome,
                status: DeliveryStatus::Delivered,
                retry_in: None,
            };
        }
        if outcome.gone() {
            return Verdict {
                outcome,
                status: DeliveryStatus::Dead,
                retry_in: None,
            };
        }
        match self.after_failure(outcome.attempt, outcome.retry_after, max_retry_after) {
            Some(d) => Verdict {
                outcome,
                status: DeliveryStatus::Failed,
                retry_in: Some(d),
            },
            None => Verdict {
                outcome,
                status: DeliveryStatus::Dead,
                retry_in: None,
            },
        }
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

    #[test]
    fn out_of_range_schedules_are_refused_with_the_setting_name() {
        let hundred = vec!["1s"; MAX_ATTEMPTS].join(",");
        assert!(RetrySchedule::parse(&hundred).is_ok());
        assert!(RetrySchedule::parse("0s, 30d, 720h, 43200min").is_ok());
        let too_many = vec!["1s"; MAX_ATTEMPTS + 1].join(",");
        for bad in [
            "999999999999h",
            "31d",
            "2592001s",
            "18446744073709551615d",
            "99999999999999999999999s",
            "-1s",
            "1.5s",
            "",
            "1s,,2s",
            too_many.as_str(),
        ] {
            let err = RetrySchedule::parse(bad).unwrap_err().to_string();
            assert!(
                err.starts_with("webhook.retry_schedule: ") && err.contains("30d"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn waits_never_exceed_the_cap() {
        let s = RetrySchedule::parse("0s,30d,30d").unwrap();
        for _ in 0..100 {
            let d = s.after_failure(1, None, Duration::MAX).unwrap();
            assert!(d <= MAX_DELAY && d >= MAX_DELAY.mul_f64(0.89), "{d:?}");
        }
        let huge = Some(Duration::from_secs(u64::MAX));
        assert_eq!(s.after_failure(2, huge, Duration::MAX), Some(MAX_DELAY));
        assert_eq!(scaled(Duration::MAX, 1.1), MAX_DELAY);
        assert_eq!(
            scaled(Duration::from_secs(10), f64::NAN),
            Duration::from_secs(10)
        );
        assert!(s.after_failure(i32::MAX, None, Duration::MAX).is_none());
        assert!(s.after_failure(-1, None, Duration::MAX).is_none());
    }
}
