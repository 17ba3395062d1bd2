//! What a coalition of colluders did, estimated from the copy alone, and the score that
//! follows from it.
//!
//! A coalition of `c` sessions shows, at each unit, something that depends on how many of them
//! hold B there: with `j` of `c` holding B it shows variant B, variant A, or a blend of both
//! (frames of their copies averaged, in any proportion), with probabilities that are its
//! strategy. Colluders who all hold the same variant can only show that one (`j = 0`: A,
//! `j = c`: B). A unit's value reads about `+a` for B, `-a` for A and somewhere between for a
//! blend, with Gaussian noise (the [`Channel`], fitted to the values). A blend is evidence: it
//! says the coalition holds both variants there, which under a biased code points at whoever
//! holds the rarer one. Given the unit biases, the strategy is estimated by
//! expectation-maximisation over the copy's values; the score of a session is then the
//! log-likelihood ratio of "this session is one of the `c`" against "this session is
//! innocent", unit by unit: the most powerful single-session test for that coalition.
//!
//! Once some sessions are accused, the same model conditioned on their codes scores the rest
//! (joint decoding): the accused members' bits are known at every unit, so what the copy shows
//! says more about the members still unknown than the copy alone does.
//!
//! Nothing here looks at the code of any session that is not already accused, so an innocent
//! session's bits stay independent of the weights and the matching's tail bound holds for them.

/// What a coalition can show of a unit, as the level its value reads at (times the
/// amplitude): variant B, variant A, or a blend of both (frames averaged) at one of the levels
/// that averaging the copies of 2, 3 or 4 colluders gives (`2 j / c - 1`, `j` of `c` holding
/// B; a weighted blend reads near one of them).
const LEVELS: [f64; OUTCOMES] = [1.0, -1.0, -0.5, -1.0 / 3.0, 0.0, 1.0 / 3.0, 0.5];
const OUTCOMES: usize = 7;
const B: usize = 0;
const A: usize = 1;

/// The reading of a unit's value: `amplitude` times the level of what the unit shows (B +1,
/// A -1, a blend between), plus Gaussian noise of deviation `sigma`; `shares` is how often the
/// copy shows each of [`LEVELS`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Channel {
    pub amplitude: f64,
    pub sigma: f64,
    pub shares: [f64; OUTCOMES],
}

impl Channel {
    /// Fits the mixture to the observed values (0 = not observed) by
    /// expectation-maximisation; `None` when fewer than two units were observed.
    pub fn fit(soft: &[f64]) -> Option<Channel> {
        let seen: Vec<f64> = soft.iter().copied().filter(|s| *s != 0.0).collect();
        if seen.len() < 2 {
            return None;
        }
        let n = seen.len() as f64;
        // Start from the largest values (the pure units), few blends.
        let mut sorted: Vec<f64> = seen.iter().map(|s| s.abs()).collect();
        sorted.sort_by(f64::total_cmp);
        let a = sorted[sorted.len() * 3 / 4].max(1e-9);
        let mut channel = Channel {
            amplitude: a,
            sigma: (0.5 * a).max(1e-6),
            shares: [0.0; OUTCOMES],
        };
        channel.shares[B] = 0.4;
        channel.shares[A] = 0.4;
        for share in &mut channel.shares[2..] {
            *share = 0.2 / (OUTCOMES - 2) as f64;
        }
        for _ in 0..100 {
            // Sums for the shares, the amplitude (least squares over the levels) and the noise.
            let mut sum_r = [0.0; OUTCOMES];
            let (mut sum_ls, mut sum_ll) = (0.0, 0.0);
            let mut r_all = Vec::with_capacity(seen.len());
            for &s in &seen {
                let l = channel.likelihoods(s);
                let mut r: [f64; OUTCOMES] = std::array::from_fn(|o| channel.shares[o] * l[o]);
                let total: f64 = r.iter().sum();
                if total <= 0.0 {
                    continue;
                }
                r.iter_mut().for_each(|x| *x /= total);
                for o in 0..OUTCOMES {
                    sum_r[o] += r[o];
                    sum_ls += r[o] * LEVELS[o] * s;
                    sum_ll += r[o] * LEVELS[o] * LEVELS[o];
                }
                r_all.push((s, r));
            }
            if sum_ll <= 0.0 {
                break;
            }
            let a = (sum_ls / sum_ll).abs().max(1e-9);
            let var: f64 = r_all
                .iter()
                .map(|(s, r)| {
                    (0..OUTCOMES)
                        .map(|o| r[o] * (s - LEVELS[o] * a).powi(2))
                        .sum::<f64>()
                })
                .sum::<f64>()
                / n;
            let total: f64 = sum_r.iter().sum();
            channel = Channel {
                amplitude: a,
                sigma: var.max(1e-6 * a * a).max(1e-12).sqrt(),
                shares: sum_r.map(|x| x / total.max(1e-300)),
            };
        }
        Some(channel)
    }

