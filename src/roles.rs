//! The roles as separate processes (`pm teleferic|authorizer|reader|writer`)
//! over the configured backends, talking to each other through the internal
//! HTTP APIs of PROTOCOL.md section 10: gateway → authorizer and reader,
//! authorizer → reader, writer ← queue. Any number of each may run; all
//! authorizers share the node key file. On SIGTERM a role stops taking work,
//! finishes what is in flight, then exits.

use crate::settings::{IndexKind, QueueKind, Settings, StoreKind};
use anyhow::Context;
use pm_authorizer::{Authorizer, AuthorizerBackends, NodeIdentity};
use pm_models::keys::PersonaKey;
use pm_models::remote::{RemoteAuthorizer, RemoteReader};
use pm_models::seams::elasticsearch::{ElasticIndex, ElasticSettings};
use pm_models::seams::embedded::EmbeddedBackend;
use pm_models::seams::hbase::{HBaseSettings, HBaseStore};
use pm_models::seams::rabbitmq::{QueueKind as RabbitQueueKind, RabbitMqQueue, RabbitMqSettings};
use pm_models::seams::{
    Admission, ClaimStore, ClaimThenPublish, IndexThenStore, Queue, RecordStore, RecordWriter, SearchIndex,
};
use pm_reader::Reader;
use pm_teleferic::Gateway;
use pm_writer::Writer;
use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// The seams a process uses, connected as configured.
#[derive(Clone)]
pub struct Backends {
    pub store: Arc<dyn RecordStore>,
    pub claims: Arc<dyn ClaimStore>,
    pub index: Arc<dyn SearchIndex>,
    pub queue: Arc<dyn Queue>,
    pub admission: Arc<dyn Admission>,
    /// How the writer writes a delivery's records.
    pub records: Arc<dyn RecordWriter>,
    /// The embedded database, when any seam uses it.
    pub embedded: Option<EmbeddedBackend>,
    pub hbase: Option<HBaseStore>,
    pub elasticsearch: Option<ElasticIndex>,
}

/// Which seams a role needs; the others are not connected.
#[derive(Clone, Copy)]
pub struct Needs {
    pub index: bool,
    pub queue: bool,
}

impl Backends {
    pub async fn connect(settings: &Settings, needs: Needs) -> anyhow::Result<Self> {
        let b = &settings.backends;
        let uses_embedded = b.store == StoreKind::Embedded
            || (needs.index && b.index == IndexKind::Embedded)
            || (needs.queue && b.queue == QueueKind::Embedded);
        let embedded = if uses_embedded {
            std::fs::create_dir_all(&settings.data_dir)
                .with_context(|| format!("cannot create data directory {}", settings.data_dir.display()))?;
            let path = settings.database_path();
            Some(EmbeddedBackend::open(&path).map_err(|e| {
                anyhow::anyhow!("cannot open database {} (is another pm process using it?): {e}", path.display())
            })?)
        } else {
            None
        };
        let hbase = match b.store {
            StoreKind::Hbase => Some(
                HBaseStore::connect(HBaseSettings {
                    host: settings.hbase.host.clone(),
                    port: settings.hbase.port,
                    table_prefix: settings.hbase.table_prefix.clone(),
                    pool_size: settings.hbase.pool_size,
                    timeout: Duration::from_millis(settings.hbase.timeout_ms),
                })
                .await
                .context("cannot connect to HBase")?,
            ),
            StoreKind::Embedded => None,
        };
        let elasticsearch = match (needs.index, b.index) {
            (true, IndexKind::Elasticsearch) => Some(
                ElasticIndex::connect(ElasticSettings {
                    url: settings.elasticsearch.url.clone(),
                    index_prefix: settings.elasticsearch.index_prefix.clone(),
                    timeout: Duration::from_millis(settings.elasticsearch.timeout_ms),
                })
                .await
                .context("cannot connect to Elasticsearch")?,
            ),
            _ => None,
        };
        let rabbitmq = match (needs.queue, b.queue) {
            (true, QueueKind::Rabbitmq) => Some(
                RabbitMqQueue::connect(RabbitMqSettings {
                    url: settings.rabbitmq.url.clone(),
                    prefix: settings.rabbitmq.prefix.clone(),
                    queue_kind: match settings.rabbitmq.queue_type.as_str() {
                        "classic" => RabbitQueueKind::Classic,
                        _ => RabbitQueueKind::Quorum,
                    },
                    prefetch: settings.rabbitmq.prefetch,
                    publish_timeout: Duration::from_millis(settings.rabbitmq.publish_timeout_ms),
                    ..RabbitMqSettings::default()
                })
                .await
                .context("cannot connect to RabbitMQ")?,
            ),
            _ => None,
        };

        let embedded_arc = |e: &Option<EmbeddedBackend>| Arc::new(e.clone().expect("opened above when used"));
        let (store, claims): (Arc<dyn RecordStore>, Arc<dyn ClaimStore>) = match &hbase {
            Some(h) => (Arc::new(h.clone()), Arc::new(h.clone())),
            None => (embedded_arc(&embedded), embedded_arc(&embedded)),
        };
        let index: Arc<dyn SearchIndex> = match (&elasticsearch, needs.index, b.index) {
            (Some(e), _, _) => Arc::new(e.clone()),
            (None, true, IndexKind::Embedded) => embedded_arc(&embedded),
            _ => Arc::new(Unconnected),
        };
        let queue: Arc<dyn Queue> = match (rabbitmq, needs.queue, b.queue) {
            (Some(r), _, _) => Arc::new(r),
            (None, true, QueueKind::Embedded) => embedded_arc(&embedded),
            _ => Arc::new(Unconnected),
        };
        // One transaction for claims and queue when both live in the same file.
        let admission: Arc<dyn Admission> = match (&embedded, b.store, b.queue) {
            (Some(e), StoreKind::Embedded, QueueKind::Embedded) => Arc::new(e.clone()),
            _ => Arc::new(ClaimThenPublish { claims: claims.clone(), queue: queue.clone() }),
        };
        // One transaction for index and store when both live in the same file.
        let records: Arc<dyn RecordWriter> = match (&embedded, b.store, needs.index, b.index) {
            (Some(e), StoreKind::Embedded, true, IndexKind::Embedded) => Arc::new(e.clone()),
            _ => Arc::new(IndexThenStore { store: store.clone(), index: index.clone() }),
        };
        Ok(Self { store, claims, index, queue, admission, records, embedded, hbase, elasticsearch })
    }

