//! `webhook.rebuild_events(topic, max_events, discard)`: builds again the
//! events whose builder failed when their row was written (queued
//! 'unbuilt' by `call_builder`, see `definer.rs`), once the builder is
//! fixed, and releases their deliveries; or, with `discard`, removes them.
//!
//! The builder runs as the topic's definer, in a security-restricted
//! operation with the generated function's `search_path`, exactly as at
//! the write, on the key stored with the event (which only the extension
//! owner writes): whoever calls this runs no code of their choosing.

use crate::error::WebhookError;
use crate::shmem;
use crate::write::builder::{self, Failure};
use crate::write::definer::{self, Target};
use crate::write::enqueue::{self, Envelope};
use pgrx::prelude::*;
use std::ffi::CString;

/// The unbuilt events to look at, oldest first, locked so that two calls
/// never build one event twice. Events of a topic that no longer exists
/// cannot be built: they are only discarded.
const UNBUILT_EVENTS: &str = "
SELECT e.id, e.topic, e.build_key, e.tenant_id,
       (EXTRACT(epoch FROM e.created_at) * 1000000)::bigint - 946684800000000,
       EXISTS (SELECT FROM webhook.topics t WHERE t.topic = e.topic)
  FROM webhook.events e
 WHERE e.build_error IS NOT NULL AND ($1::text IS NULL OR e.topic = $1)
 ORDER BY e.id
 LIMIT $2
   FOR UPDATE SKIP LOCKED";

/// A rebuilt event: its body, and its deliveries released as enqueue
/// would have queued them (held for a disabled webhook, in its sequence
/// for an ordered one); those whose webhook's filter the body does not
/// match are removed, as enqueue would not have queued them.
const RELEASE: &str = "
WITH e AS (UPDATE webhook.events e SET body = $2::json, build_error = NULL, build_key = NULL
            WHERE e.id = $1 RETURNING e.id),
     unmatched AS (DELETE FROM webhook.deliveries d USING webhook.webhooks w
                    WHERE d.event_id = $1 AND d.status = 'unbuilt' AND w.id = d.webhook_id
                      AND w.filter IS NOT NULL AND NOT ($2::jsonb @> w.filter))
UPDATE webhook.deliveries d
   SET status = CASE WHEN w.enabled THEN 'pending' ELSE 'held' END, last_error = NULL,
       next_attempt_at = now(),
       order_key = CASE w.ordering WHEN 'none' THEN NULL WHEN 'fifo' THEN ''
                   ELSE coalesce($2::json #>> pg_catalog.string_to_array(w.ordering_key, '.'), '') END
  FROM webhook.webhooks w, e
 WHERE d.event_id = e.id AND d.status = 'unbuilt' AND w.id = d.webhook_id
   AND (w.filter IS NULL OR $2::jsonb @> w.filter)";

/// The full error stays with the event (webhook_admin reads it), the
/// deliveries get its summary (PUBLIC reads them).
const STILL_FAILING: &str = "
WITH e AS (UPDATE webhook.events e SET build_error = $2 WHERE e.id = $1 RETURNING e.id)
UPDATE webhook.deliveries d SET last_error = $3 FROM e WHERE d.event_id = e.id AND d.status = 'unbuilt'";

const REMOVE: &str = "
WITH d AS (DELETE FROM webhook.deliveries d WHERE d.event_id = $1 AND d.status = 'unbuilt')
DELETE FROM webhook.events e WHERE e.id = $1
   AND NOT EXISTS (SELECT FROM webhook.deliveries x WHERE x.event_id = $1 AND x.status <> 'unbuilt')";

#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION webhook.rebuild_events(topic text DEFAULT NULL, max_events integer DEFAULT 10000, discard boolean DEFAULT false)
RETURNS TABLE (rebuilt bigint, still_failing bigint, discarded bigint)
LANGUAGE c /* Rust */ SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'rebuild_events_wrapper';
COMMENT ON FUNCTION webhook.rebuild_events IS 'Build again the events whose builder failed (deliveries unbuilt), as the topic''s definer, and release them; with discard => true remove them instead. At most max_events per call.';"
)]
fn rebuild_events(
    topic: Option<&str>,
    max_events: Option<i32>,
    discard: Option<bool>,
) -> TableIterator<
    'static,
    (
        name!(rebuilt, i64),
        name!(still_failing, i64),
        name!(discarded, i64),
    ),
