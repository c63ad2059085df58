//! The explorer: a small browser page, served at `/`, over the public
//! GraphQL API. It finds personas, lists messages page by page, opens an
//! envelope and re-verifies its signatures in the browser (WebCrypto
//! Ed25519) against the sender's key and the node key.
//!
//! The page is plain HTML, ES modules and CSS from `teleferic/explorer/`,
//! compiled into the binary: no build step, no file read at run time. It
//! holds nothing the API does not serve to anyone, so it needs no state of
//! its own; the one thing filled in here is the GraphQL endpoint, which is
//! `public_url` when the gateway sits behind a proxy.

use crate::http::GatewayState;
use actix_web::http::header;
use actix_web::{web, HttpResponse};

/// The page's files, by the name they are served under in `/explorer/`.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", "text/javascript; charset=utf-8", include_str!("../explorer/app.js")),
    ("graphql.js", "text/javascript; charset=utf-8", include_str!("../explorer/graphql.js")),
    ("msgpack.js", "text/javascript; charset=utf-8", include_str!("../explorer/msgpack.js")),
    ("verify.js", "text/javascript; charset=utf-8", include_str!("../explorer/verify.js")),
    ("style.css", "text/css; charset=utf-8", include_str!("../explorer/style.css")),
];

const INDEX: &str = include_str!("../explorer/index.html");

/// The placeholder in `index.html` that becomes the GraphQL endpoint.
const ENDPOINT_PLACEHOLDER: &str = "{{GRAPHQL_ENDPOINT}}";

/// Mounts `GET /` and `GET /explorer/{file}`.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index)).route("/explorer/{file}", web::get().to(asset));
}

async fn index(state: web::Data<GatewayState>) -> HttpResponse {
    let endpoint = state.settings.public_url.as_deref().unwrap_or("/teleferic");
    HttpResponse::Ok()
        .insert_header(header::ContentType::html())
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(INDEX.replace(ENDPOINT_PLACEHOLDER, &html_attribute(endpoint)))
}

async fn asset(file: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|(name, _, _)| *name == file.as_str()) {
        Some((_, content_type, body)) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, *content_type))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(*body),
        None => HttpResponse::NotFound().finish(),
    }
}

/// Escapes text for a double-quoted HTML attribute.
fn html_attribute(text: &str) -> String {
    text.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_every_module_it_loads() {
        // Every `./name.js` import in the modules, and every file the page
        // links, must be one of the served assets.
        let served: Vec<&str> = ASSETS.iter().map(|(name, _, _)| *name).collect();
        let sources = ASSETS.iter().map(|(_, _, body)| *body).chain([INDEX]);
        for source in sources {
            for piece in source.split(['"', '\'']) {
                let name = piece.strip_prefix("./").or_else(|| piece.strip_prefix("explorer/"));
                if let Some(name) = name.filter(|name| name.ends_with(".js") || name.ends_with(".css")) {
                    assert!(served.contains(&name), "{name} is referenced but not served");
                }
            }
        }
        assert!(INDEX.contains(ENDPOINT_PLACEHOLDER), "index.html carries the endpoint placeholder");
    }

    #[test]
    fn an_endpoint_cannot_break_out_of_its_attribute() {
        assert_eq!(html_attribute(r#"http://x/"><script>"#), "http://x/&quot;&gt;&lt;script&gt;");
    }
}
