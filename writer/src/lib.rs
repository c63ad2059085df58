//! The writer: moves accepted envelopes from the queue into storage.
//!
//! Rules it keeps (PROTOCOL.md sections 8 and 9):
//! - only what the authorizer accepted is stored: a delivery whose
//!   acceptance receipt `R` does not verify against the node key, for its
//!   hash and acceptance instant, is dead-lettered, whoever put it on the
//!   queue (in `pm serve`, a receipt identical to one the authorizer in the
//!   same process issued for that hash and instant needs no signature
//!   check: [`IssuedReceipts`]);
//! - a delivery is acknowledged only after its records are durably in both
//!   the record store and the search index;
//! - every write is idempotent (row key = address or `messageHash`, listing
//!   keys include `created_at`, which is the acceptance time carried by the
//!   queued message), so a redelivery rewrites the same records;
//! - deliveries are written in batches (up to `batch_size`, one bulk write
//!   each) with up to `concurrency` batches in flight: queued envelopes never
//!   depend on each other (the authorizer accepts only envelopes whose sender
//!   and invitation are already stored);
//! - a transient backend failure is retried in place with backoff (the one
//!   [`RetryPolicy`]) until it succeeds: the deliveries are held, never
//!   requeued for it, so an outage of the store or the index, however long,
//!   does not count against `max_deliveries` or the queue's delivery limit;
//! - a payload that can never be written is dead-lettered with the reason,
//!   alone;
//! - on shutdown it stops taking deliveries and settles those in flight,
//!   waiting at most [`SHUTDOWN_GRACE`]; what is still unwritten then stays
//!   unacknowledged and is delivered again. When the subscription is lost,
//!   writes in flight are dropped at once: the broker hands those
//!   deliveries out again anyway.
//!
//! It also writes the personas `pm bootstrap` creates ([`bootstrap`]), and
//! records batch sizes, outcomes, lag and queue depth ([`metrics`]).

pub mod bootstrap;
pub mod http;
pub mod metrics;
mod plan;

use futures::stream::{FuturesUnordered, StreamExt};
use pm_backends::retry::RetryPolicy;
use pm_backends::{BackendError, Consumer, Delivery, Queue, RecordBatch, RecordStore, RecordWriter, StoredEvents};
use pm_models::keys::VerifyingKey;
use pm_models::receipt::{self, IssuedReceipts};
use pm_models::time::Micros;
use pm_models::MessageHash;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use plan::{plan, plan_batch, WritePlan};

/// The longest a shutdown waits for batches in flight to be written.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// The writer's settings (the `[writer]` section), with their defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriterSettings {
    /// The wait after a batch's first failed write; it doubles up to
    /// `max_backoff_ms` and the write is tried until it succeeds.
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Deliveries written together, at most.
    pub batch_size: usize,
    /// Batches written at once, at most. Each waits for an Elasticsearch
    /// refresh, so the defaults (8 × 512) match `rabbitmq.prefetch` (4,096):
    /// with 4 × 512 the distributed deployment stored 1,123 envelopes a
    /// second while accepting 2,227; with 8 × 512, 1,849 while accepting 2,164.
    pub concurrency: usize,
    /// A delivery handed out more often than this without being written is
    /// dead-lettered with the reason, rather than tried for ever.
    pub max_deliveries: u32,
    /// How often the depth of the queue is sampled for `/metrics`.
    pub depth_interval_ms: u64,
}

impl Default for WriterSettings {
    fn default() -> Self {
        Self {
            initial_backoff_ms: 100,
            max_backoff_ms: 5_000,
            batch_size: 512,
            concurrency: 8,
            max_deliveries: 10,
            depth_interval_ms: 5_000,
        }
    }
}

impl WriterSettings {
    /// How one batch's write, and a lost subscription, are tried again:
    /// for as long as it takes.
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy::doubling(
            None,
            Duration::from_millis(self.initial_backoff_ms),
            Duration::from_millis(self.max_backoff_ms),
        )
    }
}

#[derive(Clone)]
pub struct Writer {
    /// Read for the senders and invitations the records refer to.
    store: Arc<dyn RecordStore>,
    records: Arc<dyn RecordWriter>,
    queue: Arc<dyn Queue>,
    /// The node's public key, which signs every acceptance receipt.
    node: VerifyingKey,
    settings: WriterSettings,
    /// Told the hashes of each batch once it is stored (the live tail).
    events: Option<Arc<dyn StoredEvents>>,
    /// The receipts an authorizer in the same process issued.
    issued: Option<Arc<IssuedReceipts>>,
}

