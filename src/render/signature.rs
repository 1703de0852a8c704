//! Standard Webhooks signatures (https://www.standardwebhooks.com/):
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`,
//! keyed with the base64-decoded part of a `whsec_` secret.

use crate::error::{Result, WebhookError};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

const PREFIX: &str = "whsec_";

/// Decode a `whsec_` secret into its key bytes, explaining what is wrong.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>> {
    let field = "signing_secret";
    let encoded = secret.strip_prefix(PREFIX).ok_or_else(|| {
        WebhookError::invalid(field, "must start with \"whsec_\" followed by base64 (24 to 64 bytes); or pass generate_signing_secret => true")
    })?;
    let key = B64.decode(encoded).map_err(|e| {
        WebhookError::invalid(
            field,
            format!("the part after \"whsec_\" is not valid base64: {e}"),
        )
    })?;
    if !(24..=64).contains(&key.len()) {
        return Err(WebhookError::invalid(
            field,
            format!("the key is {} bytes; it must be 24 to 64 bytes", key.len()),
        ));
    }
    Ok(key)
}

/// A new random 32-byte secret in `whsec_` form.
pub fn generate_secret() -> String {
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    format!("{PREFIX}{}", B64.encode(key))
}

/// The `webhook-signature` header value for one request.
pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so new_from_slice cannot fail here.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // Test vector from the Standard Webhooks specification's libraries.
        let key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn bad_secrets_are_explained() {
        for s in ["abc", "whsec_!!!", "whsec_c2hvcnQ="] {
            assert!(decode_secret(s)
                .unwrap_err()
                .to_string()
                .starts_with("signing_secret: "));
        }
        assert!(decode_secret(&generate_secret()).is_ok());
    }
}
