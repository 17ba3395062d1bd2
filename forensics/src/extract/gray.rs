//! Small luma images in `f32` for analysis: area-averaged downscales of decoded frames and
//! bilinear resampling of a sub-rectangle, which is how a suspect (rescaled, cropped,
//! letterboxed) is brought onto the reference's geometry.

use crate::watermark::mask::Plane;

#[derive(Debug, Clone, PartialEq)]
pub struct Gray {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

/// A rectangle in normalised coordinates of an image (0..1 on both axes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
}

impl Rect {
    pub const FULL: Rect = Rect {
        x0: 0.0,
        y0: 0.0,
        x1: 1.0,
        y1: 1.0,
    };

    pub fn width(&self) -> f64 {
        self.x1 - self.x0
    }

    pub fn height(&self) -> f64 {
        self.y1 - self.y0
    }
}

impl Gray {
    pub fn new(width: usize, height: usize) -> Gray {
        Gray {
            width,
            height,
            data: vec![0.0; width * height],
        }
    }

    /// Area average of `plane` onto a `width` x `height` grid. Rows of a cell are summed per
    /// column first (a loop the compiler vectorises), then the columns of each cell.
    pub fn downscale(plane: &Plane, width: usize, height: usize) -> Gray {
        let mut out = Gray::new(width, height);
        let cols: Vec<(usize, usize)> = (0..width)
            .map(|cx| {
                let x0 = cx * plane.width / width;
                (x0, ((cx + 1) * plane.width / width).max(x0 + 1))
            })
            .collect();
        let mut column_sums = vec![0u32; plane.width];
        for cy in 0..height {
            let y0 = cy * plane.height / height;
            let y1 = ((cy + 1) * plane.height / height).max(y0 + 1);
            column_sums.fill(0);
            for y in y0..y1 {
                let row = &plane.data[y * plane.stride..y * plane.stride + plane.width];
                for (sum, &v) in column_sums.iter_mut().zip(row) {
                    *sum += v as u32;
                }
            }
            let rows = (y1 - y0) as f32;
            for (o, &(x0, x1)) in out.data[cy * width..(cy + 1) * width].iter_mut().zip(&cols) {
                let sum: u32 = column_sums[x0..x1].iter().sum();
                *o = sum as f32 / ((x1 - x0) as f32 * rows);
            }
        }
        out
    }

    /// Area average of this image onto a smaller `width` x `height` grid (cells as in
    /// [`Gray::downscale`]).
    pub fn shrink(&self, width: usize, height: usize) -> Gray {
        let mut out = Gray::new(width, height);
        let cols: Vec<(usize, usize)> = (0..width)
            .map(|cx| {
                let x0 = cx * self.width / width;
                (x0, ((cx + 1) * self.width / width).max(x0 + 1))
            })
            .collect();
        let mut column_sums = vec![0f32; self.width];
        for cy in 0..height {
            let y0 = cy * self.height / height;
            let y1 = ((cy + 1) * self.height / height).max(y0 + 1);
            column_sums.fill(0.0);
            for y in y0..y1 {
                for (sum, &v) in column_sums.iter_mut().zip(&self.data[y * self.width..]) {
                    *sum += v;
                }
            }
            let rows = (y1 - y0) as f32;
            for (o, &(x0, x1)) in out.data[cy * width..(cy + 1) * width].iter_mut().zip(&cols) {
                *o = column_sums[x0..x1].iter().sum::<f32>() / ((x1 - x0) as f32 * rows);
            }
        }
        out
    }

    #[inline]
    pub fn at(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.width + x]
    }

    /// Bilinear sample at a continuous position in pixel units (clamped to the image).
    #[inline]
    pub fn sample(&self, x: f64, y: f64) -> f32 {
        let x = x.clamp(0.0, (self.width - 1) as f64);
        let y = y.clamp(0.0, (self.height - 1) as f64);
        let (xi, yi) = (x.floor() as usize, y.floor() as usize);
        let (fx, fy) = ((x - xi as f64) as f32, (y - yi as f64) as f32);
        let x1 = (xi + 1).min(self.width - 1);
        let y1 = (yi + 1).min(self.height - 1);
        let top = self.at(xi, yi) * (1.0 - fx) + self.at(x1, yi) * fx;
        let bottom = self.at(xi, y1) * (1.0 - fx) + self.at(x1, y1) * fx;
        top * (1.0 - fy) + bottom * fy
    }

    /// The part `rect` of this image resampled onto a `width` x `height` grid (pixel centres).
    /// Same values as [`Gray::sample`] at every grid point; the taps of each column and row
    /// are computed once.
    pub fn resample(&self, rect: Rect, width: usize, height: usize) -> Gray {
        let mut out = Gray::new(width, height);
        let sx = rect.width() * self.width as f64 / width as f64;
        let sy = rect.height() * self.height as f64 / height as f64;
        let ox = rect.x0 * self.width as f64 - 0.5;
        let oy = rect.y0 * self.height as f64 - 0.5;
        let xs: Vec<Tap> = (0..width)
            .map(|x| Tap::new(ox + (x as f64 + 0.5) * sx, self.width))
            .collect();
        for y in 0..height {
            let ty = Tap::new(oy + (y as f64 + 0.5) * sy, self.height);
            let r0 = &self.data[ty.i0 * self.width..(ty.i0 + 1) * self.width];
            let r1 = &self.data[ty.i1 * self.width..(ty.i1 + 1) * self.width];
            for (o, tx) in out.data[y * width..(y + 1) * width].iter_mut().zip(&xs) {
                let top = r0[tx.i0] * (1.0 - tx.f) + r0[tx.i1] * tx.f;
                let bottom = r1[tx.i0] * (1.0 - tx.f) + r1[tx.i1] * tx.f;
                *o = top * (1.0 - ty.f) + bottom * ty.f;
            }
        }
        out
    }

    pub fn mean(&self) -> f32 {
        self.data.iter().sum::<f32>() / self.data.len().max(1) as f32
    }
}

