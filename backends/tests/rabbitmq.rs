//! The RabbitMQ queue backend against a real broker (`scripts/services.sh
//! start`): section 8 topology and properties, confirmed publishes, manual
//! acks, redelivery, dead letters, and recovery from lost connections.
//!
//! Every test uses its own name prefix and deletes its exchanges and queues
//! when it ends, even when it fails. Outages are simulated with a TCP proxy
//! between the backend and the broker, so they disturb no one else; one
//! test also has the broker itself close our connections (`rabbitmqctl`).

use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use pm_backends::rabbitmq::{
    RabbitMqQueue, ACCEPTED_AT_HEADER, CONTENT_TYPE, DEAD_REASON_HEADER, RECEIPT_HEADER, ROUTING_KEY,
};
use pm_backends::settings::{QueueKind, RabbitMqSettings};
use pm_backends::testsuite::{address, require, services_required, unique_prefix};
use pm_backends::{BackendError, Consumer, Delivery, Queue, QueuedMessage};
use pm_models::time::Micros;
use pm_models::MessageHash;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A broker for one test: its address, a unique prefix, and a raw lapin
/// channel for looking behind the backend's back.
struct Broker {
    address: String,
    prefix: String,
    raw: Channel,
    _raw_connection: Connection,
}

impl Broker {
    /// `None` (skip) when the broker is unreachable and services are not required.
    async fn start(label: &str) -> Option<Self> {
        let address = address("PM_TEST_RABBITMQ", "127.0.0.1:5672");
        if !require("rabbitmq", &address) {
            return None;
        }
        let prefix = unique_prefix(label);
        let connection = raw_connect(&url_for(&address)).await;
        let raw = connection.create_channel().await.expect("a raw channel opens");
        Some(Self { address, prefix, raw, _raw_connection: connection })
    }

    fn settings(&self) -> RabbitMqSettings {
        RabbitMqSettings { prefix: self.prefix.clone(), ..RabbitMqSettings::with_url(url_for(&self.address)) }
    }

    /// Settings for a backend that reaches the broker through `proxy`, with
    /// short timeouts so outages show quickly.
    fn settings_via(&self, proxy: &Proxy) -> RabbitMqSettings {
        RabbitMqSettings {
            prefix: self.prefix.clone(),
            publish_timeout_ms: 1_000,
            reconnect_initial_ms: 50,
            reconnect_max_ms: 500,
            ..RabbitMqSettings::with_url(url_for(&proxy.address.to_string()))
        }
    }

    async fn queue(&self) -> RabbitMqQueue {
        RabbitMqQueue::connect(self.settings()).await.expect("the backend connects")
    }

    fn name(&self, what: &str) -> String {
        format!("{}{what}", self.prefix)
    }

    /// Takes one message off `queue` behind the backend's back.
    async fn get(&self, queue: &str) -> Option<lapin::message::Delivery> {
        let got = self.raw.basic_get(&self.name(queue), BasicGetOptions { no_ack: true }).await.expect("basic.get");
        got.map(|message| message.delivery)
    }

    /// Waits until the broker has handed every message of `queue` to a
    /// consumer (none is left ready); panics after 10 s.
    async fn wait_until_all_handed_out(&self, queue: &str) {
        let give_up = Instant::now() + Duration::from_secs(10);
        let passive = QueueDeclareOptions { passive: true, ..Default::default() };
        loop {
            let declared = self.channel().await.queue_declare(&self.name(queue), passive, FieldTable::default()).await;
            let ready = declared.expect("the queue exists").message_count();
            if ready == 0 {
                return;
            }
            assert!(Instant::now() < give_up, "{ready} messages still ready in {queue}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A fresh raw channel: a failed declaration closes the channel it ran on.
    async fn channel(&self) -> Channel {
        self._raw_connection.create_channel().await.expect("a raw channel opens")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let (url, prefix) = (url_for(&self.address), self.prefix.clone());
        // Drop cannot await, and the test's runtime may be shutting down.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(async move {
                let connection = raw_connect(&url).await;
                for queue in ["writer_queue", "writer_dead"] {
                    let channel = connection.create_channel().await.expect("a channel");
                    let _ = channel.queue_delete(&format!("{prefix}{queue}"), QueueDeleteOptions::default()).await;
                }
                for exchange in ["writer_exchange", "writer_dlx"] {
                    let channel = connection.create_channel().await.expect("a channel");
                    let _ =
                        channel.exchange_delete(&format!("{prefix}{exchange}"), ExchangeDeleteOptions::default()).await;
                }
                let _ = connection.close(200, "test done").await;
            });
        });
        let _ = cleanup.join();
    }
}

fn url_for(address: &str) -> String {
    format!("amqp://guest:guest@{address}/%2f")
}

