//! The seams every backend implements: a [`RecordStore`] (tables `persona`
//! and `message` of PROTOCOL.md section 9), a [`SearchIndex`] (the lookups of
//! section 10), a [`Queue`] (section 8) and a [`ClaimStore`] (the uniqueness
//! claims of section 6), plus [`Admission`], which takes an envelope's claims
//! and queues it as one step, [`RecordWriter`], which writes records to
//! the store and the index, and [`StoredEvents`], the notices that messages
//! became readable (for the gateway's live tail).
//!
//! Writes and reads that come in numbers take a slice ([`RecordBatch`],
//! `personas`, `messages`, [`Consumer::next_batch`], [`Consumer::ack`]), so
//! each backend can use its bulk path (a redb transaction, HBase
//! `mutateRows` and `getRows`, an Elasticsearch `_bulk`, AMQP acks); one
//! item is a batch of one.

use crate::retry::Retryable;
use async_trait::async_trait;
use futures::stream::BoxStream;
use pm_models::records::{MessageRecord, PersonaRecord};
use pm_models::time::{Day, Micros};
use pm_models::{Address, Hash32, MessageHash};
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
    /// A write went out but its outcome is unknown (a publish the broker
    /// did not confirm in time): it may or may not have happened.
    #[error("outcome unknown: {0}")]
    Unconfirmed(String),
}

impl Retryable for BackendError {
    fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Unconfirmed(_))
    }
}

/// Records written together: the personas registrations create, and messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordBatch {
    pub personas: Vec<PersonaRecord>,
    pub messages: Vec<MessageRecord>,
}

impl RecordBatch {
    pub fn is_empty(&self) -> bool {
        self.personas.is_empty() && self.messages.is_empty()
    }
}

/// Tables `persona` and `message`, keyed by address and `messageHash`.
/// Writes are idempotent: the same record written twice is stored once.
#[async_trait]
pub trait RecordStore: Send + Sync {
    /// Stores every record of `batch`; on success all of them are durable.
    async fn put(&self, batch: &RecordBatch) -> Result<(), BackendError>;
    /// The personas of `addresses`, in the same order (`None`: not stored).
    async fn personas(&self, addresses: &[Address]) -> Result<Vec<Option<PersonaRecord>>, BackendError>;
    /// The messages of `hashes`, in the same order (`None`: not stored).
    async fn messages(&self, hashes: &[MessageHash]) -> Result<Vec<Option<MessageRecord>>, BackendError>;
    async fn ping(&self) -> Result<(), BackendError>;

    async fn persona(&self, address: &Address) -> Result<Option<PersonaRecord>, BackendError> {
        Ok(self.personas(std::slice::from_ref(address)).await?.pop().flatten())
    }

    async fn message(&self, hash: &MessageHash) -> Result<Option<MessageRecord>, BackendError> {
        Ok(self.messages(std::slice::from_ref(hash)).await?.pop().flatten())
    }
}

/// Writes records to the store and the index: each is indexed before it is
/// stored, so the store write is the moment a record becomes readable, and
/// every listing already holds it then. Idempotent.
#[async_trait]
pub trait RecordWriter: Send + Sync {
    async fn write(&self, batch: &RecordBatch) -> Result<(), BackendError>;
    /// The store and the index are both reachable.
    async fn ping(&self) -> Result<(), BackendError>;
}

/// [`RecordWriter`] over a separate index and store: the whole batch is
/// indexed, then stored.
pub struct IndexThenStore {
    pub store: Arc<dyn RecordStore>,
    pub index: Arc<dyn SearchIndex>,
}

#[async_trait]
impl RecordWriter for IndexThenStore {
    async fn write(&self, batch: &RecordBatch) -> Result<(), BackendError> {
        crate::metrics::timed(crate::metrics::INDEX_SECONDS, self.index.index(batch)).await?;
        crate::metrics::timed(crate::metrics::STORE_SECONDS, self.store.put(batch)).await
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.store.ping().await?;
        self.index.ping().await
    }
}

/// What a message listing selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageFilter {
    Sender(Address),
    Reader(Address),
    Day(Day),
    ObjectHash(Hash32),
    ContainerHash(Hash32),
}

