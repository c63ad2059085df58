//! `Envelope::from_json_value` on any JSON (the GraphQL input and the
//! authorizer's REST body). A decoded envelope must print to JSON and to the
//! queue payload, and each must decode to the same envelope.
//!
//! The properties live in `pm_fuzzing::envelope_json`, which `cargo test` also
//! runs over this target's corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pm_fuzzing::envelope_json::run(data));
