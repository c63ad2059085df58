//! The life of a persona (PROTOCOL.md sections 6 and 10): genesis invites,
//! alice registers with the invitation and asserts something readable by
//! genesis and herself, and every query returns exactly what was sent.

use crate::common::envelopes::{self, object_with_container};
use crate::common::{assert_date, spawn_node, TestNode, GENESIS_NICKNAME, PERSONA_FIELDS};
use pm_models::client;
use pm_models::envelope::Envelope;
use pm_models::keys::PersonaKey;
use pm_models::signed_timestamp::Freshness;
use pm_models::time::Micros;
use serde_json::{json, Value};

/// A persona as the API writes it.
fn persona_json(key: &PersonaKey, nickname: &str, created_at: &str) -> Value {
    json!({
        "address": key.address().to_string(),
        "pubkey": key.public().to_wire(),
        "nickname": nickname,
        "createdAt": created_at,
    })
}

/// An envelope as the API writes it: what was sent, with the sender and
/// every ACL reader resolved to their personas.
fn envelope_json(envelope: &Envelope, sender: &Value, readers: &[&Value], created_at: &str) -> Value {
    assert_eq!(envelope.acl.len(), readers.len(), "one persona per ACL rule");
    json!({
        "sender": sender,
        "messageType": envelope.message_type.name(),
        "messageHash": envelope.message_hash,
        "messageSign": envelope.message_sign,
        "dossierHash": envelope.dossier_hash,
        "bodyHash": envelope.body_hash,
        "ACL": envelope.acl.iter().zip(readers).map(|(rule, reader)| json!({ "reader": reader, "key": rule.key }))
            .collect::<Vec<_>>(),
        "objects": serde_json::to_value(&envelope.objects).expect("objects serialize"),
        "message": envelope.message,
        "createdAt": created_at,
    })
}

fn hashes(list: &[Value]) -> Vec<String> {
    list.iter().map(|m| m["messageHash"].as_str().expect("a listed message has a hash").to_owned()).collect()
}

fn utc_day(micros: Micros) -> String {
    micros.to_rfc3339()[..10].to_owned()
}

async fn listing(node: &TestNode, field: &str, argument: &str, value: &str) -> Vec<Value> {
    node.list_all(field, argument, value, 1000).await
}

