//! `/healthz` and `/readyz`.

use crate::helpers::*;
use serde_json::{json, Value};

#[tokio::test]
async fn healthz_answers_200_while_the_process_is_up() {
    let app = spawn_app().await;
    *app.reader.ready.lock().unwrap() = Err(not_ready());
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({ "status": "ok" }));
}

#[tokio::test]
async fn readyz_answers_200_when_both_services_are_ready() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn readyz_answers_503_naming_the_reader_when_it_is_not_ready() {
    let app = spawn_app().await;
    *app.reader.ready.lock().unwrap() = Err(not_ready());
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["authorizer"]["ready"], true);
    assert_eq!(body["reader"]["ready"], false);
    assert_eq!(body["reader"]["code"], "UNAVAILABLE");
}

#[tokio::test]
async fn readyz_answers_503_naming_the_authorizer_when_it_is_not_ready() {
    let app = spawn_app().await;
    *app.authorizer.ready.lock().unwrap() = Err(not_ready());
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["authorizer"]["ready"], false);
    assert_eq!(body["reader"]["ready"], true);
}
