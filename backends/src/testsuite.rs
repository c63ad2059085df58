//! For tests that run against real servers (feature `testsuite`): a test
//! that needs RabbitMQ, HBase or Elasticsearch asks [`require`] first. When the server cannot be reached
//! the test fails under `PM_REQUIRE_SERVICES=1` (what `scripts/test.sh`
//! sets) and is skipped, loudly, otherwise.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// True when `PM_REQUIRE_SERVICES=1`: unreachable servers are failures.
pub fn services_required() -> bool {
    std::env::var("PM_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Checks that `name` answers on `host:port`. Returns `false` (skip) only
/// when services are not required; panics when they are.
pub fn require(name: &str, address: &str) -> bool {
    let reachable = address
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok());
    if reachable {
        return true;
    }
    if services_required() {
        panic!(
            "{name} is not reachable at {address} and PM_REQUIRE_SERVICES=1 (start it with scripts/services.sh start)"
        );
    }
    eprintln!("SKIPPED: {name} is not reachable at {address}; set PM_REQUIRE_SERVICES=1 to make this a failure");
    false
}

/// The address of a test server: `PM_TEST_<NAME>` or the default.
pub fn address(variable: &str, default: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| default.to_owned())
}

/// A name no other test run uses, for tables, indices and queues.
pub fn unique_prefix(label: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("t{}_{label}_{:x}_", std::process::id(), nanos & 0xffff_ffff)
}
