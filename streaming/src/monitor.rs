//! Monitoring that acts (issue: streaming monitoring): every decision here is recorded as a
//! security event with kind, severity, session, device, address and detail, and the counts it
//! relies on live in the database, so any server instance sees what the others saw.
//!
//! - ripping: a session fetching content much faster than real time is flagged, and past the
//!   limit throttled (429 + Retry-After) or revoked, as configured;
//! - concurrency: a user may hold at most `max_concurrent_sessions` open sessions;
//! - authentication failures: past `auth_failures_max` per address or account within the
//!   window, logins and token refreshes get 429 + Retry-After;
//! - probes for files by URL (`/media/...`, traversal) are answered 403/404 and recorded.

use actix_web::HttpRequest;
use chrono::NaiveDateTime;
use shared::config::RippingAction;
use shared::db::now;
use shared::db::repo::security_events::{self, NewEvent, Severity, Subject};
use shared::db::repo::sessions::{self, Reservation, SessionRow, SessionState};

use crate::state::StreamingState;
use api::auth::client_address;
use api::ApiError;

pub const AUTH_FAILURE: &str = "auth_failure";
/// A login whose password is being checked: counted against the submitted name like a
/// failure (parallel guesses of one name cannot pass its budget), and against the address
/// only beyond [`PENDING_LOGINS_PER_ADDRESS`] at once (many people behind one address sign in
/// together; each attempt that fails becomes an [`AUTH_FAILURE`] of the address).
pub const AUTH_ATTEMPT: &str = "auth_attempt";
/// Logins from one address whose passwords may be checked at once.
pub const PENDING_LOGINS_PER_ADDRESS: i64 = 64;
pub const RIPPING_SUSPECTED: &str = "ripping_suspected";
pub const RIPPING_THROTTLED: &str = "ripping_throttled";
pub const RIPPING_REVOKED: &str = "ripping_revoked";
pub const CONCURRENT_SESSIONS: &str = "concurrent_sessions_exceeded";
pub const FILE_PROBE: &str = "direct_file_probe";

/// An event to store (owned, so it can move into a database closure).
#[derive(Debug, Clone, Default)]
pub struct Event {
    pub kind: &'static str,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    pub device_id: Option<String>,
    pub address: Option<String>,
    pub detail: String,
    /// The account name an authentication attempt submitted.
    pub account: Option<String>,
}

impl Event {
    fn as_new(&self) -> NewEvent<'_> {
        NewEvent {
            kind: self.kind,
            session_id: self.session_id.as_deref(),
            user_id: self.user_id.as_deref(),
            device_id: self.device_id.as_deref(),
            address: self.address.as_deref(),
            detail: &self.detail,
            account: self.account.as_deref(),
        }
    }

    fn about_session(
        kind: &'static str,
        s: &SessionRow,
        req: &HttpRequest,
        detail: String,
    ) -> Self {
        Event {
            kind,
            session_id: Some(s.id.clone()),
            user_id: Some(s.user_id.clone()),
            device_id: Some(s.device_id.clone()),
            address: client_address(req),
            detail,
            account: None,
        }
    }
}

pub async fn record(
    state: &StreamingState,
    severity: Severity,
    event: Event,
) -> Result<(), ApiError> {
    tracing::warn!(kind = event.kind, severity = severity.as_str(), detail = %event.detail, "security event");
    state
        .db
        .run(move |c| security_events::record(c, severity, &event.as_new()).map(|_| ()))
        .await?;
    Ok(())
}

/// Records an unauthenticated probe (`request`: method and path) from `address`: the first
/// of the address's window as an event, later ones as that event's count (see `probes`).
pub async fn record_probe(
    state: &StreamingState,
    address: Option<String>,
    request: String,
) -> Result<(), ApiError> {
    use crate::probes::Write;
    let key = crate::probes::key_of(address.as_deref().unwrap_or_default());
    let count_detail = |count: u64, first: &str| {
        format!(
            "{count} probes from this address within 10 minutes; first: {first}; latest: {request}"
        )
    };
    match state.probes.note(&key, &request, std::time::Instant::now()) {
        Write::Nothing => Ok(()),
        Write::Update {
            event_id,
            count,
            first,
        } => {
            let detail = count_detail(count, &first);
            state
                .db
                .run(move |c| security_events::set_detail(c, &event_id, &detail))
                .await?;
            Ok(())
        }
        Write::Record { key } => {
            tracing::warn!(kind = FILE_PROBE, detail = %request, "security event");
            let overflow = key == crate::probes::OVERFLOW;
            let event = Event {
                kind: FILE_PROBE,
                address: if overflow { Some(key.clone()) } else { address },
                detail: request.clone(),
                ..Event::default()
            };
            let written = state
                .db
                .run(move |c| security_events::record(c, Severity::Warning, &event.as_new()))
                .await;
            let row = match written {
                Ok(row) => row,
                Err(e) => {
                    state.probes.forget(&key);
                    return Err(e.into());
                }
            };
            if let Some(count) = state.probes.recorded(&key, row.id.clone()) {
                let detail = count_detail(count, &row.detail);
                state
                    .db
                    .run(move |c| security_events::set_detail(c, &row.id, &detail))
                    .await?;
            }
            Ok(())
        }
    }
}

