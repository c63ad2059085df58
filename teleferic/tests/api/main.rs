//! The gateway over HTTP, on port 0, in front of in-memory doubles of the
//! authorizer and the reader. One binary, a module per feature.

mod helpers;

mod contract_schema;
mod health;
mod queries;
mod send_message;
mod send_messages;
mod transport;
