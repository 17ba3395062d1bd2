//! The deployment's report PKI, one row (`id` = `deployment`): the first instance that issues a
//! report records it, every other reads it, so all sign alike and publish one CA. The private
//! keys arrive sealed (the caller holds the master key).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::report_pki;
use crate::db::{now, DbConnection, DbError};

const ROW_ID: &str = "deployment";

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = report_pki)]
pub struct ReportPki {
    pub id: String,
    pub ca_cert_pem: String,
    pub sealed_ca_key: Vec<u8>,
    pub signing_cert_pem: String,
    pub sealed_signing_key: Vec<u8>,
    pub created_at: NaiveDateTime,
}

impl ReportPki {
    pub fn new(
        ca_cert_pem: String,
        sealed_ca_key: Vec<u8>,
        signing_cert_pem: String,
        sealed_signing_key: Vec<u8>,
    ) -> Self {
        ReportPki {
            id: ROW_ID.into(),
            ca_cert_pem,
            sealed_ca_key,
            signing_cert_pem,
            sealed_signing_key,
            created_at: now(),
        }
    }
}

/// The recorded PKI, if any.
pub fn get(conn: &mut DbConnection) -> Result<Option<ReportPki>, DbError> {
    Ok(report_pki::table
        .find(ROW_ID)
        .select(ReportPki::as_select())
        .first(conn)
        .optional()?)
}

/// Records `pki` unless one is recorded already, and answers the one recorded (the first
/// instance's, when two race).
pub fn record_first(conn: &mut DbConnection, pki: &ReportPki) -> Result<ReportPki, DbError> {
    match diesel::insert_into(report_pki::table)
        .values(pki)
        .execute(conn)
    {
        Ok(_) => {}
        Err(e) => match DbError::on_unique(e, String::new) {
            DbError::Conflict(_) => {}
            other => return Err(other),
        },
    }
    get(conn)?.ok_or_else(|| DbError::NotFound("report PKI"))
}
