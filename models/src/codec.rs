//! Encodings of PROTOCOL.md section 1: strict base64, canonical msgpack and
//! the `hash(x)` function.
//!
//! Decoding is strict everywhere: a value that does not round-trip is refused,
//! so two parties never disagree about the bytes behind a signature.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{de::DeserializeOwned, Serialize};
use sha2::{Digest, Sha256};

/// Encodes bytes as standard base64 with padding.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    STANDARD.encode(bytes)
}

/// Decodes standard base64 strictly: no whitespace, padding required, unused
/// trailing bits zero (the `STANDARD` engine refuses all three).
pub fn unb64(text: &str) -> Result<Vec<u8>, CodecError> {
    STANDARD.decode(text).map_err(|_| CodecError::Base64)
}

/// Writes `value` as canonical msgpack: maps with string keys in declaration
/// order, every value in its smallest format (what rmp-serde writes).
pub fn to_msgpack<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(value).expect("protocol structures always serialize to msgpack")
}

/// Reads msgpack into `T` under the strict rules of section 5
/// ([`crate::strict_msgpack`]); any mismatch is a [`CodecError`].
pub fn from_msgpack<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    crate::strict_msgpack::from_slice(bytes).map_err(|_| CodecError::Msgpack)
}

/// `base64(SHA-256(bytes))`, e.g. the conventional `objectHash` of an object.
pub fn sha256_b64(bytes: &[u8]) -> String {
    b64(Sha256::digest(bytes))
}

/// `hash(x)` of section 1: base64 of the SHA-256 of the exact UTF-8 bytes.
pub fn hash_text(text: &str) -> String {
    b64(Sha256::digest(text.as_bytes()))
}

/// A failure to decode an encoded value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("not strict base64")]
    Base64,
    #[error("not the expected msgpack structure")]
    Msgpack,
    #[error("not base64 of 32 bytes")]
    NotHash32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decoding_refuses_whitespace_missing_padding_and_dirty_bits() {
        assert_eq!(unb64("aGk=").unwrap(), b"hi");
        assert!(unb64("aGk").is_err(), "padding is required");
        assert!(unb64("aG k=").is_err(), "whitespace is refused");
        assert!(unb64("aGk=\n").is_err(), "a trailing newline is refused");
        assert!(unb64("aGl=").is_err(), "unused trailing bits must be zero");
        assert!(unb64("aGk-").is_err(), "url-safe alphabet is refused");
    }

    #[test]
    fn msgpack_strings_take_their_smallest_format() {
        #[derive(serde::Serialize)]
        struct S<'a> {
            a: &'a str,
            n: u64,
        }
        let short = to_msgpack(&S { a: "x", n: 1 });
        assert_eq!(short, [0x82, 0xa1, b'a', 0xa1, b'x', 0xa1, b'n', 0x01]);
        let long = "y".repeat(40);
        let bytes = to_msgpack(&S { a: &long, n: 300 });
        assert_eq!(&bytes[3..5], &[0xd9, 40], "32..=255 bytes is str8");
        assert_eq!(&bytes[bytes.len() - 3..], &[0xcd, 0x01, 0x2c], "300 is uint16");
    }
}
