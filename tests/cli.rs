//! The `pm` client commands end to end, as a user runs them:
//!
//! - keys: what `pm keygen` writes (RFC 8410) opens in OpenSSL and Python
//!   `cryptography` with the public key `pm pubkey` prints, and a key in the
//!   RFC 5958 v2 form earlier versions wrote still loads (PROTOCOL.md section 2);
//! - the invite key from a file, from standard input and (still) on the command line;
//! - `pm read` opens what `pm assert` sent (text and object), refuses a
//!   non-reader, and `pm verify` checks a stored message and names what fails;
//! - logs: no ANSI escapes when stderr is not a terminal, JSON lines with
//!   `PM_LOG_FORMAT=json`, and `pm bootstrap` and `pm authorizer` (which
//!   holds an AMQP publisher) on the distributed backends end without an
//!   error line.

/// The client commands talk to `pm serve` on the embedded backend.
pub const DISTRIBUTED: bool = false;

mod common;

use common::{pm, spawn_node, TestNode};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `command` and asserts it succeeded.
fn run_ok(command: &mut Command) -> Output {
    let output = command.output().expect("the command can be run");
    assert!(
        output.status.success(),
        "{command:?} failed with {}:\nstdout: {}\nstderr: {}",
        output.status,
        stdout(&output),
        stderr(&output)
    );
    output
}

/// Runs `command` and asserts it failed; returns its output.
fn run_failing(command: &mut Command) -> Output {
    let output = command.output().expect("the command can be run");
    assert!(!output.status.success(), "{command:?} succeeded:\nstdout: {}", stdout(&output));
    output
}

/// The value after `label: ` on the line that starts with it.
fn field(text: &str, label: &str) -> String {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{label}: ")))
        .unwrap_or_else(|| panic!("no `{label}:` line in {text}"))
        .trim()
        .to_owned()
}

fn keygen(path: &Path) -> String {
    stdout(&run_ok(pm().arg("keygen").arg("--out").arg(path))).trim().to_owned()
}

fn pubkey(path: &Path) -> String {
    stdout(&run_ok(pm().arg("pubkey").arg("--key").arg(path))).trim().to_owned()
}

// ---------------------------------------------------------------- keys

#[test]
fn openssl_reads_a_pm_key_and_derives_the_public_key_pm_prints() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.key");
    keygen(&key);
    let output = run_ok(Command::new("openssl").args(["pkey", "-pubout", "-in"]).arg(&key));
    assert_eq!(stdout(&output).trim(), pubkey(&key));
    // And the other way: a key OpenSSL generates is a pm key.
    let openssl_key = dir.path().join("openssl.key");
    run_ok(Command::new("openssl").args(["genpkey", "-algorithm", "ed25519", "-out"]).arg(&openssl_key));
    let derived = stdout(&run_ok(Command::new("openssl").args(["pkey", "-pubout", "-in"]).arg(&openssl_key)));
    assert_eq!(derived.trim(), pubkey(&openssl_key));
}

#[test]
fn python_cryptography_reads_a_pm_key_and_derives_the_public_key_pm_prints() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.key");
    keygen(&key);
    let script = "import sys\n\
        from cryptography.hazmat.primitives import serialization as s\n\
        k = s.load_pem_private_key(open(sys.argv[1], 'rb').read(), password=None)\n\
        print(k.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo).decode())\n";
    let output = run_ok(Command::new("python3").arg("-c").arg(script).arg(&key));
    assert_eq!(stdout(&output).trim(), pubkey(&key));
}

#[test]
fn a_key_in_the_rfc_5958_v2_form_earlier_versions_wrote_still_loads() {
    use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePrivateKey};
    let dir = tempfile::tempdir().unwrap();
    let signing = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    // dalek writes the v2 form: version 1 and the public key inside.
    let v2 = signing.to_pkcs8_pem(LineEnding::LF).unwrap();
    assert!(!v2.contains("MC4CAQAw"), "not the RFC 8410 form: {}", v2.as_str());
    let path = dir.path().join("v2.key");
    pm::key_file::save_secret_new(&path, &v2).unwrap();
    let expected = pm_models::keys::PersonaKey::from_seed([5; 32]);
    assert_eq!(pubkey(&path), expected.public().as_str());
    let address = stdout(&run_ok(pm().arg("address").arg("--key").arg(&path)));
    assert_eq!(address.trim(), expected.address().to_string());
}

