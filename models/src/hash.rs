//! Hashes as values (PROTOCOL.md section 1): a [`Hash32`] is base64 of 32
//! bytes (an object hash, a meta hash, an HMAC); a [`MessageHash`] is the
//! `messageHash` that names a message (a row key, a claim, a cursor).
//! Both hold the text as sent, which is what is hashed and compared.

use crate::codec::{hash_text, unb64, CodecError};
use crate::text::text_newtype;

/// base64 of exactly 32 bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Hash32(String);

impl Hash32 {
    /// The length of base64 of 32 bytes.
    pub const CHARS: usize = 44;

    pub fn parse(text: &str) -> Result<Self, CodecError> {
        // Anything but 44 characters is refused unread.
        if text.len() != Self::CHARS {
            return Err(CodecError::NotHash32);
        }
        match unb64(text) {
            Ok(bytes) if bytes.len() == 32 => Ok(Self(text.to_owned())),
            Ok(_) => Err(CodecError::NotHash32),
            Err(e) => Err(e),
        }
    }

    /// The hash of `text` (section 1), which is always a valid `Hash32`.
    pub fn of_text(text: &str) -> Self {
        Self(hash_text(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

text_newtype!(Hash32, CodecError);

/// The `messageHash` of a message: `hash(message)`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MessageHash(Hash32);

impl MessageHash {
    pub fn parse(text: &str) -> Result<Self, CodecError> {
        Hash32::parse(text).map(Self)
    }

    /// The `messageHash` of `message` (section 5).
    pub fn of_message(message: &str) -> Self {
        Self(Hash32::of_text(message))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

text_newtype!(MessageHash, CodecError);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::b64;

    #[test]
    fn a_hash_is_base64_of_exactly_32_bytes() {
        assert!(Hash32::parse(&b64([7u8; 32])).is_ok());
        assert_eq!(Hash32::parse(&b64([7u8; 31])), Err(CodecError::NotHash32));
        assert_eq!(Hash32::parse(&b64([7u8; 33])), Err(CodecError::NotHash32));
        assert_eq!(Hash32::parse("not base64!"), Err(CodecError::NotHash32));
        assert_eq!(Hash32::parse(&"!".repeat(44)), Err(CodecError::Base64));
        assert_eq!(Hash32::parse(&"A".repeat(4_000_000)), Err(CodecError::NotHash32), "refused unread");
    }

    #[test]
    fn a_message_hash_reads_and_writes_as_its_text() {
        let hash = MessageHash::of_message("hello");
        assert_eq!(hash.as_str(), hash_text("hello"));
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(serde_json::from_str::<MessageHash>(&json).unwrap(), hash);
        assert!(serde_json::from_str::<MessageHash>("\"abc\"").is_err());
        assert_eq!(format!("{hash:?}"), format!("MessageHash({hash})"));
    }
}
