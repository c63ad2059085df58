//! The sealed boxes and invitation names a registration carries
//! (`sealed_box::open`, `invite_name::decrypt`) on any bytes: they never
//! panic, and nothing opens that was not sealed to the node key (the
//! fuzzer cannot seal without it; the round trip is checked on the input
//! sealed properly).
//!
//! The properties live in `pm_fuzzing::sealed`, which `cargo test` also
//! runs over this target's corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pm_fuzzing::sealed::run(data));
