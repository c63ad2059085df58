//! `pm serve`: every role in one process on the embedded backend. The
//! gateway answers on the configured address; the authorizer and reader run
//! in-process behind it; the writer consumes the embedded queue.
//!
//! Shutdown drains in order: the gateway stops taking requests and finishes
//! those in flight, then the writer settles its in-flight delivery.

use crate::roles::{Backends, Needs};
use crate::settings::Settings;
use anyhow::Context;
use pm_authorizer::{Authorizer, AuthorizerBackends, NodeIdentity};
use pm_models::content::NODE_NICKNAME;
use pm_models::keys::PersonaKey;
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
    pub backends: Backends,
    pub node_key: PersonaKey,
    pub node_key_created: bool,
}

impl NodeStorage {
    /// Connects the backends, creates tables and indices where needed, the
    /// node key (mode 0600) if missing, and makes sure the node persona is stored.
    pub async fn open(settings: &Settings) -> anyhow::Result<(Self, BootstrapOutcome)> {
        let backends = Backends::connect(settings, Needs { index: true, queue: true }).await?;
        backends.create_schema().await?;
        let key_path = settings.node_key_path();
        if let Some(dir) = key_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
        }
        let (node_key, node_key_created) = PersonaKey::load_or_create(&key_path)?;
        let storage = Self { backends, node_key, node_key_created };
        let outcome = storage.ensure_persona(storage.node_key.public(), NODE_NICKNAME).await?;
        Ok((storage, outcome))
    }

    pub async fn ensure_persona(&self, key: &PublicKeyPem, nickname: &str) -> anyhow::Result<BootstrapOutcome> {
        let b = &self.backends;
        Ok(ensure_persona(b.store.as_ref(), b.index.as_ref(), b.claims.as_ref(), key, nickname, Micros::now()).await?)
    }
}

/// Runs the node until SIGINT or SIGTERM.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let (node, _) = NodeStorage::open(&settings).await?;
    if node.node_key_created {
        tracing::info!(path = %settings.node_key_path().display(), "created node key");
    }
    let b = node.backends.clone();
    let authorizer = Authorizer::new(
        NodeIdentity::new(node.node_key.clone()),
        settings.authorizer(),
        AuthorizerBackends { store: b.store.clone(), claims: b.claims.clone(), admission: b.admission.clone() },
    );
    let reader = Reader::new(b.store.clone(), b.index.clone());
    let writer = Writer::new(b.store.clone(), b.records.clone(), b.queue.clone(), settings.writer());

    let listener = crate::roles::bind(&settings)?;
    let address = listener.local_addr()?;
    let server = Gateway::new(Arc::new(authorizer), Arc::new(reader), settings.gateway()).run(listener)?;

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
    crate::roles::run_until_signal(server).await?;
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
