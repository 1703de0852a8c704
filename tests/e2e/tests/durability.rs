//! No event is lost when the worker is killed mid-batch or Postgres stops
//! with `-m immediate` under a 10,000-delivery backlog.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::Duration;
use webhook_emitter_e2e::{wait_delivered, Cluster, Receiver, Reply};

#[test]
fn sigkill_and_immediate_stop_under_backlog_lose_nothing() {
    let cluster = Cluster::start("webhook.max_concurrency = 8");
    let receiver = Receiver::start_with(8);
    receiver.respond_with(|_| Reply {
        delay: Duration::from_millis(2),
        ..Reply::status(200)
    });
    let mut c = cluster.client();
    c.execute(
        "SELECT webhook.create_webhook('d', $1, '{group.created}')",
        &[&receiver.url("/")],
    )
    .unwrap();
    c.batch_execute(
        "INSERT INTO lms.groups (name) SELECT 'g' || i FROM generate_series(1, 10000) i",
    )
    .unwrap();
    let ids: HashSet<String> = c
        .query("SELECT id FROM webhook.events", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids.len(), 10_000);

    // Kill the worker mid-batch (the postmaster restarts everything).
    receiver.wait_for(500, Duration::from_secs(30));
    let pid = cluster.worker_pid();
    assert!(Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_secs(1));
    // Then stop Postgres the hard way while the backlog drains.
    receiver.wait_for(receiver.count() + 1000, Duration::from_secs(60));
    cluster.pg_ctl_stop("immediate");
    cluster.pg_ctl_start();
    let mut c = cluster.client();
    wait_delivered(&mut c, 10_000, Duration::from_secs(120));
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in receiver.requests() {
        let id = r.header("webhook-id").unwrap().to_owned();
        assert_eq!(
            r.json()["id"],
            id.as_str(),
            "a duplicate carried a different id"
        );
        *seen.entry(id).or_default() += 1;
    }
    let received: HashSet<String> = seen.keys().cloned().collect();
    assert_eq!(received, ids, "some events never arrived");
    let duplicates = seen.values().filter(|n| **n > 1).count();
    eprintln!(
        "10000 events, {} requests, {duplicates} delivered more than once",
        receiver.count()
    );
}
