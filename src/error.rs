//! How a command failure reaches the shell: a message on stderr and an exit status.
//! Status 2: the input was wrong (arguments, names, passwords, conflicts, configuration).
//! Status 1: the environment failed (database unreachable, data dir unusable, I/O).

use std::fmt;

use shared::config::ConfigError;
use shared::datadir::DataDirError;
use shared::db::DbError;
use shared::domain::ValidationError;
use shared::secrets::SecretsError;

#[derive(Debug)]
pub enum CliError {
    Input(anyhow::Error),
    Failure(anyhow::Error),
}

impl CliError {
    pub fn input(message: impl fmt::Display) -> Self {
        CliError::Input(anyhow::anyhow!("{message}"))
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Input(_) => 2,
            CliError::Failure(_) => 1,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Subsystem messages already include their cause: print the top level only.
            CliError::Input(e) | CliError::Failure(e) => write!(f, "{e}"),
        }
    }
}

impl From<ValidationError> for CliError {
    fn from(e: ValidationError) -> Self {
        CliError::Input(e.into())
    }
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        CliError::Input(e.into())
    }
}

impl From<DataDirError> for CliError {
    fn from(e: DataDirError) -> Self {
        CliError::Failure(e.into())
    }
}

impl From<SecretsError> for CliError {
    fn from(e: SecretsError) -> Self {
        CliError::Failure(e.into())
    }
}

impl From<DbError> for CliError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Conflict(_)
            | DbError::NotFound(_)
            | DbError::MalformedUrl(_)
            | DbError::UnsupportedScheme(_) => CliError::Input(e.into()),
            _ => CliError::Failure(e.into()),
        }
    }
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        CliError::Failure(e)
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Failure(e.into())
    }
}
