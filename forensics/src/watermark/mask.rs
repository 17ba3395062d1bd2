//! The perceptual mask: how much watermark each part of the picture can hide. Texture hides a
//! lot, flat areas (skies, flat animation) very little. Activity is the standard deviation of
//! luma in 8x8 blocks, smoothed over 3x3 blocks; the gain is activity over a reference level,
//! clamped to `[MIN_GAIN, MAX_GAIN]`, and interpolated bilinearly between block centres.

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

pub const BLOCK: usize = 8;
/// Block activity (luma standard deviation) that receives gain 1.
pub const ACTIVITY_REF: f32 = 8.0;
pub const MIN_GAIN: f32 = 0.15;
pub const MAX_GAIN: f32 = 1.6;

/// Per-block gains of one picture, `[[block row, block column]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct GainMap(pub Array2<f32>);

/// Luma standard deviation of the block at block row `by`, block column `bx` (edge blocks
/// cover what is left of the picture).
fn block_std(plane: &ArrayView2<u8>, by: usize, bx: usize) -> f32 {
    let (height, width) = plane.dim();
    let (y0, x0) = (by * BLOCK, bx * BLOCK);
    let block = plane.slice(ndarray::s![
        y0..(y0 + BLOCK).min(height),
        x0..(x0 + BLOCK).min(width)
    ]);
    let mut sum = 0u32;
    let mut sq = 0u64;
    for &v in block.iter() {
        let v = v as u32;
        sum += v;
        sq += (v * v) as u64;
    }
    let n = block.len() as f64;
    let mean = sum as f64 / n;
    ((sq as f64 / n - mean * mean).max(0.0)).sqrt() as f32
}

fn gain_of(activity: f32) -> f32 {
    (activity / ACTIVITY_REF).clamp(MIN_GAIN, MAX_GAIN)
}

/// Blocks down and across a picture.
fn blocks(plane: &ArrayView2<u8>) -> (usize, usize) {
    let (height, width) = plane.dim();
    (height.div_ceil(BLOCK), width.div_ceil(BLOCK))
}

/// Each block's activity averaged with its neighbours' (3x3, fewer at the edges), as a gain,
/// summed in row order (as every gain has always been: packaged variants stay bit-identical).
fn smooth_to_gains(stds: &Array2<f32>) -> GainMap {
    let (rows, cols) = stds.dim();
    GainMap(Array2::from_shape_fn((rows, cols), |(by, bx)| {
        let (mut s, mut n) = (0f32, 0f32);
        for dy in by.saturating_sub(1)..(by + 2).min(rows) {
            for dx in bx.saturating_sub(1)..(bx + 2).min(cols) {
                s += stds[[dy, dx]];
                n += 1.0;
            }
        }
        gain_of(s / n)
    }))
}

/// Reference implementation: block by block, one thread.
pub fn gain_map_reference(plane: &ArrayView2<u8>) -> GainMap {
    let stds = Array2::from_shape_fn(blocks(plane), |(by, bx)| block_std(plane, by, bx));
    smooth_to_gains(&stds)
}

/// Fast implementation: block rows in parallel, each block row's pixel rows read once as
/// slices (every block of the row accumulated at once) instead of block by block.
pub fn gain_map(plane: &ArrayView2<u8>) -> GainMap {
    let (height, width) = plane.dim();
    let mut stds = Array2::zeros(blocks(plane));
    let cols = stds.ncols();
    stds.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(by, mut out)| {
            let (y0, y1) = (by * BLOCK, ((by + 1) * BLOCK).min(height));
            let mut sum = vec![0u32; cols];
            let mut sq = vec![0u64; cols];
            for row in (y0..y1).map(|y| plane.row(y)) {
                let owned;
                let pixels = match row.as_slice() {
                    Some(pixels) => pixels,
                    None => {
                        owned = row.to_vec();
                        &owned
                    }
                };
                let cells = sum.iter_mut().zip(sq.iter_mut());
                for ((s, q), block) in cells.zip(pixels.chunks(BLOCK)) {
                    // Per block: at most 8 pixels of at most 255, so the squares fit a u32.
                    let (bs, bq) = block.iter().fold((0u32, 0u32), |(bs, bq), &v| {
                        let v = v as u32;
                        (bs + v, bq + v * v)
                    });
                    *s += bs;
                    *q += bq as u64;
                }
            }
            for (bx, o) in out.iter_mut().enumerate() {
                let n = ((((bx + 1) * BLOCK).min(width) - bx * BLOCK) * (y1 - y0)) as f64;
                let mean = sum[bx] as f64 / n;
                *o = ((sq[bx] as f64 / n - mean * mean).max(0.0)).sqrt() as f32;
            }
        });
    smooth_to_gains(&stds)
}