> {
    let limit = match max_events {
        Some(n @ 1..=1_000_000) => n,
        other => WebhookError::invalid(
            "max_events",
            format!("{other:?} is out of range; allowed: 1 to 1000000 events per call"),
        )
        .raise(),
    };
    let discard = discard.unwrap_or(false);
    let events = Spi::connect_mut(|client| {
        client
            .update(UNBUILT_EVENTS, None, &[topic.into(), limit.into()])?
            .map(|row| {
                Ok(Unbuilt {
                    id: row.get::<String>(1)?.unwrap_or_default(),
                    topic: row.get::<String>(2)?.unwrap_or_default(),
                    key: row.get::<String>(3)?,
                    tenant_id: row.get::<String>(4)?.unwrap_or_default(),
                    created_at: row.get::<i64>(5)?.unwrap_or_default(),
                    topic_exists: row.get::<bool>(6)?.unwrap_or(false),
                })
            })
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .unwrap_or_else(|e| WebhookError::from(e).raise());

    let (mut rebuilt, mut failing, mut discarded) = (0i64, 0i64, 0i64);
    for event in events {
        if discard {
            run(REMOVE, &[event.id.as_str().into()]);
            discarded += 1;
            continue;
        }
        let target = if event.topic_exists {
            Some(definer::target_of(&event.topic))
        } else {
            None
        };
        let built = match (&target, &event.key) {
            (Some(target), Some(key)) => build(target, key),
            (None, _) => Err(Failure {
                text: format!("topic {} is no longer defined", event.topic),
                sqlstate: "42704".into(),
                message: String::new(),
            }),
            (Some(_), None) => Err(Failure {
                text: "the event has no key to build it from".into(),
                sqlstate: "22004".into(),
                message: String::new(),
            }),
        };
        match built {
            Ok(Some(body)) => {
                let body = match enqueue::envelope_of(&event.topic) {
                    Some(fields) => envelope(&event, &fields, &body),
                    None => body,
                };
                run(RELEASE, &[event.id.as_str().into(), body.as_str().into()]);
                rebuilt += 1;
            }
            // The builder now says there is nothing to send for this row.
            Ok(None) => {
                run(REMOVE, &[event.id.as_str().into()]);
                rebuilt += 1;
            }
            Err(failure) => {
                let summary = failure.summary(&event.topic);
                run(
                    STILL_FAILING,
                    &[
                        event.id.as_str().into(),
                        failure.text.as_str().into(),
                        summary.as_str().into(),
                    ],
                );
                failing += 1;
            }
        }
    }
    if rebuilt > 0 {
        shmem::wake_worker_at_commit();
    }
    TableIterator::once((rebuilt, failing, discarded))
}

struct Unbuilt {
    id: String,
    topic: String,
    key: Option<String>,
    tenant_id: String,
    /// Microseconds since 2000-01-01 (a TimestampTz).
    created_at: i64,
    topic_exists: bool,
}

/// The topic's builder on `key`, as at the write: as the definer, in a
/// security-restricted operation, with the generated function's settings;
/// an error comes back as its message (builder named).
fn build(target: &Target, key: &str) -> Result<Option<String>, Failure> {
    let failure = |text: &str| Failure {
        text: text.to_owned(),
        sqlstate: "22023".into(),
        message: String::new(),
    };
    let Some(function) = target.builder else {
        return Err(failure("the topic has no builder"));
    };
    let key = CString::new(key).map_err(|_| failure("the stored key holds a NUL byte"))?;
    let key_type = target.key_type;
    // As at the write: as the definer, with the generated function's
    // search_path, nothing it sets outliving the call. The key is converted
    // by its type's input function inside the contained call, so a key the
    // type no longer accepts is an error of this event alone.
    let outcome = definer::as_definer(target.definer, || {
        builder::pinned_search_path(|| {
            // SAFETY: `run_builder` gets a datum of key_type, which the
            // builder takes (checked when the topic was defined).
            unsafe {
                builder::contained(|| {
                    let mut input = pg_sys::InvalidOid;
                    let mut io_param = pg_sys::InvalidOid;
                    pg_sys::getTypeInputInfo(key_type, &mut input, &mut io_param);
                    let datum =
                        pg_sys::OidInputFunctionCall(input, key.as_ptr().cast_mut(), io_param, -1);
                    builder::run_builder(function, key_type, datum)
                })
            }
        })
    });
    outcome.map_err(|e| Failure {
        text: format!("builder {}: {}", builder::function_name(function), e.text),
        sqlstate: e.sqlstate,
        message: e.message,
    })
}

fn envelope(event: &Unbuilt, fields: &Envelope, payload: &str) -> String {
    enqueue::braincert_envelope(
        &event.id,
        fields,
        &event.tenant_id,
        event.created_at,
        payload,
    )
}

fn run(sql: &str, args: &[pgrx::datum::DatumWithOid]) {
    Spi::connect_mut(|client| client.update(sql, None, args).map(|_| ()))
        .unwrap_or_else(|e| WebhookError::from(e).raise());
}
