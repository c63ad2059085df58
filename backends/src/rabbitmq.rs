//! The RabbitMQ queue backend (PROTOCOL.md section 8), over lapin.
//!
//! Topology, declared at connect and again after every reconnect: exchange
//! `writer_exchange` (direct, durable) bound with routing key `writer` to the
//! durable queue `writer_queue` (quorum by default, classic if configured),
//! whose dead-letter exchange is `writer_dlx` (fanout, durable) feeding the
//! durable queue `writer_dead` of the same kind. Every name takes the
//! configured prefix, so tests never share a queue.
//!
//! Guarantees:
//! - **Confirms.** [`Queue::publish`] returns `Ok` only after the broker
//!   confirmed the message with an ack: it is then on disk (a quorum queue:
//!   on a majority). Messages are persistent and published `mandatory`, so an
//!   unroutable message is returned and reported, not silently confirmed. A
//!   nack, a return, a connection error or no confirm within
//!   `publish_timeout` is [`BackendError::Unavailable`]; publish never waits
//!   longer than `publish_timeout`, so the authorizer can answer 503.
//! - **Manual acks.** A consumer acknowledges nothing by itself: a delivery
//!   leaves the queue only through [`Consumer::ack`] or
//!   [`Consumer::dead_letter`] (which first publishes a confirmed copy, with
//!   header `x-dead-reason`, to the dead-letter exchange).
//! - **Redelivery.** Whatever is unsettled when a channel closes (consumer
//!   dropped, connection lost, process killed) is handed out again with
//!   `redelivered` set; the writer's writes are idempotent, so this is safe.
//!   An ack for a delivery of a channel that has since died is refused
//!   ([`BackendError::Unavailable`]): the broker has already taken it back.
//! - **Reconnect.** lapin does not recover connections by itself (its
//!   auto-recovery is not production-ready: amqp-rs/lapin #420, #450), so
//!   this module does: the publisher reopens its connection lazily, on the next
//!   publish or ping, with exponential backoff (`reconnect_initial_ms` doubling
//!   up to `reconnect_max_ms`, the crate's one retry policy; within the backoff window a publish fails at
//!   once); a consumer reopens connection, channel, topology, qos and
//!   subscription inside [`Consumer::next_batch`], with the same backoff, and goes
//!   on. Each reconnect is logged as a warning. Payloads are never logged.
//!
//! [`events`] holds the stored-event notices (the fanout exchange
//! `writer_events`), which are best effort and share nothing with the queue.

pub mod events;

use crate::retry::Backoff;
use crate::settings::{QueueKind, RabbitMqSettings};
use crate::{BackendError, Consumer, Delivery, Queue, QueueDepth, QueuedMessage};
use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use pm_models::time::Micros;
use pm_models::MessageHash;
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use tokio::time::{timeout, timeout_at, Instant};

/// Routing key binding `writer_queue` to `writer_exchange`.
pub const ROUTING_KEY: &str = "writer";
/// Header carrying the acceptance time as RFC 3339 with microseconds.
pub const ACCEPTED_AT_HEADER: &str = "x-accepted-at";
/// Header a quorum queue sets to the number of earlier deliveries.
pub const DELIVERY_COUNT_HEADER: &str = "x-delivery-count";
/// Header carrying the node's acceptance receipt `R`.
pub const RECEIPT_HEADER: &str = "x-receipt";
/// Header a dead-lettered copy carries with the reason it can never be written.
pub const DEAD_REASON_HEADER: &str = "x-dead-reason";
/// Content type of every queued payload (`msgpack(envelope)`).
pub const CONTENT_TYPE: &str = "application/msgpack";
/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;
const CONSUMER_TAG: &str = "pm-writer";

/// The names of section 8, with the configured prefix.
#[derive(Clone, Debug)]
struct Topology {
    exchange: String,
    queue: String,
    dead_letter_exchange: String,
    dead_queue: String,
    kind: QueueKind,
    delivery_limit: u32,
}

impl Topology {
    fn new(settings: &RabbitMqSettings) -> Self {
        let prefix = &settings.prefix;
        Self {
            exchange: format!("{prefix}writer_exchange"),
            queue: format!("{prefix}writer_queue"),
            dead_letter_exchange: format!("{prefix}writer_dlx"),
            dead_queue: format!("{prefix}writer_dead"),
            kind: settings.queue_type,
            delivery_limit: settings.delivery_limit,
        }
    }

