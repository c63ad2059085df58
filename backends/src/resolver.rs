//! The resolver: turns [`BackendSettings`] into the seams a role asks for,
//! the way quickwit's `StorageResolver` builds storages from configs. Each
//! backend is connected once, on first use, and shared by every seam it
//! serves; a backend this build leaves out (a cargo feature turned off) is a
//! clear error, never a stand-in object.
//!
//! A server that cannot be reached yet (the usual case when a whole stack
//! starts at once) is tried again with backoff for about a minute
//! ([`CONNECT_RETRY`]) before the role gives up.
//!
//! Where two seams live in the same embedded file, the combined seams use one
//! transaction: [`Resolver::admission`] (claims + queue) and
//! [`Resolver::record_writer`] (index + store).
//!
//! [`Resolver::stored_events`] follows the queue backend: with the embedded
//! queue, a channel inside this process (the writer and the gateway of
//! `pm serve` share this resolver, hence the channel); with RabbitMQ, its
//! fanout exchange, which connects lazily and never stops a role from starting.

use crate::events::LocalEvents;
use crate::retry::RetryPolicy;
use crate::seams::{
    Admission, ClaimStore, IndexThenStore, OutboxAdmission, Queue, RecordStore, RecordWriter, SearchIndex, StoredEvents,
};
use crate::settings::{BackendSettings, IndexBackend, QueueBackend, StoreBackend};
use crate::sweeper::Sweeper;
use crate::BackendError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why a seam could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("the {0} backend is not part of this build (cargo feature `{0}`)")]
    NotCompiled(&'static str),
    #[error("cannot open the embedded database {path} (is another pm process using it?): {source}")]
    Embedded { path: String, source: BackendError },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("cannot connect to {backend}: {source}")]
    Connect { backend: &'static str, source: BackendError },
    #[error("cannot create the {what}: {source}")]
    Schema { what: &'static str, source: BackendError },
}

/// How long connecting to a server is retried at start: 12 attempts, the
/// waits doubling from 250 ms to 8 s (about a minute in all).
pub const CONNECT_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: Some(12),
    initial_delay: Duration::from_millis(250),
    max_delay: Duration::from_secs(8),
    multiplier: 2,
};

/// Returns the seam `$get` resolves to when the backend's feature is
/// compiled in, and `NotCompiled` otherwise.
macro_rules! resolved {
    ($feature:literal, $get:expr) => {{
        #[cfg(feature = $feature)]
        {
            // `Ok(..?)` coerces a concrete backend into the seam's trait object.
            #[allow(clippy::needless_question_mark)]
            return Ok($get.await?);
        }
        #[cfg(not(feature = $feature))]
        {
            return Err(ResolveError::NotCompiled($feature));
        }
    }};
}

/// Builds the configured seams; cheap to share behind an `Arc`.
pub struct Resolver {
    settings: BackendSettings,
    data_dir: PathBuf,
    /// Stored events within this process (embedded queue).
    local_events: LocalEvents,
    #[cfg(feature = "rabbitmq")]
    rabbitmq_events: std::sync::OnceLock<crate::rabbitmq::events::RabbitMqEvents>,
    #[cfg(feature = "embedded")]
    embedded: tokio::sync::OnceCell<crate::embedded::EmbeddedBackend>,
    #[cfg(feature = "hbase")]
    hbase: tokio::sync::OnceCell<crate::hbase::HBaseStore>,
    #[cfg(feature = "elasticsearch")]
    elasticsearch: tokio::sync::OnceCell<crate::elasticsearch::ElasticIndex>,
    #[cfg(feature = "rabbitmq")]
    rabbitmq: tokio::sync::OnceCell<crate::rabbitmq::RabbitMqQueue>,
}

impl Resolver {
    /// `data_dir` holds the embedded database file (`ledger.redb`).
    pub fn new(settings: BackendSettings, data_dir: &Path) -> Self {
        crate::metrics::register();
        Self {
            settings,
            data_dir: data_dir.to_owned(),
            local_events: LocalEvents::new(),
            #[cfg(feature = "rabbitmq")]
            rabbitmq_events: std::sync::OnceLock::new(),
            #[cfg(feature = "embedded")]
            embedded: tokio::sync::OnceCell::new(),
            #[cfg(feature = "hbase")]
            hbase: tokio::sync::OnceCell::new(),
            #[cfg(feature = "elasticsearch")]
            elasticsearch: tokio::sync::OnceCell::new(),
            #[cfg(feature = "rabbitmq")]
            rabbitmq: tokio::sync::OnceCell::new(),
        }
    }

