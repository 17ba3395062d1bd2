//! `build_reference_store`: a packaged title's reference store (`forensics::refstore`),
//! queued by every packaging while `analysis.reference_store` is on, and by workers starting
//! with it on for the titles that lack one. Nothing to do when the store exists.

use serde::{Deserialize, Serialize};
use shared::config::Config;
use shared::db::repo::jobs::{self, JobKind};
use shared::db::repo::videos;
use shared::db::Db;

use super::{payload, Context, Job};
use crate::cases::analysis::limits;
use crate::error::AppError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildReferenceStore {
    pub video_id: String,
}

impl Job for BuildReferenceStore {
    const KIND: JobKind = JobKind::BuildReferenceStore;

    fn run(&self, cx: &Context) -> Result<(), AppError> {
        let video_id = &self.video_id;
        let row = videos::get(&mut *cx.db.conn()?, video_id)?;
        let layout = cx.config.layout().title(&row.storage_dir);
        if store_published(cx.storage, &row.storage_dir, &layout)? {
            return Ok(());
        }
        // With a bucket: the variants fetched here first (this worker may not have packaged
        // the title).
        let mut local_only = crate::packaging::TITLE_LOCAL_ONLY.to_vec();
        local_only.push(STORE_DIR);
        cx.storage.materialize(&row.storage_dir, &local_only)?;
        let manifest = formats::package::PackageManifest::read(&layout)?;
        let work = cx
            .config
            .layout()
            .work(&format!("reference-{video_id}-{}", shared::db::new_id()));
        std::fs::create_dir_all(&work).map_err(AppError::io("create", &work))?;
        let built = forensics::refstore::build_for_title(
            &layout,
            &manifest,
            &work,
            &limits(cx.config),
            &mut |done, total| (cx.progress)(done as f64 / total.max(1) as f64),
        );
        let _ = std::fs::remove_dir_all(&work);
        let bytes = built?;
        // With a bucket, published with its first unit last: the marker readers look for.
        let store = format!("{}/{STORE_DIR}", row.storage_dir);
        cx.storage.publish(&store, &[], "1.lts")?;
        tracing::info!(%video_id, bytes, "reference store built");
        Ok(())
    }
}

/// A title's reference store folder, relative to the title's.
const STORE_DIR: &str = "reference/units";

/// Whether the title in `dir` has its reference store: here, or in the bucket when there is
/// one (a store published whole has its first unit there).
fn store_published(
    storage: &storage::Storage,
    dir: &str,
    layout: &formats::layout::Layout,
) -> Result<bool, AppError> {
    if !storage.is_remote() {
        return Ok(forensics::refstore::exists(layout));
    }
    Ok(storage.exists(&format!("{dir}/{STORE_DIR}/1.lts"))?)
}

/// Queues the building of a title's reference store.
pub fn enqueue(db: &Db, config: &Config, video_id: &str) -> Result<(), AppError> {
    let job = BuildReferenceStore {
        video_id: video_id.to_string(),
    };
    super::enqueue(&mut *db.conn()?, config, &job).map(|_| ())
}

/// Queues the reference store of every title that has none and no job building one (titles
/// packaged while the store was switched off, or whose job failed for good); how many.
pub fn queue_missing(
    db: &Db,
    config: &Config,
    storage: &storage::Storage,
) -> Result<usize, AppError> {
    let (titles, pending) = {
        let mut conn = db.conn()?;
        (
            videos::list(&mut conn)?,
            jobs::pending(&mut conn, JobKind::BuildReferenceStore)?,
        )
    };
    let queued: std::collections::HashSet<String> = pending
        .iter()
        .filter_map(|row| payload::<BuildReferenceStore>(row).ok())
        .map(|job| job.video_id)
        .collect();
    let mut count = 0;
    for title in titles {
        let layout = config.layout().title(&title.storage_dir);
        if queued.contains(&title.id) || store_published(storage, &title.storage_dir, &layout)? {
            continue;
        }
        enqueue(db, config, &title.id)?;
        count += 1;
    }
    Ok(count)
}
