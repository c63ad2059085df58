//! `SignedTimestamp::parse` on any `T`, and the timestamp strings and
//! RFC 3339 dates inside. A parsed `T` parses again to itself; its
//! timestamp string is valid; freshness and signature checks never panic,
//! whatever the clock says.
//!
//! The properties live in `pm_fuzzing::signed_timestamp`, which `cargo test` also
//! runs over this target's corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pm_fuzzing::signed_timestamp::run(data));
