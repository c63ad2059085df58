//! `receipt::verify` on any `R` against the vectors' node key. It never
//! panics; a receipt that verifies states a valid timestamp string, and
//! its canonical re-encoding verifies to the same instant.
//!
//! The properties live in `pm_fuzzing::receipt`, which `cargo test` also
//! runs over this target's corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pm_fuzzing::receipt::run(data));
