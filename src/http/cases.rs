//! The case routes: suspect submission (`POST /api/verify-watermark/`: crawlers with an API
//! key, analysts and admins with a user token), the case list and a case's status and result.
//! Handlers take the caller from [`Caller`], check the request, then call [`crate::cases`].

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use api::auth::Caller;
use api::error::not_found_as;
use api::ApiError;
use formats::case::{CaseResult, CaseStatus, CrawlerResult, SubmitterKind, Verdict};
use serde::{Deserialize, Serialize};
use shared::db::repo::{api_keys, cases as case_rows, videos};

use super::forms;
use super::{blocking, AppState};
use crate::cases::{self, Request, Submitter};
use crate::uploads;

/// A missing case is 404 `case_not_found`.
pub fn case_error(e: shared::db::DbError) -> ApiError {
    not_found_as("case_not_found", "no such case")(e)
}

fn wrong_role(what: &str) -> ApiError {
    ApiError::forbidden("wrong_role", format!("this account cannot {what}"))
}

/// The text fields a multipart submission may carry (beside `file`).
const FORM_FIELDS: [&str; 4] = [
    "video_id",
    "expected_watermark_hash",
    "video_file_path",
    "callback_url",
];

/// The form's fields, whichever way it came.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Form {
    video_id: Option<String>,
    expected_watermark_hash: Option<String>,
    video_file_path: Option<String>,
    callback_url: Option<String>,
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

/// The answer to a submission: where to follow the case.
#[derive(Serialize)]
struct Accepted {
    case_id: String,
    status_url: String,
}

/// `POST /api/verify-watermark/`: 202 with the case id and its status URL.
pub async fn verify_watermark(
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = caller.submitter()?;
    let limit = state.config.evidence.max_upload_bytes;
    forms::refuse_declared_length(&req, limit)?;
    let content_type = forms::content_type(&req);
    let (form, stored) = if content_type.starts_with("multipart/form-data") {
        let uploads = state.config.layout().uploads();
        let mut sent = forms::read_multipart(&req, payload, uploads, limit, &FORM_FIELDS).await?;
        let fields = Form {
            video_id: sent.take("video_id"),
            expected_watermark_hash: sent.take("expected_watermark_hash"),
            video_file_path: sent.take("video_file_path"),
            callback_url: sent.take("callback_url"),
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
    // A stored file removes itself when dropped: whatever is refused from here on (or a
    // client that goes away) leaves nothing behind, until a case takes it.
    validate_form(&form)?;
    if let Some(url) = &form.callback_url {
        use crate::callbacks::CallbackError;
        let refused = |e: CallbackError| ApiError::bad_request(e.code(), e.to_string());
        let Caller::Crawler { key_id } = &caller else {
            return Err(refused(CallbackError::NotACrawler));
        };
        crate::callbacks::allowed(&state.config, url).map_err(refused)?;
        let id = key_id.clone();
        let key = state.db.run(move |c| api_keys::get(c, &id)).await?;
        if key.sealed_callback_secret.is_none() {
            return Err(refused(CallbackError::KeyTooOld));
        }
    }
    if let Some(id) = form.video_id.clone() {
        state
            .db
            .run(move |c| videos::get(c, &id))
            .await
            .map_err(not_found_as(
                "unknown_video",
                "no packaged title has this id",
            ))?;
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
            let source = uploads::inbox_file(&inbox, path).map_err(forms::upload_error)?;
            let uploads = state.config.layout().uploads();
            blocking(move || Ok(uploads::store_inbox_file(&inbox, &source, &uploads, limit)?))
                .await?
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "missing_file",
                "the form has no \"file\" field (nor a video_file_path)",
            ))
        }
    };
    forms::check_video(&stored, &state.config).await?;
    let submitter = match caller {
        Caller::Crawler { key_id } => Submitter {
            kind: SubmitterKind::ApiKey,
            id: Some(key_id),
        },
        Caller::User { id, .. } => Submitter {
            kind: SubmitterKind::User,
            id: Some(id),
        },
    };
    let (config, db, storage) = (
        state.config.clone(),
        state.db.clone(),
        state.storage.clone(),
    );
    let Form {
        video_id,
        expected_watermark_hash,
        callback_url,
        ..
    } = form;
    // Runs to its end even when the client has gone: the case keeps the file, or a failure
    // drops (removes) it.
    let case_id = blocking(move || {
        cases::submit(
            &config,
            &db,
            &storage,
            stored,
            Request {
                submitter: &submitter,
                video_id: video_id.as_deref(),
                expected_watermark_hash: expected_watermark_hash.as_deref(),
                callback_url: callback_url.as_deref(),
            },
        )
    })
    .await?;
    Ok(HttpResponse::Accepted().json(Accepted {
        status_url: format!("/api/cases/{case_id}/"),
        case_id,
    }))
}

