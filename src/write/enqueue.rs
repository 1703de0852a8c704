//! `webhook.enqueue(topic, body)`: the write path's queueing step. Every
//! generated topic trigger calls it once per event, inside the writing
//! transaction, so what it costs is paid by every LMS write that emits.
//!
//! It appends one row to `webhook.events`, with the writing transaction's
//! id, from a plan prepared once per backend; the worker makes the
//! deliveries after the commit (`webhook.fan_out`), so the writer inserts
//! no delivery and locks no webhook. What used to be looked up on every
//! call (the global switch, the tenant id, the topic's envelope) is cached
//! per backend under the same shared generation as `topic_wanted`'s cache
//! (`wanted.rs`), and the BrainCert envelope is written here instead of by
//! `json_build_object`. Measured: see docs/scaling.md.

use super::wanted::{self, ReadAs};
use crate::error::WebhookError;
use crate::shmem;
use crate::status::DeliveryStatus;
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::CStr;
use std::rc::Rc;

/// The event row, dated and stamped with the transaction's id, which the
/// fan-out reads (a transaction that has none yet gets it here), in the
/// log slot that was current when the route was read: a slot is emptied
/// only after moving what is not yet fanned out, so a stale one is safe.
const QUEUE_EVENT: &CStr = c"
INSERT INTO webhook.events (id, topic, body, tenant_id, created_at, txid, slot)
VALUES ($1, $2, $3, $4, $5, pg_catalog.pg_current_xact_id(), $6)";

/// The log slot new rows go to (read with the route, under its generation:
/// a rotation bumps it).
const CURRENT_SLOT: &CStr = c"SELECT s.slot FROM webhook.log_slots s WHERE s.is_current";

/// A database whose schema predates the fan-out (0.3.0's library loaded
/// before `ALTER EXTENSION webhook_emitter UPDATE` ran): the event and its
/// deliveries, as 0.2.0 queued them, so that no write fails and no event
/// is lost in between. The webhooks receiving the event are locked
/// `FOR KEY SHARE` (a concurrent `delete_webhook` waits for this
/// transaction, or the webhook is skipped).
const QUEUE_EVENT_BEFORE_FAN_OUT: &CStr = c"
WITH w AS (SELECT wh.id, wh.enabled, wh.ordering, wh.ordering_key FROM webhook.webhooks wh
            WHERE wh.topics @> ARRAY[$2] AND (wh.filter IS NULL OR $3::jsonb @> wh.filter)
              FOR KEY SHARE OF wh),
     e AS (INSERT INTO webhook.events (id, topic, body, tenant_id, created_at)
           SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT FROM w)
           RETURNING events.id, events.body)
