//! Scale: a million queued deliveries (rate against the 100k drain, the
//! worker's peak private memory, where its loop spends the time), and
//! three databases of one cluster draining at once.

use crate::{drain, env_secs};
use std::time::{Duration, Instant};
use webhook_emitter_e2e::{wait_for, Cluster, FastReceiver};

/// Drain `BENCH_MILLION_N` (1,000,000) queued deliveries; compare the rate
/// with `base_rate` (the 100k drain of the same run).
pub fn million(cluster: &Cluster, base_rate: f64) {
    let n = env_secs("BENCH_MILLION_N", 1_000_000) as i64;
    let log_before = cluster.log().len();
    let d = drain(cluster, n);
    let ratio = d.rate / base_rate;
    let private_mb = d.peak_private_kb as f64 / 1024.0;
    println!("\n## A million queued: {n} deliveries drained, against the 100k drain\n");
    println!("| queued | deliveries/s | 100k drain deliveries/s | ratio | lost | duplicates | worker peak private RSS | target: within 20%, < 50 MB |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---|");
    println!(
        "| {n} | {:.0} | {base_rate:.0} | {ratio:.2} | {} | {} | {private_mb:.1} MB | {} |",
        d.rate,
        n as usize - d.unique,
        d.requests - d.unique,
        if ratio >= 0.8 && private_mb < 50.0 && d.unique == n as usize {
            "met"
        } else {
            "not met"
        }
    );
    // The worker logs its loop profile at DEBUG1 every 10 s.
    let log = cluster.log();
    let lines: Vec<&str> = log
        .get(log_before..)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once("loop profile over ").map(|(_, rest)| rest))
        .collect();
    if !lines.is_empty() {
        println!("\nThe worker's main loop during that drain (its DEBUG1 loop profile, one line per 10 s):\n");
        for l in lines {
            println!("- {l}");
        }
    }
}

