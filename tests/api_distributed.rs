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

#[path = "api/conflicts.rs"]
mod conflicts;
#[path = "api/flow.rs"]
mod flow;
#[path = "api/rejections.rs"]
mod rejections;
