//! The browser pages and their assets, compiled from `web/` into the binary (with the OpenAPI
//! document and its reference page): nothing is read from disk and no media path is
//! reachable. Every page is static; what it shows comes from
//! the JSON API with the caller's token.

use actix_web::{web, HttpResponse};
use api::ApiError;

/// One file the browser may load.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! web_file {
    ($path:literal) => {
        include_bytes!(concat!("../../web/", $path))
    };
}

/// The pages, by path.
const PAGES: &[(&str, &[u8])] = &[
    ("/", web_file!("index.html")),
    ("/watch/", web_file!("pages/watch.html")),
    ("/analyst/", web_file!("pages/analyst.html")),
    ("/legal/", web_file!("pages/legal.html")),
    ("/admin/", web_file!("pages/admin.html")),
    ("/api/docs/", web_file!("pages/api-docs.html")),
];

const JS: &str = "text/javascript; charset=utf-8";

/// A file of `web/assets/`, served under its own name.
macro_rules! own_asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("../../web/assets/", $name)),
        }
    };
}

/// The assets, served at `/assets/{name}`.
const ASSETS: &[Asset] = &[
    own_asset!("app.css", "text/css; charset=utf-8"),
    own_asset!("common.js", JS),
    own_asset!("protocol.js", JS),
    own_asset!("landing.js", JS),
    own_asset!("viewer.js", JS),
    own_asset!("cases.js", JS),
    own_asset!("analyst.js", JS),
    own_asset!("history.js", JS),
    own_asset!("legal.js", JS),
    own_asset!("admin.js", JS),
    own_asset!("api-docs.js", JS),
    Asset {
        name: "shaka-player.js",
        content_type: JS,
        body: web_file!("vendor/shaka-player/shaka-player.compiled.js"),
    },
    Asset {
        name: "swagger-ui.js",
        content_type: JS,
        body: web_file!("vendor/swagger-ui/swagger-ui-bundle.js"),
    },
    Asset {
        name: "swagger-ui.css",
        content_type: "text/css; charset=utf-8",
        body: web_file!("vendor/swagger-ui/swagger-ui.css"),
    },
    Asset {
        name: "swagger-ui.LICENSE.txt",
        content_type: "text/plain; charset=utf-8",
        body: web_file!("vendor/swagger-ui/LICENSE"),
    },
    Asset {
        name: "shaka-player.LICENSE.txt",
        content_type: "text/plain; charset=utf-8",
        body: web_file!("vendor/shaka-player/LICENSE"),
    },
];

/// Registers every page and the asset route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    for &(path, body) in PAGES {
        cfg.service(
            web::resource(path)
                .route(web::get().to(move || page(body)))
                .default_service(web::to(streaming::method_not_allowed)),
        );
    }
    cfg.service(
        web::resource("/api/openapi.json")
            .route(web::get().to(openapi))
            .default_service(web::to(streaming::method_not_allowed)),
    );
    cfg.service(
        web::resource("/assets/{name}")
            .route(web::get().to(asset))
            .default_service(web::to(streaming::method_not_allowed)),
    );
}

async fn page(body: &'static [u8]) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-cache"))
        .body(body)
}

/// The OpenAPI 3.1 document of the HTTP API (docs/openapi.json, checked against the server
/// by the integration tests).
const OPENAPI: &[u8] = include_bytes!("../../docs/openapi.json");

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "no-cache"))
        .body(OPENAPI)
}

async fn asset(name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let found = ASSETS
        .iter()
        .find(|a| a.name == name.as_str())
        .ok_or_else(ApiError::not_found)?;
    Ok(HttpResponse::Ok()
        .content_type(found.content_type)
        .insert_header(("Cache-Control", "no-cache"))
        .body(found.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_a_page_loads_is_served() {
        for (path, body) in PAGES {
            let html = std::str::from_utf8(body).expect("pages are UTF-8");
            for part in html.split("/assets/").skip(1) {
                let name = part.split('"').next().unwrap_or_default();
                assert!(
                    ASSETS.iter().any(|a| a.name == name),
                    "{path} loads /assets/{name}, which is not served"
                );
            }
        }
    }

    #[test]
    fn every_module_import_is_served() {
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = String::from_utf8_lossy(a.body);
            for part in text.split("from './").skip(1) {
                let name = part.split('\'').next().unwrap_or_default();
                assert!(
                    ASSETS.iter().any(|b| b.name == name),
                    "{} imports ./{name}, which is not served",
                    a.name
                );
            }
        }
    }
}
