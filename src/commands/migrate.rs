//! `leaktrace storage migrate`: moves a deployment that kept everything in its data dir into
//! the bucket `storage.url` names, so that other machines can serve and work on it: every
//! recorded title (its reference store published after it, first unit last), every case's
//! suspect, every issued report, and the sources of packaging jobs still to run. Files stay
//! in the data dir (it becomes this machine's cache); running it again uploads again, so an
//! interrupted migration is finished by running it once more.

use std::path::Path;

use serde::Serialize;
use shared::config::Config;
use shared::db::repo::jobs::{self, JobKind};
use shared::db::repo::{cases, evidence_reports, videos};
use storage::Storage;

use super::{open_database, open_storage};
use crate::cli::StorageCommand;
use crate::error::AppError;
use crate::jobs::package_title::PackageTitle;

pub fn run(config: &Config, command: StorageCommand) -> Result<(), AppError> {
    match command {
        StorageCommand::Migrate { json } => {
            let migrated = migrate(config)?;
            if json {
                let text = serde_json::to_string(&migrated)
                    .map_err(|e| AppError::Server(format!("cannot print the summary: {e}")))?;
                println!("{text}");
            } else {
                println!(
                    "moved into {}: {} title(s) ({} files), {} suspect(s), {} report(s), {} source(s)",
                    migrated.bucket,
                    migrated.titles,
                    migrated.title_files,
                    migrated.suspects,
                    migrated.reports,
                    migrated.sources
                );
            }
            Ok(())
        }
    }
}

/// What a migration uploaded.
#[derive(Debug, Default, Serialize)]
pub struct Migrated {
    pub bucket: String,
    pub titles: usize,
    pub title_files: usize,
    pub suspects: usize,
    pub reports: usize,
    pub sources: usize,
}

fn migrate(config: &Config) -> Result<Migrated, AppError> {
    let storage = open_storage(config)?;
    if !storage.is_remote() {
        return Err(AppError::Usage(
            "storage.url names no bucket: set it (or LEAKTRACE_STORAGE_URL) to the bucket to move into".into(),
        ));
    }
    let (db, _) = open_database(config)?;
    let (titles, suspects, reports, pending) = {
        let mut conn = db.conn()?;
        (
            videos::list(&mut conn)?,
            cases::stored_paths(&mut conn)?,
            evidence_reports::paths(&mut conn)?,
            jobs::pending(&mut conn, JobKind::PackageTitle)?,
        )
    };
    let mut migrated = Migrated {
        bucket: storage.describe(),
        ..Migrated::default()
    };
    for title in &titles {
        // The title first (its manifest last), then its store (its first unit last): a
        // reader that finds either marker finds what it marks.
        let mut local_only = crate::packaging::TITLE_LOCAL_ONLY.to_vec();
        local_only.push("reference/units");
        migrated.title_files += storage.publish(&title.storage_dir, &local_only, "package.json")?;
        let store = format!("{}/reference/units", title.storage_dir);
        migrated.title_files += storage.publish(&store, &[], "1.lts")?;
        migrated.titles += 1;
    }
    for path in &suspects {
        migrated.suspects += usize::from(publish_stored(&storage, path, "uploads")?);
    }
    for path in &reports {
        migrated.reports += usize::from(publish_stored(&storage, path, "reports")?);
    }
    for row in &pending {
        if let Ok(job) = crate::jobs::payload::<PackageTitle>(row) {
            if job.remove_source {
                let source = job.source.to_string_lossy();
                migrated.sources += usize::from(publish_stored(&storage, &source, "sources")?);
            }
        }
    }
    tracing::info!(?migrated, "data dir moved into the bucket");
    Ok(migrated)
}

/// Uploads a file this machine stored in its data dir's `folder` under the key the other
/// machines fetch it by (`folder/<file name>`); false when it is not here.
fn publish_stored(storage: &Storage, recorded: &str, folder: &str) -> Result<bool, AppError> {
    let path = Path::new(recorded);
    let Some(name) = path.file_name() else {
        return Ok(false);
    };
    let key = format!("{folder}/{}", name.to_string_lossy());
    if !storage.path(&key).is_file() {
        return Ok(false);
    }
    storage.publish_file(&key)?;
    Ok(true)
}
