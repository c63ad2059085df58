//! The Elasticsearch search index keeps the seam contract of the embedded
//! backend against a real server: mappings as PROTOCOL.md section 9 lists
//! them, a batch indexed in one `_bulk` and visible on return, idempotent
//! writes, refusals reported, and listings in exact `(created_at, hash)`
//! order (microsecond and hash ties) with cursors.
//!
//! Each test uses its own index prefix and deletes its indices when done,
//! even when it fails.

use elasticsearch::http::transport::Transport;
use elasticsearch::indices::{IndicesCreateParts, IndicesDeleteParts, IndicesGetMappingParts};
use elasticsearch::{Elasticsearch, GetParts};
use pm_backends::elasticsearch::ElasticIndex;
use pm_backends::embedded::EmbeddedBackend;
use pm_backends::settings::ElasticSettings;
use pm_backends::testsuite::{self, require, unique_prefix};
use pm_backends::{BackendError, Cursor, MessageFilter, RecordBatch, RecordStore, SearchIndex};
use pm_models::codec::{b64, to_msgpack};
use pm_models::content::{nickname_key, MessageContent, RegistrationBody, BODY_REGISTRATION};
use pm_models::envelope::{AclRule, Container, ObjectEntry};
use pm_models::keys::PersonaKey;
use pm_models::message_type::MessageType;
use pm_models::records::{MessageRecord, PersonaRecord};
use pm_models::time::{Day, Micros};
use pm_models::{Address, Hash32, MessageHash};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn server() -> Option<String> {
    let server = testsuite::address("PM_TEST_ELASTICSEARCH", "127.0.0.1:9200");
    require("elasticsearch", &server).then_some(server)
}

// ----- names ----------------------------------------------------------------

/// The address of the persona called `label` (at most 32 bytes): distinct
/// labels give distinct keys, hence distinct addresses.
fn address(label: &str) -> Address {
    let mut seed = [0u8; 32];
    seed[..label.len()].copy_from_slice(label.as_bytes());
    PersonaKey::from_seed(seed).address()
}

/// A message hash that sorts like `label`: `label` (base64 characters only)
/// padded with 'A' to 43 characters, then '='. Two labels that differ only
/// by trailing 'A's pad to the same hash, so the labels here never do.
/// Bytewise, '+' < '/' < digits < 'A'..'Z' < 'a'..'z'.
fn hash(label: &str) -> MessageHash {
    MessageHash::parse(&format!("{label:A<43}=")).unwrap_or_else(|e| panic!("{label:?} makes no hash: {e}"))
}

fn hashes(labels: &[&str]) -> Vec<MessageHash> {
    labels.iter().map(|label| hash(label)).collect()
}

/// The object or container hash called `label`.
fn object(label: &str) -> Hash32 {
    Hash32::of_text(label)
}

// ----- records --------------------------------------------------------------

/// A message `hash(label)` from `sender` at `micros`, readable by `readers`,
/// with `objects` as (object, container) labels.
fn message(
    label: &str,
    sender: &str,
    micros: i64,
    readers: &[&str],
    objects: &[(&str, Option<&str>)],
) -> MessageRecord {
    MessageRecord {
        persona_sender: address(sender).to_string(),
        persona_pubkey: "pem".into(),
        persona_nickname: "nick".into(),
        message_type: MessageType::Assertion.code(),
        hash: hash(label).to_string(),
        signature: "sig".into(),
        timestamp: "t".into(),
        dossier_hash: "dossier".into(),
        body_hash: "body".into(),
        acl: readers.iter().map(|r| AclRule { reader: address(r).to_string(), key: "k".into() }).collect(),
        objects: objects
            .iter()
            .map(|(o, container)| ObjectEntry {
                object_hash: object(o).to_string(),
                meta_hashes: vec![],
                container: container.map(|c| Container {
                    container_hash: object(c).to_string(),
                    container_sign: "cs".into(),
                    object_container: "blob".into(),
                }),
            })
            .collect(),
        message: "m".into(),
        created_at: Micros(micros).to_rfc3339(),
        message_sign: "s".into(),
        receipt: Some("receipt".into()),
    }
}

