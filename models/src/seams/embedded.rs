//! The embedded backend: record store, search index, queue and claim store
//! in one redb database file, for `pm serve` on one machine.
//!
//! Guarantees: every method returns after its transaction committed with
//! redb's default durability (data on disk, one fsync), so an acknowledged
//! write survives `SIGKILL`. The one exception is the acknowledgement of a
//! delivery, which skips the fsync: losing it only means an idempotent
//! redelivery, and the next durable commit persists it anyway. The writer's
//! records of one delivery are indexed and stored in one transaction
//! ([`RecordWriter`]). [`Admission::admit`] takes claims and queues in
//! one transaction. The queue serves one consumer per database; unsettled
//! deliveries are handed out again when a new consumer starts.

use super::*;
use crate::codec::{from_msgpack, to_msgpack};
use crate::content::nickname_key;
use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

const PERSONA: TableDefinition<&str, &[u8]> = TableDefinition::new("persona");
const MESSAGE: TableDefinition<&str, &[u8]> = TableDefinition::new("message");
const NICKNAME: TableDefinition<&str, &str> = TableDefinition::new("index_nickname");
type Listing = TableDefinition<'static, (&'static str, i64, &'static str), ()>;
const BY_SENDER: Listing = TableDefinition::new("index_sender");
const BY_READER: Listing = TableDefinition::new("index_reader");
const BY_OBJECT: Listing = TableDefinition::new("index_object");
const BY_CONTAINER: Listing = TableDefinition::new("index_container");
const BY_DATE: TableDefinition<(i64, &str), ()> = TableDefinition::new("index_date");
const CLAIM: TableDefinition<&str, &str> = TableDefinition::new("claim");
const QUEUE: TableDefinition<u64, &[u8]> = TableDefinition::new("queue");
const DEAD: TableDefinition<u64, &[u8]> = TableDefinition::new("queue_dead");
/// Counters that must never go back, e.g. the queue sequence: a drained
/// queue must not hand out a number its consumer has already passed.
const COUNTER: TableDefinition<&str, u64> = TableDefinition::new("counter");
const QUEUE_SEQUENCE: &str = "queue";
const DEAD_SEQUENCE: &str = "queue_dead";

/// One redb file holding every table; cheap to clone.
#[derive(Clone)]
pub struct EmbeddedBackend {
    db: Arc<Database>,
    published: Arc<Notify>,
}

fn unavailable(e: impl std::fmt::Display) -> BackendError {
    BackendError::Unavailable(e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> BackendError {
    BackendError::Corrupt(e.to_string())
}

#[derive(Serialize, Deserialize)]
struct StoredQueued {
    message_id: String,
    accepted_at: i64,
    payload: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct StoredDead {
    message_id: String,
    accepted_at: i64,
    payload: Vec<u8>,
    reason: String,
}

impl EmbeddedBackend {
    /// Opens (or creates) the database file and every table in it.
    pub fn open(path: &Path) -> Result<Self, BackendError> {
        let db = Database::create(path).map_err(unavailable)?;
        let txn = db.begin_write().map_err(unavailable)?;
        {
            txn.open_table(PERSONA).map_err(unavailable)?;
            txn.open_table(MESSAGE).map_err(unavailable)?;
            txn.open_table(NICKNAME).map_err(unavailable)?;
            for listing in [BY_SENDER, BY_READER, BY_OBJECT, BY_CONTAINER] {
                txn.open_table(listing).map_err(unavailable)?;
            }
            txn.open_table(BY_DATE).map_err(unavailable)?;
            txn.open_table(CLAIM).map_err(unavailable)?;
            txn.open_table(QUEUE).map_err(unavailable)?;
            txn.open_table(DEAD).map_err(unavailable)?;
            txn.open_table(COUNTER).map_err(unavailable)?;
        }
        txn.commit().map_err(unavailable)?;
        Ok(Self { db: Arc::new(db), published: Arc::new(Notify::new()) })
    }

    /// Runs blocking redb work off the async worker threads.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, BackendError> + Send + 'static,
    ) -> Result<T, BackendError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db)).await.map_err(unavailable)?
    }

    /// How many messages wait in the queue and how many were dead-lettered.
    pub async fn queue_depth(&self) -> Result<(u64, u64), BackendError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let queued = txn.open_table(QUEUE).map_err(unavailable)?.len().map_err(unavailable)?;
            let dead = txn.open_table(DEAD).map_err(unavailable)?.len().map_err(unavailable)?;
            Ok((queued, dead))
        })
        .await
    }
}

