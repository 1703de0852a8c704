//! The worker's cache of webhook settings, built into `Endpoint`s (URL,
//! auth, signing keys, an HTTP client of its own for mTLS) once per
//! version of the row (`updated_at`), so a claim loads only the webhooks
//! that are new or changed.

use super::claim::Claimed;
use super::settings::Settings;
use super::txn;
use crate::http::agent::build_agent;
use crate::settings::endpoint::{self, Endpoint};
use pgrx::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Default)]
pub struct EndpointCache {
    /// Built endpoints by webhook id, with the version they were built from.
    cached: HashMap<i64, (f64, Arc<Endpoint>)>,
}

impl EndpointCache {
    pub fn get(&self, webhook_id: i64) -> Option<&Arc<Endpoint>> {
        self.cached.get(&webhook_id).map(|(_, ep)| ep)
    }

    /// Whether the webhook delivers in order (`fifo` or `per_key`).
    pub fn ordered(&self, webhook_id: i64) -> bool {
        self.get(webhook_id).is_some_and(|ep| ep.ordered)
    }

    /// The webhooks among `verdicts`' whose outcomes go to a callback.
    pub fn with_callback(&self, verdicts: &[super::verdict::Verdict]) -> Vec<i64> {
        let mut ids: Vec<i64> = verdicts
            .iter()
            .map(|v| v.outcome.webhook_id)
            .filter(|id| self.get(*id).is_some_and(|ep| ep.outcome_callback))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Forget everything (settings were reloaded).
    pub fn clear(&mut self) {
        self.cached.clear();
    }

    /// Load the settings of claimed webhooks that are new or changed since
    /// they were cached. Returns why each webhook that cannot be used
    /// (settings that fail validation, or that cannot even be read) fails.
    pub fn refresh(&mut self, claimed: &[Claimed], settings: &Settings) -> HashMap<i64, String> {
        let mut stale: Vec<i64> = claimed
            .iter()
            .filter(|c| self.cached.get(&c.webhook_id).map(|(v, _)| *v) != Some(c.webhook_version))
            .map(|c| c.webhook_id)
            .collect();
        stale.sort_unstable();
        stale.dedup();
        let mut unusable = HashMap::new();
        if stale.is_empty() {
            return unusable;
        }
        let rows = match txn::run(|| Spi::connect(|client| endpoint::load(client, stale.clone()))) {
            Ok(rows) => rows,
            // One row that cannot be read must not keep the others from
            // loading: read them one by one.
            Err(_) => stale
                .iter()
                .filter_map(|&id| {
                    match txn::run(|| Spi::connect(|client| endpoint::load(client, vec![id]))) {
                        Ok(rows) => Some(rows),
                        Err(e) => {
                            unusable.insert(id, format!("its row cannot be read: {e}"));
                            None
                        }
                    }
                })
                .flatten()
                .collect(),
        };
        let timeout = settings.request_timeout;
        for (row, version) in rows {
            let id = row.id;
            let built = Endpoint::from_row(row, timeout).and_then(|mut ep| {
                if ep.client_identity.is_some() {
                    let agent = build_agent(&settings.agent, ep.client_identity.as_ref())?;
                    ep.agent = Some(agent);
                }
                Ok(ep)
            });
            match built {
                Ok(ep) => {
                    self.cached.insert(id, (version, Arc::new(ep)));
                }
                Err(e) => {
                    unusable.insert(id, e.to_string());
                }
            }
        }
        for (id, why) in &unusable {
            warning!("webhook_emitter: webhook {id} has unusable settings: {why}");
            self.cached.remove(id);
        }
        unusable
    }
}
