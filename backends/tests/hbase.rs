//! The HBase backend against a real HBase Thrift v1 gateway: records round
//! trip in the column layout of PROTOCOL.md section 9, a batch is written in
//! one `mutateRows` per table and read in one `getRows`, claims are
//! put-if-absent and all-or-nothing under concurrency, and broken or closed
//! connections are replaced without the caller noticing.
//!
//! Every test uses tables of its own (a unique prefix) and drops them at the
//! end. Connection failures are staged with a small TCP proxy in front of the
//! gateway, so the shared gateway itself is never disturbed.

use hbase_thrift::hbase::{HbaseSyncClient, Mutation, THbaseSyncClient};
use pm_backends::hbase::HBaseStore;
use pm_backends::settings::HBaseSettings;
use pm_backends::testsuite::{self, require, unique_prefix};
use pm_backends::{
    BackendError, ClaimKey, ClaimOutcome, ClaimStore, PendingAdmission, QueuedMessage, RecordBatch, RecordStore,
};
use pm_models::envelope::{AclRule, Container, ObjectEntry};
use pm_models::keys::PersonaKey;
use pm_models::records::{MessageRecord, PersonaRecord};
use pm_models::time::Micros;
use pm_models::{Address, Hash32, MessageHash};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thrift::protocol::{TBinaryInputProtocol, TBinaryOutputProtocol};
use thrift::transport::{TBufferedReadTransport, TBufferedWriteTransport};

fn gateway() -> String {
    testsuite::address("PM_TEST_HBASE", "127.0.0.1:9090")
}

/// True when the gateway answers; false (skip) or a panic under
/// `PM_REQUIRE_SERVICES=1` when it does not.
fn gateway_is_up() -> bool {
    require("hbase-thrift", &gateway())
}

fn settings(gateway: &str, prefix: &str) -> HBaseSettings {
    let (host, port) = gateway.rsplit_once(':').expect("PM_TEST_HBASE is host:port");
    HBaseSettings {
        host: host.to_owned(),
        port: port.parse().expect("PM_TEST_HBASE has a numeric port"),
        table_prefix: prefix.to_owned(),
        ..HBaseSettings::default()
    }
}

// ----- raw Thrift access, to look under the store ---------------------------

type RawClient = HbaseSyncClient<
    TBinaryInputProtocol<TBufferedReadTransport<TcpStream>>,
    TBinaryOutputProtocol<TBufferedWriteTransport<TcpStream>>,
>;

fn raw_client(gateway: &str) -> RawClient {
    let socket = TcpStream::connect(gateway).expect("the gateway accepts connections");
    socket.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let input = TBinaryInputProtocol::new(TBufferedReadTransport::new(socket.try_clone().unwrap()), true);
    let output = TBinaryOutputProtocol::new(TBufferedWriteTransport::new(socket), true);
    HbaseSyncClient::new(input, output)
}

/// The cells of a row, column name to value, read with a raw `getRow`.
fn raw_row(gateway: &str, table: &str, row: &str) -> BTreeMap<String, Vec<u8>> {
    let rows = raw_client(gateway).get_row(table.into(), row.into(), BTreeMap::new()).unwrap();
    rows.into_iter()
        .flat_map(|r| r.columns.unwrap_or_default())
        .map(|(column, cell)| (String::from_utf8(column).unwrap(), cell.value.unwrap_or_default()))
        .collect()
}

fn raw_put(gateway: &str, table: &str, row: &str, cells: &[(&str, &[u8])]) {
    let mutations = cells.iter().map(|(c, v)| Mutation::new(false, c.as_bytes().to_vec(), v.to_vec(), true)).collect();
    raw_client(gateway).mutate_row(table.into(), row.into(), mutations, BTreeMap::new()).unwrap();
}

/// `checkAndPut` with the expected value left *unset* on the wire (the
/// generated binding always sends one): HBase then checks that the cell does
/// not exist.
fn raw_check_and_put_unset(client: &mut RawClient, table: &str, row: &str, column: &str, value: &[u8]) -> bool {
    use thrift::protocol::{TFieldIdentifier, TMapIdentifier, TMessageIdentifier, TMessageType};
    use thrift::protocol::{TStructIdentifier, TType};
    use thrift::TThriftClient;
    let sequence = client.increment_sequence_number();
    let out = client.o_prot_mut();
    out.write_message_begin(&TMessageIdentifier::new("checkAndPut", TMessageType::Call, sequence)).unwrap();
    out.write_struct_begin(&TStructIdentifier::new("checkAndPut_args")).unwrap();
    for (id, bytes) in [(1, table.as_bytes()), (2, row.as_bytes()), (3, column.as_bytes())] {
        out.write_field_begin(&TFieldIdentifier::new("", TType::String, id)).unwrap();
        out.write_bytes(bytes).unwrap();
        out.write_field_end().unwrap();
    }
    out.write_field_begin(&TFieldIdentifier::new("mput", TType::Struct, 6)).unwrap();
    Mutation::new(false, column.as_bytes().to_vec(), value.to_vec(), true).write_to_out_protocol(out).unwrap();
    out.write_field_end().unwrap();
    out.write_field_begin(&TFieldIdentifier::new("attributes", TType::Map, 7)).unwrap();
    out.write_map_begin(&TMapIdentifier::new(TType::String, TType::String, 0)).unwrap();
    out.write_map_end().unwrap();
    out.write_field_end().unwrap();
    out.write_field_stop().unwrap();
    out.write_struct_end().unwrap();
    out.write_message_end().unwrap();
    out.flush().unwrap();
    let input = client.i_prot_mut();
    let reply = input.read_message_begin().unwrap();
    assert_eq!(reply.message_type, TMessageType::Reply, "checkAndPut answered");
    input.read_struct_begin().unwrap();
    let mut applied = None;
    loop {
        let field = input.read_field_begin().unwrap();
        if field.field_type == TType::Stop {
            break;
        }
        match field.id {
            Some(0) => applied = Some(input.read_bool().unwrap()),
            _ => panic!("checkAndPut failed: field {:?} in the reply", field.id),
        }
        input.read_field_end().unwrap();
    }
    input.read_struct_end().unwrap();
    input.read_message_end().unwrap();
    applied.expect("checkAndPut returned a result")
}

