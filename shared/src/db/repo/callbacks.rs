//! Crawler callbacks: where to POST a case's verdict when the case ends (given with the
//! submission), and how the delivery went. A case that ends with a pending callback queues
//! its delivery in the same transaction ([`queue_delivery`]); the `deliver_callback` job
//! POSTs it, retried with backoff, and records each attempt here.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::db::repo::jobs::{self, JobKind};
use crate::db::schema::case_callbacks;
use crate::db::{now, DbConnection, DbError};

/// Delivery attempts before a callback is given up (backoff doubling from 5 s: about 21
/// minutes from the first to the last).
pub const DELIVERY_ATTEMPTS: i32 = 8;

formats::named_enum! {
    /// Where a callback is.
    pub enum CallbackStatus {
        /// Waiting for its case to end, or being delivered.
        Pending = "pending",
        /// The receiver answered 2xx.
        Delivered = "delivered",
        /// Every attempt failed, or the URL is no longer allowed.
        Failed = "failed",
    }
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = case_callbacks)]
pub struct CallbackRow {
    pub case_id: String,
    pub url: String,
    pub api_key_id: String,
    #[diesel(deserialize_as = String)]
    pub status: CallbackStatus,
    pub attempts: i32,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub delivered_at: Option<NaiveDateTime>,
}

/// The payload of a `deliver_callback` job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub case_id: String,
}

/// Records that `case_id`'s verdict goes to `url` when it ends (the case submitted by API key
/// `api_key_id`).
pub fn create(
    conn: &mut DbConnection,
    case_id: &str,
    url: &str,
    api_key_id: &str,
) -> Result<(), DbError> {
    let t = now();
    diesel::insert_into(case_callbacks::table)
        .values((
            case_callbacks::case_id.eq(case_id),
            case_callbacks::url.eq(url),
            case_callbacks::api_key_id.eq(api_key_id),
            case_callbacks::status.eq(CallbackStatus::Pending.as_str()),
            case_callbacks::attempts.eq(0),
            case_callbacks::created_at.eq(t),
            case_callbacks::updated_at.eq(t),
        ))
        .execute(conn)?;
    Ok(())
}

/// The callback of a case, if it has one.
pub fn get(conn: &mut DbConnection, case_id: &str) -> Result<Option<CallbackRow>, DbError> {
    Ok(case_callbacks::table
        .find(case_id)
        .select(CallbackRow::as_select())
        .first(conn)
        .optional()?)
}

/// Queues the delivery of `case_id`'s callback if it has a pending one (its case just ended).
/// Returns whether it did.
pub fn queue_delivery(conn: &mut DbConnection, case_id: &str) -> Result<bool, DbError> {
    match get(conn, case_id)? {
        Some(c) if c.status == CallbackStatus::Pending => {}
        _ => return Ok(false),
    }
    let payload = serde_json::to_string(&Delivery {
        case_id: case_id.to_string(),
    })
    .map_err(|e| DbError::Encode(format!("the callback job of case {case_id}: {e}")))?;
    jobs::enqueue(conn, JobKind::DeliverCallback, &payload, DELIVERY_ATTEMPTS)?;
    Ok(true)
}

/// What one delivery attempt got.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt<'a> {
    /// The receiver's HTTP status, if it answered.
    pub status: Option<i32>,
    /// Why it failed, if it did.
    pub error: Option<&'a str>,
    /// The callback's status after this attempt.
    pub outcome: CallbackStatus,
}

/// Records a delivery attempt of `case_id`'s pending callback (one delivered or failed already
/// stays so: a second, racing delivery does not reopen it).
pub fn record_attempt(
    conn: &mut DbConnection,
    case_id: &str,
    attempt: &Attempt<'_>,
) -> Result<(), DbError> {
    let t = now();
    let delivered = (attempt.outcome == CallbackStatus::Delivered).then_some(t);
    diesel::update(
        case_callbacks::table
            .find(case_id)
            .filter(case_callbacks::status.eq(CallbackStatus::Pending.as_str())),
    )
    .set((
        case_callbacks::status.eq(attempt.outcome.as_str()),
        case_callbacks::attempts.eq(case_callbacks::attempts + 1),
        case_callbacks::last_status.eq(attempt.status),
        case_callbacks::last_error.eq(attempt.error),
        case_callbacks::updated_at.eq(t),
        case_callbacks::delivered_at.eq(delivered),
    ))
    .execute(conn)?;
    Ok(())
}
