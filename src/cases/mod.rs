//! Cases: a suspect file handed in (by `leaktrace extract`, an analyst's upload or a crawler),
//! recorded with its audit entry, analysed at once or queued as an `analyse_case` job, and
//! finished with its typed result ([`formats::case::CaseResult`]).

pub mod analysis;

use std::path::Path;

use formats::case::{CaseResult, CaseStatus, SubmitterKind};
use serde::Serialize;
use shared::config::Config;
use shared::db::repo::cases::{self, CaseRow, NewCase};
use shared::db::repo::{audit, callbacks, videos};
use shared::db::{Db, DbError};
use shared::secrets::Secrets;

use crate::error::AppError;
use crate::jobs::{self, analyse_case::AnalyseCase};
use crate::uploads::StoredUpload;

/// Who submitted a suspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitter {
    pub kind: SubmitterKind,
    /// The API key's or user's id (none for the CLI).
    pub id: Option<String>,
}

impl Submitter {
    /// The audit trail's name for a submitter.
    pub fn actor(&self) -> String {
        format!("{}:{}", self.kind, self.id.as_deref().unwrap_or("-"))
    }
}

/// A suspect handed in: who, what file (already on disk, hashed), what they expect.
pub struct Submission<'a> {
    pub submitter: &'a Submitter,
    pub file_name: &'a str,
    pub stored_path: &'a Path,
    pub size: u64,
    pub sha256: &'a str,
    pub video_id: Option<&'a str>,
    pub expected_watermark_hash: Option<&'a str>,
}

/// The detail of a `suspect_submitted` audit entry.
#[derive(Serialize)]
struct SubmittedDetail<'a> {
    file_name: &'a str,
    size: u64,
    sha256: &'a str,
    video_id: Option<&'a str>,
    expected_watermark_hash: Option<&'a str>,
}

/// Records a case for a submission, in `status` (`queued` for a job, `running` for the CLI),
/// with its audit entry.
pub fn open_case(
    db: &Db,
    submission: &Submission,
    status: CaseStatus,
) -> Result<CaseRow, AppError> {
    let mut conn = db.conn()?;
    let case = cases::create(
        &mut conn,
        &NewCase {
            submitter_kind: submission.submitter.kind,
            submitter_id: submission.submitter.id.as_deref(),
            file_name: submission.file_name,
            file_size: submission.size as i64,
            file_sha256: submission.sha256,
            stored_path: &submission.stored_path.to_string_lossy(),
            video_id: submission.video_id,
            expected_watermark_hash: submission.expected_watermark_hash,
        },
        status,
    )?;
    let detail = SubmittedDetail {
        file_name: submission.file_name,
        size: submission.size,
        sha256: submission.sha256,
        video_id: submission.video_id,
        expected_watermark_hash: submission.expected_watermark_hash,
    };
    audit::append(
        &mut conn,
        Some(&case.id),
        &submission.submitter.actor(),
        "suspect_submitted",
        &jobs::detail_json(&detail),
    )?;
    Ok(case)
}

/// Refuses a named title that was never packaged.
pub fn check_title(db: &Db, video: Option<&str>) -> Result<(), AppError> {
    if let Some(id) = video {
        videos::get(&mut *db.conn()?, id).map_err(|e| match e {
            DbError::NotFound(_) => AppError::UnknownTitle(id.to_string()),
            other => other.into(),
        })?;
    }
    Ok(())
}

/// What a submitter asks about a stored suspect.
pub struct Request<'a> {
    pub submitter: &'a Submitter,
    pub video_id: Option<&'a str>,
    pub expected_watermark_hash: Option<&'a str>,
    /// Where to POST the verdict when the case ends (a crawler's, checked by the caller).
    pub callback_url: Option<&'a str>,
}

/// The detail of a `job_queued` audit entry.
#[derive(Serialize)]
struct QueuedDetail<'a> {
    job_id: &'a str,
}