    /// Creates tables and indices where the backend needs them (bootstrap).
    pub async fn create_schema(&self) -> anyhow::Result<()> {
        if let Some(hbase) = &self.hbase {
            hbase.create_tables().await.context("cannot create the HBase tables")?;
        }
        if let Some(es) = &self.elasticsearch {
            es.create_indices().await.context("cannot create the Elasticsearch indices")?;
        }
        Ok(())
    }
}

/// A seam a role was not configured to use; any call is a programming error
/// reported as unavailable rather than a panic.
struct Unconnected;

fn unconnected() -> pm_models::seams::BackendError {
    pm_models::seams::BackendError::Unavailable("this role does not use this backend".into())
}

#[async_trait::async_trait]
impl SearchIndex for Unconnected {
    async fn index_persona(&self, _: &pm_models::records::PersonaRecord) -> Result<(), pm_models::seams::BackendError> {
        Err(unconnected())
    }
    async fn index_message(&self, _: &pm_models::records::MessageRecord) -> Result<(), pm_models::seams::BackendError> {
        Err(unconnected())
    }
    async fn persona_by_nickname(&self, _: &str) -> Result<Option<String>, pm_models::seams::BackendError> {
        Err(unconnected())
    }
    async fn list_messages(
        &self,
        _: &pm_models::seams::MessageFilter,
        _: Option<&pm_models::seams::Cursor>,
        _: usize,
    ) -> Result<Vec<String>, pm_models::seams::BackendError> {
        Err(unconnected())
    }
    async fn ping(&self) -> Result<(), pm_models::seams::BackendError> {
        Err(unconnected())
    }
}

#[async_trait::async_trait]
impl Queue for Unconnected {
    async fn publish(&self, _: &pm_models::seams::QueuedMessage) -> Result<(), pm_models::seams::BackendError> {
        Err(unconnected())
    }
    async fn consume(&self) -> Result<Box<dyn pm_models::seams::Consumer>, pm_models::seams::BackendError> {
        Err(unconnected())
    }
    async fn ping(&self) -> Result<(), pm_models::seams::BackendError> {
        Err(unconnected())
    }
}

pub(crate) fn bind(settings: &Settings) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(settings.listen_addr()?)
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    Ok(listener)
}

