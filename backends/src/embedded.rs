//! The embedded backend: record store, search index, queue and claim store
//! in one redb database file, for `pm serve` on one machine.
//!
//! Guarantees:
//! - **Durable before answered.** Every write returns after its transaction
//!   committed with redb's default durability (data on disk, one fsync), so
//!   an acknowledged write survives `SIGKILL`. The exceptions are the
//!   writer's own transactions, the [`RecordWriter::write`] of a batch of
//!   deliveries and their acknowledgement, committed without an fsync:
//!   their messages are already durable in the queue, redb's commits form
//!   one history that a crash cuts at the last durable commit (so an
//!   acknowledgement never outlives the write before it), and a lost write
//!   only means an idempotent redelivery. The next durable commit (an
//!   admission's, or the consumer's flush once the queue has been idle for
//!   [`FLUSH_WHEN_IDLE`], or the one when the backend closes) persists them.
//! - **Group commit.** Concurrent [`Admission::admit`] calls are gathered by
//!   one committer thread into a single write transaction: each request's
//!   claims are checked and taken, and its message queued, in turn, so a
//!   request sees the claims of those before it, and all are answered after
//!   the one commit (one fsync for the group).
//! - **Admissions that store.** On a file that is the node's store, index
//!   and queue alike ([`EmbeddedBackend::open_with`]), an admission given
//!   its records ([`Admission::admit_storing`]) writes them and their index
//!   entries in the group's transaction instead of queueing the message:
//!   readable once answered, with nothing for the writer to do; they are
//!   announced to the live tail after the commit. The stored message row
//!   is then the claim of its hash: no claim row is written for it, and
//!   both are checked.
//! - **One transaction per write.** A [`RecordWriter::write`] batch is
//!   indexed and stored in one transaction: never an index entry without its
//!   record or the reverse.
//! - **Queue.** One consumer per database; unsettled deliveries are handed
//!   out again when a new consumer starts.

use crate::events::LocalEvents;
use crate::seams::*;
use async_trait::async_trait;
use pm_models::content::nickname_key;
use pm_models::records::{MessageRecord, PersonaRecord};
use pm_models::time::Micros;
use pm_models::{Address, MessageHash};
use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle};
use serde::{Deserialize, Serialize};
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::{oneshot, Notify};

const PERSONA: TableDefinition<&str, &[u8]> = TableDefinition::new("persona");
const MESSAGE: TableDefinition<&str, &[u8]> = TableDefinition::new("message");
const NICKNAME: TableDefinition<&str, &str> = TableDefinition::new("index_nickname");
/// Invitation hash → the registration that redeemed it.
const INVITE: TableDefinition<&str, &str> = TableDefinition::new("index_invite");
type Listing = TableDefinition<'static, (&'static str, i64, &'static str), ()>;
const BY_SENDER: Listing = TableDefinition::new("index_sender");
const BY_READER: Listing = TableDefinition::new("index_reader");
const BY_OBJECT: Listing = TableDefinition::new("index_object");
const BY_CONTAINER: Listing = TableDefinition::new("index_container");
const BY_DATE: TableDefinition<(i64, &str), ()> = TableDefinition::new("index_date");
const CLAIM: TableDefinition<&str, &str> = TableDefinition::new("claim");
/// Pending admissions by [`PendingAdmission::row_key`] (only when claims
/// live here and the queue elsewhere; see [`crate::OutboxAdmission`]).
const PENDING: TableDefinition<&str, &[u8]> = TableDefinition::new("claim_pending");
const QUEUE: TableDefinition<u64, &[u8]> = TableDefinition::new("queue");
const DEAD: TableDefinition<u64, &[u8]> = TableDefinition::new("queue_dead");
/// Counters that must never go back, e.g. the queue sequence: a drained
/// queue must not hand out a number its consumer has already passed.
const COUNTER: TableDefinition<&str, u64> = TableDefinition::new("counter");
const QUEUE_SEQUENCE: &str = "queue";
const DEAD_SEQUENCE: &str = "queue_dead";

/// The most admissions one group commit takes.
const MAX_GROUP: usize = 512;

/// redb's page cache. Its default (1 GiB) let the resident memory of
/// `pm serve` grow with the file, by about 7 MiB per 1,000 envelopes stored
/// (issue 9); pages beyond this come from the OS's page cache.
const CACHE_BYTES: usize = 64 << 20;

