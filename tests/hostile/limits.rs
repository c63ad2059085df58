//! The gateway's limits on HTTP and GraphQL requests (PROTOCOL.md sections
//! 5 and 7, `teleferic/src/limits.rs` and `schema.rs`): body size (4 MiB,
//! also when compressed or sent without a length), depth, complexity,
//! aliases (100), root fields (100), batches, and slow clients
//! (`gateway.body_timeout_ms`). Each is refused cleanly, with the code and
//! an HTTP status the contract gives, while another client is served at the
//! same time: every limit case runs joined with a client that reads and
//! sends a valid envelope, which must succeed.
//!
//! Each limit is also checked from the other side: a request just inside it
//! is answered with data, so the refusal is about the limit and not about
//! the request's shape.

use crate::common::{self, error_code, TestNode};
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Value};
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// What a request got: its HTTP status and the first error code, or
/// `DATA` when it was answered with data.
///
/// On a client of its own that keeps no connection: after refusing a body
/// the gateway may close the connection, which a shared pool would then
/// hand to the ordinary client.
async fn post(node: &TestNode, body: Vec<u8>, headers: &[(&str, &str)]) -> (u16, String) {
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("an HTTP client");
    let mut request = http.post(&node.server.url).header("content-type", "application/json").body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    answer(request.send().await.expect("the gateway answers")).await
}

async fn answer(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("an answer body");
    let value: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("HTTP {status} without a GraphQL body: {text:.200}"));
    (status, error_code(&value).unwrap_or_else(|| "DATA".to_owned()))
}

fn query_body(query: &str) -> Vec<u8> {
    json!({ "query": query }).to_string().into_bytes()
}

/// Another client's ordinary work: a lookup and a valid envelope, both served.
async fn ordinary_client(node: &TestNode) {
    let data = node.data("{ teleferic { signedTimestamp persona { address } } }", json!({})).await;
    assert!(data["teleferic"]["signedTimestamp"].is_string(), "the other client is served: {data}");
    let t = node.timestamp().await;
    let envelope = common::envelopes::assertion(&node.genesis, &[node.genesis.public()], vec![], &t);
    node.send(&envelope).await.unwrap_or_else(|code| panic!("the other client's envelope was refused: {code}"));
}

/// Sends `copies` of an offending request at once, joined with an ordinary
/// client; every copy must get `expected` (status and code).
async fn refused_while_others_are_served(
    node: &TestNode,
    what: &str,
    copies: usize,
    body: Vec<u8>,
    expected: (u16, &str),
) {
    let offending = futures::future::join_all((0..copies).map(|_| post(node, body.clone(), &[])));
    let (answers, ()) = tokio::join!(offending, ordinary_client(node));
    for got in answers {
        assert_eq!((got.0, got.1.as_str()), expected, "{what}");
    }
}

fn aliases(n: usize) -> String {
    let fields: String = (0..n).map(|i| format!("a{i}: teleferic {{ signedTimestamp }} ")).collect();
    format!("{{ {fields} }}")
}

fn root_fields(n: usize) -> String {
    format!("{{ {} }}", "__typename ".repeat(n))
}

/// A selection `depth` fields deep (introspection's `ofType` chains are the
/// schema's only unbounded nesting): `__schema { types { ofType { ... name } } }`.
fn deep(depth: usize) -> String {
    assert!(depth >= 3);
    let fields = ["__schema", "types"].into_iter().chain(std::iter::repeat_n("ofType", depth - 3));
    let nested = fields
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .fold("name".to_owned(), |inner, field| format!("{field} {{ {inner} }}"));
    format!("{{ {nested} }}")
}

/// `n` listings of 1,000 envelopes of `sender`, every field asked for.
fn listings(sender: &str, n: usize) -> String {
    let fields: String = (0..n)
        .map(|i| format!("l{i}: messageBySender(sender: \"{sender}\", limit: 1000) {{ {} }} ", common::ENVELOPE_FIELDS))
        .collect();
    format!("{{ {fields} }}")
}

