//! The audio track: decoded, resampled to 48 kHz stereo and encoded to AAC-LC in its own
//! fragmented MP4 (about one fragment per `segment_seconds`). Audio is not watermarked.

use std::path::Path;

use ffmpeg::{codec, encoder, filter, format, frame, media, ChannelLayout, Dictionary, Packet};
use ffmpeg_next as ffmpeg;

use super::decode::{check_file, Limits};
use super::MediaError;

pub const SAMPLE_RATE: i32 = 48_000;
pub const CHANNELS: i32 = 2;
pub const BIT_RATE: usize = 128_000;
/// RFC 6381 codec string of AAC-LC.
pub const CODEC: &str = "mp4a.40.2";

/// What was encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioEncoded {
    pub sample_rate: u32,
    pub channels: u16,
    pub samples: u64,
}

fn err(stage: &'static str) -> impl Fn(ffmpeg::Error) -> MediaError {
    move |e| MediaError::encode(stage, e)
}

/// Encodes the best audio stream of `input` into `out` (fragmented MP4), at most
/// `max_seconds` long. `Ok(None)` when the input has no audio.
pub fn encode_audio(
    input: &Path,
    out: &Path,
    segment_seconds: f64,
    max_seconds: f64,
    limits: &Limits,
) -> Result<Option<AudioEncoded>, MediaError> {
    super::init();
    check_file(input, limits)?;
    let mut ictx = super::decode::open_input(input, limits).map_err(|e| match e {
        ffmpeg_next::Error::Exit => MediaError::TimedOut {
            path: input.to_path_buf(),
            limit_seconds: limits.max_wall_time.as_secs(),
        },
        e => MediaError::NotMedia {
            path: input.to_path_buf(),
            reason: e.to_string(),
        },
    })?;
    let Some(stream) = ictx.streams().best(media::Type::Audio) else {
        return Ok(None);
    };
    let index = stream.index();
    let codec_name = stream.parameters().id().name().to_string();
    let undecodable = |reason: String| MediaError::Undecodable {
        path: input.to_path_buf(),
        codec: format!("{codec_name} audio"),
        reason,
    };
    let mut decoder = codec::context::Context::from_parameters(stream.parameters())
        .and_then(|c| c.decoder().audio())
        .map_err(|e| undecodable(e.to_string()))?;
    decoder
        .set_parameters(stream.parameters())
        .map_err(|e| undecodable(e.to_string()))?;
    if decoder.channel_layout().is_empty() {
        decoder.set_channel_layout(ChannelLayout::default(decoder.channels() as i32));
    }

    let mut octx = format::output_as(out, "mp4").map_err(err("create audio output"))?;
    let aac = encoder::find_by_name("aac")
        .ok_or_else(|| MediaError::encode("find encoder", "this FFmpeg has no AAC encoder"))?;
    let global = octx.format().flags().contains(format::Flags::GLOBAL_HEADER);
    let mut enc = codec::context::Context::new_with_codec(aac)
        .encoder()
        .audio()
        .map_err(err("configure AAC"))?;
    enc.set_rate(SAMPLE_RATE);
    enc.set_channel_layout(ChannelLayout::STEREO);
    enc.set_channels(CHANNELS);
    enc.set_format(format::Sample::F32(format::sample::Type::Planar));
    enc.set_bit_rate(BIT_RATE);
    enc.set_time_base((1, SAMPLE_RATE));
    if global {
        enc.set_flags(codec::Flags::GLOBAL_HEADER);
    }
    let mut encoder = enc.open_as(aac).map_err(err("open AAC"))?;
    {
        let mut ost = octx.add_stream(aac).map_err(err("add audio stream"))?;
        ost.set_parameters(&encoder);
        ost.set_time_base((1, SAMPLE_RATE));
    }
    let mut mux = Dictionary::new();
    mux.set("movflags", "empty_moov+default_base_moof+cmaf");
    mux.set(
        "frag_duration",
        &((segment_seconds * 1_000_000.0).round() as i64).to_string(),
    );
    octx.write_header_with(mux)
        .map_err(err("write audio header"))?;
    let out_tb = octx
        .stream(0)
        .map(|s| s.time_base())
        .ok_or_else(|| MediaError::encode("write audio header", "stream missing"))?;

    let mut graph = build_graph(&decoder, encoder.frame_size()).map_err(err("audio filter"))?;
    let max_samples = (max_seconds * SAMPLE_RATE as f64).round() as u64;
    let mut state = Pipeline {
        samples: 0,
        max_samples,
        out_tb,
    };

    ignore_other_streams(&mut ictx, index);
    loop {
        // A fresh packet per read: av_read_frame does not release what a reused packet held,
        // so reusing one leaks every packet read (the whole file, in the end).
        let mut packet = Packet::empty();
        match packet.read(&mut ictx) {
            Ok(()) if packet.stream() == index => {
                if decoder.send_packet(&packet).is_ok() {
                    state.drain_decoder(&mut decoder, &mut graph, &mut encoder, &mut octx)?;
                }
            }
            Ok(()) => {}
            Err(ffmpeg::Error::Eof) => break,
            Err(ffmpeg::Error::InvalidData) => {}
            // The interrupt: reading stalled past the processing time limit.
            Err(ffmpeg::Error::Exit) => {
                return Err(MediaError::TimedOut {
                    path: input.to_path_buf(),
                    limit_seconds: limits.max_wall_time.as_secs(),
                })
            }
            Err(_) => break,
        }
        if state.samples >= max_samples {
            break;
        }
    }
    let _ = decoder.send_eof();
    state.drain_decoder(&mut decoder, &mut graph, &mut encoder, &mut octx)?;
    if let Some(mut src) = graph.get("in") {
        let _ = src.source().flush();
    }
    state.drain_graph(&mut graph, &mut encoder, &mut octx)?;
    encoder.send_eof().map_err(err("flush AAC"))?;
    state.write_packets(&mut encoder, &mut octx)?;
    octx.write_trailer().map_err(err("write audio trailer"))?;
    if state.samples == 0 {
        return Ok(None);
    }
    Ok(Some(AudioEncoded {
        sample_rate: SAMPLE_RATE as u32,
        channels: CHANNELS as u16,
        samples: state.samples,
    }))
}

