//! One connection of the client: TCP, or TLS over it, whose every read
//! and write ends at the request's deadline.

use super::wire::HttpError;
use rustls::pki_types::ServerName;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A TCP socket whose reads and writes end at a deadline. Socket timeouts
/// are changed only when the time left differs from them by more than a
/// sixteenth: a steady stream of fast requests sets none.
struct Socket {
    tcp: TcpStream,
    deadline: Instant,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timed out")
}

/// The time left before `deadline`, or a timeout error.
fn left(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(timed_out())
    } else {
        Ok(left)
    }
}

/// Set `current` to about `want` through `set` unless it is close enough.
fn adjust(
    current: &mut Option<Duration>,
    want: Duration,
    set: impl FnOnce(Option<Duration>) -> io::Result<()>,
) -> io::Result<()> {
    let close = current.is_some_and(|c| c <= want && want - c <= want / 16);
    if !close {
        set(Some(want))?;
        *current = Some(want);
    }
    Ok(())
}

impl Socket {
    /// Run `op` until it succeeds, fails otherwise, or the deadline passes.
    fn until_deadline<T>(
        &mut self,
        write: bool,
        mut op: impl FnMut(&mut TcpStream) -> io::Result<T>,
    ) -> io::Result<T> {
        loop {
            let want = left(self.deadline)?;
            if write {
                let tcp = &self.tcp;
                adjust(&mut self.write_timeout, want, |t| tcp.set_write_timeout(t))?;
            } else {
                let tcp = &self.tcp;
                adjust(&mut self.read_timeout, want, |t| tcp.set_read_timeout(t))?;
            }
            match op(&mut self.tcp) {
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    continue; // the loop's check ends it at the deadline
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.until_deadline(false, |tcp| tcp.read(buf))
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.until_deadline(true, |tcp| tcp.write(buf))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One connection, plain or TLS.
pub struct Connection(Stream);

enum Stream {
    Plain(Socket),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, Socket>>),
}

impl Connection {
    /// Connect to the first of `addrs` that answers (within the connect
    /// timeout and the deadline), then, given `tls` (the host named in the
    /// URL and the configuration), TLS with its handshake done.
    pub fn open(
        addrs: &[SocketAddr],
        netloc: &str,
        tls: Option<(&str, &Arc<rustls::ClientConfig>)>,
        connect_timeout: Duration,
        deadline: Instant,
    ) -> Result<Connection, HttpError> {
        let tcp = connect_any(addrs, netloc, connect_timeout, deadline)?;
        let _ = tcp.set_nodelay(true);
        let socket = Socket {
            tcp,
            deadline,
            read_timeout: None,
            write_timeout: None,
        };
        let Some((host, tls)) = tls else {
            return Ok(Connection(Stream::Plain(socket)));
        };
        let name = host.trim_matches(|c| c == '[' || c == ']').to_owned();
        let server = ServerName::try_from(name)
            .map_err(|e| HttpError(format!("TLS with {host}: invalid server name ({e})")))?;
        let tls = rustls::ClientConnection::new(Arc::clone(tls), server)
            .map_err(|e| HttpError(format!("TLS with {host}: {e}")))?;
        let mut stream = rustls::StreamOwned::new(tls, socket);
        // The handshake now, so that its failure (a certificate) says so.
        while stream.conn.is_handshaking() {
            let moved = stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| tls_error(host, e))?;
            if moved == (0, 0) {
                return Err(HttpError(format!(
                    "TLS with {host}: the connection closed during the handshake"
                )));
            }
        }
        Ok(Connection(Stream::Tls(Box::new(stream))))
    }

    fn socket(&mut self) -> &mut Socket {
        match &mut self.0 {
            Stream::Plain(s) => s,
            Stream::Tls(t) => &mut t.sock,
        }
    }

    /// The next request's deadline (an idle connection taken again).
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.socket().deadline = deadline;
    }

    /// Whether an idle connection can still carry a request: the peer has
    /// neither closed it nor sent anything (a TLS close_notify, a stray
    /// byte). One non-blocking peek.
    pub fn still_open(&mut self) -> bool {
        let fd = self.socket().tcp.as_raw_fd();
        let mut byte = 0u8;
        // SAFETY: a one-byte peek into a local buffer on a socket we own.
        let n = unsafe {
            libc::recv(
                fd,
                (&mut byte as *mut u8).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
    }

    /// Nothing of another answer is held (TLS: decrypted and unread, or a
    /// close_notify), so the next answer read here is the next request's.
    /// The wire reader saw its own buffer empty; rustls may hold more.
    pub fn nothing_buffered(&mut self) -> bool {
        match &mut self.0 {
            Stream::Plain(_) => true,
            Stream::Tls(t) => t.conn.process_new_packets().is_ok_and(|state| {
                state.plaintext_bytes_to_read() == 0 && !state.peer_has_closed()
            }),
        }
    }
}

impl Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.0 {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Connection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.0 {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(t) => t.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.0 {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(t) => t.flush(),
        }
    }
}

/// The first of `addrs` that accepts, each tried within the connect
/// timeout and the request's deadline.
fn connect_any(
    addrs: &[SocketAddr],
    netloc: &str,
    connect_timeout: Duration,
    deadline: Instant,
) -> Result<TcpStream, HttpError> {
    let mut last = None;
    for addr in addrs {
        let Ok(left) = left(deadline) else {
            last = Some(timed_out());
            break;
        };
        match TcpStream::connect_timeout(addr, left.min(connect_timeout)) {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock => {
            HttpError(format!("connecting to {netloc} timed out"))
        }
        Some(e) => HttpError(format!("connecting to {netloc} failed: {e}")),
        None => HttpError(format!("no address to connect to for {netloc}")),
    })
}

fn tls_error(host: &str, e: io::Error) -> HttpError {
    if e.kind() == io::ErrorKind::TimedOut {
        return HttpError(format!("TLS with {host} timed out"));
    }
    HttpError(format!("TLS with {host} failed: {e}"))
}
