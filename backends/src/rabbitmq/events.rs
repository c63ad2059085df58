//! [`StoredEvents`] over RabbitMQ, for the distributed deployment: the
//! writers publish to the fanout exchange `writer_events` (with the
//! configured prefix; durable, so it outlives its publishers), and every
//! subscriber (one per gateway) binds its own exclusive, auto-deleted,
//! server-named queue to it and consumes without acks.
//!
//! A notice is one message: `{"stored": [messageHash, …]}` as JSON
//! (`content_type=application/json`), transient (delivery mode 1), with the
//! publish time in `timestamp`. It is a hint for live subscribers, never a
//! record: publishing is best effort and never makes the writer wait.
//! [`StoredEvents::publish`] hands the batch to a task of this process that
//! owns the connection; a batch that finds no room (the broker is slow or
//! down) is dropped, and the task reconnects with the configured backoff.
//! A subscription's stream ends when its connection is lost; the caller
//! subscribes again (its queue is gone with the connection, so notices
//! published in between are missed).

use super::unavailable;
use crate::retry::Backoff;
use crate::settings::RabbitMqSettings;
use crate::{BackendError, StoredEventStream, StoredEvents};
use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use pm_models::MessageHash;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::timeout;

/// The fanout exchange of stored events (before the prefix).
pub const EVENTS_EXCHANGE: &str = "writer_events";
/// Content type of a notice.
pub const EVENTS_CONTENT_TYPE: &str = "application/json";
/// Batches waiting for the publishing task before new ones are dropped.
const OUTBOX: usize = 1024;
/// AMQP delivery mode 1: a notice is not written to disk.
const TRANSIENT: u8 = 1;

/// The publishing task, once started.
enum Outbox {
    NotStarted,
    Running(mpsc::Sender<Vec<MessageHash>>, tokio::task::JoinHandle<()>),
    Closed,
}

/// The body of a notice.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub struct StoredNotice {
    pub stored: Vec<MessageHash>,
}

/// Stored events on a RabbitMQ broker; cheap to clone (clones share the
/// publishing task, which stops when the last clone is dropped).
#[derive(Clone)]
pub struct RabbitMqEvents {
    inner: Arc<Inner>,
}

struct Inner {
    settings: RabbitMqSettings,
    exchange: String,
    runtime: tokio::runtime::Handle,
    /// Started on the first publish: a gateway, which only subscribes,
    /// never opens a publishing connection.
    outbox: std::sync::Mutex<Outbox>,
}

impl RabbitMqEvents {
    /// Connects nothing yet: the publisher connects on the first publish, a
    /// subscriber on [`StoredEvents::subscribe`]. Must be called inside a
    /// tokio runtime, which then hosts every connection.
    pub fn new(settings: RabbitMqSettings) -> Result<Self, BackendError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| unavailable("the rabbitmq backend needs a tokio runtime", e))?;
        let exchange = format!("{}{EVENTS_EXCHANGE}", settings.prefix);
        let outbox = std::sync::Mutex::new(Outbox::NotStarted);
        Ok(Self { inner: Arc::new(Inner { settings, exchange, runtime, outbox }) })
    }

    /// The exchange's name, prefix included.
    pub fn exchange(&self) -> &str {
        &self.inner.exchange
    }

    /// Hands `batch` to the publishing task, started on the first call;
    /// false when it finds no room or the events are closed.
    fn hand_over(&self, batch: Vec<MessageHash>) -> bool {
        let mut outbox = self.inner.outbox.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Outbox::NotStarted = *outbox {
            let (sender, receiver) = mpsc::channel(OUTBOX);
            let publisher = Publisher {
                settings: self.inner.settings.clone(),
                exchange: self.inner.exchange.clone(),
                link: None,
                backoff: self.inner.settings.reconnect_policy().backoff(),
                dropped: 0,
            };
            *outbox = Outbox::Running(sender, self.inner.runtime.spawn(publisher.run(receiver)));
        }
        match &*outbox {
            Outbox::Running(sender, _) => sender.try_send(batch).is_ok(),
            _ => false,
        }
    }

    /// Publishes what is handed over already, then closes the publishing
    /// connection with a goodbye (a role calls it before it exits). Later
    /// notices are dropped.
    pub async fn close(&self) {
        let previous = {
            let mut outbox = self.inner.outbox.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            std::mem::replace(&mut *outbox, Outbox::Closed)
        };
        if let Outbox::Running(sender, task) = previous {
            drop(sender);
            let _ = tokio::time::timeout(self.inner.settings.publish_timeout(), task).await;
        }
    }
}

