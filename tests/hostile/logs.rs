//! Log forging (issue 8, defect 9): client text with newlines, carriage
//! returns and ANSI escapes, put in every place a client controls (the
//! envelope's fields, query arguments, the query text, the operation name,
//! variables, HTTP headers, the request line), must not forge a log line
//! nor write a terminal escape into `pm serve`'s log, at debug level with
//! dependencies included.
//!
//! Every line of the log must begin with the subscriber's own prefix (a
//! timestamp of this run and a level), so no client text starts a line;
//! the log holds no ESC byte (colours are off with `NO_COLOR`, so an ESC
//! could only come from a client); and a forged prefix dated 2001 never
//! starts a line.

use crate::common::{self, NodeOptions, TestNode};
use nix::sys::signal::Signal;
use serde_json::json;
use std::time::Duration;

/// A line a client would like to add to the log.
fn forged_line(marker: &str) -> String {
    format!("2001-01-01T00:00:00.000000Z  INFO pm: envelope accepted message_hash={marker}")
}

/// The texts sent: the forged line after a newline, a carriage return, a
/// CRLF, a vertical tab, a unicode line separator, and ANSI escapes
/// (erase the line, move the cursor up, colour, OSC title).
fn hostile_texts(marker: &str) -> Vec<String> {
    let line = forged_line(marker);
    vec![
        format!("x\n{line}"),
        format!("x\r{line}"),
        format!("x\r\n{line}\r\n"),
        format!("x\u{0b}{line}"),
        format!("x\u{2028}{line}"),
        format!("x\u{85}{line}"),
        format!("x\u{1b}[2K\u{1b}[1A\r{line}"),
        format!("\u{1b}[31m{marker}\u{1b}[0m"),
        format!("\u{1b}]0;{marker}\u{07}"),
        format!("{marker}\u{9b}2K"),
    ]
}

