//! Session watermark codes, each session's A/B sequence: bit `k` of a session's code picks
//! variant A (0) or B (1) of unit `k + 1`. A title's codes follow one [`CodeScheme`], recorded in
//! its package manifest; this is the one place the constructions live.
//!
//! **`uniform-v1`**: every bit an unbiased keyed PRF bit of (video secret, session id, k):
//!
//! `block_j = HMAC-SHA256(key = video secret, "leaktrace/v1/code/" || session_id || 0x00 || j_be32)`
//! and bit `k` is bit `k mod 256` (most significant first) of `block_{k / 256}`.
//!
//! **`tardos-v2`**, a Tardos-family code for colluders: unit `k` has a bias `p_k`, the same for
//! every session of the title, drawn from the arcsine law cut off at [`TARDOS_CUTOFF`]:
//! `p_k = sin^2(r_k)` with `r_k` uniform on `[asin(sqrt(t)), pi/2 - asin(sqrt(t))]`, its uniform
//! number the big-endian 32-bit word `k mod 8` of
//! `HMAC-SHA256(video secret, "leaktrace/v2/bias/" || (k / 8)_be32)` (as `(u + 1/2) / 2^32`).
//! A session's bit `k` is 1 when `w_k < floor(p_k 2^32)`, `w_k` the little-endian 32-bit word
//! `k` of the ChaCha20 keystream (20 rounds, 64-bit nonce 0, counter from 0) keyed with
//! `HMAC-SHA256(video secret, "leaktrace/v2/session/" || session_id)`. A session's bits are
//! independent Bernoulli(`p_k`), independent of other sessions'.
//!
//! In both, an innocent session's code is independent of every other session's, which is what
//! makes the matching statistics exact.

use hmac::{Hmac, Mac};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::Sha256;

use crate::layout::{SegmentVariant, Variant, MAX_SEGMENT_UNITS};

const LABEL: &[u8] = b"leaktrace/v1/code/";
const BIAS_LABEL: &[u8] = b"leaktrace/v2/bias/";
const SESSION_LABEL: &[u8] = b"leaktrace/v2/session/";

/// The arcsine law's cutoff `t` of `tardos-v2`: biases lie in `[t, 1 - t]`.
pub const TARDOS_CUTOFF: f64 = 0.05;

crate::named_enum! {
    /// How a title's session codes are built (see the module documentation).
    #[derive(Default)]
    pub enum CodeScheme {
        /// Unbiased bits: the strongest for a single leaker; colluders who compare copies can
        /// cancel it (three who always take the minority variant score nothing).
        #[default]
        Uniform = "uniform-v1",
        /// Biased bits (Tardos): colluders cannot cancel the score, at some cost to a single
        /// leaker's score per unit.
        Tardos = "tardos-v2",
    }
}

/// A title's code key: the HMAC keyed with the video secret, set up once for any number of
/// sessions (matching derives the codes of every session that streamed a title).
#[derive(Clone)]
pub struct CodeKey {
    mac: Hmac<Sha256>,
    scheme: CodeScheme,
}

impl CodeKey {
    pub fn new(video_secret: &[u8; 32], scheme: CodeScheme) -> CodeKey {
        CodeKey {
            // HMAC accepts keys of any length; 32 bytes cannot fail.
            mac: <Hmac<Sha256> as Mac>::new_from_slice(video_secret)
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length")),
            scheme,
        }
    }

    pub fn scheme(&self) -> CodeScheme {
        self.scheme
    }

    fn hmac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// The biases of the unit indexes `units` (all 1/2 under `uniform-v1`).
    pub fn biases(&self, units: std::ops::Range<usize>) -> Vec<f64> {
        self.thresholds(units)
            .into_iter()
            .map(|t| t as f64 / 4_294_967_296.0)
            .collect()
    }

