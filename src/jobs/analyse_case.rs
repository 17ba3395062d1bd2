//! `analyse_case`: the analysis of a queued case (an upload or a crawler submission).
//! Idempotent: a case an earlier attempt finished (its worker died before ending the job) is
//! not analysed again.

use formats::case::CaseStatus;
use serde::{Deserialize, Serialize};
use shared::db::repo::jobs::JobKind;
use shared::db::repo::{audit, cases};
use shared::db::DbError;

use super::{detail_json, AttemptDetail, Context, Job};
use crate::cases::analysis;
use crate::error::AppError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalyseCase {
    pub case_id: String,
}

impl Job for AnalyseCase {
    const KIND: JobKind = JobKind::AnalyseCase;

    fn case_id(&self) -> Option<&str> {
        Some(&self.case_id)
    }

    fn run(&self, cx: &Context) -> Result<(), AppError> {
        let case = {
            let mut conn = cx.db.conn()?;
            let case = cases::get(&mut conn, &self.case_id).map_err(|e| match e {
                // Gone for good: nothing to retry. Any other database error while the case is
                // opened is worth another attempt (a conflict here is a race with another
                // writer, not bad input).
                DbError::NotFound(_) => AppError::Db(e),
                other => AppError::Retry(other.to_string()),
            })?;
            if case.status.is_finished() {
                return Ok(());
            }
            // Audited before the case shows as running: whoever sees it running finds the
            // entry of the attempt.
            let detail = AttemptDetail {
                job_id: &cx.row.id,
                attempt: cx.row.attempts,
                worker: cx.worker,
            };
            audit::append(
                &mut conn,
                Some(&case.id),
                "system",
                "job_started",
                &detail_json(&detail),
            )
            .map_err(|e| AppError::Retry(e.to_string()))?;
            cases::set_progress(&mut conn, &case.id, CaseStatus::Running, 0.0)
                .map_err(|e| AppError::Retry(e.to_string()))?;
            cx.case_running();
            case
        };
        let actor = format!("worker:{}", cx.worker);
        analysis::run_case(
            cx.config,
            cx.db,
            cx.secrets,
            cx.storage,
            &case,
            &actor,
            cx.progress,
        )
        .map(|_| ())
    }
}