/// How long the queue stays empty before the consumer makes the writer's
/// commits durable with an empty durable commit of its own.
const FLUSH_WHEN_IDLE: Duration = Duration::from_millis(50);

/// One redb file holding every table; cheap to clone.
#[derive(Clone)]
pub struct EmbeddedBackend {
    db: Arc<Database>,
    published: Arc<Notify>,
    committer: Arc<Committer>,
    /// Set by a commit without an fsync, cleared by [`Self::flush`].
    unflushed: Arc<AtomicBool>,
    /// Admissions store their records ([`EmbeddedBackend::open_with`]).
    stores_records: bool,
}

/// Rows of this file are written by this module alone, so they are read
/// back with plain msgpack rather than the strict reading of untrusted input.
fn encode<T: Serialize + ?Sized>(row: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(row).expect("rows always encode")
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, BackendError> {
    rmp_serde::from_slice(bytes).map_err(corrupt)
}

fn unavailable(e: impl std::fmt::Display) -> BackendError {
    crate::metrics::error(crate::metrics::EMBEDDED, "storage");
    BackendError::Unavailable(e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> BackendError {
    crate::metrics::error(crate::metrics::EMBEDDED, "corrupt");
    BackendError::Corrupt(e.to_string())
}

#[derive(Serialize, Deserialize)]
struct StoredQueued {
    message_id: MessageHash,
    accepted_at: i64,
    /// Empty for messages queued before receipts existed.
    #[serde(default)]
    receipt: String,
    /// As msgpack `bin` (older files hold an array of integers, also read).
    #[serde(with = "serde_bytes")]
    payload: Vec<u8>,
}

impl StoredQueued {
    fn of(message: &QueuedMessage) -> Self {
        Self {
            message_id: message.message_id.clone(),
            accepted_at: message.accepted_at.0,
            receipt: message.receipt.clone(),
            payload: message.payload.clone(),
        }
    }

    fn into_message(self) -> QueuedMessage {
        QueuedMessage {
            message_id: self.message_id,
            accepted_at: Micros(self.accepted_at),
            receipt: self.receipt,
            payload: self.payload,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct StoredDead {
    message: StoredQueued,
    reason: String,
}

/// An admission waiting for the next group commit.
struct AdmitRequest {
    keys: Vec<ClaimKey>,
    message: QueuedMessage,
    /// The message's records and listing keys, stored instead of queueing it.
    records: Option<(RecordBatch, Vec<MessageKeys>)>,
    answer: oneshot::Sender<Result<ClaimOutcome, BackendError>>,
}

/// The thread that runs group commits. Dropping the last handle stops it
/// and waits for it, so the database file is closed when the backend is.
struct Committer {
    requests: Mutex<Option<mpsc::Sender<AdmitRequest>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(thread) = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = thread.join();
        }
    }
}

impl EmbeddedBackend {
    /// Opens (or creates) the database file and every table in it.
    pub fn open(path: &Path) -> Result<Self, BackendError> {
        Self::open_with(path, None)
    }

    /// [`EmbeddedBackend::open`]; with `stored`, admissions given their
    /// records store them in their own transaction and announce them there
    /// ([`Admission::admit_storing`]), for a node whose store, index and
    /// queue are all this file.
    pub fn open_with(path: &Path, stored: Option<LocalEvents>) -> Result<Self, BackendError> {
        let db = Arc::new(Database::builder().set_cache_size(CACHE_BYTES).create(path).map_err(unavailable)?);
        let txn = db.begin_write().map_err(unavailable)?;
        {
            let has_invite_index = txn.list_tables().map_err(unavailable)?.any(|t| t.name() == INVITE.name());
            if !has_invite_index {
                backfill_invite_index(&txn)?;
            }
            txn.open_table(PERSONA).map_err(unavailable)?;
            txn.open_table(MESSAGE).map_err(unavailable)?;
            txn.open_table(NICKNAME).map_err(unavailable)?;
            for listing in [BY_SENDER, BY_READER, BY_OBJECT, BY_CONTAINER] {
                txn.open_table(listing).map_err(unavailable)?;
            }
            txn.open_table(BY_DATE).map_err(unavailable)?;
            txn.open_table(CLAIM).map_err(unavailable)?;
            txn.open_table(PENDING).map_err(unavailable)?;
            txn.open_table(QUEUE).map_err(unavailable)?;
            txn.open_table(DEAD).map_err(unavailable)?;
            txn.open_table(COUNTER).map_err(unavailable)?;
        }
        txn.commit().map_err(unavailable)?;
        let published = Arc::new(Notify::new());
        let (requests, incoming) = mpsc::channel();
        let stores_records = stored.is_some();
        let thread = {
            let (db, published) = (db.clone(), published.clone());
            std::thread::Builder::new()
                .name("pm-embedded-commit".into())
                .spawn(move || run_group_commits(&db, &incoming, &published, stored.as_ref()))
                .map_err(unavailable)?
        };
        let committer = Arc::new(Committer { requests: Mutex::new(Some(requests)), thread: Mutex::new(Some(thread)) });
        Ok(Self { db, published, committer, unflushed: Arc::new(AtomicBool::new(false)), stores_records })
    }

    /// Runs a write, which waits for the file lock and an fsync, off the
    /// async worker threads.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, BackendError> + Send + 'static,
    ) -> Result<T, BackendError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db)).await.map_err(unavailable)?
    }

    /// Runs a read where it is asked for: a read transaction never waits for
    /// a writer (MVCC) and a lookup takes microseconds, less than handing it
    /// to another thread and back would.
    fn read<T>(&self, work: impl FnOnce(&Database) -> Result<T, BackendError>) -> Result<T, BackendError> {
        work(&self.db)
    }

    /// Runs `work` in one write transaction committed with `durability`.
    async fn write_txn(
        &self,
        durability: Durability,
        work: impl FnOnce(&redb::WriteTransaction) -> Result<(), BackendError> + Send + 'static,
    ) -> Result<(), BackendError> {
        let flushed = !matches!(durability, Durability::None);
        self.blocking(move |db| {
            let mut txn = db.begin_write().map_err(unavailable)?;
            txn.set_durability(durability);
            work(&txn)?;
            txn.commit().map_err(unavailable)
        })
        .await?;
        if !flushed {
            self.unflushed.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Makes every commit so far durable, if one was made without an fsync.
    async fn flush(&self) -> Result<(), BackendError> {
        if self.unflushed.swap(false, Ordering::AcqRel) {
            // Cleared first: a commit that ends after this one begins sets it again.
            if let Err(e) = self.write_txn(Durability::Immediate, |_| Ok(())).await {
                self.unflushed.store(true, Ordering::Release);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Reads rows of `table` by key, in order.
    async fn get_rows<T: for<'de> Deserialize<'de> + Send + 'static>(
        &self,
        table: TableDefinition<'static, &'static str, &'static [u8]>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<T>>, BackendError> {
        self.read(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(table).map_err(unavailable)?;
            keys.iter()
                .map(|key| {
                    let row = table.get(key.as_str()).map_err(unavailable)?;
                    row.map(|v| decode(v.value())).transpose()
                })
                .collect()
        })
    }

    /// How many messages wait in the queue and how many were dead-lettered.
    pub async fn queue_depth(&self) -> Result<(u64, u64), BackendError> {
        self.read(|db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let queued = txn.open_table(QUEUE).map_err(unavailable)?.len().map_err(unavailable)?;
            let dead = txn.open_table(DEAD).map_err(unavailable)?.len().map_err(unavailable)?;
            Ok((queued, dead))
        })
    }
}

/// The committer thread: waits for an admission, takes every other one
/// already waiting (up to [`MAX_GROUP`]), runs them all in one transaction
/// and answers each after the commit. Ends when the backend is dropped,
/// with one last durable commit.
fn run_group_commits(
    db: &Database,
    incoming: &mpsc::Receiver<AdmitRequest>,
    published: &Notify,
    stored: Option<&LocalEvents>,
) {
    while let Ok(first) = incoming.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match incoming.try_recv() {
                Ok(request) => group.push(request),
                Err(_) => break,
            }
        }
        let outcomes = admit_group(db, &group);
        let (mut queued_any, mut stored_hashes) = (false, Vec::new());
        match outcomes {
            Ok(outcomes) => {
                for (request, outcome) in group.into_iter().zip(outcomes) {
                    if outcome == ClaimOutcome::Claimed {
                        match request.records {
                            Some(_) => stored_hashes.push(request.message.message_id),
                            None => queued_any = true,
                        }
                    }
                    let _ = request.answer.send(Ok(outcome));
                }
            }
            Err(error) => {
                for request in group {
                    let _ = request.answer.send(Err(error.clone()));
                }
            }
        }
        if queued_any {
            published.notify_one();
        }
        if let Some(events) = stored {
            events.announce(stored_hashes);
        }
    }
    // The backend is closing: persist what the writer committed without an fsync.
    if let Ok(txn) = db.begin_write() {
        let _ = txn.commit();
    }
}

