//! Client-side construction of envelopes (PROTOCOL.md sections 4–6): what a
//! persona does to invite, register and assert. Used by the `pm` client
//! subcommands and by tests; the node never runs this code on input.

use crate::address::Address;
use crate::blob;
use crate::codec::{b64, hash_text, sha256_b64, to_msgpack};
use crate::content::{
    dossier_hash, InvitationBody, KeyProof, MessageContent, RegistrationBody, BODY_INVITATION, BODY_REGISTRATION,
    DOSSIER_SALT_LEN,
};
use crate::envelope::{AclRule, Container, Envelope, ObjectEntry};
use crate::invite_name;
use crate::keys::PersonaKey;
use crate::message_type::MessageType;
use crate::sealed_box;
use crate::signed_timestamp::SignedTimestamp;
use crate::timestamped_signature::TimestampedSignature;
use ed25519_dalek::VerifyingKey;
use rand::RngCore;
use serde::Serialize;

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// The parts of a content a sender chooses: its body and salt.
pub struct ContentParts {
    pub body_type: u64,
    pub body: Vec<u8>,
    pub dossier_salt: [u8; DOSSIER_SALT_LEN],
}

impl ContentParts {
    pub fn new(body_type: u64, body: &impl Serialize) -> Self {
        Self { body_type, body: to_msgpack(body), dossier_salt: random_bytes() }
    }
}

/// Signs and packs a content; returns the content, its packed bytes and hashes.
fn seal_content(key: &PersonaKey, parts: &ContentParts, timestamp: &SignedTimestamp) -> (Vec<u8>, String, String) {
    let message_body = b64(&parts.body);
    let body_hash = hash_text(&message_body);
    let content = MessageContent {
        body_type: parts.body_type,
        dossier_salt: b64(parts.dossier_salt),
        message_body,
        signature: TimestampedSignature::sign(key, &body_hash, timestamp).as_str().to_owned(),
    };
    let packed = content.pack();
    let dossier = dossier_hash(&parts.dossier_salt, &packed);
    (packed, body_hash, dossier)
}

/// Wraps a `message` into an envelope signed by `key`: one argument per
/// envelope field the caller decides.
#[allow(clippy::too_many_arguments)]
fn envelope(
    key: &PersonaKey,
    message_type: MessageType,
    message: String,
    body_hash: String,
    dossier_hash: String,
    acl: Vec<AclRule>,
    objects: Vec<ObjectEntry>,
    timestamp: &SignedTimestamp,
) -> Envelope {
    let message_hash = hash_text(&message);
    Envelope {
        sender: key.address().to_string(),
        message_type,
        message_sign: TimestampedSignature::sign(key, &message_hash, timestamp).as_str().to_owned(),
        message_hash,
        dossier_hash,
        body_hash,
        acl,
        objects,
        message,
    }
}

/// A public `REGISTRATION`-family envelope.
pub fn public_envelope(key: &PersonaKey, parts: &ContentParts, timestamp: &SignedTimestamp) -> Envelope {
    let (packed, body_hash, dossier) = seal_content(key, parts, timestamp);
    envelope(key, MessageType::Registration, b64(packed), body_hash, dossier, vec![], vec![], timestamp)
}

/// A private envelope: the packed content encrypted with AES-256-GCM under
/// `message_key` (`nonce ‖ ciphertext ‖ tag`).
#[allow(clippy::too_many_arguments)]
pub fn private_envelope(
    key: &PersonaKey,
    message_type: MessageType,
    parts: &ContentParts,
    message_key: &[u8; 32],
    nonce: &[u8; 12],
    acl: Vec<AclRule>,
    objects: Vec<ObjectEntry>,
    timestamp: &SignedTimestamp,
) -> Envelope {
    let (packed, body_hash, dossier) = seal_content(key, parts, timestamp);
    let message = b64(blob::seal(message_key, nonce, &packed));
    envelope(key, message_type, message, body_hash, dossier, acl, objects, timestamp)
}

/// An object of a private message with its container: the object sealed
/// under the message key (a fresh nonce), `objectHash` the SHA-256 of the
/// object (the section 5 convention), signed by `key`. Readers open it with
/// the message key their ACL rule gives them.
pub fn sealed_object(
    key: &PersonaKey,
    object: &[u8],
    message_key: &[u8; 32],
    timestamp: &SignedTimestamp,
) -> ObjectEntry {
    let object_container = b64(blob::seal(message_key, &random_bytes(), object));
    let container_hash = hash_text(&object_container);
    ObjectEntry {
        object_hash: sha256_b64(object),
        meta_hashes: vec![],
        container: Some(Container {
            container_sign: TimestampedSignature::sign(key, &container_hash, timestamp).as_str().to_owned(),
            container_hash,
            object_container,
        }),
    }
}

/// The ACL rule giving `reader` the message key: sealed to the reader's key.
pub fn acl_rule_for(reader: &VerifyingKey, message_key: &[u8; 32]) -> AclRule {
    AclRule {
        reader: crate::public_key::PublicKeyPem::from_key(*reader).address().to_string(),
        key: b64(sealed_box::seal(reader, message_key)),
    }
}

/// What an inviter hands the invitee out of band, with the envelope to send.
pub struct Invitation {
    pub envelope: Envelope,
    pub invite_key: [u8; 32],
    pub name: String,
}

/// Builds an invitation (bodyType 0) from `inviter`.
pub fn invitation(
    inviter: &PersonaKey,
    node_address: &Address,
    gateway_url: &str,
    name: &str,
    service_offering_id: &str,
    timestamp: &SignedTimestamp,
) -> Invitation {
    let invite_key: [u8; 32] = random_bytes();
    let body = InvitationBody {
        bootstrap_node: gateway_url.to_owned(),
        bootstrap_addr: node_address.to_string(),
        offering_addr: inviter.address().to_string(),
        service_announcement_message: b64(random_bytes::<32>()),
        service_offering_id: service_offering_id.to_owned(),
        invite_name: b64(invite_name::encrypt(&invite_key, name)),
    };
    let envelope = public_envelope(inviter, &ContentParts::new(BODY_INVITATION, &body), timestamp);
    Invitation { envelope, invite_key, name: name.to_owned() }
}

/// Builds a registration (bodyType 1) of `key` under `nickname`, answering
/// the invitation `invite_msg_id` with the key and name its inviter gave.
pub fn registration(
    key: &PersonaKey,
    nickname: &str,
    invite_msg_id: &str,
    invite_key: &[u8],
    name: &str,
    node_key: &VerifyingKey,
    timestamp: &SignedTimestamp,
) -> Envelope {
    let proof = to_msgpack(&KeyProof { key: b64(invite_key) });
    let body = RegistrationBody {
        public_key: key.public().as_str().to_owned(),
        public_nickname: nickname.to_owned(),
        invite_msg_id: invite_msg_id.to_owned(),
        key_proof: b64(sealed_box::seal(node_key, &proof)),
        invite_name: b64(sealed_box::seal(node_key, name.as_bytes())),
    };
    public_envelope(key, &ContentParts::new(BODY_REGISTRATION, &body), timestamp)
}
