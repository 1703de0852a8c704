//! Histograms of milliseconds for the delivery log's hourly summary
//! (`webhook.delivery_stats`, written by the worker, `worker/record.rs`, and
//! `webhook.rebuild_delivery_stats`, read by `webhook_health` and
//! `delivery_latency`). One definition of the buckets, called from SQL.
//!
//! 128 buckets: bucket b holds values in [2^(b/4) - 1, 2^((b+1)/4) - 1) ms,
//! the last one everything from about 41 days up. Each bucket is 2^(1/4)
//! wider than the last, so a percentile read as a bucket's middle is within
//! 9.1% of (the exact one + 1 ms): 10% and 0.1 ms.

use crate::error::WebhookError;
use pgrx::prelude::*;

/// Buckets per histogram.
pub const BUCKETS: usize = 128;
/// Most bounds `histogram_le` takes (`webhook.latency_buckets()` has 14).
const MAX_LE_BOUNDS: usize = 1000;

/// The bucket of a value in ms (negative and NaN count as 0).
#[pg_extern(immutable, strict, parallel_safe)]
fn histogram_bucket(ms: f64) -> i32 {
    bucket(ms) as i32
}

fn bucket(ms: f64) -> usize {
    if ms.is_nan() || ms <= 0.0 {
        return 0;
    }
    let b = (4.0 * (1.0 + ms).log2()).floor();
    if b >= (BUCKETS - 1) as f64 {
        BUCKETS - 1
    } else {
        b as usize
    }
}

/// Counts per bucket of some values in ms (NULLs left out).
#[pg_extern(immutable, parallel_safe)]
fn histogram(values_ms: Option<Array<f64>>) -> Vec<i64> {
    let mut counts = vec![0i64; BUCKETS];
    for v in values_ms.iter().flat_map(|a| a.iter()).flatten() {
        counts[bucket(v)] += 1;
    }
    counts
}

/// Cumulative counts of values at or below each bound (a Prometheus
/// histogram's `le` buckets, `webhook.latency_buckets()`), NULLs left out:
/// one pass in the worker's record statement instead of a join of every
/// value with every bound.
/// At most `MAX_LE_BOUNDS` bounds (anyone may call it), and a cancel or
/// `statement_timeout` stops it.
#[pg_extern(immutable, parallel_safe)]
fn histogram_le(values_s: Option<Array<f64>>, bounds_s: Option<Array<f64>>) -> Vec<i64> {
    let n = bounds_s.as_ref().map_or(0, |a| a.len());
    if n > MAX_LE_BOUNDS {
        WebhookError::invalid("bounds_s", format!("{n} bounds; at most {MAX_LE_BOUNDS}")).raise()
    }
    let bounds: Vec<Option<f64>> = bounds_s.iter().flat_map(|a| a.iter()).collect();
    let mut counts = vec![0i64; bounds.len()];
    for (i, v) in values_s.iter().flat_map(|a| a.iter()).flatten().enumerate() {
        if i % 4096 == 0 {
            check_for_interrupts!();
        }
        for (count, bound) in counts.iter_mut().zip(&bounds) {
            if bound.is_some_and(|b| v <= b) {
                *count += 1;
            }
        }
    }
    counts
}

/// Two histograms added bucket by bucket (the longer one's length).
#[pg_extern(immutable, strict, parallel_safe)]
fn histogram_add(a: Array<i64>, b: Array<i64>) -> Vec<i64> {
    let mut sum: Vec<i64> = a.iter().map(|n| n.unwrap_or(0)).collect();
    for (i, n) in b.iter().enumerate() {
        let n = n.unwrap_or(0);
        match sum.get_mut(i) {
            Some(s) => *s = s.saturating_add(n),
            None => sum.push(n),
        }
    }
    sum
}

/// The q-quantile (0 to 1) of a histogram, in ms: the middle of the bucket
/// it falls in, never above the largest value seen (`max_ms`). NULL when
/// the histogram is empty.
#[pg_extern(immutable, parallel_safe)]
fn histogram_percentile(histogram: Option<Array<i64>>, q: f64, max_ms: Option<f64>) -> Option<f64> {
    if !(0.0..=1.0).contains(&q) {
        WebhookError::invalid("q", format!("must be between 0 and 1, not {q}")).raise()
    }
    let counts: Vec<i64> = histogram?.iter().map(|n| n.unwrap_or(0).max(0)).collect();
    let total: f64 = counts.iter().map(|&n| n as f64).sum();
    if total <= 0.0 {
        return None;
    }
    let target = q * total;
    let mut upto = 0.0;
    for (b, &n) in counts.iter().enumerate() {
        upto += n as f64;
        if n > 0 && upto >= target {
            let middle = 2f64.powf((b as f64 + 0.5) / 4.0) - 1.0;
            return Some(max_ms.map_or(middle, |m| middle.min(m)));
        }
    }
    None
}
