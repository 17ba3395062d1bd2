use chrono::NaiveDateTime;
use diesel::prelude::*;

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

/// Registers the device with its proof key, or gives the one this user already registered
/// with this fingerprint its new key (marking it seen and lifting a revocation: the user signed
/// in again; tokens bound to the old key stop working). Safe under concurrent registration of
/// the same device.
pub fn register(
    conn: &mut DbConnection,
    user_id: &str,
    fingerprint: &str,
    public_key: &str,
) -> Result<DeviceRow, DbError> {
    if let Some(existing) = find(conn, user_id, fingerprint)? {
        rekey(conn, &existing.id, public_key)?;
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
            public_key,
        })
        .execute(conn);
    match inserted {
        Ok(_) => get(conn, &id),
        // Lost a race with a concurrent registration: key the winner's row.
        Err(e) => match DbError::on_unique(e, String::new) {
            DbError::Conflict(_) => {
                let winner =
                    find(conn, user_id, fingerprint)?.ok_or(DbError::NotFound("device"))?;
                rekey(conn, &winner.id, public_key)?;
                get(conn, &winner.id)
            }
            other => Err(other),
        },
    }
}

fn rekey(conn: &mut DbConnection, id: &str, public_key: &str) -> Result<(), DbError> {
    diesel::update(devices::table.find(id))
        .set((
            devices::public_key.eq(public_key),
            devices::revoked_at.eq(None::<NaiveDateTime>),
            devices::last_seen_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
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
