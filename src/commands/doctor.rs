//! `leaktrace doctor [--clean] [--grace-seconds N] [--json]`: see `crate::doctor`.

use std::time::Duration;

use shared::config::Config;

use super::open_database;
use crate::doctor;
use crate::error::AppError;

pub fn run(config: &Config, clean: bool, grace_seconds: u64, json: bool) -> Result<(), AppError> {
    let (db, _) = open_database(config)?;
    let storage = super::open_storage(config)?;
    let mut report = doctor::examine(config, &db, &storage, Duration::from_secs(grace_seconds))?;
    if clean {
        doctor::clean(config, &mut report)?;
    }
    if json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| AppError::Server(format!("cannot print the report: {e}")))?;
        println!("{text}");
    } else if report.findings.is_empty() {
        println!("nothing out of place");
    } else {
        for f in &report.findings {
            let path = f
                .path
                .as_ref()
                .map(|p| format!(" {}", p.display()))
                .unwrap_or_default();
            let state = if f.removed { " (removed)" } else { "" };
            println!("{}{path}: {}{state}", f.kind, f.detail);
        }
    }
    match report.remaining() {
        0 => Ok(()),
        n => Err(AppError::DoctorFindings(n)),
    }
}
