//! `webhook.create_webhook` and `webhook.update_webhook`: their arguments
//! become a JSON object keyed by column (`Changes`), applied in one
//! statement that names the columns as the catalog spells them
//! (`jsonb_populate_record` converts each value to its column's type). The
//! row's rules are checked by the registry's trigger, whatever wrote it.
//!
//! webhook_admin reads `webhook.webhooks` but writes it only through these
//! functions (table privileges would also let it lock the table, which
//! every writer and the worker read): they run as the caller, who must be
//! allowed to EXECUTE them, and write as the extension owner. Not SECURITY
//! DEFINER: the caller's current role, the one an outcome callback will run
//! as, must be visible (a SECURITY DEFINER function of an admin's, or a
//! topic's builder, calling them makes that admin the caller, not the
//! session's user); and nothing in a security-restricted operation (a
//! builder run for a writer) may change webhooks.

use crate::error::{OrRaise, Result, WebhookError};
use crate::render::signature;
use crate::write::builder::contained_all;
use crate::write::definer::{as_role, extension_owner};
use pgrx::callconv::{Arg, ArgAbi};
use pgrx::datum::DatumWithOid;
use pgrx::nullable::Nullable;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin,
};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::PgSqlErrorCode;
use pgrx::{FromDatum, IntoDatum, JsonB};
use serde_json::{Map, Value};

/// A jsonb argument kept as PostgreSQL's own datum, never parsed into
/// serde's numbers (f64): a filter's 30-digit number or 0.30000000000000000001
/// is stored exactly as given. Valid for the call it is an argument of.
pub struct RawJsonb(pg_sys::Datum);

impl FromDatum for RawJsonb {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<RawJsonb> {
        (!is_null).then_some(RawJsonb(datum))
    }
}

impl IntoDatum for RawJsonb {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(self.0)
    }
    fn type_oid() -> pg_sys::Oid {
        pg_sys::JSONBOID
    }
}

// SAFETY: the SQL type is jsonb, whose datums this type carries unchanged.
unsafe impl SqlTranslatable for RawJsonb {
    const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!(RawJsonb);
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: std::result::Result<SqlMappingRef, ArgumentError> =
        Ok(SqlMappingRef::literal("jsonb"));
    const RETURN_SQL: std::result::Result<ReturnsRef, ReturnsError> =
        Ok(ReturnsRef::One(SqlMappingRef::literal("jsonb")));
}

// SAFETY: as pgrx does for its own types read with FromDatum.
unsafe impl<'fcx> ArgAbi<'fcx> for RawJsonb {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        unsafe {
            arg.unbox_arg_using_from_datum()
                .unwrap_or_else(|| panic!("argument {index} must not be null"))
        }
    }

    unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
        unsafe { arg.unbox_arg_using_from_datum().into() }
    }
}

/// `row.given(column, argument)` for arguments named as their columns.
macro_rules! given {
    ($row:ident: $($column:ident),* $(,)?) => {
        $( $row.given(stringify!($column), $column); )*
    };
}

