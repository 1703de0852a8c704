//! The roles a DBA actually hands out, each attacking what it can name:
//! a NOSUPERUSER member of webhook_admin (`lms_admin`), an LMS application
//! role with privileges on its tables only (`lms_app`), a role with
//! nothing granted (PUBLIC, `nobody`) and a database owner (`db_owner`).
//! Each test is a finding of the 0.2.0 review (issue 25) and fails on
//! 0.2.0. docs/security.md is the threat model these tests check.

use postgres::Client;
use std::time::Duration;
use webhook_emitter_e2e::{
    db_message, wait_delivered, wait_fanned_out, wait_for, Cluster, Receiver, Reply,
};

/// The roles of a delegated installation, and a table the admin owns.
fn delegate(cluster: &Cluster) {
    cluster
        .client()
        .batch_execute(
            "CREATE ROLE lms_admin LOGIN NOSUPERUSER;
             GRANT webhook_admin TO lms_admin;
             CREATE ROLE lms_app LOGIN NOSUPERUSER;
             GRANT USAGE ON SCHEMA lms TO lms_app;
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA lms TO lms_app;
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA lms TO lms_app;
             CREATE ROLE nobody LOGIN NOSUPERUSER;
             CREATE SCHEMA billing AUTHORIZATION lms_admin;
             GRANT USAGE ON SCHEMA billing TO lms_app;",
        )
        .unwrap();
    let mut admin = cluster.client_as("lms_admin");
    admin
        .batch_execute(
            "CREATE TABLE billing.invoices (id bigserial PRIMARY KEY, amount int NOT NULL,
                                            note text, card_token text);
             GRANT SELECT, INSERT, UPDATE, DELETE ON billing.invoices TO lms_app;
             GRANT USAGE ON SEQUENCE billing.invoices_id_seq TO lms_app;
             CREATE FUNCTION billing.invoice_body(bigint) RETURNS json LANGUAGE sql STABLE
                 AS $$ SELECT json_build_object('id', i.id, 'amount', i.amount, 'built_by', current_user)
                         FROM billing.invoices i WHERE i.id = $1 $$;",
        )
        .unwrap();
}

fn error_of(c: &mut Client, sql: &str) -> String {
    match c.batch_execute(sql) {
        Ok(()) => panic!("expected an error from: {sql}"),
        Err(e) => db_message(&e),
    }
}

/// Each statement fails with "permission denied" (and its transaction, if
/// it opened one, is rolled back).
fn assert_denied(c: &mut Client, statements: &[&str]) {
    for sql in statements {
        let err = error_of(c, sql);
        assert!(err.contains("permission denied"), "{sql}: {err}");
        let _ = c.batch_execute("ROLLBACK");
    }
}

fn is_superuser(c: &mut Client, role: &str) -> bool {
    c.query_one("SELECT rolsuper FROM pg_roles WHERE rolname = $1", &[&role])
        .unwrap()
        .get(0)
}

fn postmaster_started(c: &mut Client) -> String {
    c.query_one("SELECT pg_postmaster_start_time()::text", &[])
        .unwrap()
        .get(0)
}

