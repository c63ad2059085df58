//! The `sendMessage` mutation: input to envelope, refusals to codes.

use crate::helpers::*;
use pm_models::envelope::{AclRule, Container, Envelope, ObjectEntry};
use pm_models::{MessageType, Rejection, RejectionCode};
use serde_json::{json, Value};

const SEND: &str = "mutation($e: MessageEnvelopeInput!) {
    sendMessage(envelope: $e) {
        sender { address pubkey nickname createdAt }
        messageType messageHash messageSign dossierHash bodyHash
        ACL { reader { nickname } key }
        objects { objectHash metaHashes container { containerHash } }
        message createdAt receipt
    }
}";

pub fn registration_input(sender: &str) -> Value {
    json!({
        "sender": sender,
        "messageType": "REGISTRATION",
        "messageHash": hash("registration"),
        "messageSign": "bWVzc2FnZVNpZ24=",
        "dossierHash": hash("dossier"),
        "bodyHash": hash("body"),
        "message": "cGFja2Vk",
    })
}

#[tokio::test]
async fn an_accepted_registration_returns_the_envelope_with_the_new_persona() {
    let app = spawn_app().await;
    let newcomer = app.authorizer.accepted_sender.clone();
    let input = registration_input(&newcomer.address);
    let body = app.graphql(SEND, json!({ "e": input })).await;
    assert_eq!(body.get("errors"), None, "{body}");
    assert_eq!(
        body["data"]["sendMessage"],
        json!({
            "sender": {
                "address": newcomer.address,
                "pubkey": wire_key(&newcomer),
                "nickname": "Newcomer",
                "createdAt": newcomer.created_at,
            },
            "messageType": "REGISTRATION",
            "messageHash": input["messageHash"],
            "messageSign": input["messageSign"],
            "dossierHash": input["dossierHash"],
            "bodyHash": input["bodyHash"],
            "ACL": [],
            "objects": [],
            "message": input["message"],
            "createdAt": ACCEPTED_AT,
            "receipt": RECEIPT,
        })
    );
    // ACL and objects omitted: the authorizer sees empty lists.
    let received = app.authorizer.received.lock().unwrap().clone();
    assert_eq!(
        received,
        [Envelope {
            sender: newcomer.address.clone(),
            message_type: MessageType::Registration,
            message_hash: hash("registration"),
            message_sign: "bWVzc2FnZVNpZ24=".into(),
            dossier_hash: hash("dossier"),
            body_hash: hash("body"),
            acl: vec![],
            objects: vec![],
            message: "cGFja2Vk".into(),
        }]
    );
}

#[tokio::test]
async fn a_private_envelope_reaches_the_authorizer_field_for_field() {
    let app = spawn_app().await;
    let mut input = registration_input(&app.alice.address);
    input["messageType"] = json!("ASSERTION");
    input["ACL"] = json!([
        { "reader": app.bob.address, "key": "a2V5LWJvYg==" },
        { "reader": "not-registered", "key": "a2V5" },
    ]);
    input["objects"] = json!([
        { "objectHash": hash("o1"), "metaHashes": [hash("m1"), hash("m2")] },
        {
            "objectHash": hash("o2"),
            "metaHashes": [],
            "container": {
                "containerHash": hash("c"),
                "containerSign": "Y1NpZ24=",
                "objectContainer": "YmxvYg==",
            },
        },
    ]);
    let body = app.graphql(SEND, json!({ "e": input })).await;
    assert_eq!(body.get("errors"), None, "{body}");
    assert_eq!(
        body["data"]["sendMessage"]["ACL"],
        json!([
            { "reader": { "nickname": "Bob" }, "key": "a2V5LWJvYg==" },
            { "reader": null, "key": "a2V5" },
        ])
    );
    let received = app.authorizer.received.lock().unwrap()[0].clone();
    assert_eq!(received.message_type, MessageType::Assertion);
    assert_eq!(
        received.acl,
        [
            AclRule { reader: app.bob.address.clone(), key: "a2V5LWJvYg==".into() },
            AclRule { reader: "not-registered".into(), key: "a2V5".into() },
        ]
    );
    assert_eq!(
        received.objects,
        [
            ObjectEntry { object_hash: hash("o1"), meta_hashes: vec![hash("m1"), hash("m2")], container: None },
            ObjectEntry {
                object_hash: hash("o2"),
                meta_hashes: vec![],
                container: Some(Container {
                    container_hash: hash("c"),
                    container_sign: "Y1NpZ24=".into(),
                    object_container: "YmxvYg==".into(),
                }),
            },
        ]
    );
}

