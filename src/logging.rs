//! Logging with `tracing` to standard error: readable lines, or JSON objects per line.

use shared::config::{ConfigError, LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

use crate::error::AppError;

pub fn init(config: &LogConfig) -> Result<(), AppError> {
    let filter = EnvFilter::try_new(&config.level).map_err(|e| ConfigError::Value {
        key: "log.level".into(),
        message: format!("'{}' is not a log level: {e}", config.level),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match config.format {
        LogFormat::Human => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
    result.map_err(|e| AppError::Server(format!("cannot start logging: {e}")))
}
