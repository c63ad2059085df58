//! The static corpus: the data files of `tests/hostile/`, each case sent to
//! a node in the slot it names, with the code it names.

use crate::common::spawn_node;
use crate::msgpack::{hex_pattern, mutate};
use crate::runner::{Run, ACCEPTED, NOT_FOUND};
use crate::slots::{Ctx, Fill, Slot};
use pm_models::RejectionCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;

/// A data file of `tests/hostile/`, one JSON value per line.
pub fn load<T: DeserializeOwned>(name: &str) -> Vec<T> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}:{}: {e}", n + 1)))
        .collect()
}

/// Bytes in every slot that holds msgpack (`msgpack.jsonl`).
#[derive(Deserialize)]
pub struct BytesCase {
    pub case: String,
    pub hex: String,
    pub codes: BTreeMap<String, String>,
}

/// Text in every slot that holds base64 (`base64.jsonl`).
#[derive(Deserialize)]
pub struct TextCase {
    pub case: String,
    pub text: String,
    pub codes: BTreeMap<String, String>,
}

/// A change to a fresh valid value (`mutations.jsonl`).
#[derive(Deserialize)]
pub struct MutationCase {
    pub case: String,
    pub op: String,
    pub codes: BTreeMap<String, String>,
}

/// A text repeated (`{"text": "2", "times": 80000}`).
#[derive(Deserialize)]
pub struct Repeat {
    pub text: String,
    pub times: usize,
}

/// An address text (`addresses.jsonl`).
#[derive(Deserialize)]
pub struct AddressCase {
    pub case: String,
    pub text: Option<String>,
    pub repeat: Option<Repeat>,
    pub codes: BTreeMap<String, String>,
}

impl AddressCase {
    pub fn text(&self) -> String {
        match (&self.text, &self.repeat) {
            (Some(text), None) => text.clone(),
            (None, Some(repeat)) => repeat.text.repeat(repeat.times),
            _ => panic!("{}: give text or repeat", self.case),
        }
    }
}

/// A raw request body (`requests.jsonl`).
#[derive(Deserialize)]
pub struct RequestCase {
    pub case: String,
    pub content_type: String,
    pub body: Option<String>,
    /// Pieces of text, each repeated: `[["[", 100000], ...]`.
    pub parts: Option<Vec<(String, usize)>>,
    pub hex: Option<String>,
    pub encoding: Option<String>,
    pub status: u16,
    pub code: String,
}

impl RequestCase {
    pub fn body(&self) -> Vec<u8> {
        match (&self.body, &self.parts, &self.hex) {
            (Some(body), None, None) => body.clone().into_bytes(),
            (None, Some(parts), None) => parts.iter().flat_map(|(text, n)| text.repeat(*n).into_bytes()).collect(),
            (None, None, Some(hex)) => hex_pattern(hex),
            _ => panic!("{}: give one of body, parts and hex", self.case),
        }
    }
}

fn known_code(code: &str) -> bool {
    code == ACCEPTED || code == NOT_FOUND || RejectionCode::ALL.iter().any(|known| known.as_str() == code)
}

#[test]
fn the_corpus_files_are_well_formed_and_name_only_known_slots_and_codes() {
    let mut cases = 0;
    let mut check = |file: &str, case: &str, codes: &BTreeMap<String, String>, address: bool| {
        assert!(!codes.is_empty(), "{file}: {case} names no slot");
        for (slot, code) in codes {
            if !address || !slot.starts_with("persona") && !slot.starts_with("message-by") {
                Slot::from_name(slot);
            }
            assert!(known_code(code), "{file}: {case}: {code} is no code of section 7");
            cases += 1;
        }
    };
    for c in load::<BytesCase>("msgpack.jsonl") {
        hex_pattern(&c.hex);
        check("msgpack.jsonl", &c.case, &c.codes, false);
    }
    for c in load::<TextCase>("base64.jsonl") {
        check("base64.jsonl", &c.case, &c.codes, false);
    }
    for c in load::<MutationCase>("mutations.jsonl") {
        check("mutations.jsonl", &c.case, &c.codes, false);
    }
    for c in load::<AddressCase>("addresses.jsonl") {
        c.text();
        check("addresses.jsonl", &c.case, &c.codes, true);
    }
    for c in load::<RequestCase>("requests.jsonl") {
        c.body();
        assert!(known_code(&c.code), "requests.jsonl: {}: {}", c.case, c.code);
        cases += 1;
    }
    println!("hostile corpus: {cases} static cases");
    assert!(cases > 1500, "the corpus holds {cases} cases");
}

