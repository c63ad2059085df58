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
//! - on shutdown it stops taking deliveries and settles the one in flight.
//!
//! It also writes the personas `pm bootstrap` creates ([`bootstrap`]).

pub mod bootstrap;
mod plan;

use pm_models::seams::{BackendError, Consumer, Delivery, Queue, RecordStore, SearchIndex};
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
}

impl Default for WriterSettings {
    fn default() -> Self {
        Self { max_attempts: 5, initial_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(5) }
    }
}

#[derive(Clone)]
pub struct Writer {
    store: Arc<dyn RecordStore>,
    index: Arc<dyn SearchIndex>,
    queue: Arc<dyn Queue>,
    settings: WriterSettings,
}

/// How one delivery was settled.
#[derive(Debug, PartialEq, Eq)]
enum Settled {
    Acked,
    Requeued,
    DeadLettered,
}

impl Writer {
    pub fn new(
        store: Arc<dyn RecordStore>,
        index: Arc<dyn SearchIndex>,
        queue: Arc<dyn Queue>,
        settings: WriterSettings,
    ) -> Self {
        Self { store, index, queue, settings }
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
            loop {
                let delivery = tokio::select! {
                    _ = &mut shutdown => return,
                    delivery = consumer.next() => delivery,
                };
                match delivery {
                    // Not raced against shutdown: an in-flight delivery is settled.
                    Ok(delivery) => {
                        self.settle(consumer.as_mut(), delivery).await;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "queue subscription lost; subscribing again");
                        break;
                    }
                }
            }
        }
    }

    #[tracing::instrument(skip_all, fields(hash = %delivery.message.message_id, tag = delivery.tag))]
    async fn settle(&self, consumer: &mut dyn Consumer, delivery: Delivery) -> Settled {
        let mut backoff = self.settings.initial_backoff;
        let mut attempt = 1;
        let outcome = loop {
            match self.write(&delivery).await {
                Ok(()) => break Ok(()),
                Err(PlanError::Permanent(reason)) => break Err(Some(reason)),
                Err(PlanError::Transient(error)) if attempt < self.settings.max_attempts => {
                    tracing::warn!(%error, attempt, "write failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.settings.max_backoff);
                    attempt += 1;
                }
                Err(PlanError::Transient(error)) => {
                    tracing::error!(%error, attempt, "write failed; requeueing");
                    break Err(None);
                }
            }
        };
        let (settled, result) = match outcome {
            Ok(()) => (Settled::Acked, consumer.ack(delivery.tag).await),
            Err(None) => (Settled::Requeued, consumer.requeue(delivery.tag).await),
            Err(Some(reason)) => {
                tracing::error!(%reason, "payload can never be written; dead-lettering");
                (Settled::DeadLettered, consumer.dead_letter(delivery.tag, &reason).await)
            }
        };
        if let Err(error) = result {
            // The delivery stays unsettled and comes back; writes are idempotent.
            tracing::warn!(%error, ?settled, "could not settle delivery");
        }
        settled
    }

    /// Writes the records of one delivery: persona first, then message;
    /// store before index, so everything indexed is stored.
    async fn write(&self, delivery: &Delivery) -> Result<(), PlanError> {
        let plan = plan(self.store.as_ref(), &delivery.message).await?;
        if let Some(persona) = &plan.persona {
            self.store.put_persona(persona).await.map_err(PlanError::from)?;
            self.index.index_persona(persona).await.map_err(PlanError::from)?;
        }
        self.store.put_message(&plan.message).await.map_err(PlanError::from)?;
        self.index.index_message(&plan.message).await.map_err(PlanError::from)?;
        Ok(())
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
