//! `leaktrace audit verify`: walk the evidence audit trail's hash chain.

use shared::config::Config;
use shared::db::repo::audit::{self, Verification};

use super::open_database;
use crate::cli::AuditCommand;
use crate::error::AppError;

pub fn run(config: &Config, command: AuditCommand) -> Result<(), AppError> {
    match command {
        AuditCommand::Verify => {
            let (db, _) = open_database(config)?;
            match audit::verify(&mut *db.conn()?)? {
                Verification::Intact { entries, head } => {
                    println!("audit trail intact: {entries} entries, head {head}");
                    Ok(())
                }
                Verification::Broken { seq, reason } => Err(AppError::AuditBroken { seq, reason }),
            }
        }
    }
}
