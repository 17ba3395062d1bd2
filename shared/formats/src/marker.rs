//! The signed session marker, extraction's second, independent layer: a top-level ISOBMFF `uuid`
//! box appended to each session's init segment, naming the session, signed with Ed25519.
//! Trivial to strip, but exact when present, so extraction reports it as a second layer.
//!
//! Box layout (all integers big-endian):
//! `size u32 | "uuid" | MARKER_UUID (16) | version u8 = 1 | payload length u16 |
//!  payload (UTF-8 JSON: {"session_id","video_id","issued_at"}) | Ed25519 signature (64)`
//! The signature covers `"leaktrace/v1/session-marker" || version || payload`.
//!
//! The signing key is derived from the server master key (HKDF-SHA256, info
//! `leaktrace/v1/marker-signing-key`), so every instance sharing the master key signs alike
//! and nothing new has to be stored.

use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::isobmff;

/// The `uuid` box user type that identifies a leaktrace session marker.
pub const MARKER_UUID: [u8; 16] = [
    0xb0, 0xf2, 0xe8, 0x34, 0x22, 0x19, 0x4c, 0xf9, 0xa4, 0xfd, 0x98, 0x55, 0x2d, 0x99, 0x80, 0x10,
];
pub const VERSION: u8 = 1;
const SIGNED_LABEL: &[u8] = b"leaktrace/v1/session-marker";
const KEY_INFO: &[u8] = b"leaktrace/v1/marker-signing-key";

/// What a marker states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkerPayload {
    pub session_id: String,
    pub video_id: String,
    /// Unix seconds when the init segment was issued.
    pub issued_at: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MarkerError {
    #[error("the marker box is truncated or malformed")]
    Malformed,
    #[error("marker version {0} is not supported")]
    Version(u8),
    #[error("the marker's signature does not verify: it was altered or not issued by this server")]
    BadSignature,
}

/// Signs markers; built from the master key.
pub struct MarkerSigner {
    key: SigningKey,
}

impl MarkerSigner {
    pub fn from_master_key(master_key: &[u8; 32]) -> Self {
        let mut seed = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's output limit, so expand cannot fail.
        let _ = Hkdf::<Sha256>::new(None, master_key).expand(KEY_INFO, &mut seed);
        MarkerSigner {
            key: SigningKey::from_bytes(&seed),
        }
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The complete `uuid` box for `payload`.
    pub fn marker_box(&self, payload: &MarkerPayload) -> Vec<u8> {
        let json = serde_json::to_vec(payload).unwrap_or_default();
        let signature = self.key.sign(&signed_message(&json));
        let size = 8 + 16 + 1 + 2 + json.len() + 64;
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(&(size as u32).to_be_bytes());
        out.extend_from_slice(b"uuid");
        out.extend_from_slice(&MARKER_UUID);
        out.push(VERSION);
        out.extend_from_slice(&(json.len() as u16).to_be_bytes());
        out.extend_from_slice(&json);
        out.extend_from_slice(&signature.to_bytes());
        out
    }
}

/// The standard base64 form of a verifying key, as published in docs and reports.
pub fn encode_verifying_key(key: &VerifyingKey) -> String {
    base64::engine::general_purpose::STANDARD.encode(key.as_bytes())
}

fn signed_message(payload: &[u8]) -> Vec<u8> {
    [SIGNED_LABEL, &[VERSION], payload].concat()
}

/// A marker found in a file, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundMarker {
    version: u8,
    payload: Vec<u8>,
    signature: [u8; 64],
}

impl FoundMarker {
    /// Checks the signature and returns what the marker states.
    pub fn verify(&self, key: &VerifyingKey) -> Result<MarkerPayload, MarkerError> {
        if self.version != VERSION {
            return Err(MarkerError::Version(self.version));
        }
        key.verify(
            &signed_message(&self.payload),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| MarkerError::BadSignature)?;
        serde_json::from_slice(&self.payload).map_err(|_| MarkerError::Malformed)
    }

