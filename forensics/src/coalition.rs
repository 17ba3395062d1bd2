//! What a coalition of colluders did, estimated from the copy alone, and the score that
//! follows from it.
//!
//! A coalition of `c` sessions shows, at each unit, something that depends on how many of them
//! hold B there: with `j` of `c` holding B it shows variant B, variant A, or a blend of both
//! (frames of their copies averaged, in any proportion), with probabilities that are its
//! strategy. Colluders who all hold the same variant can only show that one (`j = 0`: A,
//! `j = c`: B), up to a unit misread now and then. A unit's value reads about `+a` for B, `-a`
//! for A and somewhere between for a blend (`a` optionally scaled by how strongly the unit can
//! carry the mark), with Gaussian noise (the [`Channel`], fitted to the values). A blend is
//! evidence: it says the coalition holds both variants there, which under a biased code points
//! at whoever holds the rarer one. Given the unit biases, the strategy is estimated by
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

/// The chance that a unit reads as any level whatever the coalition holds there (its mark
/// wiped or misread): no single unit can then weigh more than about `ln(OUTCOMES / MISREAD)`
/// against a member, so colluders who spoil a few units cannot cancel the rest.
const MISREAD: f64 = 0.01;

/// A copy's per-unit values as the extraction reads them.
#[derive(Debug, Clone, Copy)]
pub struct Readings<'a> {
    /// Per unit (from unit index 0): positive when the copy looks like variant B, negative for
    /// A, 0 when not observed.
    pub soft: &'a [f64],
    /// Per unit, how strongly the mark can read there (the square root of the energy of the
    /// variants' difference in the copy's frames: a unit's value is about this times what the
    /// attack left of the mark, `+` for B, `-` for A); the levels are scaled by it. Empty (or
    /// 0 for a unit): every unit alike, as the analysis scores (on re-encoded copies the scaling
    /// named colluders later for every strategy but averaging: BENCHMARKS).
    pub strength: &'a [f64],
}

impl<'a> Readings<'a> {
    /// Values whose units are all alike in strength.
    pub fn uniform(soft: &'a [f64]) -> Readings<'a> {
        Readings {
            soft,
            strength: &[],
        }
    }

    /// The observed units: (index, value, strength relative to the mean over them), values
    /// beyond three times the typical pure unit's (relative to their strength) held there, so
    /// that a few extreme values cannot swamp the fit.
    fn observed(&self) -> Vec<(usize, f64, f64)> {
        let seen: Vec<(usize, f64, f64)> = self
            .soft
            .iter()
            .enumerate()
            .filter(|(_, s)| **s != 0.0 && s.is_finite())
            .map(|(k, &s)| {
                let r = self.strength.get(k).copied().unwrap_or(0.0);
                (k, s, if r.is_finite() && r > 0.0 { r } else { 0.0 })
            })
            .collect();
        let known: Vec<f64> = seen.iter().map(|u| u.2).filter(|r| *r > 0.0).collect();
        // Units without a strength (or all, when none is known) count as the mean.
        let mean = if known.is_empty() {
            1.0
        } else {
            known.iter().sum::<f64>() / known.len() as f64
        };
        let seen: Vec<(usize, f64, f64)> = seen
            .into_iter()
            .map(|(k, s, r)| (k, s, if r > 0.0 { r / mean } else { 1.0 }))
            .collect();
        let mut relative: Vec<f64> = seen.iter().map(|(_, s, r)| (s / r).abs()).collect();
        relative.sort_by(f64::total_cmp);
        let Some(&typical) = relative.get(relative.len() * 3 / 4) else {
            return seen;
        };
        let limit = 3.0 * typical;
        seen.into_iter()
            .map(|(k, s, r)| (k, s.clamp(-limit * r, limit * r), r))
            .collect()
    }
}

/// The reading of a unit's value: `amplitude` times the unit's relative strength times the
/// level of what the unit shows (B +1, A -1, a blend between), plus Gaussian noise of
/// deviation `sigma`; `shares` is how often the copy shows each of [`LEVELS`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Channel {
    pub amplitude: f64,
    pub sigma: f64,
    pub shares: [f64; OUTCOMES],
}

impl Channel {
    /// Fits the mixture to the observed values by expectation-maximisation; `None` when fewer
    /// than two units were observed.
    pub fn fit(readings: Readings<'_>) -> Option<Channel> {
        Channel::fit_observed(&readings.observed())
    }

