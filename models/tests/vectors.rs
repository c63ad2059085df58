//! Every vector of `shared/vectors/` (copied to `tests/data/`), rebuilt byte
//! for byte by this crate.

use pm_models::address::{encode_with_prefix, AddressError};
use pm_models::client::{private_envelope, public_envelope, ContentParts};
use pm_models::codec::{from_msgpack, to_msgpack, unb64};
use pm_models::content::{InvitationBody, KeyProof, MessageContent, RegistrationBody};
use pm_models::envelope::Envelope;
use pm_models::keys::PersonaKey;
use pm_models::signed_timestamp::{Freshness, SignedTimestamp};
use pm_models::time::Micros;
use pm_models::timestamped_signature::{signed_payload, TimestampedSignature};
use pm_models::{invite_name, sealed_box, Address, MessageType, PublicKeyPem};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(s(v)).unwrap()
}

fn seed(v: &Value) -> [u8; 32] {
    unhex(v).try_into().unwrap()
}

fn key(p: &Value, who: &str) -> PersonaKey {
    PersonaKey::from_seed(seed(&p["keys"][who]["seed_hex"]))
}

fn now(p: &Value) -> Micros {
    Micros::from_secs_f64(p["now"].as_f64().unwrap())
}

fn vector_t(p: &Value) -> SignedTimestamp {
    SignedTimestamp::parse(s(&p["signed_timestamp"]["T"])).unwrap()
}

#[test]
fn rsa_addresses_of_the_earlier_deployment_are_reproduced() {
    let a = load("address.json");
    let cases = a["cases"].as_array().unwrap().iter().chain(a["extra_cases"].as_array().unwrap());
    let mut checked = 0;
    for case in cases {
        let pem = s(&case["pem"]);
        if let Some(expected) = case.get("address") {
            let address = Address::of_pem_text(pem);
            assert_eq!(address.as_str(), s(expected), "{}", case["name"]);
            assert_eq!(Address::parse(s(expected)).unwrap(), address);
        } else {
            let prefix: Vec<u8> = serde_json::from_value(case["prefix"].clone()).unwrap();
            let raw = encode_with_prefix([prefix[0], prefix[1]], pem);
            assert_eq!(raw, s(&case["address_if_unvalidated"]), "{}", case["name"]);
            assert_eq!(Address::parse(&raw), Err(AddressError::WrongPrefix), "{}", case["name"]);
        }
        checked += 1;
    }
    assert_eq!(checked, 7);
}

#[test]
fn ed25519_addresses_hash_the_one_line_spki_pem() {
    let a = load("address.json");
    for case in a["ed25519_cases"].as_array().unwrap() {
        let key = PersonaKey::from_seed(seed(&case["seed_hex"]));
        assert_eq!(key.public().verifying_key().as_bytes().to_vec(), unhex(&case["public_key_hex"]));
        assert_eq!(key.public().as_str(), s(&case["pem"]));
        assert_eq!(key.address().as_str(), s(&case["address"]));
    }
}

#[test]
fn addresses_with_a_bad_checksum_or_length_are_refused() {
    let good = "2n3siETnMbUYj9uwMUXrwx66dM1zbpHiNTw";
    assert!(Address::parse(good).is_ok());
    assert_eq!(Address::parse("2n3siETnMbUYj9uwMUXrwx66dM1zbpHiNTx"), Err(AddressError::BadChecksum));
    assert_eq!(Address::parse("2n3siETnMbUYj9uwMUXrwx66dM1zbpHiNT"), Err(AddressError::WrongLength));
    assert_eq!(Address::parse("0OIl"), Err(AddressError::NotBase58));
}

#[test]
fn persona_keys_give_the_vector_pem_wire_form_and_address() {
    let p = load("protocol.json");
    for who in ["node", "genesis", "alice"] {
        let k = key(&p, who);
        let v = &p["keys"][who];
        assert_eq!(k.public().verifying_key().as_bytes().to_vec(), unhex(&v["public_key_hex"]));
        assert_eq!(k.public().as_str(), s(&v["pem"]));
        assert_eq!(k.public().to_wire(), s(&v["pubkey_wire"]));
        assert_eq!(k.address().as_str(), s(&v["address"]));
        assert_eq!(PublicKeyPem::parse_wire(s(&v["pubkey_wire"])).unwrap(), *k.public());
        assert_eq!(PublicKeyPem::parse_wire(s(&v["pem"])).unwrap(), *k.public());
        let crlf = format!("  {}\r\n", s(&v["pem"]).replace('\n', "\r\n"));
        assert_eq!(PublicKeyPem::parse_lenient(&crlf).unwrap(), *k.public());
        assert!(PublicKeyPem::parse_exact(&crlf).is_err(), "signed content needs the exact text");
    }
}