INSERT INTO webhook.deliveries (event_id, webhook_id, status, order_key)
SELECT e.id, w.id, CASE WHEN w.enabled THEN 'pending' ELSE 'held' END,
       CASE w.ordering WHEN 'none' THEN NULL WHEN 'fifo' THEN ''
            ELSE coalesce(e.body #>> pg_catalog.string_to_array(w.ordering_key, '.'), '') END
  FROM e, w";

/// An event whose builder failed (the topic's `on_builder_error` is
/// 'queue'): kept with the error and the row's key, its deliveries
/// 'unbuilt' with the error, for every subscribed webhook (a filter needs
/// the body: `rebuild_events` applies it), until `webhook.rebuild_events`
/// builds it again.
const QUEUE_UNBUILT: &str = "
WITH w AS (SELECT wh.id FROM webhook.webhooks wh
            WHERE wh.topics @> ARRAY[$2] AND wh.deletion_requested_at IS NULL
              FOR KEY SHARE OF wh),
     e AS (INSERT INTO webhook.events (id, topic, body, tenant_id, created_at, build_error, build_key)
           SELECT $1, $2, 'null', $3, pg_catalog.clock_timestamp(), $4, $5 WHERE EXISTS (SELECT FROM w)
           RETURNING events.id, events.slot)
INSERT INTO webhook.deliveries (event_id, webhook_id, status, last_error, slot)
SELECT e.id, w.id, $6, $7, e.slot FROM e, w";

/// What queueing an event of one topic needs besides the body. No row:
/// not a topic. No settings row counts as the switch off.
const TOPIC_ROUTE: &CStr = c"
SELECT s.enabled, s.tenant_id, t.envelope = 'braincert', t.resource, t.action,
       (SELECT pg_catalog.min(k.n) FILTER (WHERE k.key = 'tenant_id')
               < pg_catalog.min(k.n) FILTER (WHERE k.key = 'domain_id')
          FROM pg_catalog.json_object_keys(t.sample_body) WITH ORDINALITY k (key, n)),
       pg_catalog.to_regclass('webhook.fanout') IS NOT NULL
  FROM webhook.topics t LEFT JOIN webhook.settings s ON true
 WHERE t.topic = $1";

/// How events of one topic are queued.
struct Route {
    /// The global switch: off queues nothing.
    enabled: bool,
    tenant_id: String,
    /// `Some` for the BrainCert envelope; `None` for a flat body, queued
    /// as built.
    braincert: Option<Envelope>,
    /// The worker fans events out (false until the schema is 0.3.0's).
    fan_out: bool,
    /// The log slot events go to (with the fan-out's schema).
    slot: i16,
}

/// A BrainCert envelope's fields besides the event's own.
#[derive(Clone)]
pub(crate) struct Envelope {
    pub resource: Option<String>,
    pub action: Option<String>,
    /// The document puts `tenant_id` before `domain_id` for some topics
    /// (`user.updated`, `user.deleted`); the topic's sample body, which
    /// follows the document, says which order it has.
    pub tenant_first: bool,
}

/// Routes of topics as they were when `generation` was current. Only real
/// topics are kept (bounded by `webhook.topics`): a name that is not one is
/// an error anyway, and caching those would let a caller grow the map
/// without bound.
struct Routes {
    generation: u64,
    by_topic: HashMap<String, Rc<Route>>,
}

thread_local! {
    static ROUTES: RefCell<Option<Routes>> = const { RefCell::new(None) };
    static QUEUE_PLAN: Cell<pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
    static QUEUE_BEFORE_FAN_OUT_PLAN: Cell<pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
    static ROUTE_PLAN: Cell<pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
    static SLOT_PLAN: Cell<pg_sys::SPIPlanPtr> = const { Cell::new(std::ptr::null_mut()) };
}

/// Queue an event of `topic` when some webhook subscribes to it (enabled or
/// not: a disabled one holds its events); the worker delivers it to those
/// whose filter it matches. Topics with the BrainCert envelope get it here,
/// flat bodies are queued as given. Returns the event id, or NULL when
/// nothing was queued (switch off, or nobody subscribes).
///
/// `body` is declared `json` in SQL; json and text datums are the same
/// bytes, so it is read as text: as built, without being parsed.
#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION webhook.enqueue(topic text, body json) RETURNS text\nLANGUAGE c /* Rust */ SECURITY DEFINER SET search_path = pg_catalog, pg_temp\nAS 'MODULE_PATHNAME', 'enqueue_wrapper';"
)]
fn enqueue(topic: Option<&str>, body: Option<&str>) -> Option<String> {
    let Some(topic) = topic else {
        WebhookError::invalid(
            "topic",
            "must not be NULL; the topics are listed in webhook.topics",
        )
        .raise()
    };
    let Some(body) = body else {
        WebhookError::invalid("body", "must not be NULL; pass the event's JSON body").raise()
    };
    let Some(route) = route(topic) else {
        WebhookError::invalid(
            "topic",
            format!("unknown topic {topic:?}; the allowed topics are listed in webhook.topics"),
        )
        .raise()
    };
    if !route.enabled || !wanted::topic_wanted(topic) {
        return None;
    }
    let event_id = super::event_id::new_event_id();
    // SAFETY: plain function call; clock_timestamp() is what the SQL used.
    let created_at = unsafe { pg_sys::GetCurrentTimestamp() };
    let envelope;
    let queued_body = match &route.braincert {
        None => body,
        Some(fields) => {
            envelope = braincert_envelope(&event_id, fields, &route.tenant_id, created_at, body);
            &envelope
        }
    };
    let queued = queue_event(
        route.fan_out.then_some(route.slot),
        &event_id,
        topic,
        queued_body,
        &route.tenant_id,
        created_at,
    );
    if queued == 0 {
        return None;
    }
    shmem::wake_worker_at_commit();
    Some(event_id)
}

