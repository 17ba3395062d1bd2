use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::users;
use crate::db::{new_id, now, DbConnection, DbError};
use crate::domain::Role;

/// A user as stored, password hash included (never serialise this to clients).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub role: String,
    pub disabled: bool,
    pub created_at: NaiveDateTime,
}

impl UserRow {
    /// The role, or an error for a value the schema's CHECK constraint should have refused.
    pub fn role(&self) -> Result<Role, DbError> {
        self.role
            .parse()
            .map_err(|_| DbError::Task(format!("user {} has an unknown role", self.id)))
    }
}

#[derive(Insertable)]
#[diesel(table_name = users)]
struct NewUser<'a> {
    id: &'a str,
    username: &'a str,
    password_hash: &'a str,
    role: &'a str,
    disabled: bool,
    created_at: NaiveDateTime,
}

/// Inserts a user. The name must be validated and the password hashed by the caller.
/// A taken name is `DbError::Conflict`.
pub fn create(
    conn: &mut DbConnection,
    username: &str,
    password_hash: &str,
    role: Role,
) -> Result<UserRow, DbError> {
    let id = new_id();
    let created_at = now();
    diesel::insert_into(users::table)
        .values(NewUser {
            id: &id,
            username,
            password_hash,
            role: role.as_str(),
            disabled: false,
            created_at,
        })
        .execute(conn)
        .map_err(|e| {
            DbError::on_unique(e, || format!("a user named '{username}' already exists"))
        })?;
    get(conn, &id)
}

pub fn get(conn: &mut DbConnection, id: &str) -> Result<UserRow, DbError> {
    users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(DbError::NotFound("user"))
}

pub fn find_by_username(
    conn: &mut DbConnection,
    username: &str,
) -> Result<Option<UserRow>, DbError> {
    Ok(users::table
        .filter(users::username.eq(username))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

/// All users, by name.
pub fn list(conn: &mut DbConnection) -> Result<Vec<UserRow>, DbError> {
    Ok(users::table
        .order(users::username.asc())
        .select(UserRow::as_select())
        .load(conn)?)
}

/// Disables or re-enables a user by name; a disabled user cannot sign in.
pub fn set_disabled(
    conn: &mut DbConnection,
    username: &str,
    disabled: bool,
) -> Result<(), DbError> {
    let n = diesel::update(users::table.filter(users::username.eq(username)))
        .set(users::disabled.eq(disabled))
        .execute(conn)?;
    if n == 0 {
        return Err(DbError::NotFound("user"));
    }
    Ok(())
}

/// Replaces a user's password hash.
pub fn set_password_hash(
    conn: &mut DbConnection,
    username: &str,
    password_hash: &str,
) -> Result<(), DbError> {
    let n = diesel::update(users::table.filter(users::username.eq(username)))
        .set(users::password_hash.eq(password_hash))
        .execute(conn)?;
    if n == 0 {
        return Err(DbError::NotFound("user"));
    }
    Ok(())
}
