//! `sendMessages` end to end: one result per envelope, in order; what was
//! accepted is stored once, what was refused leaves nothing behind, and one
//! refusal never refuses the others.

use crate::common::{envelopes, spawn_node};
use serde_json::{json, Value};

const SEND_MANY: &str = "mutation($e: [MessageEnvelopeInput!]!) {
    sendMessages(envelopes: $e) { envelope { messageHash receipt } refusal { code error } }
}";

#[tokio::test]
async fn a_batch_is_checked_envelope_by_envelope_and_what_it_accepted_is_stored_once() {
    let node = spawn_node().await;
    let t = node.timestamp().await;
    let first = envelopes::assertion(&node.genesis, &[node.genesis.public()], vec![], &t);
    let second = envelopes::assertion(&node.genesis, &[node.genesis.public()], vec![], &t);
    let mut tampered = envelopes::assertion(&node.genesis, &[node.genesis.public()], vec![], &t);
    tampered.message = second.message.clone();
    let mut no_acl = first.to_json_value();
    no_acl["ACL"] = json!([null]);
    let inputs: Vec<Value> =
        vec![first.to_json_value(), first.to_json_value(), tampered.to_json_value(), no_acl, second.to_json_value()];
    let body = node.graphql(SEND_MANY, json!({ "e": inputs })).await;
    assert_eq!(body.get("errors"), None, "{body}");
    let results = body["data"]["sendMessages"].as_array().unwrap().clone();
    assert_eq!(results.len(), 5, "{body}");
    let outcome = |r: &Value| match r["refusal"]["code"].as_str() {
        Some(code) => code.to_owned(),
        None => r["envelope"]["messageHash"].as_str().unwrap().to_owned(),
    };
    let outcomes: Vec<String> = results.iter().map(outcome).collect();
    let (first_hash, second_hash) = (first.message_hash.to_string(), second.message_hash.to_string());
    // The two copies of `first` race inside the batch: exactly one wins.
    let mut copies = [outcomes[0].clone(), outcomes[1].clone()];
    let mut expected = ["DUPLICATE_MESSAGE".to_owned(), first_hash.clone()];
    copies.sort();
    expected.sort();
    assert_eq!(copies, expected, "{body}");
    assert_eq!(outcomes[2], "MESSAGE_HASH_MISMATCH", "{body}");
    assert_eq!(outcomes[3], "MALFORMED_ENVELOPE", "{body}");
    assert_eq!(outcomes[4], second_hash, "{body}");
    for result in results.iter().filter(|r| r["refusal"].is_null()) {
        assert!(result["envelope"]["receipt"].is_string(), "an accepted envelope carries its receipt");
    }
    for hash in [&first_hash, &second_hash] {
        node.wait_readable(hash).await;
    }
    node.assert_nothing_stored(&[tampered.message_hash.to_string()], &[]).await;
}
