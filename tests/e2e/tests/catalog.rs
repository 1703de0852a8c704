//! The event catalog: a JSON Schema per topic (webhook.topics.event_schema)
//! and one OpenAPI 3.1 document of every topic (webhook.event_catalog()),
//! each checked with an off-the-shelf validator (scripts/deps.sh installs
//! them), against bodies a receiver actually got, and read by PUBLIC.

use serde_json::{json, Value};
use std::time::Duration;
use webhook_emitter_e2e::{python_check, Cluster, Receiver, JSON_SCHEMA_CHECK};

/// openapi-spec-validator on the document read from stdin.
const OPENAPI_CHECK: &str = r#"
import json, sys
from openapi_spec_validator import validate
from openapi_spec_validator.versions import consts
doc = json.load(sys.stdin)
validate(doc)
print(doc["openapi"])
"#;

fn schema_errors(schema: &Value, body: &Value) -> Vec<String> {
    let out = python_check(JSON_SCHEMA_CHECK, &json!([[schema, body]]).to_string())
        .unwrap_or_else(|e| panic!("jsonschema: {e}"));
    let mut errors: Vec<Vec<String>> = serde_json::from_str(&out).unwrap();
    errors.remove(0)
}

#[test]
fn the_catalog_is_valid_openapi_and_every_schema_checks_what_receivers_get() {
    let cluster = Cluster::start("");
    let receiver = Receiver::start();
    let mut su = cluster.client();
    su.batch_execute(
        "CREATE ROLE nobody LOGIN NOSUPERUSER;
         CREATE ROLE lms_admin LOGIN NOSUPERUSER; GRANT webhook_admin TO lms_admin;
         CREATE TABLE public.notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                    body text NOT NULL, score numeric, created timestamptz DEFAULT now());
         GRANT SELECT, TRIGGER ON public.notes TO lms_admin;",
    )
    .unwrap();
    let mut admin = cluster.client_as("lms_admin");
    admin
        .batch_execute("SELECT webhook.watch('public.notes', operations => '{insert}')")
        .unwrap();

    // PUBLIC reads the document; it is valid OpenAPI 3.1 and names every topic.
    let mut nobody = cluster.client_as("nobody");
    let doc: Value = serde_json::from_str(
        nobody
            .query_one("SELECT webhook.event_catalog()::text", &[])
            .unwrap()
            .get(0),
    )
    .unwrap();
    let version = python_check(OPENAPI_CHECK, &doc.to_string())
        .unwrap_or_else(|e| panic!("openapi-spec-validator refused the catalog: {e}"));
    assert_eq!(version.trim(), "3.1.0");
    let topics: Vec<(String, String)> = nobody
        .query(
            "SELECT topic, event_schema::text FROM webhook.topics ORDER BY topic",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(topics.len() >= 37, "{} topics", topics.len());
    for (topic, schema) in &topics {
        let schema: Value = serde_json::from_str(schema).unwrap();
        let post = &doc["webhooks"][topic]["post"];
        assert!(post.is_object(), "{topic} is not in the document");
        let reference = post["requestBody"]["content"]["application/xml"]["schema"]["$ref"]
            .as_str()
            .unwrap_or_default();
        let key = reference.rsplit('/').next().unwrap_or_default();
        assert_eq!(doc["components"]["schemas"][key], schema, "{topic}");
        let headers: Vec<&str> = post["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(
            headers,
            [
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature",
                "webhook-type"
            ]
        );
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
    }

    // Bodies a receiver got: a documented topic and a row event, each
    // valid for its schema; a documented key missing, or a value outside
    // an enumeration the document gives, is caught.
    admin
        .batch_execute(&format!(
            "SELECT webhook.create_webhook('crm', '{}', '{{user.created,public.notes.insert,course.created}}',
                                           generate_signing_secret => true)",
            receiver.url("/crm")
        ))
        .unwrap();
    su.batch_execute(
        "INSERT INTO lms.users (first_name, last_name, email) VALUES ('Ada', 'Lovelace', 'ada@x.example');
         INSERT INTO public.notes (body, score) VALUES ('hello', 9.5);
         INSERT INTO public.notes (body, score, created) VALUES ('nulls', NULL, NULL);
         INSERT INTO lms.courses (name, slug, payment_type) VALUES ('Webhooks', 'webhooks', 'free');",
    )
    .unwrap();
    let got = receiver.wait_for(4, Duration::from_secs(10));
    let schema_of = |topic: &str| -> Value {
        let text = &topics.iter().find(|t| t.0 == topic).unwrap().1;
        serde_json::from_str(text).unwrap()
    };
    for rec in &got {
        let topic = rec.header("webhook-type").unwrap_or_default().to_owned();
        let body = rec.json();
        let schema = schema_of(&topic);
        assert_eq!(
            schema_errors(&schema, &body),
            Vec::<String>::new(),
            "{topic}: {body}"
        );
        let mut missing = body.clone();
        let first = body.as_object().unwrap().keys().next().unwrap().clone();
        missing.as_object_mut().unwrap().remove(&first);
        assert!(
            !schema_errors(&schema, &missing).is_empty(),
            "{topic}: no {first} passes"
        );
        if topic == "course.created" {
            let mut wrong = body.clone();
            wrong["payload"]["payment_type"] = json!("free/paid");
            let errors = schema_errors(&schema, &wrong);
            assert!(
                errors.iter().any(|e| e.starts_with("payload/payment_type")),
                "{errors:?}"
            );
        }
        if topic == "user.created" {
            let mut wrong = body.clone();
            wrong["created_at"] = json!("yesterday");
            assert!(
                !schema_errors(&schema, &wrong).is_empty(),
                "a bad date-time passes"
            );
        }
    }
}

