//! What the queue costs a write, beside a durable queue that costs almost
//! nothing (PgQ's row trigger) and pg_net's shape (a plpgsql trigger that
//! inserts the row as jsonb into an unlogged table): single-row INSERTs
//! into tables shaped like `lms.users` (pgbench, 2 clients, durable
//! defaults), one webhook subscribed and delivering meanwhile, as a ratio
//! to the same table without triggers, with the WAL each INSERT writes
//! (`pg_stat_wal`, the worker's delivery writes included: they are the
//! event's cost too). Rounds interleaved; figures printed side by side.

use std::process::Command;
use webhook_emitter_e2e::{Client, Cluster, FastReceiver};

/// The tables: (label, table, whether it is there).
const SHAPE: &str = "(id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, first_name text NOT NULL,
    last_name text NOT NULL DEFAULT '', email text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())";

fn pgbench(cluster: &Cluster, script: &str, clients: u32, secs: u64) -> (f64, i64) {
    let path = std::env::temp_dir().join(format!("webhook_bench_{}.sql", std::process::id()));
    std::fs::write(&path, script).expect("write the pgbench script");
    let out = Command::new("/usr/lib/postgresql/15/bin/pgbench")
        .args([
            "-n",
            "-c",
            &clients.to_string(),
            "-j",
            &clients.to_string(),
            "-T",
            &secs.to_string(),
        ])
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &cluster.port.to_string(),
            "-U",
            "postgres",
            "-f",
        ])
        .arg(&path)
        .arg("postgres")
        .output()
        .expect("pgbench");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let tps = text
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l[6..].split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "pgbench failed: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let count = text
        .lines()
        .find(|l| l.starts_with("number of transactions actually processed: "))
        .and_then(|l| l.rsplit(' ').next()?.split('/').next()?.parse().ok())
        .unwrap_or(0);
    (tps, count)
}

fn wal_bytes(c: &mut Client) -> f64 {
    c.query_one("SELECT wal_bytes::float8 FROM pg_stat_wal", &[])
        .unwrap()
        .get(0)
}

