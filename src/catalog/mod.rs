//! The event catalog receivers code against: a JSON Schema per topic
//! (`schema`, kept in `webhook.topics.event_schema`) and one OpenAPI 3.1
//! document of every topic this database emits (`webhook.event_catalog()`):
//! its request headers, both content types and the schemas.

pub mod schema;

use crate::error::{OrRaise, Result, WebhookError};
use crate::settings::api::{refuse_restricted, RawJsonb};
use crate::write::definer::{as_role, extension_owner};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Map, Value};

/// The schema of a topic from its sample body and hand tightening (the
/// generated column `webhook.topics.event_schema`).
#[pg_extern(immutable, parallel_safe)]
fn infer_event_schema(
    topic: &str,
    display_name: &str,
    description: &str,
    sample_body: pgrx::Json,
    schema_overrides: Option<JsonB>,
) -> JsonB {
    let overrides = schema_overrides.map(|o| o.0);
    JsonB(
        schema::event_schema(
            topic,
            display_name,
            description,
            &sample_body.0,
            overrides.as_ref(),
        )
        .or_raise(),
    )
}

/// Tighten the schema of a topic of one's own (or, for a superuser, any):
/// `overrides` maps paths of the body to JSON Schema keywords (see
/// `schema.rs`), NULL removes them. Returns the topic's schema now. Runs as
/// the caller (its current user decides whose topic it is) and writes as
/// the extension owner, as the definition functions do.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn tighten_event_schema(topic: &str, overrides: Option<RawJsonb>) -> JsonB {
    refuse_restricted();
    // SAFETY: reads the current user and its superuser flag, main thread.
    let (caller, superuser) = unsafe {
        let caller = pg_sys::GetUserId();
        (caller, pg_sys::superuser_arg(caller))
    };
    let schema = as_role(extension_owner(), || {
        Spi::connect_mut(|client| -> Result<JsonB> {
            let rows = client.update(
                "SELECT t.definer::oid, t.builtin FROM webhook.topics t WHERE t.topic = $1 FOR UPDATE",
                None,
                &[topic.into()],
            )?;
            if rows.is_empty() {
                return Err(WebhookError::NotFound {
                    what: "topic",
                    key: topic.to_owned(),
                });
            }
            let row = rows.first();
            let definer: Option<pg_sys::Oid> = row.get(1)?;
            let builtin: bool = row.get(2)?.unwrap_or(false);
            if !superuser && (builtin || definer != Some(caller)) {
                ereport!(
                    ERROR,
                    pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                    format!("topic: {topic} is not a topic you defined; its definer (or a superuser) may tighten its schema")
                );
            }
            let updated = client.update(
                "UPDATE webhook.topics SET schema_overrides = $2 WHERE topic = $1 RETURNING event_schema",
                None,
                &[topic.into(), overrides.into()],
            )?;
            Ok(updated.first().get::<JsonB>(1)?.unwrap_or(JsonB(json!({}))))
        })
    });
    schema.or_raise()
}

/// One OpenAPI 3.1 document (`webhooks`) of every topic in `webhook.topics`:
/// what a receiver's tooling reads to generate types and validators.
#[pg_extern(stable, parallel_safe)]
fn event_catalog() -> JsonB {
    JsonB(document().or_raise())
}

/// A name OpenAPI allows as a component key.
fn component_key(topic: &str) -> String {
    topic
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn header(name: &str, required: bool, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "header", "required": required, "description": description, "schema": schema})
}

fn document() -> Result<Value> {
    let rows: Vec<(String, String, String, Value)> = Spi::connect(|client| -> Result<_> {
        let mut out = Vec::new();
        for row in client.select(
            "SELECT t.topic, t.display_name, t.description, t.event_schema FROM webhook.topics t ORDER BY t.topic",
            None,
            &[],
        )? {
            out.push((
                row.get::<String>(1)?.unwrap_or_default(),
                row.get::<String>(2)?.unwrap_or_default(),
                row.get::<String>(3)?.unwrap_or_default(),
                row.get::<JsonB>(4)?.map(|j| j.0).unwrap_or_else(|| json!({})),
            ));
        }
        Ok(out)
    })?;
    let mut webhooks = Map::new();
    let mut schemas = Map::new();
    for (topic, title, description, schema) in rows {
        let key = component_key(&topic);
        let reference = json!({"$ref": format!("#/components/schemas/{key}")});
        let parameters = json!([
            header("webhook-id", true,
                "The event's id (a ULID), the same on every attempt: drop a delivery whose id you have seen.",
                json!({"type": "string"})),
            header("webhook-timestamp", true,
                "When this attempt was signed, in Unix seconds; refuse one far from your clock.",
                json!({"type": "string", "pattern": "^[0-9]+$"})),
            header("webhook-signature", false,
                "Standard Webhooks signatures, space-separated `v1,<base64 HMAC-SHA256 of id.timestamp.body>`; sent when the webhook has a signing secret (two while a rotated secret still signs).",
                json!({"type": "string"})),
            header("webhook-type", true, "The topic.", json!({"type": "string", "const": topic})),
        ]);
        webhooks.insert(
            topic.clone(),
            json!({"post": {
                "operationId": key.replace(['.', '-'], "_"),
                "summary": title,
                "description": description,
                "parameters": parameters,
                "requestBody": {
                    "required": true,
                    "description": "The event as JSON, or (a webhook with content type application/xml) the same document as XML, which webhook.xml_to_json reads back.",
                    "content": {
                        "application/json": {"schema": reference},
                        "application/xml": {"schema": reference}
                    }
                },
                "responses": {
                    "2XX": {"description": "Accepted: the delivery is done."},
                    "410": {"description": "Gone: the webhook is disabled; nothing more is sent to it."},
                    "default": {"description": "Any other answer, or none within the timeout, is retried on the webhook's schedule (a Retry-After header is honoured)."}
                }
            }}),
        );
        schemas.insert(key, schema);
    }
    let tenant: String =
        Spi::get_one("SELECT s.tenant_id FROM webhook.settings s")?.unwrap_or_default();
    Ok(json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": schema::DIALECT,
        "info": {
            "title": format!("Events of {tenant} (webhook_emitter)"),
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every topic this database can send, as webhooks: the request each receiver gets, its headers and its body's JSON Schema (draft 2020-12)."
        },
        "webhooks": webhooks,
        "components": {"schemas": schemas}
    }))
}
