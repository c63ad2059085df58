//! What the gateway records (the `metrics` crate; the binary exports it at
//! `/metrics`): the envelopes it refuses itself, before any authorizer sees
//! them (a `MessageEnvelopeInput` that is no envelope). Every other refusal
//! and every acceptance is the authorizer's to count
//! (`pm_authorizer_envelopes_*`), so summing both never counts one twice.

use pm_models::RejectionCode;

pub const REFUSED: &str = "pm_gateway_envelopes_refused_total";

/// Describes the gateway's metrics.
pub fn register() {
    metrics::describe_counter!(
        REFUSED,
        "Envelopes the gateway refused before forwarding them to an authorizer, by section 7 code."
    );
    metrics::counter!(REFUSED, "code" => RejectionCode::MalformedEnvelope.as_str()).absolute(0);
}

pub(crate) fn refused(code: RejectionCode) {
    metrics::counter!(REFUSED, "code" => code.as_str()).increment(1);
}
