//! The HTTP client every request goes through (deliveries, Send Test,
//! OAuth2 tokens): HTTP/1.1 with keep-alive, over plain TCP or rustls,
//! to exactly the addresses the address policy allowed, within one
//! deadline per request. A request is one write and its answer one or two
//! reads: a general-purpose client spent three times the CPU of this one
//! per webhook (socket options and a liveness probe per request, the head
//! and body in two segments), and the receiver twice as many wake-ups.

use super::connection::Connection;
use super::policy::{AddressPolicy, DNS_TIMEOUT};
use super::wire::{self, HttpError, Response};
use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Settings and idle connections shared by every clone.
struct Shared {
    policy: AddressPolicy,
    tls: Arc<rustls::ClientConfig>,
    user_agent: &'static str,
    connect_timeout: Duration,
    max_idle_per_host: usize,
    max_idle: usize,
    idle: Mutex<Idle>,
}

/// Idle connections by origin (no origin without one), each with when it
/// went idle, and their count.
#[derive(Default)]
struct Idle {
    conns: HashMap<Origin, Vec<(Connection, Instant)>>,
    count: usize,
}

/// An idle connection older than this is not used again: servers close
/// theirs after a few seconds (Node.js after 5), and a request written
/// as one closes fails, since it is never sent twice.
const MAX_IDLE_AGE: Duration = Duration::from_secs(4);

/// A request that could not be written completely: the server saw at
/// most a part of it, which it cannot take for a request (its length is
/// in the head), so sending it again is safe.
struct Unsent(io::Error);

/// A client: cheap to clone; its clones share idle connections.
#[derive(Clone)]
pub struct Client(Arc<Shared>);

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Client")
    }
}

/// What a connection is to: scheme, host, port.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Origin {
    https: bool,
    host: String,
    port: u16,
}

/// One POST: where, what, and how long it may take.
pub struct Post<'a> {
    pub url: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
    pub timeout: Duration,
    /// Body bytes kept of the answer.
    pub keep: usize,
    /// Body bytes read at most; a longer answer's connection is dropped.
    pub drain: u64,
}

impl Client {
    pub fn new(
        policy: AddressPolicy,
        tls: Arc<rustls::ClientConfig>,
        user_agent: &'static str,
        connect_timeout: Duration,
        max_idle_per_host: usize,
    ) -> Client {
        Client(Arc::new(Shared {
            policy,
            tls,
            user_agent,
            connect_timeout,
            max_idle_per_host,
            max_idle: max_idle_per_host * 2,
            idle: Mutex::new(Idle::default()),
        }))
    }

