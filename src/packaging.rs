//! Packaging a title and recording it, for `leaktrace package` and for the admin console's
//! packaging jobs (kind [`PACKAGE_TITLE`], run by the same workers as analyses).

use std::path::{Path, PathBuf};
use std::time::Duration;

use forensics::media::decode::Limits;
use forensics::package::{self, PackageError, PackageOptions, Progress, Stage};
use formats::layout::DataLayout;
use formats::package::PackageManifest;
use formats::sealing;
use serde::{Deserialize, Serialize};
use serde_json::json;
use shared::config::Config;
use shared::db::repo::jobs::{self, JobRow};
use shared::db::repo::videos::{self, NewVideo, VideoRow};
use shared::db::{now, Db, DbError};
use shared::domain;
use shared::secrets::Secrets;

use crate::error::CliError;

/// The job kind of a packaging request; its payload is a [`PackageJob`].
pub const PACKAGE_TITLE: &str = "package_title";
/// The job kind that builds a packaged title's reference store (`forensics::refstore`), queued
/// by every packaging; its payload is `{"video_id"}`.
pub const BUILD_REFERENCE: &str = "build_reference_store";

impl From<PackageError> for CliError {
    fn from(e: PackageError) -> Self {
        if e.is_input_error() {
            CliError::Input(e.into())
        } else {
            CliError::Failure(e.into())
        }
    }
}

/// What to package a source as.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TitleSpec {
    pub title: String,
    pub unit_seconds: f64,
    pub crf: u8,
    pub preset: String,
    pub strength: f32,
}

impl TitleSpec {
    /// The defaults of `leaktrace package` for `title`.
    pub fn new(title: impl Into<String>) -> TitleSpec {
        let d = PackageOptions::new(title);
        TitleSpec {
            title: d.title,
            unit_seconds: d.unit_seconds,
            crf: d.crf,
            preset: d.preset,
            strength: d.strength,
        }
    }

    fn options(&self, config: &Config) -> PackageOptions {
        PackageOptions {
            unit_seconds: self.unit_seconds,
            crf: self.crf,
            preset: self.preset.clone(),
            strength: self.strength,
            limits: Limits {
                max_input_bytes: config.limits.max_input_bytes,
                max_duration_seconds: config.limits.max_media_seconds,
                max_wall_time: Duration::from_secs(config.limits.max_processing_seconds),
            },
            ..PackageOptions::new(self.title.clone())
        }
    }

    /// Refuses a bad title or options (input errors) and a title already taken (conflict).
    pub fn check(&self, config: &Config, db: &Db) -> Result<(), CliError> {
        domain::validate_title(&self.title)?;
        self.options(config).validate()?;
        if videos::find_by_title(&mut *db.conn()?, &self.title)?.is_some() {
            return Err(DbError::Conflict(format!(
                "a title named '{}' already exists",
                self.title
            ))
            .into());
        }
        Ok(())
    }
}

/// A packaged and recorded title.
pub struct Packaged {
    pub row: VideoRow,
    pub frames: u64,
    pub codec: String,
}

/// One number for the whole run: copying the source is the first 5 %, frames up to 90 %,
/// writing segments and references the rest.
pub fn overall(p: Progress) -> f64 {
    let part = if p.total == 0 {
        0.0
    } else {
        (p.done as f64 / p.total as f64).clamp(0.0, 1.0)
    };
    match p.stage {
        Stage::Source => 0.05 * part,
        Stage::Video => 0.05 + 0.85 * part,
        Stage::Finishing => 0.90 + 0.10 * part,
    }
}

/// Packages `input` as `spec` into the data dir and records the title; nothing stays behind
/// on failure.
pub fn package_and_record(
    config: &Config,
    db: &Db,
    secrets: &Secrets,
    input: &Path,
    spec: &TitleSpec,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<Packaged, CliError> {
    spec.check(config, db)?;
    let packaged = package::package(input, &config.layout(), &spec.options(config), on_progress)?;
    let manifest = packaged.manifest.clone();
    let video_id = manifest.video_id.clone();
    let sealed_secret =
        sealing::seal_video_secret(secrets.master_key(), &video_id, &packaged.secret)
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
        storage_dir: DataLayout::relative_title_dir(&video_id),
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
    // The reference store is built by a worker afterwards: packaging stays as fast as it was,
    // and until the store is there extractions decode the variants instead.
    if config.analysis.reference_store {
        if let Err(e) = enqueue_reference(db, config, &row.id) {
            tracing::warn!(video_id = %row.id, error = %e, "cannot queue the reference store job");
        }
    }
    Ok(Packaged {
        row,
        frames: manifest.video.frame_count,
        codec: manifest.video.codec.clone(),
    })
}

/// The payload of a packaging job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackageJob {
    /// The source file (an upload in the data dir, or a file in the inbox).
    pub source: PathBuf,
    /// Remove the source once packaged (an upload; never an inbox file).
    pub remove_source: bool,
    pub spec: TitleSpec,
    /// Who asked (`user:<id>`), for the audit trail.
    pub requested_by: String,
}

/// Queues a packaging job.
pub fn enqueue(db: &Db, config: &Config, job: &PackageJob) -> Result<JobRow, CliError> {
    let payload = serde_json::to_string(job).map_err(|e| CliError::Failure(e.into()))?;
    let mut conn = db.conn()?;
    let row = jobs::enqueue(
        &mut conn,
        PACKAGE_TITLE,
        &payload,
        config.evidence.job_max_attempts as i32,
    )?;
    shared::db::repo::audit::append(
        &mut conn,
        None,
        &job.requested_by,
        "title_packaging_requested",
        &json!({"job_id": row.id, "title": job.spec.title}).to_string(),
    )?;
    Ok(row)
}

