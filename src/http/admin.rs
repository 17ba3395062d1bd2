//! The admin routes behind the admin console (`/api/admin/...`, user tokens of admins only):
//! package a title (an upload or a file in the inbox) as a job with progress, users, API
//! keys, the security events stream and session revocation. Every change is an audit entry.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use api::auth::{client_address, Admin};
use api::error::not_found_as;
use api::ApiError;
use chrono::{DateTime, NaiveDateTime};
use formats::codes::CodeScheme;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use shared::auth::{api_key, password};
use shared::db::repo::jobs::{self, JobKind, JobStatus};
use shared::db::repo::security_events::{SecurityEventRow, Severity};
use shared::db::repo::sessions::{self, SessionState};
use shared::db::repo::{api_keys, audit, security_events, users, videos};
use shared::db::{DbConnection, DbError};
use shared::domain::{self, Role, ValidationError};
use streaming::StreamingState;

use super::forms::{self, upload_error};
use super::AppState;
use crate::jobs::package_title::{self, PackageTitle};
use crate::packaging::{Requested, TitleSpec};
use crate::uploads as upload;

fn invalid(e: ValidationError) -> ApiError {
    ApiError::bad_request(e.code(), e.to_string())
}

fn time(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339()
}

/// Appends an audit entry for an admin action.
fn audited(c: &mut DbConnection, actor: &str, action: &str, detail: Value) -> Result<(), DbError> {
    audit::append(c, None, actor, action, &detail.to_string()).map(|_| ())
}

/// A taken name as 409 with `code`; other storage errors keep their mapping.
fn taken(code: &'static str) -> impl Fn(DbError) -> ApiError {
    move |e| match e {
        DbError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, code, m),
        other => other.into(),
    }
}

/// An admin-only list: every row `fetch` loads, shown by `show` (the caller is an admin: see
/// the handler's extractor).
async fn admin_list<R: Send + 'static, S: Serialize>(
    state: &AppState,
    fetch: fn(&mut DbConnection) -> Result<Vec<R>, DbError>,
    show: fn(&R) -> S,
) -> Result<HttpResponse, ApiError> {
    let rows = state.db.run(fetch).await?;
    Ok(HttpResponse::Ok().json(rows.iter().map(show).collect::<Vec<_>>()))
}

// ---------------------------------------------------------------------------------------
// Titles and packaging jobs

/// `GET /api/admin/titles/`: every packaged title.
pub async fn list_titles(
    _admin: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    admin_list(&state, videos::list, title_view).await
}

/// A packaged title as the admin API lists it.
#[derive(Serialize)]
struct TitleView {
    id: String,
    title: String,
    duration_seconds: f64,
    unit_seconds: f64,
    units: i32,
    /// Null until recorded from the manifest of a title packaged before it was recorded.
    segment_units: Option<i32>,
    /// The code scheme's name (`uniform-v1`, `tardos-v2`); null as `segment_units`.
    code: Option<String>,
    width: i32,
    height: i32,
    frame_rate: f64,
    has_audio: bool,
    created_at: String,
}

fn title_view(v: &videos::VideoRow) -> TitleView {
    TitleView {
        id: v.id.clone(),
        title: v.title.clone(),
        duration_seconds: v.duration_seconds,
        unit_seconds: v.unit_seconds,
        units: v.unit_count,
        segment_units: v.segment_units,
        code: v.code.clone(),
        width: v.width,
        height: v.height,
        frame_rate: v.frame_rate,
        has_audio: v.has_audio,
        created_at: time(v.created_at),
    }
}

/// A packaging request as JSON: a file in the inbox.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InboxTitle {
    source_path: String,
    title: String,
    unit_seconds: Option<f64>,
    segment_units: Option<u32>,
    crf: Option<u8>,
    preset: Option<String>,
    strength: Option<f32>,
    code: Option<CodeScheme>,
    ladder: Option<Vec<u32>>,
}

fn number<T: std::str::FromStr>(form: &mut forms::Form, name: &str) -> Result<Option<T>, ApiError> {
    form.take(name)
        .map(|v| {
            v.parse().map_err(|_| {
                ApiError::bad_request("invalid_option", format!("{name} is not a valid number"))
            })
        })
        .transpose()
}