// ---------------------------------------------------------------- flow

/// `pm` against the node's gateway.
fn pm_at(node: &TestNode) -> Command {
    let mut command = pm();
    command.env("PM_URL", &node.server.url);
    command
}

async fn wait_persona(node: &TestNode, address: &str) {
    let deadline = Instant::now() + common::READABLE_TIMEOUT;
    while node.persona("address", address).await.is_null() {
        assert!(Instant::now() < deadline, "persona {address} not readable in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Invites with `pm invite --invite-key-out`; returns (invitation, key file, name).
async fn invite(node: &TestNode, dir: &Path, genesis_key: &Path, name: &str) -> (String, PathBuf) {
    let key_file = dir.join(format!("{name}.invite"));
    let output = run_ok(
        pm_at(node).args(["invite", "--name", name, "--key"]).arg(genesis_key).arg("--invite-key-out").arg(&key_file),
    );
    let text = stdout(&output);
    assert!(!text.contains(&std::fs::read_to_string(&key_file).unwrap().trim().to_owned()), "the key is not printed");
    assert_eq!(pm::key_file::exposed_bits(&key_file), None, "the invite key file has mode 0600");
    let invitation = field(&text, "invitation");
    node.wait_readable(&invitation).await;
    (invitation, key_file)
}

struct Personas {
    dir: tempfile::TempDir,
    genesis: PathBuf,
    alice: PathBuf,
    bob: PathBuf,
}

/// Genesis (the node's), alice registered with `--invite-key-file`, bob
/// with `--invite-key -` (standard input).
async fn personas(node: &TestNode) -> Personas {
    let dir = tempfile::tempdir().unwrap();
    let genesis = dir.path().join("genesis.key");
    pm::key_file::save_new(&node.genesis, &genesis).unwrap();

    let (invitation, key_file) = invite(node, dir.path(), &genesis, "alice-invite").await;
    let alice = dir.path().join("alice.key");
    let alice_address = keygen(&alice);
    let output = run_ok(
        pm_at(node)
            .args(["register", "--nickname", "alice", "--invite-name", "alice-invite", "--invitation", &invitation])
            .arg("--key")
            .arg(&alice)
            .arg("--invite-key-file")
            .arg(&key_file),
    );
    assert!(!stderr(&output).contains("warning"), "no warning for a key file: {}", stderr(&output));
    wait_persona(node, &alice_address).await;

    let (invitation, key_file) = invite(node, dir.path(), &genesis, "bob-invite").await;
    let bob = dir.path().join("bob.key");
    let bob_address = keygen(&bob);
    let mut child = pm_at(node)
        .args(["register", "--nickname", "bob", "--invite-name", "bob-invite", "--invitation", &invitation])
        .args(["--invite-key", "-", "--key"])
        .arg(&bob)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(std::fs::read(&key_file).unwrap().as_slice()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "register with the key on stdin: {}", stderr(&output));
    wait_persona(node, &bob_address).await;
    Personas { dir, genesis, alice, bob }
}

fn address_of(key: &Path) -> String {
    stdout(&run_ok(pm().arg("address").arg("--key").arg(key))).trim().to_owned()
}

#[tokio::test]
async fn the_old_invite_key_flag_still_registers_with_a_warning() {
    let node = spawn_node().await;
    let dir = tempfile::tempdir().unwrap();
    let genesis = dir.path().join("genesis.key");
    pm::key_file::save_new(&node.genesis, &genesis).unwrap();
    let output = run_ok(pm_at(&node).args(["invite", "--name", "carol-invite", "--key"]).arg(&genesis));
    let text = stdout(&output);
    let (invitation, invite_key) = (field(&text, "invitation"), field(&text, "invite key"));
    node.wait_readable(&invitation).await;
    let carol = dir.path().join("carol.key");
    let carol_address = keygen(&carol);
    // A wrong key file is refused before anything is sent.
    let bad = dir.path().join("bad.invite");
    std::fs::write(&bad, "not base64!\n").unwrap();
    let refused = run_failing(
        pm_at(&node)
            .args(["register", "--nickname", "carol", "--invite-name", "carol-invite", "--invitation", &invitation])
            .arg("--key")
            .arg(&carol)
            .arg("--invite-key-file")
            .arg(&bad),
    );
    assert!(stderr(&refused).contains("is not base64"), "{}", stderr(&refused));
    let output = run_ok(
        pm_at(&node)
            .args(["register", "--nickname", "carol", "--invite-name", "carol-invite", "--invitation", &invitation])
            .args(["--invite-key", &invite_key, "--key"])
            .arg(&carol),
    );
    assert!(stderr(&output).contains("shows in `ps`"), "the flag warns: {}", stderr(&output));
    wait_persona(&node, &carol_address).await;
}

#[tokio::test]
async fn pm_read_round_trips_what_pm_assert_sent_and_refuses_a_non_reader() {
    let node = spawn_node().await;
    let p = personas(&node).await;
    let object = p.dir.path().join("object.bin");
    let object_bytes: Vec<u8> = (0..=255u8).chain(*b"end of the object").collect();
    std::fs::write(&object, &object_bytes).unwrap();
    let output = run_ok(
        pm_at(&node)
            .args(["assert", "--text", "alice asserts ✓", "--object-file"])
            .arg(&object)
            .args(["--reader", &address_of(&p.genesis), "--reader", &address_of(&p.alice), "--key"])
            .arg(&p.alice),
    );
    let hash = field(&stdout(&output), "assertion");
    node.wait_readable(&hash).await;

    // The stored container is sealed: the object's bytes are not in it.
    let stored = node.message(&hash).await;
    let container = stored["objects"][0]["container"]["objectContainer"].as_str().unwrap();
    assert_ne!(pm_models::codec::unb64(container).unwrap(), object_bytes, "the container is encrypted");

    for reader in [&p.genesis, &p.alice] {
        let objects = p.dir.path().join(format!("objects-{}", reader.file_stem().unwrap().to_string_lossy()));
        let output = run_ok(
            pm_at(&node).args(["read", "--hash", &hash, "--key"]).arg(reader).arg("--objects-dir").arg(&objects),
        );
        let body: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("the body is JSON on stdout");
        assert_eq!(body, serde_json::json!({ "assertion": "alice asserts ✓" }));
        assert_eq!(std::fs::read(objects.join("object-1")).unwrap(), object_bytes, "the object round-trips");
        let report = stderr(&output);
        for check in [
            "ok    messageHash",
            "ok    messageSign",
            "ok    receipt",
            "ok    dossierHash",
            "ok    bodyHash",
            "ok    content signature",
            "ok    object 1: containerSign",
            "ok    object 1: objectHash",
        ] {
            assert!(report.contains(check), "{check:?} in {report}");
        }
        assert!(!report.contains("FAIL"), "{report}");
    }

    let refused = run_failing(pm_at(&node).args(["read", "--hash", &hash, "--key"]).arg(&p.bob));
    let error = stderr(&refused);
    assert!(error.contains(&format!("{} is not a reader of this message", address_of(&p.bob))), "{error}");
    assert!(stdout(&refused).is_empty(), "nothing is printed to a non-reader");

    // A plain text assertion (no object) from bob to himself reads back too.
    let output = run_ok(pm_at(&node).args(["assert", "--text", "bob alone", "--key"]).arg(&p.bob));
    let hash = field(&stdout(&output), "assertion");
    node.wait_readable(&hash).await;
    let output = run_ok(pm_at(&node).args(["read", "--hash", &hash, "--key"]).arg(&p.bob));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&stdout(&output)).unwrap()["assertion"], "bob alone");
}

#[tokio::test]
async fn pm_import_sends_what_pm_assert_saved_and_reports_each_refusal_by_line() {
    let node = spawn_node().await;
    let p = personas(&node).await;
    let file = p.dir.path().join("envelopes.jsonl");
    let mut hashes = Vec::new();
    for i in 0..5 {
        let output = run_ok(
            pm_at(&node)
                .args(["assert", "--text", &format!("saved {i}"), "--envelope-out"])
                .arg(&file)
                .arg("--key")
                .arg(&p.alice),
        );
        hashes.push(field(&stdout(&output), "assertion"));
    }
    // Saved, not sent.
    assert!(node.message(&hashes[0]).await.is_null(), "--envelope-out does not send");
    let mut lines: Vec<String> = std::fs::read_to_string(&file).unwrap().lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 5);
    // Line 3 is not JSON; line 5 is line 1 again; a blank line is skipped.
    lines.insert(2, "{ not json".to_owned());
    lines.push(String::new());
    lines.push(lines[0].clone());
    std::fs::write(&file, lines.join("\n")).unwrap();

    // Batches of 2, so the duplicate travels in a later request than its original.
    let output = run_failing(pm_at(&node).arg("import").arg(&file).args(["--batch", "2"]));
    let (out, err) = (stdout(&output), stderr(&output));
    assert!(out.contains("7 envelopes, 5 accepted, 2 refused (DUPLICATE_MESSAGE 1, MALFORMED_ENVELOPE 1)"), "{out}");
    assert!(err.contains("line 3: MALFORMED_ENVELOPE"), "{err}");
    assert!(err.contains("line 8: DUPLICATE_MESSAGE"), "{err}");
    for hash in &hashes {
        node.wait_readable(hash).await;
    }

    // Everything again: every envelope is a duplicate now, nothing is stored twice.
    std::fs::write(&file, lines[..2].join("\n")).unwrap();
    let output = run_failing(pm_at(&node).arg("import").arg(&file));
    assert!(
        stdout(&output).contains("2 envelopes, 0 accepted, 2 refused (DUPLICATE_MESSAGE 2)"),
        "{}",
        stdout(&output)
    );
    let listed = node
        .data(
            "query($s: Address!) { messageBySender(sender: $s, limit: 1000) { messageHash } }",
            serde_json::json!({ "s": address_of(&p.alice) }),
        )
        .await;
    let listed: Vec<String> = listed["messageBySender"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["messageHash"].as_str().unwrap().to_owned())
        .filter(|hash| hashes.contains(hash))
        .collect();
    assert_eq!(listed.len(), 5, "each imported envelope is stored and listed once: {listed:?}");

    // A file of accepted envelopes only exits 0.
    let fresh = p.dir.path().join("fresh.jsonl");
    run_ok(pm_at(&node).args(["assert", "--text", "fresh", "--envelope-out"]).arg(&fresh).arg("--key").arg(&p.bob));
    let output = run_ok(pm_at(&node).arg("import").arg(&fresh));
    assert!(stdout(&output).contains("1 envelopes, 1 accepted, 0 refused in"), "{}", stdout(&output));
}