/// A position in a listing: items strictly after `(created_at, hash)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: Micros,
    pub hash: MessageHash,
}

/// A page of message hashes in listing order, or why the index could not give it.
pub type ListedHashes = Result<Vec<MessageHash>, BackendError>;

/// Lookups the reader answers from, kept by the writer. Every listing is
/// ordered by `created_at`, then hash, and returns message hashes.
#[async_trait]
pub trait SearchIndex: Send + Sync {
    /// Indexes every record of `batch`; idempotent (document id = row key).
    async fn index(&self, batch: &RecordBatch) -> Result<(), BackendError>;
    /// The address of the persona whose lower-cased nickname is `nickname_key`.
    async fn persona_by_nickname(&self, nickname_key: &str) -> Result<Option<Address>, BackendError>;
    /// Whether a stored registration redeemed the invitation `invite`
    /// (section 6: an invitation is redeemed once). With the nickname
    /// lookup, this lets the authorizer see records that hold no claim.
    async fn invitation_redeemed(&self, invite: &MessageHash) -> Result<bool, BackendError>;
    async fn list_messages(&self, filter: &MessageFilter, after: Option<&Cursor>, limit: usize) -> ListedHashes;
    async fn ping(&self) -> Result<(), BackendError>;
}

/// An accepted envelope on its way to the writer (section 8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedMessage {
    /// The `messageHash` (AMQP `message_id`).
    pub message_id: MessageHash,
    /// The acceptance time, which becomes the stored `created_at`.
    pub accepted_at: Micros,
    /// The node's acceptance receipt `R` over `message_id` (header `x-receipt`).
    pub receipt: String,
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
    /// How many times the queue has handed this message out, this one
    /// included, as far as it counts (a quorum queue across restarts; the
    /// embedded queue within one process).
    pub deliveries: u32,
}

#[async_trait]
pub trait Queue: Send + Sync {
    /// Returns once the queue holds the message durably (a broker confirm).
    async fn publish(&self, message: &QueuedMessage) -> Result<(), BackendError>;
    async fn consume(&self) -> Result<Box<dyn Consumer>, BackendError>;
    async fn ping(&self) -> Result<(), BackendError>;
    /// How many messages the queue holds, for metrics; `None` where the
    /// backend cannot tell.
    async fn depth(&self) -> Result<Option<QueueDepth>, BackendError> {
        Ok(None)
    }
}

/// What a queue holds (see [`Queue::depth`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Waiting to be written: RabbitMQ counts those ready, not those handed
    /// out and unsettled; the embedded queue counts every unsettled one.
    pub queued: u64,
    /// Parked for good in the dead-letter queue.
    pub dead: u64,
}

/// One subscription. Unsettled deliveries come back after a restart.
#[async_trait]
pub trait Consumer: Send {
    /// Waits for a delivery, then takes the others already waiting, up to
    /// `max` in all.
    async fn next_batch(&mut self, max: usize) -> Result<Vec<Delivery>, BackendError>;
    /// The messages are durably stored and indexed: forget them.
    async fn ack(&mut self, tags: &[u64]) -> Result<(), BackendError>;
    /// A transient failure: hand the message out again later.
    async fn requeue(&mut self, tag: u64) -> Result<(), BackendError>;
    /// The message can never be written: park it with the reason.
    async fn dead_letter(&mut self, tag: u64, reason: &str) -> Result<(), BackendError>;
    /// Ends the subscription with a goodbye to the broker; what is still
    /// unsettled goes back to the queue. Nothing to do where there is no
    /// connection.
    async fn close(&mut self) {}
}

/// A uniqueness claim of section 6, stored under its row key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClaimKey {
    Message(MessageHash),
    /// A registered key, by its address.
    Key(Address),
    /// A nickname, lower-cased (`nickname_key`).
    Nickname(String),
    /// An invitation a registration used.
    Invite(MessageHash),
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

    /// The claim a row key names; `None` for anything else.
    pub fn from_row_key(row: &str) -> Option<Self> {
        let (kind, value) = row.split_once(':')?;
        match kind {
            "msg" => MessageHash::parse(value).ok().map(Self::Message),
            "key" => Address::parse(value).ok().map(Self::Key),
            "nick" => Some(Self::Nickname(value.to_owned())),
            "invite" => MessageHash::parse(value).ok().map(Self::Invite),
            _ => None,
        }
    }
}