/// The fields of a case that the status and the list both show.
#[derive(Serialize)]
pub struct CaseSummary {
    case_id: String,
    status: CaseStatus,
    progress: f64,
    verdict: Option<Verdict>,
    video_id: Option<String>,
    file_name: String,
    file_size: i64,
    file_sha256: String,
    created_at: String,
    updated_at: String,
}

impl From<&case_rows::CaseRow> for CaseSummary {
    fn from(case: &case_rows::CaseRow) -> Self {
        CaseSummary {
            case_id: case.id.clone(),
            status: case.status,
            progress: case.progress,
            verdict: case.verdict,
            video_id: case.video_id.clone(),
            file_name: case.file_name.clone(),
            file_size: case.file_size,
            file_sha256: case.file_sha256.clone(),
            created_at: case.created_at.and_utc().to_rfc3339(),
            updated_at: case.updated_at.and_utc().to_rfc3339(),
        }
    }
}

/// `GET /api/cases/{id}/`: the summary, the result once done, the error once failed.
#[derive(Serialize)]
struct CaseView {
    #[serde(flatten)]
    summary: CaseSummary,
    result: Option<ResultView>,
    error: Option<String>,
}

/// A case's result as the caller may see it.
#[derive(Serialize)]
#[serde(untagged)]
enum ResultView {
    /// Analysts, legal and admins: everything, accused sessions with their references.
    Full(Box<CaseResult>),
    /// API keys: the verdict and the accused sessions' references only.
    Crawler(CrawlerResult),
}

/// `GET /api/cases/{id}/`: status, progress and (once done) the extract result.
pub async fn case_status(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let case = state
        .db
        .run(move |c| case_rows::get(c, &id))
        .await
        .map_err(case_error)?;
    let allowed = match &caller {
        Caller::User { .. } => caller.reads_evidence(),
        // A crawler sees the cases it submitted.
        Caller::Crawler { key_id } => case.submitted_by_key(key_id),
    };
    if !allowed {
        return Err(wrong_role("read this case"));
    }
    let secrets = &state.secrets;
    let reference = |session_id: &str| secrets.case_reference(&case.id, session_id);
    let result = case.result().map(|r| match caller {
        Caller::Crawler { .. } => ResultView::Crawler(r.for_crawler(reference)),
        Caller::User { .. } => ResultView::Full(Box::new(r.with_references(reference))),
    });
    Ok(HttpResponse::Ok().json(CaseView {
        summary: CaseSummary::from(&case),
        result,
        error: case.error.clone(),
    }))
}

/// Most cases one list answer holds.
const CASE_LIST_MAX: i64 = 500;

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<i64>,
    status: Option<String>,
    since: Option<String>,
    cursor: Option<String>,
}

/// A page's place in the list: the creation time (microseconds) and id of the last case of
/// the page before, as `<micros>.<id>` in unpadded base64url (opaque to clients).
fn cursor_of(case: &case_rows::CaseRow) -> String {
    use base64::Engine;
    let micros = case.created_at.and_utc().timestamp_micros();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{micros}.{}", case.id))
}

