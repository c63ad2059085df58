//! The embedded backend keeps the seam contracts: queue order, batches and
//! redelivery, all-or-nothing claims, group-committed admissions, idempotent
//! batch writes, reads in request order and ordered listings.

use pm_backends::embedded::EmbeddedBackend;
use pm_backends::*;
use pm_models::envelope::{AclRule, Container, ObjectEntry};
use pm_models::keys::PersonaKey;
use pm_models::records::{MessageRecord, PersonaRecord};
use pm_models::time::{Day, Micros};
use pm_models::{Address, Hash32, MessageHash};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

fn open() -> (tempfile::TempDir, EmbeddedBackend) {
    let dir = tempfile::tempdir().unwrap();
    let backend = EmbeddedBackend::open(&dir.path().join("ledger.redb")).unwrap();
    (dir, backend)
}

/// The address of persona number `n`.
fn address(n: u8) -> Address {
    PersonaKey::from_seed([n; 32]).address()
}

/// A message hash named by `label`.
fn hash(label: &str) -> MessageHash {
    MessageHash::of_message(label)
}

/// A message hash whose text starts with `prefix` (padded with `A`), so that
/// hashes sort in the order of their prefixes.
fn sorted_hash(prefix: &str) -> MessageHash {
    MessageHash::parse(&format!("{prefix:A<43}=")).expect("a prefix of base64 characters")
}

fn queued(label: &str) -> QueuedMessage {
    QueuedMessage {
        message_id: hash(label),
        accepted_at: Micros(1),
        receipt: format!("receipt of {label}"),
        payload: label.as_bytes().to_vec(),
    }
}

/// Waits for the next batch of at most `max` deliveries.
async fn next_batch(consumer: &mut Box<dyn Consumer>, max: usize) -> Vec<Delivery> {
    let batch = tokio::time::timeout(Duration::from_secs(5), consumer.next_batch(max))
        .await
        .expect("a delivery arrives")
        .unwrap();
    assert!(!batch.is_empty() && batch.len() <= max.max(1), "a batch of {} for max {max}", batch.len());
    batch
}

/// Waits for the next delivery.
async fn next(consumer: &mut Box<dyn Consumer>) -> Delivery {
    let mut batch = next_batch(consumer, 1).await;
    assert_eq!(batch.len(), 1);
    batch.pop().unwrap()
}

fn ids(deliveries: &[Delivery]) -> Vec<MessageHash> {
    deliveries.iter().map(|d| d.message.message_id.clone()).collect()
}

fn tags(deliveries: &[Delivery]) -> Vec<u64> {
    deliveries.iter().map(|d| d.tag).collect()
}

fn hashes(labels: &[&str]) -> Vec<MessageHash> {
    labels.iter().map(|label| hash(label)).collect()
}

fn persona(n: u8, nickname: &str) -> PersonaRecord {
    PersonaRecord {
        address: address(n).to_string(),
        pubkey: format!("pem of {n}"),
        nickname: nickname.into(),
        created_at: Micros(1).to_rfc3339(),
        registration_hash: None,
        invite_hash: None,
        inviter: None,
    }
}

fn message(hash: &MessageHash, sender: &Address, micros: i64, readers: &[&Address]) -> MessageRecord {
    MessageRecord {
        persona_sender: sender.to_string(),
        persona_pubkey: "pem".into(),
        persona_nickname: "nick".into(),
        message_type: 2,
        hash: hash.to_string(),
        signature: "sig".into(),
        timestamp: "t".into(),
        dossier_hash: "d".into(),
        body_hash: "b".into(),
        acl: readers.iter().map(|r| AclRule { reader: r.to_string(), key: "k".into() }).collect(),
        objects: vec![],
        message: "m".into(),
        created_at: Micros(micros).to_rfc3339(),
        message_sign: "s".into(),
        receipt: Some(format!("receipt of {hash}")),
    }
}

fn batch(personas: &[PersonaRecord], messages: &[MessageRecord]) -> RecordBatch {
    RecordBatch { personas: personas.to_vec(), messages: messages.to_vec() }
}