    /// Declares everything; idempotent while the declarations do not change.
    /// A queue that exists with other arguments (e.g. classic where quorum is
    /// configured) fails with PRECONDITION_FAILED, on purpose: switching
    /// types needs a migration, not a silent second queue.
    async fn declare(&self, channel: &Channel) -> lapin::Result<()> {
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        channel.exchange_declare(&self.exchange, ExchangeKind::Direct, durable, FieldTable::default()).await?;
        // Fanout: whatever routing key a dead letter carries (ours, or the
        // original one when the broker dead-letters), it reaches writer_dead.
        channel
            .exchange_declare(&self.dead_letter_exchange, ExchangeKind::Fanout, durable, FieldTable::default())
            .await?;
        let durable = QueueDeclareOptions { durable: true, ..Default::default() };
        channel.queue_declare(&self.dead_queue, durable, self.queue_type()).await?;
        let mut arguments = self.queue_type();
        arguments
            .insert("x-dead-letter-exchange".into(), AMQPValue::LongString(self.dead_letter_exchange.clone().into()));
        if self.kind == QueueKind::Quorum && self.delivery_limit > 0 {
            arguments.insert("x-delivery-limit".into(), AMQPValue::LongUInt(self.delivery_limit));
        }
        channel.queue_declare(&self.queue, durable, arguments).await?;
        let bind = QueueBindOptions::default();
        channel.queue_bind(&self.queue, &self.exchange, ROUTING_KEY, bind, FieldTable::default()).await?;
        channel.queue_bind(&self.dead_queue, &self.dead_letter_exchange, ROUTING_KEY, bind, FieldTable::default()).await
    }

    fn queue_type(&self) -> FieldTable {
        let mut arguments = FieldTable::default();
        arguments.insert("x-queue-type".into(), AMQPValue::LongString(self.kind.as_str().into()));
        arguments
    }
}

fn unavailable(context: &str, error: impl fmt::Display) -> BackendError {
    BackendError::Unavailable(format!("{context}: {error}"))
}

/// The publisher's connection and its confirm-mode channel, shared by every
/// concurrent publish (lapin matches confirms to publishes).
struct PublisherLink {
    connection: Connection,
    channel: Channel,
}

impl PublisherLink {
    fn usable(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }
}

struct PublisherState {
    link: Option<PublisherLink>,
    backoff: Backoff,
    last_error: String,
}

struct Shared {
    settings: RabbitMqSettings,
    topology: Topology,
    /// The runtime every connection is opened on, so its socket and
    /// background tasks live as long as the queue, whichever runtime (e.g.
    /// an HTTP worker's) happens to trigger a reconnect.
    runtime: tokio::runtime::Handle,
    /// A tokio mutex: it is held across a reconnect, so concurrent publishes
    /// wait for one attempt instead of each opening a connection.
    publisher: tokio::sync::Mutex<PublisherState>,
}

