//! Decoding any input FFmpeg reads into a constant-frame-rate sequence of YUV 4:2:0 frames
//! with even dimensions: what the watermark embedder and the encoder work on.
//!
//! Variable frame rates are mapped onto the output rate by timestamp (frames repeated or
//! dropped, like FFmpeg's `fps` filter); odd sizes are scaled to the nearest even size below;
//! the sample aspect ratio is carried through. The demux/decode loop handles EAGAIN and EOF
//! explicitly, always flushes the decoder, tolerates isolated corrupt packets, and enforces a
//! size, duration and wall-time limit.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ffmpeg::codec::threading;
use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg::{frame, media, Packet, Rational};
use ffmpeg_next as ffmpeg;
use serde::Serialize;

use super::MediaError;

pub const MAX_WIDTH: u32 = 8192;
pub const MAX_HEIGHT: u32 = 4320;
pub const MIN_SIZE: u32 = 16;
/// Corrupt packets tolerated before a stream is declared undecodable.
const MAX_DECODE_ERRORS: u32 = 50;
/// A timestamp gap longer than this is a discontinuity, not a still picture.
const MAX_GAP_SECONDS: f64 = 10.0;

/// Bounds on what one input may cost.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_input_bytes: u64,
    pub max_duration_seconds: f64,
    pub max_wall_time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input_bytes: 64 << 30,
            max_duration_seconds: 6.0 * 3600.0,
            max_wall_time: Duration::from_secs(6 * 3600),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AudioInfo {
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u16,
}

/// What the input is, as FFmpeg sees it, and the output geometry chosen for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceInfo {
    pub container: String,
    pub size_bytes: u64,
    pub video_codec: String,
    pub source_width: u32,
    pub source_height: u32,
    /// Output (even) dimensions.
    pub width: u32,
    pub height: u32,
    pub sample_aspect: (i32, i32),
    /// Output frame rate.
    pub frame_rate: (i32, i32),
    /// Declared duration of the video (0 when the file does not say).
    pub duration_seconds: f64,
    pub audio: Option<AudioInfo>,
}

impl SourceInfo {
    pub fn fps(&self) -> f64 {
        self.frame_rate.0 as f64 / self.frame_rate.1 as f64
    }
}

/// Common frame rates, to which measured averages within 0.5% are snapped.
const STANDARD_RATES: &[(i32, i32)] = &[
    (24000, 1001),
    (24, 1),
    (25, 1),
    (30000, 1001),
    (30, 1),
    (48, 1),
    (50, 1),
    (60000, 1001),
    (60, 1),
];

fn valid_rate(r: Rational) -> Option<f64> {
    if r.numerator() > 0 && r.denominator() > 0 {
        let f = r.numerator() as f64 / r.denominator() as f64;
        (1.0..=240.0).contains(&f).then_some(f)
    } else {
        None
    }
}

/// The output frame rate for a stream: its average rate, else its base rate, else 25.
pub fn choose_frame_rate(avg: Rational, base: Rational) -> (i32, i32) {
    let fps = match valid_rate(avg).or_else(|| valid_rate(base)) {
        Some(f) => f,
        None => return (25, 1),
    };
    let relative_error = |&(n, d): &(i32, i32)| {
        let s = n as f64 / d as f64;
        ((fps - s) / s).abs()
    };
    STANDARD_RATES
        .iter()
        .filter(|r| relative_error(r) < 0.005)
        .min_by(|a, b| relative_error(a).total_cmp(&relative_error(b)))
        .copied()
        .unwrap_or(((fps * 1000.0).round() as i32, 1000))
}

/// Reads a video as constant-rate YUV 4:2:0 frames. `pts` of each frame is its index.
pub struct FrameReader {
    path: PathBuf,
    info: SourceInfo,
    limits: Limits,
    started: Instant,
    input: ffmpeg::format::context::Input,
    decoder: ffmpeg::decoder::Video,
    stream_index: usize,
    time_base: Rational,
    fps: f64,
    scaler: Option<(scaling::Context, Pixel, u32, u32)>,
    /// Timestamp (stream time base) that maps to slot 0.
    origin: Option<i64>,
    last_ts: Option<i64>,
    pending: Option<frame::Video>,
    next_slot: u64,
    ready: VecDeque<frame::Video>,
    input_done: bool,
    finished: bool,
    decode_errors: u32,
    read_error: Option<String>,
    /// Refuse a file that decodes to much less than its declared duration.
    check_length: bool,
}

