//! The embedded backend keeps the seam contracts: queue order and
//! redelivery, all-or-nothing claims, idempotent writes and ordered listings.

use pm_models::envelope::AclRule;
use pm_models::records::{MessageRecord, PersonaRecord};
use pm_models::seams::embedded::EmbeddedBackend;
use pm_models::seams::*;
use pm_models::time::{Day, Micros};
use std::time::Duration;

fn open() -> (tempfile::TempDir, EmbeddedBackend) {
    let dir = tempfile::tempdir().unwrap();
    let backend = EmbeddedBackend::open(&dir.path().join("ledger.redb")).unwrap();
    (dir, backend)
}

fn queued(id: &str) -> QueuedMessage {
    QueuedMessage { message_id: id.into(), accepted_at: Micros(1), payload: id.as_bytes().to_vec() }
}

async fn next(consumer: &mut Box<dyn Consumer>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(5), consumer.next()).await.expect("a delivery arrives").unwrap()
}

#[tokio::test]
async fn a_message_published_after_the_queue_drained_is_delivered() {
    let (_dir, backend) = open();
    let mut consumer = backend.consume().await.unwrap();
    backend.publish(&queued("first")).await.unwrap();
    let first = next(&mut consumer).await;
    consumer.ack(first.tag).await.unwrap();
    backend.publish(&queued("second")).await.unwrap();
    assert_eq!(next(&mut consumer).await.message.message_id, "second");
}

#[tokio::test]
async fn unsettled_messages_are_delivered_again_to_a_new_consumer_in_order() {
    let (_dir, backend) = open();
    for id in ["a", "b", "c"] {
        backend.publish(&queued(id)).await.unwrap();
    }
    let mut consumer = backend.consume().await.unwrap();
    let a = next(&mut consumer).await;
    consumer.ack(a.tag).await.unwrap();
    assert_eq!(next(&mut consumer).await.message.message_id, "b");
    drop(consumer);
    let mut again = backend.consume().await.unwrap();
    assert_eq!(next(&mut again).await.message.message_id, "b");
    assert_eq!(next(&mut again).await.message.message_id, "c");
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
    assert_eq!(x_again.message.message_id, "x");
    consumer.dead_letter(x_again.tag, "cannot be written").await.unwrap();
    let y = next(&mut consumer).await;
    assert_eq!(y.message.message_id, "y");
    consumer.ack(y.tag).await.unwrap();
    assert_eq!(backend.queue_depth().await.unwrap(), (0, 1));
}

#[tokio::test]
async fn claims_are_taken_all_or_none_and_released_only_by_their_holder() {
    let (_dir, backend) = open();
    let nick = ClaimKey::Nickname("alice".into());
    let key_a = ClaimKey::Key("addr-a".into());
    let key_b = ClaimKey::Key("addr-b".into());
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
    let claims = [ClaimKey::Message("h1".into())];
    assert_eq!(backend.admit(&claims, &queued("h1")).await.unwrap(), ClaimOutcome::Claimed);
    assert_eq!(
        backend.admit(&claims, &queued("h1")).await.unwrap(),
        ClaimOutcome::Conflict(ClaimKey::Message("h1".into())),
        "the same envelope is admitted once"
    );
    let other = QueuedMessage { message_id: "h2".into(), ..queued("h2") };
    assert_eq!(
        backend.admit(&[ClaimKey::Message("h1".into())], &other).await.unwrap(),
        ClaimOutcome::Conflict(ClaimKey::Message("h1".into()))
    );
    assert_eq!(backend.queue_depth().await.unwrap().0, 1, "conflicting envelopes were not queued");
}

