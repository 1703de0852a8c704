//! The library loads under shared_preload_libraries, the worker runs, the
//! extension can be created and used, and the worker obeys its signals.

use std::time::Duration;
use webhook_emitter_e2e::{wait_for, Cluster, Receiver};

#[test]
fn preloaded_library_worker_and_extension_work() {
    let cluster = Cluster::start("");
    let mut c = cluster.client();
    let preload: String = c
        .query_one("SHOW shared_preload_libraries", &[])
        .unwrap()
        .get(0);
    assert_eq!(preload, "webhook_emitter");
    let db: String = c.query_one("SHOW webhook.database", &[]).unwrap().get(0);
    assert_eq!(db, "", "every database with the extension is served");
    let launchers: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'webhook_emitter launcher'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(launchers, 1);
    let topics: i64 = c
        .query_one("SELECT count(*) FROM webhook.topics", &[])
        .unwrap()
        .get(0);
    assert!(topics > 0, "the documented topics are installed");
    let receiver = Receiver::start();
    let id: i64 = c
        .query_one(
            "SELECT webhook.create_webhook('crm', $1, '{user.created}')",
            &[&receiver.url("/")],
        )
        .unwrap()
        .get(0);
    let listed: i64 = c
        .query_one(
            "SELECT count(*) FROM webhook.webhooks_for_topic('user.created')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(listed, 1);
    let first = cluster.worker_pid();

    // SIGHUP: settings are reloaded from the main loop.
    c.batch_execute("ALTER SYSTEM SET webhook.batch_size = 7")
        .unwrap();
    c.batch_execute("SELECT pg_reload_conf()").unwrap();
    // SIGTERM: the worker exits cleanly and the launcher starts it again.
    c.execute("SELECT pg_terminate_backend($1)", &[&first])
        .unwrap();
    wait_for(Duration::from_secs(20), "the worker to restart", || {
        let pid: Option<i32> = c
            .query_opt(
                "SELECT pid FROM pg_stat_activity
                  WHERE backend_type = 'webhook_emitter' AND datname = 'postgres'",
                &[],
            )
            .unwrap()
            .map(|r| r.get(0));
        pid.filter(|p| *p != first)
    });
    assert!(cluster
        .log()
        .contains("webhook_emitter: webhook_emitter delivery worker for postgres exiting"));
    // And it still delivers.
    c.batch_execute("INSERT INTO lms.users (first_name, email) VALUES ('Jo', 'jo@x.example')")
        .unwrap();
    let got = receiver.wait_for(1, Duration::from_secs(10));
    assert_eq!(got[0].json()["resource"], "user");
    let _ = id;
}

/// `webhook.batch_wait`: under a stream of commits, the worker gathers
/// them for that long into one fan-out (fewer, larger batches: less of the
/// worker's CPU per event). Each delivery made by a fan-out carries that
/// transaction's start as its first attempt's time, so the batches can be
/// counted. Out of range, or set by a role below superuser, it is refused.
#[test]
fn a_longer_batch_wait_gathers_a_stream_of_commits_into_fewer_batches() {
    let cluster = Cluster::start("");
    cluster.create_roles("ops");
    let receiver = Receiver::start();
    let mut su = cluster.client();
    let mut ops = cluster.client_as("ops");
    ops.execute(
        "SELECT webhook.create_webhook('groups', $1, '{group.created}')",
        &[&receiver.url("/groups")],
    )
    .unwrap();
    let refused = ops
        .batch_execute("SET webhook.batch_wait = '10ms'")
        .unwrap_err();
    let refused = refused.as_db_error().map(|e| e.message().to_string());
    assert!(
        refused
            .as_deref()
            .is_some_and(|m| m.contains("webhook.batch_wait")),
        "{refused:?}"
    );
    let refused = su
        .batch_execute("ALTER SYSTEM SET webhook.batch_wait = '2s'")
        .unwrap_err();
    let refused = refused.as_db_error().map(|e| e.message().to_string());
    assert!(
        refused
            .as_deref()
            .is_some_and(|m| m.contains("webhook.batch_wait") && m.contains("1000")),
        "{refused:?}"
    );
    let mut lms = cluster.client_as("lms_app");
    // A stream of 20 single-row commits, 10 ms apart; the batches that
    // delivered them, counted by their fan-out's transaction time.
    let stream = |lms: &mut postgres::Client, su: &mut postgres::Client, round: &str| -> i64 {
        for i in 0..20 {
            lms.execute(
                "INSERT INTO lms.groups (name) VALUES ($1)",
                &[&format!("{round} {i}")],
            )
            .unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
        wait_for(Duration::from_secs(30), "the stream delivered", || {
            let delivered: i64 = su
                .query_one(
                    "SELECT count(*) FROM webhook.deliveries d JOIN webhook.events e ON e.id = d.event_id
                      WHERE d.status = 'delivered' AND e.body->'payload'->>'group_name' LIKE $1 || ' %'",
                    &[&round],
                )
                .unwrap()
                .get(0);
            (delivered == 20).then_some(())
        });
        su.query_one(
            "SELECT count(DISTINCT d.last_attempt_at) FROM webhook.deliveries d JOIN webhook.events e ON e.id = d.event_id
              WHERE e.body->'payload'->>'group_name' LIKE $1 || ' %'",
            &[&round],
        )
        .unwrap()
        .get(0)
    };
    // The default (2 ms): about a batch per commit.
    let by_default = stream(&mut lms, &mut su, "default");
    su.batch_execute("ALTER SYSTEM SET webhook.batch_wait = '1s'")
        .unwrap();
    su.batch_execute("SELECT pg_reload_conf()").unwrap();
    // The worker reloads at its next turn (at most a poll interval away).
    std::thread::sleep(Duration::from_millis(1500));
    let gathered = stream(&mut lms, &mut su, "gathered");
    // At most: the first commit at once, the rest after the wait, and a
    // poll's fan-out between them.
    assert!(
        gathered <= 3 && by_default >= 10,
        "batches: {gathered} with a 1 s wait, {by_default} with the default"
    );
}
