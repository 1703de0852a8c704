//! One cluster, many databases (a SaaS LMS with a database per school):
//! every database where the extension is created gets its own delivery
//! worker from the launcher, woken by its own commits; DROP EXTENSION and
//! DROP DATABASE stop it; CREATE DATABASE ... TEMPLATE works while the
//! template's worker runs.

use std::time::Duration;
use webhook_emitter_e2e::{wait_for, Client, Cluster, Receiver};

fn workers(c: &mut Client) -> Vec<String> {
    c.query(
        "SELECT datname FROM pg_stat_activity
          WHERE backend_type = 'webhook_emitter' AND datname IS NOT NULL ORDER BY datname",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

fn wait_workers(c: &mut Client, expected: &[&str]) {
    wait_for(
        Duration::from_secs(20),
        &format!("delivery workers in {expected:?}"),
        || (workers(c) == expected).then_some(()),
    );
}

fn setup_school(cluster: &Cluster, db: &str, receiver: &Receiver) -> Client {
    let mut c = cluster.client_db(db);
    c.batch_execute("CREATE EXTENSION webhook_emitter").unwrap();
    c.execute(
        "SELECT webhook.create_webhook('school', $1, '{group.created}')",
        &[&receiver.url(&format!("/{db}"))],
    )
    .unwrap();
    c
}

fn insert_group(c: &mut Client, name: &str) {
    c.execute("INSERT INTO lms.groups (name) VALUES ($1)", &[&name])
        .unwrap();
}

fn paths(receiver: &Receiver) -> Vec<String> {
    let mut p: Vec<String> = receiver.requests().iter().map(|r| r.path.clone()).collect();
    p.sort();
    p
}

#[test]
fn every_database_with_the_extension_gets_its_own_worker() {
    // A long poll interval: deliveries within seconds prove each database's
    // worker is woken by its own commits.
    let cluster = Cluster::start("webhook.poll_interval = '60s'");
    let receiver = Receiver::start();
    let mut admin = cluster.client();
    for db in ["school_a", "school_b", "school_c", "plain"] {
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .unwrap();
    }
    let mut a = setup_school(&cluster, "school_a", &receiver);
    let mut b = setup_school(&cluster, "school_b", &receiver);
    let mut c = setup_school(&cluster, "school_c", &receiver);
    wait_workers(
        &mut admin,
        &["postgres", "school_a", "school_b", "school_c"],
    );

    insert_group(&mut a, "a1");
    insert_group(&mut b, "b1");
    insert_group(&mut c, "c1");
    receiver.wait_for(3, Duration::from_secs(5));
    assert_eq!(paths(&receiver), ["/school_a", "/school_b", "/school_c"]);
    // "plain" has no extension: its worker found none and was not restarted.
    std::thread::sleep(Duration::from_secs(2));
    assert!(!workers(&mut admin).contains(&"plain".to_string()));

    // DROP EXTENSION stops that database's worker; the tables stay, and
    // CREATE EXTENSION brings a worker back.
    b.batch_execute("DROP EXTENSION webhook_emitter CASCADE")
        .unwrap();
    wait_workers(&mut admin, &["postgres", "school_a", "school_c"]);
    insert_group(&mut b, "b2 without the extension");
    let b = setup_school(&cluster, "school_b", &receiver);
    wait_workers(
        &mut admin,
        &["postgres", "school_a", "school_b", "school_c"],
    );
    let mut b = b;
    insert_group(&mut b, "b3");
    receiver.wait_for(4, Duration::from_secs(5));

    // DROP DATABASE (without FORCE) succeeds: its worker is stopped first.
    drop(c);
    admin.batch_execute("DROP DATABASE school_c").unwrap();
    wait_workers(&mut admin, &["postgres", "school_a", "school_b"]);

    // A school database created from another one as its template: the
    // template's worker steps aside for the copy and comes back; the copy
    // (extension and webhook included) gets a worker of its own.
    drop(a);
    admin
        .batch_execute("CREATE DATABASE school_d TEMPLATE school_a")
        .unwrap();
    wait_workers(
        &mut admin,
        &["postgres", "school_a", "school_b", "school_d"],
    );
    let mut d = cluster.client_db("school_d");
    insert_group(&mut d, "d1");
    let mut a = cluster.client_db("school_a");
    insert_group(&mut a, "a2");
    let got = receiver.wait_for(6, Duration::from_secs(10));
    let from_a: Vec<String> = got
        .iter()
        .filter(|r| r.path == "/school_a")
        .map(|r| {
            r.json()["payload"]["group_name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(from_a.contains(&"d1".to_string()), "{from_a:?}");
    assert!(from_a.contains(&"a2".to_string()), "{from_a:?}");

    // pg_terminate_backend: the launcher starts that worker again.
    let pid: i32 = admin
        .query_one(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'webhook_emitter' AND datname = 'school_b'",
            &[],
        )
        .unwrap()
        .get(0);
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap();
    wait_for(
        Duration::from_secs(20),
        "school_b's worker restarted",
        || {
            admin
            .query_opt(
                "SELECT pid FROM pg_stat_activity WHERE backend_type = 'webhook_emitter' AND datname = 'school_b' AND pid <> $1",
                &[&pid],
            )
            .unwrap()
            .map(|_| ())
        },
    );
    insert_group(&mut b, "b4");
    receiver.wait_for(7, Duration::from_secs(10));
    assert_eq!(receiver.count(), 7, "{:?}", paths(&receiver));
}
