//! Per-unit soft values: for every suspect frame, the residual after fitting the suspect to the
//! midpoint of its reference frame's two variants (brightness and contrast), correlated with
//! half their difference. Summed over the frames of a unit and divided by the square root of
//! the difference's energy, a unit's value is about `+sqrt(energy)` when the copy carries B,
//! `-sqrt(energy)` for A, with noise of equal variance for every unit: the weighting that
//! adds units best.

use super::gray::{linear_fit, Gray};

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

    /// Adds one suspect frame `s` of 1-based `unit`, with the two variants of its reference
    /// frame, all on the same grid.
    pub fn add(&mut self, unit: u32, s: &Gray, a: &Gray, b: &Gray) {
        let Some(k) = (unit as usize).checked_sub(1).filter(|k| *k < self.units()) else {
            return;
        };
        let mid: Vec<f32> = a
            .data
            .iter()
            .zip(&b.data)
            .map(|(x, y)| 0.5 * (x + y))
            .collect();
        let (gain, offset) = linear_fit(&s.data, &mid);
        let mut num = 0f64;
        let mut energy = 0f64;
        for ((&sv, &m), (&av, &bv)) in s.data.iter().zip(&mid).zip(a.data.iter().zip(&b.data)) {
            let w = (gain * 0.5 * (bv - av)) as f64;
            let d = (sv - gain * m - offset) as f64;
            num += d * w;
            energy += w * w;
        }
        self.numerator[k] += num;
        self.energy[k] += energy;
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
        let n = 64 * 36;
        let mut d = Detector::new(2);
        for unit in 1..=2u32 {
            for _ in 0..10 {
                let base: Vec<f32> = (0..n).map(|_| rng.gen_range(40.0..200.0)).collect();
                let w: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.5..1.5)).collect();
                let a = Gray {
                    width: 64,
                    height: 36,
                    data: base.iter().zip(&w).map(|(b, w)| b - w).collect(),
                };
                let b = Gray {
                    width: 64,
                    height: 36,
                    data: base.iter().zip(&w).map(|(b, w)| b + w).collect(),
                };
                // Unit 1 carries B, unit 2 carries A; both after contrast 0.7, offset 30, noise.
                let src = if unit == 1 { &b } else { &a };
                let s = Gray {
                    width: 64,
                    height: 36,
                    data: src
                        .data
                        .iter()
                        .map(|v| 0.7 * v + 30.0 + rng.gen_range(-3.0..3.0))
                        .collect(),
                };
                d.add(unit, &s, &a, &b);
            }
        }
        let soft = d.soft_values();
        assert!(soft[0] > 10.0, "{soft:?}");
        assert!(soft[1] < -10.0, "{soft:?}");
        // Out-of-range units are ignored.
        d.add(9, &Gray::new(1, 1), &Gray::new(1, 1), &Gray::new(1, 1));
    }
}
