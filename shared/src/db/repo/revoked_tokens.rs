//! User tokens revoked before their expiry (logout). A row is kept until the token would have
//! expired anyway, then removed by housekeeping.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::revoked_tokens;
use crate::db::{DbConnection, DbError};

/// Revokes the token `jti` of `user_id`, which expires at `expires_at`. Revoking twice is not
/// an error.
pub fn revoke(
    conn: &mut DbConnection,
    jti: &str,
    user_id: &str,
    expires_at: NaiveDateTime,
) -> Result<(), DbError> {
    let inserted = diesel::insert_into(revoked_tokens::table)
        .values((
            revoked_tokens::jti.eq(jti),
            revoked_tokens::user_id.eq(user_id),
            revoked_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(()),
        Err(e) => match DbError::on_unique(e, String::new) {
            DbError::Conflict(_) => Ok(()),
            other => Err(other),
        },
    }
}

pub fn is_revoked(conn: &mut DbConnection, jti: &str) -> Result<bool, DbError> {
    Ok(revoked_tokens::table
        .find(jti)
        .select(revoked_tokens::jti)
        .first::<String>(conn)
        .optional()?
        .is_some())
}

/// Forgets revocations of tokens that expired before `before` (they are refused as expired).
pub fn purge_expired(conn: &mut DbConnection, before: NaiveDateTime) -> Result<usize, DbError> {
    Ok(
        diesel::delete(revoked_tokens::table.filter(revoked_tokens::expires_at.lt(before)))
            .execute(conn)?,
    )
}
