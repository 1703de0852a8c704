//! What a DBA must be able to trust: DROP EXTENSION keeps application data,
//! pg_dump/pg_restore keeps webhooks, settings, sequences and the queue, a
//! disabled webhook holds its events, and deleting a webhook never leaves
//! orphan deliveries behind a concurrent writer.

use std::time::Duration;
use webhook_emitter_e2e::{wait_fanned_out, wait_for, Cluster, Receiver, Reply};

fn count(c: &mut postgres::Client, query: &str) -> i64 {
    c.query_one(query, &[]).expect(query).get(0)
}

#[test]
fn drop_extension_keeps_the_lms_tables_and_a_new_create_extension_emits_again() {
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    let mut c = cluster.client();
    c.batch_execute(
        "INSERT INTO lms.users (first_name, email) VALUES ('Ada', 'ada@example.com'), ('Alan', 'alan@example.com');
         INSERT INTO lms.groups (name) VALUES ('Physics');",
    )
    .unwrap();
    c.batch_execute("DROP EXTENSION webhook_emitter CASCADE")
        .unwrap();
    assert_eq!(count(&mut c, "SELECT count(*) FROM lms.users"), 2);
    assert_eq!(count(&mut c, "SELECT count(*) FROM lms.groups"), 1);
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'webhook'::regnamespace"
        ),
        0,
        "the extension's own tables are gone"
    );

    c.batch_execute("CREATE EXTENSION webhook_emitter").unwrap();
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM lms.users"),
        2,
        "CREATE EXTENSION keeps the tables it finds"
    );
    c.execute(
        "SELECT webhook.create_webhook('again', $1, '{user.created}')",
        &[&receiver.url("/")],
    )
    .unwrap();
    c.batch_execute(
        "INSERT INTO lms.users (first_name, email) VALUES ('Grace', 'grace@example.com')",
    )
    .unwrap();
    // The worker restarts after its extension vanished, then delivers.
    let got = receiver.wait_for(1, Duration::from_secs(30));
    let body = got[0].json();
    assert_eq!(body["payload"]["email"], "grace@example.com");
    assert_eq!(
        body["payload"]["user_id"], 3,
        "the identity sequence went on"
    );
}

