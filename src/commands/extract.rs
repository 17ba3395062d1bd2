//! `leaktrace extract SUSPECT [--video ID] [--json]`: analyse a suspect copy and record a case.

use shared::config::Config;
use shared::secrets::Secrets;

use super::open_database;
use crate::analysis::{self, Submitter};
use crate::cli::ExtractArgs;
use crate::error::CliError;

pub fn run(config: &Config, args: ExtractArgs) -> Result<(), CliError> {
    let (db, _) = open_database(config)?;
    let secrets = Secrets::load_or_create(&config.data_dir, &config.secrets)?;
    let result = analysis::analyse(
        config,
        &db,
        &secrets,
        &args.suspect,
        args.video.as_deref(),
        Submitter {
            kind: "cli",
            id: None,
        },
    )?;
    if args.json {
        println!("{result}");
        return Ok(());
    }
    println!(
        "case {}: {}",
        result["case_id"].as_str().unwrap_or(""),
        result["verdict"].as_str().unwrap_or("")
    );
    if let Some(video) = result["video_id"].as_str() {
        println!(
            "title {video}, {} units observed, time offset {:.2} s",
            result["units_observed"],
            result["alignment"]["offset_seconds"]
                .as_f64()
                .unwrap_or(0.0)
        );
    }
    for m in result["matches"].as_array().into_iter().flatten() {
        println!(
            "  session {} (user {}, device {}): z = {:.2}, false-positive probability {:.3e}",
            m["session_id"].as_str().unwrap_or(""),
            m["user"].as_str().unwrap_or(""),
            m["device_id"].as_str().unwrap_or(""),
            m["score"].as_f64().unwrap_or(0.0),
            m["false_positive_probability"].as_f64().unwrap_or(1.0)
        );
    }
    if let Some(layer) = result["metadata_layer"].as_object() {
        println!(
            "metadata layer: {}",
            serde_json::Value::Object(layer.clone())
        );
    }
    Ok(())
}
