//! Packaging a title: decode the source, embed the watermark, encode variants A and B of every
//! unit with identical libx264 settings, split them into CMAF segments, and store what playback
//! and extraction need. A segment (a closed GOP) holds one unit, or two: then it is encoded in
//! four variants, one per choice of its two units' variants. Everything is written into a
//! staging folder that is renamed into place only when complete ([`Packaged::commit`]); a
//! failed or abandoned run leaves nothing behind.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use ffmpeg_next::frame;
use formats::codes::CodeScheme;
use formats::digest::{copy_with_progress, HashingWriter};
use formats::isobmff;
use formats::layout::{DataLayout, Layout, SegmentVariant, Variant};
use formats::package::{
    self as manifest_format, AudioTrack, PackageManifest, SourceFile, VideoTrack, WatermarkParams,
};
use rand::RngCore;

use crate::fingerprint::{self, THUMB_HEIGHT, THUMB_WIDTH};
use crate::frame::{luma, luma_mut};
use crate::media::audio;
use crate::media::decode::{FrameReader, Limits, SourceInfo};
use crate::media::encode::{EncoderSettings, Geometry, VariantWriter, DEFAULT_CRF, DEFAULT_PRESET};
use crate::media::fmp4::{self, Fmp4Error};
use crate::media::MediaError;
use crate::watermark::embed::{embed_pair, DEFAULT_STRENGTH};
use crate::watermark::mask::gain_map;
use crate::watermark::pattern::{unit_pattern, Pattern};

pub const ALGORITHM: &str = "leaktrace-ab-v1";
/// Frames buffered between the embedder and each encoder: bounds memory (the frames are
/// shared by every rendition's encoder of a variant, so this many per variant, not per
/// encoder, plus each encoder's own scaled frame and x264 state).
const QUEUE_FRAMES: usize = 4;

