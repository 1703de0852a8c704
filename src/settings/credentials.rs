//! A webhook's credentials as settings: the mTLS identity (parsed and
//! checked when saved and when loaded) and OAuth2 client credentials with
//! their cached token. Fetching a token is the HTTP layer's
//! (`crate::http::auth`).

use crate::error::{Result, WebhookError};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Mutex;
use std::time::Instant;

/// A client certificate chain and its private key, parsed and checked.
pub struct ClientIdentity {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ClientIdentity({} certificates, key hidden)",
            self.certs.len()
        )
    }
}

impl ClientIdentity {
    /// Parse PEM text; the key must belong to the first certificate.
    pub fn from_pem(certificate: &str, key: &str) -> Result<ClientIdentity> {
        let certs: Vec<CertificateDer<'static>> =
            rustls_pemfile::certs(&mut certificate.as_bytes())
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| {
                    WebhookError::invalid(
                        "client_certificate",
                        format!("is not valid PEM ({e}); expected -----BEGIN CERTIFICATE-----"),
                    )
                })?;
        if certs.is_empty() {
            return Err(WebhookError::invalid(
                "client_certificate",
                "holds no certificate; expected PEM text starting with -----BEGIN CERTIFICATE-----",
            ));
        }
        let key = rustls_pemfile::private_key(&mut key.as_bytes())
            .map_err(|e| WebhookError::invalid("client_key", format!("is not valid PEM ({e})")))?
            .ok_or_else(|| {
                WebhookError::invalid(
                    "client_key",
                    "holds no private key; expected PEM text such as -----BEGIN PRIVATE KEY-----",
                )
            })?;
        let identity = ClientIdentity { certs, key };
        // Building a config checks the key type and that it matches.
        identity.client_config(rustls::RootCertStore::empty())?;
        Ok(identity)
    }

    /// A TLS client configuration presenting this identity.
    pub fn client_config(&self, roots: rustls::RootCertStore) -> Result<rustls::ClientConfig> {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| WebhookError::Internal(format!("TLS setup: {e}")))?
            .with_root_certificates(roots)
            .with_client_auth_cert(self.certs.clone(), self.key.clone_key())
            .map_err(|e| {
                WebhookError::invalid(
                    "client_key",
                    format!("cannot be used with client_certificate: {e}"),
                )
            })
    }
}

/// OAuth2 client credentials (RFC 6749 section 4.4) and the cached token.
pub struct OAuth2 {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub scope: Option<String>,
    /// Locked while a token is fetched, so concurrent requests to one
    /// endpoint fetch it once.
    pub(crate) token: Mutex<Option<Token>>,
}

impl std::fmt::Debug for OAuth2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth2")
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Token {
    pub(crate) access_token: String,
    /// None: the endpoint gave no expires_in; kept until a 401.
    pub(crate) refresh_at: Option<Instant>,
}

impl OAuth2 {
    pub fn new(
        token_url: String,
        client_id: String,
        client_secret: String,
        scope: Option<String>,
    ) -> OAuth2 {
        OAuth2 {
            token_url,
            client_id,
            client_secret,
            scope,
            token: Mutex::new(None),
        }
    }
}
