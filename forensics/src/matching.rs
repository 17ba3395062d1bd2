//! Matching extracted soft values against the codes of the sessions that streamed the title
//! (each session's code picks a variant per unit): every candidate scored, the best kept, each
//! with a calibrated false-positive probability; accusations only from that probability.
//!
//! A score adds, per unit, one weight when a session's bit is 1 and another when it is 0
//! ([`UnitWeights`]). The first pass scores the whole copy with the symmetric weights (for an
//! unbiased code, the normalised correlation). When a copy was mixed from several sessions,
//! the units the sessions accused so far cannot explain (the copy shows a variant none of them
//! received) were supplied by someone else: later passes score those units only, and name the
//! next colluder. Under a biased code the first pass also scores every session by the
//! likelihood ratio of coalitions of 2, 3 and 4 whose strategy is estimated from the copy
//! ([`crate::coalition`]). Later passes (under either code) also score every session by the
//! likelihood ratio of being one of a coalition of 2, 3 or 4 with the sessions accused so far,
//! their codes known (joint decoding). Each score of each pass has its share of the
//! false-positive budget ([`Budget`]), so the chance of naming any innocent stays below the
//! threshold.

use formats::case::{Match, Verdict};
use formats::codes::{CodeKey, CodeScheme};

use crate::coalition::{Coalition, Readings};
use rayon::prelude::*;

use crate::statistics::{self, ChernoffTail, Decision, NullTail};

/// A session that streamed the title. Its code is the same index in a [`CodeBook`].
pub struct Candidate {
    pub session_id: String,
    pub user: String,
    pub device_id: String,
}

/// The per-unit weights of a score (indexed by unit from 0): a session scores `one[k]` at unit
/// `k` when its bit is 1 (B) and `zero[k]` when it is 0; `bias[k]` is the probability of a 1
/// for an innocent session. Units with both weights 0 do not count.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitWeights {
    pub one: Vec<f64>,
    pub zero: Vec<f64>,
    pub bias: Vec<f64>,
}

impl UnitWeights {
    /// The symmetric score over the soft values: `s_k sqrt((1 - p) / p)` for a 1 and
    /// `-s_k sqrt(p / (1 - p))` for a 0, divided by `sqrt(sum s_k^2)`, so that an innocent
    /// session's score has mean 0 and variance 1 whatever the biases; with unbiased bits it is
    /// the normalised correlation.
    pub fn symmetric(soft: &[f64], bias: &[f64]) -> UnitWeights {
        let norm = soft.iter().map(|s| s * s).sum::<f64>().sqrt();
        let mut w = UnitWeights {
            one: vec![0.0; soft.len()],
            zero: vec![0.0; soft.len()],
            bias: bias.to_vec(),
        };
        w.bias.resize(soft.len(), 0.5);
        if norm > 0.0 {
            for (k, &s) in soft.iter().enumerate() {
                let p = w.bias[k].clamp(1e-9, 1.0 - 1e-9);
                w.one[k] = s * ((1.0 - p) / p).sqrt() / norm;
                w.zero[k] = -s * (p / (1.0 - p)).sqrt() / norm;
            }
        }
        w
    }

    /// The symmetric score over the units `accused` (codes from unit 0) cannot explain: every
    /// accused session has the same bit there and the copy shows the other variant.
    pub fn unexplained(soft: &[f64], bias: &[f64], accused: &[Vec<bool>]) -> UnitWeights {
        let masked: Vec<f64> = soft
            .iter()
            .enumerate()
            .map(|(k, &s)| {
                let shown = s > 0.0;
                let explained = accused.iter().any(|c| c.get(k) == Some(&shown));
                if s == 0.0 || explained || accused.is_empty() {
                    0.0
                } else {
                    s
                }
            })
            .collect();
        UnitWeights::symmetric(&masked, bias)
    }

    /// The likelihood-ratio score of a member of `coalition` (see [`crate::coalition`]).
    pub fn coalition(readings: Readings<'_>, bias: &[f64], coalition: &Coalition) -> UnitWeights {
        UnitWeights::coalition_with(readings, bias, coalition, &[])
    }

    /// The likelihood-ratio score of a session other than the `accused` (codes from unit 0)
    /// being a member of `coalition` with them.
    pub fn coalition_with(
        readings: Readings<'_>,
        bias: &[f64],
        coalition: &Coalition,
        accused: &[Vec<bool>],
    ) -> UnitWeights {
        let mut bias = bias.to_vec();
        bias.resize(readings.soft.len(), 0.5);
        let (one, zero) = coalition.weights_given(readings, &bias, accused);
        UnitWeights { one, zero, bias }
    }

