//! Authenticated encryption with AES-256-GCM in the one layout leaktrace uses everywhere:
//! `nonce[12] || ciphertext || tag[16]`, with a fresh random nonce per message and associated
//! data binding the message to its purpose. The streaming protocol uses it for the CEK and
//! segments; the server uses it to seal per-video secrets and session keys under the master key.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;

pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
pub const KEY_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("sealed data is too short to hold a nonce and a tag")]
    Truncated,
    #[error("authentication failed: wrong key, wrong associated data or altered bytes")]
    Authentication,
    #[error("message too long to seal")]
    TooLong,
}

/// Encrypts and authenticates `plaintext` under `key`, bound to `aad`.
pub fn seal(key: &[u8; KEY_LEN], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let body = Aes256Gcm::new(key.into())
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| SealError::TooLong)?;
    let mut out = Vec::with_capacity(NONCE_LEN + body.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Inverse of [`seal`].
pub fn open(key: &[u8; KEY_LEN], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(SealError::Truncated);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    Aes256Gcm::new(key.into())
        .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad })
        .map_err(|_| SealError::Authentication)
}

/// AAD for a per-video watermark secret sealed under the master key.
pub fn video_secret_aad(video_id: &str) -> Vec<u8> {
    format!("leaktrace/v1/video-secret/{video_id}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let key = [9u8; 32];
        let a = seal(&key, b"purpose", b"secret bytes").unwrap();
        let b = seal(&key, b"purpose", b"secret bytes").unwrap();
        assert_ne!(a, b, "fresh nonce");
        assert_eq!(a.len(), NONCE_LEN + 12 + TAG_LEN);
        assert_eq!(open(&key, b"purpose", &a).unwrap(), b"secret bytes");
        assert_eq!(open(&key, b"other", &a), Err(SealError::Authentication));
        assert_eq!(
            open(&[8u8; 32], b"purpose", &a),
            Err(SealError::Authentication)
        );
        let mut flipped = a.clone();
        flipped[NONCE_LEN] ^= 0x80;
        assert_eq!(
            open(&key, b"purpose", &flipped),
            Err(SealError::Authentication)
        );
        assert_eq!(open(&key, b"purpose", &a[..27]), Err(SealError::Truncated));
        assert_eq!(video_secret_aad("v1"), b"leaktrace/v1/video-secret/v1");
    }
}
