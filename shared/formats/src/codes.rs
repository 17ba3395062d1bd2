//! Session watermark codes, each session's A/B sequence: bit `k` of a session's code picks variant A (0)
//! or B (1) of unit `k + 1`, and is a keyed PRF of (video secret, session id, k):
//!
//! `block_j = HMAC-SHA256(key = video secret, "leaktrace/v1/code/" || session_id || 0x00 || j_be32)`
//! and bit `k` is bit `k mod 256` (most significant first) of `block_{k / 256}`.
//!
//! Codes of different sessions are independent uniform bits, which is what makes the matching
//! statistics exact. This is the one place the code construction lives: a collusion-resistant
//! construction (e.g. Tardos) would replace this module's body, not its callers.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::layout::Variant;

const LABEL: &[u8] = b"leaktrace/v1/code/";

/// A title's code key: the HMAC keyed with the video secret, set up once for any number of
/// sessions (matching derives the codes of every session that streamed a title).
#[derive(Clone)]
pub struct CodeKey {
    mac: Hmac<Sha256>,
}

impl CodeKey {
    pub fn new(video_secret: &[u8; 32]) -> CodeKey {
        CodeKey {
            // HMAC accepts keys of any length; 32 bytes cannot fail.
            mac: <Hmac<Sha256> as Mac>::new_from_slice(video_secret)
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length")),
        }
    }

    /// Block `j` of a session's code: bits `256 j .. 256 j + 255`, most significant first.
    pub fn block(&self, session_id: &str, j: u32) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(LABEL);
        mac.update(session_id.as_bytes());
        mac.update(&[0]);
        mac.update(&j.to_be_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The first `units` bits of a session's code (index 0 = unit 1).
    pub fn code(&self, session_id: &str, units: u32) -> Vec<bool> {
        let units = units as usize;
        let mut bits = Vec::with_capacity(units);
        let mut j = 0u32;
        while bits.len() < units {
            for byte in self.block(session_id, j) {
                for i in (0..8).rev() {
                    if bits.len() < units {
                        bits.push(byte >> i & 1 == 1);
                    }
                }
            }
            j += 1;
        }
        bits
    }
}

/// The first `units` bits of a session's code (index 0 = unit 1).
pub fn session_code(video_secret: &[u8; 32], session_id: &str, units: u32) -> Vec<bool> {
    CodeKey::new(video_secret).code(session_id, units)
}

/// The variant a session receives for 1-based unit `unit`.
pub fn variant_for(code: &[bool], unit: u32) -> Option<Variant> {
    let bit = *code.get(unit.checked_sub(1)? as usize)?;
    Some(if bit { Variant::B } else { Variant::A })
}

/// A short, non-secret fingerprint of a code (hex SHA-256 of its bits), for display and for
/// the `expected_watermark_hash` comparison.
pub fn code_hash(code: &[bool]) -> String {
    use sha2::Digest;
    let packed: Vec<u8> = code
        .chunks(8)
        .map(|c| c.iter().fold(0u8, |acc, &b| acc << 1 | b as u8) << (8 - c.len()))
        .collect();
    let mut h = Sha256::new();
    h.update((code.len() as u32).to_be_bytes());
    h.update(packed);
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_prefix_stable_and_session_specific() {
        let secret = [7u8; 32];
        let a = session_code(&secret, "s-1", 600);
        assert_eq!(a.len(), 600);
        assert_eq!(a, session_code(&secret, "s-1", 600));
        assert_eq!(
            &a[..100],
            &session_code(&secret, "s-1", 100)[..],
            "prefix stable across lengths"
        );
        let b = session_code(&secret, "s-2", 600);
        let c = session_code(&[8u8; 32], "s-1", 600);
        let agree = |x: &[bool], y: &[bool]| x.iter().zip(y).filter(|(p, q)| p == q).count();
        // Independent codes agree on about half the bits (600 bits: 300 +- 12).
        assert!((240..=360).contains(&agree(&a, &b)), "{}", agree(&a, &b));
        assert!((240..=360).contains(&agree(&a, &c)), "{}", agree(&a, &c));
        let ones = a.iter().filter(|&&b| b).count();
        assert!((240..=360).contains(&ones), "balanced: {ones}");
    }

    #[test]
    fn known_answer_pins_the_construction() {
        // block 0 = HMAC-SHA256(key, "leaktrace/v1/code/" || "abc" || 0x00 || 00 00 00 00)
        let secret = [1u8; 32];
        let mut mac = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
        mac.update(b"leaktrace/v1/code/abc\x00\x00\x00\x00\x00");
        let first = mac.finalize().into_bytes()[0];
        let code = session_code(&secret, "abc", 8);
        let expect: Vec<bool> = (0..8).rev().map(|i| first >> i & 1 == 1).collect();
        assert_eq!(code, expect);
    }

    #[test]
    fn variants_and_hash() {
        let code = vec![false, true, true];
        assert_eq!(variant_for(&code, 1), Some(Variant::A));
        assert_eq!(variant_for(&code, 2), Some(Variant::B));
        assert_eq!(variant_for(&code, 0), None);
        assert_eq!(variant_for(&code, 4), None);
        assert_ne!(code_hash(&code), code_hash(&[false, true, false]));
        assert_ne!(
            code_hash(&[true]),
            code_hash(&[true, false]),
            "length is part of the hash"
        );
        assert_eq!(code_hash(&code).len(), 64);
    }
}