    /// Units that count.
    pub fn units_counted(&self) -> usize {
        self.one
            .iter()
            .zip(&self.zero)
            .filter(|(a, b)| **a != 0.0 || **b != 0.0)
            .count()
    }

    /// The unit indexes from the first to the last that counts.
    fn span(&self) -> std::ops::Range<usize> {
        let counts = |k: &usize| self.one[*k] != 0.0 || self.zero[*k] != 0.0;
        let first = (0..self.one.len()).find(counts).unwrap_or(0);
        let last = (0..self.one.len()).rev().find(counts).map_or(0, |k| k + 1);
        first..last.max(first)
    }

    /// The tail of an innocent session's score: exact (or normal, for long copies) when the
    /// bits are unbiased and the weights antipodal, as for `uniform-v1`; a Chernoff bound
    /// otherwise.
    fn tail(&self) -> Tail {
        let fair = self
            .one
            .iter()
            .zip(&self.zero)
            .zip(&self.bias)
            .all(|((a, b), p)| (*a == 0.0 && *b == 0.0) || (*p == 0.5 && *a == -*b));
        // The exact and normal tails read a score as a correlation over unit-norm weights (the
        // symmetric score's); any other weights get the Chernoff bound, which holds for all.
        let unit_norm = (self.one.iter().map(|w| w * w).sum::<f64>() - 1.0).abs() < 1e-9;
        if fair && unit_norm {
            Tail::Fair(NullTail::new(&self.one))
        } else {
            Tail::Chernoff(ChernoffTail::new(&self.one, &self.zero, &self.bias))
        }
    }
}

enum Tail {
    Fair(NullTail),
    Chernoff(ChernoffTail),
}

impl Tail {
    fn false_positive_probability(&self, score: f64, candidates: usize) -> f64 {
        match self {
            Tail::Fair(t) => t.false_positive_probability(score, candidates),
            Tail::Chernoff(t) => statistics::bonferroni(t.upper_tail(score), candidates),
        }
    }
}

/// The codes of many sessions over a window of units, packed: unit `offset + k` of candidate
/// `i` is bit `k % 64` of word `k / 64` of the candidate's row (B = 1). Only the window a
/// suspect covers needs deriving and scoring: a million sessions of a 60 s excerpt take 8 MB.
pub struct CodeBook {
    /// First unit index (0-based) of the window, a multiple of 64.
    offset: usize,
    units: usize,
    words: usize,
    bits: Vec<u64>,
}

impl CodeBook {
    /// An empty book of codes of `units` units from unit index 0.
    pub fn new(units: usize) -> CodeBook {
        CodeBook::window(0..units)
    }

    fn window(units: std::ops::Range<usize>) -> CodeBook {
        let offset = units.start / 64 * 64;
        let len = units.end.saturating_sub(offset);
        CodeBook {
            offset,
            units: len,
            words: len.div_ceil(64).max(1),
            bits: Vec::new(),
        }
    }

    /// Derives, in parallel, the codes of `session_ids` from the title's code key over the
    /// unit indexes `units` (0-based; the window may start a little earlier).
    pub fn derive<S: AsRef<str> + Sync>(
        key: &CodeKey,
        session_ids: &[S],
        units: std::ops::Range<usize>,
    ) -> CodeBook {
        let mut book = CodeBook::window(units);
        book.bits = vec![0; book.words * session_ids.len()];
        let window = book.offset..book.offset + book.units;
        let thresholds = key.window_thresholds(window.clone());
        book.bits
            .par_chunks_mut(book.words)
            .zip(session_ids.par_iter())
            .for_each(|(row, id)| key.fill_row(id.as_ref(), window.clone(), &thresholds, row));
        book
    }

    /// Appends a whole code given as bits from unit index 0 (missing units count as A).
    pub fn push(&mut self, code: &[bool]) {
        let mut row = vec![0u64; self.words];
        let window = code.iter().enumerate().skip(self.offset).take(self.units);
        for (k, _) in window.filter(|(_, &b)| b) {
            let k = k - self.offset;
            row[k / 64] |= 1 << (k % 64);
        }
        self.bits.extend_from_slice(&row);
    }

    pub fn len(&self) -> usize {
        self.bits.len() / self.words
    }

    pub fn is_empty(&self) -> bool {
        self.bits.is_empty()
    }

    fn row(&self, i: usize) -> &[u64] {
        &self.bits[i * self.words..(i + 1) * self.words]
    }

    /// Unit index `k` of candidate `i` (variant B when true; false outside the window).
    pub fn bit(&self, i: usize, k: usize) -> bool {
        match k.checked_sub(self.offset) {
            Some(k) if k < self.units => self.row(i)[k / 64] >> (k % 64) & 1 == 1,
            _ => false,
        }
    }

