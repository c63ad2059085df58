//! `MessageHash::parse` and `Hash32::parse` on any text. A hash that parses
//! is the text given, 44 characters of strict base64 of 32 bytes, and the
//! two parsers agree.
//!
//! The properties live in `pm_fuzzing::hash`, which `cargo test` also
//! runs over this target's corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pm_fuzzing::hash::run(data));
