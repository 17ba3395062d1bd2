//! Server assembly: shared state, middleware and routes. Handlers stay thin: an extractor
//! says who is calling (`api::auth`), the body calls into the domain and db layers, and
//! errors leave through [`api::ApiError`] ([`app_error`] maps the application's).

mod admin;
mod cases;
mod devices;
mod forms;
mod health;
mod history;
mod metrics;
mod pages;
mod reports;

use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::Service;
use actix_web::http::StatusCode;
use actix_web::{middleware, web, App, HttpResponse, HttpServer};
use api::auth::Auth;
use api::ApiError;
use shared::auth::password;
use shared::auth::tokens::TokenKeys;
use shared::config::Config;
use shared::db::Db;
use shared::metrics::Metrics;
use shared::secrets::Secrets;
use streaming::StreamingState;

use crate::error::AppError;
pub use metrics::Listener;

/// Largest JSON body any endpoint accepts.
const JSON_LIMIT: usize = 64 * 1024;

/// What every handler can reach. Built once at start-up; no globals.
pub struct AppState {
    pub db: Db,
    pub config: Config,
    pub secrets: Secrets,
    pub started: Instant,
    /// This process's counters, shown by `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Where titles live (the data dir, and the bucket behind it when there is one).
    pub storage: Arc<storage::Storage>,
    /// Evidence bundles made at once (each may copy a suspect of gigabytes into the work
    /// folder until it is sent): one, the others wait their turn.
    pub bundle_builds: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    pub fn new(
        db: Db,
        config: Config,
        secrets: Secrets,
        metrics: Arc<Metrics>,
        storage: Arc<storage::Storage>,
    ) -> AppState {
        AppState {
            db,
            config,
            secrets,
            started: Instant::now(),
            metrics,
            storage,
            bundle_builds: Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }
}

/// Registers every route. Unknown paths and methods answer with the JSON error shape.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let resource = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.configure(streaming::routes)
        .service(resource("/api/verify-watermark/").route(web::post().to(cases::verify_watermark)))
        .service(resource("/api/cases/").route(web::get().to(cases::list_cases)))
        .service(resource("/api/cases/{case_id}/").route(web::get().to(cases::case_status)))
        .service(
            resource("/api/cases/{case_id}/report.pdf").route(web::get().to(reports::case_report)),
        )
        .service(
            resource("/api/cases/{case_id}/bundle.zip").route(web::get().to(reports::case_bundle)),
        )
        .service(
            resource("/api/titles/{video_id}/leaks/").route(web::get().to(history::title_leaks)),
        )
        .service(resource("/api/reports/ca.pem").route(web::get().to(reports::report_ca)))
        .service(resource("/api/reports/verify/").route(web::post().to(reports::verify_report)))
        .service(
            resource("/api/admin/titles/")
                .route(web::get().to(admin::list_titles))
                .route(web::post().to(admin::package_title)),
        )
        .service(resource("/api/admin/jobs/").route(web::get().to(admin::list_jobs)))
        .service(resource("/api/admin/jobs/{job_id}/").route(web::get().to(admin::job_status)))
        .service(
            resource("/api/admin/users/")
                .route(web::get().to(admin::list_users))
                .route(web::post().to(admin::add_user)),
        )
        .service(
            resource("/api/admin/users/{name}/devices/")
                .route(web::get().to(devices::list_for_user)),
        )
        .service(
            resource("/api/admin/devices/{device_id}/revoke/")
                .route(web::post().to(devices::revoke)),
        )
        .service(
            resource("/api/admin/users/{name}/{action}/")
                .route(web::post().to(admin::set_user_disabled)),
        )
        .service(
            resource("/api/admin/api-keys/")
                .route(web::get().to(admin::list_keys))
                .route(web::post().to(admin::create_key)),
        )
        .service(
            resource("/api/admin/api-keys/{name}/revoke/").route(web::post().to(admin::revoke_key)),
        )
        .service(resource("/api/admin/audit/").route(web::get().to(admin::audit_trail)))
        .service(
            resource("/api/admin/security-events/").route(web::get().to(admin::security_events)),
        )
        .service(
            resource("/api/admin/sessions/{session_id}/revoke/")
                .route(web::post().to(admin::revoke_session)),
        )
        .configure(pages::routes)
        .configure(operations)
        .default_service(web::to(streaming::unknown_path));
}

