//! Beyond one server: the drain of a Citus cluster (a coordinator and two
//! worker nodes, each with its own delivery worker) beside one server, in
//! the same run. Needs Citus in the PostgreSQL under test (WEBHOOK_PG_BIN);
//! says it was skipped otherwise.

use crate::env_secs;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use webhook_emitter_e2e::citus::{citus_installed, Citus};
use webhook_emitter_e2e::{pg_bin, wait_for, Client, Cluster, FastReceiver};

/// Queue `n` row events of a watched table for a disabled webhook (held),
/// enable it, and time the drain from that commit to the receiver's last
/// request. `nodes` are where the events are queued (the coordinator on one
/// server; the worker nodes in the cluster). Returns (deliveries/s,
/// unique ids received, requests).
fn drain_held(setup: &mut Client, nodes: &[&Cluster], n: i64) -> (f64, usize, usize) {
    let receiver = FastReceiver::start();
    setup
        .execute(
            "SELECT webhook.create_webhook('drain', $1, '{public.notes.insert}', enabled => false)",
            &[&receiver.url("/drain")],
        )
        .expect("create_webhook");
    setup
        .execute(
            "INSERT INTO public.notes SELECT g, 'note ' || g FROM generate_series(1, $1::bigint) g",
            &[&n],
        )
        .expect("insert");
    wait_for(
        Duration::from_secs(600),
        "every event fanned out, held",
        || {
            let held: i64 = nodes
                .iter()
                .map(|node| {
                    node.client()
                        .query_one(
                            "SELECT count(*) FROM webhook.deliveries WHERE status = 'held'",
                            &[],
                        )
                        .map(|r| r.get::<_, i64>(0))
                        .unwrap_or(0)
                })
                .sum();
            (held == n).then_some(())
        },
    );
    let t0 = Instant::now();
    setup
        .batch_execute(
            "SELECT webhook.enable_webhook((SELECT id FROM webhook.webhooks WHERE name = 'drain'))",
        )
        .expect("enable_webhook");
    while receiver.count() < n as usize {
        assert!(t0.elapsed() < Duration::from_secs(900), "drain timed out");
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    let seen = receiver.seen.lock().unwrap();
    let unique: HashSet<&str> = seen.iter().map(|(id, _, _)| id.as_str()).collect();
    (n as f64 / secs, unique.len(), seen.len())
}

fn watched_notes(c: &mut Client, distributed: bool) {
    let mut steps = vec![
        "SET citus.enable_unsafe_triggers = on",
        "CREATE TABLE public.notes (id bigint PRIMARY KEY, body text NOT NULL)",
    ];
    if distributed {
        steps.push("SELECT create_distributed_table('public.notes', 'id')");
    }
    steps.push("SELECT webhook.watch('public.notes', operations => '{insert}')");
    for sql in steps {
        if !distributed && sql.starts_with("SET citus") {
            continue;
        }
        c.batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

pub fn citus_drain() {
    let n = env_secs("BENCH_CITUS_N", 100_000) as i64;
    println!("\n## Beyond one server: {n} row events drained by one server and by a Citus cluster (coordinator + 2 worker nodes), default settings\n");
    if !citus_installed() {
        println!(
            "Skipped: Citus is not installed in the PostgreSQL under test ({}); run with WEBHOOK_PG_BIN set to a PostgreSQL 18 that has it.",
            pg_bin()
        );
        return;
    }
    let one = Cluster::start("");
    let mut c = one.client();
    watched_notes(&mut c, false);
    let (single, single_unique, single_requests) = drain_held(&mut c, &[&one], n);
    drop(c);
    drop(one);

    let citus = Citus::start(2);
    let mut c = citus.coordinator.client();
    watched_notes(&mut c, true);
    let workers: Vec<&Cluster> = citus.workers.iter().collect();
    let (cluster, cluster_unique, cluster_requests) = drain_held(&mut c, &workers, n);
    let per_node: Vec<String> = citus
        .workers
        .iter()
        .map(|w| {
            w.client()
                .query_one(
                    "SELECT count(*) FROM webhook.deliveries WHERE status = 'delivered'",
                    &[],
                )
                .map(|r| r.get::<_, i64>(0).to_string())
                .unwrap_or_else(|e| e.to_string())
        })
        .collect();

    println!("| setup | deliveries/s | ratio to one server | lost | duplicates | delivered per worker node |");
    println!("|---|---:|---:|---:|---:|---|");
    println!(
        "| one server | {single:.0} | 1.00 | {} | {} | |",
        n as usize - single_unique,
        single_requests - single_unique
    );
    println!(
        "| Citus, 2 worker nodes | {cluster:.0} | {:.2} | {} | {} | {} |",
        cluster / single,
        n as usize - cluster_unique,
        cluster_requests - cluster_unique,
        per_node.join(" / ")
    );
}
