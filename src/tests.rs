// In-database unit tests (`cargo pgrx test`), each in a rolled-back
// transaction. End-to-end behaviour (worker, HTTP) is in tests/e2e.
use pgrx::prelude::*;

const URL: &str = "https://hooks.example.com/lms";

/// Run `sql` in a subtransaction; the error as "SQLSTATE message", or None.
fn try_sql(sql: &str) -> Option<String> {
    let missing = Spi::get_one::<bool>("SELECT to_regprocedure('pg_temp.try_sql(text)') IS NULL").unwrap();
    if missing == Some(true) {
        Spi::run(
            "CREATE FUNCTION pg_temp.try_sql(q text) RETURNS text LANGUAGE plpgsql AS $$
             BEGIN EXECUTE q; RETURN NULL;
             EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ' ' || SQLERRM; END $$",
        )
        .unwrap();
    }
    Spi::get_one_with_args::<String>("SELECT pg_temp.try_sql($1)", &[sql.into()]).unwrap()
}

fn table_fingerprint() -> String {
    Spi::get_one::<String>(
        "SELECT coalesce(md5(string_agg(w::text, '|' ORDER BY id)), '') FROM webhook.webhooks w",
    )
    .unwrap()
    .unwrap_or_default()
}

fn create(name: &str, topics: &str) -> i64 {
    Spi::get_one_with_args::<i64>(
        "SELECT webhook.create_webhook($1, $2, $3::text[])",
        &[name.into(), URL.into(), topics.into()],
    )
    .unwrap()
    .unwrap()
}

#[pg_test]
fn documented_topics_are_definitions_with_samples_and_generated_functions() {
    let documented = Spi::get_one::<i64>("SELECT count(*) FROM webhook.topics WHERE builtin").unwrap();
    assert!(documented.unwrap_or(0) > 0);
    let incomplete = Spi::get_one::<i64>(
        "SELECT count(*) FROM webhook.topics t WHERE builtin
            AND (json_typeof(sample_body) <> 'object'
                 OR to_regprocedure(format('webhook_triggers.%I()', t.trigger_function)) IS NULL
                 OR (t.builder IS NULL) <> (t.timing = 'row'))",
    )
    .unwrap();
    assert_eq!(incomplete, Some(0));
    // BrainCert topics are enveloped, AOM ones flat.
    let mismatched = Spi::get_one::<i64>(
        "SELECT count(*) FROM webhook.topics WHERE builtin AND (source = 'braincert') <> (envelope = 'braincert')",
    )
    .unwrap();
    assert_eq!(mismatched, Some(0));
}

