//! Hardening: hostile input is an error, never a crash; URL secrets stay
//! out of the PUBLIC delivery log; response headers are capped; special
//! addresses are refused; a bad retry schedule does not kill the worker;
//! Send Test obeys statement_timeout and locks no webhook row; a delivery
//! whose event was deleted by hand fails saying why.

use postgres::error::SqlState;
use postgres::NoTls;
use std::time::{Duration, Instant};
use webhook_emitter_e2e::{
    db_message, free_port, wait_delivered, wait_fanned_out, wait_for, Client, Cluster, Receiver,
    Reply,
};

/// Every delivery's last_error and every attempt's error, one per line.
fn logged_errors(c: &mut Client) -> String {
    c.query(
        "SELECT coalesce(last_error, '') FROM webhook.deliveries
         UNION ALL SELECT coalesce(error, '') FROM webhook.attempts",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get::<_, String>(0))
    .collect::<Vec<_>>()
    .join("\n")
}

fn wait_dead(c: &mut Client, n: i64) {
    wait_for(
        Duration::from_secs(20),
        &format!("{n} dead deliveries"),
        || {
            let dead: i64 = c
                .query_one(
                    "SELECT count(*) FROM webhook.deliveries WHERE status = 'dead'",
                    &[],
                )
                .ok()?
                .get(0);
            (dead == n).then_some(())
        },
    );
}

#[test]
fn deep_input_is_an_error_and_the_server_keeps_running() {
    let cluster = Cluster::start("");
    let mut c = cluster.client();
    c.batch_execute("CREATE ROLE nobody LOGIN").unwrap();
    let mut watcher = cluster.client();
    let pid_before: i32 = watcher
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let deep = "SELECT webhook.xml_to_json(repeat('<a type=\"array\">', 300000) || repeat('</a>', 300000))";

    // A role without grants gets an error (refused or denied), not a crash.
    let mut nobody = cluster.client_as("nobody");
    let err = nobody.query_one(deep, &[]).unwrap_err();
    assert!(err.as_db_error().is_some(), "{err}");
    nobody.query_one("SELECT 1", &[]).unwrap();

    // The superuser may run it: statement too complex.
    let err = c.query_one(deep, &[]).unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::STATEMENT_TOO_COMPLEX), "{err}");
    assert!(
        db_message(&err).starts_with("xml: nesting deeper than 128 levels"),
        "{}",
        db_message(&err)
    );

    // Deep templates: refused by the parser...
    let err = c
        .query_one(
            "SELECT webhook.check_body_template(repeat('[', 100000) || repeat(']', 100000), '{}')",
            &[],
        )
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&SqlState::INVALID_PARAMETER_VALUE),
        "{err}"
    );
    // ...and a template just inside the limit whose output nests the body
    // too deeply for XML is refused by the renderer.
    let template = format!("{}\"{{{{$body}}}}\"{}", "[".repeat(127), "]".repeat(127));
    let err = c
        .query_one(
            "SELECT * FROM webhook.preview('user.created', 'application/xml', $1)",
            &[&template],
        )
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::STATEMENT_TOO_COMPLEX), "{err}");
    assert!(
        db_message(&err).starts_with("body: nesting deeper"),
        "{}",
        db_message(&err)
    );

    // No backend crashed: the other session is the same and still works.
    let pid_after: i32 = watcher
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    assert_eq!(pid_before, pid_after);
    c.query_one("SELECT 1", &[]).unwrap();
    assert!(!cluster.log().contains("terminated by signal"));
}

