//! The authorizer: decides whether an envelope enters the ledger.
//!
//! It runs every check of PROTOCOL.md sections 3–7 as a pure pipeline over
//! the seams, in the order section 7 gives, so the first failure decides the
//! code ([`pipeline`]). An accepted envelope's uniqueness claims (section 6)
//! are taken and the envelope queued as one step through [`Admission`]; the
//! answer is a success only once the queue durably holds it. A refused
//! envelope leaves nothing behind. It also holds the node key and issues
//! signed timestamps ([`node`]), and counts what it decides ([`metrics`]).

pub mod http;
pub mod metrics;
pub mod node;
mod personas;
pub mod pipeline;
mod private;
mod public;
mod rejections;
pub mod settings;
mod shape;

use async_trait::async_trait;
use pm_backends::{Admission, ClaimStore, RecordStore, SearchIndex};
use pm_models::api::{AcceptedEnvelope, AuthorizerApi};
use pm_models::envelope::Envelope;
use pm_models::time::Micros;
use pm_models::{Address, Rejection};
use std::sync::Arc;

pub use node::NodeIdentity;
pub use settings::AuthorizerSettings;

/// A source of the current time, injectable so tests can pin the clock.
pub type Clock = Arc<dyn Fn() -> Micros + Send + Sync>;

/// The backends the authorizer reads and writes.
#[derive(Clone)]
pub struct AuthorizerBackends {
    pub store: Arc<dyn RecordStore>,
    /// Nickname and redeemed-invitation lookups (uniqueness, section 6).
    pub index: Arc<dyn SearchIndex>,
    pub claims: Arc<dyn ClaimStore>,
    pub admission: Arc<dyn Admission>,
}

pub struct Authorizer {
    node: NodeIdentity,
    settings: AuthorizerSettings,
    backends: AuthorizerBackends,
    /// The senders' stored keys, parsed once.
    keys: personas::ParsedKeys,
    clock: Clock,
}