/// Admits a group in one transaction; a request whose claims conflict
/// (with stored claims or with an earlier request of the group) takes none.
fn admit_group(db: &Database, group: &[AdmitRequest]) -> Result<Vec<ClaimOutcome>, BackendError> {
    let txn = db.begin_write().map_err(unavailable)?;
    let mut outcomes = Vec::with_capacity(group.len());
    {
        let mut claims = txn.open_table(CLAIM).map_err(unavailable)?;
        for request in group {
            let by = request.message.message_id.as_str();
            let outcome = match &request.records {
                Some((records, keys)) => {
                    let outcome = {
                        let messages = txn.open_table(MESSAGE).map_err(unavailable)?;
                        claim_in(&mut claims, Some(&messages), &request.keys, by)?
                    };
                    if outcome == ClaimOutcome::Claimed {
                        put_in(&txn, records)?;
                        index_in(&txn, &records.personas, keys)?;
                    }
                    outcome
                }
                None => {
                    let outcome = claim_in(&mut claims, None, &request.keys, by)?;
                    if outcome == ClaimOutcome::Claimed {
                        enqueue_in(&txn, &request.message)?;
                    }
                    outcome
                }
            };
            outcomes.push(outcome);
        }
    }
    txn.commit().map_err(unavailable)?;
    Ok(outcomes)
}

