//! Leak extraction ("detection is informed": the analysis knows the title and both of its
//! variants): which title a suspect copy shows, where in it and through what geometry, and
//! for each unit whether the copy lies nearer variant A or variant B, as a soft value.
//! Matching those values against sessions' codes is [`crate::matching`]'s job.
//!
//! The passes, memory-bounded whatever the suspect's length ([`extract`] runs them in turn):
//! 1. [`survey`]: decode the suspect once, keeping a thumbnail and the analysis gray of every
//!    frame (spilled to the work folder, [`spill`]) and a few full frames spread over it;
//! 2. [`identify`]: cut the suspect's black bars away and find the title and the time mapping
//!    against the stored reference thumbnails ([`timing`]);
//! 3. [`locate`]: decode the reference units of those few frames (variant A) and search the
//!    crop that maps the suspect's picture onto the reference frame ([`spatial`]);
//! 4. [`compare`]: read the suspect's frames back and, unit by unit, the title's reference
//!    frames ([`reference`]: the variants' midpoint and half difference, from the reference
//!    store or decoded); per frame fit the suspect to the midpoint (brightness, contrast)
//!    and correlate the residual with the half difference ([`detect`]).

pub mod detect;
pub mod fit;
mod reference;
pub mod spatial;
pub mod spill;
pub mod timing;

use std::path::{Path, PathBuf};

use formats::case::{Alignment, Flip, TimePiece};
use formats::layout::{Layout, Variant};
use formats::package::PackageManifest;
use rayon::prelude::*;

use crate::fingerprint::{self, Thumbnails, THUMB_HEIGHT, THUMB_WIDTH};
use crate::frame::{analysis_gray, resample, shrink, warp, Gray, Quad, Rect};
use crate::media::decode::{FrameReader, Limits};
use crate::media::MediaError;
use spill::{SpillReader, SpillWriter};

/// Width of the grid on which suspect and reference are compared.
pub const GRID_WIDTH: usize = 192;
/// Frames used for the spatial search.
const SPATIAL_FRAMES: usize = 10;
/// Largest spill of the suspect's analysis frames (about 25 minutes of 16:9 video at 25 fps);
/// a longer suspect is decoded twice instead.
const SPILL_LIMIT_BYTES: u64 = 4 << 30;
/// Below this mean thumbnail correlation a title is not considered shown by the suspect.
pub const MIN_TIME_SCORE: f64 = 0.6;
/// A reading that matches this well (mean thumbnail correlation times the share of the frames
/// aligned) is clear: mirrored readings are only checked against its time map, not searched.
/// It must be high: content that is nearly symmetric (test cards, graphics, landscapes) can
/// match upside down at 0.94 over the whole copy, at the wrong times.
const CLEAR_TIME_STRENGTH: f64 = 0.97;
/// How much better a reading in another orientation must match (a clear reading's time map
/// to be searched; the best reading so far to replace it).
const MIRROR_MARGIN: f64 = 0.005;
/// Sizes (of the title frame's width and height) of the parts of the frame an off-centre crop
/// may show, looked for when no reading of the whole frame finds the title. A centred crop
/// needs none: the whole frame's thumbnails still match a copy cropped by about 10 % a side
/// around the centre. A crop from a corner or an edge moves the picture against them by its
/// whole margin, and misses them.
const VIEW_SCALES: [f64; 2] = [0.85, 0.7];
/// Readings of parts of the frame aligned in full, chosen by their first look
/// ([`timing::anchor_score`]): the best of each of this many titles (those whose best first
/// looks are best), and of each such title its second best too (another part of the frame or
/// orientation) in case the best does not align.
const VIEW_TITLES: usize = 2;
const VIEWS_PER_TITLE: usize = 2;
/// The first look at a part of the frame compares every this many reference frames.
const PROBE_STRIDE: usize = 4;
/// Below this first-look score a reading is not aligned in full: the copies cut off-centre of
/// the robustness bench looked at 0.4-0.7 at their nearest part of the frame, an unrelated
/// clip at about 0.1.
const MIN_LOOK: f64 = 0.3;

/// Which title the suspect shows, when, and its picture area and orientation.
pub struct Identified {
    /// The suspect's picture area without bars, as fractions of its frame.
    pub active: Rect,
    /// How the picture is mirrored relative to the title.
    pub flip: Flip,
    /// The title's index in the titles searched.
    pub title: usize,
    pub time: timing::TimeAlignment,
    /// The part of the title's frame the reading compared the suspect with: the whole frame,
    /// or for a copy cropped off-centre the part found ([`views`]); where the search for the
    /// exact crop starts.
    pub view: Rect,
}

