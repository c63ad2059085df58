//! `TimestampedSignature::parse` on any `S` (messageSign, containerSign, a
//! content's signature). A parsed `S` rebuilt from its two parts parses to
//! the same parts; reading its `T` and verifying never panic.
//!
//! The properties live in `pm_fuzzing::timestamped_signature`, which `cargo test` also
//! runs over this target's corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pm_fuzzing::timestamped_signature::run(data));
