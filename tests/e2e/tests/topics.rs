//! Topics are data: the documented topics are definitions like any other
//! (docs/topics.md is generated from them), an LMS with its own schema
//! rebinds them to its tables, `watch` makes row events of any table, bad
//! definitions are refused, and per-webhook filters decide what is queued.

use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use webhook_emitter_e2e::{
    assert_shape, db_message, fixture, verify_signature, Client, Cluster, Receiver,
};

fn repo_file(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

fn example(topic: &str) -> Value {
    let path = repo_file(&format!("../shared/spec/examples/{topic}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Topic names listed in the spec's tables (`| \`name\` | ...`).
fn spec_topics() -> Vec<String> {
    let spec = std::fs::read_to_string(repo_file("../shared/spec/topics.md")).unwrap();
    let mut names: Vec<String> = spec
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

fn count(c: &mut Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).unwrap().get(0)
}

/// Everything a topic definition changes: the catalog, the generated
/// functions and the triggers calling them.
fn definitions_fingerprint(c: &mut Client) -> String {
    c.query_one(
        "SELECT md5(concat(
             (SELECT string_agg(t::text, '|' ORDER BY topic) FROM webhook.topics t),
             (SELECT string_agg(p.proname || p.prosrc, '|' ORDER BY p.proname) FROM pg_proc p
               WHERE p.pronamespace = 'webhook_triggers'::regnamespace),
             (SELECT string_agg(g.tgrelid::regclass || g.tgname, '|' ORDER BY g.tgrelid::regclass || g.tgname) FROM pg_trigger g
               WHERE g.tgname LIKE 'webhook\\_%')))",
        &[],
    )
    .unwrap()
    .get(0)
}

#[test]
fn the_documented_topics_are_definitions_and_the_reference_is_generated_from_them() {
    let cluster = Cluster::start("");
    let mut c = cluster.client();
    let mut catalog: Vec<String> = c
        .query("SELECT topic FROM webhook.topics WHERE builtin", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    catalog.sort();
    assert_eq!(
        catalog,
        spec_topics(),
        "the catalog is the spec's topic list"
    );
    // Every documented topic has its generated function and one trigger per
    // operation on its table.
    let missing = count(
        &mut c,
        "SELECT count(*) FROM webhook.topics t, unnest(t.operations) op
          WHERE NOT EXISTS (SELECT FROM pg_trigger g
                             WHERE g.tgrelid = t.source_table::regclass
                               AND g.tgname = webhook.topic_trigger_name(t.topic, op)
                               AND g.tgfoid = 'webhook.emit_topic()'::regprocedure
                               AND g.tgnargs = 1)
             OR NOT EXISTS (SELECT FROM pg_proc p
                             WHERE p.proname = t.trigger_function
                               AND p.pronamespace = 'webhook_triggers'::regnamespace)",
    );
    assert_eq!(missing, 0);
    let generated: String = c
        .query_one("SELECT webhook.topic_reference()", &[])
        .unwrap()
        .get(0);
    let doc_path = repo_file("docs/topics.md");
    if std::env::var_os("WEBHOOK_WRITE_TOPICS_DOC").is_some() {
        std::fs::write(&doc_path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&doc_path).unwrap();
    assert!(
        committed == generated,
        "docs/topics.md differs from SELECT webhook.topic_reference(); regenerate it with \
         WEBHOOK_WRITE_TOPICS_DOC=1 cargo test -p webhook_emitter_e2e --test topics"
    );
    // Each documented sample carries the vendor example's key paths.
    let mut problems = Vec::new();
    for row in c
        .query(
            "SELECT topic, sample_body::text FROM webhook.topics WHERE builtin",
            &[],
        )
        .unwrap()
    {
        let topic: String = row.get(0);
        let file = repo_file(&format!("../shared/spec/examples/{topic}.json"));
        if file.exists() {
            let sample: Value = serde_json::from_str(row.get(1)).unwrap();
            assert_shape(&example(&topic), &sample, &topic, &mut problems);
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Moodle's tables as its installer creates them, then the documented
/// topics rebound to them.
fn load_moodle(c: &mut Client) {
    c.batch_execute(&std::fs::read_to_string(fixture("moodle_schema.sql")).unwrap())
        .unwrap();
    c.batch_execute(&std::fs::read_to_string(fixture("moodle.sql")).unwrap())
        .unwrap();
}

#[test]
fn an_lms_with_its_own_schema_gets_the_documented_webhooks() {
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    let mut c = cluster.client();
    load_moodle(&mut c);
    c.execute(
        "SELECT webhook.create_webhook('moodle crm', $1,
             '{user.created,course.created,course.enrollment,course.completed,sale.new}')",
        &[&receiver.url("/moodle")],
    )
    .unwrap();
    // The old lms tables no longer emit the rebound topics.
    let rebound = count(
        &mut c,
        "SELECT count(*) FROM webhook.topics
          WHERE topic IN ('user.created', 'course.created', 'course.enrollment', 'course.completed', 'sale.new')
            AND NOT builtin AND source_table LIKE 'public.mdl\\_%'",
    );
    assert_eq!(rebound, 5);
    c.batch_execute("INSERT INTO lms.users (first_name, email) VALUES ('Old', 'old@example.com')")
        .unwrap();

    // Rolled back: nothing.
    c.batch_execute(
        "BEGIN;
         INSERT INTO public.mdl_user (username, firstname, lastname, email) VALUES ('ghost', 'G', 'H', 'g@example.com');
         ROLLBACK;",
    )
    .unwrap();

    // One transaction (Moodle itself commits these one by one): a category
    // and a course with its context and overview image, a fee enrolment
    // method; a student with profile data and a group, a teacher with a
    // picture; both enrolled and given their roles in the course context;
    // a completion row written at enrolment and completed later; the
    // student's payment of the fee (with the gateway's surcharge).
    c.batch_execute(
        "BEGIN;
         INSERT INTO public.mdl_user_info_field (id, shortname, name, datatype, sortorder)
              VALUES (1, 'school', 'School', 'text', 1), (2, 'major', 'Major', 'text', 2);
         INSERT INTO public.mdl_course_categories (id, name, path, depth) VALUES (3, 'Integrations', '/3', 1);
         INSERT INTO public.mdl_course (id, category, fullname, shortname, summary, summaryformat, timecreated)
              VALUES (909850, 3, 'Introduction to Webhooks', 'introduction-to-webhooks', '<p>A guide.</p>', 1,
                      1707947533);
         INSERT INTO public.mdl_context (id, contextlevel, instanceid, path, depth) VALUES (120, 50, 909850, '/1/120', 2);
         INSERT INTO public.mdl_files (contextid, component, filearea, itemid, filepath, filename, filesize,
                                       pathnamehash, timecreated, timemodified)
              VALUES (120, 'course', 'overviewfiles', 0, '/', '.', 0, 'd1', 1707947533, 1707947533),
                     (120, 'course', 'overviewfiles', 0, '/', 'hooks.png', 2048, 'd2', 1707947533, 1707947533);
         INSERT INTO public.mdl_enrol (id, enrol, courseid, roleid, cost, currency)
              VALUES (1, 'manual', 909850, 5, NULL, NULL), (2, 'fee', 909850, 5, '49.00', 'USD');
         INSERT INTO public.mdl_user (id, auth, confirmed, mnethostid, username, firstname, lastname, email,
                                      picture, description, timecreated)
              VALUES (789012, 'email', 1, 1, 'jdoe', 'John', 'Doe', 'john.doe@example.com', 0, NULL, 1707906600),
                     (890789, 'manual', 1, 1, 'asmith', 'Alex', 'Smith', 'alex@example.com', 4711,
                      'Senior Developer', 1600000000);
         INSERT INTO public.mdl_user_info_data (userid, fieldid, data)
              VALUES (789012, 2, 'Computer Science'), (789012, 1, 'University of BrainCert');
         INSERT INTO public.mdl_groups (id, courseid, name) VALUES (101, 909850, 'Web Development Enthusiasts');
         INSERT INTO public.mdl_groups_members (groupid, userid) VALUES (101, 789012);
         INSERT INTO public.mdl_user_enrolments (id, enrolid, userid, timestart, timecreated)
              VALUES (97472, 2, 789012, 0, 1707950000), (97473, 1, 890789, 1707900000, 1707900000);
         INSERT INTO public.mdl_role_assignments (roleid, contextid, userid)
              VALUES (5, 120, 789012), (3, 120, 890789);
         INSERT INTO public.mdl_course_completions (id, userid, course, timeenrolled)
              VALUES (5, 789012, 909850, 1707950000);
         UPDATE public.mdl_course_completions SET timecompleted = 1707960000 WHERE id = 5;
         INSERT INTO public.mdl_payments (id, component, paymentarea, itemid, userid, amount, currency,
                                          accountid, gateway, timecreated)
              VALUES (1, 'enrol_fee', 'fee', 2, 789012, '50.47', 'USD', 1, 'paypal', 1707949000);
         COMMIT;",
    )
    .unwrap();
    // Two users and two enrolments (the student's and the teacher's), one
    // event for each other topic.
    let got = receiver.wait_for(7, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.count(), 7, "none from lms.users");
    let mut problems = Vec::new();
    for r in &got {
        let topic = r.header("webhook-type").unwrap_or_default().to_owned();
        let body = r.json();
        let payload = &body["payload"];
        assert_shape(&example(&topic), &body, &topic, &mut problems);
        match topic.as_str() {
            "user.created" if payload["user_id"] == 890789 => {
                assert_eq!(
                    payload["avatar_url"],
                    "https://moodle.example.com/user/pix.php/890789/f1.jpg"
                );
                assert_eq!(payload["roles"][0]["role_name"], "Teacher");
            }
            "user.created" => {
                assert_eq!(payload["user_id"], 789012);
                assert_eq!(payload["date_added"], "2024-02-14T10:30:00.000Z");
                assert_eq!(payload["avatar_url"], Value::Null, "picture 0: no avatar");
                assert_eq!(payload["groups"][0]["group_id"], "101");
                assert_eq!(payload["roles"][0]["role_id"], "5");
                assert_eq!(payload["roles"][0]["role_name"], "Student");
                assert_eq!(
                    payload["custom_registration_fields"][1]["field_value"],
                    "Computer Science"
                );
            }
            "course.created" => {
                assert_eq!(payload["payment_type"], "paid");
                assert_eq!(payload["subtitle"], "Integrations");
                assert_eq!(
                    payload["course_card_image_url"],
                    "https://moodle.example.com/pluginfile.php/120/course/overviewfiles/hooks.png"
                );
                assert_eq!(payload["instructors"][0]["first_name"], "Alex");
                assert_eq!(payload["instructors"][0]["bio"], "Senior Developer");
            }
            "course.completed" => {
                assert_eq!(
                    payload["course"]["completion_date"],
                    "2024-02-15T01:20:00.000Z"
                );
                assert_eq!(payload["completion_details"]["certificate_issued"], "no");
            }
            "sale.new" => {
                assert_eq!(payload["order_id"], "1");
                assert_eq!(payload["total_amount"], 49);
                assert_eq!(payload["service_charge"], 1.47);
                assert_eq!(payload["total"], 50.47);
                assert_eq!(payload["items"][0]["name"], "Introduction to Webhooks");
            }
            "course.enrollment" if payload["enrollment_id"] == 97473 => {
                assert_eq!(payload["started_at"], "2024-02-14T08:40:00.000Z");
            }
            "course.enrollment" => {
                assert_eq!(payload["enrollment_id"], 97472);
                assert_eq!(
                    payload["started_at"], payload["activated_at"],
                    "timestart 0: from enrolment on"
                );
            }
            other => panic!("unexpected topic {other}"),
        }
        assert!(body["resource"].is_string(), "{topic} keeps its envelope");
    }
    assert!(problems.is_empty(), "{problems:#?}");

    // Updates that do not complete a course emit nothing, nor does a
    // payment for something other than a course fee; the next completion
    // and the next fee paid do.
    c.batch_execute(
        "UPDATE public.mdl_course_completions SET reaggregate = 1707960100 WHERE id = 5;
         UPDATE public.mdl_course_completions SET timecompleted = 1707960000 WHERE id = 5;
         INSERT INTO public.mdl_course_completions (id, userid, course) VALUES (6, 890789, 909850);
         UPDATE public.mdl_payments SET timemodified = 1707949100;
         INSERT INTO public.mdl_payments (id, component, paymentarea, itemid, userid, amount, currency,
                                          accountid, gateway, timecreated)
              VALUES (2, 'core_badges', 'badge', 7, 789012, '5', 'USD', 1, 'paypal', 1707949200);",
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(receiver.count(), 7);
    c.batch_execute(
        "UPDATE public.mdl_course_completions SET timecompleted = 1707970000 WHERE id = 6;
         INSERT INTO public.mdl_payments (id, component, paymentarea, itemid, userid, amount, currency,
                                          accountid, gateway, timecreated)
              VALUES (3, 'enrol_fee', 'fee', 2, 890789, '49.00', 'USD', 1, 'paypal', 1707949300);",
    )
    .unwrap();
    receiver.wait_for(9, Duration::from_secs(10));
}

/// The SQL block of the README's "Binding the documented topics to your
/// own schema", found by its heading.
fn readme_binding_example() -> String {
    let readme = std::fs::read_to_string(repo_file("README.md")).unwrap();
    let section = readme
        .find("**Binding the documented topics to your own schema.**")
        .expect("the README section");
    let rest = &readme[section..];
    let start = rest.find("```sql\n").expect("its SQL block") + "```sql\n".len();
    let len = rest[start..].find("```").expect("the end of its SQL block");
    rest[start..start + len].to_owned()
}

#[test]
fn the_readme_binding_example_runs_as_written_on_moodle_tables() {
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    let mut c = cluster.client();
    c.batch_execute(&std::fs::read_to_string(fixture("moodle_schema.sql")).unwrap())
        .unwrap();
    let example_sql = readme_binding_example();
    if let Err(e) = c.batch_execute(&example_sql) {
        panic!("the README example fails: {}", db_message(&e));
    }
    c.execute(
        "SELECT webhook.create_webhook('moodle crm', $1, '{user.created,sale.new}')",
        &[&receiver.url("/moodle")],
    )
    .unwrap();

    // An ordinary sign-up, as Moodle writes it: the user's row first, its
    // context and profile data afterwards, each committed on its own.
    c.batch_execute(
        "INSERT INTO public.mdl_user (auth, confirmed, mnethostid, username, password, firstname, lastname,
                                      email, timecreated, timemodified)
              VALUES ('email', 1, 1, 'jdoe', '$2y$10$x', 'John', 'Doe', 'john.doe@example.com',
                      1707906600, 1707906600)",
    )
    .unwrap();
    c.batch_execute(
        "INSERT INTO public.mdl_context (contextlevel, instanceid, depth)
              SELECT 30, id, 2 FROM public.mdl_user WHERE username = 'jdoe'",
    )
    .unwrap();
    c.batch_execute(
        "INSERT INTO public.mdl_user_info_field (shortname, name, datatype) VALUES ('school', 'School', 'text');
         INSERT INTO public.mdl_user_info_data (userid, fieldid, data)
              SELECT u.id, f.id, 'University of BrainCert' FROM public.mdl_user u, public.mdl_user_info_field f",
    )
    .unwrap();
    let got = receiver.wait_for(1, Duration::from_secs(20));
    assert_eq!(got[0].header("webhook-type"), Some("user.created"));
    let body = got[0].json();
    let mut problems = Vec::new();
    assert_shape(
        &example("user.created"),
        &body,
        "user.created",
        &mut problems,
    );
    assert!(problems.is_empty(), "{problems:#?}");
    let payload = &body["payload"];
    assert_eq!(payload["name"], "John Doe");
    assert_eq!(payload["date_added"], "2024-02-14T10:30:00.000Z");
    assert_eq!(payload["avatar_url"], Value::Null, "no picture yet");
    assert_eq!(payload["roles"], serde_json::json!([]));
    assert_eq!(
        payload["custom_registration_fields"],
        serde_json::json!([]),
        "written after the user's row"
    );
    assert_eq!(body["resource"], "user", "the documented envelope");

    // The picture is uploaded later (an update: no event). A course fee
    // paid through PayPal is a sale.
    c.batch_execute(
        "UPDATE public.mdl_user SET picture = 17 WHERE username = 'jdoe';
         INSERT INTO public.mdl_course (id, fullname, shortname, timecreated)
              VALUES (2, 'Introduction to Webhooks', 'webhooks', 1707900000);
         INSERT INTO public.mdl_enrol (id, enrol, courseid, cost, currency) VALUES (1, 'fee', 2, '49.00', 'USD');
         INSERT INTO public.mdl_payments (component, paymentarea, itemid, userid, amount, currency, accountid,
                                          gateway, timecreated)
              SELECT 'enrol_fee', 'fee', 1, id, '49.00', 'USD', 1, 'paypal', 1707949000 FROM public.mdl_user;",
    )
    .unwrap();
    let got = receiver.wait_for(2, Duration::from_secs(20));
    assert_eq!(got[1].header("webhook-type"), Some("sale.new"));
    let body = got[1].json();
    assert_shape(&example("sale.new"), &body, "sale.new", &mut problems);
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(body["payload"]["total"], 49.0);
    assert_eq!(body["payload"]["user"]["first_name"], "John");
}

#[test]
fn watch_turns_any_table_into_row_events() {
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    let mut c = cluster.client();
    c.batch_execute(
        "CREATE TABLE public.invoices (
             id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             number text NOT NULL,
             amount numeric(10, 2) NOT NULL,
             status text NOT NULL DEFAULT 'open',
             password_hash text);",
    )
    .unwrap();
    let topics: Vec<String> = c
        .query(
            "SELECT webhook.watch('public.invoices', exclude_columns => '{password_hash}')",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        topics,
        [
            "public.invoices.insert",
            "public.invoices.update",
            "public.invoices.delete"
        ]
    );
    c.execute(
        "SELECT webhook.create_webhook('billing', $1,
             '{public.invoices.insert,public.invoices.update,public.invoices.delete}',
             generate_signing_secret => true)",
        &[&receiver.url("/json")],
    )
    .unwrap();
    let secret: String = c
        .query_one(
            "SELECT signing_secret FROM webhook.webhooks WHERE name = 'billing'",
            &[],
        )
        .unwrap()
        .get(0);
    c.execute(
        "SELECT webhook.create_webhook('billing xml', $1, '{public.invoices.update}', content_type => 'application/xml')",
        &[&receiver.url("/xml")],
    )
    .unwrap();
    c.batch_execute(
        "INSERT INTO invoices (number, amount, password_hash) VALUES ('INV-1', 99.50, 'secret-hash-1');
         UPDATE invoices SET amount = 99.50;                              -- changes nothing
         UPDATE invoices SET password_hash = 'secret-hash-2';             -- only an excluded column
         UPDATE invoices SET status = 'paid', amount = 100;",
    )
    .unwrap();
    let mut tx = c.transaction().unwrap();
    tx.batch_execute("UPDATE invoices SET status = 'void'")
        .unwrap();
    tx.rollback().unwrap();
    c.batch_execute("DELETE FROM invoices").unwrap();
    let got = receiver.wait_for(4, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.count(), 4, "insert, update (JSON and XML), delete");
    for r in &got {
        assert!(
            !r.body_text().contains("secret-hash"),
            "excluded columns never leave the database"
        );
    }
    let json: Vec<_> = got.iter().filter(|r| r.path == "/json").collect();
    assert_eq!(json.len(), 3);
    for r in &json {
        assert!(verify_signature(&secret, r), "signed like every topic");
    }
    let by_operation = |op: &str| {
        json.iter()
            .map(|r| r.json())
            .find(|b| b["operation"] == op)
            .unwrap_or_else(|| panic!("no {op} event"))
    };
    let insert = by_operation("insert");
    assert_eq!(insert["operation"], "insert");
    assert_eq!(insert["schema"], "public");
    assert_eq!(insert["table"], "invoices");
    assert_eq!(insert["row"]["number"], "INV-1");
    assert_eq!(insert["row"]["amount"], 99.5);
    assert!(insert["old_row"].is_null());
    assert!(insert["row"].get("password_hash").is_none());
    let update = by_operation("update");
    assert_eq!(
        update["changed_columns"],
        serde_json::json!(["amount", "status"])
    );
    assert_eq!(update["old_row"]["status"], "open");
    assert_eq!(update["row"]["status"], "paid");
    let delete = by_operation("delete");
    assert!(delete["row"].is_null());
    assert_eq!(delete["old_row"]["status"], "paid");
    let xml = got.iter().find(|r| r.path == "/xml").unwrap();
    assert_eq!(xml.header("content-type"), Some("application/xml"));
    assert!(
        xml.body_text().contains("<status>paid</status>"),
        "{}",
        xml.body_text()
    );

    // A filter on a row event: only paid invoices.
    c.batch_execute(
        "SELECT webhook.update_webhook(id, topics => '{public.invoices.insert}', filter => '{\"row\": {\"status\": \"paid\"}}')
           FROM webhook.webhooks WHERE name = 'billing';
         INSERT INTO invoices (number, amount) VALUES ('INV-2', 5);
         INSERT INTO invoices (number, amount, status) VALUES ('INV-3', 7, 'paid');",
    )
    .unwrap();
    let got = receiver.wait_for(5, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.count(), 5);
    assert_eq!(got[4].json()["row"]["number"], "INV-3");

    // unwatch is refused while a webhook subscribes, then drops it all.
    let err = c
        .query("SELECT webhook.unwatch('public.invoices')", &[])
        .unwrap_err();
    assert!(
        db_message(&err).contains("subscribed by webhook 'billing'"),
        "{}",
        db_message(&err)
    );
    c.batch_execute(
        "SELECT webhook.delete_webhook(id) FROM webhook.webhooks;
         SELECT webhook.unwatch('public.invoices');",
    )
    .unwrap();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.invoices'::regclass"
        ),
        0
    );
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM pg_proc WHERE pronamespace = 'webhook_triggers'::regnamespace AND proname LIKE 'public.invoices%'"),
        0
    );
}

#[test]
fn bad_definitions_are_refused_naming_the_field_and_change_nothing() {
    let cluster = Cluster::start("");
    let mut c = cluster.client();
    c.batch_execute(
        "CREATE TABLE public.notes (id integer PRIMARY KEY, body text, status text);
         CREATE TABLE public.keyless (body text);
         CREATE TABLE public.pair (a int, b int, PRIMARY KEY (a, b));
         CREATE VIEW public.notes_view AS SELECT * FROM public.notes;
         CREATE FUNCTION public.note_body(integer) RETURNS json LANGUAGE sql RETURN json_build_object('id', $1);
         CREATE FUNCTION public.note_text(integer) RETURNS text LANGUAGE sql RETURN $1::text;
         CREATE FUNCTION public.note_two(integer, integer) RETURNS json LANGUAGE sql RETURN '{}'::json;
         CREATE FUNCTION public.note_uuid(uuid) RETURNS json LANGUAGE sql RETURN '{}'::json;
         CREATE ROLE app LOGIN;",
    )
    .unwrap();
    let before = definitions_fingerprint(&mut c);
    let sample = "sample_body => '{\"id\": 1}'";
    let cases = [
        (format!("'note.created', 'public.nope', 'public.note_body(integer)', {sample}"), "source_table: table 'public.nope' does not exist"),
        (format!("'note.created', 'public.notes_view', 'public.note_body(integer)', {sample}"), "source_table: public.notes_view is not a table"),
        (format!("'note.created', 'public.keyless', 'public.note_body(integer)', {sample}"), "source_table: public.keyless has no primary key"),
        (format!("'note.created', 'public.pair', 'public.note_body(integer)', {sample}"), "source_table: public.pair has a composite primary key (a, b)"),
        (format!("'note.created', 'public.notes', 'public.nope(integer)', {sample}"), "builder: function 'public.nope(integer)' does not exist"),
        (format!("'note.created', 'public.notes', 'public.note_text(integer)', {sample}"), "builder: public.note_text(integer) returns text"),
        (format!("'note.created', 'public.notes', 'public.note_two(integer, integer)', {sample}"), "builder: public.note_two(integer,integer) must be a function of one argument"),
        (format!("'note.created', 'public.notes', 'public.note_uuid(uuid)', {sample}"), "builder: public.note_uuid(uuid) takes uuid, but the key of public.notes (id) is integer"),
        (format!("'note.created', 'public.notes', 'public.note_body(integer)', operations => '{{insert,upsert}}', {sample}"), "operations: 'upsert' is not an operation"),
        (format!("'note.created', 'public.notes', 'public.note_body(integer)', operations => '{{insert,delete}}', {sample}"), "operations: a deleted row cannot be read at commit"),
        (format!("'note.created', 'public.notes', 'public.note_body(integer)', columns => '{{status}}', {sample}"), "columns: names the columns whose change fires an update"),
        (format!("'note.created', 'public.notes', 'public.note_body(integer)', operations => '{{update}}', columns => '{{nope}}', {sample}"), "columns: 'nope' is not a column of public.notes"),
        (format!("'note.created', 'public.notes', 'public.note_body(integer)', condition => 'NEW.nope = 1', {sample}"), "condition: column new.nope does not exist"),
        (format!("'note.created', 'public.notes', 'public.note_body(integer)', condition => 'OLD.status = ''x''', {sample}"), "condition: missing FROM-clause entry for table \"old\" (on insert)"),
        (format!("'note.created', 'public.notes', 'public.note_body(integer)', timing => 'later', {sample}"), "timing: 'later' is not supported"),
        ("'note.created', 'public.notes', 'public.note_body(integer)'".to_owned(), "sample_body: required"),
        (format!("'user.created', 'public.notes', 'public.note_body(integer)', {sample}"), "topic: 'user.created' is already defined"),
        (format!("'bad topic!', 'public.notes', 'public.note_body(integer)', {sample}"), "topic: 'bad topic!' is not a topic name"),
        (format!("'note.created', 'public.notes', 'public.note_body(integer)', resource => 'note', {sample}"), "resource, action: the braincert envelope needs both"),
    ];
    for (args, expected) in &cases {
        let err = c
            .query(&format!("SELECT webhook.define_topic({args})"), &[])
            .expect_err(expected);
        let msg = db_message(&err);
        assert!(msg.contains(expected), "define_topic({args}): {msg}");
    }
    for (sql, expected) in [
        (
            "SELECT webhook.drop_topic('user.created')",
            "topic: 'user.created' is a documented LMS topic",
        ),
        (
            "SELECT webhook.drop_topic('nope')",
            "topic: 'nope' is not defined",
        ),
        (
            "SELECT webhook.watch('public.nope')",
            "source_table: table 'public.nope' does not exist",
        ),
        (
            "SELECT webhook.watch('public.notes', exclude_columns => '{nope}')",
            "exclude_columns: 'nope' is not a column of public.notes",
        ),
        (
            "SELECT webhook.unwatch('public.notes')",
            "source_table: public.notes is not watched",
        ),
    ] {
        let msg = db_message(&c.query(sql, &[]).unwrap_err());
        assert!(msg.contains(expected), "{sql}: {msg}");
    }
    assert_eq!(definitions_fingerprint(&mut c), before, "nothing changed");
    // Only webhook_admin defines topics.
    let mut app = cluster.client_as("app");
    let msg = db_message(
        &app.query(
            &format!("SELECT webhook.define_topic('note.created', 'public.notes', 'public.note_body(integer)', {sample})"),
            &[],
        )
        .unwrap_err(),
    );
    assert!(msg.contains("permission denied"), "{msg}");

    // A good definition works, fires, and drops cleanly.
    c.batch_execute(&format!(
        "SELECT webhook.define_topic('note.created', 'public.notes', 'public.note_body(integer)', {sample});"
    ))
    .unwrap();
    let receiver = Receiver::start();
    c.execute(
        "SELECT webhook.create_webhook('notes', $1, '{note.created}')",
        &[&receiver.url("/")],
    )
    .unwrap();
    c.batch_execute("INSERT INTO notes VALUES (7, 'hi', 'new')")
        .unwrap();
    let got = receiver.wait_for(1, Duration::from_secs(10));
    assert_eq!(got[0].json(), serde_json::json!({"id": 7}));
    let msg = db_message(
        &c.query("SELECT webhook.drop_topic('note.created')", &[])
            .unwrap_err(),
    );
    assert!(msg.contains("subscribed by webhook 'notes'"), "{msg}");
    c.batch_execute(
        "SELECT webhook.delete_webhook(id) FROM webhook.webhooks;
         SELECT webhook.drop_topic('note.created');",
    )
    .unwrap();
    assert_eq!(
        definitions_fingerprint(&mut c),
        before,
        "dropped without a trace"
    );
}

#[test]
fn filters_queue_only_matching_events_and_are_checked_against_the_samples() {
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    let mut c = cluster.client();
    c.execute(
        "SELECT webhook.create_webhook('paid courses', $1, '{course.created}',
             filter => '{\"payload\": {\"payment_type\": \"paid\"}}')",
        &[&receiver.url("/paid")],
    )
    .unwrap();
    c.execute(
        "SELECT webhook.create_webhook('all courses', $1, '{course.created}')",
        &[&receiver.url("/all")],
    )
    .unwrap();
    c.batch_execute(
        "INSERT INTO lms.courses (name, slug, payment_type) VALUES ('Free one', 'free-one', 'free');
         INSERT INTO lms.courses (name, slug, payment_type) VALUES ('Paid one', 'paid-one', 'paid');",
    )
    .unwrap();
    let got = receiver.wait_for(3, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.count(), 3);
    let paid: Vec<_> = got.iter().filter(|r| r.path == "/paid").collect();
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0].json()["payload"]["name"], "Paid one");
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM webhook.events"),
        2,
        "an event nobody's filter matches is not queued twice"
    );

    let before = count(
        &mut c,
        "SELECT count(*) FROM webhook.webhooks WHERE filter IS NOT NULL",
    );
    for (filter, topics, expected) in [
        (
            "'[1]'",
            "'{course.created}'",
            "filter: must be a non-empty JSON object",
        ),
        (
            "'{}'",
            "'{course.created}'",
            "filter: must be a non-empty JSON object",
        ),
        (
            "'{\"payload\": {\"paymnet_type\": \"paid\"}}'",
            "'{course.created}'",
            "filter: payload.paymnet_type is not in the body of course.created",
        ),
        (
            "'{\"payload\": {\"payment_type\": \"paid\"}}'",
            "'{course.created,user.created}'",
            "filter: payload.payment_type is not in the body of user.created",
        ),
    ] {
        let sql = format!("SELECT webhook.create_webhook('bad', 'https://x.example.com/', {topics}, filter => {filter})");
        let msg = db_message(&c.query(&sql, &[]).unwrap_err());
        assert!(msg.contains(expected), "{sql}: {msg}");
    }
    let msg = db_message(
        &c.query(
            "SELECT webhook.update_webhook(id, topics => '{course.created,user.created}') FROM webhook.webhooks WHERE name = 'paid courses'",
            &[],
        )
        .unwrap_err(),
    );
    assert!(
        msg.contains("filter: payload.payment_type is not in the body of user.created"),
        "{msg}"
    );
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM webhook.webhooks WHERE filter IS NOT NULL"
        ),
        before
    );
    c.batch_execute(
        "SELECT webhook.update_webhook(id, clear_filter => true) FROM webhook.webhooks WHERE name = 'paid courses'",
    )
    .unwrap();
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM webhook.webhooks WHERE filter IS NOT NULL"
        ),
        0
    );
}

