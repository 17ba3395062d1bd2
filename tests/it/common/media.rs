//! Real media for tests: clips generated with the `ffmpeg` CLI and checks made with it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `ffmpeg -y -v error ARGS`, panicking with its message on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-y", "-v", "error"])
        .args(args)
        .output()
        .expect("run ffmpeg (installed by scripts/test.sh)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What [`clip`] generates: lavfi `testsrc2` video (moving, textured and flat areas), optional
/// sine audio, an extra video filter chain and the encoder arguments.
pub struct ClipSpec<'a> {
    pub size: &'a str,
    pub rate: &'a str,
    pub seconds: f64,
    pub audio: bool,
    pub vf: Option<&'a str>,
    pub codec: &'a [&'a str],
}

/// A `seconds` long 480x270 25 fps H.264 clip without audio, `title.mp4` in `dir`: the
/// title the protocol and forensics tests package.
pub fn title_clip(dir: &Path, seconds: f64) -> PathBuf {
    clip(
        dir,
        "title.mp4",
        &ClipSpec {
            size: "480x270",
            rate: "25",
            seconds,
            audio: false,
            vf: None,
            codec: &["-c:v", "libx264", "-crf", "18"],
        },
    )
}

/// The bytes of a `seconds` long 640x360 H.264 clip without audio: a source to package that
/// takes long enough to catch its job running.
pub fn packaging_source(dir: &Path, seconds: f64) -> Vec<u8> {
    let path = clip(
        dir,
        "source.mp4",
        &ClipSpec {
            size: "640x360",
            rate: "25",
            seconds,
            audio: false,
            vf: None,
            codec: &["-c:v", "libx264", "-crf", "20"],
        },
    );
    std::fs::read(path).expect("the source clip")
}

pub fn clip(dir: &Path, name: &str, spec: &ClipSpec) -> PathBuf {
    let out = dir.join(name);
    let seconds = spec.seconds;
    let video = format!(
        "testsrc2=size={}:rate={}:duration={seconds}",
        spec.size, spec.rate
    );
    let mut args: Vec<String> = vec!["-f".into(), "lavfi".into(), "-i".into(), video];
    if spec.audio {
        args.extend(["-f", "lavfi", "-i"].map(String::from));
        args.push(format!(
            "sine=frequency=440:sample_rate=48000:duration={seconds}"
        ));
    }
    if let Some(vf) = spec.vf {
        args.extend(["-vf".to_string(), vf.to_string()]);
    }
    args.extend(spec.codec.iter().map(|s| s.to_string()));
    args.push(out.to_str().expect("utf-8 path").to_string());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ffmpeg(&refs);
    out
}

/// Frames of the first video stream, counted by decoding.
pub fn count_frames(path: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_end_matches(',')
        .parse()
        .unwrap_or_else(|e| {
            panic!(
                "ffprobe frame count: {e}: {:?}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
}

/// Decodes the whole file; returns what FFmpeg printed at level "error" (empty when clean).
pub fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        text.push_str(&format!(" (exit {})", out.status));
    }
    text
}