/// Records the case of a stored suspect and queues its analysis; returns the case id. The
/// case takes the file as soon as it exists (it is the case's evidence from then on); should
/// queueing fail after that, the case is marked failed rather than left without its file.
pub fn submit(
    config: &Config,
    db: &Db,
    storage: &storage::Storage,
    stored: StoredUpload,
    request: Request,
) -> Result<String, AppError> {
    let case = open_case(
        db,
        &Submission {
            submitter: request.submitter,
            file_name: &stored.file_name,
            stored_path: &stored.path,
            size: stored.size,
            sha256: &stored.sha256,
            video_id: request.video_id,
            expected_watermark_hash: request.expected_watermark_hash,
        },
        CaseStatus::Queued,
    )?;
    let kept = stored.keep();
    let queue = || -> Result<(), AppError> {
        // With a bucket, the suspect goes there too before its analysis is queued: a worker
        // on any machine takes it (the file stays here as the received evidence).
        if let Some(key) = storage.key_of(&kept) {
            storage.publish_file(&key)?;
        }
        let mut conn = db.conn()?;
        // The callback exists before the analysis can end the case.
        if let (Some(url), SubmitterKind::ApiKey, Some(key)) = (
            request.callback_url,
            request.submitter.kind,
            request.submitter.id.as_deref(),
        ) {
            callbacks::create(&mut conn, &case.id, url, key)?;
        }
        let job = jobs::enqueue(
            &mut conn,
            config,
            &AnalyseCase {
                case_id: case.id.clone(),
            },
        )?;
        let detail = jobs::detail_json(&QueuedDetail { job_id: &job.id });
        audit::append(&mut conn, Some(&case.id), "system", "job_queued", &detail)?;
        Ok(())
    };
    if let Err(e) = queue() {
        if let Ok(mut conn) = db.conn() {
            let _ = cases::fail(&mut conn, &case.id, "the analysis could not be queued");
        }
        return Err(e);
    }
    Ok(case.id)
}

/// Analyses `suspect` at once (the CLI): records the case and returns its result.
pub fn analyse(
    config: &Config,
    db: &Db,
    secrets: &Secrets,
    storage: &storage::Storage,
    suspect: &Path,
    video: Option<&str>,
    submitter: &Submitter,
) -> Result<CaseResult, AppError> {
    let (size, sha256) =
        formats::digest::sha256_file(suspect).map_err(|source| AppError::Unreadable {
            path: suspect.to_path_buf(),
            source,
        })?;
    let file_name = suspect
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stored = std::fs::canonicalize(suspect).unwrap_or_else(|_| suspect.to_path_buf());
    // An unknown title is the submitter's mistake, before any case is recorded.
    check_title(db, video)?;
    let case = open_case(
        db,
        &Submission {
            submitter,
            file_name: &file_name,
            stored_path: &stored,
            size,
            sha256: &sha256,
            video_id: video,
            expected_watermark_hash: None,
        },
        CaseStatus::Running,
    )?;
    analysis::run_case(
        config,
        db,
        secrets,
        storage,
        &case,
        &submitter.actor(),
        &|_| {},
    )
}

/// A case row as the database would hold it, for unit tests: `id`, created (and updated) at
/// `at`, queued, with nothing else recorded.
#[cfg(test)]
pub fn sample_row(id: &str, at: chrono::NaiveDateTime) -> CaseRow {
    CaseRow {
        id: id.into(),
        status: CaseStatus::Queued,
        progress: 0.0,
        submitter_kind: SubmitterKind::User,
        submitter_id: None,
        file_name: "s.mp4".into(),
        file_size: 1,
        file_sha256: "0".repeat(64),
        stored_path: "x".into(),
        video_id: None,
        expected_watermark_hash: None,
        verdict: None,
        result_json: None,
        error: None,
        created_at: at,
        updated_at: at,
    }
}