#[pg_test]
fn bad_inputs_are_rejected_naming_the_field_and_change_nothing() {
    create("existing", "{user.created}");
    Spi::run("UPDATE webhook.webhooks SET signing_secret = webhook.generate_signing_secret()").unwrap();
    let before = table_fingerprint();
    let cases: Vec<(String, &str, &str)> = vec![
        (concat!("SELECT webhook.create_webhook(", "'', 'https://x.com/', '{user.created}'", ")").into(), "22023", "name: "),
        (concat!("SELECT webhook.create_webhook(", "'   ', 'https://x.com/', '{user.created}'", ")").into(), "22023", "name: "),
        (concat!("SELECT webhook.create_webhook(", "'existing', 'https://x.com/', '{user.created}'", ")").into(), "23505", "name: "),
        (concat!("SELECT webhook.create_webhook(", "'a', 'not a url', '{user.created}'", ")").into(), "22023", "url: "),
        (concat!("SELECT webhook.create_webhook(", "'a', 'https://', '{user.created}'", ")").into(), "22023", "url: "),
        (concat!("SELECT webhook.create_webhook(", "'a', 'ftp://x.com/', '{user.created}'", ")").into(), "22023", "url: "),
        (concat!("SELECT webhook.create_webhook(", "'a', 'mailto:a@b.com', '{user.created}'", ")").into(), "22023", "url: "),
        (concat!("SELECT webhook.create_webhook(", "'a', 'https://u:p@x.com/', '{user.created}'", ")").into(), "22023", "url: "),
        (concat!("SELECT webhook.create_webhook(", "'a', 'https://user@x.com/', '{user.created}'", ")").into(), "22023", "url: "),
        (concat!("SELECT webhook.create_webhook(", "'a', E'https://x.com/\\n', '{user.created}'", ")").into(), "22023", "url: "),
        (concat!("SELECT webhook.create_webhook(", "'a', 'https://x.com/', '{}'", ")").into(), "22023", "topics: "),
        (concat!("SELECT webhook.create_webhook(", "'a', 'https://x.com/', NULL", ")").into(), "22023", "topics: "),
        (concat!("SELECT webhook.create_webhook(", "'a', 'https://x.com/', '{user.created,user.created}'", ")").into(), "22023", "topics: "),
        (concat!("SELECT webhook.create_webhook(", "'a', 'https://x.com/', '{user.nope}'", ")").into(), "22023", "topics: "),
        (concat!("SELECT webhook.create_webhook(", "'a', 'https://x.com/', '{user.created}', content_type => 'text/plain'", ")").into(), "22023", "content_type: "),
        (concat!("SELECT webhook.create_webhook(", "'a', 'https://x.com/', '{user.created}', auth_username => 'bob'", ")").into(), "22023", "auth_username, auth_password: "),
        (concat!("SELECT webhook.create_webhook(", "'a', 'https://x.com/', '{user.created}', auth_password => 'pw'", ")").into(), "22023", "auth_username, auth_password: "),
        (concat!("SELECT webhook.create_webhook(", "'a', 'https://x.com/', '{user.created}', auth_username => 'a:b', auth_password => 'pw'", ")").into(), "22023", "auth_username: "),
        (concat!("SELECT webhook.create_webhook(", "'a', 'https://x.com/', '{user.created}', headers => '{\"Bad Name\": \"x\"}'", ")").into(), "22023", "headers: "),
        (concat!("SELECT webhook.create_webhook(", "'a', 'https://x.com/', '{user.created}', headers => E'{\"X-A\": \"a\\\\r\\\\nX-B: c\"}'", ")").into(), "22023", "headers: "),
        (concat!("SELECT webhook.create_webhook(", "'a', 'https://x.com/', '{user.created}', headers => '[1]'", ")").into(), "22023", "headers: "),
        (concat!("SELECT webhook.create_webhook(", "'a', 'https://x.com/', '{user.created}', headers => '{\"Content-Type\": \"text/plain\"}'", ")").into(), "22023", "headers: "),
        (concat!("SELECT webhook.create_webhook(", "'a', 'https://x.com/', '{user.created}', signing_secret => 'abc'", ")").into(), "22023", "signing_secret: "),
        (concat!("SELECT webhook.create_webhook(", "'a', 'https://x.com/', '{user.created}', signing_secret => 'whsec_!!!'", ")").into(), "22023", "signing_secret: "),
        (concat!("SELECT webhook.create_webhook(", "'a', 'https://x.com/', '{user.created}', signing_secret => 'whsec_c2hvcnQ='", ")").into(), "22023", "signing_secret: "),
        (concat!("SELECT webhook.create_webhook(", "'a', 'https://x.com/', '{user.created}', signing_secret => webhook.generate_signing_secret(), generate_signing_secret => true", ")").into(), "22023", "signing_secret: "),
        (concat!("SELECT webhook.create_webhook(", "'a', 'https://x.com/', '{user.created}', body_template => '{\"a\": '", ")").into(), "22023", "body_template: "),
        (concat!("SELECT webhook.create_webhook(", "'a', 'https://x.com/', '{user.created}', body_template => '{\"a\": \"{{payload.email\"}'", ")").into(), "22023", "body_template: "),
        (concat!("SELECT webhook.create_webhook(", "'a', 'https://x.com/', '{group.created}', body_template => '{\"a\": \"{{payload.email}}\"}'", ")").into(), "22023", "body_template: "),
        (concat!("SELECT webhook.create_webhook(", "'a', 'https://x.com/', '{user.created}', timeout_ms => 5", ")").into(), "22023", "timeout_ms: "),
        ("INSERT INTO webhook.webhooks (name, url, topics) VALUES ('b', 'https://x.com/', '{}')".into(), "22023", "topics: "),
        ("INSERT INTO webhook.webhooks (name, url, topics) VALUES ('b', 'gopher://x.com/', '{user.created}')".into(), "22023", "url: "),
        ("UPDATE webhook.webhooks SET url = 'https://'".into(), "22023", "url: "),
        ("UPDATE webhook.webhooks SET content_type = 'application/yaml'".into(), "22023", "content_type: "),
        ("UPDATE webhook.webhooks SET signing_secret = 'whsec_'".into(), "22023", "signing_secret: "),
        ("SELECT webhook.update_webhook(-1, name => 'x')".into(), "P0002", "id: "),
        ("SELECT webhook.update_webhook((SELECT min(id) FROM webhook.webhooks), topics => '{}')".into(), "22023", "topics: "),
        ("SELECT webhook.delete_webhook(-1)".into(), "P0002", "id: "),
        ("SELECT webhook.set_tenant_id('')".into(), "22023", "tenant_id: "),
        ("SELECT * FROM webhook.webhooks_for_topic('nope')".into(), "22023", "topic: "),
    ];
    assert!(cases.len() >= 20);
    for (sql, state, prefix) in &cases {
        let err = try_sql(sql).unwrap_or_else(|| panic!("no error for {sql}"));
        let expected = format!("{state} {prefix}");
        assert!(err.starts_with(&expected), "{sql}\n  expected {expected}...\n  got {err}");
    }
    assert_eq!(table_fingerprint(), before, "a rejected input changed webhook.webhooks");
}

