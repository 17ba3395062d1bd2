//! A packaged title's manifest, `package.json`: written by packaging (`forensics`), read by
//! streaming (which never calls FFmpeg) and by extraction. [`PackageManifest::read`] is its one
//! reader. Where the files it describes live is [`crate::layout`]'s.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::layout::{Layout, MAX_SEGMENT_UNITS};

pub const FORMAT_VERSION: u32 = 1;

/// Lower renditions a title may have.
pub const MAX_RENDITIONS: usize = 8;
/// Heights a lower rendition may have.
pub const MIN_RENDITION_HEIGHT: u32 = 90;
pub const MAX_RENDITION_HEIGHT: u32 = 4320;
/// The ladder titles are packaged with unless told otherwise: those of these heights that
/// are below the source's (a 1080p source gets 720p, 480p and 360p besides its own).
pub const DEFAULT_LADDER: [u32; 4] = [1080, 720, 480, 360];

/// Lengths a watermark unit (one bit of a session's code) may have.
pub const MIN_UNIT_SECONDS: f64 = 0.5;
pub const MAX_UNIT_SECONDS: f64 = 4.0;
/// The unit length titles are packaged with unless told otherwise.
pub const DEFAULT_UNIT_SECONDS: f64 = 1.0;

/// Refuses a unit length outside [`MIN_UNIT_SECONDS`]-[`MAX_UNIT_SECONDS`].
pub fn check_unit_seconds(unit_seconds: f64) -> Result<(), String> {
    if (MIN_UNIT_SECONDS..=MAX_UNIT_SECONDS).contains(&unit_seconds) {
        Ok(())
    } else {
        Err(format!(
            "unit length {unit_seconds} s is outside {MIN_UNIT_SECONDS}-{MAX_UNIT_SECONDS} s"
        ))
    }
}

/// Refuses units per segment outside 1-[`MAX_SEGMENT_UNITS`], or segments of units that long
/// longer than [`MAX_UNIT_SECONDS`] (one GOP each).
pub fn check_segment_units(unit_seconds: f64, segment_units: u32) -> Result<(), String> {
    if !(1..=MAX_SEGMENT_UNITS).contains(&segment_units) {
        return Err(format!(
            "{segment_units} units per segment is outside 1-{MAX_SEGMENT_UNITS}"
        ));
    }
    let segment_seconds = unit_seconds * segment_units as f64;
    if segment_seconds > MAX_UNIT_SECONDS {
        return Err(format!(
            "segments of {segment_seconds} s are longer than {MAX_UNIT_SECONDS} s"
        ));
    }
    Ok(())
}

/// Refuses a rendition ladder (heights of the lower renditions) outside the rules: at most
/// [`MAX_RENDITIONS`] heights, each even and within the bounds.
pub fn check_ladder(ladder: &[u32]) -> Result<(), String> {
    if ladder.len() > MAX_RENDITIONS {
        return Err(format!("at most {MAX_RENDITIONS} lower renditions"));
    }
    match ladder
        .iter()
        .find(|&&h| !(MIN_RENDITION_HEIGHT..=MAX_RENDITION_HEIGHT).contains(&h) || h % 2 != 0)
    {
        Some(h) => Err(format!(
            "rendition height {h} is not an even number of lines from \
             {MIN_RENDITION_HEIGHT} to {MAX_RENDITION_HEIGHT}"
        )),
        None => Ok(()),
    }
}

/// A ladder as written in settings and forms: heights separated by commas ("720,480,360"),
/// or "none" (or nothing) for a single rendition.
pub fn parse_ladder(text: &str) -> Result<Vec<u32>, String> {
    let text = text.trim();
    if text.is_empty() || text == "none" {
        return Ok(Vec::new());
    }
    let ladder = text
        .split(',')
        .map(|h| {
            h.trim().parse::<u32>().map_err(|_| {
                format!("{h:?} is not a height: write heights separated by commas, or none")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_ladder(&ladder)?;
    Ok(ladder)
}

/// `package.json` cannot be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a package manifest: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl PackageManifest {
    /// Reads and parses a title's `package.json`.
    pub fn read(layout: &Layout) -> Result<PackageManifest, ManifestError> {
        let path = layout.manifest();
        let bytes = std::fs::read(&path).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| ManifestError::Parse { path, source })
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
    /// Lower renditions for adaptive streaming, largest first (the top one is `video`): the
    /// same units in both variants, scaled from the marked frames. Empty for a title
    /// packaged with one rendition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renditions: Vec<Rendition>,
}

/// One lower rendition: its number `index` (1 for the first below the top one) names its
/// folder and its segments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rendition {
    pub index: u32,
    /// RFC 6381 codec string.
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// Measured bits per second (variant A, whole title).
    pub bandwidth: u64,
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
    /// Frames per watermark unit (one bit of a session's code).
    pub unit_frames: u32,
    /// Watermark units in the title (the length of a session's code).
    pub unit_count: u32,
    /// Watermark units per segment (the title's GOP and delivery unit): 1, segments in
    /// variants A and B; 2, each segment holds two units and comes in four variants (`aa`,
    /// `ab`, `ba`, `bb`), so units half a segment long cost no shorter GOPs. Absent: 1.
    #[serde(
        default = "default_segment_units",
        skip_serializing_if = "is_default_segment_units"
    )]
    pub segment_units: u32,
    pub duration_seconds: f64,
    pub crf: u8,
    pub preset: String,
    /// Presentation time of the first frame (the encoder's B-frame delay; fragmented MP4 has
    /// no edit list to hide it). The MPD's `presentationTimeOffset` removes it.
    #[serde(default)]
    pub start_seconds: f64,
    /// Measured bits per second (variant A, whole title); absent in titles packaged before
    /// it was measured (the MPD then states a nominal rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<u64>,
}