/// Records `event` unless its session already has one of the same kind (one-time flags).
async fn record_once(
    state: &StreamingState,
    severity: Severity,
    event: Event,
) -> Result<(), ApiError> {
    let Some(sid) = event.session_id.clone() else {
        return record(state, severity, event).await;
    };
    let kind = event.kind;
    let seen = state
        .db
        .run(move |c| security_events::session_has(c, &sid, kind))
        .await?;
    if seen {
        return Ok(());
    }
    record(state, severity, event).await
}

// ---- authentication failures ----

/// Refuses (429) when `subject` has used up its failure budget in the current window.
pub async fn check_auth_budget(
    state: &StreamingState,
    subject: Subject<'_>,
) -> Result<(), ApiError> {
    let m = state.monitoring;
    let window = chrono::Duration::seconds(m.auth_failures_window_seconds as i64);
    let since = now() - window;
    let (count, oldest) = count_failures(state, subject, since).await?;
    if count < m.auth_failures_max as i64 {
        return Ok(());
    }
    Err(too_many_attempts(oldest, window))
}

/// Authentication failures of `subject` since `since`, and the oldest one's time.
async fn count_failures(
    state: &StreamingState,
    subject: Subject<'_>,
    since: chrono::NaiveDateTime,
) -> Result<(i64, Option<chrono::NaiveDateTime>), ApiError> {
    count_kind(state, AUTH_FAILURE, subject, since).await
}

/// Events of `kind` about `subject` since `since`, and the oldest one's time.
async fn count_kind(
    state: &StreamingState,
    kind: &'static str,
    subject: Subject<'_>,
    since: chrono::NaiveDateTime,
) -> Result<(i64, Option<chrono::NaiveDateTime>), ApiError> {
    let owned = match subject {
        Subject::Address(a) => (0u8, a.to_string()),
        Subject::User(u) => (1, u.to_string()),
        Subject::Account(a) => (2, a.to_string()),
    };
    Ok(state
        .db
        .run(move |c| {
            let subject = match owned.0 {
                0 => Subject::Address(&owned.1),
                1 => Subject::User(&owned.1),
                _ => Subject::Account(&owned.1),
            };
            security_events::count_since(c, kind, subject, since)
        })
        .await?)
}

fn too_many_attempts(oldest: Option<chrono::NaiveDateTime>, window: chrono::Duration) -> ApiError {
    let frees_at = oldest.unwrap_or_else(now) + window;
    let wait = (frees_at - now()).num_seconds().max(1) as u64;
    ApiError::too_many(
        "too_many_attempts",
        "too many failed attempts; wait before trying again",
        wait,
    )
}

/// A login attempt counted before its password is checked ([`AUTH_ATTEMPT`]), so that
/// parallel attempts cannot all pass the budget: [`LoginAttempt::succeeded`] takes it back,
/// [`LoginAttempt::failed`] turns it into an [`AUTH_FAILURE`] with the reason.
pub struct LoginAttempt {
    event_id: String,
}

