//! The node's life outside the API: `pm keygen`, an idempotent `pm bootstrap`,
//! the health endpoints, and a graceful SIGTERM after which a restart on the
//! same data directory serves every persona and message unchanged.

use crate::common::{self, bootstrap, data_dir_of, envelopes, TestNode, GENESIS_NICKNAME};
use nix::sys::signal::Signal;
use pm_models::keys::PersonaKey;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).expect("the file exists").permissions().mode() & 0o777
}

/// Every persona and message a test node holds, as the API serves them.
async fn snapshot(node: &TestNode, kim: &PersonaKey) -> (serde_json::Value, Vec<serde_json::Value>) {
    let genesis = node.genesis.address().to_string();
    let kim = kim.address().to_string();
    let personas = node
        .data(
            "query($g: Address, $k: Address) { \
             teleferic { persona { address pubkey nickname createdAt } } \
             g: persona(address: $g) { address pubkey nickname createdAt } \
             k: persona(address: $k) { address pubkey nickname createdAt } }",
            json!({ "g": genesis, "k": kim }),
        )
        .await;
    let mut messages = node.list_all("messageBySender", "sender", &genesis, 1000).await;
    messages.extend(node.list_all("messageBySender", "sender", &kim, 1000).await);
    (personas, messages)
}

#[tokio::test]
async fn keygen_writes_a_private_key_file_and_prints_its_address() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("someone.key");
    let output = common::pm().arg("keygen").arg("--out").arg(&path).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let key = pm::key_file::load(&path).expect("keygen writes a PKCS#8 Ed25519 PEM");
    assert_eq!(mode(&path), 0o600);
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(printed.contains(key.address().as_str()), "keygen prints the address: {printed:?}");
    let again = common::pm().arg("keygen").arg("--out").arg(&path).output().unwrap();
    assert!(!again.status.success(), "keygen refuses to overwrite a key file");
    assert_eq!(pm::key_file::load(&path).unwrap().address(), key.address(), "the first key is kept");
}

#[tokio::test]
async fn pubkey_prints_the_public_half_whose_address_is_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let key = PersonaKey::generate();
    let key_path = dir.path().join("someone.key");
    pm::key_file::save_new(&key, &key_path).unwrap();
    let output = common::pm().arg("pubkey").arg("--key").arg(&key_path).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8(output.stdout).unwrap();
    assert_eq!(printed.trim_end(), key.public().as_str());
    let pub_path = dir.path().join("someone.pub");
    std::fs::write(&pub_path, &printed).unwrap();
    let address = common::pm().arg("address").arg("--pubkey").arg(&pub_path).output().unwrap();
    assert_eq!(String::from_utf8(address.stdout).unwrap().trim(), key.address().as_str());
}

#[tokio::test]
async fn a_second_bootstrap_changes_nothing_and_a_restart_after_sigterm_keeps_all_data() {
    let dir = tempfile::tempdir().unwrap();
    let genesis_path = dir.path().join("genesis.key");
    let output = common::pm().arg("keygen").arg("--out").arg(&genesis_path).output().unwrap();
    assert!(output.status.success());
    let genesis = pm::key_file::load(&genesis_path).unwrap();
    let data_dir = data_dir_of(&dir);

    bootstrap(&data_dir, &genesis_path, GENESIS_NICKNAME);
    let node_key_path = data_dir.join("node.key");
    let node_key_text = std::fs::read(&node_key_path).expect("bootstrap creates DIR/node.key");
    assert_eq!(mode(&node_key_path), 0o600, "the node key is private");
    bootstrap(&data_dir, &genesis_path, GENESIS_NICKNAME);
    assert_eq!(std::fs::read(&node_key_path).unwrap(), node_key_text, "a second bootstrap keeps the node key");

    let mut node = TestNode::start(dir, genesis).await;
    let healthz = node.http.get(format!("{}/healthz", node.server.base)).send().await.unwrap();
    assert_eq!(healthz.status(), 200);
    assert_eq!(node.server.node_address, pm::key_file::load(&node_key_path).unwrap().address().to_string());

    let kim = node.register_new("Kim").await;
    let t = node.timestamp().await;
    let assertion = envelopes::assertion(&kim, &[node.genesis.public(), kim.public()], vec![], &t);
    node.send_ok(&assertion).await;

    let before = snapshot(&node, &kim).await;
    assert_eq!(before.1.len(), 3, "the invitation, kim's registration and kim's assertion");

    let status = node.server.stop_with(Signal::SIGTERM, Duration::from_secs(20));
    assert!(status.success(), "SIGTERM stops pm serve cleanly: {status}");

    // Bootstrap on a used data directory: exit 0, nothing changes.
    bootstrap(&node.data_dir(), &node.dir.path().join("genesis.key"), GENESIS_NICKNAME);
    assert_eq!(std::fs::read(&node_key_path).unwrap(), node_key_text);

    node.restart().await;
    let after = snapshot(&node, &kim).await;
    assert_eq!(after, before, "every persona and message is served unchanged after the restart");
    assert_eq!(node.persona("nickname", "KIM").await["address"], kim.address().to_string());
    // The restarted node takes new messages.
    let t = node.timestamp().await;
    node.send_ok(&envelopes::assertion(&kim, &[kim.public()], vec![], &t)).await;
}

#[tokio::test]
async fn a_gateway_whose_authorizer_and_reader_are_down_answers_unavailable_without_hanging() {
    // Nothing listens on a port we bound and released.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let dir = tempfile::tempdir().unwrap();
    let env =
        [("PM_ROLES__AUTHORIZER_URL".to_owned(), dead.clone()), ("PM_ROLES__READER_URL".to_owned(), dead.clone())];
    let gateway = common::Server::start_role("teleferic", dir.path(), &env);
    let http = common::http_client();
    let started = std::time::Instant::now();
    let query = "{ teleferic { signedTimestamp } p: persona(nickname: \"x\") { address } }";
    let answer = common::graphql_at(&http, &gateway.url, query, json!({})).await;
    let codes: Vec<&str> =
        answer["errors"].as_array().unwrap().iter().filter_map(|e| e["extensions"]["code"].as_str()).collect();
    assert_eq!(codes, ["UNAVAILABLE", "UNAVAILABLE"], "{answer}");
    // A well-formed envelope; no node can check it, as none is reachable.
    let someone = PersonaKey::generate();
    let t = pm_models::signed_timestamp::SignedTimestamp::issue(&someone, pm_models::time::Micros::now());
    let envelope = envelopes::assertion(&someone, &[someone.public()], vec![], &t).to_json_value();
    let mutation = "mutation($e: MessageEnvelopeInput!) { sendMessage(envelope: $e) { messageHash } }";
    let sent = common::graphql_at(&http, &gateway.url, mutation, json!({ "e": envelope })).await;
    assert_eq!(sent["errors"][0]["extensions"]["code"], "UNAVAILABLE", "{sent}");
    assert!(started.elapsed() < Duration::from_secs(20), "refusals come fast, not after a hang");
    let ready = http.get(format!("{}/readyz", gateway.base)).send().await.unwrap();
    assert_eq!(ready.status(), 503);
}