#[test]
fn url_secrets_stay_out_of_the_delivery_log() {
    let cluster = Cluster::start("webhook.retry_schedule = '0s'");
    let receiver = Receiver::start();
    receiver.respond_with(|r| {
        if r.path.starts_with("/redirect") {
            Reply {
                headers: vec![(
                    "Location".into(),
                    "http://user:SECRETPW@127.0.0.1:1/next?token=SECRET456".into(),
                )],
                ..Reply::status(302)
            }
        } else {
            Reply::status(200)
        }
    });
    let mut c = cluster.client();
    let closed = free_port();
    let closed_url = format!("http://127.0.0.1:{closed}/h?token=SECRET123");
    let id: i64 = c
        .query_one(
            "SELECT webhook.create_webhook('closed', $1, '{group.created}')",
            &[&closed_url],
        )
        .unwrap()
        .get(0);
    c.execute(
        "SELECT webhook.create_webhook('redirect', $1, '{group.created}')",
        &[&receiver.url("/redirect?token=SECRET789")],
    )
    .unwrap();
    c.batch_execute("INSERT INTO lms.groups (name) VALUES ('g')")
        .unwrap();
    wait_dead(&mut c, 2);

    let logged = logged_errors(&mut c);
    for secret in ["SECRET123", "SECRET456", "SECRET789", "SECRETPW"] {
        assert!(!logged.contains(secret), "{secret} leaked:\n{logged}");
    }
    assert!(
        logged.contains(&format!("http://127.0.0.1:{closed}/<redacted>?<redacted>")),
        "{logged}"
    );
    assert!(
        logged.contains("redirect 302 to http://127.0.0.1:1/<redacted>?<redacted> not followed"),
        "{logged}"
    );

    // Send Test returns (and logs) the same redacted text.
    let err: Option<String> = c
        .query_one("SELECT error FROM webhook.send_test($1)", &[&id])
        .unwrap()
        .get(0);
    let err = err.unwrap_or_default();
    assert!(
        !err.contains("SECRET123") && err.contains("?<redacted>"),
        "{err}"
    );
    assert!(!logged_errors(&mut c).contains("SECRET123"));

    // SQL can mask URLs the same way.
    let masked: String = c
        .query_one(
            "SELECT webhook.redact_url(url) FROM webhook.webhooks WHERE id = $1",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        masked,
        format!("http://127.0.0.1:{closed}/<redacted>?<redacted>")
    );
}

#[test]
fn response_headers_are_capped_per_attempt() {
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    // 90 headers of 1 kB (the client refuses more than 100 headers, or a
    // head over 128 kB).
    receiver.respond_with(|_| Reply {
        headers: (0..90)
            .map(|i| (format!("X-Big-{i}"), "v".repeat(1000)))
            .collect(),
        ..Reply::status(200)
    });
    let mut c = cluster.client();
    c.execute(
        "SELECT webhook.create_webhook('h', $1, '{group.created}')",
        &[&receiver.url("/")],
    )
    .unwrap();
    c.batch_execute("INSERT INTO lms.groups (name) VALUES ('g')")
        .unwrap();
    wait_delivered(&mut c, 1, Duration::from_secs(10));
    let row = c
        .query_one(
            "SELECT (SELECT count(*) FROM jsonb_object_keys(response_headers)),
                    length(response_headers::text),
                    response_headers->>'x-webhook-emitter-truncated'
               FROM webhook.attempts",
            &[],
        )
        .unwrap();
    let (keys, length, marker): (i64, i32, Option<String>) = (row.get(0), row.get(1), row.get(2));
    assert!((2..=50).contains(&keys), "{keys} headers kept");
    assert!(length < 10_000, "{length} bytes of headers kept");
    assert_eq!(marker.as_deref(), Some("true"));
}

