//! One bad row, one hung endpoint or one lost job never stops everyone:
//! failures stay with their delivery or webhook, the worker keeps its pid,
//! slow endpoints cannot take the healthy ones' threads, expired leases
//! come back, and pruning keeps up with the drain.

use std::collections::HashSet;
use std::time::{Duration, Instant};
use webhook_emitter_e2e::{wait_for, Client, Cluster, Receiver, Reply};

fn count(c: &mut Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).map(|r| r.get(0)).unwrap_or(-1)
}

fn create(c: &mut Client, name: &str, url: &str) {
    c.execute(
        "SELECT webhook.create_webhook($1, $2, '{group.created}')",
        &[&name, &url],
    )
    .unwrap();
}

/// Status and last_error of every delivery of the named webhook.
fn deliveries_of(c: &mut Client, name: &str) -> Vec<(String, String)> {
    c.query(
        "SELECT d.status, coalesce(d.last_error, '') FROM webhook.deliveries d
           JOIN webhook.webhooks w ON w.id = d.webhook_id WHERE w.name = $1 ORDER BY d.id",
        &[&name],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[test]
fn an_outcome_that_cannot_be_recorded_fails_only_its_delivery() {
    // Before the fix an ERROR in the worker's recording ended the worker:
    // a crash loop, and the healthy webhook got the same batch again after
    // every restart.
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    let mut c = cluster.client();
    let pid = cluster.worker_pid();
    create(&mut c, "audited", &receiver.url("/audited"));
    create(&mut c, "healthy", &receiver.url("/healthy"));
    // A DBA's rule (or a later version's) that rejects one webhook's rows
    // (a new delivery's outcome is inserted, a retry's updated).
    c.batch_execute(
        "CREATE FUNCTION public.audit_rule() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.status = 'delivered' AND NEW.webhook_id =
              (SELECT id FROM webhook.webhooks WHERE name = 'audited') THEN
             RAISE EXCEPTION 'rejected by the audit rule';
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER audit_rule BEFORE INSERT OR UPDATE ON webhook.deliveries
           FOR EACH ROW EXECUTE FUNCTION public.audit_rule();
         INSERT INTO lms.groups (name) SELECT 'g' || i FROM generate_series(1, 5) i;",
    )
    .unwrap();
    wait_for(Duration::from_secs(20), "every outcome recorded", || {
        let healthy = deliveries_of(&mut c, "healthy");
        let audited = deliveries_of(&mut c, "audited");
        (healthy.iter().filter(|(s, _)| s == "delivered").count() == 5
            && audited.iter().filter(|(s, _)| s == "failed").count() == 5)
            .then_some(())
    });
    for (_, error) in deliveries_of(&mut c, "audited") {
        assert!(
            error.contains("recording the outcome") && error.contains("rejected by the audit rule"),
            "{error}"
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    let healthy: Vec<String> = receiver
        .requests()
        .iter()
        .filter(|r| r.path == "/healthy")
        .map(|r| r.header("webhook-id").unwrap_or_default().to_owned())
        .collect();
    let unique: HashSet<&String> = healthy.iter().collect();
    assert_eq!(
        (healthy.len(), unique.len()),
        (5, 5),
        "duplicates to the healthy webhook"
    );
    assert_eq!(cluster.worker_pid(), pid, "the worker restarted");
    assert!(cluster.log().contains("rejected by the audit rule"));
}

#[test]
fn a_webhook_row_that_fails_validation_fails_only_its_deliveries() {
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    let mut c = cluster.client();
    let pid = cluster.worker_pid();
    create(&mut c, "broken", &receiver.url("/broken"));
    create(&mut c, "healthy", &receiver.url("/healthy"));
    // Written with triggers off, as a careless restore or a manual fix would.
    c.batch_execute(
        "SET session_replication_role = replica;
         UPDATE webhook.webhooks SET content_type = 'text/csv', updated_at = now() WHERE name = 'broken';
         SET session_replication_role = origin;
         INSERT INTO lms.groups (name) SELECT 'g' || i FROM generate_series(1, 3) i;",
    )
    .unwrap();
    wait_for(Duration::from_secs(20), "both webhooks' outcomes", || {
        let healthy = deliveries_of(&mut c, "healthy");
        let broken = deliveries_of(&mut c, "broken");
        (healthy.iter().filter(|(s, _)| s == "delivered").count() == 3
            && broken.iter().filter(|(s, _)| s == "failed").count() == 3)
            .then_some(())
    });
    for (_, error) in deliveries_of(&mut c, "broken") {
        assert!(
            error.contains("unusable settings") && error.contains("content_type"),
            "{error}"
        );
    }
    assert!(receiver.requests().iter().all(|r| r.path == "/healthy"));
    assert_eq!(cluster.worker_pid(), pid, "the worker restarted");
}

#[test]
fn endpoints_that_never_answer_do_not_starve_a_healthy_one() {
    // Default pool: 64 threads. Before the fix, four hung endpoints with 16
    // requests in flight each held every thread for the whole timeout.
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    receiver.respond_with(|r| {
        if r.path.starts_with("/hung") {
            Reply {
                delay: Duration::from_secs(25),
                ..Reply::status(200)
            }
        } else {
            Reply::status(200)
        }
    });
    let mut c = cluster.client();
    for i in 0..4 {
        c.execute(
            "SELECT webhook.create_webhook($1, $2, '{group.created}', timeout_ms => 20000)",
            &[&format!("hung{i}"), &receiver.url(&format!("/hung{i}"))],
        )
        .unwrap();
    }
    c.batch_execute("INSERT INTO lms.groups (name) SELECT 'g' || i FROM generate_series(1, 16) i")
        .unwrap();
    // Every hung endpoint has requests in flight now.
    wait_for(
        Duration::from_secs(10),
        "the hung endpoints to be busy",
        || {
            let paths: HashSet<String> =
                receiver.requests().iter().map(|r| r.path.clone()).collect();
            (paths.len() == 4).then_some(())
        },
    );
    create(&mut c, "healthy", &receiver.url("/healthy"));
    let started = Instant::now();
    c.batch_execute("INSERT INTO lms.groups (name) VALUES ('after')")
        .unwrap();
    wait_for(Duration::from_secs(15), "the healthy delivery", || {
        receiver
            .requests()
            .iter()
            .any(|r| r.path == "/healthy")
            .then_some(())
    });
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(5),
        "the healthy endpoint waited {waited:?} behind hung ones"
    );
}

#[test]
fn a_delivery_whose_lease_expired_is_sent_again() {
    // A job the worker lost (here: marked delivering by hand, as a worker
    // that lost it would have left it) came back only after a restart.
    let cluster = Cluster::start("webhook.retention = '4s'");
    let receiver = Receiver::start();
    let mut c = cluster.client();
    let pid = cluster.worker_pid();
    create(&mut c, "w", &receiver.url("/w"));
    c.batch_execute(
        "BEGIN;
         INSERT INTO webhook.events (id, topic, body, tenant_id)
         VALUES ('01JLEASED00000000000000000', 'group.created', '{\"payload\": {\"group_name\": \"leased\"}}', 'default');
         INSERT INTO webhook.deliveries (event_id, webhook_id, status, attempts, lease_until)
         SELECT '01JLEASED00000000000000000', w.id, 'delivering', 1, now() + interval '2 seconds'
           FROM webhook.webhooks w;
         COMMIT;",
    )
    .unwrap();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM webhook.deliveries WHERE status = 'delivering'"
        ),
        1
    );
    let requests = receiver.wait_for(1, Duration::from_secs(15));
    assert_eq!(requests[0].json()["payload"]["group_name"], "leased");
    assert_eq!(cluster.worker_pid(), pid, "it took a restart");
    assert!(cluster.log().contains("expired lease"));
}

#[test]
fn rotation_keeps_pace_with_the_drain() {
    // Before 0.3.0 pruning deleted the log row by row (and before a fix
    // 1,000 rows per interval: 30,000 delivered rows took half an hour to
    // go). Now the log's slots are emptied whole.
    let cluster = Cluster::start("webhook.retention = '2s'\nwebhook.batch_size = 1000");
    let receiver = Receiver::start();
    let mut c = cluster.client();
    create(&mut c, "w", &receiver.url("/w"));
    c.batch_execute(
        "SELECT count(webhook.enqueue('group.created', json_build_object('group_id', i, 'group_name', 'g' || i,
                 'description', 'd'))) FROM generate_series(1, 30000) i",
    )
    .unwrap();
    receiver.wait_for(30_000, Duration::from_secs(120));
    wait_for(Duration::from_secs(30), "the log rotated away", || {
        let left = count(
            &mut c,
            "SELECT (SELECT count(*) FROM webhook.deliveries) + (SELECT count(*) FROM webhook.events)
                  + (SELECT count(*) FROM webhook.attempts)",
        );
        (left == 0).then_some(())
    });
    // The worker reports what it writes (autovacuum hears of it: before a
    // fix it never did, and attempts, written only by the worker, grew by
    // its whole insert volume), and what went, went by TRUNCATE.
    wait_for(
        Duration::from_secs(10),
        "the worker's table statistics",
        || {
            let ins: i64 = c
                .query_one(
                    "SELECT sum(n_tup_ins)::int8 FROM pg_stat_user_tables
                      WHERE schemaname = 'webhook' AND relname ~ '^attempts_[0-2]$'",
                    &[],
                )
                .ok()?
                .get(0);
            (ins >= 30_000).then_some(())
        },
    );
    // A move between slots counts as a delete in the slot it leaves: the
    // backlog still unfinished when its slot came up moved (the drain
    // outlasts the 2 s retention); nothing else was deleted.
    let deleted = count(
        &mut c,
        "SELECT sum(n_tup_del)::int8 FROM pg_stat_user_tables
          WHERE schemaname = 'webhook' AND relname ~ '^(events|deliveries|attempts)_[0-2]$'",
    );
    let moved = moved_by_rotations(&cluster);
    assert!(
        deleted <= moved,
        "{deleted} rows deleted, {moved} moved by rotations"
    );
}