impl Shared {
    /// Runs `open` on the queue's runtime, bounded by `publish_timeout`. A
    /// caller that stops waiting leaves the attempt to finish on its own;
    /// its connection is then dropped, which closes it.
    async fn open<T: Send + 'static>(
        &self,
        deadline: Instant,
        open: impl Future<Output = lapin::Result<T>> + Send + 'static,
    ) -> Result<T, String> {
        let attempt = self.runtime.spawn(open);
        match timeout_at(deadline, attempt).await {
            Ok(Ok(Ok(opened))) => Ok(opened),
            Ok(Ok(Err(error))) => Err(with_upgrade_hint(error.to_string())),
            Ok(Err(join_error)) => Err(format!("connect task failed: {join_error}")),
            Err(_) => Err("connect timed out".to_owned()),
        }
    }

    fn connection_properties(&self, role: &str) -> ConnectionProperties {
        ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::default().with_handle(self.runtime.clone()))
            .with_reactor(tokio_reactor_trait::Tokio)
            // Names the connection in the management UI and `rabbitmqctl
            // list_connections`, and lets tests find their own connections.
            .with_connection_name(format!("pm {role} {}", self.topology.queue).into())
    }

    async fn open_publisher(self: Arc<Self>) -> lapin::Result<PublisherLink> {
        let connection =
            Connection::connect(self.settings.url.expose_secret(), self.connection_properties("publisher")).await?;
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        self.topology.declare(&channel).await?;
        Ok(PublisherLink { connection, channel })
    }

    async fn open_consumer(self: Arc<Self>) -> lapin::Result<ConsumerLink> {
        let connection =
            Connection::connect(self.settings.url.expose_secret(), self.connection_properties("consumer")).await?;
        let channel = connection.create_channel().await?;
        self.topology.declare(&channel).await?;
        // Per consumer (global = false): quorum queues do not support global qos.
        channel.basic_qos(self.settings.prefetch, BasicQosOptions::default()).await?;
        let deliveries = channel
            .basic_consume(&self.topology.queue, CONSUMER_TAG, BasicConsumeOptions::default(), FieldTable::default())
            .await?;
        let dead_letters = connection.create_channel().await?;
        dead_letters.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok(ConsumerLink { connection, channel, dead_letters, deliveries })
    }

    /// The publisher's channel, reconnecting first if the link is gone and
    /// the backoff allows an attempt now.
    async fn publisher_channel(self: &Arc<Self>, deadline: Instant) -> Result<Channel, BackendError> {
        let mut state = timeout_at(deadline, self.publisher.lock())
            .await
            .map_err(|_| BackendError::Unavailable("timed out waiting for the rabbitmq connection".to_owned()))?;
        if let Some(link) = &state.link {
            if link.usable() {
                if link.connection.status().blocked() {
                    return Err(BackendError::Unavailable("rabbitmq blocks publishing (resource alarm)".to_owned()));
                }
                return Ok(link.channel.clone());
            }
            tracing::warn!(url = %self.settings.redacted_url(), "rabbitmq publisher connection lost; reconnecting");
            crate::metrics::connection_lost(crate::metrics::RABBITMQ);
            state.link = None;
        }
        if let Some(wait) = state.backoff.remaining() {
            return Err(BackendError::Unavailable(format!(
                "rabbitmq unreachable ({}); next connect attempt in {} ms",
                state.last_error,
                wait.as_millis()
            )));
        }
        let attempt_deadline = deadline.min(Instant::now() + self.settings.publish_timeout());
        match self.open(attempt_deadline, self.clone().open_publisher()).await {
            Ok(link) => {
                state.backoff.succeeded();
                let channel = link.channel.clone();
                state.link = Some(link);
                Ok(channel)
            }
            Err(error) => {
                // The reconnect policy has no attempt limit: there is always a next wait.
                let wait = state.backoff.failed().unwrap_or_default();
                tracing::warn!(
                    url = %self.settings.redacted_url(),
                    %error,
                    retry_in_ms = wait.as_millis() as u64,
                    "cannot connect the rabbitmq publisher"
                );
                crate::metrics::error(crate::metrics::RABBITMQ, "connect");
                state.last_error = error.clone();
                Err(unavailable("cannot connect to rabbitmq", error))
            }
        }
    }
}

/// A queue declared with other arguments (by an older version, before
/// `x-delivery-limit`) is refused by the broker: say how to move on.
fn with_upgrade_hint(error: String) -> String {
    if error.contains("PRECONDITION_FAILED") {
        format!(
            "{error} (writer_queue exists with other arguments, e.g. from a version before x-delivery-limit: \
             drain and delete it as docs/DEPLOYMENT.md says under \"Upgrading the queue\", or set \
             rabbitmq.delivery_limit = 0)"
        )
    } else {
        error
    }
}

/// Publishes on a confirm-mode channel and waits for the broker's verdict.
async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    payload: &[u8],
    properties: BasicProperties,
) -> Result<(), BackendError> {
    let options = BasicPublishOptions { mandatory: true, ..Default::default() };
    // Once the frame may have left, a failure is `Unconfirmed`: the broker
    // may hold the message. Only its own nack or return says it does not.
    let confirm = channel
        .basic_publish(exchange, ROUTING_KEY, options, payload, properties)
        .await
        .map_err(|e| BackendError::Unconfirmed(format!("rabbitmq publish failed: {e}")))?;
    let confirmation =
        confirm.await.map_err(|e| BackendError::Unconfirmed(format!("rabbitmq publish not confirmed: {e}")))?;
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => Err(BackendError::Unavailable(
            format!("rabbitmq returned the message as unroutable: {} {}", returned.reply_code, returned.reply_text),
        )),
        Confirmation::Nack(None) => Err(BackendError::Unavailable("rabbitmq refused the message (nack)".to_owned())),
        Confirmation::NotRequested => {
            Err(BackendError::Unconfirmed("rabbitmq channel is not in confirm mode".to_owned()))
        }
    }
}

