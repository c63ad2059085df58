//! The `pm` binary's library: it wires the role crates into commands and
//! does nothing else. `serve` runs every role in one process on the
//! embedded backend; `bootstrap` creates storage and the first personas;
//! `keygen` and `address` handle keys; the client commands speak GraphQL to
//! a running gateway, and `read` and `verify` check what it serves.

pub mod bench;
pub mod bootstrap;
pub mod cli;
pub mod client;
pub mod import;
pub mod key_file;
pub mod keygen;
pub mod read;
pub mod roles;
pub mod serve;
pub mod settings;
pub mod shutdown;
pub mod tail;
pub mod telemetry;
