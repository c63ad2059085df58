//! The cases made at test time, because they need fresh node timestamps, the
//! node's key or fresh personas: every code of section 7, non-canonical
//! signatures and small-order keys, forged and stale `T`s, replays, and
//! wrong JSON types in the GraphQL input.

use crate::common::envelopes::{
    self, acl_rule_for_stranger, bare_object, invitation_parts, object_with_container, public_from_parts, rehash,
    resign, sign_with_raw_timestamp,
};
use crate::common::{spawn_node, TestNode};
use crate::runner::{Run, ACCEPTED, NOT_FOUND};
use crate::slots::{invitation_content, public_envelope};
use pm_models::client::{self, random_bytes, ContentParts};
use pm_models::codec::{b64, hash_text, to_msgpack, unb64};
use pm_models::content::{dossier_hash, RegistrationBody};
use pm_models::envelope::{Envelope, ObjectEntry};
use pm_models::keys::PersonaKey;
use pm_models::signed_timestamp::SignedTimestamp;
use pm_models::time::Micros;
use pm_models::timestamped_signature::TimestampedSignature;
use pm_models::{MessageType, RejectionCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A change made to a valid envelope input.
type Change = fn(&mut Value);

/// The order of the Ed25519 group, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// The Ed25519 base point, compressed.
const BASE_POINT: &str = "5866666666666666666666666666666666666666666666666666666666666666";

/// Points of small order (the eight of the torsion subgroup), and
/// non-canonical encodings of some of them (y ≥ p, or x = 0 with the sign bit).
const SMALL_ORDER_KEYS: [(&str, &str); 12] = [
    ("the identity", "0100000000000000000000000000000000000000000000000000000000000000"),
    ("the point of order 2", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    ("a point of order 4", "0000000000000000000000000000000000000000000000000000000000000000"),
    ("the other point of order 4", "0000000000000000000000000000000000000000000000000000000000000080"),
    ("a point of order 8", "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
    ("a second point of order 8", "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"),
    ("a third point of order 8", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
    ("a fourth point of order 8", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"),
    ("the identity with the sign bit set", "0100000000000000000000000000000000000000000000000000000000000080"),
    ("the identity as y = p + 1", "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    ("the order-4 point as y = p", "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    ("the order-2 point with the sign bit set", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
];

/// `a + b` on 32-byte little-endian numbers (no carry out: s < 2^253).
fn add_le(a: &[u8], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = sum as u8;
        carry = sum >> 8;
    }
    out
}

/// The signature inside a `Sign` text (an `S`, a `T` or an `R`).
fn signature_of(sign: &str) -> (Vec<u8>, String) {
    let parsed = TimestampedSignature::parse(sign).expect("a valid Sign");
    (unb64(parsed.signature_b64()).expect("base64"), parsed.timestamp_text().to_owned())
}

/// The same `Sign` value with its signature replaced by `f(signature)`.
fn with_signature(sign: &str, f: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let (signature, timestamp) = signature_of(sign);
    TimestampedSignature::from_parts(&b64(f(&signature)), &timestamp)
}

/// `R || s + L`: the same signature with a non-canonical scalar.
fn plus_l(signature: &[u8]) -> Vec<u8> {
    [&signature[..32], &add_le(&signature[32..], &L)[..]].concat()
}

/// A `T` whose timestamp text is `text`, signed by `key` over `signed`.
fn raw_t(key: &PersonaKey, text: &str, signed: &str) -> String {
    TimestampedSignature::from_parts(&b64(key.sign(signed.as_bytes())), text)
}

fn seconds(offset: i64) -> Micros {
    Micros(Micros::now().0 + offset * 1_000_000)
}

fn assertion(node: &TestNode, t: &SignedTimestamp) -> Envelope {
    envelopes::assertion(&node.genesis, &[node.genesis.public()], vec![], t)
}

/// An assertion from genesis whose `messageSign` carries `t_text` as its `T`.
fn assertion_with_t(node: &TestNode, t_text: &str) -> Envelope {
    let t = SignedTimestamp::issue(&node.node_key(), Micros::now());
    let mut envelope = assertion(node, &t);
    envelope.message_sign = sign_with_raw_timestamp(&node.genesis, &envelope.message_hash, t_text);
    envelope
}

/// A registration of `key` for the run's invitation, its body changed by `change`.
fn registration_body(
    node: &TestNode,
    invitation: &client::Invitation,
    key: &PersonaKey,
    nickname: &str,
) -> RegistrationBody {
    let node_vk = node.node_public.verifying_key();
    RegistrationBody {
        public_key: key.public().as_str().to_owned(),
        public_nickname: nickname.to_owned(),
        invite_msg_id: invitation.envelope.message_hash.clone(),
        key_proof: b64(pm_models::sealed_box::seal(
            node_vk,
            &to_msgpack(&pm_models::content::KeyProof { key: b64(invitation.invite_key) }),
        )),
        invite_name: b64(pm_models::sealed_box::seal(node_vk, invitation.name.as_bytes())),
    }
}

#[tokio::test]
async fn every_code_of_section_7_but_unavailable_is_answered_to_an_envelope_built_to_get_it() {
    let node = spawn_node().await;
    let mut run = Run::new(&node);
    let genesis = &node.genesis;
    let node_address = node.node_public.address();
    let t = node.timestamp().await;
    let f = "codes";

    // Shape and limits.
    let e = Envelope { sender: "x".into(), ..assertion(&node, &t) };
    run.send(f, "a sender that is no address", &e, None, "MALFORMED_ENVELOPE").await;
    let mut e = assertion(&node, &t);
    e.acl = (0..257).map(|_| client::acl_rule_for(genesis.public().verifying_key(), &random_bytes())).collect();
    run.send(f, "257 ACL rules", &e, None, "PAYLOAD_TOO_LARGE").await;
    e.acl.truncate(256);
    run.send(f, "256 ACL rules", &e, None, ACCEPTED).await;
    let e = envelopes::assertion(genesis, &[genesis.public()], (0..65).map(|_| bare_object()).collect(), &t);
    run.send(f, "65 objects", &e, None, "PAYLOAD_TOO_LARGE").await;
    let e = envelopes::assertion(genesis, &[genesis.public()], (0..64).map(|_| bare_object()).collect(), &t);
    run.send(f, "64 objects", &e, None, ACCEPTED).await;
    for (n, code) in [(65, "PAYLOAD_TOO_LARGE"), (64, ACCEPTED)] {
        let object = ObjectEntry {
            object_hash: b64(random_bytes::<32>()),
            meta_hashes: (0..n).map(|_| b64(random_bytes::<32>())).collect(),
            container: None,
        };
        let e = envelopes::assertion(genesis, &[genesis.public()], vec![object], &t);
        run.send(f, &format!("{n} meta hashes"), &e, None, code).await;
    }
    // 1 MiB of base64 is 786,432 bytes; one more group of four characters is over.
    for (bytes, code) in [(786_435, "PAYLOAD_TOO_LARGE"), (786_432, ACCEPTED)] {
        let mut e = assertion(&node, &t);
        e.message = b64(vec![0x42; bytes]);
        rehash(&mut e, genesis, &t);
        run.send(f, &format!("a message of {} base64 characters", e.message.len()), &e, None, code).await;
        let object = object_with_container(genesis, &vec![0x43; bytes], &t);
        let e = envelopes::assertion(genesis, &[genesis.public()], vec![object], &t);
        run.send(f, &format!("a container of {bytes} bytes"), &e, None, code).await;
    }

    // Unsupported types and body types.
    for message_type in [MessageType::System, MessageType::Service, MessageType::Delegation] {
        let e = envelopes::private(genesis, message_type, &[genesis.public()], vec![], &t);
        run.send(f, message_type.name(), &e, None, "UNSUPPORTED_MESSAGE_TYPE").await;
    }
    for body_type in [2u64, 3, 4, 5, 255, u64::MAX] {
        let e = client::public_envelope(genesis, &ContentParts::new(body_type, &BTreeMap::from([("k", "v")])), &t);
        run.send(f, &format!("bodyType {body_type}"), &e, None, "UNSUPPORTED_MESSAGE_TYPE").await;
    }

    // Duplicates, senders, hashes.
    let stored = assertion(&node, &t);
    run.send(f, "an assertion to send again", &stored, None, ACCEPTED).await;
    run.send(f, "the same assertion again", &stored, None, "DUPLICATE_MESSAGE").await;
    let stranger = PersonaKey::generate();
    let e = envelopes::assertion(&stranger, &[genesis.public()], vec![], &t);
    run.send(f, "an assertion from an unregistered key", &e, None, "UNKNOWN_SENDER").await;
    let invitation = node.invite(genesis, "codes").await;
    run.setup(&invitation.envelope.message_hash);
    let key = PersonaKey::generate();
    let mut e = node.registration(&key, "codes-mismatch", &invitation).await;
    e.sender = genesis.address().to_string();
    run.send(f, "a registration sent as genesis", &e, Some(&key.address().to_string()), "SENDER_ADDRESS_MISMATCH")
        .await;
    let mut e = assertion(&node, &t);
    e.message_hash = hash_text("something else");
    resign(&mut e, genesis, &t);
    run.send(f, "messageHash of another message", &e, None, "MESSAGE_HASH_MISMATCH").await;
    let mut e = public_from_parts(genesis, &invitation_parts(genesis, &node_address, &t), &t);
    e.body_hash = hash_text("another body");
    run.send(f, "bodyHash of another body", &e, None, "BODY_HASH_MISMATCH").await;
    let mut e = public_from_parts(genesis, &invitation_parts(genesis, &node_address, &t), &t);
    e.dossier_hash = b64(random_bytes::<32>());
    run.send(f, "dossierHash of nothing", &e, None, "DOSSIER_HASH_MISMATCH").await;
    for length in [0usize, 1, 32, 39, 41, 80] {
        let mut parts = invitation_parts(genesis, &node_address, &t);
        parts.salt = vec![7; length];
        let e = public_from_parts(genesis, &parts, &t);
        run.send(f, &format!("a dossierSalt of {length} bytes"), &e, None, "BAD_DOSSIER_SALT").await;
    }

    // Timestamps and signatures.
    let forged = SignedTimestamp::issue(&stranger, Micros::now());
    run.send(f, "a T signed by a stranger", &assertion(&node, &forged), None, "BAD_TIMESTAMP").await;
    let old = SignedTimestamp::issue(&node.node_key(), seconds(-500));
    run.send(f, "a T 500 s old", &assertion(&node, &old), None, "TIMESTAMP_EXPIRED").await;
    let ahead = SignedTimestamp::issue(&node.node_key(), seconds(120));
    run.send(f, "a T 120 s ahead", &assertion(&node, &ahead), None, "TIMESTAMP_IN_FUTURE").await;
    let mut e = assertion(&node, &t);
    resign(&mut e, &stranger, &t);
    run.send(f, "messageSign by a stranger", &e, None, "BAD_SIGNATURE").await;

    // ACL and objects.
    let mut e = assertion(&node, &t);
    e.acl.push(acl_rule_for_stranger());
    run.send(f, "a reader that is not registered", &e, None, "UNKNOWN_ACL_READER").await;
    let mut object = object_with_container(genesis, b"container", &t);
    object.container.as_mut().unwrap().object_container = b64("another container");
    let e = envelopes::assertion(genesis, &[genesis.public()], vec![object], &t);
    run.send(f, "a container of another hash", &e, None, "BAD_OBJECT").await;

    // Invitations and registrations.
    let mut parts = invitation_parts(genesis, &node_address, &t);
    parts.body = to_msgpack(&BTreeMap::from([("inviteName", "x")]));
    run.send(f, "an invitation body with one key", &public_from_parts(genesis, &parts, &t), None, "INVALID_INVITE")
        .await;
    let key = PersonaKey::generate();
    let address = key.address().to_string();
    let node_vk = *node.node_public.verifying_key();
    let register = |invite: &str, invite_key: &[u8], name: &str, nickname: &str| {
        client::registration(&key, nickname, invite, invite_key, name, &node_vk, &t)
    };
    let (id, ik, name) = (&invitation.envelope.message_hash, &invitation.invite_key, &invitation.name);
    run.send(f, "another name", &register(id, ik, "not the name", "codes-a"), Some(&address), "INVALID_INVITE").await;
    run.send(
        f,
        "an unknown invitation",
        &register(&hash_text("none"), ik, name, "codes-a"),
        Some(&address),
        "INVITE_NOT_FOUND",
    )
    .await;
    run.send(
        f,
        "a wrong invite key",
        &register(id, &random_bytes::<32>(), name, "codes-a"),
        Some(&address),
        "INVALID_KEY_PROOF",
    )
    .await;
    run.send(f, "Teleferic's nickname", &register(id, ik, name, "tElEfErIc"), Some(&address), "NICKNAME_TAKEN").await;
    run.send(
        f,
        "genesis's nickname",
        &register(id, ik, name, &crate::common::GENESIS_NICKNAME.to_uppercase()),
        Some(&address),
        "NICKNAME_TAKEN",
    )
    .await;
    let accepted = register(id, ik, name, "codes-a");
    run.send(f, "a valid registration", &accepted, Some(&address), ACCEPTED).await;
    node.wait_readable(&accepted.message_hash).await;
    let other = PersonaKey::generate();
    let reuse = client::registration(&other, "codes-b", id, ik, name, &node_vk, &t);
    run.send(f, "the invitation again", &reuse, Some(&other.address().to_string()), "INVITE_ALREADY_USED").await;
    let spare = node.invite(genesis, "spare").await;
    run.setup(&spare.envelope.message_hash);
    let again = client::registration(
        &key,
        "codes-c",
        &spare.envelope.message_hash,
        &spare.invite_key,
        &spare.name,
        &node_vk,
        &t,
    );
    run.send(f, "the registered key again", &again, None, "PERSONA_EXISTS").await;
    let taken = client::registration(
        &other,
        "CODES-A",
        &spare.envelope.message_hash,
        &spare.invite_key,
        &spare.name,
        &node_vk,
        &t,
    );
    run.send(f, "a taken nickname in capitals", &taken, Some(&other.address().to_string()), "NICKNAME_TAKEN").await;

    // Nicknames (section 5).
    for (what, nickname, code) in [
        ("a soft hyphen", "Tele\u{AD}feric", "MALFORMED_ENVELOPE"),
        ("a zero-width space", "Tele\u{200B}feric", "MALFORMED_ENVELOPE"),
        ("a right-to-left override", "abc\u{202E}def", "MALFORMED_ENVELOPE"),
        ("a byte order mark", "\u{FEFF}nick", "MALFORMED_ENVELOPE"),
        ("a tab", "a\tb", "MALFORMED_ENVELOPE"),
        ("a newline", "a\nb", "MALFORMED_ENVELOPE"),
        ("a NUL", "a\0b", "MALFORMED_ENVELOPE"),
        ("a DEL", "a\u{7F}b", "MALFORMED_ENVELOPE"),
        ("a leading space", " nick", "MALFORMED_ENVELOPE"),
        ("a trailing no-break space", "nick\u{A0}", "MALFORMED_ENVELOPE"),
        ("a trailing ideographic space", "nick\u{3000}", "MALFORMED_ENVELOPE"),
        ("65 characters", &"n".repeat(65), "MALFORMED_ENVELOPE"),
        ("65 four-byte characters", &"\u{1F600}".repeat(65), "MALFORMED_ENVELOPE"),
        ("Teleferic in capitals", "TELEFERIC", "NICKNAME_TAKEN"),
    ] {
        let e = client::registration(
            &other,
            nickname,
            &spare.envelope.message_hash,
            &spare.invite_key,
            &spare.name,
            &node_vk,
            &t,
        );
        run.send(f, &format!("a nickname with {what}"), &e, Some(&other.address().to_string()), code).await;
    }
    let longest = "\u{1F600}".repeat(64);
    let e = client::registration(
        &other,
        &longest,
        &spare.envelope.message_hash,
        &spare.invite_key,
        &spare.name,
        &node_vk,
        &t,
    );
    run.send(f, "a nickname of 64 four-byte characters", &e, Some(&other.address().to_string()), ACCEPTED).await;

    // Queries.
    let genesis_address = genesis.address().to_string();
    run.query(
        f,
        "persona with two arguments",
        "query($a: Address!) { persona(address: $a, nickname: \"x\") { address } }",
        json!({ "a": genesis_address }),
        "BAD_QUERY",
    )
    .await;
    for limit in [0, -1, 1001, i32::MAX] {
        let query = "query($a: Address!, $l: Int) { messageBySender(sender: $a, limit: $l) { messageHash } }";
        run.query(f, &format!("limit {limit}"), query, json!({ "a": genesis_address, "l": limit }), "BAD_QUERY").await;
    }
    run.query(
        f,
        "limit past Int",
        "query($l: Int) { messageByDate(date: \"2024-01-01\", limit: $l) { messageHash } }",
        json!({ "l": 1_i64 << 40 }),
        "MALFORMED_ENVELOPE",
    )
    .await;
    run.query(f, "an unknown nickname", "{ persona(nickname: \"nobody at all\") { address } }", json!({}), NOT_FOUND)
        .await;

    let mut missing: Vec<&str> =
        RejectionCode::ALL.iter().map(|c| c.as_str()).filter(|c| !run.codes.contains(*c)).collect();
    missing.retain(|c| *c != "UNAVAILABLE");
    assert!(missing.is_empty(), "no case of this test got {missing:?}");
    run.finish().await;
}

#[tokio::test]
async fn non_canonical_signatures_and_small_order_keys_are_refused() {
    let node = spawn_node().await;
    let mut run = Run::new(&node);
    let genesis = &node.genesis;
    let node_address = node.node_public.address();
    let t = node.timestamp().await;
    let f = "signatures";

    // s + L: the same signature, with a scalar that is not reduced.
    let mut e = assertion(&node, &t);
    e.message_sign = with_signature(&e.message_sign, plus_l);
    run.send(f, "messageSign with s + L", &e, None, "BAD_SIGNATURE").await;
    let mut e = assertion(&node, &t);
    e.message_sign = with_signature(&e.message_sign, |s| [&s[..63], &[s[63] | 0x80][..]].concat());
    run.send(f, "messageSign with the top bit of s set", &e, None, "BAD_SIGNATURE").await;
    let t_plus_l = with_signature(t.as_str(), plus_l);
    let mut e = assertion(&node, &t);
    e.message_sign = sign_with_raw_timestamp(genesis, &e.message_hash, &t_plus_l);
    run.send(f, "messageSign whose T has s + L", &e, None, "BAD_TIMESTAMP").await;
    for (what, signature) in [
        ("all zeros", vec![0u8; 64]),
        ("all ones", vec![0xff; 64]),
        ("the identity as R and s = 0", [hex::decode("01").unwrap(), vec![0; 63]].concat()),
        ("the base point as R and s = 1", [hex::decode(BASE_POINT).unwrap(), vec![1], vec![0; 31]].concat()),
    ] {
        let mut e = assertion(&node, &t);
        e.message_sign = with_signature(&e.message_sign, |_| signature.clone());
        run.send(f, &format!("messageSign of {what}"), &e, None, "BAD_SIGNATURE").await;
    }
    for length in [0usize, 32, 63, 65, 128] {
        let mut e = assertion(&node, &t);
        e.message_sign = with_signature(&e.message_sign, |s| s.iter().copied().cycle().take(length).collect());
        run.send(f, &format!("a signature of {length} bytes"), &e, None, "MALFORMED_ENVELOPE").await;
        let mut e = assertion(&node, &t);
        let short_t = with_signature(t.as_str(), |s| s.iter().copied().cycle().take(length).collect());
        e.message_sign = sign_with_raw_timestamp(genesis, &e.message_hash, &short_t);
        run.send(f, &format!("a T's signature of {length} bytes"), &e, None, "BAD_TIMESTAMP").await;
    }

    // The content's signature and its T.
    let (mut content, salt) = invitation_content(genesis, &node_address, &t, None);
    content.signature = with_signature(&content.signature, plus_l);
    let packed = content.pack();
    let e = public_envelope(genesis, b64(&packed), hash_text(&content.message_body), dossier_hash(&salt, &packed), &t);
    run.send(f, "a content signature with s + L", &e, None, "BAD_SIGNATURE").await;
    let (mut content, salt) = invitation_content(genesis, &node_address, &t, None);
    content.signature = sign_with_raw_timestamp(genesis, &hash_text(&content.message_body), &t_plus_l);
    let packed = content.pack();
    let e = public_envelope(genesis, b64(&packed), hash_text(&content.message_body), dossier_hash(&salt, &packed), &t);
    run.send(f, "a content signature whose T has s + L", &e, None, "BAD_TIMESTAMP").await;

    // Containers.
    let mut object = object_with_container(genesis, b"s plus L", &t);
    let container = object.container.as_mut().unwrap();
    container.container_sign = with_signature(&container.container_sign, plus_l);
    let e = envelopes::assertion(genesis, &[genesis.public()], vec![object], &t);
    run.send(f, "a containerSign with s + L", &e, None, "BAD_OBJECT").await;
    let mut object = object_with_container(genesis, b"T plus L", &t);
    let container = object.container.as_mut().unwrap();
    container.container_sign = sign_with_raw_timestamp(genesis, &container.container_hash, &t_plus_l);
    let e = envelopes::assertion(genesis, &[genesis.public()], vec![object], &t);
    run.send(f, "a containerSign whose T has s + L", &e, None, "BAD_OBJECT").await;

    // Registrations of small-order keys, with the signature that such a key
    // "verifies" for any message under lax verification: R = B, s = 1
    // ([1]B = R + [k]·identity).
    let invitation = node.invite(genesis, "small order").await;
    run.setup(&invitation.envelope.message_hash);
    let universal = [hex::decode(BASE_POINT).unwrap(), vec![1], vec![0; 31]].concat();
    for (what, hex_key) in SMALL_ORDER_KEYS {
        let der = [hex::decode("302a300506032b6570032100").unwrap(), hex::decode(hex_key).unwrap()].concat();
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----", b64(&der));
        let stand_in = PersonaKey::generate();
        let mut body = registration_body(&node, &invitation, &stand_in, &format!("small {}", &hex_key[..8]));
        body.public_key = pem.clone();
        let body_bytes = to_msgpack(&body);
        let (mut content, salt) = invitation_content(genesis, &node_address, &t, Some(body_bytes));
        content.body_type = 1;
        let body_hash = hash_text(&content.message_body);
        content.signature = TimestampedSignature::from_parts(&b64(&universal), t.as_str());
        let packed = content.pack();
        let message = b64(&packed);
        let address = pm_models::Address::of_pem_text(&pem).to_string();
        let e = Envelope {
            sender: address.clone(),
            message_type: MessageType::Registration,
            message_hash: hash_text(&message),
            message_sign: TimestampedSignature::from_parts(&b64(&universal), t.as_str()),
            dossier_hash: dossier_hash(&salt, &packed),
            body_hash,
            acl: vec![],
            objects: vec![],
            message,
        };
        run.send(f, &format!("a registration of {what}"), &e, Some(&address), "MALFORMED_ENVELOPE").await;
        run.query(
            f,
            &format!("persona(pubkey:) of {what}"),
            "query($k: PublicKey!) { persona(pubkey: $k) { address } }",
            json!({ "k": b64(pem.as_bytes()) }),
            "BAD_QUERY",
        )
        .await;
    }
    run.finish().await;
}

#[tokio::test]
async fn a_public_key_with_a_non_canonical_encoding_is_not_a_key() {
    // RFC 8032 section 5.1.3: decoding a point fails when y >= p. y = p + 3
    // is the non-canonical spelling of a point of large order (y = 3 is on
    // the curve), so the same key would have two PEM texts and two addresses.
    let node = spawn_node().await;
    let mut run = Run::new(&node);
    let t = node.timestamp().await;
    let invitation = node.invite(&node.genesis, "non-canonical").await;
    run.setup(&invitation.envelope.message_hash);
    let y_p_plus_3 = "f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f";
    let der = [hex::decode("302a300506032b6570032100").unwrap(), hex::decode(y_p_plus_3).unwrap()].concat();
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----", b64(&der));
    let stand_in = PersonaKey::generate();
    let mut body = registration_body(&node, &invitation, &stand_in, "non canonical");
    body.public_key = pem.clone();
    let address = pm_models::Address::of_pem_text(&pem).to_string();
    let mut e = client::public_envelope(
        &stand_in,
        &ContentParts { body_type: 1, body: to_msgpack(&body), dossier_salt: random_bytes() },
        &t,
    );
    e.sender = address.clone();
    run.send("keys", "a registration of y = p + 3", &e, Some(&address), "MALFORMED_ENVELOPE").await;
    run.query(
        "keys",
        "persona(pubkey:) of y = p + 3",
        "query($k: PublicKey!) { persona(pubkey: $k) { address } }",
        json!({ "k": pem }),
        "BAD_QUERY",
    )
    .await;
    run.finish().await;
}

#[tokio::test]
async fn stale_forged_and_replayed_timestamps_and_envelopes_are_refused() {
    let node = spawn_node().await;
    let mut run = Run::new(&node);
    let genesis = &node.genesis;
    let node_key = node.node_key();
    let node_address = node.node_public.address();
    let t = node.timestamp().await;
    let f = "timestamps";

    // The node's key over texts that are not timestamp strings.
    let now = Micros::now().to_timestamp_string();
    for (what, text) in [
        ("an empty text", String::new()),
        ("13 digits of seconds", format!("000{now}")),
        ("10 decimals", format!("{now}0000")),
        ("an exponent", "1.7e9".to_owned()),
        ("a plus sign", format!("+{now}")),
        ("a minus sign", format!("-{now}")),
        ("a leading space", format!(" {now}")),
        ("a trailing newline", format!("{now}\n")),
        ("a trailing dot", format!("{}.", &now[..10])),
        ("a leading dot", ".5".to_owned()),
        ("a decimal comma", now.replace('.', ",")),
        ("Arabic-Indic digits", "\u{661}\u{667}\u{660}\u{660}".to_owned()),
        ("fullwidth digits", "\u{FF11}\u{FF17}\u{FF10}\u{FF10}".to_owned()),
        ("an RFC 3339 date", Micros::now().to_rfc3339()),
    ] {
        let e = assertion_with_t(&node, &raw_t(&node_key, &text, &text));
        run.send(f, &format!("a node-signed T of {what}"), &e, None, "BAD_TIMESTAMP").await;
    }
    // The node's signature, but over another text than the T carries.
    let e = assertion_with_t(&node, &raw_t(&node_key, &format!("{now}0"), &now));
    run.send(f, "a T with a trailing zero its signature does not cover", &e, None, "BAD_TIMESTAMP").await;
    let e = assertion_with_t(&node, &raw_t(&node_key, &now, "1700000000.000000"));
    run.send(f, "a T whose signature is over another time", &e, None, "BAD_TIMESTAMP").await;
    let e = assertion_with_t(&node, &raw_t(genesis, &now, &now));
    run.send(f, "a T signed by genesis", &e, None, "BAD_TIMESTAMP").await;
    let e = assertion_with_t(&node, &raw_t(&node_key, &now, &format!("{now}\0")));
    run.send(f, "a T signed over the text and a NUL", &e, None, "BAD_TIMESTAMP").await;

    // Freshness: 420 s back, 30 s ahead, inclusive; 10 s of margin each way.
    for (what, text, code) in [
        ("500 s old", seconds(-500).to_timestamp_string(), "TIMESTAMP_EXPIRED"),
        ("430 s old", seconds(-430).to_timestamp_string(), "TIMESTAMP_EXPIRED"),
        ("410 s old", seconds(-410).to_timestamp_string(), ACCEPTED),
        ("40 s ahead", seconds(40).to_timestamp_string(), "TIMESTAMP_IN_FUTURE"),
        ("20 s ahead", seconds(20).to_timestamp_string(), ACCEPTED),
        ("at the epoch", "0".to_owned(), "TIMESTAMP_EXPIRED"),
        ("one nanosecond after the epoch", "0.000000001".to_owned(), "TIMESTAMP_EXPIRED"),
        ("the largest timestamp string", "999999999999.999999999".to_owned(), "TIMESTAMP_IN_FUTURE"),
        ("in whole seconds", seconds(0).whole_seconds().to_string(), ACCEPTED),
        ("with one decimal", format!("{}.5", seconds(-1).whole_seconds()), ACCEPTED),
        ("with nine decimals", format!("{}.123456789", seconds(-1).whole_seconds()), ACCEPTED),
    ] {
        let e = assertion_with_t(&node, &raw_t(&node_key, &text, &text));
        run.send(f, &format!("a T {what}"), &e, None, code).await;
    }

    // Receipts and Ts in each other's places.
    let first = assertion(&node, &t);
    run.send(f, "an assertion whose receipt the next cases reuse", &first, None, ACCEPTED).await;
    node.wait_readable(&first.message_hash).await;
    let query = "query($h: SHA256!) { messageByHash(messageHash: $h) { receipt } }";
    let stored = node.data(query, json!({ "h": first.message_hash })).await;
    let receipt = stored["messageByHash"]["receipt"].as_str().expect("a stored message has a receipt").to_owned();
    let e = assertion_with_t(&node, &receipt);
    run.send(f, "a receipt as a T", &e, None, "BAD_TIMESTAMP").await;
    let mut e = assertion(&node, &t);
    e.message_sign = t.as_str().to_owned();
    run.send(f, "a T as messageSign", &e, None, "BAD_TIMESTAMP").await;
    let mut e = assertion(&node, &t);
    e.message_sign = receipt.clone();
    run.send(f, "a receipt as the messageSign of another message", &e, None, "BAD_SIGNATURE").await;
    let mut e = first.clone();
    e.sender = node_address.to_string();
    e.message_sign = receipt.clone();
    run.send(f, "a receipt as the node's messageSign of the same message", &e, None, "DUPLICATE_MESSAGE").await;
    let mut e = assertion(&node, &t);
    e.sender = node_address.to_string();
    e.message_sign = receipt.clone();
    run.send(f, "a receipt as the node's messageSign of another message", &e, None, "BAD_SIGNATURE").await;

    // Replays.
    let mut e = first.clone();
    resign(&mut e, genesis, &SignedTimestamp::issue(&node_key, seconds(-2)));
    run.send(f, "an accepted assertion signed again with another T", &e, None, "DUPLICATE_MESSAGE").await;
    let mut e = assertion(&node, &t);
    e.message_sign = first.message_sign.clone();
    run.send(f, "the messageSign of another envelope", &e, None, "BAD_SIGNATURE").await;
    let original = object_with_container(genesis, b"first container", &t);
    let mut object = object_with_container(genesis, b"second container", &t);
    object.container.as_mut().unwrap().container_sign = original.container.as_ref().unwrap().container_sign.clone();
    let e = envelopes::assertion(genesis, &[genesis.public()], vec![object], &t);
    run.send(f, "the containerSign of another container", &e, None, "BAD_OBJECT").await;
    let e = envelopes::assertion(genesis, &[genesis.public()], vec![original.clone()], &t);
    run.send(f, "a container signed for an earlier message, in a new one", &e, None, ACCEPTED).await;
    let (content_a, _) = invitation_content(genesis, &node_address, &t, None);
    let (mut content_b, salt) = invitation_content(genesis, &node_address, &t, None);
    content_b.signature = content_a.signature.clone();
    let packed = content_b.pack();
    let e =
        public_envelope(genesis, b64(&packed), hash_text(&content_b.message_body), dossier_hash(&salt, &packed), &t);
    run.send(f, "the content signature of another invitation", &e, None, "BAD_SIGNATURE").await;
    let refused = {
        let mut e = assertion(&node, &t);
        resign(&mut e, &PersonaKey::generate(), &t);
        e
    };
    for n in 1..=3 {
        run.send(f, &format!("a refused envelope sent again ({n})"), &refused, None, "BAD_SIGNATURE").await;
    }
    for n in 1..=20 {
        let e = assertion(&node, &t);
        run.send(f, &format!("one T for many envelopes ({n})"), &e, None, ACCEPTED).await;
    }

    // A registration replayed, and its body in a new content.
    let invitation = node.invite(genesis, "replayed").await;
    run.setup(&invitation.envelope.message_hash);
    let key = PersonaKey::generate();
    let registration = node.registration(&key, "replayed", &invitation).await;
    run.send(f, "a registration", &registration, Some(&key.address().to_string()), ACCEPTED).await;
    node.wait_readable(&registration.message_hash).await;
    run.send(f, "the registration again", &registration, None, "DUPLICATE_MESSAGE").await;
    let body = registration_body(&node, &invitation, &key, "replayed");
    let e = client::public_envelope(
        &key,
        &ContentParts { body_type: 1, body: to_msgpack(&body), dossier_salt: random_bytes() },
        &t,
    );
    run.send(f, "the registration's body in a new content", &e, None, "PERSONA_EXISTS").await;

    // One envelope sent 32 times at once: accepted once.
    let racing = assertion(&node, &t);
    let answers = futures::future::join_all((0..32).map(|_| node.send(&racing))).await;
    let accepted = answers.iter().filter(|a| a.is_ok()).count();
    let duplicates =
        answers.iter().filter(|a| a.as_ref().err().map(String::as_str) == Some("DUPLICATE_MESSAGE")).count();
    run.check(f, "one envelope 32 times at once: accepted", "1", &accepted.to_string());
    run.check(f, "one envelope 32 times at once: duplicates", "31", &duplicates.to_string());
    run.send(f, "the raced envelope once more", &racing, None, "DUPLICATE_MESSAGE").await;
    run.accept_outside(&racing);
    run.finish().await;
}

#[tokio::test]
async fn wrong_json_types_in_the_envelope_input_are_malformed() {
    let node = spawn_node().await;
    let mut run = Run::new(&node);
    let t = node.timestamp().await;
    let f = "json types";
    let fields =
        ["sender", "messageType", "messageHash", "messageSign", "dossierHash", "bodyHash", "ACL", "objects", "message"];
    let wrong: [(&str, Value); 9] = [
        ("an integer", json!(1)),
        ("a negative integer", json!(-1)),
        ("a huge integer", json!(u64::MAX)),
        ("a float", json!(1.5e300)),
        ("true", json!(true)),
        ("an object", json!({ "a": "b" })),
        ("a list of text", json!(["a", "b"])),
        ("a list of lists", json!([[[["a"]]]])),
        ("null", Value::Null),
    ];
    for field in fields {
        for (what, value) in &wrong {
            let e = assertion(&node, &t);
            let mut input = e.to_json_value();
            input[field] = value.clone();
            let code = match (field, what) {
                // Absent lists are allowed; a private message needs a reader.
                ("objects", &"null") => ACCEPTED,
                _ => "MALFORMED_ENVELOPE",
            };
            run.send_input(f, &format!("{field} as {what}"), input, Some(&e), None, code).await;
        }
    }
    for (what, value) in [
        ("the type as its number", json!(2)),
        ("the type in lower case", json!("assertion")),
        ("the type with a trailing space", json!("ASSERTION ")),
        ("an unknown type", json!("GOSSIP")),
    ] {
        let e = assertion(&node, &t);
        let mut input = e.to_json_value();
        input["messageType"] = value;
        run.send_input(f, &format!("messageType as {what}"), input, Some(&e), None, "MALFORMED_ENVELOPE").await;
    }
    let changes: [(&str, Change); 9] = [
        ("an ACL rule without key", |i| {
            i["ACL"][0].as_object_mut().unwrap().remove("key");
        }),
        ("an ACL rule with an unknown field", |i| i["ACL"][0]["extra"] = json!("x")),
        ("an ACL reader as an integer", |i| i["ACL"][0]["reader"] = json!(7)),
        ("an ACL rule that is null", |i| i["ACL"] = json!([null])),
        ("an unknown envelope field", |i| i["extra"] = json!("x")),
        ("an object without objectHash", |i| i["objects"] = json!([{ "metaHashes": [] }])),
        ("metaHashes holding null", |i| {
            i["objects"] = json!([{ "objectHash": b64(random_bytes::<32>()), "metaHashes": [null] }])
        }),
        ("the envelope as a list", |i| *i = json!([i.clone()])),
        ("the envelope as text", |i| *i = json!(i.to_string())),
    ];
    for (what, change) in changes {
        let e = assertion(&node, &t);
        let mut input = e.to_json_value();
        change(&mut input);
        run.send_input(f, what, input, Some(&e), None, "MALFORMED_ENVELOPE").await;
    }
    run.finish().await;
}
