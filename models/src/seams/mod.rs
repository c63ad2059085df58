//! The seams every backend implements: a [`RecordStore`] (tables `persona`
//! and `message` of PROTOCOL.md section 9), a [`SearchIndex`] (the lookups of
//! section 10), a [`Queue`] (section 8) and a [`ClaimStore`] (the uniqueness
//! claims of section 6), plus [`Admission`], which takes an envelope's claims
//! and queues it as one step.
//!
//! Backends live one per module; [`embedded`] keeps all four in one redb file;
//! [`rabbitmq`], [`hbase`] and [`elasticsearch`] are the distributed ones.

pub mod elasticsearch;
pub mod embedded;
pub mod hbase;
pub mod rabbitmq;
pub mod services;

use crate::records::{MessageRecord, PersonaRecord};
use crate::time::{Day, Micros};
use async_trait::async_trait;
use std::sync::Arc;

/// A backend failure. Refusals the client caused never travel as this type.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// The backend cannot be reached or failed transiently; retrying may work.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// Stored bytes do not decode; retrying will not help.
    #[error("stored data does not decode: {0}")]
    Corrupt(String),
}

/// Tables `persona` and `message`, keyed by address and `messageHash`.
/// Writes are idempotent: the same record written twice is stored once.
#[async_trait]
pub trait RecordStore: Send + Sync {
    async fn put_persona(&self, persona: &PersonaRecord) -> Result<(), BackendError>;
    async fn persona(&self, address: &str) -> Result<Option<PersonaRecord>, BackendError>;
    async fn put_message(&self, message: &MessageRecord) -> Result<(), BackendError>;
    async fn message(&self, hash: &str) -> Result<Option<MessageRecord>, BackendError>;
    async fn ping(&self) -> Result<(), BackendError>;
}

/// Writes the records of one delivery (the persona a registration
/// creates, then the message), each indexed before it is stored, so the
/// store write is the moment a record becomes readable and every listing
/// already holds it then. Idempotent.
#[async_trait]
pub trait RecordWriter: Send + Sync {
    async fn write_records(&self, persona: Option<&PersonaRecord>, message: &MessageRecord)
        -> Result<(), BackendError>;
}

/// [`RecordWriter`] over a separate index and store, one call after another.
pub struct IndexThenStore {
    pub store: Arc<dyn RecordStore>,
    pub index: Arc<dyn SearchIndex>,
}

#[async_trait]
impl RecordWriter for IndexThenStore {
    async fn write_records(
        &self,
        persona: Option<&PersonaRecord>,
        message: &MessageRecord,
    ) -> Result<(), BackendError> {
        if let Some(persona) = persona {
            self.index.index_persona(persona).await?;
            self.store.put_persona(persona).await?;
        }
        self.index.index_message(message).await?;
        self.store.put_message(message).await
    }
}

/// What a message listing selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageFilter {
    Sender(String),
    Reader(String),
    Day(Day),
    ObjectHash(String),
    ContainerHash(String),
}

/// A position in a listing: items strictly after `(created_at, hash)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: Micros,
    pub hash: String,
}

/// Lookups the reader answers from, kept by the writer. Every listing is
/// ordered by `created_at`, then hash, and returns message hashes.
#[async_trait]
pub trait SearchIndex: Send + Sync {
    async fn index_persona(&self, persona: &PersonaRecord) -> Result<(), BackendError>;
    async fn index_message(&self, message: &MessageRecord) -> Result<(), BackendError>;
    /// The address of the persona whose lower-cased nickname is `nickname_key`.
    async fn persona_by_nickname(&self, nickname_key: &str) -> Result<Option<String>, BackendError>;
    async fn list_messages(
        &self,
        filter: &MessageFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<String>, BackendError>;
    async fn ping(&self) -> Result<(), BackendError>;
}

/// An accepted envelope on its way to the writer (section 8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedMessage {
    /// The `messageHash` (AMQP `message_id`).
    pub message_id: String,
    /// The acceptance time, which becomes the stored `created_at`.
    pub accepted_at: Micros,
    /// `msgpack(envelope)` with `messageType` as an integer.
    pub payload: Vec<u8>,
}