/// Column values to write, by column name: plain values as JSON, jsonb
/// settings as their datum (merged into the row in SQL, never through serde).
#[derive(Default)]
struct Changes(Map<String, Value>, Vec<(&'static str, RawJsonb)>);

impl Changes {
    /// Set the jsonb setting `column` when a value is given. A JSON `null`
    /// is refused: it would be read as SQL NULL.
    fn given_jsonb(&mut self, column: &'static str, value: Option<RawJsonb>) -> Result<()> {
        if let Some(v) = value {
            if json_type(&v)? == "null" {
                return Err(WebhookError::invalid(
                    column,
                    "must be a JSON object (not the JSON value null); use SQL NULL to leave it unchanged",
                ));
            }
            self.1.push((column, v));
        }
        Ok(())
    }

    /// Set the outcome callback when one is named: the function (resolved
    /// under the pinned search_path, so schema-qualified) and the role it
    /// runs as, the caller (the trigger checks that role may run it).
    fn callback(&mut self, name: Option<&str>) -> Result<()> {
        let Some(name) = name else { return Ok(()) };
        let lookup = if name.contains('(') {
            "SELECT pg_catalog.to_regprocedure($1)::pg_catalog.oid"
        } else {
            "SELECT pg_catalog.to_regproc($1)::pg_catalog.oid"
        };
        // A name that does not even parse is "no function" too, not
        // PostgreSQL's bare syntax error.
        // SAFETY: a subtransaction around one catalog lookup, main thread.
        let found = unsafe {
            contained_all(|| Spi::get_one_with_args::<pg_sys::Oid>(lookup, &[name.into()]))
        };
        let function = found
            .ok()
            .and_then(|r| r.ok())
            .flatten()
            .ok_or_else(|| {
                WebhookError::invalid(
                    "outcome_callback",
                    format!("no function {name} (schema-qualified, e.g. lms.on_outcome, or with its argument: lms.on_outcome(jsonb))"),
                )
            })?;
        // SAFETY: reads the current user: the caller's role (these functions
        // are not SECURITY DEFINER), on the main thread.
        let owner = unsafe { pg_sys::GetUserId() };
        self.0
            .insert("outcome_callback".into(), u32::from(function).into());
        self.0
            .insert("outcome_callback_owner".into(), u32::from(owner).into());
        Ok(())
    }

    fn has(&self, column: &str) -> bool {
        self.0.get(column).is_some_and(|v| !v.is_null()) || self.1.iter().any(|(c, _)| *c == column)
    }

    /// Set `column` when a value is given (None: not given).
    fn given<T: Into<Value>>(&mut self, column: &str, value: Option<T>) {
        if let Some(v) = value {
            self.0.insert(column.to_owned(), v.into());
        }
    }

    /// Clear `columns` (the `clear_*` arguments), refusing a value given
    /// for one of them in the same call.
    fn clear(&mut self, columns: &[&str]) -> Result<()> {
        for column in columns {
            if self.has(column) {
                return Err(both_set_and_cleared());
            }
            self.0.insert((*column).to_owned(), Value::Null);
        }
        Ok(())
    }

    /// The columns to write, quoted as the catalog names them; a name that
    /// is not a column of `webhook.webhooks` is an internal error.
    fn columns(&self, client: &SpiClient) -> Result<Vec<String>> {
        let mut names: Vec<String> = self.0.keys().cloned().collect();
        names.extend(self.1.iter().map(|(c, _)| (*c).to_owned()));
        let quoted: Vec<String> = client
            .select(
                "SELECT pg_catalog.quote_ident(a.attname) FROM pg_catalog.pg_attribute a
                  WHERE a.attrelid = 'webhook.webhooks'::pg_catalog.regclass AND a.attnum > 0
                    AND NOT a.attisdropped AND a.attname = ANY ($1::text[])
                  ORDER BY a.attnum",
                None,
                &[names.clone().into()],
            )?
            .filter_map(|row| row.get::<String>(1).ok().flatten())
            .collect();
        if quoted.len() != names.len() {
            return Err(WebhookError::Internal(format!(
                "webhook.webhooks lacks a column of {names:?}"
            )));
        }
        Ok(quoted)
    }

    /// The statement's row argument: `$n` (plain values) merged with the
    /// jsonb settings, each named and valued by an argument after it.
    fn row_sql(&self, n: usize) -> String {
        let mut sql = format!("${n}::jsonb");
        if !self.1.is_empty() {
            let pairs: Vec<String> = (0..self.1.len())
                .map(|i| format!("${}::text, ${}::jsonb", n + 1 + 2 * i, n + 2 + 2 * i))
                .collect();
            sql = format!(
                "({sql} || pg_catalog.jsonb_build_object({}))",
                pairs.join(", ")
            );
        }
        sql
    }

    /// The arguments `row_sql` names, in order.
    fn args(self) -> Vec<DatumWithOid<'static>> {
        let mut args: Vec<DatumWithOid<'static>> = vec![JsonB(Value::Object(self.0)).into()];
        for (column, raw) in self.1 {
            args.push(column.into());
            args.push(raw.into());
        }
        args
    }
}

/// `jsonb_typeof` of a jsonb argument.
fn json_type(value: &RawJsonb) -> Result<String> {
    let raw = RawJsonb(value.0);
    Ok(
        Spi::get_one_with_args::<String>("SELECT pg_catalog.jsonb_typeof($1)", &[raw.into()])?
            .unwrap_or_default(),
    )
}

fn both_set_and_cleared() -> WebhookError {
    WebhookError::invalid(
        "clear_*/rotate_signing_secret",
        "cannot both set and clear the same setting",
    )
}

/// Webhooks are never changed from a security-restricted operation: a
/// topic's builder (or condition) runs as its definer for whoever writes,
/// and must not act on the definer's behalf beyond building the body.
pub(crate) fn refuse_restricted() {
    // SAFETY: reads the session's security context, on the main thread.
    if unsafe { pg_sys::InSecurityRestrictedOperation() } {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "webhooks cannot be created or changed in a security-restricted operation (a topic's builder or condition, an index expression, a materialized view refresh)"
        );
    }
}

