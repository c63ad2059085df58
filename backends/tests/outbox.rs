//! Admission over two stores (claims here, the queue there) through the
//! outbox, and the sweeper that resolves what is left pending (PROTOCOL.md
//! section 8): whatever fails, within the grace period either the envelope
//! is stored or all of its claims are free, and a publish whose outcome is
//! unknown never frees claims a queued copy still needs.
//!
//! The claim store is the embedded one and, where the Thrift gateway is up,
//! HBase; the queue is the embedded one behind a stand-in that fails as told
//! (a publish that went out unconfirmed, one refused outright).

use async_trait::async_trait;
use pm_backends::embedded::EmbeddedBackend;
use pm_backends::hbase::HBaseStore;
use pm_backends::sweeper::{SweepReport, Sweeper};
use pm_backends::testsuite::{address, require, unique_prefix};
use pm_backends::*;
use pm_models::keys::PersonaKey;
use pm_models::time::Micros;
use pm_models::MessageHash;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

const GRACE: Duration = Duration::from_secs(60);

/// How the stand-in queue answers the next publishes.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Fault {
    None = 0,
    /// The message reaches the queue but no confirm comes back.
    Unconfirmed = 1,
    /// The broker refuses it (nothing queued).
    Refused = 2,
}

/// A queue that fails as told, over a real one.
struct FaultyQueue {
    inner: EmbeddedBackend,
    fault: AtomicU8,
}

impl FaultyQueue {
    fn set(&self, fault: Fault) {
        self.fault.store(fault as u8, Ordering::SeqCst);
    }
}

#[async_trait]
impl Queue for FaultyQueue {
    async fn publish(&self, message: &QueuedMessage) -> Result<(), BackendError> {
        match self.fault.load(Ordering::SeqCst) {
            1 => {
                self.inner.publish(message).await?;
                Err(BackendError::Unconfirmed("no confirm within the publish timeout".into()))
            }
            2 => Err(BackendError::Unavailable("the broker refused the message".into())),
            _ => self.inner.publish(message).await,
        }
    }
    async fn consume(&self) -> Result<Box<dyn Consumer>, BackendError> {
        self.inner.consume().await
    }
    async fn ping(&self) -> Result<(), BackendError> {
        Queue::ping(&self.inner).await
    }
}

struct Node {
    _dir: tempfile::TempDir,
    /// Holds the queue and the records the sweeper reads.
    queue_side: EmbeddedBackend,
    claims: Arc<dyn ClaimStore>,
    queue: Arc<FaultyQueue>,
    admission: OutboxAdmission,
    sweeper: Sweeper,
}

fn node_with(claims: Arc<dyn ClaimStore>) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let queue_side = EmbeddedBackend::open(&dir.path().join("queue.redb")).unwrap();
    let queue = Arc::new(FaultyQueue { inner: queue_side.clone(), fault: AtomicU8::new(0) });
    let admission = OutboxAdmission { claims: claims.clone(), queue: queue.clone() };
    let sweeper = Sweeper {
        claims: claims.clone(),
        queue: queue.clone(),
        store: Arc::new(queue_side.clone()),
        grace: GRACE,
        interval: Duration::from_secs(10),
    };
    Node { _dir: dir, queue_side, claims, queue, admission, sweeper }
}

/// Embedded claims in a file of their own (the queue is in another).
fn embedded_node() -> (tempfile::TempDir, Node) {
    let dir = tempfile::tempdir().unwrap();
    let claims = EmbeddedBackend::open(&dir.path().join("claims.redb")).unwrap();
    (dir, node_with(Arc::new(claims)))
}

/// A registration-like admission: message, key, nickname and invitation claims.
fn admission(label: &str, nickname: &str, at: Micros) -> (Vec<ClaimKey>, QueuedMessage) {
    let hash = MessageHash::of_message(label);
    let keys = vec![
        ClaimKey::Message(hash.clone()),
        ClaimKey::Key(PersonaKey::from_seed([label.bytes().fold(7u8, |a, b| a.wrapping_mul(31) ^ b); 32]).address()),
        ClaimKey::Nickname(nickname.to_owned()),
        ClaimKey::Invite(MessageHash::of_message(&format!("invitation of {label}"))),
    ];
    let message = QueuedMessage { message_id: hash, accepted_at: at, receipt: "R".into(), payload: label.into() };
    (keys, message)
}