#[pg_test]
fn create_update_enable_disable_delete() {
    let id = Spi::get_one::<i64>(
        "SELECT webhook.create_webhook('CRM', 'https://crm.example.com/in', '{user.created,sale.new}',
            content_type => 'application/xml', auth_username => 'u', auth_password => 'p',
            generate_signing_secret => true, headers => '{\"X-Team\": \"lms\"}')",
    )
    .unwrap()
    .unwrap();
    let (ct, secret) = Spi::get_two_with_args::<String, String>(
        "SELECT content_type, signing_secret FROM webhook.webhooks WHERE id = $1",
        &[id.into()],
    )
    .unwrap();
    assert_eq!(ct.as_deref(), Some("application/xml"));
    assert!(secret.unwrap().starts_with("whsec_"));

    Spi::run_with_args("SELECT webhook.update_webhook($1, url => 'https://crm.example.com/v2')", &[id.into()]).unwrap();
    let (url, user) = Spi::get_two_with_args::<String, String>(
        "SELECT url, auth_username FROM webhook.webhooks WHERE id = $1",
        &[id.into()],
    )
    .unwrap();
    assert_eq!(url.as_deref(), Some("https://crm.example.com/v2"));
    assert_eq!(user.as_deref(), Some("u"), "update_webhook changed a setting it was not given");

    Spi::run_with_args("SELECT webhook.update_webhook($1, clear_auth => true)", &[id.into()]).unwrap();
    Spi::run_with_args("SELECT webhook.disable_webhook($1, 'maintenance')", &[id.into()]).unwrap();
    let reason = Spi::get_one_with_args::<String>(
        "SELECT disabled_reason FROM webhook.webhooks WHERE id = $1 AND NOT enabled AND auth_password IS NULL",
        &[id.into()],
    )
    .unwrap();
    assert_eq!(reason.as_deref(), Some("maintenance"));
    Spi::run_with_args("SELECT webhook.enable_webhook($1)", &[id.into()]).unwrap();
    let listed = Spi::get_one::<i64>("SELECT count(*) FROM webhook.webhooks_for_topic('sale.new')").unwrap();
    assert_eq!(listed, Some(1));
    let masked = Spi::get_one_with_args::<String>(
        "SELECT signing_secret FROM webhook.webhook_list WHERE id = $1",
        &[id.into()],
    )
    .unwrap();
    assert_eq!(masked.as_deref(), Some("whsec_********"));
    Spi::run_with_args("SELECT webhook.delete_webhook($1)", &[id.into()]).unwrap();
    assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM webhook.webhooks").unwrap(), Some(0));
}

