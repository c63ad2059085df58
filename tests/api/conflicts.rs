//! Envelopes racing for one claim (PROTOCOL.md section 6, "Uniqueness is
//! reserved at acceptance"): all requests of a race are fired at once, and
//! exactly one wins; the others get the code of the claim they lost, and
//! exactly one record is stored. Each race runs a few rounds, because one
//! round may happen not to overlap.

use crate::common::{envelopes, spawn_node, TestNode};
use futures::future::join_all;
use pm_models::envelope::Envelope;
use pm_models::keys::PersonaKey;
use serde_json::Value;

const ROUNDS: usize = 3;

/// Sends every envelope at the same moment; answers in the same order.
async fn race(node: &TestNode, envelopes: &[Envelope]) -> Vec<Result<Value, String>> {
    join_all(envelopes.iter().map(|envelope| node.send(envelope))).await
}

/// The index of the one winner; every other answer must be `code`.
fn one_winner(answers: &[Result<Value, String>], code: &str) -> usize {
    let winners: Vec<usize> = answers.iter().enumerate().filter(|(_, a)| a.is_ok()).map(|(i, _)| i).collect();
    assert_eq!(winners.len(), 1, "exactly one envelope is accepted: {answers:?}");
    for answer in answers.iter().filter(|a| a.is_err()) {
        assert_eq!(answer.as_ref().unwrap_err(), code, "the losers' code");
    }
    winners[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_registrations_racing_for_one_invitation_are_accepted_once() {
    let node = spawn_node().await;
    for round in 0..ROUNDS {
        let invitation = node.invite(&node.genesis, &format!("contested {round}")).await;
        let keys = [PersonaKey::generate(), PersonaKey::generate()];
        let mut registrations = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            registrations.push(node.registration(key, &format!("racer {round}-{i}"), &invitation).await);
        }
        let answers = race(&node, &registrations).await;
        let winner = one_winner(&answers, "INVITE_ALREADY_USED");
        let loser = 1 - winner;

        node.wait_readable(&registrations[winner].message_hash).await;
        node.sentinel().await;
        assert!(node.message(&registrations[loser].message_hash).await.is_null(), "round {round}: loser not stored");
        let stored = node.persona("address", &keys[winner].address().to_string()).await;
        assert_eq!(stored["nickname"], format!("racer {round}-{winner}"));
        assert!(node.persona("address", &keys[loser].address().to_string()).await.is_null());
        assert!(node.persona("nickname", &format!("racer {round}-{loser}")).await.is_null());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_registrations_racing_for_one_nickname_in_different_case_are_accepted_once() {
    let node = spawn_node().await;
    for round in 0..ROUNDS {
        let spellings = [format!("Carol {round}"), format!("cAROL {round}")];
        let keys = [PersonaKey::generate(), PersonaKey::generate()];
        let mut registrations = Vec::new();
        for (key, nickname) in keys.iter().zip(&spellings) {
            let invitation = node.invite(&node.genesis, &format!("invitation for {nickname}")).await;
            registrations.push(node.registration(key, nickname, &invitation).await);
        }
        let answers = race(&node, &registrations).await;
        let winner = one_winner(&answers, "NICKNAME_TAKEN");
        let loser = 1 - winner;

        node.wait_readable(&registrations[winner].message_hash).await;
        node.sentinel().await;
        assert!(node.message(&registrations[loser].message_hash).await.is_null());
        let by_nickname = node.persona("nickname", &format!("CAROL {round}")).await;
        assert_eq!(by_nickname["address"], keys[winner].address().to_string());
        assert_eq!(by_nickname["nickname"], spellings[winner].as_str(), "stored as the winner wrote it");
        assert!(node.persona("address", &keys[loser].address().to_string()).await.is_null());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_envelope_sent_three_times_at_once_is_accepted_once() {
    let node = spawn_node().await;
    let genesis = &node.genesis;
    let mut sent = Vec::new();
    for _ in 0..ROUNDS {
        let t = node.timestamp().await;
        let envelope = envelopes::assertion(genesis, &[genesis.public()], vec![], &t);
        let copies = vec![envelope.clone(), envelope.clone(), envelope.clone()];
        let answers = race(&node, &copies).await;
        one_winner(&answers, "DUPLICATE_MESSAGE");
        sent.push(envelope);
    }
    // An invitation, whose public content is decoded and checked, races the same way.
    let t = node.timestamp().await;
    let invitation = pm_models::client::invitation(
        genesis,
        &node.node_public.address(),
        &node.server.url,
        "thrice",
        "peer-mountain",
        &t,
    );
    let copies = vec![invitation.envelope.clone(), invitation.envelope.clone(), invitation.envelope.clone()];
    one_winner(&race(&node, &copies).await, "DUPLICATE_MESSAGE");
    sent.push(invitation.envelope);

    for envelope in &sent {
        node.wait_readable(&envelope.message_hash).await;
    }
    node.sentinel().await;
    let listed = node.list_all("messageBySender", "sender", &genesis.address().to_string(), 1000).await;
    for envelope in &sent {
        let copies = listed.iter().filter(|m| m["messageHash"] == envelope.message_hash.as_str()).count();
        assert_eq!(copies, 1, "{} is stored once", envelope.message_hash);
        assert_eq!(node.message(&envelope.message_hash).await["messageSign"], envelope.message_sign.as_str());
    }
    assert_eq!(listed.len(), sent.len() + 1, "only the sent messages and the sentinel are stored");
}