/// Why a consuming session ended.
enum Stop {
    Shutdown,
    SubscriptionLost,
}

/// What becomes of the deliveries of one batch.
#[derive(Debug, Default, PartialEq, Eq)]
struct Settlement {
    /// Durably in the store and the index: acknowledge.
    written: Vec<u64>,
    /// They can never be written: dead-letter each with its reason.
    unwritable: Vec<(u64, String)>,
    /// The messages of `written`, readable now.
    stored: Vec<MessageHash>,
}

impl Writer {
    pub fn new(
        store: Arc<dyn RecordStore>,
        records: Arc<dyn RecordWriter>,
        queue: Arc<dyn Queue>,
        node: VerifyingKey,
        settings: WriterSettings,
    ) -> Self {
        metrics::register();
        Self { store, records, queue, node, settings, events: None, issued: None }
    }

    /// Takes a receipt identical to one in `issued` (filled by the
    /// authorizer of the same process) as verified, without its signature.
    pub fn with_issued_receipts(mut self, issued: Arc<IssuedReceipts>) -> Self {
        self.issued = Some(issued);
        self
    }

    /// Announces the hashes of every batch once it is stored and
    /// acknowledged (best effort: see [`StoredEvents`]).
    pub fn with_events(mut self, events: Arc<dyn StoredEvents>) -> Self {
        self.events = Some(events);
        self
    }

    /// The store, the index and the queue are all reachable.
    pub async fn ready(&self) -> Result<(), BackendError> {
        self.store.ping().await?;
        self.records.ping().await?;
        self.queue.ping().await
    }