/// The properties of section 8.
fn message_properties(message: &QueuedMessage) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(ACCEPTED_AT_HEADER.into(), AMQPValue::LongString(message.accepted_at.to_rfc3339().into()));
    headers.insert(RECEIPT_HEADER.into(), AMQPValue::LongString(message.receipt.as_str().into()));
    BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_content_type(CONTENT_TYPE.into())
        .with_message_id(message.message_id.as_str().into())
        .with_timestamp(u64::try_from(message.accepted_at.whole_seconds()).unwrap_or(0))
        .with_headers(headers)
}

/// Reads a delivery back into a [`QueuedMessage`], or says why it is not one.
fn queued_message(properties: &BasicProperties, payload: &[u8]) -> Result<QueuedMessage, String> {
    let message_id = match properties.message_id() {
        Some(id) if !id.as_str().is_empty() => {
            MessageHash::parse(id.as_str()).map_err(|_| "message_id property is not a message hash".to_owned())?
        }
        _ => return Err("missing message_id property".to_owned()),
    };
    let text = match header_text(properties, ACCEPTED_AT_HEADER) {
        Some(text) => text,
        None => return Err(format!("missing {ACCEPTED_AT_HEADER} header")),
    };
    let accepted_at =
        text.and_then(Micros::parse_rfc3339).ok_or_else(|| format!("malformed {ACCEPTED_AT_HEADER} header"))?;
    // A missing or unreadable receipt is left empty: the writer refuses it.
    let receipt = header_text(properties, RECEIPT_HEADER).flatten().unwrap_or_default().to_owned();
    Ok(QueuedMessage { message_id, accepted_at, receipt, payload: payload.to_vec() })
}

/// How many times the broker has handed the message out, this time
/// included: a quorum queue counts earlier deliveries in `x-delivery-count`.
fn delivery_count(properties: &BasicProperties, redelivered: bool) -> u32 {
    let header = properties.headers().as_ref().and_then(|headers| headers.inner().get(DELIVERY_COUNT_HEADER));
    let earlier = match header {
        Some(AMQPValue::LongLongInt(n)) => u32::try_from(*n).ok(),
        Some(AMQPValue::LongInt(n)) => u32::try_from(*n).ok(),
        Some(AMQPValue::ShortInt(n)) => u32::try_from(*n).ok(),
        Some(AMQPValue::LongUInt(n)) => Some(*n),
        _ => None,
    };
    earlier.map_or(if redelivered { 2 } else { 1 }, |n| n.saturating_add(1))
}

/// The text of a header: `None` when absent, `Some(None)` when not text.
fn header_text<'a>(properties: &'a BasicProperties, name: &str) -> Option<Option<&'a str>> {
    let header = properties.headers().as_ref().and_then(|headers| headers.inner().get(name))?;
    Some(match header {
        AMQPValue::LongString(text) => std::str::from_utf8(text.as_bytes()).ok(),
        AMQPValue::ShortString(text) => Some(text.as_str()),
        _ => None,
    })
}

/// The queue of section 8 on a RabbitMQ broker; cheap to clone (clones share
/// the publisher connection).
#[derive(Clone)]
pub struct RabbitMqQueue {
    shared: Arc<Shared>,
}

impl fmt::Debug for RabbitMqQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitMqQueue").field("settings", &self.shared.settings).finish_non_exhaustive()
    }
}

