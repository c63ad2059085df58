//! The one way every role reads a request body: never more than
//! `max_request_bytes` (section 5: 4 MiB by default), and never for longer
//! than `body_timeout_ms`, so a client that trickles a byte every few seconds
//! cannot hold a connection and a handler for long.
//!
//! A body declared or found too large is drained up to a bound before the
//! refusal, so that a client still writing it reads the refusal rather than
//! a reset connection.

use actix_web::http::header;
use actix_web::{dev, web, HttpRequest};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Limits on reading a request body (the `[gateway]` section: every role
/// applies the same ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BodyLimits {
    /// A body is not read past this many bytes.
    pub max_request_bytes: usize,
    /// Reading a whole body may take at most this long.
    pub body_timeout_ms: u64,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self { max_request_bytes: 4 * 1024 * 1024, body_timeout_ms: 30_000 }
    }
}

impl BodyLimits {
    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms)
    }
}

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body exceeds {0} bytes")]
    TooLarge(usize),
    #[error("request body was not received within {0} ms")]
    TimedOut(u64),
    #[error("request body is unreadable: {0}")]
    Unreadable(String),
}

/// How far past the limit an oversized body is still read (and dropped).
const DRAIN_FACTOR: usize = 4;

/// Reads the (decompressed) body of `request` within `limits`.
pub async fn read_body(
    request: &HttpRequest,
    payload: web::Payload,
    limits: &BodyLimits,
) -> Result<Vec<u8>, BodyError> {
    let limit = limits.max_request_bytes;
    let deadline = tokio::time::Instant::now() + limits.body_timeout();
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok())
        .and_then(|length| length.parse::<usize>().ok());
    let mut stream = dev::Decompress::from_headers(payload, request.headers());
    if declared.is_some_and(|length| length > limit) {
        drain(&mut stream, limit, deadline).await;
        return Err(BodyError::TooLarge(limit));
    }
    let mut body = Vec::new();
    loop {
        let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return Err(BodyError::TimedOut(limits.body_timeout_ms)),
            Ok(None) => return Ok(body),
            Ok(Some(chunk)) => chunk.map_err(|error| BodyError::Unreadable(error.to_string()))?,
        };
        if body.len() + chunk.len() > limit {
            drain(&mut stream, limit, deadline).await;
            return Err(BodyError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
}

/// Reads and drops what the client is still sending, up to a bound in size
/// and the body's deadline.
async fn drain(stream: &mut dev::Decompress<web::Payload>, limit: usize, deadline: tokio::time::Instant) {
    let bound = limit.saturating_mul(DRAIN_FACTOR);
    let mut dropped = 0usize;
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, stream.next()).await {
        dropped += chunk.len();
        if dropped > bound {
            break;
        }
    }
}
