//! The title's side of the comparison: each unit's reference frames (the variants' midpoint
//! and half difference) on the comparison grid. They come from the title's reference store,
//! read ahead on a thread; a title without one has its variants A and B decoded back, a run
//! of units as one stream per variant, each by its own thread ahead of the comparison
//! (segments are closed GOPs, so init + the segments' fragments in order is a valid file; a
//! title whose segments hold two units is read from its all-A and all-B variants); a unit
//! asked for out of order is read or decoded on its own.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use formats::layout::{SegmentVariant, Variant};

use super::{ExtractError, ReferenceTitle};
use crate::frame::{analysis_gray, warp, Gray, Quad, QuadMap};
use crate::media::decode::{FrameReader, Limits};
use crate::refstore::{self, RefFrame};

/// Units decoded ahead of the comparison, per variant.
const READ_AHEAD_UNITS: usize = 2;

fn reference_error(title: &ReferenceTitle, reason: String) -> ExtractError {
    ExtractError::Reference {
        video_id: title.video_id.clone(),
        reason,
    }
}

/// Writes init + the fragments of the segments holding `units` to `path`, every unit in
/// `variant`. Returns how many frames of the first segment come before the first unit.
fn join_units(
    title: &ReferenceTitle,
    variant: Variant,
    units: std::ops::RangeInclusive<u32>,
    path: &Path,
) -> Result<usize, ExtractError> {
    let video = &title.package.video;
    let ((first, place), (last, _)) = (
        video.segment_of(*units.start()),
        video.segment_of(*units.end()),
    );
    let uniform = SegmentVariant::uniform(variant, video.units_per_segment());
    let skip = place as usize * video.unit_frames as usize;
    refstore::join_segments(&title.layout, uniform, first..=last, path)
        .map(|()| skip)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                reference_error(title, e.to_string())
            } else {
                ExtractError::Work {
                    path: path.to_path_buf(),
                    source: e,
                }
            }
        })
}

/// Unit `unit` from the title's reference store, full-frame.
fn stored_unit(title: &ReferenceTitle, unit: u32) -> Result<Vec<RefFrame>, ExtractError> {
    refstore::read_unit(&title.layout.reference_unit(unit))
        .map_err(|e| reference_error(title, format!("reference store, unit {unit}: {e}")))
}

/// Reads units `first..=last` from the reference store, sending each unit's frames (on the
/// grid) as soon as they are read. Stops when the receiver is gone.
fn stream_store(
    title: &ReferenceTitle,
    (first, last): (u32, u32),
    grid: Grid,
    to: SyncSender<Result<UnitReference, ExtractError>>,
) {
    for unit in first..=last {
        let placed = stored_unit(title, unit).map(|frames| UnitReference {
            unit,
            frames: grid.place_frames(&frames),
        });
        let failed = placed.is_err();
        if to.send(placed).is_err() || failed {
            return;
        }
    }
}

/// Decodes unit `unit` of `variant` on its own into full-frame analysis grays.
pub(super) fn decode_unit(
    title: &ReferenceTitle,
    variant: Variant,
    unit: u32,
    work: &Path,
    limits: &Limits,
) -> Result<Vec<Gray>, ExtractError> {
    // A name of its own: the same unit may be decoded by two threads at once.
    let path = work.join(format!(
        "{}-{unit}-{}.mp4",
        variant.folder(),
        uuid::Uuid::new_v4().simple()
    ));
    let skip = join_units(title, variant, unit..=unit, &path)?;
    let unit_frames = title.package.video.unit_frames.max(1) as usize;
    let decoded = FrameReader::open_with_threads(&path, limits, 1)
        .map_err(|e| reference_error(title, e.to_string()))
        .and_then(|reader| {
            let mut reader = reader.without_length_check();
            let mut out = Vec::new();
            let mut index = 0;
            // A unit first in its segment stops the decoding at its end; one after another
            // unit decodes that one too (the GOP starts there) but keeps only its own.
            while index < skip + unit_frames {
                let Some(f) = reader
                    .next_frame()
                    .map_err(|e| reference_error(title, e.to_string()))?
                else {
                    break;
                };
                if index >= skip {
                    out.push(analysis_gray(&f));
                }
                index += 1;
            }
            Ok(out)
        });
    let _ = std::fs::remove_file(&path);
    decoded
}