impl LoginAttempt {
    /// Counts an attempt on `account` (the submitted name) from the caller's address, for
    /// `user_id` when such an account exists; refuses (429) when, with it, the address or the
    /// name is past the budget (then it does not count).
    pub async fn begin(
        state: &StreamingState,
        req: &HttpRequest,
        account: &str,
        user_id: Option<String>,
    ) -> Result<LoginAttempt, ApiError> {
        let address = client_address(req);
        let event = Event {
            kind: AUTH_ATTEMPT,
            user_id,
            address: address.clone(),
            account: Some(account.to_string()),
            detail: "login attempt (password being checked)".into(),
            ..Event::default()
        };
        let row = state
            .db
            .run(move |c| security_events::record(c, Severity::Warning, &event.as_new()))
            .await?;
        let attempt = LoginAttempt { event_id: row.id };
        let m = state.monitoring;
        let window = chrono::Duration::seconds(m.auth_failures_window_seconds as i64);
        let since = now() - window;
        let address = address.unwrap_or_default();
        let max = m.auth_failures_max as i64;
        // The name: failures and attempts under way together, this one included.
        let (failed, oldest) =
            count_kind(state, AUTH_FAILURE, Subject::Account(account), since).await?;
        let (pending, oldest_pending) =
            count_kind(state, AUTH_ATTEMPT, Subject::Account(account), since).await?;
        let name_over = failed + pending > max;
        // The address: its failures, and attempts under way only past the parallel allowance.
        let (address_failed, address_oldest) =
            count_kind(state, AUTH_FAILURE, Subject::Address(&address), since).await?;
        let (address_pending, _) =
            count_kind(state, AUTH_ATTEMPT, Subject::Address(&address), since).await?;
        let address_over = address_failed >= max || address_pending > PENDING_LOGINS_PER_ADDRESS;
        if name_over || address_over {
            attempt.succeeded(state).await?;
            let oldest = if name_over {
                oldest.or(oldest_pending)
            } else {
                address_oldest
            };
            return Err(too_many_attempts(oldest, window));
        }
        Ok(attempt)
    }

    /// The password was right: the attempt is not a failure.
    pub async fn succeeded(self, state: &StreamingState) -> Result<(), ApiError> {
        let id = self.event_id;
        state
            .db
            .run(move |c| security_events::remove(c, &id))
            .await?;
        Ok(())
    }

    /// The attempt failed: it stays counted, as a failure with `detail`.
    pub async fn failed(self, state: &StreamingState, detail: &str) -> Result<(), ApiError> {
        tracing::warn!(kind = AUTH_FAILURE, %detail, "security event");
        let (id, detail) = (self.event_id, detail.to_string());
        state
            .db
            .run(move |c| security_events::settle(c, &id, AUTH_FAILURE, &detail))
            .await?;
        Ok(())
    }
}

pub async fn record_auth_failure(
    state: &StreamingState,
    req: &HttpRequest,
    user_id: Option<String>,
    device_id: Option<String>,
    detail: &str,
) -> Result<(), ApiError> {
    record(
        state,
        Severity::Warning,
        Event {
            kind: AUTH_FAILURE,
            user_id,
            device_id,
            address: client_address(req),
            detail: detail.to_string(),
            ..Event::default()
        },
    )
    .await
}

// ---- concurrent sessions ----

/// The refusal (429) of a new session for a user who already holds the allowed number of
/// open ones (`open`, at `t`), recorded as an event.
pub async fn refuse_concurrent(
    state: &StreamingState,
    req: &HttpRequest,
    user_id: &str,
    device_id: Option<&str>,
    open: &[SessionRow],
    t: chrono::NaiveDateTime,
) -> ApiError {
    let max = state.monitoring.max_concurrent_sessions as usize;
    let mut devices: Vec<&str> = open.iter().map(|s| s.device_id.as_str()).collect();
    devices.sort_unstable();
    devices.dedup();
    let detail = format!(
        "new session refused: {} open sessions on {} device(s), limit {max}",
        open.len(),
        devices.len()
    );
    let wait = open
        .iter()
        .map(|s| (s.expires_at - t).num_seconds())
        .min()
        .unwrap_or(1)
        .max(1) as u64;
    let recorded = record(
        state,
        Severity::Warning,
        Event {
            kind: CONCURRENT_SESSIONS,
            user_id: Some(user_id.to_string()),
            device_id: device_id.map(str::to_string),
            address: client_address(req),
            detail,
            ..Event::default()
        },
    )
    .await;
    if let Err(e) = recorded {
        return e;
    }
    ApiError::too_many(
        "too_many_sessions",
        format!("this account already has {max} open sessions; close one or wait for it to expire"),
        wait,
    )
}

// ---- ripping ----

/// How a session's fetching compares with real time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    /// Content seconds fetched (video segments).
    pub content_seconds: f64,
    /// Wall-clock seconds since the key exchange.
    pub elapsed_seconds: f64,
}