    fn fit_observed(seen: &[(usize, f64, f64)]) -> Option<Channel> {
        if seen.len() < 2 {
            return None;
        }
        let n = seen.len() as f64;
        // Start from the largest values (the pure units), few blends.
        let mut sorted: Vec<f64> = seen.iter().map(|(_, s, r)| (s / r).abs()).collect();
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
        let mut responsibilities = Vec::with_capacity(seen.len());
        for _ in 0..100 {
            // Sums for the shares, the amplitude (least squares over the levels) and the noise.
            let mut sum_r = [0.0; OUTCOMES];
            let (mut sum_ls, mut sum_ll) = (0.0, 0.0);
            responsibilities.clear();
            for &(_, s, strength) in seen {
                let l = channel.likelihoods(s, strength);
                let mut r: [f64; OUTCOMES] = std::array::from_fn(|o| channel.shares[o] * l[o]);
                let total: f64 = r.iter().sum();
                if !(total > 0.0 && total.is_finite()) {
                    continue;
                }
                r.iter_mut().for_each(|x| *x /= total);
                for o in 0..OUTCOMES {
                    let x = LEVELS[o] * strength;
                    sum_r[o] += r[o];
                    sum_ls += r[o] * x * s;
                    sum_ll += r[o] * x * x;
                }
                responsibilities.push((s, strength, r));
            }
            if !(sum_ll > 0.0 && sum_ls.is_finite()) {
                break;
            }
            let a = (sum_ls / sum_ll).abs().max(1e-9);
            let var: f64 = responsibilities
                .iter()
                .map(|(s, strength, r)| {
                    (0..OUTCOMES)
                        .map(|o| r[o] * (s - LEVELS[o] * strength * a).powi(2))
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

    /// The likelihood of a value of a unit of relative `strength` for each of [`LEVELS`], up
    /// to one common factor.
    fn likelihoods(&self, s: f64, strength: f64) -> [f64; OUTCOMES] {
        let (a, sigma) = (self.amplitude * strength, self.sigma.max(1e-12));
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
    pub fn estimate(size: usize, readings: Readings<'_>, bias: &[f64]) -> Option<Coalition> {
        Coalition::estimate_given(size, readings, bias, &[])
    }

    /// [`Coalition::estimate`] for a coalition of which the sessions with codes `known` (from
    /// unit 0) are members; `size` is at least one more than them.
    pub fn estimate_given(
        size: usize,
        readings: Readings<'_>,
        bias: &[f64],
        known: &[Vec<bool>],
    ) -> Option<Coalition> {
        let seen = readings.observed();
        let channel = Channel::fit_observed(&seen)?;
        let c = size.max(2).max(known.len() + 1);
        // Start from "each unit from one of them at random", blended as often as the copy
        // shows blends, at the copy's blend levels.
        let blend = channel.blend().clamp(0.01, 0.9);
        let blends = channel.blend() + 1e-3 * (OUTCOMES - 2) as f64;
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
                    for (p, share) in p[2..].iter_mut().zip(&channel.shares[2..]) {
                        *p = blend * (share + 1e-3) / blends;
                    }
                }
                misread(p)
            })
            .collect();
        let units: Vec<(Vec<f64>, [f64; OUTCOMES])> = seen
            .iter()
            .filter_map(|&(k, s, strength)| {
                let (ones, members) = known_at(known, k);
                let p = *bias.get(k)?;
                Some((
                    prior_of_ones(c, p, ones, members),
                    channel.likelihoods(s, strength),
                ))
            })
            .collect();
        let mut joint = vec![[0.0; OUTCOMES]; c + 1];
        for _ in 0..1000 {
            let mut counts = vec![[0.0; OUTCOMES]; c + 1];
            for (prior, l) in &units {
                // Joint posterior of (ones among the coalition, what it showed).
                let mut total = 0.0;
                for j in 0..=c {
                    for o in 0..OUTCOMES {
                        joint[j][o] = prior[j] * shows[j][o] * l[o];
                        total += joint[j][o];
                    }
                }
                if !(total > 0.0 && total.is_finite()) {
                    continue;
                }
                for (count, jo) in counts.iter_mut().zip(&joint) {
                    for o in 0..OUTCOMES {
                        count[o] += jo[o] / total;
                    }
                }
            }
            let mut moved = 0.0f64;
            for j in 1..c {
                let weight: f64 = counts[j].iter().sum();
                if weight > 1e-9 {
                    let next = misread(counts[j].map(|x| (x / weight).clamp(0.0, 1.0)));
                    for (a, b) in shows[j].iter().zip(&next) {
                        moved = moved.max((a - b).abs());
                    }
                    shows[j] = next;
                }
            }
            // Mixture weights converge slowly where counts of members overlap: run until
            // they stand still.
            if moved < 1e-6 {
                break;
            }
        }
        Some(Coalition { shows, channel })
    }

    /// Per unit, the score of a session holding B and of one holding A: the log-likelihood
    /// ratio of the unit's value for a member of the coalition against an innocent session.
    /// Unobserved units score 0 either way.
    pub fn weights(&self, readings: Readings<'_>, bias: &[f64]) -> (Vec<f64>, Vec<f64>) {
        self.weights_given(readings, bias, &[])
    }

    /// [`Coalition::weights`] for a session other than the members with codes `known`:
    /// "one of the coalition with them" against "innocent, the coalition being them and
    /// others".
    pub fn weights_given(
        &self,
        readings: Readings<'_>,
        bias: &[f64],
        known: &[Vec<bool>],
    ) -> (Vec<f64>, Vec<f64>) {
        let units = readings.soft.len();
        let mut one = vec![0.0; units];
        let mut zero = vec![0.0; units];
        let Some(c) = self.shows.len().checked_sub(1) else {
            return (one, zero);
        };
        if c < known.len() + 1 {
            // A coalition no larger than the members known: nobody else to score.
            return (one, zero);
        }
        // The values as the channel was fitted to them (extreme ones held).
        for (k, s, strength) in readings.observed() {
            let Some(&p) = bias.get(k) else {
                continue;
            };
            let (ones, members) = known_at(known, k);
            // Members still unknown besides the session scored.
            let others = c - members - 1;
            let l = self.channel.likelihoods(s, strength);
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

/// A strategy's outcome probabilities with the chance of a misread unit mixed in.
fn misread(p: [f64; OUTCOMES]) -> [f64; OUTCOMES] {
    p.map(|x| (1.0 - MISREAD) * x + MISREAD / OUTCOMES as f64)
}

/// Of the `known` codes, how many hold B at unit `k` and how many have a bit there at all.
fn known_at(known: &[Vec<bool>], k: usize) -> (usize, usize) {
    known
        .iter()
        .fold((0, 0), |(ones, members), code| match code.get(k) {
            Some(&b) => (ones + usize::from(b), members + 1),
            None => (ones, members),
        })
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
        let channel = Channel::fit(Readings::uniform(&soft)).unwrap();
        assert!((channel.amplitude - 2.0).abs() < 0.1, "{channel:?}");
        assert!((channel.sigma - 0.7).abs() < 0.1, "{channel:?}");
        assert!(channel.blend() < 0.03, "no blends here: {channel:?}");
        let coalition = Coalition::estimate(3, Readings::uniform(&soft), &bias).unwrap();
        // Minority: one B of three shows B, two of three show A.
        assert!(coalition.shows_b(1) > 0.9, "{coalition:?}");
        assert!(coalition.shows_b(2) < 0.1, "{coalition:?}");
        // The weights favour what a minority-taking member's bits do.
        let weights = coalition.weights(Readings::uniform(&soft), &bias);
        assert_eq!(weights.0.len(), 3000);
        assert!(weights.0.iter().chain(&weights.1).all(|w| w.is_finite()));
        let innocent = codes(&bias, 1, 8).remove(0);
        assert!(score(&members[0], &weights) > score(&innocent, &weights) + 20.0);
        assert!(Channel::fit(Readings::uniform(&[0.0, 1.0])).is_none());
        assert!(Coalition::estimate(2, Readings::uniform(&[0.0; 4]), &[0.5; 4]).is_none());
    }

    #[test]
    fn blended_units_are_recognised_and_point_at_the_rarer_variant() {
        // Two colluders averaging their frames wherever they differ.
        let bias = biases(3000, 9);
        let members = codes(&bias, 2, 10);
        let soft = copy(&members, 2.0, 0.6, 11, |b| (b[0] == b[1]).then_some(b[0]));
        let channel = Channel::fit(Readings::uniform(&soft)).unwrap();
        assert!((channel.amplitude - 2.0).abs() < 0.15, "{channel:?}");
        assert!((channel.sigma - 0.6).abs() < 0.15, "{channel:?}");
        // The two hold different variants at 2 p (1 - p) of the units, 0.365 on average
        // (read a little high: some pure units' noise reads as a blend).
        assert!((0.3..0.45).contains(&channel.blend()), "{channel:?}");
        let coalition = Coalition::estimate(2, Readings::uniform(&soft), &bias).unwrap();
        assert!(coalition.shows_blend(1) > 0.9, "{coalition:?}");
        assert!((coalition.shows_b(1) - 0.5).abs() < 0.05, "{coalition:?}");
        // A blend at a unit where B is rare: whoever holds B is more likely a member, whoever
        // holds A less (the other member must hold B).
        let (one, zero) = coalition.weights(Readings::uniform(&[0.05]), &[0.1]);
        assert!(one[0] > 1.0 && zero[0] < 0.0, "{one:?} {zero:?}");
        // Over the whole copy both members stand far above an innocent code.
        let weights = coalition.weights(Readings::uniform(&soft), &bias);
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
        let alone = Coalition::estimate(3, Readings::uniform(&soft), &bias).unwrap();
        let given =
            Coalition::estimate_given(3, Readings::uniform(&soft), &bias, &members[..1]).unwrap();
        let innocent = codes(&bias, 1, 16).remove(0);
        let unconditional = alone.weights(Readings::uniform(&soft), &bias);
        let conditional = given.weights_given(Readings::uniform(&soft), &bias, &members[..1]);
        let lead = |w: &(Vec<f64>, Vec<f64>)| score(&members[1], w) - score(&innocent, w);
        assert!(
            lead(&conditional) > lead(&unconditional),
            "{} against {}",
            lead(&conditional),
            lead(&unconditional)
        );
        // A coalition no larger than the members known leaves nobody to score.
        let (one, zero) = given.weights_given(Readings::uniform(&soft), &bias, &members);
        assert!(one.iter().chain(&zero).all(|w| *w == 0.0));
    }

    #[test]
    fn the_reading_is_sharper_when_each_units_strength_is_known() {
        // A copy without blends, the mark's strength varying fourfold from unit to unit as it
        // does with the picture's content.
        let bias = biases(3000, 17);
        let members = codes(&bias, 2, 18);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(19);
        let strength: Vec<f64> = (0..3000).map(|_| rng.gen_range(0.5..2.0)).collect();
        let soft: Vec<f64> = copy(&members, 1.0, 0.0, 20, |b| Some(b[0]))
            .iter()
            .zip(&strength)
            .map(|(level, r)| 2.0 * level * r + 0.5 * normal(&mut rng))
            .collect();
        let known = Channel::fit(Readings {
            soft: &soft,
            strength: &strength,
        })
        .unwrap();
        assert!(known.blend() < 0.05, "{known:?}");
        assert!((known.sigma - 0.5).abs() < 0.1, "{known:?}");
        // Without the strengths the spread of the pure units reads as noise, twice as much.
        let unknown = Channel::fit(Readings::uniform(&soft)).unwrap();
        assert!(unknown.sigma > known.sigma + 0.3, "{unknown:?}");
    }

    #[test]
    fn a_spoiled_unit_weighs_little_and_bad_values_are_ignored() {
        let bias = biases(400, 21);
        let members = codes(&bias, 2, 22);
        let mut soft = copy(&members, 2.0, 0.5, 23, |b| Some(b[0]));
        // Where both hold B, one unit spoiled to read far beyond either variant.
        let k = (0..400).find(|&k| members[0][k] && members[1][k]).unwrap();
        soft[k] = -40.0;
        let clean = Channel::fit(Readings::uniform(&copy(&members, 2.0, 0.5, 23, |b| {
            Some(b[0])
        })));
        let spoiled = Channel::fit(Readings::uniform(&soft)).unwrap();
        assert!(
            (spoiled.sigma - clean.unwrap().sigma).abs() < 0.1,
            "{spoiled:?} against {clean:?}"
        );
        let coalition = Coalition::estimate(2, Readings::uniform(&soft), &bias).unwrap();
        let (one, zero) = coalition.weights(Readings::uniform(&soft), &bias);
        let limit = (OUTCOMES as f64 / MISREAD).ln() + 1.0;
        assert!(
            one.iter().chain(&zero).all(|w| w.abs() < limit),
            "every unit within {limit}"
        );
        // Values that are not numbers are not observed units.
        let mut bad = soft.clone();
        bad.extend([f64::NAN, f64::INFINITY, f64::NEG_INFINITY]);
        assert_eq!(
            Channel::fit(Readings::uniform(&bad)),
            Channel::fit(Readings::uniform(&soft))
        );
        let mut bias = bias;
        bias.extend([0.5; 3]);
        let (one, zero) = coalition.weights(Readings::uniform(&bad), &bias);
        assert!(one[400..].iter().chain(&zero[400..]).all(|w| *w == 0.0));
    }

    #[test]
    fn binomial_probabilities_add_up() {
        for n in 0..6 {
            let b = binomial(n, 0.3);
            assert!((b.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        assert!((binomial(2, 0.5)[1] - 0.5).abs() < 1e-12);
        // Two known members holding one B, two others of bias 0.3: 1, 2 or 3 ones.
        let prior = prior_of_ones(4, 0.3, 1, 2);
        let expected = [0.0, 0.49, 0.42, 0.09, 0.0];
        assert!(
            prior
                .iter()
                .zip(expected)
                .all(|(a, b)| (a - b).abs() < 1e-12),
            "{prior:?}"
        );
        assert_eq!(known_at(&[vec![true, false], vec![true]], 1), (0, 1));
        assert_eq!(known_at(&[vec![true, false], vec![true]], 0), (2, 2));
    }
}