pub(crate) fn check_file(path: &Path, limits: &Limits) -> Result<u64, MediaError> {
    let meta = std::fs::metadata(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => MediaError::Missing {
            path: path.to_path_buf(),
        },
        _ => MediaError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        },
    })?;
    if !meta.is_file() {
        return Err(MediaError::NotMedia {
            path: path.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    if meta.len() == 0 {
        return Err(MediaError::Empty {
            path: path.to_path_buf(),
        });
    }
    if meta.len() > limits.max_input_bytes {
        return Err(MediaError::InputTooBig {
            path: path.to_path_buf(),
            bytes: meta.len(),
            limit: limits.max_input_bytes,
        });
    }
    Ok(meta.len())
}

/// The demuxers a file may be opened with: the containers video comes in (MP4/MOV and
/// fragmented MP4, Matroska/WebM, AVI, FLV, MPEG-TS/PS, ASF/WMV, Ogg, MXF, IVF, raw H.264/H.265
/// and MPEG-4 streams, Y4M). Not playlists (HLS, DASH, concat), which name other files or URLs,
/// nor image sequences.
pub const DEMUXERS: &str =
    "mov,matroska,webm,avi,flv,mpegts,mpeg,asf,ogg,mxf,ivf,h264,hevc,m4v,yuv4mpegpipe";

/// Opens `path` for demuxing as an untrusted file: only [`DEMUXERS`], only the `file`
/// protocol (no URL a container names is ever fetched), and an interrupt that stops any
/// blocking read once `limits.max_wall_time` has passed (a stalled read must not hold a
/// thread for hours).
pub fn open_input(
    path: &Path,
    limits: &Limits,
) -> Result<ffmpeg::format::context::Input, ffmpeg::Error> {
    let mut options = ffmpeg::Dictionary::new();
    options.set("format_whitelist", DEMUXERS);
    options.set("protocol_whitelist", "file");
    let deadline = std::time::Instant::now() + limits.max_wall_time;
    ffmpeg::format::input_with_interrupt_and_dictionary(
        path,
        move || std::time::Instant::now() > deadline,
        options,
    )
}

impl FrameReader {
    /// Opens `path` with as many decoding threads as the machine has.
    pub fn open(path: &Path, limits: &Limits) -> Result<FrameReader, MediaError> {
        FrameReader::open_with_threads(path, limits, 0)
    }

    /// Opens `path` with `threads` frame-decoding threads (0: as many as the machine has).
    /// One thread suits short files decoded side by side, where frame threading would only
    /// add start-up and latency.
    pub fn open_with_threads(
        path: &Path,
        limits: &Limits,
        threads: usize,
    ) -> Result<FrameReader, MediaError> {
        super::init();
        let size_bytes = check_file(path, limits)?;
        let not_media = |e: ffmpeg::Error| MediaError::NotMedia {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let input = open_input(path, limits).map_err(|e| match e {
            // The interrupt: opening took past the processing time limit.
            ffmpeg::Error::Exit => MediaError::TimedOut {
                path: path.to_path_buf(),
                limit_seconds: limits.max_wall_time.as_secs(),
            },
            e => not_media(e),
        })?;
        let stream =
            input
                .streams()
                .best(media::Type::Video)
                .ok_or_else(|| MediaError::NoVideo {
                    path: path.to_path_buf(),
                })?;
        let stream_index = stream.index();
        let time_base = stream.time_base();
        let codec_name = stream.parameters().id().name().to_string();
        let undecodable = |reason: String| MediaError::Undecodable {
            path: path.to_path_buf(),
            codec: codec_name.clone(),
            reason,
        };
        let mut ctx = ffmpeg::codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| undecodable(e.to_string()))?;
        ctx.set_threading(threading::Config {
            kind: threading::Type::Frame,
            count: threads,
            ..Default::default()
        });
        let decoder = ctx
            .decoder()
            .video()
            .map_err(|e| undecodable(e.to_string()))?;
        let (sw, sh) = (decoder.width(), decoder.height());
        if sw > MAX_WIDTH || sh > MAX_HEIGHT {
            return Err(MediaError::TooLarge {
                path: path.to_path_buf(),
                width: sw,
                height: sh,
                max_width: MAX_WIDTH,
                max_height: MAX_HEIGHT,
            });
        }
        if sw < MIN_SIZE || sh < MIN_SIZE {
            return Err(undecodable(format!(
                "{sw}x{sh} is smaller than the {MIN_SIZE}x{MIN_SIZE} minimum"
            )));
        }
        let sar = decoder.aspect_ratio();
        let sample_aspect = if sar.numerator() > 0 && sar.denominator() > 0 {
            (sar.numerator(), sar.denominator())
        } else {
            (1, 1)
        };
        let frame_rate = choose_frame_rate(stream.avg_frame_rate(), stream.rate());
        let stream_duration = if stream.duration() > 0 {
            stream.duration() as f64 * f64::from(time_base)
        } else {
            0.0
        };
        let duration_seconds = if stream_duration > 0.0 {
            stream_duration
        } else if input.duration() > 0 {
            input.duration() as f64 / f64::from(ffmpeg::ffi::AV_TIME_BASE)
        } else {
            0.0
        };
        if duration_seconds > limits.max_duration_seconds {
            return Err(MediaError::TooLong {
                path: path.to_path_buf(),
                seconds: duration_seconds,
                limit: limits.max_duration_seconds,
            });
        }
        let audio = input.streams().best(media::Type::Audio).and_then(|s| {
            let codec = s.parameters().id().name().to_string();
            let dec = ffmpeg::codec::context::Context::from_parameters(s.parameters())
                .ok()?
                .decoder()
                .audio()
                .ok()?;
            Some(AudioInfo {
                codec,
                sample_rate: dec.rate(),
                channels: dec.channels(),
            })
        });
        let info = SourceInfo {
            container: input.format().name().to_string(),
            size_bytes,
            video_codec: codec_name,
            source_width: sw,
            source_height: sh,
            width: sw & !1,
            height: sh & !1,
            sample_aspect,
            frame_rate,
            duration_seconds,
            audio,
        };
        Ok(FrameReader {
            path: path.to_path_buf(),
            fps: info.fps(),
            info,
            limits: limits.clone(),
            started: Instant::now(),
            input,
            decoder,
            stream_index,
            time_base,
            scaler: None,
            origin: None,
            last_ts: None,
            pending: None,
            next_slot: 0,
            ready: VecDeque::new(),
            input_done: false,
            finished: false,
            decode_errors: 0,
            read_error: None,
            check_length: true,
        })
    }

    /// Accepts a file that decodes to less than its declared duration: a media segment read
    /// on its own declares the end time of the whole title.
    pub fn without_length_check(mut self) -> Self {
        self.check_length = false;
        self
    }

    pub fn info(&self) -> &SourceInfo {
        &self.info
    }

    /// Frames emitted so far.
    pub fn frames_emitted(&self) -> u64 {
        self.next_slot - self.ready.len() as u64
    }

    /// The next output frame (YUV 4:2:0, even size, `pts` = index), or `None` at the end.
    pub fn next_frame(&mut self) -> Result<Option<frame::Video>, MediaError> {
        loop {
            if let Some(f) = self.ready.pop_front() {
                return Ok(Some(f));
            }
            if self.finished {
                return Ok(None);
            }
            if self.started.elapsed() > self.limits.max_wall_time {
                return Err(MediaError::TimedOut {
                    path: self.path.clone(),
                    limit_seconds: self.limits.max_wall_time.as_secs(),
                });
            }
            self.pump()?;
        }
    }

    /// Feeds one packet (or the end of input) to the decoder and collects its frames.
    fn pump(&mut self) -> Result<(), MediaError> {
        if self.input_done {
            self.drain()?;
            self.finish()?;
            return Ok(());
        }
        let mut packet = Packet::empty();
        match packet.read(&mut self.input) {
            Ok(()) => {
                if packet.stream() != self.stream_index {
                    return Ok(());
                }
                loop {
                    match self.decoder.send_packet(&packet) {
                        Ok(()) => break,
                        Err(ffmpeg::Error::Other { errno })
                            if errno == ffmpeg::util::error::EAGAIN =>
                        {
                            // The decoder is full: take its frames, then resend.
                            self.drain()?;
                        }
                        Err(ffmpeg::Error::InvalidData) => {
                            self.note_decode_error("corrupt packet")?;
                            break;
                        }
                        Err(e) => {
                            self.note_decode_error(&e.to_string())?;
                            break;
                        }
                    }
                }
                self.drain()
            }
            Err(ffmpeg::Error::Eof) => {
                self.end_of_input();
                Ok(())
            }
            Err(ffmpeg::Error::InvalidData) => self.note_decode_error("corrupt data"),
            // The interrupt: a read stalled past the processing time limit.
            Err(ffmpeg::Error::Exit) => Err(MediaError::TimedOut {
                path: self.path.clone(),
                limit_seconds: self.limits.max_wall_time.as_secs(),
            }),
            Err(e) => {
                // A read error ends the input; the truncation check decides if it matters.
                self.read_error = Some(e.to_string());
                self.end_of_input();
                Ok(())
            }
        }
    }

    fn end_of_input(&mut self) {
        self.input_done = true;
        // Flush: the decoder returns its delayed frames, then EOF.
        let _ = self.decoder.send_eof();
    }

    fn note_decode_error(&mut self, what: &str) -> Result<(), MediaError> {
        self.decode_errors += 1;
        tracing::debug!(path = %self.path.display(), what, "skipping undecodable data");
        if self.decode_errors > MAX_DECODE_ERRORS {
            return Err(MediaError::Undecodable {
                path: self.path.clone(),
                codec: self.info.video_codec.clone(),
                reason: format!("more than {MAX_DECODE_ERRORS} corrupt packets ({what})"),
            });
        }
        Ok(())
    }

    /// Takes every frame the decoder has ready.
    fn drain(&mut self) -> Result<(), MediaError> {
        loop {
            let mut decoded = frame::Video::empty();
            match self.decoder.receive_frame(&mut decoded) {
                Ok(()) => self.accept(decoded)?,
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    return Ok(())
                }
                Err(ffmpeg::Error::Eof) => return Ok(()),
                Err(ffmpeg::Error::InvalidData) => self.note_decode_error("corrupt frame")?,
                Err(e) => self.note_decode_error(&e.to_string())?,
            }
        }
    }

    fn convert(&mut self, decoded: frame::Video) -> Result<frame::Video, MediaError> {
        let (w, h) = (self.info.width, self.info.height);
        if decoded.format() == Pixel::YUV420P && decoded.width() == w && decoded.height() == h {
            return Ok(decoded);
        }
        let key = (decoded.format(), decoded.width(), decoded.height());
        let rebuild = !matches!(&self.scaler, Some((_, f, sw, sh)) if (*f, *sw, *sh) == key);
        if rebuild {
            let ctx = scaling::Context::get(
                key.0,
                key.1,
                key.2,
                Pixel::YUV420P,
                w,
                h,
                scaling::Flags::BICUBIC,
            )
            .map_err(|e| MediaError::Undecodable {
                path: self.path.clone(),
                codec: self.info.video_codec.clone(),
                reason: format!("cannot convert {:?} pictures: {e}", key.0),
            })?;
            self.scaler = Some((ctx, key.0, key.1, key.2));
        }
        let mut out = frame::Video::new(Pixel::YUV420P, w, h);
        if let Some((ctx, ..)) = self.scaler.as_mut() {
            ctx.run(&decoded, &mut out)
                .map_err(|e| MediaError::encode("pixel conversion", e))?;
        }
        Ok(out)
    }

    /// Places a decoded frame on the output time line.
    fn accept(&mut self, decoded: frame::Video) -> Result<(), MediaError> {
        let step = (f64::from(self.time_base.invert()) / self.fps).max(1.0) as i64;
        let ts = decoded
            .timestamp()
            .or(decoded.pts())
            .or_else(|| self.last_ts.map(|t| t + step))
            .unwrap_or(0);
        self.last_ts = Some(ts);
        let origin = *self.origin.get_or_insert(ts);
        let seconds = (ts - origin) as f64 * f64::from(self.time_base);
        let mut slot = (seconds * self.fps).round().max(0.0) as u64;
        if slot > self.next_slot + (MAX_GAP_SECONDS * self.fps) as u64 {
            // Discontinuity: continue the time line instead of filling the gap.
            let shift =
                ((slot - self.next_slot) as f64 / self.fps / f64::from(self.time_base)) as i64;
            self.origin = Some(origin + shift);
            slot = self.next_slot;
        }
        let mut picture = self.convert(decoded)?;
        if let Some(prev) = self.pending.take() {
            while self.next_slot < slot {
                let mut copy = prev.clone();
                copy.set_pts(Some(self.next_slot as i64));
                self.ready.push_back(copy);
                self.next_slot += 1;
            }
        }
        picture.set_pts(None);
        self.pending = Some(picture);
        let emitted = self.next_slot as f64 / self.fps;
        if emitted > self.limits.max_duration_seconds {
            return Err(MediaError::TooLong {
                path: self.path.clone(),
                seconds: emitted,
                limit: self.limits.max_duration_seconds,
            });
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), MediaError> {
        self.finished = true;
        if let Some(mut last) = self.pending.take() {
            last.set_pts(Some(self.next_slot as i64));
            self.ready.push_back(last);
            self.next_slot += 1;
        }
        if self.next_slot == 0 {
            return Err(match self.read_error.take() {
                Some(reason) => MediaError::NotMedia {
                    path: self.path.clone(),
                    reason,
                },
                None => MediaError::NoFrames {
                    path: self.path.clone(),
                },
            });
        }
        let decoded_seconds = self.next_slot as f64 / self.fps;
        let declared = self.info.duration_seconds;
        if self.check_length && declared > 0.0 && decoded_seconds < declared * 0.9 - 0.25 {
            return Err(MediaError::Truncated {
                path: self.path.clone(),
                decoded_seconds,
                declared_seconds: declared,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_rates_are_chosen_and_snapped() {
        assert_eq!(choose_frame_rate(Rational(25, 1), Rational(25, 1)), (25, 1));
        assert_eq!(
            choose_frame_rate(Rational(2997, 100), Rational(0, 1)),
            (30000, 1001)
        );
        assert_eq!(choose_frame_rate(Rational(0, 0), Rational(24, 1)), (24, 1));
        assert_eq!(
            choose_frame_rate(Rational(24000, 1001), Rational(0, 1)),
            (24000, 1001)
        );
        assert_eq!(
            choose_frame_rate(Rational(5994, 100), Rational(0, 1)),
            (60000, 1001)
        );
        assert_eq!(choose_frame_rate(Rational(0, 0), Rational(0, 0)), (25, 1));
        assert_eq!(
            choose_frame_rate(Rational(1000, 1), Rational(1000, 1)),
            (25, 1)
        );
        assert_eq!(
            choose_frame_rate(Rational(15, 1), Rational(15, 1)),
            (15000, 1000)
        );
    }

    /// Untrusted files are opened only as the containers video comes in: a playlist or a
    /// concat script (which would make FFmpeg open the files or URLs it names) is refused, a
    /// real video opens.
    #[test]
    fn only_video_containers_on_local_files_are_opened() {
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/bigbuckbunny.mp4");
        let limits = Limits::default();
        assert!(FrameReader::open(&sample, &limits).is_ok());
        let dir = tempfile::tempdir().unwrap();
        // A concat script naming a file beside it (FFmpeg's own probe opens it as `concat`).
        std::fs::copy(&sample, dir.path().join("inner.mp4")).unwrap();
        let concat = dir.path().join("leak.mp4");
        std::fs::write(&concat, "ffconcat version 1.0\nfile 'inner.mp4'\n").unwrap();
        let playlist = dir.path().join("leak.m3u8");
        std::fs::write(
            &playlist,
            "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nhttp://127.0.0.1:9/x.ts\n#EXT-X-ENDLIST\n",
        )
        .unwrap();
        for refused in [&concat, &playlist] {
            let opened = FrameReader::open(refused, &limits);
            assert!(
                matches!(opened, Err(MediaError::NotMedia { .. })),
                "{}: {:?}",
                refused.display(),
                opened.err()
            );
        }
    }
}
