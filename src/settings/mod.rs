//! A webhook's settings, in one place: the columns read from
//! `webhook.webhooks` by name into one typed model (`endpoint`), used by
//! the worker, the HTTP layer and Send Test; how `create_webhook` and
//! `update_webhook` write them (`api`); the rules they follow (`rules`,
//! with the parsers of `validate`). A new per-webhook setting is a column
//! (the SQL delta), its argument and line in `api`, its field in
//! `endpoint`, its rule in `rules` (see UPGRADING.md).

pub mod api;
pub mod credentials;
pub mod endpoint;
pub mod rules;
pub mod validate;