    /// Every candidate's score under `weights` (units outside the window must not count).
    /// A table per byte of code turns each candidate's score into one lookup per eight units.
    pub fn scores(&self, weights: &UnitWeights) -> Vec<f64> {
        let weight = |k: usize, bit: bool| {
            let w = if bit { &weights.one } else { &weights.zero };
            w.get(k).copied().unwrap_or(0.0)
        };
        let bytes = self.units.div_ceil(8);
        let tables: Vec<[f64; 256]> = (0..bytes)
            .map(|j| {
                let mut table = [0f64; 256];
                for (v, entry) in table.iter_mut().enumerate() {
                    *entry = (0..8)
                        .map(|i| weight(self.offset + j * 8 + i, v >> i & 1 == 1))
                        .sum();
                }
                table
            })
            .collect();
        self.bits
            .par_chunks(self.words)
            .map(|row| {
                tables
                    .iter()
                    .enumerate()
                    .map(|(j, table)| table[(row[j / 8] >> (8 * (j % 8)) & 0xff) as usize])
                    .sum()
            })
            .collect()
    }
}

/// One session scored: its id, score and the share of observed units whose value has the
/// sign of its bit.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub session_id: String,
    pub score: f64,
    pub unit_agreement: f64,
}

/// The best `keep` codes of `book` under `weights`, best first (ties by position, so the
/// ranking is deterministic): (index in the book, score, unit agreement with `soft`).
fn best_of(
    book: &CodeBook,
    weights: &UnitWeights,
    soft: &[f64],
    keep: usize,
) -> Vec<(usize, f64, f64)> {
    let scores = book.scores(weights);
    let mut order: Vec<usize> = (0..scores.len()).collect();
    let better = |a: &usize, b: &usize| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b));
    if keep < order.len() {
        order.select_nth_unstable_by(keep, better);
        order.truncate(keep);
    }
    order.sort_by(better);
    let observed: Vec<usize> = (0..soft.len()).filter(|&k| soft[k] != 0.0).collect();
    order
        .into_iter()
        .map(|i| {
            let agree = observed
                .iter()
                .filter(|&&k| book.bit(i, k) == (soft[k] > 0.0))
                .count();
            let agreement = agree as f64 / observed.len().max(1) as f64;
            (i, scores[i], agreement)
        })
        .collect()
}

/// The best sessions of a title under one or more scores, scored batch by batch: however many
/// sessions the title has, only one batch of codes and the best few per score are held at a
/// time.
pub struct Ranking<'a> {
    /// Each score's weights and its best sessions so far.
    scores: Vec<(UnitWeights, Vec<Scored>)>,
    soft: &'a [f64],
    key: &'a CodeKey,
    keep: usize,
    /// Sessions scored so far.
    count: usize,
    /// The Bonferroni factor when more sessions exist than are scored (a simulation that
    /// scores the colluders and a sample of innocents for a title of many sessions).
    population: usize,
}

impl<'a> Ranking<'a> {
    /// A ranking under each of `scores` of codes keyed by `key`, keeping the best `keep` (at
    /// least five) of each; `soft` (per unit, 0 where not observed) gives each kept session's
    /// agreement.
    pub fn new(
        scores: Vec<UnitWeights>,
        soft: &'a [f64],
        key: &'a CodeKey,
        keep: usize,
    ) -> Ranking<'a> {
        Ranking {
            scores: scores.into_iter().map(|w| (w, Vec::new())).collect(),
            soft,
            key,
            keep: keep.max(5),
            count: 0,
            population: 0,
        }
    }

    /// Scores a batch of sessions (codes derived once, over the units some score counts).
    pub fn add<S: AsRef<str> + Sync>(&mut self, session_ids: &[S]) {
        let span = self
            .scores
            .iter()
            .map(|(w, _)| w.span())
            .filter(|s| !s.is_empty())
            .reduce(|a, b| a.start.min(b.start)..a.end.max(b.end))
            .unwrap_or(0..0);
        let book = CodeBook::derive(self.key, session_ids, span);
        for (weights, best) in &mut self.scores {
            for (i, score, unit_agreement) in best_of(&book, weights, self.soft, self.keep) {
                best.push(Scored {
                    session_id: session_ids[i].as_ref().to_string(),
                    score,
                    unit_agreement,
                });
            }
            // A stable sort: earlier batches first among equal scores.
            best.sort_by(|a, b| b.score.total_cmp(&a.score));
            best.truncate(self.keep);
        }
        self.count += session_ids.len();
    }

    /// Sessions scored so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Per score, the best sessions, best first, each with its false-positive probability
    /// among all the sessions scored.
    pub fn finish(self) -> Vec<Vec<(Scored, f64)>> {
        let count = self.count.max(self.population);
        self.scores
            .into_iter()
            .map(|(weights, best)| {
                let tail = weights.tail();
                best.into_iter()
                    .map(|s| {
                        let p = tail.false_positive_probability(s.score, count);
                        (s, p)
                    })
                    .collect()
            })
            .collect()
    }
}

