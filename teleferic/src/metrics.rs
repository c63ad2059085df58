//! What the gateway records (the `metrics` crate; the binary exports it at
//! `/metrics`): the envelopes it refuses itself, before any authorizer sees
//! them (a `MessageEnvelopeInput` that is no envelope). Every other refusal
//! and every acceptance is the authorizer's to count
//! (`pm_authorizer_envelopes_*`), so summing both never counts one twice.
//! Apart from those, the requests it refuses as a whole before running
//! them (too large, not a GraphQL request, over a limit, not valid against
//! the schema), whatever they carried.

use pm_models::RejectionCode;

pub const REFUSED: &str = "pm_gateway_envelopes_refused_total";
pub const REQUESTS_REFUSED: &str = "pm_gateway_requests_refused_total";

/// Describes the gateway's metrics.
pub fn register() {
    metrics::describe_counter!(
        REFUSED,
        "Envelopes the gateway refused before forwarding them to an authorizer, by section 7 code."
    );
    metrics::counter!(REFUSED, "code" => RejectionCode::MalformedEnvelope.as_str()).absolute(0);
    metrics::describe_counter!(
        REQUESTS_REFUSED,
        "GraphQL requests the gateway refused as a whole before running them, by section 7 code."
    );
    for code in [RejectionCode::MalformedEnvelope, RejectionCode::PayloadTooLarge] {
        metrics::counter!(REQUESTS_REFUSED, "code" => code.as_str()).absolute(0);
    }
}

/// A request refused as a whole, with `code` (a section 7 code).
pub(crate) fn request_refused(code: &str) {
    metrics::counter!(REQUESTS_REFUSED, "code" => code.to_owned()).increment(1);
}

pub(crate) fn refused(code: RejectionCode) {
    metrics::counter!(REFUSED, "code" => code.as_str()).increment(1);
}