/// The tables of one test; dropped (disable + delete) when the test ends,
/// passed or failed.
struct TestTables {
    gateway: String,
    prefix: String,
}

impl TestTables {
    async fn create(label: &str) -> (Self, HBaseStore) {
        let tables = Self { gateway: gateway(), prefix: unique_prefix(label) };
        let store = HBaseStore::connect(settings(&tables.gateway, &tables.prefix)).await.unwrap();
        store.create_tables().await.unwrap();
        (tables, store)
    }

    fn name(&self, table: &str) -> String {
        format!("{}{table}", self.prefix)
    }

    /// The raw cells of the persona row of `record`.
    fn persona_row(&self, record: &PersonaRecord) -> BTreeMap<String, Vec<u8>> {
        raw_row(&self.gateway, &self.name("persona"), &record.address)
    }

    /// The raw cells of the message row of `record`.
    fn message_row(&self, record: &MessageRecord) -> BTreeMap<String, Vec<u8>> {
        raw_row(&self.gateway, &self.name("message"), &record.hash)
    }
}

impl Drop for TestTables {
    fn drop(&mut self) {
        let mut client = raw_client(&self.gateway);
        for table in ["persona", "message", "claim"] {
            let name = self.name(table).into_bytes();
            let _ = client.disable_table(name.clone());
            let _ = client.delete_table(name);
        }
    }
}

// ----- records --------------------------------------------------------------

/// The persona key of `seed`: seeds name the personas of these tests.
fn key(seed: u8) -> PersonaKey {
    PersonaKey::from_seed([seed; 32])
}

fn address(seed: u8) -> Address {
    key(seed).address()
}

const INVITED: u8 = 1;
const GENESIS: u8 = 2;
const INVITER: u8 = 3;
const SENDER: u8 = 4;
const READER_ONE: u8 = 5;
const READER_TWO: u8 = 6;
/// Stored by no test.
const NOBODY: u8 = 99;

fn persona(seed: u8, nickname: &str) -> PersonaRecord {
    PersonaRecord {
        address: address(seed).to_string(),
        pubkey: key(seed).public().as_str().to_owned(),
        nickname: nickname.to_owned(),
        created_at: "2026-11-22T10:00:00.123456Z".to_owned(),
        registration_hash: Some(MessageHash::of_message(&format!("registration of {seed}")).to_string()),
        invite_hash: Some(MessageHash::of_message("an invitation").to_string()),
        inviter: Some(address(INVITER).to_string()),
    }
}

/// A persona with none of the optional columns, as the first one is.
fn genesis(seed: u8) -> PersonaRecord {
    PersonaRecord { registration_hash: None, invite_hash: None, inviter: None, ..persona(seed, "Teleferic") }
}

/// A private message with an ACL, objects and a receipt; its hash is that of `label`.
fn message(label: &str) -> MessageRecord {
    MessageRecord {
        persona_sender: address(SENDER).to_string(),
        persona_pubkey: key(SENDER).public().as_str().to_owned(),
        persona_nickname: "Zoë 山田".to_owned(),
        message_type: 2,
        hash: MessageHash::of_message(label).to_string(),
        signature: "c2lnbmF0dXJl".to_owned(),
        timestamp: "dGltZXN0YW1w".to_owned(),
        dossier_hash: Hash32::of_text("dossier").to_string(),
        body_hash: Hash32::of_text("body").to_string(),
        acl: vec![
            AclRule { reader: address(READER_ONE).to_string(), key: "a2V5LW9uZQ==".to_owned() },
            AclRule { reader: address(READER_TWO).to_string(), key: "a2V5LXR3bw==".to_owned() },
        ],
        objects: vec![
            ObjectEntry {
                object_hash: Hash32::of_text("object one").to_string(),
                meta_hashes: vec![Hash32::of_text("meta 1").to_string(), Hash32::of_text("meta 2").to_string()],
                container: Some(Container {
                    container_hash: Hash32::of_text("container").to_string(),
                    container_sign: "Y29udGFpbmVyLXNpZ24=".to_owned(),
                    object_container: "ZW5jcnlwdGVkLWJsb2I=".to_owned(),
                }),
            },
            ObjectEntry {
                object_hash: Hash32::of_text("object two").to_string(),
                meta_hashes: vec![],
                container: None,
            },
        ],
        message: "ZW5jcnlwdGVkLW1lc3NhZ2U=".to_owned(),
        created_at: "2026-11-22T10:00:00.654321Z".to_owned(),
        message_sign: "bWVzc2FnZS1zaWdu".to_owned(),
        receipt: Some(format!("receipt of {label}")),
    }
}

/// A public message stored before receipts existed: no ACL, no objects, no receipt.
fn public_message(label: &str) -> MessageRecord {
    MessageRecord { message_type: 1, acl: vec![], objects: vec![], receipt: None, ..message(label) }
}

fn address_of(record: &PersonaRecord) -> Address {
    Address::parse(&record.address).expect("fixtures hold valid addresses")
}

fn hash_of(record: &MessageRecord) -> MessageHash {
    MessageHash::parse(&record.hash).expect("fixtures hold valid hashes")
}

fn batch(personas: &[&PersonaRecord], messages: &[&MessageRecord]) -> RecordBatch {
    RecordBatch {
        personas: personas.iter().map(|&p| p.clone()).collect(),
        messages: messages.iter().map(|&m| m.clone()).collect(),
    }
}