/// Every listing of `filters` (up to 10 each), and the persona of each nickname.
async fn listings(
    backend: &EmbeddedBackend,
    filters: &[MessageFilter],
    nicknames: &[&str],
) -> (Vec<Vec<MessageHash>>, Vec<Option<Address>>) {
    let mut listed = Vec::new();
    for filter in filters {
        listed.push(backend.list_messages(filter, None, 10).await.unwrap());
    }
    let mut found = Vec::new();
    for nickname in nicknames {
        found.push(backend.persona_by_nickname(nickname).await.unwrap());
    }
    (listed, found)
}

// ----- the queue ------------------------------------------------------------

#[tokio::test]
async fn a_message_published_after_the_queue_drained_is_delivered() {
    let (_dir, backend) = open();
    let mut consumer = backend.consume().await.unwrap();
    backend.publish(&queued("first")).await.unwrap();
    let first = next(&mut consumer).await;
    consumer.ack(&[first.tag]).await.unwrap();
    backend.publish(&queued("second")).await.unwrap();
    assert_eq!(next(&mut consumer).await.message.message_id, hash("second"));
}

#[tokio::test]
async fn unsettled_messages_are_delivered_again_to_a_new_consumer_in_order() {
    let (_dir, backend) = open();
    for id in ["a", "b", "c"] {
        backend.publish(&queued(id)).await.unwrap();
    }
    let mut consumer = backend.consume().await.unwrap();
    let a = next(&mut consumer).await;
    consumer.ack(&[a.tag]).await.unwrap();
    assert_eq!(next(&mut consumer).await.message.message_id, hash("b"));
    drop(consumer);
    let mut again = backend.consume().await.unwrap();
    assert_eq!(next(&mut again).await.message.message_id, hash("b"));
    assert_eq!(next(&mut again).await.message.message_id, hash("c"));
}

#[tokio::test]
async fn a_requeued_message_comes_back_and_a_dead_lettered_one_does_not() {
    let (_dir, backend) = open();
    backend.publish(&queued("x")).await.unwrap();
    backend.publish(&queued("y")).await.unwrap();
    let mut consumer = backend.consume().await.unwrap();
    let x = next(&mut consumer).await;
    consumer.requeue(x.tag).await.unwrap();
    let x_again = next(&mut consumer).await;
    assert_eq!(x_again.message.message_id, hash("x"));
    assert_eq!((x.deliveries, x_again.deliveries), (1, 2), "a requeue counts as a delivery");
    assert!(x_again.redelivered);
    consumer.dead_letter(x_again.tag, "cannot be written").await.unwrap();
    let y = next(&mut consumer).await;
    assert_eq!(y.message.message_id, hash("y"));
    consumer.ack(&[y.tag]).await.unwrap();
    assert_eq!(backend.queue_depth().await.unwrap(), (0, 1));
}

#[tokio::test]
async fn a_batch_holds_at_most_max_of_the_queued_deliveries_in_publish_order() {
    let (_dir, backend) = open();
    let labels = ["a", "b", "c", "d", "e"];
    for label in labels {
        backend.publish(&queued(label)).await.unwrap();
    }
    let mut consumer = backend.consume().await.unwrap();
    let first = next_batch(&mut consumer, 3).await;
    assert_eq!(ids(&first), hashes(&labels[..3]));
    let rest = next_batch(&mut consumer, 10).await;
    assert_eq!(ids(&rest), hashes(&labels[3..]), "only what is queued, without waiting for more");
    let mut all_tags = tags(&first);
    all_tags.extend(tags(&rest));
    assert!(all_tags.windows(2).all(|pair| pair[0] < pair[1]), "tags increase: {all_tags:?}");
}

#[tokio::test]
async fn acking_a_whole_batch_removes_every_message_of_it() {
    let (_dir, backend) = open();
    for label in ["a", "b", "c"] {
        backend.publish(&queued(label)).await.unwrap();
    }
    let mut consumer = backend.consume().await.unwrap();
    let delivered = next_batch(&mut consumer, 3).await;
    assert_eq!(ids(&delivered), hashes(&["a", "b", "c"]));
    consumer.ack(&tags(&delivered)).await.unwrap();
    drop(consumer);
    assert_eq!(backend.queue_depth().await.unwrap(), (0, 0));
    backend.publish(&queued("later")).await.unwrap();
    let mut again = backend.consume().await.unwrap();
    assert_eq!(ids(&next_batch(&mut again, 10).await), hashes(&["later"]), "no acked message comes back");
}

