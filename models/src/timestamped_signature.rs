//! Timestamped signatures of PROTOCOL.md section 4, used for `messageSign`,
//! `containerSign` and a content's `signature`:
//!
//! ```text
//! payload = msgpack({"messageHash": H, "timestamp": T})
//! S       = base64(msgpack({"signature": base64(Sign(sender_sk, payload)), "timestamp": T}))
//! ```

use crate::codec::{b64, from_msgpack, to_msgpack, unb64};
use crate::keys::PersonaKey;
use crate::signed_timestamp::{SignatureWire as Wire, SignedTimestamp, TimestampError};
use ed25519_dalek::{Signature, VerifyingKey};
use serde::Serialize;

#[derive(Serialize)]
struct Payload<'a> {
    #[serde(rename = "messageHash")]
    message_hash: &'a str,
    timestamp: &'a str,
}

/// A decoded `S`: the signer's signature and the `T` it was made with.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TimestampedSignature {
    text: String,
    signature_b64: String,
    signature: [u8; 64],
    timestamp_text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("timestamped signature is malformed")]
    Malformed,
    #[error(transparent)]
    Timestamp(#[from] TimestampError),
    #[error("signature does not verify")]
    BadSignature,
}

/// The bytes a timestamped signature signs.
pub fn signed_payload(hash: &str, timestamp: &str) -> Vec<u8> {
    to_msgpack(&Payload { message_hash: hash, timestamp })
}

impl TimestampedSignature {
    /// Signs hash string `hash` with `key`, using the node-issued `timestamp`.
    pub fn sign(key: &PersonaKey, hash: &str, timestamp: &SignedTimestamp) -> Self {
        let signature = key.sign(&signed_payload(hash, timestamp.as_str()));
        let wire = Wire { signature: b64(signature), timestamp: timestamp.as_str().to_owned() };
        Self { text: b64(to_msgpack(&wire)), signature_b64: wire.signature, signature, timestamp_text: wire.timestamp }
    }

    /// Rebuilds `S` from its two stored parts (the `signature` and
    /// `timestamp` columns of section 9), e.g. for rows stored without the
    /// `message_sign` column.
    pub fn from_parts(signature_b64: &str, timestamp: &str) -> String {
        b64(to_msgpack(&Wire { signature: signature_b64.to_owned(), timestamp: timestamp.to_owned() }))
    }

    /// Decodes the outer structure; the inner `T` is decoded by [`Self::timestamp`].
    pub fn parse(text: &str) -> Result<Self, SignatureError> {
        let bytes = unb64(text).map_err(|_| SignatureError::Malformed)?;
        let wire: Wire = from_msgpack(&bytes).map_err(|_| SignatureError::Malformed)?;
        let signature: [u8; 64] =
            unb64(&wire.signature).ok().and_then(|s| s.try_into().ok()).ok_or(SignatureError::Malformed)?;
        Ok(Self { text: text.to_owned(), signature_b64: wire.signature, signature, timestamp_text: wire.timestamp })
    }

    /// The `T` inside, decoded; a `T` that does not decode is a timestamp error.
    pub fn timestamp(&self) -> Result<SignedTimestamp, TimestampError> {
        SignedTimestamp::parse(&self.timestamp_text)
    }

    /// Checks the signer's signature over the payload rebuilt from the claimed
    /// `hash` (strict verification: no non-canonical signatures, no weak keys).
    pub fn verify_signature(&self, hash: &str, signer: &VerifyingKey) -> Result<(), SignatureError> {
        signer
            .verify_strict(&signed_payload(hash, &self.timestamp_text), &Signature::from_bytes(&self.signature))
            .map_err(|_| SignatureError::BadSignature)
    }

    /// Full check of a `T` that needs no freshness: node-signed, then the signature.
    pub fn verify(&self, hash: &str, signer: &VerifyingKey, node: &VerifyingKey) -> Result<(), SignatureError> {
        self.timestamp()?.verify_node_signature(node)?;
        self.verify_signature(hash, signer)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The signature part as stored in the `signature` column (base64).
    pub fn signature_b64(&self) -> &str {
        &self.signature_b64
    }

    /// The `T` text as stored in the `timestamp` column.
    pub fn timestamp_text(&self) -> &str {
        &self.timestamp_text
    }

    /// The signer's signature, for checks of many at once.
    pub(crate) fn signature(&self) -> Signature {
        Signature::from_bytes(&self.signature)
    }
}
