//! Alignment in time: where in the title a suspect's frames come from. Thumbnails of the
//! suspect (after its bars are removed) are compared with the reference thumbnails stored at
//! packaging time, normalised per frame (so brightness and contrast changes do not matter).
//!
//! A pirate's copy need not run at the title's speed, nor in one piece: it may be sped up or
//! slowed down (re-timed to dodge content matching), drift (frames dropped or duplicated and
//! re-timed), have scenes cut out or material inserted (ads, intros). So the suspect is
//! aligned window by window ([`WINDOW_SECONDS`] of suspect time each), each window with its
//! own offset and speed (title seconds per suspect second):
//! 1. an anchor window (the most informative ones first) is looked for over the whole title,
//!    at a few speeds;
//! 2. the windows after and before it are each looked for near where the last two aligned
//!    windows predict (drift-predicted), with a small penalty for leaving the prediction so that
//!    stills and test cards keep it;
//! 3. a window that matches nothing there is looked for over the whole title: a match elsewhere
//!    is a cut (a new segment of the time map), no match at all is material the title does not
//!    have (its frames stay unaligned); the first window past such material is looked for over
//!    the whole title too, since a scene may have been cut out where the material was put in;
//! 4. each frame is mapped by interpolating between the window centres of its segment, then
//!    moved to the best of its neighbouring reference frames (dropped or duplicated frames);
//! 5. around each boundary between runs of aligned windows (a cut, inserted material, material
//!    before or after the title), each frame follows the line it matches ([`settle`]).

use ndarray::Array2;
use rayon::prelude::*;

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

/// The correlation of two normalised thumbnails (their dot product), plainly: one running
/// sum, in order. Reference version of [`dot`].
pub fn dot_reference(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Running sums of [`dot`]: enough independent lanes for the compiler to keep them in vector
/// registers (a single running sum cannot be vectorised: float addition is not associative).
const DOT_LANES: usize = 16;

/// [`dot_reference`] with [`DOT_LANES`] running sums added at the end: equal to it within
/// float rounding (the products are summed in another order). Thumbnail correlations are most
/// of the time alignment's work (every window against every reference frame in a whole-title
/// search, and against every frame near its predicted place).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (
        a[..n].chunks_exact(DOT_LANES),
        b[..n].chunks_exact(DOT_LANES),
    );
    let tail = dot_reference(a.remainder(), b.remainder());
    let mut lanes = [0f32; DOT_LANES];
    for (x, y) in a.zip(b) {
        for ((sum, x), y) in lanes.iter_mut().zip(x).zip(y) {
            *sum += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Length of the windows the suspect is aligned by, in suspect seconds.
pub const WINDOW_SECONDS: f64 = 4.0;
/// A window is found where its mean thumbnail correlation reaches this.
const WINDOW_MIN_SCORE: f64 = 0.6;
/// Share of a window's frames that must carry a picture (not flat) for it to be aligned.
const MIN_INFORMATIVE_SHARE: f64 = 0.25;
/// Frames of a window compared in a whole-title search (evenly spread).
const GLOBAL_SAMPLES: usize = 16;
/// Speeds tried in a whole-title search; the local searches reach the rest of 0.8x..1.25x.
const GLOBAL_SPEEDS: [f64; 3] = [0.92, 1.0, 1.08];
/// Speeds a pirate's copy may plausibly run at.
const SPEED_RANGE: (f64, f64) = (0.8, 1.25);
/// How far (title seconds) a window is looked for around its predicted place.
const LOCAL_RANGE_SECONDS: f64 = 1.5;
/// Speed steps of the local search around the predicted speed.
const LOCAL_SPEED_STEPS: [f64; 7] = [-0.03, -0.02, -0.01, 0.0, 0.01, 0.02, 0.03];
/// Score lost per title second away from the predicted place, and per unit of speed change.
const DRIFT_PENALTY_PER_SECOND: f64 = 0.05;
const SPEED_PENALTY: f64 = 0.3;
/// Whole-title searches tried for an anchor before giving up on the title (the first window
/// found is the anchor: inserted material, often the most active, is passed over).
const ANCHOR_TRIES: usize = 8;
/// Parts of the suspect whose most active window a first look searches ([`Probes`]).
const PROBE_PARTS: usize = 3;
/// Places of the anchor in the title followed over the whole suspect before one is chosen.
const ANCHOR_CANDIDATES: usize = 4;
/// What a cut costs a mapping, in frames of perfect match.
const CUT_PENALTY_FRAMES: f64 = 50.0;
/// A window scoring this much below the best of the two before it is looked for elsewhere.
const SCORE_DROP: f64 = 0.015;
/// How much better a match elsewhere must be for a cut to be taken.
const CUT_MARGIN: f64 = 0.02;
/// Past unaligned windows, where the title often jumps (a scene cut out and something else put
/// in its place), a place over the whole title is taken (a new segment) when it lies more than
/// `GAP_CUT_SECONDS` from the best the prediction's search reaches and at most
/// `GAP_CUT_REACH_SECONDS` from the prediction, and matches better than that best by
/// `GAP_CUT_MARGIN` and by `GAP_CUT_SHARE` of what that best falls short of a perfect match
/// (where matches are poor, small differences are noise).
const GAP_CUT_SECONDS: f64 = 0.2;
const GAP_CUT_REACH_SECONDS: f64 = 10.0;
const GAP_CUT_MARGIN: f64 = 0.003;
const GAP_CUT_SHARE: f64 = 0.25;
/// A window found past unaligned windows further than `GAP_CUT_SECONDS` plus this share of the
/// seconds since the last followed window (a speed off by that much) from where the line
/// before them predicts starts a new segment.
const GAP_SPEED_SLACK: f64 = 0.01;
/// Places kept from the whole-title search past unaligned windows (each refined; the best of
/// them is the one weighed against the prediction's).
const GAP_CANDIDATES: usize = 3;
/// A frame next to an aligned window is aligned too while its own correlation reaches this.
const EXTEND_MIN_SCORE: f64 = 0.6;
/// A segment is taken as one straight line (one offset, one speed) unless its window-by-window
/// fits match better by more than this mean correlation.
const STRAIGHT_TOLERANCE: f64 = 0.01;
/// Unaligned windows between two aligned windows of a run are mapped by the run's line when
/// the title advanced across them (at most this many suspect seconds) as the line says, to
/// within this many frames.
const GAP_FILL_SECONDS: f64 = 60.0;
const GAP_FILL_TOLERANCE_FRAMES: f64 = 2.0;
/// The share of informative frames that must be aligned for the title to count as shown.
const MIN_COVERAGE: f64 = 0.25;

/// One straight piece of the time map: suspect times `suspect` map linearly to title times
/// `title`.
#[derive(Debug, Clone, PartialEq)]
pub struct TimePiece {
    pub suspect: [f64; 2],
    pub title: [f64; 2],
}

impl TimePiece {
    /// Title seconds per suspect second.
    pub fn speed(&self) -> f64 {
        let d = self.suspect[1] - self.suspect[0];
        if d > 1e-9 {
            (self.title[1] - self.title[0]) / d
        } else {
            1.0
        }
    }
}

/// The time mapping found.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeAlignment {
    /// Title time at suspect time 0 on the longest segment's line.
    pub offset_seconds: f64,
    /// Title seconds per suspect second on the longest segment.
    pub speed: f64,
    /// Mean correlation of the matched thumbnails (1 = identical up to brightness/contrast).
    pub score: f64,
    /// The share of informative suspect frames that are aligned.
    pub coverage: f64,
    /// For each suspect frame, the reference frame it shows (None: outside the title).
    pub frames: Vec<Option<usize>>,
    /// The time map: straight pieces in suspect order, a new piece at each cut or speed change.
    pub pieces: Vec<TimePiece>,
}

/// A window of the suspect: its frames' indexes and its centre time.
struct Window {
    frames: std::ops::Range<usize>,
    centre: f64,
    /// Indexes of the frames that carry a picture.
    informative: Vec<usize>,
}

/// Where a window was found: title time of its centre, speed, score.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Fit {
    title_centre: f64,
    speed: f64,
    score: f64,
}

