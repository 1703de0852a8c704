//! Soak: a steady event rate for minutes with a short retention. The log
//! (`events`, `deliveries`, `attempts`) must stay flat in rows and bytes
//! after the first minutes, and the drain must keep up the whole time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use webhook_emitter_e2e::{Client, Cluster, FastReceiver};

/// One sample of the log's size.
struct Sample {
    rows: [i64; 3],
    bytes: [i64; 3],
    backlog: i64,
}

fn sample(c: &mut Client) -> Sample {
    let r = c
        .query_one(
            "SELECT (SELECT count(*) FROM webhook.events), (SELECT count(*) FROM webhook.deliveries),
                    (SELECT count(*) FROM webhook.attempts),
                    (SELECT sum(pg_total_relation_size(relid))::int8 FROM pg_partition_tree('webhook.events')),
                    (SELECT sum(pg_total_relation_size(relid))::int8 FROM pg_partition_tree('webhook.deliveries')),
                    (SELECT sum(pg_total_relation_size(relid))::int8 FROM pg_partition_tree('webhook.attempts')),
                    (SELECT count(*) FROM webhook.deliveries WHERE status IN ('pending', 'failed', 'delivering'))",
            &[],
        )
        .expect("sample the log");
    Sample {
        rows: [r.get(0), r.get(1), r.get(2)],
        bytes: [r.get(3), r.get(4), r.get(5)],
        backlog: r.get(6),
    }
}

fn mb(bytes: i64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Offer `rate` events/s (inserts into lms.groups, 10 statements a second)
/// for `secs`, with `webhook.retention = '1min'`; print the log per minute.
pub fn soak(conf: &str, secs: u64, rate: u64) {
    let cluster = Cluster::start(&format!("{conf}\nwebhook.retention = '1min'"));
    let receiver = FastReceiver::start();
    let mut c = cluster.client();
    c.execute(
        "SELECT webhook.create_webhook('soak', $1, '{group.created}')",
        &[&receiver.url("/soak")],
    )
    .expect("create the webhook");
    let stop = Arc::new(AtomicBool::new(false));
    let mut writer = cluster.client();
    let per_tick = (rate / 10).max(1) as i64;
    let stop_writer = Arc::clone(&stop);
    let offered = std::thread::spawn(move || {
        let start = Instant::now();
        let mut ticks = 0u64;
        while !stop_writer.load(Ordering::Relaxed) {
            let due = start + Duration::from_millis(ticks * 100);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            writer
                .execute(
                    "INSERT INTO lms.groups (name, description)
                     SELECT 'soak ' || $2::bigint || '.' || i, 'A group that exists to keep the queue busy.'
                       FROM generate_series(1, $1::bigint) i",
                    &[&per_tick, &(ticks as i64)],
                )
                .expect("insert");
            ticks += 1;
        }
        ticks * per_tick as u64
    });

    println!(
        "\n## Soak: {rate} events/s offered for {} min, webhook.retention = '1min'\n",
        secs / 60
    );
    println!("| minute | events rows | events MB | deliveries rows | deliveries MB | attempts rows | attempts MB | backlog | received/s this minute |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut rates = Vec::new();
    let mut received = 0;
    for minute in 1..=secs.div_ceil(60) {
        let due = start + Duration::from_secs(minute * 60);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let s = sample(&mut c);
        let now = receiver.count();
        let per_s = (now - received) as f64 / 60.0;
        received = now;
        println!(
            "| {minute} | {} | {:.1} | {} | {:.1} | {} | {:.1} | {} | {per_s:.0} |",
            s.rows[0],
            mb(s.bytes[0]),
            s.rows[1],
            mb(s.bytes[1]),
            s.rows[2],
            mb(s.bytes[2]),
            s.backlog
        );
        samples.push(s);
        rates.push(per_s);
    }
    stop.store(true, Ordering::Relaxed);
    let offered = offered.join().unwrap_or(0);
    receiver.wait_for(offered as usize, Duration::from_secs(120));

    // Flat: from minute 3 on, no table grows by more than 20% in rows or
    // bytes over its minute-3 size; the drain keeps up in every minute.
    let base = samples.len().min(3) - 1;
    let growth = |f: &dyn Fn(&Sample) -> i64| {
        samples[base..]
            .iter()
            .map(|s| f(s) as f64 / f(&samples[base]).max(1) as f64)
            .fold(0.0, f64::max)
    };
    let row_growth = (0..3).map(|i| growth(&|s| s.rows[i])).fold(0.0, f64::max);
    let byte_growth = (0..3).map(|i| growth(&|s| s.bytes[i])).fold(0.0, f64::max);
    let slowest = rates.iter().copied().fold(f64::MAX, f64::min);
    let flat = row_growth <= 1.2 && byte_growth <= 1.2;
    let kept_up = slowest >= rate as f64 * 0.95;
    println!(
        "\nFrom minute {} on, the largest size relative to that minute: rows x{row_growth:.2}, bytes x{byte_growth:.2} ({}); slowest minute {slowest:.0}/s of {rate}/s offered ({}); {offered} events, {} received.",
        base + 1,
        if flat { "flat" } else { "growing" },
        if kept_up { "kept up" } else { "fell behind" },
        receiver.count()
    );
}