/// Findings 1, 2 and 10 (topics): the admin can neither squat a generated
/// name, nor alter a generated function, nor edit the catalog; what it
/// defines runs with its own rights for any role that writes the table,
/// and a superuser's later writes run nothing of the admin's as superuser.
#[test]
fn a_webhook_admin_defines_topics_but_owns_nothing_that_runs_as_others() {
    let cluster = Cluster::start("webhook.retry_schedule = '0s'");
    let receiver = Receiver::start();
    delegate(&cluster);
    let mut su = cluster.client();
    let mut admin = cluster.client_as("lms_admin");
    let mut app = cluster.client_as("lms_app");

    // 1. Squatting a generated name, before a superuser's watch.
    su.batch_execute("CREATE TABLE public.payroll (id bigserial PRIMARY KEY, salary int)")
        .unwrap();
    let err = error_of(
        &mut admin,
        "CREATE FUNCTION webhook_triggers.emit_public_payroll_insert_409c2f0a() RETURNS trigger
             LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'",
    );
    assert!(
        err.contains("permission denied for schema webhook_triggers"),
        "{err}"
    );
    su.batch_execute("SELECT webhook.watch('public.payroll')")
        .unwrap();
    let owners: Vec<(String, bool)> = su
        .query(
            "SELECT p.proowner::regrole::text, p.prosecdef FROM pg_proc p
              WHERE p.pronamespace = 'webhook_triggers'::regnamespace AND p.proname LIKE 'emit\\_public\\_payroll%'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(owners.len(), 3);
    assert!(
        owners.iter().all(|(o, secdef)| o == "postgres" && !secdef),
        "{owners:?}"
    );
    // ... nor alter one (SECURITY INVOKER, a new body), nor drop it.
    for alter in [
        "ALTER FUNCTION webhook_triggers.\"%s\"() SECURITY INVOKER",
        "CREATE OR REPLACE FUNCTION webhook_triggers.\"%s\"() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'",
        "DROP FUNCTION webhook_triggers.\"%s\"()",
    ] {
        let name: String = su
            .query_one(
                "SELECT trigger_function FROM webhook.topics WHERE topic = 'public.payroll.insert'",
                &[],
            )
            .unwrap()
            .get(0);
        let err = error_of(&mut admin, &alter.replace("%s", &name));
        assert!(err.contains("permission denied"), "{alter}: {err}");
    }

    // 2. The catalog itself.
    assert_denied(
        &mut admin,
        &[
            "UPDATE webhook.topics SET source_table = 'x;alter role lms_admin superuser' WHERE topic = 'user.created'",
            "DELETE FROM webhook.topics WHERE topic = 'public.payroll.insert'",
            "INSERT INTO webhook.topics (topic, display_name) SELECT topic, display_name FROM webhook.topics LIMIT 0",
        ],
    );
    // Nor the internals the definition functions use.
    let internals = [
        "SELECT webhook.change_topic_as_owner('drop', '{\"topic\": \"public.payroll.insert\"}', false, 10)",
        "SELECT webhook.install_topic('user.created')",
        "SELECT webhook.uninstall_topic('user.created')",
        "CREATE TRIGGER t AFTER INSERT ON billing.invoices FOR EACH ROW EXECUTE FUNCTION webhook.emit_topic('user.created')",
        // Only the trigger of its topic may call a builder (a key of another
        // type would be read as the builder's).
        "SELECT webhook.call_builder('user.created', 'not a bigint'::text)",
        "SELECT webhook.call_builder('user.created', 1::bigint)",
    ];
    assert_denied(&mut admin, &internals);

    // 10. A topic the admin defines on its own table fires for lms_app,
    // and its builder runs as the admin, not as the writer.
    admin
        .batch_execute(
            "SELECT webhook.define_topic('invoice.created', 'billing.invoices', 'billing.invoice_body(bigint)',
                 sample_body => '{\"id\": 1, \"amount\": 10, \"built_by\": \"x\"}')",
        )
        .unwrap();
    let definer: String = admin
        .query_one(
            "SELECT definer::text FROM webhook.topics WHERE topic = 'invoice.created'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(definer, "lms_admin");
    admin
        .execute(
            "SELECT webhook.create_webhook('erp', $1, '{invoice.created,public.payroll.insert}')",
            &[&receiver.url("/erp")],
        )
        .unwrap();
    app.batch_execute("INSERT INTO billing.invoices (amount) VALUES (42)")
        .unwrap();
    su.batch_execute("INSERT INTO billing.invoices (amount) VALUES (43); INSERT INTO public.payroll (salary) VALUES (1)")
        .unwrap();
    let got = receiver.wait_for(3, Duration::from_secs(20));
    let built_by: Vec<String> = got
        .iter()
        .filter(|r| r.header("webhook-type") == Some("invoice.created"))
        .map(|r| r.json()["built_by"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(built_by, ["lms_admin", "lms_admin"]);
    assert!(!is_superuser(&mut su, "lms_admin"));

    // A condition is the definer's code too: it runs as the admin, never as
    // the writer, a superuser's write included; and it is never pasted into
    // anything the extension owner runs (finding 1 of the review: SQL
    // after a closing parenthesis).
    admin
        .batch_execute(
            "CREATE TABLE billing.calls (who text);
             CREATE FUNCTION billing.note_caller(amount int) RETURNS boolean LANGUAGE plpgsql AS $$
             BEGIN INSERT INTO billing.calls VALUES (current_user); RETURN amount > 100; END $$;
             SELECT webhook.define_topic('invoice.big', 'billing.invoices', 'billing.invoice_body(bigint)',
                 condition => 'billing.note_caller(NEW.amount)', sample_body => '{\"id\": 1}');",
        )
        .unwrap();
    admin
        .batch_execute("SELECT webhook.update_webhook((SELECT id FROM webhook.webhooks WHERE name = 'erp'), topics => '{invoice.created,invoice.big,public.payroll.insert}')")
        .unwrap();
    app.batch_execute("INSERT INTO billing.invoices (amount) VALUES (500)")
        .unwrap();
    su.batch_execute("INSERT INTO billing.invoices (amount) VALUES (600)")
        .unwrap();
    let callers: Vec<String> = su
        .query("SELECT who FROM billing.calls", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(callers, ["lms_admin", "lms_admin"]);
    let err = error_of(
        &mut admin,
        "SELECT webhook.watch('billing.invoices', '{insert}', condition =>
             $c$true)) EXECUTE FUNCTION webhook.emit_topic('x'); ALTER ROLE lms_admin SUPERUSER; --$c$)",
    );
    assert!(err.starts_with("condition: syntax error"), "{err}");
    assert!(!is_superuser(&mut su, "lms_admin"));
    // Nothing on a table it may not trigger on, nor rows it may not read.
    let err = error_of(
        &mut admin,
        "SELECT webhook.define_topic('pay.x', 'public.payroll', 'billing.invoice_body(bigint)', sample_body => '{}')",
    );
    assert!(
        err.contains("may not create triggers on public.payroll"),
        "{err}"
    );
    su.batch_execute("GRANT TRIGGER ON public.payroll TO lms_admin")
        .unwrap();
    let err = error_of(
        &mut admin,
        "SELECT webhook.watch('public.payroll', operations => '{update}')",
    );
    assert!(
        err.contains("may not read id, salary of public.payroll"),
        "{err}"
    );
    // Dropping and rebinding what it defined.
    admin
        .batch_execute(
            "SELECT webhook.update_webhook((SELECT id FROM webhook.webhooks WHERE name = 'erp'), topics => '{invoice.created,public.payroll.insert}');
             SELECT webhook.drop_topic('invoice.big');
             SELECT webhook.define_topic('invoice.created', 'billing.invoices', 'billing.invoice_body(bigint)',
                 operations => '{insert,update}', replace => true);",
        )
        .unwrap();
    let err = error_of(
        &mut app,
        "SELECT webhook.define_topic('x', 'billing.invoices', 'billing.invoice_body(bigint)')",
    );
    assert!(err.contains("permission denied"), "{err}");
}

/// Review findings: what the definer's code leaves behind, and builders
/// that someone else could swap. A builder cannot change the writer's
/// session (a non-LOCAL set_config is undone, temporary objects are
/// refused); the builder is called by the oid the definer chose, so a
/// function made later under its name never runs; a builder must be the
/// definer's own; a superuser's topic is refused on a table a lesser role
/// owns, and CREATE EXTENSION over an `lms` schema such a role made.
#[test]
fn a_definers_code_cannot_reach_the_writers_session_or_be_swapped() {
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    delegate(&cluster);
    let mut su = cluster.client();
    let mut admin = cluster.client_as("lms_admin");
    admin
        .batch_execute(
            "CREATE FUNCTION billing.sneaky_body(bigint) RETURNS json LANGUAGE plpgsql AS $$
             BEGIN
                 PERFORM set_config('search_path', 'billing, pg_catalog', false);
                 RETURN json_build_object('id', $1);
             END $$;
             SELECT webhook.define_topic('invoice.created', 'billing.invoices', 'billing.sneaky_body(bigint)',
                 sample_body => '{\"id\": 1}');",
        )
        .unwrap();
    admin
        .execute(
            "SELECT webhook.create_webhook('erp', $1, '{invoice.created}')",
            &[&receiver.url("/erp")],
        )
        .unwrap();
    su.batch_execute("SET search_path = public; INSERT INTO billing.invoices (amount) VALUES (1)")
        .unwrap();
    let path: String = su.query_one("SHOW search_path", &[]).unwrap().get(0);
    assert_eq!(path, "public");
    receiver.wait_for(1, Duration::from_secs(20));

    // Swapped: dropped and made again under the same name (as the owner of
    // its schema could): the new function never runs, the write says why.
    admin
        .batch_execute(
            "DROP FUNCTION billing.sneaky_body(bigint);
             CREATE TABLE billing.ran (x int);
             CREATE FUNCTION billing.sneaky_body(bigint) RETURNS json LANGUAGE plpgsql AS $$
             BEGIN INSERT INTO billing.ran VALUES (1); RETURN '{}'; END $$;",
        )
        .unwrap();
    let mut app = cluster.client_as("lms_app");
    let err = error_of(&mut app, "INSERT INTO billing.invoices (amount) VALUES (2)");
    assert!(err.contains("invoice.created"), "{err}");
    let ran: i64 = su
        .query_one("SELECT count(*) FROM billing.ran", &[])
        .unwrap()
        .get(0);
    assert_eq!(ran, 0);

    // A builder that is not the definer's own (its owner could change it).
    su.batch_execute(
        "CREATE ROLE other NOLOGIN;
         CREATE FUNCTION public.others_body(bigint) RETURNS json LANGUAGE sql AS $$ SELECT '{}'::json $$;
         ALTER FUNCTION public.others_body(bigint) OWNER TO other;",
    )
    .unwrap();
    let err = error_of(
        &mut admin,
        "SELECT webhook.define_topic('invoice.created', 'billing.invoices', 'public.others_body(bigint)', replace => true)",
    );
    assert!(err.contains("belongs to other"), "{err}");
    // A superuser's topic over a table a lesser role owns.
    let err = error_of(
        &mut su,
        "SELECT webhook.define_topic('invoice.created', 'billing.invoices', 'billing.invoice_body(bigint)', replace => true)",
    );
    assert!(
        err.contains("belongs to a role that is not a superuser"),
        "{err}"
    );

    // An lms schema a database owner made before CREATE EXTENSION.
    su.batch_execute("CREATE DATABASE shop OWNER lms_admin;")
        .unwrap();
    let conn = format!(
        "host=127.0.0.1 port={} user=lms_admin dbname=shop",
        cluster.port
    );
    let mut owner = Client::connect(&conn, postgres::NoTls).unwrap();
    owner
        .batch_execute(
            "CREATE SCHEMA lms;
             CREATE TABLE lms.users (id bigserial PRIMARY KEY, first_name text, last_name text, email text);",
        )
        .unwrap();
    let mut shop = cluster.client_db("shop");
    let err = error_of(&mut shop, "CREATE EXTENSION webhook_emitter");
    assert!(
        err.contains("lms.users or its schema belongs to a role that is not a superuser"),
        "{err}"
    );

    // The owner of a table an admin's topic watches swaps the table for a
    // view of its own: the re-read at commit would run the view as the
    // definer. The trigger is on the renamed table, not on what the name
    // now is: the write is refused and nothing runs as the admin.
    su.batch_execute("CREATE SCHEMA appdata AUTHORIZATION lms_app")
        .unwrap();
    let mut app = cluster.client_as("lms_app");
    app.batch_execute(
        "CREATE TABLE appdata.orders (id bigserial PRIMARY KEY, v int);
         GRANT SELECT, TRIGGER ON appdata.orders TO lms_admin;
         GRANT USAGE ON SCHEMA appdata TO lms_admin;",
    )
    .unwrap();
    admin
        .batch_execute(
            "CREATE FUNCTION billing.order_body(bigint) RETURNS json LANGUAGE sql STABLE
                 AS $$ SELECT json_build_object('id', $1) $$;
             SELECT webhook.define_topic('order.seen', 'appdata.orders', 'billing.order_body(bigint)',
                 condition => 'NEW.v > 0', sample_body => '{\"id\": 1}');
             SELECT webhook.create_webhook('orders', 'http://127.0.0.1:9/o', '{order.seen}');",
        )
        .unwrap();
    app.batch_execute(
        "CREATE TABLE appdata.seen_by (who text);
         GRANT INSERT ON appdata.seen_by TO PUBLIC;
         CREATE FUNCTION appdata.spy() RETURNS boolean LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO appdata.seen_by VALUES (current_user); RETURN true; END $$;
         ALTER TABLE appdata.orders RENAME TO orders_real;
         CREATE VIEW appdata.orders AS SELECT * FROM appdata.orders_real WHERE appdata.spy();
         GRANT SELECT ON appdata.orders TO lms_admin;",
    )
    .unwrap();
    let err = error_of(&mut app, "INSERT INTO appdata.orders_real (v) VALUES (5)");
    assert!(
        err.contains("is no longer the table this trigger is on"),
        "{err}"
    );
    let seen: i64 = su
        .query_one("SELECT count(*) FROM appdata.seen_by", &[])
        .unwrap()
        .get(0);
    assert_eq!(seen, 0);
}

/// Finding 3: the database owner's search_path and timeouts do not reach
/// the worker, a superuser session.
#[test]
fn a_database_owner_cannot_run_code_in_the_worker_or_stall_it() {
    let cluster = Cluster::start("webhook.retry_schedule = '0s'");
    let receiver = Receiver::start();
    let mut su = cluster.client();
    // The worker running now, before the database's settings change (new
    // sessions of the test would take them too).
    let old = cluster.worker_pid();
    su.batch_execute(
        "CREATE ROLE db_owner LOGIN NOSUPERUSER;
         ALTER DATABASE postgres OWNER TO db_owner;",
    )
    .unwrap();
    let mut owner = cluster.client_as("db_owner");
    owner
        .batch_execute(
            "CREATE SCHEMA evil;
             CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
             BEGIN
                 ALTER ROLE db_owner SUPERUSER;
                 RETURN pg_catalog.now();
             END $$;
             CREATE FUNCTION evil.make_interval(secs double precision) RETURNS interval LANGUAGE plpgsql AS $$
             BEGIN
                 ALTER ROLE db_owner SUPERUSER;
                 RETURN pg_catalog.make_interval(secs => secs);
             END $$;
             ALTER DATABASE postgres SET search_path = evil, pg_catalog, public;
             ALTER DATABASE postgres SET statement_timeout = '1ms';
             ALTER DATABASE postgres SET role = db_owner;
             ALTER DATABASE postgres SET session_authorization = db_owner;
             ALTER DATABASE postgres SET default_transaction_read_only = on;",
        )
        .unwrap();
    // A new worker session takes the database's settings: restart it.
    su.batch_execute(&format!("SELECT pg_terminate_backend({old})"))
        .unwrap();
    wait_for(Duration::from_secs(30), "a new worker", || {
        su.query_opt(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'webhook_emitter' AND pid <> $1",
            &[&old],
        )
        .ok()
        .flatten()
    });
    su.execute(
        "SELECT webhook.create_webhook('g', $1, '{group.created}')",
        &[&receiver.url("/g")],
    )
    .unwrap();
    su.batch_execute(
        "SET default_transaction_read_only = off; INSERT INTO lms.groups (name) VALUES ('Physics')",
    )
    .unwrap();
    receiver.wait_for(1, Duration::from_secs(20));
    wait_delivered(&mut su, 1, Duration::from_secs(20));
    assert!(
        !is_superuser(&mut su, "db_owner"),
        "the worker ran evil.now() as a superuser"
    );
}

/// Findings 4, 5 and 6, and the canary: every secret holds a marker; after
/// receiver errors, a token endpoint that echoes its request, refused
/// headers and Send Test, nothing a role below webhook_admin can read
/// carries a marker, or a value of an event body.
#[test]
fn secrets_and_bodies_stay_out_of_what_public_reads() {
    let cluster = Cluster::start("webhook.retry_schedule = '0s'");
    let receiver = Receiver::start();
    // Echoes the request (headers and body), as httpbin's /anything does.
    receiver.respond_with(|r| {
        let mut echo = format!("{} {}\n", r.method, r.path);
        for (k, v) in &r.headers {
            echo.push_str(&format!("{k}: {v}\n"));
        }
        echo.push_str(&r.body_text());
        Reply {
            status: if r.path.starts_with("/token") {
                401
            } else {
                500
            },
            headers: vec![("X-Echo".into(), echo.replace('\n', " | "))],
            delay: Duration::ZERO,
            body: echo,
        }
    });
    delegate(&cluster);
    let mut admin = cluster.client_as("lms_admin");
    // 4: tokens outside RFC 6750's characters are refused when saved.
    for token in ["sk_live_CANARYTOKEN\u{a0}", "Zürich-CANARYTOKEN", "a b"] {
        let err = admin
            .execute(
                "SELECT webhook.create_webhook('t', $1, '{group.created}', bearer_token => $2)",
                &[&receiver.url("/t"), &token],
            )
            .map(|_| ())
            .map_err(|e| db_message(&e))
            .unwrap_err();
        assert!(err.starts_with("bearer_token: must be"), "{err}");
    }
    let err = admin
        .execute(
            "SELECT webhook.create_webhook('t', $1, '{group.created}', oauth2_token_url => $1,
                 oauth2_client_id => 'id', oauth2_client_secret => 'Zürich')",
            &[&receiver.url("/token")],
        )
        .map_err(|e| db_message(&e))
        .unwrap_err();
    assert!(err.starts_with("oauth2_client_secret: must be"), "{err}");
    admin
        .execute(
            "SELECT webhook.create_webhook('basic', $1, '{user.created}',
                 auth_username => 'erp-user', auth_password => 'CANARYPASSWORD',
                 signing_secret => 'whsec_Q0FOQVJZU0lHTklOR1NFQ1JFVC0wMTIzNDU2Nzg5',
                 headers => '{\"X-Api-Key\": \"CANARYHEADER\"}', ordering => 'per_key',
                 ordering_key => 'payload.email')",
            &[&format!("{}?token=CANARYURLTOKEN", receiver.url("/basic"))],
        )
        .unwrap();
    admin
        .execute(
            "SELECT webhook.create_webhook('bearer', $1, '{group.created}', bearer_token => 'CANARYBEARER',
                 body_template => '{\"api_key\": \"CANARYTEMPLATE\", \"group\": \"{{payload.group_name}}\"}')",
            &[&receiver.url("/bearer")],
        )
        .unwrap();
    admin
        .execute(
            "SELECT webhook.create_webhook('oauth', $1, '{group.created}', oauth2_token_url => $2,
                 oauth2_client_id => 'erp-client', oauth2_client_secret => 'CANARYCLIENTSECRET')",
            &[&receiver.url("/oauth"), &receiver.url("/token")],
        )
        .unwrap();
    let mut app = cluster.client_as("lms_app");
    app.batch_execute(
        "INSERT INTO lms.users (first_name, last_name, email) VALUES ('Ada', 'CANARYBODY', 'canarybody@example.com');
         INSERT INTO lms.groups (name) VALUES ('CANARYGROUP');",
    )
    .unwrap();
    let ids: Vec<i64> = admin
        .query("SELECT id FROM webhook.webhooks ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for id in &ids {
        admin
            .execute("SELECT * FROM webhook.send_test($1)", &[id])
            .unwrap();
    }
    wait_fanned_out(&mut cluster.client());
    wait_for(Duration::from_secs(30), "every delivery to end", || {
        let open: i64 = admin
            .query_one(
                "SELECT (SELECT count(*) FROM webhook.deliveries WHERE status NOT IN ('dead', 'delivered'))
                      + (SELECT count(*) FROM webhook.in_flight)",
                &[],
            )
            .ok()?
            .get(0);
        (open == 0).then_some(())
    });
    // What the token endpoint answered reached the admin's log only.
    let excerpt: i64 = admin
        .query_one(
            "SELECT count(*) FROM webhook.attempts WHERE response_excerpt LIKE '%CANARY%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        excerpt > 0,
        "the receiver echoed the secrets (the test's premise)"
    );

    // 6: the order key comes from the body.
    let mut nobody = cluster.client_as("nobody");
    let err = error_of(&mut nobody, "SELECT order_key FROM webhook.deliveries");
    assert!(err.contains("permission denied"), "{err}");
    for (what, sql) in [
        ("deliveries", "SELECT id, event_id, webhook_id, status, attempts, next_attempt_at, lease_until, last_attempt_at, last_status_code, last_error, delivered_at, is_test, created_at FROM webhook.deliveries"),
        ("attempts", "SELECT id, delivery_id, attempt, started_at, duration_ms, status_code, error FROM webhook.attempts"),
        ("recent_failures", "SELECT * FROM webhook.recent_failures"),
        ("webhook_health", "SELECT * FROM webhook.webhook_health"),
        ("webhook_list", "SELECT * FROM webhook.webhook_list"),
        ("webhooks_for_topic", "SELECT * FROM webhook.webhooks_for_topic('group.created')"),
        ("topics", "SELECT * FROM webhook.topics"),
        ("settings", "SELECT * FROM webhook.settings"),
        ("delivery_counters", "SELECT * FROM webhook.delivery_counters"),
        ("metrics", "SELECT webhook.metrics()"),
    ] {
        for role in [&mut nobody, &mut app] {
            let text: String = role
                .query_one(&format!("SELECT coalesce(string_agg(t::text, ' '), '') FROM ({sql}) t"), &[])
                .unwrap_or_else(|e| panic!("{what}: {}", db_message(&e)))
                .get(0);
            assert!(!text.to_lowercase().contains("canary"), "{what} shows a secret or a body value: {text}");
        }
    }
    // The log says what went wrong in words a DBA can act on.
    let errors: Vec<String> = nobody
        .query(
            "SELECT DISTINCT error FROM webhook.attempts WHERE error IS NOT NULL",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("the token endpoint answered HTTP 401")),
        "{errors:?}"
    );
    // Event bodies, what receivers answered and the secrets are the admin's.
    let admins_only = [
        "SELECT body FROM webhook.events",
        "SELECT response_excerpt FROM webhook.attempts",
        "SELECT bearer_token FROM webhook.webhooks",
    ];
    assert_denied(&mut nobody, &admins_only);
    assert_denied(&mut app, &admins_only);
}