impl RabbitMqQueue {
    /// Connects the publisher and declares the topology. Must run inside a
    /// tokio runtime, which then hosts every connection of this queue.
    pub async fn connect(settings: RabbitMqSettings) -> Result<Self, BackendError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| unavailable("the rabbitmq backend needs a tokio runtime", e))?;
        let topology = Topology::new(&settings);
        let backoff = settings.reconnect_policy().backoff();
        let shared = Arc::new(Shared {
            settings,
            topology,
            runtime,
            publisher: tokio::sync::Mutex::new(PublisherState { link: None, backoff, last_error: String::new() }),
        });
        shared.publisher_channel(Instant::now() + shared.settings.publish_timeout()).await?;
        Ok(Self { shared })
    }

    /// Closes the publisher's channel and connection with a clean AMQP
    /// handshake (reply 200) and waits for lapin's I/O thread to end, all
    /// bounded by `publish_timeout`. Without it, a process that exits after
    /// its work leaves that thread running into the runtime's shutdown, and
    /// it reports a connection error. Only the publisher is closed: a
    /// consumer's connection is dropped with its subscription.
    pub async fn close(&self) -> Result<(), BackendError> {
        let Some(link) = self.shared.publisher.lock().await.link.take() else { return Ok(()) };
        let PublisherLink { connection, channel } = link;
        let closed = close_connection(connection, vec![channel], "pm closing");
        match timeout(self.shared.settings.publish_timeout(), closed).await {
            Ok(result) => result.map_err(|e| unavailable("rabbitmq close", e)),
            Err(_) => Err(BackendError::Unavailable("rabbitmq did not close the connection in time".into())),
        }
    }

    /// Deletes the queues and exchanges with everything in them: for tests
    /// and for tearing down a deployment, never called by a role.
    #[cfg(any(test, feature = "testsuite"))]
    pub async fn delete_topology(&self) -> Result<(), BackendError> {
        let deadline = Instant::now() + self.shared.settings.publish_timeout();
        let channel = self.shared.publisher_channel(deadline).await?;
        let t = &self.shared.topology;
        let deleted = async {
            for queue in [&t.queue, &t.dead_queue] {
                channel.queue_delete(queue, lapin::options::QueueDeleteOptions::default()).await?;
            }
            let events = format!("{}{}", self.shared.settings.prefix, events::EVENTS_EXCHANGE);
            for exchange in [&t.exchange, &t.dead_letter_exchange, &events] {
                channel.exchange_delete(exchange, lapin::options::ExchangeDeleteOptions::default()).await?;
            }
            lapin::Result::Ok(())
        };
        match timeout_at(deadline, deleted).await {
            Ok(result) => result.map_err(|e| unavailable("rabbitmq delete", e)),
            Err(_) => Err(BackendError::Unavailable("rabbitmq did not delete the topology in time".into())),
        }
    }
}

#[async_trait]
impl Queue for RabbitMqQueue {
    #[tracing::instrument(skip_all, fields(hash = %message.message_id))]
    async fn publish(&self, message: &QueuedMessage) -> Result<(), BackendError> {
        let budget = self.shared.settings.publish_timeout();
        let deadline = Instant::now() + budget;
        let channel = self.shared.publisher_channel(deadline).await?;
        let properties = message_properties(message);
        let published = publish_confirmed(&channel, &self.shared.topology.exchange, &message.payload, properties);
        let outcome = match timeout_at(deadline, published).await {
            Ok(result) => result,
            Err(_) => Err(BackendError::Unconfirmed(format!(
                "rabbitmq did not confirm the publish within {} ms",
                budget.as_millis()
            ))),
        };
        outcome.inspect_err(|failure| crate::metrics::publish_failed(crate::metrics::RABBITMQ, failure))
    }

    async fn consume(&self) -> Result<Box<dyn Consumer>, BackendError> {
        let shared = self.shared.clone();
        let deadline = Instant::now() + shared.settings.publish_timeout();
        let link = shared
            .open(deadline, shared.clone().open_consumer())
            .await
            .map_err(|e| unavailable("cannot subscribe to rabbitmq", e))?;
        let backoff = shared.settings.reconnect_policy().backoff();
        Ok(Box::new(RabbitMqConsumer { shared, link: Some(link), backoff, last_tag: 0, pending: HashMap::new() }))
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.shared.publisher_channel(Instant::now() + self.shared.settings.publish_timeout()).await.map(drop)
    }

    async fn depth(&self) -> Result<Option<QueueDepth>, BackendError> {
        self.shared.depth().await.map(Some)
    }
}

/// A consumer's connection: one channel for the subscription, one in
/// confirm mode for dead-letter copies.
struct ConsumerLink {
    connection: Connection,
    channel: Channel,
    dead_letters: Channel,
    deliveries: lapin::Consumer,
}

impl ConsumerLink {
    fn usable(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }
}

/// A delivery handed out and not yet settled, kept so that it can be
/// dead-lettered with its original properties.
struct Pending {
    delivery_tag: u64,
    properties: BasicProperties,
    payload: Vec<u8>,
}

/// One subscription to `writer_queue`, with manual acks.
///
/// The tags it hands out are its own, never reused, rather than AMQP
/// delivery tags: those restart at 1 on every channel, so after a reconnect
/// an ack for an old tag would settle a different message.
struct RabbitMqConsumer {
    shared: Arc<Shared>,
    link: Option<ConsumerLink>,
    backoff: Backoff,
    last_tag: u64,
    /// Unsettled deliveries of the current channel, by our tag.
    pending: HashMap<u64, Pending>,
}

