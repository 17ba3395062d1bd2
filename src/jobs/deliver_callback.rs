//! `deliver_callback`: POSTs a finished case's verdict to the callback URL its crawler gave
//! (see `crate::callbacks`), queued in the transaction that ends the case. A receiver that
//! does not answer 2xx gets the attempt again after the queue's backoff, up to
//! `callbacks::DELIVERY_ATTEMPTS`; every attempt is recorded on the callback, the delivery or
//! the final failure in the case's audit trail. Idempotent: a callback delivered already is
//! not sent again (a receiver may still see one twice if a worker dies between its POST and
//! the record of it: receivers should treat the case id as the key).

use serde::Serialize;
use shared::auth::api_key;
use shared::db::repo::callbacks::{self, Attempt, CallbackStatus, Delivery};
use shared::db::repo::jobs::JobKind;
use shared::db::repo::{api_keys, audit, cases};

use super::{detail_json, Context, Job};
use crate::callbacks::{allowed, post, signature, CallbackBody, CallbackError, Sent};
use crate::error::AppError;

/// The detail of a `callback_delivered` / `callback_failed` audit entry.
#[derive(Serialize)]
struct CallbackDetail<'a> {
    url: &'a str,
    attempt: i32,
    status: Option<u16>,
    error: Option<&'a str>,
}

impl Job for Delivery {
    const KIND: JobKind = JobKind::DeliverCallback;

    fn run(&self, cx: &Context) -> Result<(), AppError> {
        let mut conn = cx.db.conn()?;
        let Some(callback) = callbacks::get(&mut conn, &self.case_id)? else {
            return Ok(());
        };
        if callback.status != CallbackStatus::Pending {
            return Ok(());
        }
        let case = cases::get(&mut conn, &self.case_id)?;
        if !case.status.is_finished() {
            return Err(AppError::Retry("the case has not ended yet".into()));
        }
        let record = |conn: &mut shared::db::DbConnection,
                      status: Option<u16>,
                      error: Option<&str>,
                      outcome: CallbackStatus|
         -> Result<(), AppError> {
            let attempt = Attempt {
                status: status.map(i32::from),
                error,
                outcome,
            };
            callbacks::record_attempt(conn, &case.id, &attempt)?;
            let action = match outcome {
                CallbackStatus::Delivered => "callback_delivered",
                CallbackStatus::Failed => "callback_failed",
                CallbackStatus::Pending => return Ok(()),
            };
            let detail = CallbackDetail {
                url: &callback.url,
                attempt: cx.row.attempts,
                status,
                error,
            };
            audit::append(
                conn,
                Some(&case.id),
                &format!("worker:{}", cx.worker),
                action,
                &detail_json(&detail),
            )?;
            Ok(())
        };
        // Refused for good: recorded, not retried.
        let key = api_keys::get(&mut conn, &callback.api_key_id)?;
        let secret = key.sealed_callback_secret.as_deref().map(|sealed| {
            api_key::open_callback_secret(cx.secrets.master_key(), &key.key_hash, sealed)
        });
        let ready = match (key.revoked_at, allowed(cx.config, &callback.url), secret) {
            (Some(_), _, _) => Err("the submitting API key was revoked".to_string()),
            (None, Err(e), _) => Err(e.to_string()),
            (None, Ok(_), None) => Err(CallbackError::KeyTooOld.to_string()),
            (None, Ok(_), Some(Err(e))) => {
                Err(format!("the key's callback secret does not unseal: {e}"))
            }
            (None, Ok(url), Some(Ok(secret))) => Ok((url, secret)),
        };
        let (url, secret) = match ready {
            Ok(ready) => ready,
            Err(reason) => {
                record(&mut conn, None, Some(&reason), CallbackStatus::Failed)?;
                return Err(AppError::CallbackRefused(reason));
            }
        };
        let body = CallbackBody {
            status_url: format!("/api/cases/{}/", case.id),
            case_id: case.id.clone(),
            status: case.status,
            result: case
                .result()
                .map(|r| r.for_crawler(|s| cx.secrets.case_reference(&case.id, s))),
            error: case.error.clone(),
        };
        let bytes = serde_json::to_vec(&body).map_err(|e| AppError::JobPayload {
            kind: JobKind::DeliverCallback.as_str(),
            reason: e.to_string(),
        })?;
        let timestamp = chrono::Utc::now().timestamp();
        let signed = signature(&secret, timestamp, &bytes);
        // The POST holds no database connection.
        drop(conn);
        let sent = post(&url, &bytes, timestamp, &signed);
        let mut conn = cx.db.conn()?;
        let (status, error) = match &sent {
            Sent::Delivered(code) => {
                record(&mut conn, Some(*code), None, CallbackStatus::Delivered)?;
                return Ok(());
            }
            Sent::Refused(code) => (Some(*code), format!("the receiver answered {code}")),
            Sent::Unreachable(e) => (None, format!("the receiver is unreachable: {e}")),
        };
        let outcome = if cx.last_attempt() {
            CallbackStatus::Failed
        } else {
            CallbackStatus::Pending
        };
        record(&mut conn, status, Some(&error), outcome)?;
        Err(AppError::Retry(error))
    }
}