impl Identified {
    /// The area of a suspect frame to sample so that it reads as the title does (mirroring
    /// undone).
    fn sampled(&self) -> Rect {
        self.active.flipped(self.flip)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error("reference data of title {video_id} is unreadable: {reason}")]
    Reference { video_id: String, reason: String },
    #[error("cannot use the work folder {path}: {source}")]
    Work {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ExtractError {
    pub fn code(&self) -> &'static str {
        match self {
            ExtractError::Media(e) => e.code(),
            ExtractError::Reference { .. } => "reference_unreadable",
            ExtractError::Work { .. } => "io_error",
        }
    }

    /// True when the suspect file is at fault (not this installation).
    pub fn is_input_error(&self) -> bool {
        matches!(self, ExtractError::Media(e) if e.is_input_error())
    }
}

/// A packaged title as extraction needs it.
pub struct ReferenceTitle {
    pub video_id: String,
    pub layout: Layout,
    pub package: PackageManifest,
    pub thumbnails: Thumbnails,
}

impl ReferenceTitle {
    /// Reads `package.json` and the reference thumbnails of a packaged title.
    pub fn load(video_id: &str, layout: Layout) -> Result<ReferenceTitle, ExtractError> {
        let bad = |reason: String| ExtractError::Reference {
            video_id: video_id.to_string(),
            reason,
        };
        let package = PackageManifest::read(&layout).map_err(|e| bad(e.to_string()))?;
        let thumbs = std::fs::read(layout.thumbnails()).map_err(|e| bad(e.to_string()))?;
        let thumbnails = fingerprint::parse(&thumbs).map_err(|e| bad(e.to_string()))?;
        Ok(ReferenceTitle {
            video_id: video_id.to_string(),
            layout,
            package,
            thumbnails,
        })
    }

    fn fps(&self) -> f64 {
        let [n, d] = self.package.video.frame_rate;
        n as f64 / d.max(1) as f64
    }

