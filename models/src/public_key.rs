//! Public key text of PROTOCOL.md section 2: the one-line PEM of an Ed25519
//! SubjectPublicKeyInfo, no trailing newline. This exact text is what is
//! stored, hashed into addresses and compared.

use crate::address::Address;
use crate::codec::{b64, unb64};
use ed25519_dalek::VerifyingKey;
use std::fmt;

const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
const END: &str = "-----END PUBLIC KEY-----";
/// DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32 key bytes follow.
const SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// A valid Ed25519 public key in its canonical PEM text.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKeyPem {
    text: String,
    key: VerifyingKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PublicKeyError {
    #[error("public key is not PEM text")]
    NotPem,
    #[error("public key is not an Ed25519 SubjectPublicKeyInfo")]
    NotEd25519,
    #[error("public key is a weak (small-order) point")]
    Weak,
}

impl PublicKeyPem {
    pub fn from_key(key: VerifyingKey) -> Self {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(key.as_bytes());
        Self { text: format!("{BEGIN}\n{}\n{END}", b64(der)), key }
    }

    /// Parses PEM text exactly as it must appear inside signed content.
    pub fn parse_exact(text: &str) -> Result<Self, PublicKeyError> {
        let parsed = Self::parse_lenient(text)?;
        if parsed.text != text {
            return Err(PublicKeyError::NotPem);
        }
        Ok(parsed)
    }

    /// Parses PEM text with surrounding whitespace, CRLF line ends or a
    /// trailing newline, normalising it to the canonical text.
    pub fn parse_lenient(text: &str) -> Result<Self, PublicKeyError> {
        let normalised = text.trim().replace("\r\n", "\n");
        let body =
            normalised.strip_prefix(BEGIN).and_then(|rest| rest.strip_suffix(END)).ok_or(PublicKeyError::NotPem)?;
        let joined: String = body.split('\n').map(str::trim).collect();
        let der = unb64(&joined).map_err(|_| PublicKeyError::NotPem)?;
        if der.len() != 44 || der[..12] != SPKI_PREFIX {
            return Err(PublicKeyError::NotEd25519);
        }
        let bytes: [u8; 32] = der[12..].try_into().expect("length checked above");
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| PublicKeyError::NotEd25519)?;
        if key.is_weak() {
            return Err(PublicKeyError::Weak);
        }
        Ok(Self::from_key(key))
    }

    /// Parses the wire form: `base64(PEM text)` or the PEM text itself.
    pub fn parse_wire(text: &str) -> Result<Self, PublicKeyError> {
        let trimmed = text.trim();
        if trimmed.starts_with(BEGIN) {
            return Self::parse_lenient(trimmed);
        }
        let decoded = unb64(trimmed).map_err(|_| PublicKeyError::NotPem)?;
        let pem = String::from_utf8(decoded).map_err(|_| PublicKeyError::NotPem)?;
        Self::parse_lenient(&pem)
    }

    /// The wire form the services always write: `base64(PEM text)`.
    pub fn to_wire(&self) -> String {
        b64(self.text.as_bytes())
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    pub fn address(&self) -> Address {
        Address::of_pem_text(&self.text)
    }
}

impl fmt::Debug for PublicKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKeyPem({})", self.address())
    }
}