/// A rendition ladder as a form sends it: heights separated by commas ("720,480,360"), or
/// "none" for one rendition (an empty field counts as not given: the default ladder).
fn ladder(list: &str) -> Result<Vec<u32>, ApiError> {
    formats::package::parse_ladder(list)
        .map_err(|why| ApiError::bad_request("invalid_option", format!("ladder: {why}")))
}

/// The text fields a multipart packaging request may carry (beside `file`).
const PACKAGE_FIELDS: [&str; 8] = [
    "title",
    "unit_seconds",
    "segment_units",
    "crf",
    "preset",
    "strength",
    "code",
    "ladder",
];

/// `POST /api/admin/titles/`: packages an uploaded file (multipart `file`, `title`, optional
/// `unit_seconds`, `segment_units`, `crf`, `preset`, `strength`, `code`, `ladder`) or an
/// inbox file (JSON `source_path`, same options) in a job: 202 with the job id and its
/// status URL.
pub async fn package_title(
    admin: Admin,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let actor = admin.actor();
    let limit = state.config.limits.max_input_bytes;
    forms::refuse_declared_length(&req, limit)?;
    let content_type = forms::content_type(&req);
    // An uploaded file removes itself when dropped (a refusal, a client gone) until the job
    // takes it.
    let (spec, source, upload) = if content_type.starts_with("multipart/form-data") {
        let dir = state.config.layout().sources();
        let mut form = forms::read_multipart(&req, payload, dir, limit, &PACKAGE_FIELDS).await?;
        let spec = (|| {
            let title = form.take("title").unwrap_or_default();
            let asked = Requested {
                unit_seconds: number(&mut form, "unit_seconds")?,
                segment_units: number(&mut form, "segment_units")?,
                crf: number(&mut form, "crf")?,
                strength: number(&mut form, "strength")?,
                preset: form.take("preset"),
                code: form
                    .take("code")
                    .map(|name| {
                        name.parse().map_err(|_| {
                            ApiError::bad_request(
                                "invalid_option",
                                "code is not uniform-v1 or tardos-v2",
                            )
                        })
                    })
                    .transpose()?,
                ladder: form.take("ladder").map(|list| ladder(&list)).transpose()?,
            };
            TitleSpec::requested(title, asked, &state.config.packaging).map_err(super::app_error)
        })();
        let spec = spec?;
        let Some(file) = form.file else {
            return Err(ApiError::bad_request(
                "missing_file",
                "the form has no \"file\" field",
            ));
        };
        (spec, file.path.clone(), Some(file))
    } else if content_type.starts_with("application/json") {
        let body: InboxTitle = forms::read_json(payload).await?;
        let asked = Requested {
            unit_seconds: body.unit_seconds,
            segment_units: body.segment_units,
            crf: body.crf,
            preset: body.preset,
            strength: body.strength,
            code: body.code,
            ladder: body.ladder,
        };
        let spec = TitleSpec::requested(body.title, asked, &state.config.packaging)
            .map_err(super::app_error)?;
        let inbox = state.config.inbox_dir();
        let found = upload::inbox_file(&inbox, &body.source_path).map_err(upload_error)?;
        // Copied through the checked handle into the sources folder, as suspects are: the job
        // packages the copy (removed after), never a name in the inbox that could be swapped
        // for a link after this check.
        let sources = state.config.layout().sources();
        let copy = web::block(move || upload::store_inbox_file(&inbox, &found, &sources, limit))
            .await
            .map_err(ApiError::internal)?
            .map_err(upload_error)?;
        (spec, copy.path.clone(), Some(copy))
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send multipart/form-data with a \"file\" field, or JSON with source_path",
        ));
    };
    // Bad options, a taken title and a file FFmpeg cannot read are refused before queueing.
    let (config, db) = (state.config.clone(), state.db.clone());
    let checked_spec = spec.clone();
    web::block(move || checked_spec.check(&config, &db))
        .await
        .map_err(ApiError::internal)?
        .map_err(super::app_error)?;
    let (config, probe) = (state.config.clone(), source.clone());
    web::block(move || crate::probe::check(&probe, &config))
        .await
        .map_err(ApiError::internal)?
        .map_err(upload_error)?;
    let job = PackageTitle {
        source: source.clone(),
        remove_source: upload.is_some(),
        spec,
        requested_by: actor,
    };
    let (config, db, storage) = (
        state.config.clone(),
        state.db.clone(),
        state.storage.clone(),
    );
    // Runs to its end even when the client has gone: once queued, the job owns the file.
    let row = web::block(move || {
        // With a bucket, the upload goes there first: a worker on any machine packages it.
        if let Some(key) = upload.as_ref().and_then(|u| storage.key_of(&u.path)) {
            storage.publish_file(&key)?;
        }
        let row = package_title::enqueue(&db, &config, &job)?;
        if let Some(file) = upload {
            file.keep();
        }
        Ok(row)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(super::app_error)?;
    Ok(HttpResponse::Accepted().json(json!({
        "job_id": row.id,
        "status_url": format!("/api/admin/jobs/{}/", row.id),
    })))
}

fn job_json(job: &jobs::JobRow, video_id: Option<String>) -> Value {
    let spec = package_title::title_of(job);
    json!({
        "job_id": job.id, "kind": job.kind, "status": job.status, "progress": job.progress,
        "attempts": job.attempts, "max_attempts": job.max_attempts, "error": job.last_error,
        "title": spec.map(|s| s.title), "video_id": video_id,
        "created_at": time(job.created_at), "updated_at": time(job.updated_at),
    })
}

/// The packaged title of a succeeded packaging job (titles are unique).
fn packaged_id(c: &mut DbConnection, job: &jobs::JobRow) -> Result<Option<String>, DbError> {
    if job.status != JobStatus::Succeeded {
        return Ok(None);
    }
    let Some(spec) = package_title::title_of(job) else {
        return Ok(None);
    };
    Ok(videos::find_by_title(c, &spec.title)?.map(|v| v.id))
}

/// `GET /api/admin/jobs/`: the newest packaging jobs.
pub async fn list_jobs(
    _admin: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let list = state
        .db
        .run(|c| {
            let rows = jobs::recent(c, JobKind::PackageTitle, 50)?;
            rows.iter()
                .map(|j| Ok(job_json(j, packaged_id(c, j)?)))
                .collect::<Result<Vec<_>, DbError>>()
        })
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// `GET /api/admin/jobs/{id}/`: a packaging job's status and progress, and its title's id
/// once packaged.
pub async fn job_status(
    _admin: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let body = state
        .db
        .run(move |c| {
            let job = jobs::get(c, &id)?;
            if job.kind != JobKind::PackageTitle {
                return Err(DbError::NotFound("job"));
            }
            Ok(job_json(&job, packaged_id(c, &job)?))
        })
        .await
        .map_err(|e| match e {
            DbError::NotFound(_) => ApiError::not_found_what("job_not_found", "no such job"),
            other => other.into(),
        })?;
    Ok(HttpResponse::Ok().json(body))
}

// ---------------------------------------------------------------------------------------
// Users

fn user_json(u: &users::UserRow) -> Value {
    json!({
        "id": u.id, "username": u.username, "role": u.role, "disabled": u.disabled,
        "created_at": time(u.created_at),
    })
}

/// `GET /api/admin/users/`.
pub async fn list_users(
    _admin: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    admin_list(&state, users::list, user_json).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    username: String,
    role: String,
    password: String,
}

/// `POST /api/admin/users/` `{"username","role","password"}`: 201 with the user.
pub async fn add_user(
    admin: Admin,
    body: web::Json<NewUserBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let actor = admin.actor();
    let NewUserBody {
        username,
        role,
        password: new_password,
    } = body.into_inner();
    domain::validate_username(&username).map_err(invalid)?;
    let role: Role = role.parse().map_err(invalid)?;
    domain::validate_new_password(&new_password).map_err(invalid)?;
    let hash = web::block(move || password::hash(&new_password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let user = state
        .db
        .run(move |c| {
            let user = users::create(c, &username, &hash, role)?;
            let detail = json!({"username": user.username, "role": user.role});
            audited(c, &actor, "user_created", detail)?;
            Ok(user)
        })
        .await
        .map_err(taken("user_exists"))?;
    Ok(HttpResponse::Created().json(user_json(&user)))
}

/// `POST /api/admin/users/{name}/disable/` and `.../enable/`. An admin cannot disable their
/// own account (409 `cannot_disable_self`).
pub async fn set_user_disabled(
    admin: Admin,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let actor = admin.actor();
    let (name, action) = path.into_inner();
    let disable = match action.as_str() {
        "disable" => true,
        "enable" => false,
        _ => return Err(ApiError::not_found()),
    };
    let user = state
        .db
        .run(move |c| {
            let Some(user) = users::find_by_username(c, &name)? else {
                return Err(DbError::NotFound("user"));
            };
            if disable && actor == format!("user:{}", user.id) {
                return Err(DbError::Conflict(
                    "you cannot disable your own account".into(),
                ));
            }
            users::set_disabled(c, &name, disable)?;
            let action = if disable {
                "user_disabled"
            } else {
                "user_enabled"
            };
            audited(c, &actor, action, json!({"username": name}))?;
            users::get(c, &user.id)
        })
        .await
        .map_err(|e| match e {
            DbError::NotFound(_) => ApiError::not_found_what("user_not_found", "no such user"),
            DbError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "cannot_disable_self", m),
            other => other.into(),
        })?;
    Ok(HttpResponse::Ok().json(user_json(&user)))
}

// ---------------------------------------------------------------------------------------
// API keys

fn key_json(k: &api_keys::ApiKeyRow) -> Value {
    json!({
        "id": k.id, "name": k.name, "prefix": k.key_prefix, "created_at": time(k.created_at),
        "last_used_at": k.last_used_at.map(time), "revoked_at": k.revoked_at.map(time),
    })
}

/// `GET /api/admin/api-keys/`.
pub async fn list_keys(
    _admin: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    admin_list(&state, api_keys::list, key_json).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    name: String,
}

/// `POST /api/admin/api-keys/` `{"name"}`: 201 with the key itself, shown only this once.
pub async fn create_key(
    admin: Admin,
    body: web::Json<NewKeyBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let actor = admin.actor();
    let name = body.into_inner().name;
    domain::validate_api_key_name(&name).map_err(invalid)?;
    let key = api_key::generate();
    let (prefix, hash) = (key.display_prefix.clone(), key.hash.clone());
    let sealed = api_key::seal_callback_secret(state.secrets.master_key(), &key)
        .map_err(ApiError::internal)?;
    let row = state
        .db
        .run(move |c| {
            let row = api_keys::create(c, &name, &prefix, &hash, Some(&sealed))?;
            audited(
                c,
                &actor,
                "api_key_created",
                json!({"name": name, "prefix": prefix}),
            )?;
            Ok(row)
        })
        .await
        .map_err(taken("api_key_exists"))?;
    let mut body = key_json(&row);
    body["key"] = json!(key.plaintext);
    Ok(HttpResponse::Created().json(body))
}

/// `POST /api/admin/api-keys/{name}/revoke/`.
pub async fn revoke_key(
    admin: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let actor = admin.actor();
    let name = path.into_inner();
    let row = state
        .db
        .run(move |c| {
            api_keys::revoke(c, &name)?;
            audited(c, &actor, "api_key_revoked", json!({"name": name}))?;
            api_keys::list(c)?
                .into_iter()
                .find(|k| k.name == name)
                .ok_or(DbError::NotFound("API key"))
        })
        .await
        .map_err(|e| match e {
            DbError::NotFound(_) => {
                ApiError::not_found_what("api_key_not_found", "no such API key")
            }
            other => other.into(),
        })?;
    Ok(HttpResponse::Ok().json(key_json(&row)))
}

// ---------------------------------------------------------------------------------------
// Audit trail

/// `GET /api/admin/audit/?limit=N`: the newest audit entries first (default 100, at most 500)
/// and whether the whole chain verifies.
pub async fn audit_trail(
    _admin: Admin,
    query: web::Query<EventsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = list_limit(query.limit)?;
    let (entries, check, people) = state
        .db
        .run(move |c| Ok((audit::recent(c, limit)?, audit::verify(c)?, users::list(c)?)))
        .await?;
    let names: std::collections::HashMap<String, String> = people
        .into_iter()
        .map(|u| (format!("user:{}", u.id), u.username))
        .collect();
    let chain = match check {
        audit::Verification::Intact { entries, head } => {
            json!({"intact": true, "entries": entries, "head": head})
        }
        audit::Verification::Broken { seq, reason } => {
            json!({"intact": false, "broken_at": seq, "reason": reason})
        }
    };
    let list: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "seq": e.seq, "case_id": e.case_id, "actor": e.actor,
                "actor_name": names.get(&e.actor), "action": e.action,
                "detail": serde_json::from_str::<Value>(&e.detail).unwrap_or(json!(e.detail)),
                "created_at": time(e.created_at),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"chain": chain, "entries": list})))
}