/// A unit's reference frames on the comparison grid (the reference crop resampled): each
/// frame's variant midpoint and half difference, as the detector takes them.
pub(super) struct UnitReference {
    pub unit: u32,
    pub frames: Vec<RefFrame>,
}

/// The geometry the reference is compared on: where the suspect's picture lies in the
/// reference frame, and the grid.
#[derive(Clone, Copy)]
pub(super) struct Grid {
    pub placement: Quad,
    pub width: usize,
    pub height: usize,
}

impl Grid {
    fn place(&self, g: &Gray) -> Gray {
        warp(g, &self.placement, self.height, self.width)
    }

    fn place_frames(&self, frames: &[RefFrame]) -> Vec<RefFrame> {
        let mut placed: Vec<RefFrame> = frames.iter().map(|f| f.map(|g| self.place(g))).collect();
        self.unmark_outside(&mut placed);
        placed
    }

    /// Grid points whose place in the reference frame lies outside it: a copy turned without
    /// a crop shows black there. They carry no mark, so the variants' difference is zeroed
    /// there; else the frame's edge, which sampling stretches over them, would be compared
    /// with black and read as noise in every unit.
    fn unmark_outside(&self, frames: &mut [RefFrame]) {
        let b = self.placement.bounds();
        if b.x0 >= 0.0 && b.y0 >= 0.0 && b.x1 <= 1.0 && b.y1 <= 1.0 {
            // A convex quad lies within its corners' bounds: every point is inside.
            return;
        }
        let map = QuadMap::of(&self.placement);
        let (w, h) = (self.width.max(1) as f64, self.height.max(1) as f64);
        let outside: Vec<[usize; 2]> = (0..self.height)
            .flat_map(|y| (0..self.width).map(move |x| [y, x]))
            .filter(|&[y, x]| {
                let p = map.point((x as f64 + 0.5) / w, (y as f64 + 0.5) / h);
                !(0.0..=1.0).contains(&p[0]) || !(0.0..=1.0).contains(&p[1])
            })
            .collect();
        for frame in frames {
            for &at in &outside {
                if let Some(v) = frame.half_diff.get_mut(at) {
                    *v = 0.0;
                }
            }
        }
    }

    /// The frames of both variants of one unit, already on this grid (so of one size),
    /// paired.
    fn pair_variants(&self, unit: u32, a: &[Gray], b: &[Gray]) -> UnitReference {
        let mut frames: Vec<RefFrame> = a
            .iter()
            .zip(b)
            .filter_map(|(a, b)| RefFrame::from_variants(a, b))
            .collect();
        self.unmark_outside(&mut frames);
        UnitReference { unit, frames }
    }
}

type Decoded = Result<(u32, Vec<Gray>), ExtractError>;

