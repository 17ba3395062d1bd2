//! The `leaktrace` binary: CLI and server assembly over the `shared`, `streaming` and
//! `forensics` crates.

mod bundles;
mod callbacks;
mod cases;
mod cli;
mod commands;
mod doctor;
mod error;
mod history;
mod housekeeping;
mod http;
mod jobs;
mod logging;
mod packaging;
mod probe;
mod reports;
mod timestamping;
mod uploads;

use std::process::ExitCode;

use clap::Parser;
use shared::config::{Config, Env};

use crate::cli::Cli;
use crate::error::AppError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The upload probe's child: no configuration, no logging, nothing but the check.
    if let cli::Command::ProbeMedia(args) = &cli.command {
        return probe::child_main(&args.file, &args.limits());
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::debug!(error = %e, "command failed");
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(cli: Cli) -> Result<(), AppError> {
    let env: Env = std::env::vars().collect();
    let config = Config::assemble(cli.global.config.as_deref(), &env, cli.config_layer())?;
    logging::init(&config.log)?;
    for notice in &config.deprecations {
        tracing::warn!("configuration: {notice}");
    }
    commands::dispatch(cli.command, config, &env)
}