    /// The share of units showing a blend.
    pub fn blend(&self) -> f64 {
        self.shares[2..].iter().sum()
    }

    /// The likelihood of a value for each of [`LEVELS`], up to one common factor.
    fn likelihoods(&self, s: f64) -> [f64; OUTCOMES] {
        let (a, sigma) = (self.amplitude, self.sigma.max(1e-12));
        let log: [f64; OUTCOMES] = LEVELS.map(|level| -((s - level * a) / sigma).powi(2) / 2.0);
        let top = log.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        log.map(|x| (x - top).exp())
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
    /// `shows[j]`: the probability of showing each of [`LEVELS`] (B, A, the blends) when `j`
    /// of the coalition hold B.
    pub shows: Vec<[f64; OUTCOMES]>,
    pub channel: Channel,
}

impl Coalition {
    /// The probability of showing B when `j` of the coalition hold B (a blend counting by its
    /// level: halfway is half).
    pub fn shows_b(&self, j: usize) -> f64 {
        self.shows.get(j).map_or(0.0, |s| {
            (0..OUTCOMES).map(|o| s[o] * (1.0 + LEVELS[o]) / 2.0).sum()
        })
    }

    /// The probability of showing a blend when `j` of the coalition hold B.
    pub fn shows_blend(&self, j: usize) -> f64 {
        self.shows.get(j).map_or(0.0, |s| s[2..].iter().sum())
    }

    /// Estimates the strategy of a coalition of `size` (at least 2) from the copy's values and
    /// the units' biases.
    pub fn estimate(size: usize, soft: &[f64], bias: &[f64]) -> Option<Coalition> {
        Coalition::estimate_given(size, soft, bias, &[])
    }

    /// [`Coalition::estimate`] for a coalition of which the sessions with codes `known` (from
    /// unit 0) are members; `size` is at least one more than them.
    pub fn estimate_given(
        size: usize,
        soft: &[f64],
        bias: &[f64],
        known: &[Vec<bool>],
    ) -> Option<Coalition> {
        let channel = Channel::fit(soft)?;
        let c = size.max(2).max(known.len() + 1);
        // Start from "each unit from one of them at random", blended as often as the copy
        // shows blends, at the copy's blend levels.
        let blend = channel.blend().clamp(0.01, 0.9);
        let mut shows: Vec<[f64; OUTCOMES]> = (0..=c)
            .map(|j| {
                let mut p = [0.0; OUTCOMES];
                if j == 0 {
                    p[A] = 1.0;
                } else if j == c {
                    p[B] = 1.0;
                } else {
                    let b = j as f64 / c as f64;
                    p[B] = b * (1.0 - blend);
                    p[A] = (1.0 - b) * (1.0 - blend);
                    let blends = channel.blend() + 1e-3 * (OUTCOMES - 2) as f64;
                    for (p, share) in p[2..].iter_mut().zip(&channel.shares[2..]) {
                        *p = blend * (share + 1e-3) / blends;
                    }
                }
                p
            })
            .collect();
        let units: Vec<(Vec<f64>, [f64; OUTCOMES])> = soft
            .iter()
            .zip(bias)
            .enumerate()
            .filter(|(_, (s, _))| **s != 0.0)
            .map(|(k, (s, p))| {
                (
                    prior_of_ones(c, *p, known_ones(known, k), known.len()),
                    channel.likelihoods(*s),
                )
            })
            .collect();
        for _ in 0..40 {
            let mut counts = vec![[0.0; OUTCOMES]; c + 1];
            let mut joint = vec![[0.0; OUTCOMES]; c + 1];
            for (prior, l) in &units {
                // Joint posterior of (ones among the coalition, what it showed).
                let mut total = 0.0;
                for j in 0..=c {
                    for o in 0..OUTCOMES {
                        joint[j][o] = prior[j] * shows[j][o] * l[o];
                        total += joint[j][o];
                    }
                }
                if total <= 0.0 {
                    continue;
                }
                for (count, jo) in counts.iter_mut().zip(&joint) {
                    for o in 0..OUTCOMES {
                        count[o] += jo[o] / total;
                    }
                }
            }
            for j in 1..c {
                let weight: f64 = counts[j].iter().sum();
                if weight > 1e-9 {
                    shows[j] = counts[j].map(|x| (x / weight).clamp(0.0, 1.0));
                }
            }
        }
        Some(Coalition { shows, channel })
    }