#[tokio::test]
async fn acking_part_of_a_batch_removes_exactly_those_messages() {
    let (_dir, backend) = open();
    for label in ["a", "b", "c", "d"] {
        backend.publish(&queued(label)).await.unwrap();
    }
    let mut consumer = backend.consume().await.unwrap();
    let delivered = next_batch(&mut consumer, 4).await;
    assert_eq!(ids(&delivered), hashes(&["a", "b", "c", "d"]));
    consumer.ack(&[delivered[0].tag, delivered[1].tag, delivered[3].tag]).await.unwrap();
    drop(consumer);
    assert_eq!(backend.queue_depth().await.unwrap(), (1, 0));
    let mut again = backend.consume().await.unwrap();
    assert_eq!(ids(&next_batch(&mut again, 10).await), hashes(&["c"]));
}

#[tokio::test]
async fn the_receipt_and_the_message_travel_through_the_queue_unchanged() {
    let (_dir, backend) = open();
    let published = QueuedMessage {
        message_id: hash("published"),
        accepted_at: Micros(1_717_171_717_123_456),
        receipt: "R of published: ✓ any text".into(),
        payload: vec![0x83, 0x00, 0xc1, 0xff],
    };
    let admitted = QueuedMessage { receipt: "R of admitted".into(), ..queued("admitted") };
    backend.publish(&published).await.unwrap();
    let claims = [ClaimKey::Message(admitted.message_id.clone())];
    assert_eq!(backend.admit(&claims, &admitted).await.unwrap(), ClaimOutcome::Claimed);
    let mut consumer = backend.consume().await.unwrap();
    let mut received = next_batch(&mut consumer, 2).await;
    if received.len() == 1 {
        received.extend(next_batch(&mut consumer, 1).await);
    }
    let messages: Vec<QueuedMessage> = received.into_iter().map(|d| d.message).collect();
    assert_eq!(messages, [published, admitted]);
}

// ----- claims and admission ---------------------------------------------------

#[tokio::test]
async fn claims_are_taken_all_or_none_and_released_only_by_their_holder() {
    let (_dir, backend) = open();
    let nick = ClaimKey::Nickname("alice".into());
    let key_a = ClaimKey::Key(address(1));
    let key_b = ClaimKey::Key(address(2));
    assert_eq!(backend.claim(&[key_a.clone(), nick.clone()], "m1").await.unwrap(), ClaimOutcome::Claimed);
    assert_eq!(
        backend.claim(&[key_b.clone(), nick.clone()], "m2").await.unwrap(),
        ClaimOutcome::Conflict(nick.clone())
    );
    assert_eq!(backend.holder(&key_b).await.unwrap(), None, "a losing claim takes nothing");
    assert_eq!(
        backend.claim(std::slice::from_ref(&key_a), "m1").await.unwrap(),
        ClaimOutcome::Conflict(key_a.clone()),
        "a claim is put-if-absent, even for its holder"
    );
    backend.release(std::slice::from_ref(&nick), "m2").await.unwrap();
    assert_eq!(backend.holder(&nick).await.unwrap().as_deref(), Some("m1"));
    backend.release(&[nick.clone(), key_a.clone()], "m1").await.unwrap();
    assert_eq!(backend.holder(&nick).await.unwrap(), None);
}

#[tokio::test]
async fn admission_queues_only_when_every_claim_is_free() {
    let (_dir, backend) = open();
    let claims = [ClaimKey::Message(hash("h1"))];
    assert_eq!(backend.admit(&claims, &queued("h1")).await.unwrap(), ClaimOutcome::Claimed);
    assert_eq!(
        backend.admit(&claims, &queued("h1")).await.unwrap(),
        ClaimOutcome::Conflict(ClaimKey::Message(hash("h1"))),
        "the same envelope is admitted once"
    );
    assert_eq!(
        backend.admit(&[ClaimKey::Message(hash("h1"))], &queued("h2")).await.unwrap(),
        ClaimOutcome::Conflict(ClaimKey::Message(hash("h1")))
    );
    assert_eq!(backend.queue_depth().await.unwrap().0, 1, "conflicting envelopes were not queued");
}

