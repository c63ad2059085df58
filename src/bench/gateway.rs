//! The benchmark's GraphQL client: one pooled keep-alive HTTP client shared
//! by every worker, answers classified into data or a refusal code, and the
//! batched "is it readable yet?" lookups (many aliased fields in one query).

use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The longest one request may take before it counts as `TIMEOUT`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Lookups asked in one query, as aliased fields.
const LOOKUPS_PER_QUERY: usize = 100;

/// Why a GraphQL request gave no data.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("no answer from the gateway at {url}: {source}")]
    Transport { url: String, source: reqwest::Error },
    #[error("the gateway refused with {code}: {message}")]
    Refused { code: String, message: String },
    #[error("the gateway answered HTTP {status} without a GraphQL body")]
    NotGraphQl { status: u16 },
    #[error("the gateway's answer has no {0}")]
    Incomplete(&'static str),
}

impl GatewayError {
    /// The code a refusal is counted under: the contract's code, or a word
    /// for what went wrong on the way (`TIMEOUT`, `TRANSPORT`, `HTTP_503`).
    pub fn code(&self) -> String {
        match self {
            Self::Transport { source, .. } if source.is_timeout() => "TIMEOUT".to_owned(),
            Self::Transport { .. } => "TRANSPORT".to_owned(),
            Self::Refused { code, .. } => code.clone(),
            Self::NotGraphQl { status } => format!("HTTP_{status}"),
            Self::Incomplete(_) => "INCOMPLETE_ANSWER".to_owned(),
        }
    }
}

/// The GraphQL endpoints of one node's gateways, asked in turn; cheap to
/// clone (clones share the pool and the turn).
#[derive(Clone)]
pub struct Gateway {
    http: reqwest::Client,
    urls: Arc<[String]>,
    turn: Arc<AtomicUsize>,
}

impl Gateway {
    /// A client of `urls` (at least one) keeping up to `connections` idle
    /// keep-alive connections to each.
    pub fn new(urls: &[String], connections: usize) -> Self {
        assert!(!urls.is_empty(), "a gateway needs a URL");
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(connections.max(1) * 2)
            .tcp_nodelay(true)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("an HTTP client with these options can be built");
        Self { http, urls: urls.into(), turn: Arc::default() }
    }

    /// The first gateway's URL.
    pub fn url(&self) -> &str {
        &self.urls[0]
    }

    /// Posts a prepared request body (`{"query": …, "variables": …}`) to
    /// the next gateway in turn.
    pub async fn post(&self, body: Vec<u8>) -> Result<Value, GatewayError> {
        let url = &self.urls[self.turn.fetch_add(1, Ordering::Relaxed) % self.urls.len()];
        let transport = |source| GatewayError::Transport { url: url.clone(), source };
        let response = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(transport)?;
        let answer: Value = serde_json::from_slice(&bytes).map_err(|_| GatewayError::NotGraphQl { status })?;
        if let Some(error) = answer["errors"].as_array().and_then(|errors| errors.first()) {
            return Err(GatewayError::Refused {
                code: error["extensions"]["code"].as_str().unwrap_or("ERROR").to_owned(),
                message: error["message"].as_str().unwrap_or("").to_owned(),
            });
        }
        match answer.get("data") {
            Some(data) if !data.is_null() => Ok(data.clone()),
            _ => Err(GatewayError::NotGraphQl { status }),
        }
    }

    /// Runs one GraphQL operation and returns its `data`.
    pub async fn query(&self, query: &str, variables: Value) -> Result<Value, GatewayError> {
        self.post(request_body(query, &variables)).await
    }

    /// Of `keys`, those `lookup` finds, asked [`LOOKUPS_PER_QUERY`] to a
    /// query with up to `in_flight` queries at once. A query that fails
    /// counts as finding nothing.
    pub async fn readable(&self, lookup: &KeyLookup, keys: &[String], in_flight: usize) -> HashSet<String> {
        let KeyLookup { field, argument, key_field } = lookup;
        let batches = keys.chunks(LOOKUPS_PER_QUERY).map(|batch| async move {
            let fields: String = batch
                .iter()
                .enumerate()
                .map(|(i, key)| format!("f{i}: {field}({argument}: {}) {{ {key_field} }} ", Value::from(key.as_str())))
                .collect();
            let data = self.query(&format!("{{ {fields} }}"), json!({})).await.unwrap_or(Value::Null);
            batch
                .iter()
                .enumerate()
                .filter(|(i, key)| data[format!("f{i}")][*key_field].as_str() == Some(key.as_str()))
                .map(|(_, key)| key.clone())
                .collect::<Vec<_>>()
        });
        futures::stream::iter(batches)
            .buffer_unordered(in_flight.max(1))
            .map(futures::stream::iter)
            .flatten()
            .collect()
            .await
    }
}

/// A lookup by key whose answer repeats the key.
pub struct KeyLookup {
    field: &'static str,
    argument: &'static str,
    key_field: &'static str,
}

pub const MESSAGE_BY_HASH: KeyLookup =
    KeyLookup { field: "messageByHash", argument: "messageHash", key_field: "messageHash" };
pub const PERSONA_BY_ADDRESS: KeyLookup = KeyLookup { field: "persona", argument: "address", key_field: "address" };

/// The JSON body of a GraphQL request.
pub fn request_body(query: &str, variables: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({ "query": query, "variables": variables })).expect("JSON values serialize")
}
