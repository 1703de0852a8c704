//! Issue 26, real LMS schemas: a topic bound to the LMS's own tables by a
//! NOSUPERUSER webhook_admin member (`lms_admin`) and written by an LMS
//! role with table privileges only (`lms_app`). Rebinding keeps what it is
//! not given; a builder that cannot work is refused when the topic is
//! defined; one that fails at a write never fails the write, and its
//! events wait, visible, until `webhook.rebuild_events`; an entity created
//! and deleted in one transaction sends nothing. Each test fails on 0.2.0.

use postgres::Client;
use std::time::Duration;
use webhook_emitter_e2e::{db_message, wait_delivered, Cluster, Receiver};

/// The roles, and a Moodle-like user table of the admin's with a builder.
fn setup(cluster: &Cluster) {
    cluster
        .client()
        .batch_execute(
            "CREATE ROLE lms_admin LOGIN NOSUPERUSER;
             GRANT webhook_admin TO lms_admin;
             CREATE ROLE lms_app LOGIN NOSUPERUSER;
             CREATE SCHEMA app AUTHORIZATION lms_admin;
             GRANT USAGE ON SCHEMA app TO lms_app;
             -- Rebinding a documented topic drops its triggers on lms.users.
             GRANT TRIGGER ON lms.users TO lms_admin;",
        )
        .unwrap();
    cluster
        .client_as("lms_admin")
        .batch_execute(
            "CREATE TABLE app.mdl_user (id bigserial PRIMARY KEY, firstname text NOT NULL,
                                        email text NOT NULL, deleted smallint NOT NULL DEFAULT 0);
             GRANT SELECT, INSERT, UPDATE, DELETE ON app.mdl_user TO lms_app;
             GRANT USAGE ON SEQUENCE app.mdl_user_id_seq TO lms_app;
             CREATE FUNCTION app.user_body(bigint) RETURNS json LANGUAGE sql STABLE
                 RETURN (SELECT json_build_object('user_id', u.id, 'name', u.firstname, 'email', u.email)
                           FROM app.mdl_user u WHERE u.id = $1);",
        )
        .unwrap();
}

fn error_of(c: &mut Client, sql: &str) -> String {
    match c.batch_execute(sql) {
        Ok(()) => panic!("expected an error from: {sql}"),
        Err(e) => db_message(&e),
    }
}

fn one<T: for<'a> postgres::types::FromSql<'a>>(c: &mut Client, sql: &str) -> T {
    c.query_one(sql, &[]).unwrap().get(0)
}