/// Rows the worker's rotations moved out of a slot (it logs each move).
fn moved_by_rotations(cluster: &Cluster) -> i64 {
    cluster
        .log()
        .lines()
        .filter_map(|l| l.split("emptying the delivery log's oldest slot: ").nth(1))
        .filter_map(|l| l.split(' ').next()?.parse::<i64>().ok())
        .sum()
}

#[test]
fn a_large_transaction_is_fanned_out_a_slice_at_a_time_in_order_each_event_once() {
    // 12,000 events in one transaction: three slices of at most 5,000. A
    // transaction that began before the fan-out's batch and commits in the
    // middle of it is delivered too, by the next batch; a fifo webhook gets
    // the big transaction's events in the order they were queued.
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    let mut c = cluster.client();
    create(&mut c, "all", &receiver.url("/all"));
    c.execute(
        "SELECT webhook.create_webhook('fifo', $1, '{group.created}', ordering => 'fifo')",
        &[&receiver.url("/fifo")],
    )
    .unwrap();
    let mut early = cluster.client();
    early
        .batch_execute(
            "BEGIN;
             SELECT webhook.enqueue('group.created', json_build_object('group_id', -1, 'group_name', 'early',
                                    'description', 'd'));",
        )
        .unwrap();
    c.batch_execute(
        "SELECT count(webhook.enqueue('group.created', json_build_object('group_id', i, 'group_name', 'g' || i,
                 'description', 'd'))) FROM generate_series(1, 12000) i",
    )
    .unwrap();
    // The fan-out is most likely inside the big batch when the early one
    // commits (it reads a slice every few milliseconds).
    wait_for(Duration::from_secs(30), "the first slice", || {
        (count(&mut c, "SELECT count(*) FROM webhook.deliveries") > 0).then_some(())
    });
    early.batch_execute("COMMIT").unwrap();
    let got = receiver.wait_for(2 * 12_001, Duration::from_secs(120));
    for path in ["/all", "/fifo"] {
        let ids: Vec<i64> = got
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.json()["payload"]["group_id"].as_i64().unwrap_or(0))
            .collect();
        let distinct: std::collections::HashSet<i64> = ids.iter().copied().collect();
        assert_eq!(ids.len(), 12_001, "{path}: each event once");
        assert_eq!(distinct.len(), 12_001, "{path}: each event once");
        if path == "/fifo" {
            let big: Vec<i64> = ids.iter().copied().filter(|&i| i > 0).collect();
            assert!(
                big.windows(2).all(|w| w[0] < w[1]),
                "fifo keeps the queued order across slices"
            );
        }
    }
    // The batch is done: nothing is left in progress.
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM webhook.fanout WHERE batch IS NULL AND after_id = ''"
        ),
        1
    );
}

