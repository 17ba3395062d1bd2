//! Authenticated encryption with AES-256-GCM in the one layout leaktrace uses everywhere:
//! `nonce[12] || ciphertext || tag[16]`, with a fresh random nonce per message and associated
//! data binding the message to its purpose. The streaming protocol uses it for the CEK and
//! segments; the server uses it to seal per-video secrets and session keys under the master key.

use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

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

fn aead_key(key: &[u8; KEY_LEN]) -> Result<LessSafeKey, SealError> {
    // ring refuses only keys of the wrong length, which the type rules out.
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| SealError::Authentication)
}

/// Encrypts and authenticates `plaintext` under `key`, bound to `aad`.
pub fn seal(key: &[u8; KEY_LEN], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    let mut buf = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    buf.extend_from_slice(&[0u8; NONCE_LEN]);
    buf.extend_from_slice(plaintext);
    seal_in_place(key, aad, buf)
}

/// [`seal`] without copying the message: `buf` holds `NONCE_LEN` bytes of room followed by
/// the plaintext; the nonce is written into the room, the rest encrypted in place and the tag
/// appended. (Segments are read from disk straight into such a buffer.)
pub fn seal_in_place(
    key: &[u8; KEY_LEN],
    aad: &[u8],
    mut buf: Vec<u8>,
) -> Result<Vec<u8>, SealError> {
    if buf.len() < NONCE_LEN {
        return Err(SealError::Truncated);
    }
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    buf[..NONCE_LEN].copy_from_slice(&nonce);
    let tag = aead_key(key)?
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf[NONCE_LEN..],
        )
        .map_err(|_| SealError::TooLong)?;
    buf.extend_from_slice(tag.as_ref());
    Ok(buf)
}

/// Inverse of [`seal`].
pub fn open(key: &[u8; KEY_LEN], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(SealError::Truncated);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::Truncated)?;
    let mut buf = body.to_vec();
    let plain_len = aead_key(key)?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        )
        .map_err(|_| SealError::Authentication)?
        .len();
    buf.truncate(plain_len);
    Ok(buf)
}

/// AAD for a per-video watermark secret sealed under the master key.
pub fn video_secret_aad(video_id: &str) -> Vec<u8> {
    format!("leaktrace/v1/video-secret/{video_id}").into_bytes()
}

/// Seals a title's watermark secret under the master key, bound to the title's id.
pub fn seal_video_secret(
    master_key: &[u8; KEY_LEN],
    video_id: &str,
    secret: &[u8; 32],
) -> Result<Vec<u8>, SealError> {
    seal(master_key, &video_secret_aad(video_id), secret)
}

/// The one unsealing of a title's watermark secret (stored sealed under the master key, bound
/// to the title's id). A secret of the wrong length is as unusable as an altered one.
pub fn open_video_secret(
    master_key: &[u8; KEY_LEN],
    video_id: &str,
    sealed: &[u8],
) -> Result<[u8; 32], SealError> {
    open(master_key, &video_secret_aad(video_id), sealed)?
        .try_into()
        .map_err(|_| SealError::Authentication)
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
        let in_place = seal_in_place(
            &key,
            b"purpose",
            [&[0u8; NONCE_LEN][..], b"secret bytes"].concat(),
        )
        .unwrap();
        assert_eq!(open(&key, b"purpose", &in_place).unwrap(), b"secret bytes");
        assert_eq!(
            seal_in_place(&key, b"p", vec![0; 3]),
            Err(SealError::Truncated)
        );
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

    #[test]
    fn a_video_secret_opens_only_for_its_title_and_key() {
        let master = [3u8; 32];
        let sealed = seal_video_secret(&master, "v1", &[7u8; 32]).unwrap();
        assert_eq!(open_video_secret(&master, "v1", &sealed), Ok([7u8; 32]));
        assert!(open_video_secret(&master, "v2", &sealed).is_err());
        assert!(open_video_secret(&[4u8; 32], "v1", &sealed).is_err());
        // Sealed with the right binding but not 32 bytes long: refused too.
        let short = seal(&master, &video_secret_aad("v1"), &[1u8; 16]).unwrap();
        assert_eq!(
            open_video_secret(&master, "v1", &short),
            Err(SealError::Authentication)
        );
    }
}