/// A message hash read from a listing table.
fn listed_hash(text: &str) -> Result<MessageHash, BackendError> {
    MessageHash::parse(text).map_err(|e| corrupt(format!("listed hash {text:?}: {e}")))
}

/// Takes every claim of `keys` for `by`, or none when one is held. With
/// `stored_messages` (an admission that stores its message), the message's
/// own row is the claim of its hash: that claim is checked against both
/// the stored messages and the claims (one an admission queued before
/// holds), and not written.
fn claim_in(
    claims: &mut redb::Table<&str, &str>,
    stored_messages: Option<&redb::Table<&str, &[u8]>>,
    keys: &[ClaimKey],
    by: &str,
) -> Result<ClaimOutcome, BackendError> {
    let rows: Vec<String> = keys.iter().map(ClaimKey::row_key).collect();
    for (key, row) in keys.iter().zip(&rows) {
        let stored = match (key, stored_messages) {
            (ClaimKey::Message(hash), Some(messages)) => messages.get(hash.as_str()).map_err(unavailable)?.is_some(),
            _ => false,
        };
        if stored || claims.get(row.as_str()).map_err(unavailable)?.is_some() {
            return Ok(ClaimOutcome::Conflict(key.clone()));
        }
    }
    for (key, row) in keys.iter().zip(&rows) {
        if stored_messages.is_none() || !matches!(key, ClaimKey::Message(_)) {
            claims.insert(row.as_str(), by).map_err(unavailable)?;
        }
    }
    Ok(ClaimOutcome::Claimed)
}

/// Takes the next number of the named sequence, inside the caller's transaction.
fn next_sequence(txn: &redb::WriteTransaction, name: &str) -> Result<u64, BackendError> {
    let mut counters = txn.open_table(COUNTER).map_err(unavailable)?;
    let next = counters.get(name).map_err(unavailable)?.map_or(1, |v| v.value() + 1);
    counters.insert(name, next).map_err(unavailable)?;
    Ok(next)
}

fn enqueue_in(txn: &redb::WriteTransaction, message: &QueuedMessage) -> Result<(), BackendError> {
    let seq = next_sequence(txn, QUEUE_SEQUENCE)?;
    let mut table = txn.open_table(QUEUE).map_err(unavailable)?;
    table.insert(seq, encode(&StoredQueued::of(message)).as_slice()).map_err(unavailable)?;
    Ok(())
}

fn put_in(txn: &redb::WriteTransaction, batch: &RecordBatch) -> Result<(), BackendError> {
    let mut personas = txn.open_table(PERSONA).map_err(unavailable)?;
    for persona in &batch.personas {
        personas.insert(persona.address.as_str(), encode(persona).as_slice()).map_err(unavailable)?;
    }
    let mut messages = txn.open_table(MESSAGE).map_err(unavailable)?;
    for message in &batch.messages {
        messages.insert(message.hash.as_str(), encode(message).as_slice()).map_err(unavailable)?;
    }
    Ok(())
}

