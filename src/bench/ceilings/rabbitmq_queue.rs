//! The raw RabbitMQ path: persistent publishes of message-sized payloads
//! with windowed confirms (many in flight on one channel), then consuming
//! them with multiple-acks, on a throwaway queue of the configured type
//! under a unique name, deleted afterwards.

use super::{record_payload, unique_suffix, CeilingError, PHASE_TIME_LIMIT};
use crate::bench::report::{PathRole, RawPath};
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::publisher_confirm::{Confirmation, PublisherConfirm};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use pm_backends::settings::RabbitMqSettings;
use secrecy::ExposeSecret;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Messages published at most.
const MESSAGES: usize = 20_000;
/// Publishes awaiting their confirm at most.
const CONFIRM_WINDOW: usize = 512;
/// Deliveries acknowledged at once (`multiple`), and the consumer's prefetch.
const ACK_EVERY: usize = 250;
const PREFETCH: u16 = 1_000;
/// The longest a connect, a declare or one delivery may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

fn failed(error: impl std::fmt::Display) -> CeilingError {
    CeilingError { backend: "rabbitmq", message: error.to_string() }
}

async fn step<T, E: std::fmt::Display>(
    what: &str,
    future: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, CeilingError> {
    match tokio::time::timeout(STEP_TIMEOUT, future).await {
        Ok(result) => result.map_err(|e| failed(format!("{what}: {e}"))),
        Err(_) => Err(failed(format!("{what}: no answer within {STEP_TIMEOUT:?}"))),
    }
}

pub async fn measure(settings: &RabbitMqSettings) -> Result<Vec<RawPath>, CeilingError> {
    let properties = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio)
        .with_connection_name("pm bench".into());
    let connection = step("connect", Connection::connect(settings.url.expose_secret(), properties)).await?;
    let channel = step("open a channel", connection.create_channel()).await?;
    let queue = format!("{}pm_bench_{}", settings.prefix, unique_suffix());
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), AMQPValue::LongString(settings.queue_type.as_str().into()));
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    step("declare the queue", channel.queue_declare(&queue, durable, arguments)).await?;

    let measured = publish_and_consume(&connection, &channel, &queue, settings.queue_type.as_str()).await;
    let deleted = step("delete the queue", channel.queue_delete(&queue, QueueDeleteOptions::default())).await;
    let _ = connection.close(200, "pm bench done").await;
    let paths = measured?;
    deleted?;
    Ok(paths)
}

async fn publish_and_consume(
    connection: &Connection,
    channel: &Channel,
    queue: &str,
    queue_type: &str,
) -> Result<Vec<RawPath>, CeilingError> {
    step("confirm mode", channel.confirm_select(ConfirmSelectOptions::default())).await?;
    let payload = record_payload();
    let properties = BasicProperties::default().with_delivery_mode(PERSISTENT);
    let mut window: VecDeque<PublisherConfirm> = VecDeque::with_capacity(CONFIRM_WINDOW);
    let started = Instant::now();
    let mut published = 0usize;
    while published < MESSAGES && started.elapsed() < PHASE_TIME_LIMIT {
        if window.len() >= CONFIRM_WINDOW {
            confirmed(window.pop_front().expect("the window is full")).await?;
        }
        let confirm = step(
            "publish",
            channel.basic_publish("", queue, BasicPublishOptions::default(), &payload, properties.clone()),
        )
        .await?;
        window.push_back(confirm);
        published += 1;
    }
    while let Some(confirm) = window.pop_front() {
        confirmed(confirm).await?;
    }
    let publish_elapsed = started.elapsed();

    let consumer_channel = step("open a consumer channel", connection.create_channel()).await?;
    step("set the prefetch", consumer_channel.basic_qos(PREFETCH, BasicQosOptions::default())).await?;
    let mut deliveries = step(
        "consume",
        consumer_channel.basic_consume(queue, "pm-bench", BasicConsumeOptions::default(), FieldTable::default()),
    )
    .await?;
    let started = Instant::now();
    let mut consumed = 0usize;
    let mut unacked = 0usize;
    while consumed < published {
        let delivery = match tokio::time::timeout(STEP_TIMEOUT, deliveries.next()).await {
            Ok(Some(delivery)) => delivery.map_err(|e| failed(format!("consume: {e}")))?,
            Ok(None) => return Err(failed("the consumer stopped early")),
            Err(_) => return Err(failed(format!("no delivery within {STEP_TIMEOUT:?}"))),
        };
        consumed += 1;
        unacked += 1;
        if unacked >= ACK_EVERY || consumed == published {
            let multiple = BasicAckOptions { multiple: true };
            step("ack", consumer_channel.basic_ack(delivery.delivery_tag, multiple)).await?;
            unacked = 0;
        }
    }
    let consume_elapsed = started.elapsed();
    let _ = consumer_channel.close(200, "pm bench done").await;

    let path = |name: String, records: usize, elapsed: Duration| {
        RawPath::throughput(&name, PathRole::Write, records as u64, elapsed)
    };
    Ok(vec![
        path(format!("{queue_type} publish, {CONFIRM_WINDOW} confirms in flight"), published, publish_elapsed),
        path(format!("{queue_type} consume, ack multiple of {ACK_EVERY}"), consumed, consume_elapsed),
    ])
}

async fn confirmed(confirm: PublisherConfirm) -> Result<(), CeilingError> {
    match step("publisher confirm", confirm).await? {
        Confirmation::Ack(_) => Ok(()),
        Confirmation::Nack(_) => Err(failed("the broker refused a publish (nack)")),
        Confirmation::NotRequested => Err(failed("the channel is not in confirm mode")),
    }
}
