//! The CLI commands: thin wrappers that validate input and call the domain and db layers.

mod accounts;
mod audit;
mod doctor;
mod extract;
mod migrate;
mod package;

use shared::config::{Config, Env};
use shared::datadir;
use shared::db::Db;
use shared::secrets::Secrets;

use crate::cli::Command;
use crate::error::AppError;

pub fn dispatch(command: Command, config: Config, env: &Env) -> Result<(), AppError> {
    match command {
        Command::Config => {
            print!("{}", config.to_redacted_toml());
            Ok(())
        }
        Command::Migrate => {
            let (_, applied) = open_database(&config)?;
            if applied.is_empty() {
                println!("database is up to date");
            } else {
                println!(
                    "applied {} migration(s): {}",
                    applied.len(),
                    applied.join(", ")
                );
            }
            Ok(())
        }
        Command::User { command } => accounts::user(&config, command, env),
        Command::Apikey { command } => accounts::apikey(&config, command),
        Command::Package(args) => package::run(&config, args),
        Command::Extract(args) => extract::run(&config, args),
        Command::Audit { command } => audit::run(&config, command),
        Command::Storage { command } => migrate::run(&config, command),
        Command::ProbeMedia(_) => Err(AppError::Usage(
            "probe-media is run by the server itself".into(),
        )),
        Command::Doctor {
            clean,
            grace_seconds,
            json,
        } => doctor::run(&config, clean, grace_seconds, json),
        Command::Report { case_id, out } => {
            let (db, _) = open_database(&config)?;
            let secrets = Secrets::load_or_create(&config.data_dir, &config.secrets)?;
            let (row, bytes) = crate::reports::issue(&config, &db, &secrets, &case_id, "cli")?;
            crate::reports::publish(&*open_storage(&config)?, &row.path)?;
            let out = out
                .unwrap_or_else(|| std::path::Path::new("reports").join(format!("{case_id}.pdf")));
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(AppError::io("create", dir))?;
            }
            std::fs::write(&out, bytes).map_err(AppError::io("write", &out))?;
            println!(
                "report {} (SHA-256 {}) written to {}",
                row.id,
                row.sha256,
                out.display()
            );
            Ok(())
        }
        Command::Bundle { case_id, out } => {
            let (db, _) = open_database(&config)?;
            let secrets = Secrets::load_or_create(&config.data_dir, &config.secrets)?;
            let storage = open_storage(&config)?;
            let out = out
                .unwrap_or_else(|| std::path::Path::new("bundles").join(format!("{case_id}.zip")));
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(AppError::io("create", dir))?;
            }
            // Written beside its destination and renamed: no half bundle under its name.
            let dir = out
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let mut file =
                tempfile::NamedTempFile::new_in(dir).map_err(AppError::io("create", dir))?;
            let made = crate::bundles::make(
                &config,
                &db,
                &secrets,
                &storage,
                &case_id,
                "cli",
                file.as_file_mut(),
            )?;
            file.persist(&out)
                .map_err(|e| AppError::io("write", &out)(e.error))?;
            println!(
                "evidence bundle of case {} ({} files, suspect {}) written to {}",
                made.manifest.case_id,
                made.manifest.files.len() + 2,
                if made.manifest.suspect.included {
                    "included"
                } else {
                    "not included"
                },
                out.display()
            );
            Ok(())
        }
        Command::VerifyBundle {
            file,
            ca,
            tsa_cert,
            json,
        } => {
            let read = |path: &std::path::Path| {
                std::fs::read_to_string(path).map_err(AppError::io("read", path))
            };
            let ca = ca.as_deref().map(read).transpose()?;
            let anchors = match tsa_cert.as_deref().map(read).transpose()? {
                Some(pem) => {
                    let anchors = report::signing::certificates_der(&pem);
                    if anchors.is_empty() {
                        return Err(AppError::Usage("--tsa-cert holds no certificate".into()));
                    }
                    Some(anchors)
                }
                None => None,
            };
            let checked = crate::bundles::verify(&file, ca.as_deref(), anchors.as_deref())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&checked)
                        .map_err(|e| AppError::Server(e.to_string()))?
                );
            } else {
                print!("{}", crate::bundles::render(&checked));
            }
            let failed = checked.checks.iter().filter(|c| !c.ok).count();
            if failed > 0 {
                return Err(AppError::BundleRejected(failed));
            }
            if !checked.ca_pinned {
                return Err(AppError::BundleUnpinned);
            }
            Ok(())
        }
        Command::Worker { threads } => {
            let (db, _) = open_database(&config)?;
            let secrets = Secrets::load_or_create(&config.data_dir, &config.secrets)?;
            // SIGTERM or SIGINT stops it gracefully (no new job; running ones get the grace
            // period, then are handed back); a second signal ends it at once.
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                signal_hook::flag::register_conditional_shutdown(signal, 1, stop.clone())
                    .and_then(|_| signal_hook::flag::register(signal, stop.clone()))
                    .map_err(|e| AppError::Server(format!("cannot handle signals: {e}")))?;
            }
            let storage = open_storage(&config)?;
            let metrics = process_metrics(&db, &storage);
            // The metrics listener, when configured: a worker has no other HTTP side.
            let listener = match config.metrics.bind.clone() {
                Some(bind) => {
                    let listener = crate::http::bind_metrics(&bind)?;
                    let state = actix_web::web::Data::new(crate::http::AppState::new(
                        db.clone(),
                        config.clone(),
                        secrets.clone(),
                        metrics.clone(),
                        storage.clone(),
                    ));
                    Some(std::thread::spawn(move || {
                        actix_web::rt::System::new().block_on(async move {
                            match crate::http::metrics_server(listener, state) {
                                Ok(server) => server.await.map_err(|e| e.to_string()),
                                Err(e) => Err(e.to_string()),
                            }
                        })
                    }))
                }
                None => None,
            };
            let workers = crate::jobs::spawn_workers(
                &config,
                &db,
                &secrets,
                &storage,
                threads.max(1),
                &metrics,
                stop.clone(),
            );
            println!("leaktrace worker: {} analysis thread(s)", workers.count());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && !workers.finished() {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let grace = std::time::Duration::from_secs(config.server.shutdown_grace_seconds);
            let released = workers.shutdown(&db, grace);
            println!("leaktrace worker stopped ({released} job(s) handed back)");
            drop(listener);
            Ok(())
        }
        Command::Serve { .. } => {
            let (db, _) = open_database(&config)?;
            // Created here on first use, so that a bad or unreadable secret stops start-up.
            let secrets = Secrets::load_or_create(&config.data_dir, &config.secrets)?;
            tracing::info!(jwt = ?secrets.jwt_source, master = ?secrets.master_source, "secrets ready");
            crate::http::serve(&config, db, &secrets)
        }
    }
}

