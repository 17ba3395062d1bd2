//! `leaktrace doctor`: what a crash (kill -9, power loss) can leave behind, found by comparing
//! the data dir with the database, and removed on request. The write paths are built so that
//! a crash leaves nothing visible (titles are published by a rename, then recorded; uploads
//! are renamed when complete; reference stores are published whole; jobs are leased and
//! retried), but they can leave files no row will ever name:
//!
//! | finding | what it is | cleaned |
//! |---|---|---|
//! | `staging_title` | `videos/.staging-<id>/`: a packaging that died; its job retries anew | yes |
//! | `unrecorded_title` | `videos/<id>/` without its row: died between publish and record | yes |
//! | `partial_upload` | `uploads/<id>.part`: an upload cut off | yes |
//! | `orphan_upload` | `uploads/<id>.upload` no case or queued packaging names | yes |
//! | `orphan_source` | `sources/<file>` no queued or running packaging job names | yes |
//! | `orphan_work` | `work/<dir>` of no running job (analyses, reference store builds) | yes |
//! | `orphan_report` | `reports/<file>` no evidence report row names | yes |
//! | `missing_title_files` | a title row whose manifest is gone (from the data dir, and from the bucket when there is one) | no: restore it |
//! | `stale_lease` | a running job whose worker's lease expired: a worker will retry it | no |
//! | `audit_broken` | the audit chain does not verify | no |
//!
//! Files younger than the grace period are left alone (an upload or a publish may be under
//! way on another instance).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use shared::config::Config;
use shared::db::repo::audit::{self, Verification};
use shared::db::repo::jobs::{self, JobKind, JobRow, JobStatus};
use shared::db::repo::{cases, evidence_reports, videos};
use shared::db::{Db, DbError};

use crate::jobs::analyse_case::AnalyseCase;
use crate::jobs::build_reference_store::BuildReferenceStore;
use crate::jobs::package_title::PackageTitle;

formats::named_enum! {
    /// The kinds of [`Finding`].
    pub enum FindingKind {
        StagingTitle = "staging_title",
        UnrecordedTitle = "unrecorded_title",
        PartialUpload = "partial_upload",
        OrphanUpload = "orphan_upload",
        OrphanSource = "orphan_source",
        OrphanWork = "orphan_work",
        OrphanReport = "orphan_report",
        MissingTitleFiles = "missing_title_files",
        StaleLease = "stale_lease",
        AuditBroken = "audit_broken",
    }
}

impl FindingKind {
    /// Whether `--clean` removes what this finding names.
    pub fn cleanable(self) -> bool {
        !matches!(
            self,
            FindingKind::MissingTitleFiles | FindingKind::StaleLease | FindingKind::AuditBroken
        )
    }
}

/// One thing out of place.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// The file or folder, relative to the data dir (none for database findings).
    pub path: Option<PathBuf>,
    pub detail: String,
    /// Set by [`clean`]: the file or folder was removed.
    pub removed: bool,
}

/// What one examination found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    /// Findings still standing (not removed).
    pub fn remaining(&self) -> usize {
        self.findings.iter().filter(|f| !f.removed).count()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
}

