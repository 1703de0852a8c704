//! The delivery log's views as PUBLIC reads them: how late each webhook's
//! deliveries are (queued to delivered, per webhook and hour).

use postgres::error::SqlState;
use std::time::Duration;
use webhook_emitter_e2e::{wait_delivered, wait_for, Cluster, Receiver, Reply};

#[test]
fn delivery_latency_says_how_late_each_webhook_is_per_hour() {
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    let mut su = cluster.client();
    su.batch_execute("CREATE ROLE nobody LOGIN NOSUPERUSER")
        .unwrap();
    su.execute(
        "SELECT webhook.create_webhook('crm', $1, '{user.created}')",
        &[&receiver.url("/crm")],
    )
    .unwrap();
    su.batch_execute(
        "INSERT INTO lms.users (first_name, email) SELECT 'U', 'u' || i || '@x.example' FROM generate_series(1, 5) i",
    )
    .unwrap();
    receiver.wait_for(5, Duration::from_secs(10));
    wait_delivered(&mut su, 5, Duration::from_secs(10));
    // A Send Test is not a delivery of an event: not counted.
    su.batch_execute("SELECT * FROM webhook.send_test(1)")
        .unwrap();
    let mut nobody = cluster.client_as("nobody");
    let rows = nobody
        .query(
            "SELECT name, delivered, p50_ms::float8, p95_ms::float8, p99_ms::float8, max_ms::float8,
                    hour = date_trunc('hour', now(), 'UTC')
               FROM webhook.delivery_latency",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r.get::<_, String>(0), "crm");
    assert_eq!(r.get::<_, i64>(1), 5);
    let (p50, p95, p99, max): (f64, f64, f64, f64) = (r.get(2), r.get(3), r.get(4), r.get(5));
    assert!(
        0.0 <= p50 && p50 <= p95 && p95 <= p99 && p99 <= max,
        "{p50} {p95} {p99} {max}"
    );
    assert!(max < 10_000.0, "{max} ms");
    assert!(r.get::<_, bool>(6));
    // Read from the hourly summary, within 10% of the log's own figures
    // (half a millisecond for the smallest), max exact.
    let exact = nobody
        .query_one(
            "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY ms), max(ms)
               FROM (SELECT 1000 * extract(epoch FROM delivered_at - created_at)::float8 AS ms
                       FROM webhook.deliveries WHERE status = 'delivered' AND NOT is_test) d",
            &[],
        )
        .unwrap();
    let (exact_p50, exact_max): (f64, f64) = (exact.get(0), exact.get(1));
    assert!(
        (p50 - exact_p50).abs() <= (0.1 * exact_p50).max(0.5),
        "p50 {p50} against {exact_p50}"
    );
    assert!(
        (max - exact_max).abs() <= 0.05,
        "max {max} against {exact_max}"
    );
    // webhook_health: the same summary's attempts, without the Send Test.
    let h = nobody
        .query_one(
            "SELECT attempts_24h, successes_24h, success_rate_pct::float8, last_success_at IS NOT NULL,
                    latency_p50_ms <= latency_p95_ms AND latency_p95_ms <= latency_p99_ms, backlog, held
               FROM webhook.webhook_health WHERE name = 'crm'",
            &[],
        )
        .unwrap();
    assert_eq!(h.get::<_, i64>(0), 5);
    assert_eq!(h.get::<_, i64>(1), 5);
    assert_eq!(h.get::<_, f64>(2), 100.0);
    assert!(h.get::<_, bool>(3));
    assert!(h.get::<_, bool>(4));
    assert_eq!((h.get::<_, i64>(5), h.get::<_, i64>(6)), (0, 0));
    // The summary is PUBLIC's to read; only the worker writes it.
    let n: i64 = nobody
        .query_one(
            "SELECT sum(attempts)::bigint FROM webhook.delivery_stats",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 5);
    for write in [
        "DELETE FROM webhook.delivery_stats",
        "UPDATE webhook.delivery_stats SET attempts = 0",
        "SELECT webhook.rebuild_delivery_stats()",
        // The fan-out and its progress are the worker's.
        "SELECT webhook.fan_out()",
        "SELECT * FROM webhook.fanout",
        "UPDATE webhook.fanout SET updated_at = now()",
    ] {
        let e = nobody.batch_execute(write).unwrap_err();
        assert_eq!(e.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{write}");
    }
}

#[test]
fn a_webhooks_failures_are_found_by_its_id() {
    let cluster = Cluster::start("webhook.retry_schedule = '0s,0s'");
    let receiver = Receiver::start();
    receiver.respond_with(|rec| {
        if rec.path == "/down" {
            Reply::status(503)
        } else {
            Reply::status(200)
        }
    });
    let mut su = cluster.client();
    su.batch_execute("CREATE ROLE nobody LOGIN NOSUPERUSER")
        .unwrap();
    let down: i64 = su
        .query_one(
            "SELECT webhook.create_webhook('down', $1, '{user.created}')",
            &[&receiver.url("/down")],
        )
        .unwrap()
        .get(0);
    su.execute(
        "SELECT webhook.create_webhook('up', $1, '{user.created}')",
        &[&receiver.url("/up")],
    )
    .unwrap();
    su.batch_execute("INSERT INTO lms.users (first_name, email) VALUES ('U', 'u@x.example')")
        .unwrap();
    receiver.wait_for(3, Duration::from_secs(10));
    su.batch_execute(&format!("SELECT * FROM webhook.send_test({down})"))
        .unwrap();
    let mut nobody = cluster.client_as("nobody");
    let failures: Vec<(i64, Option<i32>)> = wait_for(
        Duration::from_secs(10),
        "three failed attempts of 'down'",
        || {
            let rows: Vec<(i64, Option<i32>)> = nobody
                .query(
                    "SELECT webhook_id, status_code FROM webhook.attempts
                      WHERE webhook_id = $1 AND started_at > now() - interval '1 day'
                        AND (status_code IS NULL OR status_code NOT BETWEEN 200 AND 299)",
                    &[&down],
                )
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            (rows.len() == 3).then_some(rows)
        },
    );
    // Two attempts of the delivery, one Send Test; every one 503.
    assert!(
        failures.iter().all(|f| f == &(down, Some(503))),
        "{failures:?}"
    );
    let unattributed: i64 = su
        .query_one(
            "SELECT count(*) FROM webhook.attempts WHERE webhook_id IS NULL",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(unattributed, 0);
    // Its health, as a NOSUPERUSER webhook_admin member reads it: the two
    // attempts of the delivery (not the Send Test), none answered 2xx; the
    // delivery is dead, so nothing is left in the backlog.
    su.batch_execute("CREATE ROLE ops LOGIN NOSUPERUSER IN ROLE webhook_admin")
        .unwrap();
    let mut ops = cluster.client_as("ops");
    let (attempts, successes, rate, failed_last, backlog, dead): (i64, i64, f64, bool, i64, i64) =
        wait_for(
            Duration::from_secs(10),
            "the dead delivery in the summary",
            || {
                let r = ops
                .query_one(
                    "SELECT h.attempts_24h, h.successes_24h, h.success_rate_pct::float8,
                            h.last_failure_at IS NOT NULL AND h.last_success_at IS NULL, h.backlog,
                            (SELECT sum(dead)::bigint FROM webhook.delivery_stats s WHERE s.webhook_id = h.webhook_id)
                       FROM webhook.webhook_health h WHERE h.webhook_id = $1",
                    &[&down],
                )
                .ok()?;
                (r.get::<_, Option<i64>>(5) == Some(1))
                    .then(|| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), 1))
            },
        );
    assert_eq!(
        (attempts, successes, rate, failed_last, backlog, dead),
        (2, 0, 0.0, true, 0, 1)
    );
    // An admin reads the summary but cannot rewrite it.
    for write in [
        "SELECT webhook.rebuild_delivery_stats()",
        "DELETE FROM webhook.delivery_stats",
        "SELECT webhook.fan_out()",
        "DELETE FROM webhook.fanout",
    ] {
        let e = ops.batch_execute(write).unwrap_err();
        assert_eq!(e.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{write}");
    }
}
