//! Peer Mountain's shared crate: everything two services must agree on.
//!
//! - the protocol of `docs/PROTOCOL.md`: encodings ([`codec`]), times ([`time`]),
//!   identity ([`address`], [`public_key`], [`keys`]), node-signed timestamps
//!   ([`signed_timestamp`]), timestamped signatures ([`timestamped_signature`]),
//!   sealed boxes ([`sealed_box`]), invitation names ([`invite_name`]), message
//!   types, contents, bodies and envelopes ([`message_type`], [`content`],
//!   [`envelope`]), and the rejection codes of section 7 ([`rejection`]);
//! - the records the writer stores and the reader serves ([`records`]);
//! - the seams every backend implements ([`seams`]): a record store, a search
//!   index, a queue and a claim store, with the embedded backend of all four on
//!   one redb file ([`seams::embedded`]);
//! - the service interfaces the gateway talks to ([`api`]);
//! - client-side construction of envelopes ([`client`]), used by the `pm`
//!   client subcommands and by tests.
//!
//! This crate never depends on a service crate.

pub mod address;
pub mod api;
pub mod client;
pub mod codec;
pub mod content;
pub mod envelope;
pub mod invite_name;
pub mod keys;
pub mod message_type;
pub mod public_key;
pub mod records;
pub mod rejection;
pub mod remote;
pub mod sealed_box;
pub mod seams;
pub mod signed_timestamp;
pub mod time;
pub mod timestamped_signature;

pub use address::Address;
pub use codec::Hash32;
pub use message_type::MessageType;
pub use public_key::PublicKeyPem;
pub use rejection::{Rejection, RejectionCode};
