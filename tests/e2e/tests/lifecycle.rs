//! Endpoint health and retention: a webhook failing for longer than
//! webhook.disable_after is disabled with its reason; finished deliveries
//! older than webhook.retention are pruned with their events and attempts.

use std::time::Duration;
use webhook_emitter_e2e::{wait_for, Cluster, Receiver, Reply};

#[test]
fn a_webhook_that_keeps_failing_is_disabled_automatically() {
    let cluster = Cluster::start(
        "webhook.retry_schedule = '0s,1s,1s,1s,1s,1s,1s,1s,1s,1s'\nwebhook.disable_after = '2s'",
    );
    let receiver = Receiver::start();
    receiver.respond_with(|_| Reply::status(500));
    let mut c = cluster.client();
    c.execute(
        "SELECT webhook.create_webhook('flaky', $1, '{group.created}')",
        &[&receiver.url("/")],
    )
    .unwrap();
    c.batch_execute("INSERT INTO lms.groups (name) VALUES ('g1')")
        .unwrap();
    let reason: String = wait_for(
        Duration::from_secs(20),
        "the webhook to be disabled",
        || {
            c.query_one(
                "SELECT disabled_reason FROM webhook.webhooks WHERE name = 'flaky' AND NOT enabled",
                &[],
            )
            .ok()
            .map(|r| r.get(0))
        },
    );
    assert!(reason.contains("webhook.disable_after"), "{reason}");
    let health = c
        .query_one("SELECT enabled, successes_24h, attempts_24h FROM webhook.webhook_health WHERE name = 'flaky'", &[])
        .unwrap();
    assert!(!health.get::<_, bool>(0));
    assert_eq!(health.get::<_, i64>(1), 0);
    assert!(health.get::<_, i64>(2) >= 2);
    // Its delivery is kept (not lost) and goes out once the webhook is enabled again.
    receiver.respond_with(|_| Reply::status(200));
    let before = receiver.count();
    c.batch_execute("SELECT webhook.enable_webhook(id) FROM webhook.webhooks WHERE name = 'flaky'")
        .unwrap();
    wait_for(
        Duration::from_secs(10),
        "the delivery after re-enabling",
        || {
            let s: String = c
                .query_one("SELECT status FROM webhook.deliveries", &[])
                .unwrap()
                .get(0);
            (s == "delivered").then_some(())
        },
    );
    assert!(receiver.count() > before);
}

#[test]
fn finished_deliveries_are_pruned_after_the_retention() {
    let cluster = Cluster::start("webhook.retention = '2s'");
    let receiver = Receiver::start();
    let mut c = cluster.client();
    c.execute(
        "SELECT webhook.create_webhook('p', $1, '{group.created}')",
        &[&receiver.url("/")],
    )
    .unwrap();
    c.batch_execute("INSERT INTO lms.groups (name) SELECT 'g' || i FROM generate_series(1, 50) i")
        .unwrap();
    receiver.wait_for(50, Duration::from_secs(10));
    wait_for(
        Duration::from_secs(20),
        "deliveries, attempts and events to be pruned",
        || {
            let row = c
            .query_one(
                "SELECT (SELECT count(*) FROM webhook.deliveries) + (SELECT count(*) FROM webhook.attempts)
                      + (SELECT count(*) FROM webhook.events)",
                &[],
            )
            .unwrap();
            (row.get::<_, i64>(0) == 0).then_some(())
        },
    );
}
