//! Public key text (`PublicKeyPem::parse_wire`, `parse_lenient`,
//! `parse_exact`) and private key files (`PersonaKey::from_pkcs8_pem`).
//! A parsed public key prints to its exact PEM text and to the wire form,
//! both of which parse back to it; it is never a small-order point and its
//! 32 bytes are the canonical encoding of the point (RFC 8032 5.1.3). A
//! parsed private key prints to PKCS#8 that reads back to the same key, and
//! signs what its public key verifies.
//!
//! The properties live in `pm_fuzzing::pem`, which `cargo test` also
//! runs over this target's corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pm_fuzzing::pem::run(data));
