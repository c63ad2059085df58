//! Peer Mountain's protocol: everything two parties must agree on, and
//! nothing else.
//!
//! - the protocol of `docs/PROTOCOL.md`: encodings ([`codec`], with strict
//!   msgpack reading in [`strict_msgpack`]), times ([`time`]),
//!   identity ([`address`], [`public_key`], [`keys`]), node-signed timestamps
//!   ([`signed_timestamp`]), timestamped signatures ([`timestamped_signature`]),
//!   acceptance receipts ([`receipt`]), sealed boxes ([`sealed_box`]),
//!   invitation names ([`invite_name`]), message
//!   types, contents, bodies and envelopes ([`message_type`], [`content`],
//!   [`envelope`]), and the rejection codes of section 7 ([`rejection`]);
//! - typed hashes ([`hash`]);
//! - the records the writer stores and the reader serves ([`records`]);
//! - the service interfaces the gateway talks to, with typed arguments ([`api`]);
//! - a bounded map of recent entries, for what a role remembers to avoid
//!   repeating work ([`recent`]);
//! - client-side construction of envelopes ([`client`], with the private
//!   blobs of [`blob`]) and what a reader does with a stored one ([`reading`]:
//!   open it, check every hash, signature and the receipt), used by the `pm`
//!   client subcommands and by tests.
//!
//! It does no I/O: no socket, no file, no runtime. Every other crate of the
//! workspace depends on it; it depends on none of them.

pub mod address;
pub mod api;
pub mod blob;
pub mod client;
pub mod codec;
pub mod content;
pub mod envelope;
pub mod hash;
pub mod invite_name;
pub mod keys;
pub mod message_type;
pub mod public_key;
pub mod reading;
pub mod receipt;
pub mod recent;
pub mod records;
pub mod rejection;
pub mod sealed_box;
pub mod signed_timestamp;
pub mod strict_msgpack;
mod text;
pub mod time;
pub mod timestamped_signature;

pub use address::Address;
pub use hash::{Hash32, MessageHash};
pub use message_type::MessageType;
pub use public_key::PublicKeyPem;
pub use rejection::{Rejection, RejectionCode};
