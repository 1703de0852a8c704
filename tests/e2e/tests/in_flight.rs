//! A new delivery the worker claims as it makes it is written once, with
//! its outcome: while its request is out it is listed by
//! `webhook.in_flight` (one `webhook.in_flight_batches` row per claimed
//! slice), which every role may read and none below superuser may touch
//! directly; a crash, or a batch row nobody holds, sends it again.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use webhook_emitter_e2e::{wait_for, Cluster, Receiver, Reply};

/// Requests to the receiver wait until the gate opens (at most a minute).
#[derive(Clone, Default)]
struct Gate {
    open: Arc<(Mutex<bool>, Condvar)>,
    arrived: Arc<AtomicUsize>,
}

impl Gate {
    fn hold(&self) {
        self.arrived.fetch_add(1, Ordering::SeqCst);
        let (open, changed) = &*self.open;
        let guard = open.lock().unwrap();
        let _ = changed
            .wait_timeout_while(guard, Duration::from_secs(60), |open| !*open)
            .unwrap();
    }

    fn open(&self) {
        let (open, changed) = &*self.open;
        *open.lock().unwrap() = true;
        changed.notify_all();
    }

    fn wait_arrived(&self, n: usize) {
        wait_for(Duration::from_secs(30), "the requests held", || {
            (self.arrived.load(Ordering::SeqCst) >= n).then_some(())
        });
    }
}

fn gated_receiver(gate: &Gate) -> Receiver {
    let receiver = Receiver::start();
    let gate = gate.clone();
    receiver.respond_with(move |_| {
        gate.hold();
        Reply::status(200)
    });
    receiver
}

/// Kill this cluster's delivery worker (the postmaster restarts every
/// backend: connections end).
fn kill_worker(cluster: &Cluster) {
    let postmaster = std::fs::read_to_string(cluster.data_dir().join("postmaster.pid")).unwrap();
    let postmaster = postmaster.lines().next().unwrap().to_string();
    assert!(Command::new("pkill")
        .args([
            "-9",
            "-P",
            &postmaster,
            "-f",
            "delivery worker for postgres"
        ])
        .status()
        .unwrap()
        .success());
}

/// A new connection, or None while the server restarts.
fn connect_as(cluster: &Cluster, user: &str) -> Option<postgres::Client> {
    let conn = format!(
        "host=127.0.0.1 port={} user={user} dbname=postgres",
        cluster.port
    );
    postgres::Client::connect(&conn, postgres::NoTls).ok()
}

fn count(c: &mut postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).unwrap().get(0)
}