#[tokio::test]
async fn an_admission_on_a_file_that_is_the_whole_node_stores_its_records_and_queues_nothing() {
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let events = pm_backends::events::LocalEvents::new();
    let backend = EmbeddedBackend::open_with(&dir.path().join("ledger.redb"), Some(events.clone())).unwrap();
    assert!(backend.stores_records());
    let mut announced = events.subscribe().await.unwrap();
    let (alice, bob) = (persona(1, "alice"), address(2));
    let sender = Address::parse(&alice.address).unwrap();
    let first = message(&hash("first"), &sender, 5, &[&bob]);
    let claims = [ClaimKey::Message(hash("first")), ClaimKey::Nickname("alice".into())];
    let records = batch(std::slice::from_ref(&alice), std::slice::from_ref(&first));
    let outcome = backend.admit_storing(&claims, &queued("first"), records.clone()).await.unwrap();
    assert_eq!(outcome, ClaimOutcome::Claimed);
    // Readable, listed and announced at once; nothing waits in the queue.
    assert_eq!(backend.messages(&[hash("first")]).await.unwrap(), [Some(first.clone())]);
    assert_eq!(backend.personas(std::slice::from_ref(&sender)).await.unwrap(), [Some(alice.clone())]);
    assert_eq!(backend.persona_by_nickname("alice").await.unwrap(), Some(sender.clone()));
    assert_eq!(backend.list_messages(&MessageFilter::Reader(bob), None, 10).await.unwrap(), [hash("first")]);
    assert_eq!(announced.next().await, Some(vec![hash("first")]));
    assert_eq!(backend.queue_depth().await.unwrap(), (0, 0));
    // The stored row is the message's claim: no claim row is written for
    // it, and the same hash is refused again, as is one an admission queued.
    assert_eq!(backend.holder(&ClaimKey::Message(hash("first"))).await.unwrap(), None);
    assert_eq!(
        backend.holder(&ClaimKey::Nickname("alice".into())).await.unwrap().as_deref(),
        Some(hash("first").as_str())
    );
    let again = [ClaimKey::Message(hash("first"))];
    let outcome = backend.admit_storing(&again, &queued("first"), records.clone()).await.unwrap();
    assert_eq!(outcome, ClaimOutcome::Conflict(ClaimKey::Message(hash("first"))));
    let queued_before = [ClaimKey::Message(hash("queued"))];
    assert_eq!(backend.admit(&queued_before, &queued("queued")).await.unwrap(), ClaimOutcome::Claimed);
    let queued_records = batch(&[], &[message(&hash("queued"), &sender, 7, &[])]);
    let outcome = backend.admit_storing(&queued_before, &queued("queued"), queued_records).await.unwrap();
    assert_eq!(outcome, ClaimOutcome::Conflict(ClaimKey::Message(hash("queued"))));
    assert_eq!(backend.queue_depth().await.unwrap(), (1, 0));
    let mut consumer = backend.consume().await.unwrap();
    assert_eq!(next(&mut consumer).await.message, queued("queued"), "the one admission that was queued");

    // A conflict stores nothing, announces nothing.
    let rival = message(&hash("rival"), &sender, 6, &[]);
    let outcome = backend
        .admit_storing(
            &[ClaimKey::Message(hash("rival")), ClaimKey::Nickname("alice".into())],
            &queued("rival"),
            batch(&[], std::slice::from_ref(&rival)),
        )
        .await
        .unwrap();
    assert_eq!(outcome, ClaimOutcome::Conflict(ClaimKey::Nickname("alice".into())));
    assert_eq!(backend.messages(&[hash("rival")]).await.unwrap(), [None]);
    assert_eq!(backend.holder(&ClaimKey::Message(hash("rival"))).await.unwrap(), None);
    let nothing = tokio::time::timeout(Duration::from_millis(100), announced.next()).await;
    assert!(nothing.is_err(), "no notice for a conflict");

    // A file opened for a node whose index or queue lives elsewhere queues.
    drop(consumer);
    drop(backend);
    let queuing = EmbeddedBackend::open(&dir.path().join("other.redb")).unwrap();
    assert!(!queuing.stores_records());
    assert_eq!(queuing.admit_storing(&claims, &queued("first"), records).await.unwrap(), ClaimOutcome::Claimed);
    assert_eq!(queuing.messages(&[hash("first")]).await.unwrap(), [None]);
    assert_eq!(queuing.queue_depth().await.unwrap(), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_envelope_admitted_concurrently_is_stored_exactly_once() {
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let events = pm_backends::events::LocalEvents::new();
    let backend = EmbeddedBackend::open_with(&dir.path().join("ledger.redb"), Some(events.clone())).unwrap();
    let mut announced = events.subscribe().await.unwrap();
    let sender = address(1);
    // 10 envelopes, each sent by three racers at once.
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(30));
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let (backend, start) = (backend.clone(), start.clone());
            let label = format!("envelope-{}", i % 10);
            let records = batch(&[], &[message(&hash(&label), &sender, 10 + (i % 10) as i64, &[])]);
            tokio::spawn(async move {
                let keys = [ClaimKey::Message(hash(&label))];
                start.wait().await;
                backend.admit_storing(&keys, &queued(&label), records).await.unwrap()
            })
        })
        .collect();
    let outcomes: Vec<ClaimOutcome> = futures::future::join_all(tasks).await.into_iter().map(Result::unwrap).collect();
    let won = outcomes.iter().filter(|o| **o == ClaimOutcome::Claimed).count();
    assert_eq!(won, 10, "one racer of each envelope wins: {outcomes:?}");
    let hashes: Vec<MessageHash> = (0..10).map(|i| hash(&format!("envelope-{i}"))).collect();
    assert!(backend.messages(&hashes).await.unwrap().iter().all(Option::is_some));
    let listed = backend.list_messages(&MessageFilter::Sender(sender), None, 100).await.unwrap();
    assert_eq!(listed.len(), 10, "each listed once: {listed:?}");
    let mut notices = Vec::new();
    while notices.len() < 10 {
        notices.extend(tokio::time::timeout(Duration::from_secs(5), announced.next()).await.unwrap().unwrap());
    }
    notices.sort();
    let mut expected = hashes.clone();
    expected.sort();
    assert_eq!(notices, expected, "each announced once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_admissions_admit_exactly_one_racer_per_claim_and_queue_each_winner_once() {
    let (_dir, backend) = open();
    // 50 envelopes: 30 race in threes for 10 nicknames, 20 claim nicknames of their own.
    let requests: Vec<(String, QueuedMessage)> = (0..50)
        .map(|i| {
            let nickname = if i < 30 { format!("contested-{}", i % 10) } else { format!("alone-{i}") };
            (nickname, queued(&format!("envelope-{i}")))
        })
        .collect();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .iter()
        .cloned()
        .map(|(nickname, message)| {
            let (backend, start) = (backend.clone(), start.clone());
            tokio::spawn(async move {
                let keys = [ClaimKey::Message(message.message_id.clone()), ClaimKey::Nickname(nickname)];
                start.wait().await;
                backend.admit(&keys, &message).await
            })
        })
        .collect();
    let outcomes: Vec<ClaimOutcome> =
        futures::future::join_all(tasks).await.into_iter().map(|joined| joined.unwrap().unwrap()).collect();

    let mut winners: HashMap<&str, &QueuedMessage> = HashMap::new();
    for ((nickname, message), outcome) in requests.iter().zip(&outcomes) {
        match outcome {
            ClaimOutcome::Claimed => {
                assert!(winners.insert(nickname.as_str(), message).is_none(), "two envelopes won nickname {nickname}");
            }
            ClaimOutcome::Conflict(key) => {
                assert_eq!(*key, ClaimKey::Nickname(nickname.clone()), "a loser conflicts on the nickname");
                let own = ClaimKey::Message(message.message_id.clone());
                assert_eq!(backend.holder(&own).await.unwrap(), None, "a loser takes none of its claims");
            }
        }
    }
    let nicknames: HashSet<&str> = requests.iter().map(|(nickname, _)| nickname.as_str()).collect();
    assert_eq!(winners.len(), nicknames.len(), "every nickname has exactly one winner");
    for (nickname, message) in &winners {
        let holder = backend.holder(&ClaimKey::Nickname((*nickname).to_owned())).await.unwrap();
        assert_eq!(holder.as_deref(), Some(message.message_id.as_str()));
    }

    assert_eq!(backend.queue_depth().await.unwrap(), (winners.len() as u64, 0), "losers queue nothing");
    let mut consumer = backend.consume().await.unwrap();
    let mut queued_messages = Vec::new();
    while queued_messages.len() < winners.len() {
        queued_messages.extend(next_batch(&mut consumer, 100).await.into_iter().map(|d| d.message));
    }
    let mut expected: Vec<QueuedMessage> = winners.into_values().cloned().collect();
    let by_id = |m: &QueuedMessage| m.message_id.clone();
    expected.sort_by_key(by_id);
    queued_messages.sort_by_key(by_id);
    assert_eq!(queued_messages, expected, "every winner is queued exactly once");
}

