//! End-to-end suite of the `pm` binary: each test bootstraps its own node in
//! a temporary directory, runs `pm serve` on port 0 and talks to it over
//! HTTP only (GraphQL at `/teleferic`), as PROTOCOL.md section 10 describes.
//!
//! - `flow`: genesis invites, a persona registers and asserts, and every
//!   query returns exactly what was sent;
//! - `rejections`: every code of section 7 through GraphQL, and nothing of a
//!   refused envelope is stored;
//! - `conflicts`: envelopes racing for one claim, exactly one wins;
//! - `lifecycle`: keygen, idempotent bootstrap, graceful stop and restart.

#[path = "../common/mod.rs"]
mod common;

/// This binary runs the suite on `pm serve` and the embedded backend.
pub const DISTRIBUTED: bool = false;

mod batch;
mod conflicts;
mod flow;
mod lifecycle;
mod live;
mod rejections;
