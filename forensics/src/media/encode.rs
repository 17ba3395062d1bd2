//! Encoding one watermarked variant with libx264 into a fragmented MP4, one closed GOP (one
//! fragment) per segment. Every variant uses exactly these settings, so their init segments
//! are byte-identical and any sequence of the variants' fragments after it is a valid stream.

use std::path::{Path, PathBuf};

use ffmpeg::format::Pixel;
use ffmpeg::{codec, encoder, format, frame, picture, Dictionary, Packet, Rational};
use ffmpeg_next as ffmpeg;
use serde::{Deserialize, Serialize};

use super::MediaError;

/// Encoder settings shared by both variants (and by the unmarked encode the quality tool
/// compares against).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderSettings {
    /// libx264 constant rate factor.
    pub crf: u8,
    /// libx264 preset.
    pub preset: String,
    /// Frames per segment: the GOP length and fragment length.
    pub segment_frames: u32,
}

pub const DEFAULT_CRF: u8 = 20;
/// libx264 threads per variant encoder.
pub const ENCODER_THREADS: u32 = 2;
pub const DEFAULT_PRESET: &str = "faster";

/// Size, pixel shape and rate of the encoded pictures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub width: u32,
    pub height: u32,
    pub sample_aspect: (i32, i32),
    pub frame_rate: (i32, i32),
}

/// The fragmented-MP4 muxer flags: a fragment starts at every keyframe (= every segment), the
/// `moov` is written first with no samples, offsets are relative to each `moof`, CMAF brands.
const MOVFLAGS: &str = "frag_keyframe+empty_moov+default_base_moof+cmaf";

pub struct VariantWriter {
    path: PathBuf,
    output: format::context::Output,
    encoder: encoder::Video,
    encoder_time_base: Rational,
    stream_time_base: Rational,
    segment_frames: u32,
}

fn err(stage: &'static str) -> impl Fn(ffmpeg::Error) -> MediaError {
    move |e| MediaError::encode(stage, e)
}

impl VariantWriter {
    pub fn create(
        path: &Path,
        geometry: Geometry,
        settings: &EncoderSettings,
    ) -> Result<VariantWriter, MediaError> {
        super::init();
        let mut output = format::output_as(path, "mp4").map_err(err("create output"))?;
        let codec = encoder::find_by_name("libx264").ok_or_else(|| {
            MediaError::encode("find encoder", "this FFmpeg has no libx264 encoder")
        })?;
        let global_header = output
            .format()
            .flags()
            .contains(format::Flags::GLOBAL_HEADER);
        let encoder_time_base = Rational(geometry.frame_rate.1, geometry.frame_rate.0);
        let mut ctx = codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(err("configure encoder"))?;
        ctx.set_width(geometry.width);
        ctx.set_height(geometry.height);
        ctx.set_format(Pixel::YUV420P);
        ctx.set_time_base(encoder_time_base);
        ctx.set_frame_rate(Some(Rational(geometry.frame_rate.0, geometry.frame_rate.1)));
        ctx.set_aspect_ratio(Rational(geometry.sample_aspect.0, geometry.sample_aspect.1));
        ctx.set_gop(settings.segment_frames);
        if global_header {
            ctx.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        let n = settings.segment_frames;
        let mut options = Dictionary::new();
        options.set("preset", &settings.preset);
        options.set("crf", &settings.crf.to_string());
        options.set("forced-idr", "1");
        // Two or four encoders per rendition (one per variant) run side by side on the
        // machine's cores: each gets a bounded number of frame threads, which also bounds the
        // reference and lookahead frames held in memory.
        options.set("threads", &ENCODER_THREADS.to_string());
        options.set(
            "x264-params",
            &format!("keyint={n}:min-keyint={n}:scenecut=0:open-gop=0"),
        );
        let encoder = ctx.open_with(options).map_err(err("open libx264"))?;
        {
            let mut stream = output.add_stream(codec).map_err(err("add stream"))?;
            stream.set_parameters(&encoder);
            stream.set_time_base(encoder_time_base);
        }
        let mut mux = Dictionary::new();
        mux.set("movflags", MOVFLAGS);
        output.write_header_with(mux).map_err(err("write header"))?;
        let stream_time_base = output
            .stream(0)
            .map(|s| s.time_base())
            .ok_or_else(|| MediaError::encode("write header", "output stream missing"))?;
        Ok(VariantWriter {
            path: path.to_path_buf(),
            output,
            encoder,
            encoder_time_base,
            stream_time_base,
            segment_frames: n,
        })
    }

    /// Encodes frame `pts` (its index). The first frame of every segment is forced to an IDR.
    pub fn write(&mut self, picture_frame: &mut frame::Video) -> Result<(), MediaError> {
        let index = picture_frame.pts().unwrap_or(0);
        let kind = if index % self.segment_frames as i64 == 0 {
            picture::Type::I
        } else {
            picture::Type::None
        };
        picture_frame.set_kind(kind);
        self.encoder
            .send_frame(picture_frame)
            .map_err(err("encode frame"))?;
        self.write_packets()
    }

    fn write_packets(&mut self) -> Result<(), MediaError> {
        let mut packet = Packet::empty();
        loop {
            match self.encoder.receive_packet(&mut packet) {
                Ok(()) => {
                    packet.set_stream(0);
                    // Durations before rescaling, so the last sample of a fragment has one.
                    packet.set_duration(1);
                    packet.rescale_ts(self.encoder_time_base, self.stream_time_base);
                    packet
                        .write_interleaved(&mut self.output)
                        .map_err(err("write packet"))?;
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    return Ok(())
                }
                Err(ffmpeg::Error::Eof) => return Ok(()),
                Err(e) => return Err(MediaError::encode("receive packet", e)),
            }
        }
    }

    /// Flushes the encoder and closes the file.
    pub fn finish(mut self) -> Result<PathBuf, MediaError> {
        self.encoder.send_eof().map_err(err("flush encoder"))?;
        self.write_packets()?;
        self.output.write_trailer().map_err(err("write trailer"))?;
        Ok(self.path)
    }
}
