//! The properties the fuzz targets of `fuzz/` check on every decoder of
//! untrusted bytes (issue 8), one module per target, each with a `run`
//! that panics when a property fails. `fuzz/` feeds them libFuzzer's
//! inputs; this crate's test replays the committed corpus and the crash
//! reproducers through them on every `cargo test`.

mod common;

pub mod address;
pub mod bodies;
pub mod content;
pub mod envelope_json;
pub mod graphql_args;
pub mod graphql_request;
pub mod hash;
pub mod pem;
pub mod queue_payload;
pub mod reader_rpc;
pub mod receipt;
pub mod sealed;
pub mod signed_timestamp;
pub mod strict_msgpack;
pub mod timestamped_signature;
