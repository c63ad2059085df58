//! The Elasticsearch search index keeps the seam contract of the embedded
//! backend against a real server: mappings as PROTOCOL.md section 9 lists
//! them, idempotent writes visible on return, and listings in exact
//! `(created_at, hash)` order (microsecond and hash ties) with cursors.
//!
//! Each test uses its own index prefix and deletes its indices when done,
//! even when it fails.

use elasticsearch::http::transport::Transport;
use elasticsearch::indices::{IndicesCreateParts, IndicesGetMappingParts};
use elasticsearch::{Elasticsearch, GetParts};
use pm_models::codec::{b64, to_msgpack};
use pm_models::content::{nickname_key, MessageContent, RegistrationBody, BODY_REGISTRATION};
use pm_models::envelope::{AclRule, Container, ObjectEntry};
use pm_models::message_type::MessageType;
use pm_models::records::{MessageRecord, PersonaRecord};
use pm_models::seams::elasticsearch::{ElasticIndex, ElasticSettings};
use pm_models::seams::embedded::EmbeddedBackend;
use pm_models::seams::services::{address, require, unique_prefix};
use pm_models::seams::{BackendError, Cursor, MessageFilter, RecordStore, SearchIndex};
use pm_models::time::{Day, Micros};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn server() -> Option<String> {
    let server = address("PM_TEST_ELASTICSEARCH", "127.0.0.1:9200");
    require("elasticsearch", &server).then_some(server)
}

/// An index with its own prefix, whose indices are deleted on drop.
struct TestIndex {
    index: ElasticIndex,
    server: String,
    prefix: String,
}

impl TestIndex {
    async fn connect(server: &str, label: &str) -> Self {
        let prefix = unique_prefix(label).to_lowercase();
        let settings = ElasticSettings {
            url: format!("http://{server}"),
            index_prefix: prefix.clone(),
            timeout: Duration::from_secs(10),
        };
        let index = ElasticIndex::connect(settings).await.expect("the client builds");
        Self { index, server: server.to_owned(), prefix }
    }

    /// Connected, with both indices created.
    async fn created(server: &str, label: &str) -> Self {
        let test = Self::connect(server, label).await;
        test.index.create_indices().await.expect("indices are created");
        test
    }

    fn raw(&self) -> Elasticsearch {
        Elasticsearch::new(Transport::single_node(&format!("http://{}", self.server)).unwrap())
    }

    fn name(&self, index: &str) -> String {
        format!("{}{index}", self.prefix)
    }

    async fn mapping(&self, index: &str) -> Value {
        let name = self.name(index);
        let response = self.raw().indices().get_mapping(IndicesGetMappingParts::Index(&[&name])).send().await.unwrap();
        assert!(response.status_code().is_success(), "the mapping of {name} is readable");
        response.json::<Value>().await.unwrap()[&name]["mappings"].clone()
    }

    async fn source(&self, index: &str, id: &str) -> Value {
        let name = self.name(index);
        let response = self.raw().get(GetParts::IndexId(&name, id)).send().await.unwrap();
        response.json::<Value>().await.unwrap()["_source"].clone()
    }
}

impl Drop for TestIndex {
    fn drop(&mut self) {
        // A blocking request, so the indices go even when the test panicked
        // and no runtime is left to run an async one.
        let request = format!(
            "DELETE /{p}persona,{p}message?ignore_unavailable=true HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n",
            p = self.prefix,
            h = self.server
        );
        let deleted = TcpStream::connect(&self.server).and_then(|mut stream| {
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            stream.write_all(request.as_bytes())?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer).map(|_| answer)
        });
        match deleted {
            Ok(answer) if answer.starts_with("HTTP/1.1 200") => {}
            other => eprintln!("could not delete the test indices {}*: {other:?}", self.prefix),
        }
    }
}

fn message(hash: &str, sender: &str, micros: i64, readers: &[&str], objects: &[(&str, Option<&str>)]) -> MessageRecord {
    MessageRecord {
        persona_sender: sender.into(),
        persona_pubkey: "pem".into(),
        persona_nickname: "nick".into(),
        message_type: MessageType::Assertion.code(),
        hash: hash.into(),
        signature: "sig".into(),
        timestamp: "t".into(),
        dossier_hash: "dossier".into(),
        body_hash: "body".into(),
        acl: readers.iter().map(|r| AclRule { reader: (*r).into(), key: "k".into() }).collect(),
        objects: objects
            .iter()
            .map(|(object, container)| ObjectEntry {
                object_hash: (*object).into(),
                meta_hashes: vec![],
                container: container.map(|c| Container {
                    container_hash: c.into(),
                    container_sign: "cs".into(),
                    object_container: "blob".into(),
                }),
            })
            .collect(),
        message: "m".into(),
        created_at: Micros(micros).to_rfc3339(),
        message_sign: "s".into(),
    }
}