/// The topic's route: cached until the queueing settings change (see
/// `wanted.rs` for the generation and why the snapshot is taken after it
/// is read).
fn route(topic: &str) -> Option<Rc<Route>> {
    let Some(generation) = wanted::cache_generation() else {
        return load_route(topic, ReadAs::Current);
    };
    let cached = ROUTES.with_borrow(|routes| {
        routes
            .as_ref()
            .filter(|r| r.generation == generation)
            .and_then(|r| r.by_topic.get(topic).cloned())
    });
    if let Some(route) = cached {
        return Some(route);
    }
    let route = load_route(topic, ReadAs::Latest)?;
    ROUTES.with_borrow_mut(|routes| {
        let routes = match routes {
            Some(r) if r.generation == generation => r,
            _ => routes.insert(Routes {
                generation,
                by_topic: HashMap::new(),
            }),
        };
        routes.by_topic.insert(topic.to_owned(), Rc::clone(&route));
    });
    Some(route)
}

fn load_route(topic: &str, read_as: ReadAs) -> Option<Rc<Route>> {
    Spi::connect(|_client| {
        // SAFETY: SPI is connected for the closure's duration; the kept
        // plan takes one text argument; the tuple table is read before
        // SPI_finish frees it, and the values are copied into Rust strings.
        unsafe {
            let plan = wanted::kept_plan(&ROUTE_PLAN, TOPIC_ROUTE, &[pg_sys::TEXTOID]);
            let mut args = [text_datum(topic)];
            let status = wanted::execute_read_only(plan, args.as_mut_ptr(), read_as);
            if status != pg_sys::SPI_OK_SELECT as i32 {
                pgrx::error!(
                    "webhook.enqueue: reading the topic's settings failed (SPI status {status})"
                );
            }
            if pg_sys::SPI_processed == 0 {
                return None;
            }
            let table = pg_sys::SPI_tuptable;
            let row = *(*table).vals;
            let desc = (*table).tupdesc;
            let text = |column: i32| {
                let value = pg_sys::SPI_getvalue(row, desc, column);
                (!value.is_null()).then(|| CStr::from_ptr(value).to_string_lossy().into_owned())
            };
            let braincert = text(3).as_deref() == Some("t");
            let fan_out = text(7).as_deref() == Some("t");
            let slot = if fan_out { current_slot(read_as) } else { 0 };
            Some(Rc::new(Route {
                enabled: text(1).as_deref() == Some("t"),
                tenant_id: text(2).unwrap_or_default(),
                braincert: braincert.then(|| Envelope {
                    resource: text(4),
                    action: text(5),
                    tenant_first: text(6).as_deref() == Some("t"),
                }),
                fan_out,
                slot,
            }))
        }
    })
}

