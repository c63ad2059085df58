//! HTTP handlers: `/teleferic` (GraphQL over POST JSON, GET, form-encoded
//! POST and `application/graphql`; GraphiQL for a browser), `/healthz` and
//! `/readyz`.
//!
//! Guarantees (PROTOCOL.md sections 5, 7 and 10):
//!
//! - every answer of `/teleferic` is a GraphQL response, including refusals
//!   made before the schema runs (a body that is not JSON, a body too large);
//! - every GraphQL error carries `extensions.code`; errors the GraphQL layer
//!   raises itself get `MALFORMED_ENVELOPE`;
//! - a request body is never read past `max_request_bytes`: the answer is HTTP
//!   413 with a `PAYLOAD_TOO_LARGE` error; every other answer is HTTP 200;
//! - bad input never panics and never yields a 5xx.

use crate::documents::ParsedDocuments;
use crate::errors::{error_codes, label_uncoded_errors, rejection_response};
use crate::limits;
use crate::schema::{GatewaySchema, Services};
use crate::GatewaySettings;
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use async_graphql::http::GraphiQLSource;
use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::{Request, Response, Variables};
use pm_http::body::{read_body, BodyError};
use pm_models::{Rejection, RejectionCode};
use serde::Deserialize;
use tracing::Instrument;

/// What every handler shares.
pub(crate) struct GatewayState {
    pub(crate) schema: GatewaySchema,
    pub(crate) services: Services,
    pub(crate) settings: GatewaySettings,
    pub(crate) documents: ParsedDocuments,
}

// ---------------------------------------------------------------- /teleferic

/// `GET /teleferic` asking for a WebSocket: subscriptions (`messageAdded`)
/// over `graphql-transport-ws`, or the older `graphql-ws` protocol.
pub(crate) async fn graphql_ws(
    state: web::Data<GatewayState>,
    request: HttpRequest,
    payload: web::Payload,
) -> actix_web::Result<HttpResponse> {
    tracing::debug!("live subscription connection");
    async_graphql_actix_web::GraphQLSubscription::new(state.schema.clone()).start(&request, payload)
}

/// `GET /teleferic`: a query in the URL, or GraphiQL for a browser.
pub(crate) async fn graphql_get(state: web::Data<GatewayState>, request: HttpRequest) -> HttpResponse {
    let span = request_span(&request);
    async move {
        let params = match web::Query::<TextParams>::from_query(request.query_string()) {
            Ok(params) => params.into_inner(),
            Err(error) => return refuse(&Rejection::malformed(format!("query string is not valid: {error}"))),
        };
        if params.query.as_deref().unwrap_or_default().is_empty() && accepts_html(request.headers()) {
            return graphiql(&state.settings);
        }
        let graphql_request = match params.into_request() {
            Ok(graphql_request) => graphql_request,
            Err(rejection) => return refuse(&rejection),
        };
        if let Err(rejection) = refuse_mutation(&graphql_request) {
            return refuse(&rejection);
        }
        execute(&state, graphql_request).await
    }
    .instrument(span)
    .await
}

/// `POST /teleferic`: JSON, form-encoded or `application/graphql` body.
pub(crate) async fn graphql_post(
    state: web::Data<GatewayState>,
    request: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let span = request_span(&request);
    async move {
        let body = match read_body(&request, payload, &state.settings.limits).await {
            Ok(body) => body,
            Err(error @ BodyError::TooLarge(_)) => {
                tracing::info!(limit = state.settings.limits.max_request_bytes, "request body too large");
                let rejection = Rejection::new(RejectionCode::PayloadTooLarge, error.to_string());
                crate::metrics::request_refused(rejection.code.as_str());
                return HttpResponse::build(StatusCode::PAYLOAD_TOO_LARGE)
                    .insert_header(header::ContentType::json())
                    .body(response_json(&rejection_response(&rejection)));
            }
            Err(error) => {
                tracing::info!(%error, "request body not read");
                return refuse(&Rejection::malformed(error.to_string()));
            }
        };
        tracing::Span::current().record("bytes", body.len());
        let graphql_request = match parse_body(request.headers(), &body) {
            Ok(graphql_request) => graphql_request,
            Err(rejection) => return refuse(&rejection),
        };
        execute(&state, graphql_request).await
    }
    .instrument(span)
    .await
}

fn request_span(request: &HttpRequest) -> tracing::Span {
    tracing::info_span!(
        "graphql_request",
        method = %request.method(),
        operation = tracing::field::Empty,
        bytes = tracing::field::Empty,
    )
}

