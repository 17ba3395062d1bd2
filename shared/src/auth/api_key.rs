//! API keys for crawlers: high-entropy random strings, shown once, stored as SHA-256.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Every key starts with this, so leaked keys are easy to recognise in logs and scanners.
pub const PREFIX: &str = "ltk_";

/// A freshly generated key: `plaintext` is shown to the operator once and never stored.
pub struct NewApiKey {
    pub plaintext: String,
    /// The first characters, stored to let operators tell keys apart.
    pub display_prefix: String,
    /// Hex SHA-256 of the plaintext: what the database keeps.
    pub hash: String,
}

/// Generates a key from 32 bytes of OS randomness.
pub fn generate() -> NewApiKey {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let plaintext = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    NewApiKey {
        display_prefix: plaintext[..PREFIX.len() + 6].to_string(),
        hash: hash(&plaintext),
        plaintext,
    }
}

/// The stored form of a presented key. A plain hash suffices: keys carry 256 bits of entropy.
pub fn hash(plaintext: &str) -> String {
    hex::encode(Sha256::digest(plaintext.as_bytes()))
}

/// The secret a key's callbacks are signed with: HMAC-SHA256 keyed with the key itself over
/// `leaktrace/callback-signing/v1`. The crawler derives it from its key; leaktrace keeps it
/// sealed under the master key ([`seal_callback_secret`]), so the stored key hashes alone do
/// not let anyone sign callbacks.
pub fn callback_secret(plaintext: &str) -> [u8; 32] {
    use ring::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, plaintext.as_bytes());
    let tag = hmac::sign(&key, b"leaktrace/callback-signing/v1");
    let mut secret = [0u8; 32];
    secret.copy_from_slice(tag.as_ref());
    secret
}

/// The sealing AAD of the callback secret of the key whose hash is `hash`.
fn callback_secret_aad(hash: &str) -> Vec<u8> {
    format!("leaktrace/api-key-callback-secret/{hash}").into_bytes()
}

/// `key`'s callback secret sealed under `master_key`, as stored with the key.
pub fn seal_callback_secret(
    master_key: &[u8; 32],
    key: &NewApiKey,
) -> Result<Vec<u8>, formats::sealing::SealError> {
    formats::sealing::seal(
        master_key,
        &callback_secret_aad(&key.hash),
        &callback_secret(&key.plaintext),
    )
}

/// The callback secret stored sealed for the key whose hash is `hash`.
pub fn open_callback_secret(
    master_key: &[u8; 32],
    hash: &str,
    sealed: &[u8],
) -> Result<Vec<u8>, formats::sealing::SealError> {
    formats::sealing::open(master_key, &callback_secret_aad(hash), sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_distinct_and_hash_consistently() {
        let a = generate();
        let b = generate();
        assert_ne!(a.plaintext, b.plaintext);
        assert!(a.plaintext.starts_with(PREFIX));
        assert_eq!(a.plaintext.len(), PREFIX.len() + 43);
        assert_eq!(hash(&a.plaintext), a.hash);
        assert_eq!(a.hash.len(), 64);
        assert!(a.plaintext.starts_with(&a.display_prefix));
    }
}
