//! One cluster, many databases (a SaaS LMS with a database per school):
//! every database where the extension is created gets its own delivery
//! worker from the launcher, woken by its own commits; DROP EXTENSION and
//! DROP DATABASE stop it; CREATE DATABASE ... TEMPLATE works while the
//! template's worker runs. Busy databases share `webhook.max_concurrency`
//! equally.

use std::time::{Duration, Instant};
use webhook_emitter_e2e::{wait_fanned_out, wait_for, Client, Cluster, Receiver, Reply};

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

/// Requests of `path` in flight when each request of any path arrived,
/// for arrivals in `[from, to)`: a request is in flight for `hold` after
/// its arrival (the receiver answers after a fixed delay).
fn max_in_flight(
    requests: &[webhook_emitter_e2e::Recorded],
    path: Option<&str>,
    from: Instant,
    to: Instant,
    hold: Duration,
) -> usize {
    requests
        .iter()
        .filter(|r| r.at >= from && r.at < to)
        .map(|r| {
            requests
                .iter()
                .filter(|o| path.is_none_or(|p| o.path == p))
                .filter(|o| o.at <= r.at && r.at.duration_since(o.at) < hold)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn busy_databases_share_the_http_concurrency_fairly() {
    // Alone, a database's worker would have 6 requests out to this slow
    // receiver; three busy databases get 2 each.
    let cluster = Cluster::start(
        "webhook.max_concurrency = 6\nwebhook.max_per_endpoint = 6\nwebhook.poll_interval = '100ms'",
    );
    let receiver = Receiver::start();
    let delay = Duration::from_millis(300);
    receiver.respond_with(move |_| Reply {
        delay,
        ..Reply::status(200)
    });
    let mut admin = cluster.client();
    let schools = ["school_a", "school_b", "school_c"];
    let mut clients = Vec::new();
    for db in schools {
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .unwrap();
        let mut c = setup_school(&cluster, db, &receiver);
        // Held until all three are released together.
        c.batch_execute(
            "SELECT webhook.update_webhook(id, enabled => false) FROM webhook.webhooks",
        )
        .unwrap();
        c.batch_execute(
            "INSERT INTO lms.groups (name) SELECT 'g' || i FROM generate_series(1, 36) i",
        )
        .unwrap();
        clients.push(c);
    }
    wait_workers(
        &mut admin,
        &["postgres", "school_a", "school_b", "school_c"],
    );
    // Held, each event made a delivery before the webhooks are enabled.
    for c in &mut clients {
        wait_fanned_out(c);
    }
    for c in &mut clients {
        c.batch_execute("SELECT webhook.update_webhook(id, enabled => true) FROM webhook.webhooks")
            .unwrap();
    }
    let requests = receiver.wait_for(3 * 36, Duration::from_secs(60));
    let first = requests.iter().map(|r| r.at).min().unwrap();
    // The last arrival of the database that finished first: until then all
    // three were busy. The first second is left out (each worker starts
    // before it sees the others busy).
    let all_busy_until = schools
        .iter()
        .map(|db| {
            requests
                .iter()
                .filter(|r| r.path == format!("/{db}"))
                .map(|r| r.at)
                .max()
                .unwrap()
        })
        .min()
        .unwrap();
    let from = first + Duration::from_secs(1);
    assert!(
        all_busy_until > from + Duration::from_secs(1),
        "the three drains overlapped for too short a time to judge"
    );
    let hold = delay - Duration::from_millis(30);
    for db in schools {
        let path = format!("/{db}");
        let most = max_in_flight(&requests, Some(&path), from, all_busy_until, hold);
        assert!(
            (1..=2).contains(&most),
            "{db} had {most} requests in flight at once; its share is 2 of 6"
        );
    }
    let total = max_in_flight(&requests, None, from, all_busy_until, hold);
    assert!(
        total <= 6,
        "{total} requests in flight across the databases; webhook.max_concurrency is 6"
    );
}