/// Bilinear position of pixel `i` between block centres: (lower block, upper block, weight
/// of upper).
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

impl GainMap {
    /// Per-column interpolation taps for pixel rows of `width`: computed once per picture.
    pub fn column_taps(&self, width: usize) -> Vec<(usize, usize, f32)> {
        (0..width).map(|x| axis(x, self.0.ncols())).collect()
    }

    /// The gains of pixel row `y`, one per tap (same arithmetic as [`GainMap::at`]).
    pub fn row(&self, y: usize, taps: &[(usize, usize, f32)], out: &mut [f32]) {
        let (r0, r1, ty) = axis(y, self.0.nrows());
        let (top, bottom) = (self.0.row(r0), self.0.row(r1));
        // Top row's pair, bottom row's pair, weight of the second column.
        let interpolate = |o: &mut f32, t: [f32; 2], b: [f32; 2], tx: f32| {
            let t = t[0] * (1.0 - tx) + t[1] * tx;
            let b = b[0] * (1.0 - tx) + b[1] * tx;
            *o = t * (1.0 - ty) + b * ty;
        };
        // The map is built row by row: its rows are slices (the fast path, once per pixel row
        // of every frame).
        if let (Some(top), Some(bottom)) = (top.as_slice(), bottom.as_slice()) {
            for (o, &(c0, c1, tx)) in out.iter_mut().zip(taps) {
                interpolate(o, [top[c0], top[c1]], [bottom[c0], bottom[c1]], tx);
            }
            return;
        }
        for (o, &(c0, c1, tx)) in out.iter_mut().zip(taps) {
            interpolate(o, [top[c0], top[c1]], [bottom[c0], bottom[c1]], tx);
        }
    }

    /// The gain of one pixel.
    pub fn at(&self, x: usize, y: usize) -> f32 {
        let (r0, r1, ty) = axis(y, self.0.nrows());
        let (c0, c1, tx) = axis(x, self.0.ncols());
        let g = &self.0;
        let top = g[[r0, c0]] * (1.0 - tx) + g[[r0, c1]] * tx;
        let bottom = g[[r1, c0]] * (1.0 - tx) + g[[r1, c1]] * tx;
        top * (1.0 - ty) + bottom * ty
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::plane_view;
    use rand::{Rng, SeedableRng};

    /// Left half flat, right half textured, in a plane `stride` bytes wide.
    fn noisy_plane(w: usize, h: usize, stride: usize, seed: u64) -> Vec<u8> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut data = vec![0u8; stride * h];
        for row in data.chunks_mut(stride) {
            for (x, v) in row[..w].iter_mut().enumerate() {
                *v = if x < w / 2 {
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
        let plane = plane_view(&data, w, h, stride);
        assert_eq!(gain_map(&plane), gain_map_reference(&plane));
    }

    #[test]
    fn flat_areas_get_little_texture_gets_more() {
        let (w, h) = (256, 128);
        let data = noisy_plane(w, h, w, 2);
        let m = gain_map(&plane_view(&data, w, h, w));
        assert_eq!(m.at(10, 60), MIN_GAIN);
        assert!(m.at(240, 60) > 1.0, "{}", m.at(240, 60));
        let mut row = vec![0f32; w];
        m.row(60, &m.column_taps(w), &mut row);
        for (x, g) in row.iter().enumerate() {
            assert_eq!(*g, m.at(x, 60), "row and pixel paths agree exactly");
        }
    }
}