/// How the false-positive budget is shared: a session found by a score reports that score's
/// false-positive probability divided by the score's share, so that the probability that any
/// innocent is accused by any score of any pass stays below the threshold (the shares add up
/// to 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Pass 1's symmetric score (a single leaker's).
    pub symmetric: f64,
    /// Pass 1's coalition scores, each (biased codes only).
    pub coalition: f64,
    /// Passes 2, 3 and 4, each shared equally among its scores.
    pub later: [f64; 3],
}

/// Coalition sizes pass 1 scores under a biased code.
pub const COALITION_SIZES: [usize; 3] = [2, 3, 4];

impl Budget {
    pub fn for_scheme(scheme: CodeScheme) -> Budget {
        match scheme {
            // Unbiased codes: a coalition's likelihood ratio is the correlation again (or
            // carries nothing), so pass 1 is the symmetric score alone.
            CodeScheme::Uniform => Budget {
                symmetric: 0.8,
                coalition: 0.0,
                later: [0.1, 0.05, 0.05],
            },
            CodeScheme::Tardos => Budget {
                symmetric: 0.5,
                coalition: 0.1,
                later: [0.1, 0.05, 0.05],
            },
        }
    }
}

/// Units a later pass needs before it is tried.
const MIN_UNEXPLAINED_UNITS: usize = 8;

/// One session's finding across the passes.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub scored: Scored,
    /// Its false-positive probability (its pass's, over that pass's share).
    pub false_positive_probability: f64,
    /// The pass that gave it (1: the whole copy; later: units earlier accusations leave
    /// unexplained).
    pub pass: u32,
}

/// What the passes found: the sessions accused (below the threshold) and the best others.
#[derive(Debug, Clone, PartialEq)]
pub struct Accusation {
    /// Accused first (in the order found), then the best of the rest; each session once.
    pub findings: Vec<Finding>,
    /// How many of `findings` are accused.
    pub accused: usize,
    /// Sessions scored (per pass).
    pub sessions: usize,
    pub passes: u32,
}

