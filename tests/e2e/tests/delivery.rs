//! The delivery engine against a real cluster and real receivers.

use std::time::{Duration, Instant};
use webhook_emitter_e2e::{verify_signature, wait_delivered, wait_for, Cluster, Receiver, Reply};

const FAST_RETRIES: &str = "webhook.retry_schedule = '0s,1s,1s,1s,1s,1s,1s,1s'";

#[test]
fn committed_write_arrives_signed_rolled_back_one_never() {
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    let mut c = cluster.client();
    let url = receiver.url("/hooks");
    c.execute(
        "SELECT webhook.create_webhook('signed', $1, '{group.created}', generate_signing_secret => true,
            headers => '{\"X-Team\": \"lms\"}')",
        &[&url],
    )
    .unwrap();
    c.execute(
        "SELECT webhook.create_webhook('xml', $1, '{group.created}', content_type => 'application/xml',
            auth_username => 'bob', auth_password => 's3cret')",
        &[&url],
    )
    .unwrap();
    let secret: String = c
        .query_one(
            "SELECT signing_secret FROM webhook.webhooks WHERE name = 'signed'",
            &[],
        )
        .unwrap()
        .get(0);
    c.batch_execute("BEGIN; INSERT INTO lms.groups (name) VALUES ('rolled back'); ROLLBACK;")
        .unwrap();
    let t0 = Instant::now();
    c.batch_execute("INSERT INTO lms.groups (name, description) VALUES ('Committed <&>', 'x')")
        .unwrap();
    let got = receiver.wait_for(2, Duration::from_secs(10));
    let latency = t0.elapsed();
    let json = got
        .iter()
        .find(|r| r.header("content-type") == Some("application/json"))
        .expect("json request");
    let xml = got
        .iter()
        .find(|r| r.header("content-type") == Some("application/xml"))
        .expect("xml request");
    assert_eq!(json.method, "POST");
    assert_eq!(json.path, "/hooks");
    let body = json.json();
    assert_eq!(body["payload"]["group_name"], "Committed <&>");
    assert_eq!(json.header("webhook-id"), body["id"].as_str());
    assert_eq!(
        xml.header("webhook-id"),
        body["id"].as_str(),
        "one event id for every webhook"
    );
    assert_eq!(json.header("webhook-type"), Some("group.created"));
    assert_eq!(json.header("x-team"), Some("lms"));
    assert!(json
        .header("user-agent")
        .unwrap()
        .starts_with("webhook_emitter/"));
    assert!(
        verify_signature(&secret, json),
        "signature does not verify with the standardwebhooks crate"
    );
    assert!(
        !verify_signature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", json),
        "a wrong secret verified"
    );
    assert_eq!(xml.header("authorization"), Some("Basic Ym9iOnMzY3JldA=="));
    assert!(
        xml.body_text()
            .contains("<group_name>Committed &lt;&amp;&gt;</group_name>"),
        "{}",
        xml.body_text()
    );
    assert!(xml.header("webhook-signature").is_none());
    assert!(
        latency < Duration::from_secs(2),
        "commit-to-receipt took {latency:?}: the worker was not woken"
    );
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(receiver.count(), 2, "the rolled-back insert was delivered");
    let delivered: i64 = c
        .query_one(
            "SELECT count(*) FROM webhook.deliveries WHERE status = 'delivered' AND attempts = 1",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(delivered, 2);
}

