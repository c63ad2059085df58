//! The authorizer's internal REST API (PROTOCOL.md section 10): the wire
//! shapes its server writes and [`RemoteAuthorizer`] reads.
//!
//! - `POST /send_message {"envelope": …}` → `201` with [`AcceptedWire`], or
//!   the section 7 refusal `{"error": sentence, "code": CODE}` with its status;
//! - `GET /teleferic` → [`TelefericWire`].
//!
//! A refusal travels as that body; an authorizer that cannot be reached, or
//! answers anything else, is `UNAVAILABLE`.

use crate::client::{check_ready, http_client, unreachable_service};
use async_trait::async_trait;
use pm_models::api::{AcceptedEnvelope, AuthorizerApi};
use pm_models::envelope::Envelope;
use pm_models::records::PersonaRecord;
use pm_models::{Address, Rejection};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;
use tokio::sync::OnceCell;

pub const SEND_MESSAGE_PATH: &str = "/send_message";
pub const TELEFERIC_PATH: &str = "/teleferic";

/// The body of `POST /send_message`.
#[derive(Serialize, Deserialize)]
pub struct SendMessageRequest {
    pub envelope: Value,
}

/// The body of `201` from `POST /send_message`.
#[derive(Serialize, Deserialize)]
pub struct AcceptedWire {
    pub envelope: Value,
    pub sender: PersonaRecord,
    pub created_at: String,
    pub receipt: String,
}

impl AcceptedWire {
    pub fn from_accepted(accepted: &AcceptedEnvelope) -> Self {
        Self {
            envelope: accepted.envelope.to_json_value(),
            sender: accepted.sender.clone(),
            created_at: accepted.created_at.clone(),
            receipt: accepted.receipt.clone(),
        }
    }
}

/// The body of `GET /teleferic`.
#[derive(Serialize, Deserialize)]
pub struct TelefericWire {
    pub address: Address,
    #[serde(rename = "signedTimestamp")]
    pub signed_timestamp: String,
}

/// The authorizer over its internal REST API.
pub struct RemoteAuthorizer {
    http: reqwest::Client,
    base: String,
    node_address: OnceCell<Address>,
}

impl RemoteAuthorizer {
    /// `base` is e.g. `http://authorizer:8001` (no trailing slash needed).
    pub fn new(base: &str, timeout: Duration) -> Self {
        Self { http: http_client(timeout), base: base.trim_end_matches('/').to_owned(), node_address: OnceCell::new() }
    }

    async fn teleferic(&self) -> Result<TelefericWire, Rejection> {
        let response = self
            .http
            .get(format!("{}{TELEFERIC_PATH}", self.base))
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
            .post(format!("{}{SEND_MESSAGE_PATH}", self.base))
            .json(&SendMessageRequest { envelope: envelope.to_json_value() })
            .send()
            .await
            .map_err(|e| unreachable_service("authorizer", e))?;
        let wire: AcceptedWire = read_rest(response).await?;
        let envelope = Envelope::from_json_value(wire.envelope).map_err(|e| unreachable_service("authorizer", e))?;
        Ok(AcceptedEnvelope { envelope, sender: wire.sender, created_at: wire.created_at, receipt: wire.receipt })
    }

    async fn signed_timestamp(&self) -> Result<String, Rejection> {
        Ok(self.teleferic().await?.signed_timestamp)
    }

    async fn node_address(&self) -> Result<Address, Rejection> {
        self.node_address.get_or_try_init(|| async { Ok(self.teleferic().await?.address) }).await.cloned()
    }

    async fn ready(&self) -> Result<(), Rejection> {
        check_ready(&self.http, &self.base, "authorizer").await
    }
}
