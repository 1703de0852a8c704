//! Citus (issue 30): a coordinator and two worker nodes, each preloading
//! citus and webhook_emitter. Events written to a distributed table are
//! queued and delivered by the node holding the shard; the registry is
//! changed on the coordinator and seen by every node; the lms schema,
//! distributed whole, emits the documented topics from its node; the whole
//! cluster's log is read on the coordinator. Shard moves and a node's
//! failover: citus_moves.rs.
//!
//! Citus is in no package registry here: these tests run when the
//! PostgreSQL under test has it installed (`citus.so` in its pkglibdir)
//! and print that they were skipped when it does not.

use std::time::Duration;
use webhook_emitter_e2e::citus::{citus_missing, notes_watched, received_notes, Citus};
use webhook_emitter_e2e::{db_message, wait_for, Client, Receiver};

fn count(c: &mut Client, sql: &str) -> i64 {
    c.query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {}", db_message(&e)))
        .get(0)
}

#[test]
fn events_are_queued_and_delivered_by_the_node_holding_the_shard() {
    if citus_missing() {
        return;
    }
    let citus = Citus::start(2);
    let receiver = Receiver::start();
    let mut c = citus.coordinator.client();
    notes_watched(&mut c, &receiver.url("/notes"), false);

    c.batch_execute(
        "INSERT INTO public.notes SELECT g, 'note ' || g FROM generate_series(1, 200) g",
    )
    .unwrap();
    wait_for(Duration::from_secs(60), "200 notes delivered", || {
        (receiver.count() >= 200).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    let seen = received_notes(&receiver);
    assert_eq!(seen.len(), 200, "every note once");
    assert!(seen.values().all(|&n| n == 1), "none twice: {seen:?}");

    // Each worker node queued and delivered its own shards' events; the
    // coordinator (no shards) none.
    let mut total = 0;
    for w in &citus.workers {
        let mut wc = w.client();
        let delivered = count(
            &mut wc,
            "SELECT count(*) FROM webhook.deliveries WHERE status = 'delivered'",
        );
        assert!(delivered > 0, "node {} delivered nothing", w.port);
        assert_eq!(
            count(&mut wc, "SELECT count(*) FROM webhook.events"),
            delivered
        );
        total += delivered;
    }
    assert_eq!(total, 200);
    assert_eq!(count(&mut c, "SELECT count(*) FROM webhook.events"), 0);

    // A topic built at commit with a condition, on a distributed table of
    // schema public: its function reads the row again through the table's
    // name, from the trigger on the shard (which counts as on the table).
    for sql in [
        "CREATE TABLE public.payments (id bigint PRIMARY KEY, status text NOT NULL)",
        "SELECT create_distributed_table('public.payments', 'id')",
        "CREATE FUNCTION public.payment_body(p_id bigint) RETURNS json LANGUAGE plpgsql STABLE AS $$
         BEGIN RETURN (SELECT json_build_object('payment_id', p.id, 'status', p.status)
                         FROM public.payments p WHERE p.id = p_id); END $$",
        "SELECT webhook.define_topic('payment.paid', 'public.payments', 'public.payment_body(bigint)',
             operations => '{insert,update}', columns => '{status}', condition => 'NEW.status = ''paid''',
             sample_body => '{\"payment_id\": 1, \"status\": \"paid\"}')",
    ] {
        c.batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {}", db_message(&e)));
    }
    c.execute(
        "SELECT webhook.create_webhook('payments', $1, '{payment.paid}')",
        &[&receiver.url("/payments")],
    )
    .unwrap();
    c.batch_execute(
        "INSERT INTO public.payments SELECT g, 'open' FROM generate_series(1, 20) g;
         UPDATE public.payments SET status = 'paid' WHERE id <= 10;",
    )
    .unwrap_or_else(|e| panic!("payments: {}", db_message(&e)));
    wait_for(Duration::from_secs(30), "10 payments delivered", || {
        let n = receiver
            .requests()
            .iter()
            .filter(|r| r.path == "/payments")
            .count();
        (n >= 10).then_some(())
    });

    // Held on the nodes while disabled, dropped there by enable_webhook's
    // discard_held: nothing of it is sent.
    c.batch_execute(
        "SELECT webhook.disable_webhook((SELECT id FROM webhook.webhooks WHERE name = 'payments'));
         UPDATE public.payments SET status = 'paid' WHERE id > 10;",
    )
    .unwrap();
    let held = || -> i64 {
        citus
            .workers
            .iter()
            .map(|w| {
                count(
                    &mut w.client(),
                    "SELECT count(*) FROM webhook.deliveries WHERE status = 'held'",
                )
            })
            .sum()
    };
    wait_for(Duration::from_secs(30), "10 held on the nodes", || {
        (held() == 10).then_some(())
    });
    c.batch_execute(
        "SELECT webhook.enable_webhook((SELECT id FROM webhook.webhooks WHERE name = 'payments'), discard_held => true)",
    )
    .unwrap_or_else(|e| panic!("enable_webhook discard_held: {}", db_message(&e)));
    assert_eq!(held(), 0, "the nodes dropped what they held");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        receiver
            .requests()
            .iter()
            .filter(|r| r.path == "/payments")
            .count(),
        10,
        "nothing held was sent"
    );

    // The whole cluster's log and metrics, asked on the coordinator by a
    // role with no privilege beyond PUBLIC's.
    c.batch_execute("CREATE ROLE reader LOGIN").unwrap();
    let mut reader = citus.coordinator.client_as("reader");
    wait_for(
        Duration::from_secs(20),
        "every node's health counting the 200",
        || {
            let n = count(
                &mut reader,
                "SELECT coalesce(sum((entry ->> 'successes_24h')::bigint), 0)::bigint
               FROM webhook.cluster_rows('webhook.webhook_health') WHERE entry ->> 'name' = 'notes'",
            );
            (n == 200).then_some(())
        },
    );
    assert_eq!(
        count(
            &mut reader,
            "SELECT count(DISTINCT nodeid) FROM webhook.cluster_rows('webhook.webhook_health')"
        ),
        3
    );
    let metrics: String = reader
        .query_one("SELECT webhook.cluster_metrics()", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        metrics
            .matches("# TYPE webhook_deliveries_total counter")
            .count(),
        1,
        "one family, one TYPE line: {metrics}"
    );
    let delivered: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("webhook_deliveries_total{node=") && l.contains("outcome=\"delivered\"")
        })
        .filter(|l| l.contains("webhook=\"notes\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(delivered, 200.0, "{metrics}");
    let err = reader
        .query(
            "SELECT * FROM webhook.cluster_rows('webhook.registry_copy')",
            &[],
        )
        .expect_err("not a log view");
    assert!(
        db_message(&err).starts_with("log_view: "),
        "{}",
        db_message(&err)
    );

    // The LMS's own tables stay on the coordinator, as on a single server:
    // a documented topic fires and is delivered there.
    c.execute(
        "SELECT webhook.create_webhook('signups', $1, '{user.created}')",
        &[&receiver.url("/signups")],
    )
    .unwrap();
    c.batch_execute("INSERT INTO lms.users (first_name, last_name, email) VALUES ('Ada', 'L', 'ada@example.com')")
        .unwrap();
    wait_for(Duration::from_secs(30), "user.created delivered", || {
        receiver
            .requests()
            .iter()
            .any(|r| r.path == "/signups")
            .then_some(())
    });
}

#[test]
fn the_registry_is_changed_on_the_coordinator_and_seen_by_every_node() {
    if citus_missing() {
        return;
    }
    let citus = Citus::start(2);
    let mut su = citus.coordinator.client();
    // Roles made on the coordinator reach every node (Citus propagates them).
    su.batch_execute(
        "CREATE ROLE ops LOGIN; GRANT webhook_admin TO ops;
         CREATE ROLE lms_app LOGIN;",
    )
    .unwrap();
    let mut ops = citus.coordinator.client_as("ops");
    ops.batch_execute(
        "SELECT webhook.create_webhook('crm', 'https://crm.example.com/hook', '{user.created}');
         SELECT webhook.set_tenant_id('school-7');",
    )
    .expect("a webhook_admin member manages webhooks on the coordinator");
    ops.batch_execute(
        "SELECT webhook.update_webhook((SELECT id FROM webhook.webhooks WHERE name = 'crm'),
                                       auth_username => 'u', auth_password => 's3cret')",
    )
    .expect("update_webhook");
    for node in citus.nodes() {
        let mut n = node.client();
        let row = n
            .query_one(
                "SELECT w.url, w.auth_password, s.tenant_id, webhook.topic_wanted('user.created')
                   FROM webhook.webhooks w, webhook.settings s WHERE w.name = 'crm'",
                &[],
            )
            .unwrap_or_else(|e| panic!("node {}: {}", node.port, db_message(&e)));
        assert_eq!(row.get::<_, String>(0), "https://crm.example.com/hook");
        assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("s3cret"));
        assert_eq!(row.get::<_, String>(2), "school-7");
        assert!(
            row.get::<_, bool>(3),
            "node {}: the topic is wanted",
            node.port
        );
    }

    // On a worker node the registry is not changed: it would differ from
    // every other node's. The error says where to go; nothing changed.
    let mut ops_on_worker = citus.workers[0].client_as("ops");
    let err = ops_on_worker
        .batch_execute(
            "SELECT webhook.create_webhook('local', 'https://x.example.com/', '{user.created}')",
        )
        .expect_err("registry change on a worker node");
    let msg = db_message(&err);
    assert!(msg.contains("changed on its coordinator"), "{msg}");
    let err = ops_on_worker
        .batch_execute("SELECT webhook.set_enabled(false)")
        .expect_err("switch on a worker node");
    assert!(db_message(&err).contains("coordinator"));
    for node in citus.nodes() {
        let mut n = node.client();
        assert_eq!(count(&mut n, "SELECT count(*) FROM webhook.webhooks"), 1);
        assert_eq!(
            count(
                &mut n,
                "SELECT count(*) FROM webhook.settings WHERE enabled"
            ),
            1
        );
    }

    // The copy holds secrets: no role below superuser reads it, on any node.
    for (who, node) in [("ops", &citus.coordinator), ("lms_app", &citus.workers[1])] {
        let mut c = node.client_as(who);
        let err = c
            .query("SELECT content FROM webhook.registry_copy", &[])
            .expect_err("registry_copy read");
        assert!(db_message(&err).contains("permission denied"), "{who}");
        let err = c
            .query("SELECT webhook.distribute_registry()", &[])
            .expect_err("distribute_registry");
        assert!(db_message(&err).contains("permission denied"), "{who}");
    }

    // A node added later gets the extension from Citus. Its placement of
    // the copy comes with the next table Citus distributes, before the
    // copy's trigger exists there: its worker takes the registry from it
    // when it starts (and once a minute); distribute_registry brings it
    // level at once.
    let added = Citus::node();
    su.execute(
        "SELECT citus_add_node('127.0.0.1', $1)",
        &[&i32::from(added.port)],
    )
    .unwrap();
    su.batch_execute(
        "CREATE TABLE public.later (id bigint PRIMARY KEY);
         SELECT create_distributed_table('public.later', 'id');",
    )
    .unwrap();
    added.pg_ctl_stop("fast");
    added.pg_ctl_start();
    let mut a = added.client();
    wait_for(Duration::from_secs(30), "the added node's registry", || {
        (count(
            &mut a,
            "SELECT count(*) FROM webhook.webhooks w, webhook.settings s
              WHERE w.name = 'crm' AND w.auth_password = 's3cret' AND s.tenant_id = 'school-7'",
        ) == 1)
            .then_some(())
    });
    // (A new session: this one's connection to the restarted node is gone.)
    let mut su = citus.coordinator.client();
    su.batch_execute("SELECT webhook.distribute_registry()")
        .unwrap_or_else(|e| panic!("distribute_registry again: {}", db_message(&e)));
    drop(a);

    // Every node has the coordinator's topic rows as they are, sample
    // bodies in their key order (the envelope's order comes from it).
    let sample: String = su
        .query_one(
            "SELECT sample_body::text FROM webhook.topics WHERE topic = 'user.updated'",
            &[],
        )
        .unwrap()
        .get(0);
    for node in citus.workers.iter().chain(std::iter::once(&added)) {
        let got: String = node
            .client()
            .query_one(
                "SELECT sample_body::text FROM webhook.topics WHERE topic = 'user.updated'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(got, sample, "node {}", node.port);
    }

    // The guard does not give way to a setting anyone may SET.
    let err = ops_on_worker
        .batch_execute(
            "SET webhook.registry_apply = 'on';
             SELECT webhook.create_webhook('sneaky', 'https://x.example.com/', '{user.created}')",
        )
        .expect_err("registry change on a worker node with the apply setting");
    assert!(
        db_message(&err).contains("changed on its coordinator"),
        "{}",
        db_message(&err)
    );
    ops_on_worker
        .batch_execute("RESET webhook.registry_apply")
        .unwrap();
    // Nor is a placement of the copy readable on a worker node.
    let placement: String = citus.workers[0]
        .client()
        .query_one(
            "SELECT 'webhook.registry_copy_' || shardid FROM pg_dist_shard
              WHERE logicalrelid = 'webhook.registry_copy'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    let err = ops_on_worker
        .query(&format!("SELECT content FROM {placement}"), &[])
        .expect_err("a placement of the copy");
    assert!(
        db_message(&err).contains("permission denied"),
        "{}",
        db_message(&err)
    );

    // A reference table's rows are on every node: refused as a topic's
    // table (each event would be queued once per copy).
    su.batch_execute(
        "CREATE TABLE public.refs (id bigint PRIMARY KEY);
         SELECT create_reference_table('public.refs');",
    )
    .unwrap();
    let err = su
        .batch_execute("SELECT webhook.watch('public.refs')")
        .expect_err("watch of a reference table");
    assert!(
        db_message(&err).contains("Citus reference table"),
        "{}",
        db_message(&err)
    );

    // Disabling and enabling on the coordinator reach every node (the
    // coordinator announces the disabling; a node's prepared transaction
    // may not NOTIFY).
    ops.batch_execute(
        "SELECT webhook.disable_webhook((SELECT id FROM webhook.webhooks WHERE name = 'crm'), 'maintenance')",
    )
    .unwrap_or_else(|e| panic!("disable_webhook: {}", db_message(&e)));
    for node in citus.nodes().chain(std::iter::once(&added)) {
        let mut n = node.client();
        assert_eq!(
            count(
                &mut n,
                "SELECT count(*) FROM webhook.webhooks WHERE NOT enabled"
            ),
            1
        );
    }
    ops.batch_execute(
        "SELECT webhook.enable_webhook((SELECT id FROM webhook.webhooks WHERE name = 'crm'))",
    )
    .unwrap_or_else(|e| panic!("enable_webhook: {}", db_message(&e)));
    for node in citus.nodes().chain(std::iter::once(&added)) {
        let mut n = node.client();
        assert_eq!(
            count(
                &mut n,
                "SELECT count(*) FROM webhook.webhooks WHERE enabled"
            ),
            1
        );
    }

    // Deleting on the coordinator deletes everywhere.
    ops.batch_execute(
        "SELECT webhook.delete_webhook((SELECT id FROM webhook.webhooks WHERE name = 'crm'))",
    )
    .unwrap();
    // (On a worker node as delete_webhook does when writers hold the row:
    // marked, then removed by that node's worker; no longer sent to.)
    for node in citus.nodes().chain(std::iter::once(&added)) {
        let mut n = node.client();
        wait_for(
            Duration::from_secs(10),
            "the webhook deleted on every node",
            || {
                (count(
                    &mut n,
                    "SELECT count(*) FROM webhook.webhooks WHERE deletion_requested_at IS NULL OR enabled",
                ) == 0)
                    .then_some(())
            },
        );
    }
}

/// The documented topics' vendor examples (the contract's copy).
fn example_of(topic: &str) -> Option<serde_json::Value> {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/spec/examples")
        .join(format!("{topic}.json"));
    let text = std::fs::read_to_string(file).ok()?;
    serde_json::from_str(&text).ok()
}

#[test]
fn documented_topics_fire_on_the_node_holding_the_distributed_lms_schema() {
    if citus_missing() {
        return;
    }
    let citus = Citus::start(2);
    let receiver = Receiver::start();
    let mut c = citus.coordinator.client();
    // Schema-based sharding: the lms tables move, whole and unchanged, to
    // one worker node, with their triggers.
    c.batch_execute("SET citus.enable_unsafe_triggers = on")
        .unwrap();
    c.batch_execute("SELECT citus_schema_distribute('lms')")
        .unwrap_or_else(|e| panic!("citus_schema_distribute: {}", db_message(&e)));
    let lms_port: i32 = c
        .query_one(
            "SELECT nodeport FROM citus_shards WHERE table_name = 'lms.users'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    c.execute(
        "SELECT webhook.create_webhook('all', $1, ARRAY(SELECT topic FROM webhook.topics WHERE builtin))",
        &[&receiver.url("/all")],
    )
    .unwrap();
    let base = std::fs::read_to_string(webhook_emitter_e2e::fixture("lms_base.sql")).unwrap();
    c.batch_execute(&base)
        .unwrap_or_else(|e| panic!("lms_base.sql: {}", db_message(&e)));
    // The LMS writes as a role with table privileges only.
    c.batch_execute(
        "CREATE ROLE lms_app LOGIN;
         GRANT USAGE ON SCHEMA lms TO lms_app;
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA lms TO lms_app;
         GRANT USAGE ON ALL SEQUENCES IN SCHEMA lms TO lms_app;",
    )
    .unwrap();
    let mut c = citus.coordinator.client_as("lms_app");
    // One topic of each timing: at commit (with rows written after the
    // user's in the same transaction), before a delete, a condition on an
    // update (the fixtures), and per statement (a transition table: one
    // statement enrolling two users; the fixture's cross join is an INSERT
    // ... SELECT that Citus does not plan).
    for topic in ["user.created", "order.placed", "user.deleted"] {
        let sql =
            std::fs::read_to_string(webhook_emitter_e2e::fixture(&format!("topics/{topic}.sql")))
                .unwrap();
        let mut tx = c.transaction().unwrap();
        tx.batch_execute(&sql)
            .unwrap_or_else(|e| panic!("{topic}: {}", db_message(&e)));
        tx.commit()
            .unwrap_or_else(|e| panic!("{topic} commit: {}", db_message(&e)));
    }
    c.batch_execute(
        "INSERT INTO lms.course_enrollments (user_id, course_id)
         SELECT u.id, (SELECT c.id FROM lms.courses c WHERE c.slug = 'introduction-to-webhooks')
           FROM lms.users u WHERE u.email IN ('student@academy.example', 'sam.davis@academy.example')",
    )
    .unwrap_or_else(|e| panic!("course.enrolled: {}", db_message(&e)));
    let topics = [
        "user.created",
        "order.placed",
        "user.deleted",
        "course.enrolled",
    ];
    let mut problems = Vec::new();
    for topic in topics {
        let bodies = wait_for(
            Duration::from_secs(30),
            &format!("{topic} delivered"),
            || {
                let mine: Vec<serde_json::Value> = citus
                .nodes()
                .flat_map(|n| {
                    let mut nc = n.client();
                    nc.query(
                        "SELECT e.body::text FROM webhook.events e JOIN webhook.deliveries d ON d.event_id = e.id
                          WHERE e.topic = $1 AND d.status = 'delivered'",
                        &[&topic],
                    )
                    .unwrap()
                    .iter()
                    .map(|r| serde_json::from_str(r.get::<_, &str>(0)).unwrap())
                    .collect::<Vec<serde_json::Value>>()
                })
                .collect();
                (!mine.is_empty()).then_some(mine)
            },
        );
        if let Some(example) = example_of(topic) {
            for body in &bodies {
                webhook_emitter_e2e::assert_shape(&example, body, topic, &mut problems);
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");

    // Queued and delivered by the node holding the lms shards alone.
    for node in citus.nodes() {
        let mut nc = node.client();
        let events = count(&mut nc, "SELECT count(*) FROM webhook.events");
        if i32::from(node.port) == lms_port {
            assert!(events > 0);
            assert_eq!(
                count(
                    &mut nc,
                    "SELECT count(*) FROM webhook.deliveries WHERE status <> 'delivered'"
                ),
                0
            );
        } else {
            assert_eq!(events, 0, "node {} queued events", node.port);
        }
    }
    assert!(receiver.count() > 0);
}