#[test]
fn receiver_outage_then_recovery_delivers_everything_with_original_ids() {
    let cluster = Cluster::start(FAST_RETRIES);
    let receiver = Receiver::start();
    receiver.respond_with(|_| Reply::status(503));
    let mut c = cluster.client();
    c.execute(
        "SELECT webhook.create_webhook('r', $1, '{group.created}')",
        &[&receiver.url("/")],
    )
    .unwrap();
    c.batch_execute("INSERT INTO lms.groups (name) SELECT 'g' || i FROM generate_series(1, 30) i")
        .unwrap();
    receiver.wait_for(30, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1500));
    receiver.respond_with(|_| Reply::status(200));
    let mut ids: Vec<String> = c
        .query("SELECT id FROM webhook.events", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    ids.sort();
    wait_delivered(&mut c, 30, Duration::from_secs(20));
    let reqs = receiver.requests();
    let mut ok_ids: Vec<String> = Vec::new();
    for r in &reqs {
        let id = r.header("webhook-id").unwrap().to_owned();
        assert!(ids.binary_search(&id).is_ok(), "unknown id {id}");
        assert_eq!(r.json()["id"], id.as_str());
    }
    // Each id was answered 200 exactly once (after the outage).
    let attempts: Vec<(String, i32)> = c
        .query(
            "SELECT d.event_id, count(*) FILTER (WHERE a.status_code = 200)::int FROM webhook.deliveries d
               JOIN webhook.attempts a ON a.delivery_id = d.id GROUP BY d.event_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (id, oks) in attempts {
        assert_eq!(oks, 1, "{id} delivered {oks} times");
        ok_ids.push(id);
    }
    ok_ids.sort();
    assert_eq!(ok_ids, ids);
}

#[test]
fn each_failure_mode_ends_as_documented() {
    let cluster = Cluster::start(&format!(
        "{FAST_RETRIES}\nwebhook.request_timeout = '500ms'"
    ));
    let receiver = Receiver::start();
    receiver.respond_with(|r| match r.path.as_str() {
        "/500" => Reply::status(500),
        "/410" => Reply::status(410),
        "/302" => Reply {
            headers: vec![("Location".into(), "http://127.0.0.1:1/".into())],
            ..Reply::status(302)
        },
        "/429" => Reply {
            headers: vec![("Retry-After".into(), "30".into())],
            ..Reply::status(429)
        },
        "/slow" => Reply {
            delay: Duration::from_secs(3),
            ..Reply::status(200)
        },
        _ => Reply::status(200),
    });
    let mut c = cluster.client();
    let closed = webhook_emitter_e2e::free_port();
    for (name, url) in [
        ("500", receiver.url("/500")),
        ("410", receiver.url("/410")),
        ("302", receiver.url("/302")),
        ("429", receiver.url("/429")),
        ("slow", receiver.url("/slow")),
        ("refused", format!("http://127.0.0.1:{closed}/")),
        ("private", format!("http://127.0.0.2:{}/", receiver.port)),
        ("big", receiver.url("/big")),
    ] {
        c.execute(
            "SELECT webhook.create_webhook($1, $2, '{course.created}')",
            &[&name, &url],
        )
        .unwrap();
    }
    // A course with a several-MB description: one event for all eight.
    c.batch_execute(
        "INSERT INTO lms.courses (name, slug, description) VALUES ('Big', 'big', repeat('<big & body> ', 300000))",
    )
    .unwrap();
    let status = |c: &mut postgres::Client,
                  name: &str|
     -> (String, Option<i32>, Option<String>, f64) {
        let r = c
            .query_one(
                "SELECT d.status, d.last_status_code, d.last_error,
                        extract(epoch FROM d.next_attempt_at - now())::float8
                   FROM webhook.deliveries d JOIN webhook.webhooks w ON w.id = d.webhook_id WHERE w.name = $1",
                &[&name],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2), r.get(3))
    };
    wait_for(
        Duration::from_secs(20),
        "every endpoint to be tried",
        || {
            let n: i64 = c.query_one("SELECT count(*) FROM webhook.deliveries WHERE attempts >= 1 AND status <> 'delivering'", &[]).unwrap().get(0);
            (n == 8).then_some(())
        },
    );
    let big = receiver
        .requests()
        .into_iter()
        .find(|r| r.path == "/big")
        .expect("big body delivered");
    assert!(big.body.len() > 3_000_000, "{}", big.body.len());
    assert_eq!(status(&mut c, "big").0, "delivered");

    let (s, code, err, _) = status(&mut c, "500");
    assert!(s == "failed" || s == "delivering" || s == "pending", "{s}");
    assert!(code == Some(500) || err.is_some());

    let (s, code, _, _) = status(&mut c, "410");
    assert_eq!((s.as_str(), code), ("dead", Some(410)));
    let reason: Option<String> = c
        .query_one(
            "SELECT disabled_reason FROM webhook.webhooks WHERE name = '410' AND NOT enabled",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(reason.unwrap().contains("410"));

    let (_, code, err, _) = status(&mut c, "302");
    assert_eq!(code, Some(302));
    assert!(err.unwrap().contains("redirect"));
    assert!(
        !receiver
            .requests()
            .iter()
            .any(|r| r.path == "/" && r.header("webhook-type").is_some()),
        "a redirect was followed"
    );

    let (s, code, _, wait) = status(&mut c, "429");
    assert_eq!((s.as_str(), code), ("failed", Some(429)));
    assert!(
        wait > 20.0,
        "Retry-After: 30 was not honoured (next attempt in {wait}s)"
    );

    let (_, code, err, _) = status(&mut c, "slow");
    assert_eq!(code, None);
    assert!(err.unwrap().to_lowercase().contains("timed out"));

    let (_, code, err, _) = status(&mut c, "refused");
    assert_eq!(code, None);
    assert!(err.unwrap().to_lowercase().contains("refused"));

    let (_, code, err, _) = status(&mut c, "private");
    assert_eq!(code, None);
    assert!(err.unwrap().contains("non-public address 127.0.0.2"));
    assert!(!receiver
        .requests()
        .iter()
        .any(|r| r.path == "/" && r.header("host").is_some_and(|h| h.starts_with("127.0.0.2"))));

    // After the last attempt a failing delivery is dead and stays queryable.
    wait_for(Duration::from_secs(30), "the 500 delivery to die", || {
        let (s, _, _, _) = status(&mut c, "500");
        (s == "dead").then_some(())
    });
    let attempts: i64 = c
        .query_one("SELECT count(*) FROM webhook.attempts a JOIN webhook.deliveries d ON d.id = a.delivery_id JOIN webhook.webhooks w ON w.id = d.webhook_id WHERE w.name = '500'", &[])
        .unwrap()
        .get(0);
    assert_eq!(attempts, 8, "one attempt per entry of the retry schedule");
    let failures: i64 = c
        .query_one("SELECT count(*) FROM webhook.recent_failures", &[])
        .unwrap()
        .get(0);
    assert!(failures >= 5);
}

#[test]
fn a_hanging_receiver_does_not_delay_a_healthy_one() {
    let cluster = Cluster::start("webhook.max_per_endpoint = 4");
    let hanging = Receiver::start_with(8);
    hanging.respond_with(|_| Reply {
        delay: Duration::from_secs(30),
        ..Reply::status(200)
    });
    let healthy = Receiver::start();
    let mut c = cluster.client();
    c.execute(
        "SELECT webhook.create_webhook('hang', $1, '{group.created}', timeout_ms => 2000)",
        &[&hanging.url("/")],
    )
    .unwrap();
    c.execute(
        "SELECT webhook.create_webhook('ok', $1, '{group.created}')",
        &[&healthy.url("/")],
    )
    .unwrap();
    let t0 = Instant::now();
    c.batch_execute("INSERT INTO lms.groups (name) SELECT 'h' || i FROM generate_series(1, 40) i")
        .unwrap();
    healthy.wait_for(40, Duration::from_secs(10));
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(2) + Duration::from_millis(1500),
        "healthy receiver waited {took:?}"
    );
}