pub fn queue_cost(conf: &str, receiver: &FastReceiver) {
    let secs = crate::env_secs("BENCH_QUEUE_SECS", 8);
    let cluster = Cluster::start(&format!("{conf}\nfsync = on\nsynchronous_commit = on"));
    let mut c = cluster.client();
    c.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .unwrap();
    let pgq = c.batch_execute("CREATE EXTENSION pgq").is_ok();
    for t in ["plain_users", "pgq_users", "net_users", "watch_users"] {
        c.batch_execute(&format!("CREATE TABLE public.{t} {SHAPE}"))
            .unwrap();
    }
    if pgq {
        c.batch_execute(
            "SELECT pgq.create_queue('bench');
             CREATE TRIGGER pgq AFTER INSERT ON public.pgq_users FOR EACH ROW EXECUTE FUNCTION pgq.jsontriga('bench');",
        )
        .unwrap();
    }
    // pg_net's shape: net.http_post builds the request from the row as
    // jsonb and inserts it into an unlogged queue; no retries, no log.
    c.batch_execute(
        "CREATE UNLOGGED TABLE public.net_queue (id bigserial PRIMARY KEY, url text NOT NULL, body jsonb,
                                                 headers jsonb NOT NULL DEFAULT '{}', created timestamptz NOT NULL DEFAULT now());
         CREATE FUNCTION public.net_post() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO public.net_queue (url, body, headers)
             VALUES ('http://127.0.0.1/hook', to_jsonb(NEW), '{\"Content-Type\": \"application/json\"}');
             RETURN NEW;
         END $$;
         CREATE TRIGGER net AFTER INSERT ON public.net_users FOR EACH ROW EXECUTE FUNCTION public.net_post();
         SELECT webhook.watch('public.watch_users', operations => '{insert}');",
    )
    .unwrap();
    c.execute(
        "SELECT webhook.create_webhook('bench', $1, '{public.watch_users.insert,user.created}')",
        &[&receiver.url("/bench")],
    )
    .unwrap();
    let insert = |table: &str, email_col: &str| {
        format!(
            "INSERT INTO {table} (first_name, last_name, {email_col}) VALUES ('Ada', 'Lovelace', 'ada' || random() || '@x.example');\n"
        )
    };
    let mut configs: Vec<(&str, String)> = vec![
        (
            "plain table (no trigger)",
            insert("public.plain_users", "email"),
        ),
        (
            "pg_net's shape (jsonb of the row into an unlogged table)",
            insert("public.net_users", "email"),
        ),
        (
            "ours: webhook.watch row event",
            insert("public.watch_users", "email"),
        ),
        (
            "ours: user.created, documented body",
            insert("lms.users", "email"),
        ),
        // The write path alone: the worker stopped (SIGSTOP) during the
        // run, its events delivered after it (not a target: the targets
        // are with deliveries going on; PgQ's row has no consumer).
        (
            "ours: webhook.watch, the worker stopped during the run",
            insert("public.watch_users", "email"),
        ),
    ];
    if pgq {
        configs.insert(
            1,
            (
                "PgQ pgq.jsontriga (durable, logged)",
                insert("public.pgq_users", "email"),
            ),
        );
    }
    let worker = cluster.worker_pid();
    let watch = configs.len() - 3;
    let stopped = configs.len() - 1;
    let signal = |s: &str| {
        let status = Command::new("kill")
            .args([s, &worker.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {s}");
    };
    let mut results: Vec<Vec<(f64, f64)>> = vec![Vec::new(); configs.len()];
    let mut worker_cost = Vec::new();
    let mut watch_profile = String::new();
    let order: Vec<usize> = (0..configs.len()).chain((0..configs.len()).rev()).collect();
    for &i in &order {
        if i == watch {
            c.batch_execute("SELECT pg_stat_statements_reset()")
                .unwrap();
        }
        let before = wal_bytes(&mut c);
        let cpu_before = crate::process_cpu_secs(worker);
        if i == stopped {
            signal("-STOP");
        }
        let (tps, n) = pgbench(&cluster, &configs[i].1, 2, secs);
        if i == stopped {
            signal("-CONT");
            // What it queued is delivered before the next run starts.
            webhook_emitter_e2e::wait_fanned_out(&mut c);
            webhook_emitter_e2e::wait_for(
                std::time::Duration::from_secs(120),
                "the stopped run's deliveries",
                || {
                    let left: i64 = c
                        .query_one(
                            "SELECT count(*) FROM webhook.deliveries WHERE status IN ('pending', 'delivering')",
                            &[],
                        )
                        .ok()?
                        .get(0);
                    (left == 0).then_some(())
                },
            );
        }
        // Let the worker finish delivering what this run queued, so its
        // WAL (and its CPU) is counted with the run that caused it.
        std::thread::sleep(std::time::Duration::from_secs(2));
        let after = wal_bytes(&mut c);
        results[i].push((tps, (after - before) / n.max(1) as f64));
        if i == watch {
            let cpu = crate::process_cpu_secs(worker) - cpu_before;
            worker_cost.push((cpu / (secs as f64 + 2.0), cpu * 1e6 / n.max(1) as f64));
            // Taken now: the runs after it must not count in it.
            watch_profile = crate::statement_profile(&cluster, secs as f64, "the last watch run");
        }
    }
    let avg = |i: usize, f: fn(&(f64, f64)) -> f64| {
        results[i].iter().map(f).sum::<f64>() / results[i].len() as f64
    };
    let plain = avg(0, |r| r.0);
    println!("\n## Write path against PgQ and pg_net's shape: single-row INSERT, 2 clients, durable, one webhook delivering meanwhile ({secs} s per run, two rounds averaged)\n");
    println!("| write path | TPS | ratio to plain | WAL bytes per INSERT |");
    println!("|---|---:|---:|---:|");
    for (i, (name, _)) in configs.iter().enumerate() {
        let tps = avg(i, |r| r.0);
        println!(
            "| {name} | {tps:.0} | **{:.2}** | {:.0} |",
            tps / plain,
            avg(i, |r| r.1)
        );
    }
    for (cores, per_event) in worker_cost {
        println!(
            "\nThe delivery worker during a `watch` run: {cores:.2} of a core, {per_event:.0} µs of CPU per event (its threads included)."
        );
    }
    print!("{watch_profile}");
    if !pgq {
        println!("\n(PgQ is not installed: `apt-get install postgresql-15-pgq3` adds its row.)");
    }
}