/// A fan-out claims what it makes, so while the worker has no room the
/// committed events wait in webhook.events; the poll's fan-out makes their
/// deliveries all the same. With every request slot taken by endpoints
/// that never answer, a disabled webhook's deliveries are held and another
/// webhook's are pending at the next poll, not after the hung requests
/// time out.
#[test]
fn with_no_room_to_send_new_events_still_get_their_deliveries_at_the_poll() {
    // One request in flight at a time, claims of four: the window is four.
    let cluster = Cluster::start(
        "webhook.max_concurrency = 1\nwebhook.batch_size = 4\nwebhook.poll_interval = '5s'",
    );
    // Accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}/hang", silent.local_addr().unwrap());
    let held_open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let held_open = held_open.clone();
        let silent = silent.try_clone().unwrap();
        std::thread::spawn(move || {
            for stream in silent.incoming().flatten() {
                held_open.lock().unwrap().push(stream);
            }
        });
    }
    let receiver = Receiver::start();
    let mut su = cluster.client();
    cluster.create_roles("hook_admin");
    let mut admin = cluster.client_as("hook_admin");
    for name in ["hung_a", "hung_b"] {
        admin
            .execute(
                "SELECT webhook.create_webhook($1, $2, '{group.created}', timeout_ms => 60000)",
                &[&name, &silent_url],
            )
            .unwrap();
    }
    admin
        .execute(
            "SELECT webhook.create_webhook('off', $1, '{user.created}', enabled => false)",
            &[&receiver.url("/off")],
        )
        .unwrap();
    admin
        .execute(
            "SELECT webhook.create_webhook('later', $1, '{user.created}')",
            &[&receiver.url("/later")],
        )
        .unwrap();
    let mut app = cluster.client_as("lms_app");
    // Two groups: four deliveries to the silent endpoints fill the window.
    app.batch_execute("INSERT INTO lms.groups (name) VALUES ('Physics'), ('Chemistry')")
        .unwrap();
    wait_for(Duration::from_secs(20), "the window full", || {
        (count(&mut su, IN_FLIGHT) == 4).then_some(())
    });
    wait_for(Duration::from_secs(20), "a request held open", || {
        (!held_open.lock().unwrap().is_empty()).then_some(())
    });
    // The last fan-out was the groups'; the next forced one is a poll
    // interval after it.
    let fanned_out = Instant::now();
    app.batch_execute(
        "INSERT INTO lms.users (first_name, email) VALUES ('A', 'a@example.com'), ('B', 'b@example.com'), ('C', 'c@example.com')",
    )
    .unwrap();
    let made =
        "SELECT count(*) FROM webhook.deliveries d JOIN webhook.webhooks w ON w.id = d.webhook_id
                 WHERE w.name IN ('off', 'later')";
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        fanned_out.elapsed() < Duration::from_secs(4),
        "too slow to see the events wait"
    );
    assert_eq!(count(&mut su, made), 0, "no room: the events wait");
    assert_eq!(
        count(
            &mut su,
            "SELECT count(*) FROM webhook.events WHERE topic = 'user.created'"
        ),
        3
    );
    wait_for(
        Duration::from_secs(15),
        "the deliveries made at the poll",
        || {
            let made = su
                .query_one(
                    "SELECT count(*) FILTER (WHERE w.name = 'off' AND d.status = 'held'),
                        count(*) FILTER (WHERE w.name = 'later' AND d.status = 'pending')
                   FROM webhook.deliveries d JOIN webhook.webhooks w ON w.id = d.webhook_id",
                    &[],
                )
                .unwrap();
            (made.get::<_, i64>(0) == 3 && made.get::<_, i64>(1) == 3).then_some(())
        },
    );
    // Well before the silent endpoints' 60 s timeout; nothing was sent to
    // the other receiver meanwhile (no room), and the window is as it was.
    assert_eq!(receiver.count(), 0);
    assert_eq!(count(&mut su, IN_FLIGHT), 4);
}

/// Deliveries being sent: in the table, or new ones not written yet.
const IN_FLIGHT: &str =
    "SELECT (SELECT count(*) FROM webhook.deliveries WHERE status = 'delivering')
                              + (SELECT count(*) FROM webhook.in_flight)";
