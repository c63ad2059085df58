//! Public key text (`PublicKeyPem::parse_wire`, `parse_lenient`,
//! `parse_exact`) and private key files (`PersonaKey::from_pkcs8_pem`).
//! A parsed public key prints to its exact PEM text and to the wire form,
//! both of which parse back to it; it is never a small-order point and its
//! 32 bytes are the canonical encoding of the point (RFC 8032 5.1.3). A
//! parsed private key prints to PKCS#8 that reads back to the same key, and
//! signs what its public key verifies.

use crate::common;

use pm_models::keys::PersonaKey;
use pm_models::PublicKeyPem;

fn check(key: &PublicKeyPem) {
    assert_eq!(PublicKeyPem::parse_exact(key.as_str()).as_ref(), Ok(key), "exact text round trip");
    assert_eq!(PublicKeyPem::parse_wire(&key.to_wire()).as_ref(), Ok(key), "wire round trip");
    assert_eq!(PublicKeyPem::parse_wire(key.as_str()).as_ref(), Ok(key), "PEM on the wire");
    assert!(!key.verifying_key().is_weak(), "no small-order key");
    let bytes = key.verifying_key().to_bytes();
    let point = key.verifying_key().to_edwards();
    assert_eq!(point.compress().to_bytes(), bytes, "the key's bytes are the canonical encoding of its point");
}

/// Checks the properties above on one input; panics on a failure.
pub fn run(data: &[u8]) {
    let Some(text) = common::text(data) else { return };
    let lenient = PublicKeyPem::parse_lenient(&text);
    if let Ok(key) = &lenient {
        check(key);
    }
    if let Ok(key) = PublicKeyPem::parse_exact(&text) {
        assert_eq!(key.as_str(), text);
        assert_eq!(lenient.as_ref(), Ok(&key), "exact implies lenient");
    }
    if let Ok(key) = PublicKeyPem::parse_wire(&text) {
        check(&key);
    }
    if let Some(private) = PersonaKey::from_pkcs8_pem(&text) {
        let again = PersonaKey::from_pkcs8_pem(&private.to_pkcs8_pem()).expect("printed PKCS#8 reads back");
        assert_eq!(again.public(), private.public());
        let signature = ed25519_dalek::Signature::from_bytes(&private.sign(b"fuzz"));
        assert!(private.public().verifying_key().verify_strict(b"fuzz", &signature).is_ok());
    }
}
