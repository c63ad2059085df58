//! Sends the corpus's cases to a node and keeps the books: every case's
//! expected and actual code, every refused hash and registration, every
//! accepted envelope. A mismatch does not stop the run; all of them are
//! listed at the end, so one run shows everything that disagrees.
//!
//! At the end ([`Run::finish`]) a sentinel envelope goes through (the node
//! still serves others), then nothing refused may be stored: by hash
//! (`messageByHash`, `persona(address:)`) and by listing (`messageByDate`
//! over the days of the run must list exactly the envelopes accepted, each
//! once).

use crate::common::{error_code, TestNode, ENVELOPE_FIELDS};
use pm_models::codec::hash_text;
use pm_models::envelope::Envelope;
use pm_models::time::Micros;
use pm_models::MessageHash;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// What a case must get: a section 7 code, or acceptance.
pub const ACCEPTED: &str = "ACCEPTED";
/// A query that must succeed and find nothing (`null` or `[]`).
pub const NOT_FOUND: &str = "NOT_FOUND";

pub struct Run<'a> {
    pub node: &'a TestNode,
    /// Cases sent, by family.
    pub sizes: BTreeMap<String, usize>,
    /// Every code the node answered with.
    pub codes: BTreeSet<String>,
    mismatches: Vec<String>,
    refused_hashes: BTreeSet<String>,
    refused_addresses: BTreeSet<String>,
    accepted: Vec<Envelope>,
    accepted_addresses: BTreeSet<String>,
    /// Hashes the node stored before the corpus (setup), allowed in listings.
    setup_hashes: BTreeSet<String>,
    days: BTreeSet<String>,
}

impl<'a> Run<'a> {
    pub fn new(node: &'a TestNode) -> Self {
        let mut run = Run {
            node,
            sizes: BTreeMap::new(),
            codes: BTreeSet::new(),
            mismatches: vec![],
            refused_hashes: BTreeSet::new(),
            refused_addresses: BTreeSet::new(),
            accepted: vec![],
            accepted_addresses: BTreeSet::new(),
            setup_hashes: BTreeSet::new(),
            days: BTreeSet::new(),
        };
        run.note_day();
        run
    }

    fn note_day(&mut self) {
        let now = Micros::now().to_rfc3339();
        self.days.insert(now[..10].to_owned());
    }

    /// An envelope the setup stored (an invitation the corpus answers).
    pub fn setup(&mut self, hash: &str) {
        self.setup_hashes.insert(hash.to_owned());
    }

    /// An envelope accepted by a request made outside [`Run::send`].
    pub fn accept_outside(&mut self, envelope: &Envelope) {
        self.accepted.push(envelope.clone());
    }

    /// Records the outcome of one case.
    pub fn check(&mut self, family: &str, case: &str, expected: &str, got: &str) {
        *self.sizes.entry(family.to_owned()).or_default() += 1;
        self.codes.insert(got.to_owned());
        if expected != got {
            self.mismatches.push(format!("[{family}] {case}: expected {expected}, got {got}"));
        }
    }

    /// Sends `envelope` (as its JSON input) and checks the answer's code.
    pub async fn send(
        &mut self,
        family: &str,
        case: &str,
        envelope: &Envelope,
        registering: Option<&str>,
        expected: &str,
    ) {
        self.send_input(family, case, envelope.to_json_value(), Some(envelope), registering, expected).await;
    }

    /// Sends a raw `MessageEnvelopeInput`; `envelope` is what it holds, when
    /// it holds one, for the books.
    pub async fn send_input(
        &mut self,
        family: &str,
        case: &str,
        input: Value,
        envelope: Option<&Envelope>,
        registering: Option<&str>,
        expected: &str,
    ) {
        let got = match self.node.send_input(input).await {
            Ok(_) => ACCEPTED.to_owned(),
            Err(code) => code,
        };
        self.check(family, case, expected, &got);
        match (got == ACCEPTED, envelope) {
            (true, Some(envelope)) => {
                self.accepted.push(envelope.clone());
                if let Some(address) = registering {
                    self.accepted_addresses.insert(address.to_owned());
                }
            }
            (true, None) => self.mismatches.push(format!("[{family}] {case}: accepted, but not an envelope")),
            (false, Some(envelope)) => {
                self.refused_hashes.insert(envelope.message_hash.clone());
                self.refused_hashes.insert(hash_text(&envelope.message));
                if let Some(address) = registering {
                    self.refused_addresses.insert(address.to_owned());
                }
            }
            (false, None) => {}
        }
    }