/// The lower renditions of a `width` x `height` picture for the `ladder`'s heights: more than
/// 5 % below the source only, each once, largest first, the width keeping the picture's shape (even, as
/// 4:2:0 needs). Numbered from 1.
pub fn rendition_sizes(width: u32, height: u32, ladder: &[u32]) -> Vec<(u32, u32)> {
    // Below the source by more than 5 %: a 1088-line decode gets no 1080-line twin.
    let mut heights: Vec<u32> = ladder
        .iter()
        .copied()
        .filter(|&h| u64::from(h) * 20 < u64::from(height) * 19)
        .collect();
    heights.sort_unstable_by(|a, b| b.cmp(a));
    heights.dedup();
    heights
        .into_iter()
        .map(|h| {
            let w = (width as f64 * h as f64 / height as f64 / 2.0).round() as u32 * 2;
            (w.max(2), h)
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct PackageOptions {
    pub title: String,
    /// Length of a watermark unit (one bit of a session's code).
    pub unit_seconds: f64,
    /// Watermark units per segment: 1, or 2 (four variants of every segment: units half a
    /// segment long without shorter GOPs, for twice the encoding and storage).
    pub segment_units: u32,
    pub crf: u8,
    pub preset: String,
    pub strength: f32,
    /// How the sessions' codes will be built.
    pub code: CodeScheme,
    pub limits: Limits,
    /// Heights of the lower renditions for adaptive streaming (those at or above the
    /// source's height are left out); empty: one rendition.
    pub ladder: Vec<u32>,
}

impl PackageOptions {
    pub fn new(title: impl Into<String>) -> Self {
        PackageOptions {
            title: title.into(),
            unit_seconds: manifest_format::DEFAULT_UNIT_SECONDS,
            segment_units: manifest_format::default_segment_units(),
            crf: DEFAULT_CRF,
            preset: DEFAULT_PRESET.to_string(),
            strength: DEFAULT_STRENGTH,
            code: CodeScheme::default(),
            limits: Limits::default(),
            ladder: Vec::new(),
        }
    }

    /// Refuses options outside their ranges (also checked by [`package`]).
    pub fn validate(&self) -> Result<(), PackageError> {
        manifest_format::check_unit_seconds(self.unit_seconds)
            .and_then(|()| {
                manifest_format::check_segment_units(self.unit_seconds, self.segment_units)
            })
            .map_err(PackageError::InvalidOption)?;
        if self.crf > 51 {
            return Err(PackageError::InvalidOption(format!(
                "CRF {} is outside 0-51",
                self.crf
            )));
        }
        const PRESETS: &[&str] = &[
            "ultrafast",
            "superfast",
            "veryfast",
            "faster",
            "fast",
            "medium",
            "slow",
            "slower",
            "veryslow",
        ];
        if !PRESETS.contains(&self.preset.as_str()) {
            return Err(PackageError::InvalidOption(format!(
                "unknown x264 preset '{}'",
                self.preset
            )));
        }
        manifest_format::check_ladder(&self.ladder).map_err(PackageError::InvalidOption)?;
        if self.strength.is_nan() || self.strength <= 0.0 || self.strength > 8.0 {
            return Err(PackageError::InvalidOption(format!(
                "watermark strength {} is outside (0, 8]",
                self.strength
            )));
        }
        Ok(())
    }
}

/// Where packaging is, for progress bars and job progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Copying and hashing the source.
    Source,
    /// Decoding, embedding and encoding; `total` is the expected frame count (0 if unknown).
    Video,
    /// Writing segments and reference data.
    Finishing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub stage: Stage,
    pub done: u64,
    pub total: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error("invalid option: {0}")]
    InvalidOption(String),
    #[error("packaging produced inconsistent output: {0}")]
    Inconsistent(String),
    #[error("cannot split the encoded variant: {0}")]
    Segments(#[from] Fmp4Error),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl PackageError {
    pub fn code(&self) -> &'static str {
        match self {
            PackageError::Media(e) => e.code(),
            PackageError::InvalidOption(_) => "invalid_option",
            PackageError::Inconsistent(_) | PackageError::Segments(_) => "packaging_failed",
            PackageError::Io { .. } => "io_error",
        }
    }

    /// True when the input or the options are at fault.
    pub fn is_input_error(&self) -> bool {
        match self {
            PackageError::Media(e) => e.is_input_error(),
            PackageError::InvalidOption(_) => true,
            _ => false,
        }
    }
}

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> PackageError + 'a {
    move |source| PackageError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// A staging folder removed on drop unless kept.
struct Staging {
    path: PathBuf,
    keep: bool,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// A packaged title waiting in its staging folder. Dropping it without [`Packaged::commit`]
/// removes everything it wrote.
pub struct Packaged {
    pub manifest: PackageManifest,
    /// The per-video watermark secret: seal it under the master key before storing it.
    pub secret: [u8; 32],
    staging: Staging,
    target: PathBuf,
}

impl Packaged {
    /// Moves the title into place (`<videos dir>/<video id>`) and returns that folder.
    pub fn commit(mut self) -> Result<PathBuf, PackageError> {
        fs::rename(&self.staging.path, &self.target)
            .map_err(io_err("move into place", &self.target))?;
        self.staging.keep = true;
        Ok(self.target.clone())
    }
}

/// Packages `input` into a staging folder of the data dir `data`.
pub fn package(
    input: &Path,
    data: &DataLayout,
    options: &PackageOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Packaged, PackageError> {
    options.validate()?;
    let mut reader = FrameReader::open(input, &options.limits)?;
    let info = reader.info().clone();

    let video_id = uuid::Uuid::new_v4().to_string();
    let videos = data.videos();
    fs::create_dir_all(&videos).map_err(io_err("create", &videos))?;
    let staging = Staging {
        path: data.staging_dir(&video_id),
        keep: false,
    };
    let layout = Layout::new(&staging.path);
    for dir in layout.folders() {
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
    }

    let (source_name, source_sha256) = copy_source(input, &layout, progress)?;

    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let fps = info.fps();
    let unit_frames = ((fps * options.unit_seconds).round() as u32).max(1);
    let segment_units = options.segment_units;
    let segment_frames = unit_frames * segment_units;
    let variants: Vec<SegmentVariant> = SegmentVariant::all(segment_units).collect();
    let all_a = SegmentVariant::uniform(Variant::A, segment_units);
    let settings = EncoderSettings {
        crf: options.crf,
        preset: options.preset.clone(),
        segment_frames,
    };
    let geometry = Geometry {
        width: info.width,
        height: info.height,
        sample_aspect: info.sample_aspect,
        frame_rate: info.frame_rate,
    };
    let expected_frames = (info.duration_seconds * fps).round() as u64;
    // Every rendition (0: the top one, at the decoded size) in every variant: one encoder
    // each, the lower ones scaling the marked frames first.
    let sizes = rendition_sizes(info.width, info.height, &options.ladder);
    let mut outputs = vec![(0u32, geometry)];
    for (i, &(width, height)) in sizes.iter().enumerate() {
        outputs.push((
            i as u32 + 1,
            Geometry {
                width,
                height,
                ..geometry
            },
        ));
    }
    for &(index, _) in &outputs {
        for &variant in &variants {
            let dir = layout.rendition_variant_dir(index, variant);
            fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        }
    }
    let work = |index: u32, variant: SegmentVariant| {
        layout.work_file(&format!("r{index}-{}.mp4", variant.folder()))
    };

    let mut senders = Vec::new();
    let mut jobs = Vec::new();
    for &(index, target) in &outputs {
        for &variant in &variants {
            let (tx, rx) = sync_channel::<Arc<frame::Video>>(QUEUE_FRAMES);
            senders.push((variant, tx));
            jobs.push((work(index, variant), target, rx));
        }
    }
    let (fed, encoded) = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|(path, target, rx)| {
                let settings = &settings;
                scope.spawn(move || encode_variant(&path, target, settings, rx))
            })
            .collect();
        let embed = Embedder {
            secret: &secret,
            strength: options.strength,
            unit_frames,
            segment_units,
            thumbs_path: layout.thumbnails(),
        };
        let fed = embed.run(&mut reader, senders, expected_frames, progress);
        let encoded: Result<(), MediaError> = handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or_else(|_| Err(MediaError::encode("encoder thread", "panicked")))
        });
        (fed, encoded)
    });
    // An input problem stops the embedder while the encoders finish what they have; an
    // encoder that fails stops the embedder (its channel is gone): when both failed, the
    // encoder's error is the cause.
    let frame_count = match (fed, encoded) {
        (Err(_), Err(encoder)) => return Err(encoder.into()),
        (fed, encoded) => {
            let n = fed?;
            encoded?;
            n
        }
    };

    progress(Progress {
        stage: Stage::Finishing,
        done: 0,
        total: 1,
    });
    let unit_count = frame_count.div_ceil(unit_frames as u64) as u32;
    let segment_count = frame_count.div_ceil(segment_frames as u64) as u32;
    let duration_seconds = frame_count as f64 / fps;
    let mut split = Vec::new();
    for &(index, target) in &outputs {
        let init = split_variants(&layout, index, &variants, &work, segment_count)?;
        let codec = fmp4::avc_codec_string(&init)
            .ok_or_else(|| PackageError::Inconsistent("init segment has no avcC box".into()))?;
        let init_path = layout.rendition_init(index);
        fs::write(&init_path, &init).map_err(io_err("write", &init_path))?;
        let durations: Vec<f64> = (0..segment_count as u64)
            .map(|k| {
                (frame_count - k * segment_frames as u64).min(segment_frames as u64) as f64 / fps
            })
            .collect();
        let bandwidth = stated_bandwidth(&layout, index, &variants, &durations)?;
        // Every rendition starts where the top one does (one presentation offset in the MPD).
        let start = start_seconds(&init, &layout.rendition_unit(index, all_a, 1))?;
        split.push((index, target, codec, bandwidth, start));
    }
    if let Some(&(index, .., start)) = split.iter().find(|r| (r.4 - split[0].4).abs() > 0.5 / fps) {
        return Err(PackageError::Inconsistent(format!(
            "rendition {index} starts at {start:.3} s, the top one at {:.3} s",
            split[0].4
        )));
    }
    let (_, _, codec, top_bandwidth, video_start) = split.remove(0);
    let renditions = split
        .into_iter()
        .map(
            |(index, target, codec, bandwidth, _)| manifest_format::Rendition {
                index,
                codec,
                width: target.width,
                height: target.height,
                bandwidth,
            },
        )
        .collect();
    let audio = package_audio(
        input,
        &layout,
        segment_frames as f64 / fps,
        duration_seconds,
        &options.limits,
    )?;
    let work_dir = layout.work_dir();
    fs::remove_dir_all(&work_dir).map_err(io_err("remove", &work_dir))?;

    let manifest = PackageManifest {
        format_version: manifest_format::FORMAT_VERSION,
        video_id: video_id.clone(),
        title: options.title.clone(),
        video: VideoTrack {
            codec,
            width: info.width,
            height: info.height,
            sample_aspect: [info.sample_aspect.0, info.sample_aspect.1],
            frame_rate: [info.frame_rate.0, info.frame_rate.1],
            frame_count,
            unit_frames,
            unit_count,
            segment_units,
            duration_seconds,
            crf: options.crf,
            preset: options.preset.clone(),
            start_seconds: video_start,
            bandwidth: Some(top_bandwidth),
        },
        audio,
        watermark: WatermarkParams {
            algorithm: ALGORITHM.to_string(),
            strength: options.strength,
            code: options.code,
        },
        source: source_file(&info, source_name, source_sha256),
        thumbnail_size: [THUMB_WIDTH as u32, THUMB_HEIGHT as u32],
        renditions,
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| PackageError::Inconsistent(format!("manifest: {e}")))?;
    fs::write(layout.manifest(), manifest_json).map_err(io_err("write", &layout.manifest()))?;
    progress(Progress {
        stage: Stage::Finishing,
        done: 1,
        total: 1,
    });
    Ok(Packaged {
        manifest,
        secret,
        target: data.title_dir(&video_id),
        staging,
    })
}