async fn raw_connect(url: &str) -> Connection {
    let properties = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    Connection::connect(url, properties).await.expect("the broker accepts a raw connection")
}

/// A message hash named by `label`.
fn hash(label: &str) -> MessageHash {
    MessageHash::of_message(label)
}

fn hashes<S: AsRef<str>>(labels: &[S]) -> Vec<MessageHash> {
    labels.iter().map(|label| hash(label.as_ref())).collect()
}

fn message(label: &str) -> QueuedMessage {
    QueuedMessage {
        message_id: hash(label),
        accepted_at: Micros::now(),
        receipt: format!("receipt of {label}"),
        payload: format!("payload of {label}").into(),
    }
}

/// The next batch of at most `max` deliveries.
async fn batch_within(consumer: &mut Box<dyn Consumer>, max: usize, seconds: u64) -> Vec<Delivery> {
    let batch = tokio::time::timeout(Duration::from_secs(seconds), consumer.next_batch(max))
        .await
        .expect("a delivery arrives in time")
        .expect("the consumer delivers");
    assert!(!batch.is_empty() && batch.len() <= max, "a batch of {} for max {max}", batch.len());
    batch
}

/// The next delivery.
async fn next_within(consumer: &mut Box<dyn Consumer>, seconds: u64) -> Delivery {
    let mut batch = batch_within(consumer, 1, seconds).await;
    batch.pop().expect("a batch of one")
}

/// Exactly `count` deliveries, in the order they arrive, however they are batched.
async fn gather(consumer: &mut Box<dyn Consumer>, count: usize) -> Vec<Delivery> {
    let mut gathered = Vec::new();
    while gathered.len() < count {
        gathered.extend(batch_within(consumer, count - gathered.len(), 10).await);
    }
    gathered
}

fn ids(deliveries: &[Delivery]) -> Vec<MessageHash> {
    deliveries.iter().map(|d| d.message.message_id.clone()).collect()
}

fn tags(deliveries: &[Delivery]) -> Vec<u64> {
    deliveries.iter().map(|d| d.tag).collect()
}

/// Nothing more arrives for a while.
async fn assert_idle(consumer: &mut Box<dyn Consumer>) {
    if let Ok(batch) = tokio::time::timeout(Duration::from_millis(700), consumer.next_batch(1)).await {
        panic!("unexpected delivery: {:?}", batch.map(|b| ids(&b)));
    }
}

fn header<'a>(properties: &'a BasicProperties, name: &str) -> Option<&'a AMQPValue> {
    properties.headers().as_ref().and_then(|headers| headers.inner().get(name))
}

fn long_string(value: Option<&AMQPValue>) -> String {
    match value {
        Some(AMQPValue::LongString(text)) => String::from_utf8(text.as_bytes().to_vec()).expect("utf-8"),
        other => panic!("expected a long string header, got {other:?}"),
    }
}

fn is_unavailable(result: &Result<(), BackendError>) -> bool {
    matches!(result, Err(BackendError::Unavailable(_)))
}

/// A publish that failed: refused or known unsent (`Unavailable`), or sent
/// with its outcome unknown (`Unconfirmed`, when the connection died under it).
fn is_failed_publish(result: &Result<(), BackendError>) -> bool {
    matches!(result, Err(BackendError::Unavailable(_) | BackendError::Unconfirmed(_)))
}