#[tokio::test]
async fn a_dropped_backend_closes_its_file_and_a_reopened_one_finds_its_queue_and_claims() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.redb");
    let backend = EmbeddedBackend::open(&path).unwrap();
    let claims = [ClaimKey::Message(hash("kept"))];
    assert_eq!(backend.admit(&claims, &queued("kept")).await.unwrap(), ClaimOutcome::Claimed);
    let clone = backend.clone();
    drop(backend);
    assert_eq!(clone.queue_depth().await.unwrap(), (1, 0), "a clone keeps the backend open");
    drop(clone);
    let reopened = EmbeddedBackend::open(&path).expect("the file was closed with the last clone");
    assert_eq!(reopened.holder(&claims[0]).await.unwrap().as_deref(), Some(hash("kept").as_str()));
    let mut consumer = reopened.consume().await.unwrap();
    assert_eq!(next(&mut consumer).await.message, queued("kept"));
}

/// What a `SIGKILL` would leave: a copy of the file as it is on disk while
/// the backend still has it open, opened (and repaired) on its own.
fn crash_copy(dir: &tempfile::TempDir, path: &std::path::Path) -> EmbeddedBackend {
    let copy = dir.path().join(format!("crashed-{}.redb", std::process::id()));
    let _ = std::fs::remove_file(&copy);
    std::fs::copy(path, &copy).unwrap();
    EmbeddedBackend::open(&copy).expect("a crashed file opens")
}