/// Queues the building of a title's reference store.
pub fn enqueue_reference(db: &Db, config: &Config, video_id: &str) -> Result<JobRow, CliError> {
    Ok(jobs::enqueue(
        &mut *db.conn()?,
        BUILD_REFERENCE,
        &json!({ "video_id": video_id }).to_string(),
        config.evidence.job_max_attempts as i32,
    )?)
}

/// The title a reference store job builds for (its payload's `video_id`).
fn reference_job_title(job: &JobRow) -> Option<String> {
    job.payload_str("video_id")
}

/// Queues the reference store of every title that has none and no job building one (titles
/// packaged while the store was switched off, or whose job failed for good); how many.
pub fn queue_missing_reference_stores(db: &Db, config: &Config) -> Result<usize, CliError> {
    let (titles, pending) = {
        let mut conn = db.conn()?;
        (
            videos::list(&mut conn)?,
            jobs::pending(&mut conn, BUILD_REFERENCE)?,
        )
    };
    let queued: std::collections::HashSet<String> =
        pending.iter().filter_map(reference_job_title).collect();
    let mut count = 0;
    for title in titles {
        let layout = config.layout().title(&title.storage_dir);
        if queued.contains(&title.id) || forensics::refstore::exists(&layout) {
            continue;
        }
        enqueue_reference(db, config, &title.id)?;
        count += 1;
    }
    Ok(count)
}

/// Builds a title's reference store, reporting progress; nothing to do when it exists.
pub fn run_reference_job(
    config: &Config,
    db: &Db,
    job: &JobRow,
    report: &dyn Fn(f64),
) -> Result<(), CliError> {
    let video_id = reference_job_title(job)
        .ok_or_else(|| CliError::input("the reference store job has no video_id"))?;
    let row = videos::get(&mut *db.conn()?, &video_id)?;
    let layout = config.layout().title(&row.storage_dir);
    if forensics::refstore::exists(&layout) {
        return Ok(());
    }
    let manifest = PackageManifest::read(&layout)
        .map_err(|e| CliError::input(format!("the title's package.json is unreadable: {e}")))?;
    let work = config
        .layout()
        .work(&format!("reference-{video_id}-{}", shared::db::new_id()));
    std::fs::create_dir_all(&work).map_err(|e| CliError::Failure(e.into()))?;
    let built = forensics::refstore::build_for_title(
        &layout,
        &manifest,
        &work,
        &crate::analysis::limits(config),
        &mut |done, total| report(done as f64 / total.max(1) as f64),
    );
    let _ = std::fs::remove_dir_all(&work);
    let bytes = built?;
    tracing::info!(%video_id, bytes, "reference store built");
    Ok(())
}

/// The payload of a packaging job row.
pub fn job_payload(job: &JobRow) -> Result<PackageJob, CliError> {
    serde_json::from_str(&job.payload)
        .map_err(|e| CliError::input(format!("the packaging job's payload is unreadable: {e}")))
}

/// Runs a packaging job, reporting overall progress. Idempotent: when an earlier attempt
/// already recorded the title from this very source, the job is done.
pub fn run_job(
    config: &Config,
    db: &Db,
    secrets: &Secrets,
    job: &JobRow,
    report: &dyn Fn(f64),
) -> Result<(), CliError> {
    let payload = job_payload(job)?;
    if let Some(existing) = videos::find_by_title(&mut *db.conn()?, &payload.spec.title)? {
        let same = payload.source.is_file()
            && crate::analysis::sha256_file(&payload.source)
                .map(|(_, sha)| sha == existing.source_sha256)
                .unwrap_or(false);
        if !same {
            return Err(CliError::input(format!(
                "a title named '{}' already exists",
                payload.spec.title
            )));
        }
    } else {
        if !payload.source.is_file() {
            return Err(CliError::input(format!(
                "the source file {} is gone",
                payload.source.display()
            )));
        }
        let packaged = package_and_record(
            config,
            db,
            secrets,
            &payload.source,
            &payload.spec,
            &mut |p| report(overall(p)),
        );
        if let Err(e) = packaged {
            // No attempt will follow when the source cannot be packaged or this was the last
            // attempt: drop the upload.
            let last = matches!(e, CliError::Input(_)) || job.attempts >= job.max_attempts;
            if payload.remove_source && last {
                let _ = std::fs::remove_file(&payload.source);
            }
            return Err(e);
        }
    }
    if payload.remove_source {
        let _ = std::fs::remove_file(&payload.source);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overall_progress_rises_through_the_stages() {
        let at = |stage, done, total| overall(Progress { stage, done, total });
        let steps = [
            at(Stage::Source, 0, 10),
            at(Stage::Source, 10, 10),
            at(Stage::Video, 0, 0),
            at(Stage::Video, 50, 100),
            at(Stage::Video, 100, 100),
            at(Stage::Finishing, 1, 2),
            at(Stage::Finishing, 2, 2),
        ];
        assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{steps:?}");
        assert_eq!(steps[0], 0.0);
        assert!((steps[6] - 1.0).abs() < 1e-12);
        // A count beyond the expected total never passes the stage's share.
        assert!(at(Stage::Video, 150, 100) <= 0.9 + 1e-12);
    }
}
