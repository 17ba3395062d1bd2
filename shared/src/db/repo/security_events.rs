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
    /// The account name an authentication attempt submitted (whether or not it exists).
    pub account: Option<String>,
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
    pub account: Option<&'a str>,
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
    account: Option<&'a str>,
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
            account: event.account,
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

/// The newest events first, at most `limit`, only those recorded at or after `since` when
/// given (a poller passes the time of the newest event it has and drops the ids it has seen).
pub fn since(
    conn: &mut DbConnection,
    since: Option<NaiveDateTime>,
    limit: i64,
) -> Result<Vec<SecurityEventRow>, DbError> {
    let mut query = security_events::table
        .order((
            security_events::created_at.desc(),
            security_events::id.desc(),
        ))
        .limit(limit)
        .select(SecurityEventRow::as_select())
        .into_boxed();
    if let Some(t) = since {
        query = query.filter(security_events::created_at.ge(t));
    }
    Ok(query.load(conn)?)
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

/// Whom a failure count is about.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    Address(&'a str),
    User(&'a str),
    /// A submitted account name (events recorded with `account`).
    Account(&'a str),
}

/// How many events of `kind` concern `subject` since `since`, and when the oldest of them
/// happened (rate limits use it to say when the window frees up).
pub fn count_since(
    conn: &mut DbConnection,
    kind: &str,
    subject: Subject,
    since: NaiveDateTime,
) -> Result<(i64, Option<NaiveDateTime>), DbError> {
    use diesel::dsl::{count_star, min};
    let recent = security_events::table
        .filter(security_events::kind.eq(kind))
        .filter(security_events::created_at.ge(since));
    let row = match subject {
        Subject::Address(a) => recent
            .filter(security_events::address.eq(a))
            .select((count_star(), min(security_events::created_at)))
            .first(conn)?,
        Subject::User(u) => recent
            .filter(security_events::user_id.eq(u))
            .select((count_star(), min(security_events::created_at)))
            .first(conn)?,
        Subject::Account(a) => recent
            .filter(security_events::account.eq(a))
            .select((count_star(), min(security_events::created_at)))
            .first(conn)?,
    };
    Ok(row)
}

/// Removes one event (an authentication attempt counted in advance that succeeded).
pub fn remove(conn: &mut DbConnection, id: &str) -> Result<(), DbError> {
    diesel::delete(security_events::table.find(id)).execute(conn)?;
    Ok(())
}

/// Rewrites an event's detail (an aggregated event's count).
pub fn set_detail(conn: &mut DbConnection, id: &str, detail: &str) -> Result<(), DbError> {
    diesel::update(security_events::table.find(id))
        .set(security_events::detail.eq(detail))
        .execute(conn)?;
    Ok(())
}

/// Turns an event into another kind with another detail (an authentication attempt counted
/// while its password is checked, which turned out a failure).
pub fn settle(conn: &mut DbConnection, id: &str, kind: &str, detail: &str) -> Result<(), DbError> {
    diesel::update(security_events::table.find(id))
        .set((
            security_events::kind.eq(kind),
            security_events::detail.eq(detail),
        ))
        .execute(conn)?;
    Ok(())
}

/// Removes the events older than `before` (retention), except critical ones (a piracy
/// detection, a revocation: what a case or an inquiry may still need); returns how many.
pub fn purge_before(conn: &mut DbConnection, before: NaiveDateTime) -> Result<usize, DbError> {
    Ok(diesel::delete(
        security_events::table
            .filter(security_events::created_at.lt(before))
            .filter(security_events::severity.ne(Severity::Critical.as_str())),
    )
    .execute(conn)?)
}

/// True when the session already has an event of `kind` (one-time flags).
pub fn session_has(conn: &mut DbConnection, session_id: &str, kind: &str) -> Result<bool, DbError> {
    use diesel::dsl::exists;
    Ok(diesel::select(exists(
        security_events::table
            .filter(security_events::session_id.eq(session_id))
            .filter(security_events::kind.eq(kind)),
    ))
    .get_result(conn)?)
}

/// How many events of each kind were recorded since `since` (the security-events gauge).
pub fn count_by_kind_since(
    conn: &mut DbConnection,
    since: NaiveDateTime,
) -> Result<Vec<(String, i64)>, DbError> {
    use diesel::dsl::count_star;
    Ok(security_events::table
        .filter(security_events::created_at.ge(since))
        .group_by(security_events::kind)
        .select((security_events::kind, count_star()))
        .load(conn)?)
}