fn parse_cursor(cursor: &str) -> Option<(chrono::NaiveDateTime, String)> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (micros, id) = text.split_once('.')?;
    let at = chrono::DateTime::from_timestamp_micros(micros.parse().ok()?)?.naive_utc();
    let plausible = !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    plausible.then(|| (at, id.to_string()))
}

/// The list's filters, checked.
fn case_query(query: &ListQuery) -> Result<(case_rows::CaseQuery<'static>, i64), ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=CASE_LIST_MAX).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be between 1 and {CASE_LIST_MAX}"),
        ));
    }
    let status = match &query.status {
        None => None,
        Some(s) => Some(s.parse::<CaseStatus>().map_err(|_| {
            ApiError::bad_request(
                "invalid_status",
                "status must be one of queued, running, done, failed",
            )
        })?),
    };
    let since = match &query.since {
        None => None,
        Some(s) => Some(
            chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|_| {
                    ApiError::bad_request(
                        "invalid_since",
                        "since must be an RFC 3339 time, e.g. 2026-12-01T00:00:00Z",
                    )
                })?
                .naive_utc(),
        ),
    };
    let after = match &query.cursor {
        None => None,
        Some(c) => Some(parse_cursor(c).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_cursor",
                "cursor must be the one a previous page's Link header gave",
            )
        })?),
    };
    let filters = case_rows::CaseQuery {
        api_key: None,
        status,
        since,
        after,
    };
    Ok((filters, limit))
}

/// The next page's address: this list's filters and the cursor after `last`.
fn next_page(query: &ListQuery, limit: i64, last: &case_rows::CaseRow) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("limit", &limit.to_string());
    if let Some(status) = &query.status {
        form.append_pair("status", status);
    }
    if let Some(since) = &query.since {
        form.append_pair("since", since);
    }
    form.append_pair("cursor", &cursor_of(last));
    format!("/api/cases/?{}", form.finish())
}

/// `GET /api/cases/`: the newest cases first, filtered by `status` and by `since` (created or
/// changed at or after), `limit` per page (default 100, at most 500), the next page named by a
/// `Link: <...>; rel="next"` header while there are more; analysts, legal and admins see every
/// case, a crawler key the cases it submitted.
pub async fn list_cases(
    caller: Caller,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let own_key = match caller {
        Caller::Crawler { key_id } => Some(key_id),
        user if user.reads_evidence() => None,
        Caller::User { .. } => return Err(wrong_role("list cases")),
    };
    let (filters, limit) = case_query(&query)?;
    let mut rows = state
        .db
        .run(move |c| {
            let filters = case_rows::CaseQuery {
                api_key: own_key.as_deref(),
                ..filters
            };
            // One more than asked: whether a next page exists.
            case_rows::page(c, &filters, limit + 1)
        })
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let list: Vec<CaseSummary> = rows.iter().map(CaseSummary::from).collect();
    let mut answer = HttpResponse::Ok();
    if let (true, Some(last)) = (more, rows.last()) {
        let link = format!("<{}>; rel=\"next\"", next_page(&query, limit, last));
        answer.insert_header((actix_web::http::header::LINK, link));
    }
    Ok(answer.json(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let at = chrono::DateTime::from_timestamp_micros(1_764_800_000_123_456)
            .unwrap()
            .naive_utc();
        let row = crate::cases::sample_row("0b7e1f7e-8f0a-4a55-9d2c-1c4f0e6a7b21", at);
        let cursor = cursor_of(&row);
        assert_eq!(parse_cursor(&cursor), Some((at, row.id.clone())));
        use base64::Engine;
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        for bad in [
            "".to_string(),
            "not base64!".into(),
            enc("12345"),
            enc("x.abc"),
            enc("1."),
            enc("1.a b"),
            enc(&format!("1.{}", "a".repeat(65))),
            enc("99999999999999999999.abc"),
        ] {
            assert_eq!(parse_cursor(&bad), None, "{bad}");
        }
    }
}
