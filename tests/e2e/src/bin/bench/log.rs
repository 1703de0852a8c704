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
        "INSERT INTO webhook.events (id, topic, body, tenant_id, created_at)
         SELECT lpad(i::text, 26, '0'), 'user.created', '{{\"id\": 1, \"payload\": {{\"user_id\": 1}}}}', 'default',
                now() - (i % 604800) * interval '1 second'
           FROM generate_series(1, {half}) i;
         INSERT INTO webhook.deliveries (event_id, webhook_id, status, attempts, last_attempt_at,
                                         last_status_code, last_error, delivered_at, created_at)
         SELECT lpad(e::text, 26, '0'), w.id,
                CASE WHEN e % 20 = 0 THEN 'dead' WHEN e % 20 = 1 THEN 'failed' ELSE 'delivered' END, 1,
                now() - (e % 604800) * interval '1 second' + interval '0.2 second',
                CASE WHEN e % 20 IN (0, 1) THEN 503 ELSE 200 END,
                CASE WHEN e % 20 IN (0, 1) THEN 'HTTP 503' END,
                CASE WHEN e % 20 > 1 THEN now() - (e % 604800) * interval '1 second' + interval '0.2 second' END,
                now() - (e % 604800) * interval '1 second'
           FROM generate_series(1, {half}) e
           JOIN LATERAL (SELECT id FROM webhook.webhooks ORDER BY id OFFSET (e % 10) * 2 LIMIT 2) w ON true;
         INSERT INTO webhook.attempts (delivery_id, attempt, started_at, duration_ms, status_code, error, webhook_id)
         SELECT d.id, 1, d.last_attempt_at - interval '0.05 second', 20 + d.id % 50, d.last_status_code, d.last_error,
                d.webhook_id
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
