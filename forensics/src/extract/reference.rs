//! The title's side of the comparison: units of the packaged variants A and B decoded back
//! to grays. A run of units is decoded as one stream per variant, each by its own thread
//! ahead of the comparison (units are closed GOPs, so init + the units' fragments in order
//! is a valid file); a unit asked for out of order is decoded on its own.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use formats::layout::Variant;

use super::gray::{Gray, Rect};
use super::{frame_gray, ExtractError, ReferenceTitle};
use crate::media::decode::{FrameReader, Limits};
use crate::refstore;

/// Units decoded ahead of the comparison, per variant.
const READ_AHEAD_UNITS: usize = 2;

fn reference_error(title: &ReferenceTitle, reason: String) -> ExtractError {
    ExtractError::Reference {
        video_id: title.video_id.clone(),
        reason,
    }
}

/// Writes init + the fragments of `units` of `variant` to `path`.
fn join_units(
    title: &ReferenceTitle,
    variant: Variant,
    units: std::ops::RangeInclusive<u32>,
    path: &Path,
) -> Result<(), ExtractError> {
    refstore::join_units(&title.layout, variant, units, path).map_err(|e| {
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

/// Both variants of `unit` from the title's reference store, full-frame.
fn stored_unit(title: &ReferenceTitle, unit: u32) -> Result<(Vec<Gray>, Vec<Gray>), ExtractError> {
    refstore::read_unit(&title.layout.reference_unit(unit))
        .map_err(|e| reference_error(title, format!("reference store, unit {unit}: {e}")))
}

/// Reads units `first..=last` from the reference store, sending each unit's frames of A and
/// of B (on the grid) as soon as they are read. Stops when a receiver is gone.
fn stream_store(
    title: &ReferenceTitle,
    (first, last): (u32, u32),
    grid: Grid,
    to: [SyncSender<Decoded>; 2],
) {
    for unit in first..=last {
        let placed = stored_unit(title, unit).map(|(a, b)| {
            let (a, b) = rayon::join(|| grid.place(&a), || grid.place(&b));
            [a, b]
        });
        match placed {
            Ok([a, b]) => {
                if to[0].send(Ok((unit, a))).is_err() || to[1].send(Ok((unit, b))).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = to[0].send(Err(e));
                return;
            }
        }
    }
}

/// Decodes unit `unit` of `variant` on its own into full-frame grays.
pub(super) fn decode_unit(
    title: &ReferenceTitle,
    variant: Variant,
    unit: u32,
    work: &Path,
    limits: &Limits,
) -> Result<Vec<Gray>, ExtractError> {
    let path = work.join(format!("{}-{unit}.mp4", variant.folder()));
    join_units(title, variant, unit..=unit, &path)?;
    let decoded = FrameReader::open_with_threads(&path, limits, 1)
        .map_err(|e| reference_error(title, e.to_string()))
        .and_then(|reader| {
            let mut reader = reader.without_length_check();
            let mut out = Vec::new();
            while let Some(f) = reader
                .next_frame()
                .map_err(|e| reference_error(title, e.to_string()))?
            {
                out.push(frame_gray(&f));
            }
            Ok(out)
        });
    let _ = std::fs::remove_file(&path);
    decoded
}

/// Both variants of a unit on the comparison grid (the reference crop resampled), and their
/// midpoint, frame by frame.
pub(super) struct UnitReference {
    pub unit: u32,
    pub a: Vec<Gray>,
    pub b: Vec<Gray>,
    pub mid: Vec<Gray>,
}

impl UnitReference {
    fn new(unit: u32, a: Vec<Gray>, b: Vec<Gray>) -> UnitReference {
        let mid = a
            .iter()
            .zip(&b)
            .map(|(ga, gb)| Gray {
                width: ga.width,
                height: ga.height,
                data: ga
                    .data
                    .iter()
                    .zip(&gb.data)
                    .map(|(x, y)| 0.5 * (x + y))
                    .collect(),
            })
            .collect();
        UnitReference { unit, a, b, mid }
    }
}

/// The geometry the reference is compared on.
#[derive(Clone, Copy)]
pub(super) struct Grid {
    pub crop: Rect,
    pub width: usize,
    pub height: usize,
}

impl Grid {
    fn place(&self, frames: &[Gray]) -> Vec<Gray> {
        frames
            .iter()
            .map(|g| g.resample(self.crop, self.width, self.height))
            .collect()
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
        join_units(title, variant, first..=last, &path)?;
        let mut reader = FrameReader::open_with_threads(&path, limits, 1)
            .map_err(|e| reference_error(title, e.to_string()))?
            .without_length_check();
        let mut unit = first;
        let mut frames = Vec::with_capacity(unit_frames);
        while let Some(f) = reader
            .next_frame()
            .map_err(|e| reference_error(title, e.to_string()))?
        {
            frames.push(frame_gray(&f).resample(grid.crop, grid.width, grid.height));
            if frames.len() == unit_frames {
                if to.send(Ok((unit, std::mem::take(&mut frames)))).is_err() {
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

/// The units of a title as the comparison asks for them.
pub(super) struct UnitSource<'a> {
    title: &'a ReferenceTitle,
    grid: Grid,
    work: &'a Path,
    limits: &'a Limits,
    streams: [Receiver<Decoded>; 2],
    /// The last unit each stream delivered.
    delivered: [u32; 2],
    current: Option<UnitReference>,
}

impl UnitSource<'_> {
    /// Unit `unit` of both streams, reading both sides in step (a stream of the store sends
    /// A then B for each unit into channels of a few units each: reading far ahead on one
    /// side alone would leave the sender blocked on the other). `None` when the streams are
    /// already past it or have ended.
    fn streamed(&mut self, unit: u32) -> Result<Option<[Vec<Gray>; 2]>, ExtractError> {
        let mut found: [Option<Vec<Gray>>; 2] = [None, None];
        loop {
            let mut read = false;
            for (side, slot) in found.iter_mut().enumerate() {
                if slot.is_some() || self.delivered[side] >= unit {
                    continue;
                }
                match self.streams[side].recv() {
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
            [Some(a), Some(b)] => Some([a, b]),
            _ => None,
        })
    }

    /// Unit `unit` of both variants: from the streams when it lies ahead of them, else
    /// decoded on its own.
    pub fn get(&mut self, unit: u32) -> Result<&UnitReference, ExtractError> {
        if self.current.as_ref().map(|c| c.unit) != Some(unit) {
            let (a, b) = match self.streamed(unit)? {
                Some([a, b]) => (a, b),
                None if refstore::exists(&self.title.layout) => {
                    let (a, b) = stored_unit(self.title, unit)?;
                    (self.grid.place(&a), self.grid.place(&b))
                }
                None => {
                    let (a, b) = rayon::join(
                        || decode_unit(self.title, Variant::A, unit, self.work, self.limits),
                        || decode_unit(self.title, Variant::B, unit, self.work, self.limits),
                    );
                    (self.grid.place(&a?), self.grid.place(&b?))
                }
            };
            self.current = Some(UnitReference::new(unit, a, b));
        }
        match self.current.as_ref() {
            Some(c) => Ok(c),
            None => Err(reference_error(self.title, "unit not decoded".into())),
        }
    }
}

/// Runs `body` with a [`UnitSource`] whose streams decode units `first..=last` of both
/// variants on two threads.
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
            let (to_a, from_a) = sync_channel(READ_AHEAD_UNITS);
            let (to_b, from_b) = sync_channel(READ_AHEAD_UNITS);
            scope.spawn(move || stream_store(title, (first, last), grid, [to_a, to_b]));
            [from_a, from_b]
        } else {
            [start(Variant::A), start(Variant::B)]
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