/// Tells the demuxer to skip every stream but `keep`, so this pass does not read the video
/// data a second time.
#[allow(unsafe_code)] // one AVStream field: see the SAFETY comment below.
fn ignore_other_streams(ictx: &mut format::context::Input, keep: usize) {
    for i in 0..ictx.nb_streams() as usize {
        if i == keep {
            continue;
        }
        if let Some(mut stream) = ictx.stream_mut(i) {
            // SAFETY: `stream` points at a live AVStream owned by `ictx`, which we borrow
            // mutably; `discard` is a plain field the demuxer reads on its next packet.
            unsafe {
                (*stream.as_mut_ptr()).discard = ffmpeg::ffi::AVDiscard::AVDISCARD_ALL;
            }
        }
    }
}

fn build_graph(
    decoder: &ffmpeg::decoder::Audio,
    frame_size: u32,
) -> Result<filter::Graph, ffmpeg::Error> {
    let mut graph = filter::Graph::new();
    let args = format!(
        "time_base=1/{rate}:sample_rate={rate}:sample_fmt={fmt}:channel_layout=0x{layout:x}",
        rate = decoder.rate(),
        fmt = decoder.format().name(),
        layout = decoder.channel_layout().bits()
    );
    let abuffer = filter::find("abuffer").ok_or(ffmpeg::Error::FilterNotFound)?;
    let abuffersink = filter::find("abuffersink").ok_or(ffmpeg::Error::FilterNotFound)?;
    graph.add(&abuffer, "in", &args)?;
    graph.add(&abuffersink, "out", "")?;
    graph.output("in", 0)?.input("out", 0)?.parse(&format!(
        "aresample={SAMPLE_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo"
    ))?;
    graph.validate()?;
    if let Some(mut out) = graph.get("out") {
        out.sink().set_frame_size(frame_size.max(1));
    }
    Ok(graph)
}

struct Pipeline {
    samples: u64,
    max_samples: u64,
    out_tb: ffmpeg::Rational,
}

impl Pipeline {
    fn drain_decoder(
        &mut self,
        decoder: &mut ffmpeg::decoder::Audio,
        graph: &mut filter::Graph,
        encoder: &mut encoder::Audio,
        octx: &mut format::context::Output,
    ) -> Result<(), MediaError> {
        let mut decoded = frame::Audio::empty();
        while decoder.receive_frame(&mut decoded).is_ok() {
            // The filter sees a continuous time line; timestamps are re-derived from samples.
            decoded.set_pts(None);
            if let Some(mut src) = graph.get("in") {
                src.source().add(&decoded).map_err(err("filter audio"))?;
            }
            self.drain_graph(graph, encoder, octx)?;
        }
        Ok(())
    }

    fn drain_graph(
        &mut self,
        graph: &mut filter::Graph,
        encoder: &mut encoder::Audio,
        octx: &mut format::context::Output,
    ) -> Result<(), MediaError> {
        let Some(mut sink) = graph.get("out") else {
            return Ok(());
        };
        let mut filtered = frame::Audio::empty();
        while sink.sink().frame(&mut filtered).is_ok() {
            if self.samples >= self.max_samples {
                continue;
            }
            filtered.set_pts(Some(self.samples as i64));
            self.samples += filtered.samples() as u64;
            encoder.send_frame(&filtered).map_err(err("encode audio"))?;
            self.write_packets(encoder, octx)?;
        }
        Ok(())
    }

    fn write_packets(
        &mut self,
        encoder: &mut encoder::Audio,
        octx: &mut format::context::Output,
    ) -> Result<(), MediaError> {
        let mut packet = Packet::empty();
        while encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(0);
            packet.rescale_ts((1, SAMPLE_RATE), self.out_tb);
            packet
                .write_interleaved(octx)
                .map_err(err("write audio packet"))?;
        }
        Ok(())
    }
}