/// `topics` as JSON: a NULL element stays null (the trigger names it).
fn topic_list(topics: Option<Vec<Option<String>>>) -> Option<Value> {
    topics.map(|t| {
        Value::Array(
            t.into_iter()
                .map(|x| x.map_or(Value::Null, Value::String))
                .collect(),
        )
    })
}

/// Register a webhook; returns its id. Raises 22023 naming the field on
/// bad input.
#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn create_webhook(
    name: Option<&str>,
    url: Option<&str>,
    topics: Option<Vec<Option<String>>>,
    content_type: default!(Option<&str>, "'application/json'"),
    description: default!(Option<&str>, "NULL"),
    auth_username: default!(Option<&str>, "NULL"),
    auth_password: default!(Option<&str>, "NULL"),
    body_template: default!(Option<&str>, "NULL"),
    enabled: default!(Option<bool>, "true"),
    signing_secret: default!(Option<&str>, "NULL"),
    generate_signing_secret: default!(Option<bool>, "false"),
    headers: default!(Option<RawJsonb>, "'{}'"),
    timeout_ms: default!(Option<i32>, "NULL"),
    bearer_token: default!(Option<&str>, "NULL"),
    rate_limit_per_second: default!(Option<i32>, "NULL"),
    ordering: default!(Option<&str>, "'none'"),
    ordering_key: default!(Option<&str>, "NULL"),
    client_certificate: default!(Option<&str>, "NULL"),
    client_key: default!(Option<&str>, "NULL"),
    oauth2_token_url: default!(Option<&str>, "NULL"),
    oauth2_client_id: default!(Option<&str>, "NULL"),
    oauth2_client_secret: default!(Option<&str>, "NULL"),
    oauth2_scope: default!(Option<&str>, "NULL"),
    filter: default!(Option<RawJsonb>, "NULL"),
    outcome_callback: default!(Option<&str>, "NULL"),
    callback_on_failure: default!(Option<bool>, "false"),
) -> i64 {
    // The row's defaults stand for an argument not given (or NULL).
    let mut row = Changes::default();
    // Each argument named as its column, put in the row when given.
    given!(row: name, url, content_type, description, auth_username, auth_password, body_template,
        enabled, timeout_ms, bearer_token, rate_limit_per_second, ordering, ordering_key,
        client_certificate, client_key, oauth2_token_url, oauth2_client_id, oauth2_client_secret,
        oauth2_scope, callback_on_failure);
    row.0
        .insert("topics".into(), topic_list(topics).unwrap_or(Value::Null));
    if generate_signing_secret == Some(true) {
        if signing_secret.is_some() {
            WebhookError::invalid(
                "signing_secret",
                "give a secret or generate_signing_secret => true, not both",
            )
            .raise();
        }
        row.given("signing_secret", Some(signature::generate_secret()));
    } else {
        row.given("signing_secret", signing_secret);
    }
    row.given_jsonb("headers", headers).or_raise();
    row.given_jsonb("filter", filter).or_raise();
    row.callback(outcome_callback).or_raise();
    refuse_restricted();
    as_role(extension_owner(), || Spi::connect_mut(|client| -> Result<i64> {
        let columns = row.columns(client)?;
        let values: Vec<String> = columns.iter().map(|c| format!("r.{c}")).collect();
        // Identifiers from the catalog (columns()); the values are the
        // argument. A webhook being deleted (left to the worker by
        // delete_webhook) no longer exists for an update, nor for
        // enable_webhook, which goes through here.
        let insert = format!(
            "INSERT INTO webhook.webhooks ({}) SELECT {} FROM pg_catalog.jsonb_populate_record(NULL::webhook.webhooks, {}) r RETURNING id",
            columns.join(", "),
            values.join(", "),
            row.row_sql(1)
        );
        // No row limit: with one, the executor stops at the RETURNING row
        // and the statement's AFTER triggers (subscriptions_changed) never fire.
        let id = client
            .update(&insert, None, &row.args())?
            .first()
            .get::<i64>(1)?;
        id.ok_or_else(|| WebhookError::Internal("create_webhook: no id returned".into()))
    }))
    .or_raise()
}