    /// Posts a raw request body; returns the HTTP status and the first code.
    pub async fn post_raw(&self, content_type: &str, body: Vec<u8>, encoding: Option<&str>) -> (u16, String) {
        // A client that keeps no connection: the gateway may close one after
        // refusing a body, and the shared pool would hand it to the next request.
        let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("an HTTP client");
        let mut request = http.post(&self.node.server.url).header("content-type", content_type).body(body);
        if let Some(encoding) = encoding {
            request = request.header("content-encoding", encoding);
        }
        let response = request.send().await.expect("the gateway answers a hostile request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("an answer body");
        let answer: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not a GraphQL answer: {text:.300}"));
        let code =
            error_code(&answer).unwrap_or_else(|| if answer["data"].is_null() { "NO_DATA" } else { ACCEPTED }.into());
        (status, code)
    }

    /// Runs a query and checks it fails with `expected`, or succeeds without
    /// finding anything (`NOT_FOUND`).
    pub async fn query(&mut self, family: &str, case: &str, query: &str, variables: Value, expected: &str) {
        let response = self.node.graphql(query, variables).await;
        let got = match error_code(&response) {
            Some(code) => code,
            None => match response["data"].as_object().and_then(|data| data.values().next()) {
                Some(Value::Null) => NOT_FOUND.to_owned(),
                Some(Value::Array(items)) if items.is_empty() => NOT_FOUND.to_owned(),
                other => format!("FOUND {other:?}"),
            },
        };
        self.check(family, case, expected, &got);
    }

    pub fn total(&self) -> usize {
        self.sizes.values().sum()
    }

    /// The sentinel, then the books: no mismatch, nothing refused stored,
    /// every accepted envelope stored once and as sent.
    pub async fn finish(mut self) -> BTreeMap<String, usize> {
        let node = self.node;
        let t = node.timestamp().await;
        let sentinel = crate::common::envelopes::assertion(&node.genesis, &[node.genesis.public()], vec![], &t);
        let stored = node
            .send(&sentinel)
            .await
            .unwrap_or_else(|code| panic!("the node refused a valid envelope after the corpus: {code}"));
        assert_eq!(stored["messageHash"], sentinel.message_hash.as_str());
        self.accepted.push(sentinel);
        for envelope in &self.accepted {
            let found = node.wait_readable(&envelope.message_hash).await;
            assert_eq!(found["message"], envelope.message.as_str(), "{} is stored as sent", envelope.message_hash);
            assert_eq!(
                found["messageSign"],
                envelope.message_sign.as_str(),
                "{} keeps its messageSign",
                envelope.message_hash
            );
        }
        self.note_day();

        assert!(
            self.mismatches.is_empty(),
            "{} of {} cases got another answer than the corpus says:\n{}",
            self.mismatches.len(),
            self.total(),
            self.mismatches.join("\n")
        );

        // By hash.
        let accepted: BTreeSet<String> = self.accepted.iter().map(|e| e.message_hash.clone()).collect();
        let query = format!("query($h: SHA256!) {{ messageByHash(messageHash: $h) {{ {ENVELOPE_FIELDS} }} }}");
        for hash in self.refused_hashes.iter().filter(|h| MessageHash::parse(h).is_ok() && !accepted.contains(*h)) {
            let found = node.data(&query, json!({ "h": hash })).await["messageByHash"].clone();
            assert!(found.is_null(), "a refused envelope is stored under {hash}: {found}");
        }
        for address in self.refused_addresses.iter().filter(|a| !self.accepted_addresses.contains(*a)) {
            let found = node.persona("address", address).await;
            assert!(found.is_null(), "a refused registration created persona {address}: {found}");
        }
        for address in &self.accepted_addresses {
            assert!(!node.persona("address", address).await.is_null(), "accepted registration {address} is a persona");
        }

        // By listing: every day of the run lists exactly what was accepted.
        let mut listed: Vec<String> = Vec::new();
        for day in &self.days {
            for message in node.list_all("messageByDate", "date", day, 1000).await {
                listed.push(message["messageHash"].as_str().expect("a hash").to_owned());
            }
        }
        let listed_set: BTreeSet<String> = listed.iter().cloned().collect();
        assert_eq!(listed.len(), listed_set.len(), "no message is listed twice");
        let expected: BTreeSet<String> = accepted.union(&self.setup_hashes).cloned().collect();
        let unexpected: Vec<_> = listed_set.difference(&expected).collect();
        assert!(unexpected.is_empty(), "stored but never accepted: {unexpected:?}");
        let missing: Vec<_> = expected.difference(&listed_set).collect();
        assert!(missing.is_empty(), "accepted but not listed: {missing:?}");

        for (family, size) in &self.sizes {
            println!("hostile corpus: {family}: {size} cases");
        }
        println!("hostile corpus: {} cases, {} accepted as the corpus says", self.total(), self.accepted.len() - 1);
        self.sizes
    }
}