/// Three databases (one school each) with `BENCH_DATABASES_N` (50,000)
/// deliveries held in each, released at the same moment: one worker per
/// database drains them side by side.
pub fn databases(conf: &str) {
    let per_db = env_secs("BENCH_DATABASES_N", 50_000) as i64;
    let cluster = Cluster::start(&format!("{conf}\nwebhook.database = ''"));
    let names = ["school_a", "school_b", "school_c"];
    let receivers: Vec<FastReceiver> = names.iter().map(|_| FastReceiver::start()).collect();
    let mut admin = cluster.client();
    let mut clients = Vec::new();
    for (name, receiver) in names.iter().zip(&receivers) {
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let mut c = cluster.client_db(name);
        c.batch_execute("CREATE EXTENSION webhook_emitter").unwrap();
        // Disabled: its deliveries are held until all three are released.
        c.execute(
            "SELECT webhook.create_webhook('school', $1, '{group.created}', enabled => false)",
            &[&receiver.url("/school")],
        )
        .unwrap();
        c.execute(
            "SELECT count(webhook.enqueue('group.created', json_build_object('group_id', i, 'group_name', 'Group ' || i,
                    'description', current_database()))) FROM generate_series(1, $1::bigint) i",
            &[&per_db],
        )
        .unwrap();
        clients.push(c);
    }
    wait_for(Duration::from_secs(60), "a worker in each database", || {
        let n: i64 = admin
            .query_one(
                "SELECT count(DISTINCT datname) FROM pg_stat_activity WHERE backend_type = 'webhook_emitter'
                    AND datname LIKE 'school_%'",
                &[],
            )
            .unwrap()
            .get(0);
        (n == 3).then_some(())
    });
    let t0 = Instant::now();
    for c in &mut clients {
        c.batch_execute("SELECT webhook.update_webhook(id, enabled => true) FROM webhook.webhooks")
            .unwrap();
    }
    let mut finished = [None; 3];
    while finished.iter().any(Option::is_none) {
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "three-database drain timed out"
        );
        for (i, r) in receivers.iter().enumerate() {
            if finished[i].is_none() && r.count() >= per_db as usize {
                finished[i] = Some(t0.elapsed().as_secs_f64());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let last = finished.iter().flatten().fold(0.0f64, |a, b| a.max(*b));
    let first = finished.iter().flatten().fold(f64::MAX, |a, b| a.min(*b));
    println!("\n## Three databases on one cluster: {per_db} deliveries each, released at once\n");
    println!("| database | finished after | deliveries/s | lost | duplicates |");
    println!("|---|---:|---:|---:|---:|");
    for (i, name) in names.iter().enumerate() {
        let secs = finished[i].unwrap_or(last);
        let seen = receivers[i].seen.lock().unwrap();
        let unique: std::collections::HashSet<&str> =
            seen.iter().map(|(id, _, _)| id.as_str()).collect();
        println!(
            "| {name} | {secs:.1} s | {:.0} | {} | {} |",
            per_db as f64 / secs,
            per_db as usize - unique.len(),
            seen.len() - unique.len()
        );
    }
    println!(
        "| all three | {last:.1} s | **{:.0}** | | |",
        3.0 * per_db as f64 / last
    );
    println!(
        "\nFairness: the first database finished at {:.0}% of the last one's time.",
        100.0 * first / last
    );
}

/// A neighbour's backlog: one webhook drains `BENCH_NEIGHBOUR_N` (20,000)
/// deliveries alone, then again while a webhook limited to 1 request/s
/// holds `BENCH_NEIGHBOUR_BACKLOG` (100,000) due ones. The limited webhook's
/// window is full, so every claim leaves it out; the ratio says what its
/// backlog costs everyone else.
pub fn neighbour(cluster: &Cluster) {
    let n = env_secs("BENCH_NEIGHBOUR_N", 20_000) as i64;
    let backlog = env_secs("BENCH_NEIGHBOUR_BACKLOG", 100_000) as i64;
    let fast = FastReceiver::start();
    let limited = FastReceiver::start();
    let mut c = cluster.client();
    c.batch_execute("DELETE FROM webhook.webhooks; DELETE FROM webhook.events")
        .unwrap();
    c.execute(
        "SELECT webhook.create_webhook('fast', $1, '{user.deleted}')",
        &[&fast.url("/fast")],
    )
    .unwrap();
    let timed_drain = |c: &mut postgres::Client, expected: usize| {
        let t0 = Instant::now();
        c.execute(
            "SELECT count(webhook.enqueue('user.deleted', json_build_object('id', i))) FROM generate_series(1, $1::bigint) i",
            &[&n],
        )
        .unwrap();
        fast.wait_for(expected, Duration::from_secs(600));
        n as f64 / t0.elapsed().as_secs_f64()
    };
    let alone = timed_drain(&mut c, n as usize);
    c.execute(
        "SELECT webhook.create_webhook('limited', $1, '{group.created}', rate_limit_per_second => 1)",
        &[&limited.url("/limited")],
    )
    .unwrap();
    c.execute(
        "SELECT count(webhook.enqueue('group.created', json_build_object('group_id', i))) FROM generate_series(1, $1::bigint) i",
        &[&backlog],
    )
    .unwrap();
    // Until the limited webhook's window is full and claims leave it out.
    std::thread::sleep(Duration::from_secs(3));
    c.batch_execute(
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()",
    )
    .unwrap();
    let beside = timed_drain(&mut c, 2 * n as usize);
    let claim_ms: f64 = c
        .query_one(
            "SELECT coalesce(sum(total_exec_time) / nullif(sum(calls), 0), 0)::float8
               FROM pg_stat_statements WHERE query LIKE 'WITH RECURSIVE heads%'",
            &[],
        )
        .unwrap()
        .get(0);
    println!("\n## A neighbour's backlog: {n} deliveries of one webhook, alone and beside {backlog} due for a webhook limited to 1/s\n");
    println!("| deliveries/s alone | beside the backlog | ratio | claim ms per call beside it |");
    println!("|---:|---:|---:|---:|");
    println!(
        "| {alone:.0} | {beside:.0} | {:.2} | {claim_ms:.1} |",
        beside / alone
    );
    c.batch_execute("DELETE FROM webhook.webhooks; DELETE FROM webhook.events")
        .unwrap();
}
