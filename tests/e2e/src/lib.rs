//! End-to-end harness: a throwaway PostgreSQL cluster (15 by default;
//! `WEBHOOK_PG_BIN` names another installation's bin directory) with
//! webhook_emitter preloaded, and real HTTP receivers on 127.0.0.1 that
//! record every request. Both are torn down on drop, also when a test fails.

pub mod citus;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use postgres::Client;

/// Bin directory of the PostgreSQL under test: `WEBHOOK_PG_BIN`, or
/// Debian's PostgreSQL 15.
pub fn pg_bin() -> String {
    std::env::var("WEBHOOK_PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc_geteuid() == 0 }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// Run a PostgreSQL binary, as the postgres user when we are root.
pub fn pg_command(bin: &str) -> Command {
    let path = format!("{}/{bin}", pg_bin());
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", &path]);
        c
    } else {
        Command::new(path)
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// A running cluster; stopped and deleted on drop.
pub struct Cluster {
    pub dir: PathBuf,
    pub port: u16,
}

impl Cluster {
    /// initdb + start with the extension preloaded; `extra_conf` lines are
    /// appended to postgresql.conf. The extension is created in `postgres`.
    pub fn start(extra_conf: &str) -> Cluster {
        let cluster = Self::start_bare(extra_conf);
        let mut c = cluster.client();
        c.batch_execute("CREATE EXTENSION webhook_emitter")
            .expect("CREATE EXTENSION");
        cluster
    }

    /// Like `start`, without creating the extension anywhere.
    pub fn start_bare(extra_conf: &str) -> Cluster {
        let base = std::env::temp_dir().join(format!(
            "webhook_e2e_{}_{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&base).expect("mkdir");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres", base.to_str().unwrap()])
                .status();
            assert!(status.map(|s| s.success()).unwrap_or(false), "chown failed");
        }
        let cluster = Cluster {
            dir: base,
            port: free_port(),
        };
        let data = cluster.data_dir();
        let out = pg_command("initdb")
            .args([
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{dir}'\n\
             shared_preload_libraries = 'webhook_emitter'\nwebhook.allowed_hosts = '127.0.0.1'\n\
             webhook.poll_interval = '200ms'\nfsync = off\nmax_connections = 50\n{extra_conf}\n",
            port = cluster.port,
            dir = cluster.dir.display()
        );
        let mut existing =
            std::fs::read_to_string(data.join("postgresql.conf")).unwrap_or_default();
        existing.push_str(&conf);
        // Written as root: make sure postgres can still read it.
        std::fs::write(data.join("postgresql.conf"), existing).expect("write conf");
        cluster.pg_ctl_start();
        cluster
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    pub fn pg_ctl_start(&self) {
        let out = pg_command("pg_ctl")
            .args([
                "-D",
                self.data_dir().to_str().unwrap(),
                "-l",
                self.log_file().to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ])
            .output()
            .expect("pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// Stop with the given mode (smart, fast, immediate).
    pub fn pg_ctl_stop(&self, mode: &str) {
        let _ = pg_command("pg_ctl")
            .args([
                "-D",
                self.data_dir().to_str().unwrap(),
                "-m",
                mode,
                "-w",
                "-t",
                "60",
                "stop",
            ])
            .output();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    pub fn conn_string(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    pub fn client(&self) -> Client {
        self.client_db("postgres")
    }

    /// Run a client program (pg_dump, pg_restore, psql, ...) against this
    /// cluster as the postgres user; panics with its stderr if it fails.
    pub fn run(&self, bin: &str, args: &[&str]) -> Vec<u8> {
        let port = self.port.to_string();
        let out = pg_command(bin)
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{bin}: {e}"));
        assert!(
            out.status.success(),
            "{bin} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// A connection to database `db`.
    pub fn client_db(&self, db: &str) -> Client {
        let conn = format!(
            "host=127.0.0.1 port={} user=postgres dbname={db}",
            self.port
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match Client::connect(&conn, postgres::NoTls) {
                Ok(c) => return c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("cannot connect: {e}\n{}", self.log()),
            }
        }
    }

    /// The roles people use: `admin`, a NOSUPERUSER member of webhook_admin;
    /// `lms_app`, an LMS application role with table privileges only; and
    /// `nobody`, with PUBLIC's rights only.
    pub fn create_roles(&self, admin: &str) {
        self.client()
            .batch_execute(&format!(
                "CREATE ROLE {admin} LOGIN NOSUPERUSER;
                 GRANT webhook_admin TO {admin};
                 CREATE ROLE lms_app LOGIN NOSUPERUSER;
                 GRANT USAGE ON SCHEMA lms TO lms_app;
                 GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA lms TO lms_app;
                 GRANT USAGE ON ALL SEQUENCES IN SCHEMA lms TO lms_app;
                 CREATE ROLE nobody LOGIN NOSUPERUSER;"
            ))
            .expect("the test roles");
    }

    /// A connection to database postgres as `user` (e.g. a role without grants).
    pub fn client_as(&self, user: &str) -> Client {
        let conn = format!(
            "host=127.0.0.1 port={} user={user} dbname=postgres",
            self.port
        );
        Client::connect(&conn, postgres::NoTls).expect("connect")
    }

    /// Hold the delivery worker of database "postgres" still (SIGSTOP)
    /// until the guard is dropped (SIGCONT). It is stopped while it waits
    /// on its latch outside a transaction, so it holds no lock that
    /// another session could then wait for without end.
    pub fn hold_worker_still(&self) -> HeldWorker {
        let pid = self.worker_pid();
        let signal = move |s: &str| {
            let status = std::process::Command::new("kill")
                .args([s, &pid.to_string()])
                .status()
                .expect("kill");
            assert!(status.success(), "kill {s} {pid}");
        };
        let mut c = self.client();
        wait_for(
            Duration::from_secs(30),
            "the worker stopped while idle",
            || {
                signal("-STOP");
                let idle: bool = c
                    .query_one(
                        "SELECT coalesce(bool_and(a.xact_start IS NULL AND a.wait_event_type = 'Extension'), false)
                           FROM pg_catalog.pg_stat_activity a WHERE a.pid = $1",
                        &[&pid],
                    )
                    .map(|row| row.get(0))
                    .unwrap_or(false);
                if !idle {
                    signal("-CONT");
                    std::thread::sleep(Duration::from_millis(20));
                }
                idle.then_some(())
            },
        );
        HeldWorker { pid }
    }

    /// PID of the delivery worker of database "postgres", once it runs
    /// (past its startup: interrupted deliveries released, claiming).
    pub fn worker_pid(&self) -> i32 {
        let mut c = self.client();
        wait_for(
            Duration::from_secs(30),
            "the delivery worker to be ready",
            || {
                self.log()
                    .contains("delivery worker for postgres started")
                    .then_some(())
            },
        );
        wait_for(
            Duration::from_secs(30),
            "the delivery worker to start",
            || {
                c.query_opt(
                    "SELECT pid FROM pg_stat_activity
                      WHERE backend_type = 'webhook_emitter' AND datname = current_database()",
                    &[],
                )
                .ok()
                .flatten()
                .map(|r| r.get::<_, i32>(0))
            },
        )
    }
}

/// Replication: streaming standbys made with `pg_basebackup -R`, promotion,
/// and logical replication between independent clusters.
impl Cluster {
    /// An empty cluster directory (owned by postgres when we are root) and a
    /// free port; no data directory yet.
    fn empty_dir() -> Cluster {
        let base = std::env::temp_dir().join(format!(
            "webhook_e2e_{}_{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&base).expect("mkdir");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres", base.to_str().unwrap()])
                .status();
            assert!(status.map(|s| s.success()).unwrap_or(false), "chown failed");
        }
        Cluster {
            dir: base,
            port: free_port(),
        }
    }

    /// A hot streaming standby of `primary`, started: `pg_basebackup -R`
    /// (WAL streamed, fast checkpoint) into its own directory, with the
    /// primary's postgresql.conf (the same preload and settings) plus its own
    /// port and socket directory. initdb's `-A trust` lets local and
    /// 127.0.0.1 replication connections in. Its `primary_conninfo` and
    /// `standby.signal` come from `-R`.
    pub fn standby_of(primary: &Cluster) -> Cluster {
        let bin = format!("{}/pg_basebackup", pg_bin());
        assert!(
            Path::new(&bin).exists(),
            "{bin} does not exist: a standby needs pg_basebackup next to the server under test"
        );
        let cluster = Self::empty_dir();
        let data = cluster.data_dir();
        let port = primary.port.to_string();
        let out = pg_command("pg_basebackup")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-D",
                data.to_str().unwrap(),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            ])
            .output()
            .expect("pg_basebackup");
        assert!(
            out.status.success(),
            "pg_basebackup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Later lines win: the standby's own port and socket directory.
        let conf = format!(
            "\n# standby of port {primary}\nport = {port}\nunix_socket_directories = '{dir}'\nhot_standby = on\n",
            primary = primary.port,
            port = cluster.port,
            dir = cluster.dir.display()
        );
        let mut existing =
            std::fs::read_to_string(data.join("postgresql.conf")).expect("the copied conf");
        existing.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), existing).expect("write conf");
        cluster.pg_ctl_start();
        assert!(cluster.is_in_recovery(), "the standby is not in recovery");
        cluster
    }

    /// `pg_ctl promote -w`: the standby becomes a primary (its launcher and
    /// delivery workers start once recovery has ended).
    pub fn promote(&self) {
        let out = pg_command("pg_ctl")
            .args([
                "-D",
                self.data_dir().to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "promote",
            ])
            .output()
            .expect("pg_ctl promote");
        assert!(
            out.status.success(),
            "pg_ctl promote failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        let mut c = self.client();
        wait_for(Duration::from_secs(60), "the promotion to finish", || {
            let r: bool = c.query_one("SELECT pg_is_in_recovery()", &[]).ok()?.get(0);
            (!r).then_some(())
        });
    }

    pub fn is_in_recovery(&self) -> bool {
        self.client()
            .query_one("SELECT pg_is_in_recovery()", &[])
            .expect("pg_is_in_recovery")
            .get(0)
    }

    /// The primary's current WAL position (`pg_current_wal_lsn()`), as text.
    pub fn current_wal_lsn(&self) -> String {
        self.client()
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .expect("pg_current_wal_lsn")
            .get(0)
    }

    /// Wait until this standby has replayed everything `primary` had
    /// written when called (`pg_last_wal_replay_lsn()` has reached the
    /// primary's `pg_current_wal_lsn()`).
    pub fn wait_replayed(&self, primary: &Cluster, timeout: Duration) {
        let lsn = primary.current_wal_lsn();
        let mut c = self.client();
        wait_for(
            timeout,
            &format!("the standby on port {} to replay up to {lsn}", self.port),
            || {
                let done: Option<bool> = c
                    .query_one(
                        "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                        &[&lsn],
                    )
                    .ok()?
                    .get(0);
                done.unwrap_or(false).then_some(())
            },
        );
    }

    /// `CREATE SUBSCRIPTION name CONNECTION <publisher> PUBLICATION publication`
    /// in database postgres of this cluster (the publisher needs
    /// `wal_level = logical`; a slot named after the subscription is created there).
    pub fn subscribe(&self, publisher: &Cluster, name: &str, publication: &str) {
        self.client()
            .batch_execute(&format!(
                "CREATE SUBSCRIPTION {name} CONNECTION '{}' PUBLICATION {publication}",
                publisher.conn_string()
            ))
            .unwrap_or_else(|e| panic!("CREATE SUBSCRIPTION: {}", db_message(&e)));
    }

    /// Lines of the server log with `ERROR:`.
    pub fn error_lines(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("ERROR:"))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.pg_ctl_stop("immediate");
        if std::thread::panicking() {
            eprintln!(
                "--- postgres log ({}) ---\n{}",
                self.log_file().display(),
                tail(&self.log(), 60)
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Poll `f` until it returns Some, or panic after `timeout`.
/// CPU seconds (user and system) a process has used, its threads included;
/// None when its `/proc` entry cannot be read.
pub fn process_cpu_secs(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The server's message of a failed statement (what a DBA reads).
pub fn db_message(err: &postgres::Error) -> String {
    err.as_db_error()
        .map(|e| e.message().to_owned())
        .unwrap_or_else(|| format!("not a server error: {err}"))
}

/// Whether the official Standard Webhooks library accepts the request's
/// signature with `secret`.
pub fn verify_signature(secret: &str, rec: &Recorded) -> bool {
    let mut headers = http::HeaderMap::new();
    for (k, v) in &rec.headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            headers.insert(name, value);
        }
    }
    standardwebhooks::Webhook::new(secret)
        .map(|w| w.verify(&rec.body, &headers).is_ok())
        .unwrap_or(false)
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body_text()))
    }
}

/// What the receiver answers: status, extra headers, delay before answering.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub delay: Duration,
    pub body: String,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            delay: Duration::ZERO,
            body: "ok".into(),
        }
    }
}

type Responder = dyn Fn(&Recorded) -> Reply + Send + Sync;

/// A real HTTP/1.1 server on 127.0.0.1 (optionally HTTPS) recording every
/// request: a thread per connection, keep-alive, Content-Length bodies.
pub struct Receiver {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    responder: Arc<Mutex<Arc<Responder>>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    pub fn start() -> Receiver {
        Self::serve(None)
    }

    /// Kept for call sites that size the old thread pool; every connection
    /// gets its own thread now.
    pub fn start_with(_threads: usize) -> Receiver {
        Self::serve(None)
    }

    /// Serve HTTPS with the given PEM certificate chain and key.
    pub fn start_https(cert_pem: &[u8], key_pem: &[u8]) -> Receiver {
        let certs: Vec<_> = rustls_pemfile::certs(&mut &cert_pem[..])
            .collect::<Result<_, _>>()
            .expect("certificate PEM");
        let key = rustls_pemfile::private_key(&mut &key_pem[..])
            .expect("key PEM")
            .expect("a private key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server certificate");
        Self::serve(Some(Arc::new(config)))
    }

    /// Serve HTTPS that demands a client certificate issued by the CA in
    /// `client_ca_pem` (mutual TLS): a client without one fails the handshake.
    pub fn start_https_mtls(cert_pem: &[u8], key_pem: &[u8], client_ca_pem: &[u8]) -> Receiver {
        let certs: Vec<_> = rustls_pemfile::certs(&mut &cert_pem[..])
            .collect::<Result<_, _>>()
            .expect("certificate PEM");
        let key = rustls_pemfile::private_key(&mut &key_pem[..])
            .expect("key PEM")
            .expect("a private key");
        let mut roots = rustls::RootCertStore::empty();
        for ca in rustls_pemfile::certs(&mut &client_ca_pem[..]) {
            roots.add(ca.expect("client CA PEM")).expect("client CA");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .expect("client verifier");
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .expect("server certificate");
        Self::serve(Some(Arc::new(config)))
    }

    fn serve(tls: Option<Arc<rustls::ServerConfig>>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let default: Arc<Responder> = Arc::new(|_: &Recorded| Reply::status(200));
        let responder = Arc::new(Mutex::new(default));
        let stop = Arc::new(AtomicBool::new(false));
        let (reqs, resp, stop2) = (
            Arc::clone(&requests),
            Arc::clone(&responder),
            Arc::clone(&stop),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(tcp) = conn else { continue };
                let _ = tcp.set_nodelay(true);
                let (reqs, resp, tls) = (Arc::clone(&reqs), Arc::clone(&resp), tls.clone());
                std::thread::spawn(move || match tls {
                    Some(config) => {
                        if let Ok(conn) = rustls::ServerConnection::new(config) {
                            serve_http(rustls::StreamOwned::new(conn, tcp), &reqs, &resp);
                        }
                    }
                    None => serve_http(tcp, &reqs, &resp),
                });
            }
        });
        Receiver {
            port,
            requests,
            responder,
            stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn respond_with(&self, f: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) {
        *self.responder.lock().unwrap() = Arc::new(f);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// Wait until at least `n` requests arrived.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        wait_for(timeout, &format!("{n} requests at the receiver"), || {
            let r = self.requests();
            (r.len() >= n).then_some(r)
        })
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so that it sees the flag.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        410 => "Gone",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Serve HTTP/1.1 requests on one connection until the client closes it.
fn serve_http<S: std::io::Read + std::io::Write>(
    stream: S,
    requests: &Mutex<Vec<Recorded>>,
    responder: &Mutex<Arc<Responder>>,
) {
    use std::io::{BufRead, BufReader, Read};
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut parts = line.split_whitespace();
        let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
            continue;
        };
        let (method, path) = (method.to_owned(), path.to_owned());
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            match reader.read_line(&mut h) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        let length = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let rec = Recorded {
            method,
            path,
            headers,
            body,
            at: Instant::now(),
        };
        // The lock is not held while the responder runs: one may block.
        let respond = responder.lock().unwrap().clone();
        let reply = respond(&rec);
        let close = rec
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        requests.lock().unwrap().push(rec);
        if !reply.delay.is_zero() {
            std::thread::sleep(reply.delay);
        }
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Length: {}\r\n",
            reply.status,
            reason(reply.status),
            reply.body.len()
        );
        for (k, v) in &reply.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&reply.body);
        let stream = reader.get_mut();
        if stream
            .write_all(out.as_bytes())
            .and_then(|_| stream.flush())
            .is_err()
            || close
        {
            return;
        }
    }
}

