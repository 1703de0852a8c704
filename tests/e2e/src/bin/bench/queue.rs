//! What the queue costs a write, beside a durable queue that costs almost
//! nothing (PgQ's row trigger) and pg_net's shape (a plpgsql trigger that
//! inserts the row as jsonb into an unlogged table): single-row INSERTs
//! into tables shaped like `lms.users` (pgbench, 2 clients, durable
//! defaults: nothing tracks the writers' statements during the measured
//! runs), one webhook subscribed and delivering meanwhile, as a ratio
//! to the same table without triggers, with the WAL each INSERT writes
//! (`pg_stat_wal`, the worker's delivery writes included: they are the
//! event's cost too). Rounds interleaved; figures printed side by side.
//! Also: the write path alone (the worker stopped), the plain table beside
//! HTTP requests alone (what any sender's requests cost the writers here),
//! where the writers' time went (`/proc/*/schedstat`), and the statement
//! profile of a watch run of its own.

use super::KeepAlive;
use std::process::Command;
use webhook_emitter_e2e::{Client, Cluster, FastReceiver};

/// The tables: (label, table, whether it is there).
const SHAPE: &str = "(id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, first_name text NOT NULL,
    last_name text NOT NULL DEFAULT '', email text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())";

/// Scheduler statistics of a set of threads (`/proc/<pid>/task/<tid>/schedstat`):
/// nanoseconds on a CPU, nanoseconds runnable but waiting for one.
#[derive(Clone, Copy, Default)]
struct Sched {
    on_cpu: f64,
    waiting: f64,
}

fn sched_of(pids: &[i32]) -> Sched {
    let mut total = Sched::default();
    for pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let text = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            let mut f = text
                .split_whitespace()
                .map(|v| v.parse::<f64>().unwrap_or(0.0));
            total.on_cpu += f.next().unwrap_or(0.0);
            total.waiting += f.next().unwrap_or(0.0);
        }
    }
    total
}

/// Where the writers' time went during a run, per transaction (µs): on a
/// CPU, runnable and waiting for one, and the rest (sleeping: WAL flushes,
/// locks, the client's round trip).
#[derive(Clone, Copy, Default)]
struct WriterTime {
    on_cpu: f64,
    waiting: f64,
    /// The delivery worker (its threads), the receiver (this process) and
    /// pgbench, on a CPU.
    worker: f64,
    worker_main: f64,
    receiver: f64,
    client: f64,
    /// Context switches on the machine.
    switches: f64,
    /// The machine's idle and stolen time (µs, all CPUs).
    idle: f64,
    steal: f64,
}

fn context_switches() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("ctxt ")?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The machine's idle and stolen time (clock ticks, all CPUs).
fn machine_idle_steal() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    (
        f.get(3).copied().unwrap_or(0.0),
        f.get(7).copied().unwrap_or(0.0),
    )
}

fn main_thread_cpu(pid: i32) -> f64 {
    let text =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/schedstat")).unwrap_or_default();
    text.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn pgbench(
    cluster: &Cluster,
    script: &str,
    clients: u32,
    secs: u64,
    worker: i32,
) -> (f64, i64, WriterTime) {
    let path = std::env::temp_dir().join(format!("webhook_bench_{}.sql", std::process::id()));
    std::fs::write(&path, script).expect("write the pgbench script");
    let child = Command::new("/usr/lib/postgresql/15/bin/pgbench")
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
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("pgbench");
    // The writers' backends, sampled over the middle of the run.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let writers: Vec<i32> = cluster
        .client()
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench'",
            &[],
        )
        .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        .unwrap_or_default();
    let window = secs.saturating_sub(2).max(1);
    let others = |pid: i32| sched_of(&[pid]).on_cpu;
    let client = child.id() as i32;
    let me = std::process::id() as i32;
    // Counters read at both ends of the window.
    let sample = || {
        (
            sched_of(&writers),
            [
                others(worker),
                others(me),
                others(client),
                main_thread_cpu(worker),
                context_switches(),
            ],
        )
    };
    let m0 = machine_idle_steal();
    let (w0, o0) = sample();
    let t0 = std::time::Instant::now();
    std::thread::sleep(std::time::Duration::from_secs(window));
    let (w1, o1) = sample();
    let m1 = machine_idle_steal();
    let elapsed = t0.elapsed().as_secs_f64();
    let out = child.wait_with_output().expect("pgbench");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let tps: f64 = text
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
    // Transactions in the window, at the run's rate.
    let per_txn = 1e-3 / (tps * elapsed).max(1.0);
    let time = WriterTime {
        on_cpu: (w1.on_cpu - w0.on_cpu) * per_txn,
        waiting: (w1.waiting - w0.waiting) * per_txn,
        worker: (o1[0] - o0[0]) * per_txn,
        receiver: (o1[1] - o0[1]) * per_txn,
        client: (o1[2] - o0[2]) * per_txn,
        worker_main: (o1[3] - o0[3]) * per_txn,
        switches: (o1[4] - o0[4]) * per_txn * 1e3,
        // Clock ticks (1/100 s) to µs.
        idle: (m1.0 - m0.0) * 1e7 * per_txn,
        steal: (m1.1 - m0.1) * 1e7 * per_txn,
    };
    (tps, count, time)
}

