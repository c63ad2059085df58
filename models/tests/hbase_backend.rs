//! The HBase backend against a real HBase Thrift v1 gateway: records round
//! trip in the column layout of PROTOCOL.md section 9, claims are
//! put-if-absent and all-or-nothing under concurrency, and broken or closed
//! connections are replaced without the caller noticing.
//!
//! Every test uses tables of its own (a unique prefix) and drops them at the
//! end. Connection failures are staged with a small TCP proxy in front of the
//! gateway, so the shared gateway itself is never disturbed.

use hbase_thrift::hbase::{HbaseSyncClient, Mutation, THbaseSyncClient};
use pm_models::envelope::{AclRule, Container, ObjectEntry};
use pm_models::records::{MessageRecord, PersonaRecord};
use pm_models::seams::hbase::{HBaseSettings, HBaseStore};
use pm_models::seams::services::{address, require, unique_prefix};
use pm_models::seams::{BackendError, ClaimKey, ClaimOutcome, ClaimStore, RecordStore};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thrift::protocol::{TBinaryInputProtocol, TBinaryOutputProtocol};
use thrift::transport::{TBufferedReadTransport, TBufferedWriteTransport};

fn gateway() -> String {
    address("PM_TEST_HBASE", "127.0.0.1:9090")
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

fn persona(address: &str, nickname: &str) -> PersonaRecord {
    PersonaRecord {
        address: address.to_owned(),
        pubkey: "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA1m5TSVFbcSCJ3hZjgONTdXSX1Ho8kN9Q9ZL8+OGjvTA=\n-----END PUBLIC KEY-----"
            .to_owned(),
        nickname: nickname.to_owned(),
        created_at: "2026-11-22T10:00:00.123456Z".to_owned(),
        registration_hash: Some("cmVnaXN0cmF0aW9uLWhhc2gtMDEyMzQ1Njc4OWFiY2RlZg==".to_owned()),
        invite_hash: Some("aW52aXRlLWhhc2gtMDEyMzQ1Njc4OWFiY2RlZmdoaWprbA==".to_owned()),
        inviter: Some("1PMinviterAddressXXXXXXXXXXXXXXXX".to_owned()),
    }
}

fn genesis(address: &str) -> PersonaRecord {
    PersonaRecord { registration_hash: None, invite_hash: None, inviter: None, ..persona(address, "Teleferic") }
}

fn message(hash: &str) -> MessageRecord {
    MessageRecord {
        persona_sender: "1PMsenderAddressXXXXXXXXXXXXXXXXX".to_owned(),
        persona_pubkey: "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAsender=\n-----END PUBLIC KEY-----".to_owned(),
        persona_nickname: "Zoë 山田".to_owned(),
        message_type: 2,
        hash: hash.to_owned(),
        signature: "c2lnbmF0dXJl".to_owned(),
        timestamp: "dGltZXN0YW1w".to_owned(),
        dossier_hash: "ZG9zc2llci1oYXNo".to_owned(),
        body_hash: "Ym9keS1oYXNo".to_owned(),
        acl: vec![
            AclRule { reader: "1PMreaderOneXXXXXXXXXXXXXXXXXXXXX".to_owned(), key: "a2V5LW9uZQ==".to_owned() },
            AclRule { reader: "1PMreaderTwoXXXXXXXXXXXXXXXXXXXXX".to_owned(), key: "a2V5LXR3bw==".to_owned() },
        ],
        objects: vec![
            ObjectEntry {
                object_hash: "b2JqZWN0LW9uZQ==".to_owned(),
                meta_hashes: vec!["bWV0YS0x".to_owned(), "bWV0YS0y".to_owned()],
                container: Some(Container {
                    container_hash: "Y29udGFpbmVyLWhhc2g=".to_owned(),
                    container_sign: "Y29udGFpbmVyLXNpZ24=".to_owned(),
                    object_container: "ZW5jcnlwdGVkLWJsb2I=".to_owned(),
                }),
            },
            ObjectEntry { object_hash: "b2JqZWN0LXR3bw==".to_owned(), meta_hashes: vec![], container: None },
        ],
        message: "ZW5jcnlwdGVkLW1lc3NhZ2U=".to_owned(),
        created_at: "2026-11-22T10:00:00.654321Z".to_owned(),
        message_sign: "bWVzc2FnZS1zaWdu".to_owned(),
    }
}

#[tokio::test]
async fn a_persona_is_read_back_equal_to_what_was_written_and_a_rewrite_changes_nothing() {
    if !require("hbase-thrift", &address("PM_TEST_HBASE", "127.0.0.1:9090")) {
        return;
    }
    let (_tables, store) = TestTables::create("persona").await;
    let invited = persona("1PMinvitedAddress", "Ünïcödé 名前 ✓");
    let first = genesis("1PMgenesisAddress");
    for record in [&invited, &first] {
        store.put_persona(record).await.unwrap();
        assert_eq!(store.persona(&record.address).await.unwrap().as_ref(), Some(record));
        store.put_persona(record).await.unwrap();
        assert_eq!(store.persona(&record.address).await.unwrap().as_ref(), Some(record));
    }
    assert_eq!(store.persona("1PMnobodyAddress").await.unwrap(), None);
}

#[tokio::test]
async fn a_message_with_acl_and_objects_is_read_back_equal_and_a_rewrite_changes_nothing() {
    if !require("hbase-thrift", &address("PM_TEST_HBASE", "127.0.0.1:9090")) {
        return;
    }
    let (_tables, store) = TestTables::create("message").await;
    let private = message("bWVzc2FnZS1oYXNoLTE=");
    let public = MessageRecord { message_type: 1, acl: vec![], objects: vec![], ..message("bWVzc2FnZS1oYXNoLTI=") };
    for record in [&private, &public] {
        store.put_message(record).await.unwrap();
        store.put_message(record).await.unwrap();
        assert_eq!(store.message(&record.hash).await.unwrap().as_ref(), Some(record));
    }
    assert_eq!(store.message("bm8tc3VjaC1tZXNzYWdl").await.unwrap(), None);
}

#[tokio::test]
async fn rows_are_stored_in_the_column_layout_of_the_protocol() {
    if !require("hbase-thrift", &address("PM_TEST_HBASE", "127.0.0.1:9090")) {
        return;
    }
    let (tables, store) = TestTables::create("layout").await;
    let invited = persona("1PMinvitedAddress", "Ünïcödé");
    store.put_persona(&invited).await.unwrap();
    store.put_persona(&genesis("1PMgenesisAddress")).await.unwrap();
    let record = message("bWVzc2FnZS1oYXNo");
    store.put_message(&record).await.unwrap();

    let row = raw_row(&tables.gateway, &tables.name("persona"), "1PMinvitedAddress");
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
    let genesis_row = raw_row(&tables.gateway, &tables.name("persona"), "1PMgenesisAddress");
    assert_eq!(
        genesis_row.keys().map(String::as_str).collect::<Vec<_>>(),
        ["persona:address", "persona:created_at", "persona:nickname", "persona:pubkey"],
        "absent optional columns are left out"
    );

    let row = raw_row(&tables.gateway, &tables.name("message"), &record.hash);
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
    ]
    .into();
    assert_eq!(columns, expected);
    assert_eq!(row["message:type"], b"2");
    assert_eq!(row["message:acl"], record.acl_column());
    assert_eq!(row["message:objects"], record.objects_column());
    assert_eq!(row["message:persona_nickname"], "Zoë 山田".as_bytes());
    assert_eq!(row["message:message_sign"], record.message_sign.as_bytes());

    let key = ClaimKey::Nickname("zoë".to_owned());
    store.claim(std::slice::from_ref(&key), &record.hash).await.unwrap();
    let row = raw_row(&tables.gateway, &tables.name("claim"), &key.row_key());
    assert_eq!(row.into_iter().collect::<Vec<_>>(), [("claim:by".to_owned(), record.hash.clone().into_bytes())]);
}

