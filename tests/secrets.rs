//! No secret in logs (issue 8): the whole flow, through the `pm` client
//! commands (`keygen`, `invite`, `register` with the invite key, `assert`,
//! lookups), on `pm serve` and on the distributed deployment, with every
//! process logging at debug level (`RUST_LOG=debug`, dependencies
//! included). Afterwards every captured log (each role's stderr, the
//! bootstrap's, each client command's) is searched for:
//!
//! - the private keys: the PEM body of the genesis, persona and node keys,
//!   and their 32-byte seeds in base64 and hex;
//! - the invite key (base64 and hex) and the invitation's plain name (which
//!   the node learns only by opening a sealed box);
//! - the broker password (distributed).
//!
//! The broker password. The test broker accepts `guest:guest` only, and
//! `guest` is also the user name, so searching for the real password could
//! not tell a leaked password from a logged user name. So the roles are
//! given another password: a random marker of the same length (five
//! characters, with `~`, which no base64, Base58, hex or timestamp text of
//! the logs contains), in `PM_RABBITMQ__URL`, pointing at a relay on
//! loopback that this test runs in front of the broker. The relay copies
//! bytes both ways and, in what the client sends, replaces the marker with
//! `guest` (same length, so the AMQP frame sizes hold). The roles thus
//! connect, authenticate and work with a password they only know as the
//! marker, and the marker must appear in no log (nor percent-encoded). The
//! relay counts its replacements: one per connection that authenticated,
//! so the test knows the marker was really used.
//!
//! A log that says nothing proves nothing: the test also checks that the
//! logs hold debug lines and the hashes of the messages the flow sent.

/// The flow runs on the embedded backend and on the distributed deployment.
pub const DISTRIBUTED: bool = false;

mod common;

use common::{pm, NodeOptions, TestNode};
use nix::sys::signal::Signal;
use pm_models::codec::{b64, unb64};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The broker's real password, known only to the relay.
const REAL_PASSWORD: &[u8; 5] = b"guest";

/// A secret and the forms it must not take in a log.
struct Secret {
    what: String,
    forms: Vec<String>,
}

impl Secret {
    fn new(what: impl Into<String>, forms: Vec<String>) -> Self {
        let forms = forms.into_iter().filter(|f| f.len() >= 5).collect();
        Secret { what: what.into(), forms }
    }

    /// A private key file: its PEM body and its seed.
    fn key_file(what: &str, path: &Path) -> Self {
        let pem = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = unb64(&body).expect("a PKCS#8 body");
        let seed = &der[der.len() - 32..];
        Secret::new(
            what,
            vec![body.clone(), b64(seed), hex::encode(seed), hex::encode_upper(seed), format!("{seed:?}")],
        )
    }
}