/// The search context: suspect and reference thumbnails.
struct Search<'a> {
    suspect: &'a [(f64, Vec<f32>)],
    reference: &'a [Vec<f32>],
    fps: f64,
}

impl<'a> Search<'a> {
    /// The search of `suspect` in `reference`; `None` when either is empty.
    fn new(suspect: &'a [(f64, Vec<f32>)], reference: &'a [Vec<f32>], fps: f64) -> Option<Self> {
        (!suspect.is_empty() && !reference.is_empty()).then_some(Search {
            suspect,
            reference,
            fps,
        })
    }

    fn index(&self, title_time: f64) -> Option<usize> {
        let i = (title_time * self.fps).round();
        (i >= 0.0 && (i as usize) < self.reference.len()).then_some(i as usize)
    }

    /// Mean correlation of `frames` (suspect indexes) mapped by `(title_centre, speed)` about
    /// `centre`, the correlation of `frames[n]` and reference frame `j` given by `dot_of(n, j)`
    /// (a cache); frames outside the title count as 0, and a mapping that leaves most of them
    /// outside does not count.
    fn score_with(
        &self,
        frames: &[usize],
        centre: f64,
        title_centre: f64,
        speed: f64,
        dot_of: impl Fn(usize, usize) -> f32,
    ) -> Option<f64> {
        let mut sum = 0.0f64;
        let mut inside = 0usize;
        for (n, &i) in frames.iter().enumerate() {
            let t = self.suspect[i].0;
            if let Some(j) = self.index(title_centre + speed * (t - centre)) {
                sum += dot_of(n, j) as f64;
                inside += 1;
            }
        }
        (inside * 2 >= frames.len() && !frames.is_empty()).then(|| sum / frames.len() as f64)
    }

    /// The window's best fits over the whole title, from a sample of its frames, each refined:
    /// at most `keep`, at least a second apart, best first. Each sample frame's correlation
    /// with every reference frame is computed once, then summed along each (offset, speed).
    fn global(&self, w: &Window, keep: usize) -> Vec<Fit> {
        let step = w.informative.len().div_ceil(GLOBAL_SAMPLES).max(1);
        let sample: Vec<usize> = w.informative.iter().step_by(step).copied().collect();
        let dots: Vec<Vec<f32>> = sample
            .par_iter()
            .map(|&i| {
                self.reference
                    .iter()
                    .map(|r| dot(&self.suspect[i].1, r))
                    .collect()
            })
            .collect();
        let mut all: Vec<Fit> = Vec::new();
        for speed in GLOBAL_SPEEDS {
            for j in 0..self.reference.len() {
                let title_centre = j as f64 / self.fps;
                let mut sum = 0.0f64;
                let mut inside = 0usize;
                for (&i, row) in sample.iter().zip(&dots) {
                    let t = self.suspect[i].0;
                    if let Some(r) = self.index(title_centre + speed * (t - w.centre)) {
                        sum += row[r] as f64;
                        inside += 1;
                    }
                }
                if !sample.is_empty() && inside * 2 >= sample.len() {
                    all.push(Fit {
                        title_centre,
                        speed,
                        score: sum / sample.len() as f64,
                    });
                }
            }
        }
        all.sort_by(|a, b| b.score.total_cmp(&a.score));
        let mut kept: Vec<Fit> = Vec::new();
        for fit in all {
            if kept.len() == keep {
                break;
            }
            if kept
                .iter()
                .all(|k| (k.title_centre - fit.title_centre).abs() >= 1.0)
            {
                kept.push(fit);
            }
        }
        let mut refined: Vec<Fit> = kept
            .into_iter()
            .map(|c| self.local(w, c, 0.0, 0.0))
            .collect();
        refined.sort_by(|a, b| b.score.total_cmp(&a.score));
        refined
    }

    /// The window's best fit near `predicted`, each candidate's score lowered by how far it
    /// strays from the prediction (`penalty` per second and `speed_penalty` per unit of speed).
    fn local(&self, w: &Window, predicted: Fit, penalty: f64, speed_penalty: f64) -> Fit {
        let frames = &w.informative;
        let mut best = predicted;
        let mut best_adjusted = f64::NEG_INFINITY;
        let steps = (LOCAL_RANGE_SECONDS * self.fps).ceil() as i64;
        // Every correlation the searches below can ask for, computed once: the window's frames
        // against the reference frames the candidate places can reach.
        let cache = self.cache(w, predicted);
        let consider = |title_centre: f64, speed: f64, best: &mut Fit, best_adj: &mut f64| {
            if !(SPEED_RANGE.0..=SPEED_RANGE.1).contains(&speed) {
                return;
            }
            let scored = self.score_with(frames, w.centre, title_centre, speed, |n, j| {
                cache
                    .get(n, j)
                    .unwrap_or_else(|| dot(&self.suspect[frames[n]].1, &self.reference[j]))
            });
            if let Some(score) = scored {
                let adjusted = score
                    - penalty * (title_centre - predicted.title_centre).abs()
                    - speed_penalty * (speed - predicted.speed).abs();
                if adjusted > *best_adj {
                    *best_adj = adjusted;
                    *best = Fit {
                        title_centre,
                        speed,
                        score,
                    };
                }
            }
        };
        for ds in LOCAL_SPEED_STEPS {
            for k in -steps..=steps {
                let title_centre = predicted.title_centre + k as f64 / self.fps;
                consider(
                    title_centre,
                    predicted.speed + ds,
                    &mut best,
                    &mut best_adjusted,
                );
            }
        }
        // Finer: a tenth of a frame and a quarter of a speed step around the best.
        let coarse = best;
        for ds in [-0.0075, -0.005, -0.0025, 0.0, 0.0025, 0.005, 0.0075] {
            for k in -5..=5 {
                let title_centre = coarse.title_centre + k as f64 * 0.1 / self.fps;
                consider(
                    title_centre,
                    coarse.speed + ds,
                    &mut best,
                    &mut best_adjusted,
                );
            }
        }
        best
    }
}

impl Search<'_> {
    /// The correlations a local search around `predicted` can need.
    fn cache(&self, w: &Window, predicted: Fit) -> DotCache {
        let frames = &w.informative;
        let (Some(&first), Some(&last)) = (frames.first(), frames.last()) else {
            return DotCache::default();
        };
        let reach = LOCAL_RANGE_SECONDS + 1.0 / self.fps;
        let speeds = [predicted.speed - 0.04, predicted.speed + 0.04];
        let offsets = [
            self.suspect[first].0 - w.centre,
            self.suspect[last].0 - w.centre,
        ];
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        for c in [
            predicted.title_centre - reach,
            predicted.title_centre + reach,
        ] {
            for s in speeds {
                for d in offsets {
                    lo = lo.min(c + s * d);
                    hi = hi.max(c + s * d);
                }
            }
        }
        let last_frame = self.reference.len() as f64 - 1.0;
        let j0 = ((lo * self.fps).floor() - 1.0).clamp(0.0, last_frame) as usize;
        let j1 = ((hi * self.fps).ceil() + 1.0).clamp(0.0, last_frame) as usize;
        let width = j1 + 1 - j0;
        let values: Vec<f32> = frames
            .par_iter()
            .flat_map_iter(|&i| {
                let thumb = &self.suspect[i].1;
                self.reference[j0..=j1].iter().map(move |r| dot(thumb, r))
            })
            .collect();
        let values = Array2::from_shape_vec((frames.len(), width), values).unwrap_or_default();
        DotCache { j0, values }
    }
}

/// Correlations of a window's frames (rows) with a run of reference frames from `j0`
/// (columns).
#[derive(Default)]
struct DotCache {
    j0: usize,
    values: Array2<f32>,
}

impl DotCache {
    fn get(&self, row: usize, j: usize) -> Option<f32> {
        self.values.get((row, j.checked_sub(self.j0)?)).copied()
    }
}