/// Findings 7 and 8: sizes a role controls are bounded. A template that
/// repeats the body fails with an error, in preview and in delivery; a
/// body over webhook.max_body_bytes fails only its own delivery; the
/// postmaster never restarts.
#[test]
fn templates_and_bodies_cannot_exhaust_memory() {
    let cluster = Cluster::start("webhook.retry_schedule = '0s'\nwebhook.max_body_bytes = '4MB'");
    let receiver = Receiver::start();
    delegate(&cluster);
    let mut su = cluster.client();
    let started = postmaster_started(&mut su);
    let mut admin = cluster.client_as("lms_admin");
    admin
        .batch_execute("SELECT webhook.watch('billing.invoices', operations => '{insert}')")
        .unwrap();
    let repeated = vec!["{{$body}}"; 40].join("\", \"");
    let template = format!("[\"{repeated}\"]");
    admin
        .execute(
            "SELECT webhook.create_webhook('fan', $1, '{billing.invoices.insert}', body_template => $2)",
            &[&receiver.url("/fan"), &template],
        )
        .unwrap();
    admin
        .execute(
            "SELECT webhook.create_webhook('plain', $1, '{billing.invoices.insert}')",
            &[&receiver.url("/plain")],
        )
        .unwrap();
    // 8: the application writes a 2 MB note (under the limit: the template
    // fails, the plain webhook gets it) and a 6 MB one (over the limit).
    let mut app = cluster.client_as("lms_app");
    app.execute(
        "INSERT INTO billing.invoices (amount, note) VALUES (1, repeat('y', 2 << 20)), (2, repeat('z', 6 << 20))",
        &[],
    )
    .unwrap();
    // 7: preview renders the template against the stored 2 MB event: 80 MB.
    let err = admin
        .query_one(
            "SELECT * FROM webhook.preview('billing.invoices.insert', body_template => $1,
                 event_id => (SELECT id FROM webhook.events ORDER BY id LIMIT 1))",
            &[&template],
        )
        .map(|_| ())
        .map_err(|e| db_message(&e))
        .unwrap_err();
    assert!(err.contains("would exceed"), "{err}");
    wait_fanned_out(&mut su);
    wait_for(Duration::from_secs(60), "every delivery to end", || {
        let open: i64 = su
            .query_one(
                "SELECT (SELECT count(*) FROM webhook.deliveries WHERE status NOT IN ('dead', 'delivered'))
                      + (SELECT count(*) FROM webhook.in_flight)",
                &[],
            )
            .ok()?
            .get(0);
        (open == 0).then_some(())
    });
    let outcomes: Vec<(String, String, String)> = su
        .query(
            "SELECT w.name, d.status, coalesce(d.last_error, '') FROM webhook.deliveries d
               JOIN webhook.webhooks w ON w.id = d.webhook_id ORDER BY w.name, d.id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(outcomes.len(), 4, "{outcomes:?}");
    assert!(outcomes[0].2.contains("would exceed"), "{outcomes:?}");
    assert!(
        outcomes[1].2.contains("more than webhook.max_body_bytes"),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[2].1, "delivered", "{outcomes:?}");
    assert!(
        outcomes[3].2.contains("more than webhook.max_body_bytes"),
        "{outcomes:?}"
    );
    assert_eq!(receiver.count(), 1);
    assert_eq!(postmaster_started(&mut su), started, "the server restarted");
}

