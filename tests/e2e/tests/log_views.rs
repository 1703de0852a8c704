//! The delivery log's views as PUBLIC reads them: how late each webhook's
//! deliveries are (queued to delivered, per webhook and hour).

use std::time::Duration;
use webhook_emitter_e2e::{wait_delivered, Cluster, Receiver, Reply};

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
                    hour = date_trunc('hour', now())
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
    let failures: Vec<(i64, Option<i32>)> = webhook_emitter_e2e::wait_for(
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
}