impl RabbitMqConsumer {
    /// Drops the link; its unsettled deliveries go back to the queue.
    fn lose_link(&mut self, reason: &str) {
        if self.link.take().is_some() {
            crate::metrics::connection_lost(crate::metrics::RABBITMQ);
            let wait = self.backoff.failed().unwrap_or_default();
            tracing::warn!(
                %reason,
                unsettled = self.pending.len(),
                retry_in_ms = wait.as_millis() as u64,
                "rabbitmq subscription lost; reconnecting"
            );
        }
        self.pending.clear();
    }

    /// Reopens connection, channels, topology, qos and subscription, waiting
    /// with backoff between attempts for as long as it takes.
    async fn reconnect(&mut self) {
        loop {
            if let Some(wait) = self.backoff.remaining() {
                tokio::time::sleep(wait).await;
            }
            let deadline = Instant::now() + self.shared.settings.publish_timeout();
            match self.shared.open(deadline, self.shared.clone().open_consumer()).await {
                Ok(link) => {
                    tracing::info!("rabbitmq subscription restored");
                    self.link = Some(link);
                    return;
                }
                Err(error) => {
                    let wait = self.backoff.failed().unwrap_or_default();
                    tracing::warn!(
                        url = %self.shared.settings.redacted_url(),
                        %error,
                        retry_in_ms = wait.as_millis() as u64,
                        "cannot reconnect the rabbitmq consumer"
                    );
                    crate::metrics::error(crate::metrics::RABBITMQ, "connect");
                }
            }
        }
    }

    fn link(&self, tag: u64) -> Result<&ConsumerLink, BackendError> {
        self.link.as_ref().ok_or_else(|| not_pending(tag))
    }

    /// Publishes a confirmed copy with the reason to the dead-letter
    /// exchange, then acks the original.
    async fn park(
        &mut self,
        delivery_tag: u64,
        properties: &BasicProperties,
        payload: &[u8],
        reason: &str,
    ) -> Result<(), BackendError> {
        let link = self.link(delivery_tag)?;
        let mut headers = properties.headers().clone().unwrap_or_default();
        headers.insert(DEAD_REASON_HEADER.into(), AMQPValue::LongString(LongString::from(reason)));
        let copy = properties.clone().with_headers(headers);
        let exchange = &self.shared.topology.dead_letter_exchange;
        let budget = self.shared.settings.publish_timeout();
        let published = match timeout(budget, publish_confirmed(&link.dead_letters, exchange, payload, copy)).await {
            Ok(result) => result,
            Err(_) => Err(BackendError::Unavailable(format!(
                "rabbitmq did not confirm the dead letter within {} ms",
                budget.as_millis()
            ))),
        };
        let acked = match published {
            Ok(()) => link.channel.basic_ack(delivery_tag, BasicAckOptions::default()).await,
            Err(error) => {
                if !link.usable() {
                    self.lose_link(&error.to_string());
                }
                return Err(error);
            }
        };
        acked.map_err(|e| {
            self.lose_link(&e.to_string());
            unavailable("cannot ack the dead-lettered delivery", e)
        })
    }

    /// Hands a pending delivery back to the broker; a failure means the
    /// channel is gone and the broker will hand the message out again anyway.
    async fn give_back(&mut self, tag: u64) -> Result<(), BackendError> {
        let pending = self.pending.remove(&tag).ok_or_else(|| not_pending(tag))?;
        let link = self.link(tag)?;
        let options = BasicNackOptions { requeue: true, ..Default::default() };
        let settled = link.channel.basic_nack(pending.delivery_tag, options).await;
        settled.map_err(|e| {
            self.lose_link(&e.to_string());
            unavailable("cannot settle the delivery; the broker will redeliver it", e)
        })
    }
}

fn not_pending(tag: u64) -> BackendError {
    BackendError::Unavailable(format!(
        "delivery {tag} is not pending: already settled, or its channel closed and the broker will redeliver it"
    ))
}