#[tokio::test]
async fn pm_verify_passes_on_a_stored_message_and_names_what_fails_against_another_node_key() {
    let node = spawn_node().await;
    let p = personas(&node).await;
    let object = p.dir.path().join("object.txt");
    std::fs::write(&object, "hello\n").unwrap();
    let output = run_ok(
        pm_at(&node)
            .args(["assert", "--attestation", "--text", "attested", "--object-file"])
            .arg(&object)
            .arg("--key")
            .arg(&p.alice),
    );
    let hash = field(&stdout(&output), "attestation");
    node.wait_readable(&hash).await;

    let output = run_ok(pm_at(&node).args(["verify", "--hash", &hash]));
    let report = stdout(&output);
    let lines: Vec<&str> = report.lines().filter(|l| l.starts_with("ok") || l.starts_with("FAIL")).collect();
    assert_eq!(lines.len(), 5, "messageHash, messageSign, receipt, containerHash, containerSign: {report}");
    assert!(lines.iter().all(|l| l.starts_with("ok    ")), "{report}");

    // The invitation is public: its content is checked too.
    let invitation = node.list_all("messageBySender", "sender", &address_of(&p.genesis), 100).await;
    let invitation = invitation[0]["messageHash"].as_str().unwrap().to_owned();
    let report = stdout(&run_ok(pm_at(&node).args(["verify", "--hash", &invitation])));
    assert!(report.contains("ok    dossierHash") && report.contains("ok    content signature"), "{report}");

    // Pinned to another node key, the node's signatures do not hold, and it says which.
    let other = p.dir.path().join("other-node.key");
    keygen(&other);
    let output = run_failing(pm_at(&node).args(["verify", "--hash", &hash, "--node-pubkey"]).arg(&other));
    let report = stdout(&output);
    for failing in ["FAIL  messageSign", "FAIL  receipt", "FAIL  object 1: containerSign"] {
        assert!(report.contains(failing), "{failing:?} in {report}");
    }
    assert!(report.contains("ok    messageHash"), "{report}");
    assert!(stderr(&output).contains("3 of 5 checks fail"), "{}", stderr(&output));
    // pm read refuses to print the body under the same conditions.
    let output = run_failing(
        pm_at(&node).args(["read", "--hash", &hash, "--key"]).arg(&p.alice).arg("--node-pubkey").arg(&other),
    );
    assert!(stdout(&output).is_empty() && stderr(&output).contains("the body is not printed"), "{}", stderr(&output));

    let unknown = pm_models::MessageHash::of_message("never sent");
    let output = run_failing(pm_at(&node).args(["verify", "--hash", unknown.as_str()]));
    assert!(stderr(&output).contains("no message has hash"), "{}", stderr(&output));
}

