//! Settings of the backends: which backend serves each seam, and how to
//! reach each server. Every section owns its defaults here, once: the
//! `Default` impls are what an absent setting takes (`#[serde(default)]`).
//!
//! In the configuration file these are top-level sections: `[backends]`,
//! `[rabbitmq]`, `[hbase]` and `[elasticsearch]`.

use crate::retry::RetryPolicy;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// Everything the [`crate::Resolver`] needs besides the data directory.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct BackendSettings {
    pub backends: BackendChoice,
    pub rabbitmq: RabbitMqSettings,
    pub hbase: HBaseSettings,
    pub elasticsearch: ElasticSettings,
}

/// Which backend serves each seam: the embedded database by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackendChoice {
    pub store: StoreBackend,
    pub index: IndexBackend,
    pub queue: QueueBackend,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    #[default]
    Embedded,
    Hbase,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexBackend {
    #[default]
    Embedded,
    Elasticsearch,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueBackend {
    #[default]
    Embedded,
    Rabbitmq,
}

/// The type of `writer_queue` and `writer_dead`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueKind {
    /// Replicated (Raft) queue; the default.
    #[default]
    Quorum,
    /// A single-node queue, for brokers without quorum queues.
    Classic,
}

impl QueueKind {
    /// The value of the `x-queue-type` argument.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quorum => "quorum",
            Self::Classic => "classic",
        }
    }
}

/// Where the broker is and how the RabbitMQ backend talks to it.
#[derive(Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RabbitMqSettings {
    /// AMQP URI with the credentials inside; the vhost is URL-encoded
    /// (`%2f` is `/`). Add `?heartbeat=10` to notice a vanished broker sooner.
    /// Never printed: see [`Self::redacted_url`].
    #[serde(serialize_with = "serialize_redacted_url")]
    pub url: SecretString,
    /// Prepended to every exchange and queue name; empty in production.
    pub prefix: String,
    pub queue_type: QueueKind,
    /// Unacknowledged deliveries a consumer holds at most. The writer's
    /// batches each wait for an Elasticsearch refresh (1 s by default), so
    /// what it can store in a second is about what it may hold at once:
    /// this, and `writer.concurrency` × `writer.batch_size`.
    pub prefetch: u16,
    /// A quorum queue dead-letters a message handed out this many times
    /// without being settled (`x-delivery-limit`): a poison message never
    /// loops forever, even one that makes writers crash. 0: no limit (the
    /// queue's arguments before this setting existed).
    pub delivery_limit: u32,
    /// The longest a publish (and any single connect attempt) may take.
    pub publish_timeout_ms: u64,
    /// First wait after a failed connect; doubles up to `reconnect_max_ms`.
    pub reconnect_initial_ms: u64,
    pub reconnect_max_ms: u64,
}

impl Default for RabbitMqSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("amqp://guest:guest@127.0.0.1:5672/%2f"),
            prefix: String::new(),
            queue_type: QueueKind::Quorum,
            prefetch: 4096,
            delivery_limit: 20,
            publish_timeout_ms: 5_000,
            reconnect_initial_ms: 100,
            reconnect_max_ms: 5_000,
        }
    }
}

impl RabbitMqSettings {
    /// The defaults with another broker URL.
    pub fn with_url(url: impl Into<String>) -> Self {
        Self { url: SecretString::from(url.into()), ..Self::default() }
    }

    pub fn publish_timeout(&self) -> Duration {
        Duration::from_millis(self.publish_timeout_ms)
    }

    /// Waits between connect attempts; never gives up.
    pub fn reconnect_policy(&self) -> RetryPolicy {
        let initial = Duration::from_millis(self.reconnect_initial_ms);
        RetryPolicy::doubling(None, initial, Duration::from_millis(self.reconnect_max_ms).max(initial))
    }

    /// The URL with its password masked, fit for logs.
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.expose_secret())
    }
}

/// Settings are written out (e.g. by `pm config`) with the password masked.
fn serialize_redacted_url<S: Serializer>(url: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&redact_url(url.expose_secret()))
}

/// `scheme://user:***@host/...`: the URL with any password masked.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "<unparsable url>".to_owned() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

// By hand, so that the password inside `url` never reaches a log.
impl fmt::Debug for RabbitMqSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitMqSettings")
            .field("url", &self.redacted_url())
            .field("prefix", &self.prefix)
            .field("queue_type", &self.queue_type)
            .field("prefetch", &self.prefetch)
            .field("delivery_limit", &self.delivery_limit)
            .field("publish_timeout_ms", &self.publish_timeout_ms)
            .field("reconnect_initial_ms", &self.reconnect_initial_ms)
            .field("reconnect_max_ms", &self.reconnect_max_ms)
            .finish()
    }
}

/// Where the HBase Thrift v1 gateway is and how the tables are named.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HBaseSettings {
    pub host: String,
    pub port: u16,
    /// Prepended to `persona`, `message` and `claim`; empty in production.
    pub table_prefix: String,
    /// Most connections open at once (and calls in flight).
    pub pool_size: u32,
    /// Connect, read and write timeout of every call.
    pub timeout_ms: u64,
}

impl Default for HBaseSettings {
    fn default() -> Self {
        Self { host: "127.0.0.1".to_owned(), port: 9090, table_prefix: String::new(), pool_size: 8, timeout_ms: 5_000 }
    }
}

impl HBaseSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// Where the Elasticsearch index lives.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ElasticSettings {
    pub url: String,
    /// Prepended to `persona` and `message`; empty in production, unique per
    /// test run. Lower-cased, as ES index names must be.
    pub index_prefix: String,
    /// Per request, from connecting until the whole response is read.
    pub timeout_ms: u64,
}

impl Default for ElasticSettings {
    fn default() -> Self {
        Self { url: "http://127.0.0.1:9200".to_owned(), index_prefix: String::new(), timeout_ms: 10_000 }
    }
}

impl ElasticSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_never_print_the_broker_password() {
        let settings = RabbitMqSettings::with_url("amqp://user:s3cret@broker:5672/%2f");
        let printed =
            format!("{settings:?} {:?}", BackendSettings { rabbitmq: settings.clone(), ..Default::default() });
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("user:***@broker:5672/%2f"), "{printed}");
    }

    #[test]
    fn a_url_without_a_password_is_shown_as_it_is() {
        assert_eq!(redact_url("amqp://broker:5672/%2f"), "amqp://broker:5672/%2f");
        assert_eq!(redact_url("amqp://guest@broker"), "amqp://guest@broker");
        assert_eq!(redact_url("amqp://a:b@c@broker/x"), "amqp://a:***@broker/x");
        assert_eq!(redact_url("nonsense"), "<unparsable url>");
    }
}