/// Encodes the audio track (if any) and splits it into segments of about one video segment
/// each.
fn package_audio(
    input: &Path,
    layout: &Layout,
    segment_seconds: f64,
    max_seconds: f64,
    limits: &Limits,
) -> Result<Option<AudioTrack>, PackageError> {
    let work = layout.work_file("audio.mp4");
    let Some(encoded) = audio::encode_audio(input, &work, segment_seconds, max_seconds, limits)?
    else {
        return Ok(None);
    };
    let dir = layout.audio_dir();
    fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
    let split = fmp4::split_file(&work, &|k| layout.audio_unit(k))?;
    fs::write(layout.audio_init(), &split.init).map_err(io_err("write", &layout.audio_init()))?;
    let start = start_seconds(&split.init, &layout.audio_unit(1))?;
    Ok(Some(AudioTrack {
        codec: audio::CODEC.to_string(),
        sample_rate: encoded.sample_rate,
        channels: encoded.channels,
        segment_count: split.fragments,
        segment_seconds,
        start_seconds: start,
    }))
}

/// Presentation time, in seconds, of the first sample of a track's first fragment.
fn start_seconds(init: &[u8], first_fragment: &Path) -> Result<f64, PackageError> {
    let fragment = fs::read(first_fragment).map_err(io_err("read", first_fragment))?;
    let timescale = isobmff::media_timescale(init)
        .ok_or_else(|| PackageError::Inconsistent("init segment has no media timescale".into()))?;
    let ticks = isobmff::first_presentation_time(&fragment).ok_or_else(|| {
        PackageError::Inconsistent(format!(
            "{} has no readable timing",
            first_fragment.display()
        ))
    })?;
    Ok(ticks as f64 / timescale as f64)
}

