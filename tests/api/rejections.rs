//! Every code of PROTOCOL.md section 7 through GraphQL, each envelope
//! broken in exactly one place so that the earlier checks pass and the
//! intended check decides. After the refusals of a test a sentinel message
//! goes through (the writer is FIFO) and none of the refused envelopes may be
//! stored, nor any refused registration's persona.
//!
//! `UNAVAILABLE` is not provoked here: the embedded backend lives in the
//! serving process, so no backend can be taken down under it.

use crate::common::envelopes::{
    self, acl_rule_for_stranger, invitation_parts, object_with_container, public_from_parts, rehash, resign,
    sign_with_raw_timestamp,
};
use crate::common::{error_code, spawn_node, TestNode};
use pm_models::client::{self, random_bytes, ContentParts};
use pm_models::codec::{b64, hash_text, to_msgpack};
use pm_models::envelope::{Envelope, ObjectEntry};
use pm_models::keys::PersonaKey;
use pm_models::sealed_box;
use pm_models::signed_timestamp::SignedTimestamp;
use pm_models::time::Micros;
use pm_models::timestamped_signature::TimestampedSignature;
use pm_models::MessageType;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Refusals of one test, checked to have stored nothing at the end.
struct Refusals<'a> {
    node: &'a TestNode,
    hashes: Vec<String>,
    addresses: Vec<String>,
}

impl<'a> Refusals<'a> {
    fn new(node: &'a TestNode) -> Self {
        Self { node, hashes: vec![], addresses: vec![] }
    }

    /// Sends `envelope`, which must be refused with `code`.
    async fn expect(&mut self, what: &str, envelope: &Envelope, code: &str) {
        self.expect_input(what, envelope.to_json_value(), &envelope.message_hash, code).await;
    }

    /// Sends a raw `MessageEnvelopeInput`, which must be refused with `code`.
    async fn expect_input(&mut self, what: &str, input: Value, hash: &str, code: &str) {
        match self.node.send_input(input).await {
            Ok(accepted) => panic!("{what}: expected {code}, but the envelope was accepted: {accepted}"),
            Err(got) => assert_eq!(got, code, "{what}"),
        }
        self.hashes.push(hash.to_owned());
    }

    /// A registration of `key` that must be refused with `code`.
    async fn expect_registration(&mut self, what: &str, envelope: &Envelope, key: &PersonaKey, code: &str) {
        self.expect(what, envelope, code).await;
        self.addresses.push(key.address().to_string());
    }

    async fn assert_nothing_stored(self) {
        self.node.assert_nothing_stored(&self.hashes, &self.addresses).await;
    }
}

fn genesis_assertion(node: &TestNode, t: &SignedTimestamp) -> Envelope {
    envelopes::assertion(&node.genesis, &[node.genesis.public()], vec![], t)
}