    /// Consumes until `shutdown` resolves, then settles what is in flight and
    /// returns. A lost subscription is taken up again with backoff. The
    /// queue's depth is sampled meanwhile.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let consuming = async {
            self.consume_until(shutdown).await;
            let _ = stop.send(true);
        };
        tokio::join!(consuming, self.sample_queue_depth(stopped));
    }

    /// Sets the queue depth gauges every `depth_interval_ms` until `stopped`
    /// says so; a sample under way is finished first, never dropped halfway
    /// (its reply would reach a connection already closing). A queue that
    /// cannot tell is not asked again; a failed sample is only logged (the
    /// next one may succeed).
    async fn sample_queue_depth(&self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        let period = Duration::from_millis(self.settings.depth_interval_ms.max(100));
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stopped.wait_for(|stop| *stop) => return,
                _ = ticks.tick() => {}
            }
            match self.queue.depth().await {
                Ok(Some(depth)) => metrics::queue_depth(depth),
                Ok(None) => {
                    let _ = stopped.wait_for(|stop| *stop).await;
                    return;
                }
                Err(error) => tracing::debug!(%error, "cannot sample the queue depth"),
            }
        }
    }

    async fn consume_until(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut backoff = self.settings.retry().backoff();
        loop {
            let subscribing = self.queue.consume();
            tokio::pin!(subscribing);
            let mut consumer = tokio::select! {
                _ = &mut shutdown => {
                    // A subscription half made would be dropped without a
                    // goodbye to the broker: finish it (it is bounded by the
                    // queue's timeouts), then close it.
                    if let Ok(mut consumer) = subscribing.await {
                        consumer.close().await;
                    }
                    return;
                }
                consumer = &mut subscribing => match consumer {
                    Ok(consumer) => consumer,
                    Err(error) => {
                        let wait = backoff.failed().unwrap_or_default();
                        tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "cannot subscribe to the queue; retrying");
                        tokio::select! { _ = &mut shutdown => return, _ = tokio::time::sleep(wait) => {} }
                        continue;
                    }
                },
            };
            backoff.succeeded();
            match self.consume(consumer.as_mut(), &mut shutdown).await {
                Stop::Shutdown => {
                    consumer.close().await;
                    return;
                }
                Stop::SubscriptionLost => continue,
            }
        }
    }

    /// Takes batches while fewer than `concurrency` are being written and
    /// settles each as its write ends. Settling happens here, one batch at a
    /// time, because the consumer is not shared.
    async fn consume(&self, consumer: &mut dyn Consumer, shutdown: &mut (impl Future<Output = ()> + Unpin)) -> Stop {
        let mut in_flight = FuturesUnordered::new();
        // Deliveries taken and not settled; those of a lost subscription or
        // left at shutdown go back to the queue.
        let mut unsettled = 0;
        let _reset = ResetUnsettled;
        let mut stopping = false;
        let grace = tokio::time::sleep(Duration::MAX);
        tokio::pin!(grace);
        loop {
            let room = !stopping && in_flight.len() < self.settings.concurrency.max(1);
            tokio::select! {
                _ = &mut *shutdown, if !stopping => {
                    stopping = true;
                    grace.as_mut().reset(tokio::time::Instant::now() + SHUTDOWN_GRACE);
                }
                _ = &mut grace, if stopping => {
                    tracing::warn!(batches = in_flight.len(), "shutdown: batches still unwritten are left to be delivered again");
                    return Stop::Shutdown;
                }
                batch = consumer.next_batch(self.settings.batch_size.max(1)), if room => match batch {
                    Ok(batch) => {
                        unsettled += batch.len();
                        metrics::unsettled(unsettled);
                        in_flight.push(self.write_batch(batch));
                    }
                    Err(error) => {
                        // Its deliveries go back to the queue: drop their writes.
                        tracing::warn!(%error, dropped = in_flight.len(), "queue subscription lost; subscribing again");
                        return Stop::SubscriptionLost;
                    }
                },
                Some(mut settlement) = in_flight.next() => {
                    let stored = std::mem::take(&mut settlement.stored);
                    unsettled = unsettled.saturating_sub(settlement.written.len() + settlement.unwritable.len());
                    settle(consumer, settlement).await;
                    metrics::unsettled(unsettled);
                    if let Some(events) = &self.events {
                        events.publish(&stored).await;
                    }
                }
            }
            if stopping && in_flight.is_empty() {
                return Stop::Shutdown;
            }
        }
    }

    /// Checks the receipts of a batch and writes what they prove accepted.
    #[tracing::instrument(skip_all, fields(deliveries = batch.len()))]
    async fn write_batch(&self, batch: Vec<Delivery>) -> Settlement {
        metrics::batch_taken(batch.len());
        let mut settlement = Settlement::default();
        let (fresh, exhausted): (Vec<_>, Vec<_>) =
            batch.into_iter().partition(|delivery| delivery.deliveries <= self.settings.max_deliveries);
        for delivery in exhausted {
            let reason = format!("not written after {} deliveries", delivery.deliveries - 1);
            settlement.unwritable.push((delivery.tag, reason));
        }
        // Every receipt of the batch in one Ed25519 batch verification.
        let claimed: Vec<receipt::Claimed<'_>> =
            fresh.iter().map(|d| (d.message.receipt.as_str(), &d.message.message_id, d.message.accepted_at)).collect();
        let checked = match &self.issued {
            Some(issued) => issued.verify_all_at(&claimed, &self.node),
            None => receipt::verify_all_at(&claimed, &self.node),
        };
        let mut accepted = Vec::with_capacity(fresh.len());
        for (delivery, check) in fresh.into_iter().zip(checked) {
            match check {
                Ok(()) => accepted.push(delivery),
                Err(error) => settlement.unwritable.push((delivery.tag, format!("acceptance receipt: {error}"))),
            }
        }
        self.write_accepted(&accepted, &mut settlement).await;
        settlement
    }

    /// Plans and writes `deliveries` together, retrying transient failures
    /// until they pass. A batch that fails permanently is written again one
    /// by one, so that only the delivery at fault is dead-lettered.
    async fn write_accepted(&self, deliveries: &[Delivery], settlement: &mut Settlement) {
        if deliveries.is_empty() {
            return;
        }
        let messages: Vec<_> = deliveries.iter().map(|d| &d.message).collect();
        let started = Instant::now();
        let written = self
            .settings
            .retry()
            .retry("write", || async {
                let plans = plan_batch(self.store.as_ref(), &messages).await?;
                let mut records = RecordBatch::default();
                for plan in plans.iter().flatten() {
                    records.personas.extend(plan.persona.clone());
                    records.messages.push(plan.message.clone());
                }
                self.records.write(&records).await?;
                Ok::<_, BackendError>(plans)
            })
            .await;
        metrics::batch_written(started.elapsed());
        match written {
            Ok(plans) => {
                let now = Micros::now();
                for (delivery, plan) in deliveries.iter().zip(plans) {
                    match plan {
                        Ok(_) => {
                            metrics::written_after_acceptance(delivery.message.accepted_at, now);
                            settlement.written.push(delivery.tag);
                            settlement.stored.push(delivery.message.message_id.clone());
                        }
                        Err(reason) => settlement.unwritable.push((delivery.tag, reason)),
                    }
                }
            }
            Err(error) if deliveries.len() > 1 => {
                tracing::warn!(%error, "a batch cannot be written; writing its deliveries one by one");
                for delivery in deliveries {
                    Box::pin(self.write_accepted(std::slice::from_ref(delivery), settlement)).await;
                }
            }
            Err(error) => settlement.unwritable.push((deliveries[0].tag, error.to_string())),
        }
    }
}