fn source_file(info: &SourceInfo, file_name: String, sha256: String) -> SourceFile {
    SourceFile {
        file_name,
        size_bytes: info.size_bytes,
        sha256,
        container: info.container.clone(),
        codec: info.video_codec.clone(),
        width: info.source_width,
        height: info.source_height,
        duration_seconds: info.duration_seconds,
    }
}

/// Copies the source into the title's folder, hashing it on the way.
fn copy_source(
    input: &Path,
    layout: &Layout,
    progress: &mut dyn FnMut(Progress),
) -> Result<(String, String), PackageError> {
    let name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "source".into());
    let ext: String = input
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .filter(|e| !e.is_empty() && e.len() <= 8 && e.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| "bin".into());
    let dest = layout.source_file(&ext);
    let mut src = File::open(input).map_err(io_err("read", input))?;
    let total = src.metadata().map(|m| m.len()).unwrap_or(0);
    let out = File::create(&dest).map_err(io_err("create", &dest))?;
    let mut out = HashingWriter::new(BufWriter::new(out));
    copy_with_progress(&mut src, &mut out, &mut |done| {
        progress(Progress {
            stage: Stage::Source,
            done,
            total,
        })
    })
    .map_err(io_err("copy the source to", &dest))?;
    let (_, _, sha256) = out.finish().map_err(io_err("write", &dest))?;
    Ok((name, sha256))
}

