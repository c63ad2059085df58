//! Shutdown, owned by the binary (as mini-redis's `shutdown.rs`): the
//! signal that stops a process, and the drain that follows it. Libraries
//! only receive the notice, as a future or a server handle.

use anyhow::Context;

/// Resolves on SIGINT or SIGTERM with the signal's name.
pub async fn signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler can be installed");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

/// Runs `server` until it ends or a signal arrives; then stops it
/// gracefully, finishing the requests in flight.
pub async fn serve_until_signal(server: actix_web::dev::Server) -> anyhow::Result<()> {
    let handle = server.handle();
    let mut task = tokio::spawn(server);
    tokio::select! {
        result = &mut task => result.context("server task failed")?.context("server failed")?,
        signal = signal() => {
            tracing::info!(signal, "shutting down");
            handle.stop(true).await;
            let _ = task.await;
        }
    }
    Ok(())
}
