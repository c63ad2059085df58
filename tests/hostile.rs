//! The hostile-input corpus (issue 8), sent to a real `pm serve` over
//! GraphQL, each case with the exact code it must get (PROTOCOL.md section
//! 7). After each test's cases, a valid envelope still goes through, and
//! nothing refused is stored: not by hash, not in a listing.
//!
//! The corpus lives in `tests/hostile/`:
//!
//! - `msgpack.jsonl`: byte-level msgpack values (truncated, oversized,
//!   deeply nested, wrong types, invalid UTF-8, huge integers, `bin` for
//!   text, reserved markers, trailing bytes), each put in every slot that
//!   holds msgpack: the content, invitation and registration bodies, the
//!   `S` of `messageSign`, of the content's `signature` and of
//!   `containerSign`, the `T` inside each of them, and a key proof;
//! - `base64.jsonl`: text that is not strict base64, in every slot that
//!   holds base64 (those above, hashes, salts, containers, messages);
//! - `mutations.jsonl`: changes to a *fresh valid* value of each slot (a
//!   key twice, `bin` for `str`, an array for a map, a missing key, a wrong
//!   type, trailing bytes, truncation) that a lenient decoder would still
//!   read as valid; and the non-canonical encodings section 5 tolerates
//!   (`str32`, `map32`, wide integers, other key orders), which must be
//!   accepted and stored byte for byte;
//! - `addresses.jsonl`: bad checksums, prefixes, lengths and alphabets, up to
//!   a million characters, as a sender, an ACL reader and a query argument;
//! - `requests.jsonl`: request bodies that are not a GraphQL request.
//!
//! Cases that need fresh node timestamps and keys (signatures, small-order
//! keys, replays, forged and stale `T`s, every code of section 7) are made in
//! code, in `tests/hostile/generated.rs`. The HTTP and GraphQL limits are in
//! `tests/hostile/limits.rs`; log forging (defect 9) in `tests/hostile/logs.rs`.
//!
//! Run with `-- --nocapture` to see the corpus's size by family.

/// The corpus runs on `pm serve` and the embedded backend.
pub const DISTRIBUTED: bool = false;

mod common;

#[path = "hostile/msgpack.rs"]
mod msgpack;
#[path = "hostile/runner.rs"]
mod runner;
#[path = "hostile/slots.rs"]
mod slots;

#[path = "hostile/corpus.rs"]
mod corpus;
#[path = "hostile/generated.rs"]
mod generated;
#[path = "hostile/limits.rs"]
mod limits;
#[path = "hostile/logs.rs"]
mod logs;