#[test]
fn rebinding_a_topic_keeps_every_argument_it_is_not_given() {
    let cluster = Cluster::start("");
    setup(&cluster);
    let mut admin = cluster.client_as("lms_admin");
    admin
        .batch_execute(
            "SELECT webhook.define_topic('user.updated', 'app.mdl_user', 'app.user_body(bigint)',
                                         replace => true);",
        )
        .unwrap();
    let row = admin
        .query_one(
            "SELECT operations::text, columns::text, timing, envelope, resource, action FROM webhook.topics
              WHERE topic = 'user.updated'",
            &[],
        )
        .unwrap();
    let got: (String, Option<String>, String, String, String, String) = (
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
    );
    assert_eq!(
        got,
        (
            "{update}".into(),
            None,
            "commit".into(),
            "braincert".into(),
            "user".into(),
            "updated".into()
        )
    );
    // user.deleted keeps {delete} and its timing.
    let deleted: String = one(
        &mut admin,
        "SELECT (d.operations::text || ' ' || d.timing)
           FROM webhook.define_topic('user.deleted', 'app.mdl_user', 'app.user_body(bigint)', replace => true) d",
    );
    assert_eq!(deleted, "{delete} before_delete");
    // A custom topic: columns and condition are kept, and cleared by '{}' and ''.
    admin
        .batch_execute(
            "SELECT webhook.define_topic('crm.user_renamed', 'app.mdl_user', 'app.user_body(bigint)',
                 operations => '{update}', columns => '{firstname}', condition => 'NEW.deleted = 0',
                 sample_body => '{\"user_id\": 1}');
             SELECT webhook.define_topic('crm.user_renamed', 'app.mdl_user', replace => true,
                                         display_name => 'User renamed');",
        )
        .unwrap();
    let kept: String = one(
        &mut admin,
        "SELECT concat_ws(' ', operations::text, columns::text, condition, builder::text, display_name)
           FROM webhook.topics WHERE topic = 'crm.user_renamed'",
    );
    assert_eq!(
        kept,
        "{update} {firstname} NEW.deleted = 0 app.user_body(bigint) User renamed"
    );
    let cleared: String = one(
        &mut admin,
        "SELECT concat_ws(' ', d.operations::text, coalesce(d.columns::text, '-'), coalesce(d.condition, '-'))
           FROM webhook.define_topic('crm.user_renamed', 'app.mdl_user', replace => true,
                                     columns => '{}', condition => '') d",
    );
    assert_eq!(cleared, "{update} - -");
    // The reference shows the result.
    let reference: String = one(&mut admin, "SELECT webhook.topic_reference()");
    assert!(
        reference.contains("Emitted by update on `app.mdl_user`, built at commit"),
        "{reference}"
    );
    // From then on an INSERT does not queue user.updated.
    admin
        .batch_execute(
            "SELECT webhook.create_webhook('crm', 'http://127.0.0.1:9/', '{user.updated}')",
        )
        .unwrap();
    let mut app = cluster.client_as("lms_app");
    app.batch_execute(
        "INSERT INTO app.mdl_user (firstname, email) VALUES ('Ada', 'ada@example.com')",
    )
    .unwrap();
    let queued: i64 = one(
        &mut admin,
        "SELECT count(*) FROM webhook.events WHERE topic = 'user.updated'",
    );
    assert_eq!(queued, 0);
    app.batch_execute("UPDATE app.mdl_user SET firstname = 'Ada L.'")
        .unwrap();
    let queued: i64 = one(
        &mut admin,
        "SELECT count(*) FROM webhook.events WHERE topic = 'user.updated'",
    );
    assert_eq!(queued, 1);
}

#[test]
fn a_builder_that_only_works_under_the_callers_search_path_is_refused() {
    let cluster = Cluster::start("");
    setup(&cluster);
    let mut admin = cluster.client_as("lms_admin");
    // Names its table without the schema: resolves only with app in the path.
    admin
        .batch_execute(
            "SET search_path = app, public;
             CREATE FUNCTION app.unqualified_body(bigint) RETURNS json LANGUAGE sql STABLE
                 AS $$ SELECT json_build_object('user_id', u.id) FROM mdl_user u WHERE u.id = $1 $$;
             CREATE FUNCTION app.raising_body(bigint) RETURNS json LANGUAGE plpgsql STABLE
                 AS $$ BEGIN RAISE EXCEPTION 'no CRM mapping for %', $1; END $$;",
        )
        .unwrap();
    // On an empty table: the body is checked under the builder's settings.
    let err = error_of(
        &mut admin,
        "SELECT webhook.define_topic('user.created', 'app.mdl_user', 'app.unqualified_body(bigint)', replace => true)",
    );
    assert!(
        err.contains("builder: app.unqualified_body(bigint) fails") && err.contains("mdl_user"),
        "{err}"
    );
    // On a table with rows: the builder runs (and what it did is undone).
    admin
        .batch_execute(
            "INSERT INTO app.mdl_user (firstname, email) VALUES ('Ada', 'a@example.com')",
        )
        .unwrap();
    let err = error_of(
        &mut admin,
        "SELECT webhook.define_topic('user.created', 'app.mdl_user', 'app.unqualified_body(bigint)', replace => true)",
    );
    assert!(
        err.contains("on the row of app.mdl_user with id = 1"),
        "{err}"
    );
    let err = error_of(
        &mut admin,
        "SELECT webhook.define_topic('user.created', 'app.mdl_user', 'app.raising_body(bigint)', replace => true)",
    );
    assert!(err.contains("no CRM mapping for 1"), "{err}");
    // Nothing changed: user.created is still bound to lms.users.
    let table: String = one(
        &mut admin,
        "SELECT source_table FROM webhook.topics WHERE topic = 'user.created'",
    );
    assert_eq!(table, "lms.users");
    // Its own SET search_path makes it work.
    admin
        .batch_execute(
            "ALTER FUNCTION app.unqualified_body(bigint) SET search_path = app;
             SELECT webhook.define_topic('user.created', 'app.mdl_user', 'app.unqualified_body(bigint)', replace => true);",
        )
        .unwrap();
}

