//! Refusals as HTTP answers, in one place: a section 7 code becomes its
//! HTTP status and the body `{"error": sentence, "code": CODE}`. Also the
//! answers of `GET /healthz` and `GET /readyz`, the same for every role,
//! and [`probes`], which mounts them with `GET /metrics` on a role's app.

use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, Handler, HttpResponse, Responder};
use pm_models::Rejection;
use serde_json::json;

/// The one mapping of a refusal to an HTTP answer.
pub fn rejection_response(rejection: &Rejection) -> HttpResponse {
    let status =
        StatusCode::from_u16(rejection.code.http_status()).expect("section 7 statuses are valid HTTP statuses");
    HttpResponse::build(status).json(rejection)
}

/// `GET /healthz`: the process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 when the backends the role needs answer, else 503
/// with the reason.
pub fn readiness(ready: Result<(), String>) -> HttpResponse {
    match ready {
        Ok(()) => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Err(error) => HttpResponse::ServiceUnavailable().json(json!({ "status": "unavailable", "error": error })),
    }
}

/// Mounts what every role serves besides its API: `GET /healthz`,
/// `GET /readyz` answered by the role's `readyz`, and `GET /metrics`.
pub fn probes<F, Args>(readyz: F) -> impl FnOnce(&mut web::ServiceConfig)
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    move |cfg| {
        cfg.route("/healthz", web::get().to(healthz)).route("/readyz", web::get().to(readyz));
        crate::metrics::configure(cfg);
    }
}
