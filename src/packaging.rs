//! Packaging a title and recording it: the one path from a source file to a recorded title,
//! for `leaktrace package` and for the admin console's `package_title` jobs.

use std::path::Path;

use forensics::package::{self, PackageError, PackageOptions, Progress, Stage};
use formats::codes::CodeScheme;
use formats::layout::DataLayout;
use formats::package::{check_segment_units, check_unit_seconds, PackageManifest};
use formats::sealing;
use serde::{Deserialize, Serialize};
use shared::config::{self, Config};
use shared::db::repo::videos::{self, NewVideo, VideoRow};
use shared::db::{now, Db};
use shared::domain;
use shared::secrets::Secrets;

use crate::error::AppError;
use crate::jobs::build_reference_store;

/// What to package a source as.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TitleSpec {
    pub title: String,
    pub unit_seconds: f64,
    /// Watermark units per segment (jobs queued before there was a choice: 1).
    #[serde(default = "formats::package::default_segment_units")]
    pub segment_units: u32,
    pub crf: u8,
    pub preset: String,
    pub strength: f32,
    /// How the sessions' codes are built.
    #[serde(default)]
    pub code: CodeScheme,
    /// Heights of the lower renditions (adaptive streaming); empty: one rendition.
    #[serde(default)]
    pub ladder: Vec<u32>,
}

impl TitleSpec {
    /// What packaging `title` gets when a request says nothing else: the deployment's
    /// `[packaging]` settings, and the encoder's defaults.
    pub fn new(title: impl Into<String>, defaults: &config::Packaging) -> TitleSpec {
        let d = PackageOptions::new(title);
        TitleSpec {
            title: d.title,
            unit_seconds: defaults.unit_seconds,
            segment_units: defaults.segment_units,
            crf: d.crf,
            preset: d.preset,
            strength: d.strength,
            code: defaults.code,
            ladder: defaults.ladder.clone(),
        }
    }

    /// The packaging a request asks for: what it names, the rest from `defaults` (see
    /// [`TitleSpec::new`]). A unit length asked for that does not fit the deployment's units
    /// per segment is refused saying where that number came from.
    pub fn requested(
        title: impl Into<String>,
        asked: Requested,
        defaults: &config::Packaging,
    ) -> Result<TitleSpec, AppError> {
        let d = TitleSpec::new(title, defaults);
        let spec = TitleSpec {
            unit_seconds: asked.unit_seconds.unwrap_or(d.unit_seconds),
            segment_units: asked.segment_units.unwrap_or(d.segment_units),
            crf: asked.crf.unwrap_or(d.crf),
            preset: asked.preset.unwrap_or(d.preset),
            strength: asked.strength.unwrap_or(d.strength),
            code: asked.code.unwrap_or(d.code),
            ladder: asked.ladder.unwrap_or(d.ladder),
            title: d.title,
        };
        // Only where the deployment's units per segment are what is wrong: a unit length out
        // of range, or one unit per segment, keeps packaging's own message.
        if asked.segment_units.is_none()
            && spec.segment_units > 1
            && check_unit_seconds(spec.unit_seconds).is_ok()
        {
            if let Err(why) = check_segment_units(spec.unit_seconds, spec.segment_units) {
                return Err(PackageError::InvalidOption(format!(
                    "{why} ({} units per segment is this deployment's packaging.segment_units: \
                     ask for segment_units 1 with this unit length)",
                    spec.segment_units
                ))
                .into());
            }
        }
        Ok(spec)
    }

    fn options(&self, config: &Config) -> PackageOptions {
        PackageOptions {
            unit_seconds: self.unit_seconds,
            segment_units: self.segment_units,
            crf: self.crf,
            preset: self.preset.clone(),
            strength: self.strength,
            code: self.code,
            ladder: self.ladder.clone(),
            limits: crate::cases::analysis::limits(config),
            ..PackageOptions::new(self.title.clone())
        }
    }

    /// Refuses a bad title or options (input errors) and a title already taken (conflict).
    pub fn check(&self, config: &Config, db: &Db) -> Result<(), AppError> {
        domain::validate_title(&self.title)?;
        self.options(config).validate()?;
        if videos::find_by_title(&mut *db.conn()?, &self.title)?.is_some() {
            return Err(AppError::TitleExists(self.title.clone()));
        }
        Ok(())
    }
}

/// What a packaging request names; each option left out is the deployment's `[packaging]`
/// setting of that name, or the encoder's default.
#[derive(Debug, Clone, Default)]
pub struct Requested {
    pub unit_seconds: Option<f64>,
    pub segment_units: Option<u32>,
    pub crf: Option<u8>,
    pub preset: Option<String>,
    pub strength: Option<f32>,
    pub code: Option<CodeScheme>,
    pub ladder: Option<Vec<u32>>,
}

/// A packaged and recorded title.
pub struct Packaged {
    pub row: VideoRow,
    pub frames: u64,
    pub codec: String,
    /// Watermark units per segment and the segments a player fetches.
    pub segment_units: u32,
    pub segments: u32,
}

/// One number for the whole run: copying the source is the first 5 %, frames up to 90 %,
/// writing segments and references the rest.
pub fn overall(p: Progress) -> f64 {
    let part = if p.total == 0 {
        0.0
    } else {
        (p.done as f64 / p.total as f64).clamp(0.0, 1.0)
    };
    match p.stage {
        Stage::Source => 0.05 * part,
        Stage::Video => 0.05 + 0.85 * part,
        Stage::Finishing => 0.90 + 0.10 * part,
    }
}

