//! Retention by rotation (issue 29): the delivery log lives in three slots,
//! each a partition of events, deliveries and attempts; the worker empties
//! the oldest one whole (TRUNCATE) once all of it is older than
//! `webhook.retention`, after moving out what is unfinished. Nothing a
//! receiver has not had is lost, whatever the LMS writes meanwhile; the
//! finished log goes without a DELETE per row; and no role below superuser
//! can rotate the log or read a slot's partition directly.

use std::collections::HashSet;
use std::time::{Duration, Instant};
use webhook_emitter_e2e::{db_message, wait_for, Cluster, Receiver, Reply};

fn count(c: &mut postgres::Client, query: &str) -> i64 {
    c.query_one(query, &[]).expect(query).get(0)
}

/// Rotations so far: the worker logs each one.
fn rotations(cluster: &Cluster) -> usize {
    cluster
        .log()
        .matches("the delivery log's oldest slot was emptied")
        .count()
}

#[test]
fn rotation_keeps_what_is_unfinished_drops_the_finished_log_whole_and_loses_no_event() {
    // A failure waits an hour for its retry: it stays 'failed' through
    // every rotation of this test.
    let cluster = Cluster::start("webhook.retention = '2s'\nwebhook.retry_schedule = '0s,1h,1h'");
    let receiver = Receiver::start();
    receiver.respond_with(|r| {
        if r.path.starts_with("/down") {
            Reply::status(503)
        } else {
            Reply::status(200)
        }
    });
    cluster.create_roles("hook_admin");
    let mut admin = cluster.client_as("hook_admin");
    admin
        .execute(
            "SELECT webhook.create_webhook('ok', $1, '{user.created}')",
            &[&receiver.url("/ok")],
        )
        .unwrap();
    let down: i64 = admin
        .query_one(
            "SELECT webhook.create_webhook('down', $1, '{group.created}')",
            &[&receiver.url("/down")],
        )
        .unwrap()
        .get(0);
    admin
        .execute(
            "SELECT webhook.create_webhook('off', $1, '{user.deleted}', enabled => false)",
            &[&receiver.url("/off")],
        )
        .unwrap();

    // A delivery that failed and waits for its retry, and one held (of
    // another event: a delivery is kept with its event's other deliveries).
    let mut app = cluster.client_as("lms_app");
    app.batch_execute(
        "INSERT INTO lms.groups (name) VALUES ('Physics');
         INSERT INTO lms.users (first_name, email) VALUES ('U', 'u0@example.com');",
    )
    .unwrap();
    // (Its own transaction: user.created's body is built at commit, from
    // the row.)
    app.batch_execute("DELETE FROM lms.users WHERE email = 'u0@example.com'")
        .unwrap();
    let mut su = cluster.client();
    wait_for(Duration::from_secs(20), "the failed attempt", || {
        (count(
            &mut su,
            "SELECT count(*) FROM webhook.deliveries WHERE status = 'failed'",
        ) == 1)
            .then_some(())
    });
    let failed_id: i64 = su
        .query_one(
            "SELECT id FROM webhook.deliveries WHERE status = 'failed'",
            &[],
        )
        .unwrap()
        .get(0);
    let failed_event: String = su
        .query_one(
            "SELECT event_id FROM webhook.deliveries WHERE id = $1",
            &[&failed_id],
        )
        .unwrap()
        .get(0);

    // The LMS writes while the slots rotate under it: every sign-up is
    // delivered, once.
    let started = Instant::now();
    let mut written = 1; // u0, above
    while rotations(&cluster) < 4 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no fourth rotation within 60 s:\n{}",
            cluster.log()
        );
        app.execute(
            "INSERT INTO lms.users (first_name, email) VALUES ('U', $1)",
            &[&format!("u{written}@example.com")],
        )
        .unwrap();
        written += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    // Every sign-up, and the failing webhook's one attempt.
    let got = receiver.wait_for(written + 1, Duration::from_secs(60));
    let ok: Vec<_> = got.iter().filter(|r| r.path == "/ok").collect();
    let ids: HashSet<String> = ok
        .iter()
        .map(|r| r.header("webhook-id").unwrap_or_default().to_string())
        .collect();
    let emails: HashSet<String> = ok
        .iter()
        .map(|r| {
            r.json()["payload"]["email"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(ok.len(), written, "each sign-up delivered once");
    assert_eq!(ids.len(), written);
    assert_eq!(emails.len(), written);

    // The failed delivery outlived every rotation with its event and its
    // attempt; the held one (older than retention) went with its slot, as
    // pruning dropped held deliveries before.
    assert_eq!(
        count(
            &mut su,
            &format!("SELECT count(*) FROM webhook.deliveries WHERE id = {failed_id} AND status = 'failed'")
        ),
        1
    );
    assert_eq!(
        count(
            &mut su,
            &format!("SELECT count(*) FROM webhook.events WHERE id = '{failed_event}'")
        ),
        1
    );
    assert_eq!(
        count(
            &mut su,
            &format!("SELECT count(*) FROM webhook.attempts WHERE delivery_id = {failed_id}")
        ),
        1
    );
    assert_eq!(
        count(
            &mut su,
            "SELECT count(*) FROM webhook.deliveries WHERE status = 'held'"
        ),
        0
    );
    // Delivered rows older than retention are gone with their slot; the
    // log kept is at most 1.5 times the retention old (plus a maintenance
    // interval).
    wait_for(
        Duration::from_secs(20),
        "the early log rotated away",
        || {
            (count(
                &mut su,
                "SELECT count(*) FROM webhook.deliveries WHERE status = 'delivered'
               AND created_at < now() - interval '5 s'",
            ) == 0)
                .then_some(())
        },
    );
    // Rotation deletes no finished row one by one: the slot goes by
    // TRUNCATE.
    std::thread::sleep(Duration::from_millis(1500));
    let deleted = count(
        &mut su,
        "SELECT coalesce(sum(n_tup_del), 0)::int8 FROM pg_stat_user_tables
          WHERE schemaname = 'webhook' AND relname ~ '^(events|deliveries|attempts)_[0-2]$'",
    );
    // A move between slots counts as a delete in the slot it leaves (the
    // failed delivery, its event and attempt, moved at each rotation).
    let moved = moved_by_rotations(&cluster);
    assert!(moved >= 3, "the failed delivery moved: {moved}");
    assert!(
        deleted <= moved,
        "{deleted} rows deleted, {moved} moved by rotations"
    );
    // Yet the worker's writes were counted there (the statistics are live).
    assert!(
        count(
            &mut su,
            "SELECT coalesce(sum(n_tup_ins), 0)::int8 FROM pg_stat_user_tables
              WHERE schemaname = 'webhook' AND relname ~ '^attempts_[0-2]$'",
        ) >= written as i64
    );

    // Sent again, the failed delivery goes out with its event's id and body.
    admin
        .execute(&format!("SELECT webhook.redeliver({failed_id})"), &[])
        .unwrap();
    receiver.respond_with(|_| Reply::status(200));
    let again = wait_for(Duration::from_secs(20), "the redelivery", || {
        receiver
            .requests()
            .into_iter()
            .filter(|r| r.path == "/down")
            .nth(1)
    });
    assert_eq!(again.header("webhook-id"), Some(failed_event.as_str()));
    assert!(
        again.body_text().contains("Physics"),
        "{}",
        again.body_text()
    );
    assert_eq!(
        count(&mut su, &format!("SELECT count(*) FROM webhook.deliveries WHERE id = {failed_id} AND webhook_id = {down}")),
        1
    );
}

#[test]
fn no_role_below_superuser_rotates_the_log_or_reads_a_slot_directly() {
    let cluster = Cluster::start("");
    cluster.create_roles("hook_admin");
    for role in ["hook_admin", "lms_app", "nobody"] {
        let mut c = cluster.client_as(role);
        let err = c
            .batch_execute("SELECT webhook.rotate_log('0 s')")
            .expect_err(role);
        assert!(
            db_message(&err).contains("permission denied"),
            "{role}: {}",
            db_message(&err)
        );
        for partition in [
            "webhook.events_0",
            "webhook.deliveries_1",
            "webhook.attempts_2",
        ] {
            let err = c
                .batch_execute(&format!("SELECT * FROM {partition}"))
                .expect_err(partition);
            assert!(
                db_message(&err).contains("permission denied"),
                "{role} {partition}: {}",
                db_message(&err)
            );
        }
        // Which slot is current is no secret.
        assert_eq!(
            count(
                &mut c,
                "SELECT count(*) FROM webhook.log_slots WHERE is_current"
            ),
            1
        );
    }
    // What the README promises a webhook_admin member: the whole log.
    let mut admin = cluster.client_as("hook_admin");
    assert_eq!(count(&mut admin, "SELECT count(*) FROM webhook.events"), 0);
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
fn a_snapshot_older_than_a_move_keeps_its_slot_from_being_emptied() {
    // TRUNCATE is not MVCC-safe: a transaction whose snapshot predates the
    // move of a slot's unfinished rows would see them in neither slot once
    // the slot is emptied. The rotation waits for it (as for a pg_dump).
    let cluster = Cluster::start("webhook.retention = '2s'\nwebhook.retry_schedule = '0s,1h,1h'");
    let receiver = Receiver::start();
    receiver.respond_with(|_| Reply::status(503));
    cluster.create_roles("hook_admin");
    let mut admin = cluster.client_as("hook_admin");
    admin
        .execute(
            "SELECT webhook.create_webhook('down', $1, '{group.created}')",
            &[&receiver.url("/down")],
        )
        .unwrap();
    let mut su = cluster.client();
    // The failed delivery is in slot 0, the third slot to be emptied.
    cluster
        .client_as("lms_app")
        .batch_execute("INSERT INTO lms.groups (name) VALUES ('Physics')")
        .unwrap();
    wait_for(Duration::from_secs(20), "the failed attempt", || {
        (count(
            &mut su,
            "SELECT count(*) FROM webhook.deliveries WHERE status = 'failed' AND slot = 0",
        ) == 1)
            .then_some(())
    });
    wait_for(Duration::from_secs(30), "two rotations", || {
        (rotations(&cluster) >= 2).then_some(())
    });
    // A reader takes its snapshot before slot 0's move, touching no log
    // table (it holds no lock that would stop the TRUNCATE).
    let mut reader = cluster.client_as("hook_admin");
    reader
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1;")
        .unwrap();
    wait_for(Duration::from_secs(30), "slot 0's move", || {
        (moved_by_rotations(&cluster) >= 3).then_some(())
    });
    // Rotations keep trying meanwhile (every second); none may empty it.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        rotations(&cluster),
        2,
        "a slot was emptied under an older snapshot"
    );
    assert_eq!(
        count(
            &mut reader,
            "SELECT count(*) FROM webhook.deliveries WHERE status = 'failed'"
        ),
        1,
        "the reader sees the failed delivery where its snapshot put it"
    );
    reader.batch_execute("COMMIT").unwrap();
    wait_for(Duration::from_secs(30), "the third rotation", || {
        (rotations(&cluster) >= 3).then_some(())
    });
    assert_eq!(
        count(
            &mut su,
            "SELECT count(*) FROM webhook.deliveries WHERE status = 'failed' AND slot <> 0"
        ),
        1,
        "the failed delivery was kept, in another slot"
    );
}

/// Deliveries not in their event's slot (there must be none: one
/// redelivered or replayed would not find its event).
fn apart_from_their_event(c: &mut impl postgres::GenericClient) -> i64 {
    c.query_one(
        "SELECT count(*) FROM webhook.deliveries d
          WHERE NOT EXISTS (SELECT FROM webhook.events e WHERE e.id = d.event_id AND e.slot = d.slot)",
        &[],
    )
    .unwrap()
    .get(0)
}

/// A failed delivery in slot 0 (the third slot to be emptied) beside a
/// delivered one of the same event, and a delivered sign-up, with two
/// rotations done: slot 0 is the next to be moved and emptied. Returns the
/// failed delivery's id.
fn failed_delivery_in_the_next_slot(cluster: &Cluster, receiver: &Receiver) -> i64 {
    receiver.respond_with(|r| {
        if r.path.starts_with("/down") {
            Reply::status(503)
        } else {
            Reply::status(200)
        }
    });
    cluster.create_roles("hook_admin");
    let mut admin = cluster.client_as("hook_admin");
    for (name, topic) in [
        ("down", "group.created"),
        ("ok", "group.created"),
        ("users", "user.created"),
    ] {
        admin
            .execute(
                "SELECT webhook.create_webhook($1, $2, ARRAY[$3::text])",
                &[&name, &receiver.url(&format!("/{name}")), &topic],
            )
            .unwrap();
    }
    let mut su = cluster.client();
    cluster
        .client_as("lms_app")
        .batch_execute(
            "INSERT INTO lms.groups (name) VALUES ('Physics');
             INSERT INTO lms.users (first_name, email) VALUES ('Ada', 'ada@example.com');",
        )
        .unwrap();
    let id = wait_for(Duration::from_secs(20), "the failed attempt", || {
        su.query_opt(
            "SELECT id FROM webhook.deliveries WHERE status = 'failed' AND slot = 0",
            &[],
        )
        .unwrap()
        .map(|r| r.get::<_, i64>(0))
    });
    wait_for(Duration::from_secs(30), "two rotations", || {
        (rotations(cluster) >= 2).then_some(())
    });
    id
}

#[test]
fn a_row_locked_in_the_oldest_slot_holds_its_move_back_and_nothing_is_lost() {
    // An admin's open transaction holds the failed delivery's row (a
    // redeliver not yet committed). The rotation's first step cannot move
    // it: it gives up after its lock timeout, logs nothing and empties
    // nothing, and tries again at the next maintenance.
    let cluster = Cluster::start("webhook.retention = '2s'\nwebhook.retry_schedule = '0s,1h,1h'");
    let receiver = Receiver::start();
    let id = failed_delivery_in_the_next_slot(&cluster, &receiver);
    let mut admin = cluster.client_as("hook_admin");
    admin.batch_execute("BEGIN").unwrap();
    admin
        .execute("SELECT webhook.redeliver($1)", &[&id])
        .unwrap();
    let moved_before = moved_by_rotations(&cluster);
    let rotations_before = rotations(&cluster);
    // Maintenance runs every second here: several tries meet the lock.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        moved_by_rotations(&cluster),
        moved_before,
        "a move went past a locked row"
    );
    assert_eq!(rotations(&cluster), rotations_before, "a slot was emptied");
    assert!(
        !cluster.log().contains("rotating the delivery log failed"),
        "a busy row lock is waited out, not an error:\n{}",
        cluster.log()
    );
    // The log's slots still say the move is to come.
    let mut su = cluster.client();
    assert_eq!(
        count(
            &mut su,
            "SELECT count(*) FROM webhook.log_slots WHERE drained_by IS NOT NULL"
        ),
        0
    );
    admin.batch_execute("COMMIT").unwrap();
    // Redelivered (it fails again), moved, and kept with its event.
    wait_for(Duration::from_secs(30), "the third rotation", || {
        (rotations(&cluster) > rotations_before).then_some(())
    });
    wait_for(
        Duration::from_secs(20),
        "the redelivered failure kept",
        || {
            let kept = su
            .query_one(
                "SELECT d.slot, d.status, (SELECT count(*) FROM webhook.events e WHERE e.id = d.event_id AND e.slot = d.slot)
                   FROM webhook.deliveries d WHERE d.id = $1",
                &[&id],
            )
            .unwrap();
            (kept.get::<_, i16>(0) != 0
                && kept.get::<_, String>(1) == "failed"
                && kept.get::<_, i64>(2) == 1)
                .then_some(())
        },
    );
    assert_eq!(apart_from_their_event(&mut su), 0);
    let sent_down = receiver
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/down"))
        .count();
    assert_eq!(sent_down, 2, "sent once, and once more when redelivered");
}

#[test]
fn a_retention_raised_between_the_two_steps_undoes_the_pending_step() {
    // Slot 0's unfinished rows are moved, and a reader's older snapshot
    // keeps it from being emptied. Then the retention is raised past the
    // slot's age: the slot is no longer due, the pending step is undone,
    // and the finished log in it stays once the reader is gone.
    let cluster = Cluster::start("webhook.retention = '2s'\nwebhook.retry_schedule = '0s,1h,1h'");
    let receiver = Receiver::start();
    failed_delivery_in_the_next_slot(&cluster, &receiver);
    let mut su = cluster.client();
    // With the sign-up's delivery, finished, in slot 0: what emptying it drops.
    let delivered_in_slot_0 =
        "SELECT count(*) FROM webhook.deliveries WHERE slot = 0 AND status = 'delivered'";
    assert_eq!(count(&mut su, delivered_in_slot_0), 2);
    let mut reader = cluster.client_as("hook_admin");
    reader
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1;")
        .unwrap();
    let moved_before = moved_by_rotations(&cluster);
    wait_for(Duration::from_secs(30), "slot 0's move", || {
        (moved_by_rotations(&cluster) > moved_before).then_some(())
    });
    assert_eq!(
        count(
            &mut su,
            "SELECT count(*) FROM webhook.log_slots WHERE slot = 0 AND drained_by IS NOT NULL"
        ),
        1
    );
    // The failed delivery's event went with it, and so did the event's
    // delivered delivery; the sign-up's stayed.
    assert_eq!(apart_from_their_event(&mut su), 0);
    assert_eq!(count(&mut su, delivered_in_slot_0), 1);
    let rotations_before = rotations(&cluster);
    // Older than slot 0's successor (opened at the first rotation, seconds
    // ago): slot 0 is not due any more.
    su.batch_execute("ALTER SYSTEM SET webhook.retention = '30s'")
        .unwrap();
    su.batch_execute("SELECT pg_reload_conf()").unwrap();
    wait_for(Duration::from_secs(20), "the pending step undone", || {
        (count(
            &mut su,
            "SELECT count(*) FROM webhook.log_slots WHERE drained_by IS NOT NULL",
        ) == 0)
            .then_some(())
    });
    reader.batch_execute("COMMIT").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        rotations(&cluster),
        rotations_before,
        "a slot no longer due was emptied"
    );
    // The failure was moved out of slot 0; its finished log is still there.
    assert_eq!(
        count(
            &mut su,
            "SELECT count(*) FROM webhook.deliveries WHERE status = 'failed' AND slot <> 0"
        ),
        1
    );
    assert_eq!(
        count(&mut su, delivered_in_slot_0),
        1,
        "slot 0's log is kept"
    );
    assert_eq!(apart_from_their_event(&mut su), 0);
}