#[test]
fn pkcs8_pem_round_trips_a_key() {
    let p = load("protocol.json");
    let k = key(&p, "alice");
    let back = PersonaKey::from_pkcs8_pem(&k.to_pkcs8_pem()).unwrap();
    assert_eq!(back.address(), k.address());
}

#[test]
fn the_node_signs_timestamps_byte_for_byte() {
    let p = load("protocol.json");
    let v = &p["signed_timestamp"];
    let node = key(&p, "node");
    let t = SignedTimestamp::issue(&node, now(&p));
    assert_eq!(t.timestamp().as_str(), s(&v["ts"]));
    assert_eq!(t.as_str(), s(&v["T"]));
    assert_eq!(unb64(t.as_str()).unwrap(), unhex(&v["msgpack_hex"]));
    let parsed = SignedTimestamp::parse(s(&v["T"])).unwrap();
    parsed.verify_node_signature(node.public().verifying_key()).unwrap();
    assert!(parsed.verify_node_signature(key(&p, "genesis").public().verifying_key()).is_err());
}

#[test]
fn freshness_bounds_are_inclusive() {
    let p = load("protocol.json");
    let t = vector_t(&p);
    let n = now(&p);
    let w = Freshness::default();
    t.check_fresh(n, w).unwrap();
    t.check_fresh(Micros(n.0 + 420_000_000), w).unwrap();
    assert!(t.check_fresh(Micros(n.0 + 420_000_001), w).is_err());
    t.check_fresh(Micros(n.0 - 30_000_000), w).unwrap();
    assert!(t.check_fresh(Micros(n.0 - 30_000_001), w).is_err());
}

#[test]
fn timestamped_signatures_are_byte_exact() {
    let p = load("protocol.json");
    let v = &p["timestamped_signature"];
    let genesis = key(&p, "genesis");
    let t = SignedTimestamp::parse(s(&v["T"])).unwrap();
    assert_eq!(signed_payload(s(&v["H"]), s(&v["T"])), unhex(&v["payload_hex"]));
    let sig = TimestampedSignature::sign(&genesis, s(&v["H"]), &t);
    assert_eq!(sig.as_str(), s(&v["S"]));
    assert_eq!(unb64(sig.as_str()).unwrap(), unhex(&v["S_msgpack_hex"]));
    let parsed = TimestampedSignature::parse(s(&v["S"])).unwrap();
    let node = key(&p, "node");
    parsed.verify(s(&v["H"]), genesis.public().verifying_key(), node.public().verifying_key()).unwrap();
    assert!(parsed.verify_signature("another hash", genesis.public().verifying_key()).is_err());
    assert!(parsed.verify_signature(s(&v["H"]), key(&p, "alice").public().verifying_key()).is_err());
}

#[test]
fn the_node_x25519_key_is_the_birational_image_of_its_ed25519_key() {
    let p = load("protocol.json");
    let node = key(&p, "node");
    assert_eq!(sealed_box::x25519_public(node.public().verifying_key()).to_vec(), unhex(&p["node_x25519_public_hex"]));
}

#[test]
fn invitation_vector_is_rebuilt_exactly() {
    let p = load("protocol.json");
    let v = &p["invitation"];
    let invite_key: [u8; 32] = seed(&v["invite_key_hex"]);
    let nonce: [u8; 12] = unhex(&v["nonce_hex"]).try_into().unwrap();
    let name = invite_name::encrypt_with_nonce(&invite_key, &nonce, s(&v["name"]));
    assert_eq!(pm_models::codec::b64(&name), s(&v["inviteName"]));
    assert_eq!(invite_name::decrypt(&invite_key, &name).unwrap(), s(&v["name"]).as_bytes());
    assert!(invite_name::decrypt(&[9u8; 32], &name).is_none());

    let body: InvitationBody = serde_json::from_value(v["body"].clone()).unwrap();
    assert_eq!(to_msgpack(&body), unhex(&v["body_msgpack_hex"]));
    let parts = ContentParts {
        body_type: 0,
        body: to_msgpack(&body),
        dossier_salt: unhex(&v["dossier_salt_hex"]).try_into().unwrap(),
    };
    let built = public_envelope(&key(&p, "genesis"), &parts, &vector_t(&p));
    let content: MessageContent = serde_json::from_value(v["content"].clone()).unwrap();
    assert_eq!(content.pack(), unhex(&v["content_msgpack_hex"]));
    assert_eq!(built, Envelope::from_json_value(v["envelope"].clone()).unwrap());
    assert_eq!(built.to_json_value(), v["envelope"]);
}

