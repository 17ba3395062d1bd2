//! Issued evidence reports: where each signed PDF is stored, its SHA-256 and the signing
//! certificate's, so that a downloaded or submitted copy can be matched to what was issued.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::evidence_reports;
use crate::db::{new_id, now, DbConnection, DbError};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = evidence_reports)]
pub struct ReportRow {
    pub id: String,
    pub case_id: String,
    pub path: String,
    pub sha256: String,
    pub signer_cert_sha256: String,
    pub created_at: NaiveDateTime,
}

pub fn create(
    conn: &mut DbConnection,
    case_id: &str,
    path: &str,
    sha256: &str,
    signer_cert_sha256: &str,
) -> Result<ReportRow, DbError> {
    let row = ReportRow {
        id: new_id(),
        case_id: case_id.to_string(),
        path: path.to_string(),
        sha256: sha256.to_string(),
        signer_cert_sha256: signer_cert_sha256.to_string(),
        created_at: now(),
    };
    diesel::insert_into(evidence_reports::table)
        .values(&row)
        .execute(conn)?;
    Ok(row)
}

/// The newest report of a case.
pub fn latest_for_case(
    conn: &mut DbConnection,
    case_id: &str,
) -> Result<Option<ReportRow>, DbError> {
    Ok(evidence_reports::table
        .filter(evidence_reports::case_id.eq(case_id))
        .order((
            evidence_reports::created_at.desc(),
            evidence_reports::id.desc(),
        ))
        .select(ReportRow::as_select())
        .first(conn)
        .optional()?)
}

/// Where every stored report is (its `path` as recorded).
pub fn paths(conn: &mut DbConnection) -> Result<Vec<String>, DbError> {
    Ok(evidence_reports::table
        .select(evidence_reports::path)
        .load(conn)?)
}

/// The report with this SHA-256, if this deployment issued one.
pub fn find_by_sha256(conn: &mut DbConnection, sha256: &str) -> Result<Option<ReportRow>, DbError> {
    Ok(evidence_reports::table
        .filter(evidence_reports::sha256.eq(sha256))
        .select(ReportRow::as_select())
        .first(conn)
        .optional()?)
}
