//! `Envelope::from_queue_payload` on any bytes (what the writer consumes).
//! Whatever decodes is one strict msgpack value, and re-encodes to a
//! payload (and to JSON) that decodes to the same envelope.

use pm_models::envelope::Envelope;

/// Checks the properties above on one input; panics on a failure.
pub fn run(data: &[u8]) {
    let Ok(envelope) = Envelope::from_queue_payload(data) else { return };
    assert!(pm_models::strict_msgpack::read_value(data).is_ok(), "a decoded payload is strict msgpack");
    let payload = envelope.to_queue_payload();
    assert_eq!(Envelope::from_queue_payload(&payload).as_ref(), Ok(&envelope), "payload round trip");
    assert_eq!(Envelope::from_json_value(envelope.to_json_value()).as_ref(), Ok(&envelope), "JSON round trip");
}
