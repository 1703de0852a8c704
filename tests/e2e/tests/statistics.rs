//! Delivery keeps its pace when the planner's statistics are wrong.
//!
//! An autovacuum that runs while a large enqueue is uncommitted counts
//! none of its rows: the statistics then say the queue is empty although
//! it holds a million rows. Plans made on them once reached the queue's
//! tables through full index scans per row (the claim, and the outcome
//! counters of each recorded batch): a single statement ran for minutes
//! and delivery stopped until the next ANALYZE. Now those statements reach
//! the queue only by primary key, and a claim that takes (or a fan-out that
//! makes) more rows than the statistics count makes the worker analyze the
//! queue itself.

use std::time::Duration;
use webhook_emitter_e2e::{wait_delivered, wait_for, Cluster, FastReceiver};

#[test]
fn delivery_keeps_going_when_statistics_say_the_queue_is_empty() {
    // No autovacuum: the statistics the VACUUM below leaves stay for the
    // whole test.
    let cluster = Cluster::start("autovacuum = off");
    let receiver = FastReceiver::start();
    let mut c = cluster.client();
    c.execute(
        "SELECT webhook.create_webhook('d', $1, '{group.created}')",
        &[&receiver.url("/d")],
    )
    .unwrap();
    let n: i64 = 50_000;
    // The enqueue, uncommitted while a VACUUM counts the queue's rows.
    let mut writer = cluster.client();
    let mut tx = writer.transaction().unwrap();
    tx.execute(
        "SELECT count(webhook.enqueue('group.created', json_build_object('group_id', i)))
           FROM generate_series(1, $1::bigint) i",
        &[&n],
    )
    .unwrap();
    c.batch_execute("VACUUM webhook.deliveries, webhook.events")
        .unwrap();
    // (The table is partitioned: its slots' partitions hold the counts.)
    let partitions = c
        .query_one(
            "SELECT coalesce(sum(c.reltuples), 0)::real, count(*) FROM pg_catalog.pg_class c
              WHERE c.oid IN (SELECT i.inhrelid FROM pg_catalog.pg_inherits i
                               WHERE i.inhparent = 'webhook.deliveries'::regclass)
                AND c.reltuples >= 0",
            &[],
        )
        .unwrap();
    let (counted, vacuumed): (f32, i64) = (partitions.get(0), partitions.get(1));
    assert_eq!(vacuumed, 3, "the VACUUM counted every slot's partition");
    assert!(counted < 1.0, "the VACUUM counted {counted} rows");
    tx.commit().unwrap();
    // With the plans of before, 50,000 deliveries took about five minutes.
    wait_for(Duration::from_secs(120), "all deliveries sent", || {
        (receiver.count() >= n as usize).then_some(())
    });
    wait_delivered(&mut c, n, Duration::from_secs(30));
    // The first fan-out (or claim) made or took more rows than the
    // statistics counted: the worker analyzed the queue itself (autovacuum
    // is off here).
    let analyzed: bool = c
        .query_one(
            "SELECT last_analyze IS NOT NULL FROM pg_catalog.pg_stat_user_tables
              WHERE relid = 'webhook.deliveries'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(analyzed, "the worker did not analyze webhook.deliveries");
    let counted: i64 = c
        .query_one("SELECT delivered FROM webhook.delivery_counters", &[])
        .unwrap()
        .get(0);
    assert_eq!(counted, n, "the outcome counters count every delivery");
}
