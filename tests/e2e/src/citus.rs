//! A Citus cluster for the end-to-end tests and the bench: a coordinator
//! and worker nodes on this machine, each preloading citus and
//! webhook_emitter. Citus is in no package registry here, so callers first
//! ask `citus_installed()` and skip, saying so, when it is not.

use crate::{db_message, pg_bin, Client, Cluster, Receiver};
use std::collections::HashMap;

/// Whether the PostgreSQL under test has Citus (`citus.so` in its pkglibdir).
pub fn citus_installed() -> bool {
    let out = std::process::Command::new(format!("{}/pg_config", pg_bin()))
        .arg("--pkglibdir")
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let dir = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            std::path::Path::new(&dir).join("citus.so").exists()
        }
        _ => false,
    }
}

pub struct Citus {
    pub coordinator: Cluster,
    pub workers: Vec<Cluster>,
}

impl Citus {
    /// A coordinator and `workers` worker nodes, webhook_emitter created on
    /// the coordinator (Citus creates it on the workers) and its registry
    /// distributed.
    pub fn start(workers: usize) -> Citus {
        let coordinator = Self::node();
        let workers: Vec<Cluster> = (0..workers).map(|_| Self::node()).collect();
        let mut c = coordinator.client();
        c.execute(
            "SELECT citus_set_coordinator_host('127.0.0.1', $1)",
            &[&i32::from(coordinator.port)],
        )
        .expect("citus_set_coordinator_host");
        for w in &workers {
            c.execute(
                "SELECT citus_add_node('127.0.0.1', $1)",
                &[&i32::from(w.port)],
            )
            .expect("citus_add_node");
        }
        c.batch_execute(
            "CREATE EXTENSION webhook_emitter;
             SELECT webhook.distribute_registry();",
        )
        .expect("CREATE EXTENSION webhook_emitter; distribute_registry");
        Citus {
            coordinator,
            workers,
        }
    }

    /// One PostgreSQL with Citus created, not yet in a cluster.
    pub fn node() -> Cluster {
        let node = Cluster::start_bare(
            "shared_preload_libraries = 'citus,webhook_emitter'\nwal_level = logical\n\
             max_prepared_transactions = 50\nmax_connections = 100\ncitus.shard_count = 4\n",
        );
        node.client()
            .batch_execute("CREATE EXTENSION citus")
            .expect("CREATE EXTENSION citus");
        node
    }

    /// The coordinator, then the worker nodes.
    pub fn nodes(&self) -> impl Iterator<Item = &Cluster> {
        std::iter::once(&self.coordinator).chain(self.workers.iter())
    }
}

/// Whether a Citus test must stop here: Citus is not installed. It says
/// so; where Citus must be there (WEBHOOK_REQUIRE_CITUS=1), its absence
/// fails the test instead.
pub fn citus_missing() -> bool {
    if citus_installed() {
        return false;
    }
    assert!(
        std::env::var("WEBHOOK_REQUIRE_CITUS").is_err(),
        "WEBHOOK_REQUIRE_CITUS is set but Citus is not installed in {}",
        pg_bin()
    );
    eprintln!(
        "SKIPPED: Citus is not installed in the PostgreSQL under test ({}): no citus.so in its pkglibdir",
        pg_bin()
    );
    true
}

/// A distributed table with a row event topic, and a webhook for it:
/// watched once distributed, or (`watch_first`) watched, then distributed.
pub fn notes_watched(c: &mut Client, url: &str, watch_first: bool) {
    let distribute = "SELECT create_distributed_table('public.notes', 'id')";
    let watch = "SELECT webhook.watch('public.notes', operations => '{insert}')";
    let (first, second) = if watch_first {
        (watch, distribute)
    } else {
        (distribute, watch)
    };
    // Each statement its own transaction: Citus creates the generated
    // function on every node over one connection per node, which it
    // cannot after create_distributed_table's parallel work in the same
    // transaction.
    for sql in [
        "SET citus.enable_unsafe_triggers = on",
        "CREATE TABLE public.notes (id bigint PRIMARY KEY, body text NOT NULL)",
        first,
        second,
    ] {
        c.batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {}", db_message(&e)));
    }
    c.execute(
        "SELECT webhook.create_webhook('notes', $1, '{public.notes.insert}')",
        &[&url],
    )
    .expect("create_webhook");
}

/// Note id -> how many requests carried it.
pub fn received_notes(receiver: &Receiver) -> HashMap<i64, usize> {
    let mut seen = HashMap::new();
    for r in receiver.requests() {
        let body = r.json();
        assert_eq!(
            body["table"], "notes",
            "the table as defined, not a shard: {body}"
        );
        let id = body["row"]["id"].as_i64().expect("row.id");
        *seen.entry(id).or_insert(0) += 1;
    }
    seen
}
