//! Manifest and segments. Video segment k is the variant named by the session's code bits of
//! the watermark units it holds (one per segment unless the title was packaged with two);
//! the video init segment carries the session's signed marker box; audio (not watermarked)
//! is served as packaged. Every body is encrypted per response with the session's CEK and the
//! segment's AAD.

use std::sync::Arc;

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{web, HttpRequest, HttpResponse};
use formats::marker::MarkerPayload;
use formats::sealing;
use shared::auth::device_key;
use shared::db::now;
use shared::db::repo::devices;
use shared::db::repo::sessions::{self, SessionRow, SessionState};
use shared::db::reservations::UnitClaim;
use shared::metrics::{CacheName, SegmentKind};

use api::auth::{Device, DeviceToken};
use api::ApiError;

use crate::cache::{Known, SessionKeys, Title};
use crate::session_handlers::{owned_session, refuse_ended};
use crate::state::StreamingState;
use crate::{crypto, manifest, monitor};

/// A session that may stream, with its title.
struct Streamable {
    session: SessionRow,
    title: Arc<Title>,
}

async fn streamable(
    state: &StreamingState,
    req: &HttpRequest,
    device: &Device,
    session_id: &str,
) -> Result<Streamable, ApiError> {
    let (session, current) = owned_session(state, req, device, session_id).await?;
    refuse_ended(current)?;
    if current == SessionState::Requested {
        return Err(ApiError::conflict(
            "not_keyed",
            "complete the key exchange before streaming",
        ));
    }
    let title = state.caches.title(state, &session.video_id).await?;
    Ok(Streamable { session, title })
}

pub async fn manifest(
    device: Device,
    state: web::Data<StreamingState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let s = streamable(&state, &req, &device, &path.into_inner()).await?;
    record_activity(&state, &s.session.id, 0).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/dash+xml")
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .body(manifest::render(&s.title.package, &s.session.id)))
}

/// The segments a session may ask for (the URL's last part): video of the top rendition
/// (`init`, `7`) or of lower rendition `r` (`r2-init`, `r2-7`), audio (`audio-init`,
/// `audio-7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    /// Rendition (0: the top one).
    VideoInit(u32),
    /// Rendition and segment (of one watermark unit, or two).
    Video(u32, u32),
    AudioInit,
    Audio(u32),
}

impl Segment {
    fn parse(name: &str) -> Option<Segment> {
        let number = |s: &str| {
            let canonical =
                !s.is_empty() && !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit());
            s.parse::<u32>().ok().filter(|_| canonical)
        };
        let video = |rendition: u32, rest: &str| match rest {
            "init" => Some(Segment::VideoInit(rendition)),
            _ => number(rest).map(|unit| Segment::Video(rendition, unit)),
        };
        if let Some(rest) = name.strip_prefix("audio-") {
            return match rest {
                "init" => Some(Segment::AudioInit),
                _ => number(rest).map(Segment::Audio),
            };
        }
        match name.strip_prefix('r').and_then(|r| r.split_once('-')) {
            Some((index, rest)) => number(index).and_then(|i| video(i, rest)),
            None => video(0, name),
        }
    }
}

/// Whether `title` has rendition `index` (0, the top one, always).
fn has_rendition(title: &Title, index: u32) -> bool {
    (index as usize) < title.video_inits.len()
}

fn no_segment() -> ApiError {
    ApiError::not_found_what("segment_not_found", "no such segment")
}