/// Decodes units `first..=last` of `variant` as one stream, sending each unit's frames (on
/// the grid) as soon as it is complete. Stops when the receiver is gone.
fn stream_variant(
    title: &ReferenceTitle,
    variant: Variant,
    (first, last): (u32, u32),
    grid: Grid,
    path: PathBuf,
    limits: &Limits,
    to: SyncSender<Decoded>,
) {
    let unit_frames = title.package.video.unit_frames.max(1) as usize;
    let run = || -> Result<(), ExtractError> {
        let mut skip = join_units(title, variant, first..=last, &path)?;
        let mut reader = FrameReader::open_with_threads(&path, limits, 1)
            .map_err(|e| reference_error(title, e.to_string()))?
            .without_length_check();
        let mut unit = first;
        let mut frames = Vec::with_capacity(unit_frames);
        while let Some(f) = reader
            .next_frame()
            .map_err(|e| reference_error(title, e.to_string()))?
        {
            // The first segment's units before `first` are decoded but not kept.
            if skip > 0 {
                skip -= 1;
                continue;
            }
            frames.push(grid.place(&analysis_gray(&f)));
            if frames.len() == unit_frames {
                if to.send(Ok((unit, std::mem::take(&mut frames)))).is_err() || unit == last {
                    return Ok(());
                }
                unit += 1;
            }
        }
        if !frames.is_empty() {
            let _ = to.send(Ok((unit, frames)));
        }
        Ok(())
    };
    if let Err(e) = run() {
        let _ = to.send(Err(e));
    }
    let _ = std::fs::remove_file(&path);
}

/// Where the units come from, read ahead of the comparison.
enum Streams {
    /// The reference store: units already paired and on the grid.
    Store(Receiver<Result<UnitReference, ExtractError>>),
    /// Variants A and B decoded as one stream each: each unit's frames on the grid.
    Variants([Receiver<Decoded>; 2]),
}

/// The units of a title as the comparison asks for them.
pub(super) struct UnitSource<'a> {
    title: &'a ReferenceTitle,
    grid: Grid,
    work: &'a Path,
    limits: &'a Limits,
    streams: Streams,
    /// The last unit each stream delivered (the store's in both).
    delivered: [u32; 2],
    current: Option<UnitReference>,
}

impl UnitSource<'_> {
    /// Unit `unit` from the streams; `None` when they are already past it or have ended.
    fn streamed(&mut self, unit: u32) -> Result<Option<UnitReference>, ExtractError> {
        match &self.streams {
            Streams::Store(from) => {
                while self.delivered[0] < unit {
                    match from.recv() {
                        Ok(Ok(r)) => {
                            self.delivered = [r.unit; 2];
                            if r.unit == unit {
                                return Ok(Some(r));
                            }
                        }
                        Ok(Err(e)) => return Err(e),
                        // The stream has ended: later units are read on their own.
                        Err(_) => self.delivered = [u32::MAX; 2],
                    }
                }
                Ok(None)
            }
            Streams::Variants(_) => self.streamed_variants(unit),
        }
    }

    /// Unit `unit` of both variant streams, reading both sides in step (each stream fills a
    /// channel of a few units: reading far ahead on one side alone would leave the other
    /// sender blocked).
    fn streamed_variants(&mut self, unit: u32) -> Result<Option<UnitReference>, ExtractError> {
        let Streams::Variants(streams) = &self.streams else {
            return Ok(None);
        };
        let mut found: [Option<Vec<Gray>>; 2] = [None, None];
        loop {
            let mut read = false;
            for (side, slot) in found.iter_mut().enumerate() {
                if slot.is_some() || self.delivered[side] >= unit {
                    continue;
                }
                match streams[side].recv() {
                    Ok(Ok((u, frames))) => {
                        self.delivered[side] = u;
                        if u == unit {
                            *slot = Some(frames);
                        }
                        read = true;
                    }
                    Ok(Err(e)) => return Err(e),
                    // The stream has ended: later units are decoded on their own.
                    Err(_) => self.delivered[side] = u32::MAX,
                }
            }
            if !read {
                break;
            }
        }
        Ok(match found {
            [Some(a), Some(b)] => Some(self.grid.pair_variants(unit, &a, &b)),
            _ => None,
        })
    }

    /// Unit `unit`: from the streams when it lies ahead of them, else read or decoded on its
    /// own.
    pub fn get(&mut self, unit: u32) -> Result<&UnitReference, ExtractError> {
        if self.current.as_ref().map(|c| c.unit) != Some(unit) {
            let reference = match self.streamed(unit)? {
                Some(r) => r,
                None if refstore::exists(&self.title.layout) => UnitReference {
                    unit,
                    frames: self.grid.place_frames(&stored_unit(self.title, unit)?),
                },
                None => {
                    let (a, b) = rayon::join(
                        || decode_unit(self.title, Variant::A, unit, self.work, self.limits),
                        || decode_unit(self.title, Variant::B, unit, self.work, self.limits),
                    );
                    let place = |frames: Vec<Gray>| -> Vec<Gray> {
                        frames.iter().map(|g| self.grid.place(g)).collect()
                    };
                    self.grid.pair_variants(unit, &place(a?), &place(b?))
                }
            };
            self.current = Some(reference);
        }
        match self.current.as_ref() {
            Some(c) => Ok(c),
            None => Err(reference_error(self.title, "unit not decoded".into())),
        }
    }
}

