//! The authorizer's internal HTTP API (PROTOCOL.md section 10), in the wire
//! shapes of [`pm_http::authorizer_api`]: `POST /send_message {"envelope": …}`
//! → `201` with the accepted envelope or the section 7 refusal with its
//! status; the lookups `GET /persona`, `/messages`, `/objects` (answered by
//! the reader); `GET /teleferic`, `/healthz`, `/readyz` and `/metrics`.

use crate::Authorizer;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use pm_http::authorizer_api::{AcceptedWire, SendMessageRequest, TelefericWire, SEND_MESSAGE_PATH, TELEFERIC_PATH};
use pm_http::body::{read_body, BodyError, BodyLimits};
use pm_http::responses::{probes, readiness, rejection_response};
use pm_models::api::{
    parse_address, parse_day, parse_hash, parse_message_hash, parse_public_key, AuthorizerApi, MessageQuery,
    PageRequest, PersonaQuery, ReaderApi,
};
use pm_models::envelope::Envelope;
use pm_models::{Rejection, RejectionCode};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

struct State {
    authorizer: Arc<Authorizer>,
    reader: Arc<dyn ReaderApi>,
    limits: BodyLimits,
}

/// Serves the API on an already bound listener (tests bind port 0).
pub fn serve(
    authorizer: Arc<Authorizer>,
    reader: Arc<dyn ReaderApi>,
    limits: BodyLimits,
    listener: std::net::TcpListener,
) -> std::io::Result<actix_web::dev::Server> {
    let state = web::Data::new(State { authorizer, reader, limits });
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route(SEND_MESSAGE_PATH, web::post().to(send_message))
            .route("/persona", web::get().to(persona))
            .route("/messages", web::get().to(messages))
            .route("/objects", web::get().to(objects))
            .route(TELEFERIC_PATH, web::get().to(teleferic))
            .configure(probes(readyz))
    })
    .disable_signals()
    .listen(listener)?
    .run())
}

/// A body the limits refused, as the refusal of section 5.
pub fn body_rejection(error: BodyError) -> Rejection {
    match error {
        BodyError::TooLarge(_) => Rejection::new(RejectionCode::PayloadTooLarge, error.to_string()),
        BodyError::TimedOut(_) | BodyError::Unreadable(_) => Rejection::malformed(error.to_string()),
    }
}

async fn send_message(state: web::Data<State>, request: HttpRequest, payload: web::Payload) -> HttpResponse {
    let result = async {
        let envelope = async {
            let body = read_body(&request, payload, &state.limits).await.map_err(body_rejection)?;
            let request: SendMessageRequest = serde_json::from_slice(&body)
                .map_err(|e| Rejection::malformed(format!("request is not {{\"envelope\": …}}: {e}")))?;
            Envelope::from_json_value(request.envelope).map_err(Rejection::malformed)
        }
        .await
        // `authorize` counts its own refusals; these never reach it.
        .inspect_err(|rejection| crate::metrics::refused(rejection.code))?;
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
            ("address", v) => PersonaQuery::Address(parse_address("address", v)?),
            ("pubkey", v) => PersonaQuery::PublicKey(parse_public_key("pubkey", v)?),
            (_, v) => PersonaQuery::Nickname(v.to_owned()),
        };
        state.reader.persona(query).await
    }
    .await;
    found(result, "persona")
}

async fn messages(state: web::Data<State>, query: Query) -> HttpResponse {
    let result = async {
        let limit = match query.get("limit").map(|l| l.parse::<i64>()) {
            None => None,
            Some(Ok(limit)) => Some(limit),
            Some(Err(_)) => return Err(Rejection::bad_query("limit is not an integer")),
        };
        let listing = match exactly_one(&query, &["message_hash", "date", "sender", "reader"])? {
            ("message_hash", hash) => return Ok(Err(parse_message_hash("message_hash", hash)?)),
            ("date", v) => MessageQuery::Date(parse_day("date", v)?),
            ("sender", v) => MessageQuery::Sender(parse_address("sender", v)?),
            (_, v) => MessageQuery::Reader(parse_address("reader", v)?),
        };
        Ok(Ok((listing, PageRequest::parse(limit, query.get("after").map(String::as_str))?)))
    }
    .await;
    match result {
        Ok(Err(hash)) => found(state.reader.message(&hash).await, "message"),
        Ok(Ok((listing, page))) => match state.reader.messages(listing, page).await {
            Ok(records) => HttpResponse::Ok().json(records),
            Err(rejection) => rejection_response(&rejection),
        },
        Err(rejection) => rejection_response(&rejection),
    }
}

async fn objects(state: web::Data<State>, query: Query) -> HttpResponse {
    let result = async {
        let text = query.get("object_hash").ok_or_else(|| Rejection::bad_query("object_hash is required"))?;
        state.reader.object(&parse_hash("object_hash", text)?).await
    }
    .await;
    found(result, "object")
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

async fn readyz(state: web::Data<State>) -> HttpResponse {
    readiness(state.authorizer.ready().await.map_err(|rejection| rejection.error))
}