/// The current log slot; 0 if `webhook.log_slots` names none (a write
/// never fails for it: slot 0's partitions exist).
///
/// # Safety
/// SPI must be connected.
unsafe fn current_slot(read_as: ReadAs) -> i16 {
    let plan = wanted::kept_plan(&SLOT_PLAN, CURRENT_SLOT, &[]);
    let status = wanted::execute_read_only(plan, std::ptr::null_mut(), read_as);
    if status != pg_sys::SPI_OK_SELECT as i32 || pg_sys::SPI_processed == 0 {
        return 0;
    }
    let table = pg_sys::SPI_tuptable;
    let value = pg_sys::SPI_getvalue(*(*table).vals, (*table).tupdesc, 1);
    if value.is_null() {
        return 0;
    }
    CStr::from_ptr(value)
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Run `QUEUE_EVENT` into log slot `fan_out_slot` (or, before the fan-out,
/// `QUEUE_EVENT_BEFORE_FAN_OUT`); returns how many rows it queued.
fn queue_event(
    fan_out_slot: Option<i16>,
    event_id: &str,
    topic: &str,
    body: &str,
    tenant_id: &str,
    created_at: pg_sys::TimestampTz,
) -> u64 {
    Spi::connect_mut(|_client| {
        // SAFETY: SPI is connected; the arguments match the plan's types
        // (text, text, json, text, timestamptz, and smallint with the
        // fan-out) and live in the current memory context for the call.
        unsafe {
            let types = [
                pg_sys::TEXTOID,
                pg_sys::TEXTOID,
                pg_sys::JSONOID,
                pg_sys::TEXTOID,
                pg_sys::TIMESTAMPTZOID,
                pg_sys::INT2OID,
            ];
            let mut args = [
                text_datum(event_id),
                text_datum(topic),
                text_datum(body),
                text_datum(tenant_id),
                pg_sys::Datum::from(created_at),
                pg_sys::Datum::from(fan_out_slot.unwrap_or(0)),
            ];
            let plan = match fan_out_slot {
                Some(_) => wanted::kept_plan(&QUEUE_PLAN, QUEUE_EVENT, &types),
                None => wanted::kept_plan(
                    &QUEUE_BEFORE_FAN_OUT_PLAN,
                    QUEUE_EVENT_BEFORE_FAN_OUT,
                    &types[..5],
                ),
            };
            let status =
                pg_sys::SPI_execute_plan(plan, args.as_mut_ptr(), std::ptr::null(), false, 0);
            if status != pg_sys::SPI_OK_INSERT as i32 {
                pgrx::error!("webhook.enqueue: queueing the event failed (SPI status {status})");
            }
            pg_sys::SPI_processed
        }
    })
}

/// The BrainCert envelope's fields of `topic`, `None` for a flat body (or
/// no such topic).
pub(crate) fn envelope_of(topic: &str) -> Option<Envelope> {
    route(topic).and_then(|r| r.braincert.clone())
}

/// Queue the event of `topic` for the row `key` unbuilt, with `error`
/// (see `QUEUE_UNBUILT`); nothing when the global switch is off. Runs as
/// the extension owner.
/// `error` is kept with the event (webhook_admin reads it), `summary` on
/// the deliveries (PUBLIC reads them).
pub(crate) fn queue_unbuilt(topic: &str, key: &str, error: &str, summary: &str) {
    let Some(route) = route(topic) else { return };
    if !route.enabled {
        return;
    }
    let event_id = super::event_id::new_event_id();
    let result = Spi::connect_mut(|client| {
        client
            .update(
                QUEUE_UNBUILT,
                None,
                &[
                    event_id.as_str().into(),
                    topic.into(),
                    route.tenant_id.as_str().into(),
                    error.into(),
                    key.into(),
                    DeliveryStatus::Unbuilt.as_str().into(),
                    summary.into(),
                ],
            )
            .map(|_| ())
    });
    if let Err(e) = result {
        WebhookError::from(e).raise()
    }
}

/// A text (or json: same representation) datum in the current memory context.
unsafe fn text_datum(value: &str) -> pg_sys::Datum {
    pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(
        value.as_ptr().cast(),
        value.len() as i32,
    ))
}

/// The BrainCert envelope around `payload`, byte for byte what
/// `json_build_object` made of the same fields in 0.1.0 (`"key" : value`
/// pairs separated by ", "), so that bodies queued before and after an
/// upgrade look alike. `created_at` is written like
/// `to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')` and
/// `timestamp` is its Unix time in whole seconds.
pub(crate) fn braincert_envelope(
    event_id: &str,
    fields: &Envelope,
    tenant_id: &str,
    created_at: pg_sys::TimestampTz,
    payload: &str,
) -> String {
    let (unix_seconds, iso) = utc_iso_millis(created_at);
    let tenant = json_string(Some(tenant_id));
    let (first, second) = if fields.tenant_first {
        ("tenant_id", "domain_id")
    } else {
        ("domain_id", "tenant_id")
    };
    format!(
        "{{\"id\" : {}, \"resource\" : {}, \"action\" : {}, \"{first}\" : {tenant}, \"{second}\" : {tenant}, \"created_at\" : \"{iso}\", \"timestamp\" : {unix_seconds}, \"payload\" : {payload}}}",
        json_string(Some(event_id)),
        json_string(fields.resource.as_deref()),
        json_string(fields.action.as_deref()),
    )
}

fn json_string(value: Option<&str>) -> String {
    match value {
        // Escapes what PostgreSQL's escape_json escapes, the same way.
        Some(v) => serde_json::Value::from(v).to_string(),
        None => "null".to_owned(),
    }
}

/// Microseconds since 2000-01-01 UTC → (Unix seconds, floored;
/// "YYYY-MM-DDTHH:MM:SS.mmmZ" with the milliseconds truncated).
fn utc_iso_millis(ts: pg_sys::TimestampTz) -> (i64, String) {
    const POSTGRES_EPOCH_UNIX_SECONDS: i64 = 946_684_800;
    let seconds = ts.div_euclid(1_000_000) + POSTGRES_EPOCH_UNIX_SECONDS;
    let millis = ts.rem_euclid(1_000_000) / 1000;
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    let iso = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    );
    (seconds, iso)
}

