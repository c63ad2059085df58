//! `GET /metrics`, the same on every role: the Prometheus text exposition
//! of whatever the process recorded through the `metrics` crate.
//!
//! The binary installs the recorder once and hands its renderer here
//! ([`set_renderer`]); the libraries only record. A process without a
//! renderer (a library's own tests) answers 503.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use std::sync::OnceLock;

/// The path every role serves its metrics at.
pub const METRICS_PATH: &str = "/metrics";
/// The content type of the Prometheus text format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

type Render = Box<dyn Fn() -> String + Send + Sync>;

static RENDERER: OnceLock<Render> = OnceLock::new();

/// Sets how `/metrics` renders this process's metrics; the first call wins.
/// Returns false when a renderer was already set.
pub fn set_renderer(render: impl Fn() -> String + Send + Sync + 'static) -> bool {
    RENDERER.set(Box::new(render)).is_ok()
}

/// Mounts `GET /metrics` on an app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(METRICS_PATH, web::get().to(metrics));
}

/// `GET /metrics`: the Prometheus text format, or 503 when this process
/// records no metrics.
pub async fn metrics() -> HttpResponse {
    match RENDERER.get() {
        Some(render) => HttpResponse::Ok().insert_header((header::CONTENT_TYPE, CONTENT_TYPE)).body(render()),
        None => HttpResponse::ServiceUnavailable()
            .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
            .body("this process records no metrics\n"),
    }
}
