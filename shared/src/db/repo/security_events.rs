use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::security_events;
use crate::db::{new_id, now, DbConnection, DbError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = security_events)]
pub struct SecurityEventRow {
    pub id: String,
    pub kind: String,
    pub severity: String,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    pub device_id: Option<String>,
    pub address: Option<String>,
    pub detail: String,
    pub created_at: NaiveDateTime,
}

/// What happened, to whom and from where.
#[derive(Debug, Clone, Default)]
pub struct NewEvent<'a> {
    pub kind: &'a str,
    pub session_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub device_id: Option<&'a str>,
    pub address: Option<&'a str>,
    pub detail: &'a str,
}

#[derive(Insertable)]
#[diesel(table_name = security_events)]
struct Row<'a> {
    id: &'a str,
    kind: &'a str,
    severity: &'a str,
    session_id: Option<&'a str>,
    user_id: Option<&'a str>,
    device_id: Option<&'a str>,
    address: Option<&'a str>,
    detail: &'a str,
    created_at: NaiveDateTime,
}

pub fn record(
    conn: &mut DbConnection,
    severity: Severity,
    event: &NewEvent,
) -> Result<SecurityEventRow, DbError> {
    let id = new_id();
    diesel::insert_into(security_events::table)
        .values(Row {
            id: &id,
            kind: event.kind,
            severity: severity.as_str(),
            session_id: event.session_id,
            user_id: event.user_id,
            device_id: event.device_id,
            address: event.address,
            detail: event.detail,
            created_at: now(),
        })
        .execute(conn)?;
    Ok(security_events::table
        .find(&id)
        .select(SecurityEventRow::as_select())
        .first(conn)?)
}

/// The newest events first, at most `limit`.
pub fn recent(conn: &mut DbConnection, limit: i64) -> Result<Vec<SecurityEventRow>, DbError> {
    Ok(security_events::table
        .order((
            security_events::created_at.desc(),
            security_events::id.desc(),
        ))
        .limit(limit)
        .select(SecurityEventRow::as_select())
        .load(conn)?)
}

/// Events of one session, oldest first.
pub fn for_session(
    conn: &mut DbConnection,
    session_id: &str,
) -> Result<Vec<SecurityEventRow>, DbError> {
    Ok(security_events::table
        .filter(security_events::session_id.eq(session_id))
        .order(security_events::created_at.asc())
        .select(SecurityEventRow::as_select())
        .load(conn)?)
}
