//! The node's acceptance receipt `R` (PROTOCOL.md section 8): the section 4
//! construction made with the *node* key over `H = messageHash`, with a `T`
//! whose `ts` is the acceptance instant. Anyone holding the node public key
//! can check that the node accepted exactly this hash at that time.

use crate::hash::MessageHash;
use crate::keys::{PersonaKey, VerifyingKey};
use crate::signed_timestamp::{SignedTimestamp, TimestampError};
use crate::time::Micros;
use crate::timestamped_signature::{SignatureError, TimestampedSignature};

/// Why a receipt does not prove acceptance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("receipt is missing")]
    Missing,
    #[error("receipt is malformed")]
    Malformed,
    #[error("receipt timestamp is not signed by the node")]
    NotNodeSigned,
    #[error("receipt signature does not verify for this message hash")]
    BadSignature,
    #[error("receipt was issued at another instant than the acceptance")]
    OtherInstant,
}

/// Issues `R` for `hash`, accepted at `accepted_at`.
pub fn issue(node: &PersonaKey, hash: &MessageHash, accepted_at: Micros) -> String {
    let t = SignedTimestamp::issue(node, accepted_at);
    TimestampedSignature::sign(node, hash.as_str(), &t).as_str().to_owned()
}

/// Checks `receipt` against the node key and the message hash; returns
/// the acceptance instant it states (its `T`'s timestamp string).
pub fn verify(receipt: &str, hash: &MessageHash, node: &VerifyingKey) -> Result<String, ReceiptError> {
    if receipt.is_empty() {
        return Err(ReceiptError::Missing);
    }
    let signature = TimestampedSignature::parse(receipt).map_err(|_| ReceiptError::Malformed)?;
    let t = signature.timestamp().map_err(|_| ReceiptError::Malformed)?;
    t.verify_node_signature(node).map_err(|e| match e {
        TimestampError::NotNodeSigned => ReceiptError::NotNodeSigned,
        _ => ReceiptError::Malformed,
    })?;
    signature.verify_signature(hash.as_str(), node).map_err(|e| match e {
        SignatureError::BadSignature => ReceiptError::BadSignature,
        _ => ReceiptError::Malformed,
    })?;
    Ok(t.timestamp().as_str().to_owned())
}

/// [`verify`], and the receipt must state exactly `accepted_at`.
pub fn verify_at(
    receipt: &str,
    hash: &MessageHash,
    accepted_at: Micros,
    node: &VerifyingKey,
) -> Result<(), ReceiptError> {
    match verify(receipt, hash, node)? == accepted_at.to_timestamp_string() {
        true => Ok(()),
        false => Err(ReceiptError::OtherInstant),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_verifies_only_for_its_hash_its_instant_and_the_node_key() {
        let node = PersonaKey::from_seed([1; 32]);
        let hash = MessageHash::of_message("m");
        let at = Micros(1_700_000_001_654_321);
        let receipt = issue(&node, &hash, at);
        let key = node.public().verifying_key();
        assert_eq!(verify_at(&receipt, &hash, at, key), Ok(()));
        assert_eq!(verify_at(&receipt, &hash, Micros(at.0 + 1), key), Err(ReceiptError::OtherInstant));
        assert_eq!(verify(&receipt, &MessageHash::of_message("other"), key), Err(ReceiptError::BadSignature));
        let stranger = PersonaKey::from_seed([2; 32]);
        assert_eq!(verify(&receipt, &hash, stranger.public().verifying_key()), Err(ReceiptError::NotNodeSigned));
        let forged = issue(&stranger, &hash, at);
        assert_eq!(verify(&forged, &hash, key), Err(ReceiptError::NotNodeSigned));
        assert_eq!(verify("", &hash, key), Err(ReceiptError::Missing));
        assert_eq!(verify("bm9pc2U=", &hash, key), Err(ReceiptError::Malformed));
    }
}