fn list_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(100);
    if !(1..=EVENTS_MAX).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be between 1 and {EVENTS_MAX}"),
        ));
    }
    Ok(limit)
}

// ---------------------------------------------------------------------------------------
// Security events and sessions

#[derive(Deserialize)]
pub struct EventsQuery {
    since: Option<String>,
    limit: Option<i64>,
}

/// Most events one answer holds.
const EVENTS_MAX: i64 = 500;

fn event_json(e: &SecurityEventRow, names: &std::collections::HashMap<String, String>) -> Value {
    json!({
        "id": e.id, "kind": e.kind, "severity": e.severity, "session_id": e.session_id,
        "user": e.user_id.as_ref().and_then(|id| names.get(id)), "user_id": e.user_id,
        "device_id": e.device_id, "address": e.address, "detail": e.detail,
        "created_at": time(e.created_at),
    })
}

/// `GET /api/admin/security-events/?since=<RFC 3339>&limit=N`: the newest events first
/// (default 100, at most 500), only those at or after `since` when given: a console polls
/// with the time of the newest event it holds and skips the ids it has.
pub async fn security_events(
    _admin: Admin,
    query: web::Query<EventsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = list_limit(query.limit)?;
    let since = query
        .since
        .as_deref()
        .map(|s| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.naive_utc())
                .map_err(|_| {
                    ApiError::bad_request("invalid_since", "since must be an RFC 3339 time")
                })
        })
        .transpose()?;
    let (rows, people) = state
        .db
        .run(move |c| Ok((security_events::since(c, since, limit)?, users::list(c)?)))
        .await?;
    let names = people.into_iter().map(|u| (u.id, u.username)).collect();
    Ok(HttpResponse::Ok().json(
        rows.iter()
            .map(|e| event_json(e, &names))
            .collect::<Vec<_>>(),
    ))
}

