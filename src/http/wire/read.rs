//! An answer read back within fixed bounds: the head (size, header
//! count), then the body as framed, kept and drained up to the caller's
//! limits.

use super::HttpError;
use std::io::{self, Read};

/// Largest response head (status line and headers) read.
const MAX_HEAD_BYTES: usize = 128 * 1024;
/// Most response headers parsed; more is an error, as in most clients.
const MAX_RESPONSE_HEADERS: usize = 100;
/// Longest chunk-size or trailer line of a chunked body.
const MAX_LINE_BYTES: usize = 4096;
/// Bytes asked of the connection per read.
const READ_SIZE: usize = 16 * 1024;

/// An answer: its status, its headers (names lower-cased, in order), the
/// first bytes of its body, and whether the connection may carry another
/// request.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub reusable: bool,
}

impl Response {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Bytes read from a connection (`buf[start..end]` not yet used).
struct Incoming<'a, R: Read> {
    conn: &'a mut R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl<R: Read> Incoming<'_, R> {
    fn unread(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Read more; false at the end of the stream.
    fn fill(&mut self) -> io::Result<bool> {
        // What was used goes: the buffer never holds more than what is
        // unread plus one read, and is zeroed only where it grows.
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < self.end + READ_SIZE {
            self.buf.resize(self.end + READ_SIZE, 0);
        }
        let n = loop {
            match self.conn.read(&mut self.buf[self.end..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        self.end += n;
        Ok(n > 0)
    }

    /// One CRLF-terminated line (without it), at most `MAX_LINE_BYTES`.
    fn line(&mut self) -> Result<String, HttpError> {
        loop {
            if let Some(end) = self.unread().windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.unread()[..end]).into_owned();
                self.start += end + 2;
                return Ok(line);
            }
            if self.unread().len() > MAX_LINE_BYTES {
                return Err(HttpError(
                    "malformed chunked response body (a line too long)".into(),
                ));
            }
            if !self.fill().map_err(read_error)? {
                return Err(closed_early());
            }
        }
    }

    /// Take `n` bytes, keeping what fits in `kept` up to `keep` bytes.
    fn take(&mut self, mut n: usize, kept: &mut Vec<u8>, keep: usize) -> Result<(), HttpError> {
        while n > 0 {
            if self.unread().is_empty() && !self.fill().map_err(read_error)? {
                return Err(closed_early());
            }
            let here = n.min(self.unread().len());
            let room = keep.saturating_sub(kept.len()).min(here);
            kept.extend_from_slice(&self.unread()[..room]);
            self.start += here;
            n -= here;
        }
        Ok(())
    }
}

/// The text for a failed read: a timeout says so in words the log's
/// readers search for.
fn read_error(e: io::Error) -> HttpError {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            HttpError("timed out waiting for the response".into())
        }
        _ => HttpError(format!("reading the response failed: {e}")),
    }
}

fn closed_early() -> HttpError {
    HttpError("the connection closed before the response was complete".into())
}

/// More of a head, within its bound.
fn read_more_head<R: Read>(incoming: &mut Incoming<'_, R>) -> Result<(), HttpError> {
    if incoming.unread().len() > MAX_HEAD_BYTES {
        return Err(HttpError(format!(
            "the response head is larger than {} KB",
            MAX_HEAD_BYTES / 1024
        )));
    }
    if incoming.fill().map_err(read_error)? {
        Ok(())
    } else if incoming.end > 0 {
        Err(closed_early())
    } else {
        Err(HttpError("the connection closed without a response".into()))
    }
}

/// How the body of an answer ends.
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// Read one answer from `conn`: skips interim (1xx) answers, keeps at most
/// `keep` bytes of the body and reads at most `drain` in all; a longer
/// body is left unread and the connection marked not reusable. Once the
/// head has arrived the answer stands: a body that fails part way (cut
/// short, malformed, past the deadline) keeps what arrived, and the
/// connection is not reused.
pub fn read_response<R: Read>(
    conn: &mut R,
    keep: usize,
    drain: u64,
) -> Result<Response, HttpError> {
    let mut incoming = Incoming {
        conn,
        buf: Vec::new(),
        start: 0,
        end: 0,
    };
    // Where the search for the head's end resumes: a receiver that
    // trickles its head is not parsed again from the start at every byte.
    let mut searched: usize = 0;
    let (status, headers, close) = loop {
        // A blank line (CRLF or a bare LF, which httparse takes too) in
        // what is new: worth a parse.
        let ended = incoming
            .unread()
            .get(searched.saturating_sub(2)..)
            .is_some_and(|new| {
                new.windows(2).any(|w| w == b"\n\n") || new.windows(3).any(|w| w == b"\n\r\n")
            });
        if !ended {
            searched = incoming.unread().len();
            read_more_head(&mut incoming)?;
            continue;
        }
        let parsed = {
            let mut slots = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
            let mut head = httparse::Response::new(&mut slots);
            match head.parse(incoming.unread()) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = head.code.unwrap_or(0);
                    let headers: Vec<(String, String)> = head
                        .headers
                        .iter()
                        .map(|h| {
                            let value = String::from_utf8_lossy(h.value).trim().to_owned();
                            (h.name.to_ascii_lowercase(), value)
                        })
                        .collect();
                    // HTTP/1.0 closes unless it says otherwise; we never ask.
                    let close = head.version != Some(1);
                    Some((len, status, headers, close))
                }
                Ok(httparse::Status::Partial) => None,
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(HttpError(format!(
                        "the response has more than {MAX_RESPONSE_HEADERS} headers"
                    )))
                }
                Err(e) => return Err(HttpError(format!("malformed response ({e})"))),
            }
        };
        match parsed {
            Some((len, status, headers, close)) => {
                incoming.start += len;
                searched = 0;
                if (100..200).contains(&status) && status != 101 {
                    continue; // interim (100 Continue, 103 Early Hints)
                }
                break (status, headers, close);
            }
            // Not yet a head (blank lines before it, which httparse
            // skips): read on.
            None => {
                searched = incoming.unread().len();
                read_more_head(&mut incoming)?;
            }
        }
    };
    if status == 101 {
        return Err(HttpError(
            "the receiver switched protocols (HTTP 101)".into(),
        ));
    }
    fn values<'h>(
        headers: &'h [(String, String)],
        name: &'static str,
    ) -> impl Iterator<Item = &'h String> {
        headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v)
    }
    let close = close
        || values(&headers, "connection")
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")));
    let chunked = values(&headers, "transfer-encoding")
        .flat_map(|v| v.split(','))
        .last()
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
    // Chunked with a length too is how requests are smuggled: read it as
    // chunked (RFC 9112), and never reuse the connection. A length that is
    // not one number: the answer stands (its head is in), its body is read
    // to the close, and the connection is not reused either.
    let mut ambiguous = chunked && values(&headers, "content-length").next().is_some();
    let framing = if status == 204 || status == 304 {
        Framing::None
    } else if chunked {
        Framing::Chunked
    } else if values(&headers, "transfer-encoding").next().is_some() {
        Framing::UntilClose
    } else {
        let mut lengths = values(&headers, "content-length")
            .flat_map(|v| v.split(','))
            .map(|v| digits(v.trim(), 10));
        match lengths.next() {
            None => Framing::UntilClose,
            Some(Some(n)) if lengths.all(|other| other == Some(n)) => Framing::Length(n),
            Some(_) => {
                ambiguous = true;
                Framing::UntilClose
            }
        }
    };
    let mut body = Vec::new();
    // A body that fails part way keeps what arrived (see above).
    let complete = read_body(&mut incoming, framing, &mut body, keep, drain).unwrap_or(false);
    let reusable = complete && !close && !ambiguous && incoming.unread().is_empty();
    Ok(Response {
        status,
        headers,
        body,
        reusable,
    })
}