#[test]
fn defined_topics_survive_dump_and_restore() {
    let cluster = Cluster::start_bare("");
    let receiver = Receiver::start();
    let mut admin = cluster.client();
    admin.batch_execute("CREATE DATABASE school").unwrap();
    let mut c = cluster.client_db("school");
    c.batch_execute("CREATE EXTENSION webhook_emitter").unwrap();
    load_moodle(&mut c);
    c.batch_execute(
        "CREATE TABLE public.invoices (id int PRIMARY KEY, status text);
         SELECT webhook.watch('public.invoices', operations => '{insert}');",
    )
    .unwrap();
    let before = definitions_fingerprint(&mut c);
    let dump = cluster.dir.join("school.dump");
    let dump = dump.to_str().unwrap();
    cluster.run("pg_dump", &["-Fc", "-d", "school", "-f", dump]);
    admin.batch_execute("CREATE DATABASE restored").unwrap();
    // pg_restore fails (non-zero exit) on any error.
    cluster.run("pg_restore", &["--exit-on-error", "-d", "restored", dump]);
    let mut r = cluster.client_db("restored");
    assert_eq!(
        definitions_fingerprint(&mut r),
        before,
        "the same definitions, functions and triggers"
    );
    r.execute(
        "SELECT webhook.create_webhook('after restore', $1, '{user.created,public.invoices.insert}')",
        &[&receiver.url("/")],
    )
    .unwrap();
    r.batch_execute(
        "INSERT INTO public.mdl_user (username, firstname, lastname, email) VALUES ('x', 'Xa', 'Yu', 'x@example.com');
         INSERT INTO invoices VALUES (1, 'open');",
    )
    .unwrap();
    let got = receiver.wait_for(2, Duration::from_secs(20));
    let mut types: Vec<_> = got
        .iter()
        .map(|r| r.header("webhook-type").unwrap_or_default().to_owned())
        .collect();
    types.sort();
    assert_eq!(types, ["public.invoices.insert", "user.created"]);
}