impl Node {
    async fn holders(&self, keys: &[ClaimKey]) -> Vec<Option<String>> {
        let mut holders = Vec::new();
        for key in keys {
            holders.push(self.claims.holder(key).await.unwrap());
        }
        holders
    }

    async fn queued(&self) -> Vec<MessageHash> {
        let mut consumer = self.queue_side.consume().await.unwrap();
        let depth = self.queue_side.queue_depth().await.unwrap().0 as usize;
        if depth == 0 {
            return Vec::new();
        }
        let batch = tokio::time::timeout(Duration::from_secs(5), consumer.next_batch(depth)).await.unwrap().unwrap();
        batch.into_iter().map(|d| d.message.message_id).collect()
    }

    async fn pending(&self) -> usize {
        self.claims.pending_before(Micros(i64::MAX), 1000).await.unwrap().len()
    }

    /// A sweep as if the grace period had passed.
    async fn sweep_later(&self) -> SweepReport {
        self.sweeper.sweep(Micros(Micros::now().0 + GRACE.as_micros() as i64 + 1)).await.unwrap()
    }
}

async fn an_unconfirmed_publish_keeps_its_claims_and_the_sweeper_queues_it_again(node: Node) {
    let (keys, message) = admission("first", "dora", Micros::now());
    node.queue.set(Fault::Unconfirmed);
    let outcome = node.admission.admit(&keys, &message).await;
    assert!(matches!(outcome, Err(BackendError::Unconfirmed(_))), "{outcome:?}");
    let holder = Some(message.message_id.to_string());
    assert_eq!(node.holders(&keys).await, vec![holder; 4], "the claims stay with the envelope");

    // Defect 3: a second registration with the same nickname is refused,
    // since the first may still be stored.
    node.queue.set(Fault::None);
    let (mut rival_keys, rival) = admission("second", "dora", Micros::now());
    rival_keys[3] = keys[3].clone();
    let outcome = node.admission.admit(&rival_keys, &rival).await.unwrap();
    assert_eq!(outcome, ClaimOutcome::Conflict(keys[2].clone()));

    // Within the grace period nothing is touched; after it, the admission
    // is published again and forgotten.
    assert_eq!(node.sweeper.sweep(Micros::now()).await.unwrap(), SweepReport::default());
    assert_eq!(node.sweep_later().await, SweepReport { republished: 1, ..Default::default() });
    assert_eq!(node.pending().await, 0);
    let queued = node.queued().await;
    assert_eq!(queued, [message.message_id.clone(), message.message_id.clone()], "queued twice, stored once");
    assert_eq!(node.sweep_later().await, SweepReport::default(), "nothing is left pending");
}

#[tokio::test]
async fn embedded_claims_an_unconfirmed_publish_keeps_its_claims_and_the_sweeper_queues_it_again() {
    let (_dir, node) = embedded_node();
    an_unconfirmed_publish_keeps_its_claims_and_the_sweeper_queues_it_again(node).await;
}

async fn a_refused_publish_gives_the_claims_back_at_once(node: Node) {
    let (keys, message) = admission("refused", "erin", Micros::now());
    node.queue.set(Fault::Refused);
    let outcome = node.admission.admit(&keys, &message).await;
    assert!(matches!(outcome, Err(BackendError::Unavailable(_))), "{outcome:?}");
    assert_eq!(node.holders(&keys).await, vec![None; 4]);
    assert_eq!(node.pending().await, 0);
    node.queue.set(Fault::None);
    assert_eq!(node.admission.admit(&keys, &message).await.unwrap(), ClaimOutcome::Claimed, "a retry is admitted");
    assert_eq!(node.queued().await, [message.message_id]);
}

#[tokio::test]
async fn embedded_claims_a_refused_publish_gives_the_claims_back_at_once() {
    let (_dir, node) = embedded_node();
    a_refused_publish_gives_the_claims_back_at_once(node).await;
}