#[test]
fn a_builder_that_fails_at_commit_never_fails_the_write_and_its_events_wait_for_a_rebuild() {
    let cluster = Cluster::start("webhook.retry_schedule = '0s'");
    let receiver = Receiver::start();
    setup(&cluster);
    let mut admin = cluster.client_as("lms_admin");
    // A builder that fails for some rows (a CRM mapping missing), as at the
    // write; proven on the row that works.
    admin
        .batch_execute(&format!(
            "CREATE TABLE app.crm_map (user_id bigint PRIMARY KEY, crm_id text NOT NULL);
             GRANT SELECT ON app.crm_map TO lms_app;
             CREATE FUNCTION app.crm_body(bigint) RETURNS json LANGUAGE plpgsql STABLE
                 SET search_path = pg_catalog AS $$
             DECLARE crm text;
             BEGIN
                 SELECT m.crm_id INTO crm FROM app.crm_map m WHERE m.user_id = $1;
                 IF crm IS NULL THEN RAISE EXCEPTION 'no CRM id for user %', $1; END IF;
                 RETURN (SELECT json_build_object('user_id', u.id, 'crm_id', crm, 'name', u.firstname)
                           FROM app.mdl_user u WHERE u.id = $1);
             END $$;
             SELECT webhook.define_topic('crm.user', 'app.mdl_user', 'app.crm_body(bigint)',
                 sample_body => '{{\"user_id\": 1, \"crm_id\": \"c1\", \"name\": \"x\"}}');
             SELECT webhook.create_webhook('crm', '{}', '{{crm.user}}');
             SELECT webhook.create_webhook('crm-filtered', '{}', '{{crm.user}}', filter => '{{\"name\": \"Bob\"}}');",
            receiver.url("/crm"),
            receiver.url("/filtered"),
        ))
        .unwrap();
    // The LMS writes: no mapping yet for user 1; user 2 is mapped.
    let mut app = cluster.client_as("lms_app");
    app.batch_execute(
        "BEGIN;
         INSERT INTO app.mdl_user (firstname, email) VALUES ('Ada', 'ada@example.com');
         COMMIT;",
    )
    .expect("the write commits although the builder fails");
    admin
        .batch_execute("INSERT INTO app.crm_map VALUES (2, 'crm-2')")
        .unwrap();
    app.batch_execute(
        "INSERT INTO app.mdl_user (firstname, email) VALUES ('Bob', 'bob@example.com')",
    )
    .unwrap();
    assert_eq!(one::<i64>(&mut app, "SELECT count(*) FROM app.mdl_user"), 2);
    // User 2's event is delivered to both webhooks; user 1's waits, visible.
    let requests = receiver.wait_for(2, Duration::from_secs(20));
    assert!(requests.iter().all(|r| r.json()["user_id"] == 2));
    let error: String = one(
        &mut admin,
        "SELECT build_error || ' / key ' || build_key FROM webhook.events WHERE build_error IS NOT NULL",
    );
    assert_eq!(
        error,
        "builder app.crm_body(bigint): no CRM id for user 1 (SQLSTATE P0001) / key 1"
    );
    // The delivery log, which PUBLIC reads, says that it failed, not what
    // the builder's message carried.
    let unbuilt: String = one(
        &mut admin,
        "SELECT string_agg(DISTINCT d.status || ': ' || d.last_error, '; ') FROM webhook.deliveries d
           JOIN webhook.events e ON e.id = d.event_id WHERE e.build_error IS NOT NULL",
    );
    assert_eq!(
        unbuilt,
        "unbuilt: unbuilt: the builder of topic crm.user failed (SQLSTATE P0001); webhook_admin finds the error in webhook.events.build_error"
    );
    let health: i64 = one(
        &mut admin,
        "SELECT sum(unbuilt)::bigint FROM webhook.webhook_health",
    );
    assert_eq!(health, 2);
    let metrics: String = one(&mut admin, "SELECT webhook.metrics()");
    assert!(
        metrics.contains("webhook=\"crm\",webhook_id=\"1\",state=\"unbuilt\"} 1"),
        "{metrics}"
    );
    // PUBLIC sees the error in the log, not the key's row.
    let mut nobody = cluster.client_as("lms_app");
    let seen: i64 = one(
        &mut nobody,
        "SELECT count(*) FROM webhook.deliveries WHERE status = 'unbuilt'",
    );
    assert_eq!(seen, 2);
    // Still failing: nothing released.
    let counts = admin
        .query_one("SELECT * FROM webhook.rebuild_events()", &[])
        .unwrap();
    assert_eq!((counts.get::<_, i64>(0), counts.get::<_, i64>(1)), (0, 1));
    // Fixed: rebuilt as at the write, sent to the matching webhook only.
    admin
        .batch_execute(
            "INSERT INTO app.crm_map VALUES (1, 'crm-1');
             UPDATE app.mdl_user SET firstname = 'Ada L.' WHERE id = 1;",
        )
        .unwrap();
    let counts = admin
        .query_one("SELECT * FROM webhook.rebuild_events('crm.user')", &[])
        .unwrap();
    assert_eq!((counts.get::<_, i64>(0), counts.get::<_, i64>(1)), (1, 0));
    let requests = receiver.wait_for(3, Duration::from_secs(20));
    let rebuilt = requests
        .iter()
        .find(|r| r.json()["user_id"] == 1)
        .expect("user 1 delivered");
    assert_eq!(rebuilt.json()["crm_id"], "crm-1");
    assert_eq!(rebuilt.path, "/crm");
    wait_delivered(&mut admin, 3, Duration::from_secs(20));
    let left: i64 = one(
        &mut admin,
        "SELECT count(*) FROM webhook.deliveries WHERE status = 'unbuilt'",
    );
    assert_eq!(left, 0, "the filtered webhook's unmatched delivery is gone");

    // A topic that refuses the write keeps 0.2.0's behaviour.
    admin
        .batch_execute("SELECT webhook.define_topic('crm.user', 'app.mdl_user', replace => true, on_builder_error => 'refuse')")
        .unwrap();
    let err = error_of(
        &mut app,
        "INSERT INTO app.mdl_user (firstname, email) VALUES ('Cy', 'cy@example.com')",
    );
    assert!(err.contains("no CRM id for user 3"), "{err}");
    // Discarding what cannot be built.
    admin
        .batch_execute("SELECT webhook.define_topic('crm.user', 'app.mdl_user', replace => true, on_builder_error => 'queue')")
        .unwrap();
    app.batch_execute(
        "INSERT INTO app.mdl_user (firstname, email) VALUES ('Di', 'di@example.com')",
    )
    .unwrap();
    let counts = admin
        .query_one("SELECT * FROM webhook.rebuild_events(discard => true)", &[])
        .unwrap();
    assert_eq!(counts.get::<_, i64>(2), 1);
    let left: i64 = one(
        &mut admin,
        "SELECT count(*) FROM webhook.events WHERE build_error IS NOT NULL",
    );
    assert_eq!(left, 0);
    // Only webhook_admin rebuilds.
    let err = error_of(&mut app, "SELECT webhook.rebuild_events()");
    assert!(err.contains("permission denied"), "{err}");
}

