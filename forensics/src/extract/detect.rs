//! Per-unit soft values: for every suspect frame, the residual after fitting the suspect to the
//! midpoint of its reference frame's two variants (brightness and contrast), correlated with
//! half their difference. Summed over the frames of a unit and divided by the square root of
//! the difference's energy, a unit's value is about `+sqrt(energy)` when the copy carries B,
//! `-sqrt(energy)` for A, with noise of equal variance for every unit: the weighting that
//! adds units best.

use super::fit::linear_fit;
use crate::frame::Gray;
use crate::refstore::RefFrame;

pub struct Detector {
    numerator: Vec<f64>,
    energy: Vec<f64>,
}

impl Detector {
    pub fn new(units: usize) -> Detector {
        Detector {
            numerator: vec![0.0; units],
            energy: vec![0.0; units],
        }
    }

    pub fn units(&self) -> usize {
        self.numerator.len()
    }

    /// Adds one suspect frame `s` of 1-based `unit`, with its reference frame (the variants'
    /// midpoint and half difference), all on the same grid.
    pub fn add(&mut self, unit: u32, s: &Gray, reference: &RefFrame) {
        let Some(k) = (unit as usize).checked_sub(1).filter(|k| *k < self.units()) else {
            return;
        };
        let (gain, offset) = linear_fit(s, &reference.mid);
        let mut num = 0f64;
        let mut energy = 0f64;
        let pairs = reference.mid.iter().zip(reference.half_diff.iter());
        for (&sv, (&m, &h)) in s.iter().zip(pairs) {
            let w = (gain * h) as f64;
            let d = (sv - gain * m - offset) as f64;
            num += d * w;
            energy += w * w;
        }
        self.numerator[k] += num;
        self.energy[k] += energy;
    }

    /// Per unit, how strongly the mark can read there: the square root of the energy its
    /// variants' difference has in the suspect's frames (0 where the unit was not observed).
    /// A unit's value is about `+-` this times what the attack left of the mark.
    pub fn strengths(&self) -> Vec<f64> {
        self.energy.iter().map(|&e| e.max(0.0).sqrt()).collect()
    }

    pub fn soft_values(&self) -> Vec<f64> {
        self.numerator
            .iter()
            .zip(&self.energy)
            .map(|(&n, &e)| if e > 0.0 { n / e.sqrt() } else { 0.0 })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn the_sign_follows_the_variant_under_noise_and_contrast() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let shape = (36, 64);
        let mut d = Detector::new(2);
        for unit in 1..=2u32 {
            for _ in 0..10 {
                let base = Gray::from_shape_simple_fn(shape, || rng.gen_range(40.0..200.0));
                let w = Gray::from_shape_simple_fn(shape, || rng.gen_range(-1.5..1.5));
                let (a, b) = (&base - &w, &base + &w);
                let reference = RefFrame::from_variants(&a, &b).unwrap();
                // Unit 1 carries B, unit 2 carries A; both after contrast 0.7, offset 30, noise.
                let src = if unit == 1 { &b } else { &a };
                let s = src.mapv(|v| 0.7 * v + 30.0 + rng.gen_range(-3.0..3.0));
                d.add(unit, &s, &reference);
            }
        }
        let soft = d.soft_values();
        let strength = d.strengths();
        assert!(strength.iter().all(|e| *e > 0.0), "{strength:?}");
        assert!(soft[0] > 10.0, "{soft:?}");
        assert!(soft[1] < -10.0, "{soft:?}");
        // Out-of-range units are ignored.
        let one = Gray::zeros((1, 1));
        d.add(9, &one, &RefFrame::from_variants(&one, &one).unwrap());
        assert!(RefFrame::from_variants(&one, &Gray::zeros((2, 1))).is_none());
    }
}
