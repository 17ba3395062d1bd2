//! The protocol's cryptography, exactly as docs/PROTOCOL.md fixes it: X25519 key agreement,
//! HKDF-SHA256 session key, AES-256-GCM wrapping of the content key (CEK) and of every segment.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use formats::sealing::{self, SealError};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};

/// HKDF `info` for the session key.
pub const SESSION_KEY_INFO: &[u8] = b"leaktrace/v1/session-key";
pub use formats::sealing::{KEY_LEN, NONCE_LEN, TAG_LEN};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("public key is not standard padded base64 of 32 bytes")]
    MalformedPublicKey,
    #[error("the key exchange produced an all-zero shared secret (low-order public key)")]
    WeakSharedSecret,
    #[error("ciphertext is too short to hold a nonce and a tag")]
    Truncated,
    #[error("decryption failed: wrong key, wrong associated data or altered bytes")]
    Decrypt,
    #[error("ciphertext is not valid base64")]
    MalformedCiphertext,
    #[error("encryption failed: message too long")]
    Encrypt,
}

impl CryptoError {
    pub fn code(&self) -> &'static str {
        match self {
            CryptoError::MalformedPublicKey => "invalid_public_key",
            CryptoError::WeakSharedSecret => "weak_public_key",
            CryptoError::Truncated | CryptoError::MalformedCiphertext => "invalid_ciphertext",
            CryptoError::Decrypt => "decryption_failed",
            CryptoError::Encrypt => "encryption_failed",
        }
    }
}

/// AAD binding a wrapped CEK to its session.
pub fn cek_aad(session_id: &str) -> String {
    format!("leaktrace/v1/cek/{session_id}")
}

/// AAD binding a segment body to its session and segment name ("init" or the unit number).
pub fn segment_aad(session_id: &str, segment: &str) -> String {
    format!("leaktrace/v1/segment/{session_id}/{segment}")
}

/// A fresh ephemeral X25519 key pair (one per streaming session).
pub fn generate_keypair() -> (StaticSecret, PublicKey) {
    let secret = StaticSecret::random_from_rng(rand::rngs::OsRng);
    let public = PublicKey::from(&secret);
    (secret, public)
}

pub fn encode_public_key(key: &PublicKey) -> String {
    STANDARD.encode(key.as_bytes())
}

/// Parses a public key: standard padded base64 of exactly 32 raw bytes.
pub fn decode_public_key(b64: &str) -> Result<PublicKey, CryptoError> {
    let bytes = STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| CryptoError::MalformedPublicKey)?;
    let raw: [u8; KEY_LEN] = bytes
        .try_into()
        .map_err(|_| CryptoError::MalformedPublicKey)?;
    Ok(PublicKey::from(raw))
}

/// `HKDF-SHA256(salt = session_id, ikm = X25519(secret, peer), info = SESSION_KEY_INFO)`.
/// Refuses a peer key that yields the all-zero shared secret.
pub fn derive_session_key(
    own_secret: &StaticSecret,
    peer_public: &PublicKey,
    session_id: &str,
) -> Result<[u8; KEY_LEN], CryptoError> {
    let shared = own_secret.diffie_hellman(peer_public);
    if !shared.was_contributory() {
        return Err(CryptoError::WeakSharedSecret);
    }
    let hk = Hkdf::<Sha256>::new(Some(session_id.as_bytes()), shared.as_bytes());
    let mut key = [0u8; KEY_LEN];
    hk.expand(SESSION_KEY_INFO, &mut key)
        .map_err(|_| CryptoError::Decrypt)?;
    Ok(key)
}

/// `nonce[12] || AES-256-GCM(key, nonce, plaintext, aad)` with a fresh random nonce.
pub fn seal(key: &[u8; KEY_LEN], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    sealing::seal(key, aad, plaintext).map_err(CryptoError::from)
}

/// Inverse of [`seal`].
pub fn open(key: &[u8; KEY_LEN], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    sealing::open(key, aad, sealed).map_err(CryptoError::from)
}

impl From<SealError> for CryptoError {
    fn from(e: SealError) -> Self {
        match e {
            SealError::Truncated => CryptoError::Truncated,
            SealError::Authentication => CryptoError::Decrypt,
            SealError::TooLong => CryptoError::Encrypt,
        }
    }
}

/// The `encrypted_cek` field: base64 of the CEK sealed under the session key.
pub fn wrap_cek(
    session_key: &[u8; KEY_LEN],
    session_id: &str,
    cek: &[u8; KEY_LEN],
) -> Result<String, CryptoError> {
    Ok(STANDARD.encode(seal(session_key, cek_aad(session_id).as_bytes(), cek)?))
}

