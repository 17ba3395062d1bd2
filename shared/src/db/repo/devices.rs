use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::devices;
use crate::db::{new_id, now, DbConnection, DbError};

/// A registered device: one per (user, fingerprint).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = devices)]
pub struct DeviceRow {
    pub id: String,
    pub user_id: String,
    pub fingerprint: String,
    pub created_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = devices)]
struct NewDevice<'a> {
    id: &'a str,
    user_id: &'a str,
    fingerprint: &'a str,
    created_at: NaiveDateTime,
    last_seen_at: NaiveDateTime,
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

/// Registers the device, or returns the one this user already registered with this
/// fingerprint (marking it seen). Safe under concurrent registration of the same device.
pub fn register(
    conn: &mut DbConnection,
    user_id: &str,
    fingerprint: &str,
) -> Result<DeviceRow, DbError> {
    if let Some(existing) = find(conn, user_id, fingerprint)? {
        touch(conn, &existing.id)?;
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
        })
        .execute(conn);
    match inserted {
        Ok(_) => get(conn, &id),
        // Lost a race with a concurrent registration: use the winner's row.
        Err(e) => match DbError::on_unique(e, String::new) {
            DbError::Conflict(_) => {
                find(conn, user_id, fingerprint)?.ok_or(DbError::NotFound("device"))
            }
            other => Err(other),
        },
    }
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
