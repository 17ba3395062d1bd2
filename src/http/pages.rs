//! The browser pages, built from `web/` into the binary (nothing is served from disk).

use actix_web::HttpResponse;

const LANDING: &str = include_str!("../../web/index.html");

pub async fn landing() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(LANDING)
}