/// What operators and orchestrators call: liveness, readiness, metrics. Served by the main
/// listener and by the metrics listener (`metrics.bind`).
fn operations(cfg: &mut web::ServiceConfig) {
    let resource = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(resource("/healthz").route(web::get().to(health::healthz)))
        .service(resource("/readyz").route(web::get().to(health::readyz)))
        .service(resource("/metrics").route(web::get().to(metrics::metrics)));
}

/// The routes of the metrics listener: [`operations`] and a JSON 404 for anything else.
pub fn metrics_routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(operations).default_service(web::to(|| async {
        Err::<HttpResponse, _>(ApiError::not_found())
    }));
}

/// Binds the metrics listener's address (at start-up, so that a taken address stops it).
pub fn bind_metrics(bind: &str) -> Result<std::net::TcpListener, AppError> {
    std::net::TcpListener::bind(bind)
        .map_err(|e| AppError::Server(format!("cannot listen on {bind} (metrics): {e}")))
}

/// The metrics listener on `listener`, serving `state`'s metrics and health; run it inside
/// an actix system.
pub fn metrics_server(
    listener: std::net::TcpListener,
    state: web::Data<AppState>,
) -> Result<actix_web::dev::Server, AppError> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::Data::new(Listener::Metrics))
            .wrap(security_headers())
            .configure(metrics_routes)
    })
    .workers(1)
    .shutdown_timeout(5)
    .listen(listener)
    .map_err(|e| AppError::Server(format!("cannot serve metrics: {e}")))?;
    for addr in server.addrs() {
        tracing::info!(address = %addr, "metrics listening");
    }
    Ok(server.run())
}

use streaming::method_not_allowed;

/// Security headers on every response.
fn security_headers() -> middleware::DefaultHeaders {
    middleware::DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "no-referrer"))
        .add((
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; \
             object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ))
}

/// The one mapping of application errors to the API's answers: input errors are the caller's
/// (404 for what does not exist, 409 for a conflict, 400 otherwise, with the error's code),
/// everything else a 500 whose details stay in the log.
pub fn app_error(e: AppError) -> ApiError {
    match e {
        AppError::Db(db) => db.into(),
        AppError::Upload(u) => forms::upload_error(u),
        AppError::Signing(report::signing::SigningError::Timestamp(why)) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timestamp_unavailable",
            format!("no report without its timestamp, and none was obtained: {why}"),
        ),
        e if e.is_input() => {
            let status = match &e {
                AppError::UnknownTitle(_) | AppError::SourceGone(_) => StatusCode::NOT_FOUND,
                AppError::TitleExists(_)
                | AppError::CaseNotFinished { .. }
                | AppError::SuspectChanged { .. } => StatusCode::CONFLICT,
                _ => StatusCode::BAD_REQUEST,
            };
            ApiError::new(status, e.code(), e.public_message())
        }
        e => ApiError::internal(e),
    }
}

/// Runs blocking work (database, files, FFmpeg) off the executor; its application errors
/// leave as API answers.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> Result<T, ApiError> {
    web::block(work)
        .await
        .map_err(ApiError::internal)?
        .map_err(app_error)
}