/// An admission under way where the claims and the queue are two stores
/// (the outbox of PROTOCOL.md section 8): recorded in the claim store
/// before its claims are taken, removed once the queue confirmed the
/// message or the claims were given back. What a crash or an unconfirmed
/// publish leaves behind, the [`crate::sweeper::Sweeper`] resolves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingAdmission {
    pub message: QueuedMessage,
    pub keys: Vec<ClaimKey>,
}

impl PendingAdmission {
    /// When the admission began: the message's acceptance instant.
    pub fn since(&self) -> Micros {
        self.message.accepted_at
    }

    /// The claim store's row key: `pending:` + zero-padded micros + hash,
    /// so rows sort by age.
    pub fn row_key(&self) -> String {
        pending_row_key(self.since(), self.message.message_id.as_str())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        pm_models::codec::to_msgpack(&PendingWire {
            message_id: self.message.message_id.to_string(),
            accepted_at: self.message.accepted_at.0,
            receipt: self.message.receipt.clone(),
            payload: pm_models::codec::b64(&self.message.payload),
            keys: self.keys.iter().map(ClaimKey::row_key).collect(),
        })
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BackendError> {
        let corrupt = |what: &str| BackendError::Corrupt(format!("pending admission: {what}"));
        let wire: PendingWire = pm_models::codec::from_msgpack(bytes).map_err(|_| corrupt("not a pending row"))?;
        let keys: Result<Vec<ClaimKey>, BackendError> =
            wire.keys.iter().map(|row| ClaimKey::from_row_key(row).ok_or_else(|| corrupt(row))).collect();
        Ok(Self {
            message: QueuedMessage {
                message_id: MessageHash::parse(&wire.message_id).map_err(|_| corrupt("message_id"))?,
                accepted_at: Micros(wire.accepted_at),
                receipt: wire.receipt,
                payload: pm_models::codec::unb64(&wire.payload).map_err(|_| corrupt("payload"))?,
            },
            keys: keys?,
        })
    }
}

/// The row key of a pending admission begun at `since` (see [`PendingAdmission::row_key`]).
pub fn pending_row_key(since: Micros, hash: &str) -> String {
    format!("pending:{:020}:{hash}", since.0.max(0))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct PendingWire {
    message_id: String,
    accepted_at: i64,
    receipt: String,
    payload: String,
    keys: Vec<String>,
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
    /// Records an admission before its claims are taken.
    async fn put_pending(&self, pending: &PendingAdmission) -> Result<(), BackendError>;
    /// Forgets an admission that is queued or whose claims were given back.
    async fn remove_pending(&self, pending: &PendingAdmission) -> Result<(), BackendError>;
    /// Admissions begun before `before`, oldest first, at most `limit`.
    async fn pending_before(&self, before: Micros, limit: usize) -> Result<Vec<PendingAdmission>, BackendError>;
}

/// Takes an envelope's claims and queues it: on success both happened, on
/// any failure neither is left behind.
#[async_trait]
pub trait Admission: Send + Sync {
    async fn admit(&self, keys: &[ClaimKey], message: &QueuedMessage) -> Result<ClaimOutcome, BackendError>;
    /// Whether [`Admission::admit_storing`] stores the records itself.
    fn stores_records(&self) -> bool {
        false
    }
    /// [`Admission::admit`], given the records the writer would store for
    /// `message`. An admission whose claims, store and index are one
    /// database (the embedded file) stores them in the admission's own
    /// transaction, announces them as stored, and queues nothing, so the
    /// message is readable once admitted; others queue `message`.
    async fn admit_storing(
        &self,
        keys: &[ClaimKey],
        message: &QueuedMessage,
        _records: RecordBatch,
    ) -> Result<ClaimOutcome, BackendError> {
        self.admit(keys, message).await
    }
    /// The claim store and the queue are both reachable.
    async fn ping(&self) -> Result<(), BackendError>;
}

/// [`Admission`] over a claim store and a queue that are two stores, with
/// an outbox so that nothing is lost or left claimed whatever fails:
///
/// 1. the admission is recorded as pending in the claim store;
/// 2. the claims are taken (all or none); on a conflict the pending record
///    is removed and the conflict reported;
/// 3. the message is published; once confirmed, the pending record is removed.
///
/// When the broker refuses the message outright (a nack, a return, no
/// connection at all), the claims are given back at once. When the outcome
/// is unknown (no confirm in time, a connection lost after sending), the
/// claims stay held and the pending record stays: the sweeper publishes it
/// again later (the writer stores a message once however often it is
/// delivered), so the envelope is stored rather than its claims released
/// while a copy may still reach the queue. The client gets `UNAVAILABLE`
/// either way; a retry of the same envelope then answers `DUPLICATE_MESSAGE`.
pub struct OutboxAdmission {
    pub claims: Arc<dyn ClaimStore>,
    pub queue: Arc<dyn Queue>,
}

#[async_trait]
impl Admission for OutboxAdmission {
    async fn admit(&self, keys: &[ClaimKey], message: &QueuedMessage) -> Result<ClaimOutcome, BackendError> {
        let pending = PendingAdmission { message: message.clone(), keys: keys.to_vec() };
        let by = message.message_id.as_str();
        self.claims.put_pending(&pending).await?;
        // A failure to claim leaves the pending record: the sweeper gives
        // back whatever was taken.
        if let conflict @ ClaimOutcome::Conflict(_) = self.claims.claim(keys, by).await? {
            forget(self.claims.as_ref(), &pending).await;
            return Ok(conflict);
        }
        match self.queue.publish(message).await {
            Ok(()) => {
                // Answered without waiting for the removal, one claim-store
                // round trip less: a removal that never happens (a crash, a
                // failure) leaves the record to the sweeper, which finds the
                // message queued or stored and only forgets it.
                let claims = self.claims.clone();
                tokio::spawn(async move { forget(claims.as_ref(), &pending).await });
                Ok(ClaimOutcome::Claimed)
            }
            Err(error @ BackendError::Unconfirmed(_)) => {
                tracing::warn!(%error, hash = %message.message_id, "publish unconfirmed; the sweeper will publish it again");
                Err(error)
            }
            Err(error) => {
                match self.claims.release(keys, by).await {
                    Ok(()) => forget(self.claims.as_ref(), &pending).await,
                    Err(release_error) => tracing::warn!(
                        error = %release_error,
                        hash = %message.message_id,
                        "claims of an unqueued envelope not given back yet; the sweeper will"
                    ),
                }
                Err(error)
            }
        }
    }

    async fn ping(&self) -> Result<(), BackendError> {
        // Any claim row answers whether the claim store is reachable.
        self.claims.holder(&ClaimKey::Message(MessageHash::of_message(""))).await?;
        self.queue.ping().await
    }
}

/// Removes a pending record, or leaves it to the sweeper (which finds the
/// message queued or stored and removes it then).
async fn forget(claims: &dyn ClaimStore, pending: &PendingAdmission) {
    if let Err(error) = claims.remove_pending(pending).await {
        tracing::warn!(%error, hash = %pending.message.message_id, "pending admission left for the sweeper");
    }
}

/// Notices that messages became readable: the writer publishes the hashes
/// of each batch once it is stored and acknowledged; every gateway
/// subscribes and relays them to its live-tail subscribers.
///
/// Best effort by design: a notice lost (a broker outage, a subscriber that
/// fell behind, a process that stopped) only means a live subscriber misses
/// it; the message itself is stored and readable as ever. A message written
/// twice (a redelivery) may be announced twice.
#[async_trait]
pub trait StoredEvents: Send + Sync {
    /// Announces `hashes` as stored. Never waits for a broker: what cannot
    /// be sent now is dropped (and logged).
    async fn publish(&self, hashes: &[MessageHash]);
    /// The notices published from now on, one batch per item, until the
    /// stream ends (the connection behind it was lost: subscribe again).
    async fn subscribe(&self) -> Result<StoredEventStream, BackendError>;
}

/// Batches of hashes announced as stored (see [`StoredEvents::subscribe`]).
pub type StoredEventStream = BoxStream<'static, Vec<MessageHash>>;
