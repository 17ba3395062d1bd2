//! The evidence pipeline around a leak analysis: suspect files received ([`upload`]), cases
//! queued as jobs and run by workers ([`worker`]).

pub mod upload;
pub mod worker;

use shared::config::Config;
use shared::db::Db;

use crate::analysis::{self, Submission, Submitter};
use crate::error::CliError;
use upload::StoredUpload;

/// What a submitter asks about a stored suspect.
pub struct Request<'a> {
    pub submitter: Submitter<'a>,
    pub video_id: Option<&'a str>,
    pub expected_watermark_hash: Option<&'a str>,
}

/// Records the case of a stored suspect and queues its analysis; returns the case id.
pub fn submit(
    config: &Config,
    db: &Db,
    stored: &StoredUpload,
    request: Request,
) -> Result<String, CliError> {
    let case = analysis::open_case(
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
        "queued",
    )?;
    worker::enqueue_case(db, config, &case.id)?;
    Ok(case.id)
}
