//! The node identity (PROTOCOL.md section 3): the deployment's Ed25519 key,
//! whose persona is `Teleferic`, and the signed timestamps it issues.

use pm_models::keys::PersonaKey;
use pm_models::keys::VerifyingKey;
use pm_models::signed_timestamp::SignedTimestamp;
use pm_models::time::Micros;
use pm_models::{receipt, Address, MessageHash};

/// The node key; `Debug` shows only the address.
#[derive(Clone, Debug)]
pub struct NodeIdentity {
    key: PersonaKey,
}

impl NodeIdentity {
    pub fn new(key: PersonaKey) -> Self {
        Self { key }
    }

    pub fn signed_timestamp(&self, now: Micros) -> SignedTimestamp {
        SignedTimestamp::issue(&self.key, now)
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