// ---------------------------------------------------------------- logs

/// Runs `pm serve` on a new bootstrapped directory with stderr to a file,
/// until it has served one request; returns what it logged.
async fn serve_log(extra_env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let genesis = dir.path().join("genesis.key");
    keygen(&genesis);
    let data = dir.path().join("data");
    common::bootstrap(&data, &genesis, "Genesis");
    let log_path = dir.path().join("serve.log");
    let mut child = pm()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "info")
        .envs(extra_env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let url = loop {
        let line = lines.next().expect("pm serve prints its URL").unwrap();
        if let Some(start) = line.find("http://") {
            break line[start..].trim().to_owned();
        }
    };
    let http = common::http_client();
    let answer = common::graphql_at(&http, &url, "{ teleferic { signedTimestamp } }", serde_json::json!({})).await;
    assert!(answer["data"]["teleferic"]["signedTimestamp"].is_string(), "{answer}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "pm serve exits cleanly on SIGTERM: {status:?}");
    std::fs::read_to_string(&log_path).unwrap()
}

#[tokio::test]
async fn logs_to_a_file_have_no_colour_codes() {
    let log = serve_log(&[]).await;
    assert!(log.lines().count() >= 2, "pm serve logs at info: {log}");
    assert!(!log.contains('\u{1b}'), "no ANSI escape in a log file: {log:?}");
    assert!(log.contains("INFO"), "{log}");
}

fn assert_json_lines(log: &str) {
    assert!(log.lines().count() >= 2, "something was logged: {log}");
    for line in log.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {line}"));
        assert!(value["level"].is_string() && value["timestamp"].is_string(), "{line}");
    }
}