#[test]
fn dump_and_restore_keep_webhooks_settings_sequences_and_the_queue() {
    // The source cluster delivers only for "postgres", so what "school"
    // queues is still pending when it is dumped.
    let source = Cluster::start_bare("webhook.database = 'postgres'");
    let receiver = Receiver::start();
    source
        .client()
        .batch_execute("CREATE DATABASE school")
        .unwrap();
    let mut c = source.client_db("school");
    c.batch_execute("CREATE EXTENSION webhook_emitter").unwrap();
    c.execute(
        "SELECT webhook.create_webhook('CRM', $1, '{user.created,group.created}',
             auth_username => 'crm', auth_password => 'pw', generate_signing_secret => true)",
        &[&receiver.url("/crm")],
    )
    .unwrap();
    // The first event is fanned out before the dump (by hand: no worker
    // serves "school" here), the other two are not.
    c.batch_execute(
        "SELECT webhook.set_tenant_id('acme-academy');
         INSERT INTO lms.users (first_name, email) VALUES ('Ada', 'ada@example.com');",
    )
    .unwrap();
    let made: i64 = c
        .query_one("SELECT made FROM webhook.fan_out()", &[])
        .unwrap()
        .get(0);
    assert_eq!(made, 1);
    c.batch_execute("INSERT INTO lms.groups (name) VALUES ('Physics'), ('Chemistry');")
        .unwrap();
    let webhook: String = c
        .query_one("SELECT row_to_json(w)::text FROM webhook.webhooks w", &[])
        .unwrap()
        .get(0);
    assert_eq!(count(&mut c, "SELECT count(*) FROM webhook.deliveries"), 1);
    let events: Vec<String> = c
        .query("SELECT id FROM webhook.events ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(events.len(), 3);
    let dump = source.dir.join("school.dump");
    let dump = dump.to_str().unwrap();
    source.run("pg_dump", &["-Fc", "-d", "school", "-f", dump]);

    let target = Cluster::start_bare("webhook.database = 'school'");
    target
        .client()
        .batch_execute("CREATE DATABASE school")
        .unwrap();
    // pg_restore fails (non-zero exit) on any error, a duplicate settings row
    // included. In one transaction, as the README says: the worker sees the
    // queue whole, with the fan-out's progress row that goes with it.
    target.run(
        "pg_restore",
        &[
            "--exit-on-error",
            "--single-transaction",
            "-d",
            "school",
            dump,
        ],
    );
    let mut r = target.client_db("school");
    let restored: String = r
        .query_one("SELECT row_to_json(w)::text FROM webhook.webhooks w", &[])
        .unwrap()
        .get(0);
    assert_eq!(restored, webhook, "the webhook comes back with its secrets");
    let tenant: String = r
        .query_one("SELECT tenant_id FROM webhook.settings", &[])
        .unwrap()
        .get(0);
    assert_eq!(tenant, "acme-academy");
    assert_eq!(count(&mut r, "SELECT count(*) FROM webhook.settings"), 1);

    // The restored queue is delivered, with the same event ids: the
    // delivery made before the dump, and those of the two events that had
    // none, made once.
    let got = receiver.wait_for(3, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.count(), 3, "an event was delivered twice");
    wait_for(Duration::from_secs(10), "the three recorded", || {
        (count(
            &mut r,
            "SELECT count(*) FROM webhook.deliveries WHERE status = 'delivered'",
        ) == 3)
            .then_some(())
    });
    assert_eq!(count(&mut r, "SELECT count(*) FROM webhook.deliveries"), 3);
    let mut ids: Vec<String> = got
        .iter()
        .filter_map(|g| g.header("webhook-id").map(str::to_owned))
        .collect();
    ids.sort();
    assert_eq!(ids, events);

    // Sequences carried over: new rows do not collide.
    r.batch_execute(
        "INSERT INTO lms.users (first_name, email) VALUES ('Alan', 'alan@example.com');
         INSERT INTO lms.groups (name) VALUES ('Biology');",
    )
    .unwrap();
    let new_webhook: i64 = r
        .query_one(
            "SELECT webhook.create_webhook('second', 'https://example.com/h', '{user.created}')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(new_webhook, 2);
    receiver.wait_for(4, Duration::from_secs(30));
    // (A new delivery is written when its outcome is recorded; one that
    // took a restored id would never be.)
    wait_for(
        Duration::from_secs(30),
        "delivery ids to go on after the restored ones",
        || (count(&mut r, "SELECT max(id) FROM webhook.deliveries") > 3).then_some(()),
    );
}

/// Held deliveries of webhook `name`, as webhook_list and webhook_health show them.
fn held(c: &mut postgres::Client, name: &str) -> (i64, i64) {
    let row = c
        .query_one(
            "SELECT l.held, h.held FROM webhook.webhook_list l JOIN webhook.webhook_health h ON h.webhook_id = l.id
              WHERE l.name = $1",
            &[&name],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

#[test]
fn a_webhook_disabled_by_hand_holds_its_events_and_gets_them_when_enabled() {
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    let mut c = cluster.client();
    c.execute(
        "SELECT webhook.create_webhook('hand', $1, '{group.created}')",
        &[&receiver.url("/")],
    )
    .unwrap();
    c.batch_execute("SELECT webhook.disable_webhook(1, 'maintenance')")
        .unwrap();
    for name in ["first", "second", "third"] {
        c.execute("INSERT INTO lms.groups (name) VALUES ($1)", &[&name])
            .unwrap();
    }
    wait_fanned_out(&mut c);
    assert_eq!(held(&mut c, "hand"), (3, 3));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.count(), 0, "nothing is sent while disabled");

    // Enabling makes them due in the order they were created (the oldest
    // is claimed first); several are sent at once, so arrival order is free.
    // (next_attempt_at is left alone by claiming and by a success.)
    let n: i64 = c
        .query_one("SELECT webhook.enable_webhook(1)", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 3);
    let due_order: Vec<String> = c
        .query(
            "SELECT e.body->'payload'->>'group_name' FROM webhook.deliveries d
               JOIN webhook.events e ON e.id = d.event_id ORDER BY d.next_attempt_at, d.id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(due_order, ["first", "second", "third"], "oldest due first");
    let got = receiver.wait_for(3, Duration::from_secs(20));
    let mut names: Vec<String> = got
        .iter()
        .map(|g| {
            g.json()["payload"]["group_name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["first", "second", "third"]);
    assert_eq!(held(&mut c, "hand"), (0, 0));

    // The global switch off still queues nothing at all.
    c.batch_execute(
        "SELECT webhook.set_enabled(false); INSERT INTO lms.groups (name) VALUES ('off');",
    )
    .unwrap();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM webhook.events WHERE body::text LIKE '%\"off\"%'"
        ),
        0
    );
}

#[test]
fn a_webhook_disabled_by_410_holds_its_events_until_enabled_or_discarded() {
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    receiver.respond_with(|_| Reply::status(410));
    let mut c = cluster.client();
    c.execute(
        "SELECT webhook.create_webhook('gone', $1, '{group.created}')",
        &[&receiver.url("/")],
    )
    .unwrap();
    c.batch_execute("INSERT INTO lms.groups (name) VALUES ('g0')")
        .unwrap();
    wait_for(
        Duration::from_secs(20),
        "the 410 to disable the webhook",
        || {
            let off = count(
                &mut c,
                "SELECT count(*) FROM webhook.webhooks WHERE NOT enabled",
            );
            (off == 1).then_some(())
        },
    );
    c.batch_execute("INSERT INTO lms.groups (name) VALUES ('g1'), ('g2')")
        .unwrap();
    wait_fanned_out(&mut c);
    assert_eq!(held(&mut c, "gone"), (2, 2));
    receiver.respond_with(|_| Reply::status(200));
    let discarded: i64 = c
        .query_one(
            "SELECT webhook.enable_webhook(1, discard_held => true)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(discarded, 2);
    c.batch_execute("INSERT INTO lms.groups (name) VALUES ('g3')")
        .unwrap();
    let got = receiver.wait_for(2, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    let names: Vec<String> = receiver
        .requests()
        .iter()
        .map(|g| {
            g.json()["payload"]["group_name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(names, ["g0", "g3"], "held events were discarded: {got:?}");
    assert_eq!(held(&mut c, "gone"), (0, 0));
}

#[test]
fn a_webhook_disabled_automatically_holds_its_events() {
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
    c.batch_execute("INSERT INTO lms.groups (name) VALUES ('before')")
        .unwrap();
    wait_for(Duration::from_secs(20), "the auto-disable", || {
        let off = count(
            &mut c,
            "SELECT count(*) FROM webhook.webhooks WHERE NOT enabled",
        );
        (off == 1).then_some(())
    });
    c.batch_execute("INSERT INTO lms.groups (name) VALUES ('during')")
        .unwrap();
    // The failing delivery and the new one are both held.
    wait_for(Duration::from_secs(10), "both deliveries held", || {
        (held(&mut c, "flaky") == (2, 2)).then_some(())
    });
    receiver.respond_with(|_| Reply::status(200));
    let before = receiver.count();
    c.batch_execute("SELECT webhook.enable_webhook(1)").unwrap();
    wait_for(Duration::from_secs(20), "both delivered", || {
        let n = count(
            &mut c,
            "SELECT count(*) FROM webhook.deliveries WHERE status = 'delivered'",
        );
        (n == 2).then_some(())
    });
    assert!(receiver.count() >= before + 2);
}

#[test]
fn deleting_a_webhook_while_its_events_are_queued_leaves_no_orphans_and_no_errors() {
    // Only "postgres" is served: the fan-out is run here by hand.
    let cluster = Cluster::start_bare("webhook.database = 'postgres'");
    cluster
        .client()
        .batch_execute("CREATE DATABASE school")
        .unwrap();
    let mut setup = cluster.client_db("school");
    setup
        .batch_execute(
            "CREATE EXTENSION webhook_emitter;
             SELECT webhook.create_webhook('a', 'https://example.com/a', '{group.created}');
             SELECT webhook.create_webhook('b', 'https://example.com/b', '{group.created}');
             SELECT webhook.create_webhook('c', 'https://example.com/c', '{group.created}');",
        )
        .unwrap();

    // 1. A writer queuing (not committed) holds no webhook: the delete
    //    removes it at once, and the writer's commit succeeds.
    let mut writer = cluster.client_db("school");
    writer
        .batch_execute(
            "BEGIN; INSERT INTO lms.groups (name) VALUES ('w1'); SET CONSTRAINTS ALL IMMEDIATE;",
        )
        .unwrap();
    let mut deleter = cluster.client_db("school");
    deleter
        .batch_execute("SET statement_timeout = '5s'; SELECT webhook.delete_webhook(1)")
        .unwrap();
    writer.batch_execute("COMMIT").unwrap();
    assert_eq!(
        count(
            &mut setup,
            "SELECT count(*) FROM webhook.webhooks WHERE id = 1"
        ),
        0
    );

    // 2. A delete not yet committed when the fan-out runs: the fan-out
    //    waits for it, then skips the deleted webhook without an error.
    writer
        .batch_execute("INSERT INTO lms.groups (name) VALUES ('w2')")
        .unwrap();
    let mut deleter = cluster.client_db("school");
    deleter
        .batch_execute("BEGIN; SELECT webhook.delete_webhook(2);")
        .unwrap();
    let mut fan_out = cluster.client_db("school");
    let handle =
        std::thread::spawn(move || fan_out.query_one("SELECT made FROM webhook.fan_out()", &[]));
    std::thread::sleep(Duration::from_millis(300));
    deleter.batch_execute("COMMIT").unwrap();
    let made: i64 = handle.join().unwrap().expect("the fan-out succeeds").get(0);
    assert_eq!(made, 2, "both events go to webhook c alone");

    assert_eq!(count(&mut setup, "SELECT count(*) FROM lms.groups"), 2);
    assert_eq!(
        count(
            &mut setup,
            "SELECT count(*) FROM webhook.deliveries d
              WHERE NOT EXISTS (SELECT FROM webhook.webhooks w WHERE w.id = d.webhook_id)"
        ),
        0
    );
    assert_eq!(
        count(
            &mut setup,
            "SELECT count(*) FROM webhook.deliveries WHERE webhook_id = 3 AND status = 'pending'"
        ),
        2
    );
    assert_eq!(
        count(&mut setup, "SELECT count(*) FROM webhook.deliveries"),
        2
    );
}

#[test]
fn an_admin_transaction_holding_a_webhook_row_does_not_stall_delivery() {
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    let mut c = cluster.client();
    c.execute(
        "SELECT webhook.create_webhook('locked', $1, '{group.created}')",
        &[&receiver.url("/")],
    )
    .unwrap();
    // An admin's transaction left open on the webhook row.
    let mut admin = cluster.client();
    admin
        .batch_execute("BEGIN; UPDATE webhook.webhooks SET description = 'x' WHERE id = 1;")
        .unwrap();
    c.batch_execute("INSERT INTO lms.groups (name) SELECT 'g' || i FROM generate_series(1, 20) i")
        .unwrap();
    receiver.wait_for(20, Duration::from_secs(20));
    wait_for(
        Duration::from_secs(10),
        "20 deliveries recorded as delivered",
        || {
            let n = count(
                &mut c,
                "SELECT count(*) FROM webhook.deliveries WHERE status = 'delivered'",
            );
            (n == 20).then_some(())
        },
    );
    admin.batch_execute("COMMIT").unwrap();
}