#[tokio::test]
async fn the_writers_commits_without_fsync_never_lose_a_delivery_and_are_durable_once_the_queue_idles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.redb");
    let backend = EmbeddedBackend::open(&path).unwrap();
    let id = hash("kept");
    let claims = [ClaimKey::Message(id.clone())];
    assert_eq!(backend.admit(&claims, &queued("kept")).await.unwrap(), ClaimOutcome::Claimed);
    let mut consumer = backend.consume().await.unwrap();
    let delivery = next(&mut consumer).await;
    let record = message(&id, &address(1), 1, &[]);
    backend.write(&batch(&[], std::slice::from_ref(&record))).await.unwrap();
    consumer.ack(&[delivery.tag]).await.unwrap();
    assert_eq!(backend.message(&id).await.unwrap().as_ref(), Some(&record), "readable at once");

    // A crash now: the write is either stored or its delivery still queued.
    let crashed = crash_copy(&dir, &path);
    let stored = crashed.message(&id).await.unwrap().is_some();
    let (queued_now, _) = crashed.queue_depth().await.unwrap();
    assert!(stored || queued_now == 1, "a crash lost the delivery: neither stored nor queued");
    drop(crashed);

    // Once the queue has been idle, the consumer has made it all durable.
    let waited = tokio::time::timeout(Duration::from_millis(500), consumer.next_batch(1)).await;
    assert!(waited.is_err(), "nothing more to deliver");
    let crashed = crash_copy(&dir, &path);
    assert_eq!(crashed.message(&id).await.unwrap(), Some(record), "stored durably");
    assert_eq!(crashed.queue_depth().await.unwrap(), (0, 0), "and its acknowledgement too");
}

// ----- records and listings ---------------------------------------------------

