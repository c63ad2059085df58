//! The authorizer's internal HTTP API (PROTOCOL.md section 10):
//! `POST /send_message {"envelope": …}` → `201` with the accepted envelope
//! or the section 7 refusal `{"error": sentence, "code": CODE}` with its
//! status; the lookups `GET /persona`, `/messages`, `/objects` (answered by
//! the reader), `GET /teleferic`, `/healthz` and `/readyz`.

use crate::Authorizer;
use actix_web::{web, App, HttpResponse, HttpServer};
use futures::StreamExt;
use pm_models::api::{AuthorizerApi, MessageQuery, PageRequest, PersonaQuery, ReaderApi};
use pm_models::envelope::Envelope;
use pm_models::remote::{AcceptedWire, TelefericWire};
use pm_models::{Rejection, RejectionCode};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

struct State {
    authorizer: Arc<Authorizer>,
    reader: Arc<dyn ReaderApi>,
    max_request_bytes: usize,
}

/// The one mapping of a refusal to an HTTP answer.
pub fn rejection_response(rejection: &Rejection) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(rejection.code.http_status())
        .expect("section 7 statuses are valid HTTP statuses");
    HttpResponse::build(status).json(rejection)
}

/// Reads a request body, refusing it past `limit` bytes without reading on.
pub async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::BytesMut, Rejection> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| Rejection::malformed(format!("request body could not be read: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(Rejection::new(RejectionCode::PayloadTooLarge, format!("request body exceeds {limit} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Serves the API on an already bound listener (tests bind port 0).
pub fn serve(
    authorizer: Arc<Authorizer>,
    reader: Arc<dyn ReaderApi>,
    max_request_bytes: usize,
    listener: std::net::TcpListener,
) -> std::io::Result<actix_web::dev::Server> {
    let state = web::Data::new(State { authorizer, reader, max_request_bytes });
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/send_message", web::post().to(send_message))
            .route("/persona", web::get().to(persona))
            .route("/messages", web::get().to(messages))
            .route("/objects", web::get().to(objects))
            .route("/teleferic", web::get().to(teleferic))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
    })
    .disable_signals()
    .listen(listener)?
    .run())
}

#[derive(Deserialize)]
struct SendMessage {
    envelope: Value,
}

async fn send_message(state: web::Data<State>, payload: web::Payload) -> HttpResponse {
    let result = async {
        let body = read_body(payload, state.max_request_bytes).await?;
        let request: SendMessage = serde_json::from_slice(&body)
            .map_err(|e| Rejection::malformed(format!("request is not {{\"envelope\": …}}: {e}")))?;
        let envelope = Envelope::from_json_value(request.envelope).map_err(Rejection::malformed)?;
        state.authorizer.send_message(envelope).await
    }
    .await;
    match result {
        Ok(accepted) => HttpResponse::Created().json(AcceptedWire::from_accepted(&accepted)),
        Err(rejection) => rejection_response(&rejection),
    }
}

type Query = web::Query<HashMap<String, String>>;

fn found<T: serde::Serialize>(result: Result<Option<T>, Rejection>, what: &str) -> HttpResponse {
    match result {
        Ok(Some(value)) => HttpResponse::Ok().json(value),
        Ok(None) => HttpResponse::NotFound().json(json!({ "error": format!("no {what} matches") })),
        Err(rejection) => rejection_response(&rejection),
    }
}

/// The one query argument among `names` that is present, or `BAD_QUERY`.
fn exactly_one<'a>(query: &'a Query, names: &[&'a str]) -> Result<(&'a str, &'a str), Rejection> {
    let given: Vec<(&str, &str)> = names.iter().filter_map(|n| query.get(*n).map(|v| (*n, v.as_str()))).collect();
    match given.as_slice() {
        [one] => Ok(*one),
        _ => Err(Rejection::bad_query(format!("give exactly one of {}", names.join(", ")))),
    }
}

async fn persona(state: web::Data<State>, query: Query) -> HttpResponse {
    let result = async {
        let query = match exactly_one(&query, &["address", "pubkey", "nickname"])? {
            ("address", v) => PersonaQuery::Address(v.to_owned()),
            ("pubkey", v) => PersonaQuery::PublicKey(v.to_owned()),
            (_, v) => PersonaQuery::Nickname(v.to_owned()),
        };
        state.reader.persona(query).await
    }
    .await;
    found(result, "persona")
}

async fn messages(state: web::Data<State>, query: Query) -> HttpResponse {
    let limit = match query.get("limit").map(|l| l.parse::<i64>()) {
        None => None,
        Some(Ok(limit)) => Some(limit),
        Some(Err(_)) => return rejection_response(&Rejection::bad_query("limit is not an integer")),
    };
    let page = PageRequest { limit, after: query.get("after").cloned() };
    let selected = match exactly_one(&query, &["message_hash", "date", "sender", "reader"]) {
        Ok(selected) => selected,
        Err(rejection) => return rejection_response(&rejection),
    };
    let listing = match selected {
        ("message_hash", hash) => return found(state.reader.message(hash).await, "message"),
        ("date", v) => MessageQuery::Date(v.to_owned()),
        ("sender", v) => MessageQuery::Sender(v.to_owned()),
        (_, v) => MessageQuery::Reader(v.to_owned()),
    };
    match state.reader.messages(listing, page).await {
        Ok(records) => HttpResponse::Ok().json(records),
        Err(rejection) => rejection_response(&rejection),
    }
}

async fn objects(state: web::Data<State>, query: Query) -> HttpResponse {
    match query.get("object_hash") {
        Some(hash) => found(state.reader.object(hash).await, "object"),
        None => rejection_response(&Rejection::bad_query("object_hash is required")),
    }
}

async fn teleferic(state: web::Data<State>) -> HttpResponse {
    let result = async {
        Ok::<_, Rejection>(TelefericWire {
            address: state.authorizer.node_address().await?,
            signed_timestamp: state.authorizer.signed_timestamp().await?,
        })
    }
    .await;
    match result {
        Ok(wire) => HttpResponse::Ok().json(wire),
        Err(rejection) => rejection_response(&rejection),
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

async fn readyz(state: web::Data<State>) -> HttpResponse {
    match state.authorizer.ready().await {
        Ok(()) => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Err(rejection) => {
            HttpResponse::ServiceUnavailable().json(json!({ "status": "unavailable", "error": rejection.error }))
        }
    }
}
