//! The reader's JSON-RPC calls (`ReaderCall::from_rpc`) on any JSON. A
//! refusal is BAD_QUERY; a call that parses writes its method and params
//! (`ReaderCall::params`, what `RemoteReader` sends) that parse back to the
//! same call.
//!
//! The properties live in `pm_fuzzing::reader_rpc`, which `cargo test` also
//! runs over this target's corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pm_fuzzing::reader_rpc::run(data));
