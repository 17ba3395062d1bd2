//! Manifest and segments: for unit k the variant named by bit k of the session's code,
//! encrypted per response with the session's CEK and the segment's AAD.

use std::path::PathBuf;

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{web, HttpRequest, HttpResponse};
use shared::codes;
use shared::db::repo::sessions::{self, SessionRow, SessionState};
use shared::db::repo::videos::{self, VideoRow};
use shared::package::{Layout, PackageManifest};
use shared::sealing;

use crate::auth::authenticate;
use crate::error::ApiError;
use crate::session_handlers::{cek_seal_aad, owned_session, refuse_ended};
use crate::state::StreamingState;
use crate::{crypto, manifest};

/// A session that may stream, with its title.
struct Streamable {
    session: SessionRow,
    video: VideoRow,
    package: PackageManifest,
    layout: Layout,
}

async fn streamable(
    state: &StreamingState,
    req: &HttpRequest,
    session_id: &str,
) -> Result<Streamable, ApiError> {
    let claims = authenticate(state, req, "device").await?;
    let (session, current) = owned_session(state, req, &claims, session_id).await?;
    refuse_ended(current)?;
    if current == SessionState::Requested {
        return Err(ApiError::conflict(
            "not_keyed",
            "complete the key exchange before streaming",
        ));
    }
    let video_id = session.video_id.clone();
    let video = state.db.run(move |c| videos::get(c, &video_id)).await?;
    let layout = Layout::new(state.data_dir.join(&video.storage_dir));
    let text = std::fs::read(layout.manifest())
        .map_err(|e| ApiError::internal(format!("{}: {e}", layout.manifest().display())))?;
    let package: PackageManifest =
        serde_json::from_slice(&text).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Streamable {
        session,
        video,
        package,
        layout,
    })
}

pub async fn manifest(
    state: web::Data<StreamingState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let s = streamable(&state, &req, &path.into_inner()).await?;
    let id = s.session.id.clone();
    state
        .db
        .run(move |c| sessions::record_activity(c, &id, 0))
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/dash+xml")
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .body(manifest::render(&s.package, &s.session.id)))
}

pub async fn segment(
    state: web::Data<StreamingState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (session_id, segment) = path.into_inner();
    let s = streamable(&state, &req, &session_id).await?;
    let file: PathBuf = if segment == "init" {
        s.layout.video_init()
    } else {
        let unit: u32 = segment
            .parse()
            .ok()
            .filter(|u| (1..=s.package.video.unit_count).contains(u))
            .ok_or_else(|| ApiError::not_found_what("segment_not_found", "no such segment"))?;
        let secret: [u8; 32] = sealing::open(
            &state.master_key,
            &sealing::video_secret_aad(&s.video.id),
            &s.video.sealed_secret,
        )
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| ApiError::internal("the video secret cannot be unsealed"))?;
        let code = codes::session_code(&secret, &s.session.id, unit);
        let variant = codes::variant_for(&code, unit)
            .ok_or_else(|| ApiError::internal("code shorter than the title"))?;
        s.layout.video_unit(variant, unit)
    };
    let cek: [u8; 32] = s
        .session
        .sealed_cek
        .as_deref()
        .and_then(|sealed| {
            sealing::open(&state.master_key, &cek_seal_aad(&s.session.id), sealed).ok()
        })
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| ApiError::internal("the session CEK cannot be unsealed"))?;
    let plain = web::block(move || std::fs::read(&file))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let aad = crypto::segment_aad(&s.session.id, &segment);
    let body = crypto::seal(&cek, aad.as_bytes(), &plain).map_err(ApiError::internal)?;
    let id = s.session.id.clone();
    state
        .db
        .run(move |c| sessions::record_activity(c, &id, 1))
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .body(body))
}