/// Splits the suspect into windows of [`WINDOW_SECONDS`].
fn windows(suspect: &[(f64, Vec<f32>)]) -> Vec<Window> {
    let mut out: Vec<Window> = Vec::new();
    let mut start = 0usize;
    while start < suspect.len() {
        let t0 = suspect[start].0;
        let mut end = start;
        while end < suspect.len() && suspect[end].0 < t0 + WINDOW_SECONDS {
            end += 1;
        }
        // A short tail joins the window before it.
        let tail = suspect.last().map_or(0.0, |s| s.0) - suspect[end.min(suspect.len() - 1)].0;
        if end < suspect.len() && tail < WINDOW_SECONDS / 2.0 {
            end = suspect.len();
        }
        let frames = start..end.max(start + 1);
        let informative = frames
            .clone()
            .filter(|&i| suspect[i].1.iter().any(|v| *v != 0.0))
            .collect();
        let centre = (suspect[frames.start].0 + suspect[frames.end - 1].0) / 2.0;
        out.push(Window {
            frames,
            centre,
            informative,
        });
        start = end.max(start + 1);
    }
    out
}

impl Window {
    /// Enough of its frames carry a picture to search it.
    fn usable(&self) -> bool {
        !self.informative.is_empty()
            && self.informative.len() as f64 >= MIN_INFORMATIVE_SHARE * self.frames.len() as f64
    }
}

/// The windows of a suspect that a first look searches ([`anchor_score`]): the most active
/// usable window of each [`PROBE_PARTS`]-th of the suspect, so that material put in front of
/// (or after) the copy, however lively, cannot take every probe. Chosen once per suspect:
/// they depend on its frames' times and on which carry a picture, the same in every
/// orientation.
pub struct Probes(Vec<Window>);

impl Probes {
    pub fn of(suspect: &[(f64, Vec<f32>)]) -> Probes {
        let usable: Vec<Window> = windows(suspect)
            .into_iter()
            .filter(Window::usable)
            .collect();
        let count = usable.len();
        let mut best: Vec<Option<(f64, Window)>> = (0..PROBE_PARTS).map(|_| None).collect();
        for (k, w) in usable.into_iter().enumerate() {
            let part = k * PROBE_PARTS / count.max(1);
            let a = activity(suspect, &w);
            if best[part].as_ref().is_none_or(|(b, _)| a > *b) {
                best[part] = Some((a, w));
            }
        }
        Probes(best.into_iter().flatten().map(|(_, w)| w).collect())
    }
}

/// How well `probes` of the suspect match anywhere in the title: the best score among them,
/// each window searched over the whole title as [`align`]'s anchors are. A first look costing
/// a fraction of an alignment, to choose which readings are worth aligning in full. `None`
/// when there is nothing to search.
pub fn anchor_score(
    suspect: &[(f64, Vec<f32>)],
    probes: &Probes,
    reference: &[Vec<f32>],
    reference_fps: f64,
) -> Option<f64> {
    let search = Search::new(suspect, reference, reference_fps)?;
    probes
        .0
        .iter()
        .filter(|w| w.frames.end <= suspect.len())
        .filter_map(|w| search.global(w, 1).first().map(|f| f.score))
        .max_by(f64::total_cmp)
}

/// How much a window's picture changes: the anchor candidates come first.
fn activity(suspect: &[(f64, Vec<f32>)], w: &Window) -> f64 {
    w.informative
        .windows(2)
        .map(|p| 1.0 - dot(&suspect[p[0]].1, &suspect[p[1]].1) as f64)
        .sum::<f64>()
        + w.informative.len() as f64 * 1e-3
}

/// Aligns suspect thumbnails (`(time in seconds, normalised thumbnail)`) with the reference's
/// (normalised, one per reference frame at `reference_fps`). `None` when no part of the
/// suspect is found in the title.
pub fn align(
    suspect: &[(f64, Vec<f32>)],
    reference: &[Vec<f32>],
    reference_fps: f64,
) -> Option<TimeAlignment> {
    let search = Search::new(suspect, reference, reference_fps)?;
    let windows = windows(suspect);
    let usable: Vec<usize> = (0..windows.len())
        .filter(|&k| windows[k].usable())
        .collect();
    if usable.is_empty() {
        return None;
    }

    // 1. The anchor: the most active usable windows, each searched over the whole title; the
    // first with a match gives the candidates (periodic content matches in several places).
    let mut by_activity = usable.clone();
    let activities: Vec<f64> = windows.iter().map(|w| activity(suspect, w)).collect();
    by_activity.sort_by(|&a, &b| activities[b].total_cmp(&activities[a]));
    let is_usable: Vec<bool> = (0..windows.len()).map(|k| usable.contains(&k)).collect();
    let (anchor, candidates) = by_activity
        .iter()
        .take(ANCHOR_TRIES)
        .map(|&k| {
            let found: Vec<Fit> = search
                .global(&windows[k], ANCHOR_CANDIDATES)
                .into_iter()
                .filter(|f| f.score >= WINDOW_MIN_SCORE)
                .collect();
            (k, found)
        })
        .find(|(_, found)| !found.is_empty())?;
    tracing::trace!(
        anchor,
        centre = windows[anchor].centre,
        places = ?candidates.iter().map(|f| (f.title_centre, f.score)).collect::<Vec<_>>(),
        "time: anchor"
    );
    // 2. and 3. Each candidate followed over the whole suspect; the one under which the most
    // of the suspect matches, and matches best, is the alignment.
    let followed: Vec<Vec<Option<(Fit, usize)>>> = candidates
        .into_par_iter()
        .map(|fit| extend(&search, &windows, &is_usable, anchor, fit))
        .collect();
    // The first of equally good candidates (the best anchor score) wins.
    let fits = followed.into_iter().reduce(|best, other| {
        if total(&windows, &other) > total(&windows, &best) {
            other
        } else {
            best
        }
    })?;
    let fits = straighten(&search, &windows, fits);
    Some(assemble(&search, &windows, &fits))
}