/// Encodes one variant of one rendition: the marked frames, scaled to `geometry` first when
/// they are of another size (bicubic, in the frames' own pixel format).
fn encode_variant(
    path: &Path,
    geometry: Geometry,
    settings: &EncoderSettings,
    frames: Receiver<Arc<frame::Video>>,
) -> Result<(), MediaError> {
    use ffmpeg_next::software::scaling;
    let mut writer = VariantWriter::create(path, geometry, settings)?;
    let mut scaler: Option<scaling::Context> = None;
    for f in frames {
        if (f.width(), f.height()) == (geometry.width, geometry.height) {
            // The encoder marks the picture type on its frame: its own copy (the frame
            // itself once the lower renditions have scaled from it).
            let mut own = Arc::try_unwrap(f).unwrap_or_else(|shared| (*shared).clone());
            writer.write(&mut own)?;
            continue;
        }
        if scaler.is_none() {
            scaler = Some(
                scaling::Context::get(
                    f.format(),
                    f.width(),
                    f.height(),
                    f.format(),
                    geometry.width,
                    geometry.height,
                    scaling::Flags::BICUBIC,
                )
                .map_err(|e| MediaError::encode("scale", e))?,
            );
        }
        let mut scaled = frame::Video::empty();
        if let Some(s) = scaler.as_mut() {
            s.run(&f, &mut scaled)
                .map_err(|e| MediaError::encode("scale", e))?;
        }
        scaled.set_pts(f.pts());
        writer.write(&mut scaled)?;
    }
    writer.finish().map(|_| ())
}

/// The seconds over which the MPD's bandwidth is stated (its `minBufferTime`).
const BANDWIDTH_WINDOW_SECONDS: f64 = 2.0;

/// The bandwidth the MPD states for rendition `index` (segments lasting `durations` seconds):
/// the peak bit rate over any [`BANDWIDTH_WINDOW_SECONDS`] of consecutive segments, each
/// counted at its largest variant (a session may receive any), so that a player that
/// buffers that long never outruns a link of this rate.
fn stated_bandwidth(
    layout: &Layout,
    index: u32,
    variants: &[SegmentVariant],
    durations: &[f64],
) -> Result<u64, PackageError> {
    let mut bits = Vec::with_capacity(durations.len());
    for segment in 1..=durations.len() as u32 {
        let mut larger = 0u64;
        for &variant in variants {
            let path = layout.rendition_unit(index, variant, segment);
            larger = larger.max(fs::metadata(&path).map_err(io_err("read", &path))?.len());
        }
        bits.push(larger as f64 * 8.0);
    }
    Ok(peak_rate(&bits, durations, BANDWIDTH_WINDOW_SECONDS).round() as u64)
}

/// The largest bits per second over windows of consecutive units covering at least
/// `window` seconds (or all of them, when the title is shorter).
fn peak_rate(bits: &[f64], seconds: &[f64], window: f64) -> f64 {
    let mut peak = 0.0f64;
    for start in 0..bits.len() {
        let (mut b, mut s) = (0.0, 0.0);
        for k in start..bits.len() {
            b += bits[k];
            s += seconds[k];
            if s >= window - 1e-9 {
                break;
            }
        }
        let short = s < window - 1e-9;
        // A tail shorter than the window is downloaded ahead, within the windows before it
        // (only a title shorter than the window is counted whole).
        if short && start > 0 {
            break;
        }
        if s > 0.0 {
            peak = peak.max(b / s);
        }
        if short {
            break;
        }
    }
    peak
}

/// The embedding loop: one decoded frame in, its A and B marked frames out, each to the
/// encoders of the segment variants that take that variant for the frame's unit.
struct Embedder<'a> {
    secret: &'a [u8; 32],
    strength: f32,
    unit_frames: u32,
    segment_units: u32,
    thumbs_path: PathBuf,
}