    /// Per unit, the score of a session holding B and of one holding A: the log-likelihood
    /// ratio of the unit's value for a member of the coalition against an innocent session.
    /// Unobserved units score 0 either way.
    pub fn weights(&self, soft: &[f64], bias: &[f64]) -> (Vec<f64>, Vec<f64>) {
        self.weights_given(soft, bias, &[])
    }

    /// [`Coalition::weights`] for a session other than the members with codes `known`:
    /// "one of the coalition with them" against "innocent, the coalition being them and
    /// others".
    pub fn weights_given(
        &self,
        soft: &[f64],
        bias: &[f64],
        known: &[Vec<bool>],
    ) -> (Vec<f64>, Vec<f64>) {
        let c = self.shows.len() - 1;
        let mut one = vec![0.0; soft.len()];
        let mut zero = vec![0.0; soft.len()];
        // Members still unknown besides the session scored.
        let Some(others) = c.checked_sub(known.len() + 1) else {
            return (one, zero);
        };
        for (k, (&s, &p)) in soft.iter().zip(bias).enumerate() {
            if s == 0.0 {
                continue;
            }
            let ones = known_ones(known, k);
            let l = self.channel.likelihoods(s);
            // The likelihood of the value when `j` of the coalition hold B.
            let given = |j: usize| -> f64 {
                let shows = &self.shows[j.min(c)];
                (0..OUTCOMES).map(|o| shows[o] * l[o]).sum()
            };
            let unknown = binomial(others, p);
            let if_b: f64 = (0..=others).map(|i| unknown[i] * given(ones + 1 + i)).sum();
            let if_a: f64 = (0..=others).map(|i| unknown[i] * given(ones + i)).sum();
            let all = binomial(others + 1, p);
            let innocent: f64 = (0..=others + 1).map(|i| all[i] * given(ones + i)).sum();
            let innocent = innocent.max(1e-300).ln();
            one[k] = if_b.max(1e-300).ln() - innocent;
            zero[k] = if_a.max(1e-300).ln() - innocent;
        }
        (one, zero)
    }
}

/// How many of the `known` codes hold B at unit `k`.
fn known_ones(known: &[Vec<bool>], k: usize) -> usize {
    known
        .iter()
        .filter(|code| code.get(k) == Some(&true))
        .count()
}

/// The probabilities of `0..=c` ones in a coalition of `c` of which `m` known members hold
/// `ones` ones and the others are random bits of bias `p`.
fn prior_of_ones(c: usize, p: f64, ones: usize, m: usize) -> Vec<f64> {
    let mut prior = vec![0.0; c + 1];
    for (i, q) in binomial(c.saturating_sub(m), p).into_iter().enumerate() {
        if let Some(slot) = prior.get_mut(ones + i) {
            *slot = q;
        }
    }
    prior
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn normal(rng: &mut impl Rng) -> f64 {
        let (u, v): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// A coalition of `codes` showing, per unit, B (`Some(true)`), A or a blend (`None`, read
    /// at the share of B among them), read with `amplitude` and unit noise times `noise`.
    fn copy(
        codes: &[Vec<bool>],
        amplitude: f64,
        noise: f64,
        seed: u64,
        choose: impl Fn(&[bool]) -> Option<bool>,
    ) -> Vec<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..codes[0].len())
            .map(|k| {
                let bits: Vec<bool> = codes.iter().map(|c| c[k]).collect();
                let level = match choose(&bits) {
                    Some(b) => {
                        if b {
                            1.0
                        } else {
                            -1.0
                        }
                    }
                    None => {
                        2.0 * bits.iter().filter(|b| **b).count() as f64 / bits.len() as f64 - 1.0
                    }
                };
                amplitude * level + noise * normal(&mut rng)
            })
            .collect()
    }