/// Posts `chunks` chunks of `size` bytes (a query padded with spaces) with
/// `Transfer-Encoding: chunked`, on a socket of its own, reading the answer
/// while it writes (the gateway may answer before the body ends).
async fn chunked(base: &str, chunks: usize, size: usize) -> (u16, String) {
    let address = base.strip_prefix("http://").expect("an http URL");
    let stream = tokio::net::TcpStream::connect(address).await.expect("the gateway accepts a connection");
    let (mut reader, mut writer) = tokio::io::split(stream);
    let head = format!(
        "POST /teleferic HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let mut first = query_body("{ __typename }");
    first.resize(size.max(first.len()), b' ');
    let writing = async move {
        let _ = writer.write_all(head.as_bytes()).await;
        for n in 0..chunks {
            let data = if n == 0 { first.clone() } else { vec![b' '; size] };
            let frame = [format!("{:x}\r\n", data.len()).into_bytes(), data, b"\r\n".to_vec()].concat();
            if writer.write_all(&frame).await.is_err() {
                return;
            }
        }
        let _ = writer.write_all(b"0\r\n\r\n").await;
    };
    let reading = async move {
        let mut answer = Vec::new();
        let mut buffer = [0u8; 16 * 1024];
        // Bounded: the answer is small, and the gateway closes the connection.
        for _ in 0..10_000 {
            match tokio::time::timeout(Duration::from_secs(30), reader.read(&mut buffer)).await {
                Ok(Ok(n)) if n > 0 => answer.extend_from_slice(&buffer[..n]),
                _ => break,
            }
        }
        answer
    };
    let ((), answer) = tokio::join!(writing, reading);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP answer: {text:.300}"));
    let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{head}"));
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_owned() };
    let value: Value =
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("HTTP {status} without a GraphQL body: {body:.200}"));
    (status, error_code(&value).unwrap_or_else(|| "DATA".to_owned()))
}

/// The data of a chunked HTTP body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413_while_others_are_served() {
    let node = common::spawn_node().await;
    // Exactly the limit, padded with JSON whitespace: answered.
    let mut body = query_body("{ __typename }");
    body.resize(MAX_REQUEST_BYTES, b' ');
    assert_eq!(post(&node, body.clone(), &[]).await, (200, "DATA".to_owned()), "a body of exactly 4 MiB is read");
    body.push(b' ');
    refused_while_others_are_served(&node, "a body one byte over 4 MiB", 4, body, (413, "PAYLOAD_TOO_LARGE")).await;

    // Without a Content-Length: chunked transfer encoding, 5 MiB in all.
    let (streamed, ()) = tokio::join!(chunked(&node.server.base, 80, 64 * 1024), ordinary_client(&node));
    assert_eq!(streamed, (413, "PAYLOAD_TOO_LARGE".to_owned()), "a chunked body past 4 MiB");
    // The same encoding of a small request is read.
    assert_eq!(chunked(&node.server.base, 1, 64).await, (200, "DATA".to_owned()), "a small chunked body");

    // A gzip bomb: 64 KiB on the wire, 64 MiB once inflated.
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    let mut json = query_body("{ __typename }");
    json.resize(64 * 1024 * 1024, b' ');
    encoder.write_all(&json).unwrap();
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 256 * 1024, "the bomb is small on the wire: {} bytes", bomb.len());
    let (bombed, ()) = tokio::join!(post(&node, bomb, &[("content-encoding", "gzip")]), ordinary_client(&node));
    assert_eq!(bombed, (413, "PAYLOAD_TOO_LARGE".to_owned()), "a gzip body inflating past 4 MiB");
    // The same compression of a small request is read.
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(&query_body("{ __typename }")).unwrap();
    let small = encoder.finish().unwrap();
    assert_eq!(post(&node, small, &[("content-encoding", "gzip")]).await, (200, "DATA".to_owned()));
}