#[test]
fn registration_vector_is_rebuilt_and_its_boxes_open_under_the_node_key() {
    let p = load("protocol.json");
    let v = &p["registration"];
    let node = key(&p, "node");
    let proof = sealed_box::open(&node, &unb64(s(&v["keyProof"])).unwrap()).unwrap();
    assert_eq!(proof, unhex(&v["keyProof_plaintext_hex"]));
    let proof: KeyProof = from_msgpack(&proof).unwrap();
    assert_eq!(unb64(&proof.key).unwrap(), unhex(&p["invitation"]["invite_key_hex"]));
    let name = sealed_box::open(&node, &unb64(s(&v["sealed_inviteName"])).unwrap()).unwrap();
    assert_eq!(name, s(&v["sealed_inviteName_plaintext"]).as_bytes());
    assert!(sealed_box::open(&key(&p, "alice"), &unb64(s(&v["keyProof"])).unwrap()).is_none());

    let body: RegistrationBody = serde_json::from_value(v["body"].clone()).unwrap();
    assert_eq!(to_msgpack(&body), unhex(&v["body_msgpack_hex"]));
    let parts = ContentParts {
        body_type: 1,
        body: to_msgpack(&body),
        dossier_salt: unhex(&v["dossier_salt_hex"]).try_into().unwrap(),
    };
    let built = public_envelope(&key(&p, "alice"), &parts, &vector_t(&p));
    let content: MessageContent = serde_json::from_value(v["content"].clone()).unwrap();
    assert_eq!(content.pack(), unhex(&v["content_msgpack_hex"]));
    assert_eq!(built.to_json_value(), v["envelope"]);
}

#[test]
fn sealed_boxes_round_trip_to_the_node_key() {
    let p = load("protocol.json");
    let node = key(&p, "node");
    let sealed = sealed_box::seal(node.public().verifying_key(), b"invite key");
    assert_eq!(sealed_box::open(&node, &sealed).unwrap(), b"invite key");
}

#[test]
fn assertion_vector_is_rebuilt_with_its_queue_payload_and_columns() {
    let p = load("protocol.json");
    let v = &p["assertion"];
    let envelope = Envelope::from_json_value(v["envelope"].clone()).unwrap();
    let parts = ContentParts {
        body_type: 0,
        body: to_msgpack(&v["body"]),
        dossier_salt: unhex(&v["dossier_salt_hex"]).try_into().unwrap(),
    };
    let built = private_envelope(
        &key(&p, "alice"),
        MessageType::Assertion,
        &parts,
        &seed(&v["message_key_hex"]),
        &unhex(&v["aes_nonce_hex"]).try_into().unwrap(),
        envelope.acl.clone(),
        envelope.objects.clone(),
        &vector_t(&p),
    );
    assert_eq!(built, envelope);
    let content: MessageContent = serde_json::from_value(v["content"].clone()).unwrap();
    assert_eq!(content.pack(), unhex(&v["content_msgpack_hex"]));
    assert_eq!(envelope.to_queue_payload(), unhex(&v["queue_payload_msgpack_hex"]));
    assert_eq!(Envelope::from_queue_payload(&unhex(&v["queue_payload_msgpack_hex"])).unwrap(), envelope);
    assert_eq!(to_msgpack(&envelope.acl), unhex(&v["acl_column_msgpack_hex"]));
    assert_eq!(to_msgpack(&envelope.objects), unhex(&v["objects_column_msgpack_hex"]));
    let container = envelope.objects[0].container.as_ref().unwrap();
    let sign = TimestampedSignature::parse(&container.container_sign).unwrap();
    sign.verify(
        &container.container_hash,
        key(&p, "alice").public().verifying_key(),
        key(&p, "node").public().verifying_key(),
    )
    .unwrap();
}

#[test]
fn the_acceptance_receipt_is_byte_exact_and_verifies_against_the_node_key() {
    let p = load("protocol.json");
    let v = &p["assertion"]["receipt"];
    let node = key(&p, "node");
    let hash = pm_models::MessageHash::parse(s(&p["assertion"]["envelope"]["messageHash"])).unwrap();
    let accepted = Micros::parse_rfc3339(s(&v["created_at"])).unwrap();
    assert_eq!(accepted.to_timestamp_string(), s(&v["accepted_ts"]));
    let receipt = pm_models::receipt::issue(&node, &hash, accepted);
    assert_eq!(receipt, s(&v["R"]), "R is rebuilt byte for byte");
    let t = SignedTimestamp::issue(&node, accepted);
    assert_eq!(t.as_str(), s(&v["T"]));
    assert_eq!(pm_models::timestamped_signature::signed_payload(hash.as_str(), t.as_str()), unhex(&v["payload_hex"]));
    pm_models::receipt::verify_at(s(&v["R"]), &hash, accepted, node.public().verifying_key()).unwrap();
    assert!(pm_models::receipt::verify(s(&v["R"]), &hash, key(&p, "genesis").public().verifying_key()).is_err());
}
