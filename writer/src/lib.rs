//! The writer: moves accepted envelopes from the queue into storage.
//!
//! Rules it keeps (PROTOCOL.md sections 8 and 9):
//! - a delivery is acknowledged only after its records are durably in both
//!   the record store and the search index;
//! - every write is idempotent (row key = address or `messageHash`, listing
//!   keys include `created_at`, which is the acceptance time carried by the
//!   queued message), so a redelivery rewrites the same records;
//! - a transient backend failure is retried with backoff, then the delivery
//!   is requeued; a payload that can never be written is dead-lettered with
//!   the reason;
//! - up to `concurrency` deliveries are written at once: queued envelopes
//!   never depend on each other (the authorizer accepts only envelopes whose
//!   sender and invitation are already stored), and each is settled alone;
//! - on shutdown it stops taking deliveries and settles those in flight.
//!
//! It also writes the personas `pm bootstrap` creates ([`bootstrap`]).

pub mod bootstrap;
mod plan;

use futures::stream::{FuturesUnordered, StreamExt};
use pm_models::seams::{BackendError, Consumer, Delivery, Queue, RecordStore, RecordWriter};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use plan::{plan, PlanError, WritePlan};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriterSettings {
    /// Attempts at writing one delivery before it is requeued.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Deliveries written at once.
    pub concurrency: usize,
}

impl Default for WriterSettings {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            concurrency: 32,
        }
    }
}

#[derive(Clone)]
pub struct Writer {
    /// Read for the sender and invitation a record refers to.
    store: Arc<dyn RecordStore>,
    records: Arc<dyn RecordWriter>,
    queue: Arc<dyn Queue>,
    settings: WriterSettings,
}

/// Why a consuming session ended.
enum Stop {
    Shutdown,
    SubscriptionLost,
}

/// What became of one delivery's write.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Durably in the store and the index: acknowledge.
    Written,
    /// Transient failures outlasted the retries: hand it out again.
    Retry,
    /// It can never be written: dead-letter it with the reason.
    Unwritable(String),
}

async fn settle(consumer: &mut dyn Consumer, delivery: &Delivery, outcome: Outcome) {
    let result = match &outcome {
        Outcome::Written => consumer.ack(delivery.tag).await,
        Outcome::Retry => consumer.requeue(delivery.tag).await,
        Outcome::Unwritable(reason) => {
            tracing::error!(hash = %delivery.message.message_id, %reason, "payload can never be written; dead-lettering");
            consumer.dead_letter(delivery.tag, reason).await
        }
    };
    if let Err(error) = result {
        // The delivery stays unsettled and comes back; writes are idempotent.
        tracing::warn!(%error, hash = %delivery.message.message_id, ?outcome, "could not settle delivery");
    }
}

impl Writer {
    pub fn new(
        store: Arc<dyn RecordStore>,
        records: Arc<dyn RecordWriter>,
        queue: Arc<dyn Queue>,
        settings: WriterSettings,
    ) -> Self {
        Self { store, records, queue, settings }
    }

    /// Consumes until `shutdown` resolves, then settles what is in flight and
    /// returns. A lost subscription is taken up again with backoff.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut backoff = self.settings.initial_backoff;
        loop {
            let mut consumer = tokio::select! {
                _ = &mut shutdown => return,
                consumer = self.queue.consume() => match consumer {
                    Ok(consumer) => consumer,
                    Err(error) => {
                        tracing::warn!(%error, "cannot subscribe to the queue; retrying");
                        tokio::select! { _ = &mut shutdown => return, _ = tokio::time::sleep(backoff) => {} }
                        backoff = (backoff * 2).min(self.settings.max_backoff);
                        continue;
                    }
                },
            };
            backoff = self.settings.initial_backoff;
            match self.consume(consumer.as_mut(), &mut shutdown).await {
                Stop::Shutdown => return,
                Stop::SubscriptionLost => continue,
            }
        }
    }

    /// Takes deliveries while fewer than `concurrency` are being written and
    /// settles each as its write ends. Settling happens here, one at a time,
    /// because the consumer is not shared.
    async fn consume(&self, consumer: &mut dyn Consumer, shutdown: &mut (impl Future<Output = ()> + Unpin)) -> Stop {
        let mut in_flight = FuturesUnordered::new();
        let mut stop = None;
        loop {
            let room = stop.is_none() && in_flight.len() < self.settings.concurrency.max(1);
            tokio::select! {
                _ = &mut *shutdown, if stop.is_none() => stop = Some(Stop::Shutdown),
                delivery = consumer.next(), if room => match delivery {
                    Ok(delivery) => in_flight.push(self.write_with_retries(delivery)),
                    Err(error) => {
                        tracing::warn!(%error, "queue subscription lost; subscribing again");
                        stop = Some(Stop::SubscriptionLost);
                    }
                },
                Some((delivery, outcome)) = in_flight.next() => {
                    settle(consumer, &delivery, outcome).await;
                }
            }
            if let (Some(_), true) = (&stop, in_flight.is_empty()) {
                return stop.expect("checked above");
            }
        }
    }

    /// Writes a delivery, retrying transient failures with backoff.
    #[tracing::instrument(skip_all, fields(hash = %delivery.message.message_id, tag = delivery.tag))]
    async fn write_with_retries(&self, delivery: Delivery) -> (Delivery, Outcome) {
        let mut backoff = self.settings.initial_backoff;
        let mut attempt = 1;
        let outcome = loop {
            match self.write(&delivery).await {
                Ok(()) => break Outcome::Written,
                Err(PlanError::Permanent(reason)) => break Outcome::Unwritable(reason),
                Err(PlanError::Transient(error)) if attempt < self.settings.max_attempts => {
                    tracing::warn!(%error, attempt, "write failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.settings.max_backoff);
                    attempt += 1;
                }
                Err(PlanError::Transient(error)) => {
                    tracing::error!(%error, attempt, "write failed; requeueing");
                    break Outcome::Retry;
                }
            }
        };
        (delivery, outcome)
    }

    /// Writes the records of one delivery (see [`RecordWriter`] for the order).
    async fn write(&self, delivery: &Delivery) -> Result<(), PlanError> {
        let plan = plan(self.store.as_ref(), &delivery.message).await?;
        self.records.write_records(plan.persona.as_ref(), &plan.message).await.map_err(PlanError::from)
    }
}

impl From<BackendError> for PlanError {
    fn from(error: BackendError) -> Self {
        match error {
            BackendError::Unavailable(_) => Self::Transient(error),
            BackendError::Corrupt(reason) => Self::Permanent(reason),
        }
    }
}