/// The two neighbours and the weight of the second for a bilinear sample at `p` on an axis of
/// `len` pixels (clamped to the axis).
struct Tap {
    i0: usize,
    i1: usize,
    f: f32,
}

impl Tap {
    fn new(p: f64, len: usize) -> Tap {
        let p = p.clamp(0.0, (len - 1) as f64);
        let i0 = p.floor() as usize;
        Tap {
            i0,
            i1: (i0 + 1).min(len - 1),
            f: (p - i0 as f64) as f32,
        }
    }
}

/// Least-squares fit `s ≈ a·m + b`; returns `(a, b)` (a = 1, b = 0 when `m` is flat).
pub fn linear_fit(s: &[f32], m: &[f32]) -> (f32, f32) {
    let n = s.len().max(1) as f64;
    let (mut sm, mut ss, mut smm, mut sms) = (0f64, 0f64, 0f64, 0f64);
    for (&a, &b) in s.iter().zip(m) {
        sm += b as f64;
        ss += a as f64;
        smm += b as f64 * b as f64;
        sms += b as f64 * a as f64;
    }
    let var = smm - sm * sm / n;
    if var <= 1e-9 {
        return (1.0, ((ss - sm) / n) as f32);
    }
    let a = (sms - sm * ss / n) / var;
    ((a) as f32, ((ss - a * sm) / n) as f32)
}

/// Mean squared difference of `s` and the fit `a·m + b`, after fitting.
pub fn fitted_error(s: &[f32], m: &[f32]) -> f64 {
    let (a, b) = linear_fit(s, m);
    s.iter()
        .zip(m)
        .map(|(&x, &y)| {
            let d = (x - a * y - b) as f64;
            d * d
        })
        .sum::<f64>()
        / s.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize) -> Gray {
        Gray {
            width: w,
            height: h,
            data: (0..w * h).map(|i| ((i % w) * 2 + (i / w)) as f32).collect(),
        }
    }

    #[test]
    fn downscale_averages_and_resample_of_full_rect_is_identity() {
        let data: Vec<u8> = (0..16).map(|i| i as u8).collect();
        let g = Gray::downscale(
            &Plane {
                data: &data,
                stride: 4,
                width: 4,
                height: 4,
            },
            2,
            2,
        );
        assert_eq!(g.data, vec![2.5, 4.5, 10.5, 12.5]);
        assert_eq!(g.shrink(1, 1).data, vec![7.5]);
        assert_eq!(ramp(6, 3).shrink(3, 1).data, vec![2.0, 6.0, 10.0]);
        let r = ramp(8, 6);
        let same = r.resample(Rect::FULL, 8, 6);
        for (a, b) in same.data.iter().zip(&r.data) {
            assert!((a - b).abs() < 1e-4);
        }
    }

    #[test]
    fn resample_of_a_sub_rect_follows_the_linear_ramp() {
        let r = ramp(40, 40);
        let half = r.resample(
            Rect {
                x0: 0.25,
                y0: 0.25,
                x1: 0.75,
                y1: 0.75,
            },
            20,
            20,
        );
        // Pixel (0,0) of the half-size crop is centred at (10.5, 10.5) - 0.5 = (10, 10).
        assert!((half.at(0, 0) - (10.0 * 2.0 + 10.0)).abs() < 1e-3);
        assert!((half.at(19, 19) - (29.0 * 2.0 + 29.0)).abs() < 1e-3);
    }

    #[test]
    fn resample_equals_bilinear_sampling_at_every_grid_point() {
        let r = ramp(37, 23);
        let rect = Rect {
            x0: -0.05,
            y0: 0.1,
            x1: 0.93,
            y1: 1.02,
        };
        let (w, h) = (29, 17);
        let g = r.resample(rect, w, h);
        let sx = rect.width() * 37.0 / w as f64;
        let sy = rect.height() * 23.0 / h as f64;
        for y in 0..h {
            for x in 0..w {
                let px = rect.x0 * 37.0 - 0.5 + (x as f64 + 0.5) * sx;
                let py = rect.y0 * 23.0 - 0.5 + (y as f64 + 0.5) * sy;
                assert_eq!(g.at(x, y), r.sample(px, py), "({x}, {y})");
            }
        }
    }

    #[test]
    fn linear_fit_recovers_gain_and_offset() {
        let m: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let s: Vec<f32> = m.iter().map(|v| 0.8 * v + 12.0).collect();
        let (a, b) = linear_fit(&s, &m);
        assert!((a - 0.8).abs() < 1e-4 && (b - 12.0).abs() < 1e-3);
        assert!(fitted_error(&s, &m) < 1e-6);
    }
}
