//! The interfaces the gateway talks to: the authorizer's and the reader's
//! (PROTOCOL.md section 10). `pm serve` wires in-process implementations;
//! the distributed roles implement them over the internal HTTP APIs.

use crate::envelope::{Envelope, ObjectEntry};
use crate::records::{MessageRecord, PersonaRecord};
use crate::rejection::Rejection;
use async_trait::async_trait;

/// An envelope the authorizer accepted and the queue durably holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptedEnvelope {
    pub envelope: Envelope,
    /// The sender; for a registration, the persona its body describes.
    pub sender: PersonaRecord,
    /// The acceptance time (RFC 3339), which becomes the stored `created_at`.
    pub created_at: String,
}

#[async_trait]
pub trait AuthorizerApi: Send + Sync {
    /// Checks an envelope (section 7) and queues it, or says why not.
    async fn send_message(&self, envelope: Envelope) -> Result<AcceptedEnvelope, Rejection>;
    /// A fresh node-signed timestamp `T` (section 3).
    async fn signed_timestamp(&self) -> Result<String, Rejection>;
    /// The node's address, whose persona the `teleferic` query serves.
    async fn node_address(&self) -> Result<String, Rejection>;
    /// The backends the authorizer needs are reachable.
    async fn ready(&self) -> Result<(), Rejection>;
}

/// The one argument of a `persona` lookup, as the client sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PersonaQuery {
    Address(String),
    PublicKey(String),
    Nickname(String),
}

/// What a message listing selects, as the client sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageQuery {
    Sender(String),
    Reader(String),
    /// `YYYY-MM-DD`, a UTC day.
    Date(String),
    ContainerHash(String),
}

/// A page request: `limit` 1–1000 (default 100), `after` a `messageHash`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: Option<i64>,
    pub after: Option<String>,
}

#[async_trait]
pub trait ReaderApi: Send + Sync {
    async fn persona(&self, query: PersonaQuery) -> Result<Option<PersonaRecord>, Rejection>;
    async fn message(&self, hash: &str) -> Result<Option<MessageRecord>, Rejection>;
    async fn messages(&self, query: MessageQuery, page: PageRequest) -> Result<Vec<MessageRecord>, Rejection>;
    async fn object(&self, object_hash: &str) -> Result<Option<ObjectEntry>, Rejection>;
    async fn ready(&self) -> Result<(), Rejection>;
}
