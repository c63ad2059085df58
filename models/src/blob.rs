//! Private blobs, the convention of PROTOCOL.md section 5 for a private
//! message's `message` and its `objectContainer`s: AES-256-GCM under a
//! 32-byte key, `nonce(12) ‖ ciphertext ‖ tag(16)`, no associated data. The
//! node never opens them; readers do, with the message key their ACL rule
//! seals to them.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};

/// Length of the nonce that starts a blob.
pub const NONCE_LEN: usize = 12;
/// Length of the tag that ends a blob.
pub const TAG_LEN: usize = 16;

/// Encrypts `plaintext` under `key` with `nonce`; the caller picks a fresh
/// random nonce for every blob under one key.
pub fn seal(key: &[u8; 32], nonce: &[u8; NONCE_LEN], plaintext: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    let sealed = cipher.encrypt(Nonce::from_slice(nonce), plaintext).expect("AES-GCM encryption cannot fail");
    [nonce.as_slice(), &sealed].concat()
}

/// Decrypts a blob; `None` when it is too short, was not sealed with `key`,
/// or was altered.
pub fn open(key: &[u8; 32], blob: &[u8]) -> Option<Vec<u8>> {
    if blob.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    cipher.decrypt(Nonce::from_slice(&blob[..NONCE_LEN]), &blob[NONCE_LEN..]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_opens_only_with_its_key_and_unaltered() {
        let key = [7u8; 32];
        let blob = seal(&key, &[1; NONCE_LEN], b"object bytes");
        assert_eq!(blob.len(), NONCE_LEN + b"object bytes".len() + TAG_LEN);
        assert_eq!(open(&key, &blob).as_deref(), Some(&b"object bytes"[..]));
        assert_eq!(open(&[8u8; 32], &blob), None, "another key");
        let mut altered = blob.clone();
        altered[NONCE_LEN] ^= 1;
        assert_eq!(open(&key, &altered), None, "an altered ciphertext");
        assert_eq!(open(&key, &blob[..NONCE_LEN + TAG_LEN - 1]), None, "too short");
    }
}
