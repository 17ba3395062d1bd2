//! `leaktrace extract SUSPECT [--video ID] [--json]`: analyse a suspect copy and record a case.

use formats::case::SubmitterKind;
use shared::config::Config;
use shared::secrets::Secrets;

use super::open_database;
use crate::cases::{self, Submitter};
use crate::cli::ExtractArgs;
use crate::error::AppError;

pub fn run(config: &Config, args: ExtractArgs) -> Result<(), AppError> {
    let (db, _) = open_database(config)?;
    let secrets = Secrets::load_or_create(&config.data_dir, &config.secrets)?;
    let submitter = Submitter {
        kind: SubmitterKind::Cli,
        id: None,
    };
    let result = cases::analyse(
        config,
        &db,
        &secrets,
        &*super::open_storage(config)?,
        &args.suspect,
        args.video.as_deref(),
        &submitter,
    )?;
    if args.json {
        let json = serde_json::to_string(&result)
            .map_err(|e| AppError::Server(format!("cannot print the result: {e}")))?;
        println!("{json}");
        return Ok(());
    }
    println!("case {}: {}", result.case_id, result.verdict);
    if let Some(video) = &result.video_id {
        println!(
            "title {video}, {} units observed, time offset {:.2} s",
            result.units_observed,
            result.alignment.as_ref().map_or(0.0, |a| a.offset_seconds)
        );
    }
    for m in &result.matches {
        println!(
            "  session {} (user {}, device {}): z = {:.2}, false-positive probability {:.3e}",
            m.session_id, m.user, m.device_id, m.score, m.false_positive_probability
        );
    }
    if let Some(layer) = &result.metadata_layer {
        let json = serde_json::to_string(layer).unwrap_or_default();
        println!("metadata layer: {json}");
    }
    Ok(())
}
