//! Alignment in time: where in the title a suspect's frames come from. Thumbnails of the
//! suspect (after its bars are removed) are compared with the reference thumbnails stored at
//! packaging time, normalised per frame (so brightness and contrast changes do not matter),
//! at every candidate offset; the mapping is by timestamps, so excerpts and other frame rates
//! align alike, and each frame is then refined to the best of its neighbours (dropped or
//! duplicated frames).

/// A thumbnail normalised to zero mean and unit norm (all zeros when flat).
pub fn normalise(thumb: &[f32]) -> Vec<f32> {
    let n = thumb.len().max(1) as f32;
    let mean = thumb.iter().sum::<f32>() / n;
    let centred: Vec<f32> = thumb.iter().map(|v| v - mean).collect();
    let norm = centred.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm < 1e-3 {
        return vec![0.0; thumb.len()];
    }
    centred.into_iter().map(|v| v / norm).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The time mapping found: reference time = suspect time + `offset_seconds`.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeAlignment {
    pub offset_seconds: f64,
    /// Mean correlation of the matched thumbnails (1 = identical up to brightness/contrast).
    pub score: f64,
    /// For each suspect frame, the reference frame it shows (None: outside the title).
    pub frames: Vec<Option<usize>>,
}

/// Aligns suspect thumbnails (`(time in seconds, normalised thumbnail)`) with the reference's
/// (normalised, one per reference frame at `reference_fps`). `None` when nothing overlaps.
pub fn align(
    suspect: &[(f64, Vec<f32>)],
    reference: &[Vec<f32>],
    reference_fps: f64,
) -> Option<TimeAlignment> {
    if suspect.is_empty() || reference.is_empty() {
        return None;
    }
    // At most 240 informative frames for the search (flat thumbnails say nothing).
    let informative: Vec<&(f64, Vec<f32>)> = suspect
        .iter()
        .filter(|(_, t)| t.iter().any(|v| *v != 0.0))
        .collect();
    if informative.is_empty() {
        return None;
    }
    let step = informative.len().div_ceil(240).max(1);
    let samples: Vec<&(f64, Vec<f32>)> = informative.iter().step_by(step).copied().collect();
    let index_of = |t: f64, offset: f64| -> Option<usize> {
        let i = ((t + offset) * reference_fps).round();
        (i >= 0.0 && (i as usize) < reference.len()).then_some(i as usize)
    };
    let score_at = |offset: f64| -> f64 {
        let mut sum = 0.0f64;
        let mut n = 0usize;
        for (t, thumb) in &samples {
            if let Some(i) = index_of(*t, offset) {
                sum += dot(thumb, &reference[i]) as f64;
                n += 1;
            }
        }
        // Offsets that leave most samples outside the title do not count.
        if n * 2 < samples.len() {
            f64::NEG_INFINITY
        } else {
            sum / samples.len() as f64
        }
    };
    let t0 = samples[0].0;
    let mut best = (f64::NEG_INFINITY, 0.0);
    for j in 0..reference.len() {
        let offset = j as f64 / reference_fps - t0;
        let s = score_at(offset);
        if s > best.0 {
            best = (s, offset);
        }
    }
    if !best.0.is_finite() {
        return None;
    }
    // Sub-frame refinement.
    for k in -5..=5 {
        let offset = best.1 + k as f64 * 0.1 / reference_fps;
        let s = score_at(offset);
        if s > best.0 + 1e-9 {
            best = (s, offset);
        }
    }
    let offset = best.1;
    let frames = suspect
        .iter()
        .map(|(t, thumb)| {
            let centre = index_of(*t, offset)?;
            let lo = centre.saturating_sub(1);
            let hi = (centre + 1).min(reference.len() - 1);
            (lo..=hi)
                .max_by(|&a, &b| dot(thumb, &reference[a]).total_cmp(&dot(thumb, &reference[b])))
        })
        .collect();
    Some(TimeAlignment {
        offset_seconds: offset,
        score: best.0,
        frames,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn reference(n: usize) -> Vec<Vec<f32>> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        // A slowly changing scene: each frame drifts from the previous one.
        let mut cur: Vec<f32> = (0..64).map(|_| rng.gen_range(0.0..255.0)).collect();
        (0..n)
            .map(|_| {
                for v in cur.iter_mut() {
                    *v = (*v + rng.gen_range(-20.0..20.0)).clamp(0.0, 255.0);
                }
                cur.clone()
            })
            .collect()
    }

    #[test]
    fn finds_an_excerpt_at_another_frame_rate_and_brightness() {
        let raw = reference(500);
        let norm: Vec<Vec<f32>> = raw.iter().map(|t| normalise(t)).collect();
        // The excerpt starts at reference frame 200 (8 s at 25 fps) and is sampled at 30 fps,
        // brighter and with more contrast.
        let suspect: Vec<(f64, Vec<f32>)> = (0..150)
            .map(|k| {
                let t = k as f64 / 30.0;
                let i = ((t + 8.0) * 25.0).round() as usize;
                let thumb: Vec<f32> = raw[i].iter().map(|v| v * 1.2 + 10.0).collect();
                (t, normalise(&thumb))
            })
            .collect();
        let a = align(&suspect, &norm, 25.0).expect("aligned");
        assert!(
            (a.offset_seconds - 8.0).abs() < 0.03,
            "{}",
            a.offset_seconds
        );
        assert!(a.score > 0.99);
        for (k, f) in a.frames.iter().enumerate() {
            let expect = ((k as f64 / 30.0 + 8.0) * 25.0).round() as usize;
            assert_eq!(*f, Some(expect), "frame {k}");
        }
    }

    #[test]
    fn flat_or_empty_input_does_not_align() {
        let norm: Vec<Vec<f32>> = reference(50).iter().map(|t| normalise(t)).collect();
        assert_eq!(align(&[], &norm, 25.0), None);
        let flat = vec![(0.0, normalise(&[7.0; 64]))];
        assert_eq!(align(&flat, &norm, 25.0), None);
    }
}
