//! What the backends record (the `metrics` crate; the binary exports it at
//! `/metrics`): calls to a server by backend and call, failed calls by
//! backend and kind, connections lost and
//! opened again, every retry of the one [`crate::retry::RetryPolicy`], and
//! the index and store halves of a [`crate::IndexThenStore`] write (the
//! embedded backend writes both in one transaction, timed as the store).
//!
//! Labels are static names, so recording costs no allocation beyond the
//! label list; `what` of a retry is copied, on the slow path only.

use crate::BackendError;
use std::future::Future;
use std::time::Instant;

pub const CALLS: &str = "pm_backend_calls_total";
pub const ERRORS: &str = "pm_backend_errors_total";
pub const RECONNECTS: &str = "pm_backend_reconnects_total";
pub const RETRIES: &str = "pm_retries_total";
pub const INDEX_SECONDS: &str = "pm_writer_index_seconds";
pub const STORE_SECONDS: &str = "pm_writer_store_seconds";

/// The `backend` label of each backend.
pub const EMBEDDED: &str = "embedded";
pub const RABBITMQ: &str = "rabbitmq";
pub const HBASE: &str = "hbase";
pub const ELASTICSEARCH: &str = "elasticsearch";

/// Describes the backends' metrics.
pub fn register() {
    ::metrics::describe_counter!(
        CALLS,
        "Requests sent to a backend's server, each attempt counted, by backend and call (HBase: the Thrift call; Elasticsearch: the action)."
    );
    ::metrics::describe_counter!(
        ERRORS,
        "Failed calls to a backend, each attempt counted, by backend and kind of failure."
    );
    ::metrics::describe_counter!(
        RECONNECTS,
        "Connections to a backend lost or replaced and opened again (Elasticsearch: requests retried), by backend."
    );
    ::metrics::describe_counter!(RETRIES, "Retries after a transient failure, by what was retried.");
    ::metrics::describe_histogram!(
        INDEX_SECONDS,
        ::metrics::Unit::Seconds,
        "Time to index one batch of records where the index is its own server (Elasticsearch)."
    );
    ::metrics::describe_histogram!(
        STORE_SECONDS,
        ::metrics::Unit::Seconds,
        "Time to store one batch of records (embedded: the store and the index in one transaction)."
    );
}

/// Shows `backend`'s series at zero once this process uses it.
#[cfg_attr(
    not(any(feature = "embedded", feature = "rabbitmq", feature = "hbase", feature = "elasticsearch")),
    allow(dead_code)
)]
pub(crate) fn uses(backend: &'static str) {
    ::metrics::counter!(RECONNECTS, "backend" => backend).increment(0);
}

/// One request sent to `backend`'s server.
#[cfg_attr(not(any(feature = "hbase", feature = "elasticsearch")), allow(dead_code))]
pub(crate) fn call(backend: &'static str, call: &'static str) {
    ::metrics::counter!(CALLS, "backend" => backend, "call" => call).increment(1);
}

pub(crate) fn error(backend: &'static str, kind: &'static str) {
    ::metrics::counter!(ERRORS, "backend" => backend, "kind" => kind).increment(1);
}

#[cfg_attr(not(any(feature = "rabbitmq", feature = "hbase", feature = "elasticsearch")), allow(dead_code))]
pub(crate) fn reconnect(backend: &'static str) {
    ::metrics::counter!(RECONNECTS, "backend" => backend).increment(1);
}

/// A connection that was working is gone: an error, and a reconnect to come.
#[cfg_attr(not(feature = "rabbitmq"), allow(dead_code))]
pub(crate) fn connection_lost(backend: &'static str) {
    error(backend, "connection_lost");
    reconnect(backend);
}

/// A publish the broker refused or did not confirm.
#[cfg_attr(not(feature = "rabbitmq"), allow(dead_code))]
pub(crate) fn publish_failed(backend: &'static str, failure: &BackendError) {
    error(
        backend,
        match failure {
            BackendError::Unconfirmed(_) => "publish_unconfirmed",
            BackendError::Unavailable(_) | BackendError::Corrupt(_) => "publish_refused",
        },
    );
}

pub(crate) fn retry(what: &str) {
    ::metrics::counter!(RETRIES, "what" => what.to_owned()).increment(1);
}

/// Runs `work` and records how long it took in the histogram `name`.
pub(crate) async fn timed<T>(name: &'static str, work: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let outcome = work.await;
    ::metrics::histogram!(name).record(started.elapsed().as_secs_f64());
    outcome
}