#[tokio::test]
async fn an_invited_persona_registers_and_asserts_and_every_query_returns_exactly_what_was_sent() {
    let node = spawn_node().await;
    let day_at_start = utc_day(Micros::now());
    let genesis = &node.genesis;
    let node_key = node.node_key();

    // The node persona and a fresh timestamp (section 3).
    let data =
        node.data(&format!("{{ teleferic {{ persona {{ {PERSONA_FIELDS} }} signedTimestamp }} }}"), json!({})).await;
    let node_persona = data["teleferic"]["persona"].clone();
    assert_date(&node_persona["createdAt"]);
    assert_eq!(node_persona, persona_json(&node_key, "Teleferic", node_persona["createdAt"].as_str().unwrap()));
    assert_eq!(node_persona["address"], node.server.node_address.as_str(), "the address pm serve printed");
    let t = pm_models::signed_timestamp::SignedTimestamp::parse(data["teleferic"]["signedTimestamp"].as_str().unwrap())
        .expect("signedTimestamp is a T");
    t.verify_node_signature(node_key.public().verifying_key()).expect("T is signed by DIR/node.key");
    t.check_fresh(Micros::now(), Freshness::default()).expect("T is fresh");

    let genesis_persona = node.persona("address", &genesis.address().to_string()).await;
    assert_date(&genesis_persona["createdAt"]);
    assert_eq!(
        genesis_persona,
        persona_json(genesis, GENESIS_NICKNAME, genesis_persona["createdAt"].as_str().unwrap())
    );

    // Genesis invites.
    let invitation = client::invitation(
        genesis,
        &node.node_public.address(),
        &node.server.url,
        "Alice of the valley",
        "peer-mountain",
        &t,
    );
    let accepted_invitation = node.send(&invitation.envelope).await.expect("the invitation is accepted");
    let invitation_at = assert_date(&accepted_invitation["createdAt"]);
    let invitation_json = envelope_json(&invitation.envelope, &genesis_persona, &[], &invitation_at);
    assert_eq!(accepted_invitation, invitation_json, "sendMessage returns the accepted envelope");
    assert_eq!(node.wait_readable(&invitation.envelope.message_hash).await, invitation_json);

    // Alice registers with a Unicode nickname (case-insensitive lookups below).
    let alice = PersonaKey::generate();
    let nickname = "Alice Ñandú";
    let registration = client::registration(
        &alice,
        nickname,
        &invitation.envelope.message_hash,
        &invitation.invite_key,
        &invitation.name,
        node.node_public.verifying_key(),
        &t,
    );
    let accepted_registration = node.send(&registration).await.expect("the registration is accepted");
    let registration_at = assert_date(&accepted_registration["createdAt"]);
    // Section 10: the sender of an accepted registration is the persona its body describes.
    let alice_persona = persona_json(&alice, nickname, &registration_at);
    let registration_json = envelope_json(&registration, &alice_persona, &[], &registration_at);
    assert_eq!(accepted_registration, registration_json);
    assert_eq!(node.wait_readable(&registration.message_hash).await, registration_json);

    // Alice asserts, readable by genesis and herself, with one object in a container.
    let t = node.timestamp().await;
    let object = object_with_container(&alice, b"a photograph of the summit", &t);
    let assertion = envelopes::assertion(&alice, &[genesis.public(), alice.public()], vec![object.clone()], &t);
    let accepted_assertion = node.send(&assertion).await.expect("the assertion is accepted");
    let assertion_at = assert_date(&accepted_assertion["createdAt"]);
    let assertion_json = envelope_json(&assertion, &alice_persona, &[&genesis_persona, &alice_persona], &assertion_at);
    assert_eq!(accepted_assertion, assertion_json);
    let stored = node.wait_readable(&assertion.message_hash).await;
    assert_eq!(stored, assertion_json);
    assert_eq!(stored["messageSign"].as_str(), Some(assertion.message_sign.as_str()), "messageSign byte for byte");
    let day_at_end = utc_day(Micros::now());

    // persona: by address, by pubkey (wire, PEM, PEM with CRLF and spaces), by nickname in any case.
    assert_eq!(node.persona("address", &alice.address().to_string()).await, alice_persona);
    assert_eq!(node.persona("pubkey", &alice.public().to_wire()).await, alice_persona);
    assert_eq!(node.persona("pubkey", alice.public().as_str()).await, alice_persona);
    let crlf = format!("  {}\r\n", alice.public().as_str().replace('\n', "\r\n"));
    assert_eq!(node.persona("pubkey", &crlf).await, alice_persona, "a pubkey argument is normalised");
    for spelling in ["Alice Ñandú", "alice ñandú", "ALICE ÑANDÚ", "aLiCe ñAnDú"] {
        assert_eq!(node.persona("nickname", spelling).await, alice_persona, "nickname {spelling:?}");
    }
    assert_eq!(node.persona("nickname", &GENESIS_NICKNAME.to_uppercase()).await, genesis_persona);
    assert_eq!(node.persona("nickname", "tELEFERIC").await, node_persona);
    assert!(node.persona("nickname", "Alice").await.is_null(), "a nickname lookup matches the whole nickname");
    assert!(node.persona("address", &PersonaKey::generate().address().to_string()).await.is_null());

    // messageBySender, page by page with limit 1; an empty page ends the listing.
    let by_alice = node.list_all("messageBySender", "sender", &alice.address().to_string(), 1).await;
    assert_eq!(by_alice, vec![registration_json.clone(), assertion_json.clone()]);
    assert_eq!(listing(&node, "messageBySender", "sender", &alice.address().to_string()).await, by_alice);
    assert_eq!(
        listing(&node, "messageBySender", "sender", &genesis.address().to_string()).await,
        vec![invitation_json.clone()]
    );
    let after_last = node
        .data(
            "query($s: Address!, $a: String) { messageBySender(sender: $s, limit: 1, after: $a) { messageHash } }",
            json!({ "s": alice.address().to_string(), "a": assertion.message_hash }),
        )
        .await;
    assert_eq!(after_last["messageBySender"], json!([]), "the page after the last message is empty");

    // messageByReader: both ACL readers see the assertion; the node is no reader.
    for reader in [genesis, &alice] {
        let by_reader = node.list_all("messageByReader", "reader", &reader.address().to_string(), 1).await;
        assert_eq!(by_reader, vec![assertion_json.clone()], "reader {}", reader.address());
    }
    assert_eq!(listing(&node, "messageByReader", "reader", &node_key.address().to_string()).await, Vec::<Value>::new());

    // messageByDate: each message is listed on the UTC day of its createdAt.
    let sent =
        [(&invitation_json, &invitation_at), (&registration_json, &registration_at), (&assertion_json, &assertion_at)];
    for (message, created_at) in sent {
        let day = &created_at[..10];
        assert!(day == day_at_start || day == day_at_end, "createdAt {created_at} is today (UTC)");
        let on_day = listing(&node, "messageByDate", "date", day).await;
        assert_eq!(on_day.iter().filter(|m| *m == message).count(), 1, "{} on {day}", message["messageHash"]);
    }
    if day_at_start == day_at_end {
        // A fresh node holds exactly these three messages, ordered by createdAt then hash.
        let mut expected = vec![invitation_json.clone(), registration_json.clone(), assertion_json.clone()];
        expected.sort_by_key(|m| {
            (m["createdAt"].as_str().unwrap().to_owned(), m["messageHash"].as_str().unwrap().to_owned())
        });
        let paged = node.list_all("messageByDate", "date", &day_at_start, 1).await;
        assert_eq!(hashes(&paged), hashes(&expected));
        assert_eq!(paged, expected);
        let unlimited = node
            .data("query($d: Date!) { messageByDate(date: $d) { messageHash } }", json!({ "d": day_at_start }))
            .await;
        assert_eq!(hashes(unlimited["messageByDate"].as_array().unwrap()), hashes(&expected), "default limit");
    }
    assert_eq!(listing(&node, "messageByDate", "date", "2001-01-01").await, Vec::<Value>::new());

    // objectByHash returns the object with its container.
    let query = "query($h: SHA256!) { objectByHash(objectHash: $h) { objectHash metaHashes \
                 container { containerHash containerSign objectContainer } } }";
    let found = node.data(query, json!({ "h": object.object_hash })).await;
    assert_eq!(found["objectByHash"], serde_json::to_value(&object).unwrap());
    let missing = node.data(query, json!({ "h": pm_models::codec::hash_text("no such object") })).await;
    assert!(missing["objectByHash"].is_null());
    let missing = node
        .data(
            "query($h: SHA256!) { messageByHash(messageHash: $h) { messageHash } }",
            json!({ "h": pm_models::codec::hash_text("no such message") }),
        )
        .await;
    assert!(missing["messageByHash"].is_null());
}

#[tokio::test]
async fn an_attestation_and_an_object_without_container_are_stored_as_sent() {
    let node = spawn_node().await;
    let bob = node.register_new("bob").await;
    let t = node.timestamp().await;
    let objects = vec![envelopes::bare_object(), object_with_container(&node.genesis, b"deed", &t)];
    let attestation =
        envelopes::private(&node.genesis, pm_models::MessageType::Attestation, &[bob.public()], objects, &t);
    let accepted = node.send_ok(&attestation).await;
    let stored = node.message(&attestation.message_hash).await;
    assert_eq!(stored, accepted);
    assert_eq!(stored["messageType"], "ATTESTATION");
    assert_eq!(stored["objects"], serde_json::to_value(&attestation.objects).unwrap());
    assert_eq!(stored["ACL"][0]["reader"]["address"], bob.address().to_string());
    assert_eq!(stored["ACL"][0]["key"], attestation.acl[0].key.as_str());
    assert_eq!(stored["sender"]["nickname"], GENESIS_NICKNAME);
}
