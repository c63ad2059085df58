//! The gateway's reading of a GraphQL request before the schema runs
//! (`pm_teleferic::check_request`): the body as JSON, `application/graphql`
//! or a form, the document's parse, and its root-field and alias limits.
//! A refusal is always MALFORMED_ENVELOPE (section 7), never a panic or a
//! stack overflow, whatever the nesting.
//!
//! The properties live in `pm_fuzzing::graphql_request`, which `cargo test` also
//! runs over this target's corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pm_fuzzing::graphql_request::run(data));
