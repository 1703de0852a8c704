//! The HTTP client (`client::Client`) a webhook's requests go through: TLS
//! roots, the address policy, connection reuse. Built on the main thread
//! (worker, Send Test) from the GUCs, the only place those are read for it.

use super::client::Client;
use super::policy::AddressPolicy;
use super::request::{CONNECT_TIMEOUT, USER_AGENT};
use crate::error::{Result, WebhookError};
use crate::settings::credentials::ClientIdentity;
use std::sync::Arc;

/// Settings shared by every request of one agent.
pub struct AgentSettings {
    pub policy: AddressPolicy,
    pub ca_file: Option<String>,
    pub pool_size: usize,
}

impl AgentSettings {
    /// From `webhook.allowed_hosts` and `webhook.ca_file`, for a client of
    /// `pool_size` connections. With a policy that does not parse: only
    /// public addresses, and the error (Send Test refuses, the worker warns).
    pub fn from_gucs(pool_size: usize) -> (AgentSettings, Option<WebhookError>) {
        let ca_file = Some(crate::guc::string(&crate::guc::CA_FILE)).filter(|s| !s.is_empty());
        let (policy, error) =
            match AddressPolicy::parse(&crate::guc::string(&crate::guc::ALLOWED_HOSTS)) {
                Ok(policy) => (policy, None),
                Err(e) => (AddressPolicy::default(), Some(e)),
            };
        let settings = AgentSettings {
            policy,
            ca_file,
            pool_size,
        };
        (settings, error)
    }
}

fn tls_config(
    ca_file: Option<&str>,
    identity: Option<&ClientIdentity>,
) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert); // a bad system cert must not stop the others
    }
    if let Some(path) = ca_file.filter(|p| !p.is_empty()) {
        let pem = std::fs::read(path).map_err(|e| {
            WebhookError::invalid("webhook.ca_file", format!("cannot read {path}: {e}"))
        })?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert =
                cert.map_err(|e| WebhookError::invalid("webhook.ca_file", format!("{path}: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| WebhookError::invalid("webhook.ca_file", format!("{path}: {e}")))?;
        }
    }
    if let Some(identity) = identity {
        return Ok(Arc::new(identity.client_config(roots)?));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| WebhookError::Internal(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// An HTTP client with connection reuse, no redirects, and the address
/// policy, presenting `identity` (mTLS) when given. Called on the main
/// thread (worker, Send Test), which may read settings.
pub fn build_agent(settings: &AgentSettings, identity: Option<&ClientIdentity>) -> Result<Client> {
    // A connection may take the default request timeout at most (a shorter
    // timeout_ms still ends the request at its own deadline).
    let connect = CONNECT_TIMEOUT.min(crate::guc::request_timeout());
    Ok(Client::new(
        settings.policy.clone(),
        tls_config(settings.ca_file.as_deref(), identity)?,
        USER_AGENT,
        connect,
        settings.pool_size.max(8),
    ))
}
