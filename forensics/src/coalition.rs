//! What a coalition of colluders did, estimated from the copy alone, and the score that
//! follows from it.
//!
//! A coalition of `c` sessions shows, at each unit, a variant that depends on how many of them
//! hold B there: with `j` of `c` holding B it shows B with probability `theta_j` (its
//! strategy; `theta_0 = 0` and `theta_c = 1`, since colluders who all hold the same variant
//! cannot show the other). A unit's value reads about `+a` for B and `-a` for A, with Gaussian
//! noise (the [`Channel`], fitted to the values). Given the unit biases, the strategy is
//! estimated by expectation-maximisation over the copy's values; the score of a session is
//! then the log-likelihood ratio of "this session is one of the `c`" against "this session is
//! innocent", unit by unit: the most powerful single-session test for that coalition.
//!
//! Nothing here looks at any session's code, so an innocent session's bits stay independent
//! of the weights and the matching's tail bound holds for them.

/// The reading of a unit's value: variant B about `+amplitude`, A about `-amplitude`, plus
/// Gaussian noise of deviation `sigma`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Channel {
    pub amplitude: f64,
    pub sigma: f64,
}

impl Channel {
    /// Fits the two-sided mixture to the observed values (0 = not observed) by
    /// expectation-maximisation; `None` when fewer than two units were observed.
    pub fn fit(soft: &[f64]) -> Option<Channel> {
        let seen: Vec<f64> = soft.iter().copied().filter(|s| *s != 0.0).collect();
        if seen.len() < 2 {
            return None;
        }
        let n = seen.len() as f64;
        let mut a = seen.iter().map(|s| s.abs()).sum::<f64>() / n;
        let mut var =
            (seen.iter().map(|s| (s.abs() - a).powi(2)).sum::<f64>() / n).max(1e-6 * a * a);
        for _ in 0..50 {
            // Responsibility of B for each value.
            let r: Vec<f64> = seen
                .iter()
                .map(|s| 1.0 / (1.0 + (-2.0 * a * s / var).exp()))
                .collect();
            a = seen
                .iter()
                .zip(&r)
                .map(|(s, r)| (2.0 * r - 1.0) * s)
                .sum::<f64>()
                / n;
            var = seen
                .iter()
                .zip(&r)
                .map(|(s, r)| r * (s - a).powi(2) + (1.0 - r) * (s + a).powi(2))
                .sum::<f64>()
                / n;
            var = var.max(1e-6 * a * a).max(1e-12);
        }
        Some(Channel {
            amplitude: a.abs(),
            sigma: var.sqrt(),
        })
    }

    /// P(value | B) / (P(value | A) + P(value | B)): how much a value says B.
    fn says_b(&self, s: f64) -> f64 {
        1.0 / (1.0 + (-2.0 * self.amplitude * s / (self.sigma * self.sigma)).exp())
    }
}

/// Binomial probabilities of `0..=n` ones among `n` bits of bias `p`.
fn binomial(n: usize, p: f64) -> Vec<f64> {
    let mut out = vec![0.0; n + 1];
    let mut choose = 1.0;
    for (j, o) in out.iter_mut().enumerate() {
        *o = choose * p.powi(j as i32) * (1.0 - p).powi((n - j) as i32);
        choose = choose * (n - j) as f64 / (j + 1) as f64;
    }
    out
}

/// A coalition of `size` and its estimated strategy.
#[derive(Debug, Clone, PartialEq)]
pub struct Coalition {
    /// `theta[j]`: the probability of showing B when `j` of the coalition hold B.
    pub theta: Vec<f64>,
    pub channel: Channel,
}

