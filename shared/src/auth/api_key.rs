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
