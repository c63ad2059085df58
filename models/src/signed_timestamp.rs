//! Node-signed timestamps `T` of PROTOCOL.md section 3:
//! `T = base64(msgpack({"signature": base64(Sign(node_sk, ts)), "timestamp": ts}))`.
//!
//! Any `T` inside a `Sign` value must be signed by this node; only the one in
//! `messageSign` must also be fresh when the envelope is authorized.

use crate::codec::{b64, from_msgpack, to_msgpack, unb64};
use crate::keys::PersonaKey;
use crate::time::{Micros, TimestampString};
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `{"signature": base64, "timestamp": text}`: the map inside both a `T`
/// (signature over the timestamp string) and an `S` (signature over the
/// payload, `timestamp` being a `T`).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignatureWire {
    pub(crate) signature: String,
    pub(crate) timestamp: String,
}

type Wire = SignatureWire;

/// A decoded `T`; [`Self::as_str`] is its exact text as received or issued.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SignedTimestamp {
    text: String,
    timestamp: TimestampString,
    signature: [u8; 64],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("signed timestamp is malformed")]
    Malformed,
    #[error("signed timestamp is not signed by this node")]
    NotNodeSigned,
    #[error("signed timestamp is too old")]
    Expired,
    #[error("signed timestamp is in the future")]
    InFuture,
}

/// How old and how far ahead a `T` in `messageSign` may be (inclusive bounds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Freshness {
    pub max_age: Duration,
    pub max_skew: Duration,
}

impl Default for Freshness {
    fn default() -> Self {
        Self { max_age: Duration::from_secs(420), max_skew: Duration::from_secs(30) }
    }
}

impl SignedTimestamp {
    /// Issues a `T` for `now`, signed by the node key.
    pub fn issue(node: &PersonaKey, now: Micros) -> Self {
        let ts = now.to_timestamp_string();
        let signature = node.sign(ts.as_bytes());
        let wire = Wire { signature: b64(signature), timestamp: ts.clone() };
        Self {
            text: b64(to_msgpack(&wire)),
            timestamp: TimestampString::parse(&ts).expect("the node writes valid timestamp strings"),
            signature,
        }
    }

    pub fn parse(text: &str) -> Result<Self, TimestampError> {
        let bytes = unb64(text).map_err(|_| TimestampError::Malformed)?;
        let wire: Wire = from_msgpack(&bytes).map_err(|_| TimestampError::Malformed)?;
        let signature: [u8; 64] =
            unb64(&wire.signature).ok().and_then(|s| s.try_into().ok()).ok_or(TimestampError::Malformed)?;
        let timestamp = TimestampString::parse(&wire.timestamp).ok_or(TimestampError::Malformed)?;
        Ok(Self { text: text.to_owned(), timestamp, signature })
    }

    /// Checks that the node key signed the ASCII bytes of the timestamp string.
    pub fn verify_node_signature(&self, node: &VerifyingKey) -> Result<(), TimestampError> {
        node.verify_strict(self.timestamp.as_str().as_bytes(), &Signature::from_bytes(&self.signature))
            .map_err(|_| TimestampError::NotNodeSigned)
    }

    /// Checks the freshness window of section 3 against `now`, bounds inclusive.
    pub fn check_fresh(&self, now: Micros, window: Freshness) -> Result<(), TimestampError> {
        let now_nanos = now.0 as i128 * 1000;
        let age = now_nanos - self.timestamp.nanos();
        if age > window.max_age.as_nanos() as i128 {
            return Err(TimestampError::Expired);
        }
        if -age > window.max_skew.as_nanos() as i128 {
            return Err(TimestampError::InFuture);
        }
        Ok(())
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn timestamp(&self) -> &TimestampString {
        &self.timestamp
    }
}
