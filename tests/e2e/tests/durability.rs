//! No event is lost when the worker is killed mid-batch or Postgres stops
//! with `-m immediate` under a 10,000-delivery backlog, nor doubled or left
//! behind by the fan-out when transactions commit out of order.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::Duration;
use webhook_emitter_e2e::{wait_delivered, wait_for, Cluster, Receiver, Reply};

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

/// The worker fans out the events of the transactions committed since its
/// last snapshot. One that queued before others and commits after them,
/// across many fan-outs, and a large batch left open meanwhile: the others
/// are delivered at once, and every event exactly once when they commit.
#[test]
fn events_committed_out_of_order_or_after_a_large_open_batch_are_each_delivered_once() {
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    let mut c = cluster.client();
    c.execute(
        "SELECT webhook.create_webhook('o', $1, '{group.created}')",
        &[&receiver.url("/")],
    )
    .unwrap();
    let mut batch = cluster.client();
    batch
        .batch_execute(
            "BEGIN; INSERT INTO lms.groups (name) SELECT 'batch ' || i FROM generate_series(1, 5000) i",
        )
        .unwrap();
    let mut early = cluster.client();
    early
        .batch_execute("BEGIN; INSERT INTO lms.groups (name) VALUES ('early')")
        .unwrap();
    for i in 0..3 {
        c.execute(
            "INSERT INTO lms.groups (name) VALUES ($1)",
            &[&format!("later {i}")],
        )
        .unwrap();
    }
    receiver.wait_for(3, Duration::from_secs(15));
    // Fan-outs pass while both stay open (they run every few milliseconds).
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.count(), 3, "an open transaction's event was sent");
    early.batch_execute("COMMIT").unwrap();
    let got = receiver.wait_for(4, Duration::from_secs(15));
    assert!(
        got.iter()
            .any(|r| r.json()["payload"]["group_name"] == "early"),
        "the early transaction's event"
    );
    batch.batch_execute("COMMIT").unwrap();
    receiver.wait_for(5004, Duration::from_secs(120));
    std::thread::sleep(Duration::from_millis(500));
    let got = receiver.requests();
    let ids: HashSet<String> = got
        .iter()
        .filter_map(|r| r.header("webhook-id").map(str::to_owned))
        .collect();
    assert_eq!((got.len(), ids.len()), (5004, 5004), "each event once");
}

/// What the transaction that creates the extension queues itself (a
/// migration run in one transaction) is delivered once it commits.
#[test]
fn events_queued_in_the_transaction_that_creates_the_extension_are_delivered() {
    let cluster = Cluster::start_bare("");
    let receiver = Receiver::start();
    let mut c = cluster.client();
    c.batch_execute(&format!(
        "BEGIN;
         CREATE EXTENSION webhook_emitter;
         SELECT webhook.create_webhook('m', '{}', '{{group.created}}');
         INSERT INTO lms.groups (name) VALUES ('made with the extension');
         COMMIT;",
        receiver.url("/")
    ))
    .unwrap();
    let got = receiver.wait_for(1, Duration::from_secs(30));
    assert_eq!(
        got[0].json()["payload"]["group_name"],
        "made with the extension"
    );
}

/// A body that json accepts and jsonb refuses (a \u0000 escape) matches no
/// filter; it does not stop the fan-out of the events after it.
#[test]
fn a_body_no_filter_can_read_does_not_stop_the_fan_out() {
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    let mut c = cluster.client();
    c.execute(
        "SELECT webhook.create_webhook('filtered', $1, '{group.created}', filter => '{\"payload\": {\"group_id\": 999}}')",
        &[&receiver.url("/filtered")],
    )
    .unwrap();
    c.execute(
        "SELECT webhook.create_webhook('all', $1, '{group.created}')",
        &[&receiver.url("/all")],
    )
    .unwrap();
    c.batch_execute(
        "SELECT webhook.enqueue('group.created', '{\"group_id\": 999, \"group_name\": \"nul \\u0000\"}'::json)",
    )
    .unwrap();
    c.batch_execute("INSERT INTO lms.groups (name) VALUES ('after it')")
        .unwrap();
    let got = receiver.wait_for(2, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/all", "/all"], "{paths:?}");
    assert!(got
        .iter()
        .any(|r| r.json()["payload"]["group_name"] == "after it"));
}

/// A delivery whose every attempt crashes the worker (here the receiver
/// kills it with SIGKILL as the request arrives, and the server restarts)
/// is set aside as dead after three, and the worker goes on. The count is
/// made by the claim's commit, which the worker flushes before it sends: a
/// crash restart loses the WAL not yet flushed, and with an unflushed claim
/// the delivery was made again as new after every restart, crashing the
/// server for ever.
#[test]
fn a_delivery_that_crashes_the_worker_every_time_is_set_aside_after_three() {
    let cluster = Cluster::start("");
    cluster.create_roles("ops");
    let receiver = Receiver::start();
    let postmaster_pid = cluster.data_dir().join("postmaster.pid");
    receiver.respond_with(move |request| {
        if request.path == "/crash" {
            let postmaster = std::fs::read_to_string(&postmaster_pid).unwrap_or_default();
            let postmaster = postmaster.lines().next().unwrap_or_default();
            // This cluster's worker only (other tests run beside it).
            let _ = Command::new("pkill")
                .args(["-9", "-P", postmaster, "-f", "delivery worker for postgres"])
                .status();
        }
        Reply::status(200)
    });
    let mut ops = cluster.client_as("ops");
    ops.execute(
        "SELECT webhook.create_webhook('crash', $1, '{group.created}')",
        &[&receiver.url("/crash")],
    )
    .unwrap();
    let mut lms = cluster.client_as("lms_app");
    lms.batch_execute("INSERT INTO lms.groups (name) VALUES ('poison')")
        .unwrap();
    // Connections end with every crash: a new one each time.
    let connect = |user: &str| {
        let conn = format!(
            "host=127.0.0.1 port={} user={user} dbname=postgres",
            cluster.port
        );
        postgres::Client::connect(&conn, postgres::NoTls).ok()
    };
    let set_aside = wait_for(Duration::from_secs(120), "the delivery set aside", || {
        let row = connect("ops")?
            .query_opt(
                "SELECT d.last_error FROM webhook.deliveries d WHERE d.status = 'dead'",
                &[],
            )
            .ok()??;
        Some(row.get::<_, Option<String>>(0).unwrap_or_default())
    });
    assert!(set_aside.starts_with("set aside"), "{set_aside}");
    let sent = |path: &str| {
        receiver
            .requests()
            .iter()
            .filter(|r| r.path == path)
            .count()
    };
    assert_eq!(sent("/crash"), 3, "sent once before each crash");
    // The worker goes on: another webhook's delivery is sent.
    let mut ops = wait_for(Duration::from_secs(30), "the server back", || {
        connect("ops")
    });
    ops.execute(
        "SELECT webhook.delete_webhook((SELECT id FROM webhook.webhooks WHERE name = 'crash'))",
        &[],
    )
    .unwrap();
    ops.execute(
        "SELECT webhook.create_webhook('fine', $1, '{group.created}')",
        &[&receiver.url("/fine")],
    )
    .unwrap();
    let mut lms = connect("lms_app").expect("connect as lms_app");
    lms.batch_execute("INSERT INTO lms.groups (name) VALUES ('after')")
        .unwrap();
    wait_for(Duration::from_secs(30), "the next event at /fine", || {
        (sent("/fine") == 1).then_some(())
    });
    assert_eq!(sent("/crash"), 3, "nothing more was sent to /crash");
}