#[test]
fn a_new_delivery_is_written_once_with_its_outcome_and_listed_in_flight_meanwhile() {
    let cluster = Cluster::start("");
    cluster.create_roles("hook_admin");
    let gate = Gate::default();
    let receiver = gated_receiver(&gate);
    let mut admin = cluster.client_as("hook_admin");
    let webhook: i64 = admin
        .query_one(
            "SELECT webhook.create_webhook('slow', $1, '{group.created}')",
            &[&receiver.url("/slow")],
        )
        .unwrap()
        .get(0);
    let mut app = cluster.client_as("lms_app");
    app.batch_execute("INSERT INTO lms.groups (name) VALUES ('A'), ('B'), ('C')")
        .unwrap();
    gate.wait_arrived(3);

    // Every role sees the three in flight, shaped like delivering rows,
    // and none of them in webhook.deliveries yet.
    let mut public = cluster.client_as("nobody");
    for c in [&mut admin, &mut app, &mut public] {
        let rows = c
            .query(
                "SELECT id, status, attempts, webhook_id, event_id FROM webhook.in_flight ORDER BY id",
                &[],
            )
            .unwrap();
        assert_eq!(rows.len(), 3);
        for r in &rows {
            assert_eq!(r.get::<_, String>(1), "delivering");
            assert_eq!(r.get::<_, i32>(2), 1);
            assert_eq!(r.get::<_, i64>(3), webhook);
        }
        assert_eq!(count(c, "SELECT count(*) FROM webhook.deliveries"), 0);
    }
    let in_flight: Vec<i64> = admin
        .query("SELECT id FROM webhook.in_flight ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // The health view and the metrics count them.
    assert_eq!(
        count(
            &mut public,
            "SELECT backlog FROM webhook.webhook_health WHERE name = 'slow'"
        ),
        3
    );
    let metrics: String = public
        .query_one("SELECT webhook.metrics()", &[])
        .unwrap()
        .get(0);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("webhook_in_flight{webhook=\"slow\"") && l.ends_with(" 3")),
        "{metrics}"
    );
    // The batch rows themselves: the worker's alone.
    for c in [&mut admin, &mut app, &mut public] {
        for sql in [
            "SELECT count(*) FROM webhook.in_flight_batches",
            "DELETE FROM webhook.in_flight_batches",
        ] {
            let e = c.batch_execute(sql).unwrap_err();
            assert_eq!(
                e.code(),
                Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
                "{sql}: {e}"
            );
        }
    }
    // Redelivering one in flight says so.
    let e = admin
        .execute("SELECT webhook.redeliver($1)", &[&in_flight[0]])
        .unwrap_err();
    let message = e.as_db_error().map(|e| e.message().to_string());
    assert!(
        message.as_deref().is_some_and(|m| m.contains("delivering")),
        "{message:?}"
    );

    gate.open();
    wait_for(Duration::from_secs(30), "the outcomes recorded", || {
        (count(
            &mut admin,
            "SELECT count(*) FROM webhook.deliveries WHERE status = 'delivered'",
        ) == 3)
            .then_some(())
    });
    // Written once, with the ids they had in flight, one attempt each.
    let rows = admin
        .query(
            "SELECT d.id, d.attempts, d.last_status_code, d.delivered_at >= d.last_attempt_at,
                    d.created_at = e.created_at, d.slot = e.slot,
                    (SELECT count(*) FROM webhook.attempts a WHERE a.delivery_id = d.id)
               FROM webhook.deliveries d JOIN webhook.events e ON e.id = d.event_id ORDER BY d.id",
            &[],
        )
        .unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, in_flight);
    for r in &rows {
        assert_eq!(r.get::<_, i32>(1), 1);
        assert_eq!(r.get::<_, Option<i32>>(2), Some(200));
        assert!(r.get::<_, bool>(3) && r.get::<_, bool>(4) && r.get::<_, bool>(5));
        assert_eq!(r.get::<_, i64>(6), 1);
    }
    assert_eq!(
        count(&mut admin, "SELECT count(*) FROM webhook.in_flight"),
        0
    );
    let mut su = cluster.client();
    wait_for(Duration::from_secs(10), "the batch row deleted", || {
        (count(&mut su, "SELECT count(*) FROM webhook.in_flight_batches") == 0).then_some(())
    });
    assert_eq!(
        count(
            &mut su,
            "SELECT delivered FROM webhook.delivery_counters WHERE topic = 'group.created'"
        ),
        3
    );
    assert_eq!(receiver.count(), 3);
}

/// Killed with requests out, the worker leaves the batch row behind; the
/// restarted worker inserts its deliveries as interrupted attempts and
/// sends them again (same webhook-id). A batch row no worker holds (a
/// restored dump's) is taken up once its lease has run out.
#[test]
fn deliveries_in_flight_at_a_crash_or_left_by_nobody_are_sent_again() {
    // Maintenance (which takes up batch rows nobody holds) every second.
    let cluster = Cluster::start("webhook.retention = '4s'");
    cluster.create_roles("hook_admin");
    let gate = Gate::default();
    let receiver = gated_receiver(&gate);
    let mut admin = cluster.client_as("hook_admin");
    admin
        .execute(
            "SELECT webhook.create_webhook('slow', $1, '{group.created}')",
            &[&receiver.url("/slow")],
        )
        .unwrap();
    let mut app = cluster.client_as("lms_app");
    app.batch_execute("INSERT INTO lms.groups (name) VALUES ('A'), ('B')")
        .unwrap();
    gate.wait_arrived(2);
    kill_worker(&cluster);
    gate.open();
    let connect = |user: &str| connect_as(&cluster, user);
    // (Connections end with the crash: a new one each time.)
    wait_for(Duration::from_secs(60), "both sent again", || {
        let n: i64 = connect("hook_admin")?
            .query_one(
                "SELECT count(*) FROM webhook.deliveries WHERE status = 'delivered' AND attempts = 2",
                &[],
            )
            .ok()?
            .get(0);
        (n == 2).then_some(())
    });
    let requests = receiver.requests();
    let mut ids: Vec<&str> = requests
        .iter()
        .filter_map(|r| r.header("webhook-id"))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids.len(), 4, "each sent before the crash and after");
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[2], ids[3]);
    let mut su = connect("postgres").unwrap();
    assert_eq!(
        count(&mut su, "SELECT count(*) FROM webhook.in_flight_batches"),
        0
    );

    // A batch row no worker holds, its lease run out (as a restored dump's
    // would be): its delivery is inserted and sent.
    let (event, id): (String, i64) = {
        let r = su
            .query_one(
                "WITH e AS (INSERT INTO webhook.events (id, topic, body, tenant_id)
                            VALUES ('01JNOBODYHOLDSTHIS00000000', 'group.created', '{\"x\": 1}', 'default')
                            RETURNING id, slot)
                 INSERT INTO webhook.in_flight_batches (deliveries, event_ids, webhook_ids, slots, lease_until)
                 SELECT ARRAY[nextval('webhook.deliveries_id_seq')], ARRAY[e.id], ARRAY[w.id], ARRAY[e.slot],
                        now() - interval '1 second'
                   FROM e, webhook.webhooks w
                 RETURNING event_ids[1], deliveries[1]",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    wait_for(Duration::from_secs(30), "the orphaned one sent", || {
        let r = su
            .query_opt(
                "SELECT status FROM webhook.deliveries WHERE id = $1 AND event_id = $2",
                &[&id, &event],
            )
            .unwrap()?;
        (r.get::<_, String>(0) == "delivered").then_some(())
    });
    assert!(receiver
        .requests()
        .iter()
        .any(|r| r.header("webhook-id") == Some(event.as_str())));
    assert_eq!(
        count(&mut su, "SELECT count(*) FROM webhook.in_flight_batches"),
        0
    );
}