/// Each segment (the windows between cuts) as one straight line when that explains the
/// thumbnails about as well as its window-by-window fits: a copy's speed is constant between
/// cuts (a steady speed change, or frames dropped evenly), while window fits can wander where
/// the pictures barely change or change like a zoom (a crop of a zoom looks like later
/// frames). The line starts from the least-squares fit through the windows and is refined by
/// coordinate ascent on the evidence; it replaces the fits unless they match better by more
/// than [`STRAIGHT_TOLERANCE`].
fn straighten(
    search: &Search,
    windows: &[Window],
    mut fits: Vec<Option<(Fit, usize)>>,
) -> Vec<Option<(Fit, usize)>> {
    let segments = fits
        .iter()
        .flatten()
        .map(|(_, s)| *s)
        .max()
        .map_or(0, |s| s + 1);
    for segment in 0..segments {
        let members: Vec<usize> = (0..fits.len())
            .filter(|&k| fits[k].is_some_and(|(_, s)| s == segment))
            .collect();
        if members.len() < 3 {
            continue;
        }
        let weight = |k: usize| windows[k].informative.len() as f64;
        let frames: f64 = members.iter().map(|&k| weight(k)).sum();
        if frames <= 0.0 {
            continue;
        }
        let fitted: f64 = members
            .iter()
            .filter_map(|&k| fits[k].map(|(f, _)| f.score * weight(k)))
            .sum();
        // Least squares through (window centre, title centre), weighted by informative frames.
        let (mut sw, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for &k in &members {
            let Some((f, _)) = fits[k] else { continue };
            let (x, y, w) = (windows[k].centre, f.title_centre, weight(k));
            sw += w;
            sx += w * x;
            sy += w * y;
            sxx += w * x * x;
            sxy += w * x * y;
        }
        let spread = sw * sxx - sx * sx;
        if spread <= 1e-9 {
            continue;
        }
        let speed = ((sw * sxy - sx * sy) / spread).clamp(SPEED_RANGE.0, SPEED_RANGE.1);
        let offset = (sy - speed * sx) / sw;
        // The evidence of the line (offset, speed) and each window's score under it.
        let evidence = |offset: f64, speed: f64| -> (f64, Vec<f64>) {
            let scores: Vec<f64> = members
                .iter()
                .map(|&k| {
                    let w = &windows[k];
                    let title_centre = offset + speed * w.centre;
                    search
                        .score_with(&w.informative, w.centre, title_centre, speed, |n, j| {
                            dot(&search.suspect[w.informative[n]].1, &search.reference[j])
                        })
                        .unwrap_or(0.0)
                })
                .collect();
            let total = members
                .iter()
                .zip(&scores)
                .map(|(&k, s)| s * weight(k))
                .sum();
            (total, scores)
        };
        let mut best = (offset, speed, evidence(offset, speed));
        for (step_offset, step_speed) in [
            (4.0 / search.fps, 0.004),
            (1.0 / search.fps, 0.001),
            (0.25 / search.fps, 0.00025),
        ] {
            let mut improved = true;
            while improved {
                improved = false;
                for (d_offset, d_speed) in [
                    (step_offset, 0.0),
                    (-step_offset, 0.0),
                    (0.0, step_speed),
                    (0.0, -step_speed),
                ] {
                    let (o, s) = (best.0 + d_offset, best.1 + d_speed);
                    if !(SPEED_RANGE.0..=SPEED_RANGE.1).contains(&s) {
                        continue;
                    }
                    let e = evidence(o, s);
                    if e.0 > best.2 .0 + 1e-9 {
                        best = (o, s, e);
                        improved = true;
                    }
                }
            }
        }
        let (offset, speed, (total, scores)) = best;
        tracing::trace!(
            segment,
            fitted,
            straight = total,
            frames,
            "time: straight line tried"
        );
        if total >= fitted - STRAIGHT_TOLERANCE * frames {
            for (&k, score) in members.iter().zip(scores) {
                fits[k] = Some((
                    Fit {
                        title_centre: offset + speed * windows[k].centre,
                        speed,
                        score,
                    },
                    segment,
                ));
            }
        }
    }
    fits
}

/// The evidence of a set of window fits: each fitted window's score times its informative
/// frames, less [`CUT_PENALTY_FRAMES`] for every cut (of two mappings the thumbnails support
/// alike, the simpler one: content that repeats, like a test pattern, matches in several
/// places).
fn total(windows: &[Window], fits: &[Option<(Fit, usize)>]) -> f64 {
    let evidence: f64 = fits
        .iter()
        .zip(windows)
        .filter_map(|(f, w)| f.map(|(fit, _)| fit.score * w.informative.len() as f64))
        .sum();
    let segments = fits
        .iter()
        .flatten()
        .map(|(_, seg)| *seg)
        .max()
        .unwrap_or(0);
    evidence - CUT_PENALTY_FRAMES * segments as f64
}

/// Follows the suspect outward from window `anchor` fitted at `anchor_fit`, window by window:
/// each fit with the segment it belongs to (`None`: not in the title).
fn extend(
    search: &Search,
    windows: &[Window],
    is_usable: &[bool],
    anchor: usize,
    anchor_fit: Fit,
) -> Vec<Option<(Fit, usize)>> {
    let mut fits: Vec<Option<(Fit, usize)>> = vec![None; windows.len()];
    fits[anchor] = Some((anchor_fit, 0));
    let mut segments = 1usize;
    for direction in [1i64, -1] {
        // The last two fits of the current segment, nearest first.
        let mut recent: Vec<(f64, Fit)> = vec![(windows[anchor].centre, anchor_fit)];
        let mut current_segment = 0usize;
        // Whether a window was left unaligned since the last one followed.
        let mut after_gap = false;
        let mut k = anchor as i64 + direction;
        while (0..windows.len() as i64).contains(&k) {
            let index = k as usize;
            k += direction;
            if !is_usable[index] {
                // Mostly flat (black put in where a scene was cut, a fade): what follows is
                // looked at as past unaligned material.
                after_gap = true;
                continue;
            }
            let w = &windows[index];
            let (last_centre, last) = recent[0];
            let speed = match recent.get(1) {
                Some((c, f)) if (last_centre - c).abs() > 1e-6 => {
                    ((last.title_centre - f.title_centre) / (last_centre - c))
                        .clamp(SPEED_RANGE.0, SPEED_RANGE.1)
                }
                _ => last.speed,
            };
            let predicted = Fit {
                title_centre: last.title_centre + speed * (w.centre - last_centre),
                speed,
                score: 0.0,
            };
            let near = search.local(w, predicted, DRIFT_PENALTY_PER_SECOND, SPEED_PENALTY);
            // A window that matches markedly worse than the ones before it may lie past a cut
            // that the prediction still half fits (pictures that change little): it is looked
            // for over the whole title too, and moved only when it matches clearly better
            // there.
            //
            // Past unaligned windows (material the title does not have, or a stretch it
            // matches too poorly), the prediction is only a guess: the title may go on where
            // it left off (an advert put in) or further on (a scene cut out and something put
            // in its place), and in slow pictures a place a second or two off the true one,
            // all the prediction's search can reach, matches nearly as well. So the whole
            // title is searched there too, and a place a few seconds from the prediction is
            // taken when it matches better than anything the prediction's search reaches
            // (without its penalty for leaving the prediction), even by a little.
            let expected = recent.iter().map(|(_, f)| f.score).fold(0.0, f64::max);
            let poorer = near.score < WINDOW_MIN_SCORE || near.score < expected - SCORE_DROP;
            let fit = if !after_gap && !poorer {
                near
            } else {
                let far = search.global(w, if after_gap { GAP_CANDIDATES } else { 1 });
                let far = far.first().copied().filter(|f| f.score >= WINDOW_MIN_SCORE);
                let cut = far.is_some_and(|far| {
                    let elsewhere = poorer
                        && far.score > near.score + CUT_MARGIN
                        && (far.title_centre - near.title_centre).abs() > LOCAL_RANGE_SECONDS;
                    elsewhere || (after_gap && hidden_cut(search, w, predicted, far))
                });
                match far {
                    Some(far) if cut => {
                        // A cut: the copy continues elsewhere in the title.
                        current_segment = segments;
                        segments += 1;
                        recent.clear();
                        after_gap = false;
                        far
                    }
                    // Still the best place near the prediction: kept.
                    _ if near.score >= WINDOW_MIN_SCORE => near,
                    // Material the title does not have: left unaligned.
                    _ => {
                        tracing::trace!(
                            window = index,
                            centre = w.centre,
                            near = near.score,
                            "time: window left unaligned"
                        );
                        after_gap = true;
                        continue;
                    }
                }
            };
            // Found past unaligned windows, but not where the line before them goes on: the
            // title jumped across them (a scene cut out, within the prediction's reach), so
            // this window starts a segment of its own rather than bending the one before.
            let off = (fit.title_centre - predicted.title_centre).abs();
            if after_gap
                && !recent.is_empty()
                && off > GAP_CUT_SECONDS + GAP_SPEED_SLACK * (w.centre - last_centre).abs()
            {
                current_segment = segments;
                segments += 1;
                recent.clear();
            }
            // A window partly made of the material (its edge inside the window) matches
            // worse than those before it: the next one is looked at as past the material too.
            after_gap = after_gap && !recent.is_empty() && fit.score < expected - SCORE_DROP;
            tracing::trace!(
                window = index,
                centre = w.centre,
                title = fit.title_centre,
                speed = fit.speed,
                score = fit.score,
                segment = current_segment,
                "time: window followed"
            );
            fits[index] = Some((fit, current_segment));
            recent.insert(0, (w.centre, fit));
            recent.truncate(2);
        }
    }
    fits
}

/// Whether `far`, the window's best place over the whole title, is where the copy goes on past
/// unaligned windows rather than near `predicted` ([`GAP_CUT_SECONDS`] and the constants
/// beside it): it is weighed against the best place the prediction's search reaches without
/// its penalty for leaving the prediction, so that a place a few frames off that the penalty
/// alone kept out does not make a cut.
fn hidden_cut(search: &Search, w: &Window, predicted: Fit, far: Fit) -> bool {
    if (far.title_centre - predicted.title_centre).abs() > GAP_CUT_REACH_SECONDS {
        return false;
    }
    let reach = search.local(w, predicted, 0.0, 0.0);
    let margin = GAP_CUT_MARGIN.max(GAP_CUT_SHARE * (1.0 - reach.score).max(0.0));
    let taken = far.score > reach.score + margin
        && (far.title_centre - reach.title_centre).abs() > GAP_CUT_SECONDS;
    tracing::trace!(
        centre = w.centre,
        reach = reach.score,
        reach_title = reach.title_centre,
        far = far.score,
        far_title = far.title_centre,
        taken,
        "time: window past unaligned material"
    );
    taken
}

/// One run of consecutive fitted windows of one segment: the knots of its line (suspect time,
/// title time, speed at each window's centre), its first and last window, and the suspect
/// frames it maps once the boundaries with its neighbours are settled.
struct Run {
    knots: Vec<(f64, f64, f64)>,
    first: usize,
    last: usize,
    frames: std::ops::Range<usize>,
}

/// Title time at suspect time `t` on the line through `knots` (interpolated between them,
/// the edge window's own line beyond them).
fn line_time(knots: &[(f64, f64, f64)], t: f64) -> f64 {
    // The first knot at or after `t` (the knots are in suspect order).
    let after = knots.partition_point(|&(c, _, _)| c < t);
    match (after, knots.get(after)) {
        (0, Some(&(c, u, s))) => u + s * (t - c),
        (_, None) => match knots.last() {
            Some(&(c, u, s)) => u + s * (t - c),
            None => t,
        },
        (i, Some(&(c1, u1, _))) => {
            let (c0, u0, _) = knots[i - 1];
            u0 + (u1 - u0) * (t - c0) / (c1 - c0).max(1e-9)
        }
    }
}

/// Suspect frame `i` mapped to title time `at`: the best of that reference frame and its
/// neighbours (dropped or duplicated frames, rounding).
fn map_at(search: &Search, i: usize, at: f64) -> Option<usize> {
    let (_, thumb) = &search.suspect[i];
    let reference = search.reference;
    let centre = search.index(at)?;
    let lo = centre.saturating_sub(1);
    let hi = (centre + 1).min(reference.len() - 1);
    (lo..=hi).max_by(|&a, &b| dot(thumb, &reference[a]).total_cmp(&dot(thumb, &reference[b])))
}

/// One side of a boundary: the line through a run's knots, and the frames it may take (its
/// own windows and at most one window past them, as far as frames were ever entered from a
/// run's end).
struct Side<'a> {
    knots: &'a [(f64, f64, f64)],
    reach: std::ops::Range<usize>,
}

