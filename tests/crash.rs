//! Crash test of `pm serve` (PROTOCOL.md sections 6 and 8): the node is
//! flooded with valid envelopes from concurrent clients, killed with SIGKILL
//! mid-flood, and restarted on the same data directory. Every envelope that
//! got a success answer must then be readable, and listed exactly once.
//!
//! Run with `cargo test --test crash -- --nocapture` to see the figures.

/// The crash test runs on `pm serve` and the embedded backend.
pub const DISTRIBUTED: bool = false;

mod common;

use common::{envelopes, spawn_node, TestNode};
use nix::sys::signal::Signal;
use pm_models::envelope::Envelope;
use pm_models::keys::PersonaKey;
use pm_models::signed_timestamp::SignedTimestamp;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 8;
const FLOOD_FOR: Duration = Duration::from_secs(2);
const MAX_ACCEPTED: usize = 5_000;
/// How long the restarted node may take to store everything it accepted.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// What one flooding client saw.
#[derive(Default)]
struct ClientLog {
    /// Hashes answered with an accepted envelope.
    accepted: Vec<String>,
    /// Hashes whose request failed without an answer (in flight at the kill).
    failed: Vec<String>,
    /// Refusals with a code: none is expected.
    refused: Vec<(String, String)>,
}

/// Sends assertions from genesis until told to stop or a request fails.
async fn flood(node: Arc<FloodTarget>, stop: Arc<AtomicBool>, accepted_total: Arc<AtomicUsize>) -> ClientLog {
    let mut log = ClientLog::default();
    while !stop.load(Ordering::Relaxed) {
        let envelope = envelopes::assertion(&node.genesis, &[node.genesis.public()], vec![], &node.t);
        match node.send(&envelope).await {
            Ok(Ok(_)) => {
                log.accepted.push(envelope.message_hash);
                accepted_total.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(code)) => log.refused.push((envelope.message_hash, code)),
            Err(_) => {
                log.failed.push(envelope.message_hash);
                break;
            }
        }
    }
    log
}

/// What the flooding clients share: the URL, genesis and one fresh `T`.
struct FloodTarget {
    http: reqwest::Client,
    url: String,
    genesis: PersonaKey,
    t: SignedTimestamp,
}

impl FloodTarget {
    /// `Err` when the request got no complete answer (the server is gone).
    async fn send(&self, envelope: &Envelope) -> Result<Result<Value, String>, reqwest::Error> {
        let body = json!({
            "query": "mutation($e: MessageEnvelopeInput!) { sendMessage(envelope: $e) { messageHash } }",
            "variables": { "e": envelope.to_json_value() },
        });
        let response: Value = self.http.post(&self.url).json(&body).send().await?.json().await?;
        Ok(common::sent_result(&response))
    }
}

/// Of `hashes`, those `messageByHash` finds, asked 100 at a time.
async fn readable(node: &TestNode, hashes: &[String]) -> HashSet<String> {
    let mut found = HashSet::new();
    for chunk in hashes.chunks(100) {
        let fields: String = chunk
            .iter()
            .enumerate()
            .map(|(i, hash)| format!("m{i}: messageByHash(messageHash: \"{hash}\") {{ messageHash }} "))
            .collect();
        let data = node.data(&format!("{{ {fields} }}"), json!({})).await;
        for (i, hash) in chunk.iter().enumerate() {
            match &data[format!("m{i}")] {
                Value::Null => {}
                message => {
                    assert_eq!(message["messageHash"], hash.as_str());
                    found.insert(hash.clone());
                }
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_envelope_accepted_before_a_sigkill_is_stored_exactly_once_after_a_restart() {
    let mut node = spawn_node().await;
    let target = Arc::new(FloodTarget {
        http: common::http_client(),
        url: node.server.url.clone(),
        genesis: node.genesis.clone(),
        t: node.timestamp().await,
    });

    // Flood, then SIGKILL the server mid-flood.
    let stop = Arc::new(AtomicBool::new(false));
    let accepted_total = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> =
        (0..CLIENTS).map(|_| tokio::spawn(flood(target.clone(), stop.clone(), accepted_total.clone()))).collect();
    let started = Instant::now();
    while started.elapsed() < FLOOD_FOR && accepted_total.load(Ordering::Relaxed) < MAX_ACCEPTED {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = node.server.stop_with(Signal::SIGKILL, Duration::from_secs(10));
    let flooded_for = started.elapsed();
    assert_eq!(status.code(), None, "pm serve died of the signal: {status}");
    stop.store(true, Ordering::Relaxed);
    let mut logs = Vec::new();
    for client in clients {
        logs.push(tokio::time::timeout(Duration::from_secs(90), client).await.expect("clients stop").unwrap());
    }
    let accepted: Vec<String> = logs.iter().flat_map(|l| l.accepted.iter().cloned()).collect();
    let failed: Vec<String> = logs.iter().flat_map(|l| l.failed.iter().cloned()).collect();
    let refused: Vec<(String, String)> = logs.iter().flat_map(|l| l.refused.iter().cloned()).collect();
    assert!(refused.is_empty(), "valid envelopes were refused: {refused:?}");
    assert!(!accepted.is_empty(), "the flood got no envelope accepted");
    assert_eq!(accepted.iter().collect::<HashSet<_>>().len(), accepted.len(), "every flooded envelope is new");

    // Restart on the same directory; wait until everything accepted is readable.
    node.restart().await;
    let deadline = Instant::now() + RECOVERY_TIMEOUT;
    let mut found = readable(&node, &accepted).await;
    let readable_at_restart = found.len();
    while found.len() < accepted.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        found = readable(&node, &accepted).await;
    }
    // The writer is FIFO: once a new message is stored, nothing queued before it is pending.
    node.sentinel().await;
    let found = readable(&node, &accepted).await;

    // List genesis' messages page by page and count each hash.
    let listed = node.list_all("messageBySender", "sender", &node.genesis.address().to_string(), 1000).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for message in &listed {
        *counts.entry(message["messageHash"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    let listed_once = accepted.iter().filter(|h| counts.get(*h) == Some(&1)).count();
    let sent: HashSet<&String> = accepted.iter().chain(&failed).collect();
    let unknown: Vec<&String> = counts.keys().filter(|h| !sent.contains(h)).collect();
    // Stored although the client saw no answer: accepted just before the kill.
    let failed_but_stored = failed.iter().filter(|h| counts.contains_key(*h)).count();

    println!("crash test: flooded {flooded_for:?} with {CLIENTS} clients, then SIGKILL");
    println!("  accepted (success answers):     {}", accepted.len());
    println!("  readable as soon as restarted:  {readable_at_restart}");
    println!("  readable after restart:         {}", found.len());
    println!("  listed exactly once:            {listed_once}");
    println!("  duplicates in listing:          {duplicates}");
    println!("  in flight at kill (no answer):  {}", failed.len());
    println!("    of which stored anyway:       {failed_but_stored}");
    println!("  listed messages in all:         {}", listed.len());

    assert!(!accepted.is_empty(), "accepted > 0");
    let missing: Vec<&String> = accepted.iter().filter(|h| !found.contains(*h)).collect();
    assert_eq!(found.len(), accepted.len(), "accepted but not readable after restart: {missing:?}");
    assert_eq!(duplicates, 0, "no message is listed twice");
    assert_eq!(listed_once, accepted.len(), "every accepted message is listed exactly once");
    // Genesis sent nothing else but the sentinel.
    assert_eq!(unknown.len(), 1, "only the sentinel was stored besides the flood: {unknown:?}");
}
