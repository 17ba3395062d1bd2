//! Matching statistics: the score of a candidate code against per-unit
//! soft values, its tail probability under the innocent hypothesis, and the Bonferroni bound
//! over all candidates.
//!
//! For an innocent session the code bits are independent fair coins, so
//! `z = sum_k s_k (2 b_k - 1) / sqrt(sum_k s_k^2)` has mean 0 and variance 1 exactly and is
//! close to N(0, 1) once a few dozen units are observed.

/// Score of one candidate code. `bits[k]` is the candidate's bit for unit `k` (variant B when
/// true); `soft[k]` is positive when the suspect looks like variant B, negative for A, and
/// 0 for unobserved units. Returns 0 when nothing was observed.
pub fn score(soft: &[f64], bits: &[bool]) -> f64 {
    let energy: f64 = soft.iter().map(|s| s * s).sum();
    if energy <= 0.0 {
        return 0.0;
    }
    let correlation: f64 = soft
        .iter()
        .zip(bits)
        .map(|(s, &b)| if b { *s } else { -*s })
        .sum();
    correlation / energy.sqrt()
}

/// One-sided upper tail of the standard normal, `P(Z >= z)`, with relative accuracy better
/// than 2e-7 over the whole range (down to about 1e-300).
pub fn normal_upper_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function (Chebyshev approximation, fractional error < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// The distribution of an innocent session's score given the observed soft values.
///
/// An innocent code's bits are independent fair coins, so its correlation `S = sum_k s_k e_k`
/// (`e_k = +-1`) has a known distribution for the observed `s`. With many observed units the
/// normal approximation is accurate; with few (a short excerpt) it is not: it cannot even
/// tell that a perfect match of `n` units has probability `2^-n` (`z` is at most `sqrt(n)`).
/// Up to [`EXACT_MAX_UNITS`] observed units the tail is therefore computed exactly, by
/// dynamic programming over the weights `|s_k|` rounded down to a grid of [`EXACT_LEVELS`]
/// steps of the largest one; the rounding is accounted for so that the result is an upper
/// bound of the true tail, never an underestimate.
pub struct NullTail {
    /// sqrt(sum s_k^2): scores are correlations divided by it.
    norm: f64,
    exact: Option<ExactTail>,
}

struct ExactTail {
    /// Grid step of the weights.
    step: f64,
    /// Largest total rounding error, sum_k (|s_k| - q_k step).
    slack: f64,
    /// Sum of the rounded weights q_k.
    total: usize,
    /// `upper[u]` = P(sum of the q_k picked by heads >= u), for u in 0..=total+1.
    upper: Vec<f64>,
}

/// Observed units up to which the tail is computed exactly.
pub const EXACT_MAX_UNITS: usize = 256;
/// Grid steps of the largest weight in the exact computation.
pub const EXACT_LEVELS: f64 = 1000.0;

impl NullTail {
    pub fn new(soft: &[f64]) -> NullTail {
        let weights: Vec<f64> = soft.iter().map(|s| s.abs()).filter(|w| *w > 0.0).collect();
        let norm = weights.iter().map(|w| w * w).sum::<f64>().sqrt();
        let largest = weights.iter().copied().fold(0.0, f64::max);
        let exact = (!weights.is_empty() && weights.len() <= EXACT_MAX_UNITS && largest > 0.0)
            .then(|| {
                let step = largest / EXACT_LEVELS;
                let q: Vec<usize> = weights
                    .iter()
                    .map(|w| (w / step).floor() as usize)
                    .collect();
                let slack = weights
                    .iter()
                    .zip(&q)
                    .map(|(w, &q)| w - q as f64 * step)
                    .sum::<f64>();
                let total: usize = q.iter().sum();
                // Distribution of U = sum of q_k over the units whose coin agrees.
                let mut p = vec![0f64; total + 1];
                p[0] = 1.0;
                let mut reach = 0usize;
                for &qk in &q {
                    reach += qk;
                    for u in (0..=reach).rev() {
                        let with = if u >= qk { p[u - qk] } else { 0.0 };
                        p[u] = 0.5 * (p[u] + with);
                    }
                }
                let mut upper = vec![0f64; total + 2];
                for u in (0..=total).rev() {
                    upper[u] = upper[u + 1] + p[u];
                }
                ExactTail {
                    step,
                    slack,
                    total,
                    upper,
                }
            });
        NullTail { norm, exact }
    }

    /// P(an innocent session scores >= z); an upper bound when computed exactly.
    pub fn upper_tail(&self, z: f64) -> f64 {
        match &self.exact {
            None => normal_upper_tail(z),
            Some(e) => {
                // S >= z norm implies sum q_k e_k step >= z norm - slack, and
                // sum q_k e_k = 2U - total.
                let needed = ((z * self.norm - e.slack) / e.step + e.total as f64) / 2.0;
                let u = needed.ceil().max(0.0);
                if u > e.total as f64 {
                    // Out of reach even for a perfect match: no innocent gets there.
                    return e.upper[e.total].min(normal_upper_tail(z));
                }
                e.upper[u as usize].clamp(0.0, 1.0)
            }
        }
    }

    /// The false-positive probability of the best of `candidates` scores (Bonferroni).
    pub fn false_positive_probability(&self, z: f64, candidates: usize) -> f64 {
        bonferroni(self.upper_tail(z), candidates)
    }
}

/// The false-positive probability of the best of `candidates` scores whose single tail
/// probability is `tail`: times the number of candidates (Bonferroni), capped at 1.
pub fn bonferroni(tail: f64, candidates: usize) -> f64 {
    (tail * candidates.max(1) as f64).min(1.0)
}

/// The decision rule: accuse only below the threshold (default 1e-6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Identified,
    Inconclusive,
}