#[test]
fn an_entity_created_and_deleted_in_one_transaction_sends_nothing() {
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    let mut su = cluster.client();
    su.execute(
        "SELECT webhook.create_webhook('all', $1, '{user.created,user.deleted,course.created,course.deleted}')",
        &[&receiver.url("/")],
    )
    .unwrap();
    su.batch_execute(
        "BEGIN;
         INSERT INTO lms.users (email, first_name) VALUES ('tmp@example.com', 'T');
         DELETE FROM lms.users WHERE email = 'tmp@example.com';
         COMMIT;",
    )
    .unwrap();
    let queued: i64 = one(&mut su, "SELECT count(*) FROM webhook.events");
    assert_eq!(
        queued, 0,
        "nothing for a user that never existed outside the transaction"
    );
    // An existing user deleted (even after an update in the same
    // transaction) is announced.
    su.batch_execute("INSERT INTO lms.users (email, first_name) VALUES ('u@example.com', 'U')")
        .unwrap();
    su.batch_execute(
        "BEGIN;
         UPDATE lms.users SET first_name = 'V' WHERE email = 'u@example.com';
         DELETE FROM lms.users WHERE email = 'u@example.com';
         COMMIT;",
    )
    .unwrap();
    let topics: String = one(
        &mut su,
        "SELECT string_agg(topic, ',' ORDER BY id) FROM webhook.events",
    );
    assert_eq!(topics, "user.created,user.deleted");
}