fn persona(address: &str, nickname: &str) -> PersonaRecord {
    PersonaRecord {
        address: address.into(),
        pubkey: "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----".into(),
        nickname: nickname.into(),
        created_at: Micros(1_700_000_000_000_001).to_rfc3339(),
        registration_hash: None,
        invite_hash: None,
        inviter: None,
    }
}

/// The first microsecond of 2023-11-14 (UTC).
fn day_start() -> i64 {
    Day::parse("2023-11-14").unwrap().range().0 .0
}

/// Messages that exercise every ordering rule. Listed out of order, so the
/// order of the answers cannot come from the order of the writes.
fn corpus() -> Vec<MessageRecord> {
    let d = day_start();
    let day = 86_400_000_000;
    vec![
        // Same millisecond as Mb, one microsecond later: in time order, but
        // not in hash order, so a millisecond index would swap them.
        message("Ma", "s1", d + 123_457, &["r1"], &[("o1", Some("c1"))]),
        message("Mb", "s1", d + 123_456, &["r1", "r1"], &[("o1", Some("c1")), ("o2", None)]),
        // Four hashes sharing one microsecond, ordered bytewise: + / A a.
        message("Ba", "s1", d + 500_000, &["r1"], &[("o1", None)]),
        message("B+", "s1", d + 500_000, &["r2"], &[("o1", Some("c1"))]),
        message("BA", "s2", d + 500_000, &["r1"], &[("o1", Some("c1"))]),
        message("B/", "s1", d + 500_000, &["r1"], &[("o2", Some("c1"))]),
        // The first and the last microsecond of the day, and both neighbours.
        message("Last", "s1", d + day - 1, &["r1"], &[("o1", Some("c1"))]),
        message("First", "s1", d, &["r1"], &[("o1", Some("c1"))]),
        message("Before", "s1", d - 1, &["r1"], &[("o1", Some("c1"))]),
        message("Next", "s1", d + day, &["r1"], &[("o1", Some("c2"))]),
    ]
}

fn filters() -> Vec<MessageFilter> {
    vec![
        MessageFilter::Sender("s1".into()),
        MessageFilter::Sender("s2".into()),
        MessageFilter::Reader("r1".into()),
        MessageFilter::Reader("r2".into()),
        MessageFilter::Day(Day::parse("2023-11-14").unwrap()),
        MessageFilter::ObjectHash("o1".into()),
        MessageFilter::ObjectHash("o2".into()),
        MessageFilter::ContainerHash("c1".into()),
        MessageFilter::ContainerHash("c2".into()),
        MessageFilter::Sender("nobody".into()),
    ]
}

/// Walks a whole listing `limit` items at a time, building each cursor from
/// the last hash as the reader does, and checks that it ends with an empty page.
async fn walk(
    index: &dyn SearchIndex,
    filter: &MessageFilter,
    limit: usize,
    created_at: &HashMap<String, Micros>,
) -> Vec<String> {
    let mut all = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let page = index.list_messages(filter, after.as_ref(), limit).await.unwrap();
        assert!(page.len() <= limit, "a page of {filter:?} holds at most {limit} items");
        let Some(last) = page.last() else { return all };
        after = Some(Cursor { created_at: created_at[last], hash: last.clone() });
        all.extend(page);
        assert!(all.len() <= 100, "the listing of {filter:?} ends");
    }
}

#[tokio::test]
async fn indices_are_created_with_the_mappings_of_section_9_and_creating_them_again_is_fine() {
    let Some(server) = server() else { return };
    let test = TestIndex::created(&server, "mapping").await;
    test.index.create_indices().await.expect("creating existing indices again succeeds");

    let message = test.mapping("message").await;
    assert_eq!(message["dynamic"], "strict");
    let fields = &message["properties"];
    assert_eq!(fields["created_at"]["type"], "date_nanos", "microseconds survive");
    for keyword in [
        "persona_sender",
        "persona_nickname",
        "hash",
        "dossier_hash",
        "type",
        "readers",
        "object_hashes",
        "invite_hash",
    ] {
        assert_eq!(fields[keyword]["type"], "keyword", "message field {keyword}");
    }
    assert_eq!(fields["containers"]["type"], "nested");
    assert_eq!(fields["containers"]["properties"]["hash"]["type"], "keyword");

    let persona = test.mapping("persona").await;
    assert_eq!(persona["dynamic"], "strict");
    let fields = &persona["properties"];
    for keyword in ["address", "pubkey", "nickname", "nickname_lower"] {
        assert_eq!(fields[keyword]["type"], "keyword", "persona field {keyword}");
    }
    assert_eq!(fields["created_at"]["type"], "date_nanos");
}

