//! Server assembly: shared state, middleware and routes. Handlers stay thin and call into the
//! domain and db layers; errors leave through [`streaming::ApiError`].

mod admin;
mod evidence;
mod forms;
mod health;
mod pages;

use std::time::Instant;

use actix_web::dev::Service;
use actix_web::{middleware, web, App, HttpServer};
use shared::auth::password;
use shared::auth::tokens::TokenKeys;
use shared::config::Config;
use shared::db::Db;
use shared::secrets::Secrets;
use streaming::StreamingState;

use crate::error::CliError;

/// Largest JSON body any endpoint accepts.
const JSON_LIMIT: usize = 64 * 1024;

/// What every handler can reach. Built once at start-up; no globals.
pub struct AppState {
    pub db: Db,
    pub config: Config,
    pub secrets: Secrets,
    pub started: Instant,
}

/// Registers every route. Unknown paths and methods answer with the JSON error shape.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let resource = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.configure(streaming::routes)
        .service(
            resource("/api/verify-watermark/").route(web::post().to(evidence::verify_watermark)),
        )
        .service(resource("/api/cases/").route(web::get().to(evidence::list_cases)))
        .service(resource("/api/cases/{case_id}/").route(web::get().to(evidence::case_status)))
        .service(
            resource("/api/cases/{case_id}/report.pdf").route(web::get().to(evidence::case_report)),
        )
        .service(resource("/api/reports/ca.pem").route(web::get().to(evidence::report_ca)))
        .service(resource("/api/reports/verify/").route(web::post().to(evidence::verify_report)))
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
        .service(
            web::resource("/healthz")
                .route(web::get().to(health::healthz))
                .default_service(web::to(method_not_allowed)),
        )
        .default_service(web::to(streaming::unknown_path));
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

/// Runs the server until interrupted.
pub fn serve(config: &Config, db: Db, secrets: &Secrets) -> Result<(), CliError> {
    let bind = config.server.bind.clone();
    let dummy_password_hash =
        password::unguessable_hash().map_err(|e| CliError::Failure(e.into()))?;
    let streaming_state = web::Data::new(StreamingState::new(
        db.clone(),
        TokenKeys::new(secrets.jwt_key()),
        dummy_password_hash,
        *secrets.master_key(),
        config.layout(),
        config.monitoring,
    ));
    // Analysis workers beside the server, stopped when it stops.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers = crate::evidence::worker::spawn_workers(
        config,
        &db,
        secrets,
        config.evidence.workers,
        stop.clone(),
    );
    let state = web::Data::new(AppState {
        db,
        config: config.clone(),
        secrets: secrets.clone(),
        started: Instant::now(),
    });
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(streaming_state.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(JSON_LIMIT)
                        .error_handler(streaming::error::json_error),
                )
                .app_data(web::PathConfig::default().error_handler(streaming::error::path_error))
                .app_data(web::QueryConfig::default().error_handler(streaming::error::query_error))
                .wrap(security_headers())
                .wrap_fn(|req, srv| {
                    let method = req.method().clone();
                    let path = req.path().to_string();
                    let started = Instant::now();
                    let fut = srv.call(req);
                    async move {
                        let res = fut.await?;
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
        .bind(&bind)
        .map_err(|e| CliError::Failure(anyhow::anyhow!("cannot listen on {bind}: {e}")))?;
        for addr in server.addrs() {
            tracing::info!(address = %addr, "leaktrace listening");
            println!("leaktrace listening on http://{addr}/");
        }
        server.run().await.map_err(CliError::from)
    })?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}