    /// POST and read the answer, whatever its status. A connection taken
    /// from the idle ones that the server turns out to have closed while
    /// idle (the request could not be written) is replaced by a new one,
    /// once: a request that was written is never sent twice here.
    pub fn post(&self, post: &Post<'_>) -> Result<Response, HttpError> {
        let deadline = Instant::now() + post.timeout;
        let url = url::Url::parse(post.url)
            .map_err(|e| HttpError(format!("the URL does not parse ({e})")))?;
        let https = match url.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(HttpError(format!("unsupported URL scheme {other}"))),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| HttpError("the URL has no host".into()))?;
        let port = url
            .port_or_known_default()
            .unwrap_or(if https { 443 } else { 80 });
        let host_header = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(post.headers.len() + 2);
        headers.push(("User-Agent", self.0.user_agent));
        if !post
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("accept"))
        {
            headers.push(("Accept", "*/*"));
        }
        headers.extend_from_slice(post.headers);
        let mut request = Vec::new();
        wire::write_post(&mut request, &host_header, &target, &headers, post.body)?;
        let origin = Origin {
            https,
            host: host.to_ascii_lowercase(),
            port,
        };
        if let Some(mut conn) = self.checkout(&origin) {
            conn.set_deadline(deadline);
            match self.exchange(origin.clone(), conn, &request, post) {
                // Not written: the server had closed it. A new one sends it
                // if there is time left.
                Err(Unsent(e)) if e.kind() != io::ErrorKind::TimedOut => {}
                Err(Unsent(e)) => return Err(write_error(e)),
                Ok(answer) => return answer,
            }
        }
        let conn = self.connect(&origin, deadline)?;
        match self.exchange(origin, conn, &request, post) {
            Err(Unsent(e)) => Err(write_error(e)),
            Ok(answer) => answer,
        }
    }

    /// Write the request, read its answer, and keep the connection if it
    /// can carry another request.
    fn exchange(
        &self,
        origin: Origin,
        mut conn: Connection,
        request: &[u8],
        post: &Post<'_>,
    ) -> Result<Result<Response, HttpError>, Unsent> {
        conn.write_all(request)
            .and_then(|()| conn.flush())
            .map_err(Unsent)?;
        let answer = wire::read_response(&mut conn, post.keep, post.drain);
        if let Ok(response) = &answer {
            if response.reusable && conn.nothing_buffered() {
                self.checkin(origin, conn);
            }
        }
        Ok(answer)
    }

    fn checkout(&self, origin: &Origin) -> Option<Connection> {
        let mut idle = self.0.idle.lock().unwrap_or_else(|p| p.into_inner());
        let Idle { conns, count } = &mut *idle;
        let of_origin = conns.get_mut(origin)?;
        let mut found = None;
        while let Some((mut conn, idle_since)) = of_origin.pop() {
            *count -= 1; // taken, or found closed or old and dropped
            if idle_since.elapsed() < MAX_IDLE_AGE && conn.still_open() {
                found = Some(conn);
                break;
            }
        }
        if of_origin.is_empty() {
            conns.remove(origin);
        }
        found
    }

    fn checkin(&self, origin: Origin, conn: Connection) {
        let mut idle = self.0.idle.lock().unwrap_or_else(|p| p.into_inner());
        let Idle { conns, count } = &mut *idle;
        if *count >= self.0.max_idle {
            return;
        }
        let of_origin = conns.entry(origin).or_default();
        if of_origin.len() < self.0.max_idle_per_host {
            of_origin.push((conn, Instant::now()));
            *count += 1;
        }
    }

    /// Resolve (within the DNS bound), keep the addresses the policy
    /// allows, connect to the first that answers, then TLS if asked.
    fn connect(&self, origin: &Origin, deadline: Instant) -> Result<Connection, HttpError> {
        let netloc = if origin.host.contains(':') {
            format!(
                "[{}]:{}",
                origin.host.trim_matches(|c| c == '[' || c == ']'),
                origin.port
            )
        } else {
            format!("{}:{}", origin.host, origin.port)
        };
        let left_now = deadline.saturating_duration_since(Instant::now());
        let addrs = self
            .0
            .policy
            .resolve(&netloc, left_now.min(DNS_TIMEOUT))
            .map_err(|e| HttpError(e.to_string()))?;
        Connection::open(
            &addrs,
            &netloc,
            origin.https.then_some((&origin.host, &self.0.tls)),
            self.0.connect_timeout,
            deadline,
        )
    }
}

