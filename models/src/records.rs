//! Stored records of PROTOCOL.md section 9: what the writer stores and the
//! reader serves, whichever backend holds them.

use crate::content::{BodyMap, MessageContent, Registration, BODY_REGISTRATION};
use crate::envelope::{AclRule, Envelope, ObjectEntry};
use crate::message_type::MessageType;
use crate::time::Micros;
use crate::timestamped_signature::TimestampedSignature;
use crate::PublicKeyPem;
use serde::{Deserialize, Serialize};

/// A row of table `persona`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonaRecord {
    pub address: String,
    /// PEM text, exactly as hashed into the address.
    pub pubkey: String,
    pub nickname: String,
    /// RFC 3339 with microseconds.
    pub created_at: String,
    pub registration_hash: Option<String>,
    pub invite_hash: Option<String>,
    pub inviter: Option<String>,
}

impl PersonaRecord {
    /// The persona a registration creates (section 6): its key, nickname and
    /// invitation, accepted by message `registration_hash` at `created_at`;
    /// `inviter` is the address that sent the invitation.
    pub fn from_registration(
        registration: &Registration,
        registration_hash: &str,
        inviter: Option<String>,
        created_at: Micros,
    ) -> Self {
        Self {
            address: registration.public_key.address().to_string(),
            pubkey: registration.public_key.as_str().to_owned(),
            nickname: registration.nickname.clone(),
            created_at: created_at.to_rfc3339(),
            registration_hash: Some(registration_hash.to_owned()),
            invite_hash: Some(registration.invite_msg_id.clone()),
            inviter,
        }
    }

    /// A persona stored without a registration message, as `pm bootstrap`
    /// stores the node and the genesis persona: its key and nickname, at
    /// `created_at`.
    pub fn without_registration(pubkey: &PublicKeyPem, nickname: &str, created_at: Micros) -> Self {
        Self {
            address: pubkey.address().to_string(),
            pubkey: pubkey.as_str().to_owned(),
            nickname: nickname.to_owned(),
            created_at: created_at.to_rfc3339(),
            registration_hash: None,
            invite_hash: None,
            inviter: None,
        }
    }
}

/// A row of table `message`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub persona_sender: String,
    pub persona_pubkey: String,
    pub persona_nickname: String,
    #[serde(rename = "type")]
    pub message_type: u8,
    pub hash: String,
    /// The sender's signature from inside `message_sign` (base64).
    pub signature: String,
    /// The `T` from inside `message_sign`.
    pub timestamp: String,
    pub dossier_hash: String,
    pub body_hash: String,
    pub acl: Vec<AclRule>,
    pub objects: Vec<ObjectEntry>,
    pub message: String,
    pub created_at: String,
    /// The exact `messageSign` as received, so readers can re-verify.
    pub message_sign: String,
    /// The node's acceptance receipt `R` (section 8); `None` for records
    /// stored before receipts existed.
    #[serde(default)]
    pub receipt: Option<String>,
}

impl MessageRecord {
    /// The record of an accepted envelope; `signature` and `timestamp` are the
    /// two parts of its `messageSign` (already verified by the authorizer).
    #[allow(clippy::too_many_arguments)]
    pub fn from_envelope(
        envelope: &Envelope,
        sender_pubkey: &str,
        sender_nickname: &str,
        signature: &str,
        timestamp: &str,
        created_at: Micros,
        receipt: &str,
    ) -> Self {
        Self {
            persona_sender: envelope.sender.clone(),
            persona_pubkey: sender_pubkey.to_owned(),
            persona_nickname: sender_nickname.to_owned(),
            message_type: envelope.message_type.code(),
            hash: envelope.message_hash.clone(),
            signature: signature.to_owned(),
            timestamp: timestamp.to_owned(),
            dossier_hash: envelope.dossier_hash.clone(),
            body_hash: envelope.body_hash.clone(),
            acl: envelope.acl.clone(),
            objects: envelope.objects.clone(),
            message: envelope.message.clone(),
            created_at: created_at.to_rfc3339(),
            message_sign: envelope.message_sign.clone(),
            receipt: Some(receipt.to_owned()),
        }
    }

    /// The record of `envelope`, accepted at `accepted_at` with `receipt`,
    /// from `sender` (for a registration, the persona it creates) and its
    /// parsed `messageSign`: what the writer stores for it.
    pub fn accepted(
        envelope: &Envelope,
        sender: &PersonaRecord,
        message_sign: &TimestampedSignature,
        accepted_at: Micros,
        receipt: &str,
    ) -> Self {
        Self::from_envelope(
            envelope,
            &sender.pubkey,
            &sender.nickname,
            message_sign.signature_b64(),
            message_sign.timestamp_text(),
            accepted_at,
            receipt,
        )
    }

    pub fn kind(&self) -> Option<MessageType> {
        MessageType::from_code(self.message_type.into())
    }

    /// The envelope this record was written from.
    pub fn to_envelope(&self) -> Envelope {
        Envelope {
            sender: self.persona_sender.clone(),
            message_type: self.kind().unwrap_or(MessageType::System),
            message_hash: self.hash.clone(),
            message_sign: self.message_sign.clone(),
            dossier_hash: self.dossier_hash.clone(),
            body_hash: self.body_hash.clone(),
            acl: self.acl.clone(),
            objects: self.objects.clone(),
            message: self.message.clone(),
        }
    }

    /// The public content, for `REGISTRATION` messages.
    pub fn public_content(&self) -> Option<MessageContent> {
        (self.kind() == Some(MessageType::Registration))
            .then(|| MessageContent::decode_public(&self.message).ok().map(|d| d.content))
            .flatten()
    }

    /// The invitation a registration used (its `inviteMsgID`).
    pub fn invite_hash(&self) -> Option<String> {
        let content = self.public_content()?;
        if content.body_type != BODY_REGISTRATION {
            return None;
        }
        BodyMap::decode(&content.message_body).ok()?.non_empty_str("inviteMsgID").map(str::to_owned)
    }

    /// The `acl` column: msgpack of the ACL list.
    pub fn acl_column(&self) -> Vec<u8> {
        crate::codec::to_msgpack(&self.acl)
    }

    /// The `objects` column: msgpack of the objects list.
    pub fn objects_column(&self) -> Vec<u8> {
        crate::codec::to_msgpack(&self.objects)
    }

    /// `created_at` as an instant; `None` for a date not in this crate's form.
    pub fn created_at_micros(&self) -> Option<Micros> {
        Micros::parse_rfc3339(&self.created_at)
    }
}
