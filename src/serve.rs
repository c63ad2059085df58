//! `pm serve`: every role in one process on the embedded backend. The
//! gateway answers on the configured address; the authorizer and reader run
//! in-process behind it; the writer consumes the embedded queue.
//!
//! Shutdown drains in order: the gateway stops taking requests and finishes
//! those in flight, then the writer settles its in-flight delivery.

use crate::settings::Settings;
use anyhow::Context;
use pm_authorizer::{Authorizer, AuthorizerBackends, NodeIdentity};
use pm_models::content::NODE_NICKNAME;
use pm_models::keys::PersonaKey;
use pm_models::seams::embedded::EmbeddedBackend;
use pm_models::seams::{Admission, ClaimStore, Queue, RecordStore, SearchIndex};
use pm_models::time::Micros;
use pm_reader::Reader;
use pm_teleferic::Gateway;
use pm_writer::bootstrap::{ensure_persona, BootstrapOutcome};
use pm_writer::Writer;
use std::io::Write;
use std::sync::Arc;

/// The embedded storage of a data directory, with the node key.
pub struct EmbeddedNode {
    pub backend: EmbeddedBackend,
    pub node_key: PersonaKey,
    pub node_key_created: bool,
}

impl EmbeddedNode {
    /// Creates the data directory and node key (mode 0600) if missing, opens
    /// the database and makes sure the node persona is stored.
    pub async fn open(settings: &Settings) -> anyhow::Result<(Self, BootstrapOutcome)> {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("cannot create data directory {}", settings.data_dir.display()))?;
        let (node_key, node_key_created) = PersonaKey::load_or_create(&settings.node_key_path())?;
        let path = settings.database_path();
        let backend = EmbeddedBackend::open(&path).map_err(|e| {
            anyhow::anyhow!(
                "cannot open database {} (is another `pm serve` or `pm bootstrap` using it?): {e}",
                path.display()
            )
        })?;
        let node = Self { backend, node_key, node_key_created };
        let outcome = node.ensure_persona(node.node_key.public(), NODE_NICKNAME).await?;
        Ok((node, outcome))
    }

    pub async fn ensure_persona(
        &self,
        key: &pm_models::PublicKeyPem,
        nickname: &str,
    ) -> anyhow::Result<BootstrapOutcome> {
        let b = &self.backend;
        Ok(ensure_persona(b, b, b, key, nickname, Micros::now()).await?)
    }
}

/// Runs the node until SIGINT or SIGTERM.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let (node, _) = EmbeddedNode::open(&settings).await?;
    if node.node_key_created {
        tracing::info!(path = %settings.node_key_path().display(), "created node key");
    }
    let backend = node.backend.clone();
    let store: Arc<dyn RecordStore> = Arc::new(backend.clone());
    let index: Arc<dyn SearchIndex> = Arc::new(backend.clone());
    let claims: Arc<dyn ClaimStore> = Arc::new(backend.clone());
    let admission: Arc<dyn Admission> = Arc::new(backend.clone());
    let queue: Arc<dyn Queue> = Arc::new(backend.clone());

    let authorizer = Authorizer::new(
        NodeIdentity::new(node.node_key.clone()),
        settings.authorizer(),
        AuthorizerBackends { store: store.clone(), claims, admission },
    );
    let reader = Reader::new(store.clone(), index.clone());
    let writer = Writer::new(store, index, queue, settings.writer());

    let listener = std::net::TcpListener::bind(settings.listen_addr()?)
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let address = listener.local_addr()?;
    let server = Gateway::new(Arc::new(authorizer), Arc::new(reader), settings.gateway()).run(listener)?;
    let server_handle = server.handle();

    let (stop_writer, writer_stopped) = tokio::sync::oneshot::channel::<()>();
    let writer_task = tokio::spawn(async move {
        writer
            .run(async {
                let _ = writer_stopped.await;
            })
            .await
    });
    let mut server_task = tokio::spawn(server);

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "Peer Mountain serving at http://{address}/teleferic")?;
    writeln!(stdout, "node address: {}", node.node_key.address())?;
    stdout.flush()?;
    drop(stdout);
    tracing::info!(%address, node = %node.node_key.address(), "serving");

    tokio::select! {
        result = &mut server_task => {
            result.context("gateway task failed")?.context("gateway failed")?;
        }
        signal = shutdown_signal() => {
            tracing::info!(signal, "shutting down");
            server_handle.stop(true).await;
            let _ = server_task.await;
        }
    }
    let _ = stop_writer.send(());
    writer_task.await.context("writer task failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM with the signal's name.
pub async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler can be installed");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}