async fn raw_post(node: &TestNode, body: Vec<u8>) -> u16 {
    node.http
        .post(&node.server.url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the gateway answers")
        .status()
        .as_u16()
}

/// Sends `text` everywhere a client can put it.
async fn send_everywhere(node: &TestNode, text: &str) {
    let t = node.timestamp().await;
    let valid = common::envelopes::assertion(&node.genesis, &[node.genesis.public()], vec![], &t).to_json_value();
    // Each field of the envelope in turn.
    for field in ["messageHash", "messageType", "message", "messageSign", "sender", "dossierHash", "bodyHash"] {
        let mut input = valid.clone();
        input[field] = json!(text);
        let answer = node.send_input(input).await;
        assert!(answer.is_err(), "an envelope with {field} = {text:?} was accepted");
    }
    // A reader of the ACL and an object's hashes.
    let mut input = valid.clone();
    input["ACL"] = json!([{ "reader": text, "messageKey": text }]);
    assert!(node.send_input(input).await.is_err());
    // Query arguments of every type the schema reads from text.
    let queries = [
        "query($v: Address!) { persona(address: $v) { address } }",
        "query($v: String!) { persona(nickname: $v) { address } }",
        "query($v: SHA256!) { messageByHash(messageHash: $v) { messageHash } }",
        "query($v: Address!) { messageBySender(sender: $v) { messageHash } }",
        "query($v: Address!) { messageByReader(reader: $v) { messageHash } }",
        "query($v: Date!) { messageByDate(date: $v) { messageHash } }",
        "query($v: PublicKey!) { persona(pubkey: $v) { address } }",
        "query($v: SHA256!) { objectByHash(objectHash: $v) { __typename } }",
        "query($v: String!) { messageByDate(date: \"2024-01-01\", after: $v) { messageHash } }",
    ];
    for query in queries {
        let answer = node.graphql(query, json!({ "v": text })).await;
        assert!(answer.get("errors").is_some() || answer["data"].is_object(), "{answer}");
    }
    // The query text itself: a string literal, a name, a syntax error.
    let literal = serde_json::to_string(text).unwrap();
    node.graphql(&format!("{{ persona(nickname: {literal}) {{ address }} }}"), json!({})).await;
    node.graphql(&format!("{{ {text} }}"), json!({})).await;
    node.graphql(text, json!({})).await;
    // The operation name, unknown variables, and extensions.
    let body = json!({
        "query": "query Q { __typename }",
        "operationName": text,
        "variables": { text: text },
        "extensions": { text: text },
    });
    raw_post(node, body.to_string().into_bytes()).await;
    // Not JSON at all, and JSON with the text as a key.
    raw_post(node, text.as_bytes().to_vec()).await;
    raw_post(node, format!("{{{literal}: 1}}").into_bytes()).await;
    // Headers (where HTTP allows the bytes) and the query string of a GET.
    let header_safe: String = text.chars().filter(|c| *c == '\t' || (' '..='~').contains(c)).collect();
    let _ = node
        .http
        .post(&node.server.url)
        .header("content-type", "application/json")
        .header("user-agent", &header_safe)
        .header("x-request-id", &header_safe)
        .header("x-forwarded-for", &header_safe)
        .body(json!({ "query": "{ __typename }" }).to_string())
        .send()
        .await
        .expect("the gateway answers");
    let _ = node.http.get(&node.server.url).query(&[("query", text), ("operationName", text)]).send().await;
}

/// A request line and headers with raw control bytes, on a socket of its own.
async fn raw_request_line(node: &TestNode, marker: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = node.server.base.strip_prefix("http://").expect("an http URL");
    let requests = [
        format!("POST /teleferic?\r\n{} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", forged_line(marker)),
        format!("POST /teleferic HTTP/1.1\r\nHost: x\r\nX-A: a\u{1b}[2K{marker}\r\nContent-Length: 0\r\n\r\n"),
        format!("POST /{marker}\u{1b}[2K HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"),
    ];
    for request in requests {
        let mut stream = tokio::net::TcpStream::connect(address).await.expect("the gateway accepts a connection");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    }
}

#[tokio::test]
async fn client_text_with_newlines_and_terminal_escapes_forges_no_log_line() {
    let logs = tempfile::tempdir().unwrap();
    let options = NodeOptions {
        env: vec![("RUST_LOG".into(), "debug".into()), ("NO_COLOR".into(), "1".into())],
        log_dir: Some(logs.path().to_owned()),
    };
    let mut node = common::spawn_embedded_node_with(&options).await;
    let marker = format!("FORGED{}", hex::encode(pm_models::client::random_bytes::<4>()));
    let texts = hostile_texts(&marker);
    for text in &texts {
        send_everywhere(&node, text).await;
    }
    raw_request_line(&node, &marker).await;
    // The node still serves, and stored nothing of the above.
    node.sentinel().await;
    let listed =
        node.graphql("query($d: Date!) { messageByDate(date: $d) { messageHash } }", json!({ "d": today() })).await;
    let listed = listed["data"]["messageByDate"].as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 1, "only the sentinel is stored: {listed:?}");
    let status = node.server.stop_with(Signal::SIGTERM, Duration::from_secs(30));
    assert!(status.success(), "pm serve stops cleanly: {status:?}");

    let log = std::fs::read(logs.path().join("serve.log")).expect("the serve log");
    assert!(log.len() > 10_000, "the log says something at debug level ({} bytes)", log.len());
    assert!(!log.contains(&0x1b), "an ESC byte in the log: {}", excerpt(&log, 0x1b));
    let text = String::from_utf8_lossy(&log);
    assert!(text.contains("DEBUG"), "the log is at debug level");
    let year = &today()[..4];
    let mut bad = Vec::new();
    for (n, line) in text.split('\n').enumerate().filter(|(_, l)| !l.is_empty()) {
        if !starts_like_a_log_line(line, year) {
            bad.push(format!("line {}: {line:.300}", n + 1));
        }
    }
    assert!(bad.is_empty(), "{} log lines not made by the subscriber:\n{}", bad.len(), bad.join("\n"));
    for separator in ['\r', '\u{0b}', '\u{0c}', '\u{85}', '\u{2028}', '\u{2029}', '\u{9b}'] {
        assert!(!text.contains(separator), "a {separator:?} in the log: a terminal would start a line there");
    }
    println!(
        "log forging: {} texts in every slot, {} bytes of log, every line the subscriber's",
        texts.len(),
        log.len()
    );
}

fn today() -> String {
    pm_models::time::Micros::now().to_rfc3339()[..10].to_owned()
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ  LEVEL ` with this run's year.
fn starts_like_a_log_line(line: &str, year: &str) -> bool {
    let Some(rest) = line.strip_prefix(year) else { return false };
    let Some((stamp, rest)) = rest.split_once("Z ") else { return false };
    let stamp_ok = stamp.len() <= 30 && stamp.chars().all(|c| c.is_ascii_digit() || "-T:.".contains(c));
    let level = rest.trim_start();
    stamp_ok && ["TRACE ", "DEBUG ", "INFO ", "WARN ", "ERROR "].iter().any(|l| level.starts_with(l))
}

fn excerpt(log: &[u8], byte: u8) -> String {
    let at = log.iter().position(|b| *b == byte).unwrap_or(0);
    String::from_utf8_lossy(&log[at.saturating_sub(200)..(at + 200).min(log.len())]).into_owned()
}

#[test]
fn the_log_line_check_tells_a_forged_line_from_a_real_one() {
    let real = "2026-12-02T04:00:00.123456Z DEBUG pm_teleferic::http: graphql request served";
    assert!(starts_like_a_log_line(real, "2026"));
    assert!(starts_like_a_log_line("2026-12-02T04:00:00.123456Z  INFO pm: serving", "2026"));
    assert!(!starts_like_a_log_line(&forged_line("X"), "2026"));
    assert!(!starts_like_a_log_line("x", "2026"));
    assert!(!starts_like_a_log_line("2026-12-02T04:00:00.123456Z junk", "2026"));
}
