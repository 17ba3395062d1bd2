//! `leaktrace package INPUT --title TITLE`: package a title and record it.

use std::io::IsTerminal;

use forensics::package::{Progress, Stage};
use formats::codes::CodeScheme;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use shared::config::Config;
use shared::secrets::Secrets;

use super::open_database;
use crate::cli::PackageArgs;
use crate::error::AppError;
use crate::packaging::{self, Requested, TitleSpec};

/// Picture buffers (about 3 MB at 1080p) are allocated by FFmpeg on the decoding thread and
/// freed on the encoder threads. glibc raises its mmap threshold each time such a buffer is
/// freed, after which they come from the heap arenas, where cross-thread frees fragment them.
/// A fixed threshold keeps them mmapped and returned on free. (The packaging peak still grows
/// with title length for another reason: see docs/BENCHMARKS.md, Memory.)
#[allow(unsafe_code)] // mallopt: see the SAFETY comment below.
fn keep_picture_buffers_mmapped() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator tuning; it is called before any worker
        // thread of this command exists.
        let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20) };
        if ok != 1 {
            tracing::debug!("mallopt(M_MMAP_THRESHOLD) was refused");
        }
    }
}

/// What `leaktrace package --json` prints.
#[derive(Serialize)]
struct PackagedJson<'a> {
    video_id: &'a str,
    title: &'a str,
    duration_seconds: f64,
    unit_seconds: f64,
    units: i32,
    segment_units: u32,
    segments: u32,
    code: CodeScheme,
    frames: u64,
    width: i32,
    height: i32,
    frame_rate: f64,
    codec: &'a str,
    has_audio: bool,
    source_sha256: &'a str,
}

pub fn run(config: &Config, args: PackageArgs) -> Result<(), AppError> {
    keep_picture_buffers_mmapped();
    let (db, _) = open_database(config)?;
    let asked = Requested {
        unit_seconds: args.unit_seconds,
        segment_units: args.segment_units,
        crf: Some(args.crf),
        preset: Some(args.preset.clone()),
        strength: Some(args.strength),
        code: args.code,
        ladder: args.ladder.clone().map(|l| l.0),
    };
    let spec = TitleSpec::requested(args.title.clone(), asked, &config.packaging)?;
    // Refuse a bad or taken title before the expensive part (checked again at the end).
    spec.check(config, &db)?;
    let secrets = Secrets::load_or_create(&config.data_dir, &config.secrets)?;
    let bar = std::io::stderr().is_terminal().then(progress_bar);
    let mut on_progress = |p: Progress| {
        if let Some(bar) = &bar {
            show(bar, p);
        }
    };
    let packaged = packaging::package_and_record(
        config,
        &db,
        &secrets,
        &*super::open_storage(config)?,
        &args.input,
        &spec,
        &mut on_progress,
    )?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let row = &packaged.row;

    if args.json {
        let out = PackagedJson {
            video_id: &row.id,
            title: &row.title,
            duration_seconds: row.duration_seconds,
            unit_seconds: row.unit_seconds,
            units: row.unit_count,
            segment_units: packaged.segment_units,
            segments: packaged.segments,
            code: spec.code,
            frames: packaged.frames,
            width: row.width,
            height: row.height,
            frame_rate: row.frame_rate,
            codec: &packaged.codec,
            has_audio: row.has_audio,
            source_sha256: &row.source_sha256,
        };
        let json = serde_json::to_string(&out)
            .map_err(|e| AppError::Server(format!("cannot print the result: {e}")))?;
        println!("{json}");
    } else {
        println!(
            "packaged '{}' as {}: {} units of {:.2} s in {} segments ({} codes), {}x{} at \
             {:.3} fps, {}",
            row.title,
            row.id,
            row.unit_count,
            row.unit_seconds,
            packaged.segments,
            spec.code,
            row.width,
            row.height,
            row.frame_rate,
            if row.has_audio {
                "with audio"
            } else {
                "no audio"
            }
        );
    }
    Ok(())
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

fn show(bar: &ProgressBar, p: Progress) {
    let msg = match p.stage {
        Stage::Source => "copying",
        Stage::Video => "frames",
        Stage::Finishing => "segments",
    };
    if bar.message() != msg {
        bar.set_message(msg);
        bar.set_position(0);
    }
    bar.set_length(p.total);
    bar.set_position(p.done);
}