/// What the HTTP load sends: a row event's size.
const LOAD_BODY: &str = r#"{"id" : "01J00000000000000000000000", "topic" : "public.watch_users.insert", "tenant_id" : "default", "created_at" : "2026-01-01T00:00:00.000Z", "data" : {"id" : 1, "first_name" : "Ada", "last_name" : "Lovelace", "email" : "ada0.123456789@x.example", "created_at" : "2026-01-01T00:00:00.000Z"}}"#;

/// How an `HttpLoad` paces its requests.
#[derive(Clone, Copy)]
enum Pace {
    /// This fraction of the first plain run's rate.
    Rate(f64),
    /// One request per row inserted into this table (its `id` sequence,
    /// polled): a sender that costs nothing but its requests.
    PerInsert(&'static str),
}

/// HTTP requests alone, from a client outside Postgres (8 threads, each a
/// keep-alive connection sending as the worker's client does) to the receiver, until
/// stopped: what the requests of any sender cost the writers on this
/// machine, without a database write of its own.
struct HttpLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<u64>>,
}

impl HttpLoad {
    /// One request per row inserted into `table` from now on: a thread polls
    /// its `id` sequence (nextval is seen at once, committed or not; the
    /// bench's inserts all commit) and the senders catch up with it.
    fn per_insert(port: u16, cluster: &Cluster, table: &str) -> HttpLoad {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        const THREADS: usize = 8;
        let stop = Arc::new(AtomicBool::new(false));
        let made = Arc::new(AtomicU64::new(0));
        let taken = Arc::new(AtomicU64::new(0));
        let mut c = cluster.client();
        let sequence: String = c
            .query_one("SELECT pg_get_serial_sequence($1, 'id')", &[&table])
            .unwrap()
            .get(0);
        let read = format!("SELECT last_value FROM {sequence}");
        let at = move |c: &mut Client| -> u64 {
            c.query_one(&read, &[])
                .map_or(0, |r| r.get::<_, i64>(0).max(0) as u64)
        };
        let start = at(&mut c);
        let mut threads = Vec::new();
        {
            let (stop, made) = (stop.clone(), made.clone());
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    made.store(at(&mut c).saturating_sub(start), Ordering::Relaxed);
                    // Every 10 ms: the poll's own queries are load too.
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                0
            }));
        }
        for t in 0..THREADS {
            let (stop, made, taken) = (stop.clone(), made.clone(), taken.clone());
            threads.push(std::thread::spawn(move || {
                let mut conn = KeepAlive::connect(port);
                let mut sent = 0u64;
                'requests: loop {
                    let ticket = taken.fetch_add(1, Ordering::Relaxed);
                    // Stopped with the run, behind or not: the requests
                    // sent per insert say whether the senders kept up.
                    while ticket >= made.load(Ordering::Relaxed) {
                        if stop.load(Ordering::Relaxed) {
                            break 'requests;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    conn.post("/load", &format!("insert-{t}-{ticket}"), LOAD_BODY);
                    sent += 1;
                }
                sent
            }));
        }
        HttpLoad { stop, threads }
    }

    fn start(port: u16, rate: f64) -> HttpLoad {
        const THREADS: usize = 8;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let interval = std::time::Duration::from_secs_f64(THREADS as f64 / rate.max(1.0));
        let threads = (0..THREADS)
            .map(|t| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut conn = KeepAlive::connect(port);
                    let start =
                        std::time::Instant::now() + interval.mul_f64(t as f64 / THREADS as f64);
                    let mut sent = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let due = start + interval.mul_f64(sent as f64);
                        if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        conn.post("/load", &format!("load-{t}-{sent}"), LOAD_BODY);
                        sent += 1;
                    }
                    sent
                })
            })
            .collect();
        HttpLoad { stop, threads }
    }

    /// Stop, and the requests sent.
    fn finish(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.threads
            .into_iter()
            .map(|h| h.join().unwrap_or(0))
            .sum()
    }
}

