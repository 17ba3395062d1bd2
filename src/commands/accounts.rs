//! `leaktrace user ...` and `leaktrace apikey ...`.

use std::io::BufRead;

use shared::auth::{api_key, password};
use shared::config::{Config, Env};
use shared::db::repo::{api_keys, users};
use shared::domain;
use shared::secrets::Secrets;

use super::open_database;
use crate::cli::{ApikeyCommand, UserCommand};
use crate::error::AppError;

pub fn user(config: &Config, command: UserCommand, env: &Env) -> Result<(), AppError> {
    match command {
        UserCommand::Add {
            name,
            role,
            password_stdin,
        } => {
            domain::validate_username(&name)?;
            let password = read_new_password(password_stdin, env)?;
            domain::validate_new_password(&password)?;
            let (db, _) = open_database(config)?;
            let hash = password::hash(&password)?;
            let user = users::create(&mut *db.conn()?, &name, &hash, role)?;
            tracing::info!(user = %user.username, role = %role, "user added");
            println!("added {} user '{}'", role, user.username);
            Ok(())
        }
        UserCommand::List => {
            let (db, _) = open_database(config)?;
            let all = users::list(&mut *db.conn()?)?;
            println!("{:<24} {:<8} {:<9} created", "name", "role", "status");
            for u in all {
                let status = if u.disabled { "disabled" } else { "active" };
                println!(
                    "{:<24} {:<8} {:<9} {}",
                    u.username,
                    u.role,
                    status,
                    u.created_at.format("%Y-%m-%d %H:%M:%S UTC")
                );
            }
            Ok(())
        }
        UserCommand::Disable { ref name } | UserCommand::Enable { ref name } => {
            let disable = matches!(command, UserCommand::Disable { .. });
            let (db, _) = open_database(config)?;
            users::set_disabled(&mut *db.conn()?, name, disable)?;
            println!(
                "user '{name}' {}",
                if disable { "disabled" } else { "enabled" }
            );
            Ok(())
        }
    }
}

/// The new password: first line of stdin with `--password-stdin`, else `LEAKTRACE_PASSWORD`.
fn read_new_password(from_stdin: bool, env: &Env) -> Result<String, AppError> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(AppError::io("read", "standard input"))?;
        let line = line.strip_suffix('\n').unwrap_or(&line);
        return Ok(line.strip_suffix('\r').unwrap_or(line).to_string());
    }
    env.get("LEAKTRACE_PASSWORD").cloned().ok_or_else(|| {
        AppError::Usage("no password given: use --password-stdin or set LEAKTRACE_PASSWORD".into())
    })
}

pub fn apikey(config: &Config, command: ApikeyCommand) -> Result<(), AppError> {
    match command {
        ApikeyCommand::Create { name } => {
            domain::validate_api_key_name(&name)?;
            let (db, _) = open_database(config)?;
            let secrets = Secrets::load_or_create(&config.data_dir, &config.secrets)?;
            let key = api_key::generate();
            let sealed =
                api_key::seal_callback_secret(secrets.master_key(), &key).map_err(|e| {
                    AppError::Secrets(shared::secrets::SecretsError::Invalid {
                        what: "the master key".into(),
                        message: e.to_string(),
                    })
                })?;
            api_keys::create(
                &mut *db.conn()?,
                &name,
                &key.display_prefix,
                &key.hash,
                Some(&sealed),
            )?;
            tracing::info!(name = %name, prefix = %key.display_prefix, "API key created");
            println!("API key '{name}' created; it is shown only this once:");
            println!("{}", key.plaintext);
            Ok(())
        }
        ApikeyCommand::List => {
            let (db, _) = open_database(config)?;
            println!("{:<24} {:<12} {:<9} created", "name", "prefix", "status");
            for k in api_keys::list(&mut *db.conn()?)? {
                let status = if k.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{:<24} {:<12} {:<9} {}",
                    k.name,
                    k.key_prefix,
                    status,
                    k.created_at.format("%Y-%m-%d %H:%M:%S UTC")
                );
            }
            Ok(())
        }
        ApikeyCommand::Revoke { name } => {
            let (db, _) = open_database(config)?;
            api_keys::revoke(&mut *db.conn()?, &name)?;
            println!("API key '{name}' revoked");
            Ok(())
        }
    }
}