pub fn decide(false_positive_probability: f64, threshold: f64) -> Decision {
    if false_positive_probability < threshold {
        Decision::Identified
    } else {
        Decision::Inconclusive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// P(S >= s) by enumerating every sign pattern.
    fn brute_tail(w: &[f64], s: f64) -> f64 {
        let n = w.len();
        let hits = (0u32..1 << n)
            .filter(|m| {
                let sum: f64 = (0..n)
                    .map(|k| if m >> k & 1 == 1 { w[k] } else { -w[k] })
                    .sum();
                sum >= s - 1e-12
            })
            .count();
        hits as f64 / (1u64 << n) as f64
    }

    #[test]
    fn the_exact_tail_bounds_the_true_tail_tightly() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        for n in [1usize, 5, 12, 16] {
            let soft: Vec<f64> = (0..n)
                .map(|_| rng.gen_range(0.2..3.0) * if rng.gen() { 1.0 } else { -1.0 })
                .collect();
            let tail = NullTail::new(&soft);
            let norm = soft.iter().map(|s| s * s).sum::<f64>().sqrt();
            let w: Vec<f64> = soft.iter().map(|s| s.abs()).collect();
            for i in 0..=20 {
                let s_obs = w.iter().sum::<f64>() * (i as f64 / 10.0 - 1.0);
                let truth = brute_tail(&w, s_obs);
                let bound = tail.upper_tail(s_obs / norm);
                assert!(bound >= truth - 1e-12, "n {n}: {bound} < {truth}");
                // Tight: never more than the probability of one rounding cell beyond.
                assert!(bound <= brute_tail(&w, s_obs - 0.01 * w.iter().sum::<f64>()) + 1e-12);
            }
            // A perfect match of n units: 2^-n, where the normal approximation says more.
            let perfect = tail.upper_tail(w.iter().sum::<f64>() / norm);
            assert!((perfect - 0.5f64.powi(n as i32)).abs() < 1e-12, "{perfect}");
        }
        // Thirty equal units all agreeing: 2^-30, not Q(sqrt(30)) = 2.1e-8.
        let thirty = NullTail::new(&[1.0; 30]);
        let p = thirty.upper_tail(30f64.sqrt());
        assert!((p - 0.5f64.powi(30)).abs() < 1e-15, "{p}");
        assert!(normal_upper_tail(30f64.sqrt()) > 10.0 * p);
        // Nothing observed, or too many units for the exact route: the normal tail.
        assert_eq!(
            NullTail::new(&[0.0; 4]).upper_tail(1.0),
            normal_upper_tail(1.0)
        );
        let many = vec![1.0; EXACT_MAX_UNITS + 1];
        assert_eq!(NullTail::new(&many).upper_tail(2.0), normal_upper_tail(2.0));
    }
    use rand::{Rng, SeedableRng};

    #[test]
    fn tail_matches_reference_values() {
        // Reference values of Q(z) = P(Z >= z).
        let table = [
            (0.0, 0.5),
            (1.0, 0.158_655_253_931_457_05),
            (-1.0, 0.841_344_746_068_542_9),
            (3.0, 1.349_898_031_630_094_6e-3),
            (3.090_232_306_167_813_5, 1.0e-3),
            (4.753_424_308_822_899, 1.0e-6),
            (5.0, 2.866_515_718_791_939e-7),
            (8.0, 6.220_960_574_271_785e-16),
            (10.0, 7.619_853_024_160_527e-24),
            (20.0, 2.753_624_118_606_233e-89),
        ];
        for (z, q) in table {
            let got = normal_upper_tail(z);
            assert!(((got - q) / q).abs() < 2e-7, "Q({z}) = {got}, expected {q}");
        }
    }

    #[test]
    fn score_is_normalised_correlation() {
        let soft = [1.0, -2.0, 0.5, 0.0];
        let bits = [true, false, true, false];
        let z = score(&soft, &bits);
        assert!((z - 3.5 / 5.25f64.sqrt()).abs() < 1e-12);
        let flipped: Vec<bool> = bits.iter().map(|b| !b).collect();
        assert!((score(&soft, &flipped) + z).abs() < 1e-12, "antipodal");
        assert_eq!(score(&[0.0; 4], &bits), 0.0);
        assert_eq!(score(&[], &[]), 0.0);
    }

    #[test]
    fn bonferroni_and_decision() {
        let p = bonferroni(normal_upper_tail(6.0), 1000);
        assert!((p - 1000.0 * normal_upper_tail(6.0)).abs() < 1e-15);
        assert_eq!(bonferroni(normal_upper_tail(-3.0), 10), 1.0);
        assert_eq!(
            bonferroni(normal_upper_tail(8.0), 0),
            normal_upper_tail(8.0)
        );
        assert_eq!(decide(9e-7, 1e-6), Decision::Identified);
        assert_eq!(decide(1e-6, 1e-6), Decision::Inconclusive);
    }

    /// Calibration: innocent (random) codes scored against fixed soft values exceed the
    /// 1e-3 threshold about 1e-3 of the time. 100,000 codes: expect 100 hits.
    #[test]
    fn random_codes_are_calibrated_at_1e_3() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        // Uneven soft values, like a real extraction (some units weak, some strong).
        let soft: Vec<f64> = (0..120)
            .map(|_| rng.gen_range(-1.0..1.0) * rng.gen_range(0.1..3.0))
            .collect();
        let threshold = 3.090_232_306_167_813_5; // Q^-1(1e-3)
        let trials = 100_000;
        let mut bits = vec![false; soft.len()];
        let mut hits = 0usize;
        for _ in 0..trials {
            bits.iter_mut().for_each(|b| *b = rng.gen());
            if score(&soft, &bits) >= threshold {
                hits += 1;
            }
        }
        let rate = hits as f64 / trials as f64;
        assert!(
            (5e-4..=2e-3).contains(&rate),
            "empirical tail {rate} vs 1e-3"
        );
    }
}