/// Shows no unsettled deliveries once a consuming session ends: what it
/// held goes back to the queue.
struct ResetUnsettled;

impl Drop for ResetUnsettled {
    fn drop(&mut self) {
        metrics::unsettled(0);
    }
}

async fn settle(consumer: &mut dyn Consumer, settlement: Settlement) {
    metrics::settled(metrics::WRITTEN, settlement.written.len());
    metrics::settled(metrics::DEAD_LETTERED, settlement.unwritable.len());
    if !settlement.written.is_empty() {
        if let Err(error) = consumer.ack(&settlement.written).await {
            // The deliveries stay unsettled and come back; writes are idempotent.
            tracing::warn!(%error, count = settlement.written.len(), "could not acknowledge written deliveries");
        }
    }
    for (tag, reason) in settlement.unwritable {
        tracing::error!(tag, %reason, "payload can never be written; dead-lettering");
        if let Err(error) = consumer.dead_letter(tag, &reason).await {
            tracing::warn!(%error, tag, "could not dead-letter a delivery");
        }
    }
}

#[cfg(test)]
mod tests {
    //! The writer's rules over in-memory stand-ins for the seams, with a
    //! paused clock, so retries and backoff take no real time.

    use super::*;
    use async_trait::async_trait;
    use pm_backends::QueuedMessage;
    use pm_models::client::{acl_rule_for, private_envelope, random_bytes, ContentParts};
    use pm_models::keys::PersonaKey;
    use pm_models::records::{MessageRecord, PersonaRecord};
    use pm_models::signed_timestamp::SignedTimestamp;
    use pm_models::time::Micros;
    use pm_models::{Address, MessageHash, MessageType};
    use std::collections::{HashMap, VecDeque};
    use std::sync::Mutex;

    const ACCEPTED: Micros = Micros(1_700_000_000_000_000);

    /// Records held in memory; `put` fails as `failures` says, call by call.
    #[derive(Default)]
    struct Memory {
        personas: Mutex<HashMap<String, PersonaRecord>>,
        messages: Mutex<HashMap<String, MessageRecord>>,
        failures: Mutex<VecDeque<BackendError>>,
        /// A message hash whose write always fails permanently.
        unwritable: Mutex<Option<String>>,
        writes: Mutex<usize>,
    }

    #[async_trait]
    impl RecordStore for Memory {
        async fn put(&self, batch: &RecordBatch) -> Result<(), BackendError> {
            self.write(batch).await
        }
        async fn personas(&self, addresses: &[Address]) -> Result<Vec<Option<PersonaRecord>>, BackendError> {
            let personas = self.personas.lock().unwrap();
            Ok(addresses.iter().map(|a| personas.get(a.as_str()).cloned()).collect())
        }
        async fn messages(&self, hashes: &[MessageHash]) -> Result<Vec<Option<MessageRecord>>, BackendError> {
            let messages = self.messages.lock().unwrap();
            Ok(hashes.iter().map(|h| messages.get(h.as_str()).cloned()).collect())
        }
        async fn ping(&self) -> Result<(), BackendError> {
            Ok(())
        }
    }

