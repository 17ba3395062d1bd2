use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::api_keys;
use crate::db::{new_id, now, DbConnection, DbError};

/// A stored API key: its name, a short display prefix and the SHA-256 of the key.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyRow {
    pub id: String,
    pub name: String,
    pub key_prefix: String,
    pub key_hash: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    /// The key's callback secret sealed under the master key (`auth::api_key`); none for keys
    /// created before callbacks existed.
    pub sealed_callback_secret: Option<Vec<u8>>,
}

#[derive(Insertable)]
#[diesel(table_name = api_keys)]
struct NewApiKey<'a> {
    id: &'a str,
    name: &'a str,
    key_prefix: &'a str,
    key_hash: &'a str,
    created_at: NaiveDateTime,
    sealed_callback_secret: Option<&'a [u8]>,
}

/// Stores a key's hash (and its sealed callback secret) under a unique name. A taken name is
/// `DbError::Conflict`.
pub fn create(
    conn: &mut DbConnection,
    name: &str,
    key_prefix: &str,
    key_hash: &str,
    sealed_callback_secret: Option<&[u8]>,
) -> Result<ApiKeyRow, DbError> {
    let id = new_id();
    diesel::insert_into(api_keys::table)
        .values(NewApiKey {
            id: &id,
            name,
            key_prefix,
            key_hash,
            created_at: now(),
            sealed_callback_secret,
        })
        .execute(conn)
        .map_err(|e| {
            DbError::on_unique(e, || format!("an API key named '{name}' already exists"))
        })?;
    Ok(api_keys::table
        .find(&id)
        .select(ApiKeyRow::as_select())
        .first(conn)?)
}

/// The key with this hash, unless revoked.
pub fn find_active_by_hash(
    conn: &mut DbConnection,
    key_hash: &str,
) -> Result<Option<ApiKeyRow>, DbError> {
    Ok(api_keys::table
        .filter(api_keys::key_hash.eq(key_hash))
        .filter(api_keys::revoked_at.is_null())
        .select(ApiKeyRow::as_select())
        .first(conn)
        .optional()?)
}

/// All keys (revoked ones included), by name.
pub fn list(conn: &mut DbConnection) -> Result<Vec<ApiKeyRow>, DbError> {
    Ok(api_keys::table
        .order(api_keys::name.asc())
        .select(ApiKeyRow::as_select())
        .load(conn)?)
}

/// Revokes a key by name. Revoking twice keeps the first time.
pub fn revoke(conn: &mut DbConnection, name: &str) -> Result<(), DbError> {
    let exists = api_keys::table
        .filter(api_keys::name.eq(name))
        .count()
        .get_result::<i64>(conn)?;
    if exists == 0 {
        return Err(DbError::NotFound("API key"));
    }
    diesel::update(
        api_keys::table
            .filter(api_keys::name.eq(name))
            .filter(api_keys::revoked_at.is_null()),
    )
    .set(api_keys::revoked_at.eq(Some(now())))
    .execute(conn)?;
    Ok(())
}

/// Records a use of the key.
pub fn touch(conn: &mut DbConnection, id: &str) -> Result<(), DbError> {
    diesel::update(api_keys::table.find(id))
        .set(api_keys::last_used_at.eq(Some(now())))
        .execute(conn)?;
    Ok(())
}

/// The key with id `id` (revoked or not).
pub fn get(conn: &mut DbConnection, id: &str) -> Result<ApiKeyRow, DbError> {
    api_keys::table
        .find(id)
        .select(ApiKeyRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(DbError::NotFound("api key"))
}