/// Watermark units per segment where none is written (manifests, queued jobs and records from
/// before there was a choice).
pub fn default_segment_units() -> u32 {
    1
}

fn is_default_segment_units(n: &u32) -> bool {
    *n == default_segment_units()
}

impl VideoTrack {
    /// Length of one watermark unit in seconds (`unit_frames` frames at the frame rate).
    pub fn unit_seconds(&self) -> f64 {
        self.unit_frames as f64 * self.frame_rate[1] as f64 / self.frame_rate[0].max(1) as f64
    }

    /// Watermark units per segment (1 to [`MAX_SEGMENT_UNITS`], as packaging writes it).
    pub fn units_per_segment(&self) -> u32 {
        self.segment_units.clamp(1, MAX_SEGMENT_UNITS)
    }

    /// Frames per segment (a closed GOP).
    pub fn segment_frames(&self) -> u32 {
        self.unit_frames * self.units_per_segment()
    }

    /// Length of one segment in seconds: what a player fetches and the pace counts.
    pub fn segment_seconds(&self) -> f64 {
        self.unit_seconds() * self.units_per_segment() as f64
    }

    /// Segments in the title (the last may hold fewer units).
    pub fn segment_count(&self) -> u32 {
        self.unit_count.div_ceil(self.units_per_segment())
    }

    /// The 1-based segment holding 1-based unit `unit`, and the unit's 0-based place in it.
    pub fn segment_of(&self, unit: u32) -> (u32, u32) {
        let n = self.units_per_segment();
        let i = unit.saturating_sub(1);
        (i / n + 1, i % n)
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
    /// How the sessions' codes are built (titles packaged before there was a choice read
    /// `uniform-v1`, the construction they were packaged with).
    #[serde(default)]
    pub code: crate::codes::CodeScheme,
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
    fn unit_lengths_and_units_per_segment_are_checked() {
        for ok in [0.5, 1.0, 2.5, 4.0] {
            assert!(check_unit_seconds(ok).is_ok(), "{ok}");
        }
        for bad in [
            0.49,
            4.01,
            0.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            assert!(check_unit_seconds(bad).is_err(), "{bad}");
        }
        for (unit, n) in [(1.0, 1), (4.0, 1), (0.5, 2), (2.0, 2)] {
            assert!(check_segment_units(unit, n).is_ok(), "{unit} x {n}");
        }
        for (unit, n) in [(1.0, 0), (1.0, 3), (2.5, 2), (4.0, 2)] {
            assert!(check_segment_units(unit, n).is_err(), "{unit} x {n}");
        }
        let err = check_segment_units(3.0, 2).unwrap_err();
        assert!(err.contains("6 s") && err.contains("4 s"), "{err}");
    }

    #[test]
    fn unit_frames() {
        let t = VideoTrack {
            codec: "avc1.64001f".into(),
            width: 1280,
            height: 720,
            sample_aspect: [1, 1],
            frame_rate: [25, 1],
            frame_count: 132,
            unit_frames: 25,
            unit_count: 6,
            segment_units: 1,
            duration_seconds: 5.28,
            crf: 20,
            preset: "faster".into(),
            start_seconds: 0.08,
            bandwidth: None,
        };
        assert_eq!(t.frames_in_unit(1), 25);
        assert_eq!(t.frames_in_unit(6), 7);
        assert_eq!(t.frames_in_unit(7), 0);
        assert_eq!((t.segment_count(), t.segment_frames()), (6, 25));
        assert_eq!(t.segment_of(6), (6, 0));
        // Two units per segment: 6 units of 25 frames in 3 segments of 50.
        let two = VideoTrack {
            segment_units: 2,
            ..t.clone()
        };
        assert_eq!((two.segment_count(), two.segment_frames()), (3, 50));
        assert_eq!(two.segment_seconds(), 2.0);
        assert_eq!(two.unit_seconds(), 1.0);
        assert_eq!(
            [two.segment_of(1), two.segment_of(2), two.segment_of(5)],
            [(1, 0), (1, 1), (3, 0)]
        );
        let odd = VideoTrack {
            unit_count: 5,
            ..two
        };
        assert_eq!(odd.segment_count(), 3);
        // Manifests written before segments could hold two units read as one.
        let mut json = serde_json::to_value(&t).unwrap();
        assert!(
            json.get("segment_units").is_none(),
            "one unit is not written"
        );
        json.as_object_mut().unwrap().remove("segment_units");
        assert_eq!(
            serde_json::from_value::<VideoTrack>(json)
                .unwrap()
                .segment_units,
            1
        );
    }

    #[test]
    fn a_missing_or_foreign_manifest_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        assert!(matches!(
            PackageManifest::read(&layout),
            Err(ManifestError::Read { .. })
        ));
        std::fs::write(layout.manifest(), b"{\"format_version\": 1}").unwrap();
        assert!(matches!(
            PackageManifest::read(&layout),
            Err(ManifestError::Parse { .. })
        ));
    }
}
