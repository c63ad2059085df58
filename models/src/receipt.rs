//! The node's acceptance receipt `R` (PROTOCOL.md section 8): the section 4
//! construction made with the *node* key over `H = messageHash`, with a `T`
//! whose `ts` is the acceptance instant. Anyone holding the node public key
//! can check that the node accepted exactly this hash at that time.

use crate::hash::MessageHash;
use crate::keys::{PersonaKey, VerifyingKey};
use crate::recent::Recent;
use crate::signed_timestamp::{SignedTimestamp, TimestampError};
use crate::time::Micros;
use crate::timestamped_signature::{signed_payload, SignatureError, TimestampedSignature};
use ed25519_dalek::Signature;

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

/// A receipt to check: its text, the message hash and the acceptance
/// instant it must state.
pub type Claimed<'a> = (&'a str, &'a MessageHash, Micros);

/// [`verify_at`] for many receipts at once, one result each, in order.
///
/// The signatures of every receipt that decodes and states its instant are
/// checked together by one Ed25519 batch verification, which costs much
/// less per signature than checking each. The batch holds each receipt's
/// own signature only, not its `T`'s: that signature covers the `T` whole,
/// its signature included, and the node key signs no `T` but those it
/// issued, so a receipt whose own signature holds has a node-signed `T`
/// (and a forged `T` needs the node's secret key just the same). Only when
/// that batch fails is every receipt checked on its own, both signatures,
/// to say which. Batch verification uses the cofactored equation where
/// [`verify_at`] uses the strict one: the two differ only for keys or
/// signatures with small-order parts, which the node key does not have and
/// which no one without the node's secret key can use to sign a hash.
pub fn verify_all_at(receipts: &[Claimed<'_>], node: &VerifyingKey) -> Vec<Result<(), ReceiptError>> {
    let one_by_one = |&(receipt, hash, at): &Claimed<'_>| verify_at(receipt, hash, at, node);
    let decoded: Vec<Option<TimestampedSignature>> =
        receipts.iter().map(|&(receipt, _, at)| decode_stating(receipt, at)).collect();
    let mut messages: Vec<Vec<u8>> = Vec::with_capacity(receipts.len());
    let mut signatures: Vec<Signature> = Vec::with_capacity(receipts.len());
    for ((_, hash, _), signature) in receipts.iter().zip(&decoded).filter_map(|(r, d)| Some((r, d.as_ref()?))) {
        messages.push(signed_payload(hash.as_str(), signature.timestamp_text()));
        signatures.push(signature.signature());
    }
    let slices: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let keys = vec![*node; signatures.len()];
    let batch_passed = !signatures.is_empty() && ed25519_dalek::verify_batch(&slices, &signatures, &keys).is_ok();
    receipts
        .iter()
        .zip(&decoded)
        .map(|(claimed, decoded)| match decoded {
            Some(_) if batch_passed => Ok(()),
            _ => one_by_one(claimed),
        })
        .collect()
}

/// Receipts issued by this process for admissions its writer has not yet
/// taken, so that a writer in the same process (`pm serve`) can check a
/// delivery's receipt by comparing it, byte for byte, with the one issued
/// for that hash at that instant, rather than by its signature: the same
/// proof that the authorizer accepted it, without the Ed25519 work.
///
/// Bounded: beyond [`IssuedReceipts::CAPACITY`] the oldest are forgotten,
/// and a receipt not found here (forgotten, issued before a restart or by
/// another process, or altered in the queue) is verified by its signature
/// as usual, so forgetting costs time, never safety.
pub struct IssuedReceipts(Recent<MessageHash, (Micros, String)>);

impl Default for IssuedReceipts {
    fn default() -> Self {
        Self(Recent::new(Self::CAPACITY))
    }
}

impl IssuedReceipts {
    /// Receipts remembered at most (a few MiB).
    pub const CAPACITY: usize = 16_384;

    /// Remembers `receipt`, issued for `hash` accepted at `accepted_at`.
    pub fn remember(&self, hash: &MessageHash, accepted_at: Micros, receipt: &str) {
        self.0.put(hash.clone(), (accepted_at, receipt.to_owned()));
    }

    /// Forgets the receipt of `hash` (its admission failed).
    pub fn forget(&self, hash: &MessageHash) {
        self.0.take(hash);
    }

    /// [`verify_all_at`], where a receipt identical to the one issued here
    /// for its hash and instant passes without a signature check (and is
    /// forgotten: a redelivery is checked by its signature).
    pub fn verify_all_at(&self, receipts: &[Claimed<'_>], node: &VerifyingKey) -> Vec<Result<(), ReceiptError>> {
        let issued_here: Vec<bool> = receipts
            .iter()
            .map(|&(receipt, hash, at)| match self.0.take(hash) {
                Some((issued_at, issued_receipt)) => issued_at == at && issued_receipt == receipt,
                None => false,
            })
            .collect();
        let others: Vec<Claimed<'_>> =
            receipts.iter().zip(&issued_here).filter(|(_, &here)| !here).map(|(claimed, _)| *claimed).collect();
        let mut checked = verify_all_at(&others, node).into_iter();
        issued_here
            .into_iter()
            .map(|here| match here {
                true => Ok(()),
                false => checked.next().expect("one result for each receipt not issued here"),
            })
            .collect()
    }
}

/// The receipt's signature, when it decodes and its `T` states `at`.
fn decode_stating(receipt: &str, at: Micros) -> Option<TimestampedSignature> {
    let signature = TimestampedSignature::parse(receipt).ok()?;
    let t = signature.timestamp().ok()?;
    (t.timestamp().as_str() == at.to_timestamp_string()).then_some(signature)
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

    #[test]
    fn receipts_checked_together_get_the_results_of_each_checked_alone() {
        let node = PersonaKey::from_seed([1; 32]);
        let stranger = PersonaKey::from_seed([2; 32]);
        let key = node.public().verifying_key();
        let at = Micros(1_700_000_001_654_321);
        let hashes: Vec<MessageHash> = (0..6).map(|i| MessageHash::of_message(&format!("m{i}"))).collect();
        let good: Vec<String> = hashes.iter().map(|h| issue(&node, h, at)).collect();
        let all_good: Vec<Claimed<'_>> = good.iter().zip(&hashes).map(|(r, h)| (r.as_str(), h, at)).collect();
        assert_eq!(verify_all_at(&all_good, key), vec![Ok(()); 6]);
        assert_eq!(verify_all_at(&[], key), vec![]);

        let forged = issue(&stranger, &hashes[1], at);
        let mixed: Vec<Claimed<'_>> = vec![
            (good[0].as_str(), &hashes[0], at),
            (forged.as_str(), &hashes[1], at),
            (good[2].as_str(), &hashes[3], at),
            (good[4].as_str(), &hashes[4], Micros(at.0 + 1)),
            ("", &hashes[5], at),
            ("bm9pc2U=", &hashes[5], at),
            (good[5].as_str(), &hashes[5], at),
        ];
        let alone: Vec<_> = mixed.iter().map(|&(r, h, at)| verify_at(r, h, at, key)).collect();
        assert_eq!(
            alone,
            [
                Ok(()),
                Err(ReceiptError::NotNodeSigned),
                Err(ReceiptError::BadSignature),
                Err(ReceiptError::OtherInstant),
                Err(ReceiptError::Missing),
                Err(ReceiptError::Malformed),
                Ok(())
            ]
        );
        assert_eq!(verify_all_at(&mixed, key), alone);
    }

    #[test]
    fn a_receipt_issued_here_passes_unchecked_only_when_identical_and_only_once() {
        let node = PersonaKey::from_seed([1; 32]);
        let stranger = PersonaKey::from_seed([2; 32]);
        let key = node.public().verifying_key();
        let at = Micros(1_700_000_001_654_321);
        let hashes: Vec<MessageHash> = (0..5).map(|i| MessageHash::of_message(&format!("m{i}"))).collect();
        let good: Vec<String> = hashes.iter().map(|h| issue(&node, h, at)).collect();
        let issued = IssuedReceipts::default();
        for (hash, receipt) in hashes.iter().zip(&good) {
            issued.remember(hash, at, receipt);
        }
        // Remembered, but the queue says otherwise: each is checked by its signature.
        let forged = issue(&stranger, &hashes[1], at);
        issued.forget(&hashes[4]);
        let claimed: Vec<Claimed<'_>> = vec![
            (good[0].as_str(), &hashes[0], at),
            (forged.as_str(), &hashes[1], at),
            (good[2].as_str(), &hashes[2], Micros(at.0 + 1)),
            (good[0].as_str(), &hashes[3], at),
            (good[4].as_str(), &hashes[4], at),
        ];
        let expected = vec![
            Ok(()),
            Err(ReceiptError::NotNodeSigned),
            Err(ReceiptError::OtherInstant),
            Err(ReceiptError::BadSignature),
            Ok(()),
        ];
        assert_eq!(issued.verify_all_at(&claimed, key), expected);
        assert_eq!(verify_all_at(&claimed, key), expected, "the same results as by signatures");
        // Taken once: nothing is left to compare with, so a forgery of the
        // first fails on its signature.
        let forged_first = issue(&stranger, &hashes[0], at);
        assert_eq!(
            issued.verify_all_at(&[(forged_first.as_str(), &hashes[0], at)], key),
            vec![Err(ReceiptError::NotNodeSigned)]
        );
    }

    #[test]
    fn a_receipt_issued_here_passes_even_when_its_signature_would_not_be_checked() {
        // The point of remembering: an identical receipt needs no Ed25519 work,
        // shown with a node key that differs from the one that issued it.
        let node = PersonaKey::from_seed([1; 32]);
        let other = PersonaKey::from_seed([3; 32]);
        let at = Micros(1_700_000_001_654_321);
        let hash = MessageHash::of_message("m");
        let receipt = issue(&node, &hash, at);
        let issued = IssuedReceipts::default();
        issued.remember(&hash, at, &receipt);
        let claimed = [(receipt.as_str(), &hash, at)];
        assert_eq!(issued.verify_all_at(&claimed, other.public().verifying_key()), vec![Ok(())]);
        assert_eq!(
            issued.verify_all_at(&claimed, other.public().verifying_key()),
            vec![Err(ReceiptError::NotNodeSigned)],
            "taken once"
        );
    }
}