    pub fn settings(&self) -> &BackendSettings {
        &self.settings
    }

    /// The embedded database file under the data directory.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("ledger.redb")
    }

    pub async fn record_store(&self) -> Result<Arc<dyn RecordStore>, ResolveError> {
        match self.settings.backends.store {
            StoreBackend::Embedded => resolved!("embedded", self.embedded()),
            StoreBackend::Hbase => resolved!("hbase", self.hbase()),
        }
    }

    pub async fn claim_store(&self) -> Result<Arc<dyn ClaimStore>, ResolveError> {
        match self.settings.backends.store {
            StoreBackend::Embedded => resolved!("embedded", self.embedded()),
            StoreBackend::Hbase => resolved!("hbase", self.hbase()),
        }
    }

    pub async fn search_index(&self) -> Result<Arc<dyn SearchIndex>, ResolveError> {
        match self.settings.backends.index {
            IndexBackend::Embedded => resolved!("embedded", self.embedded()),
            IndexBackend::Elasticsearch => resolved!("elasticsearch", self.elasticsearch()),
        }
    }

    pub async fn queue(&self) -> Result<Arc<dyn Queue>, ResolveError> {
        match self.settings.backends.queue {
            QueueBackend::Embedded => resolved!("embedded", self.embedded()),
            QueueBackend::Rabbitmq => resolved!("rabbitmq", self.rabbitmq()),
        }
    }

    /// Notices that messages became readable (see the module's note).
    pub async fn stored_events(&self) -> Result<Arc<dyn StoredEvents>, ResolveError> {
        match self.settings.backends.queue {
            QueueBackend::Embedded => Ok(Arc::new(self.local_events.clone())),
            QueueBackend::Rabbitmq => resolved!("rabbitmq", self.rabbitmq_events()),
        }
    }

    #[cfg(feature = "rabbitmq")]
    async fn rabbitmq_events(&self) -> Result<Arc<crate::rabbitmq::events::RabbitMqEvents>, ResolveError> {
        if let Some(events) = self.rabbitmq_events.get() {
            return Ok(Arc::new(events.clone()));
        }
        let events = crate::rabbitmq::events::RabbitMqEvents::new(self.settings.rabbitmq.clone())
            .map_err(|source| ResolveError::Connect { backend: "RabbitMQ", source })?;
        Ok(Arc::new(self.rabbitmq_events.get_or_init(|| events).clone()))
    }

    /// Claims and queue as one step: one transaction when both live in the
    /// embedded file, else claim, publish, and release on failure.
    pub async fn admission(&self) -> Result<Arc<dyn Admission>, ResolveError> {
        let b = self.settings.backends;
        if b.store == StoreBackend::Embedded && b.queue == QueueBackend::Embedded {
            resolved!("embedded", self.embedded());
        }
        Ok(Arc::new(OutboxAdmission { claims: self.claim_store().await?, queue: self.queue().await? }))
    }

    /// The sweeper of pending admissions, where admissions have them (claims
    /// and queue in two stores); `None` where one transaction admits.
    pub async fn sweeper(&self, grace: Duration, interval: Duration) -> Result<Option<Sweeper>, ResolveError> {
        let b = self.settings.backends;
        if b.store == StoreBackend::Embedded && b.queue == QueueBackend::Embedded {
            return Ok(None);
        }
        Ok(Some(Sweeper {
            claims: self.claim_store().await?,
            queue: self.queue().await?,
            store: self.record_store().await?,
            grace,
            interval,
        }))
    }

    /// A delivery's records: one transaction when index and store live in
    /// the embedded file, else index, then store.
    pub async fn record_writer(&self) -> Result<Arc<dyn RecordWriter>, ResolveError> {
        let b = self.settings.backends;
        if b.store == StoreBackend::Embedded && b.index == IndexBackend::Embedded {
            resolved!("embedded", self.embedded());
        }
        Ok(Arc::new(IndexThenStore { store: self.record_store().await?, index: self.search_index().await? }))
    }

    /// Creates the tables and indices of the configured servers where
    /// missing (the embedded file creates its tables when opened).
    pub async fn create_schema(&self) -> Result<(), ResolveError> {
        if self.settings.backends.store == StoreBackend::Hbase {
            let hbase: Result<(), ResolveError> = async { resolved!("hbase", self.create_hbase_tables()) }.await;
            hbase?;
        }
        if self.settings.backends.index == IndexBackend::Elasticsearch {
            let es: Result<(), ResolveError> = async { resolved!("elasticsearch", self.create_es_indices()) }.await;
            es?;
        }
        Ok(())
    }

    /// Closes the connections this resolver opened that need a goodbye
    /// (the RabbitMQ publisher's), so a process ends without its client
    /// reporting a dropped connection. HBase's and Elasticsearch's clients
    /// keep no session: dropping them is enough. Failures are logged.
    pub async fn close(&self) {
        #[cfg(feature = "rabbitmq")]
        if let Some(queue) = self.rabbitmq.get() {
            if let Err(error) = queue.close().await {
                tracing::warn!(%error, "rabbitmq connection not closed cleanly");
            }
        }
        #[cfg(feature = "rabbitmq")]
        if let Some(events) = self.rabbitmq_events.get() {
            events.close().await;
        }
    }

    #[cfg(feature = "hbase")]
    async fn create_hbase_tables(&self) -> Result<(), ResolveError> {
        let store = self.hbase().await?;
        store.create_tables().await.map_err(|source| ResolveError::Schema { what: "HBase tables", source })
    }

    #[cfg(feature = "elasticsearch")]
    async fn create_es_indices(&self) -> Result<(), ResolveError> {
        let index = self.elasticsearch().await?;
        index.create_indices().await.map_err(|source| ResolveError::Schema { what: "Elasticsearch indices", source })
    }

    #[cfg(feature = "embedded")]
    async fn embedded(&self) -> Result<Arc<crate::embedded::EmbeddedBackend>, ResolveError> {
        crate::metrics::uses(crate::metrics::EMBEDDED);
        let backend = self
            .embedded
            .get_or_try_init(|| async {
                std::fs::create_dir_all(&self.data_dir)
                    .map_err(|source| ResolveError::DataDir { path: self.data_dir.display().to_string(), source })?;
                let path = self.database_path();
                // A node on this file alone stores each admission's records in its transaction.
                let b = self.settings.backends;
                let all_here = b.store == StoreBackend::Embedded
                    && b.index == IndexBackend::Embedded
                    && b.queue == QueueBackend::Embedded;
                crate::embedded::EmbeddedBackend::open_with(&path, all_here.then(|| self.local_events.clone()))
                    .map_err(|source| ResolveError::Embedded { path: path.display().to_string(), source })
            })
            .await?;
        Ok(Arc::new(backend.clone()))
    }

    #[cfg(feature = "hbase")]
    async fn hbase(&self) -> Result<Arc<crate::hbase::HBaseStore>, ResolveError> {
        crate::metrics::uses(crate::metrics::HBASE);
        let store = self
            .hbase
            .get_or_try_init(|| async {
                CONNECT_RETRY
                    .retry("connect to hbase", || crate::hbase::HBaseStore::connect(self.settings.hbase.clone()))
                    .await
                    .map_err(|source| ResolveError::Connect { backend: "HBase", source })
            })
            .await?;
        Ok(Arc::new(store.clone()))
    }

    #[cfg(feature = "elasticsearch")]
    async fn elasticsearch(&self) -> Result<Arc<crate::elasticsearch::ElasticIndex>, ResolveError> {
        crate::metrics::uses(crate::metrics::ELASTICSEARCH);
        let index = self
            .elasticsearch
            .get_or_try_init(|| async {
                CONNECT_RETRY
                    .retry("connect to elasticsearch", || {
                        crate::elasticsearch::ElasticIndex::connect(self.settings.elasticsearch.clone())
                    })
                    .await
                    .map_err(|source| ResolveError::Connect { backend: "Elasticsearch", source })
            })
            .await?;
        Ok(Arc::new(index.clone()))
    }

    #[cfg(feature = "rabbitmq")]
    async fn rabbitmq(&self) -> Result<Arc<crate::rabbitmq::RabbitMqQueue>, ResolveError> {
        crate::metrics::uses(crate::metrics::RABBITMQ);
        let queue = self
            .rabbitmq
            .get_or_try_init(|| async {
                CONNECT_RETRY
                    .retry("connect to rabbitmq", || {
                        crate::rabbitmq::RabbitMqQueue::connect(self.settings.rabbitmq.clone())
                    })
                    .await
                    .map_err(|source| ResolveError::Connect { backend: "RabbitMQ", source })
            })
            .await?;
        Ok(Arc::new(queue.clone()))
    }
}