/// The row a persona must be stored as (section 9), column by column;
/// optional columns that are `None` are absent.
fn expected_persona_row(record: &PersonaRecord) -> BTreeMap<String, Vec<u8>> {
    let mut row: BTreeMap<String, Vec<u8>> = [
        ("persona:address", record.address.as_bytes()),
        ("persona:pubkey", record.pubkey.as_bytes()),
        ("persona:nickname", record.nickname.as_bytes()),
        ("persona:created_at", record.created_at.as_bytes()),
    ]
    .into_iter()
    .map(|(column, value)| (column.to_owned(), value.to_vec()))
    .collect();
    for (column, value) in [
        ("persona:registration_hash", &record.registration_hash),
        ("persona:invite_hash", &record.invite_hash),
        ("persona:inviter", &record.inviter),
    ] {
        if let Some(value) = value {
            row.insert(column.to_owned(), value.as_bytes().to_vec());
        }
    }
    row
}

/// The row a message must be stored as (section 9); `message:receipt` only
/// when the record has one.
fn expected_message_row(record: &MessageRecord) -> BTreeMap<String, Vec<u8>> {
    let mut row: BTreeMap<String, Vec<u8>> = [
        ("message:persona_sender", record.persona_sender.as_bytes().to_vec()),
        ("message:persona_pubkey", record.persona_pubkey.as_bytes().to_vec()),
        ("message:persona_nickname", record.persona_nickname.as_bytes().to_vec()),
        ("message:type", record.message_type.to_string().into_bytes()),
        ("message:hash", record.hash.as_bytes().to_vec()),
        ("message:signature", record.signature.as_bytes().to_vec()),
        ("message:timestamp", record.timestamp.as_bytes().to_vec()),
        ("message:dossier_hash", record.dossier_hash.as_bytes().to_vec()),
        ("message:body_hash", record.body_hash.as_bytes().to_vec()),
        ("message:acl", record.acl_column()),
        ("message:objects", record.objects_column()),
        ("message:message", record.message.as_bytes().to_vec()),
        ("message:created_at", record.created_at.as_bytes().to_vec()),
        ("message:message_sign", record.message_sign.as_bytes().to_vec()),
    ]
    .into_iter()
    .map(|(column, value)| (column.to_owned(), value))
    .collect();
    if let Some(receipt) = &record.receipt {
        row.insert("message:receipt".to_owned(), receipt.as_bytes().to_vec());
    }
    row
}

// ----- connection failures, staged by a proxy -------------------------------

const FORWARD: u8 = 0;
/// Close the connection that sends the next request, without forwarding it.
const LOSE_REQUEST: u8 = 1;
/// Forward the next request, then close its connection instead of
/// forwarding the answer.
const LOSE_ANSWER: u8 = 2;
/// Close every new connection at once, as a gateway that is down.
const DOWN: u8 = 3;

/// A TCP proxy in front of the gateway that can break connections on
/// demand, and keeps every byte sent to the gateway, to count the calls.
struct Proxy {
    port: u16,
    mode: Arc<AtomicU8>,
    clients: Arc<Mutex<Vec<TcpStream>>>,
    sent: Arc<Mutex<Vec<u8>>>,
}

impl Proxy {
    fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(FORWARD));
        let clients = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let (accept_mode, accept_clients, accept_sent) = (mode.clone(), clients.clone(), sent.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if accept_mode.load(Ordering::SeqCst) == DOWN {
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                accept_clients.lock().unwrap().push(client.try_clone().unwrap());
                Self::relay(client, server, accept_mode.clone(), accept_sent.clone());
            }
        });
        Self { port, mode, clients, sent }
    }

    fn relay(client: TcpStream, server: TcpStream, mode: Arc<AtomicU8>, sent: Arc<Mutex<Vec<u8>>>) {
        let doomed = Arc::new(AtomicBool::new(false));
        let (mut from_client, mut to_server) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let (client_side, server_side, requests_doomed) =
            (client.try_clone().unwrap(), server.try_clone().unwrap(), doomed.clone());
        std::thread::spawn(move || {
            let mut buffer = vec![0u8; 1 << 16];
            loop {
                let n = from_client.read(&mut buffer).unwrap_or(0);
                if n == 0 || mode.compare_exchange(LOSE_REQUEST, FORWARD, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                    let _ = client_side.shutdown(Shutdown::Both);
                    let _ = server_side.shutdown(Shutdown::Both);
                    return;
                }
                if mode.compare_exchange(LOSE_ANSWER, FORWARD, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                    requests_doomed.store(true, Ordering::SeqCst);
                }
                sent.lock().unwrap().extend_from_slice(&buffer[..n]);
                if to_server.write_all(&buffer[..n]).is_err() {
                    return;
                }
            }
        });
        let (mut from_server, mut to_client) = (server, client);
        std::thread::spawn(move || {
            let mut buffer = vec![0u8; 1 << 16];
            loop {
                let n = from_server.read(&mut buffer).unwrap_or(0);
                if n == 0 || doomed.load(Ordering::SeqCst) || to_client.write_all(&buffer[..n]).is_err() {
                    let _ = to_client.shutdown(Shutdown::Both);
                    let _ = from_server.shutdown(Shutdown::Both);
                    return;
                }
            }
        });
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    /// Closes every open connection, as the gateway does to idle ones.
    fn sever_all(&self) {
        for client in self.clients.lock().unwrap().drain(..) {
            let _ = client.shutdown(Shutdown::Both);
        }
    }

    /// The Thrift calls named `method` forwarded to the gateway since the
    /// last call of this function, and forgets what was sent. A call
    /// carries its method name once, in its message header.
    fn calls_since_last_count(&self, method: &str) -> usize {
        let sent = std::mem::take(&mut *self.sent.lock().unwrap());
        sent.windows(method.len()).filter(|window| *window == method.as_bytes()).count()
    }

    fn settings(&self, prefix: &str) -> HBaseSettings {
        HBaseSettings { port: self.port, table_prefix: prefix.to_owned(), ..HBaseSettings::default() }
    }
}

// ----- records: round trips and layout --------------------------------------

