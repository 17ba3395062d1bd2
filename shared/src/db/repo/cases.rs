//! Cases: one analysed suspect file each (from the CLI, an analyst upload or a crawler), with
//! its status, verdict, full result JSON and ranked session matches.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use formats::case::{CaseResult, CaseStatus, SubmitterKind, Verdict};

use crate::db::names::NullableName;
use crate::db::repo::callbacks;
use crate::db::schema::{cases, matches};
use crate::db::{new_id, now, DbConnection, DbError};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = cases)]
pub struct CaseRow {
    pub id: String,
    #[diesel(deserialize_as = String)]
    pub status: CaseStatus,
    pub progress: f64,
    #[diesel(deserialize_as = String)]
    pub submitter_kind: SubmitterKind,
    pub submitter_id: Option<String>,
    pub file_name: String,
    pub file_size: i64,
    pub file_sha256: String,
    pub stored_path: String,
    pub video_id: Option<String>,
    pub expected_watermark_hash: Option<String>,
    #[diesel(deserialize_as = NullableName<Verdict>)]
    pub verdict: Option<Verdict>,
    pub result_json: Option<String>,
    pub error: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl CaseRow {
    /// The stored result of a finished case (`None` before; a stored text that does not
    /// parse, which only a damaged database holds, reads as none).
    pub fn result(&self) -> Option<CaseResult> {
        let text = self.result_json.as_deref()?;
        match serde_json::from_str(text) {
            Ok(result) => Some(result),
            Err(e) => {
                tracing::error!(case = %self.id, error = %e, "stored case result does not parse");
                None
            }
        }
    }

    /// Whether `key_id` is the API key that submitted the case.
    pub fn submitted_by_key(&self, key_id: &str) -> bool {
        self.submitter_kind == SubmitterKind::ApiKey && self.submitter_id.as_deref() == Some(key_id)
    }
}

/// A new case, as submitted.
#[derive(Debug, Clone)]
pub struct NewCase<'a> {
    pub submitter_kind: SubmitterKind,
    pub submitter_id: Option<&'a str>,
    pub file_name: &'a str,
    pub file_size: i64,
    pub file_sha256: &'a str,
    pub stored_path: &'a str,
    pub video_id: Option<&'a str>,
    pub expected_watermark_hash: Option<&'a str>,
}

#[derive(Insertable)]
#[diesel(table_name = cases)]
struct Row<'a> {
    id: &'a str,
    status: &'a str,
    progress: f64,
    submitter_kind: &'a str,
    submitter_id: Option<&'a str>,
    file_name: &'a str,
    file_size: i64,
    file_sha256: &'a str,
    stored_path: &'a str,
    video_id: Option<&'a str>,
    expected_watermark_hash: Option<&'a str>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// Records a case in state `running` (the CLI analyses at once) or `queued`.
pub fn create(
    conn: &mut DbConnection,
    case: &NewCase,
    status: CaseStatus,
) -> Result<CaseRow, DbError> {
    let id = new_id();
    let t = now();
    diesel::insert_into(cases::table)
        .values(Row {
            id: &id,
            status: status.as_str(),
            progress: 0.0,
            submitter_kind: case.submitter_kind.as_str(),
            submitter_id: case.submitter_id,
            file_name: case.file_name,
            file_size: case.file_size,
            file_sha256: case.file_sha256,
            stored_path: case.stored_path,
            video_id: case.video_id,
            expected_watermark_hash: case.expected_watermark_hash,
            created_at: t,
            updated_at: t,
        })
        .execute(conn)?;
    get(conn, &id)
}

