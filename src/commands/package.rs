//! `leaktrace package INPUT --title TITLE`: package a title and record it.

use std::io::IsTerminal;
use std::time::Duration;

use forensics::media::decode::Limits;
use forensics::package::{self, PackageError, PackageOptions, Progress, Stage};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use shared::config::Config;
use shared::db::repo::videos::{self, NewVideo};
use shared::db::{now, DbError};
use shared::package::{relative_dir, videos_dir};
use shared::secrets::Secrets;
use shared::{domain, sealing};

use super::open_database;
use crate::cli::PackageArgs;
use crate::error::CliError;

impl From<PackageError> for CliError {
    fn from(e: PackageError) -> Self {
        if e.is_input_error() {
            CliError::Input(e.into())
        } else {
            CliError::Failure(e.into())
        }
    }
}

/// Picture buffers (about 3 MB at 1080p) are allocated by FFmpeg on the decoding thread and
/// freed on the encoder threads. glibc raises its mmap threshold each time such a buffer is
/// freed, after which they come from the heap arenas, where cross-thread frees fragment them.
/// A fixed threshold keeps them mmapped and returned on free. (The packaging peak still grows
/// with title length for another reason: see docs/BENCHMARKS.md, Memory.)
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

pub fn run(config: &Config, args: PackageArgs) -> Result<(), CliError> {
    domain::validate_title(&args.title)?;
    keep_picture_buffers_mmapped();
    let (db, _) = open_database(config)?;
    // Refuse a taken title before the expensive part (the insert checks again at the end).
    if videos::find_by_title(&mut *db.conn()?, &args.title)?.is_some() {
        return Err(
            DbError::Conflict(format!("a title named '{}' already exists", args.title)).into(),
        );
    }
    let secrets = Secrets::load_or_create(&config.data_dir, &config.secrets)?;
    let options = PackageOptions {
        unit_seconds: args.unit_seconds,
        crf: args.crf,
        preset: args.preset.clone(),
        strength: args.strength,
        limits: Limits {
            max_input_bytes: config.limits.max_input_bytes,
            max_duration_seconds: config.limits.max_media_seconds,
            max_wall_time: Duration::from_secs(config.limits.max_processing_seconds),
        },
        ..PackageOptions::new(args.title.clone())
    };

    let bar = std::io::stderr().is_terminal().then(progress_bar);
    let mut on_progress = |p: Progress| {
        if let Some(bar) = &bar {
            show(bar, p);
        }
    };
    let packaged = package::package(
        &args.input,
        &videos_dir(&config.data_dir),
        &options,
        &mut on_progress,
    )?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }

    let manifest = packaged.manifest.clone();
    let video_id = manifest.video_id.clone();
    let sealed_secret = sealing::seal(
        secrets.master_key(),
        &sealing::video_secret_aad(&video_id),
        &packaged.secret,
    )
    .map_err(|e| CliError::Failure(e.into()))?;
    let folder = packaged.commit()?;
    let record = NewVideo {
        id: video_id.clone(),
        title: manifest.title.clone(),
        duration_seconds: manifest.video.duration_seconds,
        unit_seconds: manifest.video.unit_seconds(),
        unit_count: manifest.video.unit_count as i32,
        width: manifest.video.width as i32,
        height: manifest.video.height as i32,
        frame_rate: manifest.video.frame_rate[0] as f64 / manifest.video.frame_rate[1] as f64,
        has_audio: manifest.audio.is_some(),
        storage_dir: relative_dir(&video_id),
        sealed_secret,
        source_sha256: manifest.source.sha256.clone(),
        created_at: now(),
    };
    let created = db
        .conn()
        .map_err(CliError::from)
        .and_then(|mut c| videos::create(&mut c, &record).map_err(CliError::from));
    let row = match created {
        Ok(row) => row,
        Err(e) => {
            // Nothing may stay behind without its database row.
            let _ = std::fs::remove_dir_all(&folder);
            return Err(e);
        }
    };
    tracing::info!(video_id = %row.id, title = %row.title, units = row.unit_count, "packaged");

    if args.json {
        let out = json!({
            "video_id": row.id,
            "title": row.title,
            "duration_seconds": row.duration_seconds,
            "unit_seconds": row.unit_seconds,
            "units": row.unit_count,
            "frames": manifest.video.frame_count,
            "width": row.width,
            "height": row.height,
            "frame_rate": row.frame_rate,
            "codec": manifest.video.codec,
            "has_audio": row.has_audio,
            "source_sha256": row.source_sha256,
        });
        println!("{out}");
    } else {
        println!(
            "packaged '{}' as {}: {} units of {:.2} s, {}x{} at {:.3} fps, {}",
            row.title,
            row.id,
            row.unit_count,
            row.unit_seconds,
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
