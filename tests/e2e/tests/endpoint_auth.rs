//! Endpoint authentication beyond Basic and bearer: an mTLS client
//! certificate against an HTTPS receiver that demands one, and OAuth2
//! client credentials against a local token endpoint (token cached until
//! it expires, refreshed on 401).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use webhook_emitter_e2e::{
    db_message, wait_delivered, wait_for, Client, Cluster, Receiver, Reply, TestCa,
};

fn insert_group(c: &mut Client, name: &str) {
    c.execute("INSERT INTO lms.groups (name) VALUES ($1)", &[&name])
        .unwrap();
}

/// The error of the newest delivery that was attempted (the held ones of a
/// disabled webhook never are).
fn last_error(c: &mut Client) -> Option<String> {
    c.query_one(
        "SELECT last_error FROM webhook.deliveries WHERE status <> 'held' ORDER BY id DESC LIMIT 1",
        &[],
    )
    .unwrap()
    .get(0)
}

#[test]
fn a_client_certificate_opens_a_receiver_that_demands_one() {
    let server_ca = TestCa::new("server CA");
    let client_ca = TestCa::new("client CA");
    let (server_cert, server_key) = server_ca.issue(&["127.0.0.1", "localhost"], false);
    let (client_cert, client_key) = client_ca.issue(&["lms-webhooks"], true);
    let ca_file =
        std::env::temp_dir().join(format!("webhook_e2e_mtls_ca_{}.pem", std::process::id()));
    std::fs::write(&ca_file, server_ca.pem()).unwrap();
    let cluster = Cluster::start(&format!("webhook.ca_file = '{}'", ca_file.display()));
    let receiver = Receiver::start_https_mtls(
        server_cert.as_bytes(),
        server_key.as_bytes(),
        client_ca.pem().as_bytes(),
    );
    let url = format!("https://127.0.0.1:{}/mtls", receiver.port);
    let mut c = cluster.client();

    // Without a certificate the handshake is refused.
    let plain: i64 = c
        .query_one(
            "SELECT webhook.create_webhook('no cert', $1, '{group.created}', enabled => false)",
            &[&url],
        )
        .unwrap()
        .get(0);
    let err: Option<String> = c
        .query_one("SELECT error FROM webhook.send_test($1)", &[&plain])
        .unwrap()
        .get(0);
    // With TLS 1.3 the server checks the client's certificate after the
    // client's side of the handshake: the refusal shows as a TLS alert or
    // as the connection closing, never as an answer.
    let err = err.expect("an error without a client certificate");
    assert!(
        err.contains(&format!("127.0.0.1:{}/<redacted>", receiver.port)),
        "{err}"
    );
    assert_eq!(receiver.count(), 0);

    let id: i64 = c
        .query_one(
            "SELECT webhook.create_webhook('mtls', $1, '{group.created}',
                 client_certificate => $2, client_key => $3)",
            &[&url, &client_cert, &client_key],
        )
        .unwrap()
        .get(0);
    insert_group(&mut c, "over mTLS");
    let got = receiver.wait_for(1, Duration::from_secs(10));
    assert_eq!(got[0].json()["payload"]["group_name"], "over mTLS");
    wait_delivered(&mut c, 1, Duration::from_secs(10));
    let status: Option<i32> = c
        .query_one("SELECT status_code FROM webhook.send_test($1)", &[&id])
        .unwrap()
        .get(0);
    assert_eq!(status, Some(200), "Send Test presents the certificate too");

    // The key is a secret: masked in webhook_list, the table closed to PUBLIC.
    let (cert, key): (Option<String>, Option<String>) = c
        .query_one(
            "SELECT client_certificate, client_key FROM webhook.webhook_list WHERE id = $1",
            &[&id],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(cert.as_deref(), Some(client_cert.as_str()));
    assert_eq!(key.as_deref(), Some("********"));
    c.batch_execute("CREATE ROLE reader LOGIN").unwrap();
    let mut reader = cluster.client_as("reader");
    let e = reader
        .query("SELECT client_key FROM webhook.webhooks", &[])
        .unwrap_err();
    assert!(db_message(&e).contains("permission denied"), "{e}");

    // Bad settings are errors naming the field, and change nothing.
    let (_, other_key) = client_ca.issue(&["someone-else"], true);
    let cases = [
        (
            url.clone(),
            client_cert.clone(),
            other_key.clone(),
            "client_key: cannot be used with client_certificate",
        ),
        (
            url.clone(),
            "not a certificate".to_string(),
            client_key.clone(),
            "client_certificate: holds no certificate",
        ),
        (
            url.clone(),
            client_cert.clone(),
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_string(),
            "client_key: cannot be used",
        ),
        (
            url.replace("https://", "http://"),
            client_cert.clone(),
            client_key.clone(),
            "client_certificate: a client certificate is presented only over TLS",
        ),
    ];
    for (u, cert, key, expected) in cases {
        let e = c
            .execute(
                "SELECT webhook.update_webhook($1, url => $2, client_certificate => $3, client_key => $4)",
                &[&id, &u, &cert, &key],
            )
            .unwrap_err();
        assert!(db_message(&e).starts_with(expected), "{}", db_message(&e));
    }
    let e = c
        .execute(
            "SELECT webhook.update_webhook($1, client_key => NULL, clear_client_certificate => true, client_certificate => $2)",
            &[&id, &client_cert],
        )
        .unwrap_err();
    assert!(db_message(&e).contains("cannot both set and clear"), "{e}");
    let unchanged: bool = c
        .query_one(
            "SELECT client_key = $2 FROM webhook.webhooks WHERE id = $1",
            &[&id, &client_key],
        )
        .unwrap()
        .get(0);
    assert!(unchanged);

    // Cleared, the receiver refuses the worker's requests again.
    c.execute(
        "SELECT webhook.update_webhook($1, clear_client_certificate => true)",
        &[&id],
    )
    .unwrap();
    insert_group(&mut c, "no longer");
    wait_for(Duration::from_secs(10), "a failed attempt", || {
        last_error(&mut c).filter(|e| !e.is_empty())
    });
    assert_eq!(receiver.count(), 2);
    let _ = std::fs::remove_file(&ca_file);
}

