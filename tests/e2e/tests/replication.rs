//! Deployment with replication (issue 26): a hot standby refuses Send Test
//! before sending, a failover mid-drain loses nothing, COMMIT PREPARED wakes
//! the worker, and a logical replication subscriber sends nothing twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};
use webhook_emitter_e2e::{
    db_message, wait_delivered, wait_fanned_out, Client, Cluster, Receiver, Reply,
};

/// Poll `f` until it returns Ok, or panic after `timeout` with what the last
/// Err said (the state that never became right).
fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn count(c: &mut Client, sql: &str) -> i64 {
    c.query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {}", db_message(&e)))
        .get(0)
}

fn event_ids(c: &mut Client) -> HashSet<String> {
    c.query("SELECT id FROM webhook.events", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// `status: count` of webhook.deliveries.
fn statuses(c: &mut Client) -> BTreeMap<String, i64> {
    c.query(
        "SELECT status::text, count(*) FROM webhook.deliveries GROUP BY 1 ORDER BY 1",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// How many requests the receiver got per `webhook-id`; every request's
/// body `id` must equal its header (a duplicate carries the same id).
fn received_per_id(receiver: &Receiver) -> HashMap<String, usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in receiver.requests() {
        let id = r
            .header("webhook-id")
            .expect("a request without webhook-id")
            .to_owned();
        assert_eq!(
            r.json()["id"],
            id.as_str(),
            "the body's id differs from the webhook-id header"
        );
        *seen.entry(id).or_default() += 1;
    }
    seen
}

#[test]
fn send_test_on_a_standby_refuses_before_sending() {
    let primary = Cluster::start("");
    let standby = Cluster::standby_of(&primary);
    let receiver = Receiver::start();
    let mut p = primary.client();
    let id: i64 = p
        .query_one(
            "SELECT webhook.create_webhook('crm', $1, '{user.created}')",
            &[&receiver.url("/hooks")],
        )
        .unwrap()
        .get(0);
    standby.wait_replayed(&primary, Duration::from_secs(30));
    let mut s = standby.client();
    assert!(standby.is_in_recovery());
    assert_eq!(
        count(&mut s, "SELECT count(*) FROM webhook.webhooks"),
        1,
        "the webhook has not reached the standby"
    );

    let result = s.query("SELECT * FROM webhook.send_test($1)", &[&id]);
    // A request that was sent reached the receiver before send_test
    // returned; give a straggler a moment anyway.
    std::thread::sleep(Duration::from_millis(500));
    let sent = receiver.count();
    match result {
        Ok(rows) => panic!(
            "send_test on a standby succeeded ({} row(s), status {:?}, error {:?}); the receiver got {sent} request(s)",
            rows.len(),
            rows.first().map(|r| r.get::<_, Option<i32>>("status_code")),
            rows.first().map(|r| r.get::<_, Option<String>>("error")),
        ),
        Err(e) => {
            let msg = db_message(&e);
            let lower = msg.to_lowercase();
            assert!(
                (lower.contains("standby") || lower.contains("recovery"))
                    && !msg.contains("cannot assign TransactionIds"),
                "send_test on a standby should refuse up front, saying it is a standby; it said: {msg} \
                 (the receiver got {sent} request(s))"
            );
            assert_eq!(
                sent, 0,
                "send_test on a standby sent a request before failing with: {msg}"
            );
        }
    }
    // The standby's session still serves reads, and the primary's Send Test works.
    assert_eq!(count(&mut s, "SELECT count(*) FROM webhook.webhooks"), 1);
    let status: Option<i32> = p
        .query_one("SELECT status_code FROM webhook.send_test($1)", &[&id])
        .unwrap()
        .get(0);
    assert_eq!(status, Some(200));
    assert_eq!(receiver.count(), 1);
}

#[test]
fn failover_mid_drain_loses_nothing() {
    // Two requests in flight at 50 ms each: about 40 deliveries a second,
    // so 300 events take ~7 s and the kill lands mid-drain.
    let primary = Cluster::start("webhook.max_per_endpoint = 2");
    let standby = Cluster::standby_of(&primary);
    let receiver = Receiver::start();
    receiver.respond_with(|_| Reply {
        delay: Duration::from_millis(50),
        ..Reply::status(200)
    });
    let mut p = primary.client();
    p.execute(
        "SELECT webhook.create_webhook('crm', $1, '{user.created}')",
        &[&receiver.url("/hooks")],
    )
    .unwrap();
    primary.worker_pid();
    for batch in 0..6 {
        p.batch_execute(&format!(
            "INSERT INTO lms.users (first_name, email)
             SELECT 'U', 'u{batch}_' || i || '@x.example' FROM generate_series(1, 50) i"
        ))
        .unwrap();
    }
    let ids = event_ids(&mut p);
    assert_eq!(ids.len(), 300);
    // The events count only once the standby has them, with the
    // deliveries the primary's worker made for them.
    wait_fanned_out(&mut p);
    // A fan-out that claimed nothing commits without waiting for the WAL
    // flush (a promoted standby would make its deliveries again); a
    // durable commit here flushes the WAL past it for the count below (one
    // that writes WAL: a transaction that only took an id is not flushed).
    p.batch_execute("CREATE TEMP TABLE flush_the_wal (); DROP TABLE flush_the_wal")
        .unwrap();
    standby.wait_replayed(&primary, Duration::from_secs(30));
    let mut s = standby.client();
    // (New ones being sent are written with their outcome: in flight
    // until then.)
    assert_eq!(
        count(
            &mut s,
            "SELECT (SELECT count(*) FROM webhook.deliveries) + (SELECT count(*) FROM webhook.in_flight)"
        ),
        300,
        "the standby has not replayed the queue"
    );

    receiver.wait_for(30, Duration::from_secs(30));
    primary.pg_ctl_stop("immediate");
    let at_kill = received_per_id(&receiver).len();
    assert!(
        at_kill < 300,
        "the primary had delivered everything before the kill: the test did not fail over mid-drain"
    );
    drop(p);
    standby.promote();
    assert!(!standby.is_in_recovery());
    // The promoted node's worker delivers the rest.
    let mut s = standby.client();
    wait_delivered(&mut s, 300, Duration::from_secs(120));
    assert_eq!(
        statuses(&mut s),
        BTreeMap::from([("delivered".to_owned(), 300)]),
        "deliveries left undelivered on the promoted node"
    );
    assert_eq!(event_ids(&mut s), ids, "the promoted node's events differ");

    let seen = received_per_id(&receiver);
    let received: HashSet<String> = seen.keys().cloned().collect();
    let missing = ids.difference(&received).count();
    let unknown = received.difference(&ids).count();
    assert_eq!(
        (missing, unknown),
        (0, 0),
        "{missing} events never arrived, {unknown} unknown ids arrived"
    );
    let duplicates = seen.values().filter(|n| **n > 1).count();
    eprintln!(
        "300 events, {at_kill} distinct received before the kill, {} requests in all, \
         {duplicates} received more than once (same webhook-id)",
        receiver.count()
    );
    // Not an assertion: what the promoted node's worker complained about.
    let complaints: Vec<String> = standby
        .log()
        .lines()
        .filter(|l| (l.contains("ERROR:") || l.contains("WARNING:")) && l.contains("webhook"))
        .map(str::to_owned)
        .collect();
    if !complaints.is_empty() {
        eprintln!(
            "webhook_emitter ERROR/WARNING lines in the standby's log:\n{}",
            complaints.join("\n")
        );
    }
}

#[test]
fn commit_prepared_wakes_the_worker() {
    // Later lines win: a poll interval long enough that only a wake-up can
    // deliver within the bound below.
    let cluster = Cluster::start("max_prepared_transactions = 10\nwebhook.poll_interval = '5s'");
    let receiver = Receiver::start();
    let mut c = cluster.client();
    let poll: String = c
        .query_one("SHOW webhook.poll_interval", &[])
        .unwrap()
        .get(0);
    assert_eq!(poll, "5s");
    c.execute(
        "SELECT webhook.create_webhook('crm', $1, '{user.created}')",
        &[&receiver.url("/hooks")],
    )
    .unwrap();
    cluster.worker_pid();
    let bound = Duration::from_secs(2);

    // Prepared first: its event waits in the prepared transaction.
    c.batch_execute(
        "BEGIN;
         INSERT INTO lms.users (first_name, email) VALUES ('Prepared', 'prepared@x.example');
         PREPARE TRANSACTION 'p1';",
    )
    .unwrap();

    // A plain commit is woken.
    let t0 = Instant::now();
    c.batch_execute(
        "INSERT INTO lms.users (first_name, email) VALUES ('Plain', 'plain@x.example')",
    )
    .unwrap();
    receiver.wait_for(1, Duration::from_secs(10));
    let plain = t0.elapsed();
    assert!(
        plain < bound,
        "a plain commit took {plain:?} to arrive: the worker was not woken"
    );
    wait_delivered(&mut c, 1, Duration::from_secs(10));
    // Let the worker go back to sleep: its next poll is ~5 s away.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        receiver.count(),
        1,
        "the prepared event was sent before COMMIT PREPARED"
    );

    let t0 = Instant::now();
    c.batch_execute("COMMIT PREPARED 'p1'").unwrap();
    let got = receiver.wait_for(2, Duration::from_secs(15));
    let prepared = t0.elapsed();
    assert_eq!(got[1].json()["payload"]["email"], "prepared@x.example");
    assert!(
        prepared < bound,
        "COMMIT PREPARED took {prepared:?} to arrive (plain commit: {plain:?}, poll interval 5 s): \
         the worker was not woken, only polled"
    );
}

#[test]
fn logical_replication_subscriber_sends_nothing_twice() {
    let publisher = Cluster::start("wal_level = logical");
    let subscriber = Cluster::start("");
    let receiver = Receiver::start();
    let mut p = publisher.client();
    p.execute(
        "SELECT webhook.create_webhook('crm', $1, '{user.created}')",
        &[&receiver.url("/hooks")],
    )
    .unwrap();
    p.batch_execute("CREATE PUBLICATION p FOR ALL TABLES")
        .unwrap();
    // The subscriber's worker runs (webhook-less): it would send whatever it
    // took for its own.
    subscriber.worker_pid();
    let mut s = subscriber.client();
    assert_eq!(count(&mut s, "SELECT count(*) FROM webhook.webhooks"), 0);
    subscriber.subscribe(&publisher, "s", "p");

    let sync_state = |s: &mut Client| -> Result<(), String> {
        let rels: Vec<(String, String)> = s
            .query(
                "SELECT srrelid::regclass::text, srsubstate::text FROM pg_subscription_rel ORDER BY 1",
                &[],
            )
            .map_err(|e| db_message(&e))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let not_ready: Vec<String> = rels
            .iter()
            .filter(|(_, st)| st != "r")
            .map(|(t, st)| format!("{t}={st}"))
            .collect();
        let needed = [
            "webhook.settings",
            "webhook.topics",
            // The log's slots: each partition is its own table here.
            "webhook.deliveries_0",
            "webhook.deliveries_1",
            "webhook.deliveries_2",
            "lms.users",
        ];
        let missing: Vec<&str> = needed
            .iter()
            .filter(|t| !rels.iter().any(|(r, _)| r == *t))
            .copied()
            .collect();
        if rels.is_empty() || !not_ready.is_empty() || !missing.is_empty() {
            return Err(format!(
                "not ready: {not_ready:?}, not subscribed: {missing:?}; \
                 (apply_error_count, sync_error_count) {:?}; the subscriber's ERRORs: {:#?}",
                subscription_errors(s),
                distinct_errors(&subscriber)
            ));
        }
        Ok(())
    };
    eventually(
        Duration::from_secs(60),
        "every table of the subscription to reach state 'r'",
        || sync_state(&mut s),
    );

    for batch in 0..3 {
        p.batch_execute(&format!(
            "INSERT INTO lms.users (first_name, email)
             SELECT 'U', 'u{batch}_' || i || '@x.example' FROM generate_series(1, 50) i"
        ))
        .unwrap();
    }
    let ids = event_ids(&mut p);
    assert_eq!(ids.len(), 150);
    wait_delivered(&mut p, 150, Duration::from_secs(60));
    let pub_attempts = count(&mut p, "SELECT count(*) FROM webhook.attempts");

    // The subscriber gets the queue and its log, all marked replicated.
    eventually(
        Duration::from_secs(60),
        "the subscriber to hold the publisher's 150 deliveries, all 'replicated', and its attempts",
        || {
            let st = statuses(&mut s);
            let deliveries: i64 = st.values().sum();
            let attempts = count(&mut s, "SELECT count(*) FROM webhook.attempts");
            let events = count(&mut s, "SELECT count(*) FROM webhook.events");
            if deliveries == 150
                && st.keys().all(|k| k == "replicated")
                && attempts == pub_attempts
                && events == 150
            {
                Ok(())
            } else {
                Err(format!(
                    "subscriber: events {events}, deliveries by status {st:?}, attempts {attempts} \
                     (publisher: {pub_attempts}); receiver got {} requests; errors {:?}",
                    receiver.count(),
                    subscription_errors(&mut s)
                ))
            }
        },
    );
    // Give the subscriber's worker several poll intervals (200 ms) to show
    // whether it would send any of them.
    std::thread::sleep(Duration::from_millis(1500));

    let seen = received_per_id(&receiver);
    let received: HashSet<String> = seen.keys().cloned().collect();
    assert_eq!(
        received, ids,
        "the receiver did not get exactly the publisher's events"
    );
    let twice: Vec<(&String, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{} events were received more than once (e.g. {:?}): the subscriber sent them too",
        twice.len(),
        twice.first()
    );
    assert_eq!(receiver.count(), 150);
    let st = statuses(&mut s);
    assert!(
        st.keys().all(|k| k == "replicated"),
        "subscriber deliveries: {st:?}"
    );
    assert_eq!(
        count(&mut s, "SELECT count(*) FROM webhook.attempts"),
        count(&mut p, "SELECT count(*) FROM webhook.attempts"),
        "the subscriber's worker made attempts of its own"
    );
    let (apply_errors, sync_errors) = subscription_errors(&mut s);
    assert_eq!(
        (apply_errors, sync_errors),
        (0, 0),
        "pg_stat_subscription_stats: apply_error_count, sync_error_count"
    );

    // No ERROR repeated in the subscriber's log (an apply or sync worker
    // failing over and over on the same row).
    let errors = subscriber.error_lines();
    let by_message = distinct_errors(&subscriber);
    let repeated: Vec<_> = by_message.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "repeated ERRORs in the subscriber's log: {repeated:#?}"
    );
    if !errors.is_empty() {
        eprintln!(
            "ERROR lines in the subscriber's log:\n{}",
            errors.join("\n")
        );
    }
}

/// `(apply_error_count, sync_error_count)` of subscription `s`.
fn subscription_errors(c: &mut Client) -> (i64, i64) {
    c.query_opt(
        "SELECT apply_error_count, sync_error_count FROM pg_stat_subscription_stats WHERE subname = 's'",
        &[],
    )
    .ok()
    .flatten()
    .map(|r| (r.get(0), r.get(1)))
    .unwrap_or((-1, -1))
}

/// The server log's ERROR messages (without the line prefix) and how often
/// each occurs.
fn distinct_errors(cluster: &Cluster) -> BTreeMap<String, usize> {
    let mut by_message: BTreeMap<String, usize> = BTreeMap::new();
    for l in cluster.error_lines() {
        let msg = l.split_once("ERROR:").map(|(_, m)| m.trim()).unwrap_or(&l);
        *by_message.entry(msg.to_owned()).or_default() += 1;
    }
    by_message
}
