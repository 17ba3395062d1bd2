//! Device tokens already refreshed: a device token is refreshed once, so a refresh request
//! (token and proof) captured on its way cannot be replayed for more tokens. A row is kept
//! until the token would have expired anyway, then removed by housekeeping.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::refreshed_tokens;
use crate::db::{DbConnection, DbError};

/// Records the refresh of the token `jti` (expiring at `expires_at`). Answers `false` when it
/// was refreshed before (nothing written).
pub fn spend(
    conn: &mut DbConnection,
    jti: &str,
    expires_at: NaiveDateTime,
) -> Result<bool, DbError> {
    let inserted = diesel::insert_into(refreshed_tokens::table)
        .values((
            refreshed_tokens::jti.eq(jti),
            refreshed_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(true),
        Err(e) => match DbError::on_unique(e, String::new) {
            DbError::Conflict(_) => Ok(false),
            other => Err(other),
        },
    }
}

/// Forgets refreshes of tokens that expired before `before`.
pub fn purge_expired(conn: &mut DbConnection, before: NaiveDateTime) -> Result<usize, DbError> {
    Ok(
        diesel::delete(refreshed_tokens::table.filter(refreshed_tokens::expires_at.lt(before)))
            .execute(conn)?,
    )
}