/// Publishes until one is confirmed; panics after `seconds`.
async fn publish_eventually(queue: &RabbitMqQueue, message: &QueuedMessage, seconds: u64) {
    let give_up = Instant::now() + Duration::from_secs(seconds);
    loop {
        match queue.publish(message).await {
            Ok(()) => return,
            Err(error) if Instant::now() < give_up => {
                // Unconfirmed when the connection dies under a publish.
                assert!(matches!(error, BackendError::Unavailable(_) | BackendError::Unconfirmed(_)), "{error:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("publish still failing after {seconds} s: {error}"),
        }
    }
}

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Forward,
    /// Stop passing bytes but keep every socket open: a broker that hangs.
    Stall,
}

/// The bytes a client sent on one connection through the proxy.
type Sent = Arc<Mutex<Vec<u8>>>;

/// A TCP proxy in front of the broker that a test can cut or stall, and
/// that keeps what clients send, to read the AMQP methods in it.
struct Proxy {
    address: SocketAddr,
    mode: watch::Sender<Mode>,
    links: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    sent: Arc<Mutex<Vec<Sent>>>,
    accepting: Arc<std::sync::atomic::AtomicBool>,
    listener_task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("the proxy binds");
        let address = listener.local_addr().expect("a bound address");
        let (mode, _) = watch::channel(Mode::Forward);
        let links: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let sent: Arc<Mutex<Vec<Sent>>> = Arc::default();
        let accepting = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let listener_task = tokio::spawn({
            let (upstream, links, all_sent, accepting, mode) =
                (upstream.to_owned(), links.clone(), sent.clone(), accepting.clone(), mode.clone());
            async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    if !accepting.load(std::sync::atomic::Ordering::SeqCst) {
                        drop(inbound); // a broker that is down: the connection closes at once
                        continue;
                    }
                    let (upstream, mode, sent) = (upstream.clone(), mode.subscribe(), Sent::default());
                    all_sent.lock().unwrap().push(sent.clone());
                    let link = tokio::spawn(async move {
                        let Ok(outbound) = TcpStream::connect(&upstream).await else { return };
                        let (from_client, to_client) = inbound.into_split();
                        let (from_broker, to_broker) = outbound.into_split();
                        tokio::join!(
                            pump(from_client, to_broker, mode.clone(), Some(sent)),
                            pump(from_broker, to_client, mode, None)
                        );
                    });
                    links.lock().unwrap().push(link.abort_handle());
                }
            }
        });
        Self { address, mode, links, sent, accepting, listener_task }
    }

    /// The acks sent on the consumer connections (those that sent
    /// `basic.consume`), in order, once every one of them has sent
    /// `connection.close`: drop the consumers first. Panics after 10 s.
    async fn acks_of_closed_consumers(&self) -> Vec<Ack> {
        let give_up = Instant::now() + Duration::from_secs(10);
        loop {
            let streams: Vec<Vec<Method>> =
                self.sent.lock().unwrap().iter().map(|sent| methods(&sent.lock().unwrap())).collect();
            let consumers: Vec<&Vec<Method>> =
                streams.iter().filter(|methods| methods.iter().any(|m| m.is(BASIC, CONSUME))).collect();
            assert!(!consumers.is_empty(), "no consumer connected through the proxy");
            if consumers.iter().all(|methods| methods.iter().any(|m| m.is(CONNECTION, CLOSE))) {
                return consumers.iter().flat_map(|methods| methods.iter().filter_map(Method::ack)).collect();
            }
            assert!(Instant::now() < give_up, "a consumer connection was not closed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The broker goes away: every open connection is dropped, new ones are closed at once.
    fn cut(&self) {
        self.accepting.store(false, std::sync::atomic::Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    /// The broker stops answering without closing anything.
    fn stall(&self) {
        self.mode.send_replace(Mode::Stall);
    }

    /// The broker is back.
    fn restore(&self) {
        self.mode.send_replace(Mode::Forward);
        self.accepting.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.listener_task.abort();
        self.cut();
    }
}

/// Passes bytes from `from` to `to`, keeping a copy in `tap`.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    tap: Option<Sent>,
) {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        // While stalled, neither read nor write: bytes pile up in the kernel.
        while *mode.borrow_and_update() == Mode::Stall {
            if mode.changed().await.is_err() {
                return;
            }
        }
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            _ = mode.changed() => continue,
        };
        match read {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if let Some(tap) = &tap {
                    tap.lock().unwrap().extend_from_slice(&buffer[..n]);
                }
                if to.write_all(&buffer[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

// ----- AMQP 0-9-1 frames, to see which methods a client sent -----------------

const CONNECTION: u16 = 10;
const CLOSE: u16 = 50;
const BASIC: u16 = 60;
const CONSUME: u16 = 20;
const ACK: u16 = 80;
/// Frame type of a method frame; frames end with this octet.
const METHOD_FRAME: u8 = 1;
const FRAME_END: u8 = 0xCE;

/// A method frame: class, method and arguments.
struct Method {
    class: u16,
    method: u16,
    arguments: Vec<u8>,
}

/// A `basic.ack` as sent: the AMQP delivery tag and the `multiple` bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ack {
    delivery_tag: u64,
    multiple: bool,
}

impl Method {
    fn is(&self, class: u16, method: u16) -> bool {
        (self.class, self.method) == (class, method)
    }

    fn ack(&self) -> Option<Ack> {
        if !self.is(BASIC, ACK) {
            return None;
        }
        let delivery_tag = u64::from_be_bytes(self.arguments[..8].try_into().expect("a delivery tag"));
        Some(Ack { delivery_tag, multiple: self.arguments[8] & 1 == 1 })
    }
}

/// The method frames in what a client sent on one connection: the protocol
/// header, then frames (type, channel, size, payload, frame end). A frame
/// not wholly arrived yet is left out.
fn methods(mut bytes: &[u8]) -> Vec<Method> {
    if bytes.starts_with(b"AMQP") {
        bytes = &bytes[8.min(bytes.len())..];
    }
    let mut methods = Vec::new();
    while bytes.len() >= 7 {
        let size = u32::from_be_bytes(bytes[3..7].try_into().unwrap()) as usize;
        let Some(&end) = bytes.get(7 + size) else { break };
        assert_eq!(end, FRAME_END, "a frame ends with the frame-end octet");
        let payload = &bytes[7..7 + size];
        if bytes[0] == METHOD_FRAME {
            methods.push(Method {
                class: u16::from_be_bytes([payload[0], payload[1]]),
                method: u16::from_be_bytes([payload[2], payload[3]]),
                arguments: payload[4..].to_vec(),
            });
        }
        bytes = &bytes[8 + size..];
    }
    methods
}

/// Closes, from the broker's side, every connection whose name contains
/// `prefix`. Returns false (skip) when rabbitmqctl cannot reach the broker
/// and services are not required.
fn broker_closes_connections_of(prefix: &str) -> bool {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/services.sh");
    let rabbitmqctl = |args: &[&str]| std::process::Command::new(script).arg("rabbitmqctl").args(args).output();
    let listed = match rabbitmqctl(&["-q", "list_connections", "pid", "client_properties", "--no-table-headers"]) {
        Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout).into_owned(),
        other => {
            let why = format!("scripts/services.sh rabbitmqctl does not reach the broker: {other:?}");
            if services_required() {
                panic!("{why}");
            }
            eprintln!("SKIPPED: {why}");
            return false;
        }
    };
    let pids: Vec<&str> =
        listed.lines().filter(|line| line.contains(prefix)).filter_map(|line| line.split_whitespace().next()).collect();
    assert!(!pids.is_empty(), "no connection named after {prefix} in:\n{listed}");
    for pid in pids {
        let closed =
            rabbitmqctl(&["close_connection", pid, "closed by the rabbitmq_backend test"]).expect("rabbitmqctl runs");
        assert!(closed.status.success(), "close_connection {pid}: {closed:?}");
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_message_is_consumed_with_its_id_acceptance_time_and_payload() {
    let Some(broker) = Broker::start("roundtrip").await else { return };
    let queue = broker.queue().await;
    let sent = QueuedMessage {
        // A hash with both base64 characters that are not alphanumeric.
        message_id: MessageHash::parse(&format!("{:A<43}=", "7q3dGs2HnQ9mNWk+4aZ1bw/")).unwrap(),
        accepted_at: Micros(1_717_171_717_123_456),
        receipt: "a receipt: ✓".into(),
        payload: vec![0x83, 0x00, 0xc1, 0xff, 0x00, 0x7f],
    };
    queue.publish(&sent).await.unwrap();
    let mut consumer = queue.consume().await.unwrap();
    let delivery = next_within(&mut consumer, 10).await;
    assert_eq!(delivery.message, sent);
    assert!(!delivery.redelivered);
    consumer.ack(&[delivery.tag]).await.unwrap();
    assert!(consumer.ack(&[delivery.tag]).await.is_err(), "a delivery is settled once");
    queue.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_message_carries_the_section_8_properties() {
    let Some(broker) = Broker::start("properties").await else { return };
    let queue = broker.queue().await;
    let sent = QueuedMessage { accepted_at: Micros(1_700_000_000_000_042), payload: vec![1], ..message("hash-1") };
    queue.publish(&sent).await.unwrap();
    let got = broker.get("writer_queue").await.expect("the message is in writer_queue");
    let properties = &got.properties;
    assert_eq!(*properties.delivery_mode(), Some(2), "persistent");
    assert_eq!(properties.content_type().as_ref().map(|t| t.as_str()), Some(CONTENT_TYPE));
    assert_eq!(properties.message_id().as_ref().map(|t| t.as_str()), Some(hash("hash-1").as_str()));
    assert_eq!(*properties.timestamp(), Some(1_700_000_000));
    assert_eq!(long_string(header(properties, ACCEPTED_AT_HEADER)), "2023-11-14T22:13:20.000042Z");
    assert_eq!(got.exchange.as_str(), broker.name("writer_exchange"));
    assert_eq!(got.routing_key.as_str(), ROUTING_KEY);
    assert_eq!(got.data, vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_queue_is_a_durable_quorum_queue_with_a_dead_letter_exchange() {
    let Some(broker) = Broker::start("quorum").await else { return };
    let _queue = broker.queue().await;
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    let arguments = |kind: &str| {
        let mut table = FieldTable::default();
        table.insert("x-queue-type".into(), AMQPValue::LongString(kind.into()));
        table.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(broker.name("writer_dlx").into()));
        if kind == "quorum" {
            table.insert("x-delivery-limit".into(), AMQPValue::LongUInt(20));
        }
        table
    };
    // Redeclaring with the same arguments is accepted: the queue has them.
    let channel = broker.channel().await;
    channel.queue_declare(&broker.name("writer_queue"), durable, arguments("quorum")).await.unwrap();
    let classic =
        broker.channel().await.queue_declare(&broker.name("writer_queue"), durable, arguments("classic")).await;
    let error = classic.expect_err("a quorum queue cannot be redeclared classic").to_string();
    assert!(error.contains("PRECONDITION_FAILED"), "{error}");
    // The exchanges exist with their types, and writer_dead exists.
    let exchange = ExchangeDeclareOptions { durable: true, ..Default::default() };
    channel
        .exchange_declare(&broker.name("writer_exchange"), ExchangeKind::Direct, exchange, FieldTable::default())
        .await
        .unwrap();
    channel
        .exchange_declare(&broker.name("writer_dlx"), ExchangeKind::Fanout, exchange, FieldTable::default())
        .await
        .unwrap();
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    channel.queue_declare(&broker.name("writer_dead"), passive, FieldTable::default()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classic_queue_is_declared_when_configured() {
    let Some(broker) = Broker::start("classic").await else { return };
    let queue =
        RabbitMqQueue::connect(RabbitMqSettings { queue_type: QueueKind::Classic, ..broker.settings() }).await.unwrap();
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    let mut quorum = FieldTable::default();
    quorum.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    quorum.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(broker.name("writer_dlx").into()));
    let error = broker.channel().await.queue_declare(&broker.name("writer_queue"), durable, quorum).await;
    assert!(error.expect_err("a classic queue is not quorum").to_string().contains("PRECONDITION_FAILED"));
    queue.publish(&message("classic")).await.unwrap();
    let mut consumer = queue.consume().await.unwrap();
    assert_eq!(next_within(&mut consumer, 10).await.message.message_id, hash("classic"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_delivery_is_redelivered_to_a_new_consumer() {
    let Some(broker) = Broker::start("unacked").await else { return };
    let queue = broker.queue().await;
    let sent = message("unacked");
    queue.publish(&sent).await.unwrap();
    let mut first = queue.consume().await.unwrap();
    let delivery = next_within(&mut first, 10).await;
    assert!(!delivery.redelivered);
    drop(first);
    let mut second = queue.consume().await.unwrap();
    let again = next_within(&mut second, 10).await;
    assert_eq!(again.message, sent);
    assert!(again.redelivered);
    second.ack(&[again.tag]).await.unwrap();
    assert_idle(&mut second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requeued_delivery_comes_back_redelivered() {
    let Some(broker) = Broker::start("requeue").await else { return };
    let queue = broker.queue().await;
    queue.publish(&message("again")).await.unwrap();
    let mut consumer = queue.consume().await.unwrap();
    let first = next_within(&mut consumer, 10).await;
    consumer.requeue(first.tag).await.unwrap();
    let second = next_within(&mut consumer, 10).await;
    assert_eq!(second.message, first.message);
    assert!(second.redelivered);
    assert_eq!((first.deliveries, second.deliveries), (1, 2), "the quorum queue counts deliveries");
    assert_ne!(second.tag, first.tag, "tags are never reused");
    consumer.ack(&[second.tag]).await.unwrap();
    assert_idle(&mut consumer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_delivery_lands_in_the_dead_queue_with_its_reason() {
    let Some(broker) = Broker::start("dead").await else { return };
    let queue = broker.queue().await;
    let sent = message("doomed");
    queue.publish(&sent).await.unwrap();
    let mut consumer = queue.consume().await.unwrap();
    let delivery = next_within(&mut consumer, 10).await;
    consumer.dead_letter(delivery.tag, "envelope does not decode").await.unwrap();
    assert!(consumer.ack(&[delivery.tag]).await.is_err(), "a dead-lettered delivery is settled");
    let dead = broker.get("writer_dead").await.expect("the message is in writer_dead");
    assert_eq!(dead.data, sent.payload);
    assert_eq!(dead.properties.message_id().as_ref().map(|t| t.as_str()), Some(hash("doomed").as_str()));
    assert_eq!(long_string(header(&dead.properties, DEAD_REASON_HEADER)), "envelope does not decode");
    assert_eq!(long_string(header(&dead.properties, ACCEPTED_AT_HEADER)), sent.accepted_at.to_rfc3339());
    assert_eq!(*dead.properties.delivery_mode(), Some(2));
    drop(consumer);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(broker.get("writer_queue").await.is_none(), "the original was acknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_without_an_acceptance_time_is_dead_lettered_and_skipped() {
    let Some(broker) = Broker::start("malformed").await else { return };
    let queue = broker.queue().await;
    let channel = broker.channel().await;
    channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let no_header = BasicProperties::default().with_message_id(hash("no-time").as_str().into()).with_delivery_mode(2);
    let confirm = channel
        .basic_publish(&broker.name("writer_exchange"), ROUTING_KEY, BasicPublishOptions::default(), b"bad", no_header)
        .await
        .unwrap();
    assert!(confirm.await.unwrap().is_ack());
    queue.publish(&message("good")).await.unwrap();
    let mut consumer = queue.consume().await.unwrap();
    let delivery = next_within(&mut consumer, 10).await;
    assert_eq!(delivery.message.message_id, hash("good"));
    consumer.ack(&[delivery.tag]).await.unwrap();
    let dead = broker.get("writer_dead").await.expect("the malformed message is in writer_dead");
    assert_eq!(dead.data, b"bad");
    assert_eq!(long_string(header(&dead.properties, DEAD_REASON_HEADER)), "missing x-accepted-at header");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_consumer_receives_messages_in_publish_order() {
    let Some(broker) = Broker::start("order").await else { return };
    let queue = broker.queue().await;
    let ids: Vec<String> = (0..50).map(|i| format!("m{i:03}")).collect();
    for id in &ids {
        queue.publish(&message(id)).await.unwrap();
    }
    let mut consumer = queue.consume().await.unwrap();
    let mut received = Vec::new();
    for _ in &ids {
        let delivery = next_within(&mut consumer, 10).await;
        received.push(delivery.message.message_id);
        consumer.ack(&[delivery.tag]).await.unwrap();
    }
    assert_eq!(received, hashes(&ids));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_500_concurrent_publishes_is_confirmed_and_consumed_exactly_once() {
    let Some(broker) = Broker::start("burst").await else { return };
    let queue = Arc::new(broker.queue().await);
    let publishes = (0..500).map(|i| {
        let queue = queue.clone();
        tokio::spawn(async move { queue.publish(&message(&format!("burst-{i}"))).await })
    });
    for published in futures::future::join_all(publishes).await {
        published.expect("the task ran").expect("every publish is confirmed");
    }
    let mut consumer = queue.consume().await.unwrap();
    let mut seen = HashSet::new();
    for _ in 0..500 {
        let delivery = next_within(&mut consumer, 20).await;
        assert!(seen.insert(delivery.message.message_id.clone()), "{} twice", delivery.message.message_id);
        consumer.ack(&[delivery.tag]).await.unwrap();
    }
    assert_eq!(seen, (0..500).map(|i| hash(&format!("burst-{i}"))).collect::<HashSet<_>>());
    assert_idle(&mut consumer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unroutable_publish_is_reported_unavailable() {
    let Some(broker) = Broker::start("unroutable").await else { return };
    let queue = broker.queue().await;
    broker.channel().await.queue_delete(&broker.name("writer_queue"), QueueDeleteOptions::default()).await.unwrap();
    let result = queue.publish(&message("nowhere")).await;
    assert!(is_unavailable(&result), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_fails_quickly_with_unavailable_when_the_broker_is_down() {
    let Some(broker) = Broker::start("down").await else { return };
    let proxy = Proxy::start(&broker.address).await;
    proxy.cut();
    let started = Instant::now();
    let result = RabbitMqQueue::connect(broker.settings_via(&proxy)).await;
    assert!(matches!(result, Err(BackendError::Unavailable(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_fails_fast_while_the_broker_is_down_and_works_again_after() {
    let Some(broker) = Broker::start("outage").await else { return };
    let proxy = Proxy::start(&broker.address).await;
    let queue = RabbitMqQueue::connect(broker.settings_via(&proxy)).await.unwrap();
    queue.publish(&message("before")).await.unwrap();
    queue.ping().await.unwrap();
    proxy.cut();
    for i in 0..5 {
        let started = Instant::now();
        let result = queue.publish(&message(&format!("during-{i}"))).await;
        // The first may have gone out on the dying connection; later ones
        // find no connection and are known unsent.
        if i == 0 {
            assert!(is_failed_publish(&result), "{result:?}");
        } else {
            assert!(is_unavailable(&result), "{result:?}");
        }
        assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
    }
    assert!(matches!(queue.ping().await, Err(BackendError::Unavailable(_))));
    proxy.restore();
    publish_eventually(&queue, &message("after"), 10).await;
    queue.ping().await.unwrap();
    let mut consumer = broker.queue().await.consume().await.unwrap();
    let mut received = HashSet::new();
    for _ in 0..2 {
        let delivery = next_within(&mut consumer, 10).await;
        received.insert(delivery.message.message_id);
        consumer.ack(&[delivery.tag]).await.unwrap();
    }
    assert_eq!(received, HashSet::from([hash("before"), hash("after")]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_to_a_broker_that_stopped_answering_fails_within_the_timeout() {
    let Some(broker) = Broker::start("stall").await else { return };
    let proxy = Proxy::start(&broker.address).await;
    let queue = RabbitMqQueue::connect(broker.settings_via(&proxy)).await.unwrap();
    queue.publish(&message("before")).await.unwrap();
    proxy.stall();
    for i in 0..2 {
        let started = Instant::now();
        let result = queue.publish(&message(&format!("stalled-{i}"))).await;
        // Sent, never confirmed: the outcome is unknown, so the authorizer
        // must not free the envelope's claims (see the outbox).
        assert!(matches!(result, Err(BackendError::Unconfirmed(_))), "{result:?}");
        assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
    }
    // A connect to a broker that does not answer is bounded too.
    let started = Instant::now();
    let connect = RabbitMqQueue::connect(broker.settings_via(&proxy)).await;
    assert!(matches!(connect, Err(BackendError::Unavailable(_))), "{connect:?}");
    assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
    proxy.cut();
    proxy.restore();
    publish_eventually(&queue, &message("after"), 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_resumes_after_its_connection_is_cut_and_gets_unsettled_deliveries_again() {
    let Some(broker) = Broker::start("resume").await else { return };
    let proxy = Proxy::start(&broker.address).await;
    let publisher = broker.queue().await;
    let queue = RabbitMqQueue::connect(broker.settings_via(&proxy)).await.unwrap();
    publisher.publish(&message("a")).await.unwrap();
    publisher.publish(&message("b")).await.unwrap();
    let mut consumer = queue.consume().await.unwrap();
    let a = next_within(&mut consumer, 10).await;
    assert_eq!(a.message.message_id, hash("a"));
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.restore();
    publisher.publish(&message("c")).await.unwrap();
    let mut received = HashSet::new();
    while received.len() < 3 {
        let delivery = next_within(&mut consumer, 20).await;
        if delivery.message.message_id == hash("a") {
            assert!(delivery.redelivered, "the unsettled delivery comes back marked");
        }
        // The connection may still die under a delivery: then it comes back.
        if consumer.ack(&[delivery.tag]).await.is_ok() {
            received.insert(delivery.message.message_id);
        }
    }
    assert_eq!(received, HashSet::from(["a", "b", "c"].map(hash)));
    assert_idle(&mut consumer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_after_the_channel_died_is_refused_and_the_delivery_comes_back() {
    let Some(broker) = Broker::start("lostack").await else { return };
    let proxy = Proxy::start(&broker.address).await;
    let publisher = broker.queue().await;
    let queue = RabbitMqQueue::connect(broker.settings_via(&proxy)).await.unwrap();
    publisher.publish(&message("x")).await.unwrap();
    let mut consumer = queue.consume().await.unwrap();
    let x = next_within(&mut consumer, 10).await;
    proxy.cut();
    // Give lapin's I/O loop a moment to see the connection close.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let acked = consumer.ack(&[x.tag]).await;
    assert!(is_unavailable(&acked), "{acked:?}");
    proxy.restore();
    let again = next_within(&mut consumer, 20).await;
    assert_eq!(again.message, x.message);
    assert!(again.redelivered);
    consumer.ack(&[again.tag]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_and_consumer_recover_after_the_broker_closes_their_connections() {
    let Some(broker) = Broker::start("closed").await else { return };
    let queue = broker.queue().await;
    queue.publish(&message("first")).await.unwrap();
    let mut consumer = queue.consume().await.unwrap();
    let first = next_within(&mut consumer, 10).await;
    consumer.ack(&[first.tag]).await.unwrap();
    if !broker_closes_connections_of(&broker.prefix) {
        return;
    }
    // The first publish may notice the loss; within a bounded time one succeeds.
    let result = queue.publish(&message("second")).await;
    if result.is_err() {
        assert!(is_unavailable(&result), "{result:?}");
        publish_eventually(&queue, &message("second"), 10).await;
    }
    let second = next_within(&mut consumer, 20).await;
    assert_eq!(second.message.message_id, hash("second"));
    consumer.ack(&[second.tag]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_takes_the_deliveries_already_received_up_to_max_in_publish_order() {
    let Some(broker) = Broker::start("batch").await else { return };
    let queue = broker.queue().await;
    let labels = ["b1", "b2", "b3", "b4", "b5"];
    for label in labels {
        queue.publish(&message(label)).await.unwrap();
    }
    let mut consumer = queue.consume().await.unwrap();
    broker.wait_until_all_handed_out("writer_queue").await;
    // The broker has sent all five; give the consumer's I/O loop a moment to read them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first = batch_within(&mut consumer, 3, 10).await;
    assert_eq!(ids(&first), hashes(&labels[..3]));
    let rest = batch_within(&mut consumer, 10, 10).await;
    assert_eq!(ids(&rest), hashes(&labels[3..]), "the rest, without waiting for more");
    let all_tags: Vec<u64> = tags(&first).into_iter().chain(tags(&rest)).collect();
    assert!(all_tags.windows(2).all(|pair| pair[0] < pair[1]), "tags increase: {all_tags:?}");
    consumer.ack(&all_tags).await.unwrap();
    assert_idle(&mut consumer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acking_the_first_deliveries_together_is_one_multiple_ack_and_only_the_others_come_back() {
    let Some(broker) = Broker::start("multiack").await else { return };
    let proxy = Proxy::start(&broker.address).await;
    let queue = RabbitMqQueue::connect(broker.settings_via(&proxy)).await.unwrap();
    let labels = ["m1", "m2", "m3", "m4", "m5"];
    for label in labels {
        queue.publish(&message(label)).await.unwrap();
    }
    let mut consumer = queue.consume().await.unwrap();
    let delivered = gather(&mut consumer, 5).await;
    assert_eq!(ids(&delivered), hashes(&labels));
    consumer.ack(&tags(&delivered[..3])).await.unwrap();
    drop(consumer);
    assert_eq!(proxy.acks_of_closed_consumers().await, [Ack { delivery_tag: 3, multiple: true }]);
    let mut again = queue.consume().await.unwrap();
    let back = gather(&mut again, 2).await;
    assert_eq!(ids(&back), hashes(&labels[3..]), "the multiple ack covered the first three only");
    assert!(back.iter().all(|d| d.redelivered));
    again.ack(&tags(&back)).await.unwrap();
    assert_idle(&mut again).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acking_deliveries_with_gaps_between_them_settles_exactly_those_and_the_others_come_back() {
    let Some(broker) = Broker::start("gapack").await else { return };
    let proxy = Proxy::start(&broker.address).await;
    let queue = RabbitMqQueue::connect(broker.settings_via(&proxy)).await.unwrap();
    let labels = ["g1", "g2", "g3", "g4", "g5"];
    for label in labels {
        queue.publish(&message(label)).await.unwrap();
    }
    let mut consumer = queue.consume().await.unwrap();
    let delivered = gather(&mut consumer, 5).await;
    assert_eq!(ids(&delivered), hashes(&labels));
    consumer.ack(&[delivered[0].tag, delivered[2].tag, delivered[4].tag]).await.unwrap();
    drop(consumer);
    let single = |delivery_tag| Ack { delivery_tag, multiple: false };
    assert_eq!(proxy.acks_of_closed_consumers().await, [single(1), single(3), single(5)]);
    let mut again = queue.consume().await.unwrap();
    let back = gather(&mut again, 2).await;
    assert_eq!(ids(&back), hashes(&["g2", "g4"]));
    assert!(back.iter().all(|d| d.redelivered));
    again.ack(&tags(&back)).await.unwrap();
    assert_idle(&mut again).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receipt_travels_in_its_header_and_a_delivery_without_one_reads_back_with_an_empty_receipt() {
    let Some(broker) = Broker::start("receipt").await else { return };
    let queue = broker.queue().await;
    let sent = QueuedMessage { receipt: "R: the node's receipt ✓".into(), ..message("with receipt") };
    queue.publish(&sent).await.unwrap();
    let got = broker.get("writer_queue").await.expect("the message is in writer_queue");
    assert_eq!(long_string(header(&got.properties, RECEIPT_HEADER)), sent.receipt);

    let channel = broker.channel().await;
    channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let mut headers = FieldTable::default();
    headers.insert(ACCEPTED_AT_HEADER.into(), AMQPValue::LongString("2023-11-14T22:13:20.000042Z".into()));
    let no_receipt = BasicProperties::default()
        .with_message_id(hash("without receipt").as_str().into())
        .with_delivery_mode(2)
        .with_headers(headers);
    let confirm = channel
        .basic_publish(
            &broker.name("writer_exchange"),
            ROUTING_KEY,
            BasicPublishOptions::default(),
            b"bare",
            no_receipt,
        )
        .await
        .unwrap();
    assert!(confirm.await.unwrap().is_ack());
    queue.publish(&sent).await.unwrap();

    let mut consumer = queue.consume().await.unwrap();
    let delivered = gather(&mut consumer, 2).await;
    let bare = QueuedMessage {
        message_id: hash("without receipt"),
        accepted_at: Micros(1_700_000_000_000_042),
        receipt: String::new(),
        payload: b"bare".to_vec(),
    };
    assert_eq!(delivered[0].message, bare);
    assert_eq!(delivered[1].message, sent);
    consumer.ack(&tags(&delivered)).await.unwrap();
}