#[tokio::test]
async fn deep_costly_aliased_wide_and_batched_queries_are_refused_while_others_are_served() {
    let node = common::spawn_node().await;
    let genesis = node.genesis.address().to_string();
    const MALFORMED: (u16, &str) = (200, "MALFORMED_ENVELOPE");

    // Aliases: 100 allowed.
    assert_eq!(post(&node, query_body(&aliases(100)), &[]).await, (200, "DATA".to_owned()), "100 aliases");
    refused_while_others_are_served(&node, "101 aliases", 8, query_body(&aliases(101)), MALFORMED).await;
    refused_while_others_are_served(&node, "10,000 aliases", 4, query_body(&aliases(10_000)), MALFORMED).await;

    // Root fields: 100 allowed.
    assert_eq!(post(&node, query_body(&root_fields(100)), &[]).await, (200, "DATA".to_owned()), "100 root fields");
    refused_while_others_are_served(&node, "101 root fields", 8, query_body(&root_fields(101)), MALFORMED).await;
    refused_while_others_are_served(&node, "100,000 root fields", 4, query_body(&root_fields(100_000)), MALFORMED)
        .await;

    // Depth: 16 allowed.
    assert_eq!(post(&node, query_body(&deep(16)), &[]).await, (200, "DATA".to_owned()), "a selection 16 deep");
    refused_while_others_are_served(&node, "a selection 17 deep", 8, query_body(&deep(17)), MALFORMED).await;
    refused_while_others_are_served(&node, "a selection 1,000 deep", 4, query_body(&deep(1_000)), MALFORMED).await;

    // Complexity: one page of 1,000 envelopes with every field passes; three do not.
    assert_eq!(post(&node, query_body(&listings(&genesis, 1)), &[]).await, (200, "DATA".to_owned()), "one full page");
    refused_while_others_are_served(&node, "three full pages", 8, query_body(&listings(&genesis, 3)), MALFORMED).await;
    let costly = format!(
        "{{ {} }}",
        (0..100)
            .map(|i| format!(
                "a{i}: messageByDate(date: \"2024-01-01\", limit: 1000) {{ ACL {{ reader {{ address }} }} }} "
            ))
            .collect::<String>()
    );
    refused_while_others_are_served(&node, "100 aliased listings of 1,000", 4, query_body(&costly), MALFORMED).await;

    // Fragments: a spread of a spread of ... (2^40 fields if expanded) is
    // refused without being expanded.
    let mut bomb = String::from("query { ...F40 } fragment F0 on Query { __typename } ");
    for i in 1..=40 {
        bomb.push_str(&format!("fragment F{i} on Query {{ ...F{} ...F{} }} ", i - 1, i - 1));
    }
    let (answers, ()) = tokio::join!(post(&node, query_body(&bomb), &[]), ordinary_client(&node));
    assert_ne!(answers.0, 500, "a fragment bomb does not break the gateway");
    let cycle = "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }";
    refused_while_others_are_served(&node, "fragments spreading each other", 4, query_body(cycle), MALFORMED).await;

    // Batches: a JSON array is not a request, however short.
    let one = json!({ "query": "{ __typename }" });
    for n in [1usize, 2, 1_000] {
        let batch = Value::Array(vec![one.clone(); n]).to_string().into_bytes();
        refused_while_others_are_served(&node, &format!("a batch of {n}"), 4, batch, MALFORMED).await;
    }
    // GET cannot carry a mutation.
    let response = node
        .http
        .get(&node.server.url)
        .query(&[("query", "mutation { sendMessage(envelope: {}) { messageHash } }")])
        .send()
        .await
        .unwrap();
    assert_eq!(answer(response).await, (200, "MALFORMED_ENVELOPE".to_owned()), "a mutation by GET");
}