/// `POST /api/admin/sessions/{id}/revoke/`: ends a viewer session at once (its next request,
/// on any server instance, is refused and the page stops playback); 409 `session_ended`
/// when it already ended.
pub async fn revoke_session(
    admin: Admin,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
    streaming: web::Data<StreamingState>,
) -> Result<HttpResponse, ApiError> {
    let actor = admin.actor();
    let id = path.into_inner();
    let sid = id.clone();
    let session = state
        .db
        .run(move |c| sessions::get(c, &sid))
        .await
        .map_err(not_found_as("session_not_found", "no such session"))?;
    if matches!(
        session.state_at(shared::db::now()),
        SessionState::Expired | SessionState::Revoked
    ) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "session_ended",
            format!("the session has already ended ({})", session.state),
        ));
    }
    let (sid, who) = (id.clone(), actor.clone());
    state
        .db
        .run(move |c| {
            sessions::end(c, &sid, SessionState::Revoked, Some("revoked by an admin"))?;
            audited(c, &who, "session_revoked", json!({"session_id": sid}))
        })
        .await?;
    streaming.caches.forget_session(&id);
    streaming::monitor::record(
        &streaming,
        Severity::Warning,
        streaming::monitor::Event {
            kind: "session_revoked",
            session_id: Some(id.clone()),
            user_id: Some(session.user_id.clone()),
            device_id: Some(session.device_id.clone()),
            address: client_address(&req),
            detail: format!("revoked by {actor}"),
            account: None,
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({"session_id": id, "state": "revoked"})))
}
