//! The least-squares brightness and contrast fit between two pictures on one grid: how a
//! suspect frame (re-encoded, with other levels) is compared with a reference frame.

use crate::frame::Gray;

/// Least-squares fit `s ≈ a·m + b`; returns `(a, b)` (a = 1, b = 0 when `m` is flat).
pub fn linear_fit(s: &Gray, m: &Gray) -> (f32, f32) {
    let n = s.len().max(1) as f64;
    let (mut sm, mut ss, mut smm, mut sms) = (0f64, 0f64, 0f64, 0f64);
    for (&a, &b) in s.iter().zip(m.iter()) {
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
pub fn fitted_error(s: &Gray, m: &Gray) -> f64 {
    let (a, b) = linear_fit(s, m);
    s.iter()
        .zip(m.iter())
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

    #[test]
    fn linear_fit_recovers_gain_and_offset() {
        let m = Gray::from_shape_fn((10, 10), |(y, x)| (y * 10 + x) as f32);
        let s = m.mapv(|v| 0.8 * v + 12.0);
        let (a, b) = linear_fit(&s, &m);
        assert!((a - 0.8).abs() < 1e-4 && (b - 12.0).abs() < 1e-3);
        assert!(fitted_error(&s, &m) < 1e-6);
        // A flat reference: offset only.
        let flat = Gray::from_elem((10, 10), 5.0);
        assert_eq!(linear_fit(&s, &flat).0, 1.0);
    }
}
