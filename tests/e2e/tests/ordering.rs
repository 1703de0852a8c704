//! Ordered delivery: a `fifo` webhook gets its events one at a time in
//! queue order, a `per_key` webhook in order per key value, through
//! failures, retries and dead deliveries in the middle of a sequence;
//! unordered webhooks keep their full concurrency.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use webhook_emitter_e2e::{
    db_message, wait_fanned_out, wait_for, Client, Cluster, Receiver, Recorded, Reply,
};

fn insert_groups(c: &mut Client, names: &[String]) {
    // One transaction each: each commit queues one event.
    for name in names {
        c.execute("INSERT INTO lms.groups (name) VALUES ($1)", &[name])
            .unwrap();
    }
}

fn group_name(r: &Recorded) -> String {
    r.json()["payload"]["group_name"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn statuses(c: &mut Client, webhook: i64) -> Vec<(String, i32)> {
    c.query(
        "SELECT status, attempts FROM webhook.deliveries WHERE webhook_id = $1 ORDER BY id",
        &[&webhook],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[test]
fn fifo_waits_for_each_event_through_retries_and_dead_deliveries() {
    // Two attempts per delivery: g3 fails twice and ends dead, g6 fails once.
    let cluster = Cluster::start("webhook.retry_schedule = '0s,1s'");
    let ordered = Receiver::start();
    let failures: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let f = Arc::clone(&failures);
    ordered.respond_with(move |r| {
        let name = group_name(r);
        let mut seen = f.lock().unwrap();
        let n = seen.entry(name.clone()).or_insert(0);
        *n += 1;
        let fail = (name == "g3") || (name == "g6" && *n == 1);
        let mut reply = Reply::status(if fail { 500 } else { 200 });
        reply.delay = Duration::from_millis(100);
        reply
    });
    let unordered = Receiver::start();
    unordered.respond_with(|_| {
        let mut reply = Reply::status(200);
        reply.delay = Duration::from_millis(400);
        reply
    });
    let mut c = cluster.client();
    let fifo: i64 = c
        .query_one(
            "SELECT webhook.create_webhook('fifo', $1, '{group.created}', ordering => 'fifo')",
            &[&ordered.url("/fifo")],
        )
        .unwrap()
        .get(0);
    let free: i64 = c
        .query_one(
            "SELECT webhook.create_webhook('free', $1, '{group.created}')",
            &[&unordered.url("/free")],
        )
        .unwrap()
        .get(0);
    let names: Vec<String> = (1..=8).map(|i| format!("g{i}")).collect();
    let start = Instant::now();
    insert_groups(&mut c, &names);

    // The unordered webhook is not held up: 8 requests of 400 ms each
    // arrive together, long before the ordered sequence is through.
    unordered.wait_for(8, Duration::from_secs(10));
    let free_done = start.elapsed();
    assert!(
        free_done < Duration::from_millis(2500),
        "unordered webhook took {free_done:?} for 8 requests of 400 ms"
    );

    // g3: 2 failed attempts (dead), g6: 1 failure + 1 success, others 1.
    let got = ordered.wait_for(10, Duration::from_secs(30));
    assert!(
        ordered.count() == 10,
        "expected 10 requests, got {}",
        ordered.count()
    );
    let order: Vec<String> = got.iter().map(group_name).collect();
    assert_eq!(
        order,
        ["g1", "g2", "g3", "g3", "g4", "g5", "g6", "g6", "g7", "g8"],
        "fifo order with retries in place"
    );
    // One at a time: each request starts after the previous one's answer.
    for pair in got.windows(2) {
        assert!(
            pair[1].at.duration_since(pair[0].at) >= Duration::from_millis(100),
            "two requests of a fifo webhook overlapped"
        );
    }
    // The retry of g3 came a second later, and g4 waited for it.
    let g3_retry = got[3].at.duration_since(got[2].at);
    assert!(g3_retry >= Duration::from_millis(900), "{g3_retry:?}");

    wait_for(Duration::from_secs(10), "fifo deliveries finished", || {
        let s = statuses(&mut c, fifo);
        (s.iter().all(|(st, _)| st == "delivered" || st == "dead")).then_some(())
    });
    let s = statuses(&mut c, fifo);
    assert_eq!(s[2], ("dead".to_string(), 2));
    assert_eq!(s[5], ("delivered".to_string(), 2));
    assert_eq!(
        s.iter().filter(|(st, _)| st == "delivered").count(),
        7,
        "{s:?}"
    );
    assert!(statuses(&mut c, free)
        .iter()
        .all(|(st, _)| st == "delivered"));
    let (ordering, key): (String, Option<String>) = c
        .query_one(
            "SELECT ordering, ordering_key FROM webhook.webhook_list WHERE id = $1",
            &[&fifo],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((ordering.as_str(), key), ("fifo", None));
}

#[test]
fn per_key_orders_each_key_and_lets_other_keys_pass() {
    let cluster = Cluster::start("webhook.retry_schedule = '0s,1s,1s'");
    let receiver = Receiver::start();
    let first_for_ann = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&first_for_ann);
    receiver.respond_with(move |r| {
        let body = r.json();
        let name = body["payload"]["first_name"].as_str().unwrap_or_default();
        // Ann's first update fails twice before it goes through.
        let fail = name == "Ann-1" && counter.fetch_add(1, Ordering::SeqCst) < 2;
        Reply::status(if fail { 503 } else { 200 })
    });
    let mut c = cluster.client();
    c.batch_execute(
        "INSERT INTO lms.users (first_name, email) VALUES ('Ann', 'ann@example.com'), ('Bob', 'bob@example.com')",
    )
    .unwrap();
    let id: i64 = c
        .query_one(
            "SELECT webhook.create_webhook('per user', $1, '{user.updated}',
                 ordering => 'per_key', ordering_key => 'payload.id')",
            &[&receiver.url("/users")],
        )
        .unwrap()
        .get(0);
    for i in 1..=4 {
        for who in ["Ann", "Bob"] {
            c.execute(
                "UPDATE lms.users SET first_name = $1 WHERE email = lower($2) || '@example.com'",
                &[&format!("{who}-{i}"), &who],
            )
            .unwrap();
        }
    }
    wait_fanned_out(&mut c);
    let keys: Vec<String> = c
        .query(
            "SELECT order_key FROM webhook.deliveries WHERE webhook_id = $1 ORDER BY id",
            &[&id],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(keys, ["1", "2", "1", "2", "1", "2", "1", "2"]);

    let got = receiver.wait_for(10, Duration::from_secs(30));
    let names: Vec<String> = got
        .iter()
        .map(|r| {
            r.json()["payload"]["first_name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let of = |who: &str| -> Vec<&str> {
        names
            .iter()
            .filter(|n| n.starts_with(who))
            .map(String::as_str)
            .collect()
    };
    assert_eq!(
        of("Ann"),
        ["Ann-1", "Ann-1", "Ann-1", "Ann-2", "Ann-3", "Ann-4"]
    );
    assert_eq!(of("Bob"), ["Bob-1", "Bob-2", "Bob-3", "Bob-4"]);
    // Bob's sequence did not wait for Ann's retries.
    let last_bob = names.iter().rposition(|n| n == "Bob-4").unwrap();
    let ann_2 = names.iter().position(|n| n == "Ann-2").unwrap();
    assert!(last_bob < ann_2, "Bob waited for Ann: {names:?}");
}

#[test]
fn ordering_settings_are_validated() {
    let cluster = Cluster::start("");
    let mut c = cluster.client();
    let err = |c: &mut Client, sql: &str| db_message(&c.batch_execute(sql).unwrap_err());
    let e = err(
        &mut c,
        "SELECT webhook.create_webhook('o', 'https://example.com/', '{group.created}', ordering => 'random')",
    );
    assert!(
        e.starts_with("ordering: 'random' is not supported; allowed: none, fifo, per_key"),
        "{e}"
    );
    let e = err(
        &mut c,
        "SELECT webhook.create_webhook('o', 'https://example.com/', '{group.created}', ordering => 'per_key')",
    );
    assert!(e.starts_with("ordering_key: required"), "{e}");
    let e = err(
        &mut c,
        "SELECT webhook.create_webhook('o', 'https://example.com/', '{group.created}', ordering => 'fifo', ordering_key => 'payload.group_id')",
    );
    assert!(
        e.starts_with("ordering_key: applies only with ordering => 'per_key'"),
        "{e}"
    );
    let e = err(
        &mut c,
        "SELECT webhook.create_webhook('o', 'https://example.com/', '{group.created}', ordering => 'per_key', ordering_key => 'payload..x')",
    );
    assert!(e.contains("is not a dotted path"), "{e}");
    // user.created spells it user_id, user.updated id: the key must be in both.
    let e = err(
        &mut c,
        "SELECT webhook.create_webhook('o', 'https://example.com/', '{user.created,user.updated}', ordering => 'per_key', ordering_key => 'payload.user_id')",
    );
    assert!(
        e.starts_with("ordering_key: 'payload.user_id' is not in the body of user.updated"),
        "{e}"
    );
    let n: i64 = c
        .query_one("SELECT count(*) FROM webhook.webhooks", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "a rejected webhook changed nothing");

    // Switching to fifo drops the key; adding a topic without it is refused.
    let id: i64 = c
        .query_one(
            "SELECT webhook.create_webhook('o', 'https://example.com/', '{user.created}', ordering => 'per_key', ordering_key => 'payload.user_id')",
            &[],
        )
        .unwrap()
        .get(0);
    let e = db_message(
        &c.execute(
            "SELECT webhook.update_webhook($1, topics => '{user.created,user.deleted}')",
            &[&id],
        )
        .unwrap_err(),
    );
    assert!(e.contains("is not in the body of user.deleted"), "{e}");
    c.execute(
        "SELECT webhook.update_webhook($1, ordering => 'fifo')",
        &[&id],
    )
    .unwrap();
    let (ordering, key): (String, Option<String>) = c
        .query_one("SELECT ordering, ordering_key FROM webhook.webhooks", &[])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((ordering.as_str(), key), ("fifo", None));
}

#[test]
fn a_fifo_sequence_follows_the_events_order_not_their_transactions_ids() {
    // Transaction A gets its id first, then waits while B queues and
    // commits its event; A's event, queued after B's, must follow it even
    // when both are fanned out in one batch (the worker is held still until
    // both have committed).
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    let mut c = cluster.client();
    c.execute(
        "SELECT webhook.create_webhook('fifo', $1, '{group.created}', ordering => 'fifo')",
        &[&receiver.url("/fifo")],
    )
    .unwrap();
    let held = cluster.hold_worker_still();
    let mut a = cluster.client();
    a.batch_execute("BEGIN; SELECT pg_current_xact_id();")
        .unwrap();
    let mut b = cluster.client();
    b.batch_execute(
        "SELECT webhook.enqueue('group.created', json_build_object('group_id', 1, 'group_name', 'first',
                                'description', 'B, queued first'))",
    )
    .unwrap();
    // Event ids order by their millisecond first.
    std::thread::sleep(Duration::from_millis(20));
    a.batch_execute(
        "SELECT webhook.enqueue('group.created', json_build_object('group_id', 2, 'group_name', 'second',
                                'description', 'A, queued second'));
         COMMIT;",
    )
    .unwrap();
    drop(held);
    let got = receiver.wait_for(2, Duration::from_secs(30));
    let order: Vec<String> = got.iter().map(group_name).collect();
    assert_eq!(
        order,
        ["first", "second"],
        "the events' order, not the transactions'"
    );
}
