//! A webhook's settings through their one home (src/settings): what
//! `create_webhook` and `update_webhook` write, the rules a row follows
//! however it is written, and who may call them. Run as a NOSUPERUSER
//! member of webhook_admin, an LMS application role and PUBLIC.

use postgres::Client;
use std::time::Duration;
use webhook_emitter_e2e::{db_message, Cluster, Receiver};

fn error_of(c: &mut Client, sql: &str) -> (String, String) {
    match c.batch_execute(sql) {
        Ok(()) => panic!("expected an error from: {sql}"),
        Err(e) => (
            e.code().map(|s| s.code().to_owned()).unwrap_or_default(),
            db_message(&e),
        ),
    }
}

fn column(c: &mut Client, id: i64, expr: &str) -> String {
    c.query_one(
        &format!("SELECT ({expr})::text FROM webhook.webhooks w WHERE id = $1"),
        &[&id],
    )
    .unwrap()
    .get::<_, Option<String>>(0)
    .unwrap_or_else(|| "NULL".into())
}

#[test]
fn create_and_update_write_only_what_they_are_given_and_keep_every_rule() {
    let cluster = Cluster::start("");
    cluster.create_roles("lms_admin");
    let receiver = Receiver::start();
    let mut admin = cluster.client_as("lms_admin");

    // Defaults stand for what is not given (or given as NULL).
    let id: i64 = admin
        .query_one(
            "SELECT webhook.create_webhook('crm', $1, '{user.created}', content_type => NULL,
                                           enabled => NULL, headers => NULL, ordering => NULL)",
            &[&receiver.url("/crm")],
        )
        .unwrap()
        .get(0);
    assert_eq!(column(&mut admin, id, "content_type"), "application/json");
    assert_eq!(column(&mut admin, id, "enabled"), "true");
    assert_eq!(column(&mut admin, id, "headers"), "{}");
    assert_eq!(column(&mut admin, id, "ordering"), "none");
    assert_eq!(column(&mut admin, id, "signing_secret"), "NULL");

    // The same session queues for it at once: the insert told the
    // subscription cache (its statement trigger fired).
    admin
        .batch_execute("SELECT webhook.topic_wanted('user.created')")
        .unwrap();
    let wanted: bool = admin
        .query_one("SELECT webhook.topic_wanted('user.created')", &[])
        .unwrap()
        .get(0);
    assert!(
        wanted,
        "a webhook created in this session is not seen by its cache"
    );
    let mut app = cluster.client_as("lms_app");
    app.batch_execute("INSERT INTO lms.users (first_name, email) VALUES ('Ada', 'ada@x.example')")
        .unwrap();
    receiver.wait_for(1, Duration::from_secs(10));

    // Only what is given changes; an update of nothing still touches the row.
    let before = column(&mut admin, id, "updated_at");
    admin
        .batch_execute(&format!(
            "SELECT webhook.update_webhook({id}, rate_limit_per_second => 50, timeout_ms => 2000,
                                           ordering => 'per_key', ordering_key => 'payload.user_id')"
        ))
        .unwrap();
    assert_eq!(column(&mut admin, id, "rate_limit_per_second"), "50");
    assert_eq!(column(&mut admin, id, "ordering_key"), "payload.user_id");
    assert_eq!(column(&mut admin, id, "url"), receiver.url("/crm"));
    admin
        .batch_execute(&format!("SELECT webhook.update_webhook({id})"))
        .unwrap();
    assert_ne!(column(&mut admin, id, "updated_at"), before);
    // Back to fifo: the key path goes; clear_* clears.
    admin
        .batch_execute(&format!(
            "SELECT webhook.update_webhook({id}, ordering => 'fifo', clear_rate_limit => true)"
        ))
        .unwrap();
    assert_eq!(column(&mut admin, id, "ordering_key"), "NULL");
    assert_eq!(column(&mut admin, id, "rate_limit_per_second"), "NULL");
    assert_eq!(column(&mut admin, id, "timeout_ms"), "2000");

    // Rotation keeps the old secret for the overlap.
    admin
        .batch_execute(&format!(
            "SELECT webhook.update_webhook({id}, signing_secret => 'whsec_' || encode(repeat('k', 32)::bytea, 'base64'))"
        ))
        .unwrap();
    let old = column(&mut admin, id, "signing_secret");
    admin
        .batch_execute(&format!(
            "SELECT webhook.update_webhook({id}, rotate_signing_secret => true, rotation_overlap => '2 hours')"
        ))
        .unwrap();
    assert_eq!(column(&mut admin, id, "previous_signing_secret"), old);
    assert_ne!(column(&mut admin, id, "signing_secret"), old);
    assert_eq!(
        column(
            &mut admin,
            id,
            "previous_signing_secret_until - updated_at BETWEEN interval '119 minutes' AND interval '121 minutes'"
        ),
        "true"
    );

    // jsonb settings are stored as given, never through a float: a filter
    // on a 30-digit id still matches it.
    admin
        .batch_execute(&format!(
            "SELECT webhook.update_webhook({id}, filter => '{{\"payload\": {{\"user_id\": 123456789012345678901234567890, \"name\": \"0.30000000000000000001\"}}, \"timestamp\": 0.30000000000000000001}}')"
        ))
        .unwrap();
    assert_eq!(
        column(&mut admin, id, "filter"),
        r#"{"payload": {"name": "0.30000000000000000001", "user_id": 123456789012345678901234567890}, "timestamp": 0.30000000000000000001}"#
    );
    admin
        .batch_execute(&format!(
            "SELECT webhook.update_webhook({id}, clear_filter => true)"
        ))
        .unwrap();

    // Bad input: the field named, nothing changed.
    let cases: &[(&str, &str, &str)] = &[
        (
            "SELECT webhook.update_webhook(ID, timeout_ms => 50)",
            "22023",
            "timeout_ms: 50 is out of range; allowed: 100 to 300000 milliseconds, or NULL for webhook.request_timeout",
        ),
        (
            "SELECT webhook.update_webhook(ID, rate_limit_per_second => 0)",
            "22023",
            "rate_limit_per_second: 0 is out of range; allowed: 1 to 100000",
        ),
        (
            "SELECT webhook.update_webhook(ID, rotation_overlap => '31 days')",
            "22023",
            "rotation_overlap: 31 days is out of range; allowed: 0 to 30 days",
        ),
        (
            "SELECT webhook.update_webhook(ID, bearer_token => 'x', clear_bearer_token => true)",
            "22023",
            "cannot both set and clear the same setting",
        ),
        (
            "SELECT webhook.update_webhook(ID, content_type => 'text/plain')",
            "22023",
            "content_type: 'text/plain' is not supported",
        ),
        (
            "SELECT webhook.update_webhook(ID, auth_username => 'u')",
            "22023",
            "auth_username, auth_password: HTTP Basic auth needs both",
        ),
        (
            "SELECT webhook.update_webhook(ID, url => 'ftp://x.example/')",
            "22023",
            "url: scheme \"ftp\" is not allowed",
        ),
        (
            "SELECT webhook.update_webhook(ID, topics => '{no.such}')",
            "22023",
            "topics: unknown topic 'no.such'",
        ),
        (
            "SELECT webhook.create_webhook('crm', 'https://x.example/', '{user.created}')",
            "23505",
            "name: a webhook named 'crm' already exists",
        ),
        (
            "SELECT webhook.create_webhook('s', 'https://x.example/', '{user.created}', signing_secret => 'whsec_x', generate_signing_secret => true)",
            "22023",
            "signing_secret: give a secret or generate_signing_secret => true, not both",
        ),
        (
            "SELECT webhook.update_webhook(999999)",
            "P0002",
            "id: webhook 999999 does not exist",
        ),
        (
            "SELECT webhook.update_webhook(NULL, timeout_ms => 1000)",
            "P0002",
            "id: webhook NULL does not exist",
        ),
        (
            "SELECT webhook.update_webhook(ID, rotation_overlap => '300000 years')",
            "22023",
            "rotation_overlap: 300000 years is out of range",
        ),
        (
            "SELECT webhook.update_webhook(ID, headers => 'null')",
            "22023",
            "headers: must be a JSON object",
        ),
        (
            "SELECT webhook.update_webhook(ID, filter => '{\"a\": 1}', clear_filter => true)",
            "22023",
            "cannot both set and clear the same setting",
        ),
        (
            "SELECT webhook.create_webhook('u', 'ftp://x.example/', '{no.such}')",
            "22023",
            "url: scheme \"ftp\" is not allowed",
        ),
    ];
    let row_before = column(&mut admin, id, "to_jsonb(w) - 'updated_at'");
    for (sql, code, message) in cases {
        let sql = sql.replace("ID", &id.to_string());
        let (got_code, got) = error_of(&mut admin, &sql);
        assert_eq!(&got_code, code, "{sql}: {got}");
        assert!(got.contains(message), "{sql}: {got}");
    }
    assert_eq!(
        column(&mut admin, id, "to_jsonb(w) - 'updated_at'"),
        row_before
    );

    // The same rules hold for a superuser's plain DML.
    let mut su = cluster.client();
    let (_, got) = error_of(
        &mut su,
        &format!("UPDATE webhook.webhooks SET timeout_ms = 1 WHERE id = {id}"),
    );
    assert!(got.starts_with("timeout_ms: 1 is out of range"), "{got}");

    // Nobody below webhook_admin writes settings or calls the rules.
    for role in ["lms_app", "nobody"] {
        let mut c = cluster.client_as(role);
        for sql in [
            format!("SELECT webhook.update_webhook({id}, timeout_ms => 1000)"),
            "SELECT webhook.create_webhook('x', 'https://x.example/', '{user.created}')".into(),
            "SELECT webhook.check_webhook('{}')".into(),
            format!("UPDATE webhook.webhooks SET timeout_ms = 1000 WHERE id = {id}"),
        ] {
            let (code, got) = error_of(&mut c, &sql);
            assert_eq!(code, "42501", "{role}: {sql}: {got}");
        }
    }
    assert_eq!(column(&mut admin, id, "timeout_ms"), "2000");
}
