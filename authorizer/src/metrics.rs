//! What the authorizer records (the `metrics` crate; the binary exports it
//! at `/metrics`): envelopes accepted by type, refusals by code, and how
//! long an accepted envelope took from receipt to its durable queueing.

use pm_models::{MessageType, RejectionCode};
use std::time::Duration;

pub const ACCEPTED: &str = "pm_authorizer_envelopes_accepted_total";
pub const REFUSED: &str = "pm_authorizer_envelopes_refused_total";
pub const ACCEPT_SECONDS: &str = "pm_authorizer_accept_seconds";

/// Describes the authorizer's metrics and shows every series at zero, so a
/// scrape lists them before the first envelope.
pub fn register() {
    metrics::describe_counter!(ACCEPTED, "Envelopes accepted and durably queued, by message type.");
    metrics::describe_counter!(REFUSED, "Envelopes refused, by the section 7 code of the refusal.");
    metrics::describe_histogram!(
        ACCEPT_SECONDS,
        metrics::Unit::Seconds,
        "Time to accept an envelope: every check, the claims and the durable queueing."
    );
    // A histogram with a handle is shown, empty, from the first scrape.
    let _ = metrics::histogram!(ACCEPT_SECONDS);
    for kind in MessageType::ALL {
        metrics::counter!(ACCEPTED, "type" => kind.name()).absolute(0);
    }
    for code in RejectionCode::ALL {
        metrics::counter!(REFUSED, "code" => code.as_str()).absolute(0);
    }
}

pub(crate) fn accepted(kind: MessageType, took: Duration) {
    metrics::counter!(ACCEPTED, "type" => kind.name()).increment(1);
    metrics::histogram!(ACCEPT_SECONDS).record(took.as_secs_f64());
}

/// A refusal, wherever the authorizer made it (also a request body it
/// could not read as an envelope).
pub fn refused(code: RejectionCode) {
    metrics::counter!(REFUSED, "code" => code.as_str()).increment(1);
}