#[tokio::test]
async fn an_authorizer_refusal_becomes_its_code_and_sentence() {
    let app = spawn_app().await;
    *app.authorizer.refusal.lock().unwrap() =
        Some(Rejection::new(RejectionCode::UnknownSender, "sender is not a registered persona"));
    let body = app.graphql(SEND, json!({ "e": registration_input(&app.alice.address) })).await;
    assert_eq!(body["data"], json!({ "sendMessage": null }));
    assert_eq!(error_codes(&body), ["UNKNOWN_SENDER"]);
    assert_eq!(body["errors"][0]["message"], "sender is not a registered persona");
    assert_eq!(body["errors"][0]["path"], json!(["sendMessage"]));
}

#[tokio::test]
async fn a_missing_required_input_field_is_malformed_envelope() {
    let app = spawn_app().await;
    let mut input = registration_input(&app.alice.address);
    input.as_object_mut().unwrap().remove("messageSign");
    let body = app.graphql(SEND, json!({ "e": input })).await;
    assert_eq!(body["data"], Value::Null);
    assert_eq!(error_codes(&body), ["MALFORMED_ENVELOPE"], "{body}");
    assert!(app.authorizer.received.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_int_for_the_sender_address_is_malformed_envelope() {
    let app = spawn_app().await;
    let mut input = registration_input(&app.alice.address);
    input["sender"] = json!(12345);
    let body = app.graphql(SEND, json!({ "e": input })).await;
    assert_eq!(error_codes(&body), ["MALFORMED_ENVELOPE"], "{body}");
    assert!(app.authorizer.received.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_unknown_message_type_name_is_malformed_envelope() {
    let app = spawn_app().await;
    let mut input = registration_input(&app.alice.address);
    input["messageType"] = json!("GOSSIP");
    let body = app.graphql(SEND, json!({ "e": input })).await;
    assert_eq!(error_codes(&body), ["MALFORMED_ENVELOPE"], "{body}");
}

#[tokio::test]
async fn a_null_item_inside_a_list_is_malformed_envelope() {
    let app = spawn_app().await;
    let mut with_null_meta = registration_input(&app.alice.address);
    with_null_meta["objects"] = json!([{ "objectHash": hash("o"), "metaHashes": [hash("m"), null] }]);
    let mut with_null_rule = registration_input(&app.alice.address);
    with_null_rule["ACL"] = json!([null]);
    let mut with_null_object = registration_input(&app.alice.address);
    with_null_object["objects"] = json!([null]);
    for input in [with_null_meta, with_null_rule, with_null_object] {
        let body = app.graphql(SEND, json!({ "e": input })).await;
        assert_eq!(error_codes(&body), ["MALFORMED_ENVELOPE"], "{body}");
    }
    assert!(app.authorizer.received.lock().unwrap().is_empty());
}

#[tokio::test]
async fn null_acl_and_objects_are_empty_lists() {
    let app = spawn_app().await;
    let mut input = registration_input(&app.alice.address);
    input["ACL"] = Value::Null;
    input["objects"] = Value::Null;
    let body = app.graphql(SEND, json!({ "e": input })).await;
    assert_eq!(body.get("errors"), None, "{body}");
    let received = app.authorizer.received.lock().unwrap()[0].clone();
    assert!(received.acl.is_empty() && received.objects.is_empty());
}