impl Pace {
    pub fn of(session: &SessionRow, unit_seconds: f64) -> Option<Pace> {
        Some(Pace::since(
            session.keyed_at?,
            session.segments_served,
            unit_seconds,
        ))
    }

    /// A session keyed at `keyed` that has been served `served` units.
    fn since(keyed: NaiveDateTime, served: i64, unit_seconds: f64) -> Pace {
        Pace {
            content_seconds: served as f64 * unit_seconds,
            elapsed_seconds: (now() - keyed).num_milliseconds().max(0) as f64 / 1000.0,
        }
    }

    /// Content allowed so far under the limit speed.
    fn limit(&self, state: &StreamingState) -> f64 {
        let m = state.monitoring;
        self.budget(m.ripping_burst_seconds, m.ripping_limit_speed)
    }

    /// Units that fit under the limit so far (the one asked for included).
    fn allowed_units(&self, state: &StreamingState, unit_seconds: f64) -> i64 {
        (self.limit(state) / unit_seconds.max(1e-9) + 1e-9)
            .floor()
            .min(i64::MAX as f64) as i64
    }

    /// Content allowed so far at `speed` times real time, after the burst.
    fn budget(&self, burst: f64, speed: f64) -> f64 {
        burst + speed * self.elapsed_seconds
    }

    fn describe(&self) -> String {
        format!(
            "fetched {:.0} s of content in {:.0} s",
            self.content_seconds, self.elapsed_seconds
        )
    }
}

/// Counts one more video unit of `unit_seconds` for a session, if its pace allows: the unit
/// is reserved in the database (a conditional update, see `sessions::reserve_unit`) before it
/// is served, so a burst of parallel requests, on one server or several, gets no more than
/// the burst and the pace allow. Past the flag speed the session is flagged; past the limit
/// it is throttled (429) or revoked, as configured.
pub async fn reserve_unit(
    state: &StreamingState,
    req: &HttpRequest,
    session: &SessionRow,
    unit_seconds: f64,
) -> Result<(), ApiError> {
    let Some(pace) = Pace::of(session, unit_seconds) else {
        return Err(ApiError::conflict(
            "not_keyed",
            "complete the key exchange before streaming",
        ));
    };
    let limit = pace.limit(state);
    let allowed = pace.allowed_units(state, unit_seconds);
    let id = session.id.clone();
    let reserved = state
        .db
        .run(move |c| sessions::reserve_unit(c, &id, allowed))
        .await?;
    let served = match reserved {
        // The count as this request saw it, plus this unit (parallel requests may have added
        // more: the flag is a notice, the limit above is exact).
        Reservation::Granted => session.segments_served + 1,
        Reservation::Ended => {
            return Err(ApiError::forbidden(
                "session_revoked",
                "the session has ended",
            ))
        }
        Reservation::OverLimit(served) => {
            let over = Pace {
                content_seconds: (served + 1) as f64 * unit_seconds,
                ..pace
            };
            flag_if_fast(state, req, session, over).await?;
            return over_limit(state, req, session, over, limit).await;
        }
    };
    let now_at = Pace {
        content_seconds: served as f64 * unit_seconds,
        ..pace
    };
    flag_if_fast(state, req, session, now_at).await
}

/// Units a session keyed at `keyed_at` may have been served by now, the next one included.
pub fn allowed_units(state: &StreamingState, keyed_at: NaiveDateTime, unit_seconds: f64) -> i64 {
    Pace::since(keyed_at, 0, unit_seconds).allowed_units(state, unit_seconds)
}

/// After a unit was reserved by the fast path (`sessions::reserve_unit_for`, whose limit was
/// [`allowed_units`]): flags the session if `served` units are past the flag speed.
pub async fn reserved_unit(
    state: &StreamingState,
    req: &HttpRequest,
    session: &SessionRow,
    served: i64,
    unit_seconds: f64,
) -> Result<(), ApiError> {
    let Some(keyed) = session.keyed_at else {
        return Ok(());
    };
    flag_if_fast(
        state,
        req,
        session,
        Pace::since(keyed, served, unit_seconds),
    )
    .await
}

