//! Checking an uploaded file in a child process with resource limits (`limits.isolate_probe`,
//! on by default):
//! FFmpeg's demuxers and decoders are large C code fed with bytes anyone can upload, so the
//! first frame is decoded by `leaktrace probe-media` (a hidden subcommand of this same
//! binary) under an address-space limit, a CPU-time limit, no core dumps, at most 64 KiB written to a file
//! and few descriptors, and killed at the wall-time limit. A decoder that crashes, loops or
//! allocates without bound ends the child, and the upload is refused as not decodable; the
//! server goes on.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use forensics::media::decode::Limits;
use rlimit::Resource;
use shared::config::Config;

use crate::uploads::{self, UploadError};

/// The hidden subcommand the child runs.
pub const SUBCOMMAND: &str = "probe-media";

/// Exit status of the child when the file is not a decodable video (its reason on stdout).
const NOT_VIDEO: i32 = 3;

/// What the child is allowed.
#[derive(Debug, Clone)]
pub struct ChildLimits {
    pub memory_bytes: u64,
    pub cpu_seconds: u64,
    pub media: Limits,
}

impl ChildLimits {
    pub fn from_config(config: &Config) -> ChildLimits {
        let media = crate::cases::analysis::limits(config);
        ChildLimits {
            memory_bytes: config.limits.probe_memory_mib << 20,
            // A first frame takes well under a second of CPU; the wall limit stays the bound.
            cpu_seconds: config.limits.max_processing_seconds.clamp(1, 60),
            media,
        }
    }

    fn args(&self) -> Vec<String> {
        vec![
            format!("--memory-bytes={}", self.memory_bytes),
            format!("--cpu-seconds={}", self.cpu_seconds),
            format!("--max-input-bytes={}", self.media.max_input_bytes),
            format!("--max-media-seconds={}", self.media.max_duration_seconds),
            format!(
                "--wall-seconds={}",
                self.media.max_wall_time.as_secs().max(1)
            ),
        ]
    }
}

/// In the child: limits itself, checks `path`, and exits 0 (a video), [`NOT_VIDEO`] (with the
/// reason on stdout) or otherwise (a fault; the parent refuses the file too).
pub fn child_main(path: &Path, limits: &ChildLimits) -> std::process::ExitCode {
    let limited = Resource::AS
        .set(limits.memory_bytes, limits.memory_bytes)
        .and_then(|_| Resource::CPU.set(limits.cpu_seconds, limits.cpu_seconds + 1))
        .and_then(|_| Resource::CORE.set(0, 0))
        .and_then(|_| Resource::FSIZE.set(64 << 10, 64 << 10))
        .and_then(|_| Resource::NOFILE.set(32, 32));
    if let Err(e) = limited {
        println!("cannot limit the probe: {e}");
        return std::process::ExitCode::from(1);
    }
    match uploads::check_video(path, &limits.media) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            print!("{e}");
            std::process::ExitCode::from(NOT_VIDEO as u8)
        }
    }
}

/// In the server: [`uploads::check_video`], done by a child process under `limits`.
pub fn check_isolated(path: &Path, limits: &ChildLimits) -> Result<(), UploadError> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .arg(SUBCOMMAND)
        .args(limits.args())
        .arg("--")
        .arg(path)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + limits.media.max_wall_time + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let mut said = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.by_ref().take(4096).read_to_string(&mut said);
    }
    match status.and_then(|s| s.code()) {
        Some(0) => Ok(()),
        Some(NOT_VIDEO) => Err(UploadError::NotVideo(uploads::without_paths(
            said.trim_start_matches("the file is not a video FFmpeg can read: "),
            &[(path, "the file")],
        ))),
        _ => Err(UploadError::NotVideo(
            "the file could not be decoded within the limits (the decoder ran out of time or \
             memory, or failed)"
                .into(),
        )),
    }
}

/// The upload check as configured: in a child process or in this one.
pub fn check(path: &Path, config: &Config) -> Result<(), UploadError> {
    if config.limits.isolate_probe {
        check_isolated(path, &ChildLimits::from_config(config))
    } else {
        uploads::check_video(path, &crate::cases::analysis::limits(config))
    }
}