/// A crash with a batch half recorded: the delivery recorded before it is
/// not sent again, the one still out is.
#[test]
fn a_crash_sends_again_only_what_its_batch_had_not_recorded() {
    let cluster = Cluster::start("");
    cluster.create_roles("hook_admin");
    let gate = Gate::default();
    let slow = gated_receiver(&gate);
    let fast = Receiver::start();
    let mut admin = cluster.client_as("hook_admin");
    for (name, receiver) in [("fast", &fast), ("slow", &slow)] {
        admin
            .execute(
                "SELECT webhook.create_webhook($1, $2, '{group.created}')",
                &[&name, &receiver.url("/h")],
            )
            .unwrap();
    }
    let mut app = cluster.client_as("lms_app");
    app.batch_execute("INSERT INTO lms.groups (name) VALUES ('A')")
        .unwrap();
    gate.wait_arrived(1);
    // Both claimed by one fan-out, in one batch; the fast one recorded.
    let mut su = cluster.client();
    wait_for(Duration::from_secs(30), "the fast one recorded", || {
        (count(
            &mut su,
            "SELECT count(*) FROM webhook.deliveries WHERE status = 'delivered'",
        ) == 1)
            .then_some(())
    });
    assert_eq!(
        count(&mut su, "SELECT count(*) FROM webhook.in_flight_batches"),
        1
    );
    assert_eq!(
        count(
            &mut su,
            "SELECT cardinality(deliveries)::bigint FROM webhook.in_flight_batches"
        ),
        2,
        "one batch of both"
    );
    // The worker records without waiting for the WAL flush (a crash may
    // undo a record, and the delivery is then sent again: at least once);
    // a durable commit here flushes the WAL past the fast one's record.
    su.batch_execute("CREATE TEMP TABLE flush_the_wal (); DROP TABLE flush_the_wal")
        .unwrap();
    kill_worker(&cluster);
    gate.open();
    let connect = || connect_as(&cluster, "postgres");
    wait_for(Duration::from_secs(60), "the slow one sent again", || {
        let n: i64 = connect()?
            .query_one(
                "SELECT count(*) FROM webhook.deliveries d JOIN webhook.webhooks w ON w.id = d.webhook_id
                  WHERE w.name = 'slow' AND d.status = 'delivered' AND d.attempts = 2",
                &[],
            )
            .ok()?
            .get(0);
        (n == 1).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(fast.count(), 1, "the recorded one was sent again");
    assert_eq!(slow.count(), 2);
    let mut su = connect().unwrap();
    assert_eq!(count(&mut su, "SELECT count(*) FROM webhook.deliveries"), 2);
    assert_eq!(
        count(&mut su, "SELECT count(*) FROM webhook.in_flight_batches"),
        0
    );
}