#[tokio::test]
async fn listings_are_ordered_by_time_then_hash_and_rewrites_do_not_duplicate() {
    let (_dir, backend) = open();
    let (s1, s2, r) = (address(1), address(2), address(3));
    let (a, b, c, z) = (sorted_hash("A"), sorted_hash("B"), sorted_hash("C"), sorted_hash("Z"));
    let day = 1_700_000_000_000_000;
    for m in [message(&c, &s1, day + 5, &[&r]), message(&a, &s1, day + 5, &[&r]), message(&b, &s1, day + 1, &[])] {
        let one = batch(&[], &[m]);
        backend.put(&one).await.unwrap();
        backend.index(&one).await.unwrap();
        backend.index(&one).await.unwrap();
    }
    backend.index(&batch(&[], &[message(&z, &s2, day + 2, &[&r])])).await.unwrap();
    let by_sender = backend.list_messages(&MessageFilter::Sender(s1.clone()), None, 10).await.unwrap();
    assert_eq!(by_sender, [b.clone(), a.clone(), c.clone()]);
    let after_b = Cursor { created_at: Micros(day + 1), hash: b.clone() };
    let page = backend.list_messages(&MessageFilter::Sender(s1.clone()), Some(&after_b), 1).await.unwrap();
    assert_eq!(page, std::slice::from_ref(&a));
    let by_reader = backend.list_messages(&MessageFilter::Reader(r.clone()), None, 10).await.unwrap();
    assert_eq!(by_reader, [z.clone(), a.clone(), c.clone()]);
    let day = Day::parse(&Micros(day).to_rfc3339()[..10]).unwrap();
    let by_day = backend.list_messages(&MessageFilter::Day(day), None, 10).await.unwrap();
    assert_eq!(by_day, [b, z, a, c]);
    let other_day = Day::parse("2001-01-01").unwrap();
    assert!(backend.list_messages(&MessageFilter::Day(other_day), None, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn personas_round_trip_and_are_found_by_nickname_in_any_case() {
    let (_dir, backend) = open();
    let alice = persona(1, "Alice");
    let one = batch(std::slice::from_ref(&alice), &[]);
    assert_eq!(backend.persona(&address(1)).await.unwrap(), None);
    backend.put(&one).await.unwrap();
    backend.put(&one).await.unwrap();
    backend.index(&one).await.unwrap();
    assert_eq!(backend.persona(&address(1)).await.unwrap(), Some(alice));
    assert_eq!(backend.persona_by_nickname("alice").await.unwrap(), Some(address(1)));
}

#[tokio::test]
async fn personas_and_messages_are_read_in_request_order_with_none_for_the_missing() {
    let (_dir, backend) = open();
    let (first, second) = (persona(1, "First"), persona(2, "Second"));
    let (m1, m2) = (message(&hash("m1"), &address(1), 1, &[]), message(&hash("m2"), &address(2), 2, &[]));
    backend.put(&batch(&[first.clone(), second.clone()], &[m1.clone(), m2.clone()])).await.unwrap();

    let personas = backend.personas(&[address(2), address(9), address(1), address(2)]).await.unwrap();
    assert_eq!(personas, [Some(second.clone()), None, Some(first), Some(second)]);
    let messages = backend.messages(&[hash("missing"), hash("m2"), hash("m1")]).await.unwrap();
    assert_eq!(messages, [None, Some(m2.clone()), Some(m1)]);
    assert_eq!(backend.message(&hash("m2")).await.unwrap(), Some(m2));
    assert_eq!(backend.message(&hash("missing")).await.unwrap(), None);
    assert!(backend.personas(&[]).await.unwrap().is_empty());
    assert!(backend.messages(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_deliverys_records_are_indexed_and_stored_together_and_rewrites_change_nothing() {
    let (_dir, backend) = open();
    let (newcomer, old) = (address(1), address(2));
    let registration_hash = hash("registration");
    let persona = PersonaRecord {
        address: newcomer.to_string(),
        pubkey: "pem".into(),
        nickname: "Newcomer".into(),
        created_at: Micros(7).to_rfc3339(),
        registration_hash: Some(registration_hash.to_string()),
        invite_hash: Some(hash("invite").to_string()),
        inviter: Some(old.to_string()),
    };
    let registration = message(&registration_hash, &newcomer, 7, &[]);
    let records = batch(std::slice::from_ref(&persona), std::slice::from_ref(&registration));
    for _ in 0..2 {
        backend.write(&records).await.unwrap();
    }
    assert_eq!(backend.persona(&newcomer).await.unwrap(), Some(persona));
    assert_eq!(backend.persona_by_nickname("newcomer").await.unwrap(), Some(newcomer.clone()));
    assert_eq!(backend.message(&registration_hash).await.unwrap(), Some(registration));
    assert_eq!(backend.list_messages(&MessageFilter::Sender(newcomer), None, 10).await.unwrap(), [registration_hash]);
}

#[tokio::test]
async fn a_written_batch_of_several_records_is_all_readable_and_listed_and_rewriting_it_changes_nothing() {
    let (_dir, backend) = open();
    let (alice, bob, carol) = (persona(1, "Alice"), persona(2, "Bob"), persona(3, "Carol"));
    let (object, container) = (Hash32::of_text("object"), Hash32::of_text("container"));
    let (m1, m2, m3) = (sorted_hash("M1"), sorted_hash("M2"), sorted_hash("M3"));
    let at = 1_700_000_000_000_000;
    let mut with_object = message(&m2, &address(2), at + 2, &[&address(1), &address(3)]);
    with_object.objects = vec![ObjectEntry {
        object_hash: object.to_string(),
        meta_hashes: vec![Hash32::of_text("meta").to_string()],
        container: Some(Container {
            container_hash: container.to_string(),
            container_sign: "container sign".into(),
            object_container: "object container".into(),
        }),
    }];
    let messages =
        [message(&m1, &address(1), at + 1, &[&address(3)]), with_object, message(&m3, &address(1), at + 3, &[])];
    let records = batch(&[alice.clone(), bob.clone(), carol.clone()], &messages);

    let filters = [
        MessageFilter::Sender(address(1)),
        MessageFilter::Sender(address(2)),
        MessageFilter::Reader(address(1)),
        MessageFilter::Reader(address(3)),
        MessageFilter::Day(Day::parse(&Micros(at).to_rfc3339()[..10]).unwrap()),
        MessageFilter::ObjectHash(object),
        MessageFilter::ContainerHash(container),
    ];

    backend.write(&records).await.unwrap();
    let addresses = [address(1), address(2), address(3)];
    assert_eq!(backend.personas(&addresses).await.unwrap(), [Some(alice), Some(bob), Some(carol)]);
    let stored = backend.messages(&[m1.clone(), m2.clone(), m3.clone()]).await.unwrap();
    assert_eq!(stored, messages.clone().map(Some));
    let (found, nicknames) = listings(&backend, &filters, &["alice", "bob", "carol"]).await;
    assert_eq!(
        found,
        [
            vec![m1.clone(), m3.clone()],
            vec![m2.clone()],
            vec![m2.clone()],
            vec![m1.clone(), m2.clone()],
            vec![m1.clone(), m2.clone(), m3.clone()],
            vec![m2.clone()],
            vec![m2.clone()],
        ]
    );
    assert_eq!(nicknames, addresses.clone().map(Some).to_vec());

    backend.write(&records).await.unwrap();
    let again = listings(&backend, &filters, &["alice", "bob", "carol"]).await;
    assert_eq!(again, (found, nicknames), "a rewrite lists nothing twice");
    assert_eq!(backend.messages(&[m1, m2, m3]).await.unwrap(), messages.map(Some));
}

#[tokio::test]
async fn a_redeemed_invitation_is_known_after_indexing_and_after_reopening_a_file_from_before_that_index() {
    use pm_models::client::{invitation, registration};
    use pm_models::signed_timestamp::SignedTimestamp;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.redb");
    let (inviter, node) = (PersonaKey::from_seed([1; 32]), PersonaKey::from_seed([2; 32]));
    let t = SignedTimestamp::issue(&node, Micros(7));
    let invite = invitation(&inviter, &node.address(), "http://node", "Newcomer", "offering", &t);
    let invite_hash = MessageHash::parse(&invite.envelope.message_hash).unwrap();
    let newcomer = PersonaKey::from_seed([3; 32]);
    let node_key = node.public().verifying_key();
    let envelope =
        registration(&newcomer, "newcomer", invite_hash.as_str(), &invite.invite_key, "Newcomer", node_key, &t);
    let record = MessageRecord::from_envelope(&envelope, newcomer.public().as_str(), "newcomer", "", "", Micros(8), "");
    {
        let backend = EmbeddedBackend::open(&path).unwrap();
        assert!(!backend.invitation_redeemed(&invite_hash).await.unwrap());
        backend.write(&batch(&[], std::slice::from_ref(&record))).await.unwrap();
        assert!(backend.invitation_redeemed(&invite_hash).await.unwrap());
        assert!(!backend.invitation_redeemed(&hash("another invitation")).await.unwrap());
    }
    // A file written before the invitation index existed has no such table.
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        assert!(txn.delete_table(redb::TableDefinition::<&str, &str>::new("index_invite")).unwrap());
        txn.commit().unwrap();
    }
    let backend = EmbeddedBackend::open(&path).unwrap();
    assert!(backend.invitation_redeemed(&invite_hash).await.unwrap(), "opening the file rebuilt the index");
}
