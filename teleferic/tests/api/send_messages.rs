//! The `sendMessages` mutation: one result per envelope, in order; a
//! refused envelope never refuses the others; the batch is bounded.

use crate::helpers::*;
use crate::send_message::registration_input;
use pm_models::{Rejection, RejectionCode};
use serde_json::{json, Value};

const SEND_MANY: &str = "mutation($e: [MessageEnvelopeInput!]!) {
    sendMessages(envelopes: $e) { envelope { messageHash receipt createdAt } refusal { code error } }
}";

fn numbered(sender: &str, i: usize) -> Value {
    let mut input = registration_input(sender);
    input["messageHash"] = json!(hash(&format!("batch {i}")));
    input
}

#[tokio::test]
async fn each_envelope_gets_its_own_result_in_order_and_a_malformed_one_refuses_only_itself() {
    let app = spawn_app().await;
    let mut malformed = numbered(&app.alice.address, 1);
    malformed["ACL"] = json!([null]);
    let inputs = vec![numbered(&app.alice.address, 0), malformed, numbered(&app.alice.address, 2)];
    let body = app.graphql(SEND_MANY, json!({ "e": inputs })).await;
    assert_eq!(body.get("errors"), None, "{body}");
    let results = body["data"]["sendMessages"].as_array().unwrap().clone();
    assert_eq!(results.len(), 3);
    for i in [0, 2] {
        assert_eq!(
            results[i],
            json!({
                "envelope": { "messageHash": hash(&format!("batch {i}")), "receipt": RECEIPT, "createdAt": ACCEPTED_AT },
                "refusal": null,
            })
        );
    }
    assert_eq!(results[1]["envelope"], Value::Null);
    assert_eq!(results[1]["refusal"]["code"], "MALFORMED_ENVELOPE", "{body}");
    assert!(results[1]["refusal"]["error"].as_str().is_some_and(|e| !e.is_empty()));
    let received: Vec<String> =
        app.authorizer.received.lock().unwrap().iter().map(|e| e.message_hash.to_string()).collect();
    let mut received = received;
    received.sort();
    let mut expected = vec![hash("batch 0"), hash("batch 2")];
    expected.sort();
    assert_eq!(received, expected, "only the well-formed envelopes reach the authorizer");
}

#[tokio::test]
async fn authorizer_refusals_are_per_envelope_codes_and_sentences_not_request_errors() {
    let app = spawn_app().await;
    *app.authorizer.refusal.lock().unwrap() =
        Some(Rejection::new(RejectionCode::UnknownSender, "sender is not a registered persona"));
    let inputs: Vec<Value> = (0..5).map(|i| numbered(&app.alice.address, i)).collect();
    let body = app.graphql(SEND_MANY, json!({ "e": inputs })).await;
    assert_eq!(body.get("errors"), None, "{body}");
    let refusal = json!({ "envelope": null, "refusal": { "code": "UNKNOWN_SENDER", "error": "sender is not a registered persona" } });
    assert_eq!(body["data"]["sendMessages"], json!(vec![refusal; 5]));
}

#[tokio::test]
async fn a_hundred_envelopes_are_taken_and_a_hundred_and_one_refuse_the_request() {
    let app = spawn_app().await;
    let hundred: Vec<Value> = (0..100).map(|i| numbered(&app.alice.address, i)).collect();
    let body = app.graphql(SEND_MANY, json!({ "e": hundred })).await;
    assert_eq!(body.get("errors"), None, "{body}");
    assert_eq!(body["data"]["sendMessages"].as_array().unwrap().len(), 100);
    assert_eq!(app.authorizer.received.lock().unwrap().len(), 100);

    let too_many: Vec<Value> = (0..101).map(|i| numbered(&app.alice.address, i)).collect();
    let body = app.graphql(SEND_MANY, json!({ "e": too_many })).await;
    assert_eq!(error_codes(&body), ["MALFORMED_ENVELOPE"], "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("at most 100"), "{body}");
    assert_eq!(app.authorizer.received.lock().unwrap().len(), 100, "nothing of the refused batch was sent");
}

#[tokio::test]
async fn an_empty_batch_has_no_results() {
    let app = spawn_app().await;
    let body = app.graphql(SEND_MANY, json!({ "e": [] })).await;
    assert_eq!(body, json!({ "data": { "sendMessages": [] } }));
}