/// Runs the accusation passes over every session of a title: `scan` feeds the ranking every
/// batch of session ids, once per pass. A pass runs only when the one before accused someone
/// new and one of its scores counts some unit (the unexplained units' score needs at least
/// `MIN_UNEXPLAINED_UNITS`).
pub fn accuse<E>(
    readings: Readings<'_>,
    key: &CodeKey,
    threshold: f64,
    keep: usize,
    scan: impl FnMut(&mut Ranking<'_>) -> Result<(), E>,
) -> Result<Accusation, E> {
    accuse_among(readings, key, threshold, keep, 0, scan)
}

/// [`accuse`] for a title of at least `population` sessions, of which `scan` may feed only
/// some (the Bonferroni factor is the larger of the two): for simulations.
pub fn accuse_among<E>(
    readings: Readings<'_>,
    key: &CodeKey,
    threshold: f64,
    keep: usize,
    population: usize,
    mut scan: impl FnMut(&mut Ranking<'_>) -> Result<(), E>,
) -> Result<Accusation, E> {
    let soft = readings.soft;
    let bias = key.biases(0..soft.len());
    let budget = Budget::for_scheme(key.scheme());
    let mut findings: Vec<Finding> = Vec::new();
    let mut accused: Vec<Finding> = Vec::new();
    let mut sessions = 0;
    let mut passes = 0;
    // Pass 1: the symmetric score, and under a biased code each coalition's likelihood ratio.
    let mut scores = vec![(UnitWeights::symmetric(soft, &bias), budget.symmetric)];
    if budget.coalition > 0.0 {
        for size in COALITION_SIZES {
            if let Some(c) = Coalition::estimate(size, readings, &bias) {
                scores.push((
                    UnitWeights::coalition(readings, &bias, &c),
                    budget.coalition,
                ));
            }
        }
    }
    for pass in 0..=budget.later.len() {
        if scores.iter().all(|(w, _)| w.units_counted() == 0) {
            break;
        }
        let shares: Vec<f64> = scores.iter().map(|(_, share)| *share).collect();
        let weights = scores.into_iter().map(|(w, _)| w).collect();
        // The sessions accused so far may rank high under a later pass's joint scores: room
        // for them besides the `keep` best others.
        let mut ranking = Ranking::new(weights, soft, key, keep + accused.len());
        ranking.population = population;
        scan(&mut ranking)?;
        sessions = ranking.count().max(population);
        passes += 1;
        // Each session once, at its lowest probability over this pass's scores.
        let mut found: Vec<Finding> = Vec::new();
        for (ranked, share) in ranking.finish().into_iter().zip(shares) {
            for (scored, p) in ranked {
                let finding = Finding {
                    scored,
                    false_positive_probability: (p / share).min(1.0),
                    pass: pass as u32 + 1,
                };
                let id = finding.scored.session_id.clone();
                match found.iter_mut().find(|f| f.scored.session_id == id) {
                    Some(f)
                        if f.false_positive_probability <= finding.false_positive_probability => {}
                    Some(f) => *f = finding,
                    None => found.push(finding),
                }
            }
        }
        found.sort_by(|a, b| {
            a.false_positive_probability
                .total_cmp(&b.false_positive_probability)
                .then(b.scored.score.total_cmp(&a.scored.score))
        });
        let mut new = 0;
        for finding in found {
            let id = &finding.scored.session_id;
            if accused.iter().any(|a| &a.scored.session_id == id) {
                continue;
            }
            if statistics::decide(finding.false_positive_probability, threshold)
                == Decision::Identified
            {
                new += 1;
                accused.push(finding);
            } else if !findings.iter().any(|f| &f.scored.session_id == id) {
                findings.push(finding);
            }
        }
        if new == 0 || pass == budget.later.len() {
            break;
        }
        let codes: Vec<Vec<bool>> = accused
            .iter()
            .map(|a| key.code(&a.scored.session_id, soft.len() as u32))
            .collect();
        scores = later_scores(readings, &bias, &codes, budget.later[pass]);
    }
    findings.retain(|f| {
        !accused
            .iter()
            .any(|a| a.scored.session_id == f.scored.session_id)
    });
    findings.sort_by(|a, b| {
        a.false_positive_probability
            .total_cmp(&b.false_positive_probability)
            .then(b.scored.score.total_cmp(&a.scored.score))
    });
    let count = accused.len();
    let rest = keep.max(5).saturating_sub(count);
    accused.extend(findings.into_iter().take(rest));
    Ok(Accusation {
        findings: accused,
        accused: count,
        sessions,
        passes,
    })
}

/// The scores of a later pass, given the codes of the sessions accused so far, sharing the
/// pass's `share` of the budget: the symmetric score over the units they cannot explain (when
/// there are enough), and for each coalition size larger than their number the likelihood
/// ratio of being one of such a coalition with them (joint decoding).
fn later_scores(
    readings: Readings<'_>,
    bias: &[f64],
    accused: &[Vec<bool>],
    share: f64,
) -> Vec<(UnitWeights, f64)> {
    let mut scores = Vec::new();
    let unexplained = UnitWeights::unexplained(readings.soft, bias, accused);
    if unexplained.units_counted() >= MIN_UNEXPLAINED_UNITS {
        scores.push(unexplained);
    }
    for size in COALITION_SIZES.into_iter().filter(|&c| c > accused.len()) {
        if let Some(c) = Coalition::estimate_given(size, readings, bias, accused) {
            scores.push(UnitWeights::coalition_with(readings, bias, &c, accused));
        }
    }
    let each = share / scores.len().max(1) as f64;
    scores.into_iter().map(|w| (w, each)).collect()
}

/// Scores every candidate (`codes` holds their codes in the same order) with the symmetric
/// weights of unbiased codes; returns the best `keep` (at least five when there are that
/// many), best first.
pub fn rank(soft: &[f64], candidates: &[Candidate], codes: &CodeBook, keep: usize) -> Vec<Match> {
    let n = candidates.len().min(codes.len());
    let weights = UnitWeights::symmetric(soft, &vec![0.5; soft.len()]);
    let tail = weights.tail();
    best_of(codes, &weights, soft, keep.max(5).min(n))
        .into_iter()
        .filter(|&(i, _, _)| i < n)
        .map(|(i, score, unit_agreement)| {
            let c = &candidates[i];
            Match {
                session_id: c.session_id.clone(),
                user: c.user.clone(),
                device_id: c.device_id.clone(),
                score,
                false_positive_probability: tail.false_positive_probability(score, n),
                unit_agreement,
                accused: false,
                pass: 1,
                reference: None,
            }
        })
        .collect()
}

/// `identified` only when the best match's false-positive probability is under `threshold`.
pub fn verdict(matches: &[Match], threshold: f64) -> Verdict {
    match matches.first() {
        Some(m)
            if statistics::decide(m.false_positive_probability, threshold)
                == Decision::Identified =>
        {
            Verdict::Identified
        }
        _ => Verdict::Inconclusive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use formats::codes::CodeScheme;
    use rand::{Rng, SeedableRng};

    fn candidate(i: usize) -> Candidate {
        Candidate {
            session_id: format!("s{i}"),
            user: format!("u{i}"),
            device_id: format!("d{i}"),
        }
    }

    #[test]
    fn the_leaker_ranks_first_and_innocents_stay_unremarkable() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let units = 60;
        let codes: Vec<Vec<bool>> = (0..200)
            .map(|_| (0..units).map(|_| rng.gen()).collect())
            .collect();
        let cands: Vec<Candidate> = (0..200).map(candidate).collect();
        let mut book = CodeBook::new(units);
        codes.iter().for_each(|c| book.push(c));
        let soft: Vec<f64> = codes[17]
            .iter()
            .map(|&b| if b { 1.0 } else { -1.0 } + rng.gen_range(-0.8..0.8))
            .collect();
        let m = rank(&soft, &cands, &book, 5);
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].session_id, "s17");
        assert!(m[0].false_positive_probability < 1e-6);
        assert_eq!(m[0].unit_agreement, 1.0);
        assert!(m[1].false_positive_probability > 1e-3);
        assert!(m.windows(2).all(|w| w[0].score >= w[1].score));
        assert_eq!(verdict(&m, 1e-6), Verdict::Identified);
        // No signal, no accusation.
        let silent = vec![0.0; units];
        assert_eq!(
            verdict(&rank(&silent, &cands, &book, 5), 1e-6),
            Verdict::Inconclusive
        );
        assert_eq!(verdict(&[], 1e-6), Verdict::Inconclusive);
    }

    #[test]
    fn packed_scores_equal_the_reference_score_for_every_length() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for units in [1usize, 7, 8, 63, 64, 65, 130, 300] {
            let codes: Vec<Vec<bool>> = (0..20)
                .map(|_| (0..units).map(|_| rng.gen()).collect())
                .collect();
            let soft: Vec<f64> = (0..units)
                .map(|k| {
                    if k % 5 == 0 {
                        0.0
                    } else {
                        rng.gen_range(-2.0..2.0)
                    }
                })
                .collect();
            let mut book = CodeBook::new(units);
            codes.iter().for_each(|c| book.push(c));
            let weights = UnitWeights::symmetric(&soft, &vec![0.5; units]);
            for (i, score) in book.scores(&weights).into_iter().enumerate() {
                let want = statistics::score(&soft, &codes[i]);
                assert!(
                    (score - want).abs() < 1e-9,
                    "{units} units: {score} vs {want}"
                );
            }
        }
    }

    #[test]
    fn derived_codes_are_the_sessions_codes() {
        let secret = [5u8; 32];
        let key = CodeKey::new(&secret, CodeScheme::Uniform);
        let ids: Vec<String> = (0..50).map(|i| format!("session-{i}")).collect();
        for units in [1u32, 106, 256, 300, 700] {
            let book = CodeBook::derive(&key, &ids, 0..units as usize);
            assert_eq!(book.len(), ids.len());
            for (i, id) in ids.iter().enumerate() {
                let code = formats::codes::session_code(&secret, CodeScheme::Uniform, id, units);
                for (k, &b) in code.iter().enumerate() {
                    assert_eq!(book.bit(i, k), b, "{id} unit {k} of {units}");
                }
                assert!(!book.bit(i, units as usize));
            }
        }
        // A window derives the same bits, and nothing outside it.
        let code = formats::codes::session_code(&secret, CodeScheme::Uniform, &ids[3], 700);
        let book = CodeBook::derive(&key, &ids, 300..450);
        for (k, &b) in code.iter().enumerate() {
            let inside = (256..450).contains(&k);
            assert_eq!(book.bit(3, k), b && inside, "unit {k}");
        }
    }

    /// Sessions of a synthetic title and the copy a coalition makes of it.
    struct Coalition {
        key: CodeKey,
        ids: Vec<String>,
        soft: Vec<f64>,
    }

    /// `innocent` sessions plus `colluders` (ids "c0", "c1", ...) mixing `units` units by
    /// `choose` (their bits at a unit -> the variant shown, or None for a blend of both), read
    /// back with noise of standard deviation `noise` against an amplitude of 1.
    fn coalition(
        scheme: CodeScheme,
        innocent: usize,
        colluders: usize,
        units: usize,
        noise: f64,
        seed: u64,
        choose: impl Fn(&[bool], &mut rand_chacha::ChaCha8Rng) -> Option<bool>,
    ) -> Coalition {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let key = CodeKey::new(&[seed as u8; 32], scheme);
        let mut ids: Vec<String> = (0..innocent).map(|i| format!("i{i}")).collect();
        let codes: Vec<Vec<bool>> = (0..colluders)
            .map(|c| key.code(&format!("c{c}"), units as u32))
            .collect();
        ids.extend((0..colluders).map(|c| format!("c{c}")));
        let soft = (0..units)
            .map(|k| {
                let bits: Vec<bool> = codes.iter().map(|c| c[k]).collect();
                let signal = match choose(&bits, &mut rng) {
                    Some(true) => 1.0,
                    Some(false) => -1.0,
                    None => 0.0,
                };
                // Box-Muller.
                let (u, v): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
                signal + noise * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
            })
            .collect();
        Coalition { key, ids, soft }
    }

    fn run(c: &Coalition) -> Accusation {
        accuse(Readings::uniform(&c.soft), &c.key, 1e-6, 5, |ranking| {
            for batch in c.ids.chunks(4096) {
                ranking.add(batch);
            }
            Ok::<(), ()>(())
        })
        .unwrap()
    }

    /// `colluders` (sorted) are named, and no other session comes near the threshold.
    fn assert_named_alone(a: &Accusation, colluders: &[&str]) {
        let mut named = accused(a);
        named.sort();
        assert_eq!(named, colluders, "{:?}", a.findings);
        assert!(a.findings[a.accused..]
            .iter()
            .all(|f| f.false_positive_probability > 1e-3));
    }

    fn accused(a: &Accusation) -> Vec<&str> {
        a.findings[..a.accused]
            .iter()
            .map(|f| f.scored.session_id.as_str())
            .collect()
    }

    #[test]
    fn a_single_leaker_is_named_alone_under_either_code() {
        for scheme in CodeScheme::ALL.iter().copied() {
            let c = coalition(scheme, 5000, 1, 120, 0.8, 21, |b, _| Some(b[0]));
            let a = run(&c);
            assert_eq!(accused(&a), ["c0"], "{scheme}");
            assert_eq!(a.findings[0].pass, 1);
            assert!(a.findings[1..]
                .iter()
                .all(|f| f.false_positive_probability > 1e-3));
            assert_eq!(a.sessions, 5001);
        }
    }

    #[test]
    fn two_colluders_swapping_units_are_both_named() {
        // Each unit from one of the two at random: the first pass names one, the units it
        // cannot explain name the other.
        let c = coalition(CodeScheme::Tardos, 5000, 2, 400, 0.7, 22, |b, rng| {
            Some(b[rng.gen_range(0..2)])
        });
        let a = run(&c);
        assert_named_alone(&a, &["c0", "c1"]);
    }

    #[test]
    fn three_colluders_taking_the_minority_variant_are_named_only_with_biased_codes() {
        let minority = |b: &[bool], _: &mut rand_chacha::ChaCha8Rng| {
            let ones = b.iter().filter(|x| **x).count();
            Some(match ones {
                0 => false,
                3 => true,
                1 => true,
                _ => false,
            })
        };
        // Unbiased codes: every colluder's expected score is 0; nobody is named, nobody
        // innocent either.
        let uniform = run(&coalition(
            CodeScheme::Uniform,
            3000,
            3,
            1800,
            0.6,
            23,
            minority,
        ));
        assert_eq!(uniform.accused, 0, "{:?}", uniform.findings);
        assert!(uniform
            .findings
            .iter()
            .all(|f| f.false_positive_probability > 1e-3));
        // Biased codes: the same coalition is named.
        let tardos = run(&coalition(
            CodeScheme::Tardos,
            3000,
            3,
            1800,
            0.6,
            23,
            minority,
        ));
        let named = accused(&tardos);
        assert!(!named.is_empty(), "{:?}", tardos.findings);
        assert!(named.iter().all(|s| s.starts_with('c')), "{named:?}");
    }

    #[test]
    fn two_colluders_averaging_their_frames_are_both_named_and_nobody_else() {
        // Where their variants differ the copy shows a blend of both (read about halfway),
        // elsewhere the variant both hold: the blends say which units they differ at.
        let c = coalition(CodeScheme::Tardos, 4000, 2, 400, 0.5, 24, |b, _| {
            (b[0] == b[1]).then_some(b[0])
        });
        let a = run(&c);
        assert_named_alone(&a, &["c0", "c1"]);
    }

    #[test]
    fn once_one_colluder_is_named_the_others_are_scored_jointly_with_it() {
        // Three colluders taking the majority variant under unbiased codes: each shows in the
        // copy only where it sides with the majority; once one is named, the copy and its code
        // together say where the other two held what.
        let majority = |b: &[bool], _: &mut rand_chacha::ChaCha8Rng| {
            Some(b.iter().filter(|x| **x).count() >= 2)
        };
        let c = coalition(CodeScheme::Uniform, 3000, 3, 200, 0.8, 27, majority);
        let a = run(&c);
        assert_named_alone(&a, &["c0", "c1", "c2"]);
        assert!(a.findings[..a.accused].iter().any(|f| f.pass > 1));
        // Given the first named, the joint scores say much more about the other two than the
        // units it cannot explain alone.
        let first = &a.findings[0].scored.session_id;
        let bias = c.key.biases(0..200);
        let known = vec![c.key.code(first, 200)];
        let scores = later_scores(Readings::uniform(&c.soft), &bias, &known, 0.1);
        assert_eq!(
            scores.len(),
            1 + 3,
            "unexplained, then coalitions of 2, 3 and 4"
        );
        let probability = |weights: &UnitWeights, id: &str| {
            let code = c.key.code(id, 200);
            let score: f64 = (0..200)
                .map(|k| {
                    if code[k] {
                        weights.one[k]
                    } else {
                        weights.zero[k]
                    }
                })
                .sum();
            weights
                .tail()
                .false_positive_probability(score, c.ids.len())
        };
        for other in ["c0", "c1", "c2"].iter().filter(|id| *id != first) {
            let unexplained = probability(&scores[0].0, other);
            let joint = scores[1..]
                .iter()
                .map(|(w, _)| probability(w, other))
                .fold(1.0, f64::min);
            assert!(
                joint * 10.0 < unexplained,
                "{other}: joint {joint:e}, unexplained units {unexplained:e}"
            );
        }
    }

    #[test]
    fn derived_tardos_codes_are_the_sessions_codes() {
        let key = CodeKey::new(&[8u8; 32], CodeScheme::Tardos);
        let ids: Vec<String> = (0..20).map(|i| format!("session-{i}")).collect();
        let book = CodeBook::derive(&key, &ids, 100..300);
        for (i, id) in ids.iter().enumerate() {
            let code = key.code(id, 300);
            for (k, &b) in code.iter().enumerate() {
                assert_eq!(book.bit(i, k), b && k >= 64, "{id} unit {k}");
            }
        }
    }

    /// The coalition scores are calibrated like the symmetric one: 100,000 innocent codes
    /// scored with the weights estimated from a minority-taking coalition's copy exceed each
    /// level no more often than the Chernoff bound says.
    #[test]
    fn coalition_scores_of_innocent_codes_stay_under_their_bound() {
        let minority = |b: &[bool], _: &mut rand_chacha::ChaCha8Rng| {
            Some(matches!(b.iter().filter(|x| **x).count(), 1 | 3))
        };
        let c = coalition(CodeScheme::Tardos, 0, 3, 200, 0.8, 25, minority);
        let bias = c.key.biases(0..200);
        let estimate =
            crate::coalition::Coalition::estimate(3, Readings::uniform(&c.soft), &bias).unwrap();
        // The coalition's own score, and the joint score given one member (later passes).
        let member = c.key.code("c0", 200);
        let given = crate::coalition::Coalition::estimate_given(
            3,
            Readings::uniform(&c.soft),
            &bias,
            std::slice::from_ref(&member),
        )
        .unwrap();
        let ids: Vec<String> = (0..100_000).map(|i| format!("innocent-{i}")).collect();
        let book = CodeBook::derive(&c.key, &ids, 0..200);
        for weights in [
            UnitWeights::coalition(Readings::uniform(&c.soft), &bias, &estimate),
            UnitWeights::coalition_with(
                Readings::uniform(&c.soft),
                &bias,
                &given,
                std::slice::from_ref(&member),
            ),
        ] {
            let scores = book.scores(&weights);
            let tail = ChernoffTail::new(&weights.one, &weights.zero, &weights.bias);
            let mean: f64 = scores.iter().sum::<f64>() / scores.len() as f64;
            let sd = (scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / scores.len() as f64)
                .sqrt();
            for k in [1.0, 2.0, 3.0, 3.5] {
                let level = mean + k * sd;
                let hits = scores.iter().filter(|&&s| s >= level).count() as f64;
                let expected = tail.upper_tail(level) * scores.len() as f64;
                assert!(
                    hits <= expected + 4.0 * expected.sqrt() + 3.0,
                    "level {level}: {hits} innocent codes above, bound says {expected}"
                );
            }
        }
    }
}