/// Builds [`INVITE`] from the stored registrations, for a file written
/// before that index existed.
fn backfill_invite_index(txn: &redb::WriteTransaction) -> Result<(), BackendError> {
    let messages = txn.open_table(MESSAGE).map_err(unavailable)?;
    let mut invites = txn.open_table(INVITE).map_err(unavailable)?;
    for row in messages.iter().map_err(unavailable)? {
        let (hash, bytes) = row.map_err(unavailable)?;
        let message: MessageRecord = decode(bytes.value())?;
        if let Some(invite) = message.invite_hash() {
            invites.insert(invite.as_str(), hash.value()).map_err(unavailable)?;
        }
    }
    Ok(())
}

fn index_in(
    txn: &redb::WriteTransaction,
    personas: &[PersonaRecord],
    messages: &[MessageKeys],
) -> Result<(), BackendError> {
    let mut nicknames = txn.open_table(NICKNAME).map_err(unavailable)?;
    for persona in personas {
        nicknames.insert(nickname_key(&persona.nickname).as_str(), persona.address.as_str()).map_err(unavailable)?;
    }
    let mut by_sender = txn.open_table(BY_SENDER).map_err(unavailable)?;
    let mut by_date = txn.open_table(BY_DATE).map_err(unavailable)?;
    let mut by_reader = txn.open_table(BY_READER).map_err(unavailable)?;
    let mut by_object = txn.open_table(BY_OBJECT).map_err(unavailable)?;
    let mut by_container = txn.open_table(BY_CONTAINER).map_err(unavailable)?;
    let mut invites = txn.open_table(INVITE).map_err(unavailable)?;
    for keys in messages {
        let (m, h) = (keys.micros, keys.hash.as_str());
        if let Some(invite) = &keys.invite {
            invites.insert(invite.as_str(), h).map_err(unavailable)?;
        }
        by_sender.insert((keys.sender.as_str(), m, h), ()).map_err(unavailable)?;
        by_date.insert((m, h), ()).map_err(unavailable)?;
        for (table, values) in
            [(&mut by_reader, &keys.readers), (&mut by_object, &keys.objects), (&mut by_container, &keys.containers)]
        {
            for value in values {
                table.insert((value.as_str(), m, h), ()).map_err(unavailable)?;
            }
        }
    }
    Ok(())
}

/// The listing keys a message is found under.
struct MessageKeys {
    micros: i64,
    hash: String,
    sender: String,
    readers: Vec<String>,
    objects: Vec<String>,
    containers: Vec<String>,
    /// The invitation a registration redeemed.
    invite: Option<String>,
}

impl MessageKeys {
    fn of(message: &MessageRecord) -> Result<Self, BackendError> {
        let micros = message
            .created_at_micros()
            .ok_or_else(|| corrupt(format!("created_at {:?} is not an RFC 3339 date", message.created_at)))?
            .0;
        Ok(Self {
            micros,
            hash: message.hash.clone(),
            sender: message.persona_sender.clone(),
            readers: message.acl.iter().map(|r| r.reader.clone()).collect(),
            objects: message.objects.iter().map(|o| o.object_hash.clone()).collect(),
            containers: message
                .objects
                .iter()
                .filter_map(|o| o.container.as_ref().map(|c| c.container_hash.clone()))
                .collect(),
            invite: message.invite_hash(),
        })
    }

    fn of_batch(batch: &RecordBatch) -> Result<Vec<Self>, BackendError> {
        batch.messages.iter().map(Self::of).collect()
    }
}

#[async_trait]
impl RecordStore for EmbeddedBackend {
    async fn put(&self, batch: &RecordBatch) -> Result<(), BackendError> {
        let batch = batch.clone();
        self.write_txn(Durability::Immediate, move |txn| put_in(txn, &batch)).await
    }

    async fn personas(&self, addresses: &[Address]) -> Result<Vec<Option<PersonaRecord>>, BackendError> {
        self.get_rows(PERSONA, addresses.iter().map(Address::to_string).collect()).await
    }

    async fn messages(&self, hashes: &[MessageHash]) -> Result<Vec<Option<MessageRecord>>, BackendError> {
        self.get_rows(MESSAGE, hashes.iter().map(MessageHash::to_string).collect()).await
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.read(|db| db.begin_read().map(drop).map_err(unavailable))
    }
}