/// Runs `body` with a [`UnitSource`] whose streams read units `first..=last` ahead: from the
/// reference store on one thread, or else both variants decoded on two threads.
pub(super) fn with_units<R>(
    title: &ReferenceTitle,
    (first, last): (u32, u32),
    grid: Grid,
    work: &Path,
    limits: &Limits,
    body: impl FnOnce(&mut UnitSource) -> Result<R, ExtractError>,
) -> Result<R, ExtractError> {
    std::thread::scope(|scope| {
        let start = |variant: Variant| {
            let (to, from) = sync_channel(READ_AHEAD_UNITS);
            let path = work.join(format!("{}-stream.mp4", variant.folder()));
            scope.spawn(move || {
                stream_variant(title, variant, (first, last), grid, path, limits, to)
            });
            from
        };
        let streams = if refstore::exists(&title.layout) {
            let (to, from) = sync_channel(READ_AHEAD_UNITS);
            scope.spawn(move || stream_store(title, (first, last), grid, to));
            Streams::Store(from)
        } else {
            Streams::Variants([start(Variant::A), start(Variant::B)])
        };
        let mut source = UnitSource {
            title,
            grid,
            work,
            limits,
            streams,
            delivered: [first.saturating_sub(1); 2],
            current: None,
        };
        // The source (and its receivers) is dropped before the scope joins the threads,
        // which then stop at their next send.
        body(&mut source)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Rect;

    #[test]
    fn the_mark_is_compared_only_where_the_placement_lies_in_the_frame() {
        let a = Gray::from_shape_fn((36, 64), |(y, x)| (x + y) as f32);
        let b = a.mapv(|v| v + 2.0);
        let frames = [RefFrame::from_variants(&a, &b).unwrap()];
        let grid = |placement: Quad| Grid {
            placement,
            width: 64,
            height: 36,
        };
        // Within the frame (a crop, a turned crop): the difference everywhere.
        let crop = Quad::from_rect(Rect {
            x0: 0.1,
            y0: 0.1,
            x1: 0.9,
            y1: 0.9,
        });
        for placement in [crop, crop.rotated(4.0, 16.0 / 9.0)] {
            let placed = grid(placement).place_frames(&frames);
            assert!(placed[0].half_diff.iter().all(|&v| (v - 1.0).abs() < 1e-4));
        }
        // Turned without a crop: none in the corners, beyond the frame; all inside.
        let turned = Quad::from_rect(Rect::FULL).rotated(5.0, 16.0 / 9.0);
        let g = grid(turned);
        let placed = g.place_frames(&frames);
        let paired = g.pair_variants(1, &[g.place(&a)], &[g.place(&b)]);
        for frame in [&placed[0], &paired.frames[0]] {
            let zero = frame.half_diff.iter().filter(|&&v| v == 0.0).count();
            assert!(zero > 20 && zero < 36 * 64 / 10, "{zero}");
            assert_eq!(frame.half_diff[[0, 0]], 0.0);
            assert!((frame.half_diff[[18, 32]] - 1.0).abs() < 1e-4);
        }
    }
}