    /// What the marker claims, without checking the signature (for reporting a forged one).
    pub fn claimed(&self) -> Option<MarkerPayload> {
        serde_json::from_slice(&self.payload).ok()
    }
}

/// Parses the body of a `uuid` box (after the 8-byte header). `Ok(None)` when the box is
/// some other `uuid` box.
fn parse_uuid_body(body: &[u8]) -> Result<Option<FoundMarker>, MarkerError> {
    if body.get(..16) != Some(&MARKER_UUID[..]) {
        return Ok(None);
    }
    let version = *body.get(16).ok_or(MarkerError::Malformed)?;
    let len_bytes = body.get(17..19).ok_or(MarkerError::Malformed)?;
    let len = u16::from_be_bytes([len_bytes[0], len_bytes[1]]) as usize;
    let payload = body.get(19..19 + len).ok_or(MarkerError::Malformed)?;
    let signature: [u8; 64] = body
        .get(19 + len..19 + len + 64)
        .and_then(|s| s.try_into().ok())
        .ok_or(MarkerError::Malformed)?;
    Ok(Some(FoundMarker {
        version,
        payload: payload.to_vec(),
        signature,
    }))
}

/// The first session marker among the top-level boxes of `data` (an init segment or the
/// start of a file).
pub fn find_marker(data: &[u8]) -> Result<Option<FoundMarker>, MarkerError> {
    for b in isobmff::boxes(data).filter(|b| &b.kind == b"uuid") {
        if let Some(found) = parse_uuid_body(b.body)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isobmff::boxed;

    fn payload() -> MarkerPayload {
        MarkerPayload {
            session_id: "5b0c9d0e-0000-4000-8000-000000000001".into(),
            video_id: "v-1".into(),
            issued_at: 1_790_000_000,
        }
    }

    #[test]
    fn round_trip_after_an_init_segment() {
        let signer = MarkerSigner::from_master_key(&[3u8; 32]);
        let init = [boxed(b"ftyp", b"iso6"), boxed(b"moov", b"..")].concat();
        let with = [init.clone(), signer.marker_box(&payload())].concat();
        assert_eq!(find_marker(&init), Ok(None));
        let found = find_marker(&with).unwrap().expect("marker present");
        assert_eq!(found.verify(&signer.verifying_key()), Ok(payload()));
        // The box walk sees exactly one extra top-level box.
        assert_eq!(isobmff::boxes(&with).count(), 3);
    }

    #[test]
    fn the_key_follows_the_master_key() {
        let a = MarkerSigner::from_master_key(&[3u8; 32]);
        let b = MarkerSigner::from_master_key(&[4u8; 32]);
        assert_eq!(
            a.verifying_key(),
            MarkerSigner::from_master_key(&[3u8; 32]).verifying_key()
        );
        let found = find_marker(&a.marker_box(&payload())).unwrap().unwrap();
        assert_eq!(
            found.verify(&b.verifying_key()),
            Err(MarkerError::BadSignature)
        );
    }

    #[test]
    fn altered_or_truncated_markers_are_refused() {
        let signer = MarkerSigner::from_master_key(&[3u8; 32]);
        let mut bytes = signer.marker_box(&payload());
        let at = bytes.len() - 70; // inside the JSON payload
        bytes[at] ^= 0x01;
        let found = find_marker(&bytes).unwrap().unwrap();
        assert_eq!(
            found.verify(&signer.verifying_key()),
            Err(MarkerError::BadSignature)
        );
        // A box whose declared payload runs past its end.
        let good = signer.marker_box(&payload());
        let body = &good[8..good.len() - 64];
        assert_eq!(
            find_marker(&boxed(b"uuid", body)),
            Err(MarkerError::Malformed)
        );
        // Someone else's uuid box is not a marker.
        assert_eq!(find_marker(&boxed(b"uuid", &[0u8; 40])), Ok(None));
    }
}