#[pg_test]
fn enqueue_wraps_braincert_topics_and_queues_the_event_alone() {
    Spi::run("SELECT webhook.set_tenant_id('acme')").unwrap();
    let a = create("a", "{group.created}");
    create("b", "{group.created,account.created}");
    create("c", "{user.created}");
    let id = Spi::get_one::<String>("SELECT webhook.enqueue('group.created', '{\"group_id\": 1}')")
        .unwrap()
        .unwrap();
    assert_eq!(id.len(), 26, "event ids are ULIDs");
    let body = Spi::get_one_with_args::<pgrx::JsonB>(
        "SELECT body::jsonb FROM webhook.events WHERE id = $1",
        &[id.clone().into()],
    )
    .unwrap()
    .unwrap()
    .0;
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["resource"], "group");
    assert_eq!(body["action"], "created");
    assert_eq!(body["tenant_id"], "acme");
    assert_eq!(body["domain_id"], "acme");
    assert!(body["timestamp"].is_i64() && body["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(body["payload"]["group_id"], 1);
    // The writer queues the event alone: its deliveries are the worker's
    // fan-out's (tests/e2e).
    let n = Spi::get_one_with_args::<i64>("SELECT count(*) FROM webhook.deliveries WHERE event_id = $1", &[id.into()]).unwrap();
    assert_eq!(n, Some(0));

    // AOM bodies are flat; nobody subscribed or the switch off: nothing queued.
    let flat_id = Spi::get_one::<String>("SELECT webhook.enqueue('account.created', '{\"id\": 4}')").unwrap();
    let flat = Spi::get_one_with_args::<String>("SELECT body::text FROM webhook.events WHERE id = $1", &[flat_id.into()]).unwrap();
    assert_eq!(flat.as_deref(), Some("{\"id\": 4}"));
    assert_eq!(Spi::get_one::<String>("SELECT webhook.enqueue('course.created', '{}')").unwrap(), None);
    Spi::run_with_args("SELECT webhook.disable_webhook($1)", &[a.into()]).unwrap();
    Spi::run("SELECT webhook.set_enabled(false)").unwrap();
    assert_eq!(Spi::get_one::<bool>("SELECT webhook.topic_wanted('group.created')").unwrap(), Some(false));
    assert_eq!(Spi::get_one::<String>("SELECT webhook.enqueue('group.created', '{}')").unwrap(), None);
    assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM webhook.events").unwrap(), Some(2));
}

#[pg_test]
fn render_applies_content_type_and_template() {
    let id = Spi::get_one::<i64>(
        "SELECT webhook.create_webhook('t', 'https://x.com/', '{group.created}', content_type => 'application/xml',
            body_template => '{\"event\": \"{{$event_id}}\", \"group\": \"{{payload.group_name}}\", \"n\": \"{{payload.group_id}}\"}')",
    )
    .unwrap()
    .unwrap();
    let ev = Spi::get_one::<String>(
        "SELECT webhook.enqueue('group.created', json_build_object('group_id', 7, 'group_name', 'R&D <core>'))",
    )
    .unwrap()
    .unwrap();
    let (ct, body) = Spi::get_two_with_args::<String, String>(
        "SELECT content_type, body FROM webhook.render($1, $2)",
        &[id.into(), ev.clone().into()],
    )
    .unwrap();
    assert_eq!(ct.as_deref(), Some("application/xml"));
    let body = body.unwrap();
    assert!(body.contains("<group>R&amp;D &lt;core&gt;</group>"), "{body}");
    assert!(body.contains("<n type=\"number\">7</n>"), "{body}");
    let back = Spi::get_one_with_args::<pgrx::Json>("SELECT webhook.xml_to_json($1)", &[body.into()])
        .unwrap()
        .unwrap()
        .0;
    assert_eq!(back, serde_json::json!({"event": ev, "group": "R&D <core>", "n": 7}));
    let preview = Spi::get_one::<String>("SELECT body FROM webhook.preview('user.created', body_template => '{\"e\": \"{{payload.email}}\"}')")
        .unwrap()
        .unwrap();
    assert!(preview.starts_with("{\"e\":\""), "{preview}");
}

