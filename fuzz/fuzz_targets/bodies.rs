//! `BodyMap::decode` and `Registration::from_body` on any `messageBody`.
//! A body decodes exactly when it is one strict msgpack map; a registration
//! read from it has a well-formed nickname and a public key in its exact
//! PEM text, whose address parses back to itself.
//!
//! The properties live in `pm_fuzzing::bodies`, which `cargo test` also
//! runs over this target's corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pm_fuzzing::bodies::run(data));
