//! Citus (issue 30), moving and failing over: a shard moved in the middle
//! of a drain, and a worker node killed mid-drain and replaced by its
//! promoted standby, lose nothing. Skipped, saying so, where Citus is not
//! installed (see citus.rs).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use webhook_emitter_e2e::citus::{citus_missing, notes_watched, received_notes, Citus};
use webhook_emitter_e2e::{
    db_message, wait_fanned_out, wait_for, Client, Cluster, Receiver, Reply,
};

fn count(c: &mut Client, sql: &str) -> i64 {
    c.query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {}", db_message(&e)))
        .get(0)
}

#[test]
fn a_shard_moved_mid_drain_loses_nothing_and_sends_nothing_twice() {
    if citus_missing() {
        return;
    }
    let citus = Citus::start(2);
    let receiver = Receiver::start();
    let mut c = citus.coordinator.client();
    // Watched before it is distributed: the generated names travel to
    // the shards as they are.
    notes_watched(&mut c, &receiver.url("/notes"), true);

    // A writer keeps committing from before the first worker node's
    // shards start moving to the other node until they have all moved.
    let written = Arc::new(AtomicI64::new(0));
    let moved = Arc::new(AtomicBool::new(false));
    let conn = citus.coordinator.conn_string();
    let writer = {
        let (written, moved) = (written.clone(), moved.clone());
        std::thread::spawn(move || {
            let mut w = Client::connect(&conn, postgres::NoTls).expect("connect");
            let mut id = 0i64;
            while !moved.load(Ordering::SeqCst) || id < 200 {
                id += 1;
                w.execute("INSERT INTO public.notes VALUES ($1, 'note')", &[&id])
                    .expect("insert during the move");
                written.store(id, Ordering::SeqCst);
            }
            id
        })
    };
    wait_for(Duration::from_secs(30), "the writer under way", || {
        (written.load(Ordering::SeqCst) >= 100).then_some(())
    });
    let (from, to) = (citus.workers[0].port, citus.workers[1].port);
    let shards: Vec<i64> = c
        .query(
            "SELECT shardid FROM citus_shards WHERE table_name = 'public.notes'::regclass AND nodeport = $1",
            &[&i32::from(from)],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!shards.is_empty(), "worker {from} holds shards");
    let before_moves = written.load(Ordering::SeqCst);
    for shard in &shards {
        c.execute(
            "SELECT citus_move_shard_placement($1, '127.0.0.1', $2, '127.0.0.1', $3, shard_transfer_mode => 'force_logical')",
            &[shard, &i32::from(from), &i32::from(to)],
        )
        .unwrap_or_else(|e| panic!("move shard {shard}: {}", db_message(&e)));
    }
    let after_moves = written.load(Ordering::SeqCst);
    moved.store(true, Ordering::SeqCst);
    let notes = writer.join().expect("writer");
    assert!(
        after_moves > before_moves,
        "notes were written during the moves ({before_moves} before, {after_moves} after)"
    );
    assert_eq!(
        count(
            &mut c,
            &format!(
                "SELECT count(*) FROM citus_shards WHERE table_name = 'public.notes'::regclass AND nodeport = {from}"
            )
        ),
        0,
        "the shards moved"
    );

    wait_for(Duration::from_secs(120), "every note delivered", || {
        (receiver.count() >= notes as usize).then_some(())
    });
    // Every delivery recorded on its node, then a last look for repeats.
    for w in &citus.workers {
        let mut wc = w.client();
        wait_for(Duration::from_secs(30), "every delivery recorded", || {
            (count(
                &mut wc,
                "SELECT (SELECT count(*) FROM webhook.deliveries WHERE status <> 'delivered')
                      + (SELECT count(*) FROM webhook.in_flight)",
            ) == 0)
                .then_some(())
        });
    }
    let seen = received_notes(&receiver);
    assert_eq!(seen.len(), notes as usize, "every note delivered");
    let twice: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "sent twice: {twice:?}");
    // Both nodes delivered: the moved shards' earlier events from where
    // they were written, the later ones from their new node.
    for w in &citus.workers {
        let mut wc = w.client();
        assert!(
            count(
                &mut wc,
                "SELECT count(*) FROM webhook.deliveries WHERE status = 'delivered'"
            ) > 0
        );
    }
}

#[test]
fn a_worker_node_failing_over_mid_drain_loses_nothing() {
    if citus_missing() {
        return;
    }
    let citus = Citus::start(2);
    let receiver = Receiver::start();
    // 100 ms a request: the first worker node's share takes seconds, so
    // the kill lands mid-drain.
    receiver.respond_with(|_| Reply {
        delay: Duration::from_millis(100),
        ..Reply::status(200)
    });
    let mut c = citus.coordinator.client();
    notes_watched(&mut c, &receiver.url("/notes"), false);
    let (primary, old_port) = (&citus.workers[0], citus.workers[0].port);
    let standby = Cluster::standby_of(primary);
    c.batch_execute("INSERT INTO public.notes SELECT g, 'note' FROM generate_series(1, 3000) g")
        .unwrap();
    // The first node's events and deliveries reach its standby (a durable
    // commit flushes the WAL past the fan-out's asynchronous one).
    let mut p = primary.client();
    wait_fanned_out(&mut p);
    p.batch_execute("CREATE TEMP TABLE flush_the_wal (); DROP TABLE flush_the_wal")
        .unwrap();
    standby.wait_replayed(primary, Duration::from_secs(30));
    receiver.wait_for(100, Duration::from_secs(30));
    primary.pg_ctl_stop("immediate");
    drop(p);
    let at_kill = received_notes(&receiver).len();
    assert!(at_kill < 3000, "everything was delivered before the kill");
    standby.promote();
    c.execute(
        "SELECT citus_update_node((SELECT nodeid FROM pg_dist_node WHERE nodeport = $1), '127.0.0.1', $2)",
        &[&i32::from(old_port), &i32::from(standby.port)],
    )
    .unwrap_or_else(|e| panic!("citus_update_node: {}", db_message(&e)));
    // Writes after the failover go to the promoted node.
    let mut c = citus.coordinator.client();
    c.batch_execute("INSERT INTO public.notes SELECT g, 'note' FROM generate_series(3001, 3100) g")
        .unwrap_or_else(|e| panic!("insert after the failover: {}", db_message(&e)));
    wait_for(Duration::from_secs(120), "every note delivered", || {
        (received_notes(&receiver).len() >= 3100).then_some(())
    });
    let seen = received_notes(&receiver);
    let missing: Vec<i64> = (1..=3100).filter(|id| !seen.contains_key(id)).collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    // A delivery in flight at the kill is sent again by the promoted node,
    // with the same webhook-id (at-least-once, as on one server): no note
    // arrives as two events.
    let mut ids_per_note: HashMap<i64, std::collections::HashSet<String>> = HashMap::new();
    for r in receiver.requests() {
        let id = r.json()["row"]["id"].as_i64().expect("row.id");
        let event = r.header("webhook-id").expect("webhook-id").to_owned();
        ids_per_note.entry(id).or_default().insert(event);
    }
    let split: Vec<_> = ids_per_note.iter().filter(|(_, e)| e.len() > 1).collect();
    assert!(split.is_empty(), "notes queued twice: {split:?}");
    eprintln!(
        "3100 notes, {at_kill} received before the kill, {} requests in all",
        receiver.count()
    );
}