/// Where one side of a boundary ends and the other begins, in the frames `region` between
/// two runs (`left` and `right`; `None` on the side of the suspect's start or end): the frames
/// before the first split point follow the left line, those from the second on the right one,
/// those between neither (inserted material). The points are those that make the most of each
/// frame's correlation under the line it follows, a frame left to neither counting
/// [`EXTEND_MIN_SCORE`] and a frame without a picture counting alike under all three; a side
/// takes no frame beyond its reach. A window is fitted as a whole, so one straddling a cut can
/// be fitted by the line of either side (when the pictures on both sides look alike, as in a
/// studio shot or a test card) and would map the frames past the cut to title frames they do
/// not show; here each frame goes with the line it matches. Returns the two split points as
/// frame indexes (`region.start() <= k1 <= k2 <= region.end() + 1`).
fn settle(
    search: &Search,
    region: std::ops::RangeInclusive<usize>,
    left: Option<&Side>,
    right: Option<&Side>,
) -> (usize, usize) {
    let start = *region.start();
    let frames: Vec<usize> = region.collect();
    let n = frames.len();
    let blank = |i: usize| search.suspect[i].1.iter().all(|v| *v == 0.0);
    // A frame's score under a side's line: 0 without a picture, -1 where the line leaves the
    // title (or for a value that is not a number).
    let score = |i: usize, side: &Side| -> f64 {
        if blank(i) {
            return 0.0;
        }
        let (t, thumb) = &search.suspect[i];
        let value = map_at(search, i, line_time(side.knots, *t))
            .map_or(-1.0, |j| dot(thumb, &search.reference[j]) as f64);
        if value.is_finite() {
            value
        } else {
            -1.0
        }
    };
    let neither = |i: usize| if blank(i) { 0.0 } else { EXTEND_MIN_SCORE };
    let prefix = |f: &dyn Fn(usize) -> f64| {
        let mut sums = vec![0.0f64; n + 1];
        for (k, &i) in frames.iter().enumerate() {
            sums[k + 1] = sums[k] + f(i);
        }
        sums
    };
    let by_left = left.map(|side| prefix(&|i| score(i, side)));
    let by_right = right.map(|side| prefix(&|i| score(i, side)));
    let by_neither = prefix(&neither);
    // How many of the region's frames each side may take: the left one from the start, the
    // right one from the end.
    let left_most = left.map_or(0, |side| side.reach.end.clamp(start, start + n) - start);
    let right_least = right.map_or(n, |side| side.reach.start.clamp(start, start + n) - start);
    // Maximise left[k1] + (neither[k2] - neither[k1]) + (right[n] - right[k2]) over
    // k1 <= k2, k1 <= left_most, k2 >= right_least.
    let left_part = |k1: usize| match &by_left {
        Some(sums) => sums[k1] - by_neither[k1],
        None => 0.0,
    };
    let right_part = |k2: usize| match &by_right {
        Some(sums) => by_neither[k2] + sums[n] - sums[k2],
        None => by_neither[k2],
    };
    let mut best_left = (left_part(0), 0usize);
    let mut next_k1 = 1usize;
    let mut best: Option<(f64, usize, usize)> = None;
    for k2 in right_least..=n {
        // The best k1 <= k2 within the left side's reach so far (k1 = 0 always allowed).
        while next_k1 <= k2.min(left_most) {
            let l = left_part(next_k1);
            if l > best_left.0 {
                best_left = (l, next_k1);
            }
            next_k1 += 1;
        }
        let total = best_left.0 + right_part(k2);
        if best.is_none_or(|(b, _, _)| total > b) {
            best = Some((total, best_left.1, k2));
        }
    }
    let (_, k1, k2) = best.unwrap_or((0.0, 0, n));
    (start + k1, start + k2)
}