pub fn get(conn: &mut DbConnection, id: &str) -> Result<CaseRow, DbError> {
    cases::table
        .find(id)
        .select(CaseRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(DbError::NotFound("case"))
}

/// Marks the case of `result` done with its verdict, result and matches (rank 1 = best),
/// atomically.
pub fn finish(conn: &mut DbConnection, result: &CaseResult) -> Result<(), DbError> {
    let id = result.case_id.as_str();
    let text = serde_json::to_string(result)
        .map_err(|e| DbError::Encode(format!("the result of case {id}: {e}")))?;
    conn.transaction(|c| {
        let t = now();
        let ended_before = get(c, id)?.status.is_finished();
        diesel::update(cases::table.find(id))
            .set((
                cases::status.eq(CaseStatus::Done.as_str()),
                cases::progress.eq(1.0),
                cases::video_id.eq(result.video_id.as_deref()),
                cases::verdict.eq(Some(result.verdict.as_str())),
                cases::result_json.eq(Some(&text)),
                cases::updated_at.eq(t),
            ))
            .execute(c)?;
        diesel::delete(matches::table.filter(matches::case_id.eq(id))).execute(c)?;
        for (rank, m) in result.matches.iter().enumerate() {
            diesel::insert_into(matches::table)
                .values((
                    matches::id.eq(new_id()),
                    matches::case_id.eq(id),
                    matches::session_id.eq(&m.session_id),
                    matches::rank.eq(rank as i32 + 1),
                    matches::score.eq(m.score),
                    matches::false_positive_probability.eq(m.false_positive_probability),
                    matches::created_at.eq(t),
                ))
                .execute(c)?;
        }
        // Its crawler's callback, if any, goes out now (once: not when a second run, after a
        // lapsed lease, finishes it again).
        if !ended_before {
            callbacks::queue_delivery(c, id)?;
        }
        Ok(())
    })
}

/// Marks a case failed with the reason (bad input or an internal failure), and queues its
/// callback, if any.
pub fn fail(conn: &mut DbConnection, id: &str, error: &str) -> Result<(), DbError> {
    conn.transaction(|c| {
        let ended_before = get(c, id)?.status.is_finished();
        diesel::update(cases::table.find(id))
            .set((
                cases::status.eq(CaseStatus::Failed.as_str()),
                cases::error.eq(Some(error)),
                cases::updated_at.eq(now()),
            ))
            .execute(c)?;
        if !ended_before {
            callbacks::queue_delivery(c, id)?;
        }
        Ok(())
    })
}

/// Session ids of a case's matches, best first.
pub fn matched_sessions(conn: &mut DbConnection, case_id: &str) -> Result<Vec<String>, DbError> {
    Ok(matches::table
        .filter(matches::case_id.eq(case_id))
        .order(matches::rank.asc())
        .select(matches::session_id)
        .load(conn)?)
}

/// Where every case's suspect file is stored (`stored_path` as recorded).
pub fn stored_paths(conn: &mut DbConnection) -> Result<Vec<String>, DbError> {
    Ok(cases::table.select(cases::stored_path).load(conn)?)
}

/// The cases of title `video_id` (named by the submitter or found by the analysis), oldest
/// first, at most `limit`.
pub fn for_video(
    conn: &mut DbConnection,
    video_id: &str,
    limit: i64,
) -> Result<Vec<CaseRow>, DbError> {
    Ok(cases::table
        .filter(cases::video_id.eq(video_id))
        .order((cases::created_at.asc(), cases::id.asc()))
        .limit(limit)
        .select(CaseRow::as_select())
        .load(conn)?)
}

/// Which cases a list asks for (see [`page`]).
#[derive(Debug, Clone, Default)]
pub struct CaseQuery<'a> {
    /// Only the cases this API key submitted.
    pub api_key: Option<&'a str>,
    /// Only cases in this status.
    pub status: Option<CaseStatus>,
    /// Only cases created or changed at or after this time.
    pub since: Option<NaiveDateTime>,
    /// Only cases after this one in the list's order (its creation time and id): the page
    /// after the one that ended with it.
    pub after: Option<(NaiveDateTime, String)>,
}

/// The newest cases first (by creation, then id), at most `limit`, as `query` asks.
pub fn page(
    conn: &mut DbConnection,
    query: &CaseQuery<'_>,
    limit: i64,
) -> Result<Vec<CaseRow>, DbError> {
    let mut q = cases::table
        .order((cases::created_at.desc(), cases::id.desc()))
        .limit(limit)
        .select(CaseRow::as_select())
        .into_boxed();
    if let Some(key) = query.api_key {
        q = q
            .filter(cases::submitter_kind.eq(SubmitterKind::ApiKey.as_str()))
            .filter(cases::submitter_id.eq(key));
    }
    if let Some(status) = query.status {
        q = q.filter(cases::status.eq(status.as_str()));
    }
    if let Some(since) = query.since {
        q = q.filter(cases::updated_at.ge(since));
    }
    if let Some((created, id)) = &query.after {
        q = q.filter(
            cases::created_at
                .lt(*created)
                .or(cases::created_at.eq(*created).and(cases::id.lt(id.clone()))),
        );
    }
    Ok(q.load(conn)?)
}

/// Sets a case's status (`queued` or `running`) and progress (0..1) while it is analysed; a
/// finished (done or failed) case is left as it is.
pub fn set_progress(
    conn: &mut DbConnection,
    id: &str,
    status: CaseStatus,
    progress: f64,
) -> Result<(), DbError> {
    let finished = [CaseStatus::Done.as_str(), CaseStatus::Failed.as_str()];
    diesel::update(cases::table.find(id).filter(cases::status.ne_all(finished)))
        .set((
            cases::status.eq(status.as_str()),
            cases::progress.eq(progress.clamp(0.0, 1.0)),
            cases::updated_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}
