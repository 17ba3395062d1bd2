use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::db::schema::stream_sessions;
use crate::db::{now, DbConnection, DbError};

/// Idle time after which a session expires.
pub const IDLE_SECONDS: i64 = 300;

formats::named_enum! {
    /// Lifecycle: requested -> keyed -> streaming -> expired | revoked.
    pub enum SessionState {
        Requested = "requested",
        Keyed = "keyed",
        Streaming = "streaming",
        Expired = "expired",
        Revoked = "revoked",
    }
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = stream_sessions)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub device_id: String,
    pub video_id: String,
    #[diesel(deserialize_as = String)]
    pub state: SessionState,
    pub server_public_key: String,
    pub sealed_server_secret: Option<Vec<u8>>,
    pub sealed_cek: Option<Vec<u8>>,
    pub client_address: Option<String>,
    pub segments_served: i64,
    pub revoked_reason: Option<String>,
    pub created_at: NaiveDateTime,
    pub keyed_at: Option<NaiveDateTime>,
    pub last_activity_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

impl SessionRow {
    /// The stored state, with idle expiry applied as of `at`.
    pub fn state_at(&self, at: NaiveDateTime) -> SessionState {
        let stored = self.state;
        match stored {
            SessionState::Expired | SessionState::Revoked => stored,
            _ if at >= self.expires_at => SessionState::Expired,
            _ => stored,
        }
    }
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = stream_sessions)]
pub struct NewSession {
    pub id: String,
    pub user_id: String,
    pub device_id: String,
    pub video_id: String,
    /// Always `requested` (see [`NewSession::requested`]).
    state: &'static str,
    pub server_public_key: String,
    pub sealed_server_secret: Option<Vec<u8>>,
    pub client_address: Option<String>,
    pub created_at: NaiveDateTime,
    pub last_activity_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

impl NewSession {
    /// A session in state `requested`, expiring after the idle time.
    pub fn requested(
        id: String,
        user_id: String,
        device_id: String,
        video_id: String,
        server_public_key: String,
        sealed_server_secret: Vec<u8>,
        client_address: Option<String>,
    ) -> Self {
        let t = now();
        NewSession {
            id,
            user_id,
            device_id,
            video_id,
            state: SessionState::Requested.as_str(),
            server_public_key,
            sealed_server_secret: Some(sealed_server_secret),
            client_address,
            created_at: t,
            last_activity_at: t,
            expires_at: t + Duration::seconds(IDLE_SECONDS),
        }
    }
}

pub fn create(conn: &mut DbConnection, session: &NewSession) -> Result<SessionRow, DbError> {
    diesel::insert_into(stream_sessions::table)
        .values(session)
        .execute(conn)?;
    get(conn, &session.id)
}

/// What [`create_within_limit`] did.
#[derive(Debug)]
pub enum Admission {
    Created(Box<SessionRow>),
    /// The user already holds `max` open sessions (these), so none was created.
    Full(Vec<SessionRow>),
    /// The device was revoked (after the caller's token was checked).
    DeviceRevoked,
}

/// The PostgreSQL advisory lock that serialises session admissions.
pub const ADMISSION_LOCK_KEY: i64 = 0x6c74_5f73_6573_7331;

/// Creates `session` only if its user holds fewer than `max` open sessions at `at`: the
/// count and the insert run under a lock (a transaction-scoped advisory lock on PostgreSQL,
/// the write lock taken first on SQLite), so parallel requests, on one server or several,
/// cannot together pass the limit. Admissions are rare next to segments: one lock for all.
pub fn create_within_limit(
    conn: &mut DbConnection,
    session: &NewSession,
    max: usize,
    at: NaiveDateTime,
) -> Result<Admission, DbError> {
    let admit = |c: &mut DbConnection| -> Result<Admission, DbError> {
        // Under the same lock as a device's revocation: a session is never opened for a
        // device revoked a moment before.
        let device = crate::db::repo::devices::get(c, &session.device_id)?;
        if device.revoked_at.is_some() {
            return Ok(Admission::DeviceRevoked);
        }
        let open = open_for_user(c, &session.user_id, at)?;
        if open.len() >= max {
            return Ok(Admission::Full(open));
        }
        Ok(Admission::Created(Box::new(create(c, session)?)))
    };
    crate::db::serialised(conn, ADMISSION_LOCK_KEY, admit)
}

pub fn get(conn: &mut DbConnection, id: &str) -> Result<SessionRow, DbError> {
    stream_sessions::table
        .find(id)
        .select(SessionRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(DbError::NotFound("session"))
}

/// Completes the key exchange: stores the sealed CEK, destroys the sealed ephemeral secret,
/// and moves `requested` to `keyed`. Returns false if the session was not in `requested`
/// (a second exchange, or a race), in which case nothing changes.
pub fn mark_keyed(conn: &mut DbConnection, id: &str, sealed_cek: &[u8]) -> Result<bool, DbError> {
    let t = now();
    let n = diesel::update(
        stream_sessions::table
            .find(id)
            .filter(stream_sessions::state.eq(SessionState::Requested.as_str())),
    )
    .set((
        stream_sessions::state.eq(SessionState::Keyed.as_str()),
        stream_sessions::sealed_cek.eq(Some(sealed_cek)),
        stream_sessions::sealed_server_secret.eq(None::<Vec<u8>>),
        stream_sessions::keyed_at.eq(Some(t)),
        stream_sessions::last_activity_at.eq(t),
        stream_sessions::expires_at.eq(t + Duration::seconds(IDLE_SECONDS)),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// What [`reserve_unit`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Counted.
    Granted,
    /// Refused: the session has already been served this many, as many as `allowed`.
    OverLimit(i64),
    /// The session is no longer keyed or streaming.
    Ended,
}

/// Counts one more video unit for a session before it is served, only while the session is
/// keyed or streaming and has been served fewer than `allowed` units: one conditional UPDATE,
/// atomic on both backends, so parallel requests (on one or many servers) can never together
/// pass a limit that each checked alone. `keyed` becomes `streaming`, the idle expiry moves on.
pub fn reserve_unit(
    conn: &mut DbConnection,
    id: &str,
    allowed: i64,
) -> Result<Reservation, DbError> {
    let t = now();
    let live = stream_sessions::state
        .eq(SessionState::Keyed.as_str())
        .or(stream_sessions::state.eq(SessionState::Streaming.as_str()));
    let n = diesel::update(
        stream_sessions::table
            .find(id)
            .filter(live)
            .filter(stream_sessions::segments_served.lt(allowed)),
    )
    .set((
        stream_sessions::state.eq(SessionState::Streaming.as_str()),
        stream_sessions::segments_served.eq(stream_sessions::segments_served + 1),
        stream_sessions::last_activity_at.eq(t),
        stream_sessions::expires_at.eq(t + Duration::seconds(IDLE_SECONDS)),
    ))
    .execute(conn)?;
    if n == 1 {
        return Ok(Reservation::Granted);
    }
    // Refused: why (only this rare path reads the row again).
    let (state, served): (String, i64) = stream_sessions::table
        .find(id)
        .select((stream_sessions::state, stream_sessions::segments_served))
        .first(conn)?;
    Ok(
        if state == SessionState::Keyed.as_str() || state == SessionState::Streaming.as_str() {
            Reservation::OverLimit(served)
        } else {
            Reservation::Ended
        },
    )
}

/// Who a unit is reserved for, as a device token names them: [`reserve_unit_for`] checks in its
/// own statement that they still stand.
#[derive(Debug, Clone, Copy)]
pub struct Holder<'a> {
    pub user_id: &'a str,
    pub device_id: &'a str,
    /// The device's proof key as stored when the token's key was last found current.
    pub device_key: &'a str,
}

/// [`reserve_unit`] that also checks, in the same UPDATE, everything a segment request needs
/// checked in the database: the session belongs to `holder`'s user and device, has not idled
/// out, the user exists and is enabled, and the device exists, is the user's, is not revoked
/// and still holds `holder.device_key`. One statement per unit on the hot path; a revocation
/// committed anywhere is seen by the next unit on every instance. Returns the session's count
/// after the reservation (`RETURNING`; SQLite 3.35 or later), or `None` when anything refused
/// it (the caller then finds out why through the separate checks).
pub fn reserve_unit_for(
    conn: &mut DbConnection,
    id: &str,
    holder: &Holder<'_>,
    allowed: i64,
) -> Result<Option<i64>, DbError> {
    let t = now();
    ReserveUnitFor {
        id,
        holder,
        allowed,
        now: t,
        expires: t + Duration::seconds(IDLE_SECONDS),
    }
    .get_result(conn)
    .optional()
    .map_err(DbError::from)
}

/// The statement of [`reserve_unit_for`], written out rather than built with diesel's
/// `update`: diesel prepares every UPDATE it builds anew on each call (it never caches them),
/// which on the segment hot path cost more than running the statement. Written out with a
/// static query id, each connection prepares it once and keeps it. Portable SQL only (both
/// backends run it; `RETURNING` needs SQLite 3.35 or later).
struct ReserveUnitFor<'a> {
    id: &'a str,
    holder: &'a Holder<'a>,
    allowed: i64,
    now: NaiveDateTime,
    expires: NaiveDateTime,
}

/// The static query id of [`ReserveUnitFor`] (its statement's text never varies).
struct ReserveUnitForId;

impl diesel::query_builder::QueryId for ReserveUnitFor<'_> {
    type QueryId = ReserveUnitForId;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::Query for ReserveUnitFor<'_> {
    type SqlType = diesel::sql_types::BigInt;
}

impl<Conn> RunQueryDsl<Conn> for ReserveUnitFor<'_> {}

impl<DB> diesel::query_builder::QueryFragment<DB> for ReserveUnitFor<'_>
where
    DB: diesel::backend::Backend
        + diesel::sql_types::HasSqlType<diesel::sql_types::Bool>
        + diesel::sql_types::HasSqlType<diesel::sql_types::Timestamp>,
    str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
    i64: diesel::serialize::ToSql<diesel::sql_types::BigInt, DB>,
    bool: diesel::serialize::ToSql<diesel::sql_types::Bool, DB>,
    NaiveDateTime: diesel::serialize::ToSql<diesel::sql_types::Timestamp, DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Bool, Text, Timestamp};
        let (holder, streaming) = (self.holder, SessionState::Streaming.as_str());
        out.push_sql("UPDATE stream_sessions SET state = ");
        out.push_bind_param::<Text, _>(streaming)?;
        out.push_sql(", segments_served = segments_served + 1, last_activity_at = ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(", expires_at = ");
        out.push_bind_param::<Timestamp, _>(&self.expires)?;
        out.push_sql(" WHERE stream_sessions.id = ");
        out.push_bind_param::<Text, _>(self.id)?;
        out.push_sql(" AND (stream_sessions.state = ");
        out.push_bind_param::<Text, _>(SessionState::Keyed.as_str())?;
        out.push_sql(" OR stream_sessions.state = ");
        out.push_bind_param::<Text, _>(streaming)?;
        out.push_sql(") AND stream_sessions.expires_at > ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(" AND stream_sessions.segments_served < ");
        out.push_bind_param::<BigInt, _>(&self.allowed)?;
        out.push_sql(" AND stream_sessions.user_id = ");
        out.push_bind_param::<Text, _>(holder.user_id)?;
        out.push_sql(" AND stream_sessions.device_id = ");
        out.push_bind_param::<Text, _>(holder.device_id)?;
        out.push_sql(" AND EXISTS (SELECT 1 FROM users WHERE users.id = ");
        out.push_bind_param::<Text, _>(holder.user_id)?;
        out.push_sql(" AND users.disabled = ");
        out.push_bind_param::<Bool, _>(&false)?;
        out.push_sql(") AND EXISTS (SELECT 1 FROM devices WHERE devices.id = ");
        out.push_bind_param::<Text, _>(holder.device_id)?;
        out.push_sql(" AND devices.user_id = ");
        out.push_bind_param::<Text, _>(holder.user_id)?;
        out.push_sql(" AND devices.revoked_at IS NULL AND devices.public_key = ");
        out.push_bind_param::<Text, _>(holder.device_key)?;
        out.push_sql(") RETURNING segments_served");
        Ok(())
    }
}