#[test]
fn a_topics_definer_tightens_its_schema_and_nobody_else_does() {
    let cluster = Cluster::start("");
    let mut su = cluster.client();
    su.batch_execute(
        "CREATE ROLE lms_admin LOGIN NOSUPERUSER; GRANT webhook_admin TO lms_admin;
         CREATE ROLE other_admin LOGIN NOSUPERUSER; GRANT webhook_admin TO other_admin;
         CREATE ROLE nobody LOGIN NOSUPERUSER;
         CREATE TABLE public.tickets (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                      priority text NOT NULL DEFAULT 'low');
         GRANT SELECT, TRIGGER ON public.tickets TO lms_admin;",
    )
    .unwrap();
    let mut admin = cluster.client_as("lms_admin");
    admin
        .batch_execute("SELECT webhook.watch('public.tickets', operations => '{insert}')")
        .unwrap();
    let tightened: Value = serde_json::from_str(
        admin
            .query_one(
                "SELECT webhook.tighten_event_schema('public.tickets.insert',
                     '{\"row.priority\": {\"enum\": [\"low\", \"high\"]}}')::text",
                &[],
            )
            .unwrap()
            .get(0),
    )
    .unwrap();
    assert_eq!(
        tightened["properties"]["row"]["properties"]["priority"]["enum"],
        json!(["low", "high"])
    );
    let body = json!({"operation": "insert", "schema": "public", "table": "tickets",
                      "row": {"id": 1, "priority": "urgent"}, "old_row": null, "changed_columns": null});
    assert!(
        schema_errors(&tightened, &body)
            .iter()
            .any(|e| e.starts_with("row/priority")),
        "a value outside the enumeration passes"
    );
    // A path the body does not have: the field named, nothing changed.
    let e = admin
        .batch_execute("SELECT webhook.tighten_event_schema('public.tickets.insert', '{\"row.nope\": {\"enum\": [1]}}')")
        .unwrap_err();
    assert!(
        webhook_emitter_e2e::db_message(&e).starts_with("schema_overrides: row.nope"),
        "{e}"
    );
    // Another admin, a documented topic, PUBLIC: refused.
    let e = cluster
        .client_as("other_admin")
        .batch_execute("SELECT webhook.tighten_event_schema('public.tickets.insert', NULL)")
        .unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("42501"), "{e}");
    let e = admin
        .batch_execute("SELECT webhook.tighten_event_schema('user.created', '{}')")
        .unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("42501"), "{e}");
    let e = cluster
        .client_as("nobody")
        .batch_execute("SELECT webhook.tighten_event_schema('public.tickets.insert', NULL)")
        .unwrap_err();
    assert_eq!(e.code().map(|c| c.code()), Some("42501"), "{e}");
    let still: String = su
        .query_one(
            "SELECT event_schema #>> '{properties,row,properties,priority,enum}' FROM webhook.topics WHERE topic = 'public.tickets.insert'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(still, r#"["low", "high"]"#);
}
