//! Builders of envelopes for the end-to-end suites: valid ones through
//! `pm_models::client`, and the pieces needed to break exactly one rule
//! (PROTOCOL.md sections 4–7) while every earlier check still passes.

use pm_models::client::{self, random_bytes, ContentParts};
use pm_models::codec::{b64, hash_text, sha256_b64, to_msgpack};
use pm_models::content::{dossier_hash, InvitationBody, MessageContent, BODY_INVITATION};
use pm_models::envelope::{AclRule, Container, Envelope, ObjectEntry};
use pm_models::keys::PersonaKey;
use pm_models::signed_timestamp::SignedTimestamp;
use pm_models::timestamped_signature::TimestampedSignature;
use pm_models::{invite_name, Address, MessageType, PublicKeyPem};
use serde::Serialize;

/// A distinct body for every private message built here.
#[derive(Serialize)]
struct Note {
    text: String,
    nonce: String,
}

/// A private envelope of `message_type` from `sender`, readable by `readers`.
pub fn private(
    sender: &PersonaKey,
    message_type: MessageType,
    readers: &[&PublicKeyPem],
    objects: Vec<ObjectEntry>,
    t: &SignedTimestamp,
) -> Envelope {
    let message_key: [u8; 32] = random_bytes();
    let body = Note { text: "the sky is blue".into(), nonce: b64(random_bytes::<16>()) };
    let acl = readers.iter().map(|reader| client::acl_rule_for(reader.verifying_key(), &message_key)).collect();
    client::private_envelope(
        sender,
        message_type,
        &ContentParts::new(0, &body),
        &message_key,
        &random_bytes(),
        acl,
        objects,
        t,
    )
}

/// An `ASSERTION` from `sender`, readable by `readers`.
pub fn assertion(
    sender: &PersonaKey,
    readers: &[&PublicKeyPem],
    objects: Vec<ObjectEntry>,
    t: &SignedTimestamp,
) -> Envelope {
    private(sender, MessageType::Assertion, readers, objects, t)
}

/// An object with one meta hash and a container holding `bytes`, signed by
/// `signer` with `t` (section 5).
pub fn object_with_container(signer: &PersonaKey, bytes: &[u8], t: &SignedTimestamp) -> ObjectEntry {
    let object_container = b64(bytes);
    let container_hash = hash_text(&object_container);
    ObjectEntry {
        object_hash: sha256_b64(bytes),
        meta_hashes: vec![b64(random_bytes::<32>())],
        container: Some(Container {
            container_sign: TimestampedSignature::sign(signer, &container_hash, t).as_str().to_owned(),
            container_hash,
            object_container,
        }),
    }
}

/// An object without a container.
pub fn bare_object() -> ObjectEntry {
    ObjectEntry { object_hash: b64(random_bytes::<32>()), meta_hashes: vec![], container: None }
}

/// Signs `messageSign` again, over the envelope's (possibly altered) `messageHash`.
pub fn resign(envelope: &mut Envelope, signer: &PersonaKey, t: &SignedTimestamp) {
    envelope.message_sign = TimestampedSignature::sign(signer, &envelope.message_hash, t).as_str().to_owned();
}

/// Recomputes `messageHash` from `message` and signs it again.
pub fn rehash(envelope: &mut Envelope, signer: &PersonaKey, t: &SignedTimestamp) {
    envelope.message_hash = hash_text(&envelope.message);
    resign(envelope, signer, t);
}

/// The hand-made parts of a public content, each of which a test may spoil.
pub struct PublicParts<'a> {
    pub body_type: u64,
    pub body: Vec<u8>,
    pub salt: Vec<u8>,
    /// Who signs the content's `signature` (normally the sender).
    pub content_signer: &'a PersonaKey,
    /// The `T` inside the content's `signature`.
    pub content_t: &'a SignedTimestamp,
}

/// A public (`REGISTRATION`-family) envelope built by hand from `parts`, with
/// every hash computed from what it really contains and `messageSign` by
/// `sender` with `t`.
pub fn public_from_parts(sender: &PersonaKey, parts: &PublicParts<'_>, t: &SignedTimestamp) -> Envelope {
    let message_body = b64(&parts.body);
    let body_hash = hash_text(&message_body);
    let content = MessageContent {
        body_type: parts.body_type,
        dossier_salt: b64(&parts.salt),
        message_body,
        signature: TimestampedSignature::sign(parts.content_signer, &body_hash, parts.content_t).as_str().to_owned(),
    };
    let packed = content.pack();
    let dossier = dossier_hash(&parts.salt, &packed);
    let message = b64(&packed);
    let message_hash = hash_text(&message);
    Envelope {
        sender: sender.address().to_string(),
        message_type: MessageType::Registration,
        message_sign: TimestampedSignature::sign(sender, &message_hash, t).as_str().to_owned(),
        message_hash,
        dossier_hash: dossier,
        body_hash,
        acl: vec![],
        objects: vec![],
        message,
    }
}

/// A complete invitation body from `inviter`, as `client::invitation` writes it.
pub fn invitation_body(
    inviter: &PersonaKey,
    node_address: &Address,
    invite_key: &[u8; 32],
    name: &str,
) -> InvitationBody {
    InvitationBody {
        bootstrap_node: "http://127.0.0.1/teleferic".into(),
        bootstrap_addr: node_address.to_string(),
        offering_addr: inviter.address().to_string(),
        service_announcement_message: b64(random_bytes::<32>()),
        service_offering_id: "peer-mountain".into(),
        invite_name: b64(invite_name::encrypt(invite_key, name)),
    }
}

/// Parts of a valid invitation from `inviter` (salt of 40 bytes, content
/// signed by the inviter with `t`).
pub fn invitation_parts<'a>(
    inviter: &'a PersonaKey,
    node_address: &Address,
    t: &'a SignedTimestamp,
) -> PublicParts<'a> {
    let body = invitation_body(inviter, node_address, &random_bytes(), "a name");
    PublicParts {
        body_type: BODY_INVITATION,
        body: to_msgpack(&body),
        salt: random_bytes::<40>().to_vec(),
        content_signer: inviter,
        content_t: t,
    }
}

/// A valid ACL rule for a reader that is not registered.
pub fn acl_rule_for_stranger() -> AclRule {
    client::acl_rule_for(PersonaKey::generate().public().verifying_key(), &random_bytes())
}

/// A decodable `Sign` value whose `T` is `timestamp_text` (any text).
pub fn sign_with_raw_timestamp(signer: &PersonaKey, hash: &str, timestamp_text: &str) -> String {
    #[derive(Serialize)]
    struct Payload<'a> {
        #[serde(rename = "messageHash")]
        message_hash: &'a str,
        timestamp: &'a str,
    }
    #[derive(Serialize)]
    struct Wire {
        signature: String,
        timestamp: String,
    }
    let signature = signer.sign(&to_msgpack(&Payload { message_hash: hash, timestamp: timestamp_text }));
    b64(to_msgpack(&Wire { signature: b64(signature), timestamp: timestamp_text.to_owned() }))
}
