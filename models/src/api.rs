//! The interfaces the gateway talks to: the authorizer's and the reader's
//! (PROTOCOL.md section 10), with typed arguments. Client text becomes a
//! query value here and only here (`parse_*`), refused as `BAD_QUERY`
//! naming the argument; `pm serve` wires the in-process services, the
//! distributed roles the internal HTTP clients.

use crate::address::Address;
use crate::envelope::{Envelope, ObjectEntry};
use crate::hash::{Hash32, MessageHash};
use crate::public_key::PublicKeyPem;
use crate::records::{MessageRecord, PersonaRecord};
use crate::rejection::Rejection;
use crate::time::Day;
use async_trait::async_trait;

/// An envelope the authorizer accepted and the queue durably holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptedEnvelope {
    pub envelope: Envelope,
    /// The sender; for a registration, the persona its body describes.
    pub sender: PersonaRecord,
    /// The acceptance time (RFC 3339), which becomes the stored `created_at`.
    pub created_at: String,
    /// The node's acceptance receipt `R` (section 8).
    pub receipt: String,
}

#[async_trait]
pub trait AuthorizerApi: Send + Sync {
    /// Checks an envelope (section 7) and queues it, or says why not.
    async fn send_message(&self, envelope: Envelope) -> Result<AcceptedEnvelope, Rejection>;
    /// A fresh node-signed timestamp `T` (section 3).
    async fn signed_timestamp(&self) -> Result<String, Rejection>;
    /// The node's address, whose persona the `teleferic` query serves.
    async fn node_address(&self) -> Result<Address, Rejection>;
    /// The backends the authorizer needs are reachable.
    async fn ready(&self) -> Result<(), Rejection>;
}

/// The one argument of a `persona` lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PersonaQuery {
    Address(Address),
    PublicKey(PublicKeyPem),
    /// As the client wrote it; compared after Unicode lower-casing.
    Nickname(String),
}

/// What a message listing selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageQuery {
    Sender(Address),
    Reader(Address),
    /// A UTC day.
    Date(Day),
    ContainerHash(Hash32),
}

/// A page of a listing: `limit` items after the message `after`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    pub after: Option<MessageHash>,
}

impl PageRequest {
    pub const DEFAULT_LIMIT: usize = 100;
    pub const MAX_LIMIT: usize = 1000;

    /// Section 10: `limit` 1–1000 (default 100), `after` a `messageHash`.
    pub fn parse(limit: Option<i64>, after: Option<&str>) -> Result<Self, Rejection> {
        let limit = match limit {
            None => Self::DEFAULT_LIMIT,
            Some(n) if (1..=Self::MAX_LIMIT as i64).contains(&n) => n as usize,
            Some(n) => return Err(Rejection::bad_query(format!("limit {n} is outside 1-1000"))),
        };
        let after = after.map(|text| parse_message_hash("after", text)).transpose()?;
        Ok(Self { limit, after })
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self { limit: Self::DEFAULT_LIMIT, after: None }
    }
}

/// An address argument.
pub fn parse_address(argument: &str, text: &str) -> Result<Address, Rejection> {
    Address::parse(text).map_err(|e| Rejection::bad_query(format!("{argument}: {e}")))
}

/// A hash argument (base64 of 32 bytes).
pub fn parse_hash(argument: &str, text: &str) -> Result<Hash32, Rejection> {
    Hash32::parse(text).map_err(|_| Rejection::bad_query(format!("{argument} is not base64 of 32 bytes")))
}

/// A `messageHash` argument.
pub fn parse_message_hash(argument: &str, text: &str) -> Result<MessageHash, Rejection> {
    MessageHash::parse(text).map_err(|_| Rejection::bad_query(format!("{argument} is not base64 of 32 bytes")))
}

/// A public key argument, in either wire form (section 2).
pub fn parse_public_key(argument: &str, text: &str) -> Result<PublicKeyPem, Rejection> {
    PublicKeyPem::parse_wire(text).map_err(|e| Rejection::bad_query(format!("{argument}: {e}")))
}

/// A `YYYY-MM-DD` day argument.
pub fn parse_day(argument: &str, text: &str) -> Result<Day, Rejection> {
    Day::parse(text).ok_or_else(|| Rejection::bad_query(format!("{argument} {text:?} is not YYYY-MM-DD")))
}

/// The most addresses one `personas` call may ask for.
pub const MAX_PERSONAS_PER_CALL: usize = 1000;

#[async_trait]
pub trait ReaderApi: Send + Sync {
    async fn persona(&self, query: PersonaQuery) -> Result<Option<PersonaRecord>, Rejection>;
    /// The personas of `addresses` (at most [`MAX_PERSONAS_PER_CALL`]), in
    /// the same order: one read for many lookups.
    async fn personas(&self, addresses: &[Address]) -> Result<Vec<Option<PersonaRecord>>, Rejection>;
    async fn message(&self, hash: &MessageHash) -> Result<Option<MessageRecord>, Rejection>;
    async fn messages(&self, query: MessageQuery, page: PageRequest) -> Result<Vec<MessageRecord>, Rejection>;
    async fn object(&self, object_hash: &Hash32) -> Result<Option<ObjectEntry>, Rejection>;
    async fn ready(&self) -> Result<(), Rejection>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RejectionCode;

    #[test]
    fn a_page_takes_1_to_1000_items_after_a_message_hash() {
        assert_eq!(PageRequest::parse(None, None).unwrap().limit, 100);
        assert_eq!(PageRequest::parse(Some(1000), None).unwrap().limit, 1000);
        for bad in [0, 1001, -1] {
            assert_eq!(PageRequest::parse(Some(bad), None).unwrap_err().code, RejectionCode::BadQuery);
        }
        assert_eq!(PageRequest::parse(None, Some("xyz")).unwrap_err().code, RejectionCode::BadQuery);
    }

    #[test]
    fn bad_arguments_are_bad_queries_naming_the_argument() {
        let refusal = parse_address("sender", "12345").unwrap_err();
        assert_eq!(refusal.code, RejectionCode::BadQuery);
        assert!(refusal.error.starts_with("sender:"), "{}", refusal.error);
        assert!(parse_day("date", "2024-13-01").unwrap_err().error.contains("date"));
        assert!(parse_public_key("pubkey", "bm90IGEga2V5").is_err());
    }
}