impl Authorizer {
    pub fn new(node: NodeIdentity, settings: AuthorizerSettings, mut backends: AuthorizerBackends) -> Self {
        metrics::register();
        // Senders and ACL readers are looked up once (personas never change).
        backends.store = Arc::new(personas::KnownPersonas::new(backends.store));
        Self { node, settings, backends, keys: personas::ParsedKeys::default(), clock: Arc::new(Micros::now) }
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
    // `hash` and `sender` are recorded once step 1 validated them: a client's
    // raw text never reaches the log (it could forge lines or fill disks).
    #[tracing::instrument(skip_all, fields(kind = %envelope.message_type, hash, sender))]
    pub async fn authorize(&self, envelope: Envelope) -> Result<AcceptedEnvelope, Rejection> {
        let (started, kind) = (std::time::Instant::now(), envelope.message_type);
        let now = (self.clock)();
        let accepted =
            match pipeline::check(&envelope, now, &self.node, &self.settings, &self.backends, &self.keys).await {
                Ok(approved) => pipeline::admit(envelope, approved, now, &self.node, &self.backends).await,
                Err(rejection) => Err(rejection),
            };
        match &accepted {
            Ok(_) => {
                tracing::info!("envelope accepted");
                metrics::accepted(kind, started.elapsed());
            }
            Err(rejection) => {
                tracing::info!(code = %rejection.code, "envelope refused");
                metrics::refused(rejection.code);
            }
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

    async fn node_address(&self) -> Result<Address, Rejection> {
        Ok(self.node.address())
    }

    async fn ready(&self) -> Result<(), Rejection> {
        self.backends.store.ping().await.map_err(rejections::unavailable)?;
        self.backends.admission.ping().await.map_err(rejections::unavailable)
    }
}

#[cfg(test)]
mod tests {
    //! The pipeline over the embedded backend: what is accepted carries a
    //! receipt and is queued once; what is refused gets the first failing
    //! check's code and queues nothing.

    use super::*;
    use pm_backends::embedded::EmbeddedBackend;
    use pm_backends::{Queue, RecordBatch, RecordWriter};
    use pm_models::client::{acl_rule_for, private_envelope, random_bytes, ContentParts};
    use pm_models::client::{invitation, registration};
    use pm_models::content::{BodyMap, Registration};
    use pm_models::keys::PersonaKey;
    use pm_models::records::{MessageRecord, PersonaRecord};
    use pm_models::signed_timestamp::SignedTimestamp;
    use pm_models::timestamped_signature::TimestampedSignature;
    use pm_models::{receipt, MessageHash, MessageType, RejectionCode};

    const NOW: Micros = Micros(1_700_000_000_000_000);

    struct Node {
        _dir: tempfile::TempDir,
        backend: EmbeddedBackend,
        node: PersonaKey,
        alice: PersonaKey,
        authorizer: Arc<Authorizer>,
    }

    async fn node() -> Node {
        node_on(None).await
    }

    /// A node whose admissions store the records themselves (`pm serve`).
    async fn storing_node() -> Node {
        node_on(Some(pm_backends::events::LocalEvents::new())).await
    }

    async fn node_on(stored: Option<pm_backends::events::LocalEvents>) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let backend = EmbeddedBackend::open_with(&dir.path().join("ledger.redb"), stored).unwrap();
        let (node, alice) = (PersonaKey::from_seed([1; 32]), PersonaKey::from_seed([2; 32]));
        let personas = [(&node, "Teleferic"), (&alice, "alice")]
            .map(|(key, nickname)| PersonaRecord::without_registration(key.public(), nickname, Micros(1)))
            .to_vec();
        RecordWriter::write(&backend, &RecordBatch { personas, messages: vec![] }).await.unwrap();
        let backends = AuthorizerBackends {
            store: Arc::new(backend.clone()),
            index: Arc::new(backend.clone()),
            claims: Arc::new(backend.clone()),
            admission: Arc::new(backend.clone()),
        };
        let authorizer = Authorizer::new(NodeIdentity::new(node.clone()), AuthorizerSettings::default(), backends)
            .with_clock(Arc::new(|| NOW));
        Node { _dir: dir, backend, node, alice, authorizer: Arc::new(authorizer) }
    }

    impl Node {
        fn assertion(&self) -> Envelope {
            let t = SignedTimestamp::issue(&self.node, NOW);
            let key: [u8; 32] = random_bytes();
            let acl = vec![acl_rule_for(self.alice.public().verifying_key(), &key)];
            let parts = ContentParts::new(0, &b64_nonce());
            private_envelope(&self.alice, MessageType::Assertion, &parts, &key, &random_bytes(), acl, vec![], &t)
        }

        async fn queued(&self) -> u64 {
            self.backend.queue_depth().await.unwrap().0
        }
    }

    fn b64_nonce() -> String {
        pm_models::codec::b64(random_bytes::<16>())
    }

    #[tokio::test]
    async fn an_accepted_envelope_is_queued_with_a_receipt_the_node_signed_at_acceptance() {
        let n = node().await;
        let envelope = n.assertion();
        let accepted = n.authorizer.authorize(envelope.clone()).await.unwrap();
        let hash = MessageHash::parse(&envelope.message_hash).unwrap();
        receipt::verify_at(&accepted.receipt, &hash, NOW, n.node.public().verifying_key()).unwrap();
        assert_eq!(accepted.created_at, NOW.to_rfc3339());
        let mut consumer = n.backend.consume().await.unwrap();
        let delivery = consumer.next_batch(10).await.unwrap();
        assert_eq!(delivery.len(), 1);
        assert_eq!(delivery[0].message.message_id, hash);
        assert_eq!(delivery[0].message.receipt, accepted.receipt, "the queue carries the same receipt");
    }

    #[tokio::test]
    async fn the_first_failing_check_decides_the_code_and_nothing_is_queued() {
        let n = node().await;
        // Unknown sender (step 3) and a wrong messageHash (step 4): step 3 decides.
        let mut envelope = n.assertion();
        envelope.sender = PersonaKey::from_seed([9; 32]).address().to_string();
        envelope.message_hash = MessageHash::of_message("something else").to_string();
        let refused = n.authorizer.authorize(envelope).await.unwrap_err();
        assert_eq!(refused.code, RejectionCode::UnknownSender);
        // A wrong messageHash (step 4) and a messageSign over it that does not verify (step 5): step 4 decides.
        let mut envelope = n.assertion();
        envelope.message_hash = MessageHash::of_message("another").to_string();
        assert_eq!(n.authorizer.authorize(envelope).await.unwrap_err().code, RejectionCode::MessageHashMismatch);
        assert_eq!(n.queued().await, 0);
    }

    #[tokio::test]
    async fn a_timestamp_outside_the_window_of_the_nodes_clock_is_refused() {
        let n = node().await;
        let settings = AuthorizerSettings::default();
        for (offset, code) in [
            (-(settings.max_age_secs as i64) * 1_000_000 - 1, RejectionCode::TimestampExpired),
            ((settings.max_skew_secs as i64) * 1_000_000 + 1, RejectionCode::TimestampInFuture),
        ] {
            let authorizer =
                Authorizer::new(NodeIdentity::new(n.node.clone()), settings, n.authorizer.backends.clone())
                    .with_clock(Arc::new(move || Micros(NOW.0 - offset)));
            assert_eq!(authorizer.authorize(n.assertion()).await.unwrap_err().code, code);
        }
    }

    #[tokio::test]
    async fn one_envelope_sent_many_times_at_once_is_accepted_once() {
        let n = node().await;
        let envelope = n.assertion();
        let attempts: Vec<_> = (0..16)
            .map(|_| {
                let (authorizer, envelope) = (n.authorizer.clone(), envelope.clone());
                tokio::spawn(async move { authorizer.authorize(envelope).await })
            })
            .collect();
        let mut accepted = 0;
        for attempt in attempts {
            match attempt.await.unwrap() {
                Ok(_) => accepted += 1,
                Err(refusal) => assert_eq!(refusal.code, RejectionCode::DuplicateMessage),
            }
        }
        assert_eq!(accepted, 1);
        assert_eq!(n.queued().await, 1);
    }

    /// Stores `envelope` as the writer would, without any claim (as rows
    /// from before claims existed were written).
    async fn store_without_claims(n: &Node, envelope: &Envelope, sender: &PersonaKey, personas: Vec<PersonaRecord>) {
        let message = MessageRecord::from_envelope(envelope, sender.public().as_str(), "someone", "", "", NOW, "");
        RecordWriter::write(&n.backend, &RecordBatch { personas, messages: vec![message] }).await.unwrap();
    }

    #[tokio::test]
    async fn a_message_stored_without_a_claim_is_a_duplicate_even_signed_again_with_a_fresh_t() {
        for n in [node().await, storing_node().await] {
            let envelope = n.assertion();
            store_without_claims(&n, &envelope, &n.alice, vec![]).await;
            let mut again = envelope.clone();
            let fresh = SignedTimestamp::issue(&n.node, Micros(NOW.0 - 1));
            again.message_sign =
                TimestampedSignature::sign(&n.alice, &envelope.message_hash, &fresh).as_str().to_owned();
            assert_ne!(again.message_sign, envelope.message_sign);
            for sent in [envelope, again] {
                assert_eq!(n.authorizer.authorize(sent).await.unwrap_err().code, RejectionCode::DuplicateMessage);
            }
            assert_eq!(n.queued().await, 0);
        }
    }

    #[tokio::test]
    async fn a_duplicate_that_a_later_step_refuses_gets_the_duplicates_code() {
        for n in [node().await, storing_node().await] {
            let envelope = n.assertion();
            n.authorizer.authorize(envelope.clone()).await.unwrap();
            // Signed by the node, not the sender: step (5) refuses it, step (2) first.
            let mut forged = envelope.clone();
            let t = SignedTimestamp::issue(&n.node, NOW);
            forged.message_sign = TimestampedSignature::sign(&n.node, &envelope.message_hash, &t).as_str().to_owned();
            assert_eq!(n.authorizer.authorize(forged).await.unwrap_err().code, RejectionCode::DuplicateMessage);
            // A fresh envelope refused by step (5) keeps step (5)'s code.
            let mut unsigned = n.assertion();
            unsigned.message_sign = TimestampedSignature::sign(&n.node, &unsigned.message_hash, &t).as_str().to_owned();
            assert_eq!(n.authorizer.authorize(unsigned).await.unwrap_err().code, RejectionCode::BadSignature);
        }
    }

    #[tokio::test]
    async fn stored_nicknames_and_redeemed_invitations_count_even_without_claims() {
        let n = node().await;
        let t = SignedTimestamp::issue(&n.node, NOW);
        let node_key = n.node.public().verifying_key();
        let invite = invitation(&n.alice, &n.node.address(), "http://node", "Bob", "offering", &t);
        store_without_claims(&n, &invite.envelope, &n.alice, vec![]).await;
        let register = |seed: u8, nickname: &str| {
            let key = PersonaKey::from_seed([seed; 32]);
            let envelope =
                registration(&key, nickname, &invite.envelope.message_hash, &invite.invite_key, "Bob", node_key, &t);
            (key, envelope)
        };

        // "alice" was stored without a nickname claim (see `node`).
        let (_, taking_alice) = register(3, "ALICE");
        assert_eq!(n.authorizer.authorize(taking_alice).await.unwrap_err().code, RejectionCode::NicknameTaken);

        // A registration stored without claims already redeemed the invitation.
        let (bob, earlier) = register(4, "bob");
        let content = MessageRecord::from_envelope(&earlier, "", "", "", "", NOW, "").public_content().unwrap();
        let body = Registration::from_body(&BodyMap::decode(&content.message_body).unwrap()).unwrap();
        let persona = PersonaRecord::from_registration(&body, &earlier.message_hash, None, NOW);
        store_without_claims(&n, &earlier, &bob, vec![persona]).await;
        let (_, again) = register(5, "carol");
        assert_eq!(n.authorizer.authorize(again).await.unwrap_err().code, RejectionCode::InviteAlreadyUsed);
        assert_eq!(n.queued().await, 0);
    }
}