fn persona(label: &str, nickname: &str) -> PersonaRecord {
    PersonaRecord {
        address: address(label).to_string(),
        pubkey: "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----".into(),
        nickname: nickname.into(),
        created_at: Micros(1_700_000_000_000_001).to_rfc3339(),
        registration_hash: None,
        invite_hash: None,
        inviter: None,
    }
}

/// A registration message `hash(label)` from `sender` that used `invitation`.
fn registration(label: &str, sender: &str, micros: i64, invitation: &MessageHash) -> MessageRecord {
    let body = RegistrationBody {
        public_key: "pk".into(),
        public_nickname: "Dana".into(),
        invite_msg_id: invitation.to_string(),
        key_proof: "proof".into(),
        invite_name: "name".into(),
    };
    let content = MessageContent {
        body_type: BODY_REGISTRATION,
        dossier_salt: b64([0u8; 40]),
        message_body: b64(to_msgpack(&body)),
        signature: "sig".into(),
    };
    MessageRecord {
        message_type: MessageType::Registration.code(),
        message: b64(content.pack()),
        ..message(label, sender, micros, &[], &[])
    }
}

fn batch(personas: &[&PersonaRecord], messages: &[&MessageRecord]) -> RecordBatch {
    RecordBatch {
        personas: personas.iter().map(|&p| p.clone()).collect(),
        messages: messages.iter().map(|&m| m.clone()).collect(),
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
        MessageFilter::Sender(address("s1")),
        MessageFilter::Sender(address("s2")),
        MessageFilter::Reader(address("r1")),
        MessageFilter::Reader(address("r2")),
        MessageFilter::Day(Day::parse("2023-11-14").unwrap()),
        MessageFilter::ObjectHash(object("o1")),
        MessageFilter::ObjectHash(object("o2")),
        MessageFilter::ContainerHash(object("c1")),
        MessageFilter::ContainerHash(object("c2")),
        MessageFilter::Sender(address("nobody")),
    ]
}

fn created_at_of(records: &[MessageRecord]) -> HashMap<MessageHash, Micros> {
    records.iter().map(|m| (MessageHash::parse(&m.hash).unwrap(), m.created_at_micros().unwrap())).collect()
}

