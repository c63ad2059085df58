//! Refusals as HTTP answers, in one place: a section 7 code becomes its
//! HTTP status and the body `{"error": sentence, "code": CODE}`. Also the
//! answers of `GET /healthz` and `GET /readyz`, the same for every role.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
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
