//! The evidence report routes: a case's signed report (`GET /api/cases/{id}/report.pdf`), the
//! CA that issues the report-signing certificate, and the verification of a submitted report.
//! Analysts, legal and admins ([`Legal`]); every issue, download and verification is audited.

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use api::auth::Legal;
use api::ApiError;
use formats::case::CaseStatus;
use futures_util::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use shared::db::repo::{audit, cases, evidence_reports};

use super::cases::case_error;
use super::forms::{self, upload_error};
use super::{blocking, AppState};
use crate::error::AppError;
use crate::jobs::detail_json;
use crate::uploads::UploadError;

/// The detail of a `report_downloaded` audit entry.
#[derive(Serialize)]
struct DownloadedDetail<'a> {
    report_id: &'a str,
    sha256: &'a str,
}

/// `GET /api/cases/{id}/report.pdf`: the case's signed evidence report (issued on first
/// request, the stored copy afterwards). Each download is audited.
pub async fn case_report(
    caller: Legal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.actor();
    let case_id = path.into_inner();
    let st = state.clone();
    let bytes = web::block(move || -> Result<Vec<u8>, ApiError> {
        let mut conn = st.db.conn()?;
        finished_case(&mut conn, &case_id, "report")?;
        let (row, bytes) = crate::reports::stored_or_issue(
            &st.config,
            &st.db,
            &st.secrets,
            &st.storage,
            &case_id,
            &actor,
        )
        .map_err(super::app_error)?;
        let detail = detail_json(&DownloadedDetail {
            report_id: &row.id,
            sha256: &row.sha256,
        });
        audit::append(
            &mut conn,
            Some(&case_id),
            &actor,
            "report_downloaded",
            &detail,
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

/// Refuses a case that does not exist (404) or is not done (409).
fn finished_case(
    conn: &mut shared::db::DbConnection,
    case_id: &str,
    what: &str,
) -> Result<(), ApiError> {
    let case = cases::get(conn, case_id).map_err(case_error)?;
    if case.status != CaseStatus::Done {
        return Err(ApiError::conflict(
            "case_not_finished",
            format!(
                "the case is {}: its {what} comes when the analysis is done",
                case.status
            ),
        ));
    }
    Ok(())
}

/// Chunks of a streamed bundle.
const STREAM_CHUNK: usize = 256 << 10;

/// `GET /api/cases/{id}/bundle.zip`: the case's evidence bundle, made on request into an
/// unnamed temporary file of the data dir's work folder and streamed from it (a bundle with
/// the suspect may be gigabytes). Audited (`bundle_created`).
pub async fn case_bundle(
    caller: Legal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    use std::io::{Read, Seek};
    let actor = caller.actor();
    let case_id = path.into_inner();
    // Held until the bundle is sent and its temporary file gone.
    let permit = state
        .bundle_builds
        .clone()
        .acquire_owned()
        .await
        .map_err(ApiError::internal)?;
    let st = state.clone();
    let (file, length, name) = web::block(move || -> Result<_, ApiError> {
        finished_case(&mut *st.db.conn()?, &case_id, "bundle")?;
        let made = || -> Result<_, AppError> {
            let dir = st.config.layout().work_root();
            std::fs::create_dir_all(&dir).map_err(AppError::io("create", &dir))?;
            let mut file = tempfile::tempfile_in(&dir).map_err(AppError::io("create", &dir))?;
            crate::bundles::make(
                &st.config,
                &st.db,
                &st.secrets,
                &st.storage,
                &case_id,
                &actor,
                &mut file,
            )?;
            let length = file
                .seek(std::io::SeekFrom::End(0))
                .and_then(|n| file.rewind().map(|_| n))
                .map_err(AppError::io("read", &dir))?;
            Ok((file, length, format!("leaktrace-case-{case_id}.zip")))
        };
        made().map_err(super::app_error)
    })
    .await
    .map_err(ApiError::internal)??;
    let chunks = futures_util::stream::unfold(Some((file, permit)), |open| async move {
        let (mut file, permit) = open?;
        let read = web::block(move || {
            let mut chunk = vec![0; STREAM_CHUNK];
            let n = file.read(&mut chunk)?;
            chunk.truncate(n);
            Ok::<_, std::io::Error>((file, chunk))
        })
        .await;
        match read {
            Ok(Ok((_, chunk))) if chunk.is_empty() => None,
            Ok(Ok((file, chunk))) => Some((Ok(web::Bytes::from(chunk)), Some((file, permit)))),
            // The length was promised: cutting the connection is all that is left.
            Ok(Err(e)) => Some((Err(actix_web::error::ErrorInternalServerError(e)), None)),
            Err(e) => Some((Err(actix_web::error::ErrorInternalServerError(e)), None)),
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{name}\""),
        ))
        .no_chunking(length)
        .streaming(chunks))
}

/// `GET /api/reports/ca.pem`: the CA certificate that issues the report-signing certificate,
/// for anyone who wants to check a report.
pub async fn report_ca(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let st = state.clone();
    let pem = blocking(move || crate::reports::ca_pem(&st.config, &st.db, &st.secrets)).await?;
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

/// What a verification finds.
#[derive(Serialize)]
struct Verification {
    signed: bool,
    signature_valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    whole_document_signed: Option<bool>,
    issued_by_this_deployment: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    signer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// The signature's RFC 3161 timestamp, when it carries one.
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<TimestampView>,
    sha256: String,
    matches_stored_report: bool,
    report_id: Option<String>,
    case_id: Option<String>,
}

/// A signature's timestamp as a verification shows it.
#[derive(Serialize)]
struct TimestampView {
    /// The timestamp authority's time (RFC 3339, UTC).
    time: String,
    /// The TSA certificate's subject and the SHA-256 of its DER.
    authority: String,
    authority_sha256: String,
    /// It stamps this signature, and the TSA's signature over it verifies.
    valid: bool,
    /// The TSA certificate is the configured authority's (`reports.tsa_certificate`) or
    /// issued by it; null when the deployment configures none.
    authority_trusted: Option<bool>,
}

impl TimestampView {
    fn of(s: &report::timestamp::Stamp, anchors: &[Vec<u8>]) -> Self {
        TimestampView {
            time: s.time.clone(),
            authority: s.authority.clone(),
            authority_sha256: s.authority_sha256.clone(),
            valid: s.valid(),
            authority_trusted: (!anchors.is_empty()).then(|| s.trusted_by(anchors)),
        }
    }
}

/// `POST /api/reports/verify/`: is an evidence report's signature valid, was it issued by
/// this deployment, and is it byte for byte a report this deployment stored? Each
/// verification is audited.
pub async fn verify_report(
    caller: Legal,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let actor = caller.actor();
    let pdf = pdf_body(&req, payload).await?;
    let st = state.clone();
    let answer = blocking(move || -> Result<Verification, AppError> {
        let sha256 = hex::encode(Sha256::digest(&pdf));
        let ca = crate::reports::ca_pem(&st.config, &st.db, &st.secrets)?;
        // An unreadable authority certificate is the deployment's fault, not the file's:
        // the timestamp is then shown without a verdict on its authority.
        let anchors = crate::timestamping::configured_anchors(&st.config).unwrap_or_default();
        let mut conn = st.db.conn()?;
        let stored = evidence_reports::find_by_sha256(&mut conn, &sha256)?;
        let checked = report::signing::check(&pdf, &ca);
        let answer = Verification {
            signed: checked.is_ok(),
            signature_valid: checked.as_ref().is_ok_and(|c| c.valid()),
            whole_document_signed: checked.as_ref().ok().map(|c| c.whole_document),
            issued_by_this_deployment: checked.as_ref().is_ok_and(|c| c.issued_by_ca),
            signer: checked.as_ref().ok().map(|c| c.signer.clone()),
            reason: checked.as_ref().err().map(|e| e.to_string()),
            timestamp: checked
                .as_ref()
                .ok()
                .and_then(|c| c.timestamp.as_ref())
                .map(|s| TimestampView::of(s, &anchors)),
            sha256,
            matches_stored_report: stored.is_some(),
            report_id: stored.as_ref().map(|r| r.id.clone()),
            case_id: stored.as_ref().map(|r| r.case_id.clone()),
        };
        audit::append(
            &mut conn,
            stored.as_ref().map(|r| r.case_id.as_str()),
            &actor,
            "report_verified",
            &detail_json(&answer),
        )?;
        Ok(answer)
    })
    .await?;
    Ok(HttpResponse::Ok().json(answer))
}
