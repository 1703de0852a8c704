//! Body previews: what exactly a webhook would receive for an event, so an
//! admin can check a template or content type before (or after) saving it.

use crate::error::{OrRaise, Result, WebhookError};
use crate::render::template::Template;
use crate::render::{render_body, ContentType, EventFacts};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

/// An event as stored in `webhook.events`.
pub struct StoredEvent {
    pub id: String,
    pub topic: String,
    pub tenant_id: String,
    pub body: String,
}

impl StoredEvent {
    pub fn facts(&self) -> EventFacts<'_> {
        EventFacts {
            id: &self.id,
            topic: &self.topic,
            tenant_id: &self.tenant_id,
            body: &self.body,
        }
    }
}

pub fn load_event(client: &SpiClient, event_id: &str) -> Result<StoredEvent> {
    let rows = client.select(
        "SELECT id, topic, tenant_id, body::text FROM webhook.events WHERE id = $1",
        Some(1),
        &[event_id.into()],
    )?;
    let row = rows.first();
    if row.is_empty() {
        return Err(WebhookError::NotFound {
            what: "event",
            key: format!("{event_id:?}"),
        });
    }
    let text = |i: usize| -> Result<String> { Ok(row.get::<String>(i)?.unwrap_or_default()) };
    Ok(StoredEvent {
        id: text(1)?,
        topic: text(2)?,
        tenant_id: text(3)?,
        body: text(4)?,
    })
}

/// The sample event of a topic from the catalog (used by previews and Send Test).
pub fn sample_event(client: &SpiClient, topic: &str) -> Result<StoredEvent> {
    let rows = client.select(
        "SELECT t.sample_body::text, s.tenant_id FROM webhook.topics t CROSS JOIN webhook.settings s WHERE t.topic = $1",
        Some(1),
        &[topic.into()],
    )?;
    let row = rows.first();
    if row.is_empty() {
        return Err(WebhookError::invalid(
            "topic",
            format!("unknown topic {topic:?}; the allowed topics are listed in webhook.topics"),
        ));
    }
    Ok(StoredEvent {
        id: crate::write::event_id::new_event_id(),
        topic: topic.to_owned(),
        tenant_id: row.get::<String>(2)?.unwrap_or_default(),
        body: row.get::<String>(1)?.unwrap_or_default(),
    })
}

fn render_for(
    content_type: &str,
    template: Option<&str>,
    event: &StoredEvent,
) -> Result<(String, String)> {
    let ct = ContentType::parse(content_type)?;
    let template = template.map(Template::parse).transpose()?;
    Ok((
        ct.as_str().to_owned(),
        render_body(&event.facts(), ct, template.as_ref())?,
    ))
}

/// The exact content type and body webhook `webhook_id` receives for event
/// `event_id` (its saved content type and body template applied).
#[pg_extern(stable)]
fn render(
    webhook_id: i64,
    event_id: &str,
) -> TableIterator<'static, (name!(content_type, String), name!(body, String))> {
    let result = Spi::connect(|client| -> Result<(String, String)> {
        let rows = client.select(
            "SELECT content_type, body_template FROM webhook.webhooks WHERE id = $1",
            Some(1),
            &[webhook_id.into()],
        )?;
        let row = rows.first();
        if row.is_empty() {
            return Err(WebhookError::NotFound {
                what: "webhook",
                key: webhook_id.to_string(),
            });
        }
        let content_type: String = row.get(1)?.unwrap_or_default();
        let template: Option<String> = row.get(2)?;
        let event = load_event(client, event_id)?;
        render_for(&content_type, template.as_deref(), &event)
    })
    .or_raise();
    TableIterator::once(result)
}

/// Preview a body without saving anything: `topic`'s sample body (or the
/// stored event `event_id`) rendered with the given content type and template.
#[pg_extern(stable)]
fn preview(
    topic: &str,
    content_type: default!(&str, "'application/json'"),
    body_template: default!(Option<&str>, "NULL"),
    event_id: default!(Option<&str>, "NULL"),
) -> TableIterator<'static, (name!(content_type, String), name!(body, String))> {
    let result = Spi::connect(|client| -> Result<(String, String)> {
        let event = match event_id {
            Some(id) => load_event(client, id)?,
            None => sample_event(client, topic)?,
        };
        render_for(content_type, body_template, &event)
    })
    .or_raise();
    TableIterator::once(result)
}