/// An attacker's review of the unbuilt path: a definer whose condition
/// moves search_path (set_config without LOCAL) in front of the queueing
/// done as the extension owner, with an operator of its own there, and a
/// builder that calls call_builder again to pick its own failing key.
/// Neither runs anything as the extension owner; neither leaves the
/// definer's settings or builder access behind.
#[test]
fn a_failing_builder_cannot_make_the_unbuilt_path_run_its_code_as_the_owner() {
    let cluster = Cluster::start("");
    setup(&cluster);
    let mut admin = cluster.client_as("lms_admin");
    admin
        .batch_execute(
            "CREATE FUNCTION app.pwn(a text[], b text[]) RETURNS boolean LANGUAGE plpgsql AS $$
             BEGIN EXECUTE 'ALTER ROLE lms_admin SUPERUSER';
                   RETURN pg_catalog.array_position(a, b[1]) IS NOT NULL; END $$;
             CREATE OPERATOR app.@> (LEFTARG = text[], RIGHTARG = text[], FUNCTION = app.pwn);
             CREATE TABLE app.t2 (id bigint PRIMARY KEY);
             CREATE FUNCTION app.fail_body(p bigint) RETURNS json LANGUAGE plpgsql AS $$
             BEGIN IF p >= 1000 THEN RAISE EXCEPTION 'fails on purpose'; END IF;
                   RETURN pg_catalog.json_build_object('id', p); END $$;
             SELECT webhook.define_topic('evil.a', 'app.t2', 'app.fail_body(bigint)',
                 condition => 'pg_catalog.set_config(''search_path'', ''app, pg_catalog'', false) IS NOT NULL',
                 sample_body => '{\"id\": 1}');
             INSERT INTO app.t2 VALUES (1);
             CREATE FUNCTION app.evil_body(p bigint) RETURNS json LANGUAGE plpgsql
                 SET search_path = app, pg_catalog AS $$
             BEGIN IF p = 1000 THEN PERFORM webhook.call_builder('evil.b', 1001::bigint); END IF;
                   IF p = 1001 THEN RAISE EXCEPTION 'inner'; END IF;
                   RETURN pg_catalog.json_build_object('id', p); END $$;
             SELECT webhook.define_topic('evil.b', 'app.t2', 'app.evil_body(bigint)',
                 sample_body => '{\"id\": 1}');
             SELECT webhook.create_webhook('sink', 'http://127.0.0.1:9/', '{evil.a,evil.b}');",
        )
        .unwrap();
    admin
        .batch_execute("INSERT INTO app.t2 VALUES (1000)")
        .unwrap();
    let mut su = cluster.client();
    let superuser: bool = one(
        &mut su,
        "SELECT rolsuper FROM pg_roles WHERE rolname = 'lms_admin'",
    );
    assert!(
        !superuser,
        "the definer's operator ran as the extension owner"
    );
    // evil.a's event is unbuilt (its builder failed); evil.b's builder could
    // not reach call_builder, so its own event is unbuilt with that error.
    let errors: String = one(
        &mut su,
        "SELECT string_agg(topic || ': ' || build_error, '; ' ORDER BY topic) FROM webhook.events",
    );
    assert!(
        errors.contains("evil.a: builder app.fail_body(bigint): fails on purpose"),
        "{errors}"
    );
    assert!(
        errors.contains("evil.b: builder app.evil_body(bigint): permission denied"),
        "{errors}"
    );
    assert!(!errors.contains("inner"), "{errors}");
}