/// Change only the given settings of a webhook (NULL = unchanged; clear_*
/// to remove optional ones).
#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn update_webhook(
    id: Option<i64>,
    name: default!(Option<&str>, "NULL"),
    url: default!(Option<&str>, "NULL"),
    topics: default!(Option<Vec<Option<String>>>, "NULL"),
    content_type: default!(Option<&str>, "NULL"),
    description: default!(Option<&str>, "NULL"),
    auth_username: default!(Option<&str>, "NULL"),
    auth_password: default!(Option<&str>, "NULL"),
    body_template: default!(Option<&str>, "NULL"),
    enabled: default!(Option<bool>, "NULL"),
    signing_secret: default!(Option<&str>, "NULL"),
    headers: default!(Option<RawJsonb>, "NULL"),
    timeout_ms: default!(Option<i32>, "NULL"),
    clear_auth: default!(Option<bool>, "false"),
    clear_body_template: default!(Option<bool>, "false"),
    clear_signing_secret: default!(Option<bool>, "false"),
    rotate_signing_secret: default!(Option<bool>, "false"),
    rotation_overlap: default!(Option<Interval>, "'24:00:00'"),
    bearer_token: default!(Option<&str>, "NULL"),
    clear_bearer_token: default!(Option<bool>, "false"),
    rate_limit_per_second: default!(Option<i32>, "NULL"),
    clear_rate_limit: default!(Option<bool>, "false"),
    ordering: default!(Option<&str>, "NULL"),
    ordering_key: default!(Option<&str>, "NULL"),
    client_certificate: default!(Option<&str>, "NULL"),
    client_key: default!(Option<&str>, "NULL"),
    clear_client_certificate: default!(Option<bool>, "false"),
    oauth2_token_url: default!(Option<&str>, "NULL"),
    oauth2_client_id: default!(Option<&str>, "NULL"),
    oauth2_client_secret: default!(Option<&str>, "NULL"),
    oauth2_scope: default!(Option<&str>, "NULL"),
    clear_oauth2: default!(Option<bool>, "false"),
    filter: default!(Option<RawJsonb>, "NULL"),
    clear_filter: default!(Option<bool>, "false"),
    outcome_callback: default!(Option<&str>, "NULL"),
    callback_on_failure: default!(Option<bool>, "NULL"),
    clear_outcome_callback: default!(Option<bool>, "false"),
) {
    let flag = |f: Option<bool>| f == Some(true);
    let mut row = Changes::default();
    // Each argument named as its column, put in the row when given.
    given!(row: name, url, content_type, description, auth_username, auth_password, body_template,
        enabled, timeout_ms, bearer_token, rate_limit_per_second, ordering, ordering_key,
        client_certificate, client_key, oauth2_token_url, oauth2_client_id, oauth2_client_secret,
        oauth2_scope, callback_on_failure);
    row.given("topics", topic_list(topics));
    row.given("signing_secret", signing_secret);
    row.given_jsonb("headers", headers).or_raise();
    row.given_jsonb("filter", filter).or_raise();
    row.callback(outcome_callback).or_raise();
    let clears: [(Option<bool>, &[&str]); 8] = [
        (clear_auth, &["auth_username", "auth_password"]),
        (clear_body_template, &["body_template"]),
        (clear_bearer_token, &["bearer_token"]),
        (clear_rate_limit, &["rate_limit_per_second"]),
        (
            clear_client_certificate,
            &["client_certificate", "client_key"],
        ),
        (
            clear_oauth2,
            &[
                "oauth2_token_url",
                "oauth2_client_id",
                "oauth2_client_secret",
                "oauth2_scope",
            ],
        ),
        (clear_filter, &["filter"]),
        (
            clear_outcome_callback,
            &["outcome_callback", "outcome_callback_owner"],
        ),
    ];
    let (clear_secret, rotate) = (flag(clear_signing_secret), flag(rotate_signing_secret));
    let outcome = (|| -> Result<()> {
        for (wanted, columns) in clears {
            if flag(wanted) {
                row.clear(columns)?;
            }
        }
        if ((clear_secret || rotate) && signing_secret.is_some()) || (clear_secret && rotate) {
            return Err(both_set_and_cleared());
        }
        // Back to unordered or fifo: a key path no longer applies.
        if ordering.is_some_and(|o| o != "per_key") && ordering_key.is_none() {
            row.0.insert("ordering_key".into(), Value::Null);
        }
        Ok(())
    })();
    outcome.or_raise();
    let Some(id) = id else {
        WebhookError::NotFound {
            what: "id: webhook",
            key: "NULL".into(),
        }
        .raise()
    };
    refuse_restricted();
    as_role(extension_owner(), || Spi::connect_mut(|client| -> Result<()> {
        let secret_changes = clear_secret || rotate || signing_secret.is_some();
        change_secret(client, &mut row, id, (clear_secret, rotate, secret_changes), rotation_overlap)?;
        if row.0.is_empty() && row.1.is_empty() {
            // Nothing given: the row is still touched (updated_at), and a
            // missing webhook still reported.
            row.0.insert("updated_at".into(), Value::Null);
        }
        let columns = row.columns(client)?;
        let values: Vec<String> = columns.iter().map(|c| format!("r.{c}")).collect();
        // Identifiers from the catalog (columns()); the values are the
        // argument. A webhook being deleted (left to the worker by
        // delete_webhook) no longer exists for an update, nor for
        // enable_webhook, which goes through here.
        let update = format!(
            "UPDATE webhook.webhooks w SET ({}) = (SELECT {} FROM pg_catalog.jsonb_populate_record(w, {}) r) \
             WHERE w.id = $1 AND w.deletion_requested_at IS NULL RETURNING w.id",
            columns.join(", "),
            values.join(", "),
            row.row_sql(2)
        );
        let mut args: Vec<DatumWithOid> = vec![id.into()];
        args.extend(row.args());
        let updated = client.update(&update, None, &args)?;
        if updated.is_empty() {
            return Err(WebhookError::NotFound {
                what: "id: webhook",
                key: id.to_string(),
            });
        }
        Ok(())
    }))
    .or_raise();
}

