//! `strict_msgpack::read_value` on any bytes: what every msgpack decoder of
//! the node goes through. A value it accepts is what a lenient decoder
//! (rmpv) reads from the same bytes, with nothing left over; it holds no
//! bin, no ext, no text that is not UTF-8, no map with a key that is not
//! text or a key twice, nothing nested deeper than the limit; and its
//! canonical encoding is accepted and reads back to the same value.
//!
//! The properties live in `pm_fuzzing::strict_msgpack`, which `cargo test` also
//! runs over this target's corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pm_fuzzing::strict_msgpack::run(data));