/// Builds the frame mapping and the time map from the windows' fits.
fn assemble(search: &Search, windows: &[Window], fits: &[Option<(Fit, usize)>]) -> TimeAlignment {
    let suspect = search.suspect;
    let reference = search.reference;
    // Runs of consecutive fitted windows of one segment, in suspect order.
    let mut runs: Vec<Vec<usize>> = Vec::new();
    let mut last_segment = None;
    for (k, fit) in fits.iter().enumerate() {
        let Some((_, seg)) = fit else { continue };
        if last_segment != Some(*seg) || runs.is_empty() {
            runs.push(Vec::new());
        }
        last_segment = Some(*seg);
        if let Some(run) = runs.last_mut() {
            run.push(k);
        }
    }
    let mut frames: Vec<Option<usize>> = vec![None; suspect.len()];
    let mut lines: Vec<Run> = Vec::new();
    for run in &runs {
        let knots: Vec<(f64, f64, f64)> = run
            .iter()
            .filter_map(|&k| fits[k].map(|(f, _)| (windows[k].centre, f.title_centre, f.speed)))
            .collect();
        let map_frame = |i: usize| map_at(search, i, line_time(&knots, suspect[i].0));
        // A window's own line, for frames entered from it.
        let line_of = |k: usize| {
            let f = fits[k].map(|(f, _)| f);
            let centre = windows[k].centre;
            move |t: f64| f.map(|f| f.title_centre + f.speed * (t - centre))
        };
        for &k in run {
            for i in windows[k].frames.clone() {
                frames[i] = map_frame(i);
            }
        }
        let (Some(&first), Some(&last)) = (run.first(), run.last()) else {
            continue;
        };
        // Unaligned windows inside the run: where the title advanced across them as the run's
        // line says, they show the title (content whose thumbnails match poorly, such as fine
        // noise-like detail in a cropped copy) and are mapped by the line; otherwise (material
        // inserted, a scene removed) they are entered frame by frame from both sides, as the
        // run's ends are below.
        let mut outward: Vec<(Box<dyn Iterator<Item = usize>>, usize)> = Vec::new();
        for pair in run.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if b == a + 1 {
                continue;
            }
            let (Some((fa, _)), Some((fb, _))) = (fits[a], fits[b]) else {
                continue;
            };
            let elapsed = windows[b].centre - windows[a].centre;
            let expected = 0.5 * (fa.speed + fb.speed) * elapsed;
            let advanced = fb.title_centre - fa.title_centre;
            let gap = windows[a + 1].frames.start..windows[b - 1].frames.end;
            if elapsed <= GAP_FILL_SECONDS
                && (advanced - expected).abs() <= GAP_FILL_TOLERANCE_FRAMES / search.fps
            {
                for i in gap {
                    frames[i] = map_frame(i);
                }
            } else {
                outward.push((Box::new(gap.clone()), a));
                outward.push((Box::new(gap.rev()), b));
            }
        }
        // Into the unaligned windows at either end of the run (a window straddling a cut or
        // the edge of inserted material): frame by frame, while the frames still match.
        let before =
            (first > 0 && fits[first - 1].is_none()).then(|| windows[first - 1].frames.clone());
        let after = fits
            .get(last + 1)
            .is_some_and(Option::is_none)
            .then(|| windows[last + 1].frames.clone());
        outward.push((Box::new(before.into_iter().flatten().rev()), first));
        outward.push((Box::new(after.into_iter().flatten()), last));
        for (side, from) in outward {
            let line = line_of(from);
            for i in side {
                let thumb = &suspect[i].1;
                let informative = thumb.iter().any(|v| *v != 0.0);
                let Some(j) = line(suspect[i].0).and_then(|at| map_at(search, i, at)) else {
                    break;
                };
                if informative && (dot(thumb, &reference[j]) as f64) < EXTEND_MIN_SCORE {
                    break;
                }
                frames[i] = Some(j);
            }
        }
        lines.push(Run {
            frames: windows[first].frames.start..windows[last].frames.end,
            knots,
            first,
            last,
        });
    }
    // The boundaries between runs, and between the suspect's ends and the runs when material
    // comes before or after them, settled frame by frame.
    if !lines.is_empty() {
        for b in 0..=lines.len() {
            let before = b.checked_sub(1).map(|k| &lines[k]);
            let after = lines.get(b);
            // The suspect's own ends, where the run begins or ends with it: nothing to settle.
            let outer_edge_is_the_run = match (before, after) {
                (None, Some(run)) => run.first == 0,
                (Some(run), None) => run.last + 1 == windows.len(),
                _ => false,
            };
            // (A run of one window may have lost the start of it, or all of it, to the
            // boundary before; a run left with nothing takes no part.)
            let from = before.map_or(0, |run| {
                windows[run.last].frames.start.max(run.frames.start)
            });
            let to = after.map_or(suspect.len(), |run| windows[run.first].frames.end) - 1;
            if outer_edge_is_the_run || from > to {
                continue;
            }
            let left = before.filter(|run| !run.frames.is_empty()).map(|run| Side {
                knots: &run.knots,
                reach: run.frames.start
                    ..windows
                        .get(run.last + 1)
                        .map_or(run.frames.end, |w| w.frames.end),
            });
            let right = after.map(|run| Side {
                knots: &run.knots,
                reach: run
                    .first
                    .checked_sub(1)
                    .map_or(run.frames.start, |k| windows[k].frames.start)
                    ..run.frames.end,
            });
            let (k1, k2) = settle(search, from..=to, left.as_ref(), right.as_ref());
            for (i, frame) in frames.iter_mut().enumerate().take(to + 1).skip(from) {
                let side = if i < k1 {
                    left.as_ref()
                } else if i >= k2 {
                    right.as_ref()
                } else {
                    None
                };
                *frame =
                    side.and_then(|side| map_at(search, i, line_time(side.knots, suspect[i].0)));
            }
            if let Some(run) = b.checked_sub(1).and_then(|k| lines.get_mut(k)) {
                run.frames.end = k1.max(run.frames.start);
            }
            if let Some(run) = lines.get_mut(b) {
                run.frames.start = k2.min(run.frames.end);
            }
        }
    }
    let mut pieces: Vec<TimePiece> = Vec::new();
    // (A run left with a frame or none maps what it has but makes no piece.)
    for run in lines.iter().filter(|r| r.frames.len() >= 2) {
        let knots = &run.knots;
        let title_time = |t: f64| line_time(knots, t);
        // The run as straight pieces: a piece grows over the knots while every knot it spans
        // stays within a frame of its line (so a steady speed is one piece, whatever the
        // noise of the windows' own fits, and a drift is a few).
        let start = suspect[run.frames.start].0;
        let end = suspect[run.frames.end - 1].0;
        let mut points = vec![start];
        points.extend(knots.iter().map(|k| k.0).filter(|&c| c > start && c < end));
        points.push(end);
        let points: Vec<(f64, f64)> = points.into_iter().map(|t| (t, title_time(t))).collect();
        let tolerance = 1.0 / search.fps;
        let mut run_pieces: Vec<TimePiece> = Vec::new();
        let mut from = 0usize;
        while from + 1 < points.len() {
            let mut to = from + 1;
            while to + 1 < points.len() {
                let (t0, u0) = points[from];
                let (t1, u1) = points[to + 1];
                let fits_line = points[from + 1..=to].iter().all(|&(t, u)| {
                    (u0 + (u1 - u0) * (t - t0) / (t1 - t0).max(1e-9) - u).abs() <= tolerance
                });
                if !fits_line {
                    break;
                }
                to += 1;
            }
            run_pieces.push(TimePiece {
                suspect: [points[from].0, points[to].0],
                title: [points[from].1, points[to].1],
            });
            from = to;
        }
        pieces.extend(run_pieces);
    }

    // Scores over the informative frames: the mean correlation of those aligned, and the
    // share aligned.
    let informative: Vec<usize> = (0..suspect.len())
        .filter(|&i| suspect[i].1.iter().any(|v| *v != 0.0))
        .collect();
    let matched: Vec<f64> = informative
        .iter()
        .filter_map(|&i| frames[i].map(|j| dot(&suspect[i].1, &reference[j]) as f64))
        .collect();
    let score = matched.iter().sum::<f64>() / matched.len().max(1) as f64;
    let coverage = matched.len() as f64 / informative.len().max(1) as f64;
    // The longest piece's line gives the headline offset and speed.
    let main = pieces
        .iter()
        .max_by(|a, b| (a.suspect[1] - a.suspect[0]).total_cmp(&(b.suspect[1] - b.suspect[0])))
        .cloned()
        .unwrap_or(TimePiece {
            suspect: [0.0, 0.0],
            title: [0.0, 0.0],
        });
    let speed = main.speed();
    TimeAlignment {
        offset_seconds: main.title[0] - speed * main.suspect[0],
        speed,
        score,
        coverage,
        frames,
        pieces,
    }
}

/// The [`TimeAlignment::strength`] of the mapping `frames` for another set of thumbnails:
/// the correlation of the informative suspect frames with the reference frames they are mapped
/// to, summed, over the number of informative frames (an unmapped frame counts 0).
pub fn strength_of(
    suspect: &[(f64, Vec<f32>)],
    reference: &[Vec<f32>],
    frames: &[Option<usize>],
) -> f64 {
    let mut informative = 0usize;
    let mut sum = 0.0f64;
    for ((_, thumb), j) in suspect.iter().zip(frames) {
        if !thumb.iter().any(|v| *v != 0.0) {
            continue;
        }
        informative += 1;
        if let Some(r) = j.and_then(|j| reference.get(j)) {
            sum += dot(thumb, r) as f64;
        }
    }
    sum / informative.max(1) as f64
}

impl TimeAlignment {
    /// Whether the suspect shows this title: well matched over enough of its frames.
    pub fn shows_title(&self, min_score: f64) -> bool {
        self.score >= min_score && self.coverage >= MIN_COVERAGE
    }

