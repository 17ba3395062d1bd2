//! Matching statistics: the score of a candidate code against per-unit
//! soft values, its tail probability under the innocent hypothesis, and the Bonferroni bound
//! over all candidates.
//!
//! For an innocent session of an unbiased (`uniform-v1`) code the bits are independent fair
//! coins, so `z = sum_k s_k (2 b_k - 1) / sqrt(sum_k s_k^2)` has mean 0 and variance 1 exactly
//! and is close to N(0, 1) once a few dozen units are observed ([`NullTail`], exact for short
//! copies). For biased bits, or any other per-unit weights, [`ChernoffTail`] bounds the tail.

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

/// The tail of a score that adds, per unit, `one[k]` when a session's bit is 1 and `zero[k]`
/// when it is 0, for an innocent session whose bits are independent Bernoulli(`bias[k]`):
/// a Chernoff bound, `P(S >= z) <= min over l >= 0 of exp(-l z) prod_k E exp(l w_k)`, computed
/// exactly from the weights (no normal approximation), so it never understates the tail,
/// however skewed the weights of biased units are. Any weights computed without looking at
/// an innocent's code (the suspect's values, the biases, the codes of sessions already
/// accused) keep that session's bits independent of them, so the bound holds for them all.
pub struct ChernoffTail {
    /// (bias, weight of a 1, weight of a 0) of every unit that can move the score.
    terms: Vec<(f64, f64, f64)>,
}

impl ChernoffTail {
    pub fn new(one: &[f64], zero: &[f64], bias: &[f64]) -> ChernoffTail {
        let terms = one
            .iter()
            .zip(zero)
            .zip(bias)
            .filter(|((a, b), _)| **a != 0.0 || **b != 0.0)
            .map(|((&a, &b), &p)| (p.clamp(0.0, 1.0), a, b))
            .collect();
        ChernoffTail { terms }
    }

    /// `log E exp(l S)` and its derivative in `l`.
    fn log_mgf(&self, l: f64) -> (f64, f64) {
        let (mut value, mut slope) = (0.0, 0.0);
        for &(p, a, b) in &self.terms {
            let (x, y) = (l * a, l * b);
            let m = x.max(y);
            let (ea, eb) = (p * (x - m).exp(), (1.0 - p) * (y - m).exp());
            value += m + (ea + eb).ln();
            slope += (a * ea + b * eb) / (ea + eb);
        }
        (value, slope)
    }