fn write_error(e: io::Error) -> HttpError {
    if e.kind() == io::ErrorKind::TimedOut {
        return HttpError("timed out sending the request".into());
    }
    HttpError(format!("sending the request failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, Read};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn client(allowed: &str) -> Client {
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        let policy = AddressPolicy::parse(allowed).unwrap();
        Client::new(policy, Arc::new(tls), "test", Duration::from_secs(2), 8)
    }

    /// A server answering `answers` requests per connection (then closing
    /// it, without saying so); counts connections and requests.
    fn server(
        answers: usize,
        delay: Duration,
    ) -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (conns, reqs) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let accepts = Arc::new(AtomicUsize::new(0));
        let (c, r, a) = (Arc::clone(&conns), Arc::clone(&reqs), Arc::clone(&accepts));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                c.fetch_add(1, Ordering::SeqCst);
                let (r, accepts) = (Arc::clone(&r), Arc::clone(&a));
                std::thread::spawn(move || {
                    let mut w = stream.try_clone().unwrap();
                    let mut rd = std::io::BufReader::new(stream);
                    for _ in 0..answers {
                        let mut len = 0;
                        loop {
                            let mut line = String::new();
                            if rd.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" {
                                break;
                            }
                            if let Some(v) = line.strip_prefix("Content-Length: ") {
                                len = v.trim().parse().unwrap();
                            }
                            // Sent as ureq sent it; counted only then.
                            if line == "Accept: */*\r\n" {
                                accepts.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        let mut body = vec![0; len];
                        rd.read_exact(&mut body).unwrap();
                        r.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(delay);
                        let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                    }
                });
            }
        });
        (port, conns, reqs, accepts)
    }

    fn post<'a>(url: &'a str, timeout_ms: u64) -> Post<'a> {
        Post {
            url,
            headers: &[("webhook-id", "e1")],
            body: b"{}",
            timeout: Duration::from_millis(timeout_ms),
            keep: 100,
            drain: 1000,
        }
    }

    #[test]
    fn requests_reuse_an_idle_connection_and_replace_one_the_server_closed() {
        let (port, conns, reqs, accepts) = server(2, Duration::ZERO);
        let url = format!("http://127.0.0.1:{port}/hook?x=1");
        let c = client("127.0.0.1");
        for _ in 0..5 {
            let r = c.post(&post(&url, 2000)).unwrap();
            assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
            std::thread::sleep(Duration::from_millis(20));
        }
        // Two requests a connection: the third found its connection closed
        // (the peek) and took a new one, without error.
        assert_eq!(reqs.load(Ordering::SeqCst), 5);
        assert_eq!(conns.load(Ordering::SeqCst), 3);
        assert_eq!(accepts.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn a_request_written_is_never_sent_twice() {
        // Answers the first request of a connection; reads the second and
        // closes without answering.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let reqs = Arc::new(AtomicUsize::new(0));
        let r = Arc::clone(&reqs);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut w = stream.try_clone().unwrap();
                let mut rd = std::io::BufReader::new(stream);
                for answer in [true, false] {
                    let mut line = String::new();
                    while rd.read_line(&mut line).unwrap_or(0) > 0 && !line.ends_with("\r\n\r\n") {}
                    let mut body = [0u8; 2];
                    rd.read_exact(&mut body).unwrap();
                    r.fetch_add(1, Ordering::SeqCst);
                    if answer {
                        w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                            .unwrap();
                    }
                }
            }
        });
        let url = format!("http://127.0.0.1:{port}/");
        let c = client("127.0.0.1");
        assert_eq!(c.post(&post(&url, 2000)).unwrap().status, 200);
        let e = c.post(&post(&url, 2000)).unwrap_err();
        assert!(e.0.contains("closed without a response"), "{e}");
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(reqs.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_slow_receiver_ends_at_the_deadline_and_the_policy_refuses_first() {
        let (port, _, _, _) = server(1, Duration::from_secs(3));
        let url = format!("http://127.0.0.1:{port}/");
        let t0 = Instant::now();
        let e = client("127.0.0.1").post(&post(&url, 300)).unwrap_err();
        assert!(e.0.contains("timed out"), "{e}");
        assert!(
            t0.elapsed() < Duration::from_millis(1500),
            "{:?}",
            t0.elapsed()
        );

        let e = client("").post(&post(&url, 300)).unwrap_err();
        assert!(e.0.contains("non-public address 127.0.0.1"), "{e}");
        let e = client("127.0.0.1")
            .post(&post("http://127.0.0.1:1/a?token=T", 300))
            .unwrap_err();
        assert!(e.0.contains("refused") && !e.0.contains("token"), "{e}");
    }
}