    /// The score used to choose between titles: matched correlation times coverage.
    pub fn strength(&self) -> f64 {
        self.score * self.coverage
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The fast correlation equals the plain one within float rounding, at the thumbnail
    /// size and at lengths that leave a remainder (or nothing) past the lanes.
    #[test]
    fn dot_equals_its_reference() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let size = crate::fingerprint::THUMB_WIDTH * crate::fingerprint::THUMB_HEIGHT;
        for len in [0, 1, 15, 16, 17, 100, size, size + 3] {
            for _ in 0..50 {
                let a: Vec<f32> = (0..len).map(|_| rng.gen_range(-255.0..255.0)).collect();
                let b: Vec<f32> = (0..len).map(|_| rng.gen_range(-255.0..255.0)).collect();
                let (a, b) = if len > 1 {
                    (normalise(&a), normalise(&b))
                } else {
                    (a, b)
                };
                let magnitude: f32 = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum();
                let (fast, plain) = (dot(&a, &b), dot_reference(&a, &b));
                assert!(
                    (fast - plain).abs() <= 1e-5 * magnitude + 1e-6,
                    "{len}: {fast} against {plain}"
                );
            }
            // Unequal lengths: both read the shorter.
            let a: Vec<f32> = (0..len + 5).map(|k| k as f32).collect();
            let b: Vec<f32> = (0..len).map(|k| 1.0 + k as f32).collect();
            let (fast, plain) = (dot(&a, &b), dot_reference(&a, &b));
            assert!((fast - plain).abs() <= 1e-5 * plain.abs() + 1e-6, "{len}");
        }
    }

    /// A slowly changing scene: each frame drifts from the previous one, with a new shot
    /// every `shot` frames.
    fn reference(n: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut cur: Vec<f32> = (0..64).map(|_| rng.gen_range(0.0..255.0)).collect();
        (0..n)
            .map(|i| {
                if i % 90 == 0 {
                    cur = (0..64).map(|_| rng.gen_range(0.0..255.0)).collect();
                }
                for v in cur.iter_mut() {
                    *v = (*v + rng.gen_range(-20.0..20.0)).clamp(0.0, 255.0);
                }
                cur.clone()
            })
            .collect()
    }