#[tokio::test]
async fn a_row_that_does_not_decode_is_reported_corrupt() {
    if !require("hbase-thrift", &address("PM_TEST_HBASE", "127.0.0.1:9090")) {
        return;
    }
    let (tables, store) = TestTables::create("corrupt").await;
    let record = message("Y29ycnVwdA==");
    store.put_message(&record).await.unwrap();
    raw_put(&tables.gateway, &tables.name("message"), &record.hash, &[("message:acl", b"\xc1 not msgpack")]);
    assert!(matches!(store.message(&record.hash).await, Err(BackendError::Corrupt(_))));

    store.put_message(&record).await.unwrap();
    raw_put(&tables.gateway, &tables.name("message"), &record.hash, &[("message:type", b"two")]);
    assert!(matches!(store.message(&record.hash).await, Err(BackendError::Corrupt(_))));

    raw_put(&tables.gateway, &tables.name("persona"), "1PMhalfAPersona", &[("persona:nickname", b"half")]);
    assert!(matches!(store.persona("1PMhalfAPersona").await, Err(BackendError::Corrupt(_))));
    raw_put(&tables.gateway, &tables.name("persona"), "1PMbadUtf8", &[("persona:address", b"\xff\xfe")]);
    assert!(matches!(store.persona("1PMbadUtf8").await, Err(BackendError::Corrupt(_))));
}