#[test]
fn events_of_a_batch_fanned_out_in_part_move_with_their_deliveries() {
    // A rotation keeps the events the fan-out has not finished with: those
    // of a batch it reads a slice at a time. Events of its earlier slices
    // already have their deliveries, maybe all delivered: those go with
    // them, so that none is left in the slot to be emptied, apart from its
    // event. Here the progress row is set back, in a transaction rolled
    // back, to show the move a batch in progress.
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    cluster.create_roles("hook_admin");
    cluster
        .client_as("hook_admin")
        .execute(
            "SELECT webhook.create_webhook('ok', $1, '{group.created}')",
            &[&receiver.url("/ok")],
        )
        .unwrap();
    cluster
        .client_as("lms_app")
        .batch_execute(
            "INSERT INTO lms.groups (name) VALUES ('Physics'), ('Chemistry'), ('Biology')",
        )
        .unwrap();
    receiver.wait_for(3, Duration::from_secs(20));
    let mut su = cluster.client();
    wait_for(Duration::from_secs(20), "the deliveries recorded", || {
        (count(
            &mut su,
            "SELECT count(*) FROM webhook.deliveries WHERE status = 'delivered'",
        ) == 3)
            .then_some(())
    });
    let mut tx = su.transaction().unwrap();
    let slot: i16 = tx
        .query_one("SELECT DISTINCT slot FROM webhook.events", &[])
        .unwrap()
        .get(0);
    // The stored snapshot does not see the batch's transaction yet.
    tx.batch_execute(
        "UPDATE webhook.fanout SET snapshot = (SELECT format('%s:%s:', e.txid, e.txid)::pg_snapshot
                                                 FROM webhook.events e LIMIT 1)",
    )
    .unwrap();
    let moved: i64 = tx
        .query_one(
            "SELECT webhook.move_unfinished($1::smallint, (($1::smallint + 1) % 3)::smallint)",
            &[&slot],
        )
        .unwrap()
        .get(0);
    // Three events, their three deliveries and three attempts.
    assert_eq!(moved, 9);
    assert_eq!(apart_from_their_event(&mut tx), 0);
    let left: i64 = tx
        .query_one(
            "SELECT count(*) FROM webhook.deliveries WHERE slot = $1",
            &[&slot],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    tx.rollback().unwrap();
}