/// Path of a fixture file under tests/e2e/fixtures.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

/// Every key path of `example` must exist in `actual` with the same JSON
/// type; arrays are compared element-wise against the example's first element.
pub fn assert_shape(
    example: &serde_json::Value,
    actual: &serde_json::Value,
    path: &str,
    problems: &mut Vec<String>,
) {
    use serde_json::Value;
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    match (example, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                match a.get(k) {
                    Some(av) => assert_shape(ev, av, &format!("{path}.{k}"), problems),
                    None => problems.push(format!("{path}.{k} is missing")),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if let Some(first) = e.first() {
                for (i, av) in a.iter().enumerate() {
                    assert_shape(first, av, &format!("{path}[{i}]"), problems);
                }
            }
        }
        // A documented null may carry a value in real data.
        (Value::Null, _) => {}
        // An example listing its allowed values ("pending/completed/null")
        // allows null when it lists it.
        (Value::String(e), Value::Null) if e.split('/').any(|alt| alt == "null") => {}
        (e, a) if kind(e) != kind(a) => problems.push(format!(
            "{path} is {} but the example has {}",
            kind(a),
            kind(e)
        )),
        _ => {}
    }
}

/// Requests a [`FastReceiver`] saw: webhook-id, arrival time, body.
pub type SeenRequests = Arc<Mutex<Vec<(String, Instant, Vec<u8>)>>>;