fn claim_in(table: &mut redb::Table<&str, &str>, keys: &[ClaimKey], by: &str) -> Result<ClaimOutcome, BackendError> {
    let rows: Vec<String> = keys.iter().map(ClaimKey::row_key).collect();
    for (key, row) in keys.iter().zip(&rows) {
        if table.get(row.as_str()).map_err(unavailable)?.is_some() {
            return Ok(ClaimOutcome::Conflict(key.clone()));
        }
    }
    for row in &rows {
        table.insert(row.as_str(), by).map_err(unavailable)?;
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
    let stored = StoredQueued {
        message_id: message.message_id.clone(),
        accepted_at: message.accepted_at.0,
        payload: message.payload.clone(),
    };
    let mut table = txn.open_table(QUEUE).map_err(unavailable)?;
    table.insert(seq, to_msgpack(&stored).as_slice()).map_err(unavailable)?;
    Ok(())
}

#[async_trait]
impl RecordStore for EmbeddedBackend {
    async fn put_persona(&self, persona: &PersonaRecord) -> Result<(), BackendError> {
        let persona = persona.clone();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            put_persona_in(&txn, &persona)?;
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn persona(&self, address: &str) -> Result<Option<PersonaRecord>, BackendError> {
        let address = address.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(PERSONA).map_err(unavailable)?;
            let row = table.get(address.as_str()).map_err(unavailable)?;
            row.map(|v| from_msgpack(v.value()).map_err(corrupt)).transpose()
        })
        .await
    }

    async fn put_message(&self, message: &MessageRecord) -> Result<(), BackendError> {
        let message = message.clone();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            put_message_in(&txn, &message)?;
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn message(&self, hash: &str) -> Result<Option<MessageRecord>, BackendError> {
        let hash = hash.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(MESSAGE).map_err(unavailable)?;
            let row = table.get(hash.as_str()).map_err(unavailable)?;
            row.map(|v| from_msgpack(v.value()).map_err(corrupt)).transpose()
        })
        .await
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.blocking(|db| db.begin_read().map(drop).map_err(unavailable)).await
    }
}

fn put_persona_in(txn: &redb::WriteTransaction, persona: &PersonaRecord) -> Result<(), BackendError> {
    let mut table = txn.open_table(PERSONA).map_err(unavailable)?;
    table.insert(persona.address.as_str(), to_msgpack(persona).as_slice()).map_err(unavailable)?;
    Ok(())
}

fn put_message_in(txn: &redb::WriteTransaction, message: &MessageRecord) -> Result<(), BackendError> {
    let mut table = txn.open_table(MESSAGE).map_err(unavailable)?;
    table.insert(message.hash.as_str(), to_msgpack(message).as_slice()).map_err(unavailable)?;
    Ok(())
}

fn index_persona_in(txn: &redb::WriteTransaction, persona: &PersonaRecord) -> Result<(), BackendError> {
    let mut table = txn.open_table(NICKNAME).map_err(unavailable)?;
    table.insert(nickname_key(&persona.nickname).as_str(), persona.address.as_str()).map_err(unavailable)?;
    Ok(())
}

fn index_message_in(txn: &redb::WriteTransaction, keys: &MessageKeys) -> Result<(), BackendError> {
    let (m, h) = (keys.micros, keys.hash.as_str());
    txn.open_table(BY_SENDER).map_err(unavailable)?.insert((keys.sender.as_str(), m, h), ()).map_err(unavailable)?;
    txn.open_table(BY_DATE).map_err(unavailable)?.insert((m, h), ()).map_err(unavailable)?;
    for (listing, values) in [(BY_READER, &keys.readers), (BY_OBJECT, &keys.objects), (BY_CONTAINER, &keys.containers)]
    {
        let mut table = txn.open_table(listing).map_err(unavailable)?;
        for value in values {
            table.insert((value.as_str(), m, h), ()).map_err(unavailable)?;
        }
    }
    Ok(())
}