/// A batch indexed and stored in one transaction: one fsync, and never an
/// index entry without its record or the reverse.
#[async_trait]
impl RecordWriter for EmbeddedBackend {
    async fn write(&self, batch: &RecordBatch) -> Result<(), BackendError> {
        let keys = MessageKeys::of_batch(batch)?;
        let batch = batch.clone();
        // The index and the store are one transaction here: timed as the store.
        // Without an fsync: the deliveries stay durable in the queue (module doc).
        let written = self.write_txn(Durability::None, move |txn| {
            index_in(txn, &batch.personas, &keys)?;
            put_in(txn, &batch)
        });
        crate::metrics::timed(crate::metrics::STORE_SECONDS, written).await
    }

    async fn ping(&self) -> Result<(), BackendError> {
        RecordStore::ping(self).await
    }
}

#[async_trait]
impl SearchIndex for EmbeddedBackend {
    async fn index(&self, batch: &RecordBatch) -> Result<(), BackendError> {
        let keys = MessageKeys::of_batch(batch)?;
        let personas = batch.personas.clone();
        self.write_txn(Durability::Immediate, move |txn| index_in(txn, &personas, &keys)).await
    }

    async fn persona_by_nickname(&self, nickname_key: &str) -> Result<Option<Address>, BackendError> {
        let key = nickname_key.to_owned();
        self.read(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(NICKNAME).map_err(unavailable)?;
            let row = table.get(key.as_str()).map_err(unavailable)?;
            row.map(|v| Address::parse(v.value()).map_err(corrupt)).transpose()
        })
    }

    async fn invitation_redeemed(&self, invite: &MessageHash) -> Result<bool, BackendError> {
        self.read(|db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(INVITE).map_err(unavailable)?;
            Ok(table.get(invite.as_str()).map_err(unavailable)?.is_some())
        })
    }

    async fn list_messages(&self, filter: &MessageFilter, after: Option<&Cursor>, limit: usize) -> ListedHashes {
        let filter = filter.clone();
        let after = after.cloned();
        self.read(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let (listing, value) = match &filter {
                MessageFilter::Day(day) => {
                    let (start, end) = day.range();
                    let table = txn.open_table(BY_DATE).map_err(unavailable)?;
                    let lower = match &after {
                        Some(c) if c.created_at >= start => Bound::Excluded((c.created_at.0, c.hash.as_str())),
                        _ => Bound::Included((start.0, "")),
                    };
                    let range =
                        table.range::<(i64, &str)>((lower, Bound::Excluded((end.0, "")))).map_err(unavailable)?;
                    return range.take(limit).map(|row| listed_hash(row.map_err(unavailable)?.0.value().1)).collect();
                }
                MessageFilter::Sender(v) => (BY_SENDER, v.as_str()),
                MessageFilter::Reader(v) => (BY_READER, v.as_str()),
                MessageFilter::ObjectHash(v) => (BY_OBJECT, v.as_str()),
                MessageFilter::ContainerHash(v) => (BY_CONTAINER, v.as_str()),
            };
            let table = txn.open_table(listing).map_err(unavailable)?;
            let lower = match &after {
                Some(c) => Bound::Excluded((value, c.created_at.0, c.hash.as_str())),
                None => Bound::Included((value, i64::MIN, "")),
            };
            // Hashes are base64 text, so DEL sorts after every one of them.
            let upper = Bound::Included((value, i64::MAX, "\u{7f}"));
            let range = table.range::<(&str, i64, &str)>((lower, upper)).map_err(unavailable)?;
            range.take(limit).map(|row| listed_hash(row.map_err(unavailable)?.0.value().2)).collect()
        })
    }

    async fn ping(&self) -> Result<(), BackendError> {
        RecordStore::ping(self).await
    }
}