/// The folders of a title that are not published to a bucket: the source as received and
/// packaging's scratch files.
pub const TITLE_LOCAL_ONLY: &[&str] = &["source", "work"];

/// Packages `input` as `spec` into the data dir (and the bucket, when there is one) and
/// records the title; nothing stays behind on failure.
pub fn package_and_record(
    config: &Config,
    db: &Db,
    secrets: &Secrets,
    storage: &storage::Storage,
    input: &Path,
    spec: &TitleSpec,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<Packaged, AppError> {
    spec.check(config, db)?;
    let packaged = package::package(input, &config.layout(), &spec.options(config), on_progress)?;
    let manifest = packaged.manifest.clone();
    let video_id = manifest.video_id.clone();
    let sealed_secret =
        sealing::seal_video_secret(secrets.master_key(), &video_id, &packaged.secret).map_err(
            |source| AppError::TitleSecret {
                video_id: video_id.clone(),
                source,
            },
        )?;
    let folder = packaged.commit()?;
    let relative = DataLayout::relative_title_dir(&video_id);
    // With a bucket, every file is there before the row makes the title visible (the
    // manifest last); the source and scratch files stay here.
    if let Err(e) = storage.publish(&relative, TITLE_LOCAL_ONLY, "package.json") {
        let _ = std::fs::remove_dir_all(&folder);
        let _ = storage.remove(&relative);
        return Err(e.into());
    }
    let record = NewVideo {
        id: video_id.clone(),
        title: manifest.title.clone(),
        duration_seconds: manifest.video.duration_seconds,
        unit_seconds: manifest.video.unit_seconds(),
        unit_count: manifest.video.unit_count as i32,
        width: manifest.video.width as i32,
        height: manifest.video.height as i32,
        frame_rate: manifest.video.frame_rate[0] as f64 / manifest.video.frame_rate[1] as f64,
        has_audio: manifest.audio.is_some(),
        storage_dir: relative.clone(),
        sealed_secret,
        source_sha256: manifest.source.sha256.clone(),
        created_at: now(),
        code: Some(manifest.watermark.code.as_str().to_string()),
        segment_units: Some(manifest.video.units_per_segment() as i32),
    };
    let created = db
        .conn()
        .and_then(|mut c| videos::create(&mut c, &record))
        .map_err(AppError::from);
    let row = match created {
        Ok(row) => row,
        Err(e) => {
            // Nothing may stay behind without its database row.
            let _ = std::fs::remove_dir_all(&folder);
            let _ = storage.remove(&relative);
            return Err(e);
        }
    };
    tracing::info!(video_id = %row.id, title = %row.title, units = row.unit_count, "packaged");
    // The reference store is built by a worker afterwards: packaging stays as fast as it was,
    // and until the store is there extractions decode the variants instead.
    if config.analysis.reference_store {
        if let Err(e) = build_reference_store::enqueue(db, config, &row.id) {
            tracing::warn!(video_id = %row.id, error = %e, "cannot queue the reference store job");
        }
    }
    Ok(Packaged {
        row,
        frames: manifest.video.frame_count,
        codec: manifest.video.codec.clone(),
        segment_units: manifest.video.units_per_segment(),
        segments: manifest.video.segment_count(),
    })
}

/// Records the code scheme and units per segment of every title recorded before they were,
/// from its manifest (fetched from the bucket when this machine lacks it); how many. A title
/// whose manifest cannot be read, or names another title, keeps nothing recorded and is tried
/// again next time.
pub fn record_missing_packaging(
    db: &Db,
    config: &Config,
    storage: &storage::Storage,
) -> Result<usize, AppError> {
    let titles = videos::unrecorded_packaging(&mut *db.conn()?)?;
    let mut recorded = 0;
    for (id, dir) in titles {
        let layout = config.layout().title(&dir);
        let read = storage
            .ensure(&layout.manifest())
            .map_err(AppError::from)
            .and_then(|_| PackageManifest::read(&layout).map_err(AppError::from));
        match read {
            Ok(m) if m.video_id != id => tracing::warn!(
                video_id = %id,
                manifest = %m.video_id,
                "the title's manifest names another title"
            ),
            Ok(m) => {
                let units = m.video.units_per_segment() as i32;
                videos::record_packaging(&mut *db.conn()?, &id, m.watermark.code, units)?;
                recorded += 1;
            }
            Err(e) => {
                tracing::warn!(video_id = %id, error = %e, "cannot read the title's manifest")
            }
        }
    }
    Ok(recorded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overall_progress_rises_through_the_stages() {
        let at = |stage, done, total| overall(Progress { stage, done, total });
        let steps = [
            at(Stage::Source, 0, 10),
            at(Stage::Source, 10, 10),
            at(Stage::Video, 0, 0),
            at(Stage::Video, 50, 100),
            at(Stage::Video, 100, 100),
            at(Stage::Finishing, 1, 2),
            at(Stage::Finishing, 2, 2),
        ];
        assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{steps:?}");
        assert_eq!(steps[0], 0.0);
        assert!((steps[6] - 1.0).abs() < 1e-12);
        // A count beyond the expected total never passes the stage's share.
        assert!(at(Stage::Video, 150, 100) <= 0.9 + 1e-12);
    }
}