/// A minimal HTTP/1.1 keep-alive receiver for benchmarks: a thread per
/// connection, answers 200 at once, records the `webhook-id`, the arrival
/// time and the body of every request.
pub struct FastReceiver {
    pub port: u16,
    pub seen: SeenRequests,
    stop: Arc<AtomicBool>,
}

impl FastReceiver {
    pub fn start() -> FastReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (Arc::clone(&seen), Arc::clone(&stop));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = conn else { continue };
                let seen = Arc::clone(&seen2);
                std::thread::spawn(move || serve_connection(stream, seen));
            }
        });
        FastReceiver { port, seen, stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn wait_for(&self, n: usize, timeout: Duration) {
        wait_for(timeout, &format!("{n} requests at the receiver"), || {
            (self.count() >= n).then_some(())
        });
    }
}

impl Drop for FastReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve_connection(stream: std::net::TcpStream, seen: SeenRequests) {
    use std::io::{BufRead, BufReader, Read, Write};
    let _ = stream.set_nodelay(true);
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut id = String::new();
        let mut line = String::new();
        let mut first = true;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let l = line.trim_end();
            if l.is_empty() {
                if first {
                    continue;
                }
                break;
            }
            first = false;
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                } else if k.eq_ignore_ascii_case("webhook-id") {
                    id = v.trim().to_owned();
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let at = Instant::now();
        if writer
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .is_err()
        {
            return;
        }
        seen.lock().unwrap().push((id, at, body));
    }
}