/// What a client does with `encrypted_cek`.
pub fn unwrap_cek(
    session_key: &[u8; KEY_LEN],
    session_id: &str,
    encrypted_cek: &str,
) -> Result<[u8; KEY_LEN], CryptoError> {
    let sealed = STANDARD
        .decode(encrypted_cek.as_bytes())
        .map_err(|_| CryptoError::MalformedCiphertext)?;
    open(session_key, cek_aad(session_id).as_bytes(), &sealed)?
        .try_into()
        .map_err(|_| CryptoError::Decrypt)
}

/// A fresh random content key.
pub fn generate_cek() -> [u8; KEY_LEN] {
    let mut cek = [0u8; KEY_LEN];
    rand::rngs::OsRng.fill_bytes(&mut cek);
    cek
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "5b0c8c4e-2f7e-4a53-9d7e-0b6f4f7b1c2a";

    #[test]
    fn both_sides_derive_the_same_session_key_and_unwrap_the_cek() {
        let (server_secret, server_public) = generate_keypair();
        let (client_secret, client_public) = generate_keypair();
        let wire_client = encode_public_key(&client_public);
        let server_key = derive_session_key(
            &server_secret,
            &decode_public_key(&wire_client).unwrap(),
            SID,
        )
        .unwrap();
        let client_key = derive_session_key(&client_secret, &server_public, SID).unwrap();
        assert_eq!(server_key, client_key);

        let cek = generate_cek();
        let wrapped = wrap_cek(&server_key, SID, &cek).unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&wrapped)
                .unwrap()
                .len(),
            NONCE_LEN + KEY_LEN + TAG_LEN
        );
        assert_eq!(unwrap_cek(&client_key, SID, &wrapped).unwrap(), cek);
        assert_eq!(
            unwrap_cek(&client_key, "another-session", &wrapped),
            Err(CryptoError::Decrypt),
            "AAD binds the CEK to its session"
        );
        let other_key = derive_session_key(&client_secret, &server_public, "x").unwrap();
        assert_ne!(other_key, client_key, "salt is the session id");
    }

    #[test]
    fn known_answer_for_hkdf_and_aad_strings() {
        // Fixed keys make the derivation reproducible for independent clients.
        let a = StaticSecret::from([1u8; 32]);
        let b = StaticSecret::from([2u8; 32]);
        let ka = derive_session_key(&a, &PublicKey::from(&b), "s-1").unwrap();
        let kb = derive_session_key(&b, &PublicKey::from(&a), "s-1").unwrap();
        assert_eq!(ka, kb);
        // Recompute by hand from the X25519 output to pin salt and info.
        let shared = a.diffie_hellman(&PublicKey::from(&b));
        let mut expect = [0u8; 32];
        Hkdf::<Sha256>::new(Some(b"s-1"), shared.as_bytes())
            .expand(b"leaktrace/v1/session-key", &mut expect)
            .unwrap();
        assert_eq!(ka, expect);
        assert_eq!(cek_aad("s-1"), "leaktrace/v1/cek/s-1");
        assert_eq!(segment_aad("s-1", "init"), "leaktrace/v1/segment/s-1/init");
    }

    #[test]
    fn malformed_and_weak_public_keys_are_refused() {
        for bad in [
            "",
            "not base64!",
            "AAAA",
            &STANDARD.encode([7u8; 31]),
            &STANDARD.encode([7u8; 33]),
        ] {
            assert_eq!(
                decode_public_key(bad).err(),
                Some(CryptoError::MalformedPublicKey),
                "{bad}"
            );
        }
        // Unpadded base64 of 32 bytes is not the contract.
        let unpadded = base64::engine::general_purpose::STANDARD_NO_PAD.encode([7u8; 32]);
        assert!(decode_public_key(&unpadded).is_err());
        let zero = decode_public_key(&STANDARD.encode([0u8; 32])).unwrap();
        let (secret, _) = generate_keypair();
        assert_eq!(
            derive_session_key(&secret, &zero, SID),
            Err(CryptoError::WeakSharedSecret)
        );
    }

    #[test]
    fn segments_are_bound_to_session_and_segment_name() {
        let cek = generate_cek();
        let plain = b"moof....mdat....".repeat(100);
        let aad = segment_aad(SID, "3");
        let a = seal(&cek, aad.as_bytes(), &plain).unwrap();
        let b = seal(&cek, aad.as_bytes(), &plain).unwrap();
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN], "fresh nonce per response");
        assert_eq!(open(&cek, aad.as_bytes(), &a).unwrap(), plain);
        assert_eq!(
            open(&cek, segment_aad(SID, "4").as_bytes(), &a),
            Err(CryptoError::Decrypt)
        );
        let mut flipped = a.clone();
        flipped[NONCE_LEN + 5] ^= 1;
        assert_eq!(
            open(&cek, aad.as_bytes(), &flipped),
            Err(CryptoError::Decrypt)
        );
        assert_eq!(
            open(&cek, aad.as_bytes(), &a[..20]),
            Err(CryptoError::Truncated)
        );
    }
}