/// Whether a topic is wanted is cached in each backend: a long-lived
/// session (an LMS's connection pool) must see every committed change to
/// the subscriptions or the switch at its next write, and its own
/// uncommitted change only inside its transaction.
#[test]
fn a_long_lived_session_sees_subscription_changes_at_its_next_write() {
    let cluster = Cluster::start("");
    let mut app = cluster.client();
    let mut admin = cluster.client();
    let mut signups = 0;
    let mut sign_up = |c: &mut Client| {
        signups += 1;
        c.execute(
            "INSERT INTO lms.users (first_name, last_name, email) VALUES ('Ada', 'L', $1)",
            &[&format!("ada{signups}@example.com")],
        )
        .unwrap();
    };
    let queued = |c: &mut Client| {
        count(
            c,
            "SELECT count(*) FROM webhook.events WHERE topic = 'user.created'",
        )
    };

    sign_up(&mut app);
    assert_eq!(queued(&mut admin), 0, "nobody subscribes yet");

    let id: i64 = admin
        .query_one(
            "SELECT webhook.create_webhook('crm', 'http://127.0.0.1:9/hook', '{user.created}')",
            &[],
        )
        .unwrap()
        .get(0);
    sign_up(&mut app);
    assert_eq!(
        queued(&mut admin),
        1,
        "a webhook created in another session counts at once"
    );

    // The session's own uncommitted delete counts inside its transaction;
    // rolled back, the webhook counts again.
    app.batch_execute("BEGIN; DELETE FROM webhook.webhooks")
        .unwrap();
    sign_up(&mut app);
    app.batch_execute("ROLLBACK").unwrap();
    sign_up(&mut app);
    assert_eq!(
        queued(&mut admin),
        2,
        "own delete: nothing; after its rollback: queued"
    );

    admin
        .batch_execute("SELECT webhook.set_enabled(false)")
        .unwrap();
    sign_up(&mut app);
    assert_eq!(queued(&mut admin), 2, "the global switch is off");
    admin
        .batch_execute("SELECT webhook.set_enabled(true)")
        .unwrap();
    sign_up(&mut app);
    assert_eq!(queued(&mut admin), 3, "the switch is back on");

    admin
        .execute(
            "SELECT webhook.update_webhook($1, topics => '{sale.new}')",
            &[&id],
        )
        .unwrap();
    sign_up(&mut app);
    assert_eq!(queued(&mut admin), 3, "the webhook no longer subscribes");
    admin
        .execute(
            "SELECT webhook.update_webhook($1, topics => '{user.created,sale.new}')",
            &[&id],
        )
        .unwrap();
    // A transaction that started before the change still sees it at its
    // next write (the cache is reloaded with a new snapshot; the queueing
    // itself follows the transaction's isolation level).
    app.batch_execute("BEGIN").unwrap();
    sign_up(&mut app);
    app.batch_execute("COMMIT").unwrap();
    assert_eq!(queued(&mut admin), 4, "subscribed again");

    admin.batch_execute("DELETE FROM webhook.webhooks").unwrap();
    sign_up(&mut app);
    assert_eq!(queued(&mut admin), 4, "deleted");
}