/// Walks a whole listing `limit` items at a time, building each cursor from
/// the last hash as the reader does, and checks that it ends with an empty page.
async fn walk(
    index: &dyn SearchIndex,
    filter: &MessageFilter,
    limit: usize,
    created_at: &HashMap<MessageHash, Micros>,
) -> Vec<MessageHash> {
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

// ----- the index under test -------------------------------------------------

/// An index with its own prefix, whose indices are deleted on drop.
struct TestIndex {
    index: ElasticIndex,
    server: String,
    prefix: String,
}

impl TestIndex {
    async fn connect(server: &str, label: &str) -> Self {
        Self::connect_through(server, server, label).await
    }

    /// An index whose requests go to `via` (a proxy in front of `server`).
    async fn connect_through(server: &str, via: &str, label: &str) -> Self {
        let prefix = unique_prefix(label).to_lowercase();
        let settings =
            ElasticSettings { url: format!("http://{via}"), index_prefix: prefix.clone(), timeout_ms: 10_000 };
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

    async fn list(&self, filter: MessageFilter) -> Vec<MessageHash> {
        self.index.list_messages(&filter, None, 100).await.unwrap()
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

/// A TCP proxy in front of the server that keeps every byte sent to it, to
/// see which HTTP requests a call made.
struct RecordingProxy {
    address: String,
    sent: Arc<Mutex<Vec<u8>>>,
}

impl RecordingProxy {
    fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let (upstream, accept_sent) = (upstream.to_owned(), sent.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                Self::copy(client.try_clone().unwrap(), server.try_clone().unwrap(), Some(accept_sent.clone()));
                Self::copy(server, client, None);
            }
        });
        Self { address, sent }
    }

    fn copy(mut from: TcpStream, mut to: TcpStream, record: Option<Arc<Mutex<Vec<u8>>>>) {
        std::thread::spawn(move || {
            let mut buffer = vec![0u8; 1 << 16];
            loop {
                let n = from.read(&mut buffer).unwrap_or(0);
                if let Some(record) = &record {
                    record.lock().unwrap().extend_from_slice(&buffer[..n]);
                }
                if n == 0 || to.write_all(&buffer[..n]).is_err() {
                    let _ = to.shutdown(Shutdown::Both);
                    let _ = from.shutdown(Shutdown::Both);
                    return;
                }
            }
        });
    }

    /// The request lines (`POST /_bulk?... HTTP/1.1`) sent since the last
    /// call of this function. A body line (JSON) never ends in ` HTTP/1.1`.
    fn requests_since_last_look(&self) -> Vec<String> {
        let sent = std::mem::take(&mut *self.sent.lock().unwrap());
        String::from_utf8_lossy(&sent)
            .split('\n')
            .map(|line| line.trim_end_matches('\r'))
            .filter(|line| line.ends_with(" HTTP/1.1"))
            .map(str::to_owned)
            .collect()
    }
}

// ----- mappings -------------------------------------------------------------

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
    test.index.index(&batch(&[], &[&message("H", "s", day_start(), &["r"], &[])])).await.unwrap();
    assert_eq!(test.mapping("message").await["properties"]["created_at"]["type"], "date_nanos");
    assert_eq!(test.mapping("persona").await["properties"]["created_at"]["type"], "date_nanos");
    assert_eq!(test.list(MessageFilter::Sender(address("s"))).await, hashes(&["H"]));
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

// ----- personas -------------------------------------------------------------

#[tokio::test]
async fn personas_are_found_by_nickname_in_any_case_and_unknown_ones_are_not() {
    let Some(server) = server() else { return };
    let test = TestIndex::created(&server, "persona").await;
    let alice = persona("alice", "Alice");
    test.index.index(&batch(&[&alice], &[])).await.unwrap();
    test.index.index(&batch(&[&alice], &[])).await.unwrap();
    test.index.index(&batch(&[&persona("bob", "BOB")], &[])).await.unwrap();

    for spelling in ["alice", "ALICE", "aLiCe"] {
        let found = test.index.persona_by_nickname(&nickname_key(spelling)).await.unwrap();
        assert_eq!(found, Some(address("alice")), "{spelling}");
    }
    assert_eq!(test.index.persona_by_nickname(&nickname_key("Bob")).await.unwrap(), Some(address("bob")));
    assert_eq!(test.index.persona_by_nickname("carol").await.unwrap(), None);
    assert_eq!(test.index.persona_by_nickname("ali").await.unwrap(), None, "no prefix matches");

    let stored = test.source("persona", address("alice").as_str()).await;
    assert_eq!(stored["nickname"], "Alice");
    assert_eq!(stored["nickname_lower"], "alice");
    assert_eq!(stored["created_at"], alice.created_at, "the date keeps its microseconds");
}

// ----- listings -------------------------------------------------------------

#[tokio::test]
async fn listings_follow_created_at_then_hash_to_the_microsecond_and_page_with_cursors() {
    let Some(server) = server() else { return };
    let test = TestIndex::created(&server, "listing").await;
    let corpus = corpus();
    for record in &corpus {
        test.index.index(&batch(&[], &[record])).await.unwrap();
    }

    // Mb and Ma share a millisecond and differ by a microsecond; the four
    // B hashes share a microsecond and sort bytewise.
    let by_sender = test.list(MessageFilter::Sender(address("s1"))).await;
    assert_eq!(by_sender, hashes(&["Before", "First", "Mb", "Ma", "B+", "B/", "Ba", "Last", "Next"]));
    assert_eq!(test.list(MessageFilter::Sender(address("s2"))).await, hashes(&["BA"]));
    let by_reader = test.list(MessageFilter::Reader(address("r1"))).await;
    assert_eq!(
        by_reader,
        hashes(&["Before", "First", "Mb", "Ma", "B/", "BA", "Ba", "Last", "Next"]),
        "Mb names r1 twice"
    );
    assert_eq!(test.list(MessageFilter::Reader(address("r2"))).await, hashes(&["B+"]));
    let by_day = test.list(MessageFilter::Day(Day::parse("2023-11-14").unwrap())).await;
    assert_eq!(by_day, hashes(&["First", "Mb", "Ma", "B+", "B/", "BA", "Ba", "Last"]), "the day is [start, end)");
    assert_eq!(test.list(MessageFilter::ObjectHash(object("o2"))).await, hashes(&["Mb", "B/"]));
    let by_container = test.list(MessageFilter::ContainerHash(object("c1"))).await;
    assert_eq!(by_container, hashes(&["Before", "First", "Mb", "Ma", "B+", "B/", "BA", "Last"]));
    assert_eq!(test.list(MessageFilter::ContainerHash(object("c2"))).await, hashes(&["Next"]));
    assert!(test.list(MessageFilter::ObjectHash(object("c1"))).await.is_empty(), "containers are not objects");
    assert!(test.list(MessageFilter::Day(Day::parse("2023-11-16").unwrap())).await.is_empty());

    // A cursor between two microseconds of one millisecond, and between two
    // hashes of one microsecond.
    let sender = MessageFilter::Sender(address("s1"));
    let after_mb = Cursor { created_at: Micros(day_start() + 123_456), hash: hash("Mb") };
    assert_eq!(test.index.list_messages(&sender, Some(&after_mb), 2).await.unwrap(), hashes(&["Ma", "B+"]));
    let after_b_slash = Cursor { created_at: Micros(day_start() + 500_000), hash: hash("B/") };
    assert_eq!(test.index.list_messages(&sender, Some(&after_b_slash), 2).await.unwrap(), hashes(&["Ba", "Last"]));

    let created_at = created_at_of(&corpus);
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
        let one = batch(&[], &[record]);
        embedded.put(&one).await.unwrap();
        embedded.index(&one).await.unwrap();
        test.index.index(&one).await.unwrap();
    }
    for record in corpus.iter().rev() {
        test.index.index(&batch(&[], &[record])).await.unwrap();
    }

    let created_at = created_at_of(&corpus);
    for filter in filters() {
        let expected = embedded.list_messages(&filter, None, 100).await.unwrap();
        assert_eq!(test.index.list_messages(&filter, None, 100).await.unwrap(), expected, "{filter:?}");
        assert_eq!(walk(&test.index, &filter, 1, &created_at).await, expected, "{filter:?} one by one");
    }
    let sender = MessageFilter::Sender(address("s1"));
    let b_micros = Micros(day_start() + 500_000);
    for cursor in [
        // Before the four B hashes of their microsecond ("B++" < "B+"), and after them.
        Cursor { created_at: b_micros, hash: hash("B++") },
        Cursor { created_at: b_micros, hash: hash("Bz") },
        // A microsecond before Mb, with a hash above every other.
        Cursor { created_at: Micros(day_start() + 123_455), hash: hash("zz") },
        // Outside what the index can hold, on either side.
        Cursor { created_at: Micros(-5), hash: hash("x") },
        Cursor { created_at: Micros(i64::MAX), hash: hash("x") },
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
async fn a_message_is_listed_as_soon_as_index_returns() {
    let Some(server) = server() else { return };
    let test = TestIndex::created(&server, "ryw").await;
    let sender = MessageFilter::Sender(address("fresh"));
    let started = Instant::now();
    for n in 0..10 {
        let label = format!("H{n}");
        test.index.index(&batch(&[], &[&message(&label, "fresh", day_start() + n, &["r"], &[])])).await.unwrap();
        let listed = test.index.list_messages(&sender, None, 100).await.unwrap();
        assert_eq!(listed.last(), Some(&hash(&label)), "write {n} is visible at once");
        assert_eq!(listed.len(), n as usize + 1);
        let nickname = format!("Fresh{n}");
        let persona_label = format!("addr-{n}");
        test.index.index(&batch(&[&persona(&persona_label, &nickname)], &[])).await.unwrap();
        let found = test.index.persona_by_nickname(&nickname_key(&nickname)).await.unwrap();
        assert_eq!(found, Some(address(&persona_label)));
    }
    eprintln!("20 writes with refresh=wait_for took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_registration_is_indexed_with_the_invitation_it_used() {
    let Some(server) = server() else { return };
    let test = TestIndex::created(&server, "invite").await;
    let invitation = MessageHash::of_message("the invitation");
    let registration = registration("Reg", "dana", day_start(), &invitation);
    assert_eq!(registration.invite_hash(), Some(invitation.to_string()), "the fixture is a registration");
    test.index.index(&batch(&[], &[&registration])).await.unwrap();
    test.index.index(&batch(&[], &[&message("Plain", "dana", day_start(), &[], &[])])).await.unwrap();

    let stored = test.source("message", hash("Reg").as_str()).await;
    assert_eq!(stored["invite_hash"], invitation.as_str());
    assert_eq!(stored["type"], "1");
    assert_eq!(stored["created_at"], registration.created_at);
    assert!(test.source("message", hash("Plain").as_str()).await.get("invite_hash").is_none());
    assert!(test.index.invitation_redeemed(&invitation).await.unwrap(), "the registration redeemed it");
    let unused = MessageHash::of_message("another invitation");
    assert!(!test.index.invitation_redeemed(&unused).await.unwrap());
}

// ----- batches --------------------------------------------------------------

/// Three personas and four messages from two senders.
fn mixed_batch() -> RecordBatch {
    let d = day_start();
    RecordBatch {
        personas: vec![persona("ann", "Ann"), persona("ben", "Ben"), persona("cat", "Cat")],
        messages: vec![
            message("Q3", "ann", d + 3, &["ben"], &[("q-object", Some("q-container"))]),
            message("Q1", "ann", d + 1, &["cat"], &[("q-object", None)]),
            message("Q2", "ben", d + 2, &["ben", "cat"], &[]),
            message("Q4", "ann", d + 4, &[], &[("q-object", Some("q-container"))]),
        ],
    }
}

/// Every lookup `mixed_batch` must answer, with its answer.
async fn assert_mixed_batch_is_searchable(test: &TestIndex, context: &str) {
    for (label, nickname) in [("ann", "Ann"), ("ben", "Ben"), ("cat", "Cat")] {
        let found = test.index.persona_by_nickname(&nickname_key(nickname)).await.unwrap();
        assert_eq!(found, Some(address(label)), "{nickname} {context}");
    }
    let expectations = [
        (MessageFilter::Sender(address("ann")), hashes(&["Q1", "Q3", "Q4"])),
        (MessageFilter::Sender(address("ben")), hashes(&["Q2"])),
        (MessageFilter::Reader(address("ben")), hashes(&["Q2", "Q3"])),
        (MessageFilter::Reader(address("cat")), hashes(&["Q1", "Q2"])),
        (MessageFilter::ObjectHash(object("q-object")), hashes(&["Q1", "Q3", "Q4"])),
        (MessageFilter::ContainerHash(object("q-container")), hashes(&["Q3", "Q4"])),
        (MessageFilter::Day(Day::parse("2023-11-14").unwrap()), hashes(&["Q1", "Q2", "Q3", "Q4"])),
    ];
    for (filter, expected) in expectations {
        assert_eq!(test.list(filter.clone()).await, expected, "{filter:?} {context}");
    }
}

#[tokio::test]
async fn a_batch_of_personas_and_messages_is_one_bulk_request_and_all_of_it_is_searchable_when_index_returns() {
    let Some(server) = server() else { return };
    let proxy = RecordingProxy::start(&server);
    let test = TestIndex::connect_through(&server, &proxy.address, "bulk").await;
    // A first write, which also checks the mappings once for this process.
    let day_before = day_start() - 86_400_000_000;
    test.index.index(&batch(&[], &[&message("Warmup", "warm", day_before, &[], &[])])).await.unwrap();
    proxy.requests_since_last_look();

    test.index.index(&mixed_batch()).await.unwrap();
    let requests = proxy.requests_since_last_look();
    assert_eq!(requests.len(), 1, "one request for seven records: {requests:?}");
    assert!(requests[0].starts_with("POST /_bulk?"), "{requests:?}");
    assert!(requests[0].contains("refresh=wait_for"), "{requests:?}");

    // Searched right away, with no refresh in between.
    assert_mixed_batch_is_searchable(&test, "right after index returned").await;
    assert!(
        proxy.requests_since_last_look().iter().all(|line| !line.contains("_refresh")),
        "the searches above forced no refresh"
    );
}

#[tokio::test]
async fn indexing_the_same_batch_again_does_not_duplicate_listing_entries() {
    let Some(server) = server() else { return };
    let test = TestIndex::created(&server, "rebatch").await;
    let everything = mixed_batch();
    test.index.index(&everything).await.unwrap();
    test.index.index(&everything).await.unwrap();
    // The same records again, reversed and each twice in one batch.
    let doubled = RecordBatch {
        personas: everything.personas.iter().rev().flat_map(|p| [p.clone(), p.clone()]).collect(),
        messages: everything.messages.iter().rev().flat_map(|m| [m.clone(), m.clone()]).collect(),
    };
    test.index.index(&doubled).await.unwrap();
    assert_mixed_batch_is_searchable(&test, "after three writes").await;
}

#[tokio::test]
async fn a_batch_holding_a_record_the_index_cannot_hold_is_corrupt_and_nothing_of_it_is_indexed() {
    let Some(server) = server() else { return };
    let test = TestIndex::created(&server, "badbatch").await;
    let mut far = persona("far", "Far");
    far.created_at = "2300-01-01T00:00:00.000000Z".into();
    let mut with_bad_record = mixed_batch();
    with_bad_record.personas.push(far);
    match test.index.index(&with_bad_record).await {
        Err(BackendError::Corrupt(reason)) => assert!(reason.contains("2300"), "{reason}"),
        other => panic!("a batch with a persona of 2300 must be corrupt, got {other:?}"),
    }
    let mut with_bad_message = mixed_batch();
    with_bad_message.messages.insert(1, message("Early", "ann", -1, &[], &[]));
    assert!(matches!(test.index.index(&with_bad_message).await, Err(BackendError::Corrupt(_))));

    assert_eq!(test.index.persona_by_nickname("ann").await.unwrap(), None, "the good persona was not indexed");
    assert!(test.list(MessageFilter::Sender(address("ann"))).await.is_empty(), "nor the good messages");
    assert!(test.list(MessageFilter::Day(Day::parse("2023-11-14").unwrap())).await.is_empty());
}

#[tokio::test]
async fn a_document_elasticsearch_refuses_in_a_bulk_fails_the_batch_until_the_mapping_is_fixed() {
    let Some(server) = server() else { return };
    let test = TestIndex::created(&server, "refused").await;
    // A first write, so the index has checked its mappings for this process.
    let day_before = day_start() - 86_400_000_000;
    test.index.index(&batch(&[], &[&message("Warmup", "warm", day_before, &[], &[])])).await.unwrap();
    // Then someone rebuilds the message index by hand without `invite_hash`;
    // the index is strict, so ES refuses a registration (which has one).
    let name = test.name("message");
    let response = test.raw().indices().delete(IndicesDeleteParts::Index(&[&name])).send().await.unwrap();
    assert!(response.status_code().is_success());
    let body = json!({ "mappings": { "dynamic": "strict", "properties": message_properties_without_invite_hash() } });
    let response = test.raw().indices().create(IndicesCreateParts::Index(&name)).body(body).send().await.unwrap();
    assert!(response.status_code().is_success(), "the hand-made index is created");

    let next_day = day_start() + 86_400_000_000;
    let registration = registration("Reg", "dana", next_day, &MessageHash::of_message("the invitation"));
    let mut refused = mixed_batch();
    refused.messages.insert(2, registration);

    match test.index.index(&refused).await {
        Err(BackendError::Unavailable(reason)) => {
            assert!(reason.contains("refused") && reason.contains("invite_hash"), "{reason}")
        }
        other => panic!("a document ES refuses must fail the batch, got {other:?}"),
    }
    // Once an operator restores the mapping, the same batch goes through whole.
    test.index.create_indices().await.unwrap();
    test.index.index(&refused).await.unwrap();
    assert_mixed_batch_is_searchable(&test, "after the retry").await;
    assert_eq!(test.list(MessageFilter::Sender(address("dana"))).await, hashes(&["Reg"]));
}

/// The properties of index `message` (section 9) except `invite_hash`.
fn message_properties_without_invite_hash() -> Value {
    let keyword = json!({ "type": "keyword" });
    json!({
        "persona_sender": keyword,
        "persona_nickname": keyword,
        "hash": keyword,
        "dossier_hash": keyword,
        "type": keyword,
        "readers": keyword,
        "object_hashes": keyword,
        "containers": { "type": "nested", "properties": { "hash": keyword } },
        "created_at": { "type": "date_nanos" },
    })
}

// ----- failures -------------------------------------------------------------

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
    let listed = down.list_messages(&MessageFilter::Sender(address("s")), None, 10).await;
    assert!(matches!(listed, Err(BackendError::Unavailable(_))));
    let indexed = down.index(&mixed_batch()).await;
    assert!(matches!(indexed, Err(BackendError::Unavailable(_))), "{indexed:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "retries are short: {:?}", started.elapsed());
}

#[tokio::test]
async fn a_record_whose_date_the_index_cannot_hold_is_corrupt_without_asking_the_server() {
    // Refused before any request, so no server is needed: port 1 refuses
    // connections, and anything sent would fail as unavailable instead.
    let settings = ElasticSettings { url: "http://127.0.0.1:1".into(), ..ElasticSettings::default() };
    let index = ElasticIndex::connect(settings).await.unwrap();
    let mut unreadable = message("H", "s", 0, &[], &[]);
    unreadable.created_at = "2023-11-14T22:13:20Z".into();
    assert!(matches!(index.index(&batch(&[], &[&unreadable])).await, Err(BackendError::Corrupt(_))));
    let before_1970 = message("H", "s", -1, &[], &[]);
    assert!(matches!(index.index(&batch(&[], &[&before_1970])).await, Err(BackendError::Corrupt(_))));
    let mut far = persona("addr", "Far");
    far.created_at = "2300-01-01T00:00:00.000000Z".into();
    assert!(matches!(index.index(&batch(&[&far], &[])).await, Err(BackendError::Corrupt(_))));
    // Last in a batch of good records, it still fails the batch before anything is sent.
    let mut batch_ending_badly = mixed_batch();
    batch_ending_badly.messages.push(before_1970);
    assert!(matches!(index.index(&batch_ending_badly).await, Err(BackendError::Corrupt(_))));
}

#[test]
fn settings_default_to_a_local_server_without_prefix() {
    let settings = ElasticSettings::default();
    assert_eq!(settings.url, "http://127.0.0.1:9200");
    assert_eq!(settings.index_prefix, "");
    assert_eq!(settings.timeout_ms, 10_000);
}