#[async_trait]
impl ClaimStore for EmbeddedBackend {
    async fn claim(&self, keys: &[ClaimKey], by: &str) -> Result<ClaimOutcome, BackendError> {
        let (keys, by) = (keys.to_vec(), by.to_owned());
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            let outcome = claim_in(&mut txn.open_table(CLAIM).map_err(unavailable)?, None, &keys, &by)?;
            match outcome {
                ClaimOutcome::Claimed => txn.commit().map_err(unavailable)?,
                ClaimOutcome::Conflict(_) => txn.abort().map_err(unavailable)?,
            }
            Ok(outcome)
        })
        .await
    }

    async fn release(&self, keys: &[ClaimKey], by: &str) -> Result<(), BackendError> {
        let (keys, by) = (keys.to_vec(), by.to_owned());
        self.write_txn(Durability::Immediate, move |txn| {
            let mut table = txn.open_table(CLAIM).map_err(unavailable)?;
            for row in keys.iter().map(ClaimKey::row_key) {
                let held_by_us = table.get(row.as_str()).map_err(unavailable)?.is_some_and(|v| v.value() == by);
                if held_by_us {
                    table.remove(row.as_str()).map_err(unavailable)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn put_pending(&self, pending: &PendingAdmission) -> Result<(), BackendError> {
        let (row, bytes) = (pending.row_key(), pending.to_bytes());
        self.write_txn(Durability::Immediate, move |txn| {
            txn.open_table(PENDING)
                .map_err(unavailable)?
                .insert(row.as_str(), bytes.as_slice())
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn remove_pending(&self, pending: &PendingAdmission) -> Result<(), BackendError> {
        let row = pending.row_key();
        self.write_txn(Durability::Immediate, move |txn| {
            txn.open_table(PENDING).map_err(unavailable)?.remove(row.as_str()).map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn pending_before(&self, before: Micros, limit: usize) -> Result<Vec<PendingAdmission>, BackendError> {
        let stop = pending_row_key(before, "");
        self.read(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(PENDING).map_err(unavailable)?;
            let rows = table.range::<&str>("pending:"..stop.as_str()).map_err(unavailable)?;
            rows.take(limit).map(|row| PendingAdmission::from_bytes(row.map_err(unavailable)?.1.value())).collect()
        })
    }

    async fn holder(&self, key: &ClaimKey) -> Result<Option<String>, BackendError> {
        let row = key.row_key();
        self.read(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(CLAIM).map_err(unavailable)?;
            let holder = table.get(row.as_str()).map_err(unavailable)?;
            Ok(holder.map(|v| v.value().to_owned()))
        })
    }
}

impl EmbeddedBackend {
    /// Joins the next group commit (module doc).
    async fn join_group(
        &self,
        keys: &[ClaimKey],
        message: &QueuedMessage,
        records: Option<(RecordBatch, Vec<MessageKeys>)>,
    ) -> Result<ClaimOutcome, BackendError> {
        let (answer, answered) = oneshot::channel();
        let request = AdmitRequest { keys: keys.to_vec(), message: message.clone(), records, answer };
        let sent = match &*self.committer.requests.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(requests) => requests.send(request).is_ok(),
            None => false,
        };
        if !sent {
            return Err(BackendError::Unavailable("the embedded committer has stopped".to_owned()));
        }
        answered.await.map_err(|_| BackendError::Unavailable("the embedded committer has stopped".to_owned()))?
    }
}

#[async_trait]
impl Admission for EmbeddedBackend {
    async fn admit(&self, keys: &[ClaimKey], message: &QueuedMessage) -> Result<ClaimOutcome, BackendError> {
        self.join_group(keys, message, None).await
    }

    fn stores_records(&self) -> bool {
        self.stores_records
    }

    async fn admit_storing(
        &self,
        keys: &[ClaimKey],
        message: &QueuedMessage,
        records: RecordBatch,
    ) -> Result<ClaimOutcome, BackendError> {
        if !self.stores_records {
            return self.admit(keys, message).await;
        }
        let listing = MessageKeys::of_batch(&records)?;
        self.join_group(keys, message, Some((records, listing))).await
    }

    async fn ping(&self) -> Result<(), BackendError> {
        RecordStore::ping(self).await
    }
}

#[async_trait]
impl Queue for EmbeddedBackend {
    async fn publish(&self, message: &QueuedMessage) -> Result<(), BackendError> {
        let message = message.clone();
        self.write_txn(Durability::Immediate, move |txn| enqueue_in(txn, &message)).await?;
        self.published.notify_one();
        Ok(())
    }

    async fn consume(&self) -> Result<Box<dyn Consumer>, BackendError> {
        Ok(Box::new(EmbeddedConsumer {
            backend: self.clone(),
            cursor: 0,
            buffer: Default::default(),
            requeued: Default::default(),
        }))
    }

    async fn ping(&self) -> Result<(), BackendError> {
        RecordStore::ping(self).await
    }

    async fn depth(&self) -> Result<Option<QueueDepth>, BackendError> {
        let (queued, dead) = self.queue_depth().await?;
        Ok(Some(QueueDepth { queued, dead }))
    }
}

/// Reads the queue table in sequence order. Its cursor lives in memory, so a
/// restarted process hands out every unsettled message again.
struct EmbeddedConsumer {
    backend: EmbeddedBackend,
    cursor: u64,
    buffer: std::collections::VecDeque<Delivery>,
    /// How often each message was requeued, so deliveries count up.
    requeued: std::collections::HashMap<u64, u32>,
}

const FETCH_BATCH: usize = 512;

impl EmbeddedConsumer {
    async fn fetch(&mut self) -> Result<(), BackendError> {
        let cursor = self.cursor;
        let batch = self
            .backend
            .blocking(move |db| {
                let txn = db.begin_read().map_err(unavailable)?;
                let table = txn.open_table(QUEUE).map_err(unavailable)?;
                let rows = table.range(cursor..).map_err(unavailable)?;
                rows.take(FETCH_BATCH)
                    .map(|row| {
                        let (k, v) = row.map_err(unavailable)?;
                        let stored: StoredQueued = decode(v.value())?;
                        // The cursor lives in memory: a row is new to this consumer.
                        Ok(Delivery {
                            tag: k.value(),
                            redelivered: false,
                            deliveries: 1,
                            message: stored.into_message(),
                        })
                    })
                    .collect::<Result<Vec<_>, BackendError>>()
            })
            .await?;
        if let Some(last) = batch.last() {
            self.cursor = last.tag + 1;
        }
        self.buffer.extend(batch.into_iter().map(|mut delivery| {
            if let Some(requeued) = self.requeued.get(&delivery.tag) {
                delivery.redelivered = true;
                delivery.deliveries = requeued + 1;
            }
            delivery
        }));
        Ok(())
    }
}

#[async_trait]
impl Consumer for EmbeddedConsumer {
    async fn next_batch(&mut self, max: usize) -> Result<Vec<Delivery>, BackendError> {
        loop {
            if !self.buffer.is_empty() {
                let take = max.max(1).min(self.buffer.len());
                return Ok(self.buffer.drain(..take).collect());
            }
            // Register interest before looking, so a publish in between wakes us.
            let published = self.backend.published.clone();
            let notified = published.notified();
            tokio::pin!(notified);
            self.fetch().await?;
            if self.buffer.is_empty() {
                if tokio::time::timeout(FLUSH_WHEN_IDLE, notified.as_mut()).await.is_ok() {
                    continue;
                }
                self.backend.flush().await?;
                // The timeout is a safety net only; publishes notify.
                let _ = tokio::time::timeout(Duration::from_secs(1), notified).await;
            }
        }
    }

    async fn ack(&mut self, tags: &[u64]) -> Result<(), BackendError> {
        for tag in tags {
            self.requeued.remove(tag);
        }
        let tags = tags.to_vec();
        // A lost acknowledgement is an idempotent redelivery (module doc).
        self.backend
            .write_txn(Durability::None, move |txn| {
                let mut queue = txn.open_table(QUEUE).map_err(unavailable)?;
                for tag in tags {
                    queue.remove(tag).map_err(unavailable)?;
                }
                Ok(())
            })
            .await
    }

    /// Hands the message out again by moving the cursor back to it: the
    /// deliveries after it that are still unsettled come out again too,
    /// which the writer's idempotent writes make harmless.
    async fn requeue(&mut self, tag: u64) -> Result<(), BackendError> {
        *self.requeued.entry(tag).or_default() += 1;
        self.buffer.retain(|d| d.tag < tag);
        self.cursor = self.cursor.min(tag);
        Ok(())
    }

    async fn dead_letter(&mut self, tag: u64, reason: &str) -> Result<(), BackendError> {
        self.requeued.remove(&tag);
        let reason = reason.to_owned();
        self.backend
            .write_txn(Durability::Immediate, move |txn| {
                let removed = txn
                    .open_table(QUEUE)
                    .map_err(unavailable)?
                    .remove(tag)
                    .map_err(unavailable)?
                    .map(|row| row.value().to_vec());
                if let Some(row) = removed {
                    let message: StoredQueued = decode(&row)?;
                    let seq = next_sequence(txn, DEAD_SEQUENCE)?;
                    let dead = encode(&StoredDead { message, reason });
                    txn.open_table(DEAD).map_err(unavailable)?.insert(seq, dead.as_slice()).map_err(unavailable)?;
                }
                Ok(())
            })
            .await
    }
}
