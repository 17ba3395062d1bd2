use std::path::PathBuf;

/// Errors of media input and output. Input problems name the file and what is wrong with it;
/// `is_input_error()` tells them apart from failures of this machine.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("{path} does not exist")]
    Missing { path: PathBuf },
    #[error("{path} is empty (zero bytes)")]
    Empty { path: PathBuf },
    #[error("{path} is not a video FFmpeg can read: {reason}")]
    NotMedia { path: PathBuf, reason: String },
    #[error("{path} has no video stream (audio only?)")]
    NoVideo { path: PathBuf },
    #[error(
        "{path}: video dimensions {width}x{height} exceed the 8K limit ({max_width}x{max_height})"
    )]
    TooLarge {
        path: PathBuf,
        width: u32,
        height: u32,
        max_width: u32,
        max_height: u32,
    },
    #[error("{path}: FFmpeg cannot decode its {codec} video: {reason}")]
    Undecodable {
        path: PathBuf,
        codec: String,
        reason: String,
    },
    #[error("{path} is truncated or corrupt: only {decoded_seconds:.2} s of its {declared_seconds:.2} s could be decoded")]
    Truncated {
        path: PathBuf,
        decoded_seconds: f64,
        declared_seconds: f64,
    },
    #[error("{path}: no video frame could be decoded")]
    NoFrames { path: PathBuf },
    #[error("{path} is {bytes} bytes, above the {limit}-byte limit")]
    InputTooBig {
        path: PathBuf,
        bytes: u64,
        limit: u64,
    },
    #[error("{path} lasts {seconds:.0} s, above the {limit:.0} s limit")]
    TooLong {
        path: PathBuf,
        seconds: f64,
        limit: f64,
    },
    #[error("{path}: processing stopped after the {limit_seconds} s time limit")]
    TimedOut { path: PathBuf, limit_seconds: u64 },
    #[error("encoding failed ({stage}): {reason}")]
    Encode { stage: &'static str, reason: String },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl MediaError {
    pub fn code(&self) -> &'static str {
        match self {
            MediaError::Missing { .. } => "file_not_found",
            MediaError::Empty { .. } => "empty_file",
            MediaError::NotMedia { .. } => "not_a_video",
            MediaError::NoVideo { .. } => "no_video_stream",
            MediaError::TooLarge { .. } => "dimensions_too_large",
            MediaError::Undecodable { .. } => "undecodable_video",
            MediaError::Truncated { .. } => "truncated_video",
            MediaError::NoFrames { .. } => "no_frames",
            MediaError::InputTooBig { .. } => "input_too_large",
            MediaError::TooLong { .. } => "video_too_long",
            MediaError::TimedOut { .. } => "timed_out",
            MediaError::Encode { .. } => "encoding_failed",
            MediaError::Io { .. } => "io_error",
        }
    }

    /// True when the input is at fault (bad file, over a limit), false for local failures.
    pub fn is_input_error(&self) -> bool {
        !matches!(self, MediaError::Encode { .. } | MediaError::Io { .. })
    }

    pub(crate) fn encode(stage: &'static str, e: impl std::fmt::Display) -> Self {
        MediaError::Encode {
            stage,
            reason: e.to_string(),
        }
    }
}