#[tokio::test]
async fn a_persona_is_read_back_equal_to_what_was_written_and_a_rewrite_changes_nothing() {
    if !gateway_is_up() {
        return;
    }
    let (_tables, store) = TestTables::create("persona").await;
    let invited = persona(INVITED, "Ünïcödé 名前 ✓");
    let first = genesis(GENESIS);
    for record in [&invited, &first] {
        store.put(&batch(&[record], &[])).await.unwrap();
        assert_eq!(store.persona(&address_of(record)).await.unwrap().as_ref(), Some(record));
        store.put(&batch(&[record], &[])).await.unwrap();
        assert_eq!(store.persona(&address_of(record)).await.unwrap().as_ref(), Some(record));
    }
    assert_eq!(store.persona(&address(NOBODY)).await.unwrap(), None);
}

#[tokio::test]
async fn a_message_with_acl_and_objects_is_read_back_equal_and_a_rewrite_changes_nothing() {
    if !gateway_is_up() {
        return;
    }
    let (_tables, store) = TestTables::create("message").await;
    let private = message("private");
    let public = public_message("public");
    for record in [&private, &public] {
        store.put(&batch(&[], &[record])).await.unwrap();
        store.put(&batch(&[], &[record])).await.unwrap();
        assert_eq!(store.message(&hash_of(record)).await.unwrap().as_ref(), Some(record));
    }
    assert_eq!(store.message(&MessageHash::of_message("no such message")).await.unwrap(), None);
}

#[tokio::test]
async fn rows_are_stored_in_the_column_layout_of_the_protocol() {
    if !gateway_is_up() {
        return;
    }
    let (tables, store) = TestTables::create("layout").await;
    let invited = persona(INVITED, "Ünïcödé");
    store.put(&batch(&[&invited], &[])).await.unwrap();
    store.put(&batch(&[&genesis(GENESIS)], &[])).await.unwrap();
    let record = message("layout");
    store.put(&batch(&[], &[&record])).await.unwrap();

    let row = tables.persona_row(&invited);
    let columns: Vec<&str> = row.keys().map(String::as_str).collect();
    assert_eq!(
        columns,
        [
            "persona:address",
            "persona:created_at",
            "persona:invite_hash",
            "persona:inviter",
            "persona:nickname",
            "persona:pubkey",
            "persona:registration_hash"
        ]
    );
    assert_eq!(row["persona:nickname"], "Ünïcödé".as_bytes());
    assert_eq!(row["persona:pubkey"], invited.pubkey.as_bytes());
    assert_eq!(row, expected_persona_row(&invited));
    let genesis_row = tables.persona_row(&genesis(GENESIS));
    assert_eq!(
        genesis_row.keys().map(String::as_str).collect::<Vec<_>>(),
        ["persona:address", "persona:created_at", "persona:nickname", "persona:pubkey"],
        "absent optional columns are left out"
    );

    let row = tables.message_row(&record);
    let columns: BTreeSet<&str> = row.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = [
        "message:persona_sender",
        "message:persona_pubkey",
        "message:persona_nickname",
        "message:type",
        "message:hash",
        "message:signature",
        "message:timestamp",
        "message:dossier_hash",
        "message:body_hash",
        "message:acl",
        "message:objects",
        "message:message",
        "message:created_at",
        "message:message_sign",
        "message:receipt",
    ]
    .into();
    assert_eq!(columns, expected);
    assert_eq!(row["message:type"], b"2");
    assert_eq!(row["message:acl"], record.acl_column());
    assert_eq!(row["message:objects"], record.objects_column());
    assert_eq!(row["message:persona_nickname"], "Zoë 山田".as_bytes());
    assert_eq!(row["message:message_sign"], record.message_sign.as_bytes());
    assert_eq!(row["message:receipt"], b"receipt of layout");
    assert_eq!(row, expected_message_row(&record));

    let key = ClaimKey::Nickname("zoë".to_owned());
    store.claim(std::slice::from_ref(&key), &record.hash).await.unwrap();
    let row = raw_row(&tables.gateway, &tables.name("claim"), &key.row_key());
    assert_eq!(row.into_iter().collect::<Vec<_>>(), [("claim:by".to_owned(), record.hash.clone().into_bytes())]);
}

#[tokio::test]
async fn a_batch_of_several_personas_and_messages_is_one_mutate_rows_per_table_each_row_in_the_protocol_layout() {
    if !gateway_is_up() {
        return;
    }
    let (tables, _) = TestTables::create("batchput").await;
    let proxy = Proxy::start(tables.gateway.clone());
    let store = HBaseStore::connect(proxy.settings(&tables.prefix)).await.unwrap();
    let personas = [persona(INVITED, "Ünïcödé"), genesis(GENESIS), persona(INVITER, "Inviter")];
    let messages = [message("first"), public_message("no receipt"), message("third")];
    assert!(messages[0].receipt.is_some() && messages[1].receipt.is_none(), "both kinds are in the batch");
    let everything = RecordBatch { personas: personas.to_vec(), messages: messages.to_vec() };

    proxy.calls_since_last_count("mutateRows");
    store.put(&everything).await.unwrap();
    assert_eq!(proxy.calls_since_last_count("mutateRows"), 2, "one mutateRows for personas, one for messages");

    for record in &personas {
        assert_eq!(tables.persona_row(record), expected_persona_row(record), "persona {}", record.address);
    }
    for record in &messages {
        assert_eq!(tables.message_row(record), expected_message_row(record), "message {}", record.hash);
    }
    assert!(!tables.message_row(&messages[1]).contains_key("message:receipt"), "no receipt, no column");
    assert_eq!(tables.message_row(&messages[2])["message:receipt"], b"receipt of third");

    // A batch of one kind touches one table; an empty batch sends nothing.
    store.put(&batch(&[&genesis(READER_ONE)], &[])).await.unwrap();
    assert_eq!(proxy.calls_since_last_count("mutateRows"), 1);
    store.put(&RecordBatch::default()).await.unwrap();
    assert_eq!(proxy.calls_since_last_count("mutateRows"), 0);

    // Written again as a whole, the rows are the same.
    store.put(&everything).await.unwrap();
    for record in &messages {
        assert_eq!(tables.message_row(record), expected_message_row(record), "message {} rewritten", record.hash);
    }
    let read = store.messages(&messages.iter().map(hash_of).collect::<Vec<_>>()).await.unwrap();
    assert_eq!(read, messages.iter().cloned().map(Some).collect::<Vec<_>>());
}