#[tokio::test]
async fn pm_log_format_json_writes_one_json_object_per_line() {
    assert_json_lines(&serve_log(&[("PM_LOG_FORMAT", "json")]).await);
}

/// What the distributed processes logged, each with stderr to a file.
struct DistributedLogs {
    bootstrap: String,
    /// `pm authorizer` (it connects its AMQP publisher), `pm writer` (its
    /// consumer) and `pm teleferic`, each from start to SIGTERM.
    roles: Vec<(&'static str, String)>,
}

/// `pm bootstrap` on RabbitMQ, HBase and Elasticsearch, configured by the
/// earlier deployment's names, then `pm authorizer`, `pm writer` and
/// `pm teleferic` each until SIGTERM, with stderr to files; returns the logs.
async fn distributed_logs(format: &str) -> Option<DistributedLogs> {
    use pm_backends::testsuite::{address, require, unique_prefix};
    let rabbitmq = address("PM_TEST_RABBITMQ", "127.0.0.1:5672");
    let hbase = address("PM_TEST_HBASE", "127.0.0.1:9090");
    let elasticsearch = address("PM_TEST_ELASTICSEARCH", "127.0.0.1:9200");
    for (name, address) in [("rabbitmq", &rabbitmq), ("hbase-thrift", &hbase), ("elasticsearch", &elasticsearch)] {
        if !require(name, address) {
            return None;
        }
    }
    let prefix = unique_prefix("cli").to_lowercase();
    let (hbase_host, hbase_port) = hbase.rsplit_once(':').unwrap();
    let dir = tempfile::tempdir().unwrap();
    let genesis = dir.path().join("genesis.key");
    keygen(&genesis);
    // The earlier deployment's names for the servers, and this test's prefix.
    let pm_on_servers = || {
        let mut command = pm();
        command
            .env("BROKER_URL", format!("amqp://guest:guest@{rabbitmq}/%2f"))
            .env("HBASE_HOSTNAME", hbase_host)
            .env("HBASE_PORT", hbase_port)
            .env("ES_URL", format!("http://{elasticsearch}"))
            .env("PM_RABBITMQ__PREFIX", &prefix)
            .env("PM_HBASE__TABLE_PREFIX", &prefix)
            .env("PM_ELASTICSEARCH__INDEX_PREFIX", &prefix)
            .env("PM_LOG_FORMAT", format)
            .env("RUST_LOG", "info");
        command
    };
    let log_path = dir.path().join("bootstrap.log");
    let output = pm_on_servers()
        .args(["bootstrap", "--nickname", "Genesis", "--genesis-key"])
        .arg(&genesis)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stderr(std::fs::File::create(&log_path).unwrap())
        .output()
        .unwrap();
    let bootstrap = std::fs::read_to_string(&log_path).unwrap();
    assert!(output.status.success(), "distributed bootstrap failed: {bootstrap}");
    assert!(stdout(&output).contains("created genesis persona"), "{}", stdout(&output));

    let mut roles = Vec::new();
    for role in ["authorizer", "writer", "teleferic"] {
        let log_path = dir.path().join(format!("{role}.log"));
        let mut child = pm_on_servers()
            .args([role, "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
        let listening = lines.next().expect("the role prints where it listens").unwrap();
        let base = listening.split(" listening on ").nth(1).expect("a URL").trim().to_owned();
        let base = base.trim_end_matches("/teleferic").to_owned();
        // Answering means it is serving, with its signal handler in place.
        let health = common::http_client().get(format!("{base}/healthz")).send().await.expect("the role answers");
        assert!(health.status().is_success(), "{role} {base}/healthz: {}", health.status());
        if role == "writer" {
            // Its consumer is subscribed once the queue is ready.
            let deadline = Instant::now() + common::READABLE_TIMEOUT;
            while !common::http_client().get(format!("{base}/readyz")).send().await.unwrap().status().is_success() {
                assert!(Instant::now() < deadline, "the writer became ready");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM)
            .unwrap();
        let status = child.wait().unwrap();
        let log = std::fs::read_to_string(&log_path).unwrap();
        assert!(status.success(), "pm {role} exits cleanly on SIGTERM ({status:?}): {log}");
        roles.push((role, log));
    }
    teardown(&prefix, &rabbitmq, hbase_host, hbase_port, &elasticsearch).await;
    Some(DistributedLogs { bootstrap, roles })
}

async fn teardown(prefix: &str, rabbitmq: &str, hbase_host: &str, hbase_port: &str, elasticsearch: &str) {
    use pm_backends::settings::{ElasticSettings, HBaseSettings, RabbitMqSettings};
    use pm_backends::{elasticsearch::ElasticIndex, hbase::HBaseStore, rabbitmq::RabbitMqQueue};
    let hbase = HBaseSettings {
        host: hbase_host.to_owned(),
        port: hbase_port.parse().unwrap(),
        table_prefix: prefix.to_owned(),
        ..Default::default()
    };
    HBaseStore::connect(hbase).await.unwrap().drop_tables().await.unwrap();
    let es = ElasticSettings {
        url: format!("http://{elasticsearch}"),
        index_prefix: prefix.to_owned(),
        ..Default::default()
    };
    ElasticIndex::connect(es).await.unwrap().delete_indices().await.unwrap();
    let amqp = RabbitMqSettings {
        prefix: prefix.to_owned(),
        ..RabbitMqSettings::with_url(format!("amqp://guest:guest@{rabbitmq}/%2f"))
    };
    let queue = RabbitMqQueue::connect(amqp).await.unwrap();
    queue.delete_topology().await.unwrap();
    queue.close().await.unwrap();
}

#[tokio::test]
async fn distributed_bootstrap_and_roles_end_without_an_error_line_or_colour_codes() {
    let Some(logs) = distributed_logs("text").await else { return };
    let roles = logs.roles.iter().map(|(role, log)| (*role, log));
    for (process, log) in std::iter::once(("bootstrap", &logs.bootstrap)).chain(roles) {
        assert!(!log.contains('\u{1b}'), "pm {process}: no ANSI escape in a log file: {log:?}");
        let errors: Vec<&str> = log.lines().filter(|line| line.contains("ERROR")).collect();
        assert!(errors.is_empty(), "pm {process}: error lines after a successful run: {errors:#?}\n{log}");
        if process != "bootstrap" {
            assert!(log.contains("INFO"), "pm {process} logged at info: {log}");
        }
    }
}

#[tokio::test]
async fn distributed_processes_log_json_lines_with_pm_log_format_json() {
    let Some(logs) = distributed_logs("json").await else { return };
    for log in std::iter::once(&logs.bootstrap).chain(logs.roles.iter().map(|(_, log)| log)) {
        assert_json_lines(log);
        assert!(!log.contains("\"ERROR\""), "no error line: {log}");
    }
}