impl Embedder<'_> {
    /// Returns the number of frames fed to the encoders.
    fn run(
        &self,
        reader: &mut FrameReader,
        to: Vec<(SegmentVariant, SyncSender<Arc<frame::Video>>)>,
        expected_frames: u64,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<u64, PackageError> {
        let thumbs_file =
            File::create(&self.thumbs_path).map_err(io_err("create", &self.thumbs_path))?;
        let mut thumbs = BufWriter::new(thumbs_file);
        let thumb_err = |e| PackageError::Io {
            action: "write",
            path: self.thumbs_path.clone(),
            source: e,
        };
        fingerprint::write_header(&mut thumbs, 0).map_err(thumb_err)?;
        let (w, h) = (reader.info().width as usize, reader.info().height as usize);
        let mut current: Option<(u32, Pattern)> = None;
        let mut count = 0u64;
        let encoder_gone = || MediaError::encode("encoder", "stopped before the end of the input");
        while let Some(source) = reader.next_frame()? {
            let index = source.pts().unwrap_or(count as i64);
            let unit = (index as u64 / self.unit_frames as u64) as u32 + 1;
            if current.as_ref().map(|(u, _)| *u) != Some(unit) {
                current = Some((unit, unit_pattern(self.secret, unit, w, h)));
            }
            let pattern = current.as_ref().map(|(_, p)| p).ok_or_else(encoder_gone)?;
            let src = luma(&source);
            thumbs
                .write_all(&fingerprint::thumbnail(src))
                .map_err(thumb_err)?;
            let gains = gain_map(&src);
            let mut a = source.clone();
            let mut b = source.clone();
            embed_pair(
                &src,
                pattern,
                &gains,
                self.strength,
                &mut luma_mut(&mut a),
                &mut luma_mut(&mut b),
            );
            a.set_pts(Some(index));
            b.set_pts(Some(index));
            // One frame per variant, shared by every encoder that takes it (the lower
            // renditions scale from it; the top one takes it over once they have).
            let (a, b) = (Arc::new(a), Arc::new(b));
            let place = (unit - 1) % self.segment_units.max(1);
            for (variant, tx) in &to {
                let frame = match variant.unit(place) {
                    Variant::A => &a,
                    Variant::B => &b,
                };
                tx.send(Arc::clone(frame)).map_err(|_| encoder_gone())?;
            }
            count += 1;
            progress(Progress {
                stage: Stage::Video,
                done: count,
                total: expected_frames.max(count),
            });
        }
        let mut file = thumbs.into_inner().map_err(|e| thumb_err(e.into_error()))?;
        let frames = u32::try_from(count)
            .map_err(|_| PackageError::InvalidOption("too many frames".into()))?;
        fingerprint::patch_count(&mut file, frames).map_err(thumb_err)?;
        Ok(count)
    }
}

/// Splits every variant's encode of rendition `index` (from `work`) into segments, checks
/// that they are interchangeable, and removes each encode once split (its disk goes back
/// before the next). Returns the init segment they share.
fn split_variants(
    layout: &Layout,
    index: u32,
    variants: &[SegmentVariant],
    work: &dyn Fn(u32, SegmentVariant) -> PathBuf,
    segment_count: u32,
) -> Result<Vec<u8>, PackageError> {
    let mut shared: Option<Vec<u8>> = None;
    for &variant in variants {
        let encode = work(index, variant);
        let split = fmp4::split_file(&encode, &|k| layout.rendition_unit(index, variant, k))?;
        fs::remove_file(&encode).map_err(io_err("remove", &encode))?;
        if split.fragments != segment_count {
            return Err(PackageError::Inconsistent(format!(
                "expected {segment_count} fragments per variant, got {} in variant {}",
                split.fragments,
                variant.folder()
            )));
        }
        match &shared {
            Some(init) if *init != split.init => {
                return Err(PackageError::Inconsistent(format!(
                    "the init segment of variant {} differs from the others",
                    variant.folder()
                )))
            }
            Some(_) => {}
            None => shared = Some(split.init),
        }
    }
    shared.ok_or_else(|| PackageError::Inconsistent("no variant was encoded".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stated_bandwidth_is_the_peak_over_the_buffer_window() {
        // 1 s units: 1, 3, 1, 1 Mbit; the worst 2 s is 4 Mbit over 2 s.
        let bits = [1e6, 3e6, 1e6, 1e6];
        assert_eq!(peak_rate(&bits, &[1.0; 4], 2.0), 2e6);
        // Shorter than the window: the whole title.
        assert_eq!(peak_rate(&[1e6], &[0.4], 2.0), 2.5e6);
        // A short last unit is counted at its own length.
        assert_eq!(peak_rate(&[1e6, 1e6, 1.5e6], &[1.0, 1.0, 0.5], 2.0), 1e6);
        assert_eq!(peak_rate(&[], &[], 2.0), 0.0);
    }

    #[test]
    fn a_ladder_keeps_the_shape_below_the_source_only() {
        assert_eq!(
            rendition_sizes(1920, 1080, &[360, 1080, 720, 2160, 480, 720]),
            [(1280, 720), (854, 480), (640, 360)]
        );
        assert_eq!(
            rendition_sizes(480, 270, &[180, 134]),
            [(320, 180), (238, 134)]
        );
        assert!(rendition_sizes(640, 360, &[]).is_empty());
        assert_eq!(rendition_sizes(1920, 1088, &[1080, 720]), [(1270, 720)]);
        let ok = PackageOptions {
            ladder: vec![720, 480],
            ..PackageOptions::new("t")
        };
        assert!(ok.validate().is_ok());
        for bad in [vec![481], vec![64], vec![5000], vec![360; 9]] {
            let options = PackageOptions {
                ladder: bad.clone(),
                ..PackageOptions::new("t")
            };
            assert!(options.validate().is_err(), "{bad:?}");
        }
    }
}
