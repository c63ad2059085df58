//! The authorizer's settings (the `[authorizer]` section): the freshness
//! window of PROTOCOL.md section 3 and the limits of section 5. The
//! defaults are the contract's, written here once.

use pm_models::signed_timestamp::Freshness;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthorizerSettings {
    /// How old the `T` of a `messageSign` may be (inclusive).
    pub max_age_secs: u64,
    /// How far ahead of the node's clock it may be (inclusive).
    pub max_skew_secs: u64,
    /// Bytes of base64 text in `message`.
    pub max_message_bytes: usize,
    /// Bytes of base64 text in each `objectContainer`.
    pub max_container_bytes: usize,
    pub max_acl_rules: usize,
    pub max_objects: usize,
    pub max_meta_hashes: usize,
    /// A pending admission older than this is resolved by the sweeper
    /// (claims and queue in two stores; PROTOCOL.md section 8). It must be
    /// longer than any admission takes.
    pub pending_grace_secs: u64,
    /// The wait between two sweeps.
    pub sweep_interval_secs: u64,
}

impl Default for AuthorizerSettings {
    fn default() -> Self {
        Self {
            max_age_secs: 420,
            max_skew_secs: 30,
            max_message_bytes: 1 << 20,
            max_container_bytes: 1 << 20,
            max_acl_rules: 256,
            max_objects: 64,
            max_meta_hashes: 64,
            pending_grace_secs: 60,
            sweep_interval_secs: 10,
        }
    }
}

impl AuthorizerSettings {
    pub fn freshness(&self) -> Freshness {
        Freshness { max_age: Duration::from_secs(self.max_age_secs), max_skew: Duration::from_secs(self.max_skew_secs) }
    }

    pub fn pending_grace(&self) -> Duration {
        Duration::from_secs(self.pending_grace_secs)
    }

    pub fn sweep_interval(&self) -> Duration {
        Duration::from_secs(self.sweep_interval_secs)
    }

    /// The settings that must be at least 1, by name, for validation.
    pub fn positive_limits(&self) -> [(&'static str, usize); 5] {
        [
            ("authorizer.max_message_bytes", self.max_message_bytes),
            ("authorizer.max_container_bytes", self.max_container_bytes),
            ("authorizer.max_acl_rules", self.max_acl_rules),
            ("authorizer.max_objects", self.max_objects),
            ("authorizer.max_meta_hashes", self.max_meta_hashes),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_contracts() {
        let settings = AuthorizerSettings::default();
        assert_eq!(settings.freshness(), Freshness::default());
        assert_eq!((settings.max_message_bytes, settings.max_acl_rules, settings.max_objects), (1 << 20, 256, 64));
    }
}