/// Row events of billing.invoices for webhook `erp`, and an application
/// transaction, left open, that queued one (it holds nothing of the
/// webhook: only the worker's fan-out locks its row, for its own short
/// transaction): the admin's session, the webhook's id, the writer's.
fn writer_holding_a_webhook(cluster: &Cluster, receiver: &Receiver) -> (Client, i64, Client) {
    delegate(cluster);
    let mut admin = cluster.client_as("lms_admin");
    admin
        .batch_execute("SELECT webhook.watch('billing.invoices', operations => '{insert}')")
        .unwrap();
    let id: i64 = admin
        .query_one(
            "SELECT webhook.create_webhook('erp', $1, '{billing.invoices.insert}')",
            &[&receiver.url("/erp")],
        )
        .unwrap()
        .get(0);
    let mut app = cluster.client_as("lms_app");
    app.batch_execute("BEGIN; INSERT INTO billing.invoices (amount) VALUES (1)")
        .unwrap();
    (admin, id, app)
}

/// Finding 9: an application transaction that queued an event for a
/// webhook does not make the admin's changes wait, a forgotten prepared
/// transaction neither.
#[test]
fn admin_changes_do_not_wait_for_application_transactions() {
    let cluster = Cluster::start("max_prepared_transactions = 5");
    let receiver = Receiver::start();
    let (mut admin, id, mut app) = writer_holding_a_webhook(&cluster, &receiver);
    let mut su = cluster.client();
    su.batch_execute(
        "BEGIN; INSERT INTO billing.invoices (amount) VALUES (2); PREPARE TRANSACTION 'forgotten'",
    )
    .unwrap();
    admin.batch_execute("SET statement_timeout = '5s'").unwrap();
    for change in [
        "SELECT webhook.update_webhook(%, description => 'ERP')",
        "SELECT webhook.update_webhook(%, name => 'erp2', timeout_ms => 2000)",
        "SELECT webhook.disable_webhook(%)",
        "SELECT webhook.enable_webhook(%, discard_held => true)",
    ] {
        admin
            .batch_execute(&change.replace('%', &id.to_string()))
            .unwrap_or_else(|e| panic!("{change}: {}", db_message(&e)));
    }
    // Nor can the admin lock what every writer and the worker read.
    let locks = [
        "BEGIN; LOCK TABLE webhook.webhooks IN ACCESS EXCLUSIVE MODE",
        "BEGIN; SELECT id FROM webhook.webhooks FOR UPDATE",
        "BEGIN; UPDATE webhook.webhooks SET description = 'x'",
        "BEGIN; LOCK TABLE webhook.deliveries IN EXCLUSIVE MODE",
    ];
    assert_denied(&mut admin, &locks);
    app.batch_execute("COMMIT").unwrap();
    su.batch_execute("COMMIT PREPARED 'forgotten'").unwrap();
    receiver.wait_for(2, Duration::from_secs(20));
}