#[pg_test]
fn secrets_are_hidden_from_ordinary_roles() {
    create("s", "{user.created}");
    Spi::run("UPDATE webhook.webhooks SET auth_username = 'u', auth_password = 'hunter2'").unwrap();
    Spi::run("CREATE ROLE wh_reader NOLOGIN; CREATE ROLE wh_admin NOLOGIN IN ROLE webhook_admin").unwrap();
    assert_eq!(try_sql("SELECT 1"), None);
    Spi::run("SET LOCAL ROLE wh_reader").unwrap();
    let denied = try_sql("SELECT auth_password FROM webhook.webhooks").unwrap();
    assert!(denied.starts_with("42501"), "{denied}");
    assert!(try_sql("SELECT signing_secret FROM webhook.webhooks").unwrap().starts_with("42501"));
    assert!(try_sql("SELECT webhook.create_webhook('x', 'https://x.com/', '{user.created}')").unwrap().starts_with("42501"));
    assert!(try_sql("UPDATE webhook.settings SET enabled = false").unwrap().starts_with("42501"));
    let masked = Spi::get_one::<String>("SELECT auth_password FROM webhook.webhook_list").unwrap();
    assert_eq!(masked.as_deref(), Some("********"));
    assert_eq!(Spi::get_one::<bool>("SELECT count(*) > 0 FROM webhook.topics").unwrap(), Some(true));
    Spi::run("RESET ROLE; SET LOCAL ROLE wh_admin").unwrap();
    assert_eq!(try_sql("SELECT webhook.create_webhook('x', 'https://x.com/', '{user.created}')"), None);
    let pw = Spi::get_one::<String>("SELECT auth_password FROM webhook.webhooks WHERE name = 's'").unwrap();
    assert_eq!(pw.as_deref(), Some("hunter2"));
    Spi::run("RESET ROLE").unwrap();
}

/// The transaction that changes the subscriptions sees its own change at
/// once (the cross-session cache is tested end to end in tests/e2e).
#[pg_test]
fn topic_wanted_follows_this_transactions_own_changes() {
    let wanted = |topic: &str| {
        Spi::get_one_with_args::<bool>("SELECT webhook.topic_wanted($1)", &[topic.into()])
            .unwrap()
            .unwrap()
    };
    assert!(!wanted("user.created"));
    let id = create("crm", "{user.created}");
    assert!(wanted("user.created") && !wanted("sale.new"));
    Spi::run("SELECT webhook.set_enabled(false)").unwrap();
    assert!(!wanted("user.created"), "the global switch is off");
    Spi::run("SELECT webhook.set_enabled(true)").unwrap();
    Spi::run_with_args(
        "SELECT webhook.update_webhook($1, topics => '{sale.new}')",
        &[id.into()],
    )
    .unwrap();
    assert!(!wanted("user.created") && wanted("sale.new"));
    assert_eq!(
        Spi::get_one::<bool>("SELECT webhook.topic_wanted(NULL)").unwrap(),
        None,
        "NULL in, NULL out (STRICT)"
    );
}

