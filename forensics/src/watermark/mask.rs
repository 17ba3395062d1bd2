//! The perceptual mask: how much watermark each part of the picture can hide. Texture hides a
//! lot, flat areas (skies, flat animation) very little. Activity is the standard deviation of
//! luma in 8x8 blocks, smoothed over 3x3 blocks; the gain is activity over a reference level,
//! clamped to `[MIN_GAIN, MAX_GAIN]`, and interpolated bilinearly between block centres.

use rayon::prelude::*;

pub const BLOCK: usize = 8;
/// Block activity (luma standard deviation) that receives gain 1.
pub const ACTIVITY_REF: f32 = 8.0;
pub const MIN_GAIN: f32 = 0.15;
pub const MAX_GAIN: f32 = 1.6;

/// A luma plane borrowed from a frame (stride may exceed width).
#[derive(Clone, Copy)]
pub struct Plane<'a> {
    pub data: &'a [u8],
    pub stride: usize,
    pub width: usize,
    pub height: usize,
}

impl Plane<'_> {
    fn px(&self, x: usize, y: usize) -> u8 {
        self.data[y * self.stride + x]
    }
}

/// Per-block gains of one picture.
#[derive(Debug, Clone, PartialEq)]
pub struct GainMap {
    pub cols: usize,
    pub rows: usize,
    pub gains: Vec<f32>,
}

fn block_std(plane: &Plane, bx: usize, by: usize) -> f32 {
    let x0 = bx * BLOCK;
    let y0 = by * BLOCK;
    let x1 = (x0 + BLOCK).min(plane.width);
    let y1 = (y0 + BLOCK).min(plane.height);
    let mut sum = 0u32;
    let mut sq = 0u64;
    for y in y0..y1 {
        for x in x0..x1 {
            let v = plane.px(x, y) as u32;
            sum += v;
            sq += (v * v) as u64;
        }
    }
    let n = ((x1 - x0) * (y1 - y0)) as f64;
    let mean = sum as f64 / n;
    ((sq as f64 / n - mean * mean).max(0.0)).sqrt() as f32
}

fn gain_of(activity: f32) -> f32 {
    (activity / ACTIVITY_REF).clamp(MIN_GAIN, MAX_GAIN)
}

fn smooth_to_gains(cols: usize, rows: usize, stds: &[f32]) -> Vec<f32> {
    let mut gains = vec![0f32; cols * rows];
    for by in 0..rows {
        for bx in 0..cols {
            let mut s = 0f32;
            let mut n = 0f32;
            for dy in by.saturating_sub(1)..(by + 2).min(rows) {
                for dx in bx.saturating_sub(1)..(bx + 2).min(cols) {
                    s += stds[dy * cols + dx];
                    n += 1.0;
                }
            }
            gains[by * cols + bx] = gain_of(s / n);
        }
    }
    gains
}

/// Reference implementation: block by block, one thread.
pub fn gain_map_reference(plane: &Plane) -> GainMap {
    let cols = plane.width.div_ceil(BLOCK);
    let rows = plane.height.div_ceil(BLOCK);
    let mut stds = vec![0f32; cols * rows];
    for by in 0..rows {
        for bx in 0..cols {
            stds[by * cols + bx] = block_std(plane, bx, by);
        }
    }
    GainMap {
        cols,
        rows,
        gains: smooth_to_gains(cols, rows, &stds),
    }
}

/// Fast implementation: block rows in parallel.
pub fn gain_map(plane: &Plane) -> GainMap {
    let cols = plane.width.div_ceil(BLOCK);
    let rows = plane.height.div_ceil(BLOCK);
    let mut stds = vec![0f32; cols * rows];
    stds.par_chunks_mut(cols).enumerate().for_each(|(by, row)| {
        for (bx, out) in row.iter_mut().enumerate() {
            *out = block_std(plane, bx, by);
        }
    });
    GainMap {
        cols,
        rows,
        gains: smooth_to_gains(cols, rows, &stds),
    }
}

impl GainMap {
    /// Bilinear position of pixel `i` between block centres: (lower block, upper block, weight of upper).
    fn axis(i: usize, blocks: usize) -> (usize, usize, f32) {
        let c = (i as f32 + 0.5) / BLOCK as f32 - 0.5;
        if c <= 0.0 {
            return (0, 0, 0.0);
        }
        let lo = c.floor() as usize;
        if lo + 1 >= blocks {
            return (blocks - 1, blocks - 1, 0.0);
        }
        (lo, lo + 1, c - lo as f32)
    }

    /// Per-column interpolation taps for pixel rows of `width`: computed once per picture.
    pub fn column_taps(&self, width: usize) -> Vec<(usize, usize, f32)> {
        (0..width).map(|x| Self::axis(x, self.cols)).collect()
    }

    /// The gains of pixel row `y`, one per tap (same arithmetic as [`GainMap::at`]).
    pub fn row(&self, y: usize, taps: &[(usize, usize, f32)], out: &mut [f32]) {
        let (r0, r1, ty) = Self::axis(y, self.rows);
        let top = &self.gains[r0 * self.cols..(r0 + 1) * self.cols];
        let bottom = &self.gains[r1 * self.cols..(r1 + 1) * self.cols];
        for (o, &(c0, c1, tx)) in out.iter_mut().zip(taps) {
            let t = top[c0] * (1.0 - tx) + top[c1] * tx;
            let b = bottom[c0] * (1.0 - tx) + bottom[c1] * tx;
            *o = t * (1.0 - ty) + b * ty;
        }
    }

    /// The gain of one pixel.
    pub fn at(&self, x: usize, y: usize) -> f32 {
        let (r0, r1, ty) = Self::axis(y, self.rows);
        let (c0, c1, tx) = Self::axis(x, self.cols);
        let g = |r: usize, c: usize| self.gains[r * self.cols + c];
        let top = g(r0, c0) * (1.0 - tx) + g(r0, c1) * tx;
        let bottom = g(r1, c0) * (1.0 - tx) + g(r1, c1) * tx;
        top * (1.0 - ty) + bottom * ty
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn noisy_plane(w: usize, h: usize, stride: usize, seed: u64) -> Vec<u8> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut data = vec![0u8; stride * h];
        for y in 0..h {
            for x in 0..w {
                // Left half flat, right half textured.
                data[y * stride + x] = if x < w / 2 {
                    120
                } else {
                    rng.gen_range(60..200)
                };
            }
        }
        data
    }

    #[test]
    fn fast_and_reference_agree() {
        let (w, h, stride) = (203, 117, 224);
        let data = noisy_plane(w, h, stride, 1);
        let plane = Plane {
            data: &data,
            stride,
            width: w,
            height: h,
        };
        assert_eq!(gain_map(&plane), gain_map_reference(&plane));
    }

    #[test]
    fn flat_areas_get_little_texture_gets_more() {
        let (w, h) = (256, 128);
        let data = noisy_plane(w, h, w, 2);
        let plane = Plane {
            data: &data,
            stride: w,
            width: w,
            height: h,
        };
        let m = gain_map(&plane);
        assert_eq!(m.at(10, 60), MIN_GAIN);
        assert!(m.at(240, 60) > 1.0, "{}", m.at(240, 60));
        let mut row = vec![0f32; w];
        m.row(60, &m.column_taps(w), &mut row);
        for (x, g) in row.iter().enumerate() {
            assert_eq!(*g, m.at(x, 60), "row and pixel paths agree exactly");
        }
    }
}
