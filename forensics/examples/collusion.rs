//! Collusion bench, simulated at the matching level: how many minutes of a title (1-second
//! units unless told) a coalition's copy needs before its members are named at a false-positive probability
//! below 1e-6 among 1,000,000 sessions, for a single leaker and for 2, 3 and 4 colluders and
//! every strategy, under both code schemes.
//!
//! The copy's per-unit values are simulated as the extraction reports them: `A (2 y - 1)` plus
//! unit-variance noise, where `y` is the variant the coalition shows (for frames averaged over
//! the coalition, the signal is `A (2 ones / c - 1)`). `A` = 3 is what an H.264 CRF 23 re-encode
//! of the robustness title reads (z 9.6 over 100 units), `A` = 1 a heavy attack (z about 7
//! over 100 units). The false-positive probability of a colluder does not depend on the
//! innocent sessions' codes (it is its score's tail times the number of sessions), so the
//! colluders are scored together with a sample of innocents and the Bonferroni factor is the
//! million; the sample shows that no innocent comes near the threshold.
//!
//! `cargo run --release -p forensics --example collusion [-- TRIALS [UNIT_SECONDS]]` prints a
//! Markdown table (`A` is given per second of content: a unit of `u` seconds reads `A sqrt(u)`):
//! per case, the minutes after which the first colluder is named and after which all are
//! (median over TRIALS titles, default 5; "-" when 30 minutes are not enough), and the
//! lowest false-positive probability of any innocent at 30 minutes.

#[path = "support/coalitions.rs"]
mod coalitions;

use coalitions::{Copy, Shown, Strategy, POPULATION, THRESHOLD};
use formats::codes::{CodeKey, CodeScheme};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const INNOCENT_SAMPLE: usize = 300;
const MINUTES: usize = 30;

/// Units in the title at `unit_seconds` per unit.
fn units(unit_seconds: f64) -> usize {
    (MINUTES as f64 * 60.0 / unit_seconds).round() as usize
}

/// The signal of a unit (-1 A .. +1 B) given what the coalition shows and its bits.
fn signal(shown: Shown, bits: &[bool]) -> f64 {
    match shown {
        Shown::Variant(b) => {
            if b {
                1.0
            } else {
                -1.0
            }
        }
        Shown::Averaged => {
            2.0 * bits.iter().filter(|b| **b).count() as f64 / bits.len() as f64 - 1.0
        }
    }
}

fn trial(
    scheme: CodeScheme,
    c: usize,
    strategy: Strategy,
    amplitude: f64,
    unit_seconds: f64,
    seed: u64,
) -> Copy {
    let units = units(unit_seconds);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut secret = [0u8; 32];
    rng.fill(&mut secret);
    let key = CodeKey::new(&secret, scheme);
    let mut ids: Vec<String> = (0..c).map(|i| format!("colluder-{i}")).collect();
    let codes: Vec<Vec<bool>> = ids.iter().map(|id| key.code(id, units as u32)).collect();
    ids.extend((0..INNOCENT_SAMPLE).map(|i| format!("innocent-{i}")));
    let soft = (0..units)
        .map(|k| {
            let bits: Vec<bool> = codes.iter().map(|code| code[k]).collect();
            let shown = strategy.choose(&bits, &mut rng);
            let (u, v): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
            let noise = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
            amplitude * signal(shown, &bits) + noise
        })
        .collect();
    Copy {
        unit_seconds,
        key,
        ids,
        colluders: c,
        soft,
        // Every unit alike: the simulation's amplitude is the same for all.
        strength: Vec::new(),
    }
}

fn median(mut v: Vec<Option<f64>>) -> String {
    v.sort_by(|a, b| match (a, b) {
        (Some(x), Some(y)) => x.total_cmp(y),
        (None, None) => std::cmp::Ordering::Equal,
        (None, _) => std::cmp::Ordering::Greater,
        (_, None) => std::cmp::Ordering::Less,
    });
    match v[v.len() / 2] {
        Some(m) => format!("{m:.1}"),
        None => "-".into(),
    }
}

fn main() {
    let trials: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let unit_seconds: f64 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1.0);
    println!(
        "Simulated: {MINUTES} min title, {unit_seconds} s units, {POPULATION} sessions (Bonferroni), \
         threshold {THRESHOLD:e}, median of {trials} titles per row."
    );
    println!();
    println!(
        "| code | colluders | strategy | amplitude | first named (min) | all named (min) | \
         lowest innocent FPP at {MINUTES} min | innocents named |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for scheme in [CodeScheme::Uniform, CodeScheme::Tardos] {
        for c in [1usize, 2, 3, 4] {
            // One leaker has no strategy: every row would be the same.
            let strategies = if c == 1 {
                &Strategy::ALL[..1]
            } else {
                &Strategy::ALL[..]
            };
            for &strategy in strategies {
                for amplitude in [3.0, 1.0] {
                    // A unit's value grows with the square root of its frames.
                    let per_unit = amplitude * unit_seconds.sqrt();
                    let mut first = Vec::new();
                    let mut all = Vec::new();
                    let mut lowest_innocent = 1.0f64;
                    let mut innocents_named = 0;
                    for seed in 0..trials {
                        let t = trial(
                            scheme,
                            c,
                            strategy,
                            per_unit,
                            unit_seconds,
                            seed * 7919 + c as u64,
                        );
                        first.push(t.minutes_until(|n| n >= 1));
                        all.push(t.minutes_until(|n| n >= c));
                        let whole = t.accuse_prefix(MINUTES as f64);
                        innocents_named += t.named(&whole).1;
                        lowest_innocent = lowest_innocent.min(t.lowest_innocent());
                    }
                    println!(
                        "| {scheme} | {c} | {} | {amplitude} | {} | {} | {lowest_innocent:.1e} | {innocents_named} |",
                        strategy.name(c),
                        median(first),
                        median(all),
                    );
                }
            }
        }
    }
}
