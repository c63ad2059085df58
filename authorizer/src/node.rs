//! The node identity (PROTOCOL.md section 3): the deployment's Ed25519 key,
//! whose persona is `Teleferic`, the signed timestamps and acceptance
//! receipts it issues, and the check that a `T` is its own.
//!
//! Clients reuse one `T` for many signatures and envelopes (section 3), so
//! the node remembers the `T`s whose signature it has verified, by their
//! exact text, and verifies each only once: a hit is the same bytes it
//! already checked.

use pm_models::keys::PersonaKey;
use pm_models::keys::VerifyingKey;
use pm_models::receipt::{self, IssuedReceipts};
use pm_models::recent::Recent;
use pm_models::signed_timestamp::{SignedTimestamp, TimestampError};
use pm_models::time::Micros;
use pm_models::{Address, MessageHash};
use std::sync::Arc;

/// `T`s remembered as verified at most, the least recently used going first.
const VERIFIED_TIMESTAMPS: usize = 4096;

/// The node key; `Debug` shows only the address.
#[derive(Clone)]
pub struct NodeIdentity {
    key: PersonaKey,
    verified: Arc<Recent<String, ()>>,
    /// Where the receipts it issues are remembered for an in-process writer.
    issued: Option<Arc<IssuedReceipts>>,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeIdentity({})", self.key.address())
    }
}

impl NodeIdentity {
    pub fn new(key: PersonaKey) -> Self {
        Self { key, verified: Arc::new(Recent::new(VERIFIED_TIMESTAMPS)), issued: None }
    }

    /// Remembers every receipt it issues in `issued`, for a writer in the
    /// same process (`pm serve`) to check them without their signatures.
    pub fn remembering_receipts(mut self, issued: Arc<IssuedReceipts>) -> Self {
        self.issued = Some(issued);
        self
    }

    pub fn signed_timestamp(&self, now: Micros) -> SignedTimestamp {
        SignedTimestamp::issue(&self.key, now)
    }

    /// Checks that the node signed `t` (not its freshness).
    pub fn verify_timestamp(&self, t: &SignedTimestamp) -> Result<(), TimestampError> {
        if self.verified.contains(t.as_str()) {
            return Ok(());
        }
        t.verify_node_signature(self.verifying_key())?;
        self.verified.put(t.as_str().to_owned(), ());
        Ok(())
    }

    /// The acceptance receipt `R` of `hash`, accepted at `now` (section 8).
    pub fn receipt(&self, hash: &MessageHash, now: Micros) -> String {
        let receipt = receipt::issue(&self.key, hash, now);
        if let Some(issued) = &self.issued {
            issued.remember(hash, now, &receipt);
        }
        receipt
    }

    /// Forgets the receipt of `hash`, whose admission failed.
    pub fn withdraw_receipt(&self, hash: &MessageHash) {
        if let Some(issued) = &self.issued {
            issued.forget(hash);
        }
    }

    pub fn address(&self) -> Address {
        self.key.address()
    }

    pub fn verifying_key(&self) -> &VerifyingKey {
        self.key.public().verifying_key()
    }

    /// The key that opens sealed boxes addressed to the node.
    pub fn key(&self) -> &PersonaKey {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_is_verified_once_and_a_forged_one_never_passes() {
        let node = NodeIdentity::new(PersonaKey::from_seed([1; 32]));
        let t = node.signed_timestamp(Micros(1_700_000_000_000_000));
        assert_eq!(node.verify_timestamp(&t), Ok(()));
        assert_eq!(node.verify_timestamp(&t), Ok(()), "remembered");
        let stranger = SignedTimestamp::issue(&PersonaKey::from_seed([2; 32]), Micros(1_700_000_000_000_000));
        assert_eq!(node.verify_timestamp(&stranger), Err(TimestampError::NotNodeSigned));
        assert_eq!(node.verify_timestamp(&stranger), Err(TimestampError::NotNodeSigned), "failures are not remembered");
    }

    #[test]
    fn the_receipts_it_issues_are_remembered_for_the_writer_until_withdrawn() {
        let issued = Arc::new(IssuedReceipts::default());
        let node = NodeIdentity::new(PersonaKey::from_seed([1; 32])).remembering_receipts(issued.clone());
        let at = Micros(1_700_000_000_000_000);
        let (kept, withdrawn) = (MessageHash::of_message("kept"), MessageHash::of_message("withdrawn"));
        let (kept_receipt, withdrawn_receipt) = (node.receipt(&kept, at), node.receipt(&withdrawn, at));
        node.withdraw_receipt(&withdrawn);
        // Checked against a key that did not sign them: only a remembered one passes.
        let other = PersonaKey::from_seed([2; 32]);
        let checked = issued.verify_all_at(
            &[(kept_receipt.as_str(), &kept, at), (withdrawn_receipt.as_str(), &withdrawn, at)],
            other.public().verifying_key(),
        );
        assert_eq!(checked, vec![Ok(()), Err(receipt::ReceiptError::NotNodeSigned)]);
    }
}