#[test]
fn special_and_embedded_addresses_are_refused() {
    let cluster = Cluster::start("webhook.retry_schedule = '0s'");
    let receiver = Receiver::start();
    let p = receiver.port;
    let targets: Vec<(&str, String)> = vec![
        ("v4-compatible", format!("http://[::127.0.0.1]:{p}/")),
        ("v4-mapped", format!("http://[::ffff:127.0.0.1]:{p}/")),
        ("nat64", format!("http://[64:ff9b::7f00:1]:{p}/")),
        ("nat64-local", format!("http://[64:ff9b:1::7f00:1]:{p}/")),
        ("6to4", format!("http://[2002:7f00:1::1]:{p}/")),
        (
            "teredo",
            format!("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]:{p}/"),
        ),
        ("site-local", format!("http://[fec0::1]:{p}/")),
        ("multicast6", format!("http://[ff02::1]:{p}/")),
        ("doc6", format!("http://[2001:db8::1]:{p}/")),
        ("doc4-1", "http://192.0.2.1/".into()),
        ("doc4-2", "http://198.51.100.1/".into()),
        ("doc4-3", "http://203.0.113.1/".into()),
        ("benchmark", "http://198.18.0.1/".into()),
        ("this-network", "http://0.0.0.1/".into()),
        ("reserved", "http://240.0.0.1/".into()),
        ("broadcast", "http://255.255.255.255/".into()),
        ("multicast4", "http://224.0.0.1/".into()),
    ];
    let mut c = cluster.client();
    for (name, url) in &targets {
        c.execute(
            "SELECT webhook.create_webhook($1, $2, '{group.created}')",
            &[name, url],
        )
        .unwrap_or_else(|e| panic!("{name} {url}: {e}"));
    }
    c.batch_execute("INSERT INTO lms.groups (name) VALUES ('g')")
        .unwrap();
    wait_dead(&mut c, targets.len() as i64);
    for (name, _) in &targets {
        let row = c
            .query_one(
                "SELECT d.last_status_code, d.last_error FROM webhook.deliveries d
                   JOIN webhook.webhooks w ON w.id = d.webhook_id WHERE w.name = $1",
                &[name],
            )
            .unwrap();
        let (code, err): (Option<i32>, Option<String>) = (row.get(0), row.get(1));
        let err = err.unwrap_or_default();
        assert_eq!(code, None, "{name}: {err}");
        assert!(err.contains("non-public address"), "{name}: {err}");
    }
    assert_eq!(receiver.count(), 0, "a refused address was reached");
}

#[test]
fn an_allow_listed_name_does_not_open_private_addresses() {
    let cluster =
        Cluster::start("webhook.allowed_hosts = 'localhost'\nwebhook.retry_schedule = '0s'");
    let receiver = Receiver::start();
    let mut c = cluster.client();
    c.execute(
        "SELECT webhook.create_webhook('local', $1, '{group.created}')",
        &[&format!("http://localhost:{}/", receiver.port)],
    )
    .unwrap();
    c.batch_execute("INSERT INTO lms.groups (name) VALUES ('g')")
        .unwrap();
    wait_dead(&mut c, 1);
    let err: String = c
        .query_one("SELECT last_error FROM webhook.deliveries", &[])
        .unwrap()
        .get(0);
    assert!(err.contains("does not open non-public addresses"), "{err}");
    assert_eq!(receiver.count(), 0);

    // Listing the addresses as well opens them.
    c.batch_execute("ALTER SYSTEM SET webhook.allowed_hosts = 'localhost, 127.0.0.1, ::1'")
        .unwrap();
    c.batch_execute("SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    c.batch_execute("SELECT webhook.redeliver(id) FROM webhook.deliveries")
        .unwrap();
    receiver.wait_for(1, Duration::from_secs(10));
    wait_delivered(&mut c, 1, Duration::from_secs(10));
}

#[test]
fn an_out_of_range_retry_schedule_does_not_kill_the_worker() {
    // The second delay overflowed make_interval when the failure was recorded.
    let cluster = Cluster::start("webhook.retry_schedule = '0s,999999999999h'");
    let receiver = Receiver::start();
    receiver.respond_with(|_| Reply::status(500));
    let mut c = cluster.client();
    let pid = cluster.worker_pid();
    c.execute(
        "SELECT webhook.create_webhook('r', $1, '{group.created}')",
        &[&receiver.url("/")],
    )
    .unwrap();
    c.batch_execute("INSERT INTO lms.groups (name) VALUES ('g1')")
        .unwrap();
    receiver.wait_for(1, Duration::from_secs(10));
    // Recorded with the default schedule: the second attempt after 5 s +-10%.
    let wait: f64 = wait_for(
        Duration::from_secs(10),
        "the failure to be recorded",
        || {
            c.query_opt(
                "SELECT extract(epoch FROM next_attempt_at - last_attempt_at)::float8
                   FROM webhook.deliveries WHERE status = 'failed'",
                &[],
            )
            .ok()
            .flatten()
            .map(|r| r.get(0))
        },
    );
    assert!((4.0..7.0).contains(&wait), "next attempt after {wait} s");
    assert!(cluster.log().contains("webhook.retry_schedule"));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(cluster.worker_pid(), pid, "the worker restarted");
    // And it still delivers.
    receiver.respond_with(|_| Reply::status(200));
    c.batch_execute("INSERT INTO lms.groups (name) VALUES ('g2')")
        .unwrap();
    wait_for(Duration::from_secs(10), "a delivery", || {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM webhook.deliveries WHERE status = 'delivered'",
                &[],
            )
            .ok()?
            .get(0);
        (n >= 1).then_some(())
    });
    assert_eq!(cluster.worker_pid(), pid);
}

