//! `pm serve`: every role in one process on the configured backends (the
//! embedded file by default). The gateway answers on the configured
//! address; the authorizer and reader run in-process behind it; the writer
//! consumes the queue. On the embedded file alone, admissions store their
//! records themselves and the writer only drains what an earlier version
//! left queued.
//!
//! Shutdown drains in order: the gateway stops taking requests and finishes
//! those in flight, then the writer settles its in-flight deliveries.

use crate::settings::Settings;
use crate::shutdown;
use anyhow::Context;
use pm_authorizer::{Authorizer, AuthorizerBackends, NodeIdentity};
use pm_backends::Resolver;
use pm_models::content::NODE_NICKNAME;
use pm_models::keys::PersonaKey;
use pm_models::receipt::IssuedReceipts;
use pm_models::time::Micros;
use pm_models::PublicKeyPem;
use pm_reader::Reader;
use pm_teleferic::Gateway;
use pm_writer::bootstrap::{ensure_persona, BootstrapOutcome};
use pm_writer::Writer;
use std::io::Write;
use std::sync::Arc;

/// The storage a node runs on, with its node key.
pub struct NodeStorage {
    pub resolver: Resolver,
    pub node_key: PersonaKey,
    pub node_key_created: bool,
}

impl NodeStorage {
    /// Connects the backends, creates tables and indices where needed, the
    /// node key (mode 0600) if missing, and makes sure the node persona is stored.
    pub async fn open(settings: &Settings) -> anyhow::Result<(Self, BootstrapOutcome)> {
        let resolver = crate::roles::resolver(settings);
        resolver.create_schema().await?;
        let key_path = settings.node_key_path();
        if let Some(dir) = key_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
        }
        let (node_key, node_key_created) = crate::key_file::load_or_create(&key_path)?;
        let storage = Self { resolver, node_key, node_key_created };
        let outcome = storage.ensure_persona(storage.node_key.public(), NODE_NICKNAME).await?;
        Ok((storage, outcome))
    }

    pub async fn ensure_persona(&self, key: &PublicKeyPem, nickname: &str) -> anyhow::Result<BootstrapOutcome> {
        let r = &self.resolver;
        let (store, index, claims) = (r.record_store().await?, r.search_index().await?, r.claim_store().await?);
        Ok(ensure_persona(store.as_ref(), index.as_ref(), claims.as_ref(), key, nickname, Micros::now()).await?)
    }
}

/// Runs the node until SIGINT or SIGTERM.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let (node, _) = NodeStorage::open(&settings).await?;
    if node.node_key_created {
        tracing::info!(path = %settings.node_key_path().display(), "created node key");
    }
    let r = &node.resolver;
    let (store, index) = (r.record_store().await?, r.search_index().await?);
    let backends = AuthorizerBackends {
        store: store.clone(),
        index: index.clone(),
        claims: r.claim_store().await?,
        admission: r.admission().await?,
    };
    // Where admissions queue, the writer takes the receipts this authorizer
    // issued without checking their signatures (where they store, it takes none).
    let issued = Arc::new(IssuedReceipts::default());
    let identity = match backends.admission.stores_records() {
        true => NodeIdentity::new(node.node_key.clone()),
        false => NodeIdentity::new(node.node_key.clone()).remembering_receipts(issued.clone()),
    };
    let authorizer = Authorizer::new(identity, settings.authorizer, backends);
    let sweeping = crate::roles::sweep_pending_admissions(&settings, r).await?;
    let reader = Reader::new(store.clone(), index);
    let node_public = *node.node_key.public().verifying_key();
    // The writer tells the gateway's live subscribers what it stored.
    let events = r.stored_events().await?;
    let writer = Writer::new(store, r.record_writer().await?, r.queue().await?, node_public, settings.writer)
        .with_events(events.clone())
        .with_issued_receipts(issued);

    let listener = crate::roles::bind(&settings)?;
    let address = listener.local_addr()?;
    let gateway = Gateway::new(Arc::new(authorizer), Arc::new(reader), settings.gateway())
        .with_feed(Arc::new(crate::roles::StoredFeed(events)));
    let server = gateway.run(listener)?;

    let (stop_writer, writer_stopped) = tokio::sync::oneshot::channel::<()>();
    let writer_task = tokio::spawn(async move {
        writer
            .run(async {
                let _ = writer_stopped.await;
            })
            .await
    });

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "Peer Mountain serving at http://{address}/teleferic")?;
    writeln!(stdout, "node address: {}", node.node_key.address())?;
    stdout.flush()?;
    drop(stdout);
    tracing::info!(%address, node = %node.node_key.address(), "serving");

    // The gateway drains first, then the writer settles what is in flight.
    shutdown::serve_until_signal(server).await?;
    sweeping.stop().await;
    let _ = stop_writer.send(());
    writer_task.await.context("writer task failed")?;
    // A queue on RabbitMQ gets a clean AMQP goodbye (nothing to do embedded).
    node.resolver.close().await;
    tracing::info!("stopped");
    Ok(())
}