/// One delivery's records, indexed and stored in one transaction: one
/// fsync, and never an index entry without its record or the reverse.
#[async_trait]
impl RecordWriter for EmbeddedBackend {
    async fn write_records(
        &self,
        persona: Option<&PersonaRecord>,
        message: &MessageRecord,
    ) -> Result<(), BackendError> {
        let keys = MessageKeys::of(message)?;
        let (persona, message) = (persona.cloned(), message.clone());
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            if let Some(persona) = &persona {
                index_persona_in(&txn, persona)?;
                put_persona_in(&txn, persona)?;
            }
            index_message_in(&txn, &keys)?;
            put_message_in(&txn, &message)?;
            txn.commit().map_err(unavailable)
        })
        .await
    }
}

/// The listing keys a message is found under.
struct MessageKeys {
    micros: i64,
    hash: String,
    sender: String,
    readers: Vec<String>,
    objects: Vec<String>,
    containers: Vec<String>,
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
        })
    }
}

#[async_trait]
impl SearchIndex for EmbeddedBackend {
    async fn index_persona(&self, persona: &PersonaRecord) -> Result<(), BackendError> {
        let persona = persona.clone();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            index_persona_in(&txn, &persona)?;
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn index_message(&self, message: &MessageRecord) -> Result<(), BackendError> {
        let keys = MessageKeys::of(message)?;
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            index_message_in(&txn, &keys)?;
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn persona_by_nickname(&self, nickname_key: &str) -> Result<Option<String>, BackendError> {
        let key = nickname_key.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(NICKNAME).map_err(unavailable)?;
            let row = table.get(key.as_str()).map_err(unavailable)?;
            Ok(row.map(|v| v.value().to_owned()))
        })
        .await
    }

    async fn list_messages(
        &self,
        filter: &MessageFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<String>, BackendError> {
        let filter = filter.clone();
        let after = after.cloned();
        self.blocking(move |db| {
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
                    return range
                        .take(limit)
                        .map(|row| row.map(|(k, _)| k.value().1.to_owned()).map_err(unavailable))
                        .collect();
                }
                MessageFilter::Sender(v) => (BY_SENDER, v),
                MessageFilter::Reader(v) => (BY_READER, v),
                MessageFilter::ObjectHash(v) => (BY_OBJECT, v),
                MessageFilter::ContainerHash(v) => (BY_CONTAINER, v),
            };
            let table = txn.open_table(listing).map_err(unavailable)?;
            let lower = match &after {
                Some(c) => Bound::Excluded((value.as_str(), c.created_at.0, c.hash.as_str())),
                None => Bound::Included((value.as_str(), i64::MIN, "")),
            };
            // Hashes are base64 text, so DEL sorts after every one of them.
            let upper = Bound::Included((value.as_str(), i64::MAX, "\u{7f}"));
            let range = table.range::<(&str, i64, &str)>((lower, upper)).map_err(unavailable)?;
            range.take(limit).map(|row| row.map(|(k, _)| k.value().2.to_owned()).map_err(unavailable)).collect()
        })
        .await
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
            let outcome = claim_in(&mut txn.open_table(CLAIM).map_err(unavailable)?, &keys, &by)?;
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
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let mut table = txn.open_table(CLAIM).map_err(unavailable)?;
                for row in keys.iter().map(ClaimKey::row_key) {
                    let held_by_us = table.get(row.as_str()).map_err(unavailable)?.is_some_and(|v| v.value() == by);
                    if held_by_us {
                        table.remove(row.as_str()).map_err(unavailable)?;
                    }
                }
            }
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn holder(&self, key: &ClaimKey) -> Result<Option<String>, BackendError> {
        let row = key.row_key();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let table = txn.open_table(CLAIM).map_err(unavailable)?;
            let holder = table.get(row.as_str()).map_err(unavailable)?;
            Ok(holder.map(|v| v.value().to_owned()))
        })
        .await
    }
}

#[async_trait]
impl Admission for EmbeddedBackend {
    async fn admit(&self, keys: &[ClaimKey], message: &QueuedMessage) -> Result<ClaimOutcome, BackendError> {
        let (keys, message) = (keys.to_vec(), message.clone());
        let outcome = self
            .blocking(move |db| {
                let txn = db.begin_write().map_err(unavailable)?;
                let outcome = claim_in(&mut txn.open_table(CLAIM).map_err(unavailable)?, &keys, &message.message_id)?;
                if outcome != ClaimOutcome::Claimed {
                    txn.abort().map_err(unavailable)?;
                    return Ok(outcome);
                }
                enqueue_in(&txn, &message)?;
                txn.commit().map_err(unavailable)?;
                Ok(outcome)
            })
            .await?;
        self.published.notify_one();
        Ok(outcome)
    }