    /// Per unit index in `units`, the threshold below which a session's 32-bit word makes
    /// its bit 1 (`floor(p_k 2^32)`).
    fn thresholds(&self, units: std::ops::Range<usize>) -> Vec<u64> {
        match self.scheme {
            CodeScheme::Uniform => vec![1 << 31; units.len()],
            CodeScheme::Tardos => {
                let low = TARDOS_CUTOFF.sqrt().asin();
                let span = std::f64::consts::FRAC_PI_2 - 2.0 * low;
                let mut out = Vec::with_capacity(units.len());
                let mut block = (usize::MAX, [0u8; 32]);
                for k in units {
                    let j = k / 8;
                    if block.0 != j {
                        block = (j, self.hmac(&[BIAS_LABEL, &(j as u32).to_be_bytes()]));
                    }
                    let at = k % 8 * 4;
                    let word = u32::from_be_bytes([
                        block.1[at],
                        block.1[at + 1],
                        block.1[at + 2],
                        block.1[at + 3],
                    ]);
                    let r = low + span * (word as f64 + 0.5) / 4_294_967_296.0;
                    let p = r.sin().powi(2);
                    out.push((p * 4_294_967_296.0).floor() as u64);
                }
                out
            }
        }
    }

    /// The ChaCha20 generator of a session's `tardos-v2` words.
    fn session_stream(&self, session_id: &str) -> ChaCha20Rng {
        ChaCha20Rng::from_seed(self.hmac(&[SESSION_LABEL, session_id.as_bytes()]))
    }

