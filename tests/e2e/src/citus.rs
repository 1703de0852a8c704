//! A Citus cluster for the end-to-end tests and the bench: a coordinator
//! and worker nodes on this machine, each preloading citus and
//! webhook_emitter. Citus is in no package registry here, so callers first
//! ask `citus_installed()` and skip, saying so, when it is not.

use crate::{pg_bin, Cluster};

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