    async fn ping(&self) -> Result<(), BackendError> {
        RecordStore::ping(self).await
    }
}

#[async_trait]
impl Queue for EmbeddedBackend {
    async fn publish(&self, message: &QueuedMessage) -> Result<(), BackendError> {
        let message = message.clone();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            enqueue_in(&txn, &message)?;
            txn.commit().map_err(unavailable)
        })
        .await?;
        self.published.notify_one();
        Ok(())
    }

    async fn consume(&self) -> Result<Box<dyn Consumer>, BackendError> {
        Ok(Box::new(EmbeddedConsumer { backend: self.clone(), cursor: 0, buffer: Default::default() }))
    }

    async fn ping(&self) -> Result<(), BackendError> {
        RecordStore::ping(self).await
    }
}

/// Reads the queue table in sequence order. Its cursor lives in memory, so a
/// restarted process hands out every unsettled message again.
struct EmbeddedConsumer {
    backend: EmbeddedBackend,
    cursor: u64,
    buffer: std::collections::VecDeque<Delivery>,
}

const FETCH_BATCH: usize = 256;

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
                        let stored: StoredQueued = from_msgpack(v.value()).map_err(corrupt)?;
                        Ok(Delivery {
                            tag: k.value(),
                            // The cursor lives in memory: a row is new to this consumer.
                            redelivered: false,
                            message: QueuedMessage {
                                message_id: stored.message_id,
                                accepted_at: Micros(stored.accepted_at),
                                payload: stored.payload,
                            },
                        })
                    })
                    .collect::<Result<Vec<_>, BackendError>>()
            })
            .await?;
        if let Some(last) = batch.last() {
            self.cursor = last.tag + 1;
        }
        self.buffer.extend(batch);
        Ok(())
    }

    async fn remove(&self, tag: u64, dead_reason: Option<String>) -> Result<(), BackendError> {
        self.backend
            .blocking(move |db| {
                let mut txn = db.begin_write().map_err(unavailable)?;
                if dead_reason.is_none() {
                    // A lost acknowledgement is an idempotent redelivery (module doc).
                    txn.set_durability(Durability::Eventual);
                }
                {
                    let mut queue = txn.open_table(QUEUE).map_err(unavailable)?;
                    let removed = queue.remove(tag).map_err(unavailable)?.map(|row| row.value().to_vec());
                    if let (Some(reason), Some(row)) = (dead_reason, removed) {
                        let stored: StoredQueued = from_msgpack(&row).map_err(corrupt)?;
                        let dead = StoredDead {
                            message_id: stored.message_id,
                            accepted_at: stored.accepted_at,
                            payload: stored.payload,
                            reason,
                        };
                        let seq = next_sequence(&txn, DEAD_SEQUENCE)?;
                        let mut dead_table = txn.open_table(DEAD).map_err(unavailable)?;
                        dead_table.insert(seq, to_msgpack(&dead).as_slice()).map_err(unavailable)?;
                    }
                }
                txn.commit().map_err(unavailable)
            })
            .await
    }
}

#[async_trait]
impl Consumer for EmbeddedConsumer {
    async fn next(&mut self) -> Result<Delivery, BackendError> {
        loop {
            if let Some(delivery) = self.buffer.pop_front() {
                return Ok(delivery);
            }
            // Register interest before looking, so a publish in between wakes us.
            let published = self.backend.published.clone();
            let notified = published.notified();
            self.fetch().await?;
            if self.buffer.is_empty() {
                // The timeout is a safety net only; publishes notify.
                let _ = tokio::time::timeout(Duration::from_secs(1), notified).await;
            }
        }
    }

    async fn ack(&mut self, tag: u64) -> Result<(), BackendError> {
        self.remove(tag, None).await
    }

    async fn requeue(&mut self, tag: u64) -> Result<(), BackendError> {
        self.buffer.retain(|d| d.tag < tag);
        self.cursor = self.cursor.min(tag);
        Ok(())
    }

    async fn dead_letter(&mut self, tag: u64, reason: &str) -> Result<(), BackendError> {
        self.remove(tag, Some(reason.to_owned())).await
    }
}
