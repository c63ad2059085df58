//! The end-to-end suite of `tests/api/` a second time, against the
//! distributed deployment: `pm reader`, two `pm authorizer`s, two
//! `pm writer`s and two `pm teleferic`s (each in front of its own
//! authorizer) on random ports, over real RabbitMQ, HBase and Elasticsearch.
//! Requests alternate between the gateways, so the concurrent-conflict
//! tests race across processes. The servers are reached as
//! `scripts/services.sh` starts them; under `PM_REQUIRE_SERVICES=1` an
//! unreachable server is a failure.
//!
//! `lifecycle` is left out: it is about one `pm serve` process and its file.

#[path = "common/mod.rs"]
mod common;

/// This binary runs the suite on the distributed deployment.
pub const DISTRIBUTED: bool = true;

#[path = "api/batch.rs"]
mod batch;
#[path = "api/conflicts.rs"]
mod conflicts;
#[path = "api/flow.rs"]
mod flow;
#[path = "api/live.rs"]
mod live;
#[path = "api/rejections.rs"]
mod rejections;

/// Every role process drains and exits cleanly on SIGTERM.
mod shutdown {
    use crate::common::{envelopes, spawn_node};
    use nix::sys::signal::Signal;
    use std::time::Duration;

    #[tokio::test]
    async fn every_role_exits_cleanly_on_sigterm_after_what_was_sent_is_stored() {
        let mut node = spawn_node().await;
        let t = node.timestamp().await;
        let envelope = envelopes::assertion(&node.genesis, &[node.genesis.public()], vec![], &t);
        node.send_ok(&envelope).await;
        node.wait_readable(&envelope.message_hash).await;
        let mut processes: Vec<_> = node.roles.drain(..).chain(node.gateways.drain(..)).collect();
        // Two authorizers, two writers, a reader and the second gateway; none
        // when the servers were unreachable and the test ran embedded.
        assert!(matches!(processes.len(), 0 | 6), "a whole deployment runs: {} processes", processes.len());
        for process in &mut processes {
            let status = process.stop_with(Signal::SIGTERM, Duration::from_secs(30));
            assert!(status.success(), "a role exits with success after SIGTERM: {status:?} ({})", process.base);
        }
        let status = node.server.stop_with(Signal::SIGTERM, Duration::from_secs(30));
        assert!(status.success(), "the gateway exits with success after SIGTERM: {status:?}");
    }
}
