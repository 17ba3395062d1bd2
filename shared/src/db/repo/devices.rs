use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::repo::sessions;
use crate::db::schema::devices;
use crate::db::{new_id, now, DbConnection, DbError};

/// A registered device: one per (user, fingerprint). `public_key` is the device's proof key
/// (base64 of an uncompressed P-256 point), replaced at each registration; a device registered
/// before proof keys existed has none and must register again. A revoked device's tokens are
/// refused until its user registers it again.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = devices)]
pub struct DeviceRow {
    pub id: String,
    pub user_id: String,
    pub fingerprint: String,
    pub created_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
    pub public_key: Option<String>,
    pub revoked_at: Option<NaiveDateTime>,
    /// The `jti` of the user token that last registered it: signing that token out revokes
    /// the device.
    pub registered_with: Option<String>,
}

#[derive(Insertable)]
#[diesel(table_name = devices)]
struct NewDevice<'a> {
    id: &'a str,
    user_id: &'a str,
    fingerprint: &'a str,
    created_at: NaiveDateTime,
    last_seen_at: NaiveDateTime,
    public_key: &'a str,
    registered_with: &'a str,
}

fn find(
    conn: &mut DbConnection,
    user_id: &str,
    fingerprint: &str,
) -> Result<Option<DeviceRow>, DbError> {
    Ok(devices::table
        .filter(devices::user_id.eq(user_id))
        .filter(devices::fingerprint.eq(fingerprint))
        .select(DeviceRow::as_select())
        .first(conn)
        .optional()?)
}

/// What registers a device: its user, fingerprint, proof key (wire form) and the `jti` of the
/// user token used.
#[derive(Debug, Clone, Copy)]
pub struct Registration<'a> {
    pub user_id: &'a str,
    pub fingerprint: &'a str,
    pub public_key: &'a str,
    pub user_token: &'a str,
}

/// Registers the device with its proof key, or gives the one this user already registered
/// with this fingerprint this key (marking it seen and lifting a revocation: the user signed
/// in again; tokens bound to another key stop working). The row stays consistent under
/// concurrent registrations of the same device; the last key written wins.
pub fn register(conn: &mut DbConnection, r: &Registration<'_>) -> Result<DeviceRow, DbError> {
    let Registration {
        user_id,
        fingerprint,
        ..
    } = *r;
    if let Some(existing) = find(conn, user_id, fingerprint)? {
        rekey(conn, &existing.id, r)?;
        return get(conn, &existing.id);
    }
    let id = new_id();
    let t = now();
    let inserted = diesel::insert_into(devices::table)
        .values(NewDevice {
            id: &id,
            user_id,
            fingerprint,
            created_at: t,
            last_seen_at: t,
            public_key: r.public_key,
            registered_with: r.user_token,
        })
        .execute(conn);
    match inserted {
        Ok(_) => get(conn, &id),
        // Lost a race with a concurrent registration: key the winner's row.
        Err(e) => match DbError::on_unique(e, String::new) {
            DbError::Conflict(_) => {
                let winner =
                    find(conn, user_id, fingerprint)?.ok_or(DbError::NotFound("device"))?;
                rekey(conn, &winner.id, r)?;
                get(conn, &winner.id)
            }
            other => Err(other),
        },
    }
}

fn rekey(conn: &mut DbConnection, id: &str, r: &Registration<'_>) -> Result<(), DbError> {
    diesel::update(devices::table.find(id))
        .set((
            devices::public_key.eq(r.public_key),
            devices::registered_with.eq(r.user_token),
            devices::revoked_at.eq(None::<NaiveDateTime>),
            devices::last_seen_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Revokes a device and its open sessions, with `reason` for the sessions, under the session
/// admission lock (no session is opened for it meanwhile), then runs `also` in the same
/// transaction (an audit entry: pass `audit::APPEND_LOCK_KEY` in `more_locks`). Answers the
/// revoked sessions' ids, or `None` when the device was already revoked (nothing changed).
pub fn revoke_with_sessions(
    conn: &mut DbConnection,
    id: &str,
    reason: &str,
    more_locks: &[i64],
    also: impl FnOnce(&mut DbConnection, &[String]) -> Result<(), DbError>,
) -> Result<Option<Vec<String>>, DbError> {
    let mut locks = vec![sessions::ADMISSION_LOCK_KEY];
    locks.extend_from_slice(more_locks);
    crate::db::serialised_all(conn, &locks, |c| {
        if !revoke(c, id)? {
            return Ok(None);
        }
        let ended = sessions::revoke_open_for_device(c, id, reason)?;
        also(c, &ended)?;
        Ok(Some(ended))
    })
}

/// Ids of the active devices registered with the user token `jti`.
pub fn registered_with(conn: &mut DbConnection, jti: &str) -> Result<Vec<String>, DbError> {
    Ok(devices::table
        .filter(devices::registered_with.eq(jti))
        .filter(devices::revoked_at.is_null())
        .select(devices::id)
        .load(conn)?)
}

/// Revokes a device: its tokens are refused from now on. Answers whether it was active.
pub fn revoke(conn: &mut DbConnection, id: &str) -> Result<bool, DbError> {
    let changed = diesel::update(
        devices::table
            .find(id)
            .filter(devices::revoked_at.is_null()),
    )
    .set(devices::revoked_at.eq(now()))
    .execute(conn)?;
    if changed == 0 {
        get(conn, id)?;
    }
    Ok(changed == 1)
}

pub fn get(conn: &mut DbConnection, id: &str) -> Result<DeviceRow, DbError> {
    devices::table
        .find(id)
        .select(DeviceRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(DbError::NotFound("device"))
}

/// Devices of one user, oldest first.
pub fn list_for_user(conn: &mut DbConnection, user_id: &str) -> Result<Vec<DeviceRow>, DbError> {
    Ok(devices::table
        .filter(devices::user_id.eq(user_id))
        .order(devices::created_at.asc())
        .select(DeviceRow::as_select())
        .load(conn)?)
}

/// Records that the device was seen now.
pub fn touch(conn: &mut DbConnection, id: &str) -> Result<(), DbError> {
    diesel::update(devices::table.find(id))
        .set(devices::last_seen_at.eq(now()))
        .execute(conn)?;
    Ok(())
}
