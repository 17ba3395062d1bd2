//! The evidence routes: suspect submission (`POST /api/verify-watermark/`, crawlers with an
//! API key, analysts and admins with a user token) and case status (`GET /api/cases/{id}/`).
//! Handlers check the caller and the request, then call [`crate::evidence`].

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shared::auth::api_key;
use shared::db::repo::{api_keys, audit, cases, evidence_reports, videos};
use shared::db::DbError;
use shared::domain::Role;
use streaming::{ApiError, StreamingState};

use super::forms::{self, upload_error};
use super::AppState;
use crate::analysis::Submitter;
use crate::evidence::upload::{self, StoredUpload, UploadError};
use crate::evidence::{self, Request};

/// Header a crawler sends its key in.
const API_KEY_HEADER: &str = "X-API-Key";

/// Who is calling an evidence route.
pub enum Caller {
    Crawler { key_id: String },
    User { id: String, role: Role },
}

/// The caller, from `X-API-Key` or else a user bearer token.
pub async fn caller(req: &HttpRequest, streaming: &StreamingState) -> Result<Caller, ApiError> {
    if let Some(key) = req.headers().get(API_KEY_HEADER) {
        let hash = api_key::hash(key.to_str().unwrap_or_default().trim());
        let found = streaming
            .db
            .run(move |c| {
                let row = api_keys::find_active_by_hash(c, &hash)?;
                if let Some(r) = &row {
                    api_keys::touch(c, &r.id)?;
                }
                Ok(row)
            })
            .await?;
        return match found {
            Some(row) => Ok(Caller::Crawler { key_id: row.id }),
            None => Err(ApiError::unauthorized(
                "invalid_api_key",
                "the API key is unknown or revoked",
            )),
        };
    }
    let claims = streaming::auth::authenticate(streaming, req, "user").await?;
    Ok(Caller::User {
        id: claims.sub,
        role: claims.role,
    })
}

/// A missing case is 404 `case_not_found`; other storage errors keep their mapping.
fn case_error(e: DbError) -> ApiError {
    match e {
        DbError::NotFound(_) => ApiError::not_found_what("case_not_found", "no such case"),
        other => other.into(),
    }
}

fn wrong_role(what: &str) -> ApiError {
    ApiError::forbidden("wrong_role", format!("this account cannot {what}"))
}

/// The form's fields, whichever way it came.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Form {
    video_id: Option<String>,
    expected_watermark_hash: Option<String>,
    video_file_path: Option<String>,
}

fn validate_form(form: &Form) -> Result<(), ApiError> {
    if let Some(h) = &form.expected_watermark_hash {
        if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::bad_request(
                "invalid_watermark_hash",
                "expected_watermark_hash must be 64 hexadecimal characters",
            ));
        }
    }
    Ok(())
}

/// `POST /api/verify-watermark/`: 202 with the case id and its status URL.
pub async fn verify_watermark(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    streaming: web::Data<StreamingState>,
) -> Result<HttpResponse, ApiError> {
    let caller = caller(&req, &streaming).await?;
    if let Caller::User { role, .. } = &caller {
        if !matches!(role, Role::Analyst | Role::Admin) {
            return Err(wrong_role("submit suspect files"));
        }
    }
    let limit = state.config.evidence.max_upload_bytes;
    forms::refuse_declared_length(&req, limit)?;
    let content_type = forms::content_type(&req);
    let (form, stored) = if content_type.starts_with("multipart/form-data") {
        let uploads = state.config.layout().uploads();
        let mut sent = forms::read_multipart(&req, payload, uploads, limit).await?;
        let fields = Form {
            video_id: sent.take("video_id"),
            expected_watermark_hash: sent.take("expected_watermark_hash"),
            video_file_path: sent.take("video_file_path"),
        };
        (fields, sent.file)
    } else if content_type.starts_with("application/json") {
        (forms::read_json(payload).await?, None)
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send multipart/form-data with a \"file\" field (or JSON with video_file_path)",
        ));
    };
    // Anything refused from here on must not leave the stored file behind.
    let refuse = |stored: &Option<StoredUpload>, e: ApiError| {
        if let Some(s) = stored {
            let _ = std::fs::remove_file(&s.path);
        }
        e
    };
    validate_form(&form).map_err(|e| refuse(&stored, e))?;
    if let Some(id) = form.video_id.clone() {
        let known = state.db.run(move |c| videos::get(c, &id)).await;
        match known {
            Ok(_) => {}
            Err(DbError::NotFound(_)) => {
                return Err(refuse(
                    &stored,
                    ApiError::not_found_what("unknown_video", "no packaged title has this id"),
                ))
            }
            Err(e) => return Err(refuse(&stored, e.into())),
        }
    }
    let stored = match (stored, form.video_file_path.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "ambiguous_submission",
                "send either a file or a video_file_path, not both",
            ))
        }
        (Some(s), None) => s,
        (None, Some(path)) => {
            let inbox = state.config.inbox_dir();
            let source = upload::inbox_file(&inbox, path).map_err(upload_error)?;
            let uploads = state.config.layout().uploads();
            web::block(move || upload::store_inbox_file(&source, &uploads, limit))
                .await
                .map_err(ApiError::internal)?
                .map_err(upload_error)?
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "missing_file",
                "the form has no \"file\" field (nor a video_file_path)",
            ))
        }
    };
    forms::check_video(&stored, &state.config).await?;
    let case_id = {
        let (config, db, stored_c) = (state.config.clone(), state.db.clone(), stored.clone());
        let (submitter_kind, submitter_id) = match &caller {
            Caller::Crawler { key_id } => ("api_key", key_id.clone()),
            Caller::User { id, .. } => ("user", id.clone()),
        };
        let Form {
            video_id,
            expected_watermark_hash,
            ..
        } = form;
        web::block(move || {
            evidence::submit(
                &config,
                &db,
                &stored_c,
                Request {
                    submitter: Submitter {
                        kind: submitter_kind,
                        id: Some(&submitter_id),
                    },
                    video_id: video_id.as_deref(),
                    expected_watermark_hash: expected_watermark_hash.as_deref(),
                },
            )
        })
        .await
        .map_err(ApiError::internal)?
    };
    let case_id = case_id.map_err(|e| {
        let _ = std::fs::remove_file(&stored.path);
        ApiError::internal(e)
    })?;
    Ok(HttpResponse::Accepted().json(json!({
        "case_id": case_id,
        "status_url": format!("/api/cases/{case_id}/"),
    })))
}