/// A new, rotated or cleared signing secret. Rotation keeps the old secret
/// signing for the overlap; any other change of the secret replaces it at
/// once. The overlap is checked whether or not the secret changes.
fn change_secret(
    client: &mut SpiClient,
    row: &mut Changes,
    id: i64,
    (clear, rotate, changes): (bool, bool, bool),
    overlap: Option<Interval>,
) -> Result<()> {
    let overlap: DatumWithOid = overlap.into();
    // The row is locked first, as the UPDATE after this would: a concurrent
    // rotation then waits, and rotates the secret this one sets.
    let current = client.update(
        "SELECT coalesce($2, interval '0') < interval '0' OR coalesce($2, interval '0') > interval '30 days',
                coalesce($2, interval '0')::text,
                coalesce($2, interval '0') > interval '0',
                CASE WHEN coalesce($2, interval '0') BETWEEN interval '0' AND interval '30 days'
                     THEN to_jsonb(now() + coalesce($2, interval '0')) END,
                (SELECT w.signing_secret FROM webhook.webhooks w WHERE w.id = $1 FOR NO KEY UPDATE)",
        Some(1),
        &[id.into(), overlap],
    )?;
    let current = current.first();
    if current.get::<bool>(1)?.unwrap_or(false) {
        let shown = current.get::<String>(2)?.unwrap_or_default();
        return Err(WebhookError::invalid(
            "rotation_overlap",
            format!("{shown} is out of range; allowed: 0 to 30 days"),
        ));
    }
    if !changes {
        return Ok(());
    }
    let overlaps = current.get::<bool>(3)?.unwrap_or(false);
    let until: Option<JsonB> = current.get(4)?;
    let old_secret: Option<String> = current.get(5)?;
    let (mut previous, mut previous_until) = (Value::Null, Value::Null);
    if clear {
        row.0.insert("signing_secret".into(), Value::Null);
    } else if rotate {
        row.0
            .insert("signing_secret".into(), signature::generate_secret().into());
        if let (Some(old), true) = (old_secret, overlaps) {
            previous = old.into();
            previous_until = until.map_or(Value::Null, |u| u.0);
        }
    }
    row.0.insert("previous_signing_secret".into(), previous);
    row.0
        .insert("previous_signing_secret_until".into(), previous_until);
    Ok(())
}