#[tokio::test]
async fn the_first_write_creates_missing_indices_with_our_mappings_rather_than_guessed_ones() {
    let Some(server) = server() else { return };
    let test = TestIndex::connect(&server, "firstwrite").await;
    test.index.index_message(&message("H", "s", day_start(), &["r"], &[])).await.unwrap();
    assert_eq!(test.mapping("message").await["properties"]["created_at"]["type"], "date_nanos");
    assert_eq!(test.mapping("persona").await["properties"]["created_at"]["type"], "date_nanos");
    let listed = test.index.list_messages(&MessageFilter::Sender("s".into()), None, 10).await.unwrap();
    assert_eq!(listed, ["H"]);
}

#[tokio::test]
async fn an_existing_index_that_maps_created_at_as_a_millisecond_date_is_refused() {
    let Some(server) = server() else { return };
    let test = TestIndex::connect(&server, "conflict").await;
    let name = test.name("message");
    let body = json!({ "mappings": { "properties": { "created_at": { "type": "date" } } } });
    let response = test.raw().indices().create(IndicesCreateParts::Index(&name)).body(body).send().await.unwrap();
    assert!(response.status_code().is_success());
    match test.index.create_indices().await {
        Err(BackendError::Unavailable(reason)) => assert!(reason.contains("created_at"), "{reason}"),
        other => panic!("a conflicting mapping must be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn personas_are_found_by_nickname_in_any_case_and_unknown_ones_are_not() {
    let Some(server) = server() else { return };
    let test = TestIndex::created(&server, "persona").await;
    let alice = persona("addr-alice", "Alice");
    test.index.index_persona(&alice).await.unwrap();
    test.index.index_persona(&alice).await.unwrap();
    test.index.index_persona(&persona("addr-bob", "BOB")).await.unwrap();

    for spelling in ["alice", "ALICE", "aLiCe"] {
        let found = test.index.persona_by_nickname(&nickname_key(spelling)).await.unwrap();
        assert_eq!(found.as_deref(), Some("addr-alice"), "{spelling}");
    }
    assert_eq!(test.index.persona_by_nickname(&nickname_key("Bob")).await.unwrap().as_deref(), Some("addr-bob"));
    assert_eq!(test.index.persona_by_nickname("carol").await.unwrap(), None);
    assert_eq!(test.index.persona_by_nickname("ali").await.unwrap(), None, "no prefix matches");

    let stored = test.source("persona", "addr-alice").await;
    assert_eq!(stored["nickname"], "Alice");
    assert_eq!(stored["nickname_lower"], "alice");
    assert_eq!(stored["created_at"], alice.created_at, "the date keeps its microseconds");
}

#[tokio::test]
async fn listings_follow_created_at_then_hash_to_the_microsecond_and_page_with_cursors() {
    let Some(server) = server() else { return };
    let test = TestIndex::created(&server, "listing").await;
    let corpus = corpus();
    for record in &corpus {
        test.index.index_message(record).await.unwrap();
    }
    let list = |filter: MessageFilter| {
        let index = test.index.clone();
        async move { index.list_messages(&filter, None, 100).await.unwrap() }
    };

    // Mb and Ma share a millisecond and differ by a microsecond; the four
    // B hashes share a microsecond and sort bytewise.
    let by_sender = list(MessageFilter::Sender("s1".into())).await;
    assert_eq!(by_sender, ["Before", "First", "Mb", "Ma", "B+", "B/", "Ba", "Last", "Next"]);
    assert_eq!(list(MessageFilter::Sender("s2".into())).await, ["BA"]);
    let by_reader = list(MessageFilter::Reader("r1".into())).await;
    assert_eq!(by_reader, ["Before", "First", "Mb", "Ma", "B/", "BA", "Ba", "Last", "Next"], "Mb names r1 twice");
    assert_eq!(list(MessageFilter::Reader("r2".into())).await, ["B+"]);
    let by_day = list(MessageFilter::Day(Day::parse("2023-11-14").unwrap())).await;
    assert_eq!(by_day, ["First", "Mb", "Ma", "B+", "B/", "BA", "Ba", "Last"], "the day is [start, end)");
    let by_object = list(MessageFilter::ObjectHash("o2".into())).await;
    assert_eq!(by_object, ["Mb", "B/"]);
    let by_container = list(MessageFilter::ContainerHash("c1".into())).await;
    assert_eq!(by_container, ["Before", "First", "Mb", "Ma", "B+", "B/", "BA", "Last"]);
    assert_eq!(list(MessageFilter::ContainerHash("c2".into())).await, ["Next"]);
    assert!(list(MessageFilter::ObjectHash("c1".into())).await.is_empty(), "containers are not objects");
    assert!(list(MessageFilter::Day(Day::parse("2023-11-16").unwrap())).await.is_empty());

    // A cursor between two microseconds of one millisecond, and between two
    // hashes of one microsecond.
    let sender = MessageFilter::Sender("s1".into());
    let after_mb = Cursor { created_at: Micros(day_start() + 123_456), hash: "Mb".into() };
    assert_eq!(test.index.list_messages(&sender, Some(&after_mb), 2).await.unwrap(), ["Ma", "B+"]);
    let after_b_slash = Cursor { created_at: Micros(day_start() + 500_000), hash: "B/".into() };
    assert_eq!(test.index.list_messages(&sender, Some(&after_b_slash), 2).await.unwrap(), ["Ba", "Last"]);

    let created_at: HashMap<String, Micros> =
        corpus.iter().map(|m| (m.hash.clone(), m.created_at_micros().unwrap())).collect();
    for filter in filters() {
        let whole = test.index.list_messages(&filter, None, 100).await.unwrap();
        for limit in [1, 2, 3] {
            assert_eq!(walk(&test.index, &filter, limit, &created_at).await, whole, "{filter:?} by {limit}");
        }
    }
}

#[tokio::test]
async fn listings_match_the_embedded_backend_and_reindexing_does_not_duplicate() {
    let Some(server) = server() else { return };
    let test = TestIndex::created(&server, "embedded").await;
    let dir = tempfile::tempdir().unwrap();
    let embedded = EmbeddedBackend::open(&dir.path().join("ledger.redb")).unwrap();
    let corpus = corpus();
    for record in &corpus {
        embedded.put_message(record).await.unwrap();
        embedded.index_message(record).await.unwrap();
        test.index.index_message(record).await.unwrap();
    }
    for record in corpus.iter().rev() {
        test.index.index_message(record).await.unwrap();
    }

    let created_at: HashMap<String, Micros> =
        corpus.iter().map(|m| (m.hash.clone(), m.created_at_micros().unwrap())).collect();
    for filter in filters() {
        let expected = embedded.list_messages(&filter, None, 100).await.unwrap();
        assert_eq!(test.index.list_messages(&filter, None, 100).await.unwrap(), expected, "{filter:?}");
        assert_eq!(walk(&test.index, &filter, 1, &created_at).await, expected, "{filter:?} one by one");
    }
    let sender = MessageFilter::Sender("s1".into());
    for cursor in [
        Cursor { created_at: Micros(day_start() + 500_000), hash: "B".into() },
        Cursor { created_at: Micros(day_start() + 500_000), hash: "Bz".into() },
        Cursor { created_at: Micros(day_start() + 123_455), hash: "zz".into() },
        Cursor { created_at: Micros(-5), hash: "x".into() },
        Cursor { created_at: Micros(i64::MAX), hash: "x".into() },
    ] {
        let expected = embedded.list_messages(&sender, Some(&cursor), 100).await.unwrap();
        assert_eq!(test.index.list_messages(&sender, Some(&cursor), 100).await.unwrap(), expected, "after {cursor:?}");
    }
    for day in ["1960-01-01", "2300-01-01", "2262-04-11"] {
        let filter = MessageFilter::Day(Day::parse(day).unwrap());
        assert!(test.index.list_messages(&filter, None, 10).await.unwrap().is_empty(), "{day} holds nothing");
    }
    assert!(test.index.list_messages(&sender, None, 0).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_message_is_listed_as_soon_as_index_message_returns() {
    let Some(server) = server() else { return };
    let test = TestIndex::created(&server, "ryw").await;
    let sender = MessageFilter::Sender("fresh".into());
    let started = Instant::now();
    for n in 0..10 {
        let hash = format!("H{n}");
        test.index.index_message(&message(&hash, "fresh", day_start() + n, &["r"], &[])).await.unwrap();
        let listed = test.index.list_messages(&sender, None, 100).await.unwrap();
        assert_eq!(listed.last(), Some(&hash), "write {n} is visible at once");
        assert_eq!(listed.len(), n as usize + 1);
        let nickname = format!("Fresh{n}");
        test.index.index_persona(&persona(&format!("addr-{n}"), &nickname)).await.unwrap();
        let found = test.index.persona_by_nickname(&nickname_key(&nickname)).await.unwrap();
        assert_eq!(found, Some(format!("addr-{n}")));
    }
    eprintln!("20 writes with refresh=wait_for took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_registration_is_indexed_with_the_invitation_it_used() {
    let Some(server) = server() else { return };
    let test = TestIndex::created(&server, "invite").await;
    let body = RegistrationBody {
        public_key: "pk".into(),
        public_nickname: "Dana".into(),
        invite_msg_id: "invite-hash".into(),
        key_proof: "proof".into(),
        invite_name: "name".into(),
    };
    let content = MessageContent {
        body_type: BODY_REGISTRATION,
        dossier_salt: b64([0u8; 40]),
        message_body: b64(to_msgpack(&body)),
        signature: "sig".into(),
    };
    let mut registration = message("Reg", "addr-dana", day_start(), &[], &[]);
    registration.message_type = MessageType::Registration.code();
    registration.message = b64(content.pack());
    assert_eq!(registration.invite_hash().as_deref(), Some("invite-hash"), "the fixture is a registration");
    test.index.index_message(&registration).await.unwrap();
    test.index.index_message(&message("Plain", "addr-dana", day_start(), &[], &[])).await.unwrap();

    let stored = test.source("message", "Reg").await;
    assert_eq!(stored["invite_hash"], "invite-hash");
    assert_eq!(stored["type"], "1");
    assert_eq!(stored["created_at"], registration.created_at);
    assert!(test.source("message", "Plain").await.get("invite_hash").is_none());
}

#[tokio::test]
async fn ping_needs_both_indices_and_an_unreachable_server_is_unavailable() {
    let Some(server) = server() else { return };
    let test = TestIndex::connect(&server, "ping").await;
    match test.index.ping().await {
        Err(BackendError::Unavailable(reason)) => assert!(reason.contains("pm bootstrap"), "{reason}"),
        other => panic!("ping before the indices exist must fail, got {other:?}"),
    }
    test.index.create_indices().await.unwrap();
    test.index.ping().await.expect("ready once the indices exist");

    // Port 1 refuses connections: retried briefly, then reported.
    let settings = ElasticSettings { url: "http://127.0.0.1:1".into(), ..ElasticSettings::default() };
    let down = ElasticIndex::connect(settings).await.unwrap();
    let started = Instant::now();
    assert!(matches!(down.ping().await, Err(BackendError::Unavailable(_))));
    let listed = down.list_messages(&MessageFilter::Sender("s".into()), None, 10).await;
    assert!(matches!(listed, Err(BackendError::Unavailable(_))));
    assert!(started.elapsed() < Duration::from_secs(5), "retries are short: {:?}", started.elapsed());
}

#[tokio::test]
async fn a_record_whose_date_the_index_cannot_hold_is_corrupt_without_asking_the_server() {
    // Refused before any request, so no server is needed.
    let settings = ElasticSettings { url: "http://127.0.0.1:1".into(), ..ElasticSettings::default() };
    let index = ElasticIndex::connect(settings).await.unwrap();
    let mut unreadable = message("H", "s", 0, &[], &[]);
    unreadable.created_at = "2023-11-14T22:13:20Z".into();
    assert!(matches!(index.index_message(&unreadable).await, Err(BackendError::Corrupt(_))));
    let before_1970 = message("H", "s", -1, &[], &[]);
    assert!(matches!(index.index_message(&before_1970).await, Err(BackendError::Corrupt(_))));
    let mut far = persona("addr", "Far");
    far.created_at = "2300-01-01T00:00:00.000000Z".into();
    assert!(matches!(index.index_persona(&far).await, Err(BackendError::Corrupt(_))));
}

#[test]
fn settings_default_to_a_local_server_without_prefix() {
    let settings = ElasticSettings::default();
    assert_eq!(settings.url, "http://127.0.0.1:9200");
    assert_eq!(settings.index_prefix, "");
    assert_eq!(settings.timeout, Duration::from_secs(10));
}