#[tokio::test]
async fn inputs_the_graphql_layer_cannot_read_are_malformed_envelopes() {
    let node = spawn_node().await;
    let mut refusals = Refusals::new(&node);
    let t = node.timestamp().await;

    let envelope = genesis_assertion(&node, &t);
    let mut input = envelope.to_json_value();
    input.as_object_mut().unwrap().remove("messageSign");
    refusals.expect_input("a missing required field", input, &envelope.message_hash, "MALFORMED_ENVELOPE").await;

    let envelope = genesis_assertion(&node, &t);
    let mut input = envelope.to_json_value();
    input["sender"] = json!(12345);
    refusals.expect_input("an Int for an Address", input, &envelope.message_hash, "MALFORMED_ENVELOPE").await;

    let envelope = genesis_assertion(&node, &t);
    let mut input = envelope.to_json_value();
    input["messageType"] = json!("GOSSIP");
    refusals.expect_input("an unknown messageType name", input, &envelope.message_hash, "MALFORMED_ENVELOPE").await;

    let envelope = genesis_assertion(&node, &t);
    let mut input = envelope.to_json_value();
    input["ACL"] = json!([null]);
    refusals.expect_input("a null ACL rule", input, &envelope.message_hash, "MALFORMED_ENVELOPE").await;

    // Not JSON at all: a GraphQL response with the code, still HTTP 200.
    let response = node
        .http
        .post(&node.server.url)
        .header("content-type", "application/json")
        .body("{ this is not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("a GraphQL response");
    assert_eq!(error_code(&body).as_deref(), Some("MALFORMED_ENVELOPE"), "{body}");

    refusals.assert_nothing_stored().await;
}

#[tokio::test]
async fn fields_with_bad_encodings_are_malformed_envelopes() {
    let node = spawn_node().await;
    let mut refusals = Refusals::new(&node);
    let genesis = &node.genesis;
    let t = node.timestamp().await;

    let mut envelope = genesis_assertion(&node, &t);
    envelope.message = "this is not base64!".into();
    rehash(&mut envelope, genesis, &t);
    refusals.expect("message is not base64", &envelope, "MALFORMED_ENVELOPE").await;

    let mut envelope = genesis_assertion(&node, &t);
    envelope.message.push('\n');
    rehash(&mut envelope, genesis, &t);
    refusals.expect("message base64 with a trailing newline", &envelope, "MALFORMED_ENVELOPE").await;

    let mut envelope = genesis_assertion(&node, &t);
    envelope.message_sign = b64("not a timestamped signature");
    refusals.expect("messageSign does not decode", &envelope, "MALFORMED_ENVELOPE").await;

    let mut envelope = genesis_assertion(&node, &t);
    let mut sender = envelope.sender.clone();
    let last = sender.pop().unwrap();
    sender.push(if last == '2' { '3' } else { '2' });
    envelope.sender = sender;
    refusals.expect("sender with a bad checksum", &envelope, "MALFORMED_ENVELOPE").await;

    // Over-long addresses are refused unread (section 2: at most 36
    // characters), so that no request can make the node decode megabytes of Base58.
    let long_address = "2".repeat(80_000);
    let mut envelope = genesis_assertion(&node, &t);
    envelope.sender = long_address.clone();
    let response = node
        .graphql(
            "mutation($e: MessageEnvelopeInput!) { sendMessage(envelope: $e) { messageHash } }",
            json!({ "e": envelope.to_json_value() }),
        )
        .await;
    assert_eq!(error_code(&response).as_deref(), Some("MALFORMED_ENVELOPE"), "{response}");
    let sentence = response["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(sentence.contains("longer than 36 characters"), "an over-long sender is named as such: {sentence}");
    let mut envelope = genesis_assertion(&node, &t);
    envelope.acl[0].reader = long_address;
    refusals.expect("ACL reader of 80,000 characters", &envelope, "MALFORMED_ENVELOPE").await;

    let mut envelope = genesis_assertion(&node, &t);
    envelope.body_hash = b64([7u8; 31]);
    refusals.expect("bodyHash of 31 bytes", &envelope, "MALFORMED_ENVELOPE").await;

    let mut envelope = genesis_assertion(&node, &t);
    envelope.acl[0].reader = "not an address".into();
    refusals.expect("ACL reader is not an address", &envelope, "MALFORMED_ENVELOPE").await;

    let mut envelope = genesis_assertion(&node, &t);
    envelope.objects = vec![ObjectEntry { object_hash: "short".into(), meta_hashes: vec![], container: None }];
    refusals.expect("objectHash is not base64 of 32 bytes", &envelope, "MALFORMED_ENVELOPE").await;

    // A registration whose nickname has surrounding whitespace (section 5).
    let invitation = node.invite(genesis, "Dora").await;
    let dora = PersonaKey::generate();
    let registration = node.registration(&dora, " dora", &invitation).await;
    refusals.expect_registration("nickname with leading whitespace", &registration, &dora, "MALFORMED_ENVELOPE").await;

    refusals.assert_nothing_stored().await;
}

#[tokio::test]
async fn oversized_messages_and_requests_are_refused_as_payload_too_large() {
    let node = spawn_node().await;
    let mut refusals = Refusals::new(&node);
    let genesis = &node.genesis;
    let t = node.timestamp().await;

    // A message over 1 MiB of base64 in a request well under 4 MiB.
    let mut envelope = genesis_assertion(&node, &t);
    envelope.message = b64(vec![0x5a; 800 * 1024]);
    assert!(envelope.message.len() > 1024 * 1024);
    rehash(&mut envelope, genesis, &t);
    refusals.expect("message over 1 MiB", &envelope, "PAYLOAD_TOO_LARGE").await;

    // 65 objects, one over the default limit of 64.
    let objects = (0..65).map(|_| envelopes::bare_object()).collect();
    let envelope = envelopes::assertion(genesis, &[genesis.public()], objects, &t);
    refusals.expect("65 objects", &envelope, "PAYLOAD_TOO_LARGE").await;

    // A container over 1 MiB.
    let object = object_with_container(genesis, &vec![1u8; 800 * 1024], &t);
    let envelope = envelopes::assertion(genesis, &[genesis.public()], vec![object], &t);
    refusals.expect("objectContainer over 1 MiB", &envelope, "PAYLOAD_TOO_LARGE").await;

    // A request over 4 MiB: HTTP 413 with a GraphQL error carrying the code.
    let mut envelope = genesis_assertion(&node, &t);
    envelope.message = b64(vec![0x33; 3 * 1024 * 1024 + 512 * 1024]);
    rehash(&mut envelope, genesis, &t);
    let body = json!({
        "query": "mutation($e: MessageEnvelopeInput!) { sendMessage(envelope: $e) { messageHash } }",
        "variables": { "e": envelope.to_json_value() },
    })
    .to_string();
    assert!(body.len() > 4 * 1024 * 1024);
    let response = node
        .http
        .post(&node.server.url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the gateway answers an oversized request");
    assert_eq!(response.status(), 413);
    let text = response.text().await.unwrap();
    let answer: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("413 without a GraphQL body: {text}"));
    assert_eq!(error_code(&answer).as_deref(), Some("PAYLOAD_TOO_LARGE"), "{answer}");
    refusals.hashes.push(envelope.message_hash.clone());

    refusals.assert_nothing_stored().await;
}

#[tokio::test]
async fn system_service_and_delegation_messages_and_unknown_body_types_are_unsupported() {
    let node = spawn_node().await;
    let mut refusals = Refusals::new(&node);
    let genesis = &node.genesis;
    let t = node.timestamp().await;

    for message_type in [MessageType::System, MessageType::Service, MessageType::Delegation] {
        let envelope = envelopes::private(genesis, message_type, &[genesis.public()], vec![], &t);
        refusals.expect(message_type.name(), &envelope, "UNSUPPORTED_MESSAGE_TYPE").await;
    }

    // A registration-family message with bodyType 3 (backup), from a new key.
    let newcomer = PersonaKey::generate();
    let mut body = BTreeMap::new();
    body.insert("backup", "something");
    let envelope = client::public_envelope(&newcomer, &ContentParts::new(3, &body), &t);
    refusals.expect_registration("bodyType 3", &envelope, &newcomer, "UNSUPPORTED_MESSAGE_TYPE").await;
    let envelope = client::public_envelope(genesis, &ContentParts::new(2, &body), &t);
    refusals.expect("bodyType 2 from genesis", &envelope, "UNSUPPORTED_MESSAGE_TYPE").await;

    refusals.assert_nothing_stored().await;
}

#[tokio::test]
async fn a_message_sent_again_is_a_duplicate_and_the_stored_copy_is_unchanged() {
    let node = spawn_node().await;
    let genesis = &node.genesis;
    let t = node.timestamp().await;
    let envelope = genesis_assertion(&node, &t);
    let stored = node.send_ok(&envelope).await;

    node.send_refused(&envelope, "DUPLICATE_MESSAGE").await;
    // The same message signed again with another T is still a duplicate.
    let mut again = envelope.clone();
    let later = SignedTimestamp::issue(&node.node_key(), Micros(Micros::now().0 - 1_000_000));
    resign(&mut again, genesis, &later);
    assert_ne!(again.message_sign, envelope.message_sign);
    node.send_refused(&again, "DUPLICATE_MESSAGE").await;
    // So is an invitation sent twice.
    let invitation = node.invite(genesis, "twice").await;
    node.send_refused(&invitation.envelope, "DUPLICATE_MESSAGE").await;

    node.wait_readable(&invitation.envelope.message_hash).await;
    node.sentinel().await;
    assert_eq!(node.message(&envelope.message_hash).await, stored, "the first copy stays as it was");
    let listed = node.list_all("messageBySender", "sender", &genesis.address().to_string(), 1000).await;
    for hash in [&envelope.message_hash, &invitation.envelope.message_hash] {
        let copies = listed.iter().filter(|m| m["messageHash"] == hash.as_str()).count();
        assert_eq!(copies, 1, "{hash} is listed once");
    }
}

#[tokio::test]
async fn senders_must_be_registered_and_a_registration_must_come_from_its_own_key() {
    let node = spawn_node().await;
    let mut refusals = Refusals::new(&node);
    let genesis = &node.genesis;
    let t = node.timestamp().await;

    let stranger = PersonaKey::generate();
    let envelope = envelopes::assertion(&stranger, &[genesis.public()], vec![], &t);
    refusals.expect("assertion from an unregistered key", &envelope, "UNKNOWN_SENDER").await;
    let parts = invitation_parts(&stranger, &node.node_public.address(), &t);
    let envelope = public_from_parts(&stranger, &parts, &t);
    refusals.expect("invitation from an unregistered key", &envelope, "UNKNOWN_SENDER").await;

    let invitation = node.invite(genesis, "Erin").await;
    let erin = PersonaKey::generate();
    let mut registration = node.registration(&erin, "erin", &invitation).await;
    registration.sender = genesis.address().to_string();
    refusals.expect_registration("registration sent as genesis", &registration, &erin, "SENDER_ADDRESS_MISMATCH").await;
    let mut registration = node.registration(&erin, "erin", &invitation).await;
    registration.sender = stranger.address().to_string();
    resign(&mut registration, &stranger, &t);
    refusals
        .expect_registration("registration sent as a stranger", &registration, &erin, "SENDER_ADDRESS_MISMATCH")
        .await;
    refusals.addresses.push(stranger.address().to_string());

    refusals.assert_nothing_stored().await;
}

#[tokio::test]
async fn hashes_that_differ_from_what_was_sent_are_refused() {
    let node = spawn_node().await;
    let mut refusals = Refusals::new(&node);
    let genesis = &node.genesis;
    let node_address = node.node_public.address();
    let t = node.timestamp().await;

    // messageHash of another text, correctly signed.
    let mut envelope = genesis_assertion(&node, &t);
    let real_hash = envelope.message_hash.clone();
    envelope.message_hash = hash_text("another message");
    resign(&mut envelope, genesis, &t);
    refusals.expect("messageHash of another message", &envelope, "MESSAGE_HASH_MISMATCH").await;
    refusals.hashes.push(real_hash);
    let mut invitation = public_from_parts(genesis, &invitation_parts(genesis, &node_address, &t), &t);
    let real_hash = invitation.message_hash.clone();
    invitation.message_hash = b64(random_bytes::<32>());
    resign(&mut invitation, genesis, &t);
    refusals.expect("invitation with a wrong messageHash", &invitation, "MESSAGE_HASH_MISMATCH").await;
    refusals.hashes.push(real_hash);

    // bodyHash of another body; messageSign is over messageHash, still valid.
    let mut invitation = public_from_parts(genesis, &invitation_parts(genesis, &node_address, &t), &t);
    invitation.body_hash = hash_text("another body");
    refusals.expect("bodyHash of another body", &invitation, "BODY_HASH_MISMATCH").await;

    // dossierHash that is not the HMAC of the content.
    let mut invitation = public_from_parts(genesis, &invitation_parts(genesis, &node_address, &t), &t);
    invitation.dossier_hash = b64(random_bytes::<32>());
    refusals.expect("dossierHash of nothing", &invitation, "DOSSIER_HASH_MISMATCH").await;
    // The HMAC keyed with another salt.
    let parts = invitation_parts(genesis, &node_address, &t);
    let mut invitation = public_from_parts(genesis, &parts, &t);
    let packed = pm_models::codec::unb64(&invitation.message).unwrap();
    invitation.dossier_hash = pm_models::content::dossier_hash(&random_bytes::<40>(), &packed);
    refusals.expect("dossierHash under another salt", &invitation, "DOSSIER_HASH_MISMATCH").await;

    // Salts of 39 and 41 bytes, everything else consistent.
    for length in [39usize, 41, 0] {
        let mut parts = invitation_parts(genesis, &node_address, &t);
        parts.salt = vec![9u8; length];
        let invitation = public_from_parts(genesis, &parts, &t);
        refusals.expect(&format!("dossierSalt of {length} bytes"), &invitation, "BAD_DOSSIER_SALT").await;
    }

    refusals.assert_nothing_stored().await;
}

#[tokio::test]
async fn a_message_sign_needs_a_fresh_timestamp_of_this_node_and_the_senders_signature() {
    let node = spawn_node().await;
    let mut refusals = Refusals::new(&node);
    let genesis = &node.genesis;
    let node_key = node.node_key();
    let node_address = node.node_public.address();
    let t = node.timestamp().await;
    let now = Micros::now().0;

    // T signed by another key.
    let forged = SignedTimestamp::issue(&PersonaKey::generate(), Micros::now());
    let envelope = genesis_assertion(&node, &forged);
    refusals.expect("T signed by another key", &envelope, "BAD_TIMESTAMP").await;
    let invitation = public_from_parts(genesis, &invitation_parts(genesis, &node_address, &forged), &forged);
    refusals.expect("invitation with a T signed by another key", &invitation, "BAD_TIMESTAMP").await;
    // A messageSign that decodes but whose T does not.
    let mut envelope = genesis_assertion(&node, &t);
    envelope.message_sign = sign_with_raw_timestamp(genesis, &envelope.message_hash, "not a timestamp");
    refusals.expect("T that does not decode", &envelope, "BAD_TIMESTAMP").await;

    // The node's own T, too old or too far ahead (max_age 420 s, max_skew 30 s).
    let old = SignedTimestamp::issue(&node_key, Micros(now - 500_000_000));
    refusals.expect("T 500 s old", &genesis_assertion(&node, &old), "TIMESTAMP_EXPIRED").await;
    let invitation = public_from_parts(genesis, &invitation_parts(genesis, &node_address, &old), &old);
    refusals.expect("invitation with a T 500 s old", &invitation, "TIMESTAMP_EXPIRED").await;
    let ahead = SignedTimestamp::issue(&node_key, Micros(now + 120_000_000));
    refusals.expect("T 120 s ahead", &genesis_assertion(&node, &ahead), "TIMESTAMP_IN_FUTURE").await;

    // A fresh node T, but messageSign signed by someone else, or over another hash.
    let mut envelope = genesis_assertion(&node, &t);
    resign(&mut envelope, &PersonaKey::generate(), &t);
    refusals.expect("messageSign by another key", &envelope, "BAD_SIGNATURE").await;
    let mut envelope = genesis_assertion(&node, &t);
    envelope.message_sign = TimestampedSignature::sign(genesis, &hash_text("other"), &t).as_str().to_owned();
    refusals.expect("messageSign over another hash", &envelope, "BAD_SIGNATURE").await;
    // A public content signed by someone else (messageSign itself is fine).
    let stranger = PersonaKey::generate();
    let mut parts = invitation_parts(genesis, &node_address, &t);
    parts.content_signer = &stranger;
    let invitation = public_from_parts(genesis, &parts, &t);
    refusals.expect("content signature by another key", &invitation, "BAD_SIGNATURE").await;
    // A registration whose messageSign is not by the body's key.
    let invitation = node.invite(genesis, "Fay").await;
    let fay = PersonaKey::generate();
    let mut registration = node.registration(&fay, "fay", &invitation).await;
    resign(&mut registration, &stranger, &t);
    refusals.expect_registration("registration signed by another key", &registration, &fay, "BAD_SIGNATURE").await;

    refusals.assert_nothing_stored().await;
}

#[tokio::test]
async fn signatures_inside_a_message_may_use_an_older_node_timestamp() {
    // Section 3: only the T of messageSign must be fresh; a container or a
    // content may have been signed earlier.
    let node = spawn_node().await;
    let genesis = &node.genesis;
    let node_key = node.node_key();
    let t = node.timestamp().await;
    let now = Micros::now().0;
    let old = SignedTimestamp::issue(&node_key, Micros(now - 3_600_000_000));

    let object = object_with_container(genesis, b"signed an hour ago", &old);
    let envelope = envelopes::assertion(genesis, &[genesis.public()], vec![object], &t);
    node.send_ok(&envelope).await;

    let mut parts = invitation_parts(genesis, &node.node_public.address(), &t);
    parts.content_t = &old;
    let invitation = public_from_parts(genesis, &parts, &t);
    node.send_ok(&invitation).await;

    // The freshness bounds leave room on both sides (clock margin of 10 s).
    let aged = SignedTimestamp::issue(&node_key, Micros(now - 400_000_000));
    node.send_ok(&genesis_assertion(&node, &aged)).await;
    let ahead = SignedTimestamp::issue(&node_key, Micros(now + 20_000_000));
    node.send_ok(&genesis_assertion(&node, &ahead)).await;
}

#[tokio::test]
async fn acl_readers_must_be_registered_and_containers_must_match_and_be_signed() {
    let node = spawn_node().await;
    let mut refusals = Refusals::new(&node);
    let genesis = &node.genesis;
    let t = node.timestamp().await;

    let mut envelope = genesis_assertion(&node, &t);
    envelope.acl.push(acl_rule_for_stranger());
    rehash(&mut envelope, genesis, &t);
    refusals.expect("a reader that is not registered", &envelope, "UNKNOWN_ACL_READER").await;

    let bad_object = |change: &dyn Fn(&mut pm_models::envelope::Container)| {
        let mut object = object_with_container(genesis, b"container", &t);
        change(object.container.as_mut().unwrap());
        envelopes::assertion(genesis, &[genesis.public()], vec![envelopes::bare_object(), object], &t)
    };
    let envelope = bad_object(&|c| c.object_container = b64("another container"));
    refusals.expect("containerHash of another container", &envelope, "BAD_OBJECT").await;
    let stranger = PersonaKey::generate();
    let envelope = bad_object(&|c| {
        c.container_sign = TimestampedSignature::sign(&stranger, &c.container_hash, &t).as_str().to_owned()
    });
    refusals.expect("containerSign by another key", &envelope, "BAD_OBJECT").await;
    let envelope = bad_object(&|c| c.container_sign = b64("garbage"));
    refusals.expect("containerSign that does not decode", &envelope, "BAD_OBJECT").await;
    let forged = SignedTimestamp::issue(&stranger, Micros::now());
    let envelope = bad_object(&|c| {
        c.container_sign = TimestampedSignature::sign(genesis, &c.container_hash, &forged).as_str().to_owned()
    });
    refusals.expect("containerSign with a T of another key", &envelope, "BAD_OBJECT").await;

    refusals.assert_nothing_stored().await;
}

#[tokio::test]
async fn an_invitation_body_must_carry_every_key_as_a_non_empty_string() {
    let node = spawn_node().await;
    let mut refusals = Refusals::new(&node);
    let genesis = &node.genesis;
    let node_address = node.node_public.address();
    let t = node.timestamp().await;

    let full = envelopes::invitation_body(genesis, &node_address, &random_bytes(), "Gil");
    let full: BTreeMap<String, String> =
        serde_json::from_value(serde_json::to_value(&full).unwrap()).expect("an invitation body is a string map");
    assert_eq!(full.len(), 6);
    for key in full.keys() {
        for broken in ["missing", "empty"] {
            let mut body = full.clone();
            if broken == "missing" {
                body.remove(key);
            } else {
                body.insert(key.clone(), String::new());
            }
            let mut parts = invitation_parts(genesis, &node_address, &t);
            parts.body = to_msgpack(&body);
            let invitation = public_from_parts(genesis, &parts, &t);
            refusals.expect(&format!("invitation body with {key} {broken}"), &invitation, "INVALID_INVITE").await;
        }
    }
    // The unchanged map is a valid invitation: the refusals above were for the key alone.
    let mut parts = invitation_parts(genesis, &node_address, &t);
    parts.body = to_msgpack(&full);
    node.send_ok(&public_from_parts(genesis, &parts, &t)).await;

    refusals.assert_nothing_stored().await;
}

#[tokio::test]
async fn a_registration_must_answer_a_stored_invitation_with_its_key_and_name() {
    let node = spawn_node().await;
    let mut refusals = Refusals::new(&node);
    let genesis = &node.genesis;
    let node_vk = *node.node_public.verifying_key();
    let invitation = node.invite(genesis, "Hana of the hills").await;
    let t = node.timestamp().await;
    let hana = PersonaKey::generate();

    let register = |invite_msg_id: &str, invite_key: &[u8], name: &str, to: &pm_models::keys::VerifyingKey| {
        client::registration(&hana, "hana", invite_msg_id, invite_key, name, to, &t)
    };
    let (id, key, name) = (&invitation.envelope.message_hash, &invitation.invite_key, &invitation.name);

    refusals
        .expect_registration(
            "an unknown inviteMsgID",
            &register(&hash_text("nothing"), key, name, &node_vk),
            &hana,
            "INVITE_NOT_FOUND",
        )
        .await;
    let assertion = genesis_assertion(&node, &t);
    node.send_ok(&assertion).await;
    refusals
        .expect_registration(
            "inviteMsgID of an assertion",
            &register(&assertion.message_hash, key, name, &node_vk),
            &hana,
            "INVITE_NOT_FOUND",
        )
        .await;
    let bob = node.register_new("bob").await;
    let bob_registration = node.list_all("messageBySender", "sender", &bob.address().to_string(), 10).await;
    let bob_registration = bob_registration[0]["messageHash"].as_str().unwrap().to_owned();
    refusals
        .expect_registration(
            "inviteMsgID of a registration",
            &register(&bob_registration, key, name, &node_vk),
            &hana,
            "INVITE_NOT_FOUND",
        )
        .await;

    refusals
        .expect_registration(
            "a wrong invite key",
            &register(id, &random_bytes::<32>(), name, &node_vk),
            &hana,
            "INVALID_KEY_PROOF",
        )
        .await;
    refusals
        .expect_registration(
            "an invite key of 16 bytes",
            &register(id, &key[..16], name, &node_vk),
            &hana,
            "INVALID_KEY_PROOF",
        )
        .await;
    let elsewhere = *PersonaKey::generate().public().verifying_key();
    refusals
        .expect_registration(
            "boxes sealed to another key",
            &register(id, key, name, &elsewhere),
            &hana,
            "INVALID_KEY_PROOF",
        )
        .await;
    // A keyProof whose plaintext is not {"key": ...}.
    let mut body = pm_models::content::RegistrationBody {
        public_key: hana.public().as_str().to_owned(),
        public_nickname: "hana".into(),
        invite_msg_id: id.clone(),
        key_proof: b64(sealed_box::seal(&node_vk, b"just bytes")),
        invite_name: b64(sealed_box::seal(&node_vk, name.as_bytes())),
    };
    let envelope = client::public_envelope(&hana, &ContentParts::new(1, &body), &t);
    refusals.expect_registration("a keyProof without a key", &envelope, &hana, "INVALID_KEY_PROOF").await;

    refusals
        .expect_registration("another name", &register(id, key, "Hana of the sea", &node_vk), &hana, "INVALID_INVITE")
        .await;
    body.key_proof = b64(sealed_box::seal(&node_vk, &to_msgpack(&pm_models::content::KeyProof { key: b64(key) })));
    body.invite_name = b64(sealed_box::seal(&node_vk, b"hana of the hills"));
    let envelope = client::public_envelope(&hana, &ContentParts::new(1, &body), &t);
    refusals.expect_registration("the name in another case", &envelope, &hana, "INVALID_INVITE").await;

    refusals.assert_nothing_stored().await;

    // None of the refusals used the invitation, the key or the nickname.
    node.send_ok(&register(id, key, name, &node_vk)).await;
    assert_eq!(node.persona("nickname", "HANA").await["address"], hana.address().to_string());
}

#[tokio::test]
async fn a_registration_cannot_reuse_an_invitation_a_registered_key_or_a_taken_nickname() {
    let node = spawn_node().await;
    let mut refusals = Refusals::new(&node);
    let genesis = &node.genesis;

    let first = node.invite(genesis, "Ivy").await;
    let ivy = PersonaKey::generate();
    node.send_ok(&node.registration(&ivy, "Ivy", &first).await).await;

    let jon = PersonaKey::generate();
    let reuse = node.registration(&jon, "jon", &first).await;
    refusals.expect_registration("an invitation used by ivy", &reuse, &jon, "INVITE_ALREADY_USED").await;

    let spare = node.invite(genesis, "Spare").await;
    let again = node.registration(&ivy, "ivy the second", &spare).await;
    refusals.expect("ivy's key again", &again, "PERSONA_EXISTS").await;
    let genesis_again = node.registration(genesis, "genesis the second", &spare).await;
    refusals.expect("the genesis key", &genesis_again, "PERSONA_EXISTS").await;
    let node_key = node.node_key();
    let node_again = node.registration(&node_key, "node the second", &spare).await;
    refusals.expect("the node key", &node_again, "PERSONA_EXISTS").await;

    for taken in [
        "ivy",
        "IVY",
        "Teleferic",
        "teleferic",
        "TELEFERIC",
        "tElEfErIc",
        &crate::common::GENESIS_NICKNAME.to_lowercase(),
    ] {
        let registration = node.registration(&jon, taken, &spare).await;
        refusals.expect_registration(&format!("nickname {taken:?}"), &registration, &jon, "NICKNAME_TAKEN").await;
    }

    refusals.assert_nothing_stored().await;
    assert_eq!(node.persona("nickname", "ivy").await["address"], ivy.address().to_string());

    // The spare invitation, jon's key and a free nickname are all still available.
    node.send_ok(&node.registration(&jon, "jon", &spare).await).await;
    assert_eq!(node.persona("nickname", "Jon").await["address"], jon.address().to_string());
}

#[tokio::test]
async fn invalid_query_arguments_are_bad_queries() {
    let node = spawn_node().await;
    let genesis = node.genesis.address().to_string();
    let stored = genesis_assertion(&node, &node.timestamp().await);
    node.send_ok(&stored).await;

    let cases: Vec<(&str, String)> = vec![
        ("persona with two arguments", format!(r#"{{ persona(address: "{genesis}", nickname: "x") {{ address }} }}"#)),
        (
            "persona with three arguments",
            format!(r#"{{ persona(address: "{genesis}", pubkey: "x", nickname: "x") {{ address }} }}"#),
        ),
        ("persona without argument", "{ persona { address } }".into()),
        ("persona with a malformed address", r#"{ persona(address: "not-an-address") { address } }"#.into()),
        ("persona with a malformed pubkey", r#"{ persona(pubkey: "bm90IGEga2V5") { address } }"#.into()),
        ("limit 0", format!(r#"{{ messageBySender(sender: "{genesis}", limit: 0) {{ messageHash }} }}"#)),
        ("limit 1001", format!(r#"{{ messageBySender(sender: "{genesis}", limit: 1001) {{ messageHash }} }}"#)),
        ("limit -1", format!(r#"{{ messageByReader(reader: "{genesis}", limit: -1) {{ messageHash }} }}"#)),
        (
            "an unknown after",
            format!(r#"{{ messageBySender(sender: "{genesis}", after: "{}") {{ messageHash }} }}"#, hash_text("none")),
        ),
        (
            "an after that is no hash",
            format!(r#"{{ messageBySender(sender: "{genesis}", after: "xyz") {{ messageHash }} }}"#),
        ),
        ("a malformed sender", r#"{ messageBySender(sender: "12345") { messageHash } }"#.into()),
        ("a malformed reader", r#"{ messageByReader(reader: "") { messageHash } }"#.into()),
        ("a malformed hash", r#"{ messageByHash(messageHash: "abc") { messageHash } }"#.into()),
        ("a malformed object hash", r#"{ objectByHash(objectHash: "abc") { objectHash } }"#.into()),
        ("a malformed date", r#"{ messageByDate(date: "2024-13-01") { messageHash } }"#.into()),
        ("a date that is no day", r#"{ messageByDate(date: "yesterday") { messageHash } }"#.into()),
    ];
    for (what, query) in cases {
        let response = node.graphql(&query, json!({})).await;
        assert_eq!(error_code(&response).as_deref(), Some("BAD_QUERY"), "{what}: {response}");
    }

    // Over-long addresses are refused unread, with a sentence that says so
    // (section 2: at most 36 characters; Base58 decoding is quadratic).
    let long_address = "2".repeat(80_000);
    for field in ["persona(address: $a) { address }", "messageBySender(sender: $a) { messageHash }"] {
        let query = format!("query($a: Address!) {{ {field} }}");
        let response = node.graphql(&query, json!({ "a": long_address })).await;
        assert_eq!(error_code(&response).as_deref(), Some("BAD_QUERY"), "{field}: {response}");
        let sentence = response["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(sentence.contains("longer than 36 characters"), "{field}: {sentence}");
    }

    // The bounds themselves are valid.
    for limit in [1, 1000] {
        let query = format!(r#"{{ messageBySender(sender: "{genesis}", limit: {limit}) {{ messageHash }} }}"#);
        let data = node.data(&query, json!({})).await;
        assert_eq!(data["messageBySender"].as_array().unwrap().len(), 1, "limit {limit}");
    }
}
