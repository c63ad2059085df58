//! The GraphQL argument parsers (`pm_models::api::parse_*`,
//! `PageRequest::parse`). A refusal is always BAD_QUERY; what parses
//! prints to text that parses to the same value; a page's limit is 1-1000.
//!
//! The properties live in `pm_fuzzing::graphql_args`, which `cargo test` also
//! runs over this target's corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pm_fuzzing::graphql_args::run(data));
