//! Every topic from ordinary SQL writes on the lms tables: the queued body
//! carries every key path of the vendor document's example with the same
//! JSON type (tests/e2e/fixtures/topics/<topic>.sql make each topic fire).

use serde_json::Value;
use std::path::Path;
use webhook_emitter_e2e::{
    assert_shape, fixture, python_check, wait_fanned_out, Client, Cluster, Receiver,
    JSON_SCHEMA_CHECK,
};

fn examples_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/spec/examples")
}

fn bodies(c: &mut Client, topic: &str) -> Vec<Value> {
    c.query(
        "SELECT body::text FROM webhook.events WHERE topic = $1 ORDER BY created_at",
        &[&topic],
    )
    .unwrap()
    .iter()
    .map(|r| serde_json::from_str(r.get::<_, &str>(0)).unwrap())
    .collect()
}

#[test]
fn every_topic_matches_its_documented_shape_in_json_and_xml() {
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    let mut admin = cluster.client();
    // A template database: extension, one JSON and one XML webhook on every topic, base data.
    admin.batch_execute("CREATE DATABASE lms_template").unwrap();
    {
        let mut t = cluster.client_db("lms_template");
        t.batch_execute("CREATE EXTENSION webhook_emitter").unwrap();
        let url = receiver.url("/all");
        t.execute(
            "SELECT webhook.create_webhook('all-json', $1, ARRAY(SELECT topic FROM webhook.topics))",
            &[&url],
        )
        .unwrap();
        t.execute(
            "SELECT webhook.create_webhook('all-xml', $1, ARRAY(SELECT topic FROM webhook.topics), content_type => 'application/xml')",
            &[&url],
        )
        .unwrap();
        t.batch_execute(&std::fs::read_to_string(fixture("lms_base.sql")).unwrap())
            .unwrap();
        wait_fanned_out(&mut t);
        t.batch_execute("DELETE FROM webhook.deliveries; DELETE FROM webhook.events")
            .unwrap();
    }
    let topics: Vec<(String, String)> = admin
        .query(
            "SELECT topic, sample_body::text FROM webhook.topics WHERE builtin ORDER BY topic",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // Every documented topic has a fixture that makes it fire, and no more.
    let mut fixtures: Vec<String> = std::fs::read_dir(fixture("topics"))
        .unwrap()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".sql")
                .map(str::to_owned)
        })
        .collect();
    fixtures.sort();
    let names: Vec<String> = topics.iter().map(|t| t.0.clone()).collect();
    assert_eq!(names, fixtures);
    let mut problems = Vec::new();
    // (topic, schema, body) of every body, checked against its topic's
    // JSON Schema (webhook.topics.event_schema) by jsonschema at the end.
    let mut checked: Vec<(String, Value, Value)> = Vec::new();
    for (i, (topic, sample)) in topics.iter().enumerate() {
        let db = format!("topic_{i}");
        admin
            .batch_execute(&format!("CREATE DATABASE {db} TEMPLATE lms_template"))
            .unwrap();
        let mut c = cluster.client_db(&db);
        let sql = std::fs::read_to_string(fixture(&format!("topics/{topic}.sql"))).unwrap();
        let mut tx = c.transaction().unwrap();
        tx.batch_execute(&sql)
            .unwrap_or_else(|e| panic!("{topic}: {e}"));
        tx.commit().unwrap();
        let got = bodies(&mut c, topic);
        let schema: Value = serde_json::from_str(
            c.query_one(
                "SELECT event_schema::text FROM webhook.topics WHERE topic = $1",
                &[topic],
            )
            .unwrap()
            .get(0),
        )
        .unwrap();
        checked.extend(
            got.iter()
                .map(|b| (topic.clone(), schema.clone(), b.clone())),
        );
        if got.is_empty() {
            problems.push(format!("{topic}: the fixture emitted no event"));
        }
        let example_file = examples_dir().join(format!("{topic}.json"));
        let example: Value = match std::fs::read_to_string(&example_file) {
            Ok(text) => serde_json::from_str(&text).unwrap(),
            // The four topics without a documented example: the derived shape in the catalog.
            Err(_) => serde_json::from_str(sample).unwrap(),
        };
        for body in &got {
            assert_shape(&example, body, topic, &mut problems);
            // The envelope's keys come in the document's order.
            if let (Value::Object(e), Value::Object(b)) = (&example, body) {
                let documented: Vec<&String> = e.keys().filter(|k| b.contains_key(*k)).collect();
                let delivered: Vec<&String> = b.keys().filter(|k| e.contains_key(*k)).collect();
                if documented != delivered {
                    problems.push(format!(
                        "{topic}: top-level keys in the order {delivered:?}, the document has {documented:?}"
                    ));
                }
            }
        }
        // The XML rendering of each event reads back to the same JSON.
        let rows = c
            .query(
                "SELECT e.body::text, webhook.xml_to_json(r.body)::text, r.content_type
                   FROM webhook.events e, webhook.webhooks w, LATERAL webhook.render(w.id, e.id) r
                  WHERE w.name = 'all-xml' AND e.topic = $1",
                &[topic],
            )
            .unwrap();
        for row in rows {
            let json: Value = serde_json::from_str(row.get(0)).unwrap();
            let back: Value = serde_json::from_str(row.get(1)).unwrap();
            assert_eq!(row.get::<_, &str>(2), "application/xml");
            if json != back {
                problems.push(format!("{topic}: XML does not read back to the JSON body"));
            }
        }
        drop(c);
        admin.batch_execute(&format!("DROP DATABASE {db}")).unwrap();
    }
    assert!(
        problems.is_empty(),
        "shape problems:\n{}",
        problems.join("\n")
    );
    // Every body passes its schema; the same body without its last
    // top-level key (a documented key missing) does not.
    let mut pairs: Vec<Value> = Vec::new();
    for (_, schema, body) in &checked {
        pairs.push(serde_json::json!([schema, body]));
        let mut cut = body.clone();
        if let Some(map) = cut.as_object_mut() {
            let last = map.keys().next_back().cloned().unwrap_or_default();
            map.remove(&last);
        }
        pairs.push(serde_json::json!([schema, cut]));
    }
    let out = python_check(JSON_SCHEMA_CHECK, &Value::Array(pairs).to_string())
        .unwrap_or_else(|e| panic!("jsonschema failed: {e}"));
    let errors: Vec<Vec<String>> = serde_json::from_str(&out).unwrap();
    let mut schema_problems = Vec::new();
    for (i, (topic, _, _)) in checked.iter().enumerate() {
        if !errors[2 * i].is_empty() {
            schema_problems.push(format!("{topic}: {:?}", errors[2 * i]));
        }
        if errors[2 * i + 1].is_empty() {
            schema_problems.push(format!("{topic}: a body missing a key passes its schema"));
        }
    }
    assert!(
        checked.len() >= topics.len(),
        "{} bodies checked",
        checked.len()
    );
    assert!(
        schema_problems.is_empty(),
        "bodies against their schemas:\n{}",
        schema_problems.join("\n")
    );
}