/// A number of digits only (`parse` would take a sign).
fn digits(text: &str, radix: u32) -> Option<u64> {
    let valid = !text.is_empty() && text.chars().all(|c| c.is_digit(radix));
    valid
        .then(|| u64::from_str_radix(text, radix).ok())
        .flatten()
}

/// Read the body as framed; true when it was read to its end.
fn read_body<R: Read>(
    incoming: &mut Incoming<'_, R>,
    framing: Framing,
    body: &mut Vec<u8>,
    keep: usize,
    drain: u64,
) -> Result<bool, HttpError> {
    match framing {
        Framing::None => Ok(true),
        Framing::Length(n) => {
            let within = n.min(drain);
            incoming.take(within as usize, body, keep)?;
            Ok(within == n)
        }
        Framing::UntilClose => {
            let mut left = drain;
            loop {
                if incoming.unread().is_empty() {
                    match incoming.fill() {
                        Ok(true) => {}
                        // The end (over TLS, often without a close_notify:
                        // rustls says UnexpectedEof); never reusable.
                        Ok(false) => return Ok(false),
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
                        Err(e) => return Err(read_error(e)),
                    }
                }
                let here = (incoming.unread().len() as u64).min(left);
                incoming.take(here as usize, body, keep)?;
                left -= here;
                if left == 0 {
                    return Ok(false);
                }
            }
        }
        Framing::Chunked => {
            let mut left = drain;
            loop {
                let line = incoming.line()?;
                // Framing counts against the bound too: endless tiny
                // chunks with long extensions end like a long body.
                let Some(after) = left.checked_sub(line.len() as u64 + 2) else {
                    return Ok(false);
                };
                left = after;
                let size = line.split(';').next().unwrap_or("").trim();
                let size = digits(size, 16).ok_or_else(|| {
                    HttpError("malformed chunked response body (a bad chunk size)".into())
                })?;
                if size == 0 {
                    // Trailers, if any, then the blank line.
                    let mut trailer_bytes = 0;
                    loop {
                        let trailer = incoming.line()?;
                        if trailer.is_empty() {
                            return Ok(true);
                        }
                        trailer_bytes += trailer.len();
                        if trailer_bytes > MAX_HEAD_BYTES {
                            return Err(HttpError("the response's trailers are too large".into()));
                        }
                    }
                }
                if size > left {
                    incoming.take(left as usize, body, keep)?;
                    return Ok(false);
                }
                incoming.take(size as usize, body, keep)?;
                left -= size;
                if !incoming.line()?.is_empty() {
                    return Err(HttpError(
                        "malformed chunked response body (no CRLF after a chunk)".into(),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn read(raw: &[u8]) -> Result<Response, HttpError> {
        read_response(&mut Cursor::new(raw.to_vec()), 8, 1024)
    }

    /// A reader that hands out one byte per call, as a slow network might.
    struct Trickle(Vec<u8>, usize);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.1 >= self.0.len() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[self.1];
            self.1 += 1;
            Ok(1)
        }
    }

    #[test]
    fn bodies_by_length_chunks_or_close_are_kept_up_to_the_bound() {
        let r =
            read(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nX-A: 1\r\n\r\nhello world!").unwrap();
        assert_eq!(
            (r.status, r.body.as_slice(), r.reusable),
            (200, &b"hello wo"[..], true)
        );
        assert_eq!(r.header("x-a"), Some("1"));

        let chunked = b"HTTP/1.1 500 No\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nWiki\r\n5\r\npedia\r\n0\r\nT: 1\r\n\r\n";
        let r = read(chunked).unwrap();
        assert_eq!(
            (r.status, r.body.as_slice(), r.reusable),
            (500, &b"Wikipedi"[..], true)
        );

        let r = read(b"HTTP/1.1 200 OK\r\n\r\nuntil the end").unwrap();
        assert_eq!((r.body.as_slice(), r.reusable), (&b"until th"[..], false));

        let r = read(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert!(!r.reusable);
        let r = read(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert!(!r.reusable);
        let r = read(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
        assert!(r.reusable);
        // Interim answers are skipped.
        let r =
            read(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
        assert_eq!(r.status, 201);
        // The same one byte at a time, after an interim answer.
        let mut trickled = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
        trickled.extend_from_slice(chunked);
        let r = read_response(&mut Trickle(trickled, 0), 100, 1024).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (500, &b"Wikipedia"[..]));
        // Bare LF line ends, and blank lines before the head, as httparse
        // takes them; also one byte at a time.
        for raw in [
            &b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"[..],
            b"\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ] {
            let r = read(raw).unwrap();
            assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
            let r = read_response(&mut Trickle(raw.to_vec(), 0), 8, 1024).unwrap();
            assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
        }
        // A head of endless blank lines ends at the head's bound.
        let endless = b"\r\n".repeat(MAX_HEAD_BYTES);
        assert!(read(&endless).unwrap_err().0.contains("larger than 128 KB"));
    }

    #[test]
    fn long_bodies_stop_at_the_drain_bound_and_are_not_reused() {
        let mut raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n".to_vec();
        raw.extend(std::iter::repeat_n(b'x', 5000));
        let r = read(&raw).unwrap();
        assert_eq!((r.body.len(), r.reusable), (8, false));
        let mut raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n".to_vec();
        raw.extend(std::iter::repeat_n(b'x', 4096));
        let r = read(&raw).unwrap();
        assert_eq!((r.body.len(), r.reusable), (8, false));
    }

    #[test]
    fn malformed_or_oversized_answers_are_errors_that_say_what() {
        let err = |raw: &[u8]| read(raw).unwrap_err().0;
        assert!(err(b"").contains("without a response"));
        assert!(err(b"HTTP/1.1 200 OK\r\nContent").contains("closed before"));
        assert!(err(b"NOT HTTP\r\n\r\n").contains("malformed"));
        // Once the head is in, the answer stands; a body that fails keeps
        // what arrived and the connection is not reused.
        for (raw, body) in [
            (
                &b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"[..],
                &b"short"[..],
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n",
                b"ok",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+2\r\nok\r\n0\r\n\r\n",
                b"",
            ),
        ] {
            let r = read(raw).unwrap();
            assert_eq!(
                (r.status, r.body.as_slice(), r.reusable),
                (200, body, false)
            );
        }
        // A length that is not one number: read to the close, not reused.
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\nabc"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 2\r\n\r\nabc",
        ] {
            let r = read(raw).unwrap();
            assert_eq!((r.body.as_slice(), r.reusable), (&b"abc"[..], false));
        }
        // Chunked with a length too: read as chunked, never reused.
        let r = read(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n").unwrap();
        assert_eq!((r.body.as_slice(), r.reusable), (&b"ok"[..], false));
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_RESPONSE_HEADERS {
            many.extend(format!("h{i}: v\r\n").bytes());
        }
        many.extend(b"\r\n");
        assert!(err(&many).contains("more than 100 headers"));
        let mut huge = b"HTTP/1.1 200 OK\r\nx: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', MAX_HEAD_BYTES + READ_SIZE));
        assert!(err(&huge).contains("larger than 128 KB"));
        assert!(err(b"HTTP/1.1 101 Switching Protocols\r\n\r\n").contains("101"));
    }
}
