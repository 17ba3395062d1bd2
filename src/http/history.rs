//! `GET /api/titles/{video_id}/leaks/`: a title's leak history (`crate::history`) for
//! analysts, legal and admins, as JSON or, with `?format=csv`, one row per accusation.

use actix_web::http::header::{ContentDisposition, DispositionParam, DispositionType};
use actix_web::{web, HttpResponse};
use api::auth::Legal;
use api::error::not_found_as;
use api::ApiError;
use serde::Deserialize;
use shared::db::repo::{cases, videos};

use super::AppState;
use crate::history::{self, MAX_CASES};

#[derive(Deserialize)]
pub struct HistoryQuery {
    format: Option<String>,
}

enum Format {
    Json,
    Csv,
}

pub async fn title_leaks(
    _caller: Legal,
    path: web::Path<String>,
    query: web::Query<HistoryQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let format = match query.format.as_deref() {
        None | Some("json") => Format::Json,
        Some("csv") => Format::Csv,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_format",
                "format must be json or csv",
            ))
        }
    };
    let id = path.into_inner();
    let (video, mut rows) = state
        .db
        .run(move |c| {
            let video = videos::get(c, &id)?;
            let rows = cases::for_video(c, &id, MAX_CASES + 1)?;
            Ok((video, rows))
        })
        .await
        .map_err(not_found_as(
            "unknown_video",
            "no packaged title has this id",
        ))?;
    let truncated = rows.len() as i64 > MAX_CASES;
    rows.truncate(MAX_CASES as usize);
    match format {
        Format::Json => Ok(HttpResponse::Ok().json(history::history(
            &video.id,
            &video.title,
            &rows,
            truncated,
        ))),
        Format::Csv => {
            let csv = history::to_csv(&history::accusations(&rows))
                .map_err(|e| ApiError::internal(e.to_string()))?;
            Ok(HttpResponse::Ok()
                .content_type("text/csv; charset=utf-8")
                .insert_header(ContentDisposition {
                    disposition: DispositionType::Attachment,
                    parameters: vec![DispositionParam::Filename(format!(
                        "leaks-{}.csv",
                        video.id
                    ))],
                })
                .body(csv))
        }
    }
}