/// What the gateway checks of a POST body before the schema runs: that it
/// is a GraphQL request for its `content_type` (section 10), that its
/// document parses, and the document's shape limits ([`limits::check`]).
/// `Ok` when the request would go on to the schema. The same code as the
/// handler's, exposed for the fuzz target `graphql_request`.
pub fn check_request(content_type: &str, body: &[u8]) -> Result<(), Rejection> {
    let mut headers = HeaderMap::new();
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    let mut request = parse_body(&headers, body)?;
    match request.parsed_query() {
        Ok(document) => limits::check(document),
        Err(error) => Err(Rejection::malformed(error.message)),
    }
}

/// Runs a request through the schema and labels uncoded errors.
async fn execute(state: &GatewayState, mut request: Request) -> HttpResponse {
    if let Some(name) = &request.operation_name {
        tracing::Span::current().record("operation", name.as_str());
    }
    // A text parsed before is not parsed again; a document that does not
    // parse is reported by the schema run itself.
    match state.documents.get(&request.query) {
        Some(document) => request.set_parsed_query(document),
        None => {
            if let Ok(document) = request.parsed_query() {
                if let Err(rejection) = limits::check(document) {
                    return refuse(&rejection);
                }
                let document = document.clone();
                state.documents.keep(&request.query, document);
            }
        }
    }
    let request = request.data(crate::schema::persona_loader(&state.services));
    let mut response = state.schema.execute(request).await;
    label_uncoded_errors(&mut response);
    // Errors without a path refused the request as a whole (it does not
    // parse or is not valid against the schema): no resolver ran.
    let whole: Vec<&async_graphql::ServerError> = response.errors.iter().filter(|e| e.path.is_empty()).collect();
    if let Some(code) = whole.first().and_then(|e| e.extensions.as_ref()?.get(crate::CODE_EXTENSION)) {
        match code {
            async_graphql::Value::String(code) => crate::metrics::request_refused(code),
            other => crate::metrics::request_refused(&other.to_string()),
        }
    }
    graphql_reply(response)
}

/// A request refused as a whole before it ran: counted, then answered.
fn refuse(rejection: &Rejection) -> HttpResponse {
    crate::metrics::request_refused(rejection.code.as_str());
    graphql_reply(rejection_response(rejection))
}

/// A GraphQL response with HTTP 200, as section 7 requires for every error
/// but an oversized request.
fn graphql_reply(response: Response) -> HttpResponse {
    let codes = error_codes(&response);
    if codes.is_empty() {
        tracing::info!("graphql request served");
    } else {
        tracing::info!(codes = ?codes, "graphql request served with errors");
    }
    HttpResponse::Ok().insert_header(header::ContentType::json()).body(response_json(&response))
}

fn response_json(response: &Response) -> String {
    serde_json::to_string(response).expect("a GraphQL response always serializes to JSON")
}

fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

fn graphiql(settings: &GatewaySettings) -> HttpResponse {
    let endpoint = settings.public_url.as_deref().unwrap_or("/teleferic");
    HttpResponse::Ok()
        .insert_header(header::ContentType::html())
        .body(GraphiQLSource::build().endpoint(endpoint).title("Peer Mountain").finish())
}

/// GET must not change state (GraphQL over HTTP): mutations go by POST.
fn refuse_mutation(request: &Request) -> Result<(), Rejection> {
    // A query that does not parse is reported by the schema run itself.
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
        return Ok(());
    };
    let is_mutation = match &document.operations {
        DocumentOperations::Single(operation) => operation.node.ty == OperationType::Mutation,
        DocumentOperations::Multiple(operations) => request
            .operation_name
            .as_deref()
            .and_then(|name| operations.get(name))
            .is_some_and(|operation| operation.node.ty == OperationType::Mutation),
    };
    if is_mutation {
        return Err(Rejection::malformed("a mutation must be sent with POST"));
    }
    Ok(())
}

// ---------------------------------------------------------------- bodies

/// Parameters sent as text: a URL query string or a form-encoded body.
#[derive(Deserialize)]
struct TextParams {
    query: Option<String>,
    variables: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
}

impl TextParams {
    fn into_request(self) -> Result<Request, Rejection> {
        let variables = match self.variables.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(
                serde_json::from_str(text)
                    .map_err(|error| Rejection::malformed(format!("variables are not JSON: {error}")))?,
            ),
        };
        build_request(self.query, variables, self.operation_name)
    }
}

/// Parameters sent as a JSON body.
#[derive(Deserialize)]
struct JsonParams {
    query: Option<String>,
    #[serde(default)]
    variables: serde_json::Value,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
}

fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Request, Rejection> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|essence| essence.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let text = || std::str::from_utf8(body).map_err(|_| Rejection::malformed("request body is not UTF-8 text"));
    match content_type.as_str() {
        "application/x-www-form-urlencoded" => {
            // A form body has the same encoding as a URL query string.
            web::Query::<TextParams>::from_query(text()?)
                .map_err(|error| Rejection::malformed(format!("form body is not valid: {error}")))?
                .into_inner()
                .into_request()
        }
        "application/graphql" => build_request(Some(text()?.to_owned()), None, None),
        // JSON is the default: clients often omit or misname the type.
        _ => {
            let params: JsonParams = serde_json::from_slice(body).map_err(|error| {
                Rejection::malformed(format!("request body is not a GraphQL JSON request: {error}"))
            })?;
            let variables = match params.variables {
                serde_json::Value::Null => None,
                // Older clients send the variables as a JSON string.
                serde_json::Value::String(text) if text.trim().is_empty() => None,
                serde_json::Value::String(text) => Some(
                    serde_json::from_str(&text)
                        .map_err(|error| Rejection::malformed(format!("variables are not JSON: {error}")))?,
                ),
                other => Some(other),
            };
            build_request(params.query, variables, params.operation_name)
        }
    }
}

fn build_request(
    query: Option<String>,
    variables: Option<serde_json::Value>,
    operation_name: Option<String>,
) -> Result<Request, Rejection> {
    let query =
        query.filter(|query| !query.trim().is_empty()).ok_or_else(|| Rejection::malformed("request has no query"))?;
    let mut request = Request::new(query);
    match variables {
        None | Some(serde_json::Value::Null) => {}
        Some(value @ serde_json::Value::Object(_)) => {
            request = request.variables(Variables::from_json(value));
        }
        Some(_) => return Err(Rejection::malformed("variables must be a JSON object")),
    }
    if let Some(name) = operation_name.filter(|name| !name.is_empty()) {
        request = request.operation_name(name);
    }
    Ok(request)
}

// ---------------------------------------------------------------- health

/// `GET /readyz`: the authorizer and the reader are both ready.
pub(crate) async fn readyz(state: web::Data<GatewayState>) -> HttpResponse {
    let services = &state.services;
    let (authorizer, reader) = futures::join!(services.authorizer.ready(), services.reader.ready());
    let report = |ready: &Result<(), Rejection>| match ready {
        Ok(()) => serde_json::json!({ "ready": true }),
        Err(rejection) => serde_json::json!({
            "ready": false,
            "error": rejection.error,
            "code": rejection.code.as_str(),
        }),
    };
    let body = serde_json::json!({
        "status": if authorizer.is_ok() && reader.is_ok() { "ok" } else { "unavailable" },
        "authorizer": report(&authorizer),
        "reader": report(&reader),
    });
    if authorizer.is_ok() && reader.is_ok() {
        HttpResponse::Ok().json(body)
    } else {
        tracing::warn!(authorizer_ready = authorizer.is_ok(), reader_ready = reader.is_ok(), "gateway not ready");
        HttpResponse::ServiceUnavailable().json(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
        headers
    }

    #[test]
    fn variables_sent_as_a_json_string_are_read() {
        let body = br#"{"query":"{ teleferic { signedTimestamp } }","variables":"{\"a\":1}"}"#;
        let request = parse_body(&json_headers(), body).unwrap();
        assert_eq!(request.variables.len(), 1);
    }

    #[test]
    fn variables_that_are_not_an_object_are_malformed() {
        let body = br#"{"query":"{ teleferic { signedTimestamp } }","variables":[1]}"#;
        let rejection = parse_body(&json_headers(), body).err().unwrap();
        assert_eq!(rejection.code, RejectionCode::MalformedEnvelope);
    }

    #[test]
    fn a_request_without_a_query_is_malformed() {
        let rejection = parse_body(&json_headers(), br#"{"variables":{}}"#).err().unwrap();
        assert_eq!(rejection.code, RejectionCode::MalformedEnvelope);
    }

    #[test]
    fn a_mutation_is_recognised_among_several_operations() {
        let query = "query A { teleferic { signedTimestamp } } mutation B { x }";
        let named = |name: &str| Request::new(query).operation_name(name);
        assert!(refuse_mutation(&named("A")).is_ok());
        assert!(refuse_mutation(&named("B")).is_err());
        assert!(refuse_mutation(&Request::new("mutation { x }")).is_err());
    }
}
