//! The live tail: a `messageAdded` subscriber (WebSocket,
//! `graphql-transport-ws`) sees exactly the messages stored after it
//! subscribed that match its filter, each once. On the distributed
//! deployment the two subscribers hang on different gateways, and the
//! messages are written by either of two writers.

use crate::common::{envelopes, spawn_node, TestNode, READABLE_TIMEOUT};
use futures::{SinkExt, StreamExt};
use pm_models::keys::PersonaKey;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Subscriber {
    socket: Socket,
}

impl Subscriber {
    async fn open(gateway_url: &str, variables: Value) -> Self {
        let url = pm::tail::websocket_url(gateway_url).unwrap();
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(pm::tail::PROTOCOL));
        let (socket, response) = tokio_tungstenite::connect_async(request).await.expect("the gateway takes WebSockets");
        assert_eq!(response.headers()["sec-websocket-protocol"], pm::tail::PROTOCOL);
        let mut subscriber = Self { socket };
        subscriber.send(json!({ "type": "connection_init", "payload": {} })).await;
        assert_eq!(subscriber.next_frame(READABLE_TIMEOUT).await.expect("an ack")["type"], "connection_ack");
        let query = "subscription($sender: Address, $reader: Address, $type: MessageType) {
            messageAdded(sender: $sender, reader: $reader, type: $type) { messageHash messageType sender { address } receipt }
        }";
        subscriber
            .send(json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": variables } }))
            .await;
        subscriber
    }

    async fn send(&mut self, value: Value) {
        self.socket.send(Message::text(value.to_string())).await.unwrap();
    }

    async fn next_frame(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next()).await.ok()?;
            match frame.expect("the connection stays open").unwrap() {
                Message::Text(text) => return Some(serde_json::from_str(text.as_str()).unwrap()),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// The hash of the next message, if one comes within `wait`.
    async fn next_hash(&mut self, wait: Duration) -> Option<String> {
        let frame = self.next_frame(wait).await?;
        assert_eq!(frame["type"], "next", "{frame}");
        let message = &frame["payload"]["data"]["messageAdded"];
        assert!(message["receipt"].is_string(), "a live message carries its receipt: {frame}");
        Some(message["messageHash"].as_str().unwrap().to_owned())
    }
}

async fn registered(node: &TestNode, nickname: &str) -> PersonaKey {
    let key = node.register_new(nickname).await;
    let deadline = Instant::now() + READABLE_TIMEOUT;
    while node.persona("address", key.address().as_str()).await.is_null() {
        assert!(Instant::now() < deadline, "{nickname} not readable in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    key
}

/// Sends an assertion from `sender` readable by `reader`; its hash.
async fn assert_from(node: &TestNode, sender: &PersonaKey, reader: &PersonaKey) -> String {
    let t = node.timestamp().await;
    let envelope = envelopes::assertion(sender, &[reader.public()], vec![], &t);
    node.send_ok(&envelope).await;
    envelope.message_hash.to_string()
}

#[tokio::test]
async fn a_subscriber_sees_exactly_the_matching_messages_stored_after_it_subscribed_each_once() {
    let node = spawn_node().await;
    let (alice, bob) = (registered(&node, "alice").await, registered(&node, "bob").await);
    let before = assert_from(&node, &alice, &alice).await;
    node.wait_readable(&before).await;

    // One subscriber follows alice; another, on another gateway where there
    // is one, follows every message.
    let second_gateway = node.gateways.first().map_or(node.server.url.clone(), |g| g.url.clone());
    let mut of_alice = Subscriber::open(&node.server.url, json!({ "sender": alice.address().as_str() })).await;
    let mut everything = Subscriber::open(&second_gateway, json!({})).await;

    // The subscriptions are live once a message sent now reaches both.
    let mut warm_ups = HashSet::new();
    for subscriber in [&mut of_alice, &mut everything] {
        let mut seen = None;
        for _ in 0..50 {
            warm_ups.insert(assert_from(&node, &alice, &alice).await);
            if let Some(hash) = subscriber.next_hash(Duration::from_millis(500)).await {
                seen = Some(hash);
                break;
            }
        }
        let seen = seen.expect("a warm-up message reached the subscriber");
        assert!(warm_ups.contains(&seen), "the first message seen is a warm-up");
    }

    let a1 = assert_from(&node, &alice, &bob).await;
    let b1 = assert_from(&node, &bob, &alice).await;
    let a2 = assert_from(&node, &alice, &alice).await;
    let end = assert_from(&node, &alice, &bob).await;

    for (subscriber, expected) in [
        (&mut of_alice, BTreeSet::from([a1.clone(), a2.clone(), end.clone()])),
        (&mut everything, BTreeSet::from([a1.clone(), b1.clone(), a2.clone(), end.clone()])),
    ] {
        let mut got = Vec::new();
        while !expected.iter().all(|hash| got.contains(hash)) {
            let hash = subscriber.next_hash(READABLE_TIMEOUT).await.expect("every expected message arrives");
            got.push(hash);
        }
        let unique: HashSet<&String> = got.iter().collect();
        assert_eq!(unique.len(), got.len(), "each message once: {got:?}");
        assert!(!got.contains(&before), "a message stored before subscribing is not sent");
        for hash in &got {
            assert!(expected.contains(hash) || warm_ups.contains(hash), "{hash} is not what was asked for");
        }
    }
    assert!(!BTreeSet::from([a1, a2, end]).contains(&b1));
}

#[tokio::test]
async fn a_bad_filter_is_bad_query_on_the_socket() {
    let node = spawn_node().await;
    let mut subscriber = Subscriber::open(&node.server.url, json!({ "sender": "not an address" })).await;
    let frame = subscriber.next_frame(READABLE_TIMEOUT).await.expect("an answer");
    assert_eq!(frame["type"], "next", "{frame}");
    assert_eq!(frame["payload"]["errors"][0]["extensions"]["code"], "BAD_QUERY", "{frame}");
}

#[tokio::test]
async fn pm_tail_prints_the_messages_it_follows() {
    let node = spawn_node().await;
    let alice = registered(&node, "alice").await;
    let mut tail = tokio::process::Command::from(crate::common::pm())
        .args(["tail", "--url", &node.server.url, "--sender", alice.address().as_str(), "--count", "1", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Messages until pm tail has followed one and exited.
    let mut sent = HashSet::new();
    let status = loop {
        sent.insert(assert_from(&node, &alice, &alice).await);
        if let Ok(status) = tokio::time::timeout(Duration::from_millis(500), tail.wait()).await {
            break status.unwrap();
        }
        assert!(sent.len() < 60, "pm tail printed nothing");
    };
    let output = tail.wait_with_output().await.unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let line: Value = serde_json::from_slice(&output.stdout).expect("one JSON line");
    assert!(sent.contains(line["messageHash"].as_str().unwrap()), "{line}");
    assert_eq!(line["sender"]["address"], alice.address().as_str());
    assert_eq!(line["messageType"], "ASSERTION");
}