/// A message handed to a consumer, to be settled exactly once.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub tag: u64,
    pub message: QueuedMessage,
    /// True when the queue handed this message out before.
    pub redelivered: bool,
}

#[async_trait]
pub trait Queue: Send + Sync {
    /// Returns once the queue holds the message durably (a broker confirm).
    async fn publish(&self, message: &QueuedMessage) -> Result<(), BackendError>;
    async fn consume(&self) -> Result<Box<dyn Consumer>, BackendError>;
    async fn ping(&self) -> Result<(), BackendError>;
}

/// One subscription. Unsettled deliveries come back after a restart.
#[async_trait]
pub trait Consumer: Send {
    /// Waits for the next delivery.
    async fn next(&mut self) -> Result<Delivery, BackendError>;
    /// The message is durably stored and indexed: forget it.
    async fn ack(&mut self, tag: u64) -> Result<(), BackendError>;
    /// A transient failure: hand the message out again later.
    async fn requeue(&mut self, tag: u64) -> Result<(), BackendError>;
    /// The message can never be written: park it with the reason.
    async fn dead_letter(&mut self, tag: u64, reason: &str) -> Result<(), BackendError>;
}

/// A uniqueness claim of section 6, stored under its row key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClaimKey {
    Message(String),
    Key(String),
    Nickname(String),
    Invite(String),
}

impl ClaimKey {
    /// The row key in table `claim`: `msg:`, `key:`, `nick:` or `invite:`.
    pub fn row_key(&self) -> String {
        match self {
            Self::Message(h) => format!("msg:{h}"),
            Self::Key(a) => format!("key:{a}"),
            Self::Nickname(n) => format!("nick:{n}"),
            Self::Invite(h) => format!("invite:{h}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// Every claim is now held by the claiming message.
    Claimed,
    /// This claim is held by another message; nothing was taken.
    Conflict(ClaimKey),
}

/// Claims shared by every authorizer. A claim is put-if-absent: a key held
/// by anyone, even by the same message, is a conflict, so an envelope sent
/// twice at the same moment is admitted once.
#[async_trait]
pub trait ClaimStore: Send + Sync {
    /// Takes all of `keys` for `by`, or none of them.
    async fn claim(&self, keys: &[ClaimKey], by: &str) -> Result<ClaimOutcome, BackendError>;
    /// Releases those of `keys` that `by` holds.
    async fn release(&self, keys: &[ClaimKey], by: &str) -> Result<(), BackendError>;
    /// The message holding `key`, if any.
    async fn holder(&self, key: &ClaimKey) -> Result<Option<String>, BackendError>;
}

/// Takes an envelope's claims and queues it: on success both happened, on
/// any failure neither is left behind.
#[async_trait]
pub trait Admission: Send + Sync {
    async fn admit(&self, keys: &[ClaimKey], message: &QueuedMessage) -> Result<ClaimOutcome, BackendError>;
    /// The claim store and the queue are both reachable.
    async fn ping(&self) -> Result<(), BackendError>;
}

/// [`Admission`] over separate claim store and queue: claim, publish, and
/// release the claims when the publish fails.
pub struct ClaimThenPublish {
    pub claims: Arc<dyn ClaimStore>,
    pub queue: Arc<dyn Queue>,
}

#[async_trait]
impl Admission for ClaimThenPublish {
    async fn admit(&self, keys: &[ClaimKey], message: &QueuedMessage) -> Result<ClaimOutcome, BackendError> {
        match self.claims.claim(keys, &message.message_id).await? {
            ClaimOutcome::Claimed => {}
            conflict => return Ok(conflict),
        }
        if let Err(publish_error) = self.queue.publish(message).await {
            if let Err(release_error) = self.claims.release(keys, &message.message_id).await {
                tracing::error!(error = %release_error, hash = %message.message_id, "claims of an unqueued envelope could not be released");
            }
            return Err(publish_error);
        }
        Ok(ClaimOutcome::Claimed)
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.claims.holder(&ClaimKey::Message(String::new())).await?;
        self.queue.ping().await
    }
}
