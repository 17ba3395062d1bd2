//! FFmpeg media I/O (through ffmpeg-next): decoding inputs to constant-rate frames, encoding
//! watermarked variants as CMAF, and splitting fragmented MP4 into segments.

pub mod audio;
pub mod decode;
pub mod encode;
mod error;
pub mod fmp4;

pub use error::MediaError;

use std::sync::Once;

/// Initialises FFmpeg once per process and keeps its own logging quiet (errors only);
/// failures reach callers as `MediaError`s instead.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if let Err(e) = ffmpeg_next::init() {
            tracing::error!(error = %e, "FFmpeg failed to initialise");
        }
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Fatal);
    });
}
