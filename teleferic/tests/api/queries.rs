//! The query root: teleferic, persona, message listings and objects.

use crate::helpers::*;
use pm_models::api::{MessageQuery, PageRequest, PersonaQuery, ReaderApi};
use pm_models::envelope::ObjectEntry;
use pm_models::records::{MessageRecord, PersonaRecord};
use pm_models::Rejection;
use serde_json::{json, Value};
use std::sync::Arc;

const ENVELOPE_FIELDS: &str = "
    sender { address pubkey nickname createdAt }
    messageType messageHash messageSign dossierHash bodyHash
    ACL { reader { address nickname } key }
    objects { objectHash metaHashes container { containerHash containerSign objectContainer } }
    message createdAt receipt";

#[tokio::test]
async fn the_version_names_the_crate_its_version_and_build() {
    let app = spawn_app().await;
    let body = app.graphql("{ teleferic { version { name code buildNumber } } }", json!({})).await;
    assert_eq!(body.get("errors"), None, "{body}");
    let version = &body["data"]["teleferic"]["version"];
    assert_eq!(version["name"], "pm-teleferic");
    assert_eq!(version["code"], env!("CARGO_PKG_VERSION"));
    assert!(version["buildNumber"].is_null() || version["buildNumber"].as_str().is_some_and(|b| !b.is_empty()));
}

#[tokio::test]
async fn the_teleferic_query_serves_the_node_persona_and_a_signed_timestamp() {
    let app = spawn_app().await;
    let body = app
        .graphql("{ teleferic { persona { address pubkey nickname createdAt } signedTimestamp } }", Value::Null)
        .await;
    assert_eq!(body.get("errors"), None, "{body}");
    assert_eq!(
        body["data"]["teleferic"],
        json!({
            "persona": {
                "address": app.node.address,
                "pubkey": wire_key(&app.node),
                "nickname": "Teleferic",
                "createdAt": app.node.created_at,
            },
            "signedTimestamp": SIGNED_TIMESTAMP,
        })
    );
}

#[tokio::test]
async fn persona_with_no_argument_is_a_bad_query() {
    let app = spawn_app().await;
    let body = app.graphql("{ persona { address } }", Value::Null).await;
    assert_eq!(body["data"], json!({ "persona": null }), "the field is null, not missing");
    assert_eq!(error_codes(&body), ["BAD_QUERY"]);
    assert_eq!(body["errors"][0]["path"], json!(["persona"]));
    assert!(app.reader.persona_queries.lock().unwrap().is_empty());
}

#[tokio::test]
async fn persona_with_two_arguments_is_a_bad_query() {
    let app = spawn_app().await;
    let body = app
        .graphql(
            "query($a: Address, $n: String) { persona(address: $a, nickname: $n) { address } }",
            json!({ "a": app.alice.address, "n": "Alice" }),
        )
        .await;
    assert_eq!(error_codes(&body), ["BAD_QUERY"]);
}

#[tokio::test]
async fn a_pubkey_is_always_written_as_base64_of_the_pem_text() {
    let app = spawn_app().await;
    // Looked up by the PEM text itself: the answer is still base64(PEM).
    let body = app
        .graphql("query($k: PublicKey) { persona(pubkey: $k) { address pubkey } }", json!({ "k": app.alice.pubkey }))
        .await;
    assert_eq!(body["data"]["persona"]["address"], app.alice.address.as_str());
    let written = body["data"]["persona"]["pubkey"].as_str().unwrap();
    assert_eq!(written, wire_key(&app.alice));
    assert!(!written.contains("BEGIN"), "never the bare PEM text");
    assert_eq!(
        app.reader.persona_queries.lock().unwrap()[0],
        PersonaQuery::PublicKey(pm_models::PublicKeyPem::parse_exact(&app.alice.pubkey).unwrap()),
        "the argument reaches the reader as the key it names"
    );
}

#[tokio::test]
async fn a_persona_lookup_that_finds_nothing_is_null_not_an_error() {
    let app = spawn_app().await;
    let body = app.graphql("{ persona(nickname: \"nobody\") { address } }", Value::Null).await;
    assert_eq!(body, json!({ "data": { "persona": null } }));
}