#[tokio::test]
async fn every_msgpack_value_of_the_corpus_is_refused_in_every_slot_with_its_code() {
    let node = spawn_node().await;
    let mut ctx = Ctx::new(&node).await;
    let mut run = Run::new(&node);
    run.setup(&ctx.invitation.envelope.message_hash);
    for c in load::<BytesCase>("msgpack.jsonl") {
        let bytes = hex_pattern(&c.hex);
        for (slot, code) in &c.codes {
            let built = ctx.build(Slot::from_name(slot), None, &|_| Fill::Bytes(bytes.clone())).await;
            let what = format!("{} in {slot}", c.case);
            run.send("msgpack", &what, &built.envelope, built.registering.as_deref(), code).await;
        }
    }
    run.finish().await;
}

#[tokio::test]
async fn text_that_is_not_strict_base64_is_refused_in_every_slot_with_its_code() {
    let node = spawn_node().await;
    let mut ctx = Ctx::new(&node).await;
    let mut run = Run::new(&node);
    run.setup(&ctx.invitation.envelope.message_hash);
    for c in load::<TextCase>("base64.jsonl") {
        for (slot, code) in &c.codes {
            let built = ctx.build(Slot::from_name(slot), None, &|_| Fill::Text(c.text.clone())).await;
            let what = format!("{} in {slot}", c.case);
            run.send("base64", &what, &built.envelope, built.registering.as_deref(), code).await;
        }
    }
    run.finish().await;
}

#[tokio::test]
async fn fresh_values_broken_one_way_are_refused_and_tolerated_encodings_are_stored_as_sent() {
    let node = spawn_node().await;
    let mut ctx = Ctx::new(&node).await;
    let mut run = Run::new(&node);
    run.setup(&ctx.invitation.envelope.message_hash);
    for c in load::<MutationCase>("mutations.jsonl") {
        for (slot, code) in &c.codes {
            let slot = Slot::from_name(slot);
            // An accepted registration uses its invitation up: each gets its own.
            let fresh = match (code.as_str(), slot.is_registration()) {
                (ACCEPTED, true) => {
                    let invitation = node.invite(&node.genesis, &format!("for {} {:?}", c.case, slot)).await;
                    run.setup(&invitation.envelope.message_hash);
                    Some(invitation)
                }
                _ => None,
            };
            let op = c.op.clone();
            let built = ctx
                .build(slot, fresh.as_ref(), &move |valid| {
                    Fill::Bytes(mutate(valid.expect("a msgpack slot has valid bytes"), &op))
                })
                .await;
            let what = format!("{} in {slot:?}", c.case);
            run.send("mutations", &what, &built.envelope, built.registering.as_deref(), code).await;
        }
    }
    run.finish().await;
}

#[tokio::test]
async fn bad_addresses_are_refused_unread_as_senders_readers_and_query_arguments() {
    let node = spawn_node().await;
    let mut ctx = Ctx::new(&node).await;
    let mut run = Run::new(&node);
    run.setup(&ctx.invitation.envelope.message_hash);
    for c in load::<AddressCase>("addresses.jsonl") {
        let text = c.text();
        for (slot, code) in &c.codes {
            let query = match slot.as_str() {
                "persona-address" => "query($a: Address!) { persona(address: $a) { address } }",
                "message-by-sender" => "query($a: Address!) { messageBySender(sender: $a) { messageHash } }",
                "message-by-reader" => "query($a: Address!) { messageByReader(reader: $a) { messageHash } }",
                _ => {
                    let built = ctx.build(Slot::from_name(slot), None, &|_| Fill::Text(text.clone())).await;
                    let what = format!("{} as {slot}", c.case);
                    run.send("addresses", &what, &built.envelope, None, code).await;
                    continue;
                }
            };
            run.query("addresses", &format!("{} as {slot}", c.case), query, json!({ "a": text }), code).await;
        }
    }
    run.finish().await;
}

#[tokio::test]
async fn request_bodies_that_are_not_a_graphql_request_are_refused_cleanly() {
    let node = spawn_node().await;
    let mut run = Run::new(&node);
    for c in load::<RequestCase>("requests.jsonl") {
        let (status, code) = run.post_raw(&c.content_type, c.body(), c.encoding.as_deref()).await;
        run.check("requests", &c.case, &format!("{} {}", c.status, c.code), &format!("{status} {code}"));
    }
    run.finish().await;
}