/// Days since 1970-01-01 → proleptic Gregorian (year, month, day)
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-01-26 22:17:01.924567 UTC in PostgreSQL's microseconds.
    const SAMPLE_TS: i64 = (1_706_307_421 - 946_684_800) * 1_000_000 + 924_567;

    #[test]
    fn timestamps_are_utc_with_truncated_milliseconds() {
        assert_eq!(
            utc_iso_millis(SAMPLE_TS),
            (1_706_307_421, "2024-01-26T22:17:01.924Z".to_owned())
        );
        assert_eq!(
            utc_iso_millis(0),
            (946_684_800, "2000-01-01T00:00:00.000Z".to_owned())
        );
        // A leap day, and the last microsecond of a year.
        let leap = (1_709_164_800 - 946_684_800) * 1_000_000;
        assert_eq!(utc_iso_millis(leap).1, "2024-02-29T00:00:00.000Z");
        let last = (1_735_689_600 - 946_684_800) * 1_000_000 - 1;
        assert_eq!(
            utc_iso_millis(last),
            (1_735_689_599, "2024-12-31T23:59:59.999Z".to_owned())
        );
    }

    #[test]
    fn the_envelope_has_json_build_objects_layout() {
        let body = braincert_envelope(
            "01J",
            &fields(Some("course_enrollment"), Some("enrollment"), false),
            "acme \"a\"",
            SAMPLE_TS,
            "{\"a\" : 1}",
        );
        assert_eq!(
            body,
            "{\"id\" : \"01J\", \"resource\" : \"course_enrollment\", \"action\" : \"enrollment\", \"domain_id\" : \"acme \\\"a\\\"\", \"tenant_id\" : \"acme \\\"a\\\"\", \"created_at\" : \"2024-01-26T22:17:01.924Z\", \"timestamp\" : 1706307421, \"payload\" : {\"a\" : 1}}"
        );
        assert!(
            braincert_envelope("x", &fields(None, None, false), "t", 0, "1")
                .contains("\"resource\" : null, \"action\" : null")
        );
        assert!(braincert_envelope(
            "x",
            &fields(Some("user"), Some("updated"), true),
            "t",
            0,
            "1"
        )
        .contains("\"action\" : \"updated\", \"tenant_id\" : \"t\", \"domain_id\" : \"t\", "));
    }

    fn fields(resource: Option<&str>, action: Option<&str>, tenant_first: bool) -> Envelope {
        Envelope {
            resource: resource.map(str::to_owned),
            action: action.map(str::to_owned),
            tenant_first,
        }
    }
}
