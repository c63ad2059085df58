//! The envelopes of `shared/vectors/protocol.json`, made by an independent
//! implementation, are accepted by the authorizer at the clock the file
//! gives and stored by the writer with the columns it gives.

use pm_authorizer::{Authorizer, AuthorizerBackends, AuthorizerSettings, NodeIdentity};
use pm_backends::embedded::EmbeddedBackend;
use pm_backends::{Consumer, Queue, RecordBatch, RecordStore};
use pm_models::api::AuthorizerApi;
use pm_models::codec::unb64;
use pm_models::envelope::Envelope;
use pm_models::keys::PersonaKey;
use pm_models::time::Micros;
use pm_models::RejectionCode;
use serde_json::Value;
use std::sync::Arc;

fn vectors() -> Value {
    let path = format!("{}/tests/data/protocol.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn key(p: &Value, who: &str) -> PersonaKey {
    PersonaKey::from_seed(hex::decode(p["keys"][who]["seed_hex"].as_str().unwrap()).unwrap().try_into().unwrap())
}

struct Node {
    _dir: tempfile::TempDir,
    backend: EmbeddedBackend,
    authorizer: Authorizer,
    consumer: Box<dyn Consumer>,
}

impl Node {
    async fn at(p: &Value, now: Micros) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let backend = EmbeddedBackend::open(&dir.path().join("ledger.redb")).unwrap();
        let b = &backend;
        for (who, nickname) in [("node", "Teleferic"), ("genesis", "genesis")] {
            pm_writer::bootstrap::ensure_persona(b, b, b, key(p, who).public(), nickname, Micros(0)).await.unwrap();
        }
        let backends = AuthorizerBackends {
            store: Arc::new(backend.clone()),
            index: Arc::new(backend.clone()),
            claims: Arc::new(backend.clone()),
            admission: Arc::new(backend.clone()),
        };
        let authorizer = Authorizer::new(NodeIdentity::new(key(p, "node")), AuthorizerSettings::default(), backends)
            .with_clock(Arc::new(move || now));
        let consumer = backend.consume().await.unwrap();
        Self { _dir: dir, backend, authorizer, consumer }
    }

    /// Accepts the envelope, then writes what the queue delivers as the writer does.
    async fn accept_and_store(&mut self, envelope: &Envelope) {
        self.authorizer.send_message(envelope.clone()).await.unwrap();
        let delivery = self.consumer.next_batch(1).await.unwrap().pop().unwrap();
        assert_eq!(delivery.message.message_id.as_str(), envelope.message_hash);
        let plan = pm_writer::plan(&self.backend, &delivery.message).await.unwrap().unwrap();
        let batch = RecordBatch { personas: plan.persona.into_iter().collect(), messages: vec![plan.message] };
        self.backend.put(&batch).await.unwrap();
        self.consumer.ack(&[delivery.tag]).await.unwrap();
    }
}

fn envelope(p: &Value, which: &str) -> Envelope {
    Envelope::from_json_value(p[which]["envelope"].clone()).unwrap()
}

#[tokio::test]
async fn the_vector_invitation_registration_and_assertion_are_accepted_and_stored() {
    let p = vectors();
    let now = Micros::from_secs_f64(p["now"].as_f64().unwrap());
    let mut node = Node::at(&p, now).await;
    node.accept_and_store(&envelope(&p, "invitation")).await;
    node.accept_and_store(&envelope(&p, "registration")).await;
    let alice =
        node.backend.persona(&p["keys"]["alice"]["address"].as_str().unwrap().parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(alice.nickname, "alice");
    assert_eq!(alice.pubkey, p["keys"]["alice"]["pem"].as_str().unwrap());
    assert_eq!(alice.inviter.as_deref(), p["keys"]["genesis"]["address"].as_str());
    assert_eq!(alice.created_at, now.to_rfc3339());

    let assertion = envelope(&p, "assertion");
    node.accept_and_store(&assertion).await;
    let stored =
        node.backend.message(&pm_models::MessageHash::parse(&assertion.message_hash).unwrap()).await.unwrap().unwrap();
    let hex_of = |k: &str| hex::decode(p["assertion"][k].as_str().unwrap()).unwrap();
    assert_eq!(stored.acl_column(), hex_of("acl_column_msgpack_hex"));
    assert_eq!(stored.objects_column(), hex_of("objects_column_msgpack_hex"));
    assert_eq!(stored.message_sign, assertion.message_sign);
    assert_eq!(stored.persona_nickname, "alice");
    assert_eq!(stored.to_envelope().to_queue_payload(), hex_of("queue_payload_msgpack_hex"));
    let inner: Value = rmp_serde_like(&unb64(&assertion.message_sign).unwrap());
    assert_eq!(stored.signature, inner["signature"].as_str().unwrap());
    assert_eq!(stored.timestamp, inner["timestamp"].as_str().unwrap());
}

/// Decodes a msgpack map of strings into JSON, to read `messageSign`'s parts.
fn rmp_serde_like(bytes: &[u8]) -> Value {
    let map: std::collections::BTreeMap<String, String> = pm_models::codec::from_msgpack(bytes).unwrap();
    serde_json::to_value(map).unwrap()
}

#[tokio::test]
async fn the_vector_envelopes_expire_seven_minutes_after_their_timestamp() {
    let p = vectors();
    let now = Micros::from_secs_f64(p["now"].as_f64().unwrap());
    let node = Node::at(&p, Micros(now.0 + 420_000_001)).await;
    let refused = node.authorizer.send_message(envelope(&p, "invitation")).await.unwrap_err();
    assert_eq!(refused.code, RejectionCode::TimestampExpired);
    let node = Node::at(&p, Micros(now.0 - 30_000_001)).await;
    let refused = node.authorizer.send_message(envelope(&p, "invitation")).await.unwrap_err();
    assert_eq!(refused.code, RejectionCode::TimestampInFuture);
}

#[tokio::test]
async fn the_vector_registration_is_refused_until_its_invitation_is_stored() {
    let p = vectors();
    let now = Micros::from_secs_f64(p["now"].as_f64().unwrap());
    let node = Node::at(&p, now).await;
    let refused = node.authorizer.send_message(envelope(&p, "registration")).await.unwrap_err();
    assert_eq!(refused.code, RejectionCode::InviteNotFound);
}