#[test]
fn commit_semantics_rollback_noop_statement_and_cascade() {
    let cluster = Cluster::start("");
    let mut c = cluster.client();
    c.batch_execute(&std::fs::read_to_string(fixture("lms_base.sql")).unwrap())
        .unwrap();
    c.execute(
        "SELECT webhook.create_webhook('all', 'http://127.0.0.1:9/', ARRAY(SELECT topic FROM webhook.topics), enabled => true)",
        &[],
    )
    .unwrap();
    let count = |c: &mut Client, topic: &str| -> i64 {
        c.query_one(
            "SELECT count(*) FROM webhook.events WHERE topic = $1",
            &[&topic],
        )
        .unwrap()
        .get(0)
    };

    // A user with groups, roles and registration fields in one transaction.
    c.batch_execute(
        "BEGIN;
         INSERT INTO lms.users (first_name, last_name, email) VALUES ('Ünïcödé', 'O''Hara <&>', 'new@x.example');
         INSERT INTO lms.user_groups (user_id, group_id) SELECT u.id, g.id FROM lms.users u, lms.groups g WHERE u.email = 'new@x.example';
         INSERT INTO lms.user_roles (user_id, role_id) SELECT u.id, r.id FROM lms.users u, lms.roles r WHERE u.email = 'new@x.example' AND r.name = 'Student';
         COMMIT;",
    )
    .unwrap();
    let body: Value = serde_json::from_str(
        c.query_one(
            "SELECT body::text FROM webhook.events WHERE topic = 'user.created'",
            &[],
        )
        .unwrap()
        .get(0),
    )
    .unwrap();
    assert_eq!(
        body["payload"]["groups"].as_array().unwrap().len(),
        3,
        "{body}"
    );
    assert_eq!(body["payload"]["roles"][0]["role_name"], "Student");
    assert_eq!(body["payload"]["name"], "Ünïcödé O'Hara <&>");

    // Rolled back: nothing.
    let before = count(&mut c, "group.created");
    c.batch_execute("BEGIN; INSERT INTO lms.groups (name) VALUES ('never'); ROLLBACK;")
        .unwrap();
    assert_eq!(count(&mut c, "group.created"), before);

    // An UPDATE that changes nothing: nothing.
    let before = count(&mut c, "course.updated");
    c.batch_execute("UPDATE lms.courses SET name = name")
        .unwrap();
    assert_eq!(count(&mut c, "course.updated"), before);
    c.batch_execute(
        "UPDATE lms.courses SET subtitle = subtitle || '!' WHERE slug = 'introduction-to-webhooks'",
    )
    .unwrap();
    assert_eq!(count(&mut c, "course.updated"), before + 1);

    // One statement enrolling two users in two courses: one course.enrolled.
    c.batch_execute(&std::fs::read_to_string(fixture("topics/course.enrolled.sql")).unwrap())
        .unwrap();
    assert_eq!(count(&mut c, "course.enrolled"), 1);
    let enrolled: Value = serde_json::from_str(
        c.query_one(
            "SELECT body::text FROM webhook.events WHERE topic = 'course.enrolled'",
            &[],
        )
        .unwrap()
        .get(0),
    )
    .unwrap();
    assert_eq!(enrolled["userList"].as_array().unwrap().len(), 2);
    assert_eq!(
        enrolled["enrolled_courses_list"].as_array().unwrap().len(),
        2
    );
    assert_eq!(count(&mut c, "course.enrollment"), 4);

    // A cascaded delete: the course arrives with its instructors.
    c.batch_execute("DELETE FROM lms.courses WHERE slug = 'introduction-to-webhooks'")
        .unwrap();
    let deleted: Value = serde_json::from_str(
        c.query_one(
            "SELECT body::text FROM webhook.events WHERE topic = 'course.deleted'",
            &[],
        )
        .unwrap()
        .get(0),
    )
    .unwrap();
    assert!(
        !deleted["payload"]["instructors"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{deleted}"
    );

    // Very long text and NULL columns survive JSON and XML.
    let long = "é<&]]>".repeat(200_000);
    c.execute(
        "INSERT INTO lms.groups (name, description) VALUES ('long', $1)",
        &[&long],
    )
    .unwrap();
    let row = c
        .query_one(
            "SELECT (e.body->'payload'->>'description'), webhook.xml_to_json(r.body)::jsonb = e.body::jsonb
               FROM webhook.events e,
                    LATERAL webhook.preview(e.topic, 'application/xml', NULL, e.id) r
              WHERE e.topic = 'group.created' AND e.body->'payload'->>'group_name' = 'long'",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), long);
    assert!(
        row.get::<_, bool>(1),
        "XML of a long text does not read back"
    );
}
