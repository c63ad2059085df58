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
        // RFC 8032 section 5.1.3: y must be below p. The decoder reduces it
        // instead, so one point would have two texts and two addresses.
        if key.to_edwards().compress().to_bytes() != bytes {
            return Err(PublicKeyError::NotEd25519);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pem_of(bytes: &[u8; 32]) -> String {
        format!("{BEGIN}\n{}\n{END}", b64([&SPKI_PREFIX[..], bytes].concat()))
    }

    #[test]
    fn a_point_spelled_with_y_at_or_above_p_is_not_a_key() {
        // y = 3 is a point of large order; y = p + 3 is its other spelling.
        let mut canonical = [0u8; 32];
        canonical[0] = 3;
        let parsed = PublicKeyPem::parse_exact(&pem_of(&canonical)).expect("y = 3 is a valid key");
        assert_eq!(parsed.verifying_key().as_bytes(), &canonical);
        let mut p_plus_3 = [0xff; 32];
        p_plus_3[0] = 0xf0;
        p_plus_3[31] = 0x7f;
        assert!(VerifyingKey::from_bytes(&p_plus_3).is_ok(), "the decoder alone takes it");
        assert_eq!(PublicKeyPem::parse_exact(&pem_of(&p_plus_3)), Err(PublicKeyError::NotEd25519));
        assert_eq!(PublicKeyPem::parse_wire(&b64(pem_of(&p_plus_3))), Err(PublicKeyError::NotEd25519));
    }

    #[test]
    fn small_order_points_are_weak_and_a_generated_key_round_trips() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(PublicKeyPem::parse_exact(&pem_of(&identity)), Err(PublicKeyError::Weak));
        let persona = crate::keys::PersonaKey::generate();
        let key = persona.public();
        assert_eq!(PublicKeyPem::parse_exact(key.as_str()).as_ref(), Ok(key));
    }
}