/// `GET /api/cases/{id}/`: status, progress and (once done) the extract result.
pub async fn case_status(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
    streaming: web::Data<StreamingState>,
) -> Result<HttpResponse, ApiError> {
    let caller = caller(&req, &streaming).await?;
    let id = path.into_inner();
    let case = state
        .db
        .run(move |c| cases::get(c, &id))
        .await
        .map_err(case_error)?;
    let allowed = match &caller {
        Caller::User { role, .. } => matches!(role, Role::Analyst | Role::Legal | Role::Admin),
        // A crawler sees the cases it submitted.
        Caller::Crawler { key_id } => {
            case.submitter_kind == "api_key" && case.submitter_id.as_deref() == Some(key_id)
        }
    };
    if !allowed {
        return Err(wrong_role("read this case"));
    }
    let result: Value = case
        .result_json
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or(Value::Null);
    let mut body = case_summary(&case);
    body["result"] = result;
    body["error"] = json!(case.error);
    Ok(HttpResponse::Ok().json(body))
}

/// The fields of a case that the status and the list both show.
fn case_summary(case: &cases::CaseRow) -> Value {
    json!({
        "case_id": case.id,
        "status": case.status,
        "progress": case.progress,
        "verdict": case.verdict,
        "video_id": case.video_id,
        "file_name": case.file_name,
        "file_size": case.file_size,
        "file_sha256": case.file_sha256,
        "created_at": case.created_at.and_utc().to_rfc3339(),
        "updated_at": case.updated_at.and_utc().to_rfc3339(),
    })
}

/// Most cases one list answer holds.
const CASE_LIST_MAX: i64 = 500;

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<i64>,
}

/// `GET /api/cases/`: the newest cases first (`?limit=`, default 100, at most 500); analysts,
/// legal and admins see every case, a crawler key the cases it submitted.
pub async fn list_cases(
    req: HttpRequest,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
    streaming: web::Data<StreamingState>,
) -> Result<HttpResponse, ApiError> {
    let caller = caller(&req, &streaming).await?;
    let own_key = match caller {
        Caller::User {
            role: Role::Analyst | Role::Legal | Role::Admin,
            ..
        } => None,
        Caller::User { .. } => return Err(wrong_role("list cases")),
        Caller::Crawler { key_id } => Some(key_id),
    };
    let limit = query.limit.unwrap_or(100);
    if !(1..=CASE_LIST_MAX).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be between 1 and {CASE_LIST_MAX}"),
        ));
    }
    let rows = state
        .db
        .run(move |c| cases::recent(c, own_key.as_deref(), limit))
        .await?;
    let list: Vec<Value> = rows.iter().map(case_summary).collect();
    Ok(HttpResponse::Ok().json(list))
}