/// Runs a `pm` client command against `url` at debug level; its stderr goes
/// to `log_dir/NAME.log`. Returns its output.
fn client(log_dir: &Path, name: &str, url: &str, args: &[&str]) -> Output {
    let output = pm()
        .args(args)
        .args(["--url", url])
        .env("RUST_LOG", "debug")
        .output()
        .unwrap_or_else(|e| panic!("pm {name} can be run: {e}"));
    std::fs::write(log_dir.join(format!("client-{name}.log")), &output.stderr).unwrap();
    assert!(
        output.status.success(),
        "pm {} failed: {}{}",
        args[0],
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn line_value(stdout: &[u8], label: &str) -> String {
    String::from_utf8_lossy(stdout)
        .lines()
        .find_map(|line| line.strip_prefix(label).map(|v| v.trim().to_owned()))
        .unwrap_or_else(|| panic!("no {label:?} line in {}", String::from_utf8_lossy(stdout)))
}

/// The flow: a persona is invited, registers with the invite key and
/// asserts; lookups read it back. Returns the secrets it involved and the
/// hashes of what it sent.
async fn flow(node: &TestNode, log_dir: &Path) -> (Vec<Secret>, Vec<String>) {
    let url = node.server.url.clone();
    let dir = node.dir.path();
    let genesis_key = dir.join("genesis.key");
    let alice_key = dir.join("alice.key");
    let invite_name = format!("the name only alice knows {}", hex::encode(pm_models::client::random_bytes::<4>()));

    let keygen = pm().args(["keygen", "--out"]).arg(&alice_key).env("RUST_LOG", "debug").output().unwrap();
    std::fs::write(log_dir.join("client-keygen.log"), &keygen.stderr).unwrap();
    assert!(keygen.status.success(), "pm keygen: {}", String::from_utf8_lossy(&keygen.stderr));

    let invite =
        client(log_dir, "invite", &url, &["invite", "--key", genesis_key.to_str().unwrap(), "--name", &invite_name]);
    let invitation = line_value(&invite.stdout, "invitation:");
    let invite_key = line_value(&invite.stdout, "invite key:");
    node.wait_readable(&invitation).await;

    let register = client(
        log_dir,
        "register",
        &url,
        &[
            "register",
            "--key",
            alice_key.to_str().unwrap(),
            "--nickname",
            "alice",
            "--invitation",
            &invitation,
            "--invite-key",
            &invite_key,
            "--invite-name",
            &invite_name,
        ],
    );
    let registration = line_value(&register.stdout, "registration:");
    node.wait_readable(&registration).await;

    let object = dir.join("object.txt");
    std::fs::write(&object, "an object alice attaches").unwrap();
    let genesis_address = node.genesis.address().to_string();
    let assert = client(
        log_dir,
        "assert",
        &url,
        &[
            "assert",
            "--key",
            alice_key.to_str().unwrap(),
            "--reader",
            &genesis_address,
            "--text",
            "alice asserts",
            "--object-file",
            object.to_str().unwrap(),
        ],
    );
    let assertion = line_value(&assert.stdout, "assertion:");
    node.wait_readable(&assertion).await;
    client(log_dir, "persona", &url, &["persona", "--nickname", "ALICE"]);
    client(log_dir, "message", &url, &["message", "--reader", &genesis_address]);

    let key_bytes = unb64(&invite_key).expect("the invite key is base64");
    let secrets = vec![
        Secret::key_file("the genesis key", &genesis_key),
        Secret::key_file("alice's key", &alice_key),
        Secret::key_file("the node key", &node.data_dir().join("node.key")),
        Secret::new("the invite key", vec![invite_key.clone(), hex::encode(&key_bytes), format!("{key_bytes:?}")]),
        Secret::new("the invitation's name", vec![invite_name]),
    ];
    (secrets, vec![invitation, registration, assertion])
}

/// Every log of `log_dir`: none holds a form of a secret; each of
/// `processes` logged debug lines (the bootstrap and the clients may say
/// nothing, and are searched all the same); together they hold the flow's
/// hashes.
fn check_logs(log_dir: &Path, secrets: &[Secret], hashes: &[String], processes: &[&str]) {
    let mut logs: Vec<(PathBuf, String)> = std::fs::read_dir(log_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .map(|path| {
            let mut text = String::new();
            std::fs::File::open(&path).unwrap().read_to_string(&mut text).unwrap_or_else(|_| {
                text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
                0
            });
            (path, text)
        })
        .collect();
    logs.sort();
    for process in processes {
        let name = log_dir.join(format!("{process}.log"));
        let (_, text) = logs.iter().find(|(path, _)| *path == name).unwrap_or_else(|| panic!("no log of {process}"));
        assert!(text.contains("DEBUG"), "{process} logged at debug level ({} bytes of log)", text.len());
    }
    let all: String = logs.iter().map(|(_, text)| text.as_str()).collect();
    for hash in hashes {
        assert!(all.contains(hash.as_str()), "the logs mention {hash}: the search covers the flow");
    }
    let mut leaks = Vec::new();
    for secret in secrets {
        for form in &secret.forms {
            for (path, text) in &logs {
                if let Some(at) = text.find(form.as_str()) {
                    let line_start = text[..at].rfind('\n').map_or(0, |n| n + 1);
                    let line_end = text[at..].find('\n').map_or(text.len(), |n| at + n);
                    let line = text[line_start..line_end].replace(form.as_str(), "<SECRET>");
                    leaks.push(format!("{} in {}: {:.300}", secret.what, path.display(), line));
                }
            }
        }
    }
    let bytes: usize = logs.iter().map(|(_, text)| text.len()).sum();
    println!("searched {} logs, {bytes} bytes, for {} secrets", logs.len(), secrets.len());
    assert!(leaks.is_empty(), "secrets in the logs:\n{}", leaks.join("\n"));
}

#[tokio::test]
async fn no_secret_of_the_whole_flow_appears_in_any_log_of_pm_serve_at_debug_level() {
    let logs = tempfile::tempdir().unwrap();
    let options = NodeOptions { env: vec![("RUST_LOG".into(), "debug".into())], log_dir: Some(logs.path().to_owned()) };
    let mut node = common::spawn_embedded_node_with(&options).await;
    let (secrets, hashes) = flow(&node, logs.path()).await;
    let status = node.server.stop_with(Signal::SIGTERM, Duration::from_secs(30));
    assert!(status.success(), "pm serve stops cleanly: {status:?}");
    check_logs(logs.path(), &secrets, &hashes, &["serve"]);
}

/// A relay on loopback in front of the broker that replaces `marker` with
/// the real password in what clients send. Returns its port and the count
/// of replacements made.
fn broker_relay(upstream: String, marker: [u8; 5]) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("the relay can listen");
    let port = listener.local_addr().unwrap().port();
    let replaced = Arc::new(AtomicUsize::new(0));
    let count = replaced.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(&upstream) else { continue };
            let (mut from_server, mut to_client) = (server.try_clone().unwrap(), client.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_server, &mut to_client);
                let _ = to_client.shutdown(std::net::Shutdown::Both);
            });
            let count = count.clone();
            std::thread::spawn(move || relay_replacing(client, server, marker, &count));
        }
    });
    (port, replaced)
}