/// Finding 9, deleting: `delete_webhook` returns at once behind a writer
/// that queued for the webhook, and the webhook is gone: what the writer
/// queued goes to the webhooks subscribed when it is fanned out.
#[test]
fn deleting_a_webhook_does_not_wait_for_application_transactions() {
    let cluster = Cluster::start("webhook.retention = '8s'");
    let receiver = Receiver::start();
    let (mut admin, id, mut app) = writer_holding_a_webhook(&cluster, &receiver);
    admin.batch_execute("SET statement_timeout = '5s'").unwrap();
    admin
        .batch_execute(&format!("SELECT webhook.delete_webhook({id})"))
        .unwrap_or_else(|e| panic!("delete_webhook: {}", db_message(&e)));
    // The writer queued an event and holds nothing: the webhook is gone at
    // once (the worker's fan-out will make nothing for it).
    let left: i64 = admin
        .query_one(
            "SELECT count(*) FROM webhook.webhooks WHERE id = $1",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    // Its name is free at once; a second delete says it is gone.
    admin
        .execute(
            "SELECT webhook.create_webhook('erp', $1, '{billing.invoices.insert}')",
            &[&receiver.url("/erp2")],
        )
        .unwrap();
    let err = error_of(&mut admin, &format!("SELECT webhook.delete_webhook({id})"));
    assert!(err.contains("does not exist"), "{err}");
    app.batch_execute("COMMIT").unwrap();
    let mut su = cluster.client();
    wait_for(
        Duration::from_secs(30),
        "the worker to remove the webhook",
        || {
            let left: i64 = su
                .query_one(
                    "SELECT count(*) FROM webhook.webhooks WHERE id = $1",
                    &[&id],
                )
                .ok()?
                .get(0);
            (left == 0).then_some(())
        },
    );
    let to_deleted: i64 = su
        .query_one(
            "SELECT count(*) FROM webhook.deliveries WHERE webhook_id = $1",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(to_deleted, 0);
    // What the writer queued goes to the webhooks subscribed when it is
    // fanned out, after its commit: the one that took the name, as new
    // events do.
    app.batch_execute("INSERT INTO billing.invoices (amount) VALUES (2)")
        .unwrap();
    let got = receiver.wait_for(1, Duration::from_secs(20));
    assert!(got.iter().all(|r| r.path == "/erp2"), "{got:?}");
}

/// The README's SQL API as a NOSUPERUSER member of webhook_admin: every
/// call it promises works, including those that write the queue.
#[test]
fn a_nosuperuser_admin_can_use_the_whole_sql_api() {
    let cluster = Cluster::start("webhook.retry_schedule = '0s'");
    let receiver = Receiver::start();
    receiver.respond_with(|r| Reply::status(if r.path == "/down" { 503 } else { 200 }));
    delegate(&cluster);
    let mut admin = cluster.client_as("lms_admin");
    let id: i64 = admin
        .query_one(
            "SELECT webhook.create_webhook('crm', $1, '{user.created}', generate_signing_secret => true,
                 headers => '{\"X-Team\": \"lms\"}')",
            &[&receiver.url("/down")],
        )
        .unwrap()
        .get(0);
    let mut app = cluster.client_as("lms_app");
    app.batch_execute("INSERT INTO lms.users (first_name, last_name, email) VALUES ('Ada', 'L', 'ada@example.com')")
        .unwrap();
    wait_for(Duration::from_secs(20), "the delivery to die", || {
        let dead: i64 = admin
            .query_one(
                "SELECT count(*) FROM webhook.deliveries WHERE status = 'dead'",
                &[],
            )
            .ok()?
            .get(0);
        (dead == 1).then_some(())
    });
    let id_s = id.to_string();
    let up = receiver.url("/up");
    let run = |admin: &mut Client, calls: &[&str]| {
        for call in calls {
            let sql = call.replace('#', &id_s).replace("$up", &up);
            admin
                .batch_execute(&sql)
                .unwrap_or_else(|e| panic!("{sql}: {}", db_message(&e)));
        }
    };
    run(
        &mut admin,
        &[
            "SELECT webhook.update_webhook(#, url => '$up', description => 'CRM')",
            "SELECT webhook.redeliver((SELECT max(id) FROM webhook.deliveries))",
            "SELECT * FROM webhook.send_test(#)",
        ],
    );
    wait_delivered(&mut admin, 2, Duration::from_secs(20));
    let calls = [
        "SELECT webhook.replay(#, now() - interval '1 hour')",
        "SELECT webhook.disable_webhook(#, 'maintenance')",
        "SELECT webhook.enable_webhook(#, discard_held => true)",
        "SELECT webhook.update_webhook(#, rotate_signing_secret => true)",
        "SELECT webhook.set_tenant_id('acme')",
        "SELECT webhook.set_enabled(true)",
        "SELECT * FROM webhook.preview('user.created', body_template => '{\"id\": \"{{$event_id}}\"}')",
        "SELECT * FROM webhook.render(#, (SELECT max(id) FROM webhook.events))",
        "SELECT webhook.topic_reference()",
        "SELECT webhook.metrics()",
        "SELECT * FROM webhook.webhook_health",
        "SELECT body FROM webhook.events",
        "SELECT response_excerpt FROM webhook.attempts",
        "SELECT webhook.watch('billing.invoices', exclude_columns => '{card_token}')",
        "SELECT webhook.define_topic('invoice.created', 'billing.invoices', 'billing.invoice_body(bigint)', sample_body => '{\"id\": 1}')",
        "SELECT webhook.drop_topic('invoice.created')",
        "SELECT webhook.unwatch('billing.invoices')",
    ];
    run(&mut admin, &calls);
    admin
        .batch_execute(&format!("SELECT webhook.delete_webhook({id})"))
        .unwrap();
    // The application role may write its tables, and nothing else here.
    assert_denied(
        &mut app,
        &[
            "SELECT webhook.create_webhook('x', 'http://127.0.0.1:9/', '{user.created}')",
            "SELECT webhook.enqueue('user.created', '{}')",
            "UPDATE webhook.settings SET enabled = false",
            "SELECT * FROM webhook.send_test(1)",
        ],
    );
}