fn announce(role: &str, listener: &std::net::TcpListener) -> anyhow::Result<()> {
    let address = listener.local_addr()?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{role} listening on http://{address}")?;
    stdout.flush()?;
    tracing::info!(role, %address, "listening");
    Ok(())
}

/// Runs `server` until it ends or a signal arrives; then stops it gracefully.
pub(crate) async fn run_until_signal(server: actix_web::dev::Server) -> anyhow::Result<()> {
    let handle = server.handle();
    let mut task = tokio::spawn(server);
    tokio::select! {
        result = &mut task => result.context("server task failed")?.context("server failed")?,
        signal = crate::serve::shutdown_signal() => {
            tracing::info!(signal, "shutting down");
            handle.stop(true).await;
            let _ = task.await;
        }
    }
    Ok(())
}

pub async fn authorizer(settings: Settings) -> anyhow::Result<()> {
    let backends = Backends::connect(&settings, Needs { index: false, queue: true }).await?;
    let node_key = PersonaKey::load(&settings.node_key_path())
        .context("the authorizer needs the node key (run `pm bootstrap` or set `node_key`)")?;
    let authorizer = Authorizer::new(
        NodeIdentity::new(node_key),
        settings.authorizer(),
        AuthorizerBackends { store: backends.store, claims: backends.claims, admission: backends.admission },
    );
    let reader = Arc::new(RemoteReader::new(&settings.roles.reader_url, settings.request_timeout()));
    let listener = bind(&settings)?;
    announce("authorizer", &listener)?;
    let server =
        pm_authorizer::http::serve(Arc::new(authorizer), reader, settings.gateway.max_request_bytes, listener)?;
    run_until_signal(server).await
}

pub async fn reader(settings: Settings) -> anyhow::Result<()> {
    let backends = Backends::connect(&settings, Needs { index: true, queue: false }).await?;
    let reader = Reader::new(backends.store, backends.index);
    let listener = bind(&settings)?;
    announce("reader", &listener)?;
    run_until_signal(pm_reader::http::serve(Arc::new(reader), listener)?).await
}

pub async fn teleferic(settings: Settings) -> anyhow::Result<()> {
    let timeout = settings.request_timeout();
    let authorizer = Arc::new(RemoteAuthorizer::new(&settings.roles.authorizer_url, timeout));
    let reader = Arc::new(RemoteReader::new(&settings.roles.reader_url, timeout));
    let listener = bind(&settings)?;
    announce("teleferic", &listener)?;
    run_until_signal(Gateway::new(authorizer, reader, settings.gateway()).run(listener)?).await
}

pub async fn writer(settings: Settings) -> anyhow::Result<()> {
    let backends = Backends::connect(&settings, Needs { index: true, queue: true }).await?;
    let writer =
        Writer::new(backends.store.clone(), backends.records.clone(), backends.queue.clone(), settings.writer());
    let listener = bind(&settings)?;
    announce("writer", &listener)?;
    let health = health_server(backends, listener)?;
    let health_handle = health.handle();
    let health_task = tokio::spawn(health);
    let signal = crate::serve::shutdown_signal();
    writer.run(log_signal(signal)).await;
    health_handle.stop(true).await;
    let _ = health_task.await;
    Ok(())
}

async fn log_signal(signal: impl Future<Output = &'static str>) {
    let name = signal.await;
    tracing::info!(signal = name, "shutting down: settling the delivery in flight");
}

/// `/healthz` and `/readyz` of the writer, which has no other HTTP API.
fn health_server(backends: Backends, listener: std::net::TcpListener) -> std::io::Result<actix_web::dev::Server> {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let state = web::Data::new(backends);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/healthz", web::get().to(|| async { HttpResponse::Ok().json(serde_json::json!({"status": "ok"})) }))
            .route(
                "/readyz",
                web::get().to(|b: web::Data<Backends>| async move {
                    let checks = [b.store.ping().await, b.index.ping().await, b.queue.ping().await];
                    match checks.iter().find_map(|c| c.as_ref().err()) {
                        None => HttpResponse::Ok().json(serde_json::json!({"status": "ready"})),
                        Some(error) => HttpResponse::ServiceUnavailable()
                            .json(serde_json::json!({"status": "unavailable", "error": error.to_string()})),
                    }
                }),
            )
    })
    .disable_signals()
    .listen(listener)?
    .run())
}
