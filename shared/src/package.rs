//! The on-disk form of a packaged title, shared by the packager (forensics, which writes it)
//! and the streaming side (which reads it and never calls FFmpeg).
//!
//! ```text
//! <data>/videos/<video_id>/
//!   package.json          PackageManifest
//!   video/init.mp4        the one init segment (identical for A and B)
//!   video/a/<k>.m4s       unit k (1-based) of variant A
//!   video/b/<k>.m4s       unit k of variant B
//!   audio/init.mp4        unmarked audio track (when the source has audio)
//!   audio/<k>.m4s
//!   reference/thumbs.bin  per-frame luma thumbnails of the unmarked source (alignment)
//!   source/original.<ext> the source as received
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const MANIFEST_FILE: &str = "package.json";
pub const FORMAT_VERSION: u32 = 1;

/// Folder of all titles inside the data dir.
pub fn videos_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("videos")
}

/// Where one title lives, relative to the data dir (stored in the database).
pub fn relative_dir(video_id: &str) -> String {
    format!("videos/{video_id}")
}

/// The two watermark variants of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Variant {
    A,
    B,
}

impl Variant {
    pub fn folder(self) -> &'static str {
        match self {
            Variant::A => "a",
            Variant::B => "b",
        }
    }
}

/// Paths inside one title's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }
    pub fn manifest(&self) -> PathBuf {
        self.root.join(MANIFEST_FILE)
    }
    pub fn video_init(&self) -> PathBuf {
        self.root.join("video").join("init.mp4")
    }
    /// Unit `unit` is 1-based, as in segment URLs.
    pub fn video_unit(&self, variant: Variant, unit: u32) -> PathBuf {
        self.root
            .join("video")
            .join(variant.folder())
            .join(format!("{unit}.m4s"))
    }
    pub fn audio_init(&self) -> PathBuf {
        self.root.join("audio").join("init.mp4")
    }
    pub fn audio_unit(&self, unit: u32) -> PathBuf {
        self.root.join("audio").join(format!("{unit}.m4s"))
    }
    pub fn thumbnails(&self) -> PathBuf {
        self.root.join("reference").join("thumbs.bin")
    }
    pub fn source_dir(&self) -> PathBuf {
        self.root.join("source")
    }
}

/// Everything about a packaged title that playback and extraction need (no secrets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageManifest {
    pub format_version: u32,
    pub video_id: String,
    pub title: String,
    pub video: VideoTrack,
    pub audio: Option<AudioTrack>,
    pub watermark: WatermarkParams,
    pub source: SourceFile,
    /// Thumbnail size in `reference/thumbs.bin`.
    pub thumbnail_size: [u32; 2],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoTrack {
    /// RFC 6381 codec string, e.g. `avc1.64001f`.
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub sample_aspect: [i32; 2],
    pub frame_rate: [i32; 2],
    pub frame_count: u64,
    pub unit_frames: u32,
    pub unit_count: u32,
    pub duration_seconds: f64,
    pub crf: u8,
    pub preset: String,
    /// Presentation time of the first frame (the encoder's B-frame delay; fragmented MP4 has
    /// no edit list to hide it). The MPD's `presentationTimeOffset` removes it.
    #[serde(default)]
    pub start_seconds: f64,
}

impl VideoTrack {
    /// Length of one unit in seconds (`unit_frames` frames at the frame rate).
    pub fn unit_seconds(&self) -> f64 {
        self.unit_frames as f64 * self.frame_rate[1] as f64 / self.frame_rate[0].max(1) as f64
    }

    /// Frames in unit `unit` (1-based); the last unit may be shorter.
    pub fn frames_in_unit(&self, unit: u32) -> u64 {
        let start = (unit as u64 - 1) * self.unit_frames as u64;
        self.frame_count
            .saturating_sub(start)
            .min(self.unit_frames as u64)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioTrack {
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u16,
    pub segment_count: u32,
    pub segment_seconds: f64,
    /// Presentation time of the first sample.
    #[serde(default)]
    pub start_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatermarkParams {
    pub algorithm: String,
    pub strength: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceFile {
    pub file_name: String,
    pub size_bytes: u64,
    pub sha256: String,
    pub container: String,
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub duration_seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_paths_and_unit_frames() {
        let l = Layout::new("/d/videos/v1");
        assert_eq!(
            l.video_unit(Variant::B, 3),
            PathBuf::from("/d/videos/v1/video/b/3.m4s")
        );
        assert_eq!(l.manifest(), PathBuf::from("/d/videos/v1/package.json"));
        let t = VideoTrack {
            codec: "avc1.64001f".into(),
            width: 1280,
            height: 720,
            sample_aspect: [1, 1],
            frame_rate: [25, 1],
            frame_count: 132,
            unit_frames: 25,
            unit_count: 6,
            duration_seconds: 5.28,
            crf: 20,
            preset: "faster".into(),
            start_seconds: 0.08,
        };
        assert_eq!(t.frames_in_unit(1), 25);
        assert_eq!(t.frames_in_unit(6), 7);
        assert_eq!(t.frames_in_unit(7), 0);
    }
}