/// The storage the configuration names: the data dir alone, or a bucket behind it.
pub(crate) fn open_storage(config: &Config) -> Result<std::sync::Arc<storage::Storage>, AppError> {
    let settings = storage::Settings {
        url: config.storage.url.clone(),
        endpoint: config.storage.endpoint.clone(),
        region: config.storage.region.clone(),
        cache_bytes: config.storage.cache_mib.saturating_mul(1 << 20),
        credentials: None,
    };
    Ok(std::sync::Arc::new(storage::Storage::open(
        &settings,
        &config.data_dir,
    )?))
}

/// This process's metrics, the storage cache's counters among them.
pub(crate) fn process_metrics(
    db: &shared::db::Db,
    storage: &storage::Storage,
) -> std::sync::Arc<shared::metrics::Metrics> {
    let mut metrics = shared::metrics::Metrics::new(db);
    let c = storage.counters();
    metrics.register_storage(
        c.hits.clone(),
        c.misses.clone(),
        c.fetched_bytes.clone(),
        c.evictions.clone(),
    );
    std::sync::Arc::new(metrics)
}

/// Checks the data dir, connects, and applies pending migrations (returned).
pub(crate) fn open_database(config: &Config) -> Result<(Db, Vec<String>), AppError> {
    datadir::prepare(&config.data_dir)?;
    let target = config.database_target()?;
    let db = Db::open(&target)?;
    let applied = db.migrate()?;
    if !applied.is_empty() {
        tracing::info!(database = %target.describe(), migrations = ?applied, "applied migrations");
    }
    Ok((db, applied))
}