#[tokio::test]
async fn creating_the_tables_again_is_harmless() {
    if !require("hbase-thrift", &address("PM_TEST_HBASE", "127.0.0.1:9090")) {
        return;
    }
    let (_tables, store) = TestTables::create("twice").await;
    store.put_persona(&genesis("1PMgenesisAddress")).await.unwrap();
    store.create_tables().await.unwrap();
    store.create_tables().await.unwrap();
    assert_eq!(store.persona("1PMgenesisAddress").await.unwrap(), Some(genesis("1PMgenesisAddress")));
    store.ping().await.unwrap();
}

#[tokio::test]
async fn connecting_to_a_port_where_no_gateway_listens_is_unavailable() {
    if !require("hbase-thrift", &address("PM_TEST_HBASE", "127.0.0.1:9090")) {
        return;
    }
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let result = HBaseStore::connect(HBaseSettings { port, ..HBaseSettings::default() }).await;
    assert!(matches!(result, Err(BackendError::Unavailable(_))), "{result:?}");
}

// ----- claims ---------------------------------------------------------------

#[tokio::test]
async fn a_claim_is_put_if_absent_even_for_the_message_holding_it() {
    if !require("hbase-thrift", &address("PM_TEST_HBASE", "127.0.0.1:9090")) {
        return;
    }
    let (_tables, store) = TestTables::create("putifabsent").await;
    let key = ClaimKey::Message("aGFzaC1h".to_owned());
    assert_eq!(store.holder(&key).await.unwrap(), None);
    assert_eq!(store.claim(std::slice::from_ref(&key), "m1").await.unwrap(), ClaimOutcome::Claimed);
    assert_eq!(store.claim(std::slice::from_ref(&key), "m1").await.unwrap(), ClaimOutcome::Conflict(key.clone()));
    assert_eq!(store.claim(std::slice::from_ref(&key), "m2").await.unwrap(), ClaimOutcome::Conflict(key.clone()));
    assert_eq!(store.holder(&key).await.unwrap().as_deref(), Some("m1"));
    assert_eq!(store.claim(&[], "m3").await.unwrap(), ClaimOutcome::Claimed, "no keys, nothing to conflict with");
}

