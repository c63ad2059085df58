//! `receipt::verify` on any `R` against the vectors' node key. It never
//! panics; a receipt that verifies states a valid timestamp string, and
//! its canonical re-encoding verifies to the same instant.

use crate::common;

use pm_models::receipt;
use pm_models::time::TimestampString;
use pm_models::timestamped_signature::TimestampedSignature;
use pm_models::MessageHash;

/// Checks the properties above on one input; panics on a failure.
pub fn run(data: &[u8]) {
    let Some(text) = common::text(data) else { return };
    let node = common::node_key();
    let key = node.public().verifying_key();
    // The shared vectors' assertion, whose receipt is in the seed corpus.
    let hash = MessageHash::parse("0uxtUIN5etBH6X0J87k+et/ek2QabhwBs/Iui+FF4OM=").expect("a hash");
    let _ = receipt::verify(&text, &MessageHash::of_message(&text), key);
    let Ok(instant) = receipt::verify(&text, &hash, key) else { return };
    assert!(TimestampString::parse(&instant).is_some());
    let parsed = TimestampedSignature::parse(&text).expect("a verified receipt parses");
    let canonical = TimestampedSignature::from_parts(parsed.signature_b64(), parsed.timestamp_text());
    assert_eq!(receipt::verify(&canonical, &hash, key), Ok(instant));
}