/// Runs the server until interrupted.
pub fn serve(config: &Config, db: Db, secrets: &Secrets) -> Result<(), AppError> {
    let bind = config.server.bind.clone();
    let dummy_password_hash = password::unguessable_hash()?;
    let tokens = TokenKeys::new(secrets.jwt_key());
    let storage = crate::commands::open_storage(config)?;
    let metrics = crate::commands::process_metrics(&db, &storage);
    // The titles folder exists from the start: readiness reports its absence as a failure.
    let videos = config.layout().videos();
    std::fs::create_dir_all(&videos).map_err(AppError::io("create", &videos))?;
    let auth = web::Data::new(Auth {
        db: db.clone(),
        tokens: tokens.clone(),
    });
    let streaming_state = web::Data::new(
        StreamingState::new(
            db.clone(),
            tokens,
            dummy_password_hash,
            *secrets.master_key(),
            config.layout(),
            config.monitoring,
        )
        .with_metrics(metrics.clone())
        .with_storage(storage.clone())
        .with_segment_cache_mib(config.server.segment_cache_mib),
    );
    // Analysis workers beside the server, stopped when it stops.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers = crate::jobs::spawn_workers(
        config,
        &db,
        secrets,
        &storage,
        config.jobs.workers,
        &metrics,
        stop.clone(),
    );
    let housekeeping = crate::housekeeping::spawn(config, &db, stop.clone());
    let grace = std::time::Duration::from_secs(config.server.shutdown_grace_seconds);
    let state = web::Data::new(AppState::new(
        db.clone(),
        config.clone(),
        secrets.clone(),
        metrics.clone(),
        storage,
    ));
    let metrics_listener = config
        .metrics
        .bind
        .as_deref()
        .map(bind_metrics)
        .transpose()?;
    let served = actix_web::rt::System::new().block_on(async move {
        let metrics_listener = match metrics_listener {
            Some(listener) => Some(metrics_server(listener, state.clone())?),
            None => None,
        };
        let server = HttpServer::new(move || {
            let metrics = metrics.clone();
            App::new()
                .app_data(state.clone())
                .app_data(web::Data::new(Listener::Main))
                .app_data(auth.clone())
                .app_data(streaming_state.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(JSON_LIMIT)
                        .error_handler(api::error::json_error),
                )
                .app_data(web::PathConfig::default().error_handler(api::error::path_error))
                .app_data(web::QueryConfig::default().error_handler(api::error::query_error))
                .wrap(security_headers())
                .wrap_fn(move |req, srv| {
                    let method = req.method().clone();
                    let path = req.path().to_string();
                    let started = Instant::now();
                    let fut = srv.call(req);
                    let metrics = metrics.clone();
                    async move {
                        let res = fut.await?;
                        metrics.http_request(
                            res.request().match_pattern().as_deref(),
                            method.as_str(),
                            res.status().as_u16(),
                            started.elapsed().as_secs_f64(),
                        );
                        tracing::info!(
                            %method,
                            %path,
                            status = res.status().as_u16(),
                            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                            "request"
                        );
                        Ok(res)
                    }
                })
                .configure(routes)
        })
        // On SIGTERM: stop accepting, let requests under way (segments, uploads) finish.
        .shutdown_timeout(grace.as_secs())
        .bind(&bind)
        .map_err(|e| AppError::Server(format!("cannot listen on {bind}: {e}")))?;
        for addr in server.addrs() {
            tracing::info!(address = %addr, "leaktrace listening");
            println!("leaktrace listening on http://{addr}/");
        }
        let main = async {
            server
                .run()
                .await
                .map_err(|e| AppError::Server(format!("the server stopped: {e}")))
        };
        match metrics_listener {
            None => main.await,
            Some(listener) => {
                let listener = async {
                    listener
                        .await
                        .map_err(|e| AppError::Server(format!("the metrics listener stopped: {e}")))
                };
                futures_util::future::try_join(main, listener)
                    .await
                    .map(|_| ())
            }
        }
    });
    // The workers stop whatever ended the server (a failed bind included), running jobs
    // given the grace period and then handed back: a process that exits while they still
    // talk to the database can abort in the client library's teardown.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let released = workers.shutdown(&db, grace);
    if released > 0 {
        tracing::warn!(jobs = released, "jobs handed back to the queue at shutdown");
    }
    if let Some(h) = housekeeping {
        let _ = h.join();
    }
    tracing::info!("leaktrace stopped");
    served
}
