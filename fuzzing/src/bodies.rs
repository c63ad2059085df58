//! `BodyMap::decode` and `Registration::from_body` on any `messageBody`.
//! A body decodes exactly when it is one strict msgpack map; a registration
//! read from it has a well-formed nickname and a public key in its exact
//! PEM text, whose address parses back to itself.

use crate::common;

use pm_models::codec::unb64;
use pm_models::content::{nickname_is_well_formed, BodyMap, Registration};
use pm_models::{Address, PublicKeyPem};

/// Checks the properties above on one input; panics on a failure.
pub fn run(data: &[u8]) {
    let Some(text) = common::text(data) else { return };
    let body = BodyMap::decode(&text);
    let strict = unb64(&text).ok().and_then(|bytes| pm_models::strict_msgpack::read_value(&bytes).ok());
    assert_eq!(body.is_ok(), matches!(strict, Some(rmpv::Value::Map(_))), "a body is exactly a strict map");
    let Ok(body) = body else { return };
    for key in ["publicKey", "publicNickname", "inviteMsgID", "keyProof", "inviteName", "bootstrapNode"] {
        if let Some(value) = body.non_empty_str(key) {
            assert!(!value.is_empty());
        }
    }
    let Ok(registration) = Registration::from_body(&body) else { return };
    assert!(nickname_is_well_formed(&registration.nickname));
    let pem = registration.public_key.as_str();
    assert_eq!(PublicKeyPem::parse_exact(pem).as_ref(), Ok(&registration.public_key), "exact PEM round trip");
    let address = registration.public_key.address();
    assert_eq!(Address::parse(address.as_str()).as_ref(), Ok(&address), "the key's address parses");
}