    #[async_trait]
    impl RecordWriter for Memory {
        async fn write(&self, batch: &RecordBatch) -> Result<(), BackendError> {
            *self.writes.lock().unwrap() += 1;
            if let Some(failure) = self.failures.lock().unwrap().pop_front() {
                return Err(failure);
            }
            if let Some(bad) = self.unwritable.lock().unwrap().as_deref() {
                if batch.messages.iter().any(|m| m.hash == bad) {
                    return Err(BackendError::Corrupt(format!("{bad} cannot be indexed")));
                }
            }
            let mut personas = self.personas.lock().unwrap();
            personas.extend(batch.personas.iter().map(|p| (p.address.clone(), p.clone())));
            self.messages.lock().unwrap().extend(batch.messages.iter().map(|m| (m.hash.clone(), m.clone())));
            Ok(())
        }
        async fn ping(&self) -> Result<(), BackendError> {
            Ok(())
        }
    }

    /// A queue whose one consumer hands out `waiting` and records settlements.
    #[derive(Default)]
    struct Recorder {
        waiting: Mutex<VecDeque<Delivery>>,
        acked: Mutex<Vec<u64>>,
        requeued: Mutex<Vec<u64>>,
        dead: Mutex<Vec<(u64, String)>>,
    }

    struct RecorderConsumer(Arc<Recorder>);

    /// The queue side of a shared [`Recorder`].
    struct RecorderQueue(Arc<Recorder>);

    #[async_trait]
    impl Queue for RecorderQueue {
        async fn publish(&self, _: &QueuedMessage) -> Result<(), BackendError> {
            unreachable!("the writer never publishes")
        }
        async fn consume(&self) -> Result<Box<dyn Consumer>, BackendError> {
            Ok(Box::new(RecorderConsumer(self.0.clone())))
        }
        async fn ping(&self) -> Result<(), BackendError> {
            Ok(())
        }
    }