#[tokio::test]
async fn a_stored_message_is_served_with_its_exact_sign_and_resolved_personas() {
    let app = spawn_app().await;
    let stored = app.reader.messages[0].clone();
    let body = app
        .graphql(
            &format!("query($h: SHA256!) {{ messageByHash(messageHash: $h) {{ {ENVELOPE_FIELDS} }} }}"),
            json!({ "h": stored.hash }),
        )
        .await;
    assert_eq!(body.get("errors"), None, "{body}");
    let envelope = &body["data"]["messageByHash"];
    assert_eq!(
        envelope["sender"],
        json!({
            "address": app.alice.address,
            "pubkey": wire_key(&app.alice),
            "nickname": "Alice",
            "createdAt": app.alice.created_at,
        })
    );
    assert_eq!(envelope["messageType"], "ASSERTION");
    assert_eq!(envelope["messageHash"], stored.hash.as_str());
    assert_eq!(envelope["messageSign"], stored.message_sign.as_str());
    assert_eq!(envelope["receipt"], stored.receipt.as_deref().unwrap(), "the stored acceptance receipt");
    assert_eq!(envelope["dossierHash"], stored.dossier_hash.as_str());
    assert_eq!(envelope["bodyHash"], stored.body_hash.as_str());
    assert_eq!(
        envelope["ACL"],
        json!([
            { "reader": { "address": app.bob.address, "nickname": "Bob" }, "key": stored.acl[0].key },
            { "reader": null, "key": stored.acl[1].key },
        ])
    );
    let object = &stored.objects[0];
    let container = object.container.as_ref().unwrap();
    assert_eq!(
        envelope["objects"],
        json!([{
            "objectHash": object.object_hash,
            "metaHashes": object.meta_hashes,
            "container": {
                "containerHash": container.container_hash,
                "containerSign": container.container_sign,
                "objectContainer": container.object_container,
            },
        }])
    );
    assert_eq!(envelope["message"], stored.message.as_str());
    assert_eq!(envelope["createdAt"], stored.created_at.as_str());
}

#[tokio::test]
async fn an_unknown_message_hash_is_null() {
    let app = spawn_app().await;
    let body = app
        .graphql(
            "query($h: SHA256!) { messageByHash(messageHash: $h) { messageHash } }",
            json!({ "h": hash("never sent") }),
        )
        .await;
    assert_eq!(body, json!({ "data": { "messageByHash": null } }));
}

#[tokio::test]
async fn listings_pass_their_selector_and_page_to_the_reader() {
    let app = spawn_app().await;
    let body = app
        .graphql(
            "query($s: Address!, $r: Address!, $nobody: Address!, $first: String) {
                bySender: messageBySender(sender: $s, limit: 5) { messageHash }
                byReader: messageByReader(reader: $r) { messageHash sender { nickname } }
                byDate: messageByDate(date: \"2026-11-21\") { messageHash }
                none: messageBySender(sender: $nobody) { messageHash }
                after: messageBySender(sender: $s, limit: 5, after: $first) { messageHash }
            }",
            json!({
                "s": app.alice.address,
                "r": app.alice.address,
                "nobody": persona(99, "Nobody").address,
                "first": app.reader.messages[0].hash,
            }),
        )
        .await;
    assert_eq!(body.get("errors"), None, "{body}");
    let first = app.reader.messages[0].hash.as_str();
    let second = app.reader.messages[1].hash.as_str();
    assert_eq!(
        body["data"],
        json!({
            "bySender": [{ "messageHash": first }],
            "byReader": [{ "messageHash": second, "sender": { "nickname": "Bob" } }],
            "byDate": [{ "messageHash": second }],
            "none": [],
            "after": [{ "messageHash": first }],
        })
    );
    let queries = app.reader.message_queries.lock().unwrap().clone();
    let alice: pm_models::Address = app.alice.address.parse().unwrap();
    let first = pm_models::MessageHash::parse(first).unwrap();
    assert!(queries.contains(&(MessageQuery::Sender(alice.clone()), PageRequest { limit: 5, after: None })));
    assert!(queries.contains(&(MessageQuery::Sender(alice), PageRequest { limit: 5, after: Some(first) })));
    let day = pm_models::api::parse_day("date", "2026-11-21").unwrap();
    assert!(queries.contains(&(MessageQuery::Date(day), PageRequest::default())));
}