/// Copies `from` to `to`, replacing every `marker` with the real password,
/// holding back the end of a read only when it could begin a marker.
fn relay_replacing(mut from: TcpStream, mut to: TcpStream, marker: [u8; 5], count: &AtomicUsize) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => 0,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buffer[..n]);
        let mut at = 0;
        while at + marker.len() <= pending.len() {
            if pending[at..at + marker.len()] == marker {
                pending[at..at + marker.len()].copy_from_slice(REAL_PASSWORD);
                count.fetch_add(1, Ordering::Relaxed);
                at += marker.len();
            } else {
                at += 1;
            }
        }
        // Only a tail that could begin a marker waits for the next read: a
        // client waiting for an answer must get its whole frame.
        let keep =
            if n == 0 { 0 } else { (1..marker.len()).rev().find(|k| pending.ends_with(&marker[..*k])).unwrap_or(0) };
        let ready = pending.len() - keep;
        if to.write_all(&pending[..ready]).is_err() {
            break;
        }
        pending.drain(..ready);
        if n == 0 {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

#[tokio::test]
async fn no_secret_of_the_whole_flow_nor_the_broker_password_appears_in_any_log_of_the_distributed_deployment() {
    let rabbitmq = pm_backends::testsuite::address("PM_TEST_RABBITMQ", "127.0.0.1:5672");
    let random = hex::encode(pm_models::client::random_bytes::<2>());
    let marker: [u8; 5] = format!("~{}~", &random[..3]).into_bytes().try_into().unwrap();
    let marker_text = String::from_utf8(marker.to_vec()).unwrap();
    let (port, replaced) = broker_relay(rabbitmq, marker);
    let logs = tempfile::tempdir().unwrap();
    let options = NodeOptions {
        env: vec![
            ("RUST_LOG".into(), "debug".into()),
            ("PM_RABBITMQ__URL".into(), format!("amqp://guest:{marker_text}@127.0.0.1:{port}/%2f")),
        ],
        log_dir: Some(logs.path().to_owned()),
    };
    let mut node = common::spawn_deployment_with(&options)
        .await
        .expect("the distributed deployment runs (PM_REQUIRE_SERVICES=1 makes its absence a failure)");
    let (mut secrets, hashes) = flow(&node, logs.path()).await;
    for process in node.roles.iter_mut().chain(node.gateways.iter_mut()) {
        let status = process.stop_with(Signal::SIGTERM, Duration::from_secs(30));
        assert!(status.success(), "{} stops cleanly: {status:?}", process.base);
    }
    let status = node.server.stop_with(Signal::SIGTERM, Duration::from_secs(30));
    assert!(status.success(), "the gateway stops cleanly: {status:?}");
    // Bootstrap, two authorizers and two writers talk to the broker.
    let authenticated = replaced.load(Ordering::Relaxed);
    assert!(authenticated >= 5, "every broker client authenticated through the relay ({authenticated} times)");
    secrets.push(Secret::new(
        "the broker password",
        vec![marker_text.clone(), marker_text.replace('~', "%7E"), marker_text.replace('~', "%7e")],
    ));
    check_logs(
        logs.path(),
        &secrets,
        &hashes,
        &["reader", "authorizer-1", "authorizer-2", "writer-1", "writer-2", "teleferic-1", "teleferic-2"],
    );
}
