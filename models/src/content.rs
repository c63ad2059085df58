//! Message content and bodies of PROTOCOL.md sections 5 and 6.
//!
//! `content = {bodyType, dossierSalt, messageBody, signature}`, packed as
//! canonical msgpack; public messages carry `base64(packed)`. Bodies are
//! msgpack maps read key by key, so a missing or mistyped key is reported by
//! name with the code its rule gives.

use crate::codec::{b64, from_msgpack, to_msgpack, unb64, CodecError};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// `bodyType` values within `REGISTRATION`.
pub const BODY_INVITATION: u64 = 0;
pub const BODY_REGISTRATION: u64 = 1;

/// Length of a dossier salt in bytes.
pub const DOSSIER_SALT_LEN: usize = 40;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageContent {
    #[serde(rename = "bodyType")]
    pub body_type: u64,
    #[serde(rename = "dossierSalt")]
    pub dossier_salt: String,
    #[serde(rename = "messageBody")]
    pub message_body: String,
    pub signature: String,
}

/// A public message decoded: the content and the exact packed bytes behind it.
#[derive(Clone, Debug)]
pub struct DecodedContent {
    pub content: MessageContent,
    pub packed: Vec<u8>,
}

impl MessageContent {
    pub fn pack(&self) -> Vec<u8> {
        to_msgpack(self)
    }

    /// Decodes a public `message` (base64 of the packed content).
    pub fn decode_public(message: &str) -> Result<DecodedContent, CodecError> {
        let packed = unb64(message)?;
        let content = from_msgpack(&packed)?;
        Ok(DecodedContent { content, packed })
    }
}

/// `base64(HMAC-SHA256(key = raw dossierSalt, msg = packed))`.
pub fn dossier_hash(salt: &[u8], packed: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(salt).expect("HMAC takes keys of any length");
    mac.update(packed);
    b64(mac.finalize().into_bytes())
}

/// A body decoded as a msgpack map with string keys.
#[derive(Clone, Debug)]
pub struct BodyMap(Vec<(String, rmpv::Value)>);

impl BodyMap {
    /// Decodes `messageBody` (`base64(msgpack(body))`).
    pub fn decode(message_body: &str) -> Result<Self, CodecError> {
        let bytes = unb64(message_body)?;
        let mut cursor = bytes.as_slice();
        let value = rmpv::decode::read_value(&mut cursor).map_err(|_| CodecError::Msgpack)?;
        if !cursor.is_empty() {
            return Err(CodecError::Msgpack);
        }
        let rmpv::Value::Map(entries) = value else {
            return Err(CodecError::Msgpack);
        };
        entries
            .into_iter()
            .map(|(k, v)| match k {
                rmpv::Value::String(s) => s.into_str().map(|s| (s, v)).ok_or(CodecError::Msgpack),
                _ => Err(CodecError::Msgpack),
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The value of `key` if it is a non-empty string.
    pub fn non_empty_str(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).and_then(|(_, v)| v.as_str()).filter(|s| !s.is_empty())
    }
}

/// The body of an invitation (`bodyType` 0), keys in contract order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvitationBody {
    pub bootstrap_node: String,
    pub bootstrap_addr: String,
    pub offering_addr: String,
    pub service_announcement_message: String,
    #[serde(rename = "serviceOfferingID")]
    pub service_offering_id: String,
    pub invite_name: String,
}

/// The body of a registration (`bodyType` 1), keys in contract order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationBody {
    pub public_key: String,
    pub public_nickname: String,
    #[serde(rename = "inviteMsgID")]
    pub invite_msg_id: String,
    pub key_proof: String,
    pub invite_name: String,
}

/// The plaintext of a registration's `keyProof`: `{"key": base64(inviteKey)}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyProof {
    pub key: String,
}

/// Checks a nickname's shape (section 5): 1–64 characters, no control
/// characters, no leading or trailing whitespace.
pub fn nickname_is_well_formed(nickname: &str) -> bool {
    let count = nickname.chars().count();
    (1..=64).contains(&count) && !nickname.chars().any(char::is_control) && nickname.trim() == nickname
}

/// The form nicknames are compared in: Unicode lower case.
pub fn nickname_key(nickname: &str) -> String {
    nickname.to_lowercase()
}

/// The node's reserved nickname.
pub const NODE_NICKNAME: &str = "Teleferic";
