//! Invitation names of PROTOCOL.md section 6:
//! `base64(nonce(12) ‖ AES-256-GCM(inviteKey, nonce, name) ‖ tag(16))`, no
//! associated data. The node sees only the encrypted form; the invitee gets
//! the key and the plain name out of band.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use rand::RngCore;

/// Encrypts `name` under `invite_key` with a fresh random nonce.
pub fn encrypt(invite_key: &[u8; 32], name: &str) -> Vec<u8> {
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    encrypt_with_nonce(invite_key, &nonce, name)
}

pub fn encrypt_with_nonce(invite_key: &[u8; 32], nonce: &[u8; 12], name: &str) -> Vec<u8> {
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(invite_key));
    let sealed = cipher
        .encrypt(Nonce::from_slice(nonce), name.as_bytes())
        .expect("AES-GCM encryption of a short name cannot fail");
    [nonce.as_slice(), &sealed].concat()
}

/// Decrypts an invitation name; `None` when the key does not open it.
pub fn decrypt(invite_key: &[u8], blob: &[u8]) -> Option<Vec<u8>> {
    if invite_key.len() != 32 || blob.len() < 12 + 16 {
        return None;
    }
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(invite_key));
    cipher.decrypt(Nonce::from_slice(&blob[..12]), &blob[12..]).ok()
}