    /// A suspect made of `(suspect time, title time or None)` frames, brightened.
    fn suspect(
        raw: &[Vec<f32>],
        fps: f64,
        map: &[(f64, Option<f64>)],
        seed: u64,
    ) -> Vec<(f64, Vec<f32>)> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        map.iter()
            .map(|&(t, u)| {
                let thumb: Vec<f32> = match u {
                    Some(u) => raw[(u * fps).round() as usize]
                        .iter()
                        .map(|v| v * 1.2 + 10.0)
                        .collect(),
                    None => (0..64).map(|_| rng.gen_range(0.0..255.0)).collect(),
                };
                (t, normalise(&thumb))
            })
            .collect()
    }

    fn norm(raw: &[Vec<f32>]) -> Vec<Vec<f32>> {
        raw.iter().map(|t| normalise(t)).collect()
    }

    /// Share of frames mapped to within one frame of the truth (of those that have one).
    fn accuracy(a: &TimeAlignment, map: &[(f64, Option<f64>)], fps: f64) -> f64 {
        let truth: Vec<(usize, usize)> = map
            .iter()
            .enumerate()
            .filter_map(|(i, (_, u))| u.map(|u| (i, (u * fps).round() as usize)))
            .collect();
        let good = truth
            .iter()
            .filter(|&&(i, j)| a.frames[i].is_some_and(|f| f.abs_diff(j) <= 1))
            .count();
        good as f64 / truth.len() as f64
    }

    #[test]
    fn finds_an_excerpt_at_another_frame_rate_and_brightness() {
        let raw = reference(500, 5);
        // The excerpt starts at reference frame 200 (8 s at 25 fps) and is sampled at 30 fps.
        let map: Vec<(f64, Option<f64>)> = (0..150)
            .map(|k| (k as f64 / 30.0, Some(k as f64 / 30.0 + 8.0)))
            .collect();
        let a = align(&suspect(&raw, 25.0, &map, 1), &norm(&raw), 25.0).expect("aligned");
        assert!(
            (a.offset_seconds - 8.0).abs() < 0.03,
            "{}",
            a.offset_seconds
        );
        assert!((a.speed - 1.0).abs() < 0.01, "{}", a.speed);
        assert!(a.score > 0.99 && a.coverage > 0.99);
        assert!(accuracy(&a, &map, 25.0) > 0.99);
    }

    /// A first look finds a copy whose first part, however lively, is other material: one
    /// probe lies in each third of the suspect. On a sparse reference (every fourth frame) the
    /// copy still looks like a match; unrelated frames do not.
    #[test]
    fn a_first_look_passes_over_material_put_in_front() {
        let raw = reference(1500, 9);
        // 20 s of random frames (the liveliest there are), then 40 s of the title from 10 s.
        let map: Vec<(f64, Option<f64>)> = (0..1500)
            .map(|k| {
                let t = k as f64 / 25.0;
                (t, (t >= 20.0).then_some(t - 10.0))
            })
            .collect();
        let copy = suspect(&raw, 25.0, &map, 2);
        let probes = Probes::of(&copy);
        assert_eq!(probes.0.len(), PROBE_PARTS);
        let sparse: Vec<Vec<f32>> = norm(&raw).into_iter().step_by(4).collect();
        let look = anchor_score(&copy, &probes, &sparse, 25.0 / 4.0).expect("a look");
        assert!(look > 0.9, "{look}");
        let unrelated: Vec<(f64, Option<f64>)> =
            (0..500).map(|k| (k as f64 / 25.0, None)).collect();
        let noise = suspect(&raw, 25.0, &unrelated, 3);
        let look = anchor_score(&noise, &Probes::of(&noise), &sparse, 25.0 / 4.0).expect("a look");
        assert!(look < 0.5, "{look}");
        assert_eq!(anchor_score(&[], &Probes::of(&[]), &sparse, 25.0), None);
    }

    #[test]
    fn a_copy_sped_up_or_slowed_down_is_followed() {
        let raw = reference(2500, 6);
        for speed in [0.87, 0.96, 1.05, 1.12] {
            // 60 s of suspect time from title time 15 s, re-timed at 25 fps.
            let map: Vec<(f64, Option<f64>)> = (0..1500)
                .map(|k| (k as f64 / 25.0, Some(15.0 + speed * k as f64 / 25.0)))
                .collect();
            let a = align(&suspect(&raw, 25.0, &map, 2), &norm(&raw), 25.0).expect("aligned");
            assert!(
                (a.speed - speed).abs() < 0.005,
                "speed {speed}: {}",
                a.speed
            );
            assert!(
                (a.offset_seconds - 15.0).abs() < 0.1,
                "{}",
                a.offset_seconds
            );
            let acc = accuracy(&a, &map, 25.0);
            assert!(acc > 0.97, "speed {speed}: accuracy {acc}");
            assert_eq!(a.pieces.len(), 1, "{:?}", a.pieces);
        }
    }

    #[test]
    fn drift_cuts_and_inserted_material_are_followed() {
        let raw = reference(3000, 7);
        let mut map: Vec<(f64, Option<f64>)> = Vec::new();
        let mut t = 0.0;
        // 20 s drifting from 1.0x to 1.06x from title time 10 s...
        let mut u = 10.0;
        for k in 0..500 {
            map.push((t, Some(u)));
            t += 0.04;
            u += 0.04 * (1.0 + 0.06 * k as f64 / 500.0);
        }
        // ... 10 s of an ad ...
        for _ in 0..250 {
            map.push((t, None));
            t += 0.04;
        }
        // ... then the title again, 30 s further on (a scene removed), at 1.0x.
        u += 30.0;
        for _ in 0..500 {
            map.push((t, Some(u)));
            t += 0.04;
            u += 0.04;
        }
        let a = align(&suspect(&raw, 25.0, &map, 3), &norm(&raw), 25.0).expect("aligned");
        let acc = accuracy(&a, &map, 25.0);
        assert!(acc > 0.95, "accuracy {acc}");
        // The ad's frames are left unaligned (a window overlapping its edge may map a few).
        let ad_mapped = map
            .iter()
            .zip(&a.frames)
            .filter(|((_, u), f)| u.is_none() && f.is_some())
            .count();
        assert!(ad_mapped <= 100, "{ad_mapped} ad frames aligned");
        assert!(a.pieces.len() >= 2, "a cut: {:?}", a.pieces);
    }

    /// A scene that barely changes (a test card with a moving detail, a studio shot): every
    /// frame is one fixed picture plus a small part that wanders, so frames seconds apart
    /// still correlate well.
    fn steady_reference(n: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let base: Vec<f32> = (0..64).map(|_| rng.gen_range(0.0..255.0)).collect();
        let mut detail: Vec<f32> = (0..64).map(|_| rng.gen_range(-60.0..60.0)).collect();
        (0..n)
            .map(|_| {
                for v in detail.iter_mut() {
                    *v = (*v + rng.gen_range(-12.0..12.0)).clamp(-60.0, 60.0);
                }
                base.iter().zip(&detail).map(|(b, d)| b + d).collect()
            })
            .collect()
    }

    /// Frames mapped more than a frame away from the title frame they show, or mapped though
    /// they show none.
    fn misplaced(a: &TimeAlignment, map: &[(f64, Option<f64>)], fps: f64) -> usize {
        map.iter()
            .zip(&a.frames)
            .filter(|((_, u), f)| match (u, f) {
                (Some(u), Some(f)) => f.abs_diff((u * fps).round() as usize) > 1,
                (None, Some(_)) => true,
                _ => false,
            })
            .count()
    }

    /// A cut inside a window, in a scene whose pictures on either side look alike: the window
    /// straddling it fits one side's line as a whole, but each of its frames is mapped by the
    /// line it matches, so none past the cut is mapped to a title frame it does not show (the
    /// frames of a slowed copy of a test card with a scene removed were read as the unit
    /// before the cut). The same with material inserted at the cut, and with material before
    /// and after the title (whose last window must stay mapped).
    #[test]
    fn frames_beside_a_cut_follow_the_side_they_show() {
        let raw = steady_reference(2000, 21);
        for (inserted, around) in [(0usize, 0usize), (60, 0), (0, 250), (60, 130)] {
            let mut map: Vec<(f64, Option<f64>)> = Vec::new();
            let mut t = 0.0;
            for _ in 0..around {
                map.push((t, None));
                t += 0.04 * 1.07;
            }
            // Title 0-15 s, slowed 7 %...
            for k in 0..375 {
                map.push((t, Some(k as f64 / 25.0)));
                t += 0.04 * 1.07;
            }
            // ... perhaps something else ...
            for _ in 0..inserted {
                map.push((t, None));
                t += 0.04 * 1.07;
            }
            // ... then from title time 21 s on (6 s removed) ...
            for k in 0..500 {
                map.push((t, Some(21.0 + k as f64 / 25.0)));
                t += 0.04 * 1.07;
            }
            // ... and perhaps something else after it.
            for _ in 0..around {
                map.push((t, None));
                t += 0.04 * 1.07;
            }
            let a = align(&suspect(&raw, 25.0, &map, 3), &norm(&raw), 25.0).expect("aligned");
            let case = format!("inserted {inserted}, around {around}: {:?}", a.pieces);
            assert_eq!(misplaced(&a, &map, 25.0), 0, "{case}");
            let acc = accuracy(&a, &map, 25.0);
            assert!(acc > 0.98, "{case}: accuracy {acc}");
            // The title's last frame is mapped, and the last piece ends there.
            let last = map
                .iter()
                .rposition(|(_, u)| u.is_some())
                .expect("title frames");
            assert!(a.frames[last].is_some(), "{case}");
            let end = a.pieces.last().map_or(0.0, |p| p.suspect[1]);
            assert!((end - map[last].0).abs() < 0.1, "{case}");
        }
    }

    /// A scene cut out and other material (or black) put in its place, in pictures that barely
    /// change: past the inserted material the title resumes a couple of seconds further on
    /// than its line before predicts, where a place on that line still matches nearly as
    /// well. Followed from one side of the insert, the frames on the other must not be pulled
    /// onto this side's line (a copy with 10 s cut and 8 s inserted lost a tenth of its units
    /// so), also when the insert's edge falls inside a window (8.6 s) or the insert is black;
    /// the first four cases fail without the look past unaligned windows. Material put in
    /// without a cut, or the title resuming beyond the prediction's reach (the last two cases,
    /// which it passed already, kept as guards), make exactly one new line.
    #[test]
    fn a_cut_hidden_behind_inserted_material_is_followed() {
        let raw = steady_reference(2500, 33);
        let cases = [
            (10.0, 8.0, false),
            (6.0, 4.0, false),
            (10.0, 8.6, false),
            (10.0, 8.0, true),
            (4.0, 8.0, false),
            (0.0, 8.0, false),
        ];
        for (removed, inserted, black) in cases {
            let mut map: Vec<(f64, Option<f64>)> = Vec::new();
            let mut t = 0.0;
            // Title 0-30 s, ...
            for k in 0..750 {
                map.push((t, Some(k as f64 / 25.0)));
                t += 0.04;
            }
            // ... something else in place of what was removed ...
            for _ in 0..(inserted * 25.0f64).round() as usize {
                map.push((t, None));
                t += 0.04;
            }
            // ... then the title again, from 30 s + what was removed, for 40 s.
            for k in 0..1000 {
                map.push((t, Some(30.0 + removed + k as f64 / 25.0)));
                t += 0.04;
            }
            let mut frames = suspect(&raw, 25.0, &map, 5);
            if black {
                for ((_, thumb), (_, u)) in frames.iter_mut().zip(&map) {
                    if u.is_none() {
                        *thumb = normalise(&[16.0; 64]);
                    }
                }
            }
            let a = align(&frames, &norm(&raw), 25.0).expect("aligned");
            let case = format!(
                "{removed} s removed, {inserted} s inserted (black {black}): {:?}",
                a.pieces
            );
            let acc = accuracy(&a, &map, 25.0);
            assert!(acc > 0.98, "{case}: accuracy {acc}");
            // (Black frames carry no picture: a line may take them, whichever.)
            if !black {
                assert!(misplaced(&a, &map, 25.0) <= 5, "{case}");
            }
            assert_eq!(a.pieces.len(), 2, "{case}");
        }
    }

    #[test]
    fn a_stretch_that_matches_poorly_inside_a_steady_copy_is_mapped_by_its_line() {
        let raw = reference(2500, 9);
        // 60 s from title time 10 s; suspect seconds 20-36 read so noisily (fine detail lost
        // to a crop and a rescale) that no window of them reaches the window score.
        let map: Vec<(f64, Option<f64>)> = (0..1500)
            .map(|k| (k as f64 / 25.0, Some(10.0 + k as f64 / 25.0)))
            .collect();
        let mut s = suspect(&raw, 25.0, &map, 5);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for (k, (_, thumb)) in s.iter_mut().enumerate().take(900).skip(500) {
            let noisy: Vec<f32> = raw[250 + k]
                .iter()
                .map(|v| v + rng.gen_range(-300.0..300.0))
                .collect();
            *thumb = normalise(&noisy);
        }
        let a = align(&s, &norm(&raw), 25.0).expect("aligned");
        let noisy_mapped = (500..900).filter(|&i| a.frames[i].is_some()).count();
        assert_eq!(noisy_mapped, 400, "the poorly matching stretch is mapped");
        let acc = accuracy(&a, &map, 25.0);
        assert!(acc > 0.9, "accuracy {acc}");
        assert_eq!(a.pieces.len(), 1, "{:?}", a.pieces);
    }

    #[test]
    fn flat_or_empty_input_does_not_align() {
        let norm_ref = norm(&reference(50, 5));
        assert_eq!(align(&[], &norm_ref, 25.0), None);
        let flat = vec![(0.0, normalise(&[7.0; 64]))];
        assert_eq!(align(&flat, &norm_ref, 25.0), None);
    }

    #[test]
    fn unrelated_material_does_not_align() {
        let raw = reference(1000, 8);
        let other = reference(200, 99);
        let map: Vec<(f64, Option<f64>)> = (0..200)
            .map(|k| (k as f64 / 25.0, Some(k as f64 / 25.0)))
            .collect();
        let s = suspect(&other, 25.0, &map, 4);
        let found = align(&s, &norm(&raw), 25.0);
        assert!(
            found.as_ref().is_none_or(|a| !a.shows_title(0.6)),
            "{found:?}"
        );
    }
}
