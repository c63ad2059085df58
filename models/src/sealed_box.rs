//! Sealed boxes of PROTOCOL.md section 6 (libsodium `crypto_box_seal`:
//! X25519 + XSalsa20-Poly1305) to the node's X25519 key, which is the
//! birational image of its Ed25519 key.

use crate::keys::PersonaKey;
use ed25519_dalek::VerifyingKey;

/// The X25519 public key of an Ed25519 key, as libsodium's
/// `crypto_sign_ed25519_pk_to_curve25519` computes it.
pub fn x25519_public(key: &VerifyingKey) -> [u8; 32] {
    key.to_montgomery().to_bytes()
}

/// Seals `plaintext` to the holder of `recipient`'s Ed25519 key.
pub fn seal(recipient: &VerifyingKey, plaintext: &[u8]) -> Vec<u8> {
    crypto_box::PublicKey::from(x25519_public(recipient))
        .seal(&mut rand::rngs::OsRng, plaintext)
        .expect("sealing to a valid key cannot fail")
}

/// Opens a sealed box with `key`; `None` when it was not sealed to this key
/// or was tampered with.
pub fn open(key: &PersonaKey, sealed: &[u8]) -> Option<Vec<u8>> {
    crypto_box::SecretKey::from(key.x25519_secret()).unseal(sealed).ok()
}