/// Records activity (a manifest or segment fetch): `keyed` becomes `streaming`, the idle
/// expiry moves forward, and segment fetches are counted.
pub fn record_activity(conn: &mut DbConnection, id: &str, segments: i64) -> Result<(), DbError> {
    let t = now();
    diesel::update(
        stream_sessions::table.find(id).filter(
            stream_sessions::state
                .eq(SessionState::Keyed.as_str())
                .or(stream_sessions::state.eq(SessionState::Streaming.as_str())),
        ),
    )
    .set((
        stream_sessions::state.eq(SessionState::Streaming.as_str()),
        stream_sessions::segments_served.eq(stream_sessions::segments_served + segments),
        stream_sessions::last_activity_at.eq(t),
        stream_sessions::expires_at.eq(t + Duration::seconds(IDLE_SECONDS)),
    ))
    .execute(conn)?;
    Ok(())
}

/// Ends a session for good (`expired` or `revoked`, with a reason).
pub fn end(
    conn: &mut DbConnection,
    id: &str,
    state: SessionState,
    reason: Option<&str>,
) -> Result<(), DbError> {
    diesel::update(stream_sessions::table.find(id))
        .set((
            stream_sessions::state.eq(state.as_str()),
            stream_sessions::revoked_reason.eq(reason),
            stream_sessions::sealed_server_secret.eq(None::<Vec<u8>>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Sessions that streamed a title (candidates for leak matching), oldest first.
pub fn list_for_video(conn: &mut DbConnection, video_id: &str) -> Result<Vec<SessionRow>, DbError> {
    Ok(stream_sessions::table
        .filter(stream_sessions::video_id.eq(video_id))
        .order(stream_sessions::created_at.asc())
        .select(SessionRow::as_select())
        .load(conn)?)
}

/// Ids of the sessions of a title that completed the key exchange (the only ones that can have
/// leaked it), in id order, at most `limit` after `after`: a title's candidates read in
/// batches, whatever their number.
pub fn keyed_ids_for_video(
    conn: &mut DbConnection,
    video_id: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<String>, DbError> {
    let mut query = stream_sessions::table
        .filter(stream_sessions::video_id.eq(video_id))
        .filter(stream_sessions::keyed_at.is_not_null())
        .order(stream_sessions::id.asc())
        .limit(limit)
        .select(stream_sessions::id)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(stream_sessions::id.gt(after));
    }
    Ok(query.load(conn)?)
}

/// The stored states of an open session (idle expiry aside).
fn open_states() -> [&'static str; 3] {
    [
        SessionState::Requested.as_str(),
        SessionState::Keyed.as_str(),
        SessionState::Streaming.as_str(),
    ]
}

/// A user's open sessions (requested, keyed or streaming, not idle past `at`), oldest first.
pub fn open_for_user(
    conn: &mut DbConnection,
    user_id: &str,
    at: NaiveDateTime,
) -> Result<Vec<SessionRow>, DbError> {
    Ok(stream_sessions::table
        .filter(stream_sessions::user_id.eq(user_id))
        .filter(stream_sessions::state.eq_any(open_states()))
        .filter(stream_sessions::expires_at.gt(at))
        .order(stream_sessions::created_at.asc())
        .select(SessionRow::as_select())
        .load(conn)?)
}

/// Revokes every open session (requested, keyed or streaming) of a device, with `reason`:
/// what ends playback when the device is revoked. Answers the ids of those sessions (for the
/// callers' caches). Part of [`devices::revoke_with_sessions`](super::devices), which holds
/// the admission lock so that no session is opened meanwhile.
pub fn revoke_open_for_device(
    conn: &mut DbConnection,
    device_id: &str,
    reason: &str,
) -> Result<Vec<String>, DbError> {
    let ids: Vec<String> = stream_sessions::table
        .filter(stream_sessions::device_id.eq(device_id))
        .filter(stream_sessions::state.eq_any(open_states()))
        .select(stream_sessions::id)
        .load(conn)?;
    for id in &ids {
        end(conn, id, SessionState::Revoked, Some(reason))?;
    }
    Ok(ids)
}

/// How many sessions are open (requested, keyed or streaming, not idle past `at`): the
/// active-sessions gauge.
pub fn count_open(conn: &mut DbConnection, at: NaiveDateTime) -> Result<i64, DbError> {
    Ok(stream_sessions::table
        .filter(stream_sessions::state.eq_any(open_states()))
        .filter(stream_sessions::expires_at.gt(at))
        .count()
        .get_result(conn)?)
}
