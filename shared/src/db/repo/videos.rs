use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::videos;
use crate::db::{DbConnection, DbError};
use formats::codes::CodeScheme;

/// A packaged title. `storage_dir` is relative to the data dir; `sealed_secret` is the
/// per-video watermark secret sealed under the master key.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = videos)]
pub struct VideoRow {
    pub id: String,
    pub title: String,
    pub duration_seconds: f64,
    pub unit_seconds: f64,
    pub unit_count: i32,
    pub width: i32,
    pub height: i32,
    pub frame_rate: f64,
    pub has_audio: bool,
    pub storage_dir: String,
    pub sealed_secret: Vec<u8>,
    pub source_sha256: String,
    pub created_at: NaiveDateTime,
    /// The name of how its sessions' codes are built (a [`CodeScheme`]; kept as text so that
    /// a scheme of a newer build does not make every title unreadable to an older one); None
    /// for a title recorded before this was, until its manifest is read
    /// ([`record_packaging`]).
    pub code: Option<String>,
    /// Watermark units per segment; None as `code`.
    pub segment_units: Option<i32>,
}

/// What packaging hands over to be recorded: the same columns.
pub type NewVideo = VideoRow;

/// Records a packaged title. A taken title is `DbError::Conflict`.
pub fn create(conn: &mut DbConnection, video: &NewVideo) -> Result<VideoRow, DbError> {
    diesel::insert_into(videos::table)
        .values(video)
        .execute(conn)
        .map_err(|e| {
            DbError::on_unique(e, || {
                format!("a title named '{}' already exists", video.title)
            })
        })?;
    get(conn, &video.id)
}

pub fn get(conn: &mut DbConnection, id: &str) -> Result<VideoRow, DbError> {
    videos::table
        .find(id)
        .select(VideoRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(DbError::NotFound("video"))
}

pub fn find_by_title(conn: &mut DbConnection, title: &str) -> Result<Option<VideoRow>, DbError> {
    Ok(videos::table
        .filter(videos::title.eq(title))
        .select(VideoRow::as_select())
        .first(conn)
        .optional()?)
}

/// All titles, by title.
pub fn list(conn: &mut DbConnection) -> Result<Vec<VideoRow>, DbError> {
    Ok(videos::table
        .order(videos::title.asc())
        .select(VideoRow::as_select())
        .load(conn)?)
}

/// Titles whose code scheme is not recorded (recorded before it was): (id, storage dir).
pub fn unrecorded_packaging(conn: &mut DbConnection) -> Result<Vec<(String, String)>, DbError> {
    Ok(videos::table
        .filter(videos::code.is_null())
        .order(videos::id.asc())
        .select((videos::id, videos::storage_dir))
        .load(conn)?)
}

/// Records how title `id` was packaged (from its manifest), where nothing is recorded yet.
pub fn record_packaging(
    conn: &mut DbConnection,
    id: &str,
    code: CodeScheme,
    segment_units: i32,
) -> Result<(), DbError> {
    diesel::update(videos::table.find(id).filter(videos::code.is_null()))
        .set((
            videos::code.eq(code.as_str()),
            videos::segment_units.eq(segment_units),
        ))
        .execute(conn)?;
    Ok(())
}
