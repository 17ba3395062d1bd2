//! Matching extracted soft values against the codes of the sessions that streamed the title
//! (DESIGN section 3): every candidate scored, the best first, each with its Bonferroni
//! false-positive probability; a verdict only from that probability.

use serde::Serialize;

use crate::statistics::{self, Decision};

/// A session that streamed the title, with its code (one bit per unit, B = true).
pub struct Candidate {
    pub session_id: String,
    pub user: String,
    pub device_id: String,
    pub code: Vec<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    pub session_id: String,
    pub user: String,
    pub device_id: String,
    pub score: f64,
    pub false_positive_probability: f64,
    /// Share of observed units whose soft value has the sign of this session's bit.
    pub unit_agreement: f64,
}

/// Scores every candidate; returns the best `keep` (at least five when there are that many),
/// best first.
pub fn rank(soft: &[f64], candidates: &[Candidate], keep: usize) -> Vec<Match> {
    let observed: Vec<usize> = (0..soft.len()).filter(|&k| soft[k] != 0.0).collect();
    let mut scored: Vec<(f64, usize)> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (statistics::score(soft, &c.code), i))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored
        .into_iter()
        .take(keep.max(5))
        .map(|(z, i)| {
            let c = &candidates[i];
            let agree = observed
                .iter()
                .filter(|&&k| c.code.get(k).is_some_and(|&b| b == (soft[k] > 0.0)))
                .count();
            Match {
                session_id: c.session_id.clone(),
                user: c.user.clone(),
                device_id: c.device_id.clone(),
                score: z,
                false_positive_probability: statistics::false_positive_probability(
                    z,
                    candidates.len(),
                ),
                unit_agreement: if observed.is_empty() {
                    0.0
                } else {
                    agree as f64 / observed.len() as f64
                },
            }
        })
        .collect()
}

/// `identified` only when the best match's false-positive probability is under `threshold`.
pub fn verdict(matches: &[Match], threshold: f64) -> &'static str {
    match matches.first() {
        Some(m)
            if statistics::decide(m.false_positive_probability, threshold)
                == Decision::Identified =>
        {
            "identified"
        }
        _ => "inconclusive",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn candidate(i: usize, code: Vec<bool>) -> Candidate {
        Candidate {
            session_id: format!("s{i}"),
            user: format!("u{i}"),
            device_id: format!("d{i}"),
            code,
        }
    }

    #[test]
    fn the_leaker_ranks_first_and_innocents_stay_unremarkable() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let units = 60;
        let cands: Vec<Candidate> = (0..200)
            .map(|i| candidate(i, (0..units).map(|_| rng.gen()).collect()))
            .collect();
        let leaker = &cands[17].code;
        let soft: Vec<f64> = leaker
            .iter()
            .map(|&b| if b { 1.0 } else { -1.0 } + rng.gen_range(-0.8..0.8))
            .collect();
        let m = rank(&soft, &cands, 5);
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].session_id, "s17");
        assert!(m[0].false_positive_probability < 1e-6);
        assert_eq!(m[0].unit_agreement, 1.0);
        assert!(m[1].false_positive_probability > 1e-3);
        assert_eq!(verdict(&m, 1e-6), "identified");
        // No signal, no accusation.
        let silent = vec![0.0; units];
        assert_eq!(verdict(&rank(&silent, &cands, 5), 1e-6), "inconclusive");
        assert_eq!(verdict(&[], 1e-6), "inconclusive");
    }
}