#[test]
fn send_test_redeliver_and_replay() {
    let cluster = Cluster::start("webhook.retry_schedule = '0s'");
    let receiver = Receiver::start();
    let mut c = cluster.client();
    let id: i64 = c
        .query_one(
            "SELECT webhook.create_webhook('t', $1, '{sale.new,user.created}', body_template => '{\"who\": \"{{payload.user.email}}\", \"topic\": \"{{$topic}}\"}', generate_signing_secret => true)",
            &[&receiver.url("/t")],
        )
        .unwrap()
        .get(0);
    let row = c
        .query_one(
            "SELECT status_code, error, delivery_id FROM webhook.send_test($1, 'sale.new')",
            &[&id],
        )
        .unwrap();
    assert_eq!(
        row.get::<_, Option<i32>>(0),
        Some(200),
        "{:?}",
        row.get::<_, Option<String>>(1)
    );
    let test_req = receiver.wait_for(1, Duration::from_secs(5)).remove(0);
    assert_eq!(test_req.json()["topic"], "sale.new");
    assert!(test_req.json()["who"].as_str().unwrap().contains('@'));
    assert!(test_req
        .header("webhook-signature")
        .unwrap()
        .starts_with("v1,"));
    let logged: bool = c
        .query_one(
            "SELECT is_test FROM webhook.deliveries WHERE id = $1",
            &[&row.get::<_, i64>(2)],
        )
        .unwrap()
        .get(0);
    assert!(logged);

    // A delivery that dies (receiver down, one attempt), then redeliver and replay.
    receiver.respond_with(|_| Reply::status(500));
    c.batch_execute("INSERT INTO lms.users (first_name, email) VALUES ('A', 'a@x.example'), ('B', 'b@x.example')").unwrap();
    wait_for(Duration::from_secs(10), "two dead deliveries", || {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM webhook.deliveries WHERE status = 'dead' AND NOT is_test",
                &[],
            )
            .unwrap()
            .get(0);
        (n == 2).then_some(())
    });
    receiver.respond_with(|_| Reply::status(200));
    let before = receiver.count();
    let (dead_id, event_id): (i64, String) = {
        let r = c.query_one("SELECT id, event_id FROM webhook.deliveries WHERE status = 'dead' AND NOT is_test ORDER BY id LIMIT 1", &[]).unwrap();
        (r.get(0), r.get(1))
    };
    c.execute("SELECT webhook.redeliver($1)", &[&dead_id])
        .unwrap();
    let got = receiver.wait_for(before + 1, Duration::from_secs(5));
    assert_eq!(
        got.last().unwrap().header("webhook-id"),
        Some(event_id.as_str()),
        "redelivery kept the event id"
    );
    let err = c.execute("SELECT webhook.redeliver($1)", &[&dead_id]);
    wait_for(Duration::from_secs(5), "redelivered", || {
        let s: String = c
            .query_one(
                "SELECT status FROM webhook.deliveries WHERE id = $1",
                &[&dead_id],
            )
            .unwrap()
            .get(0);
        (s == "delivered").then_some(())
    });
    assert!(
        err.is_err()
            || c.execute("SELECT webhook.redeliver($1)", &[&dead_id])
                .is_err(),
        "redelivering a delivered delivery must fail"
    );
    let n: i64 = c
        .query_one(
            "SELECT webhook.replay($1, now() - interval '1 hour')",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    receiver.wait_for(before + 2, Duration::from_secs(5));
}
