//! The HTTP every role shares (PROTOCOL.md section 10):
//!
//! - [`authorizer_api`] and [`reader_api`]: the internal APIs between the
//!   roles, their wire shapes defined once and used by both the server and
//!   the client ([`RemoteAuthorizer`], [`RemoteReader`], which implement the
//!   same traits as the in-process services, so the gateway cannot tell them
//!   apart);
//! - [`body`]: the one way a request body is read, bounded in size and in
//!   time;
//! - [`responses`]: refusals as HTTP answers, and the health endpoints;
//! - [`metrics`]: `GET /metrics` in the Prometheus text format, which every
//!   role's server mounts.

pub mod authorizer_api;
pub mod body;
mod client;
pub mod metrics;
pub mod reader_api;
pub mod responses;
mod settings;

pub use authorizer_api::RemoteAuthorizer;
pub use body::{BodyError, BodyLimits};
pub use reader_api::RemoteReader;
pub use settings::RemoteSettings;
