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
