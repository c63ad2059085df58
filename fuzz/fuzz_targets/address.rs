//! `Address::parse` on any text (a sender, an ACL reader, a query
//! argument). An address that parses is at most 36 characters, is exactly
//! the text given (Base58 with a 0x01 prefix has one spelling), and parses
//! again to itself.
//!
//! The properties live in `pm_fuzzing::address`, which `cargo test` also
//! runs over this target's corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pm_fuzzing::address::run(data));
