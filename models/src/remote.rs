//! The internal HTTP APIs of PROTOCOL.md section 10, both sides' shapes and
//! the clients: [`RemoteAuthorizer`] speaks the authorizer's JSON REST API,
//! [`RemoteReader`] the reader's JSON-RPC 2.0 API. Each implements the same
//! trait as the in-process service, so the gateway cannot tell them apart.
//!
//! A refusal travels as `{"error": sentence, "code": CODE}` (REST) or as a
//! JSON-RPC error whose `data.code` is the code; a service that cannot be
//! reached is `UNAVAILABLE`.

use crate::api::{AcceptedEnvelope, AuthorizerApi, MessageQuery, PageRequest, PersonaQuery, ReaderApi};
use crate::envelope::{Envelope, ObjectEntry};
use crate::records::{MessageRecord, PersonaRecord};
use crate::rejection::{Rejection, RejectionCode};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::OnceCell;

/// The body of `201` from `POST /send_message`.
#[derive(Serialize, Deserialize)]
pub struct AcceptedWire {
    pub envelope: Value,
    pub sender: PersonaRecord,
    pub created_at: String,
}

impl AcceptedWire {
    pub fn from_accepted(accepted: &AcceptedEnvelope) -> Self {
        Self {
            envelope: accepted.envelope.to_json_value(),
            sender: accepted.sender.clone(),
            created_at: accepted.created_at.clone(),
        }
    }
}

/// The body of `GET /teleferic` on the authorizer.
#[derive(Serialize, Deserialize)]
pub struct TelefericWire {
    pub address: String,
    #[serde(rename = "signedTimestamp")]
    pub signed_timestamp: String,
}

/// A JSON-RPC 2.0 result of the reader: `{"response": …, "status": 200|404}`.
#[derive(Serialize, Deserialize)]
pub struct ReaderResult {
    pub response: Value,
    pub status: u16,
}

fn unreachable_service(service: &str, error: impl std::fmt::Display) -> Rejection {
    tracing::warn!(%error, service, "internal service unreachable");
    Rejection::new(RejectionCode::Unavailable, format!("the {service} is unavailable; retry later"))
}

/// `GET {base}/readyz` answers 2xx.
async fn check_ready(http: &reqwest::Client, base: &str, service: &str) -> Result<(), Rejection> {
    let response = http.get(format!("{base}/readyz")).send().await.map_err(|e| unreachable_service(service, e))?;
    match response.status().is_success() {
        true => Ok(()),
        false => Err(unreachable_service(service, format!("readyz answered {}", response.status()))),
    }
}

fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder().timeout(timeout).build().expect("an HTTP client with rustls builds")
}

/// The authorizer over its internal REST API.
pub struct RemoteAuthorizer {
    http: reqwest::Client,
    base: String,
    node_address: OnceCell<String>,
}

impl RemoteAuthorizer {
    /// `base` is e.g. `http://authorizer:8001` (no trailing slash needed).
    pub fn new(base: &str, timeout: Duration) -> Self {
        Self { http: http_client(timeout), base: base.trim_end_matches('/').to_owned(), node_address: OnceCell::new() }
    }

    async fn teleferic(&self) -> Result<TelefericWire, Rejection> {
        let response = self
            .http
            .get(format!("{}/teleferic", self.base))
            .send()
            .await
            .map_err(|e| unreachable_service("authorizer", e))?;
        read_rest(response).await
    }
}

/// Reads a REST answer: a success body, or the `{"error","code"}` refusal.
async fn read_rest<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> Result<T, Rejection> {
    let status = response.status();
    let body = response.bytes().await.map_err(|e| unreachable_service("authorizer", e))?;
    if status.is_success() {
        return serde_json::from_slice(&body).map_err(|e| unreachable_service("authorizer", e));
    }
    match serde_json::from_slice::<Rejection>(&body) {
        Ok(rejection) => Err(rejection),
        Err(_) => Err(unreachable_service("authorizer", format!("status {status} without a refusal body"))),
    }
}