/// `webhook.enqueue` caches the switch, the tenant id and each topic's
/// envelope per backend, under the same generation as the subscriptions:
/// a long-lived session queues with what another session committed, and
/// with its own uncommitted change only inside its transaction.
#[test]
fn a_long_lived_session_queues_with_the_tenant_id_and_envelope_committed_elsewhere() {
    let cluster = Cluster::start("");
    let mut app = cluster.client();
    let mut admin = cluster.client();
    admin
        .batch_execute(
            "CREATE TABLE public.notes (id integer PRIMARY KEY, body text);
             CREATE FUNCTION public.note_body(integer) RETURNS json LANGUAGE sql RETURN json_build_object('id', $1);
             SELECT webhook.define_topic('note.created', 'public.notes', 'public.note_body(integer)',
                 envelope => 'braincert', resource => 'note', action => 'created',
                 sample_body => '{\"id\": \"x\", \"resource\": \"note\", \"action\": \"created\", \"payload\": {\"id\": 1}}');
             SELECT webhook.create_webhook('notes', 'http://127.0.0.1:9/hook', '{note.created}');
             SELECT webhook.set_tenant_id('school-a');",
        )
        .unwrap();
    let mut notes = 0;
    // Writes a note in `c`; returns (tenant_id column, envelope fields) of its event.
    let mut write_note = |c: &mut Client| {
        notes += 1;
        c.execute("INSERT INTO public.notes VALUES ($1, 'hi')", &[&notes])
            .unwrap();
        let row = c
            .query_one(
                "SELECT e.tenant_id, e.body->>'tenant_id', e.body->>'domain_id', e.body->>'action'
                   FROM webhook.events e WHERE e.body->'payload'->>'id' = $1::text",
                &[&notes.to_string()],
            )
            .unwrap();
        let (column, tenant, domain, action): (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        assert_eq!(
            (&column, &domain),
            (&tenant, &tenant),
            "one tenant id per event"
        );
        (tenant, action)
    };
    let pair = |t: &str, a: &str| (t.to_owned(), a.to_owned());

    assert_eq!(write_note(&mut app), pair("school-a", "created"));
    admin
        .batch_execute("SELECT webhook.set_tenant_id('school-b')")
        .unwrap();
    assert_eq!(
        write_note(&mut app),
        pair("school-b", "created"),
        "a tenant id committed elsewhere counts at the next write"
    );
    admin
        .batch_execute(
            "SELECT webhook.define_topic('note.created', 'public.notes', 'public.note_body(integer)',
                 envelope => 'braincert', resource => 'note', action => 'posted', replace => true)",
        )
        .unwrap();
    assert_eq!(
        write_note(&mut app),
        pair("school-b", "posted"),
        "so does a redefined envelope"
    );

    // The session's own change counts inside its transaction only.
    // (SET CONSTRAINTS ... IMMEDIATE: the event is queued by the statement,
    // not at commit, so that it can be read before the rollback.)
    app.batch_execute(
        "BEGIN; SET CONSTRAINTS ALL IMMEDIATE; SELECT webhook.set_tenant_id('school-c')",
    )
    .unwrap();
    assert_eq!(write_note(&mut app), pair("school-c", "posted"));
    app.batch_execute("ROLLBACK").unwrap();
    assert_eq!(
        write_note(&mut app),
        pair("school-b", "posted"),
        "rolled back"
    );

    // The switch: off queues nothing, even for a session that cached it on.
    admin
        .batch_execute("SELECT webhook.set_enabled(false)")
        .unwrap();
    app.execute("INSERT INTO public.notes VALUES (100, 'off')", &[])
        .unwrap();
    assert_eq!(
        count(
            &mut admin,
            "SELECT count(*) FROM webhook.events WHERE body->'payload'->>'id' = '100'"
        ),
        0
    );
    let queued: Option<String> = app
        .query_one(
            "SELECT webhook.enqueue('note.created', '{\"id\": 101}')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        queued, None,
        "enqueue itself queues nothing with the switch off"
    );
}

