//! What the collusion benches share: the coalitions' strategies and the search for the
//! minutes of a copy after which its colluders are named.

use forensics::coalition::Readings;
use forensics::matching::{accuse_among, Accusation, Ranking};
use formats::codes::CodeKey;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Sessions stored for the title (the Bonferroni factor of every false-positive probability).
pub const POPULATION: usize = 1_000_000;
/// False-positive probability below which a session is named.
pub const THRESHOLD: f64 = 1e-6;

#[derive(Clone, Copy, Debug)]
pub enum Strategy {
    /// Each unit from one colluder chosen at random.
    Swap,
    /// The variant most of them hold (ties at random).
    Majority,
    /// The variant fewest of them hold where they differ (ties at random).
    Minority,
    /// Frames averaged over the coalition.
    Average,
    /// Per unit, one of the four above at random.
    Mixed,
}

/// What a coalition shows for one unit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shown {
    /// One variant (true: B), as one of them received it.
    Variant(bool),
    /// Every colluder's copy of the unit, frames averaged.
    Averaged,
}

impl Strategy {
    pub const ALL: [Strategy; 5] = [
        Strategy::Swap,
        Strategy::Majority,
        Strategy::Minority,
        Strategy::Average,
        Strategy::Mixed,
    ];

    pub fn name(self, c: usize) -> &'static str {
        if c == 1 {
            return "a single leaker";
        }
        match self {
            Strategy::Swap => "swap units at random",
            Strategy::Majority => "majority variant",
            Strategy::Minority => "minority variant",
            Strategy::Average => "frames averaged",
            Strategy::Mixed => "all of these mixed",
        }
    }

    /// What the coalition shows of a unit, given the colluders' bits (what they see by
    /// comparing their copies' bytes).
    pub fn choose(self, bits: &[bool], rng: &mut ChaCha8Rng) -> Shown {
        let c = bits.len();
        let ones = bits.iter().filter(|b| **b).count();
        match self {
            Strategy::Swap => Shown::Variant(bits[rng.gen_range(0..c)]),
            Strategy::Majority | Strategy::Minority => {
                if ones == 0 || ones == c {
                    return Shown::Variant(ones == c);
                }
                let zeros = c - ones;
                let more_ones = if ones == zeros {
                    rng.gen()
                } else {
                    ones > zeros
                };
                Shown::Variant(matches!(self, Strategy::Majority) == more_ones)
            }
            Strategy::Average if ones == 0 || ones == c => Shown::Variant(ones == c),
            Strategy::Average => Shown::Averaged,
            Strategy::Mixed => Strategy::ALL[rng.gen_range(0..4)].choose(bits, rng),
        }
    }
}

/// One title's code key, the sessions scored (colluders first, named `colluder-*`), and a
/// coalition's copy as per-unit soft values.
pub struct Copy {
    pub unit_seconds: f64,
    pub key: CodeKey,
    pub ids: Vec<String>,
    pub colluders: usize,
    pub soft: Vec<f64>,
    /// Per unit, how strongly the mark can read there (empty: all alike).
    pub strength: Vec<f64>,
}

impl Copy {
    /// The accusation from the first `minutes` of the copy, among [`POPULATION`] sessions.
    pub fn accuse_prefix(&self, minutes: f64) -> Accusation {
        let units = ((minutes * 60.0 / self.unit_seconds) as usize).min(self.soft.len());
        let mut soft = self.soft.clone();
        soft[units..].iter_mut().for_each(|s| *s = 0.0);
        let scan = |ranking: &mut Ranking<'_>| {
            ranking.add(&self.ids);
            Ok::<(), std::convert::Infallible>(())
        };
        let readings = Readings {
            soft: &soft,
            strength: &self.strength,
        };
        match accuse_among(readings, &self.key, THRESHOLD, 5, POPULATION, scan) {
            Ok(a) => a,
            Err(never) => match never {},
        }
    }

    /// Colluders named and innocents named.
    pub fn named(&self, a: &Accusation) -> (usize, usize) {
        let accused = &a.findings[..a.accused];
        let colluders = accused
            .iter()
            .filter(|f| f.scored.session_id.starts_with("colluder-"))
            .count();
        debug_assert!(colluders <= self.colluders);
        (colluders, accused.len() - colluders)
    }

    /// The copy's length in minutes.
    pub fn minutes(&self) -> f64 {
        self.soft.len() as f64 * self.unit_seconds / 60.0
    }

    /// The first whole or half minute at which `enough(colluders named)` holds (binary
    /// search; the accusation grows with the copy's length, up to noise), or None within the
    /// copy.
    pub fn minutes_until(&self, enough: impl Fn(usize) -> bool) -> Option<f64> {
        let ok = |m: f64| enough(self.named(&self.accuse_prefix(m)).0);
        let halves = (self.minutes() * 2.0).ceil() as usize;
        if !ok(halves as f64 / 2.0) {
            return None;
        }
        let (mut low, mut high) = (0usize, halves); // in half minutes: !ok(low), ok(high)
        while high - low > 1 {
            let mid = (low + high) / 2;
            if ok(mid as f64 / 2.0) {
                high = mid;
            } else {
                low = mid;
            }
        }
        Some(high as f64 / 2.0)
    }

    /// The lowest false-positive probability of an innocent over the whole copy.
    pub fn lowest_innocent(&self) -> f64 {
        self.accuse_prefix(self.minutes())
            .findings
            .iter()
            .filter(|f| !f.scored.session_id.starts_with("colluder-"))
            .map(|f| f.false_positive_probability)
            .fold(1.0, f64::min)
    }
}
