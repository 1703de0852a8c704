//! Delivery outcomes back into SQL: a webhook's outcome callback, run by
//! the worker as the role that set it, and NOTIFY on channel
//! webhook_emitter. Set up and checked as the roles people use: a
//! NOSUPERUSER member of webhook_admin (`lms_admin`), who owns the
//! callbacks, and an LMS application role (`lms_app`) that only writes.

use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;
use serde_json::Value;
use std::time::{Duration, Instant};
use webhook_emitter_e2e::{db_message, wait_for, Cluster, Receiver, Reply};

fn roles(cluster: &Cluster) {
    cluster
        .client()
        .batch_execute(
            "CREATE ROLE lms_admin LOGIN NOSUPERUSER;
             GRANT webhook_admin TO lms_admin;
             CREATE ROLE lms_admin2 LOGIN NOSUPERUSER;
             GRANT webhook_admin TO lms_admin2;
             CREATE ROLE lms_app LOGIN NOSUPERUSER;
             GRANT USAGE ON SCHEMA lms TO lms_app;
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA lms TO lms_app;
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA lms TO lms_app;
             CREATE SCHEMA crm AUTHORIZATION lms_admin;
             -- Where the CRM's ids go: the admin's table.
             CREATE TABLE crm.links (user_id bigint PRIMARY KEY, crm_id text NOT NULL, calls int NOT NULL DEFAULT 1);
             ALTER TABLE crm.links OWNER TO lms_admin;
             -- A table the admin may not write.
             CREATE TABLE public.locked (note text);",
        )
        .unwrap();
}

/// A cluster whose callbacks are cut after 300 ms and tried twice, with
/// the roles, a receiver, and the callbacks' owner connected.
fn quick_callbacks() -> (Cluster, Receiver, Client) {
    let cluster = Cluster::start(
        "webhook.retry_schedule = '0s,1s'\nwebhook.callback_timeout = 300\nwebhook.poll_interval = 100",
    );
    roles(&cluster);
    let receiver = Receiver::start();
    let admin = cluster.client_as("lms_admin");
    (cluster, receiver, admin)
}

