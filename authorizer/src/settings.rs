//! The authorizer's settings: the freshness window of section 3 and the
//! limits of section 5.

use pm_models::signed_timestamp::Freshness;

/// Limits of PROTOCOL.md section 5 (exceeding one is `PAYLOAD_TOO_LARGE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of base64 text in `message`.
    pub max_message_bytes: usize,
    /// Bytes of base64 text in each `objectContainer`.
    pub max_container_bytes: usize,
    pub max_acl_rules: usize,
    pub max_objects: usize,
    pub max_meta_hashes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 1 << 20,
            max_container_bytes: 1 << 20,
            max_acl_rules: 256,
            max_objects: 64,
            max_meta_hashes: 64,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthorizerSettings {
    pub freshness: Freshness,
    pub limits: Limits,
}