/// Flags (once) a session whose pace is past the flag speed.
async fn flag_if_fast(
    state: &StreamingState,
    req: &HttpRequest,
    session: &SessionRow,
    pace: Pace,
) -> Result<(), ApiError> {
    let m = state.monitoring;
    if pace.content_seconds <= pace.budget(m.ripping_burst_seconds, m.ripping_flag_speed) {
        return Ok(());
    }
    let detail = format!(
        "{}; above {} x real time",
        pace.describe(),
        m.ripping_flag_speed
    );
    record_once(
        state,
        Severity::Warning,
        Event::about_session(RIPPING_SUSPECTED, session, req, detail),
    )
    .await
}

/// A session asking past its limit: throttled or revoked.
async fn over_limit(
    state: &StreamingState,
    req: &HttpRequest,
    session: &SessionRow,
    pace: Pace,
    limit: f64,
) -> Result<(), ApiError> {
    let m = state.monitoring;
    match m.ripping_action {
        RippingAction::Throttle => {
            let detail = format!(
                "{}; throttled above {} x real time",
                pace.describe(),
                m.ripping_limit_speed
            );
            record_once(
                state,
                Severity::Warning,
                Event::about_session(RIPPING_THROTTLED, session, req, detail),
            )
            .await?;
            let wait = ((pace.content_seconds - limit) / m.ripping_limit_speed)
                .ceil()
                .max(1.0) as u64;
            Err(ApiError::too_many(
                "rate_limited",
                "segments are being fetched much faster than real time; slow down",
                wait,
            ))
        }
        RippingAction::Revoke => {
            let detail = format!(
                "{}; revoked above {} x real time",
                pace.describe(),
                m.ripping_limit_speed
            );
            record(
                state,
                Severity::Critical,
                Event::about_session(RIPPING_REVOKED, session, req, detail),
            )
            .await?;
            let id = session.id.clone();
            state
                .db
                .run(move |c| {
                    sessions::end(
                        c,
                        &id,
                        SessionState::Revoked,
                        Some("fetched faster than real time"),
                    )
                })
                .await?;
            state.caches.forget_session(&session.id);
            state.activity.forget(&session.id);
            Err(ApiError::forbidden(
                "session_revoked",
                "the session was revoked: segments were fetched much faster than real time",
            ))
        }
    }
}

// ---- file probes ----

/// What an unknown path looks like: a traversal attempt, a guess at a media or secret file,
/// or just a wrong URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    Traversal,
    FileProbe,
    Unknown,
}

pub fn classify_path(raw_path: &str) -> PathKind {
    let lower = raw_path.to_ascii_lowercase();
    let decoded = lower
        .replace("%2e", ".")
        .replace("%2f", "/")
        .replace("%5c", "\\");
    if decoded.contains("..") || decoded.contains('\\') || decoded.contains("//") {
        return PathKind::Traversal;
    }
    const DIRS: [&str; 8] = [
        "/media", "/data", "/videos", "/secrets", "/samples", "/static", "/files", "/uploads",
    ];
    const EXTENSIONS: [&str; 11] = [
        ".mp4", ".m4s", ".mpd", ".m3u8", ".ts", ".mkv", ".json", ".key", ".db", ".sqlite", ".bin",
    ];
    let under_dir = DIRS
        .iter()
        .any(|d| decoded == *d || decoded.starts_with(&format!("{d}/")));
    let file_like = EXTENSIONS.iter().any(|e| decoded.ends_with(e));
    if under_dir || file_like {
        PathKind::FileProbe
    } else {
        PathKind::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_probes() {
        assert_eq!(classify_path("/media/x/init.mp4"), PathKind::FileProbe);
        assert_eq!(classify_path("/media"), PathKind::FileProbe);
        assert_eq!(
            classify_path("/videos/abc/video/a/1.m4s"),
            PathKind::FileProbe
        );
        assert_eq!(classify_path("/secrets/master.key"), PathKind::FileProbe);
        assert_eq!(classify_path("/x/../../etc/passwd"), PathKind::Traversal);
        assert_eq!(classify_path("/api/%2E%2e/secrets"), PathKind::Traversal);
        assert_eq!(classify_path("/api/..%2fdata"), PathKind::Traversal);
        assert_eq!(classify_path("/nope"), PathKind::Unknown);
        assert_eq!(classify_path("/mediation"), PathKind::Unknown);
    }

    #[test]
    fn pace_budget_grows_with_time() {
        let p = Pace {
            content_seconds: 100.0,
            elapsed_seconds: 10.0,
        };
        assert_eq!(p.budget(60.0, 4.0), 100.0);
        assert_eq!(p.budget(60.0, 2.0), 80.0);
    }
}
