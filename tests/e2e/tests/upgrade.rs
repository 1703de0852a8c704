//! Released versions are upgraded, never dropped: a database on 0.1.0 with
//! webhooks, settings, LMS rows and queued deliveries takes
//! `ALTER EXTENSION webhook_emitter UPDATE`, keeps all of it, delivers what
//! was queued, and ends with exactly the schema of a fresh install.
//! Needs the archived 0.1.0 install script in the extension directory
//! (scripts/install.sh puts it there). Runs offline.

use postgres::Client;
use std::time::Duration;
use webhook_emitter_e2e::{wait_for, Cluster, Receiver};

const FINGERPRINT: &str = include_str!("../sql/schema_fingerprint.sql");

/// Everything that defines the extension's objects, one line each, sorted.
fn fingerprint(c: &mut Client) -> Vec<String> {
    c.query(FINGERPRINT, &[])
        .expect("fingerprint query")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

/// `pg_dump --schema-only`, without the per-run \restrict keys.
fn schema_dump(cluster: &Cluster, db: &str) -> Vec<String> {
    let out = cluster.run("pg_dump", &["--schema-only", "-d", db]);
    String::from_utf8_lossy(&out)
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .map(str::to_owned)
        .collect()
}

fn rows_as_json(c: &mut Client, query: &str) -> Vec<String> {
    c.query(
        &format!("SELECT row_to_json(t)::text FROM ({query}) t ORDER BY 1"),
        &[],
    )
    .expect(query)
    .iter()
    .map(|r| r.get(0))
    .collect()
}

fn assert_same(what: &str, upgraded: &[String], fresh: &[String]) {
    let only_upgraded: Vec<_> = upgraded.iter().filter(|l| !fresh.contains(l)).collect();
    let only_fresh: Vec<_> = fresh.iter().filter(|l| !upgraded.contains(l)).collect();
    assert!(
        only_upgraded.is_empty() && only_fresh.is_empty(),
        "{what} differs.\nonly after the upgrade:\n{only_upgraded:#?}\nonly in a fresh install:\n{only_fresh:#?}"
    );
}

#[test]
fn upgrading_from_0_1_0_keeps_everything_and_equals_a_fresh_install() {
    // The worker serves "postgres" at first, where nothing is installed, so
    // what 0.1.0 queues in "school" stays queued until after the upgrade.
    let cluster = Cluster::start_bare("");
    let receiver = Receiver::start();
    let mut admin = cluster.client();
    admin.batch_execute("CREATE DATABASE school").unwrap();
    admin.batch_execute("CREATE DATABASE fresh").unwrap();
    let mut c = cluster.client_db("school");
    c.batch_execute("CREATE EXTENSION webhook_emitter VERSION '0.1.0'")
        .unwrap();
    c.execute(
        "SELECT webhook.create_webhook('ERP', $1, '{user.created,group.created}',
             content_type => 'application/xml', auth_username => 'erp', auth_password => 'pw',
             generate_signing_secret => true, headers => '{\"X-Team\": \"lms\"}')",
        &[&receiver.url("/erp")],
    )
    .unwrap();
    c.execute(
        "SELECT webhook.create_webhook('Chat', $1, '{group.created}',
             body_template => '{\"text\": \"{{payload.group_name}}\", \"id\": \"{{$event_id}}\"}')",
        &[&receiver.url("/chat")],
    )
    .unwrap();
    c.batch_execute(
        "SELECT webhook.set_tenant_id('acme-academy');
         INSERT INTO lms.users (first_name, last_name, email) VALUES ('Ada', 'Lovelace', 'ada@example.com');
         INSERT INTO lms.groups (name) VALUES ('Physics'), ('Chemistry');
         -- one delivery that already failed once
         UPDATE webhook.deliveries SET status = 'failed', attempts = 1, next_attempt_at = now(),
                last_error = 'receiver answered HTTP 500'
          WHERE id = (SELECT min(id) FROM webhook.deliveries);",
    )
    .unwrap();
    c.batch_execute(
        "INSERT INTO webhook.attempts (delivery_id, attempt, started_at, duration_ms, status_code)
         SELECT min(id), 1, now(), 42, 500 FROM webhook.deliveries",
    )
    .unwrap();
    let queued: i64 = c
        .query_one(
            "SELECT count(*) FROM webhook.deliveries WHERE status IN ('pending', 'failed')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(queued, 5, "3 events for ERP and 2 for Chat are queued");
    let webhooks_before = rows_as_json(&mut c, "SELECT * FROM webhook.webhooks");
    let settings_before = rows_as_json(&mut c, "SELECT * FROM webhook.settings");
    let lms_rows = |c: &mut Client| {
        let mut rows = rows_as_json(c, "SELECT * FROM lms.users");
        rows.extend(rows_as_json(c, "SELECT * FROM lms.groups"));
        rows
    };
    let lms_before = lms_rows(&mut c);
    let deliveries_before = rows_as_json(
        &mut c,
        "SELECT id, event_id, webhook_id, status, attempts FROM webhook.deliveries",
    );

    c.batch_execute("ALTER EXTENSION webhook_emitter UPDATE")
        .unwrap();
    let version: String = c
        .query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'webhook_emitter'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(version, "0.3.0");
    // The 0.1.0 columns are unchanged; the columns 0.2.0 adds are unset.
    let columns_0_1_0 =
        "id, name, url, description, topics, content_type, auth_username, auth_password,
        body_template, enabled, signing_secret, headers, timeout_ms, disabled_reason, disabled_at,
        failing_since, created_at, updated_at";
    assert_eq!(
        rows_as_json(
            &mut c,
            &format!("SELECT {columns_0_1_0} FROM webhook.webhooks")
        ),
        webhooks_before
    );
    let added_set: i64 = c
        .query_one(
            "SELECT count(*) FROM webhook.webhooks WHERE num_nonnulls(previous_signing_secret,
                previous_signing_secret_until, bearer_token, rate_limit_per_second) > 0",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(added_set, 0);
    assert_eq!(
        rows_as_json(&mut c, "SELECT * FROM webhook.settings"),
        settings_before
    );
    assert_eq!(lms_rows(&mut c), lms_before);
    assert_eq!(
        rows_as_json(
            &mut c,
            "SELECT id, event_id, webhook_id, status, attempts FROM webhook.deliveries"
        ),
        deliveries_before
    );
    // The log kept is summed per webhook and hour by the upgrade: the
    // failed attempt is in its webhook's health (42 ms, read within 10%).
    let health = c
        .query_one(
            "SELECT attempts_24h, successes_24h, last_failure_at IS NOT NULL, latency_p50_ms
               FROM webhook.webhook_health WHERE attempts_24h > 0",
            &[],
        )
        .unwrap();
    assert_eq!(health.get::<_, i64>(0), 1);
    assert_eq!(health.get::<_, i64>(1), 0);
    assert!(health.get::<_, bool>(2));
    let p50: f64 = health.get(3);
    assert!((37.8..=46.2).contains(&p50), "{p50}");
    let lms_members: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_depend d JOIN pg_class k ON k.oid = d.objid
              WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e' AND k.relnamespace = 'lms'::regnamespace",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(lms_members, 0, "lms tables are no longer extension members");

    // Same schema as a fresh 0.2.0 install: the extension's own objects
    // (which pg_dump leaves out) and everything pg_dump shows.
    let mut f = cluster.client_db("fresh");
    f.batch_execute("CREATE EXTENSION webhook_emitter").unwrap();
    assert_same(
        "the extension's catalog",
        &fingerprint(&mut c),
        &fingerprint(&mut f),
    );
    // The documented topics' definitions (which the dump leaves out: they
    // come with the extension) are the same as a fresh install's.
    assert_same(
        "webhook.topics",
        &rows_as_json(&mut c, "SELECT * FROM webhook.topics"),
        &rows_as_json(&mut f, "SELECT * FROM webhook.topics"),
    );
    assert_same(
        "pg_dump --schema-only",
        &schema_dump(&cluster, "school"),
        &schema_dump(&cluster, "fresh"),
    );

    // The new library serves "school" after a restart: everything queued
    // under 0.1.0 is delivered, with auth, signature and template.
    drop((c, f));
    admin
        .batch_execute("ALTER SYSTEM SET webhook.database = 'school'")
        .unwrap();
    drop(admin);
    cluster.pg_ctl_stop("fast");
    cluster.pg_ctl_start();
    let got = receiver.wait_for(5, Duration::from_secs(30));
    let mut c = cluster.client_db("school");
    wait_for(Duration::from_secs(20), "every delivery delivered", || {
        let n: i64 = c
            .query_one(
                "SELECT (SELECT count(*) FROM webhook.deliveries WHERE status <> 'delivered')
                      + (SELECT count(*) FROM webhook.in_flight)",
                &[],
            )
            .ok()?
            .get(0);
        (n == 0).then_some(())
    });
    let erp: Vec<_> = got.iter().filter(|r| r.path == "/erp").collect();
    assert_eq!(erp.len(), 3);
    // The new worker adds to the summary the upgrade made.
    let summed: Vec<(String, i64, i64)> = c
        .query(
            "SELECT h.name, h.attempts_24h - h.successes_24h, l.delivered::bigint FROM webhook.webhook_health h
               JOIN (SELECT webhook_id, sum(delivered) AS delivered FROM webhook.delivery_latency GROUP BY 1) l
                 ON l.webhook_id = h.webhook_id ORDER BY h.name",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let failed: i64 = summed.iter().map(|s| s.1).sum();
    assert_eq!(failed, 1, "{summed:?}");
    let delivered: Vec<(&str, i64)> = summed.iter().map(|s| (s.0.as_str(), s.2)).collect();
    assert_eq!(delivered, [("Chat", 2), ("ERP", 3)]);
    for r in &erp {
        assert!(r
            .header("authorization")
            .is_some_and(|a| a.starts_with("Basic ")));
        assert!(r
            .header("webhook-signature")
            .is_some_and(|s| s.starts_with("v1,")));
        assert_eq!(r.header("x-team"), Some("lms"));
        assert!(r.body_text().starts_with("<?xml"));
    }
    let chat: Vec<_> = got.iter().filter(|r| r.path == "/chat").collect();
    assert_eq!(chat.len(), 2);
    let mut names: Vec<String> = chat
        .iter()
        .map(|r| r.json()["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["Chemistry", "Physics"]);
}

/// Upgrading a 0.2.0 installation repairs what a non-superuser admin could
/// do with it: a generated function it squatted or owns (SECURITY DEFINER,
/// alterable by it) is replaced by the extension owner's, the triggers
/// call webhook.emit_topic, the admin loses CREATE on webhook_triggers and
/// DML on the catalog; its topic keeps firing, with its rights, for the
/// application role. The repaired schema equals a fresh install's.
#[test]
fn upgrading_from_0_2_0_repairs_ownership_and_grants() {
    let cluster = Cluster::start_bare("");
    let receiver = Receiver::start();
    let mut admin = cluster.client();
    admin.batch_execute("CREATE DATABASE school").unwrap();
    admin.batch_execute("CREATE DATABASE fresh").unwrap();
    let mut c = cluster.client_db("school");
    c.batch_execute(
        "CREATE EXTENSION webhook_emitter VERSION '0.2.0';
         CREATE ROLE lms_admin LOGIN NOSUPERUSER; GRANT webhook_admin TO lms_admin;
         CREATE ROLE lms_app LOGIN NOSUPERUSER;
         CREATE SCHEMA billing AUTHORIZATION lms_admin;
         GRANT USAGE ON SCHEMA billing TO lms_app;
         SET ROLE lms_admin;
         CREATE TABLE billing.invoices (id bigserial PRIMARY KEY, amount int);
         GRANT INSERT ON billing.invoices TO lms_app; GRANT USAGE ON billing.invoices_id_seq TO lms_app;
         CREATE FUNCTION billing.invoice_body(bigint) RETURNS json LANGUAGE sql STABLE
             AS $$ SELECT json_build_object('id', $1, 'built_by', current_user) $$;
         SELECT webhook.define_topic('invoice.created', 'billing.invoices', 'billing.invoice_body(bigint)',
             sample_body => '{\"id\": 1}');
         CREATE FUNCTION webhook_triggers.\"squatted 00000000\"() RETURNS trigger LANGUAGE plpgsql
             AS 'BEGIN RETURN NULL; END';
         -- 0.2.0 let the admin edit the catalog: a documented topic's row, and
         -- a row of its own that no longer matches what defined it.
         SELECT webhook.define_topic('invoice.voided', 'billing.invoices', 'billing.invoice_body(bigint)',
             operations => '{delete}', sample_body => '{\"id\": 1}');
         UPDATE webhook.topics SET condition = 'true' WHERE topic IN ('group.created', 'invoice.voided');
         RESET ROLE;",
    )
    .unwrap();
    // This library with 0.2.0's tables, before ALTER EXTENSION UPDATE: a
    // write queues its event and delivery as 0.2.0 did (no fan-out yet),
    // and it is delivered after the upgrade.
    c.execute(
        "SELECT webhook.create_webhook('groups', $1, '{group.created}')",
        &[&receiver.url("/groups")],
    )
    .unwrap();
    c.batch_execute("INSERT INTO lms.groups (name) VALUES ('Written before the update')")
        .unwrap();
    let queued: i64 = c
        .query_one(
            "SELECT count(*) FROM webhook.deliveries WHERE status = 'pending'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(queued, 1, "queued with its delivery, as 0.2.0 does");
    let owner_before: String = c
        .query_one(
            "SELECT p.proowner::regrole::text FROM pg_proc p JOIN webhook.topics t ON p.proname = t.trigger_function
              WHERE t.topic = 'invoice.created'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(owner_before, "lms_admin", "0.2.0 made the definer own it");

    c.batch_execute("ALTER EXTENSION webhook_emitter UPDATE")
        .unwrap();
    let (owner, secdef, definer): (String, bool, String) = c
        .query_one(
            "SELECT p.proowner::regrole::text, p.prosecdef, t.definer::text
               FROM pg_proc p JOIN webhook.topics t ON p.proname = t.trigger_function
              WHERE t.topic = 'invoice.created'",
            &[],
        )
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .unwrap();
    assert_eq!(
        (owner.as_str(), secdef, definer.as_str()),
        ("postgres", false, "lms_admin")
    );
    let triggers: Vec<String> = c
        .query(
            "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'billing.invoices'::regclass",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(triggers.len(), 1);
    assert!(
        triggers[0].contains("EXECUTE FUNCTION webhook.emit_topic('invoice.created')"),
        "{triggers:?}"
    );
    let (can_create, can_write_topics): (bool, bool) = c
        .query_one(
            "SELECT has_schema_privilege('lms_admin', 'webhook_triggers', 'CREATE'),
                    has_table_privilege('lms_admin', 'webhook.topics', 'UPDATE')",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert!(!can_create && !can_write_topics);
    // The custom topic's function is the installation's, not the extension's.
    let member: bool = c
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
                             JOIN webhook.topics t ON p.proname = t.trigger_function
                            WHERE t.topic = 'invoice.created' AND d.deptype = 'e')",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(!member);

    // The documented row is rebuilt as shipped; the edited one emits
    // nothing (no triggers) and would run as webhook_admin.
    let (documented, voided): (Option<String>, String) = c
        .query_one(
            "SELECT (SELECT condition FROM webhook.topics WHERE topic = 'group.created'),
                    (SELECT definer::text FROM webhook.topics WHERE topic = 'invoice.voided')",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((documented, voided.as_str()), (None, "webhook_admin"));
    let voided_triggers: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'billing.invoices'::regclass
               AND tgname = webhook.topic_trigger_name('invoice.voided', 'delete')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(voided_triggers, 0);
    c.batch_execute("SELECT webhook.drop_topic('invoice.voided')")
        .unwrap();

    let mut f = cluster.client_db("fresh");
    f.batch_execute("CREATE EXTENSION webhook_emitter").unwrap();
    assert_same(
        "the extension's catalog",
        &fingerprint(&mut c),
        &fingerprint(&mut f),
    );

    // The topic fires for the application role, built with the admin's rights.
    c.execute(
        "SELECT webhook.create_webhook('erp', $1, '{invoice.created}')",
        &[&receiver.url("/erp")],
    )
    .unwrap();
    drop((c, f));
    admin
        .batch_execute("ALTER SYSTEM SET webhook.database = 'school'")
        .unwrap();
    drop(admin);
    cluster.pg_ctl_stop("fast");
    cluster.pg_ctl_start();
    let conn = format!(
        "host=127.0.0.1 port={} user=lms_app dbname=school",
        cluster.port
    );
    let mut app = Client::connect(&conn, postgres::NoTls).unwrap();
    app.batch_execute("INSERT INTO billing.invoices (amount) VALUES (5)")
        .unwrap();
    let got = receiver.wait_for(2, Duration::from_secs(30));
    let invoice = got.iter().find(|r| r.path == "/erp").expect("the invoice");
    assert_eq!(invoice.json()["built_by"], "lms_admin");
    let group = got.iter().find(|r| r.path == "/groups").expect("the group");
    assert_eq!(
        group.json()["payload"]["group_name"],
        "Written before the update"
    );
}
