//! The reader's internal API (PROTOCOL.md section 10): JSON-RPC 2.0 on
//! `POST /` with the methods of the earlier deployment,
//! `message(hash | persona_sender | reader | created_at | container_hash, limit, after)`,
//! `persona(address | nickname | pubkey)` and `object(hash)`; each result is
//! `{"response": …, "status": 200 | 404}`. A refusal is a JSON-RPC error
//! whose `data.code` is the section 7 code. Also `GET /healthz`, `/readyz`.

use actix_web::{web, App, HttpResponse, HttpServer};
use pm_models::api::{MessageQuery, PageRequest, PersonaQuery, ReaderApi};
use pm_models::remote::ReaderResult;
use pm_models::{Rejection, RejectionCode};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The largest JSON-RPC request the reader reads (queries are small).
const MAX_REQUEST_BYTES: usize = 64 * 1024;

pub fn serve(reader: Arc<dyn ReaderApi>, listener: std::net::TcpListener) -> std::io::Result<actix_web::dev::Server> {
    let state = web::Data::new(reader);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(MAX_REQUEST_BYTES))
            .route("/", web::post().to(rpc))
            .route("/healthz", web::get().to(|| async { HttpResponse::Ok().json(json!({ "status": "ok" })) }))
            .route("/readyz", web::get().to(readyz))
    })
    .disable_signals()
    .listen(listener)?
    .run())
}

fn rpc_error(id: &Value, code: i64, message: &str, data: Value) -> HttpResponse {
    HttpResponse::Ok()
        .json(json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message, "data": data } }))
}

fn rejection_error(id: &Value, rejection: &Rejection) -> HttpResponse {
    let code = match rejection.code {
        RejectionCode::BadQuery => -32602,
        _ => -32000,
    };
    rpc_error(id, code, &rejection.error, json!({ "code": rejection.code.as_str() }))
}

async fn rpc(reader: web::Data<Arc<dyn ReaderApi>>, body: web::Bytes) -> HttpResponse {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return rpc_error(&Value::Null, -32700, "parse error", Value::Null);
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let (Some(method), params) = (request["method"].as_str(), request["params"].as_object()) else {
        return rpc_error(&id, -32600, "invalid request: method and params are required", Value::Null);
    };
    let params = params.cloned().unwrap_or_default();
    let result = match method {
        "message" => message(reader.get_ref().as_ref(), &params).await,
        "persona" => persona(reader.get_ref().as_ref(), &params).await,
        "object" => object(reader.get_ref().as_ref(), &params).await,
        other => return rpc_error(&id, -32601, &format!("method {other:?} not found"), Value::Null),
    };
    match result {
        Ok(result) => HttpResponse::Ok().json(json!({ "jsonrpc": "2.0", "id": id, "result": result })),
        Err(rejection) => rejection_error(&id, &rejection),
    }
}

fn string_param(params: &Map<String, Value>, name: &str) -> Result<Option<String>, Rejection> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Rejection::bad_query(format!("{name} must be a string"))),
    }
}

/// The one selector among `names` that is given, or `BAD_QUERY`.
fn selector(params: &Map<String, Value>, names: &[&'static str]) -> Result<(&'static str, String), Rejection> {
    let mut given = Vec::new();
    for name in names {
        if let Some(value) = string_param(params, name)? {
            given.push((*name, value));
        }
    }
    match given.len() {
        1 => Ok(given.remove(0)),
        _ => Err(Rejection::bad_query(format!("give exactly one of {}", names.join(", ")))),
    }
}

fn single<T: serde::Serialize>(value: Option<T>) -> ReaderResult {
    match value {
        Some(v) => ReaderResult { response: serde_json::to_value(v).expect("records serialize"), status: 200 },
        None => ReaderResult { response: Value::Null, status: 404 },
    }
}

async fn message(reader: &dyn ReaderApi, params: &Map<String, Value>) -> Result<ReaderResult, Rejection> {
    let (name, value) = selector(params, &["hash", "persona_sender", "reader", "created_at", "container_hash"])?;
    let query = match name {
        "hash" => return Ok(single(reader.message(&value).await?)),
        "persona_sender" => MessageQuery::Sender(value),
        "reader" => MessageQuery::Reader(value),
        "created_at" => MessageQuery::Date(value),
        _ => MessageQuery::ContainerHash(value),
    };
    let limit = match params.get("limit") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| Rejection::bad_query("limit must be an integer"))?),
    };
    let page = PageRequest { limit, after: string_param(params, "after")? };
    let records = reader.messages(query, page).await?;
    Ok(ReaderResult { response: serde_json::to_value(records).expect("records serialize"), status: 200 })
}

async fn persona(reader: &dyn ReaderApi, params: &Map<String, Value>) -> Result<ReaderResult, Rejection> {
    let query = match selector(params, &["address", "nickname", "pubkey"])? {
        ("address", v) => PersonaQuery::Address(v),
        ("nickname", v) => PersonaQuery::Nickname(v),
        (_, v) => PersonaQuery::PublicKey(v),
    };
    Ok(single(reader.persona(query).await?))
}

async fn object(reader: &dyn ReaderApi, params: &Map<String, Value>) -> Result<ReaderResult, Rejection> {
    let hash = string_param(params, "hash")?.ok_or_else(|| Rejection::bad_query("hash is required"))?;
    Ok(single(reader.object(&hash).await?))
}

async fn readyz(reader: web::Data<Arc<dyn ReaderApi>>) -> HttpResponse {
    match reader.ready().await {
        Ok(()) => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Err(rejection) => {
            HttpResponse::ServiceUnavailable().json(json!({ "status": "unavailable", "error": rejection.error }))
        }
    }
}
