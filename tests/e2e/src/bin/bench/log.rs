//! The delivery log as a DBA asks it, at ten million deliveries (issue 29):
//! `webhook_health`, the failures of one webhook over a day and why, and
//! queued-to-delivered percentiles of one webhook per hour. A week of log
//! for 20 webhooks is written directly (no worker), vacuumed and analyzed
//! (as autovacuum leaves tables of that age), summed per hour, then each
//! query is timed three times (the median is printed).

use std::time::Instant;
use webhook_emitter_e2e::{Client, Cluster};

fn median_ms(c: &mut Client, sql: &str) -> (f64, usize) {
    let mut times = Vec::new();
    let mut rows = 0;
    for _ in 0..3 {
        let started = Instant::now();
        rows = c.query(sql, &[]).unwrap().len();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    (times[1], rows)
}

pub fn log_queries(conf: &str) {
    let n = crate::env_secs("BENCH_LOG_ROWS", 10_000_000) as i64;
    let cluster = Cluster::start(&format!(
        "{conf}\nwebhook.database = 'no such database'\nmax_wal_size = '16GB'\nmaintenance_work_mem = '512MB'\nsynchronous_commit = off"
    ));
    let mut c = cluster.client();
    let started = Instant::now();
    c.batch_execute(
        "SELECT webhook.create_webhook('bench ' || i, 'https://example.com/' || i, '{user.created}')
           FROM generate_series(1, 20) i",
    )
    .unwrap();
    // Two deliveries per event, one attempt per delivery; over the last
    // week; 95% delivered, 5% failed or dead with an error.
    c.batch_execute(&format!(
        "INSERT INTO webhook.events (id, topic, body, tenant_id, created_at, slot)
         SELECT lpad(i::text, 26, '0'), 'user.created', '{{\"id\": 1, \"payload\": {{\"user_id\": 1}}}}', 'default',
                now() - (i % 604800) * interval '1 second', 0
           FROM generate_series(1, {half}) i;
         INSERT INTO webhook.deliveries (event_id, webhook_id, status, attempts, last_attempt_at,
                                         last_status_code, last_error, delivered_at, created_at, slot)
         SELECT lpad(e::text, 26, '0'), w.id,
                CASE WHEN e % 20 = 0 THEN 'dead' WHEN e % 20 = 1 THEN 'failed' ELSE 'delivered' END, 1,
                now() - (e % 604800) * interval '1 second' + interval '0.2 second',
                CASE WHEN e % 20 IN (0, 1) THEN 503 ELSE 200 END,
                CASE WHEN e % 20 IN (0, 1) THEN 'HTTP 503' END,
                CASE WHEN e % 20 > 1 THEN now() - (e % 604800) * interval '1 second' + interval '0.2 second' END,
                now() - (e % 604800) * interval '1 second', 0
           FROM generate_series(1, {half}) e
           JOIN LATERAL (SELECT id FROM webhook.webhooks ORDER BY id OFFSET (e % 10) * 2 LIMIT 2) w ON true;
         INSERT INTO webhook.attempts (delivery_id, attempt, started_at, duration_ms, status_code, error, webhook_id, slot)
         SELECT d.id, 1, d.last_attempt_at - interval '0.05 second', 20 + d.id % 50, d.last_status_code, d.last_error,
                d.webhook_id, 0
           FROM webhook.deliveries d;",
        half = n / 2
    ))
    .unwrap();
    // Vacuumed, as autovacuum leaves tables of a week's age.
    c.batch_execute("VACUUM ANALYZE webhook.events, webhook.deliveries, webhook.attempts")
        .unwrap();
    let filled = started.elapsed().as_secs_f64();
    // The hourly summary the worker keeps as it records outcomes, made
    // from the log written above the way the upgrade from 0.2.0 makes it.
    let started = Instant::now();
    c.batch_execute("SELECT webhook.rebuild_delivery_stats(); ANALYZE webhook.delivery_stats")
        .unwrap();
    let summed = started.elapsed().as_secs_f64();
    let webhook: i64 = c
        .query_one("SELECT min(id) FROM webhook.webhooks", &[])
        .unwrap()
        .get(0);
    let queries = [
        ("`SELECT * FROM webhook.webhook_health`", "SELECT * FROM webhook.webhook_health".to_owned()),
        (
            "failures of one webhook over a day, and why (`attempts.webhook_id`)",
            format!(
                "SELECT a.delivery_id, a.started_at, a.status_code, a.error
                   FROM webhook.attempts a
                  WHERE a.webhook_id = {webhook} AND a.started_at > now() - interval '1 day'
                    AND (a.status_code IS NULL OR a.status_code NOT BETWEEN 200 AND 299)"
            ),
        ),
        (
            "the same with each event's topic (attempts, deliveries, events joined)",
            format!(
                "SELECT d.id, e.topic, a.started_at, a.status_code, a.error
                   FROM webhook.attempts a
                   JOIN webhook.deliveries d ON d.id = a.delivery_id
                   JOIN webhook.events e ON e.id = d.event_id
                  WHERE a.webhook_id = {webhook} AND a.started_at > now() - interval '1 day'
                    AND (a.status_code IS NULL OR a.status_code NOT BETWEEN 200 AND 299)"
            ),
        ),
        (
            "queued-to-delivered percentiles of one webhook per hour, last day (`webhook.delivery_latency`)",
            format!(
                "SELECT * FROM webhook.delivery_latency WHERE webhook_id = {webhook} AND hour > now() - interval '1 day'"
            ),
        ),
    ];
    println!(
        "\n## The delivery log at {n} deliveries (20 webhooks, a week, one attempt each; filled in {filled:.0} s, summed by `webhook.rebuild_delivery_stats()` in {summed:.0} s): median of 3\n"
    );
    println!("| query | rows | ms | target < 100 ms |");
    println!("|---|---:|---:|---|");
    for (name, sql) in &queries {
        let (ms, rows) = median_ms(&mut c, sql);
        println!(
            "| {name} | {rows} | {ms:.0} | {} |",
            if ms < 100.0 { "met" } else { "not met" }
        );
    }
}

/// Write `n` deliveries (one event and one attempt each, 1% failed and
/// awaiting a retry, the rest delivered) into log slot `slot`, dated two
/// days ago.
fn fill_slot(c: &mut Client, n: i64, slot: i16) {
    c.batch_execute(&format!(
        "INSERT INTO webhook.events (id, topic, body, tenant_id, created_at, slot)
         SELECT 'r' || lpad(i::text, 25, '0'), 'user.created', '{{\"id\": 1, \"payload\": {{\"user_id\": 1}}}}',
                'default', now() - interval '2 days', {slot}
           FROM generate_series(1, {n}) i;
         INSERT INTO webhook.deliveries (event_id, webhook_id, status, attempts, last_attempt_at, last_status_code,
                                         delivered_at, next_attempt_at, created_at, slot)
         SELECT 'r' || lpad(i::text, 25, '0'), (SELECT min(id) FROM webhook.webhooks),
                CASE WHEN i % 100 = 0 THEN 'failed' ELSE 'delivered' END, 1, now() - interval '2 days',
                CASE WHEN i % 100 = 0 THEN 503 ELSE 200 END,
                CASE WHEN i % 100 <> 0 THEN now() - interval '2 days' END,
                now() + interval '1 hour', now() - interval '2 days', {slot}
           FROM generate_series(1, {n}) i;
         INSERT INTO webhook.attempts (delivery_id, attempt, started_at, duration_ms, status_code, webhook_id, slot)
         SELECT d.id, 1, d.last_attempt_at, 20, d.last_status_code, d.webhook_id, {slot}
           FROM webhook.deliveries d WHERE d.slot = {slot};"
    ))
    .unwrap();
    c.batch_execute("VACUUM ANALYZE webhook.events, webhook.deliveries, webhook.attempts")
        .unwrap();
    c.batch_execute("CHECKPOINT").unwrap();
}

fn wal_lsn(c: &mut Client) -> i64 {
    c.query_one("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8", &[])
        .unwrap()
        .get(0)
}

/// Retention side by side: the same day-old log (`BENCH_RETENTION_ROWS`
/// deliveries, 1% awaiting a retry) removed by rotating its slot away
/// (0.3.0: one TRUNCATE, the unfinished rows moved) and by 0.2.0's pruning
/// (DELETE in batches of 5,000 deliveries, their attempts by cascade, then
/// their events), each on a cluster of its own: time and WAL written.
pub fn retention(conf: &str) {
    let n = crate::env_secs("BENCH_RETENTION_ROWS", 1_000_000) as i64;
    let conf = format!(
        "{conf}\nwebhook.database = 'no such database'\nmax_wal_size = '16GB'\nsynchronous_commit = off"
    );
    // Rotation: the log in slot 1, the oldest (slot 0 current since the
    // install, slot 2 opened a day ago).
    let rotated = {
        let cluster = Cluster::start(&conf);
        let mut c = cluster.client();
        c.batch_execute(
            "SELECT webhook.create_webhook('r', 'https://example.com/', '{user.created}')",
        )
        .unwrap();
        fill_slot(&mut c, n, 1);
        c.batch_execute(
            "UPDATE webhook.log_slots SET opened_at = now() - interval '3 days' WHERE slot = 1;
             UPDATE webhook.log_slots SET opened_at = now() - interval '1 day' WHERE slot = 2;
             UPDATE webhook.log_slots SET opened_at = now() - interval '2 days' WHERE slot = 0;
             UPDATE webhook.log_slots SET is_current = (slot = 0);",
        )
        .unwrap();
        let wal = wal_lsn(&mut c);
        // Two steps, as the worker takes them at two maintenances: the
        // unfinished rows moved out, then the slot emptied. Their own time
        // is summed (not the wait between them).
        let mut secs = 0.0;
        let mut kept = 0;
        loop {
            let started = Instant::now();
            let done: String = c
                .query_one("SELECT webhook.rotate_log(interval '1 day')", &[])
                .unwrap()
                .get(0);
            secs += started.elapsed().as_secs_f64();
            if let Some(n) = done.strip_prefix("moved ") {
                kept += n.parse::<i64>().unwrap_or(0);
            }
            if done == "emptied" {
                break;
            }
            assert!(
                done.starts_with("moved") || done.starts_with("waiting"),
                "{done}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let left: i64 = c
            .query_one("SELECT count(*) FROM webhook.deliveries", &[])
            .unwrap()
            .get(0);
        assert_eq!(left, n / 100, "the failed deliveries are kept");
        (secs, wal_lsn(&mut c) - wal, kept)
    };
    // 0.2.0's pruning, batch after batch until nothing finished is left.
    let pruned = {
        let cluster = Cluster::start(&conf);
        let mut c = cluster.client();
        c.batch_execute(
            "SELECT webhook.create_webhook('r', 'https://example.com/', '{user.created}')",
        )
        .unwrap();
        fill_slot(&mut c, n, 0);
        let wal = wal_lsn(&mut c);
        let started = Instant::now();
        loop {
            let deleted = c
                .execute(
                    "WITH old AS (
                         SELECT id FROM webhook.deliveries
                          WHERE status IN ('delivered', 'dead', 'held') AND created_at < now() - interval '1 day'
                          LIMIT 5000 FOR UPDATE SKIP LOCKED),
                     a AS (DELETE FROM webhook.attempts a WHERE a.delivery_id = ANY (ARRAY(SELECT id FROM old)))
                     DELETE FROM webhook.deliveries d WHERE d.id = ANY (ARRAY(SELECT id FROM old))",
                    &[],
                )
                .unwrap();
            let events = c
                .execute(
                    "DELETE FROM webhook.events e WHERE e.id = ANY (ARRAY(
                         SELECT e2.id FROM webhook.events e2
                          WHERE e2.created_at < now() - interval '1 day'
                            AND NOT EXISTS (SELECT FROM webhook.deliveries d WHERE d.event_id = e2.id OFFSET 0)
                          LIMIT 5000))",
                    &[],
                )
                .unwrap();
            if deleted == 0 && events == 0 {
                break;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        (secs, wal_lsn(&mut c) - wal)
    };
    println!(
        "\n## Retention: a day-old log of {n} deliveries (one event and one attempt each, 1% awaiting a retry) removed, each way on a cluster of its own\n"
    );
    println!("| how | seconds | WAL MB | rows kept | ratio of time to 0.2.0's pruning |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| 0.3.0: its slot rotated away (`webhook.rotate_log`, both steps: unfinished rows moved, one TRUNCATE) | {:.2} | {:.1} | {} | {:.3} |",
        rotated.0,
        rotated.1 as f64 / 1048576.0,
        rotated.2,
        rotated.0 / pruned.0
    );
    println!(
        "| 0.2.0's pruning (DELETE in batches of 5,000: deliveries, their attempts, their events) | {:.2} | {:.1} | {} | 1.000 |",
        pruned.0,
        pruned.1 as f64 / 1048576.0,
        n / 100 * 3
    );
}