/// Why a scan of the queue's tables in a claim plan is not bounded by an
/// index, or None. Bounded: an index scan with an index condition, a
/// bitmap scan built from them, or the ordered walk of the sequence index
/// (one row per sequence, LIMIT 1).
fn unbounded_scan(node: &serde_json::Value) -> Option<String> {
    let relation = node["Relation Name"].as_str().unwrap_or_default();
    let kind = node["Node Type"].as_str().unwrap_or_default();
    let index = node["Index Name"].as_str().unwrap_or_default();
    let children = node["Plans"].as_array().cloned().unwrap_or_default();
    if ["deliveries", "events"].contains(&relation) && kind.ends_with("Scan") {
        let bounded = match kind {
            "Index Scan" | "Index Only Scan" => {
                node.get("Index Cond").is_some() || index == "deliveries_sequence_idx"
            }
            // Its recheck condition is the index conditions it was built from.
            "Bitmap Heap Scan" => node.get("Recheck Cond").is_some(),
            _ => false,
        };
        if !bounded {
            return Some(format!("{kind} on {relation} {index}"));
        }
    }
    children.iter().find_map(unbounded_scan)
}

/// The claim's generic plan reaches the deliveries and events tables only
/// through index conditions, with fresh statistics and with statistics
/// that say the queue is empty (what an autovacuum records while a large
/// enqueue is uncommitted). A plan made on such statistics once walked
/// whole indexes per claimed row: one claim of a million-row queue ran
/// for minutes.
#[pg_test]
fn the_claim_plan_reaches_the_queue_only_through_indexes_whatever_the_statistics() {
    let id = create("plan", "{group.created}");
    // A queue of 100,000 (inserted directly: enqueue would take long).
    Spi::run_with_args(
        "INSERT INTO webhook.events (id, topic, body, tenant_id)
             SELECT 'e' || i, 'group.created', '{}', 'default' FROM generate_series(1, 100000) i;
         INSERT INTO webhook.deliveries (event_id, webhook_id)
             SELECT 'e' || i, $1 FROM generate_series(1, 100000) i",
        &[id.into()],
    )
    .unwrap();
    // The worker's session settings, as the worker plans the claim.
    for (name, value) in crate::worker::settings::session_settings() {
        let (name, value) = (name.to_string_lossy(), value.to_string_lossy());
        Spi::run_with_args(
            "SELECT pg_catalog.set_config($1, $2, true)",
            &[name.as_ref().into(), value.as_ref().into()],
        )
        .unwrap();
    }
    Spi::run("SET LOCAL plan_cache_mode = force_generic_plan").unwrap();
    let plan = || {
        Spi::run(&format!(
            "PREPARE claim_plan(bigint, bigint[], float8, bigint, bigint) AS {}",
            crate::worker::claim::CLAIM_SQL
        ))
        .unwrap();
        let plan = Spi::get_one::<pgrx::Json>("EXPLAIN (FORMAT JSON) EXECUTE claim_plan(1000, '{}', 60, 67108864, 16777216)")
            .unwrap()
            .unwrap();
        Spi::run("DEALLOCATE claim_plan").unwrap();
        plan.0[0]["Plan"].clone()
    };
    Spi::run("ANALYZE webhook.deliveries; ANALYZE webhook.events").unwrap();
    let fresh = plan();
    assert_eq!(unbounded_scan(&fresh), None, "fresh statistics: {fresh:#}");
    Spi::run(
        "UPDATE pg_catalog.pg_class
            SET reltuples = 0, relpages = greatest(pg_catalog.pg_relation_size(oid) / 8192, 1)
          WHERE relnamespace = 'webhook'::regnamespace AND relkind IN ('r', 'i')",
    )
    .unwrap();
    let stale = plan();
    assert_eq!(unbounded_scan(&stale), None, "statistics of an empty queue: {stale:#}");
}

