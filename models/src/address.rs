//! Addresses of PROTOCOL.md section 2: Base58 of
//! `[1,0] ‖ RIPEMD-160(SHA-256(PEM text)) ‖ last 4 bytes of SHA-256²(prefix ‖ hash)`.
//!
//! The function is key-type agnostic: it hashes whatever PEM text it is given,
//! so the earlier deployment's RSA vectors still apply to it.

use crate::text::text_newtype;
use ripemd::Ripemd160;
use sha2::{Digest, Sha256};

/// The two-byte network prefix of every address.
pub const NETWORK_PREFIX: [u8; 2] = [1, 0];

/// The longest address text (section 2): Base58 of 26 bytes that start with
/// `0x01` never takes more. Checked before decoding, because Base58 decoding
/// costs the square of the input's length.
pub const MAX_ADDRESS_CHARS: usize = 36;

/// A valid address: 26 bytes in Base58 with prefix `[1,0]` and a matching checksum.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Address(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("address is longer than 36 characters")]
    TooLong,
    #[error("address is not Base58")]
    NotBase58,
    #[error("address does not decode to 26 bytes")]
    WrongLength,
    #[error("address does not carry the network prefix [1,0]")]
    WrongPrefix,
    #[error("address checksum does not match")]
    BadChecksum,
}

impl Address {
    /// The address of a public key given as its exact PEM text.
    pub fn of_pem_text(pem_text: &str) -> Self {
        Self(encode_with_prefix(NETWORK_PREFIX, pem_text))
    }

    pub fn parse(text: &str) -> Result<Self, AddressError> {
        if text.len() > MAX_ADDRESS_CHARS {
            return Err(AddressError::TooLong);
        }
        let bytes = bs58::decode(text).into_vec().map_err(|_| AddressError::NotBase58)?;
        if bytes.len() != 26 {
            return Err(AddressError::WrongLength);
        }
        if bytes[..2] != NETWORK_PREFIX {
            return Err(AddressError::WrongPrefix);
        }
        if checksum(&bytes[..22]) != bytes[22..] {
            return Err(AddressError::BadChecksum);
        }
        // Base58 has one spelling per byte string, except for leading '1's,
        // which a 0x01 prefix rules out; keep the canonical text anyway.
        Ok(Self(bs58::encode(bytes).into_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The address function with another network prefix. Only `[1,0]` makes a
/// valid [`Address`]; other prefixes exist to check old vectors against.
pub fn encode_with_prefix(prefix: [u8; 2], pem_text: &str) -> String {
    let inner = Ripemd160::digest(Sha256::digest(pem_text.as_bytes()));
    let mut bytes = Vec::with_capacity(26);
    bytes.extend_from_slice(&prefix);
    bytes.extend_from_slice(&inner);
    let check = checksum(&bytes);
    bytes.extend_from_slice(&check);
    bs58::encode(bytes).into_string()
}

/// The **last** four bytes of SHA-256(SHA-256(payload)) (Bitcoin uses the first).
fn checksum(payload: &[u8]) -> [u8; 4] {
    let c = Sha256::digest(Sha256::digest(payload));
    c[28..32].try_into().expect("a SHA-256 digest has 32 bytes")
}

text_newtype!(Address, AddressError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_over_long_address_is_refused_before_it_is_decoded() {
        // 80,000 characters of valid Base58 took ~2 s to decode (issue: quadratic decoding).
        assert_eq!(Address::parse(&"2".repeat(80_000)), Err(AddressError::TooLong));
        assert_eq!(Address::parse(&"2".repeat(MAX_ADDRESS_CHARS + 1)), Err(AddressError::TooLong));
        // Multi-byte characters count by bytes: never more work than the bytes allow.
        assert_eq!(Address::parse(&"é".repeat(19)), Err(AddressError::TooLong));
    }

    #[test]
    fn every_valid_address_fits_the_limit() {
        for seed in 0..=255u8 {
            let pem = format!("key {seed}");
            let address = Address::of_pem_text(&pem);
            assert!(address.as_str().len() <= MAX_ADDRESS_CHARS, "{address}");
            assert_eq!(Address::parse(address.as_str()), Ok(address));
        }
    }
}