fn connection_properties(runtime: &tokio::runtime::Handle, name: String) -> ConnectionProperties {
    ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::default().with_handle(runtime.clone()))
        .with_reactor(tokio_reactor_trait::Tokio)
        .with_connection_name(name.into())
}

async fn declare_exchange(channel: &Channel, exchange: &str) -> lapin::Result<()> {
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    channel.exchange_declare(exchange, ExchangeKind::Fanout, durable, FieldTable::default()).await
}

/// The publishing task: one connection, reopened with backoff.
struct Publisher {
    settings: RabbitMqSettings,
    exchange: String,
    link: Option<(Connection, Channel)>,
    backoff: Backoff,
    /// Batches dropped since the last one sent.
    dropped: u64,
}

impl Publisher {
    async fn run(mut self, mut batches: mpsc::Receiver<Vec<MessageHash>>) {
        while let Some(batch) = batches.recv().await {
            if let Err(error) = self.send(&batch).await {
                self.dropped += 1;
                tracing::warn!(%error, dropped = self.dropped, "stored-event notice not published (best effort)");
            } else if self.dropped > 0 {
                tracing::info!(dropped = self.dropped, "stored-event notices published again");
                self.dropped = 0;
            }
        }
        if let Some((connection, channel)) = self.link.take() {
            if let Err(error) = super::close_connection(connection, vec![channel], "pm closing").await {
                tracing::warn!(%error, "stored-events publisher connection not closed cleanly");
            }
        }
    }

    async fn send(&mut self, batch: &[MessageHash]) -> Result<(), BackendError> {
        let channel = self.channel().await?;
        let body = serde_json::to_vec(&StoredNotice { stored: batch.to_vec() }).expect("a notice serializes");
        let properties = BasicProperties::default()
            .with_content_type(EVENTS_CONTENT_TYPE.into())
            .with_delivery_mode(TRANSIENT)
            .with_timestamp(pm_models::time::Micros::now().whole_seconds().max(0) as u64);
        let published = channel.basic_publish(&self.exchange, "", BasicPublishOptions::default(), &body, properties);
        match timeout(self.settings.publish_timeout(), published).await {
            Ok(Ok(_confirm)) => Ok(()),
            Ok(Err(error)) => {
                self.link = None;
                Err(unavailable("rabbitmq publish of a stored-event notice", error))
            }
            Err(_) => {
                self.link = None;
                Err(BackendError::Unavailable("rabbitmq took too long to take a stored-event notice".into()))
            }
        }
    }

    async fn channel(&mut self) -> Result<Channel, BackendError> {
        if let Some((connection, channel)) = &self.link {
            if connection.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
            self.link = None;
        }
        if let Some(wait) = self.backoff.remaining() {
            return Err(BackendError::Unavailable(format!(
                "rabbitmq unreachable; next connect attempt in {} ms",
                wait.as_millis()
            )));
        }
        let opened = timeout(self.settings.publish_timeout(), async {
            let runtime = tokio::runtime::Handle::current();
            let name = format!("pm events-publisher {}", self.exchange);
            let connection =
                Connection::connect(self.settings.url.expose_secret(), connection_properties(&runtime, name)).await?;
            let channel = connection.create_channel().await?;
            declare_exchange(&channel, &self.exchange).await?;
            lapin::Result::Ok((connection, channel))
        })
        .await;
        match opened {
            Ok(Ok((connection, channel))) => {
                self.backoff.succeeded();
                self.link = Some((connection, channel.clone()));
                Ok(channel)
            }
            Ok(Err(error)) => {
                self.backoff.failed();
                Err(unavailable("cannot connect the stored-events publisher to rabbitmq", error))
            }
            Err(_) => {
                self.backoff.failed();
                Err(BackendError::Unavailable("connecting the stored-events publisher timed out".into()))
            }
        }
    }
}