/// The BrainCert envelope is written in Rust (write::enqueue); it must be
/// byte for byte what 0.1.0's `json_build_object` made of the same fields,
/// escapes and timestamp formats included.
#[pg_test]
fn the_braincert_envelope_is_what_json_build_object_made() {
    let cases = [
        ("01J5", Some("course_enrollment"), Some("enrollment"), "acme", "2024-01-26 22:17:01.924567+00"),
        ("x", Some("r\"q"), None, "a \"q\" ü\n\t\u{1}\\ /", "2028-02-29 23:59:59.999999+00"),
        ("y", None, Some("a"), "t", "2000-01-01 00:00:00+00"),
        ("z", Some("r"), Some("a"), "t", "1999-12-31 23:59:59.5+00"),
    ];
    for (id, resource, action, tenant, ts) in cases {
        let payload = "{\"n\" : [1, {\"s\": \"é\"}]}";
        let micros = Spi::get_one_with_args::<i64>(
            "SELECT (extract(epoch FROM $1::timestamptz) * 1000000)::bigint - 946684800000000",
            &[ts.into()],
        )
        .unwrap()
        .unwrap();
        let by_sql = Spi::get_one_with_args::<String>(
            "SELECT json_build_object('id', $1, 'resource', $2, 'action', $3, 'domain_id', $4, 'tenant_id', $4,
                 'created_at', to_char($5::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                 'timestamp', floor(extract(epoch FROM $5::timestamptz))::bigint,
                 'payload', $6::json)::text",
            &[id.into(), resource.into(), action.into(), tenant.into(), ts.into(), payload.into()],
        )
        .unwrap()
        .unwrap();
        let fields = crate::write::enqueue::Envelope {
            resource: resource.map(str::to_owned),
            action: action.map(str::to_owned),
            tenant_first: false,
        };
        let by_rust = crate::write::enqueue::braincert_envelope(id, &fields, tenant, micros, payload);
        assert_eq!(by_rust, by_sql, "{ts}");
    }
}

/// A delivery whose attempts the worker keeps dying in (started, never
/// recorded) is set aside as dead after `POISON_INTERRUPTIONS`, so that no
/// input can keep the server in a crash loop; one interrupted less often
/// is simply due again.
#[pg_test]
fn a_delivery_interrupted_again_and_again_is_set_aside() {
    let id = create("poison", "{group.created}");
    Spi::run_with_args(
        "INSERT INTO webhook.events (id, topic, body, tenant_id) VALUES ('p1', 'group.created', '{}', 'd'), ('p2', 'group.created', '{}', 'd');
         INSERT INTO webhook.deliveries (event_id, webhook_id, status, attempts)
             VALUES ('p1', $1, 'delivering', $2), ('p2', $1, 'delivering', 1)",
        &[id.into(), crate::worker::maintenance::POISON_INTERRUPTIONS.into()],
    )
    .unwrap();
    let released = Spi::connect_mut(crate::worker::maintenance::release_orphans).unwrap();
    assert_eq!(released, 2);
    let outcome = |event: &str| {
        Spi::get_two_with_args::<String, String>(
            "SELECT status, last_error FROM webhook.deliveries WHERE event_id = $1",
            &[event.into()],
        )
        .unwrap()
    };
    let (status, error) = outcome("p1");
    assert_eq!(status.as_deref(), Some("dead"));
    assert!(error.unwrap_or_default().starts_with("set aside"));
    assert_eq!(outcome("p2").0.as_deref(), Some("failed"));
}

