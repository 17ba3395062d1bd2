//! Embedding: variant A adds `+w`, variant B adds `-w` to the luma plane, where
//! `w(x, y) = strength * gain(x, y) * pattern(x, y)`. Chroma is left untouched.

use rayon::prelude::*;

use super::mask::{GainMap, Plane};
use super::pattern::Pattern;

/// Default peak-scale strength in luma levels (the RMS change is `strength` times the RMS gain).
pub const DEFAULT_STRENGTH: f32 = 1.0;

/// A writable luma plane.
pub struct PlaneMut<'a> {
    pub data: &'a mut [u8],
    pub stride: usize,
}

#[inline]
fn apply(y: u8, d: f32) -> (u8, u8) {
    let v = y as f32;
    (
        (v + d).round().clamp(0.0, 255.0) as u8,
        (v - d).round().clamp(0.0, 255.0) as u8,
    )
}

/// Reference implementation: pixel by pixel, one thread.
pub fn embed_pair_reference(
    src: &Plane,
    pattern: &Pattern,
    gains: &GainMap,
    strength: f32,
    a: &mut PlaneMut,
    b: &mut PlaneMut,
) {
    for y in 0..src.height {
        for x in 0..src.width {
            let d = strength * gains.at(x, y) * pattern.values[y * pattern.width + x];
            let (va, vb) = apply(src.data[y * src.stride + x], d);
            a.data[y * a.stride + x] = va;
            b.data[y * b.stride + x] = vb;
        }
    }
}

/// Fast implementation: rows in parallel, column taps computed once per picture.
pub fn embed_pair(
    src: &Plane,
    pattern: &Pattern,
    gains: &GainMap,
    strength: f32,
    a: &mut PlaneMut,
    b: &mut PlaneMut,
) {
    let width = src.width;
    let taps = gains.column_taps(width);
    a.data
        .par_chunks_mut(a.stride)
        .zip(b.data.par_chunks_mut(b.stride))
        .take(src.height)
        .enumerate()
        .for_each_init(
            || vec![0f32; width],
            |row_gain, (y, (row_a, row_b))| {
                gains.row(y, &taps, row_gain);
                let p = &pattern.values[y * pattern.width..y * pattern.width + width];
                let s = &src.data[y * src.stride..y * src.stride + width];
                for x in 0..width {
                    let (va, vb) = apply(s[x], strength * row_gain[x] * p[x]);
                    row_a[x] = va;
                    row_b[x] = vb;
                }
            },
        );
}

#[cfg(test)]
mod tests {
    use super::super::mask::gain_map;
    use super::super::pattern::unit_pattern;
    use super::*;
    use rand::{Rng, SeedableRng};

    fn picture(w: usize, h: usize, stride: usize) -> Vec<u8> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        (0..stride * h)
            .map(|i| {
                let x = i % stride;
                if x < w / 3 {
                    235 // flat, near the top of the range
                } else {
                    rng.gen_range(0..=255)
                }
            })
            .collect()
    }

    #[test]
    fn fast_and_reference_agree_and_variants_are_antipodal() {
        let (w, h, stride) = (150, 86, 160);
        let data = picture(w, h, stride);
        let src = Plane {
            data: &data,
            stride,
            width: w,
            height: h,
        };
        let pattern = unit_pattern(&[4u8; 32], 1, w, h);
        let gains = gain_map(&src);
        let peak = pattern.values.iter().fold(0f32, |m, v| m.max(v.abs()));
        let bound = (DEFAULT_STRENGTH * super::super::mask::MAX_GAIN * peak).ceil() as i32;
        let mut out = [
            vec![0u8; stride * h],
            vec![0u8; stride * h],
            vec![0u8; stride * h],
            vec![0u8; stride * h],
        ];
        let [ra, rb, fa, fb] = &mut out;
        embed_pair_reference(
            &src,
            &pattern,
            &gains,
            DEFAULT_STRENGTH,
            &mut PlaneMut { data: ra, stride },
            &mut PlaneMut { data: rb, stride },
        );
        embed_pair(
            &src,
            &pattern,
            &gains,
            DEFAULT_STRENGTH,
            &mut PlaneMut { data: fa, stride },
            &mut PlaneMut { data: fb, stride },
        );
        for y in 0..h {
            for x in 0..w {
                let i = y * stride + x;
                assert_eq!((ra[i], rb[i]), (fa[i], fb[i]), "pixel {x},{y}");
                let (s, a, b) = (data[i] as i32, ra[i] as i32, rb[i] as i32);
                if (4..=251).contains(&s) {
                    // Away from clipping, A and B sit on opposite sides of the source.
                    assert!((a - s) * (b - s) <= 0, "antipodal at {x},{y}");
                    assert!((a - s).abs() <= bound, "bounded change");
                }
            }
        }
        // The watermark's energy: small overall, and small in the flat third.
        let mse = |x0: usize, x1: usize| {
            let mut e = 0f64;
            for y in 0..h {
                for x in x0..x1 {
                    let i = y * stride + x;
                    e += ((ra[i] as f64) - (data[i] as f64)).powi(2);
                }
            }
            e / ((x1 - x0) * h) as f64
        };
        // Flat area: PSNR above 50 dB (MSE < 0.65); texture: clearly more.
        assert!(
            mse(0, w / 3 - 8) < 0.65,
            "flat area stays clean: {}",
            mse(0, w / 3 - 8)
        );
        assert!(mse(w / 3 + 8, w) > 0.5, "texture carries the mark");
    }
}
