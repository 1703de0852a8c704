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
