//! Private keys (PROTOCOL.md section 2): Ed25519 signing keys and their
//! PKCS#8 PEM text. Written in the RFC 8410 form (version 0, no public key
//! inside: 48 bytes of DER, body `MC4CAQAw…`), which OpenSSL, Python
//! `cryptography`, Go and Java all read; read in that form and in the RFC
//! 5958 v2 form (version 1, public key inside) that earlier versions wrote.
//!
//! A key never appears in a log: [`PersonaKey`]'s `Debug` shows only its
//! address. Files (mode 0600, permission checks) are the binary's business.

use crate::address::Address;
use crate::codec::b64;
use crate::public_key::PublicKeyPem;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signer, SigningKey};
use std::fmt;

/// An Ed25519 public key, re-exported so services need not name the crate.
pub use ed25519_dalek::VerifyingKey;

/// DER of an RFC 8410 `OneAsymmetricKey` v1 for Ed25519, up to the 32-byte
/// seed: SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING {
/// OCTET STRING (32 bytes) } }.
const RFC8410_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

/// An Ed25519 key pair with its public key text.
#[derive(Clone)]
pub struct PersonaKey {
    signing: SigningKey,
    public: PublicKeyPem,
}

impl PersonaKey {
    pub fn generate() -> Self {
        Self::from_signing(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self::from_signing(SigningKey::from_bytes(&seed))
    }

    fn from_signing(signing: SigningKey) -> Self {
        let public = PublicKeyPem::from_key(signing.verifying_key());
        Self { signing, public }
    }

    /// Reads a `PRIVATE KEY` PEM in either PKCS#8 form; `None` for anything
    /// that is not an Ed25519 private key.
    pub fn from_pkcs8_pem(text: &str) -> Option<Self> {
        SigningKey::from_pkcs8_pem(text).ok().map(Self::from_signing)
    }

    /// The RFC 8410 form: one base64 line of 48 bytes of DER, LF line ends.
    pub fn to_pkcs8_pem(&self) -> String {
        let mut der = RFC8410_PREFIX.to_vec();
        der.extend_from_slice(self.signing.as_bytes());
        format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", b64(der))
    }

    pub fn sign(&self, bytes: &[u8]) -> [u8; 64] {
        self.signing.sign(bytes).to_bytes()
    }

    pub fn public(&self) -> &PublicKeyPem {
        &self.public
    }

    pub fn address(&self) -> Address {
        self.public.address()
    }

    /// The X25519 secret that opens sealed boxes to this key: the scalar bytes
    /// libsodium's `crypto_sign_ed25519_sk_to_curve25519` derives.
    pub fn x25519_secret(&self) -> [u8; 32] {
        self.signing.to_scalar_bytes()
    }
}

impl fmt::Debug for PersonaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PersonaKey({})", self.address())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use ed25519_dalek::pkcs8::EncodePrivateKey;

    #[test]
    fn keys_are_written_in_the_rfc_8410_form_of_48_bytes() {
        let key = PersonaKey::from_seed([7; 32]);
        let pem = key.to_pkcs8_pem();
        let body = pem.lines().nth(1).unwrap();
        assert!(body.starts_with("MC4CAQAw"), "{pem}");
        assert_eq!(crate::codec::unb64(body).unwrap().len(), 48);
        assert_eq!(PersonaKey::from_pkcs8_pem(&pem).unwrap().address(), key.address());
    }

    #[test]
    fn keys_in_the_rfc_5958_v2_form_are_still_read() {
        let signing = SigningKey::from_bytes(&[9; 32]);
        let v2 = signing.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        let body: String = v2.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(crate::codec::unb64(&body).unwrap().len() > 48, "dalek writes the v2 form with the public key");
        assert_eq!(PersonaKey::from_pkcs8_pem(&v2).unwrap().address(), PersonaKey::from_seed([9; 32]).address());
    }

    #[test]
    fn a_public_key_pem_is_not_a_private_key() {
        let key = PersonaKey::from_seed([3; 32]);
        assert!(PersonaKey::from_pkcs8_pem(key.public().as_str()).is_none());
    }
}