/// What happened when, in the slow-client test.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    SlowStarted,
    OrdinaryServed,
    SlowAnswered { bytes_sent: usize, answer: String },
}

/// A client that sends a request's headers, then its body one byte a
/// second, and stops when the gateway answers (or after `length` bytes).
async fn trickle(base: String, length: usize, events: Arc<Mutex<Vec<Event>>>, headers_too: bool) {
    let address = base.strip_prefix("http://").expect("an http URL").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("the gateway accepts a connection");
    let head = format!(
        "POST /teleferic HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    let (mut upfront, mut trickled) = (head.into_bytes(), b" ".repeat(length));
    if headers_too {
        trickled = [upfront.clone(), trickled].concat();
        upfront.clear();
    }
    stream.write_all(&upfront).await.unwrap();
    events.lock().unwrap().push(Event::SlowStarted);
    let mut answer = Vec::new();
    let mut sent = 0;
    for byte in trickled.iter() {
        if stream.write_all(&[*byte]).await.is_err() {
            break;
        }
        sent += 1;
        let mut buffer = [0u8; 4096];
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buffer[..n]);
                // The rest of the answer, if any, follows at once.
                while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buffer)).await {
                    if n == 0 {
                        break;
                    }
                    answer.extend_from_slice(&buffer[..n]);
                }
                break;
            }
            Err(_) => {}
        }
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    events.lock().unwrap().push(Event::SlowAnswered { bytes_sent: sent, answer });
}

#[tokio::test]
async fn a_client_trickling_its_body_is_cut_off_while_others_are_served() {
    // A node whose gateway waits 3 s for a body.
    let node = common::spawn_embedded_node_with_env(&[("PM_GATEWAY__BODY_TIMEOUT_MS", "3000")]).await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let length = 60;
    let slow: Vec<_> =
        (0..4).map(|_| tokio::spawn(trickle(node.server.base.clone(), length, events.clone(), false))).collect();
    // The ordinary client starts once every slow one has sent its headers.
    for _ in 0..200 {
        if events.lock().unwrap().iter().filter(|e| **e == Event::SlowStarted).count() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ordinary_client(&node).await;
    events.lock().unwrap().push(Event::OrdinaryServed);
    for client in slow {
        client.await.unwrap();
    }
    let events = events.lock().unwrap().clone();
    let served_at = events.iter().position(|e| *e == Event::OrdinaryServed).unwrap();
    for (at, event) in events.iter().enumerate() {
        let Event::SlowAnswered { bytes_sent, answer } = event else { continue };
        assert!(at > served_at, "the ordinary client was served while the slow ones were held: {events:?}");
        assert!(*bytes_sent < length, "the gateway stopped waiting before the body was complete ({bytes_sent} bytes)");
        assert!(answer.starts_with("HTTP/1.1 200"), "the slow client gets a GraphQL answer: {answer}");
        assert!(answer.contains("MALFORMED_ENVELOPE") && answer.contains("not received within 3000 ms"), "{answer}");
    }
    assert_eq!(events.iter().filter(|e| matches!(e, Event::SlowAnswered { .. })).count(), 4);
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off_while_others_are_served() {
    let node = common::spawn_node().await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let slow = tokio::spawn(trickle(node.server.base.clone(), 10, events.clone(), true));
    for _ in 0..200 {
        if events.lock().unwrap().contains(&Event::SlowStarted) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ordinary_client(&node).await;
    events.lock().unwrap().push(Event::OrdinaryServed);
    slow.await.unwrap();
    let events = events.lock().unwrap().clone();
    let Some(Event::SlowAnswered { bytes_sent, answer }) = events.last() else { panic!("{events:?}") };
    assert_eq!(events[1], Event::OrdinaryServed, "the ordinary client was served first: {events:?}");
    let head_length = 100;
    assert!(*bytes_sent < head_length, "the gateway stopped waiting for the headers ({bytes_sent} bytes sent)");
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "a timeout or a closed connection: {answer}");
}