fn message(hash: &str, sender: &str, micros: i64, readers: &[&str]) -> MessageRecord {
    MessageRecord {
        persona_sender: sender.into(),
        persona_pubkey: "pem".into(),
        persona_nickname: "nick".into(),
        message_type: 2,
        hash: hash.into(),
        signature: "sig".into(),
        timestamp: "t".into(),
        dossier_hash: "d".into(),
        body_hash: "b".into(),
        acl: readers.iter().map(|r| AclRule { reader: (*r).into(), key: "k".into() }).collect(),
        objects: vec![],
        message: "m".into(),
        created_at: Micros(micros).to_rfc3339(),
        message_sign: "s".into(),
    }
}

#[tokio::test]
async fn listings_are_ordered_by_time_then_hash_and_rewrites_do_not_duplicate() {
    let (_dir, backend) = open();
    let day = 1_700_000_000_000_000;
    for m in
        [message("C", "s1", day + 5, &["r"]), message("A", "s1", day + 5, &["r"]), message("B", "s1", day + 1, &[])]
    {
        backend.put_message(&m).await.unwrap();
        backend.index_message(&m).await.unwrap();
        backend.index_message(&m).await.unwrap();
    }
    backend.index_message(&message("Z", "s2", day + 2, &["r"])).await.unwrap();
    let by_sender = backend.list_messages(&MessageFilter::Sender("s1".into()), None, 10).await.unwrap();
    assert_eq!(by_sender, ["B", "A", "C"]);
    let after_b = Cursor { created_at: Micros(day + 1), hash: "B".into() };
    let page = backend.list_messages(&MessageFilter::Sender("s1".into()), Some(&after_b), 1).await.unwrap();
    assert_eq!(page, ["A"]);
    let by_reader = backend.list_messages(&MessageFilter::Reader("r".into()), None, 10).await.unwrap();
    assert_eq!(by_reader, ["Z", "A", "C"]);
    let day = Day::parse(&Micros(day).to_rfc3339()[..10]).unwrap();
    let by_day = backend.list_messages(&MessageFilter::Day(day), None, 10).await.unwrap();
    assert_eq!(by_day, ["B", "Z", "A", "C"]);
    let other_day = Day::parse("2001-01-01").unwrap();
    assert!(backend.list_messages(&MessageFilter::Day(other_day), None, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn personas_round_trip_and_are_found_by_nickname_in_any_case() {
    let (_dir, backend) = open();
    let persona = PersonaRecord {
        address: "addr".into(),
        pubkey: "pem".into(),
        nickname: "Alice".into(),
        created_at: Micros(1).to_rfc3339(),
        registration_hash: None,
        invite_hash: None,
        inviter: None,
    };
    assert_eq!(backend.persona("addr").await.unwrap(), None);
    backend.put_persona(&persona).await.unwrap();
    backend.put_persona(&persona).await.unwrap();
    backend.index_persona(&persona).await.unwrap();
    assert_eq!(backend.persona("addr").await.unwrap(), Some(persona));
    assert_eq!(backend.persona_by_nickname("alice").await.unwrap().as_deref(), Some("addr"));
}

#[tokio::test]
async fn a_deliverys_records_are_indexed_and_stored_together_and_rewrites_change_nothing() {
    let (_dir, backend) = open();
    let persona = PersonaRecord {
        address: "new".into(),
        pubkey: "pem".into(),
        nickname: "Newcomer".into(),
        created_at: Micros(7).to_rfc3339(),
        registration_hash: Some("R".into()),
        invite_hash: Some("I".into()),
        inviter: Some("old".into()),
    };
    let registration = message("R", "new", 7, &[]);
    for _ in 0..2 {
        backend.write_records(Some(&persona), &registration).await.unwrap();
    }
    assert_eq!(backend.persona("new").await.unwrap(), Some(persona));
    assert_eq!(backend.persona_by_nickname("newcomer").await.unwrap().as_deref(), Some("new"));
    assert_eq!(backend.message("R").await.unwrap(), Some(registration));
    assert_eq!(backend.list_messages(&MessageFilter::Sender("new".into()), None, 10).await.unwrap(), ["R"]);
}
