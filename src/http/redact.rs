//! Keeping secrets out of logged texts. A webhook URL may carry a token in
//! its query string, and a redirect's Location may add user:password@. The
//! delivery log is readable by PUBLIC, so every text that may hold a URL is
//! passed through here before it is stored or returned.

use url::Url;

/// What a hidden part of a URL is replaced by.
const REDACTED: &str = "<redacted>";
/// Shown instead of text that does not parse as a URL (it could be anything).
const UNPARSEABLE: &str = "<unparseable URL>";
/// Query, fragment or credential texts shorter than this are not scrubbed
/// out of free text: they hide nothing and would mangle every message.
const MIN_SECRET_LEN: usize = 3;

/// `scheme://host[:port]/`: a path becomes `/<redacted>` (Slack's and
/// Discord's webhook URLs carry their token in it), the query
/// `?<redacted>`, a fragment `#<redacted>`, and user:password@ is dropped.
/// A URL without a host (`mailto:`, `data:`) keeps only its scheme.
pub fn redact_url(raw: &str) -> String {
    match Url::parse(raw.trim()) {
        Ok(url) => redact_parsed(&url),
        Err(_) => UNPARSEABLE.to_owned(),
    }
}

/// [`redact_url`] for a URL already parsed.
pub fn redact_parsed(url: &Url) -> String {
    let mut out = url.scheme().to_owned();
    let Some(host) = url.host_str() else {
        out.push(':');
        out.push_str(REDACTED);
        return out;
    };
    out.push_str("://");
    out.push_str(host);
    if let Some(port) = url.port() {
        out.push(':');
        out.push_str(&port.to_string());
    }
    match url.path() {
        "" | "/" => out.push('/'),
        _ => {
            out.push('/');
            out.push_str(REDACTED);
        }
    }
    if url.query().is_some() {
        out.push('?');
        out.push_str(REDACTED);
    }
    if url.fragment().is_some() {
        out.push('#');
        out.push_str(REDACTED);
    }
    out
}

/// A Location header (absolute or relative to `base`), redacted.
pub fn redact_location(base: &str, location: &str) -> String {
    match Url::parse(base).and_then(|b| b.join(location.trim())) {
        Ok(url) => redact_parsed(&url),
        Err(_) => UNPARSEABLE.to_owned(),
    }
}

/// `text` (e.g. an HTTP client error about a request to `url`) with every
/// copy of `url` redacted, and any other copy of its query, fragment or
/// credentials replaced by `<redacted>`, whatever the text's format.
pub fn scrub(text: &str, url: &str) -> String {
    let parsed = Url::parse(url.trim()).ok();
    let safe = redact_url(url);
    // The URL as given and as normalised by the parser; longest first so a
    // shorter form never leaves the tail of a longer one behind.
    let mut forms: Vec<&str> = vec![url];
    if let Some(u) = &parsed {
        forms.push(u.as_str());
    }
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    let mut out = text.to_owned();
    for form in forms.into_iter().filter(|f| !f.is_empty()) {
        out = out.replace(form, &safe);
    }
    if let Some(u) = &parsed {
        let path = Some(u.path()).filter(|p| *p != "/");
        let secrets = [
            path,
            u.query(),
            u.fragment(),
            Some(u.username()),
            u.password(),
        ];
        for secret in secrets
            .into_iter()
            .flatten()
            .filter(|s| s.len() >= MIN_SECRET_LEN)
        {
            out = out.replace(secret, REDACTED);
        }
    }
    out
}

/// The text stored for an HTTP client error of a request to `url`, after
/// the URL redacted: readable by PUBLIC. The client's texts name a host and port, never a
/// path, query or header value; a copy of the URL or of one of `secrets`
/// (credentials and header values the request carried) is replaced all
/// the same, should one ever reach a text (a host name, an OS message).
pub fn transport_error(text: &str, url: &str, secrets: &[&str]) -> String {
    let text = without_secrets(scrub(text, url), secrets);
    format!("{}: {text}", redact_url(url))
}

/// `text` with every copy of each secret (of at least `MIN_SECRET_LEN`
/// bytes) replaced by `<redacted>`.
fn without_secrets(mut text: String, secrets: &[&str]) -> String {
    for secret in secrets.iter().filter(|s| s.len() >= MIN_SECRET_LEN) {
        if text.contains(secret) {
            text = text.replace(secret, REDACTED);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_scheme_host_port_only() {
        for (raw, want) in [
            (
                "https://u:p@hooks.example:8443/a/b?token=T#frag",
                "https://hooks.example:8443/<redacted>?<redacted>#<redacted>",
            ),
            (
                "http://127.0.0.1:9/h?token=SECRET",
                "http://127.0.0.1:9/<redacted>?<redacted>",
            ),
            ("https://example.com", "https://example.com/"),
            (
                "https://example.com:443/x",
                "https://example.com/<redacted>",
            ),
            ("http://[::1]:8080/?", "http://[::1]:8080/?<redacted>"),
            ("HTTP://User@EXAMPLE.com/P", "http://example.com/<redacted>"),
            (
                "https://hooks.slack.com/services/T0000/B0000/XXXXsecret",
                "https://hooks.slack.com/<redacted>",
            ),
            ("mailto:someone@example.com", "mailto:<redacted>"),
            ("not a url ?token=T", "<unparseable URL>"),
            ("", "<unparseable URL>"),
        ] {
            assert_eq!(redact_url(raw), want, "{raw}");
        }
    }

    #[test]
    fn locations_are_resolved_then_redacted() {
        let base = "https://a.example/hook?token=T";
        assert_eq!(
            redact_location(base, "/next?sig=S"),
            "https://a.example/<redacted>?<redacted>"
        );
        assert_eq!(
            redact_location(base, "http://u:pw@b.example:81/x#f"),
            "http://b.example:81/<redacted>#<redacted>"
        );
        assert_eq!(redact_location("::", "/x"), "<unparseable URL>");
    }

    #[test]
    fn error_texts_lose_every_copy_of_the_secret() {
        let url = "http://127.0.0.1:9/h?token=SECRET123";
        let text = format!(
            "{url}: Connection Failed: Connect error for 127.0.0.1:9/h?token=SECRET123 (token=SECRET123)"
        );
        let out = scrub(&text, url);
        assert!(!out.contains("SECRET123"), "{out}");
        assert!(
            out.starts_with("http://127.0.0.1:9/<redacted>?<redacted>: Connection Failed"),
            "{out}"
        );
        // The parser's normal form (lower-case host, encoded space) too.
        let odd = "http://EXAMPLE.com/a b?k=SECRET456";
        let out = scrub("http://example.com/a%20b?k=SECRET456: Dns Failed", odd);
        assert_eq!(out, "http://example.com/<redacted>?<redacted>: Dns Failed");
        // Texts without the URL are unchanged.
        assert_eq!(
            scrub("receiver answered HTTP 500", url),
            "receiver answered HTTP 500"
        );
    }
}