/// `GET /api/cases/{id}/report.pdf`: the case's signed evidence report (issued on first
/// request, the stored copy afterwards); analysts, legal and admins. Each download is audited.
pub async fn case_report(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
    streaming: web::Data<StreamingState>,
) -> Result<HttpResponse, ApiError> {
    let caller = caller(&req, &streaming).await?;
    let actor = match &caller {
        Caller::User {
            id,
            role: Role::Analyst | Role::Legal | Role::Admin,
        } => format!("user:{id}"),
        _ => return Err(wrong_role("download evidence reports")),
    };
    let case_id = path.into_inner();
    let st = state.clone();
    let bytes = web::block(move || -> Result<Vec<u8>, ApiError> {
        let mut conn = st.db.conn()?;
        let case = cases::get(&mut conn, &case_id).map_err(case_error)?;
        if case.status != "done" {
            return Err(ApiError::conflict(
                "case_not_finished",
                format!(
                    "the case is {}: its report comes when the analysis is done",
                    case.status
                ),
            ));
        }
        let stored = evidence_reports::latest_for_case(&mut conn, &case_id)?
            .and_then(|r| std::fs::read(&r.path).ok().map(|b| (r, b)));
        let (row, bytes) = match stored {
            Some(found) => found,
            None => crate::reports::issue(&st.config, &st.db, &st.secrets, &case_id, &actor)
                .map_err(ApiError::internal)?,
        };
        audit::append(
            &mut conn,
            Some(&case_id),
            &actor,
            "report_downloaded",
            &json!({"report_id": row.id, "sha256": row.sha256}).to_string(),
        )?;
        Ok(bytes)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(HttpResponse::Ok()
        .content_type("application/pdf")
        .insert_header(("Cache-Control", "no-store"))
        .body(bytes))
}

/// `GET /api/reports/ca.pem`: the CA certificate that issues the report-signing certificate,
/// for anyone who wants to check a report.
pub async fn report_ca(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let st = state.clone();
    let pem = web::block(move || crate::reports::ca_pem(&st.config))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("application/x-pem-file")
        .body(pem))
}

/// Largest PDF accepted for verification.
const MAX_VERIFY_BYTES: usize = 64 << 20;

/// The uploaded PDF: a raw `application/pdf` body or the `file` field of a multipart form.
async fn pdf_body(req: &HttpRequest, payload: web::Payload) -> Result<Vec<u8>, ApiError> {
    let too_big = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "upload_too_large",
            format!("a report to verify is at most {MAX_VERIFY_BYTES} bytes"),
        )
    };
    let incomplete =
        |e: &dyn std::fmt::Display| upload_error(UploadError::Incomplete(e.to_string()));
    let content_type = forms::content_type(req);
    let mut bytes = Vec::new();
    if content_type.starts_with("multipart/form-data") {
        let mut form = Multipart::new(req.headers(), payload);
        while let Some(field) = form.next().await {
            let mut field = field.map_err(|e| incomplete(&e))?;
            let is_file = field.name() == Some("file");
            while let Some(chunk) = field.next().await {
                let chunk = chunk.map_err(|e| incomplete(&e))?;
                if is_file {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() > MAX_VERIFY_BYTES {
                        return Err(too_big());
                    }
                }
            }
        }
    } else if content_type.starts_with("application/pdf")
        || content_type.starts_with("application/octet-stream")
    {
        let mut payload = payload;
        while let Some(chunk) = payload.next().await {
            bytes.extend_from_slice(&chunk.map_err(|e| incomplete(&e))?);
            if bytes.len() > MAX_VERIFY_BYTES {
                return Err(too_big());
            }
        }
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the PDF as application/pdf or as the \"file\" field of a multipart form",
        ));
    }
    if bytes.is_empty() {
        return Err(upload_error(UploadError::Empty));
    }
    Ok(bytes)
}

/// `POST /api/reports/verify/`: is an evidence report's signature valid, was it issued by
/// this deployment, and is it byte for byte a report this deployment stored? Analysts, legal
/// and admins; each verification is audited.
pub async fn verify_report(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    streaming: web::Data<StreamingState>,
) -> Result<HttpResponse, ApiError> {
    let actor = match caller(&req, &streaming).await? {
        Caller::User {
            id,
            role: Role::Analyst | Role::Legal | Role::Admin,
        } => format!("user:{id}"),
        _ => return Err(wrong_role("verify evidence reports")),
    };
    let pdf = pdf_body(&req, payload).await?;
    let st = state.clone();
    let answer = web::block(move || -> Result<Value, ApiError> {
        let sha256 = hex::encode(Sha256::digest(&pdf));
        let ca = crate::reports::ca_pem(&st.config).map_err(ApiError::internal)?;
        let mut conn = st.db.conn()?;
        let stored = evidence_reports::find_by_sha256(&mut conn, &sha256)?;
        let mut answer = match report::signing::check(&pdf, &ca) {
            Ok(c) => json!({
                "signed": true,
                "signature_valid": c.valid(),
                "whole_document_signed": c.whole_document,
                "issued_by_this_deployment": c.issued_by_ca,
                "signer": c.signer,
            }),
            Err(e) => json!({
                "signed": false,
                "signature_valid": false,
                "issued_by_this_deployment": false,
                "reason": e.to_string(),
            }),
        };
        answer["sha256"] = json!(sha256);
        answer["matches_stored_report"] = json!(stored.is_some());
        answer["report_id"] = json!(stored.as_ref().map(|r| r.id.clone()));
        answer["case_id"] = json!(stored.as_ref().map(|r| r.case_id.clone()));
        audit::append(
            &mut conn,
            stored.as_ref().map(|r| r.case_id.as_str()),
            &actor,
            "report_verified",
            &answer.to_string(),
        )?;
        Ok(answer)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(HttpResponse::Ok().json(answer))
}