    fn codes(bias: &[f64], c: usize, seed: u64) -> Vec<Vec<bool>> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..c)
            .map(|_| bias.iter().map(|&p| rng.gen::<f64>() < p).collect())
            .collect()
    }

    fn biases(units: usize, seed: u64) -> Vec<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..units).map(|_| rng.gen_range(0.05..0.95)).collect()
    }

    /// The mean score of a session's code under per-unit weights.
    fn score(code: &[bool], (one, zero): &(Vec<f64>, Vec<f64>)) -> f64 {
        code.iter()
            .enumerate()
            .map(|(k, &b)| if b { one[k] } else { zero[k] })
            .sum()
    }

    #[test]
    fn the_channel_and_the_strategy_are_recovered() {
        let bias = biases(3000, 5);
        let members = codes(&bias, 3, 6);
        // Three colluders taking the minority variant, read with amplitude 2 and noise 0.7.
        let soft = copy(&members, 2.0, 0.7, 7, |b| {
            Some(matches!(b.iter().filter(|x| **x).count(), 1 | 3))
        });
        let channel = Channel::fit(&soft).unwrap();
        assert!((channel.amplitude - 2.0).abs() < 0.1, "{channel:?}");
        assert!((channel.sigma - 0.7).abs() < 0.1, "{channel:?}");
        assert!(channel.blend() < 0.03, "no blends here: {channel:?}");
        let coalition = Coalition::estimate(3, &soft, &bias).unwrap();
        // Minority: one B of three shows B, two of three show A.
        assert!(coalition.shows_b(1) > 0.9, "{coalition:?}");
        assert!(coalition.shows_b(2) < 0.1, "{coalition:?}");
        // The weights favour what a minority-taking member's bits do.
        let weights = coalition.weights(&soft, &bias);
        assert_eq!(weights.0.len(), 3000);
        assert!(weights.0.iter().chain(&weights.1).all(|w| w.is_finite()));
        let innocent = codes(&bias, 1, 8).remove(0);
        assert!(score(&members[0], &weights) > score(&innocent, &weights) + 20.0);
        assert!(Channel::fit(&[0.0, 1.0]).is_none());
        assert!(Coalition::estimate(2, &[0.0; 4], &[0.5; 4]).is_none());
    }

    #[test]
    fn blended_units_are_recognised_and_point_at_the_rarer_variant() {
        // Two colluders averaging their frames wherever they differ.
        let bias = biases(3000, 9);
        let members = codes(&bias, 2, 10);
        let soft = copy(&members, 2.0, 0.6, 11, |b| (b[0] == b[1]).then_some(b[0]));
        let channel = Channel::fit(&soft).unwrap();
        assert!((channel.amplitude - 2.0).abs() < 0.15, "{channel:?}");
        assert!((channel.sigma - 0.6).abs() < 0.15, "{channel:?}");
        // The two hold different variants at 2 p (1 - p) of the units, 0.365 on average
        // (read a little high: some pure units' noise reads as a blend).
        assert!((0.3..0.45).contains(&channel.blend()), "{channel:?}");
        let coalition = Coalition::estimate(2, &soft, &bias).unwrap();
        assert!(coalition.shows_blend(1) > 0.9, "{coalition:?}");
        assert!((coalition.shows_b(1) - 0.5).abs() < 0.05, "{coalition:?}");
        // A blend at a unit where B is rare: whoever holds B is more likely a member, whoever
        // holds A less (the other member must hold B).
        let (one, zero) = coalition.weights(&[0.05], &[0.1]);
        assert!(one[0] > 1.0 && zero[0] < 0.0, "{one:?} {zero:?}");
        // Over the whole copy both members stand far above an innocent code.
        let weights = coalition.weights(&soft, &bias);
        let innocent = codes(&bias, 1, 12).remove(0);
        for member in &members {
            assert!(score(member, &weights) > score(&innocent, &weights) + 50.0);
        }
    }

    #[test]
    fn a_known_member_sharpens_the_score_of_the_others() {
        // Three colluders taking the majority variant: the copy alone says little about each,
        // the copy with one member's code says more about the other two.
        let bias = biases(600, 13);
        let members = codes(&bias, 3, 14);
        let soft = copy(&members, 1.0, 1.0, 15, |b| {
            Some(b.iter().filter(|x| **x).count() >= 2)
        });
        let alone = Coalition::estimate(3, &soft, &bias).unwrap();
        let given = Coalition::estimate_given(3, &soft, &bias, &members[..1]).unwrap();
        let innocent = codes(&bias, 1, 16).remove(0);
        let unconditional = alone.weights(&soft, &bias);
        let conditional = given.weights_given(&soft, &bias, &members[..1]);
        let lead = |w: &(Vec<f64>, Vec<f64>)| score(&members[1], w) - score(&innocent, w);
        assert!(
            lead(&conditional) > lead(&unconditional),
            "{} against {}",
            lead(&conditional),
            lead(&unconditional)
        );
        // A coalition no larger than the members known leaves nobody to score.
        let (one, zero) = given.weights_given(&soft, &bias, &members);
        assert!(one.iter().chain(&zero).all(|w| *w == 0.0));
    }

    #[test]
    fn binomial_probabilities_add_up() {
        for n in 0..6 {
            let b = binomial(n, 0.3);
            assert!((b.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        assert!((binomial(2, 0.5)[1] - 0.5).abs() < 1e-12);
        let prior = prior_of_ones(4, 0.3, 1, 2);
        assert_eq!(prior[0], 0.0);
        assert!((prior.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
}
