//! The reader's internal API (PROTOCOL.md section 10): JSON-RPC 2.0 on
//! `POST /`, its calls read and answered by [`pm_http::reader_api::ReaderCall`],
//! bodies read within the same limits as every role's. Also `GET /healthz`,
//! `/readyz` and `/metrics`.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use pm_http::body::{read_body, BodyLimits};
use pm_http::reader_api::{
    rejection_error, rpc_error, rpc_result, CallError, ReaderCall, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR,
};
use pm_http::responses::{probes, readiness};
use pm_models::api::ReaderApi;
use pm_models::RejectionCode;
use serde_json::Value;
use std::sync::Arc;

struct State {
    reader: Arc<dyn ReaderApi>,
    limits: BodyLimits,
}

pub fn serve(
    reader: Arc<dyn ReaderApi>,
    limits: BodyLimits,
    listener: std::net::TcpListener,
) -> std::io::Result<actix_web::dev::Server> {
    let state = web::Data::new(State { reader, limits });
    Ok(HttpServer::new(move || {
        App::new().app_data(state.clone()).route("/", web::post().to(rpc)).configure(probes(readyz))
    })
    .disable_signals()
    .listen(listener)?
    .run())
}

async fn rpc(state: web::Data<State>, request: HttpRequest, payload: web::Payload) -> HttpResponse {
    let reply = |body: Value| HttpResponse::Ok().json(body);
    let body = match read_body(&request, payload, &state.limits).await {
        Ok(body) => body,
        Err(error) => {
            let code = match error {
                pm_http::BodyError::TooLarge(_) => RejectionCode::PayloadTooLarge,
                _ => RejectionCode::MalformedEnvelope,
            };
            let refusal = pm_models::Rejection::new(code, error.to_string());
            return reply(rejection_error(&Value::Null, &refusal));
        }
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return reply(rpc_error(&Value::Null, PARSE_ERROR, "parse error", Value::Null));
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let (Some(method), Some(params)) = (request["method"].as_str(), request["params"].as_object()) else {
        return reply(rpc_error(&id, INVALID_REQUEST, "invalid request: method and params are required", Value::Null));
    };
    let call = match ReaderCall::from_rpc(method, params) {
        Ok(call) => call,
        Err(CallError::MethodNotFound(method)) => {
            return reply(rpc_error(&id, METHOD_NOT_FOUND, &format!("method {method:?} not found"), Value::Null))
        }
        Err(CallError::Refused(rejection)) => return reply(rejection_error(&id, &rejection)),
    };
    match call.answer(state.reader.as_ref()).await {
        Ok(result) => reply(rpc_result(&id, &result)),
        Err(rejection) => reply(rejection_error(&id, &rejection)),
    }
}

async fn readyz(state: web::Data<State>) -> HttpResponse {
    readiness(state.reader.ready().await.map_err(|rejection| rejection.error))
}
