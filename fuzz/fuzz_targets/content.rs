//! `MessageContent::decode_public` on any `message` text. A decoded
//! content's packed bytes are exactly the base64 it came from, the bytes
//! are strict msgpack, and packing the content again decodes to the same
//! content.
//!
//! The properties live in `pm_fuzzing::content`, which `cargo test` also
//! runs over this target's corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pm_fuzzing::content::run(data));