fn wal_bytes(c: &mut Client) -> f64 {
    c.query_one("SELECT wal_bytes::float8 FROM pg_stat_wal", &[])
        .unwrap()
        .get(0)
}

pub fn queue_cost(conf: &str, receiver: &FastReceiver) {
    let secs = crate::env_secs("BENCH_QUEUE_SECS", 8);
    // BENCH_QUEUE_CONF: settings added for an experiment (e.g. fsync = off).
    let extra = std::env::var("BENCH_QUEUE_CONF").unwrap_or_default();
    // Durable defaults for the writers: pg_stat_statements tracks nothing
    // during the measured runs (tracking the trigger's nested statements
    // is work plain inserts do not have); the statement profile comes from
    // a run of its own after them.
    let cluster = Cluster::start(&format!(
        "{conf}\nfsync = on\nsynchronous_commit = on\npg_stat_statements.track = 'none'\nlog_min_messages = warning\n{extra}"
    ));
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
    // (label, script, the worker stopped during the run, HTTP requests
    // alone meanwhile at this fraction of the first plain run's rate).
    let run = |name: &'static str, table: &str, stop: bool, http: Option<Pace>| {
        (name, insert(table, "email"), stop, http)
    };
    let mut configs: Vec<(&str, String, bool, Option<Pace>)> = vec![
        run("plain table (no trigger)", "public.plain_users", false, None),
        run(
            "pg_net's shape (jsonb of the row into an unlogged table)",
            "public.net_users",
            false,
            None,
        ),
        run("ours: webhook.watch row event", "public.watch_users", false, None),
        run("ours: user.created, documented body", "lms.users", false, None),
        // The write path alone: the worker stopped (SIGSTOP) during the
        // run, its events delivered after it (not a target: the targets
        // are with deliveries going on; PgQ's row has no consumer).
        run(
            "ours: webhook.watch, the worker stopped during the run",
            "public.watch_users",
            true,
            None,
        ),
        run(
            "ours: user.created, the worker stopped during the run",
            "lms.users",
            true,
            None,
        ),
        // What the targets leave for the delivery: HTTP requests alone
        // (no delivery, no database work), at 0.85 of the plain rate beside
        // the plain table, and one per insert beside the plain table and
        // beside our write path with the worker stopped. The last two are
        // what a sender whose delivery cost nothing but its requests would
        // keep: if that is below a target, so is any sender that delivers
        // each event to a receiver on the same cores.
        run(
            "plain table, HTTP requests alone at 0.85 of its rate meanwhile (a client outside Postgres)",
            "public.plain_users",
            false,
            Some(Pace::Rate(0.85)),
        ),
        run(
            "plain table, one HTTP request per insert meanwhile (a client outside Postgres)",
            "public.plain_users",
            false,
            Some(Pace::PerInsert("public.plain_users")),
        ),
        run(
            "ours: webhook.watch, the worker stopped, one HTTP request per insert meanwhile",
            "public.watch_users",
            true,
            Some(Pace::PerInsert("public.watch_users")),
        ),
        run(
            "ours: user.created, the worker stopped, one HTTP request per insert meanwhile",
            "lms.users",
            true,
            Some(Pace::PerInsert("lms.users")),
        ),
    ];
    if pgq {
        configs.insert(
            1,
            run(
                "PgQ pgq.jsontriga (durable, logged)",
                "public.pgq_users",
                false,
                None,
            ),
        );
        // The cheapest durable queue here with the cheapest delivery: what
        // any sender keeps that queues like PgQ and delivers each event.
        configs.push(run(
            "PgQ pgq.jsontriga, one HTTP request per insert meanwhile (a client outside Postgres)",
            "public.pgq_users",
            false,
            Some(Pace::PerInsert("public.pgq_users")),
        ));
    }
    let worker = cluster.worker_pid();
    let watch = if pgq { 3 } else { 2 };
    let mut http_sent = Vec::new();
    let cpu_of = |pid: i32| webhook_emitter_e2e::process_cpu_secs(pid).unwrap_or(0.0);
    let mut results: Vec<Vec<(f64, f64)>> = vec![Vec::new(); configs.len()];
    let mut times: Vec<Vec<WriterTime>> = vec![Vec::new(); configs.len()];
    let mut worker_cost = Vec::new();
    let order: Vec<usize> = (0..configs.len()).chain((0..configs.len()).rev()).collect();
    for &i in &order {
        let before = wal_bytes(&mut c);
        let cpu_before = cpu_of(worker);
        let (stop, http) = (configs[i].2, configs[i].3);
        // Held still while it waits on its latch, resumed when dropped.
        let held = stop.then(|| cluster.hold_worker_still());
        // The first plain run's rate sets the requests' rate.
        let load = http.map(|pace| match pace {
            Pace::Rate(fraction) => HttpLoad::start(
                receiver.port,
                fraction * results[0].first().map_or(4000.0, |r| r.0),
            ),
            Pace::PerInsert(table) => HttpLoad::per_insert(receiver.port, &cluster, table),
        });
        let (tps, n, time) = pgbench(&cluster, &configs[i].1, 2, secs, worker);
        times[i].push(time);
        if let Some(load) = load {
            http_sent.push((configs[i].0, load.finish() as f64 / n.max(1) as f64));
        }
        if let Some(held) = held {
            drop(held);
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
            let cpu = cpu_of(worker) - cpu_before;
            worker_cost.push((cpu / (secs as f64 + 2.0), cpu * 1e6 / n.max(1) as f64));
        }
    }
    // The statement profile: one more watch run, not counted above, with
    // pg_stat_statements tracking nested statements.
    c.batch_execute("ALTER SYSTEM SET pg_stat_statements.track = 'all'")
        .unwrap();
    c.batch_execute("SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    c.batch_execute("SELECT pg_stat_statements_reset()")
        .unwrap();
    pgbench(&cluster, &configs[watch].1, 2, secs, worker);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let watch_profile = crate::statement_profile(&cluster, secs as f64, "a watch run of its own");
    let avg = |i: usize, f: fn(&(f64, f64)) -> f64| {
        results[i].iter().map(f).sum::<f64>() / results[i].len() as f64
    };
    let plain = avg(0, |r| r.0);
    println!("\n## Write path against PgQ and pg_net's shape: single-row INSERT, 2 clients, durable, one webhook delivering meanwhile ({secs} s per run, two rounds averaged)\n");
    println!("| write path | TPS | ratio to plain | WAL bytes per INSERT |");
    println!("|---|---:|---:|---:|");
    for (i, (name, ..)) in configs.iter().enumerate() {
        let tps = avg(i, |r| r.0);
        println!(
            "| {name} | {tps:.0} | **{:.2}** | {:.0} |",
            tps / plain,
            avg(i, |r| r.1)
        );
    }
    println!("\nWhere each transaction's time went (µs per transaction, summed over the threads, the middle of each run; from `/proc/*/schedstat`): the two writers' backends on a CPU and runnable but waiting for one; the delivery worker, the receiver and pgbench on a CPU.\n");
    println!("| write path | wall (2 clients) | writers on a CPU | writers waiting for a CPU | worker (its main thread) | receiver | pgbench | context switches | machine idle | stolen |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, (name, ..)) in configs.iter().enumerate() {
        let n = times[i].len().max(1) as f64;
        let sum = |f: fn(&WriterTime) -> f64| times[i].iter().map(f).sum::<f64>() / n;
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:.0} ({:.0}) | {:.0} | {:.0} | {:.1} | {:.0} | {:.0} |",
            2e6 / avg(i, |r| r.0),
            sum(|t| t.on_cpu),
            sum(|t| t.waiting),
            sum(|t| t.worker),
            sum(|t| t.worker_main),
            sum(|t| t.receiver),
            sum(|t| t.client),
            sum(|t| t.switches),
            sum(|t| t.idle),
            sum(|t| t.steal)
        );
    }
    for (name, sent) in http_sent {
        println!("\n\"{name}\" sent {sent:.2} requests per INSERT (its `receiver` column counts the client's threads too).");
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