fn outcomes(c: &mut Client, webhook: i64) -> Vec<(String, i32, Option<String>)> {
    c.query(
        "SELECT status, tries, last_error FROM webhook.outcomes WHERE webhook_id = $1 ORDER BY id",
        &[&webhook],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

fn settled(
    c: &mut Client,
    webhook: i64,
    n: usize,
    status: &str,
) -> Vec<(String, i32, Option<String>)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let o = outcomes(c, webhook);
        if o.len() >= n && o.iter().all(|x| x.0 == status) {
            return o;
        }
        assert!(
            Instant::now() < deadline,
            "waiting for {n} outcomes {status}: {o:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_callback_stores_what_the_receiver_answered_exactly_once_as_its_owner() {
    let cluster =
        Cluster::start("webhook.retry_schedule = '0s,1s,1s'\nwebhook.callback_timeout = 500");
    roles(&cluster);
    let receiver = Receiver::start();
    receiver.respond_with(|rec| {
        let user_id = rec.json()["payload"]["user_id"].as_i64().unwrap_or(0);
        Reply {
            body: format!(
                "{{\"crm_id\": \"crm-{user_id}\", \"big\": 123456789012345678901234567890}}"
            ),
            headers: vec![("content-type".into(), "application/json".into())],
            ..Reply::status(200)
        }
    });
    let mut admin = cluster.client_as("lms_admin");
    // The README's example: the CRM's id, from its answer, next to the user
    // the event was about (read from the event, which webhook_admin may).
    admin
        .batch_execute(
            "CREATE FUNCTION crm.store_crm_id(outcome jsonb) RETURNS void LANGUAGE sql AS $$
                 INSERT INTO crm.links (user_id, crm_id)
                 SELECT (e.body #>> '{payload,user_id}')::bigint, outcome #>> '{response_body,crm_id}'
                   FROM webhook.events e
                  WHERE e.id = outcome->>'event_id' AND outcome->>'status' = 'delivered'
                 ON CONFLICT (user_id) DO UPDATE SET calls = crm.links.calls + 1
             $$;",
        )
        .unwrap();
    let id: i64 = admin
        .query_one(
            "SELECT webhook.create_webhook('crm', $1, '{user.created}', outcome_callback => 'crm.store_crm_id')",
            &[&receiver.url("/crm")],
        )
        .unwrap()
        .get(0);
    let owner: String = admin
        .query_one(
            "SELECT outcome_callback_owner::text || ' ' || outcome_callback::text FROM webhook.webhooks WHERE id = $1",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(owner, "lms_admin crm.store_crm_id(jsonb)");

    let mut app = cluster.client_as("lms_app");
    app.batch_execute(
        "INSERT INTO lms.users (first_name, email) SELECT 'U' || i, 'u' || i || '@x.example' FROM generate_series(1, 5) i",
    )
    .unwrap();
    receiver.wait_for(5, Duration::from_secs(10));
    let done = settled(&mut admin, id, 5, "done");
    assert!(done.iter().all(|o| o.1 == 1 && o.2.is_none()), "{done:?}");
    let links: Vec<(i64, String, i32)> = admin
        .query(
            "SELECT l.user_id, l.crm_id, l.calls FROM crm.links l ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let users: Vec<i64> = cluster
        .client()
        .query("SELECT id FROM lms.users ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(links.len(), 5, "{links:?}");
    for ((user, crm, calls), expected) in links.iter().zip(&users) {
        assert_eq!(user, expected);
        assert_eq!(crm, &format!("crm-{expected}"));
        assert_eq!(*calls, 1, "an outcome was handed over twice");
    }
    // The argument: the documented keys, the answer as JSON (numbers exact).
    let argument: Value = serde_json::from_str(
        &admin
            .query_one(
                "SELECT argument::text FROM webhook.outcomes WHERE webhook_id = $1 ORDER BY id LIMIT 1",
                &[&id],
            )
            .unwrap()
            .get::<_, String>(0),
    )
    .unwrap();
    for key in [
        "delivery_id",
        "event_id",
        "topic",
        "webhook_id",
        "webhook",
        "status",
        "attempt",
        "http_status",
        "duration_ms",
        "error",
        "response_headers",
        "response_body",
    ] {
        assert!(argument.get(key).is_some(), "{key} missing: {argument}");
    }
    assert_eq!(argument["topic"], "user.created");
    assert_eq!(argument["http_status"], 200);
    let big: String = admin
        .query_one(
            "SELECT argument #>> '{response_body,big}' FROM webhook.outcomes WHERE webhook_id = $1 LIMIT 1",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(big, "123456789012345678901234567890");

    // A callback that writes where its owner may not: the owner's rights
    // (not a superuser's) make it fail; it is retried, then dead, and the
    // deliveries themselves stay delivered.
    admin
        .batch_execute(
            "CREATE FUNCTION crm.write_locked(outcome jsonb) RETURNS void LANGUAGE sql
                 AS $$ INSERT INTO public.locked VALUES (outcome->>'status') $$;",
        )
        .unwrap_or_else(|e| panic!("{}", db_message(&e)));
    let locked: i64 = admin
        .query_one(
            "SELECT webhook.create_webhook('locked', $1, '{user.created}', outcome_callback => 'crm.write_locked(jsonb)')",
            &[&receiver.url("/locked")],
        )
        .unwrap()
        .get(0);
    let mut listener = cluster.client();
    listener.batch_execute("LISTEN webhook_emitter").unwrap();
    app.batch_execute("INSERT INTO lms.users (first_name, email) VALUES ('L', 'l@x.example')")
        .unwrap();
    let dead = settled(&mut admin, locked, 1, "dead");
    assert_eq!(
        dead[0].1, 3,
        "tried on the schedule's three attempts: {dead:?}"
    );
    let error = dead[0].2.clone().unwrap_or_default();
    assert!(
        error.contains("permission denied for table locked"),
        "{error}"
    );
    let rows: i64 = cluster
        .client()
        .query_one("SELECT count(*) FROM public.locked", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
    let notes = notifications(&mut listener, Duration::from_secs(5), |n| {
        n.iter().any(|v| v["event"] == "outcome_dead")
    });
    let note = notes.iter().find(|v| v["event"] == "outcome_dead").unwrap();
    assert_eq!(note["webhook_id"], locked);
    assert!(note.get("error").is_none(), "PUBLIC may listen: {note}");
    let statuses: Vec<String> = admin
        .query(
            "SELECT status FROM webhook.deliveries WHERE webhook_id = $1",
            &[&locked],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(statuses, ["delivered"]);
}

/// Notifications on `c` until `enough` says so (or the time is up).
fn notifications(
    c: &mut Client,
    within: Duration,
    enough: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while Instant::now() < deadline && !enough(&got) {
        c.batch_execute("SELECT 1").unwrap();
        let mut n = c.notifications();
        let mut it = n.timeout_iter(Duration::from_millis(200));
        while let Ok(Some(note)) = it.next() {
            assert_eq!(note.channel(), "webhook_emitter");
            got.push(serde_json::from_str(note.payload()).unwrap());
        }
    }
    got
}

#[test]
fn a_slow_callback_is_cut_at_its_time_limit_and_holds_back_no_other_webhook() {
    let (cluster, receiver, mut admin) = quick_callbacks();
    admin
        .batch_execute(
            "CREATE FUNCTION crm.slow(outcome jsonb) RETURNS void LANGUAGE sql
                 AS $$ SELECT pg_sleep(30); INSERT INTO crm.links VALUES (0, 'slow') $$;
             CREATE FUNCTION crm.failing(outcome jsonb) RETURNS void LANGUAGE plpgsql
                 AS $$ BEGIN RAISE EXCEPTION 'the CRM sync is broken'; END $$;",
        )
        .unwrap();
    let slow: i64 = admin
        .query_one(
            "SELECT webhook.create_webhook('slow', $1, '{user.created}', outcome_callback => 'crm.slow')",
            &[&receiver.url("/slow")],
        )
        .unwrap()
        .get(0);
    let failing: i64 = admin
        .query_one(
            "SELECT webhook.create_webhook('failing', $1, '{user.created}', outcome_callback => 'crm.failing',
                                           callback_on_failure => true)",
            &[&receiver.url("/failing")],
        )
        .unwrap()
        .get(0);
    admin
        .execute(
            "SELECT webhook.create_webhook('plain', $1, '{group.created}')",
            &[&receiver.url("/plain")],
        )
        .unwrap();
    let mut app = cluster.client_as("lms_app");
    app.batch_execute("INSERT INTO lms.users (first_name, email) VALUES ('S', 's@x.example')")
        .unwrap();
    receiver.wait_for(2, Duration::from_secs(10));
    // While the slow callback keeps being cut off, another webhook's events
    // still go out at once.
    let started = Instant::now();
    app.batch_execute(
        "INSERT INTO lms.groups (name) SELECT 'g' || i FROM generate_series(1, 20) i",
    )
    .unwrap();
    wait_for(Duration::from_secs(10), "20 group.created", || {
        (receiver
            .requests()
            .iter()
            .filter(|r| r.path == "/plain")
            .count()
            >= 20)
            .then_some(())
    });
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    let dead = settled(&mut admin, slow, 1, "dead");
    let error = dead[0].2.clone().unwrap_or_default();
    assert!(
        error.contains("canceling statement due to statement timeout"),
        "{error}"
    );
    assert_eq!(dead[0].1, 2);
    let failed = settled(&mut admin, failing, 1, "dead");
    assert!(
        failed[0]
            .2
            .as_deref()
            .unwrap_or_default()
            .contains("the CRM sync is broken"),
        "{failed:?}"
    );
    let slow_rows: i64 = admin
        .query_one("SELECT count(*) FROM crm.links", &[])
        .unwrap()
        .get(0);
    assert_eq!(slow_rows, 0, "a timed-out callback's writes were kept");
    // The worker logged each failure, and is the same process throughout.
    assert!(cluster.log().contains("the outcome callback of webhook"));
}

#[test]
fn callbacks_are_refused_unless_their_owner_may_run_them_and_is_no_superuser() {
    let cluster = Cluster::start("");
    roles(&cluster);
    let mut su = cluster.client();
    su.batch_execute(
        "CREATE FUNCTION public.su_only(outcome jsonb) RETURNS void LANGUAGE sql AS $$ SELECT $$;
         REVOKE EXECUTE ON FUNCTION public.su_only(jsonb) FROM PUBLIC;
         CREATE FUNCTION public.wrong(outcome text) RETURNS void LANGUAGE sql AS $$ SELECT $$;
         CREATE FUNCTION public.ok(outcome jsonb) RETURNS void LANGUAGE sql AS $$ SELECT $$;
         CREATE FUNCTION public.set_of(outcome jsonb) RETURNS SETOF int LANGUAGE sql AS $$ SELECT 1 $$;",
    )
    .unwrap();
    let mut admin = cluster.client_as("lms_admin");
    let create = |cb: &str| {
        format!("SELECT webhook.create_webhook('w', 'https://x.example/', '{{user.created}}', outcome_callback => '{cb}')")
    };
    let update = |args: &str| {
        format!("SELECT webhook.update_webhook((SELECT id FROM webhook.webhooks), {args})")
    };
    for (cb, message) in [
        ("public.su_only", "outcome_callback: lms_admin, the role it runs as, may not execute public.su_only(jsonb)"),
        ("public.wrong", "outcome_callback: public.wrong(text) must be a function of one jsonb argument"),
        ("ok", "outcome_callback: no function ok (schema-qualified"),
        ("public.nope(jsonb)", "outcome_callback: no function public.nope(jsonb)"),
        ("", "outcome_callback: no function  (schema-qualified"),
        ("public.set_of", "outcome_callback: public.set_of(jsonb) must be a function of one jsonb argument"),
    ] {
        let e = admin.batch_execute(&create(cb)).unwrap_err();
        assert!(db_message(&e).starts_with(message), "{cb}: {}", db_message(&e));
    }
    // A function another admin owns (and could change) is refused.
    su.batch_execute(
        "CREATE SCHEMA other AUTHORIZATION lms_admin2; GRANT USAGE ON SCHEMA other TO lms_admin;",
    )
    .unwrap();
    cluster
        .client_as("lms_admin2")
        .batch_execute(
            "CREATE FUNCTION other.theirs(o jsonb) RETURNS void LANGUAGE sql AS $$ SELECT $$;",
        )
        .unwrap();
    let e = admin.batch_execute(&create("other.theirs")).unwrap_err();
    assert!(
        db_message(&e).contains("belongs to another role"),
        "{}",
        db_message(&e)
    );
    // A superuser's callback would run as a superuser: refused, also as DML.
    let e = su.batch_execute(&create("public.ok")).unwrap_err();
    assert!(
        db_message(&e).contains("a superuser; set it as the role it should run as"),
        "{}",
        db_message(&e)
    );
    admin.batch_execute(&create("public.ok")).unwrap();
    let e = su
        .batch_execute("UPDATE webhook.webhooks SET outcome_callback_owner = 'postgres'")
        .unwrap_err();
    assert!(db_message(&e).contains("a superuser"), "{}", db_message(&e));
    // set and clear in one call; clearing works; PUBLIC cannot read arguments.
    let e = admin
        .batch_execute(&update(
            "outcome_callback => 'public.ok', clear_outcome_callback => true",
        ))
        .unwrap_err();
    assert!(db_message(&e).contains("cannot both set and clear"));
    admin
        .batch_execute(&update("clear_outcome_callback => true"))
        .unwrap();
    let cleared: bool = admin
        .query_one("SELECT outcome_callback IS NULL AND outcome_callback_owner IS NULL FROM webhook.webhooks", &[])
        .unwrap()
        .get(0);
    assert!(cleared);
    let mut app = cluster.client_as("lms_app");
    let e = app
        .batch_execute("SELECT argument FROM webhook.outcomes")
        .unwrap_err();
    assert!(db_message(&e).contains("permission denied"));
    app.batch_execute("SELECT status, tries FROM webhook.outcomes")
        .unwrap();
    for f in [
        "webhook.notify('delivery_dead', '{}')",
        "webhook.notify_dead_deliveries('{1}')",
    ] {
        for c in [&mut admin, &mut app] {
            let e = c.batch_execute(&format!("SELECT {f}")).unwrap_err();
            assert!(db_message(&e).contains("permission denied"), "{f}");
        }
    }
}

#[test]
fn listeners_hear_of_dead_deliveries_and_disabled_webhooks() {
    let cluster = Cluster::start("webhook.retry_schedule = '0s,0s'");
    roles(&cluster);
    let receiver = Receiver::start();
    receiver.respond_with(|_| Reply::status(500));
    let mut admin = cluster.client_as("lms_admin");
    let id: i64 = admin
        .query_one(
            "SELECT webhook.create_webhook('down', $1, '{user.created}')",
            &[&receiver.url("/down")],
        )
        .unwrap()
        .get(0);
    let mut listener = cluster.client_as("lms_app");
    listener.batch_execute("LISTEN webhook_emitter").unwrap();
    let mut app = cluster.client_as("lms_app");
    app.batch_execute("INSERT INTO lms.users (first_name, email) VALUES ('D', 'd@x.example')")
        .unwrap();
    let got = notifications(&mut listener, Duration::from_secs(10), |n| {
        n.iter().any(|v| v["event"] == "delivery_dead")
    });
    let dead = got
        .iter()
        .find(|v| v["event"] == "delivery_dead")
        .expect("delivery_dead");
    assert_eq!(dead["webhook_id"], id);
    assert_eq!(dead["topic"], "user.created");
    assert_eq!(dead["attempts"], 2);
    admin
        .batch_execute(&format!(
            "SELECT webhook.disable_webhook({id}, 'CRM migration')"
        ))
        .unwrap();
    let got = notifications(&mut listener, Duration::from_secs(5), |n| {
        n.iter().any(|v| v["event"] == "webhook_disabled")
    });
    let disabled = got
        .iter()
        .find(|v| v["event"] == "webhook_disabled")
        .expect("webhook_disabled");
    assert_eq!(disabled["webhook_id"], id);
    assert_eq!(disabled["reason"], "CRM migration");
}

#[test]
fn a_callback_runs_as_the_code_that_set_it_and_cannot_outlive_its_limit() {
    let cluster = Cluster::start(
        "webhook.retry_schedule = '0s,1s'\nwebhook.callback_timeout = 300\nwebhook.poll_interval = 100",
    );
    roles(&cluster);
    let receiver = Receiver::start();
    receiver.respond_with(|rec| Reply {
        body: if rec.path == "/nul" {
            r#"{"x": "\u0000"}"#.into()
        } else {
            "ok".into()
        },
        ..Reply::status(200)
    });
    let mut admin = cluster.client_as("lms_admin");
    let mut admin2 = cluster.client_as("lms_admin2");
    admin
        .batch_execute(
            "CREATE TABLE crm.calls (who text, note text);
             GRANT INSERT ON crm.calls TO lms_admin2;
             GRANT USAGE ON SCHEMA crm TO lms_admin2;
             CREATE FUNCTION crm.record(o jsonb) RETURNS void LANGUAGE sql
                 AS $$ INSERT INTO crm.calls VALUES (current_user, o->>'status');
                       SELECT pg_advisory_lock(4242) $$;
             -- An overload someone adds later cannot make the call ambiguous.
             CREATE FUNCTION crm.record(o jsonb, n int DEFAULT 0) RETURNS void LANGUAGE sql AS $$ SELECT $$;
             -- An admin's SECURITY DEFINER function that sets a callback:
             -- whoever runs it, the callback is the admin's.
             CREATE FUNCTION crm.hook_me(webhook bigint) RETURNS void LANGUAGE sql SECURITY DEFINER
                 AS $$ SELECT webhook.update_webhook(webhook, outcome_callback => 'crm.record(jsonb)') $$;
             GRANT EXECUTE ON FUNCTION crm.hook_me(bigint) TO lms_admin2;
             -- Catches its cancel and runs on: for 0.8 s, then for ever.
             CREATE FUNCTION crm.stubborn(o jsonb) RETURNS void LANGUAGE plpgsql AS $$
             DECLARE t0 timestamptz := clock_timestamp(); BEGIN
                 INSERT INTO crm.calls VALUES (current_user, 'stubborn');
                 WHILE clock_timestamp() < t0 + CASE WHEN o->>'webhook' = 'late' THEN interval '0.8 s'
                                                     ELSE interval '1 hour' END LOOP
                     BEGIN PERFORM pg_sleep(0.05); EXCEPTION WHEN query_canceled THEN NULL; END;
                 END LOOP;
             END $$;",
        )
        .unwrap();
    let id: i64 = admin2
        .query_one(
            "SELECT webhook.create_webhook('by-definer', $1, '{user.created}')",
            &[&receiver.url("/a")],
        )
        .unwrap()
        .get(0);
    admin2
        .batch_execute(&format!("SELECT crm.hook_me({id})"))
        .unwrap();
    let owner: String = admin
        .query_one(
            "SELECT outcome_callback_owner::text FROM webhook.webhooks WHERE id = $1",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        owner, "lms_admin",
        "the callback runs as the code that set it"
    );
    // A topic's builder (running for a writer) cannot change webhooks.
    cluster
        .client()
        .batch_execute("GRANT USAGE ON SCHEMA lms TO lms_admin; GRANT SELECT, TRIGGER ON lms.groups TO lms_admin;")
        .unwrap();
    admin
        .batch_execute(&format!(
            "CREATE FUNCTION crm.sneaky_body(k bigint) RETURNS json LANGUAGE plpgsql AS $$ BEGIN
                 PERFORM webhook.update_webhook({id}, url => 'https://evil.example/');
                 RETURN json_build_object('id', k); END $$;
             SELECT webhook.define_topic('group.sneaky', 'lms.groups', 'crm.sneaky_body(bigint)',
                                         operations => '{{insert}}', sample_body => '{{\"id\": 1}}');"
        ))
        .unwrap();
    admin2
        .execute(
            "SELECT webhook.create_webhook('sneaky', $1, '{group.sneaky}')",
            &[&receiver.url("/sneaky")],
        )
        .unwrap();
    cluster
        .client_as("lms_app")
        .batch_execute("INSERT INTO lms.groups (name) VALUES ('g')")
        .unwrap();
    let (url, build_error): (String, Option<String>) = {
        let r = admin
            .query_one(
                "SELECT (SELECT url FROM webhook.webhooks WHERE id = $1),
                        (SELECT build_error FROM webhook.events WHERE topic = 'group.sneaky')",
                &[&id],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(url, receiver.url("/a"));
    assert!(
        build_error
            .as_deref()
            .unwrap_or_default()
            .contains("security-restricted operation"),
        "{build_error:?}"
    );
    for (name, callback) in [
        ("late", "crm.stubborn"),
        ("forever", "crm.stubborn"),
        ("nul", "crm.record(jsonb)"),
    ] {
        admin
            .execute(
                "SELECT webhook.create_webhook($1, $2, '{user.created}', outcome_callback => $3)",
                &[&name, &receiver.url(&format!("/{name}")), &callback],
            )
            .unwrap();
    }
    let before = cluster.worker_pid();
    let mut app = cluster.client_as("lms_app");
    app.batch_execute("INSERT INTO lms.users (first_name, email) VALUES ('A', 'a@x.example')")
        .unwrap();
    let status = |c: &mut Client, name: &str| -> Vec<(String, i32, Option<String>)> {
        c.query(
            "SELECT o.status, o.tries, o.last_error FROM webhook.outcomes o
               JOIN webhook.webhooks w ON w.id = o.webhook_id WHERE w.name = $1",
            &[&name],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
    };
    let final_state = |c: &mut Client, name: &str, want: &str| {
        wait_for(Duration::from_secs(40), &format!("{name} {want}"), || {
            let s = status(c, name);
            (s.len() == 1 && s[0].0 == want).then(|| s[0].clone())
        })
    };
    let done = final_state(&mut admin, "by-definer", "done");
    assert_eq!(done.1, 1);
    let nul = final_state(&mut admin, "nul", "done");
    assert_eq!(
        nul.1, 1,
        "a body jsonb refuses is handed over as a string: {nul:?}"
    );
    let late = final_state(&mut admin, "late", "dead");
    assert!(
        late.2
            .as_deref()
            .unwrap_or_default()
            .contains("after catching its cancel"),
        "{late:?}"
    );
    let forever = final_state(&mut admin, "forever", "dead");
    assert!(
        forever
            .2
            .as_deref()
            .unwrap_or_default()
            .contains("the worker stopped during its last try"),
        "{forever:?}"
    );
    // The calls that ran to the end were the right role's; nothing of a
    // failed or stopped one stayed; no advisory lock stays with the worker.
    let calls: Vec<(String, String)> = admin
        .query("SELECT who, note FROM crm.calls ORDER BY note", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        calls,
        [
            ("lms_admin".to_owned(), "delivered".to_owned()),
            ("lms_admin".to_owned(), "delivered".to_owned())
        ]
    );
    let locks: i64 = cluster
        .client()
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(locks, 0);
    assert_ne!(
        cluster.worker_pid(),
        before,
        "the stubborn callback ended the worker"
    );
    // Delivery goes on after it.
    app.batch_execute("INSERT INTO lms.groups (name) VALUES ('after')")
        .unwrap();
    admin2
        .execute(
            "SELECT webhook.create_webhook('after', $1, '{group.created}')",
            &[&receiver.url("/after")],
        )
        .unwrap();
    app.batch_execute("INSERT INTO lms.groups (name) VALUES ('after 2')")
        .unwrap();
    wait_for(
        Duration::from_secs(10),
        "a delivery after the restarts",
        || {
            receiver
                .requests()
                .iter()
                .any(|r| r.path == "/after")
                .then_some(())
        },
    );
}

/// A callback whose every try crashes the server (here the test kills the
/// worker with SIGKILL as soon as the callback runs) is given up on after
/// its tries, as one that fails: each try is counted, and flushed, before
/// the call. Counted without the flush, a crash restart undid the count
/// and the callback ran again after every restart, for ever.
#[test]
fn a_callback_that_crashes_the_worker_every_time_is_given_up_on() {
    let (cluster, receiver, mut admin) = quick_callbacks();
    admin
        .batch_execute(
            "CREATE FUNCTION crm.crashing(outcome jsonb) RETURNS void LANGUAGE sql
                 AS $$ SELECT pg_sleep(30) $$;",
        )
        .unwrap();
    let webhook: i64 = admin
        .query_one(
            "SELECT webhook.create_webhook('crashing', $1, '{user.created}', outcome_callback => 'crm.crashing')",
            &[&receiver.url("/crashing")],
        )
        .unwrap()
        .get(0);
    // The killer: whenever a callback sleeps in the worker, SIGKILL it (a
    // crash restart of the server).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let kills = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let killer = {
        let (stop, kills, port) = (stop.clone(), kills.clone(), cluster.port);
        std::thread::spawn(move || {
            let conn = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
            let mut c: Option<Client> = None;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if c.is_none() {
                    c = Client::connect(&conn, postgres::NoTls).ok();
                }
                let pid = c.as_mut().and_then(|c| {
                    c.query_opt(
                        "SELECT pid FROM pg_catalog.pg_stat_activity
                          WHERE backend_type = 'webhook_emitter' AND wait_event = 'PgSleep'",
                        &[],
                    )
                    .ok()
                });
                match pid {
                    None => c = None,
                    Some(Some(row)) => {
                        let pid: i32 = row.get(0);
                        let _ = std::process::Command::new("kill")
                            .args(["-9", &pid.to_string()])
                            .status();
                        kills.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        c = None;
                    }
                    Some(None) => {}
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let mut app = cluster.client_as("lms_app");
    app.batch_execute("INSERT INTO lms.users (first_name, email) VALUES ('C', 'c@x.example')")
        .unwrap();
    // Its two tries (the schedule's) each end in a crash; the next take
    // finds that the last one never ended, and gives up.
    let given_up = wait_for(Duration::from_secs(120), "the callback given up on", || {
        let conn = format!(
            "host=127.0.0.1 port={} user=lms_admin dbname=postgres",
            cluster.port
        );
        let mut c = Client::connect(&conn, postgres::NoTls).ok()?;
        let o = c
            .query_opt(
                "SELECT tries, last_error FROM webhook.outcomes WHERE webhook_id = $1 AND status = 'dead'",
                &[&webhook],
            )
            .ok()??;
        Some((
            o.get::<_, i32>(0),
            o.get::<_, Option<String>>(1).unwrap_or_default(),
        ))
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    killer.join().unwrap();
    assert!(
        given_up
            .1
            .contains("the worker stopped during its last try"),
        "{given_up:?}"
    );
    assert_eq!(given_up.0, 3, "two tries, then the take that gave up");
    assert_eq!(
        kills.load(std::sync::atomic::Ordering::Relaxed),
        2,
        "one crash per try: {given_up:?}"
    );
}