/// A subscription's connection: closed with a goodbye when the stream ends,
/// so the broker and lapin see no dropped connection.
struct Link {
    open: Option<(Connection, Channel)>,
    runtime: tokio::runtime::Handle,
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some((connection, channel)) = self.open.take() {
            self.runtime.spawn(async move {
                let _ = super::close_connection(connection, vec![channel], "subscriber gone").await;
            });
        }
    }
}

#[async_trait]
impl StoredEvents for RabbitMqEvents {
    async fn publish(&self, hashes: &[MessageHash]) {
        if hashes.is_empty() {
            return;
        }
        if !self.hand_over(hashes.to_vec()) {
            tracing::warn!("stored-event notice dropped: the publisher is behind or closed (best effort)");
        }
    }

    async fn subscribe(&self) -> Result<StoredEventStream, BackendError> {
        let inner = &self.inner;
        let opened = timeout(inner.settings.publish_timeout(), async {
            let name = format!("pm events-subscriber {}", inner.exchange);
            let connection =
                Connection::connect(inner.settings.url.expose_secret(), connection_properties(&inner.runtime, name))
                    .await?;
            let channel = connection.create_channel().await?;
            declare_exchange(&channel, &inner.exchange).await?;
            let private = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
            let queue = channel.queue_declare("", private, FieldTable::default()).await?;
            let bind = QueueBindOptions::default();
            channel.queue_bind(queue.name().as_str(), &inner.exchange, "", bind, FieldTable::default()).await?;
            let no_ack = BasicConsumeOptions { no_ack: true, ..Default::default() };
            let consumer =
                channel.basic_consume(queue.name().as_str(), "pm-gateway", no_ack, FieldTable::default()).await?;
            lapin::Result::Ok((connection, channel, consumer))
        })
        .await;
        let (connection, channel, consumer) = match opened {
            Ok(Ok(link)) => link,
            Ok(Err(error)) => return Err(unavailable("cannot subscribe to stored events", error)),
            Err(_) => return Err(BackendError::Unavailable("subscribing to stored events timed out".into())),
        };
        // The connection and channel live as long as the stream, and the
        // connection is closed cleanly when it is dropped.
        let link = Arc::new(Link { open: Some((connection, channel)), runtime: inner.runtime.clone() });
        let stream = consumer
            .take_while(|delivery| {
                if let Err(error) = delivery {
                    tracing::warn!(%error, "stored-events subscription lost");
                }
                futures::future::ready(delivery.is_ok())
            })
            .filter_map(move |delivery| {
                let _link = &link;
                let notice =
                    delivery.ok().and_then(|delivery| match serde_json::from_slice::<StoredNotice>(&delivery.data) {
                        Ok(notice) => Some(notice.stored),
                        Err(error) => {
                            tracing::warn!(%error, "a stored-event notice that does not parse was skipped");
                            None
                        }
                    });
                futures::future::ready(notice)
            });
        Ok(Box::pin(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_is_json_with_the_hashes() {
        let notice = StoredNotice { stored: vec![MessageHash::of_message("a")] };
        let text = serde_json::to_string(&notice).unwrap();
        assert_eq!(text, format!(r#"{{"stored":["{}"]}}"#, MessageHash::of_message("a")));
        assert_eq!(serde_json::from_str::<StoredNotice>(&text).unwrap(), notice);
    }
}
