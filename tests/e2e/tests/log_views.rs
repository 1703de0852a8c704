//! The delivery log's views as PUBLIC reads them: how late each webhook's
//! deliveries are (queued to delivered, per webhook and hour).

use std::time::Duration;
use webhook_emitter_e2e::{wait_delivered, Cluster, Receiver};

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