    /// The 1-based unit of reference frame `index`.
    fn unit_of(&self, index: usize) -> u32 {
        (index / self.package.video.unit_frames.max(1) as usize) as u32 + 1
    }
}

/// What a suspect carries of a title's watermark.
#[derive(Debug, Clone, PartialEq)]
pub struct Extraction {
    pub video_id: String,
    /// One value per unit of the title: positive when the copy looks like variant B, negative
    /// for A, 0 when the unit was not observed.
    pub soft: Vec<f64>,
    /// Per unit, how strongly the mark can read there (see
    /// [`crate::coalition::Readings::strength`]); 0 where not observed.
    pub strength: Vec<f64>,
    pub units_observed: u32,
    pub alignment: Alignment,
    /// How the title's session codes are built.
    pub code: formats::codes::CodeScheme,
}

/// Progress of an extraction, 0 to 1, as it goes (called often: keep it cheap).
pub type Progress<'a> = &'a (dyn Fn(f64) + Sync);

/// Share of the work done when the first pass ends.
const SURVEY_SHARE: f64 = 0.4;

/// What the first pass keeps of the suspect.
pub struct Survey {
    fps: f64,
    size: [u32; 2],
    /// (time, full-frame gray at 4x thumbnail size), one per frame.
    thumbs: Vec<(f64, Gray)>,
    /// Full-frame grays of frames spread over the file, by frame index.
    samples: Vec<(usize, Gray)>,
    /// Every frame's full-frame gray, for the second pass (`None`: too long to keep).
    frames: Option<SpillReader>,
}

/// Pass 1: the suspect decoded once.
pub fn survey(
    suspect: &Path,
    work: &Path,
    limits: &Limits,
    progress: Progress,
) -> Result<Survey, ExtractError> {
    let mut reader = FrameReader::open(suspect, limits)?;
    let info = reader.info().clone();
    let fps = info.fps();
    let expected = (info.duration_seconds * fps).round().max(1.0) as usize;
    let every = (expected / (SPATIAL_FRAMES * 3)).max(1);
    let spill_path = work.join("suspect-frames");
    let work_error = |source| ExtractError::Work {
        path: spill_path.clone(),
        source,
    };
    let mut spill = SpillWriter::create(&spill_path, SPILL_LIMIT_BYTES).map_err(work_error)?;
    let mut thumbs = Vec::new();
    let mut samples = Vec::new();
    let mut index = 0usize;
    while let Some(f) = reader.next_frame()? {
        let full = analysis_gray(&f);
        // Thumbnails of the whole frame at 4x the stored size, so that bars can be cut away
        // before they are reduced to the stored size.
        thumbs.push((
            index as f64 / fps,
            shrink(&full, THUMB_HEIGHT * 4, THUMB_WIDTH * 4),
        ));
        spill.push(&full).map_err(work_error)?;
        if index % every == every / 2 {
            samples.push((index, full));
        }
        index += 1;
        progress(SURVEY_SHARE * (index as f64 / expected as f64).min(1.0));
    }
    Ok(Survey {
        fps,
        size: [info.width, info.height],
        thumbs,
        samples,
        frames: spill.finish().map_err(work_error)?,
    })
}

/// The suspect's frames for the second pass: read back from the spill, or decoded again.
enum SuspectFrames {
    Spilled(SpillReader),
    Decoded(Box<FrameReader>),
}

impl SuspectFrames {
    fn next_gray(&mut self, work: &Path) -> Result<Option<Gray>, ExtractError> {
        match self {
            SuspectFrames::Spilled(r) => r.next_frame().map_err(|source| ExtractError::Work {
                path: work.to_path_buf(),
                source,
            }),
            SuspectFrames::Decoded(r) => Ok(r.next_frame()?.as_ref().map(analysis_gray)),
        }
    }
}

/// A title's stored thumbnails, each normalised for comparison.
fn reference_thumbs(t: &Thumbnails) -> Vec<Vec<f32>> {
    t.frames
        .outer_iter()
        .map(|f| timing::normalise(&f.iter().map(|&v| v as f32).collect::<Vec<_>>()))
        .collect()
}

/// The grid size for a picture of `aspect` (width / height): (rows, columns).
fn grid_size(aspect: f64) -> (usize, usize) {
    let rows = (GRID_WIDTH as f64 / aspect).round().clamp(48.0, 320.0) as usize;
    (rows, GRID_WIDTH)
}

/// The grid on which the suspect and the part `placement` of a `width` x `height` title are
/// compared, (rows, columns): that part's own proportions, whatever the suspect's. A copy
/// squeezed into a letterbox (or pillarbox) is stretched back rather than the reference
/// squeezed: sampling the reference more coarsely in one direction than the other left sharp
/// edges aliased differently on the two sides, enough to flip units of hard-edged content.
fn comparison_grid(placement: &Quad, width: u32, height: u32) -> (usize, usize) {
    grid_size(placement.aspect(width, height))
}

/// Which title the suspect shows and when: the suspect's picture area without bars, the
/// title (index into `titles`) and the time mapping. `None`: no title matches.
pub fn identify(survey: &Survey, titles: &[ReferenceTitle]) -> Option<Identified> {
    let bar_frames: Vec<&Gray> = survey
        .thumbs
        .iter()
        .step_by((survey.thumbs.len() / 60).max(1))
        .map(|(_, g)| g)
        .collect();
    let active = spatial::active_area(&bar_frames);
    let references: Vec<Vec<Vec<f32>>> = titles
        .iter()
        .map(|t| reference_thumbs(&t.thumbnails))
        .collect();
    let mut best: Option<Identified> = None;
    for flip in Flip::ALL {
        let sampled = active.flipped(*flip);
        let suspect_thumbs = suspect_thumbs(survey, sampled);
        // A clear reading (the copy as it is comes first) is only searched again mirrored
        // when the mirrored thumbnails match its time map better: content that is nearly
        // symmetric matches both ways, the true orientation better.
        if let Some(b) = best
            .as_ref()
            .filter(|b| b.time.strength() >= CLEAR_TIME_STRENGTH)
        {
            let mirrored =
                timing::strength_of(&suspect_thumbs, &references[b.title], &b.time.frames);
            if mirrored <= b.time.strength() + MIRROR_MARGIN {
                continue;
            }
        }
        // The title whose reference thumbnails match best.
        for (i, (title, reference)) in titles.iter().zip(&references).enumerate() {
            let Some(time) = timing::align(&suspect_thumbs, reference, title.fps()) else {
                continue;
            };
            tracing::debug!(
                flip = %flip,
                title = %title.video_id,
                score = time.score,
                coverage = time.coverage,
                "extract: reading aligned"
            );
            // A reading in another orientation must match clearly better (nearly symmetric
            // content matches both ways); titles in one orientation compete as they are.
            if time.shows_title(MIN_TIME_SCORE)
                && best.as_ref().is_none_or(|b| {
                    let margin = if b.flip == *flip { 0.0 } else { MIRROR_MARGIN };
                    time.strength() > b.time.strength() + margin
                })
            {
                best = Some(Identified {
                    active,
                    flip: *flip,
                    title: i,
                    time,
                    view: Rect::FULL,
                });
            }
        }
    }
    drop(references);
    best.or_else(|| identify_in_views(survey, titles, active))
}

/// The parts of the title's frame (see [`VIEW_SCALES`]) read when the whole frame is not
/// found: each size anchored at every corner and edge, and the smaller also at the centre.
fn views() -> Vec<Rect> {
    let mut out = Vec::new();
    for scale in VIEW_SCALES {
        for ay in [0.0, 0.5, 1.0] {
            for ax in [0.0, 0.5, 1.0] {
                if ax == 0.5 && ay == 0.5 && scale > 0.8 {
                    continue;
                }
                let (x0, y0) = ((1.0 - scale) * ax, (1.0 - scale) * ay);
                out.push(Rect {
                    x0,
                    y0,
                    x1: x0 + scale,
                    y1: y0 + scale,
                });
            }
        }
    }
    out
}

/// A suspect's normalised thumbnails, each with its time in seconds.
type SuspectThumbs = Vec<(f64, Vec<f32>)>;

/// The suspect's thumbnails sampled from `area` of its frames, normalised.
fn suspect_thumbs(survey: &Survey, area: Rect) -> SuspectThumbs {
    survey
        .thumbs
        .iter()
        .map(|(t, g)| {
            let small = resample(g, area, THUMB_HEIGHT, THUMB_WIDTH);
            (
                *t,
                timing::normalise(&small.iter().copied().collect::<Vec<_>>()),
            )
        })
        .collect()
}

/// A title's thumbnails cut to `view` of its frame and normalised, every `stride`-th frame.
fn view_thumbs(thumbnails: &Thumbnails, view: Rect, stride: usize) -> Vec<Vec<f32>> {
    thumbnails
        .frames
        .outer_iter()
        .step_by(stride.max(1))
        .map(|f| {
            let cut = resample(&f.mapv(f32::from), view, THUMB_HEIGHT, THUMB_WIDTH);
            timing::normalise(&cut.iter().copied().collect::<Vec<_>>())
        })
        .collect()
}

/// A first look at the suspect in one orientation against one part of a title's frame.
#[derive(Clone, Copy)]
struct Look {
    score: f64,
    title: usize,
    view: Rect,
    flip: Flip,
}

/// A copy cropped off-centre: the suspect (in every orientation) read against each of the
/// [`views`] of each title. A first look at every reading ([`timing::anchor_score`], on a
/// sparse reference, one orientation at a time) picks a few (see [`VIEW_TITLES`]) that look
/// like a match at all ([`MIN_LOOK`]); those are aligned in full, and the best that shows a
/// title wins, a reading in another orientation than the best so far having to match clearly
/// better (as on the whole frame). `None`: no part of any title is found either.
fn identify_in_views(
    survey: &Survey,
    titles: &[ReferenceTitle],
    active: Rect,
) -> Option<Identified> {
    let views = views();
    let probes = timing::Probes::of(&suspect_thumbs(survey, active));
    let mut looks: Vec<Look> = Vec::new();
    for flip in Flip::ALL {
        let thumbs = suspect_thumbs(survey, active.flipped(*flip));
        for (i, title) in titles.iter().enumerate() {
            let fps = title.fps() / PROBE_STRIDE as f64;
            let found: Vec<Look> = views
                .par_iter()
                .filter_map(|&view| {
                    let sparse = view_thumbs(&title.thumbnails, view, PROBE_STRIDE);
                    let score = timing::anchor_score(&thumbs, &probes, &sparse, fps)?;
                    Some(Look {
                        score,
                        title: i,
                        view,
                        flip: *flip,
                    })
                })
                .collect();
            looks.extend(found);
        }
    }
    looks.retain(|l| l.score >= MIN_LOOK);
    looks.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut chosen: Vec<Look> = Vec::new();
    let mut chosen_titles: Vec<usize> = Vec::new();
    for look in looks {
        let known = chosen_titles.contains(&look.title);
        let of_title = chosen.iter().filter(|c| c.title == look.title).count();
        if (known && of_title < VIEWS_PER_TITLE) || (!known && chosen_titles.len() < VIEW_TITLES) {
            if !known {
                chosen_titles.push(look.title);
            }
            chosen.push(look);
        }
    }
    let mut best: Option<Identified> = None;
    for look in chosen {
        let title = &titles[look.title];
        let thumbs = suspect_thumbs(survey, active.flipped(look.flip));
        let reference = view_thumbs(&title.thumbnails, look.view, 1);
        let aligned = timing::align(&thumbs, &reference, title.fps());
        tracing::debug!(
            flip = %look.flip,
            title = %title.video_id,
            view = ?look.view,
            look = look.score,
            score = aligned.as_ref().map(|t| t.score),
            coverage = aligned.as_ref().map(|t| t.coverage),
            "extract: part of the frame read"
        );
        let Some(time) = aligned else {
            continue;
        };
        if time.shows_title(MIN_TIME_SCORE)
            && best.as_ref().is_none_or(|b| {
                let margin = if b.flip == look.flip {
                    0.0
                } else {
                    MIRROR_MARGIN
                };
                time.strength() > b.time.strength() + margin
            })
        {
            best = Some(Identified {
                active,
                flip: look.flip,
                title: look.title,
                time,
                view: look.view,
            });
        }
    }
    best
}

/// The time map again once the placement is known, against the reference thumbnails cut to
/// the part of the title the suspect shows. The first alignment compared the suspect's
/// picture with whole reference frames; a crop or a turn weakens that comparison, on slow or
/// repetitive content enough for a drifting map to fit a little better than the true one.
/// Kept when it matches better (both maps weighed against the placed reference); `None` for a
/// copy that shows the whole frame.
fn realign(
    survey: &Survey,
    title: &ReferenceTitle,
    found: &Identified,
    placement: &Quad,
) -> Option<timing::TimeAlignment> {
    let bounds = placement.bounds();
    let whole = placement.as_rect().is_some()
        && bounds.x0 <= 0.01
        && bounds.y0 <= 0.01
        && bounds.x1 >= 0.99
        && bounds.y1 >= 0.99;
    if whole {
        return None;
    }
    let reference: Vec<Vec<f32>> = title
        .thumbnails
        .frames
        .outer_iter()
        .map(|f| {
            let cut = warp(&f.mapv(f32::from), placement, THUMB_HEIGHT, THUMB_WIDTH);
            timing::normalise(&cut.iter().copied().collect::<Vec<_>>())
        })
        .collect();
    let sampled = found.sampled();
    let suspect = suspect_thumbs(survey, sampled);
    let time = timing::align(&suspect, &reference, title.fps())?;
    // Both maps weighed against the same (placed) reference thumbnails, frames a map leaves
    // out counting nothing.
    let before = timing::strength_of(&suspect, &reference, &found.time.frames);
    let after = time.strength();
    tracing::debug!(
        before,
        after,
        "extract: time map realigned against the placed reference"
    );
    (after > before).then_some(time)
}

/// Where in the title's frame the suspect's picture lies: the crop of the reference frame,
/// searched on the sampled frames against variant A of their reference frames and of those
/// frames' neighbours in the same unit.
pub fn locate(
    survey: &Survey,
    title: &ReferenceTitle,
    found: &Identified,
    work: &Path,
    limits: &Limits,
) -> Result<Quad, ExtractError> {
    let (active, sampled, time) = (found.active, found.sampled(), &found.time);
    let unit_frames = title.package.video.unit_frames.max(1) as usize;
    let aspect = active.width() * survey.size[0] as f64 / (active.height() * survey.size[1] as f64);
    let (rows, cols) = grid_size(aspect);
    let mapped: Vec<(&Gray, usize)> = survey
        .samples
        .iter()
        .filter_map(|(index, g)| Some((g, time.frames.get(*index).copied().flatten()?)))
        .take(SPATIAL_FRAMES)
        .collect();
    // Each unit the samples fall in, decoded once (in parallel).
    let mut units: Vec<u32> = mapped.iter().map(|&(_, r)| title.unit_of(r)).collect();
    units.sort_unstable();
    units.dedup();
    let decoded = units
        .par_iter()
        .map(|&unit| reference::decode_unit(title, Variant::A, unit, work, limits))
        .collect::<Result<Vec<Vec<Gray>>, ExtractError>>()?;
    let suspects: Vec<Gray> = mapped
        .iter()
        .map(|&(g, _)| resample(g, sampled, rows / 2, cols / 2))
        .collect();
    let pairs: Vec<spatial::Pair> = mapped
        .iter()
        .zip(&suspects)
        .filter_map(|(&(_, r), suspect)| {
            let frames = &decoded[units.binary_search(&title.unit_of(r)).ok()?];
            let at = r % unit_frames;
            let references: Vec<&Gray> = frames
                .iter()
                .enumerate()
                .filter(|(i, _)| i.abs_diff(at) <= 1)
                .map(|(_, f)| f)
                .collect();
            (!references.is_empty()).then_some(spatial::Pair {
                suspect,
                references,
            })
        })
        .collect();
    let video = &title.package.video;
    let title_aspect = video.width.max(1) as f64 / video.height.max(1) as f64;
    Ok(spatial::find_placement(&pairs, title_aspect, found.view))
}

/// What the comparison pass found: soft values per unit, the units covered.
struct Compared {
    soft: Vec<f64>,
    strength: Vec<f64>,
    first_unit: u32,
    last_unit: u32,
}

/// Pass 2: every suspect frame (read back from the spill, or decoded again) compared with
/// its reference frame (or a neighbour in the unit that fits better), unit by unit.
fn compare(
    survey: &mut Survey,
    suspect: &Path,
    title: &ReferenceTitle,
    found: &Identified,
    placement: Quad,
    work: &Path,
    limits: &Limits,
) -> Result<Compared, ExtractError> {
    let (sampled, time) = (found.sampled(), &found.time);
    let mut frames = match survey.frames.take() {
        Some(spilled) => SuspectFrames::Spilled(spilled),
        None => SuspectFrames::Decoded(Box::new(FrameReader::open(suspect, limits)?)),
    };
    let unit_frames = title.package.video.unit_frames.max(1) as usize;
    let units = title.package.video.unit_count;
    let covered = time
        .frames
        .iter()
        .flatten()
        .map(|&r| title.unit_of(r))
        .filter(|&u| u <= units);
    let span = (
        covered.clone().min().unwrap_or(1),
        covered.max().unwrap_or(0),
    );
    let (rows, cols) = comparison_grid(
        &placement,
        title.package.video.width,
        title.package.video.height,
    );
    let grid = reference::Grid {
        placement,
        width: cols,
        height: rows,
    };
    let mut detector = detect::Detector::new(units as usize);
    let (first_unit, last_unit) =
        reference::with_units(title, span, grid, work, limits, |source| {
            let mut index = 0usize;
            let (mut first_unit, mut last_unit) = (u32::MAX, 0u32);
            while let Some(frame) = frames.next_gray(work)? {
                let mapped = time.frames.get(index).copied().flatten();
                index += 1;
                let Some(r) = mapped else { continue };
                let unit = title.unit_of(r);
                if unit > units {
                    continue;
                }
                let reference = source.get(unit)?;
                let s = resample(&frame, sampled, rows, cols);
                // The reference frame (or a neighbour in the unit) the suspect frame fits best.
                let at = r % unit_frames;
                let best = (at.saturating_sub(1)..=at + 1)
                    .filter_map(|i| reference.frames.get(i))
                    .map(|f| (fit::fitted_error(&s, &f.mid), f))
                    .min_by(|x, y| x.0.total_cmp(&y.0));
                let Some((_, matched)) = best else {
                    continue;
                };
                detector.add(unit, &s, matched);
                first_unit = first_unit.min(unit);
                last_unit = last_unit.max(unit);
            }
            Ok((first_unit, last_unit))
        })?;
    Ok(Compared {
        soft: detector.soft_values(),
        strength: detector.strengths(),
        first_unit,
        last_unit,
    })
}

/// Finds which of `titles` the suspect shows and extracts its per-unit soft values.
/// `Ok(None)`: the suspect matches no title (verdict `no_watermark`).
pub fn extract(
    suspect: &Path,
    titles: &[ReferenceTitle],
    work: &Path,
    limits: &Limits,
    progress: Progress,
) -> Result<Option<Extraction>, ExtractError> {
    std::fs::create_dir_all(work).map_err(|source| ExtractError::Work {
        path: work.to_path_buf(),
        source,
    })?;
    let started = std::time::Instant::now();
    let mut survey = survey(suspect, work, limits, progress)?;
    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        frames = survey.thumbs.len(),
        "extract: suspect surveyed"
    );
    let Some(mut found) = identify(&survey, titles) else {
        return Ok(None);
    };
    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        flip = %found.flip,
        "extract: title and time found"
    );
    let title = &titles[found.title];
    let placement = locate(&survey, title, &found, work, limits)?;
    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        "extract: picture placed"
    );
    if let Some(time) = realign(&survey, title, &found, &placement) {
        found.time = time;
    }
    progress(SURVEY_SHARE + 0.05);
    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        "extract: title, time and crop found"
    );
    let compared = compare(&mut survey, suspect, title, &found, placement, work, limits)?;
    let time = &found.time;
    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        "extract: units compared"
    );
    let units_observed = compared.soft.iter().filter(|s| **s != 0.0).count() as u32;
    Ok(Some(Extraction {
        video_id: title.video_id.clone(),
        soft: compared.soft,
        strength: compared.strength,
        units_observed,
        code: title.package.watermark.code,
        alignment: Alignment {
            offset_seconds: time.offset_seconds,
            speed: time.speed,
            time_map: time
                .pieces
                .iter()
                .map(|p| TimePiece {
                    suspect_seconds: p.suspect,
                    title_seconds: p.title,
                })
                .collect(),
            time_score: time.score,
            suspect_fps: survey.fps,
            suspect_frames: survey.thumbs.len() as u64,
            suspect_size: survey.size,
            active_area: found.active.to_array(),
            flip: found.flip,
            reference_crop: placement.bounds().to_array(),
            reference_corners: Some(placement.corners),
            first_unit: if units_observed == 0 {
                0
            } else {
                compared.first_unit
            },
            last_unit: compared.last_unit,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parts_of_the_frame_read_lie_inside_it() {
        let parts = views();
        // 85 %: the eight off-centre places (centred, the whole frame's reading covers it);
        // 70 %: those and the centre.
        assert_eq!(parts.len(), 17);
        for r in &parts {
            assert!(r.x0 >= 0.0 && r.y0 >= 0.0, "{r:?}");
            assert!(r.x1 <= 1.0 + 1e-9 && r.y1 <= 1.0 + 1e-9, "{r:?}");
            assert!((r.width() - r.height()).abs() < 1e-9, "{r:?}");
        }
        let corner = |x0: f64, y0: f64, s: f64| {
            parts.iter().any(|r| {
                (r.x0 - x0).abs() < 1e-9 && (r.y0 - y0).abs() < 1e-9 && (r.width() - s).abs() < 1e-9
            })
        };
        assert!(corner(0.0, 0.0, 0.85) && corner(0.15, 0.15, 0.85) && corner(0.3, 0.0, 0.7));
        assert!(corner(0.15, 0.15, 0.7) && !corner(0.075, 0.075, 0.85));
    }

    #[test]
    fn the_comparison_grid_follows_the_reference_not_the_squeezed_copy() {
        let rect = |x0, y0, x1, y1| Rect { x0, y0, x1, y1 };
        // The whole 16:9 frame, whether the copy shows it at 16:9 or squeezed to 1280x540.
        assert_eq!(
            comparison_grid(&Quad::from_rect(Rect::FULL), 1280, 720),
            (108, GRID_WIDTH)
        );
        // A crop of 10% per side keeps the proportions; a band without the top and bottom
        // eighths is wider.
        let sides = rect(0.1, 0.1, 0.9, 0.9);
        assert_eq!(
            comparison_grid(&Quad::from_rect(sides), 1280, 720),
            (108, GRID_WIDTH)
        );
        let band = rect(0.0, 0.125, 1.0, 0.875);
        assert_eq!(
            comparison_grid(&Quad::from_rect(band), 1280, 720),
            (81, GRID_WIDTH)
        );
        // Degenerate sizes stay within the grid's bounds.
        assert_eq!(
            comparison_grid(&Quad::from_rect(Rect::FULL), 1, 4000).0,
            320
        );
        assert_eq!(comparison_grid(&Quad::from_rect(Rect::FULL), 4000, 1).0, 48);
    }
}