/// Wait until `n` deliveries have status `delivered`.
pub fn wait_delivered(client: &mut Client, n: i64, timeout: Duration) {
    wait_for(timeout, &format!("{n} delivered deliveries"), || {
        let done: i64 = client
            .query_one(
                "SELECT count(*) FROM webhook.deliveries WHERE status = 'delivered'",
                &[],
            )
            .ok()?
            .get(0);
        (done == n).then_some(())
    });
}

/// Wait until the worker has made the deliveries of every event committed
/// so far (the fan-out runs within milliseconds of a commit), and return
/// how many deliveries there are.
pub fn wait_fanned_out(client: &mut Client) -> i64 {
    wait_for(
        Duration::from_secs(30),
        "the fan-out of the committed events",
        || {
            let row = client
            .query_one(
                "SELECT NOT EXISTS (SELECT FROM webhook.events e, webhook.fanout f
                                     WHERE e.txid IS NOT NULL AND NOT pg_visible_in_snapshot(e.txid, f.snapshot)),
                        (SELECT count(*) FROM webhook.deliveries) + (SELECT count(*) FROM webhook.in_flight)",
                &[],
            )
            .ok()?;
            row.get::<_, bool>(0).then(|| row.get(1))
        },
    )
}

/// The delivery worker held still by `Cluster::hold_worker_still`; it goes
/// on when this is dropped (a failing test included).
pub struct HeldWorker {
    pid: i32,
}