impl Coalition {
    /// Estimates the strategy of a coalition of `size` (at least 2) from the copy's values and
    /// the units' biases.
    pub fn estimate(size: usize, soft: &[f64], bias: &[f64]) -> Option<Coalition> {
        let channel = Channel::fit(soft)?;
        let c = size.max(2);
        // Start from "each unit from one of them at random".
        let mut theta: Vec<f64> = (0..=c).map(|j| j as f64 / c as f64).collect();
        let units: Vec<(Vec<f64>, f64)> = soft
            .iter()
            .zip(bias)
            .filter(|(s, _)| **s != 0.0)
            .map(|(s, p)| (binomial(c, *p), channel.says_b(*s)))
            .collect();
        for _ in 0..40 {
            let mut shows_b = vec![0.0; c + 1];
            let mut weight = vec![0.0; c + 1];
            for (prior, b) in &units {
                // Joint posterior of (ones among the coalition, variant shown).
                let joint: Vec<(f64, f64)> = (0..=c)
                    .map(|j| {
                        (
                            prior[j] * theta[j] * b,
                            prior[j] * (1.0 - theta[j]) * (1.0 - b),
                        )
                    })
                    .collect();
                let total: f64 = joint.iter().map(|(x, y)| x + y).sum();
                if total <= 0.0 {
                    continue;
                }
                for (j, (x, y)) in joint.iter().enumerate() {
                    shows_b[j] += x / total;
                    weight[j] += (x + y) / total;
                }
            }
            for j in 1..c {
                if weight[j] > 1e-9 {
                    theta[j] = (shows_b[j] / weight[j]).clamp(0.0, 1.0);
                }
            }
        }
        Some(Coalition { theta, channel })
    }

    /// Per unit, the score of a session holding B and of one holding A: the log-likelihood
    /// ratio of the unit's value for a member of the coalition against an innocent session.
    /// Unobserved units score 0 either way.
    pub fn weights(&self, soft: &[f64], bias: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let c = self.theta.len() - 1;
        let mut one = vec![0.0; soft.len()];
        let mut zero = vec![0.0; soft.len()];
        for (k, (&s, &p)) in soft.iter().zip(bias).enumerate() {
            if s == 0.0 {
                continue;
            }
            let others = binomial(c - 1, p);
            let all = binomial(c, p);
            // P(shows B | member holds B), P(shows B | member holds A), P(shows B).
            let b_if_b: f64 = (0..c).map(|j| others[j] * self.theta[j + 1]).sum();
            let b_if_a: f64 = (0..c).map(|j| others[j] * self.theta[j]).sum();
            let b_any: f64 = (0..=c).map(|j| all[j] * self.theta[j]).sum();
            let says_b = self.channel.says_b(s);
            // Likelihood of the value given P(shows B) = q, up to a common factor.
            let seen = |q: f64| (q * says_b + (1.0 - q) * (1.0 - says_b)).max(1e-300);
            let innocent = seen(b_any).ln();
            one[k] = seen(b_if_b).ln() - innocent;
            zero[k] = seen(b_if_a).ln() - innocent;
        }
        (one, zero)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn normal(rng: &mut impl Rng) -> f64 {
        let (u, v): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    #[test]
    fn the_channel_and_the_strategy_are_recovered() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let units = 3000;
        let bias: Vec<f64> = (0..units).map(|_| rng.gen_range(0.05..0.95)).collect();
        // Three colluders taking the minority variant, read with amplitude 2 and noise 0.7.
        let soft: Vec<f64> = bias
            .iter()
            .map(|&p| {
                let ones = (0..3).filter(|_| rng.gen::<f64>() < p).count();
                let b = matches!(ones, 1 | 3);
                2.0 * if b { 1.0 } else { -1.0 } + 0.7 * normal(&mut rng)
            })
            .collect();
        let channel = Channel::fit(&soft).unwrap();
        assert!((channel.amplitude - 2.0).abs() < 0.1, "{channel:?}");
        assert!((channel.sigma - 0.7).abs() < 0.1, "{channel:?}");
        let coalition = Coalition::estimate(3, &soft, &bias).unwrap();
        // Minority: one B of three shows B, two of three show A.
        assert!(coalition.theta[1] > 0.9, "{coalition:?}");
        assert!(coalition.theta[2] < 0.1, "{coalition:?}");
        // The weights favour what a minority-taking member's bits do.
        let (one, zero) = coalition.weights(&soft, &bias);
        assert_eq!(one.len(), units);
        assert!(one.iter().chain(&zero).all(|w| w.is_finite()));
        assert!(Channel::fit(&[0.0, 1.0]).is_none());
        assert!(Coalition::estimate(2, &[0.0; 4], &[0.5; 4]).is_none());
    }

    #[test]
    fn binomial_probabilities_add_up() {
        for n in 0..6 {
            let b = binomial(n, 0.3);
            assert!((b.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        assert!((binomial(2, 0.5)[1] - 0.5).abs() < 1e-12);
    }
}
