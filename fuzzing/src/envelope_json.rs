//! `Envelope::from_json_value` on any JSON (the GraphQL input and the
//! authorizer's REST body). A decoded envelope must print to JSON and to the
//! queue payload, and each must decode to the same envelope.

use pm_models::envelope::Envelope;

/// Checks the properties above on one input; panics on a failure.
pub fn run(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let Ok(envelope) = Envelope::from_json_value(value) else { return };
    let again = Envelope::from_json_value(envelope.to_json_value()).expect("printed JSON decodes");
    assert_eq!(again, envelope, "JSON round trip");
    let queued = Envelope::from_queue_payload(&envelope.to_queue_payload()).expect("a queue payload decodes");
    assert_eq!(queued, envelope, "queue payload round trip");
}