#[tokio::test]
async fn a_conflicting_claim_takes_nothing_and_gives_back_what_it_took() {
    if !require("hbase-thrift", &address("PM_TEST_HBASE", "127.0.0.1:9090")) {
        return;
    }
    let (_tables, store) = TestTables::create("allornothing").await;
    let a = ClaimKey::Key("1PMaddressA".to_owned());
    let b = ClaimKey::Nickname("ünïcödé".to_owned());
    let c = ClaimKey::Invite("aW52aXRl".to_owned());
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
    if !require("hbase-thrift", &address("PM_TEST_HBASE", "127.0.0.1:9090")) {
        return;
    }
    let (_tables, store) = TestTables::create("release").await;
    let key = ClaimKey::Nickname("alice".to_owned());
    let other = ClaimKey::Invite("b3RoZXI=".to_owned());
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

/// Twenty claimers spread over four stores (four pools, as four
/// authorizers would be), all for the same nickname.
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
                let other = ClaimKey::Message(format!("own-{i}"));
                start.wait().await;
                (by.clone(), store.claim(&[other, key], &by).await.unwrap())
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
    if !require("hbase-thrift", &address("PM_TEST_HBASE", "127.0.0.1:9090")) {
        return;
    }
    let (tables, winners) = race(4, 20, |i| format!("message-{i}")).await;
    assert_eq!(winners.len(), 1, "{winners:?}");
    let store = HBaseStore::connect(settings(&tables.gateway, &tables.prefix)).await.unwrap();
    let holder = store.holder(&ClaimKey::Nickname("popular".to_owned())).await.unwrap();
    assert_eq!(holder.as_ref(), Some(&winners[0]));
    for i in 0..20 {
        let own = store.holder(&ClaimKey::Message(format!("own-{i}"))).await.unwrap();
        let expected = (format!("message-{i}") == winners[0]).then(|| winners[0].clone());
        assert_eq!(own, expected, "losers gave back their other key");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_envelope_claimed_twenty_times_at_once_is_admitted_once() {
    if !require("hbase-thrift", &address("PM_TEST_HBASE", "127.0.0.1:9090")) {
        return;
    }
    let (_tables, winners) = race(4, 20, |_| "the-same-message".to_owned()).await;
    assert_eq!(winners.len(), 1, "{winners:?}");
}

#[tokio::test]
async fn check_and_put_counts_an_empty_cell_as_absent_whether_the_expected_value_is_empty_or_unset() {
    if !require("hbase-thrift", &address("PM_TEST_HBASE", "127.0.0.1:9090")) {
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

// ----- connection failures, staged by a proxy -------------------------------

const FORWARD: u8 = 0;
/// Close the connection that sends the next request, without forwarding it.
const LOSE_REQUEST: u8 = 1;
/// Forward the next request, then close its connection instead of
/// forwarding the answer.
const LOSE_ANSWER: u8 = 2;
/// Close every new connection at once, as a gateway that is down.
const DOWN: u8 = 3;

/// A TCP proxy in front of the gateway that can break connections on demand.
struct Proxy {
    port: u16,
    mode: Arc<AtomicU8>,
    clients: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(FORWARD));
        let clients = Arc::new(Mutex::new(Vec::new()));
        let (accept_mode, accept_clients) = (mode.clone(), clients.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if accept_mode.load(Ordering::SeqCst) == DOWN {
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                accept_clients.lock().unwrap().push(client.try_clone().unwrap());
                Self::relay(client, server, accept_mode.clone());
            }
        });
        Self { port, mode, clients }
    }

    fn relay(client: TcpStream, server: TcpStream, mode: Arc<AtomicU8>) {
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

    fn settings(&self, prefix: &str) -> HBaseSettings {
        HBaseSettings { port: self.port, table_prefix: prefix.to_owned(), ..HBaseSettings::default() }
    }
}

#[tokio::test]
async fn connections_the_gateway_closed_while_idle_are_replaced_transparently() {
    if !require("hbase-thrift", &address("PM_TEST_HBASE", "127.0.0.1:9090")) {
        return;
    }
    let (tables, _) = TestTables::create("idle").await;
    let proxy = Proxy::start(tables.gateway.clone());
    let store = HBaseStore::connect(proxy.settings(&tables.prefix)).await.unwrap();
    let record = genesis("1PMgenesisAddress");
    store.put_persona(&record).await.unwrap();
    for _ in 0..3 {
        proxy.sever_all();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(store.persona(&record.address).await.unwrap(), Some(record.clone()));
        store.ping().await.unwrap();
    }
}

#[tokio::test]
async fn a_call_whose_connection_breaks_before_the_answer_is_retried_on_a_new_connection() {
    if !require("hbase-thrift", &address("PM_TEST_HBASE", "127.0.0.1:9090")) {
        return;
    }
    let (tables, _) = TestTables::create("broken").await;
    let proxy = Proxy::start(tables.gateway.clone());
    let store = HBaseStore::connect(proxy.settings(&tables.prefix)).await.unwrap();
    let record = message("YnJva2Vu");

    for lost in [LOSE_REQUEST, LOSE_ANSWER] {
        proxy.set(lost);
        store.put_message(&record).await.unwrap();
        proxy.set(lost);
        assert_eq!(store.message(&record.hash).await.unwrap(), Some(record.clone()));
    }

    // A claim whose request never arrived is simply taken on the retry.
    let key = ClaimKey::Message("bG9zdC1yZXF1ZXN0".to_owned());
    proxy.set(LOSE_REQUEST);
    assert_eq!(store.claim(std::slice::from_ref(&key), "m1").await.unwrap(), ClaimOutcome::Claimed);
    assert_eq!(store.holder(&key).await.unwrap().as_deref(), Some("m1"));
    // A claim applied whose answer was lost is recognised as ours, not a conflict.
    let key = ClaimKey::Message("bG9zdC1hbnN3ZXI=".to_owned());
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
        store.claim(&[ClaimKey::Message("bG9zdC1yZXF1ZXN0".to_owned())], "m2").await.unwrap(),
        ClaimOutcome::Conflict(ClaimKey::Message("bG9zdC1yZXF1ZXN0".to_owned()))
    );
}

#[tokio::test]
async fn calls_are_unavailable_while_the_gateway_is_down_and_reconnect_when_it_is_back() {
    if !require("hbase-thrift", &address("PM_TEST_HBASE", "127.0.0.1:9090")) {
        return;
    }
    let (tables, _) = TestTables::create("restart").await;
    let proxy = Proxy::start(tables.gateway.clone());
    let store = HBaseStore::connect(proxy.settings(&tables.prefix)).await.unwrap();
    let record = genesis("1PMgenesisAddress");
    store.put_persona(&record).await.unwrap();

    proxy.set(DOWN);
    proxy.sever_all();
    assert!(matches!(store.ping().await, Err(BackendError::Unavailable(_))));
    assert!(matches!(store.persona(&record.address).await, Err(BackendError::Unavailable(_))));
    let key = ClaimKey::Key("1PMgenesisAddress".to_owned());
    assert!(matches!(store.claim(std::slice::from_ref(&key), "m1").await, Err(BackendError::Unavailable(_))));

    proxy.set(FORWARD);
    store.ping().await.unwrap();
    assert_eq!(store.persona(&record.address).await.unwrap(), Some(record));
    assert_eq!(store.holder(&key).await.unwrap(), None, "the failed claim left nothing behind");
    assert_eq!(store.claim(std::slice::from_ref(&key), "m1").await.unwrap(), ClaimOutcome::Claimed);
}