#[tokio::test]
async fn a_reader_refusal_keeps_its_code() {
    let app = spawn_app().await;
    let unknown = pm_models::MessageHash::of_message("never stored");
    let body = app
        .graphql(
            "query($s: Address!, $a: String) { messageBySender(sender: $s, after: $a) { messageHash } }",
            json!({ "s": app.alice.address, "a": unknown }),
        )
        .await;
    assert_eq!(error_codes(&body), ["BAD_QUERY"]);
    assert_eq!(body["errors"][0]["message"], "after is not a stored message");
}

#[tokio::test]
async fn arguments_that_do_not_parse_are_refused_before_the_reader_is_asked() {
    let app = spawn_app().await;
    let body = app
        .graphql(
            "query($s: Address!) { messageBySender(sender: $s, limit: 0) { messageHash } }",
            json!({ "s": app.alice.address }),
        )
        .await;
    assert_eq!(error_codes(&body), ["BAD_QUERY"]);
    assert_eq!(body["errors"][0]["message"], "limit 0 is outside 1-1000");
    let body = app.graphql(r#"{ messageBySender(sender: "nobody") { messageHash } }"#, json!({})).await;
    assert_eq!(error_codes(&body), ["BAD_QUERY"]);
    assert!(app.reader.message_queries.lock().unwrap().is_empty(), "the reader was never asked");
}

#[tokio::test]
async fn a_sender_without_a_persona_falls_back_to_the_stored_columns() {
    let app = spawn_app().await;
    let body = app
        .graphql(
            "{ messageByDate(date: \"2026-11-20\") { sender { address pubkey nickname createdAt } } }",
            Value::Null,
        )
        .await;
    // Alice is known: resolved through the reader, with her createdAt.
    assert_eq!(body["data"]["messageByDate"][0]["sender"]["createdAt"], app.alice.created_at.as_str());

    // A stranger's message: the record's persona columns, createdAt null.
    let stranger = persona(9, "Stranger");
    let mut record = stored_message("third", &stranger, &[], "2026-11-23T00:00:00.000000Z");
    record.message_sign = String::new();
    let reader = FakeReader::new(Vec::new(), vec![record]);
    let base = spawn_gateway(app.authorizer.clone(), Arc::new(reader), Default::default());
    let body: Value = app
        .client
        .post(format!("{base}/teleferic"))
        .json(&json!({ "query": "{ messageByDate(date: \"2026-11-23\") { sender { address pubkey nickname createdAt } messageSign } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["data"]["messageByDate"][0]["sender"],
        json!({
            "address": stranger.address,
            "pubkey": wire_key(&stranger),
            "nickname": "Stranger",
            "createdAt": null,
        })
    );
    // A row of the earlier deployment has no message_sign column: rebuilt
    // from its two parts as section 4's `S`.
    let sign = body["data"]["messageByDate"][0]["messageSign"].as_str().unwrap();
    assert_eq!(
        sign,
        pm_models::codec::b64(pm_models::codec::to_msgpack(&json!({
            "signature": "c2ln",
            "timestamp": "dA==",
        })))
    );
}

#[tokio::test]
async fn an_object_is_found_by_its_hash() {
    let app = spawn_app().await;
    let object = app.reader.messages[1].objects[0].clone();
    let body = app
        .graphql(
            "query($o: SHA256!, $x: SHA256!) {
                found: objectByHash(objectHash: $o) { objectHash metaHashes container { containerHash } }
                missing: objectByHash(objectHash: $x) { objectHash }
            }",
            json!({ "o": object.object_hash, "x": hash("no object") }),
        )
        .await;
    assert_eq!(
        body["data"],
        json!({
            "found": {
                "objectHash": object.object_hash,
                "metaHashes": object.meta_hashes,
                "container": { "containerHash": object.container.unwrap().container_hash },
            },
            "missing": null,
        })
    );
}

#[tokio::test]
async fn an_unknown_field_is_malformed_envelope() {
    let app = spawn_app().await;
    let body = app.graphql("{ teleferic { nope } }", Value::Null).await;
    assert_eq!(body["data"], Value::Null);
    assert_eq!(error_codes(&body), ["MALFORMED_ENVELOPE"]);
}

#[tokio::test]
async fn an_int_where_an_address_belongs_is_malformed_envelope() {
    let app = spawn_app().await;
    let literal = app.graphql("{ persona(address: 42) { address } }", Value::Null).await;
    assert_eq!(error_codes(&literal), ["MALFORMED_ENVELOPE"], "{literal}");
    let variable =
        app.graphql("query($a: Address!) { messageBySender(sender: $a) { messageHash } }", json!({ "a": 42 })).await;
    assert_eq!(error_codes(&variable), ["MALFORMED_ENVELOPE"], "{variable}");
    assert!(app.reader.persona_queries.lock().unwrap().is_empty());
    assert!(app.reader.message_queries.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_query_nested_too_deep_is_refused() {
    let app = spawn_app().await;
    let mut deep = String::from("__schema { types { ");
    for _ in 0..20 {
        deep.push_str("ofType { ");
    }
    deep.push_str("name");
    deep.push_str(&" }".repeat(22));
    let body = app.graphql(&format!("{{ {deep} }}"), Value::Null).await;
    assert_eq!(error_codes(&body), ["MALFORMED_ENVELOPE"], "{body}");
}

#[tokio::test]
async fn a_reader_outage_nulls_the_field_with_unavailable() {
    let app = spawn_app().await;
    *app.reader.outage.lock().unwrap() = Some(not_ready());
    let body = app
        .graphql(
            "query($h: SHA256!) {
                messageByHash(messageHash: $h) { messageHash }
                teleferic { persona { address } signedTimestamp }
            }",
            json!({ "h": app.reader.messages[0].hash }),
        )
        .await;
    assert_eq!(
        body["data"],
        json!({
            "messageByHash": null,
            "teleferic": { "persona": null, "signedTimestamp": SIGNED_TIMESTAMP },
        })
    );
    assert_eq!(error_codes(&body), ["UNAVAILABLE", "UNAVAILABLE"]);
    let paths: Vec<&Value> = body["errors"].as_array().unwrap().iter().map(|e| &e["path"]).collect();
    assert!(paths.contains(&&json!(["messageByHash"])), "{body}");
    assert!(paths.contains(&&json!(["teleferic", "persona"])), "{body}");
}

#[tokio::test]
async fn a_failed_persona_lookup_nulls_an_acl_reader_and_falls_back_for_the_sender() {
    let app = spawn_app().await;
    let stored = app.reader.messages[0].clone();
    let reader = Arc::new(FailingPersonaReader(Arc::new(FakeReader::new(Vec::new(), vec![stored.clone()]))));
    let base = spawn_gateway(app.authorizer.clone(), reader, Default::default());
    let body: Value = app
        .client
        .post(format!("{base}/teleferic"))
        .json(&json!({
            "query": "query($h: SHA256!) {
                messageByHash(messageHash: $h) { sender { nickname createdAt } ACL { reader { nickname } key } }
            }",
            "variables": { "h": stored.hash },
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let envelope = &body["data"]["messageByHash"];
    assert_eq!(envelope["sender"], json!({ "nickname": "Alice", "createdAt": null }), "stored columns stand in");
    assert_eq!(
        envelope["ACL"],
        json!([{ "reader": null, "key": stored.acl[0].key }, { "reader": null, "key": stored.acl[1].key }])
    );
    assert_eq!(error_codes(&body), ["UNAVAILABLE", "UNAVAILABLE"]);
    let paths: Vec<&Value> = body["errors"].as_array().unwrap().iter().map(|e| &e["path"]).collect();
    assert!(paths.contains(&&json!(["messageByHash", "ACL", 0, "reader"])), "{body}");
    assert!(paths.contains(&&json!(["messageByHash", "ACL", 1, "reader"])), "{body}");
}

/// A reader whose persona lookups fail while its message lookups work.
struct FailingPersonaReader(Arc<FakeReader>);

#[async_trait::async_trait]
impl ReaderApi for FailingPersonaReader {
    async fn persona(&self, _: PersonaQuery) -> Result<Option<PersonaRecord>, Rejection> {
        Err(not_ready())
    }

    async fn personas(&self, _: &[pm_models::Address]) -> Result<Vec<Option<PersonaRecord>>, Rejection> {
        Err(not_ready())
    }

    async fn message(&self, hash: &pm_models::MessageHash) -> Result<Option<MessageRecord>, Rejection> {
        self.0.message(hash).await
    }

    async fn messages(&self, query: MessageQuery, page: PageRequest) -> Result<Vec<MessageRecord>, Rejection> {
        self.0.messages(query, page).await
    }

    async fn object(&self, hash: &pm_models::Hash32) -> Result<Option<ObjectEntry>, Rejection> {
        self.0.object(hash).await
    }

    async fn ready(&self) -> Result<(), Rejection> {
        Ok(())
    }
}

#[tokio::test]
async fn a_page_resolves_its_senders_and_readers_in_one_batched_lookup() {
    let app = spawn_app().await;
    let body = app
        .graphql(
            "query($s: Address!, $r: Address!) {
                bySender: messageBySender(sender: $s) { sender { nickname } ACL { reader { nickname } } }
                byReader: messageByReader(reader: $r) { sender { nickname } ACL { reader { nickname } } }
            }",
            json!({ "s": app.alice.address, "r": app.alice.address }),
        )
        .await;
    assert_eq!(body.get("errors"), None, "{body}");
    assert_eq!(body["data"]["bySender"][0]["ACL"][0]["reader"]["nickname"], "Bob");
    let batches = app.reader.persona_batches.lock().unwrap().clone();
    assert_eq!(batches.len(), 1, "one reader call for every persona of the request: {batches:?}");
    let mut asked: Vec<String> = batches[0].iter().map(|a| a.to_string()).collect();
    let total = asked.len();
    asked.sort();
    asked.dedup();
    assert_eq!(asked.len(), total, "each address is asked once");
    assert!(app.reader.persona_queries.lock().unwrap().is_empty(), "no lookup one by one");
}

#[tokio::test]
async fn the_cost_of_a_request_counts_list_sizes_and_aliases() {
    let app = spawn_app().await;
    let page = "messageBySender(sender: $s, limit: 1000) { messageHash ACL { reader { address nickname } } sender { address } }";
    // One full page is an ordinary request.
    let body = app.graphql(&format!("query($s: Address!) {{ p: {page} }}"), json!({ "s": app.alice.address })).await;
    assert_eq!(body.get("errors"), None, "{body}");
    // Ten aliases of it cost ten pages: refused before anything is read.
    app.reader.message_queries.lock().unwrap().clear();
    let ten: String = (0..10).map(|i| format!("p{i}: {page} ")).collect();
    let body = app.graphql(&format!("query($s: Address!) {{ {ten} }}"), json!({ "s": app.alice.address })).await;
    assert_eq!(error_codes(&body), ["MALFORMED_ENVELOPE"], "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("complex"), "{body}");
    // The probe of the issue, 200 aliases of a page, is refused by the alias cap.
    let probe: String = (0..200).map(|i| format!("p{i}: {page} ")).collect();
    let body = app.graphql(&format!("query($s: Address!) {{ {probe} }}"), json!({ "s": app.alice.address })).await;
    assert_eq!(error_codes(&body), ["MALFORMED_ENVELOPE"], "{body}");
    assert!(app.reader.message_queries.lock().unwrap().is_empty(), "nothing was read for a refused request");
}

#[tokio::test]
async fn a_query_text_sent_again_runs_with_its_new_variables_and_one_over_the_limits_stays_refused() {
    let app = spawn_app().await;
    // The same text for two personas: the second answer is the second's.
    let text = "query($a: Address) { persona(address: $a) { address nickname } }";
    for persona in [&app.alice, &app.bob, &app.alice] {
        let body = app.graphql(text, json!({ "a": persona.address })).await;
        assert_eq!(body.get("errors"), None, "{body}");
        assert_eq!(body["data"]["persona"]["nickname"], persona.nickname.as_str(), "{body}");
    }
    // A short text (under 3 KB) past the cap of 100 aliases is refused every time it is sent.
    let aliases: String = (0..150).map(|i| format!("a{i}: __typename ")).collect();
    for _ in 0..2 {
        let body = app.graphql(&format!("{{ {aliases} }}"), json!({})).await;
        assert_eq!(error_codes(&body), ["MALFORMED_ENVELOPE"], "{body}");
        assert!(body.get("data").is_none_or(Value::is_null), "{body}");
    }
}
