//! `Envelope::from_queue_payload` on any bytes (what the writer consumes).
//! Whatever decodes is one strict msgpack value, and re-encodes to a
//! payload (and to JSON) that decodes to the same envelope.
//!
//! The properties live in `pm_fuzzing::queue_payload`, which `cargo test` also
//! runs over this target's corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pm_fuzzing::queue_payload::run(data));
