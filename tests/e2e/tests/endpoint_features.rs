//! What the best webhook senders offer: signing secret rotation with an
//! overlap, bearer tokens, per-endpoint rate limits and Retry-After pauses,
//! and metrics in the Prometheus text format.

use std::time::{Duration, Instant};
use webhook_emitter_e2e::{
    db_message, verify_signature, wait_for, Client, Cluster, Receiver, Reply,
};

fn secret(c: &mut Client) -> String {
    c.query_one("SELECT signing_secret FROM webhook.webhooks", &[])
        .unwrap()
        .get(0)
}

fn insert_group(c: &mut Client, name: &str) {
    c.execute("INSERT INTO lms.groups (name) VALUES ($1)", &[&name])
        .unwrap();
}

#[test]
fn a_rotated_secret_overlaps_then_only_the_new_one_signs() {
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    let mut c = cluster.client();
    c.execute(
        "SELECT webhook.create_webhook('s', $1, '{group.created}', generate_signing_secret => true)",
        &[&receiver.url("/s")],
    )
    .unwrap();
    let old = secret(&mut c);
    c.batch_execute("SELECT webhook.update_webhook(1, rotate_signing_secret => true, rotation_overlap => '4 seconds')")
        .unwrap();
    let new = secret(&mut c);
    assert_ne!(old, new);
    let until: bool = c
        .query_one(
            "SELECT previous_signing_secret_until BETWEEN now() + interval '3 seconds' AND now() + interval '5 seconds'
               FROM webhook.webhook_list",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(until, "the overlap's end is shown in webhook_list");

    insert_group(&mut c, "during");
    let during = receiver.wait_for(1, Duration::from_secs(10))[0].clone();
    let signatures = during.header("webhook-signature").unwrap().to_owned();
    assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
    assert!(
        verify_signature(&new, &during),
        "the new secret verifies during the overlap"
    );
    assert!(
        verify_signature(&old, &during),
        "the old secret verifies during the overlap"
    );

    std::thread::sleep(Duration::from_secs(5));
    insert_group(&mut c, "after");
    let after = receiver.wait_for(2, Duration::from_secs(10))[1].clone();
    assert_eq!(
        after
            .header("webhook-signature")
            .unwrap()
            .split(' ')
            .count(),
        1
    );
    assert!(verify_signature(&new, &after));
    assert!(
        !verify_signature(&old, &after),
        "the old secret still verifies after the overlap"
    );

    // Without an overlap the new secret replaces the old one at once.
    c.batch_execute(
        "SELECT webhook.update_webhook(1, rotate_signing_secret => true, rotation_overlap => '0')",
    )
    .unwrap();
    let (prev, until): (Option<String>, Option<std::time::SystemTime>) = {
        let r = c
            .query_one(
                "SELECT previous_signing_secret, previous_signing_secret_until FROM webhook.webhooks",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((prev, until), (None, None));
    let err = c
        .batch_execute("SELECT webhook.update_webhook(1, rotate_signing_secret => true, rotation_overlap => '31 days')")
        .unwrap_err();
    assert!(db_message(&err).starts_with("rotation_overlap: "), "{err}");
}

#[test]
fn a_bearer_token_is_sent_and_hidden() {
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    let mut c = cluster.client();
    c.execute(
        "SELECT webhook.create_webhook('b', $1, '{group.created}', bearer_token => 'tok_123.abc')",
        &[&receiver.url("/b")],
    )
    .unwrap();
    insert_group(&mut c, "g");
    let req = receiver.wait_for(1, Duration::from_secs(10))[0].clone();
    assert_eq!(req.header("authorization"), Some("Bearer tok_123.abc"));

    let listed: String = c
        .query_one("SELECT bearer_token FROM webhook.webhook_list", &[])
        .unwrap()
        .get(0);
    assert_eq!(listed, "********");
    c.batch_execute("CREATE ROLE reader LOGIN").unwrap();
    let mut reader = cluster.client_as("reader");
    assert!(reader
        .query("SELECT bearer_token FROM webhook.webhooks", &[])
        .is_err());
    assert!(reader
        .query("SELECT bearer_token FROM webhook.webhook_list", &[])
        .is_ok());

    for (sql, field) in [
        (
            "SELECT webhook.update_webhook(1, auth_username => 'u', auth_password => 'p')",
            "bearer_token: ",
        ),
        (
            "SELECT webhook.update_webhook(1, bearer_token => 'has space')",
            "bearer_token: ",
        ),
        (
            "SELECT webhook.update_webhook(1, rate_limit_per_second => 0)",
            "rate_limit_per_second: ",
        ),
    ] {
        let err = c.batch_execute(sql).unwrap_err();
        assert!(db_message(&err).starts_with(field), "{sql}: {err}");
    }
    c.batch_execute("SELECT webhook.update_webhook(1, clear_bearer_token => true)")
        .unwrap();
    insert_group(&mut c, "g2");
    let req = receiver.wait_for(2, Duration::from_secs(10))[1].clone();
    assert_eq!(req.header("authorization"), None);
}

/// Arrival times (seconds since the first) of the requests to `path`.
fn arrivals(receiver: &Receiver, path: &str) -> Vec<f64> {
    let at: Vec<Instant> = receiver
        .requests()
        .iter()
        .filter(|r| r.path == path)
        .map(|r| r.at)
        .collect();
    let first = at.iter().min().copied();
    at.iter()
        .filter_map(|t| Some(t.duration_since(first?).as_secs_f64()))
        .collect()
}

#[test]
fn a_rate_limit_is_never_exceeded_and_slows_only_its_endpoint() {
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    let mut c = cluster.client();
    c.execute(
        "SELECT webhook.create_webhook('limited', $1, '{group.created}', rate_limit_per_second => 20)",
        &[&receiver.url("/limited")],
    )
    .unwrap();
    c.execute(
        "SELECT webhook.create_webhook('free', $1, '{group.created}')",
        &[&receiver.url("/free")],
    )
    .unwrap();
    c.batch_execute("INSERT INTO lms.groups (name) SELECT 'g' || i FROM generate_series(1, 100) i")
        .unwrap();
    receiver.wait_for(200, Duration::from_secs(30));
    let limited = arrivals(&receiver, "/limited");
    let free = arrivals(&receiver, "/free");
    // In every one-second window at most the limit plus the burst (one).
    let most = limited
        .iter()
        .map(|&t| limited.iter().filter(|&&u| u >= t && u < t + 1.0).count())
        .max()
        .unwrap_or(0);
    assert!(most <= 21, "{most} requests within one second (limit 20)");
    let span = limited.iter().copied().fold(0.0, f64::max);
    assert!(span >= 4.5, "100 requests at 20/s took only {span:.2} s");
    let free_span = free.iter().copied().fold(0.0, f64::max);
    assert!(
        free_span < span / 2.0,
        "the unlimited webhook was slowed: {free_span:.2} s"
    );
}

#[test]
fn a_rate_limited_backlog_does_not_hold_back_other_webhooks() {
    // The limited webhook's backlog is queued first and is larger than a
    // claim. Its deliveries, parked behind the rate limit, used to fill the
    // worker's claim window, and no other webhook got anything until the
    // backlog had gone out (here, 1,000 s). Now a webhook at its limit (two
    // seconds of its rate) is left out of claims, and what it holds does
    // not count against them.
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    let mut c = cluster.client();
    c.execute(
        "SELECT webhook.create_webhook('limited', $1, '{group.created}', rate_limit_per_second => 1)",
        &[&receiver.url("/limited")],
    )
    .unwrap();
    c.batch_execute(
        "INSERT INTO lms.groups (name) SELECT 'g' || i FROM generate_series(1, 1000) i",
    )
    .unwrap();
    receiver.wait_for(1, Duration::from_secs(10));
    c.execute(
        "SELECT webhook.create_webhook('free', $1, '{user.created}')",
        &[&receiver.url("/free")],
    )
    .unwrap();
    c.batch_execute(
        "INSERT INTO lms.users (first_name, email) SELECT 'U', 'u' || i || '@x.example' FROM generate_series(1, 20) i",
    )
    .unwrap();
    wait_for(
        Duration::from_secs(10),
        "20 deliveries to the free webhook",
        || (arrivals(&receiver, "/free").len() >= 20).then_some(()),
    );
    let limited = arrivals(&receiver, "/limited");
    let most = limited
        .iter()
        .map(|&t| limited.iter().filter(|&&u| u >= t && u < t + 1.0).count())
        .max()
        .unwrap_or(0);
    assert!(most <= 2, "{most} requests within one second (limit 1)");
}

#[test]
fn retry_after_pauses_only_that_endpoint() {
    // One request at a time per endpoint, so the pause is visible.
    let cluster =
        Cluster::start("webhook.max_per_endpoint = 1\nwebhook.retry_schedule = '0s,1s,1s'");
    let receiver = Receiver::start();
    let answered_429 = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = answered_429.clone();
    receiver.respond_with(move |r| {
        if r.path == "/busy" && !flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
            Reply {
                headers: vec![("Retry-After".into(), "3".into())],
                ..Reply::status(429)
            }
        } else {
            Reply::status(200)
        }
    });
    let mut c = cluster.client();
    for (name, path) in [("busy", "/busy"), ("calm", "/calm")] {
        c.execute(
            "SELECT webhook.create_webhook($1, $2, '{group.created}')",
            &[&name, &receiver.url(path)],
        )
        .unwrap();
    }
    c.batch_execute("INSERT INTO lms.groups (name) SELECT 'g' || i FROM generate_series(1, 5) i")
        .unwrap();
    receiver.wait_for(11, Duration::from_secs(30));
    let busy = arrivals(&receiver, "/busy");
    let calm = arrivals(&receiver, "/calm");
    let mut sorted = busy.clone();
    sorted.sort_by(f64::total_cmp);
    assert!(
        sorted[1] - sorted[0] >= 2.5,
        "the endpoint was not paused after 429 + Retry-After: {sorted:?}"
    );
    let calm_span = calm.iter().copied().fold(0.0, f64::max);
    assert!(calm_span < 2.0, "the other endpoint waited too: {calm:?}");
}

#[test]
fn metrics_are_valid_prometheus_text_and_survive_pruning() {
    let cluster = Cluster::start("webhook.retention = '2s'\nwebhook.retry_schedule = '0s,1s'");
    let receiver = Receiver::start();
    receiver.respond_with(|r| {
        if r.path == "/down" {
            Reply::status(500)
        } else {
            Reply::status(200)
        }
    });
    let mut c = cluster.client();
    for (name, path) in [("up \"quoted\"", "/up"), ("down", "/down")] {
        c.execute(
            "SELECT webhook.create_webhook($1, $2, '{group.created}')",
            &[&name, &receiver.url(path)],
        )
        .unwrap();
    }
    c.batch_execute("INSERT INTO lms.groups (name) SELECT 'g' || i FROM generate_series(1, 3) i")
        .unwrap();
    // 3 delivered; 3 x 2 attempts to /down (the second one dead).
    receiver.wait_for(9, Duration::from_secs(20));
    wait_for(Duration::from_secs(20), "the log pruned", || {
        let n: i64 = c
            .query_one(
                "SELECT (SELECT count(*) FROM webhook.deliveries) + (SELECT count(*) FROM webhook.in_flight)",
                &[],
            )
            .ok()?
            .get(0);
        (n == 0).then_some(())
    });
    c.batch_execute("CREATE ROLE scraper LOGIN").unwrap();
    let mut scraper = cluster.client_as("scraper");
    let text: String = scraper
        .query_one("SELECT webhook.metrics()", &[])
        .unwrap()
        .get(0);
    let samples = parse_prometheus(&text);
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        samples
            .iter()
            .filter(|s| s["name"] == name)
            .filter(|s| labels.iter().all(|(k, v)| s["labels"][k] == *v))
            .map(|s| s["value"].as_f64().unwrap_or(f64::NAN))
            .sum()
    };
    let up = ("webhook", "up \"quoted\"");
    let down = ("webhook", "down");
    assert_eq!(
        value("webhook_deliveries_total", &[up, ("outcome", "delivered")]),
        3.0,
        "{text}"
    );
    assert_eq!(
        value("webhook_deliveries_total", &[down, ("outcome", "failed")]),
        3.0,
        "{text}"
    );
    assert_eq!(
        value("webhook_deliveries_total", &[down, ("outcome", "dead")]),
        3.0,
        "{text}"
    );
    assert_eq!(value("webhook_retries_total", &[down]), 3.0, "{text}");
    assert_eq!(value("webhook_backlog", &[up, ("state", "pending")]), 0.0);
    assert_eq!(value("webhook_in_flight", &[down]), 0.0);
    // The histogram: 3 deliveries, cumulative buckets ending in +Inf.
    assert_eq!(
        value("webhook_delivery_latency_seconds_count", &[up]),
        3.0,
        "{text}"
    );
    assert_eq!(
        value(
            "webhook_delivery_latency_seconds_bucket",
            &[up, ("le", "+Inf")]
        ),
        3.0
    );
    let buckets: Vec<f64> = samples
        .iter()
        .filter(|s| {
            s["name"] == "webhook_delivery_latency_seconds_bucket" && s["labels"]["webhook"] == up.1
        })
        .map(|s| s["value"].as_f64().unwrap_or(f64::NAN))
        .collect();
    assert_eq!(buckets.len(), 15, "14 bounds and +Inf");
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
}

/// Every sample, as parsed by the official Prometheus Python client's
/// text-format parser (installed by scripts/deps.sh): name, labels, value.
fn parse_prometheus(text: &str) -> Vec<serde_json::Value> {
    use std::io::Write;
    let script = "import json, sys\n\
from prometheus_client.parser import text_string_to_metric_families\n\
out = [dict(name=s.name, labels=s.labels, value=s.value)\n\
       for f in text_string_to_metric_families(sys.stdin.read()) for s in f.samples]\n\
print(json.dumps(out))\n";
    let mut child = std::process::Command::new("/opt/webhook_emitter/tools/bin/python")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the Prometheus parser (run scripts/deps.sh)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "not valid Prometheus text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