    /// Block `j` of a session's `uniform-v1` code: bits `256 j .. 256 j + 255`, most
    /// significant first.
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
        match self.scheme {
            CodeScheme::Uniform => self.uniform_code(session_id, units as usize),
            CodeScheme::Tardos => self.code_window(session_id, 0..units as usize),
        }
    }

    /// A session's bits for the unit indexes `units` only (a window of its code).
    pub fn code_window(&self, session_id: &str, units: std::ops::Range<usize>) -> Vec<bool> {
        match self.scheme {
            CodeScheme::Uniform => {
                let start = units.start;
                let mut bits = self.uniform_code(session_id, units.end);
                bits.drain(..start.min(bits.len()));
                bits
            }
            CodeScheme::Tardos => {
                let thresholds = self.thresholds(units.clone());
                let mut stream = self.session_stream(session_id);
                stream.set_word_pos(units.start as u128);
                thresholds
                    .iter()
                    .map(|&t| (stream.next_u32() as u64) < t)
                    .collect()
            }
        }
    }

    /// Fills `row` (cleared words, least significant bit first) with a session's bits of
    /// the unit indexes `units`, bit `k - units.start` for unit `k`; `thresholds` are the
    /// units' (from [`CodeKey::window_thresholds`]). Codes of many sessions are derived this
    /// way for matching.
    pub fn fill_row(
        &self,
        session_id: &str,
        units: std::ops::Range<usize>,
        thresholds: &[u64],
        row: &mut [u64],
    ) {
        match self.scheme {
            CodeScheme::Uniform => {
                let (offset, end) = (units.start, units.end);
                for j in offset / 256..end.div_ceil(256) {
                    let block = self.block(session_id, j as u32);
                    // Block bytes are most significant bit first; rows are least
                    // significant first.
                    for (b, byte) in block.iter().enumerate() {
                        let unit = j * 256 + b * 8;
                        if unit + 8 <= offset {
                            continue;
                        }
                        if unit >= end {
                            break;
                        }
                        let bits = byte.reverse_bits() as u64;
                        // Whole bytes at byte positions of the row go in at once.
                        if unit >= offset && unit + 8 <= end && (unit - offset) % 8 == 0 {
                            let k = unit - offset;
                            row[k / 64] |= bits << (k % 64);
                            continue;
                        }
                        for i in 0..8 {
                            let u = unit + i;
                            if (offset..end).contains(&u) && bits >> i & 1 == 1 {
                                let k = u - offset;
                                row[k / 64] |= 1 << (k % 64);
                            }
                        }
                    }
                }
            }
            CodeScheme::Tardos => {
                let mut stream = self.session_stream(session_id);
                stream.set_word_pos(units.start as u128);
                for (k, &t) in thresholds.iter().enumerate() {
                    if (stream.next_u32() as u64) < t {
                        row[k / 64] |= 1 << (k % 64);
                    }
                }
            }
        }
    }

    /// The thresholds [`CodeKey::fill_row`] needs for the unit indexes `units`.
    pub fn window_thresholds(&self, units: std::ops::Range<usize>) -> Vec<u64> {
        self.thresholds(units)
    }

    fn uniform_code(&self, session_id: &str, units: usize) -> Vec<bool> {
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
pub fn session_code(
    video_secret: &[u8; 32],
    scheme: CodeScheme,
    session_id: &str,
    units: u32,
) -> Vec<bool> {
    CodeKey::new(video_secret, scheme).code(session_id, units)
}

/// The variant a session receives for 1-based unit `unit`.
pub fn variant_for(code: &[bool], unit: u32) -> Option<Variant> {
    let bit = *code.get(unit.checked_sub(1)? as usize)?;
    Some(if bit { Variant::B } else { Variant::A })
}

/// The variant a session receives for 1-based segment `segment` of a title whose segments
/// hold `units` watermark units each: unit `i` of the segment in the variant of its own bit.
/// A last segment holding fewer units takes A for the units it does not have (both of its
/// variants that differ only there are the same pictures). `None` past the code's end.
pub fn segment_variant(code: &[bool], segment: u32, units: u32) -> Option<SegmentVariant> {
    let units = units.clamp(1, MAX_SEGMENT_UNITS);
    let first = (segment.checked_sub(1)? as usize).checked_mul(units as usize)?;
    code.get(first)?;
    Some(SegmentVariant::from_bits(units, |i| {
        code.get(first + i as usize) == Some(&true)
    }))
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
        let a = session_code(&secret, CodeScheme::Uniform, "s-1", 600);
        assert_eq!(a.len(), 600);
        assert_eq!(a, session_code(&secret, CodeScheme::Uniform, "s-1", 600));
        assert_eq!(
            &a[..100],
            &session_code(&secret, CodeScheme::Uniform, "s-1", 100)[..],
            "prefix stable across lengths"
        );
        let b = session_code(&secret, CodeScheme::Uniform, "s-2", 600);
        let c = session_code(&[8u8; 32], CodeScheme::Uniform, "s-1", 600);
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
        let code = session_code(&secret, CodeScheme::Uniform, "abc", 8);
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
        for segment in 1..=3 {
            assert_eq!(
                segment_variant(&code, segment, 1),
                variant_for(&code, segment).map(SegmentVariant::from)
            );
        }
        assert_eq!(segment_variant(&code, 4, 1), None);
        // Two units per segment: bits 0-1, then bit 2 and an A for the unit it lacks.
        let name = |s| segment_variant(&code, s, 2).map(SegmentVariant::folder);
        assert_eq!(
            [name(1), name(2), name(3)],
            [Some("ab".into()), Some("ba".into()), None]
        );
        assert_eq!(name(0), None);
        assert_ne!(code_hash(&code), code_hash(&[false, true, false]));
        assert_ne!(
            code_hash(&[true]),
            code_hash(&[true, false]),
            "length is part of the hash"
        );
        assert_eq!(code_hash(&code).len(), 64);
    }

    #[test]
    fn tardos_bits_follow_their_unit_biases() {
        let key = CodeKey::new(&[4u8; 32], CodeScheme::Tardos);
        let units = 64;
        let biases = key.biases(0..units);
        assert!(biases
            .iter()
            .all(|p| (TARDOS_CUTOFF - 1e-9..=1.0 - TARDOS_CUTOFF + 1e-9).contains(p)));
        // The arcsine law puts more units near the ends than the middle.
        let ends = biases.iter().filter(|p| **p < 0.2 || **p > 0.8).count();
        let middle = biases.iter().filter(|p| (0.4..0.6).contains(*p)).count();
        assert!(ends > 2 * middle, "{ends} {middle}");
        // Over 4,000 sessions each unit's share of ones is its bias (+- 4.5 sigma).
        let sessions = 4000;
        let mut ones = vec![0usize; units];
        for s in 0..sessions {
            for (k, b) in key.code(&format!("s{s}"), units as u32).iter().enumerate() {
                ones[k] += *b as usize;
            }
        }
        for (k, (&n, &p)) in ones.iter().zip(&biases).enumerate() {
            let sigma = (p * (1.0 - p) / sessions as f64).sqrt();
            let share = n as f64 / sessions as f64;
            assert!((share - p).abs() < 4.5 * sigma, "unit {k}: {share} vs {p}");
        }
        // Another title, other biases; the uniform scheme's are all one half.
        let other = CodeKey::new(&[5u8; 32], CodeScheme::Tardos).biases(0..units);
        assert_ne!(biases, other);
        let uniform = CodeKey::new(&[4u8; 32], CodeScheme::Uniform);
        assert!(uniform.biases(0..10).iter().all(|p| *p == 0.5));
    }

    #[test]
    fn windows_and_rows_are_the_code() {
        for scheme in CodeScheme::ALL.iter().copied() {
            let key = CodeKey::new(&[6u8; 32], scheme);
            let code = key.code("abc", 700);
            for window in [0..700, 1..9, 250..262, 300..450, 640..700] {
                assert_eq!(key.code_window("abc", window.clone()), code[window.clone()]);
                let mut row = vec![0u64; window.len().div_ceil(64)];
                let thresholds = key.window_thresholds(window.clone());
                key.fill_row("abc", window.clone(), &thresholds, &mut row);
                for (i, k) in window.clone().enumerate() {
                    assert_eq!(row[i / 64] >> (i % 64) & 1 == 1, code[k], "{scheme} {k}");
                }
                let past = window.len();
                assert!(
                    past % 64 == 0 || row[past / 64] >> (past % 64) == 0,
                    "{scheme}"
                );
            }
        }
    }

    #[test]
    fn tardos_known_answers_pin_the_construction() {
        // The keystream is ChaCha20's: with an all-zero key, nonce and counter its first
        // words are the published test vector's (76 b8 e0 ad ...).
        let mut zero = ChaCha20Rng::from_seed([0u8; 32]);
        assert_eq!(
            zero.next_u32(),
            u32::from_le_bytes([0x76, 0xb8, 0xe0, 0xad])
        );
        // Bias of unit 0 from the first bias word; bit 0 from the session stream's first word.
        let secret = [1u8; 32];
        let key = CodeKey::new(&secret, CodeScheme::Tardos);
        let mut mac = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
        mac.update(b"leaktrace/v2/bias/\x00\x00\x00\x00");
        let block = mac.finalize().into_bytes();
        let u = u32::from_be_bytes([block[0], block[1], block[2], block[3]]);
        let low = TARDOS_CUTOFF.sqrt().asin();
        let r = low + (std::f64::consts::FRAC_PI_2 - 2.0 * low) * (u as f64 + 0.5) / 2f64.powi(32);
        let threshold = (r.sin().powi(2) * 2f64.powi(32)).floor() as u64;
        assert_eq!(key.window_thresholds(0..1), vec![threshold]);
        let mut mac = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
        mac.update(b"leaktrace/v2/session/abc");
        let seed: [u8; 32] = mac.finalize().into_bytes().into();
        let word = ChaCha20Rng::from_seed(seed).next_u32() as u64;
        assert_eq!(key.code("abc", 1), vec![word < threshold]);
    }
}