/// A token endpoint that hands out tok-1, tok-2, ... and records requests.
fn token_endpoint(expires_in: u64) -> (Receiver, Arc<AtomicUsize>) {
    let issued = Arc::new(AtomicUsize::new(0));
    let n = Arc::clone(&issued);
    let tokens = Receiver::start();
    tokens.respond_with(move |_| {
        let i = n.fetch_add(1, Ordering::SeqCst) + 1;
        let mut reply = Reply::status(200);
        reply.headers = vec![("Content-Type".into(), "application/json".into())];
        reply.body = format!(
            r#"{{"access_token":"tok-{i}","token_type":"Bearer","expires_in":{expires_in}}}"#
        );
        reply
    });
    (tokens, issued)
}

#[test]
fn oauth2_tokens_are_cached_refreshed_on_401_and_renewed_on_expiry() {
    let cluster = Cluster::start("webhook.retry_schedule = '0s,1s,1s'");
    let (tokens, issued) = token_endpoint(3600);
    let receiver = Receiver::start();
    // The receiver accepts only the token it currently considers valid.
    let valid = Arc::new(Mutex::new("Bearer tok-1".to_string()));
    let v = Arc::clone(&valid);
    receiver.respond_with(move |r| {
        let ok = r.header("authorization") == Some(v.lock().unwrap().as_str());
        Reply::status(if ok { 200 } else { 401 })
    });
    let mut c = cluster.client();
    let id: i64 = c
        .query_one(
            "SELECT webhook.create_webhook('oauth', $1, '{group.created}',
                 oauth2_token_url => $2, oauth2_client_id => 'lms client',
                 oauth2_client_secret => 's3cr:et', oauth2_scope => 'webhooks:write')",
            &[&receiver.url("/hook"), &tokens.url("/oauth/token")],
        )
        .unwrap()
        .get(0);
    for i in 0..3 {
        insert_group(&mut c, &format!("cached {i}"));
    }
    receiver.wait_for(3, Duration::from_secs(10));
    wait_delivered(&mut c, 3, Duration::from_secs(10));
    assert_eq!(issued.load(Ordering::SeqCst), 1, "one token for 3 requests");
    let req = &tokens.requests()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(
        req.body_text(),
        "grant_type=client_credentials&scope=webhooks%3Awrite"
    );
    // RFC 6749 2.3.1: id and secret form-encoded, then Basic.
    assert_eq!(
        req.header("authorization"),
        Some("Basic bG1zK2NsaWVudDpzM2NyJTNBZXQ=")
    );
    assert_eq!(
        req.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );

    // The receiver revokes tok-1: the 401 fetches tok-2 and the same
    // attempt goes through with it.
    *valid.lock().unwrap() = "Bearer tok-2".into();
    insert_group(&mut c, "after revocation");
    wait_delivered(&mut c, 4, Duration::from_secs(10));
    assert_eq!(issued.load(Ordering::SeqCst), 2);
    let attempts: i32 = c
        .query_one(
            "SELECT attempts FROM webhook.deliveries ORDER BY id DESC LIMIT 1",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(attempts, 1, "refreshed within the attempt");

    // Secrets are masked for everyone but admins.
    let (url, secret): (String, String) = c
        .query_one(
            "SELECT oauth2_token_url, oauth2_client_secret FROM webhook.webhook_list WHERE id = $1",
            &[&id],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    // The path is redacted too (a Slack-style URL carries its token there).
    assert_eq!(url, format!("http://127.0.0.1:{}/<redacted>", tokens.port));
    assert_eq!(secret, "********");

    // A token endpoint that fails makes the attempt fail (and retry) with
    // its answer, never sends the webhook without a token.
    c.execute(
        "SELECT webhook.update_webhook($1, oauth2_token_url => $2)",
        &[&id, &receiver.url("/not-a-token-endpoint")],
    )
    .unwrap();
    let before = receiver.count();
    insert_group(&mut c, "no token");
    let err = wait_for(Duration::from_secs(10), "a token error", || {
        last_error(&mut c).filter(|e| e.contains("OAuth2"))
    });
    assert!(
        err.starts_with("OAuth2 token request failed: the token endpoint answered HTTP 401"),
        "{err}"
    );
    // Only the token endpoint (here the receiver's /not-a-token-endpoint)
    // was called, never the webhook path.
    assert!(receiver.requests()[before..]
        .iter()
        .all(|r| r.path == "/not-a-token-endpoint"));
}

#[test]
fn oauth2_tokens_expire_and_settings_are_validated() {
    let cluster = Cluster::start("");
    let (tokens, issued) = token_endpoint(1);
    let receiver = Receiver::start();
    let mut c = cluster.client();
    c.execute(
        "SELECT webhook.create_webhook('oauth', $1, '{group.created}',
             oauth2_token_url => $2, oauth2_client_id => 'id', oauth2_client_secret => 'secret')",
        &[&receiver.url("/hook"), &tokens.url("/token")],
    )
    .unwrap();
    insert_group(&mut c, "first");
    receiver.wait_for(1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1500));
    insert_group(&mut c, "second");
    let got = receiver.wait_for(2, Duration::from_secs(10));
    assert_eq!(got[0].header("authorization"), Some("Bearer tok-1"));
    assert_eq!(
        got[1].header("authorization"),
        Some("Bearer tok-2"),
        "an expired token is renewed before use"
    );
    assert_eq!(issued.load(Ordering::SeqCst), 2);
    assert_eq!(
        tokens.requests()[0].body_text(),
        "grant_type=client_credentials"
    );

    let cases = [
        ("oauth2_client_id => 'x'", "oauth2_token_url: is required"),
        (
            "oauth2_token_url => 'https://auth.example.com/token', oauth2_client_id => 'x'",
            "oauth2_client_secret: is required",
        ),
        (
            "oauth2_token_url => 'ftp://auth.example.com/token', oauth2_client_id => 'x', oauth2_client_secret => 'y'",
            "oauth2_token_url: scheme \"ftp\" is not allowed",
        ),
        (
            "oauth2_token_url => 'https://auth.example.com/token', oauth2_client_id => E'x\\ny', oauth2_client_secret => 'y'",
            "oauth2_client_id: must be 1 to 1024 characters",
        ),
        (
            "oauth2_token_url => 'https://auth.example.com/token', oauth2_client_id => 'x', oauth2_client_secret => 'y', bearer_token => 'z'",
            "oauth2_token_url: OAuth2 cannot be combined",
        ),
    ];
    for (args, expected) in cases {
        let sql = format!(
            "SELECT webhook.create_webhook('bad', 'https://example.com/', '{{group.created}}', {args})"
        );
        let e = db_message(&c.batch_execute(&sql).unwrap_err());
        assert!(e.starts_with(expected), "{args}: {e}");
    }
    let n: i64 = c
        .query_one("SELECT count(*) FROM webhook.webhooks", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    c.batch_execute("SELECT webhook.update_webhook(1, clear_oauth2 => true)")
        .unwrap();
    let cleared: bool = c
        .query_one(
            "SELECT oauth2_token_url IS NULL AND oauth2_client_secret IS NULL FROM webhook.webhooks",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(cleared);
}