pub async fn segment(
    token: DeviceToken,
    state: web::Data<StreamingState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (session_id, name) = path.into_inner();
    if let Some(Segment::Video(rendition, unit)) = Segment::parse(&name) {
        let fast = fast_video_unit(&state, &req, &token, &session_id, rendition, unit).await?;
        state
            .metrics
            .cache_lookup(CacheName::KnownSession, fast.is_some());
        if let Some(served) = fast {
            return Ok(served);
        }
    }
    let device = token.stands().await?;
    let s = streamable(&state, &req, &device, &session_id).await?;
    let which = Segment::parse(&name).ok_or_else(no_segment)?;
    let package = &s.title.package;
    let keys = state.caches.session_keys(&state, &s.session, &s.title)?;
    // The body is built in one buffer: room for the nonce, then the plain segment, sealed in
    // place (no copy of the segment after it is read).
    let room = [0u8; sealing::NONCE_LEN];
    let buffer: Vec<u8> = match which {
        Segment::VideoInit(rendition) => {
            let init = s
                .title
                .video_inits
                .get(rendition as usize)
                .ok_or_else(no_segment)?;
            let marker = state.marker.marker_box(&MarkerPayload {
                session_id: s.session.id.clone(),
                video_id: s.title.video_id.clone(),
                issued_at: now().and_utc().timestamp(),
            });
            [&room[..], init, &marker].concat()
        }
        Segment::AudioInit => {
            let init = s.title.audio_init.as_deref().ok_or_else(no_segment)?;
            [&room[..], init].concat()
        }
        Segment::Video(rendition, unit) => {
            if unit > package.video.segment_count() || !has_rendition(&s.title, rendition) {
                return Err(no_segment());
            }
            // Counted before it is served (the pace's atomic reservation).
            let seconds = package.video.segment_seconds();
            monitor::reserve_unit(&state, &req, &s.session, seconds).await?;
            remember(&state, &device, &s.session).await?;
            let variant = keys
                .variant(unit)
                .ok_or_else(|| ApiError::internal("code shorter than the title"))?;
            read_after_room(
                &state,
                s.title.layout.rendition_unit(rendition, variant, unit),
            )
            .await?
        }
        Segment::Audio(k) => {
            let audio = package.audio.as_ref().ok_or_else(no_segment)?;
            if k > audio.segment_count {
                return Err(no_segment());
            }
            read_after_room(&state, s.title.layout.audio_unit(k)).await?
        }
    };
    // Video units were counted when reserved (they are what a ripper needs, and what the pace
    // counts); anything else moves the idle clock only.
    if !matches!(which, Segment::Video(..)) {
        record_activity(&state, &s.session.id, 0).await?;
    }
    sealed(&state, &keys, &s.session.id, &name, which, buffer)
}

/// A video segment of a session this instance served before, with every database check in the
/// statement that reserves the unit (`sessions::reserve_unit_for`): one round trip. `None`
/// when the session is not known here, the token is not the one it was served to, or the
/// statement refused: the caller then takes the full path, which finds out why (and answers
/// with the exact error, or serves the unit when the refusal was a race that has passed).
async fn fast_video_unit(
    state: &StreamingState,
    req: &HttpRequest,
    token: &DeviceToken,
    session_id: &str,
    rendition: u32,
    unit: u32,
) -> Result<Option<HttpResponse>, ApiError> {
    let Some(known) = state.caches.known(session_id) else {
        return Ok(None);
    };
    let claims = &token.claims;
    let (session, device_key) = (&known.session, known.device_key.clone());
    if claims.sub != session.user_id
        || claims.did.as_ref() != Some(&session.device_id)
        || claims.dkt.as_ref() != Some(&known.token_key)
    {
        return Ok(None);
    }
    let (Some(keyed_at), title) = (
        session.keyed_at,
        state.caches.title(state, &session.video_id).await?,
    ) else {
        return Ok(None);
    };
    let package = &title.package;
    if unit > package.video.segment_count() || !has_rendition(&title, rendition) {
        return Ok(None);
    }
    let keys = state.caches.session_keys(state, session, &title)?;
    let unit_seconds = package.video.segment_seconds();
    let allowed = monitor::allowed_units(state, keyed_at, unit_seconds);
    let reserved = state
        .reservations
        .reserve(UnitClaim {
            session_id: session.id.clone(),
            user_id: session.user_id.clone(),
            device_id: session.device_id.clone(),
            device_key,
            allowed,
        })
        .await?;
    let Some(served) = reserved else {
        return Ok(None);
    };
    monitor::reserved_unit(state, req, session, served, unit_seconds).await?;
    let variant = keys
        .variant(unit)
        .ok_or_else(|| ApiError::internal("code shorter than the title"))?;
    let buffer =
        read_after_room(state, title.layout.rendition_unit(rendition, variant, unit)).await?;
    let name = match rendition {
        0 => unit.to_string(),
        r => format!("r{r}-{unit}"),
    };
    sealed(
        state,
        &keys,
        &session.id,
        &name,
        Segment::Video(rendition, unit),
        buffer,
    )
    .map(Some)
}