async fn a_crash_after_claiming_is_queued_by_the_sweeper_and_one_while_claiming_is_undone(node: Node) {
    // Crashed after taking every claim, before publishing.
    let (keys, claimed) = admission("claimed", "fay", Micros::now());
    let pending = PendingAdmission { message: claimed.clone(), keys: keys.clone() };
    node.claims.put_pending(&pending).await.unwrap();
    assert_eq!(node.claims.claim(&keys, claimed.message_id.as_str()).await.unwrap(), ClaimOutcome::Claimed);
    // Crashed halfway through claiming: two of four claims taken.
    let (half_keys, half) = admission("halfway", "gus", Micros::now());
    node.claims.put_pending(&PendingAdmission { message: half.clone(), keys: half_keys.clone() }).await.unwrap();
    node.claims.claim(&half_keys[..2], half.message_id.as_str()).await.unwrap();
    // Crashed after recording, before claiming anything.
    let (never_keys, never) = admission("never", "hal", Micros::now());
    node.claims.put_pending(&PendingAdmission { message: never, keys: never_keys.clone() }).await.unwrap();

    let report = node.sweep_later().await;
    assert_eq!(report, SweepReport { republished: 1, released: 2, ..Default::default() });
    assert_eq!(node.queued().await, [claimed.message_id], "the fully claimed one is queued");
    assert_eq!(node.holders(&half_keys).await, vec![None; 4], "the half-claimed one holds nothing");
    assert_eq!(node.holders(&never_keys).await, vec![None; 4]);
    assert_eq!(node.pending().await, 0);
}

#[tokio::test]
async fn embedded_claims_a_crash_after_claiming_is_queued_by_the_sweeper_and_one_while_claiming_is_undone() {
    let (_dir, node) = embedded_node();
    a_crash_after_claiming_is_queued_by_the_sweeper_and_one_while_claiming_is_undone(node).await;
}

#[tokio::test]
async fn a_pending_admission_whose_message_is_stored_is_only_forgotten() {
    let (_dir, node) = embedded_node();
    let (keys, message) = admission("stored", "ivy", Micros::now());
    node.claims.put_pending(&PendingAdmission { message: message.clone(), keys: keys.clone() }).await.unwrap();
    node.claims.claim(&keys, message.message_id.as_str()).await.unwrap();
    let record = pm_models::records::MessageRecord {
        persona_sender: PersonaKey::from_seed([1; 32]).address().to_string(),
        persona_pubkey: String::new(),
        persona_nickname: String::new(),
        message_type: 2,
        hash: message.message_id.to_string(),
        signature: String::new(),
        timestamp: String::new(),
        dossier_hash: String::new(),
        body_hash: String::new(),
        acl: vec![],
        objects: vec![],
        message: String::new(),
        created_at: Micros::now().to_rfc3339(),
        message_sign: String::new(),
        receipt: None,
    };
    RecordWriter::write(&node.queue_side, &RecordBatch { personas: vec![], messages: vec![record] }).await.unwrap();
    assert_eq!(node.sweep_later().await, SweepReport { stored: 1, ..Default::default() });
    assert!(node.queued().await.is_empty(), "nothing is queued again");
    assert_eq!(node.holders(&keys).await, vec![Some(message.message_id.to_string()); 4], "the claims stay");
}

// ----- the same with HBase holding the claims and the pending records -----

async fn hbase_node(label: &str) -> Option<(HBaseStore, Node)> {
    let gateway = address("PM_TEST_HBASE", "127.0.0.1:9090");
    if !require("hbase-thrift", &gateway) {
        return None;
    }
    let (host, port) = gateway.rsplit_once(':').expect("host:port");
    let settings = pm_backends::settings::HBaseSettings {
        host: host.to_owned(),
        port: port.parse().expect("a port"),
        table_prefix: unique_prefix(label),
        ..Default::default()
    };
    let store = HBaseStore::connect(settings).await.unwrap();
    store.create_tables().await.unwrap();
    Some((store.clone(), node_with(Arc::new(store))))
}

#[tokio::test]
async fn hbase_claims_an_unconfirmed_publish_keeps_its_claims_and_the_sweeper_queues_it_again() {
    let Some((store, node)) = hbase_node("outbox1").await else { return };
    an_unconfirmed_publish_keeps_its_claims_and_the_sweeper_queues_it_again(node).await;
    store.drop_tables().await.unwrap();
}

#[tokio::test]
async fn hbase_claims_a_refused_publish_gives_the_claims_back_at_once() {
    let Some((store, node)) = hbase_node("outbox2").await else { return };
    a_refused_publish_gives_the_claims_back_at_once(node).await;
    store.drop_tables().await.unwrap();
}

#[tokio::test]
async fn hbase_claims_a_crash_after_claiming_is_queued_by_the_sweeper_and_one_while_claiming_is_undone() {
    let Some((store, node)) = hbase_node("outbox3").await else { return };
    a_crash_after_claiming_is_queued_by_the_sweeper_and_one_while_claiming_is_undone(node).await;
    store.drop_tables().await.unwrap();
}
