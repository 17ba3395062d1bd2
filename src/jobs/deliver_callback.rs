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
use shared::db::DbError;

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

/// Where and with what secret a callback may be sent now, or why it may not (for good): its
/// key gone or revoked, its host no longer allowed, the key without a callback secret.
fn sendable(
    config: &shared::config::Config,
    master_key: &[u8; 32],
    url: &str,
    key: Option<&api_keys::ApiKeyRow>,
) -> Result<(url::Url, Vec<u8>), String> {
    let Some(key) = key else {
        return Err("the submitting API key no longer exists".into());
    };
    if key.revoked_at.is_some() {
        return Err("the submitting API key was revoked".into());
    }
    let url = allowed(config, url).map_err(|e| e.to_string())?;
    let sealed = key
        .sealed_callback_secret
        .as_deref()
        .ok_or_else(|| CallbackError::KeyTooOld.to_string())?;
    let secret = api_key::open_callback_secret(master_key, &key.key_hash, sealed)
        .map_err(|e| format!("the key's callback secret does not unseal: {e}"))?;
    Ok((url, secret))
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
        let key = match api_keys::get(&mut conn, &callback.api_key_id) {
            Ok(key) => Some(key),
            Err(DbError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let ready = sendable(
            cx.config,
            cx.secrets.master_key(),
            &callback.url,
            key.as_ref(),
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callback_is_sent_only_for_a_live_key_with_its_secret_to_an_allowed_host() {
        let mut config = shared::config::Config::default();
        config.evidence.callback_hosts = vec!["127.0.0.1:9000".into()];
        let master = [7u8; 32];
        let new = api_key::generate();
        let key = api_keys::ApiKeyRow {
            id: "k1".into(),
            name: "crawler".into(),
            key_prefix: new.display_prefix.clone(),
            key_hash: new.hash.clone(),
            created_at: chrono::Utc::now().naive_utc(),
            last_used_at: None,
            revoked_at: None,
            sealed_callback_secret: Some(api_key::seal_callback_secret(&master, &new).unwrap()),
        };
        let url = "http://127.0.0.1:9000/hook";
        let (to, secret) = sendable(&config, &master, url, Some(&key)).unwrap();
        assert_eq!(to.as_str(), url);
        assert_eq!(secret, api_key::callback_secret(&new.plaintext));
        let refused = |key: Option<&api_keys::ApiKeyRow>, url: &str, master: &[u8; 32]| {
            sendable(&config, master, url, key).unwrap_err()
        };
        assert!(refused(None, url, &master).contains("no longer exists"));
        let revoked = api_keys::ApiKeyRow {
            revoked_at: Some(chrono::Utc::now().naive_utc()),
            ..key.clone()
        };
        assert!(refused(Some(&revoked), url, &master).contains("revoked"));
        assert!(refused(Some(&key), "http://127.0.0.1:9001/hook", &master)
            .contains("does not call back"));
        let old = api_keys::ApiKeyRow {
            sealed_callback_secret: None,
            ..key.clone()
        };
        assert!(refused(Some(&old), url, &master).contains("create a new key"));
        assert!(refused(Some(&key), url, &[8u8; 32]).contains("does not unseal"));
    }
}