/// Remembers a session whose unit the full path just served, for the fast path: the device's
/// current key is read when the session is not known here yet, or was known with another
/// token key (the device registered again since).
async fn remember(
    state: &StreamingState,
    device: &Device,
    session: &SessionRow,
) -> Result<(), ApiError> {
    let Some(token_key) = device.0.dkt.clone() else {
        return Ok(());
    };
    if state
        .caches
        .known(&session.id)
        .is_some_and(|k| k.token_key == token_key)
    {
        return Ok(());
    }
    let device_id = device.device_id().to_string();
    let row = state.db.run(move |c| devices::get(c, &device_id)).await?;
    // Only the key the token is bound to: the device may have registered again (another key)
    // since the token was checked, and the fast path must not pair the old token with it.
    let current = row
        .public_key
        .filter(|k| device_key::thumbprint_of_stored(k).as_deref() == Some(token_key.as_str()));
    let stands = row.user_id == device.user_id() && row.revoked_at.is_none();
    if let (Some(device_key), true) = (current, stands) {
        state.caches.remember(Known {
            session: session.clone(),
            device_key,
            token_key,
        });
    }
    Ok(())
}

/// The response: `buffer` (nonce room, then the plain segment) sealed in place under the
/// session's CEK and the segment's AAD, counted.
fn sealed(
    state: &StreamingState,
    keys: &SessionKeys,
    session_id: &str,
    name: &str,
    which: Segment,
    buffer: Vec<u8>,
) -> Result<HttpResponse, ApiError> {
    let aad = crypto::segment_aad(session_id, name);
    let body =
        sealing::seal_in_place(&keys.cek, aad.as_bytes(), buffer).map_err(ApiError::internal)?;
    let kind = match which {
        Segment::VideoInit(_) | Segment::AudioInit => SegmentKind::Init,
        Segment::Video(..) => SegmentKind::Video,
        Segment::Audio(_) => SegmentKind::Audio,
    };
    state.metrics.segment_served(kind, body.len());
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .body(body))
}

/// The file's bytes after `NONCE_LEN` bytes of room: from memory when kept there, else read
/// on the blocking pool (fetched from the bucket first when there is one and this machine
/// lacks the file) and kept.
async fn read_after_room(
    state: &StreamingState,
    path: std::path::PathBuf,
) -> Result<Vec<u8>, ApiError> {
    if let Some(kept) = state.segments.get(&path) {
        state.metrics.cache_lookup(CacheName::Segment, true);
        let mut buf = Vec::with_capacity(sealing::NONCE_LEN + kept.len() + sealing::TAG_LEN);
        buf.resize(sealing::NONCE_LEN, 0);
        buf.extend_from_slice(&kept);
        return Ok(buf);
    }
    state.metrics.cache_lookup(CacheName::Segment, false);
    let storage = state.storage.clone();
    let file = path.clone();
    let buf = web::block(move || -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let path = storage.ensure(&file).map_err(std::io::Error::other)?;
        let mut file = std::fs::File::open(&path)?;
        let len = file.metadata()?.len() as usize;
        let mut buf = Vec::with_capacity(sealing::NONCE_LEN + len + sealing::TAG_LEN);
        buf.resize(sealing::NONCE_LEN, 0);
        file.read_to_end(&mut buf)?;
        Ok(buf)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    state.segments.keep(&path, &buf[sealing::NONCE_LEN..]);
    Ok(buf)
}

/// Counts the request; the database is updated at most once a second per session.
async fn record_activity(state: &StreamingState, id: &str, segments: i64) -> Result<(), ApiError> {
    let Some(due) = state.activity.note(id, segments) else {
        return Ok(());
    };
    let sid = id.to_string();
    let written = state
        .db
        .run(move |c| sessions::record_activity(c, &sid, due))
        .await;
    if let Err(e) = written {
        state.activity.restore(id, due);
        return Err(e.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names() {
        assert_eq!(Segment::parse("init"), Some(Segment::VideoInit(0)));
        assert_eq!(Segment::parse("7"), Some(Segment::Video(0, 7)));
        assert_eq!(Segment::parse("r2-init"), Some(Segment::VideoInit(2)));
        assert_eq!(Segment::parse("r1-12"), Some(Segment::Video(1, 12)));
        assert_eq!(Segment::parse("audio-init"), Some(Segment::AudioInit));
        assert_eq!(Segment::parse("audio-3"), Some(Segment::Audio(3)));
        for bad in [
            "0",
            "07",
            "-1",
            "+1",
            "audio-0",
            "audio-",
            "audio-x",
            "x",
            "",
            "1.m4s",
            "r0-1",
            "r-1",
            "r1-",
            "r1-0",
            "r01-1",
            "r1-init-",
            "r1",
            "audio-r1-1",
        ] {
            assert_eq!(Segment::parse(bad), None, "{bad}");
        }
    }
}