impl Drop for HeldWorker {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.pid.to_string()])
            .status();
    }
}

/// A throwaway certificate authority for TLS tests: it issues server
/// certificates (for 127.0.0.1 and localhost) and client certificates.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa { cert, key }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate for `names` (DNS names or IP addresses) and its key,
    /// both PEM; `client` marks it for client authentication.
    pub fn issue(&self, names: &[&str], client: bool) -> (String, String) {
        use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
        let key = KeyPair::generate().expect("leaf key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("leaf params");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("leaf certificate");
        (cert.pem(), key.serialize_pem())
    }
}

/// Run `script` with the tests' Python checkers (scripts/deps.sh installs
/// them), `input` on its stdin; its stdout, or its stderr as the error.
pub fn python_check(script: &str, input: &str) -> Result<String, String> {
    use std::io::Write;
    let mut child = Command::new("/opt/webhook_emitter/tools/bin/python")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the tests' Python checkers (run scripts/deps.sh)");
    if let Some(mut stdin) = child.stdin.take() {
        // A checker that fails early closes its stdin: its stderr says why.
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().expect("the checker runs");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Validates each `[schema, body]` pair of a JSON array read from stdin
/// with jsonschema's draft 2020-12 validator, formats asserted; prints a
/// JSON array of the errors of each pair.
pub const JSON_SCHEMA_CHECK: &str = r#"
import json, sys
from jsonschema import Draft202012Validator, FormatChecker
out = []
for schema, body in json.load(sys.stdin):
    Draft202012Validator.check_schema(schema)
    v = Draft202012Validator(schema, format_checker=FormatChecker())
    out.append(["/".join(map(str, e.absolute_path)) + ": " + e.message for e in v.iter_errors(body)])
print(json.dumps(out))
"#;
