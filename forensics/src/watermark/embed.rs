//! Embedding: variant A adds `+w`, variant B adds `-w` to the luma plane, where
//! `w(x, y) = strength * gain(x, y) * pattern(x, y)`. Chroma is left untouched.

use ndarray::{ArrayView2, ArrayViewMut2, Axis, Zip};
use rayon::prelude::*;

use super::mask::GainMap;
use super::pattern::Pattern;

/// Default peak-scale strength in luma levels (the RMS change is `strength` times the RMS gain).
pub const DEFAULT_STRENGTH: f32 = 1.0;

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
    src: &ArrayView2<u8>,
    pattern: &Pattern,
    gains: &GainMap,
    strength: f32,
    a: &mut ArrayViewMut2<u8>,
    b: &mut ArrayViewMut2<u8>,
) {
    for ((y, x), &s) in src.indexed_iter() {
        let d = strength * gains.at(x, y) * pattern[[y, x]];
        let (va, vb) = apply(s, d);
        a[[y, x]] = va;
        b[[y, x]] = vb;
    }
}

/// Fast implementation: rows in parallel, column taps computed once per picture, each row's
/// gains interpolated once into a buffer.
pub fn embed_pair(
    src: &ArrayView2<u8>,
    pattern: &Pattern,
    gains: &GainMap,
    strength: f32,
    a: &mut ArrayViewMut2<u8>,
    b: &mut ArrayViewMut2<u8>,
) {
    let width = src.ncols();
    let taps = gains.column_taps(width);
    a.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(b.axis_iter_mut(Axis(0)))
        .zip(src.axis_iter(Axis(0)))
        .zip(pattern.axis_iter(Axis(0)))
        .enumerate()
        .for_each_init(
            || vec![0f32; width],
            |row_gain, (y, (((mut row_a, mut row_b), s), p))| {
                gains.row(y, &taps, row_gain);
                let pixel = |va: &mut u8, vb: &mut u8, sv: u8, pv: f32, g: f32| {
                    (*va, *vb) = apply(sv, strength * g * pv);
                };
                // FFmpeg's rows and the pattern's are contiguous: plain slices, which the
                // compiler vectorises; any other layout goes through `Zip`.
                let rows = (
                    row_a.as_slice_mut(),
                    row_b.as_slice_mut(),
                    s.as_slice(),
                    p.as_slice(),
                );
                if let (Some(ra), Some(rb), Some(s), Some(p)) = rows {
                    let pixels = ra.iter_mut().zip(rb).zip(s).zip(p).zip(row_gain.iter());
                    for ((((va, vb), &sv), &pv), &g) in pixels {
                        pixel(va, vb, sv, pv, g);
                    }
                    return;
                }
                Zip::from(row_a)
                    .and(row_b)
                    .and(s)
                    .and(p)
                    .and(&row_gain[..])
                    .for_each(|va, vb, &sv, &pv, &g| pixel(va, vb, sv, pv, g));
            },
        );
}

#[cfg(test)]
mod tests {
    use super::super::mask::{gain_map, MAX_GAIN};
    use super::super::pattern::unit_pattern;
    use super::*;
    use crate::frame::plane_view;
    use ndarray::ShapeBuilder;
    use rand::{Rng, SeedableRng};

    /// A flat third near the top of the range, noise elsewhere, rows `stride` bytes apart.
    fn picture(w: usize, h: usize, stride: usize) -> Vec<u8> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut data = vec![0u8; stride * h];
        for row in data.chunks_mut(stride) {
            for (x, v) in row.iter_mut().enumerate() {
                *v = if x < w / 3 {
                    235
                } else {
                    rng.gen_range(0..=255)
                };
            }
        }
        data
    }

    #[test]
    fn fast_and_reference_agree_and_variants_are_antipodal() {
        let (w, h, stride) = (150, 86, 160);
        let data = picture(w, h, stride);
        let src = plane_view(&data, w, h, stride);
        let pattern = unit_pattern(&[4u8; 32], 1, w, h);
        let gains = gain_map(&src);
        let peak = pattern.iter().fold(0f32, |m, v| m.max(v.abs()));
        let bound = (DEFAULT_STRENGTH * MAX_GAIN * peak).ceil() as i32;
        let mut out = [
            vec![0u8; stride * h],
            vec![0u8; stride * h],
            vec![0u8; stride * h],
            vec![0u8; stride * h],
        ];
        fn view(d: &mut [u8], w: usize, h: usize, stride: usize) -> ArrayViewMut2<'_, u8> {
            ArrayViewMut2::from_shape((h, w).strides((stride, 1)), d).unwrap()
        }
        let [ra, rb, fa, fb] = &mut out;
        let (mut va, mut vb) = (view(ra, w, h, stride), view(rb, w, h, stride));
        embed_pair_reference(&src, &pattern, &gains, DEFAULT_STRENGTH, &mut va, &mut vb);
        let (mut va, mut vb) = (view(fa, w, h, stride), view(fb, w, h, stride));
        embed_pair(&src, &pattern, &gains, DEFAULT_STRENGTH, &mut va, &mut vb);
        let (ra, rb) = (plane_view(ra, w, h, stride), plane_view(rb, w, h, stride));
        let (fa, fb) = (plane_view(fa, w, h, stride), plane_view(fb, w, h, stride));
        assert_eq!(ra, fa);
        assert_eq!(rb, fb);
        for ((y, x), &s) in src.indexed_iter() {
            let (s, a, b) = (s as i32, ra[[y, x]] as i32, rb[[y, x]] as i32);
            if (4..=251).contains(&s) {
                // Away from clipping, A and B sit on opposite sides of the source.
                assert!((a - s) * (b - s) <= 0, "antipodal at {x},{y}");
                assert!((a - s).abs() <= bound, "bounded change");
            }
        }
        // The watermark's energy: small overall, and small in the flat third.
        let mse = |x0: usize, x1: usize| {
            let changed = ra.slice(ndarray::s![.., x0..x1]);
            let original = src.slice(ndarray::s![.., x0..x1]);
            let e: f64 = changed
                .iter()
                .zip(original.iter())
                .map(|(&c, &o)| (c as f64 - o as f64).powi(2))
                .sum();
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
