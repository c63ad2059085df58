//! Message content and bodies of PROTOCOL.md sections 5 and 6.
//!
//! `content = {bodyType, dossierSalt, messageBody, signature}`, packed as
//! canonical msgpack; public messages carry `base64(packed)`. Bodies are
//! msgpack maps read key by key, so a missing or mistyped key is reported by
//! name with the code its rule gives.

use crate::codec::{b64, from_msgpack, to_msgpack, unb64, CodecError};
use crate::public_key::{PublicKeyError, PublicKeyPem};
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
        let value = crate::strict_msgpack::read_value(&bytes).map_err(|_| CodecError::Msgpack)?;
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

/// A registration body (`bodyType` 1) read from its map, each field in its
/// checked form: the one reading of a registration, for the authorizer that
/// checks it and the writer that stores the persona it creates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub public_key: PublicKeyPem,
    /// Well formed (section 5): 1-64 characters, no control or format
    /// characters, no surrounding whitespace.
    pub nickname: String,
    /// As sent: whether it names a stored invitation is the authorizer's check.
    pub invite_msg_id: String,
    pub key_proof: String,
    pub invite_name: String,
}

/// Why a body is not a registration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    #[error("registration body lacks {0}")]
    Missing(&'static str),
    #[error("publicKey: {0}")]
    PublicKey(PublicKeyError),
    #[error("publicNickname must be 1-64 characters without control or format characters or surrounding whitespace")]
    Nickname,
}

impl Registration {
    pub fn from_body(body: &BodyMap) -> Result<Self, RegistrationError> {
        let field = |key: &'static str| body.non_empty_str(key).ok_or(RegistrationError::Missing(key));
        let public_key = PublicKeyPem::parse_exact(field("publicKey")?).map_err(RegistrationError::PublicKey)?;
        let nickname = field("publicNickname")?;
        if !nickname_is_well_formed(nickname) {
            return Err(RegistrationError::Nickname);
        }
        Ok(Self {
            public_key,
            nickname: nickname.to_owned(),
            invite_msg_id: field("inviteMsgID")?.to_owned(),
            key_proof: field("keyProof")?.to_owned(),
            invite_name: field("inviteName")?.to_owned(),
        })
    }
}

/// The plaintext of a registration's `keyProof`: `{"key": base64(inviteKey)}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyProof {
    pub key: String,
}

/// The most characters a nickname has (section 5).
pub const MAX_NICKNAME_CHARS: usize = 64;

/// Checks a nickname's shape (section 5): 1–64 characters, no control or
/// format characters (Unicode Cc and Cf: a soft hyphen or a zero-width space
/// would let `Tele\u{AD}feric` pass for `Teleferic`), no leading or trailing
/// whitespace.
pub fn nickname_is_well_formed(nickname: &str) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    let invisible = |c: char| matches!(c.general_category(), GeneralCategory::Control | GeneralCategory::Format);
    // Counting stops early: an over-long text is refused without reading it all.
    let count = nickname.chars().take(MAX_NICKNAME_CHARS + 1).count();
    (1..=MAX_NICKNAME_CHARS).contains(&count) && !nickname.chars().any(invisible) && nickname.trim() == nickname
}

/// The form nicknames are compared in: Unicode lower case.
pub fn nickname_key(nickname: &str) -> String {
    nickname.to_lowercase()
}

/// The node's reserved nickname.
pub const NODE_NICKNAME: &str = "Teleferic";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicknames_with_invisible_characters_are_not_well_formed() {
        assert!(nickname_is_well_formed("Alice Liddell"));
        assert!(nickname_is_well_formed("Ünïcødé 名前"));
        for bad in ["Tele\u{AD}feric", "Tele\u{200B}feric", "a\u{200E}", "\u{FEFF}x", "a\u{2066}b", "tab\there", "nl\n"]
        {
            assert!(!nickname_is_well_formed(bad), "{bad:?} must be refused");
        }
        assert!(!nickname_is_well_formed(" alice") && !nickname_is_well_formed("alice "));
        assert!(!nickname_is_well_formed(""));
        assert!(nickname_is_well_formed(&"x".repeat(64)) && !nickname_is_well_formed(&"x".repeat(65)));
    }
}