#[tokio::test]
async fn several_personas_and_messages_are_read_in_one_get_rows_in_request_order_with_none_for_the_missing() {
    if !gateway_is_up() {
        return;
    }
    let (tables, _) = TestTables::create("batchget").await;
    let proxy = Proxy::start(tables.gateway.clone());
    let store = HBaseStore::connect(proxy.settings(&tables.prefix)).await.unwrap();
    let (a, b, c) = (persona(INVITED, "A"), genesis(GENESIS), persona(INVITER, "C"));
    let (x, y, z) = (message("x"), public_message("y"), message("z"));
    store.put(&batch(&[&a, &b, &c], &[&x, &y, &z])).await.unwrap();

    proxy.calls_since_last_count("getRows");
    let asked = [address_of(&c), address(NOBODY), address_of(&a), address(SENDER), address_of(&b)];
    let found = store.personas(&asked).await.unwrap();
    assert_eq!(found, [Some(c.clone()), None, Some(a.clone()), None, Some(b.clone())]);
    assert_eq!(proxy.calls_since_last_count("getRows"), 1, "one getRows for all of them");

    let missing = MessageHash::of_message("never written");
    let asked = [hash_of(&z), hash_of(&x), missing.clone(), hash_of(&y)];
    let found = store.messages(&asked).await.unwrap();
    assert_eq!(found, [Some(z.clone()), Some(x.clone()), None, Some(y.clone())]);
    assert_eq!(proxy.calls_since_last_count("getRows"), 1);

    let twice = store.personas(&[address_of(&a), address_of(&a)]).await.unwrap();
    assert_eq!(twice, [Some(a.clone()), Some(a.clone())], "a key asked for twice is answered twice");

    let none = store.messages(&[missing, MessageHash::of_message("nor this")]).await.unwrap();
    assert_eq!(none, [None, None], "every key missing");
    assert!(store.personas(&[]).await.unwrap().is_empty());
    assert!(store.messages(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn concurrent_lookups_and_pending_rows_share_round_trips_and_each_caller_gets_its_own_answer() {
    if !gateway_is_up() {
        return;
    }
    let (tables, _) = TestTables::create("gathered").await;
    let proxy = Proxy::start(tables.gateway.clone());
    let store = HBaseStore::connect(proxy.settings(&tables.prefix)).await.unwrap();
    let stored: Vec<MessageRecord> = (0..32).map(|i| message(&format!("gathered {i}"))).collect();
    store.put(&batch(&[], &stored.iter().collect::<Vec<_>>())).await.unwrap();
    let held = message_key("held");
    assert_eq!(store.claim(std::slice::from_ref(&held), "m-held").await.unwrap(), ClaimOutcome::Claimed);

    // 64 lookups at once: every stored message, as many that are not, and
    // the claim's holder asked 16 times beside them.
    proxy.calls_since_last_count("getRows");
    let lookups = (0..64).map(|i| {
        let store = store.clone();
        let expected = stored.get(i).cloned();
        let hash = expected.as_ref().map(hash_of).unwrap_or_else(|| MessageHash::of_message(&format!("absent {i}")));
        tokio::spawn(async move { (store.message(&hash).await.unwrap(), expected) })
    });
    let holders = (0..16).map(|_| {
        let (store, held) = (store.clone(), held.clone());
        tokio::spawn(async move { store.holder(&held).await.unwrap() })
    });
    let (lookups, holders) = (futures::future::join_all(lookups).await, futures::future::join_all(holders).await);
    for answer in lookups {
        let (found, expected) = answer.unwrap();
        assert_eq!(found, expected);
    }
    for holder in holders {
        assert_eq!(holder.unwrap().as_deref(), Some("m-held"));
    }
    let get_rows = proxy.calls_since_last_count("getRows");
    assert!(get_rows <= 16, "80 concurrent lookups went out as {get_rows} getRows");

    // 40 outbox rows written at once, then removed at once.
    let pending: Vec<PendingAdmission> = (0..40)
        .map(|i| {
            let hash = MessageHash::of_message(&format!("pending {i}"));
            let message = QueuedMessage {
                message_id: hash.clone(),
                accepted_at: Micros(1_000 + i),
                receipt: "R".into(),
                payload: vec![1, 2, 3],
            };
            PendingAdmission { message, keys: vec![ClaimKey::Message(hash)] }
        })
        .collect();
    proxy.calls_since_last_count("mutateRows");
    let puts = pending.iter().cloned().map(|p| {
        let store = store.clone();
        tokio::spawn(async move { store.put_pending(&p).await.unwrap() })
    });
    futures::future::join_all(puts).await.into_iter().for_each(|put| put.unwrap());
    let mut listed = store.pending_before(Micros(i64::MAX), 1000).await.unwrap();
    listed.sort_by_key(|p| p.message.accepted_at);
    assert_eq!(listed, pending, "every pending row written, each whole");
    let removes = pending.iter().cloned().map(|p| {
        let store = store.clone();
        tokio::spawn(async move { store.remove_pending(&p).await.unwrap() })
    });
    futures::future::join_all(removes).await.into_iter().for_each(|remove| remove.unwrap());
    assert!(store.pending_before(Micros(i64::MAX), 1000).await.unwrap().is_empty(), "every pending row removed");
    let mutate_rows = proxy.calls_since_last_count("mutateRows");
    assert!(mutate_rows <= 16, "80 concurrent pending-row writes went out as {mutate_rows} mutateRows");
    assert_eq!(
        store.holder(&held).await.unwrap().as_deref(),
        Some("m-held"),
        "removing pending rows left claims alone"
    );
}

#[tokio::test]
async fn a_row_that_does_not_decode_is_reported_corrupt() {
    if !gateway_is_up() {
        return;
    }
    let (tables, store) = TestTables::create("corrupt").await;
    let record = message("corrupt");
    store.put(&batch(&[], &[&record])).await.unwrap();
    raw_put(&tables.gateway, &tables.name("message"), &record.hash, &[("message:acl", b"\xc1 not msgpack")]);
    assert!(matches!(store.message(&hash_of(&record)).await, Err(BackendError::Corrupt(_))));

    store.put(&batch(&[], &[&record])).await.unwrap();
    raw_put(&tables.gateway, &tables.name("message"), &record.hash, &[("message:type", b"two")]);
    assert!(matches!(store.message(&hash_of(&record)).await, Err(BackendError::Corrupt(_))));

    let half = address(INVITED);
    raw_put(&tables.gateway, &tables.name("persona"), half.as_str(), &[("persona:nickname", b"half")]);
    assert!(matches!(store.persona(&half).await, Err(BackendError::Corrupt(_))));
    let bad_utf8 = address(GENESIS);
    raw_put(&tables.gateway, &tables.name("persona"), bad_utf8.as_str(), &[("persona:address", b"\xff\xfe")]);
    assert!(matches!(store.persona(&bad_utf8).await, Err(BackendError::Corrupt(_))));
}

#[tokio::test]
async fn creating_the_tables_again_is_harmless() {
    if !gateway_is_up() {
        return;
    }
    let (_tables, store) = TestTables::create("twice").await;
    store.put(&batch(&[&genesis(GENESIS)], &[])).await.unwrap();
    store.create_tables().await.unwrap();
    store.create_tables().await.unwrap();
    assert_eq!(store.persona(&address(GENESIS)).await.unwrap(), Some(genesis(GENESIS)));
    RecordStore::ping(&store).await.unwrap();
}

#[tokio::test]
async fn connecting_to_a_port_where_no_gateway_listens_is_unavailable() {
    if !gateway_is_up() {
        return;
    }
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let result = HBaseStore::connect(HBaseSettings { port, ..HBaseSettings::default() }).await;
    assert!(matches!(result, Err(BackendError::Unavailable(_))), "{result:?}");
}

// ----- claims ---------------------------------------------------------------

fn message_key(label: &str) -> ClaimKey {
    ClaimKey::Message(MessageHash::of_message(label))
}

#[tokio::test]
async fn a_claim_is_put_if_absent_even_for_the_message_holding_it() {
    if !gateway_is_up() {
        return;
    }
    let (_tables, store) = TestTables::create("putifabsent").await;
    let key = message_key("a");
    assert_eq!(store.holder(&key).await.unwrap(), None);
    assert_eq!(store.claim(std::slice::from_ref(&key), "m1").await.unwrap(), ClaimOutcome::Claimed);
    assert_eq!(store.claim(std::slice::from_ref(&key), "m1").await.unwrap(), ClaimOutcome::Conflict(key.clone()));
    assert_eq!(store.claim(std::slice::from_ref(&key), "m2").await.unwrap(), ClaimOutcome::Conflict(key.clone()));
    assert_eq!(store.holder(&key).await.unwrap().as_deref(), Some("m1"));
    assert_eq!(store.claim(&[], "m3").await.unwrap(), ClaimOutcome::Claimed, "no keys, nothing to conflict with");
}

#[tokio::test]
async fn a_conflicting_claim_takes_nothing_and_gives_back_what_it_took() {
    if !gateway_is_up() {
        return;
    }
    let (_tables, store) = TestTables::create("allornothing").await;
    let a = ClaimKey::Key(address(INVITED));
    let b = ClaimKey::Nickname("ünïcödé".to_owned());
    let c = ClaimKey::Invite(MessageHash::of_message("invite"));
    assert_eq!(store.claim(&[a.clone(), b.clone()], "m1").await.unwrap(), ClaimOutcome::Claimed);
    assert_eq!(store.claim(&[c.clone(), b.clone()], "m2").await.unwrap(), ClaimOutcome::Conflict(b.clone()));
    assert_eq!(store.holder(&c).await.unwrap(), None, "the key taken before the conflict was given back");
    assert_eq!(store.holder(&b).await.unwrap().as_deref(), Some("m1"));
    assert_eq!(store.holder(&a).await.unwrap().as_deref(), Some("m1"));
    // A key given back is free at once for anyone (no delete marker hides the new claim).
    assert_eq!(store.claim(std::slice::from_ref(&c), "m3").await.unwrap(), ClaimOutcome::Claimed);
    assert_eq!(store.holder(&c).await.unwrap().as_deref(), Some("m3"));
}

#[tokio::test]
async fn only_the_holder_releases_a_claim_and_a_released_key_can_be_claimed_again() {
    if !gateway_is_up() {
        return;
    }
    let (_tables, store) = TestTables::create("release").await;
    let key = ClaimKey::Nickname("alice".to_owned());
    let other = ClaimKey::Invite(MessageHash::of_message("other"));
    assert_eq!(store.claim(std::slice::from_ref(&key), "m1").await.unwrap(), ClaimOutcome::Claimed);
    store.release(&[key.clone(), other.clone()], "m2").await.unwrap();
    assert_eq!(store.holder(&key).await.unwrap().as_deref(), Some("m1"), "m2 does not hold it");
    store.release(&[key.clone(), other.clone()], "m1").await.unwrap();
    assert_eq!(store.holder(&key).await.unwrap(), None);
    assert_eq!(store.holder(&other).await.unwrap(), None, "releasing a free key leaves it free");
    store.release(std::slice::from_ref(&key), "m1").await.unwrap();
    assert_eq!(store.claim(std::slice::from_ref(&key), "m2").await.unwrap(), ClaimOutcome::Claimed);
    assert_eq!(store.holder(&key).await.unwrap().as_deref(), Some("m2"));
}

/// The claim each claimer of [`race`] takes besides the contested nickname.
fn own_key(claimer: usize) -> ClaimKey {
    message_key(&format!("own-{claimer}"))
}

/// `claimers` claimers spread over `store_count` stores (as many pools, as
/// that many authorizers would be), all for the same nickname.
async fn race(store_count: usize, claimers: usize, by: impl Fn(usize) -> String) -> (TestTables, Vec<String>) {
    let (tables, _) = TestTables::create("race").await;
    let mut stores = Vec::new();
    for _ in 0..store_count {
        stores.push(HBaseStore::connect(settings(&tables.gateway, &tables.prefix)).await.unwrap());
    }
    let key = ClaimKey::Nickname("popular".to_owned());
    let start = Arc::new(tokio::sync::Barrier::new(claimers));
    let tasks: Vec<_> = (0..claimers)
        .map(|i| {
            let (store, key, start, by) = (stores[i % store_count].clone(), key.clone(), start.clone(), by(i));
            tokio::spawn(async move {
                start.wait().await;
                (by.clone(), store.claim(&[own_key(i), key], &by).await.unwrap())
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (by, outcome) = task.await.unwrap();
        match outcome {
            ClaimOutcome::Claimed => winners.push(by),
            ClaimOutcome::Conflict(lost) => assert_eq!(lost, key),
        }
    }
    (tables, winners)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_claims_of_one_key_admit_exactly_one() {
    if !gateway_is_up() {
        return;
    }
    let (tables, winners) = race(4, 20, |i| format!("message-{i}")).await;
    assert_eq!(winners.len(), 1, "{winners:?}");
    let store = HBaseStore::connect(settings(&tables.gateway, &tables.prefix)).await.unwrap();
    let holder = store.holder(&ClaimKey::Nickname("popular".to_owned())).await.unwrap();
    assert_eq!(holder.as_ref(), Some(&winners[0]));
    for i in 0..20 {
        let own = store.holder(&own_key(i)).await.unwrap();
        let expected = (format!("message-{i}") == winners[0]).then(|| winners[0].clone());
        assert_eq!(own, expected, "losers gave back their other key");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_envelope_claimed_twenty_times_at_once_is_admitted_once() {
    if !gateway_is_up() {
        return;
    }
    let (_tables, winners) = race(4, 20, |_| "the-same-message".to_owned()).await;
    assert_eq!(winners.len(), 1, "{winners:?}");
}

#[tokio::test]
async fn check_and_put_counts_an_empty_cell_as_absent_whether_the_expected_value_is_empty_or_unset() {
    if !gateway_is_up() {
        return;
    }
    // The claim store relies on this: a claim is free when `claim:by` is
    // absent or empty (released). HBase's check for "absent" (expected value
    // unset on the wire, `ifNotExists`) and its check for "equals empty" are
    // the same check: absent or empty.
    let (tables, _store) = TestTables::create("semantics").await;
    let mut client = raw_client(&tables.gateway);
    let table = tables.name("claim");
    let mut check_and_put = |row: &str, expected: &[u8], value: &[u8]| {
        let put = Mutation::new(false, b"claim:by".to_vec(), value.to_vec(), true);
        client
            .check_and_put(table.clone().into(), row.into(), "claim:by".into(), expected.to_vec(), put, BTreeMap::new())
            .unwrap()
    };
    assert!(check_and_put("empty", b"", b"m1"), "an absent cell matches empty");
    assert!(!check_and_put("empty", b"", b"m2"), "a held cell does not match empty");
    assert!(check_and_put("empty", b"m1", b""), "the holder matches its own value");
    assert!(check_and_put("empty", b"", b"m2"), "an empty cell matches empty");
    assert!(!check_and_put("empty", b"m1", b""), "a former holder no longer matches");

    let mut client = raw_client(&tables.gateway);
    assert!(raw_check_and_put_unset(&mut client, &table, "unset", "claim:by", b"m1"), "an absent cell is absent");
    assert!(!raw_check_and_put_unset(&mut client, &table, "unset", "claim:by", b"m2"), "a held cell is not");
    raw_put(&tables.gateway, &table, "unset", &[("claim:by", b"")]);
    assert!(raw_check_and_put_unset(&mut client, &table, "unset", "claim:by", b"m2"), "an empty cell counts as absent");
}

// ----- connection failures --------------------------------------------------

#[tokio::test]
async fn connections_the_gateway_closed_while_idle_are_replaced_transparently() {
    if !gateway_is_up() {
        return;
    }
    let (tables, _) = TestTables::create("idle").await;
    let proxy = Proxy::start(tables.gateway.clone());
    let store = HBaseStore::connect(proxy.settings(&tables.prefix)).await.unwrap();
    let (first, second) = (genesis(GENESIS), persona(INVITED, "Invited"));
    let record = message("idle");
    store.put(&batch(&[&first], &[])).await.unwrap();
    for round in 0..3 {
        proxy.sever_all();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(store.persona(&address_of(&first)).await.unwrap(), Some(first.clone()));
        RecordStore::ping(&store).await.unwrap();
        // The batched calls too: a put of both kinds and reads of several rows.
        proxy.sever_all();
        tokio::time::sleep(Duration::from_millis(50)).await;
        store.put(&batch(&[&second], &[&record])).await.unwrap();
        proxy.sever_all();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let found = store.personas(&[address_of(&second), address(NOBODY), address_of(&first)]).await.unwrap();
        assert_eq!(found, [Some(second.clone()), None, Some(first.clone())], "round {round}");
        proxy.sever_all();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let found = store.messages(&[MessageHash::of_message("missing"), hash_of(&record)]).await.unwrap();
        assert_eq!(found, [None, Some(record.clone())], "round {round}");
    }
}

#[tokio::test]
async fn a_call_whose_connection_breaks_before_the_answer_is_retried_on_a_new_connection() {
    if !gateway_is_up() {
        return;
    }
    let (tables, _) = TestTables::create("broken").await;
    let proxy = Proxy::start(tables.gateway.clone());
    let store = HBaseStore::connect(proxy.settings(&tables.prefix)).await.unwrap();
    let record = message("broken");

    for lost in [LOSE_REQUEST, LOSE_ANSWER] {
        proxy.set(lost);
        store.put(&batch(&[], &[&record])).await.unwrap();
        proxy.set(lost);
        assert_eq!(store.message(&hash_of(&record)).await.unwrap(), Some(record.clone()));
    }

    // The batched calls: a put of both kinds whose first mutateRows (the
    // personas) breaks, one of messages only, and reads of several rows.
    let personas = [persona(INVITED, "Invited"), genesis(GENESIS)];
    let messages = [message("batch one"), public_message("batch two")];
    for lost in [LOSE_REQUEST, LOSE_ANSWER] {
        let label = if lost == LOSE_REQUEST { "request lost" } else { "answer lost" };
        proxy.set(lost);
        store.put(&RecordBatch { personas: personas.to_vec(), messages: vec![] }).await.unwrap();
        proxy.set(lost);
        store.put(&RecordBatch { personas: personas.to_vec(), messages: messages.to_vec() }).await.unwrap();
        proxy.set(lost);
        store.put(&RecordBatch { personas: vec![], messages: messages.to_vec() }).await.unwrap();
        proxy.set(lost);
        let found = store.personas(&[address_of(&personas[1]), address(NOBODY), address_of(&personas[0])]).await;
        assert_eq!(found.unwrap(), [Some(personas[1].clone()), None, Some(personas[0].clone())], "{label}");
        proxy.set(lost);
        let found = store.messages(&[hash_of(&messages[1]), hash_of(&messages[0]), hash_of(&record)]).await;
        assert_eq!(
            found.unwrap(),
            [Some(messages[1].clone()), Some(messages[0].clone()), Some(record.clone())],
            "{label}"
        );
    }
    for record in &messages {
        assert_eq!(tables.message_row(record), expected_message_row(record), "a retried put leaves the same row");
    }

    // A claim whose request never arrived is simply taken on the retry.
    let key = message_key("lost request");
    proxy.set(LOSE_REQUEST);
    assert_eq!(store.claim(std::slice::from_ref(&key), "m1").await.unwrap(), ClaimOutcome::Claimed);
    assert_eq!(store.holder(&key).await.unwrap().as_deref(), Some("m1"));
    // A claim applied whose answer was lost is recognised as ours, not a conflict.
    let key = message_key("lost answer");
    proxy.set(LOSE_ANSWER);
    assert_eq!(store.claim(std::slice::from_ref(&key), "m1").await.unwrap(), ClaimOutcome::Claimed);
    assert_eq!(store.holder(&key).await.unwrap().as_deref(), Some("m1"));
    // A release whose answer was lost is retried harmlessly.
    proxy.set(LOSE_ANSWER);
    store.release(std::slice::from_ref(&key), "m1").await.unwrap();
    assert_eq!(store.holder(&key).await.unwrap(), None);
    // And a real conflict is still a conflict.
    proxy.set(LOSE_ANSWER);
    assert_eq!(
        store.claim(&[message_key("lost request")], "m2").await.unwrap(),
        ClaimOutcome::Conflict(message_key("lost request"))
    );
}

#[tokio::test]
async fn calls_are_unavailable_while_the_gateway_is_down_and_reconnect_when_it_is_back() {
    if !gateway_is_up() {
        return;
    }
    let (tables, _) = TestTables::create("restart").await;
    let proxy = Proxy::start(tables.gateway.clone());
    let store = HBaseStore::connect(proxy.settings(&tables.prefix)).await.unwrap();
    let record = genesis(GENESIS);
    store.put(&batch(&[&record], &[])).await.unwrap();
    let (other, written_while_down) = (persona(INVITED, "Invited"), message("while down"));

    proxy.set(DOWN);
    proxy.sever_all();
    assert!(matches!(RecordStore::ping(&store).await, Err(BackendError::Unavailable(_))));
    assert!(matches!(store.persona(&address_of(&record)).await, Err(BackendError::Unavailable(_))));
    let several = store.personas(&[address_of(&record), address_of(&other)]).await;
    assert!(matches!(several, Err(BackendError::Unavailable(_))), "{several:?}");
    let several = store.messages(&[hash_of(&written_while_down), MessageHash::of_message("x")]).await;
    assert!(matches!(several, Err(BackendError::Unavailable(_))), "{several:?}");
    let put = store.put(&batch(&[&other], &[&written_while_down])).await;
    assert!(matches!(put, Err(BackendError::Unavailable(_))), "{put:?}");
    let key = ClaimKey::Key(address(GENESIS));
    assert!(matches!(store.claim(std::slice::from_ref(&key), "m1").await, Err(BackendError::Unavailable(_))));

    proxy.set(FORWARD);
    RecordStore::ping(&store).await.unwrap();
    assert_eq!(store.persona(&address_of(&record)).await.unwrap(), Some(record.clone()));
    assert_eq!(store.holder(&key).await.unwrap(), None, "the failed claim left nothing behind");
    assert_eq!(store.claim(std::slice::from_ref(&key), "m1").await.unwrap(), ClaimOutcome::Claimed);
    let found = store.personas(&[address_of(&other), address_of(&record)]).await.unwrap();
    assert_eq!(found, [None, Some(record.clone())], "the failed put wrote nothing");
    store.put(&batch(&[&other], &[&written_while_down])).await.unwrap();
    let found = store.personas(&[address_of(&other), address_of(&record)]).await.unwrap();
    assert_eq!(found, [Some(other), Some(record)]);
    assert_eq!(store.message(&hash_of(&written_while_down)).await.unwrap(), Some(written_while_down));
}