/// A webhook whose row the worker holds is deleted later, by
/// the worker (`delete_webhook` marks it); meanwhile it no longer keeps its
/// topic from being dropped.
#[test]
fn a_topic_can_be_dropped_while_its_deleted_webhook_waits_for_removal() {
    let cluster = Cluster::start("webhook.database = 'no such database'");
    let mut c = cluster.client();
    c.batch_execute(
        "CREATE TABLE public.notes (id integer PRIMARY KEY, body text);
         CREATE FUNCTION public.note_body(integer) RETURNS json LANGUAGE sql RETURN json_build_object('id', $1);
         SELECT webhook.define_topic('note.created', 'public.notes', 'public.note_body(integer)',
                                     sample_body => '{\"id\": 1}');
         SELECT webhook.create_webhook('notes', 'https://example.com/notes', '{note.created}');",
    )
    .unwrap();
    // Another session holds the row as the worker's fan-out does (KEY SHARE).
    let mut writer = cluster.client();
    writer
        .batch_execute("BEGIN; SELECT FROM webhook.webhooks FOR KEY SHARE")
        .unwrap();
    c.batch_execute("SELECT webhook.delete_webhook(id) FROM webhook.webhooks")
        .unwrap();
    let marked: bool = c
        .query_one(
            "SELECT deletion_requested_at IS NOT NULL FROM webhook.webhooks WHERE name = 'notes'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(marked, "the delete waits for the worker");
    c.batch_execute("SELECT webhook.drop_topic('note.created')")
        .unwrap();
    // Nor can it come back to deliver the dropped topic's events.
    for change in [
        "SELECT webhook.enable_webhook(id) FROM webhook.webhooks",
        "SELECT webhook.update_webhook(id, enabled => true) FROM webhook.webhooks",
    ] {
        let e = c.batch_execute(change).unwrap_err();
        assert!(
            db_message(&e).contains("does not exist"),
            "{change}: {}",
            db_message(&e)
        );
    }
    writer.batch_execute("COMMIT").unwrap();
    let left: i64 = c
        .query_one(
            "SELECT count(*) FROM webhook.topics WHERE topic = 'note.created'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}
