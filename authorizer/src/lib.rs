//! The authorizer: decides whether an envelope enters the ledger.
//!
//! It runs every check of PROTOCOL.md sections 3–7 as a pure pipeline over
//! the seams, in the order section 7 gives, so the first failure decides the
//! code ([`pipeline`]). An accepted envelope's uniqueness claims (section 6)
//! are taken and the envelope queued as one step through [`Admission`]; the
//! answer is a success only once the queue durably holds it. A refused
//! envelope leaves nothing behind. It also holds the node key and issues
//! signed timestamps ([`node`]).

pub mod http;
pub mod node;
pub mod pipeline;
mod private;
mod public;
pub mod settings;
mod shape;

use async_trait::async_trait;
use pm_models::api::{AcceptedEnvelope, AuthorizerApi};
use pm_models::envelope::Envelope;
use pm_models::seams::{Admission, ClaimStore, RecordStore};
use pm_models::time::Micros;
use pm_models::Rejection;
use std::sync::Arc;

pub use node::NodeIdentity;
pub use settings::{AuthorizerSettings, Limits};

/// A source of the current time, injectable so tests can pin the clock.
pub type Clock = Arc<dyn Fn() -> Micros + Send + Sync>;

/// The backends the authorizer reads and writes.
#[derive(Clone)]
pub struct AuthorizerBackends {
    pub store: Arc<dyn RecordStore>,
    pub claims: Arc<dyn ClaimStore>,
    pub admission: Arc<dyn Admission>,
}

pub struct Authorizer {
    node: NodeIdentity,
    settings: AuthorizerSettings,
    backends: AuthorizerBackends,
    clock: Clock,
}

impl Authorizer {
    pub fn new(node: NodeIdentity, settings: AuthorizerSettings, backends: AuthorizerBackends) -> Self {
        Self { node, settings, backends, clock: Arc::new(Micros::now) }
    }

    /// Replaces the wall clock (tests check vectors at their own `now`).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn node(&self) -> &NodeIdentity {
        &self.node
    }

    /// Checks `envelope` and, if it passes, claims and queues it.
    #[tracing::instrument(skip_all, fields(hash = %envelope.message_hash, sender = %envelope.sender, kind = %envelope.message_type))]
    pub async fn authorize(&self, envelope: Envelope) -> Result<AcceptedEnvelope, Rejection> {
        let now = (self.clock)();
        let approved = pipeline::check(&envelope, now, &self.node, &self.settings, &self.backends).await?;
        let accepted = pipeline::admit(envelope, approved, now, &self.backends).await;
        match &accepted {
            Ok(_) => tracing::info!("envelope accepted"),
            Err(rejection) => tracing::info!(code = %rejection.code, "envelope refused"),
        }
        accepted
    }
}

#[async_trait]
impl AuthorizerApi for Authorizer {
    async fn send_message(&self, envelope: Envelope) -> Result<AcceptedEnvelope, Rejection> {
        self.authorize(envelope).await
    }

    async fn signed_timestamp(&self) -> Result<String, Rejection> {
        Ok(self.node.signed_timestamp((self.clock)()).as_str().to_owned())
    }

    async fn node_address(&self) -> Result<String, Rejection> {
        Ok(self.node.address().to_string())
    }

    async fn ready(&self) -> Result<(), Rejection> {
        self.backends.store.ping().await.map_err(|e| Rejection::unavailable(&e))?;
        self.backends.admission.ping().await.map_err(|e| Rejection::unavailable(&e))
    }
}