impl RabbitMqConsumer {
    /// The next delivery: waiting for one (reconnecting as needed) when
    /// `wait`, else only one already received (`None` if there is none).
    async fn next_delivery(&mut self, wait: bool) -> Result<Option<Delivery>, BackendError> {
        loop {
            if self.link.is_none() {
                if !wait {
                    return Ok(None);
                }
                self.reconnect().await;
            }
            let link = self.link.as_mut().expect("reconnect leaves a link");
            let next = if wait {
                link.deliveries.next().await
            } else {
                match link.deliveries.next().now_or_never() {
                    Some(next) => next,
                    None => return Ok(None),
                }
            };
            let delivery = match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(error)) => {
                    self.lose_link(&error.to_string());
                    continue;
                }
                None => {
                    self.lose_link("the broker cancelled the subscription");
                    continue;
                }
            };
            if !link.usable() {
                // Buffered before the channel died: it cannot be acked, and
                // the broker already took it back to hand out again.
                self.lose_link("the channel closed");
                continue;
            }
            // The link works: a later loss starts the backoff from the beginning.
            self.backoff.succeeded();
            match queued_message(&delivery.properties, &delivery.data) {
                Ok(message) => {
                    self.last_tag += 1;
                    let tag = self.last_tag;
                    let pending = Pending {
                        delivery_tag: delivery.delivery_tag,
                        properties: delivery.properties,
                        payload: delivery.data,
                    };
                    let deliveries = delivery_count(&pending.properties, delivery.redelivered);
                    self.pending.insert(tag, pending);
                    return Ok(Some(Delivery { tag, message, redelivered: delivery.redelivered, deliveries }));
                }
                Err(reason) => {
                    tracing::warn!(%reason, "dead-lettering a delivery that is not a queued message");
                    let parked = self.park(delivery.delivery_tag, &delivery.properties, &delivery.data, &reason).await;
                    if let Err(error) = parked {
                        tracing::warn!(%error, "could not dead-letter the delivery");
                        // Still connected: let the broker dead-letter it
                        // (without the reason) rather than hold it forever.
                        if let Some(link) = self.link.as_ref() {
                            let reject = BasicNackOptions { requeue: false, ..Default::default() };
                            if let Err(error) = link.channel.basic_nack(delivery.delivery_tag, reject).await {
                                self.lose_link(&error.to_string());
                            }
                        }
                    }
                }
            }
        }
    }
}

#[async_trait]
impl Consumer for RabbitMqConsumer {
    async fn next_batch(&mut self, max: usize) -> Result<Vec<Delivery>, BackendError> {
        let first = self.next_delivery(true).await?.expect("a waiting call returns a delivery");
        let mut batch = vec![first];
        while batch.len() < max {
            match self.next_delivery(false).await? {
                Some(delivery) => batch.push(delivery),
                None => break,
            }
        }
        Ok(batch)
    }

    /// One `multiple` ack when `tags` are every pending delivery up to the
    /// last of them (the usual case), else one ack each.
    async fn ack(&mut self, tags: &[u64]) -> Result<(), BackendError> {
        // Every tag is checked before any is settled: an unknown one leaves
        // the others pending, to be acknowledged again.
        if let Some(unknown) = tags.iter().find(|tag| !self.pending.contains_key(tag)) {
            return Err(not_pending(*unknown));
        }
        let delivery_tags: Vec<u64> =
            tags.iter().filter_map(|tag| self.pending.remove(tag)).map(|pending| pending.delivery_tag).collect();
        let Some(&last) = delivery_tags.iter().max() else { return Ok(()) };
        let link = self.link(last)?;
        let covers_all_before = !self.pending.values().any(|p| p.delivery_tag < last);
        let acked = if covers_all_before {
            link.channel.basic_ack(last, BasicAckOptions { multiple: true }).await
        } else {
            let mut acked = Ok(());
            for delivery_tag in delivery_tags {
                acked = link.channel.basic_ack(delivery_tag, BasicAckOptions::default()).await;
                if acked.is_err() {
                    break;
                }
            }
            acked
        };
        acked.map_err(|e| {
            self.lose_link(&e.to_string());
            unavailable("cannot acknowledge; the broker will redeliver", e)
        })
    }

    async fn requeue(&mut self, tag: u64) -> Result<(), BackendError> {
        self.give_back(tag).await
    }

    async fn dead_letter(&mut self, tag: u64, reason: &str) -> Result<(), BackendError> {
        let pending = self.pending.remove(&tag).ok_or_else(|| not_pending(tag))?;
        let parked = self.park(pending.delivery_tag, &pending.properties, &pending.payload, reason).await;
        if parked.is_err() && self.link.is_some() {
            // The channel survived (e.g. a nack): the delivery is still ours to settle.
            self.pending.insert(tag, pending);
        }
        parked
    }