// The hourly summary's histograms (src/stats.rs): a percentile is read
// within 10% (plus 0.1 ms), values out of range land in the end buckets, NULLs are left
// out, and a bad q is refused.
#[pg_test]
fn histogram_percentiles_are_within_ten_percent() {
    for exact in [1.0f64, 3.7, 42.0, 250.0, 1234.5, 86_400_000.0] {
        let got = Spi::get_one_with_args::<f64>(
            "SELECT webhook.histogram_percentile(webhook.histogram(ARRAY[$1]), 0.5, NULL)",
            &[exact.into()],
        )
        .unwrap()
        .unwrap();
        // Bucket middles are within 9.05% of (value + 1 ms).
        assert!((got - exact).abs() <= 0.0906 * (exact + 1.0), "{got} for {exact}");
    }
    let buckets = Spi::get_one::<Vec<i32>>(
        "SELECT ARRAY[webhook.histogram_bucket(-5), webhook.histogram_bucket('NaN'),
                      webhook.histogram_bucket('Infinity'), webhook.histogram_bucket(1)]",
    )
    .unwrap()
    .unwrap();
    assert_eq!(buckets, [0, 0, 127, 4]);
    let h = Spi::get_one::<Vec<i64>>("SELECT webhook.histogram(ARRAY[1, NULL, 1, 1e12]::float8[])")
        .unwrap()
        .unwrap();
    assert_eq!((h.len(), h[4], h[127]), (128, 2, 1));
    // The counters' cumulative buckets: a value on a bound counts in it.
    let le = Spi::get_one::<Vec<i64>>(
        "SELECT webhook.histogram_le(ARRAY[0.001, 0.005, 0.02, NULL, 3]::float8[], ARRAY[0.005, 0.01, 1]::float8[])",
    )
    .unwrap()
    .unwrap();
    assert_eq!(le, [2, 2, 3]);
    let none = Spi::get_one::<Vec<i64>>("SELECT webhook.histogram_le(NULL, webhook.latency_buckets())")
        .unwrap()
        .unwrap();
    assert!(none.len() > 1 && none.iter().all(|&n| n == 0));
    let refused = try_sql("SELECT webhook.histogram_le('{1}', array_fill(1::float8, ARRAY[1001]))");
    assert_eq!(
        refused.as_deref(),
        Some("22023 bounds_s: 1001 bounds; at most 1000"),
        "more than 1000 bounds are refused"
    );
    let top = Spi::get_one::<f64>(
        "SELECT webhook.histogram_percentile(webhook.histogram(ARRAY[10, 20, 30, 40, 1000]::float8[]), 1, 1000)",
    )
    .unwrap()
    .unwrap();
    assert!((top - 1000.0).abs() <= 0.0906 * 1001.0, "{top}");
    // Never above the largest value seen (1 ms's bucket middle is 1.18).
    let clamped = Spi::get_one::<f64>(
        "SELECT webhook.histogram_percentile(webhook.histogram(ARRAY[1]::float8[]), 0.5, 1)",
    )
    .unwrap()
    .unwrap();
    assert_eq!(clamped, 1.0);
    let empty = Spi::get_one::<f64>("SELECT webhook.histogram_percentile(webhook.histogram('{}'), 0.5, NULL)")
        .unwrap();
    assert_eq!(empty, None);
    let sum = Spi::get_one::<Vec<i64>>("SELECT webhook.histogram_add('{1,2}', '{1,2,3}')")
        .unwrap()
        .unwrap();
    assert_eq!(sum, [2, 4, 3]);
    let refused = try_sql("SELECT webhook.histogram_percentile('{1}', 1.5, NULL)").unwrap_or_default();
    assert!(refused.starts_with("22023 q: must be between 0 and 1"), "{refused}");
}

/// `enable_seqscan = off` puts a plan's estimated cost far above
/// `jit_above_cost`: a function that sets it (the fan-out) must turn JIT off
/// too, or a superuser's call by hand compiles its plan (over a second for
/// the fan-out's).
#[pg_test]
fn functions_that_refuse_sequential_scans_also_refuse_jit() {
    let with_seqscan_off = Spi::get_one::<i64>(
        "SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'webhook'::regnamespace
            AND 'enable_seqscan=off' = ANY (p.proconfig)",
    )
    .unwrap()
    .unwrap_or(0);
    assert!(with_seqscan_off > 0, "webhook.fan_out sets enable_seqscan = off");
    let without_jit_off = Spi::get_one::<String>(
        "SELECT string_agg(p.oid::regprocedure::text, ', ') FROM pg_proc p
          WHERE p.pronamespace = 'webhook'::regnamespace
            AND 'enable_seqscan=off' = ANY (p.proconfig) AND NOT 'jit=off' = ANY (p.proconfig)",
    )
    .unwrap();
    assert_eq!(without_jit_off, None);
}
