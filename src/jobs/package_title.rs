//! `package_title`: packaging a source as a title, queued by the admin console (an upload or
//! an inbox file). Idempotent: when an earlier attempt already recorded the title from this
//! very source (same SHA-256), the job is done.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use shared::config::Config;
use shared::db::repo::jobs::{JobKind, JobRow};
use shared::db::repo::{audit, videos};
use shared::db::Db;

use super::{detail_json, Context, Job};
use crate::error::AppError;
use crate::packaging::{self, TitleSpec};

/// The payload of a packaging job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageTitle {
    /// The source file (an upload in the data dir, or a file in the inbox).
    pub source: PathBuf,
    /// Remove the source once packaged (an upload; never an inbox file).
    pub remove_source: bool,
    pub spec: TitleSpec,
    /// Who asked (`user:<id>`), for the audit trail.
    pub requested_by: String,
}

/// The detail of a `title_packaging_requested` audit entry.
#[derive(Serialize)]
struct RequestedDetail<'a> {
    job_id: &'a str,
    title: &'a str,
}

/// Queues a packaging job, audited as the requester's.
pub fn enqueue(db: &Db, config: &Config, job: &PackageTitle) -> Result<JobRow, AppError> {
    let mut conn = db.conn()?;
    let row = super::enqueue(&mut conn, config, job)?;
    let detail = RequestedDetail {
        job_id: &row.id,
        title: &job.spec.title,
    };
    audit::append(
        &mut conn,
        None,
        &job.requested_by,
        "title_packaging_requested",
        &detail_json(&detail),
    )?;
    Ok(row)
}

/// Where the admin console keeps uploaded sources, in the data dir and the bucket.
const SOURCES: &str = "sources";

impl Job for PackageTitle {
    const KIND: JobKind = JobKind::PackageTitle;

    fn run(&self, cx: &Context) -> Result<(), AppError> {
        // An upload received by another machine is fetched from the bucket (uploads are kept
        // in the receiving machine's sources folder); an inbox file is packaged in place.
        let source = if self.remove_source {
            cx.storage.stored_here(&self.source, SOURCES)?
        } else {
            self.source.clone()
        };
        let drop_upload = || {
            let _ = std::fs::remove_file(&source);
            let _ = std::fs::remove_file(&self.source);
            if let Some(name) = self.source.file_name() {
                let key = format!("{SOURCES}/{}", name.to_string_lossy());
                if let Err(e) = cx.storage.delete(&key) {
                    tracing::warn!(%key, error = %e, "cannot remove the source from the bucket");
                }
            }
        };
        if let Some(existing) = videos::find_by_title(&mut *cx.db.conn()?, &self.spec.title)? {
            let same = source.is_file()
                && formats::digest::sha256_file(&source)
                    .map(|(_, sha)| sha == existing.source_sha256)
                    .unwrap_or(false);
            if !same {
                return Err(AppError::TitleExists(self.spec.title.clone()));
            }
        } else {
            if !source.is_file() {
                return Err(AppError::SourceGone(self.source.clone()));
            }
            let packaged = packaging::package_and_record(
                cx.config,
                cx.db,
                cx.secrets,
                cx.storage,
                &source,
                &self.spec,
                &mut |p| (cx.progress)(packaging::overall(p)),
            );
            if let Err(e) = packaged {
                // No attempt will follow when the source cannot be packaged or this was the
                // last attempt: drop the upload.
                if self.remove_source && (e.is_input() || cx.last_attempt()) {
                    drop_upload();
                }
                return Err(e);
            }
        }
        if self.remove_source {
            drop_upload();
        }
        Ok(())
    }
}

/// The title a packaging job names, whatever became of it.
pub fn title_of(row: &JobRow) -> Option<TitleSpec> {
    super::payload::<PackageTitle>(row).ok().map(|job| job.spec)
}
