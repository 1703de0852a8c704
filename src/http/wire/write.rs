//! A POST written in one buffer, its headers checked first.

use super::HttpError;

/// The refusal of a header that would break the request apart.
fn bad_header() -> HttpError {
    HttpError(
        "the request was not sent: the HTTP client refused one of its headers (an extra header, \
         a token or credentials with characters outside printable ASCII); correct the webhook's settings"
            .to_owned(),
    )
}

/// Headers that frame the request or the connection: written here only.
const FRAMING_HEADERS: [&str; 8] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
];

/// RFC 9110 token characters (header names).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Printable ASCII, space and tab: nothing that ends a line.
fn is_field_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// Append a POST of `body` to `out`: request line, `Host`, the given
/// headers, `Content-Length`, then the body. A header that is not a token
/// name with a printable value is refused before anything is written.
pub fn write_post(
    out: &mut Vec<u8>,
    host: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(), HttpError> {
    if !is_field_value(host) || !is_field_value(target) || target.contains(' ') {
        return Err(bad_header());
    }
    if headers
        .iter()
        .any(|(n, v)| !is_token(n) || !is_field_value(v))
    {
        return Err(bad_header());
    }
    // How the request is framed is this function's alone: a second
    // Content-Length or a Transfer-Encoding would smuggle a request.
    if let Some((name, _)) = headers
        .iter()
        .find(|(n, _)| FRAMING_HEADERS.iter().any(|f| n.eq_ignore_ascii_case(f)))
    {
        return Err(HttpError(format!(
            "the request was not sent: the header {name} is the HTTP client's own; remove it from the webhook's headers"
        )));
    }
    out.reserve(256 + body.len());
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    for (name, value) in headers {
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.trim().as_bytes());
    }
    out.extend_from_slice(b"\r\nContent-Length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_is_one_buffer_and_refuses_line_breaks() {
        let mut out = Vec::new();
        write_post(&mut out, "h:81", "/p?q=1", &[("webhook-id", "e1")], b"{}").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /p?q=1 HTTP/1.1\r\nHost: h:81\r\nwebhook-id: e1\r\nContent-Length: 2\r\n\r\n{}"
        );
        for (name, value) in [
            ("x", "a\r\nInjected: 1"),
            ("x y", "v"),
            ("", "v"),
            ("x", "é"),
            ("x:", "v"),
        ] {
            let mut out = Vec::new();
            assert_eq!(
                write_post(&mut out, "h", "/", &[(name, value)], b""),
                Err(bad_header())
            );
            assert!(out.is_empty());
        }
        assert!(write_post(&mut Vec::new(), "h", "/a b", &[], b"").is_err());
        for framing in ["Content-Length", "transfer-encoding", "HOST", "Connection"] {
            let e = write_post(&mut Vec::new(), "h", "/", &[(framing, "1")], b"").unwrap_err();
            assert!(e.0.contains(framing) && e.0.contains("client's own"), "{e}");
        }
    }
}
