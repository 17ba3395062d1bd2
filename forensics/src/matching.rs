//! Matching extracted soft values against the codes of the sessions that streamed the title
//! (each session's code picks a variant per unit): every candidate scored, the best first,
//! each with its Bonferroni false-positive probability; a verdict only from that probability.

use formats::case::{Match, Verdict};
use formats::codes::CodeKey;
use rayon::prelude::*;

use crate::statistics::{self, Decision};

/// A session that streamed the title. Its code is the same index in a [`CodeBook`].
pub struct Candidate {
    pub session_id: String,
    pub user: String,
    pub device_id: String,
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
        let (offset, end) = (book.offset, book.offset + book.units);
        let blocks = offset / 256..end.div_ceil(256);
        book.bits
            .par_chunks_mut(book.words)
            .zip(session_ids.par_iter())
            .for_each(|(row, id)| {
                for j in blocks.clone() {
                    let block = key.block(id.as_ref(), j as u32);
                    // Block bytes are most significant bit first; rows are least significant
                    // first.
                    for (b, byte) in block.iter().enumerate() {
                        let unit = j * 256 + b * 8;
                        if unit < offset {
                            continue;
                        }
                        if unit >= end {
                            break;
                        }
                        let k = unit - offset;
                        row[k / 64] |= (byte.reverse_bits() as u64) << (k % 64);
                    }
                }
                // Bits past the window stay clear.
                if (end - offset) % 64 != 0 {
                    if let Some(last) = row.last_mut() {
                        *last &= (1u64 << ((end - offset) % 64)) - 1;
                    }
                }
            });
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

    /// Every candidate's score ([`statistics::score`]) against `soft` (indexed by unit from
    /// 0; values outside the window must be 0). A table per byte of code turns each
    /// candidate's correlation into one lookup per eight units.
    pub fn scores(&self, soft: &[f64]) -> Vec<f64> {
        let energy: f64 = soft.iter().map(|s| s * s).sum();
        if energy <= 0.0 {
            return vec![0.0; self.len()];
        }
        let norm = energy.sqrt();
        let bytes = self.units.div_ceil(8);
        let tables: Vec<[f64; 256]> = (0..bytes)
            .map(|j| {
                let mut table = [0f64; 256];
                for (v, entry) in table.iter_mut().enumerate() {
                    *entry = (0..8)
                        .map(|i| {
                            let s = soft.get(self.offset + j * 8 + i).copied().unwrap_or(0.0);
                            if v >> i & 1 == 1 {
                                s
                            } else {
                                -s
                            }
                        })
                        .sum();
                }
                table
            })
            .collect();
        self.bits
            .par_chunks(self.words)
            .map(|row| {
                let correlation: f64 = tables
                    .iter()
                    .enumerate()
                    .map(|(j, table)| table[(row[j / 8] >> (8 * (j % 8)) & 0xff) as usize])
                    .sum();
                correlation / norm
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

/// The best `keep` codes of `book` against `soft`, best first (ties by position, so the
/// ranking is deterministic): (index in the book, score, unit agreement).
fn best_of(book: &CodeBook, soft: &[f64], keep: usize) -> Vec<(usize, f64, f64)> {
    let scores = book.scores(soft);
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

/// The unit indexes a suspect shows: from the first to the last unit with a value.
fn observed_span(soft: &[f64]) -> std::ops::Range<usize> {
    soft.iter().position(|&v| v != 0.0).unwrap_or(0)
        ..soft.iter().rposition(|&v| v != 0.0).map_or(0, |k| k + 1)
}

/// The best sessions of a title, scored batch by batch: however many sessions the title has,
/// only one batch of codes and the best few are held at a time.
pub struct Ranking<'a> {
    soft: &'a [f64],
    key: &'a CodeKey,
    keep: usize,
    best: Vec<Scored>,
    /// Sessions scored so far (the Bonferroni factor).
    count: usize,
}

impl<'a> Ranking<'a> {
    /// A ranking of codes keyed by `key` against `soft` (per unit, 0 where not observed),
    /// keeping the best `keep` (at least five).
    pub fn new(soft: &'a [f64], key: &'a CodeKey, keep: usize) -> Ranking<'a> {
        Ranking {
            soft,
            key,
            keep: keep.max(5),
            best: Vec::new(),
            count: 0,
        }
    }

    /// Scores a batch of sessions (codes derived over the units the suspect shows only).
    pub fn add<S: AsRef<str> + Sync>(&mut self, session_ids: &[S]) {
        let book = CodeBook::derive(self.key, session_ids, observed_span(self.soft));
        for (i, score, unit_agreement) in best_of(&book, self.soft, self.keep) {
            self.best.push(Scored {
                session_id: session_ids[i].as_ref().to_string(),
                score,
                unit_agreement,
            });
        }
        // A stable sort: earlier batches first among equal scores.
        self.best.sort_by(|a, b| b.score.total_cmp(&a.score));
        self.best.truncate(self.keep);
        self.count += session_ids.len();
    }

    /// Sessions scored so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The best sessions, best first, each with its false-positive probability among all
    /// the sessions scored.
    pub fn finish(self) -> Vec<(Scored, f64)> {
        let tail = statistics::NullTail::new(self.soft);
        let count = self.count;
        self.best
            .into_iter()
            .map(|s| {
                let p = tail.false_positive_probability(s.score, count);
                (s, p)
            })
            .collect()
    }
}

/// Scores every candidate (`codes` holds their codes in the same order); returns the best
/// `keep` (at least five when there are that many), best first.
pub fn rank(soft: &[f64], candidates: &[Candidate], codes: &CodeBook, keep: usize) -> Vec<Match> {
    let n = candidates.len().min(codes.len());
    let tail = statistics::NullTail::new(soft);
    best_of(codes, soft, keep.max(5).min(n))
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
            for (i, score) in book.scores(&soft).into_iter().enumerate() {
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
        let key = CodeKey::new(&secret);
        let ids: Vec<String> = (0..50).map(|i| format!("session-{i}")).collect();
        for units in [1u32, 106, 256, 300, 700] {
            let book = CodeBook::derive(&key, &ids, 0..units as usize);
            assert_eq!(book.len(), ids.len());
            for (i, id) in ids.iter().enumerate() {
                let code = formats::codes::session_code(&secret, id, units);
                for (k, &b) in code.iter().enumerate() {
                    assert_eq!(book.bit(i, k), b, "{id} unit {k} of {units}");
                }
                assert!(!book.bit(i, units as usize));
            }
        }
        // A window derives the same bits, and nothing outside it.
        let code = formats::codes::session_code(&secret, &ids[3], 700);
        let book = CodeBook::derive(&key, &ids, 300..450);
        for (k, &b) in code.iter().enumerate() {
            let inside = (256..450).contains(&k);
            assert_eq!(book.bit(3, k), b && inside, "unit {k}");
        }
    }
}
