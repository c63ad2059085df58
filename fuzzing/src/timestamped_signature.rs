//! `TimestampedSignature::parse` on any `S` (messageSign, containerSign, a
//! content's signature). A parsed `S` rebuilt from its two parts parses to
//! the same parts; reading its `T` and verifying never panic.

use crate::common;

use pm_models::timestamped_signature::TimestampedSignature;

/// Checks the properties above on one input; panics on a failure.
pub fn run(data: &[u8]) {
    let Some(text) = common::text(data) else { return };
    let Ok(signature) = TimestampedSignature::parse(&text) else { return };
    let rebuilt = TimestampedSignature::from_parts(signature.signature_b64(), signature.timestamp_text());
    let again = TimestampedSignature::parse(&rebuilt).expect("rebuilt S parses");
    assert_eq!(again.signature_b64(), signature.signature_b64());
    assert_eq!(again.timestamp_text(), signature.timestamp_text());
    let node = common::node_key();
    let key = node.public().verifying_key();
    let _ = signature.timestamp();
    let _ = signature.verify(&text, key, key);
}
