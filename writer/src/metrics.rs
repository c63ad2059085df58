//! What the writer records (the `metrics` crate; the binary exports it at
//! `/metrics`): the size of each batch it takes from the queue, what became
//! of each delivery, how long a whole batch took to write, how far behind
//! acceptance the writes are, how many deliveries it holds unsettled, and
//! the depth of the queue, sampled.
//!
//! The store and index halves of a write are recorded by the backends
//! (`pm_backends::metrics`), where the two are told apart.

use metrics::Unit;
use pm_backends::QueueDepth;
use pm_models::time::Micros;
use std::time::Duration;

pub const BATCH_SIZE: &str = "pm_writer_batch_size";
pub const DELIVERIES: &str = "pm_writer_deliveries_total";
pub const WRITE_SECONDS: &str = "pm_writer_write_seconds";
pub const LAG_SECONDS: &str = "pm_writer_lag_seconds";
pub const QUEUE_DEPTH: &str = "pm_queue_depth";
pub const UNSETTLED: &str = "pm_writer_unsettled";

/// The `outcome` label of [`DELIVERIES`].
pub const WRITTEN: &str = "written";
pub const DEAD_LETTERED: &str = "dead_lettered";

/// Each metric's name, kind, unit and help text.
const DESCRIPTIONS: [(&str, Kind, Unit, &str); 6] = [
    (BATCH_SIZE, Kind::Histogram, Unit::Count, "Deliveries taken from the queue in one batch."),
    (
        DELIVERIES,
        Kind::Counter,
        Unit::Count,
        "Deliveries settled, by outcome: written or dead_lettered (a failed write is retried in place, never requeued).",
    ),
    (WRITE_SECONDS, Kind::Histogram, Unit::Seconds, "Time to write one batch to the store and the index, retries included."),
    (LAG_SECONDS, Kind::Histogram, Unit::Seconds, "Consumer lag: time from an envelope's acceptance to its durable write."),
    (
        QUEUE_DEPTH,
        Kind::Gauge,
        Unit::Count,
        "Messages in the writer's queue (queue=\"writer\") and its dead-letter queue (queue=\"dead\"), sampled by the writer.",
    ),
    (
        UNSETTLED,
        Kind::Gauge,
        Unit::Count,
        "Deliveries this writer took from the queue and has not settled yet (the queue's depth counts only those waiting).",
    ),
];

enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Describes the writer's metrics and shows its counters and histograms at zero.
pub fn register() {
    for (name, kind, unit, help) in DESCRIPTIONS {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, unit, help),
            Kind::Gauge => metrics::describe_gauge!(name, unit, help),
            Kind::Histogram => metrics::describe_histogram!(name, unit, help),
        }
    }
    metrics::gauge!(UNSETTLED).set(0.0);
    // A histogram with a handle is shown, empty, from the first scrape.
    for histogram in [BATCH_SIZE, WRITE_SECONDS, LAG_SECONDS] {
        let _ = metrics::histogram!(histogram);
    }
    for outcome in [WRITTEN, DEAD_LETTERED] {
        metrics::counter!(DELIVERIES, "outcome" => outcome).absolute(0);
    }
}

pub(crate) fn batch_taken(size: usize) {
    metrics::histogram!(BATCH_SIZE).record(size as f64);
}

pub(crate) fn settled(outcome: &'static str, count: usize) {
    metrics::counter!(DELIVERIES, "outcome" => outcome).increment(count as u64);
}

pub(crate) fn batch_written(took: Duration) {
    metrics::histogram!(WRITE_SECONDS).record(took.as_secs_f64());
}

/// A delivery accepted at `accepted_at` is durably written now.
pub(crate) fn written_after_acceptance(accepted_at: Micros, now: Micros) {
    // A clock stepped back between acceptance and write reads as no lag.
    let lag = (now.0 - accepted_at.0).max(0) as f64 / 1e6;
    metrics::histogram!(LAG_SECONDS).record(lag);
}

/// Deliveries taken and not settled yet, now.
pub(crate) fn unsettled(count: usize) {
    metrics::gauge!(UNSETTLED).set(count as f64);
}

pub(crate) fn queue_depth(depth: QueueDepth) {
    metrics::gauge!(QUEUE_DEPTH, "queue" => "writer").set(depth.queued as f64);
    metrics::gauge!(QUEUE_DEPTH, "queue" => "dead").set(depth.dead as f64);
}
