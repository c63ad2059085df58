//! The roles as separate processes (`pm teleferic|authorizer|reader|writer`)
//! over the configured backends, talking to each other through the internal
//! HTTP APIs of PROTOCOL.md section 10: gateway → authorizer and reader,
//! authorizer → reader, writer ← queue. Any number of each may run; all
//! authorizers share the node key file. Each role asks the backends'
//! resolver for the seams it needs and nothing else. On SIGTERM a role stops
//! taking work, finishes what is in flight, then exits.

use crate::settings::Settings;
use crate::shutdown;
use anyhow::Context;
use futures::stream::BoxStream;
use pm_authorizer::{Authorizer, AuthorizerBackends, NodeIdentity};
use pm_backends::settings::QueueBackend;
use pm_backends::Resolver;
use pm_backends::StoredEvents;
use pm_http::{RemoteAuthorizer, RemoteReader};
use pm_models::content::{nickname_key, NODE_NICKNAME};
use pm_models::keys::VerifyingKey;
use pm_models::PublicKeyPem;
use pm_models::{MessageHash, Rejection, RejectionCode};
use pm_reader::Reader;
use pm_teleferic::{Gateway, MessageFeed};
use pm_writer::Writer;
use std::io::Write;
use std::sync::Arc;

pub(crate) fn resolver(settings: &Settings) -> Resolver {
    Resolver::new(settings.backend_settings(), &settings.data_dir)
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

fn remote_reader(settings: &Settings) -> Arc<RemoteReader> {
    Arc::new(RemoteReader::new(&settings.roles.reader_url, settings.roles.request_timeout()))
}

pub async fn authorizer(settings: Settings) -> anyhow::Result<()> {
    let resolver = resolver(&settings);
    let backends = AuthorizerBackends {
        store: resolver.record_store().await?,
        index: resolver.search_index().await?,
        claims: resolver.claim_store().await?,
        admission: resolver.admission().await?,
    };
    let node_key = crate::key_file::load(&settings.node_key_path())
        .context("the authorizer needs the node key (run `pm bootstrap` or set `node_key`)")?;
    let authorizer = Authorizer::new(NodeIdentity::new(node_key), settings.authorizer, backends);
    let sweeping = sweep_pending_admissions(&settings, &resolver).await?;
    let listener = bind(&settings)?;
    announce("authorizer", &listener)?;
    let server =
        pm_authorizer::http::serve(Arc::new(authorizer), remote_reader(&settings), settings.gateway, listener)?;
    let served = shutdown::serve_until_signal(server).await;
    sweeping.stop().await;
    // After the sweeper, which may still publish: a clean AMQP goodbye.
    resolver.close().await;
    served
}

/// The sweeper of pending admissions, running until stopped.
pub(crate) struct Sweeping(Option<(tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>)>);

impl Sweeping {
    pub(crate) async fn stop(self) {
        if let Some((stop, task)) = self.0 {
            let _ = stop.send(());
            let _ = task.await;
        }
    }
}

/// Starts the sweeper where admissions leave pending records (claims and
/// queue in two stores; see `pm_backends::sweeper`).
pub(crate) async fn sweep_pending_admissions(settings: &Settings, resolver: &Resolver) -> anyhow::Result<Sweeping> {
    let a = &settings.authorizer;
    let Some(sweeper) = resolver.sweeper(a.pending_grace(), a.sweep_interval()).await? else {
        return Ok(Sweeping(None));
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        sweeper
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    Ok(Sweeping(Some((stop, task))))
}

pub async fn reader(settings: Settings) -> anyhow::Result<()> {
    let resolver = resolver(&settings);
    let reader = Reader::new(resolver.record_store().await?, resolver.search_index().await?);
    let listener = bind(&settings)?;
    announce("reader", &listener)?;
    shutdown::serve_until_signal(pm_reader::http::serve(Arc::new(reader), settings.gateway, listener)?).await
}

pub async fn teleferic(settings: Settings) -> anyhow::Result<()> {
    let authorizer = Arc::new(RemoteAuthorizer::new(&settings.roles.authorizer_url, settings.roles.request_timeout()));
    let mut gateway = Gateway::new(authorizer, remote_reader(&settings), settings.gateway());
    if settings.backends.queue == QueueBackend::Rabbitmq {
        // The writers' stored events on the broker; connected only when a
        // live subscriber comes, so the gateway starts without the broker.
        gateway = gateway.with_feed(Arc::new(StoredFeed(resolver(&settings).stored_events().await?)));
    } else {
        tracing::warn!("no broker configured (BROKER_URL or backends.queue): messageAdded answers UNAVAILABLE");
    }
    let listener = bind(&settings)?;
    announce("teleferic", &listener)?;
    shutdown::serve_until_signal(gateway.run(listener)?).await
}

/// The gateway's live feed: the stored events of the backends.
pub(crate) struct StoredFeed(pub(crate) Arc<dyn StoredEvents>);

#[async_trait::async_trait]
impl MessageFeed for StoredFeed {
    async fn subscribe(&self) -> Result<BoxStream<'static, Vec<MessageHash>>, Rejection> {
        self.0.subscribe().await.map_err(|error| {
            tracing::warn!(%error, "live subscription refused");
            Rejection::new(RejectionCode::Unavailable, "the live feed is unavailable; try again later")
        })
    }
}

/// The node's public key, which signs every acceptance receipt: from the
/// node key file where this process can read it, else from the node
/// persona `pm bootstrap` stored (nickname `Teleferic`).
async fn node_public_key(settings: &Settings, resolver: &Resolver) -> anyhow::Result<VerifyingKey> {
    if let Ok(key) = crate::key_file::load(&settings.node_key_path()) {
        return Ok(*key.public().verifying_key());
    }
    let index = resolver.search_index().await?;
    let address = index
        .persona_by_nickname(&nickname_key(NODE_NICKNAME))
        .await?
        .context("no node persona is stored: run `pm bootstrap` first")?;
    let persona = resolver
        .record_store()
        .await?
        .persona(&address)
        .await?
        .context("the node persona is indexed but not stored")?;
    let key = PublicKeyPem::parse_lenient(&persona.pubkey).context("the stored node persona has no valid key")?;
    Ok(*key.verifying_key())
}

pub async fn writer(settings: Settings) -> anyhow::Result<()> {
    let resolver = resolver(&settings);
    let node = node_public_key(&settings, &resolver).await?;
    let writer = Writer::new(
        resolver.record_store().await?,
        resolver.record_writer().await?,
        resolver.queue().await?,
        node,
        settings.writer,
    )
    .with_events(resolver.stored_events().await?);
    let listener = bind(&settings)?;
    announce("writer", &listener)?;
    let health = pm_writer::http::serve_health(writer.clone(), listener)?;
    let health_handle = health.handle();
    let health_task = tokio::spawn(health);
    writer
        .run(async {
            let signal = shutdown::signal().await;
            tracing::info!(signal, "shutting down: settling the deliveries in flight");
        })
        .await;
    health_handle.stop(true).await;
    let _ = health_task.await;
    // The queue's publisher (dead letters go through the consumer's link).
    resolver.close().await;
    Ok(())
}
