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
        .batch_execute("ALTER SYSTEM SET webhook.batch_wait = '10ms'")
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
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
    // delivered them, counted by their fan-out's transaction time, and how
    // many were delivered in the first one's.
    let stream = |lms: &mut postgres::Client,
                  su: &mut postgres::Client,
                  round: &str|
     -> (i64, i64) {
        for i in 0..20 {
            lms.execute(
                "INSERT INTO lms.groups (name) VALUES ($1)",
                &[&format!("{round} {i}")],
            )
            .unwrap();
            if i == 0 {
                // The first commit is claimed at once, before the others
                // (well under a 1 s wait: a loop that gathered it would
                // take the wait), whatever the machine's load.
                wait_for(
                    Duration::from_millis(900),
                    "the first commit claimed at once",
                    || {
                        su.query_one(
                            "SELECT (SELECT count(*) FROM webhook.in_flight f JOIN webhook.events e ON e.id = f.event_id
                                      WHERE e.body->'payload'->>'group_name' = $1)
                                  + (SELECT count(*) FROM webhook.deliveries d JOIN webhook.events e ON e.id = d.event_id
                                      WHERE e.body->'payload'->>'group_name' = $1)",
                            &[&format!("{round} 0")],
                        )
                        .ok()
                        .and_then(|r| (r.get::<_, i64>(0) > 0).then_some(()))
                    },
                );
            } else {
                std::thread::sleep(Duration::from_millis(10));
            }
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
        let batches = su
            .query_one(
                "SELECT count(DISTINCT d.last_attempt_at),
                        count(*) FILTER (WHERE d.last_attempt_at = (SELECT min(f.last_attempt_at) FROM webhook.deliveries f
                                                                      JOIN webhook.events g ON g.id = f.event_id
                                                                     WHERE g.body->'payload'->>'group_name' LIKE $1 || ' %'))
                   FROM webhook.deliveries d JOIN webhook.events e ON e.id = d.event_id
                  WHERE e.body->'payload'->>'group_name' LIKE $1 || ' %'",
                &[&round],
            )
            .unwrap();
        (batches.get(0), batches.get(1))
    };
    // The default (2 ms): about a batch per commit.
    let (by_default, _) = stream(&mut lms, &mut su, "default");
    // (The wait is never longer than the poll interval. With both at 1 s,
    // a fan-out of the poll always ran within the last second: the first
    // commit must not wait for it.)
    su.batch_execute("ALTER SYSTEM SET webhook.batch_wait = '1s'")
        .unwrap();
    su.batch_execute("ALTER SYSTEM SET webhook.poll_interval = '1s'")
        .unwrap();
    su.batch_execute("SELECT pg_reload_conf()").unwrap();
    // The worker reloads at its next turn (at most a poll interval away).
    std::thread::sleep(Duration::from_millis(1500));
    let (gathered, first) = stream(&mut lms, &mut su, "gathered");
    // The first commit at once, alone (the poll's fan-outs do not make it
    // wait), the rest after the wait, maybe a poll's fan-out between them.
    assert!(
        (2..=3).contains(&gathered) && first == 1 && by_default >= 10,
        "batches: {gathered} with a 1 s wait (the first of {first}), {by_default} with the default"
    );
}

/// A `webhook.ca_file` the worker cannot read leaves it without an HTTP
/// client: deliveries wait (nothing is lost) and the worker waits with
/// them. It used to retry the commit's wake-up at once, for ever: a core
/// spent until the setting was fixed.
#[test]
fn a_worker_without_an_http_client_waits_without_spinning() {
    let cluster = Cluster::start("webhook.ca_file = '/nonexistent/webhook_ca.pem'");
    cluster.create_roles("ops");
    let receiver = Receiver::start();
    let mut ops = cluster.client_as("ops");
    ops.execute(
        "SELECT webhook.create_webhook('groups', $1, '{group.created}')",
        &[&receiver.url("/groups")],
    )
    .unwrap();
    let mut lms = cluster.client_as("lms_app");
    lms.batch_execute("INSERT INTO lms.groups (name) VALUES ('Physics')")
        .unwrap();
    let worker = cluster.worker_pid();
    std::thread::sleep(Duration::from_millis(500));
    let cpu_secs = |pid| {
        webhook_emitter_e2e::process_cpu_secs(pid)
            .unwrap_or_else(|| panic!("/proc/{pid}/stat could not be read"))
    };
    let before = cpu_secs(worker);
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_secs(worker) - before;
    // A spinning loop uses all of the 3 s; waiting, a few ticks.
    assert!(used < 1.0, "the worker used {used} s of CPU in 3 s");
    assert!(cluster.log().contains("cannot build the HTTP client"));
    assert_eq!(receiver.count(), 0);
    // Fixed: the delivery goes out.
    let mut su = cluster.client();
    su.batch_execute("ALTER SYSTEM SET webhook.ca_file = ''")
        .unwrap();
    su.batch_execute("SELECT pg_reload_conf()").unwrap();
    webhook_emitter_e2e::wait_delivered(&mut su, 1, Duration::from_secs(30));
    assert_eq!(receiver.count(), 1);
}
