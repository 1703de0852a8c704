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

/// Index pages of `events_fanout_idx` (its partitions) read by this
/// transaction so far.
fn fanout_index_pages(c: &mut postgres::Transaction) -> i64 {
    c.query_one(
        "SELECT coalesce(sum(pg_catalog.pg_stat_get_xact_blocks_fetched(i.inhrelid)), 0)::int8
           FROM pg_catalog.pg_inherits i WHERE i.inhparent = 'webhook.events_fanout_idx'::regclass",
        &[],
    )
    .unwrap()
    .get(0)
}

#[test]
fn a_fan_out_reads_the_new_events_not_the_log_before_them() {
    // A fan-out finds new events by transaction id in events_fanout_idx.
    // A B-tree scan starts where a row comparison puts it, whatever other
    // lower bound it has: with the slice's position as a row comparison on
    // every range, each fan-out walked the index from its start (the whole
    // log of the slot, at every commit's fan-out), and each slice of a large
    // transaction that was running at the last fan-out walked that
    // transaction's entries from its first. Measured as index pages read.
    let cluster = Cluster::start("");
    cluster.create_roles("ops");
    let receiver = FastReceiver::start();
    let mut ops = cluster.client_as("ops");
    ops.execute(
        "SELECT webhook.create_webhook('groups', $1, '{group.created}')",
        &[&receiver.url("/groups")],
    )
    .unwrap();
    let mut lms = cluster.client_as("lms_app");
    // A log: 20,000 events, fanned out and delivered.
    let logged: i64 = 20_000;
    lms.execute(
        "INSERT INTO lms.groups (name) SELECT 'logged ' || i FROM generate_series(1, $1::bigint) i",
        &[&logged],
    )
    .unwrap();
    receiver.wait_for(logged as usize, Duration::from_secs(120));
    // A large transaction, running while the worker stores its snapshot
    // (it does when it fans out another commit's event).
    let large: i64 = 12_000;
    let mut writer = cluster.client_as("lms_app");
    let mut open = writer.transaction().unwrap();
    open.execute(
        "INSERT INTO lms.groups (name) SELECT 'large ' || i FROM generate_series(1, $1::bigint) i",
        &[&large],
    )
    .unwrap();
    lms.batch_execute("INSERT INTO lms.groups (name) VALUES ('while it runs')")
        .unwrap();
    receiver.wait_for(logged as usize + 1, Duration::from_secs(30));
    // The worker held still, the fan-outs below are made by hand (a
    // superuser's, each alone in its transaction).
    let held = cluster.hold_worker_still();
    open.commit().unwrap();
    lms.batch_execute("INSERT INTO lms.groups (name) VALUES ('after it')")
        .unwrap();
    let mut c = cluster.client();
    let mut slices = Vec::new();
    loop {
        let mut tx = c.transaction().unwrap();
        let before = fanout_index_pages(&mut tx);
        let row = tx
            .query_one("SELECT made, more FROM webhook.fan_out() LIMIT 1", &[])
            .unwrap();
        let (made, more): (i64, bool) = (row.get(0), row.get(1));
        let pages = fanout_index_pages(&mut tx) - before;
        tx.commit().unwrap();
        slices.push((made, pages));
        if !more {
            break;
        }
    }
    drop(held);
    let made: i64 = slices.iter().map(|s| s.0).sum();
    assert_eq!(made, large + 1, "slices (made, index pages): {slices:?}");
    assert!(slices.len() >= 3, "{slices:?}");
    // Every slice reads from where the last one ended: the entries it
    // makes deliveries of (about 80 a page here) and a descent per
    // partition and range, not the log's 20,000 entries (about 250 pages)
    // nor the entries of the large transaction read by the slices before.
    for (i, (made, pages)) in slices.iter().enumerate() {
        assert!(
            *pages <= made / 50 + 20,
            "slice {i} read {pages} index pages: {slices:?}"
        );
    }
    receiver.wait_for((logged + large + 2) as usize, Duration::from_secs(60));
}