/// What the database says is in use.
struct InUse {
    video_ids: HashSet<String>,
    case_files: HashSet<String>,
    report_files: HashSet<String>,
    /// Sources named by packaging jobs still to run or running.
    sources: HashSet<String>,
    /// Packaging jobs running under a live lease.
    packaging_running: bool,
    /// Work folder prefixes of jobs running under a live lease.
    work_prefixes: Vec<String>,
    stale: Vec<JobRow>,
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn in_use(db: &Db) -> Result<(InUse, Vec<videos::VideoRow>, Verification), DoctorError> {
    let mut conn = db.conn()?;
    let titles = videos::list(&mut conn)?;
    let case_files = cases::stored_paths(&mut conn)?
        .iter()
        .map(|p| file_name(Path::new(p)))
        .collect();
    let report_files = evidence_reports::paths(&mut conn)?
        .iter()
        .map(|p| file_name(Path::new(p)))
        .collect();
    let active = jobs::active(&mut conn)?;
    let now = shared::db::now();
    let live =
        |j: &JobRow| j.status == JobStatus::Running && j.lease_expires_at.is_some_and(|t| t > now);
    let mut sources = HashSet::new();
    let mut packaging_running = false;
    let mut work_prefixes = Vec::new();
    let mut stale = Vec::new();
    for job in &active {
        if job.status == JobStatus::Running && !live(job) {
            stale.push(job.clone());
        }
        match job.kind {
            JobKind::PackageTitle => {
                if let Ok(p) = crate::jobs::payload::<PackageTitle>(job) {
                    sources.insert(file_name(&p.source));
                }
                packaging_running |= live(job);
            }
            JobKind::BuildReferenceStore if live(job) => {
                if let Ok(p) = crate::jobs::payload::<BuildReferenceStore>(job) {
                    work_prefixes.push(format!("reference-{}-", p.video_id));
                }
            }
            JobKind::AnalyseCase if live(job) => {
                if let Ok(p) = crate::jobs::payload::<AnalyseCase>(job) {
                    work_prefixes.push(format!("{}-", p.case_id));
                }
            }
            _ => {}
        }
    }
    let verification = audit::verify(&mut conn)?;
    Ok((
        InUse {
            video_ids: titles.iter().map(|v| v.id.clone()).collect(),
            case_files,
            report_files,
            sources,
            packaging_running,
            work_prefixes,
            stale,
        },
        titles,
        verification,
    ))
}

/// The newest modification time under `path` (itself included).
fn newest_change(path: &Path) -> SystemTime {
    let mut newest = std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    if path.is_dir() && !path.is_symlink() {
        if let Ok(entries) = std::fs::read_dir(path) {
            for entry in entries.flatten() {
                newest = newest.max(newest_change(&entry.path()));
            }
        }
    }
    newest
}

fn entries(dir: &Path) -> Result<Vec<PathBuf>, DoctorError> {
    match std::fs::read_dir(dir) {
        Ok(read) => {
            let mut paths: Vec<PathBuf> = read.flatten().map(|e| e.path()).collect();
            paths.sort();
            Ok(paths)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(DoctorError::Io {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Examines the data dir and the database. `grace`: files changed more recently are left out.
pub fn examine(
    config: &Config,
    db: &Db,
    storage: &storage::Storage,
    grace: Duration,
) -> Result<Report, DoctorError> {
    let layout = config.layout();
    let (used, titles, verification) = in_use(db)?;
    let now = SystemTime::now();
    let settled = |path: &Path| {
        now.duration_since(newest_change(path))
            .is_ok_and(|age| age >= grace)
    };
    let relative = |path: &Path| {
        path.strip_prefix(&config.data_dir)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| path.to_path_buf())
    };
    let mut findings = Vec::new();
    let mut found = |kind: FindingKind, path: Option<&Path>, detail: String| {
        findings.push(Finding {
            kind,
            path: path.map(relative),
            detail,
            removed: false,
        })
    };

    for path in entries(&layout.videos())? {
        let name = file_name(&path);
        if let Some(id) = name.strip_prefix(".staging-") {
            if !used.packaging_running || settled(&path) {
                found(
                    FindingKind::StagingTitle,
                    Some(&path),
                    format!("a packaging of title {id} that did not finish"),
                );
            }
        } else if !used.video_ids.contains(&name) && settled(&path) {
            found(
                FindingKind::UnrecordedTitle,
                Some(&path),
                "a published title with no database row".into(),
            );
        }
    }
    for title in &titles {
        // With a bucket, this machine's data dir is a cache: the manifest must be here or
        // there.
        let manifest = format!("{}/package.json", title.storage_dir);
        if !storage.exists(&manifest)? {
            found(
                FindingKind::MissingTitleFiles,
                None,
                format!(
                    "title {} ({}) has no package manifest in its folder",
                    title.id, title.title
                ),
            );
        }
    }
    for path in entries(&layout.uploads())? {
        let name = file_name(&path);
        if !settled(&path) {
            continue;
        }
        if name.ends_with(".part") {
            found(
                FindingKind::PartialUpload,
                Some(&path),
                "an upload cut off before its end".into(),
            );
        } else if !used.case_files.contains(&name) && !used.sources.contains(&name) {
            found(
                FindingKind::OrphanUpload,
                Some(&path),
                "an upload no case or packaging job names".into(),
            );
        }
    }
    for path in entries(&layout.sources())? {
        if !used.sources.contains(&file_name(&path)) && settled(&path) {
            found(
                FindingKind::OrphanSource,
                Some(&path),
                "a source no queued or running packaging job names".into(),
            );
        }
    }
    for path in entries(&layout.work(""))? {
        let name = file_name(&path);
        if !used.work_prefixes.iter().any(|p| name.starts_with(p)) && settled(&path) {
            found(
                FindingKind::OrphanWork,
                Some(&path),
                "scratch files of a job no longer running".into(),
            );
        }
    }
    for path in entries(&layout.reports())? {
        if !used.report_files.contains(&file_name(&path)) && settled(&path) {
            found(
                FindingKind::OrphanReport,
                Some(&path),
                "a report file no evidence report row names".into(),
            );
        }
    }
    for job in &used.stale {
        found(
            FindingKind::StaleLease,
            None,
            format!(
                "job {} ({}) is running under an expired lease: a worker will take it again",
                job.id, job.kind
            ),
        );
    }
    if let Verification::Broken { seq, reason } = verification {
        found(
            FindingKind::AuditBroken,
            None,
            format!("the audit trail breaks at entry {seq}: {reason}"),
        );
    }
    Ok(Report { findings })
}

/// Removes what the cleanable findings name; marks them removed.
pub fn clean(config: &Config, report: &mut Report) -> Result<(), DoctorError> {
    for finding in report.findings.iter_mut() {
        let Some(relative) = finding.path.as_ref().filter(|_| finding.kind.cleanable()) else {
            continue;
        };
        let path = config.data_dir.join(relative);
        let removed = if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match removed {
            Ok(()) => finding.removed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => finding.removed = true,
            Err(source) => return Err(DoctorError::Io { path, source }),
        }
    }
    Ok(())
}