    async fn close(&mut self) {
        let Some(link) = self.link.take() else { return };
        self.pending.clear();
        // Each channel is closed and its close answered before the
        // connection (the broker hands back what they held unacknowledged).
        let ConsumerLink { connection, channel, dead_letters, deliveries } = link;
        // The channels close with the connection (the broker hands back what
        // they held unacknowledged).
        drop(deliveries);
        let closed = close_connection(connection, vec![channel, dead_letters], "pm writer stopping");
        match tokio::time::timeout(self.shared.settings.publish_timeout(), closed).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "rabbitmq consumer connection not closed cleanly"),
            Err(_) => tracing::warn!("rabbitmq consumer connection took too long to close"),
        }
    }
}

impl Shared {
    /// The messages ready in `writer_queue` and `writer_dead`, from passive
    /// declares on the publisher's channel (the queues exist: connecting
    /// declared them; were one deleted, the channel closes and the next
    /// publish reconnects and declares it again).
    async fn depth(self: &Arc<Self>) -> Result<QueueDepth, BackendError> {
        let deadline = Instant::now() + self.settings.publish_timeout();
        let channel = self.publisher_channel(deadline).await?;
        let queued = ready_messages(&channel, &self.topology.queue, deadline).await?;
        let dead = ready_messages(&channel, &self.topology.dead_queue, deadline).await?;
        Ok(QueueDepth { queued, dead })
    }
}

/// The messages ready in `queue`, from a passive declare.
async fn ready_messages(channel: &Channel, queue: &str, deadline: Instant) -> Result<u64, BackendError> {
    let passive = QueueDeclareOptions { passive: true, durable: true, ..Default::default() };
    match timeout_at(deadline, channel.queue_declare(queue, passive, FieldTable::default())).await {
        Ok(Ok(queue)) => Ok(u64::from(queue.message_count())),
        Ok(Err(error)) => Err(unavailable("rabbitmq queue depth", error)),
        Err(_) => Err(BackendError::Unavailable("rabbitmq did not tell the queue depth in time".into())),
    }
}

/// Closes `connection` and with it its `channels` with the AMQP handshake
/// (reply 200), then waits for lapin's I/O thread to end.
///
/// - The channel handles are dropped only after the connection is closed:
///   lapin closes a channel whose last handle is dropped while it is open,
///   and that close races the connection's (its answer then comes for a
///   channel lapin has already forgotten, logged as a connection error).
///   Closing each channel first races in the same way.
/// - Without the wait, a process that exits right after leaves the I/O
///   thread running into the runtime's shutdown, and it logs a connection
///   error. `run` joins the thread, which ends once the connection is
///   closed; it runs on a plain thread, not `spawn_blocking`: if it ever
///   hung, the runtime would wait for it at exit, and this one is abandoned.
pub(crate) async fn close_connection(
    connection: Connection,
    channels: Vec<Channel>,
    reason: &str,
) -> Result<(), String> {
    if connection.status().connected() {
        connection.close(200, reason).await.map_err(|e| e.to_string())?;
    }
    drop(channels);
    let (done, joined) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("pm-rabbitmq-close".to_owned())
        .spawn(move || {
            let _ = done.send(connection.run());
        })
        .map_err(|e| e.to_string())?;
    match joined.await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err("the I/O thread's result was lost".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_carry_the_acceptance_time_and_read_back_to_the_same_message() {
        let message = QueuedMessage {
            message_id: MessageHash::of_message("hash"),
            accepted_at: Micros(1_700_000_000_123_456),
            receipt: "a receipt".into(),
            payload: vec![1, 2],
        };
        let properties = message_properties(&message);
        assert_eq!(*properties.timestamp(), Some(1_700_000_000));
        assert_eq!(*properties.delivery_mode(), Some(PERSISTENT));
        assert_eq!(queued_message(&properties, &message.payload), Ok(message));
    }

    #[test]
    fn a_delivery_without_a_valid_acceptance_time_is_not_a_queued_message() {
        let no_header = BasicProperties::default().with_message_id(MessageHash::of_message("hash").as_str().into());
        assert_eq!(queued_message(&no_header, b""), Err("missing x-accepted-at header".into()));
        let mut headers = FieldTable::default();
        headers.insert(ACCEPTED_AT_HEADER.into(), AMQPValue::LongString("yesterday".into()));
        let bad = no_header.clone().with_headers(headers.clone());
        assert_eq!(queued_message(&bad, b""), Err("malformed x-accepted-at header".into()));
        let no_id = BasicProperties::default().with_headers(headers);
        assert_eq!(queued_message(&no_id, b""), Err("missing message_id property".into()));
    }
}
