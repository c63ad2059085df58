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
use pm_models::signed_timestamp::{SignedTimestamp, TimestampError};
use pm_models::time::Micros;
use pm_models::{receipt, Address, MessageHash};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

/// `T`s remembered as verified at most; the set starts over when full.
const VERIFIED_TIMESTAMPS: usize = 4096;

/// The node key; `Debug` shows only the address.
#[derive(Clone)]
pub struct NodeIdentity {
    key: PersonaKey,
    verified: Arc<Mutex<HashSet<String>>>,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeIdentity({})", self.key.address())
    }
}

impl NodeIdentity {
    pub fn new(key: PersonaKey) -> Self {
        Self { key, verified: Arc::default() }
    }

    pub fn signed_timestamp(&self, now: Micros) -> SignedTimestamp {
        SignedTimestamp::issue(&self.key, now)
    }

    /// Checks that the node signed `t` (not its freshness).
    pub fn verify_timestamp(&self, t: &SignedTimestamp) -> Result<(), TimestampError> {
        let lock = || self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if lock().contains(t.as_str()) {
            return Ok(());
        }
        t.verify_node_signature(self.verifying_key())?;
        let mut verified = lock();
        if verified.len() >= VERIFIED_TIMESTAMPS {
            verified.clear();
        }
        verified.insert(t.as_str().to_owned());
        Ok(())
    }

    /// The acceptance receipt `R` of `hash`, accepted at `now` (section 8).
    pub fn receipt(&self, hash: &MessageHash, now: Micros) -> String {
        receipt::issue(&self.key, hash, now)
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
}