    #[async_trait]
    impl Consumer for RecorderConsumer {
        async fn next_batch(&mut self, max: usize) -> Result<Vec<Delivery>, BackendError> {
            loop {
                let batch: Vec<Delivery> = {
                    let mut waiting = self.0.waiting.lock().unwrap();
                    let take = max.min(waiting.len());
                    waiting.drain(..take).collect()
                };
                if !batch.is_empty() {
                    return Ok(batch);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        async fn ack(&mut self, tags: &[u64]) -> Result<(), BackendError> {
            self.0.acked.lock().unwrap().extend_from_slice(tags);
            Ok(())
        }
        async fn requeue(&mut self, tag: u64) -> Result<(), BackendError> {
            self.0.requeued.lock().unwrap().push(tag);
            Ok(())
        }
        async fn dead_letter(&mut self, tag: u64, reason: &str) -> Result<(), BackendError> {
            self.0.dead.lock().unwrap().push((tag, reason.to_owned()));
            Ok(())
        }
    }

    struct Fixture {
        node: PersonaKey,
        sender: PersonaKey,
        memory: Arc<Memory>,
        queue: Arc<Recorder>,
        writer: Writer,
    }

    fn fixture() -> Fixture {
        let (node, sender) = (PersonaKey::from_seed([1; 32]), PersonaKey::from_seed([2; 32]));
        let memory = Arc::new(Memory::default());
        memory.personas.lock().unwrap().insert(
            sender.address().to_string(),
            PersonaRecord::without_registration(sender.public(), "sender", Micros(1)),
        );
        let queue = Arc::new(Recorder::default());
        let settings = WriterSettings { initial_backoff_ms: 100, max_backoff_ms: 300, ..Default::default() };
        let writer = Writer::new(
            memory.clone(),
            memory.clone(),
            Arc::new(RecorderQueue(queue.clone())),
            *node.public().verifying_key(),
            settings,
        );
        Fixture { node, sender, memory, queue, writer }
    }

    impl Fixture {
        /// An accepted assertion from the sender, as the authorizer queues it.
        fn delivery(&self, tag: u64) -> Delivery {
            let t = SignedTimestamp::issue(&self.node, ACCEPTED);
            let key: [u8; 32] = random_bytes();
            let acl = vec![acl_rule_for(self.sender.public().verifying_key(), &key)];
            let parts = ContentParts::new(0, &format!("note {tag}"));
            let envelope =
                private_envelope(&self.sender, MessageType::Assertion, &parts, &key, &random_bytes(), acl, vec![], &t);
            let hash = MessageHash::parse(&envelope.message_hash).unwrap();
            let message = QueuedMessage {
                receipt: receipt::issue(&self.node, &hash, ACCEPTED),
                message_id: hash,
                accepted_at: ACCEPTED,
                payload: envelope.to_queue_payload(),
            };
            Delivery { tag, message, redelivered: false, deliveries: 1 }
        }

        fn stored(&self, delivery: &Delivery) -> bool {
            self.memory.messages.lock().unwrap().contains_key(delivery.message.message_id.as_str())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_with_valid_receipts_is_written_once_and_acknowledged() {
        let f = fixture();
        let batch: Vec<Delivery> = (1..=3).map(|tag| f.delivery(tag)).collect();
        let settlement = f.writer.write_batch(batch.clone()).await;
        let hashes: Vec<MessageHash> = batch.iter().map(|d| d.message.message_id.clone()).collect();
        assert_eq!(settlement, Settlement { written: vec![1, 2, 3], stored: hashes, ..Default::default() });
        assert!(batch.iter().all(|d| f.stored(d)));
        assert_eq!(*f.memory.writes.lock().unwrap(), 1, "one write for the batch");
        let stored = f.memory.messages.lock().unwrap()[batch[0].message.message_id.as_str()].clone();
        assert_eq!(stored.receipt.as_deref(), Some(batch[0].message.receipt.as_str()), "the receipt is stored");
        assert_eq!(stored.created_at, ACCEPTED.to_rfc3339());
    }

    #[tokio::test(start_paused = true)]
    async fn a_delivery_without_a_valid_receipt_is_dead_lettered_and_never_stored() {
        let f = fixture();
        let mut missing = f.delivery(1);
        missing.message.receipt.clear();
        let mut forged = f.delivery(2);
        forged.message.receipt = receipt::issue(&f.sender, &forged.message.message_id, ACCEPTED);
        let mut other_instant = f.delivery(3);
        other_instant.message.accepted_at = Micros(ACCEPTED.0 + 1);
        let mut other_hash = f.delivery(4);
        other_hash.message.receipt = f.delivery(5).message.receipt;
        let good = f.delivery(6);
        let batch = vec![missing.clone(), forged.clone(), other_instant.clone(), other_hash.clone(), good.clone()];
        let settlement = f.writer.write_batch(batch).await;
        assert_eq!(settlement.written, [6]);
        assert_eq!(
            settlement.stored,
            std::slice::from_ref(&good.message.message_id),
            "only the stored message is announced"
        );
        let dead: Vec<u64> = settlement.unwritable.iter().map(|(tag, _)| *tag).collect();
        assert_eq!(dead, [1, 2, 3, 4]);
        assert!(settlement.unwritable.iter().all(|(_, reason)| reason.starts_with("acceptance receipt")));
        assert!(![missing, forged, other_instant, other_hash].iter().any(|d| f.stored(d)));
        assert!(f.stored(&good));
    }

    #[tokio::test(start_paused = true)]
    async fn receipts_issued_in_this_process_pass_as_issued_and_an_altered_one_is_still_dead_lettered() {
        let mut f = fixture();
        let issued = Arc::new(IssuedReceipts::default());
        f.writer = f.writer.clone().with_issued_receipts(issued.clone());
        let deliveries: Vec<Delivery> = (1..=4).map(|tag| f.delivery(tag)).collect();
        for d in &deliveries {
            issued.remember(&d.message.message_id, d.message.accepted_at, &d.message.receipt);
        }
        let [good, mut forged, mut other_instant, also_good] = <[Delivery; 4]>::try_from(deliveries).unwrap();
        forged.message.receipt = receipt::issue(&f.sender, &forged.message.message_id, ACCEPTED);
        other_instant.message.accepted_at = Micros(ACCEPTED.0 + 1);
        let batch = vec![good.clone(), forged.clone(), other_instant.clone(), also_good.clone()];
        let settlement = f.writer.write_batch(batch).await;
        assert_eq!(settlement.written, [1, 4]);
        let dead: Vec<u64> = settlement.unwritable.iter().map(|(tag, _)| *tag).collect();
        assert_eq!(dead, [2, 3]);
        assert!(f.stored(&good) && f.stored(&also_good));
        assert!(!f.stored(&forged) && !f.stored(&other_instant));
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_is_waited_out_with_doubling_waits_and_the_batch_is_written_not_requeued() {
        let f = fixture();
        let outage = || BackendError::Unavailable("the index is down".into());
        // A long outage: 30 failed writes, far more than any delivery limit.
        f.memory.failures.lock().unwrap().extend((0..30).map(|_| outage()));
        let started = tokio::time::Instant::now();
        let (one, two) = (f.delivery(1), f.delivery(2));
        let settlement = f.writer.write_batch(vec![one.clone(), two.clone()]).await;
        let stored = vec![one.message.message_id.clone(), two.message.message_id.clone()];
        assert_eq!(settlement, Settlement { written: vec![1, 2], stored, ..Default::default() });
        assert_eq!(*f.memory.writes.lock().unwrap(), 31, "tried until it passed");
        let waits = 100 + 200 + 28 * 300;
        assert_eq!(started.elapsed(), Duration::from_millis(waits), "waits double up to the maximum");
        assert!(f.stored(&one) && f.stored(&two));
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_succeeds_on_a_retry_is_acknowledged() {
        let f = fixture();
        f.memory.failures.lock().unwrap().push_back(BackendError::Unavailable("a blip".into()));
        let delivery = f.delivery(1);
        let settlement = f.writer.write_batch(vec![delivery.clone()]).await;
        assert_eq!(settlement.written, [1]);
        assert!(f.stored(&delivery));
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_that_fails_permanently_is_written_one_by_one_and_only_the_culprit_is_dead_lettered() {
        let f = fixture();
        let batch: Vec<Delivery> = (1..=3).map(|tag| f.delivery(tag)).collect();
        *f.memory.unwritable.lock().unwrap() = Some(batch[1].message.message_id.to_string());
        let settlement = f.writer.write_batch(batch.clone()).await;
        assert_eq!(settlement.written, [1, 3]);
        assert_eq!(settlement.unwritable.len(), 1);
        assert_eq!(settlement.unwritable[0].0, 2);
        assert!(f.stored(&batch[0]) && !f.stored(&batch[1]) && f.stored(&batch[2]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_delivery_handed_out_too_often_is_dead_lettered_instead_of_looping() {
        let f = fixture();
        let mut tired = f.delivery(1);
        tired.deliveries = WriterSettings::default().max_deliveries + 1;
        let settlement = f.writer.write_batch(vec![tired.clone(), f.delivery(2)]).await;
        assert_eq!(settlement.written, [2]);
        assert_eq!(settlement.unwritable, [(1, "not written after 10 deliveries".to_owned())]);
        assert!(!f.stored(&tired));
    }

    #[tokio::test(start_paused = true)]
    async fn a_payload_that_is_no_envelope_is_dead_lettered_with_the_reason() {
        let f = fixture();
        let mut garbage = f.delivery(1);
        garbage.message.payload = b"not msgpack".to_vec();
        let settlement = f.writer.write_batch(vec![garbage, f.delivery(2)]).await;
        assert_eq!(settlement.written, [2]);
        assert_eq!(settlement.unwritable, [(1, "payload is not a msgpack envelope".to_owned())]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_writer_settles_what_it_consumed_then_stops_on_shutdown() {
        let f = fixture();
        let mut bad = f.delivery(3);
        bad.message.receipt.clear();
        f.queue.waiting.lock().unwrap().extend([f.delivery(1), f.delivery(2), bad]);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let writer = f.writer.clone();
        let running = tokio::spawn(async move {
            writer
                .run(async {
                    let _ = stopped.await;
                })
                .await
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while f.queue.acked.lock().unwrap().len() + f.queue.dead.lock().unwrap().len() < 3 {
            assert!(tokio::time::Instant::now() < deadline, "the writer settles within a minute");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(60), running).await.expect("the writer stops").unwrap();
        let mut acked = f.queue.acked.lock().unwrap().clone();
        acked.sort();
        assert_eq!(acked, [1, 2]);
        assert_eq!(f.queue.dead.lock().unwrap().iter().map(|(tag, _)| *tag).collect::<Vec<_>>(), [3]);
        assert!(f.queue.requeued.lock().unwrap().is_empty());
    }
}