#[async_trait]
impl AuthorizerApi for RemoteAuthorizer {
    async fn send_message(&self, envelope: Envelope) -> Result<AcceptedEnvelope, Rejection> {
        let response = self
            .http
            .post(format!("{}/send_message", self.base))
            .json(&json!({ "envelope": envelope.to_json_value() }))
            .send()
            .await
            .map_err(|e| unreachable_service("authorizer", e))?;
        let wire: AcceptedWire = read_rest(response).await?;
        let envelope = Envelope::from_json_value(wire.envelope).map_err(|e| unreachable_service("authorizer", e))?;
        Ok(AcceptedEnvelope { envelope, sender: wire.sender, created_at: wire.created_at })
    }

    async fn signed_timestamp(&self) -> Result<String, Rejection> {
        Ok(self.teleferic().await?.signed_timestamp)
    }

    async fn node_address(&self) -> Result<String, Rejection> {
        self.node_address.get_or_try_init(|| async { Ok(self.teleferic().await?.address) }).await.cloned()
    }

    async fn ready(&self) -> Result<(), Rejection> {
        check_ready(&self.http, &self.base, "authorizer").await
    }
}

/// The reader over its JSON-RPC 2.0 API.
pub struct RemoteReader {
    http: reqwest::Client,
    base: String,
}

/// JSON-RPC parameters of the reader's `message` method for a listing.
pub fn message_params(query: &MessageQuery, page: &PageRequest) -> Value {
    let (key, value) = match query {
        MessageQuery::Sender(v) => ("persona_sender", v),
        MessageQuery::Reader(v) => ("reader", v),
        MessageQuery::Date(v) => ("created_at", v),
        MessageQuery::ContainerHash(v) => ("container_hash", v),
    };
    json!({ key: value, "limit": page.limit, "after": page.after })
}

/// JSON-RPC parameters of the reader's `persona` method.
pub fn persona_params(query: &PersonaQuery) -> Value {
    match query {
        PersonaQuery::Address(v) => json!({ "address": v }),
        PersonaQuery::PublicKey(v) => json!({ "pubkey": v }),
        PersonaQuery::Nickname(v) => json!({ "nickname": v }),
    }
}

impl RemoteReader {
    pub fn new(base: &str, timeout: Duration) -> Self {
        Self { http: http_client(timeout), base: base.trim_end_matches('/').to_owned() }
    }

    async fn call(&self, method: &str, params: Value) -> Result<ReaderResult, Rejection> {
        let request = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
        let response = self
            .http
            .post(format!("{}/", self.base))
            .json(&request)
            .send()
            .await
            .map_err(|e| unreachable_service("reader", e))?;
        let body: Value = response.json().await.map_err(|e| unreachable_service("reader", e))?;
        if let Some(error) = body.get("error") {
            let code = error["data"]["code"].as_str().and_then(RejectionCode::parse);
            let message = error["message"].as_str().unwrap_or("reader refused the query").to_owned();
            return Err(match code {
                Some(code) => Rejection::new(code, message),
                None => unreachable_service("reader", message),
            });
        }
        serde_json::from_value(body["result"].clone()).map_err(|e| unreachable_service("reader", e))
    }

    async fn call_one<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        params: Value,
    ) -> Result<Option<T>, Rejection> {
        let result = self.call(method, params).await?;
        if result.status == 404 || result.response.is_null() {
            return Ok(None);
        }
        serde_json::from_value(result.response).map(Some).map_err(|e| unreachable_service("reader", e))
    }
}

#[async_trait]
impl ReaderApi for RemoteReader {
    async fn persona(&self, query: PersonaQuery) -> Result<Option<PersonaRecord>, Rejection> {
        self.call_one("persona", persona_params(&query)).await
    }

    async fn message(&self, hash: &str) -> Result<Option<MessageRecord>, Rejection> {
        self.call_one("message", json!({ "hash": hash })).await
    }

    async fn messages(&self, query: MessageQuery, page: PageRequest) -> Result<Vec<MessageRecord>, Rejection> {
        let result = self.call("message", message_params(&query, &page)).await?;
        serde_json::from_value(result.response).map_err(|e| unreachable_service("reader", e))
    }

    async fn object(&self, object_hash: &str) -> Result<Option<ObjectEntry>, Rejection> {
        self.call_one("object", json!({ "hash": object_hash })).await
    }

    async fn ready(&self) -> Result<(), Rejection> {
        check_ready(&self.http, &self.base, "reader").await
    }
}
