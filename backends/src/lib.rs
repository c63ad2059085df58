//! Where the ledger keeps what it accepts: the seams every backend
//! implements ([`RecordStore`], [`SearchIndex`], [`Queue`], [`ClaimStore`],
//! and the combined [`Admission`] and [`RecordWriter`]), one module per
//! backend, each behind its cargo feature, and the [`Resolver`] that turns
//! [`BackendSettings`] into the seams a role needs. [`StoredEvents`] tells
//! live subscribers that messages became readable: [`events::LocalEvents`]
//! within one process, [`rabbitmq::events::RabbitMqEvents`] across them.
//!
//! - [`embedded`] (`embedded`): every seam in one redb file, for `pm serve`;
//! - [`rabbitmq`] (`rabbitmq`): the queue of PROTOCOL.md section 8;
//! - [`hbase`] (`hbase`): the record and claim store of section 9, through the
//!   Thrift v1 gateway;
//! - [`elasticsearch`] (`elasticsearch`): the search index of section 9.
//!
//! Backends retry through the one [`retry::RetryPolicy`] and count their
//! failures, reconnects and retries ([`metrics`]). Test helpers
//! (reachability of real servers, unique names, teardown) are behind the
//! `testsuite` feature.

pub mod coalesce;
pub mod events;
pub mod metrics;
pub mod resolver;
pub mod retry;
mod seams;
pub mod settings;
pub mod sweeper;

#[cfg(feature = "elasticsearch")]
pub mod elasticsearch;
#[cfg(feature = "embedded")]
pub mod embedded;
#[cfg(feature = "hbase")]
pub mod hbase;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;

pub use resolver::{ResolveError, Resolver};
pub use seams::*;
pub use settings::BackendSettings;