#[test]
fn send_test_obeys_statement_timeout_and_locks_no_webhook_row() {
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    receiver.respond_with(|_| Reply {
        delay: Duration::from_secs(30),
        ..Reply::status(200)
    });
    let mut c = cluster.client();
    let id: i64 = c
        .query_one(
            "SELECT webhook.create_webhook('slow', $1, '{group.created}')",
            &[&receiver.url("/")],
        )
        .unwrap()
        .get(0);

    // While one Send Test waits, another session updates the webhook row.
    let conn = cluster.conn_string();
    let waiting = std::thread::spawn(move || {
        let mut s = Client::connect(&conn, NoTls).expect("connect");
        s.batch_execute("SET statement_timeout = '4s'").unwrap();
        let t0 = Instant::now();
        let err = s
            .query("SELECT * FROM webhook.send_test($1)", &[&id])
            .unwrap_err();
        (t0.elapsed(), err.code().cloned())
    });
    receiver.wait_for(1, Duration::from_secs(10));
    let mut other = cluster.client();
    other.batch_execute("SET lock_timeout = '1s'").unwrap();
    other
        .execute(
            "UPDATE webhook.webhooks SET description = 'edited during Send Test' WHERE id = $1",
            &[&id],
        )
        .unwrap();
    let (took, code) = waiting.join().unwrap();
    assert_eq!(code, Some(SqlState::QUERY_CANCELED));
    assert!(took < Duration::from_secs(8), "cancelled after {took:?}");

    // statement_timeout = 1s ends it within a few seconds, with 57014.
    c.batch_execute("SET statement_timeout = '1s'").unwrap();
    let t0 = Instant::now();
    let err = c
        .query("SELECT * FROM webhook.send_test($1)", &[&id])
        .unwrap_err();
    let took = t0.elapsed();
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err}");
    assert!(took < Duration::from_secs(4), "cancelled after {took:?}");
    c.batch_execute("RESET statement_timeout").unwrap();
    let tests: i64 = c
        .query_one("SELECT count(*) FROM webhook.deliveries WHERE is_test", &[])
        .unwrap()
        .get(0);
    assert_eq!(tests, 0, "a cancelled Send Test was recorded");
}

#[test]
fn a_delivery_whose_event_was_deleted_fails_saying_why() {
    // The events are the queue's data: a DBA who deletes one by hand leaves
    // its deliveries without a body. They are attempted and fail, saying
    // why (retried on the schedule, then dead), and nothing is sent.
    let cluster = Cluster::start("webhook.retry_schedule = '0s'");
    let receiver = Receiver::start();
    let mut c = cluster.client();
    c.execute(
        "SELECT webhook.create_webhook('r', $1, '{group.created}', enabled => false)",
        &[&receiver.url("/")],
    )
    .unwrap();
    // Three transactions: the event is queued when the first commits, and
    // its (held) delivery made by the worker just after.
    c.batch_execute("INSERT INTO lms.groups (name) VALUES ('g1')")
        .unwrap();
    assert_eq!(wait_fanned_out(&mut c), 1);
    for sql in [
        "DELETE FROM webhook.events",
        "SELECT webhook.update_webhook(id, enabled => true) FROM webhook.webhooks",
    ] {
        c.batch_execute(sql).unwrap();
    }
    wait_dead(&mut c, 1);
    let errors = logged_errors(&mut c);
    assert!(
        errors.contains("no longer exists in webhook.events"),
        "{errors}"
    );
    assert_eq!(receiver.count(), 0, "a request was sent without its event");
}
