//! `/teleferic` over HTTP: the request forms, GraphiQL, and the refusals made
//! before the schema runs (a body that is not JSON, a body too large).

use crate::helpers::*;
use pm_teleferic::GatewaySettings;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TIMESTAMP_QUERY: &str = "{ teleferic { signedTimestamp } }";

fn timestamp_answer() -> Value {
    json!({ "data": { "teleferic": { "signedTimestamp": SIGNED_TIMESTAMP } } })
}

#[tokio::test]
async fn a_get_query_works() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/teleferic"))
        .query(&[
            ("query", "query($n: String) { persona(nickname: $n) { nickname } }"),
            ("variables", r#"{"n":"alice"}"#),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({ "data": { "persona": { "nickname": "Alice" } } }));
}

#[tokio::test]
async fn a_mutation_over_get_is_refused() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/teleferic"))
        .query(&[("query", "mutation { sendMessage(envelope: {}) { messageHash } }")])
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_codes(&body), ["MALFORMED_ENVELOPE"]);
    assert!(app.authorizer.received.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_form_encoded_post_works() {
    let app = spawn_app().await;
    let form = "query=%7B+teleferic+%7B+signedTimestamp+%7D+%7D&variables=";
    let response = app
        .client
        .post(app.url("/teleferic"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), timestamp_answer());
}

#[tokio::test]
async fn an_application_graphql_post_works() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/teleferic"))
        .header("content-type", "application/graphql")
        .body(TIMESTAMP_QUERY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.json::<Value>().await.unwrap(), timestamp_answer());
}

#[tokio::test]
async fn variables_sent_as_a_json_string_are_accepted() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/teleferic"))
        .json(&json!({
            "query": "query($n: String) { persona(nickname: $n) { nickname } }",
            "variables": r#"{"n":"BOB"}"#,
            "operationName": null,
        }))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({ "data": { "persona": { "nickname": "Bob" } } }));
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_graphql_malformed_envelope_error() {
    let app = spawn_app().await;
    for body in ["this is not json", "", "[1, 2]", r#"{"query": 7}"#] {
        let response = app
            .client
            .post(app.url("/teleferic"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{body:?}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["data"], Value::Null, "{body:?}");
        assert_eq!(error_codes(&answer), ["MALFORMED_ENVELOPE"], "{body:?}");
        assert!(answer["errors"][0]["message"].as_str().is_some());
    }
}

#[tokio::test]
async fn a_query_that_does_not_parse_is_malformed_envelope() {
    let app = spawn_app().await;
    let body = app.graphql("{ teleferic { ", Value::Null).await;
    assert_eq!(error_codes(&body), ["MALFORMED_ENVELOPE"]);
}

#[tokio::test]
async fn an_oversized_request_gets_413_with_a_graphql_error() {
    let app = spawn_app().await;
    let padding = "A".repeat(5 * 1024 * 1024);
    let response = app
        .client
        .post(app.url("/teleferic"))
        .json(&json!({ "query": TIMESTAMP_QUERY, "variables": { "padding": padding } }))
        .send()
        .await
        .expect("the gateway answers rather than resetting the connection");
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"], Value::Null);
    assert_eq!(error_codes(&body), ["PAYLOAD_TOO_LARGE"]);
}

#[tokio::test]
async fn a_request_under_the_limit_is_served() {
    let app = spawn_app().await;
    let padding = "A".repeat(3 * 1024 * 1024);
    let response = app
        .client
        .post(app.url("/teleferic"))
        .json(&json!({ "query": TIMESTAMP_QUERY, "variables": { "padding": padding } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), timestamp_answer());
}

#[tokio::test]
async fn a_chunked_body_is_cut_off_at_the_limit() {
    let app = spawn_app_with(GatewaySettings {
        limits: pm_http::BodyLimits { max_request_bytes: 1024, ..Default::default() },
        ..GatewaySettings::default()
    })
    .await;
    let address = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /teleferic HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // No content-length: the limit must hold while the body streams in.
    let chunk = format!("{:x}\r\n{}\r\n", 512, "B".repeat(512));
    for _ in 0..4 {
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("PAYLOAD_TOO_LARGE"), "{answer}");
}

#[tokio::test]
async fn a_browser_gets_graphiql() {
    let app = spawn_app().await;
    let response =
        app.client.get(app.url("/teleferic")).header("accept", "text/html,application/xhtml+xml").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = response.text().await.unwrap();
    assert!(page.contains("graphiql"), "GraphiQL page");
    assert!(page.contains("/teleferic"), "pointed at the endpoint");
}

#[tokio::test]
async fn a_get_without_a_query_from_a_program_is_malformed_envelope() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/teleferic")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_codes(&body), ["MALFORMED_ENVELOPE"]);
}

#[tokio::test]
async fn the_graphiql_introspection_query_is_within_the_limits() {
    let app = spawn_app().await;
    let body = app.graphql(INTROSPECTION, Value::Null).await;
    assert_eq!(body.get("errors"), None, "{body}");
    let types = body["data"]["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "MessageEnvelope"));
}

/// The query GraphiQL sends on load (graphql-js `getIntrospectionQuery`).
const INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) {
    name description
    args { ...InputValue }
    type { ...TypeRef }
    isDeprecated deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue {
  name description
  type { ...TypeRef }
  defaultValue
}
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name } } } } } } }
}
"#;