    /// An upper bound of `P(S >= z)` for an innocent session.
    pub fn upper_tail(&self, z: f64) -> f64 {
        let mean: f64 = self
            .terms
            .iter()
            .map(|&(p, a, b)| p * a + (1.0 - p) * b)
            .sum();
        if self.terms.is_empty() || z <= mean {
            return 1.0;
        }
        // Above the largest possible score nothing reaches it.
        let most: f64 = self
            .terms
            .iter()
            .map(|&(p, a, b)| match (p > 0.0, p < 1.0) {
                (true, true) => a.max(b),
                (true, false) => a,
                _ => b,
            })
            .sum();
        // (With room for the rounding of a score summed in another order: a perfect match
        // computed a little above `most` still gets the tail of `most`, not 0.)
        let scale: f64 = self.terms.iter().map(|&(_, a, b)| a.abs() + b.abs()).sum();
        if z > most + 1e-9 * scale.max(1.0) {
            return 0.0;
        }
        let z = z.min(most);
        // The exponent -l z + log E exp(l S) is convex in l; its slope rises from
        // (mean - z) < 0. Bracket the minimum, then bisect on the slope.
        let slope = |l: f64| self.log_mgf(l).1 - z;
        let mut high = 1.0;
        while slope(high) < 0.0 && high < 1e9 {
            high *= 2.0;
        }
        let mut low = 0.0;
        for _ in 0..100 {
            let mid = 0.5 * (low + high);
            if slope(mid) < 0.0 {
                low = mid;
            } else {
                high = mid;
            }
        }
        let l = 0.5 * (low + high);
        (self.log_mgf(l).0 - l * z).exp().min(1.0)
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

    /// Innocent codes drawn with skewed biases (a Tardos code's), scored with the symmetric
    /// weights against fixed values: over 200,000 codes the share at or above a level never
    /// exceeds the Chernoff bound (beyond sampling error), and the bound is not loose by more
    /// than a small factor where it can be checked.
    #[test]
    fn the_chernoff_tail_bounds_innocent_scores_of_biased_codes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let units = 150;
        let bias: Vec<f64> = (0..units)
            .map(|_| {
                let low = 0.05f64.sqrt().asin();
                (low + rng.gen::<f64>() * (std::f64::consts::FRAC_PI_2 - 2.0 * low))
                    .sin()
                    .powi(2)
            })
            .collect();
        let soft: Vec<f64> = (0..units)
            .map(|_| rng.gen_range(-1.0..1.0) * rng.gen_range(0.1..3.0))
            .collect();
        let norm = soft.iter().map(|s| s * s).sum::<f64>().sqrt();
        let one: Vec<f64> = soft
            .iter()
            .zip(&bias)
            .map(|(s, p)| s * ((1.0 - p) / p).sqrt() / norm)
            .collect();
        let zero: Vec<f64> = soft
            .iter()
            .zip(&bias)
            .map(|(s, p)| -s * (p / (1.0 - p)).sqrt() / norm)
            .collect();
        let tail = ChernoffTail::new(&one, &zero, &bias);
        let trials = 200_000;
        let scores: Vec<f64> = (0..trials)
            .map(|_| {
                (0..units)
                    .map(|k| {
                        if rng.gen::<f64>() < bias[k] {
                            one[k]
                        } else {
                            zero[k]
                        }
                    })
                    .sum()
            })
            .collect();
        for z in [1.0, 2.0, 2.5, 3.0, 3.5] {
            let hits = scores.iter().filter(|&&s| s >= z).count() as f64;
            let bound = tail.upper_tail(z);
            let expected = bound * trials as f64;
            assert!(
                hits <= expected + 4.0 * expected.sqrt() + 3.0,
                "z {z}: {hits} innocent codes above, bound {bound}"
            );
            if hits >= 100.0 {
                assert!(
                    expected < 12.0 * hits,
                    "z {z}: bound {bound} vs {hits} hits"
                );
            }
        }
        // Unit variance by construction: the bound is of the normal tail's order (Q(5) =
        // 2.9e-7; a Chernoff bound of a normal score would say exp(-12.5) = 3.7e-6).
        let at5 = tail.upper_tail(5.0);
        assert!(at5 < 1e-4 && at5 > 2.9e-7, "{at5}");
        // Below the mean, nothing is excluded; above the largest score, everything is.
        assert_eq!(tail.upper_tail(-1.0), 1.0);
        let most: f64 = one.iter().zip(&zero).map(|(a, b)| a.max(*b)).sum();
        assert_eq!(tail.upper_tail(most + 1.0), 0.0);
        assert_eq!(ChernoffTail::new(&[], &[], &[]).upper_tail(3.0), 1.0);
    }

    /// With unbiased bits and antipodal weights the bound is the classical one,
    /// exp(-z^2 / 2) at most, and agrees with enumeration on small cases.
    #[test]
    fn the_chernoff_tail_bounds_the_exact_tail_of_fair_codes() {
        let w = [0.7, 1.3, 0.2, 2.1, 0.9, 1.1, 0.4, 1.8, 0.6, 1.0];
        let neg: Vec<f64> = w.iter().map(|x| -x).collect();
        let tail = ChernoffTail::new(&w, &neg, &[0.5; 10]);
        let total: f64 = w.iter().sum();
        for i in 0..=20 {
            let s = total * (i as f64 / 10.0 - 1.0);
            let truth = brute_tail(&w, s);
            let bound = tail.upper_tail(s);
            assert!(bound >= truth - 1e-12, "{s}: {bound} < {truth}");
        }
        let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!(tail.upper_tail(2.0 * norm) <= (-2.0f64).exp() + 1e-12);
        // A perfect match (probability 2^-10) whose score was summed in another order and
        // came out a rounding above the largest score still gets its tail (the bound tends to
        // 2^-10 there, up to the rounding of its own exponent), not 0.
        let perfect = 0.5f64.powi(10);
        for z in [total, total * (1.0 + 1e-11)] {
            let p = tail.upper_tail(z);
            assert!(
                (p / perfect - 1.0).abs() < 1e-3,
                "{z}: {p} against {perfect}"
            );
        }
    }
}
