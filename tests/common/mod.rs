//! Shared helpers of the end-to-end suites: a real `pm` node in a temporary
//! directory (bootstrap, then `pm serve` on port 0), a GraphQL client that
//! talks to it over HTTP only, and builders of valid and deliberately broken
//! envelopes.
//!
//! Every node is its own process on its own data directory, so tests run in
//! parallel. A [`Server`] is killed when dropped. Nothing here sleeps to
//! decide an outcome: waits poll with a bounded deadline and fail loudly.

#![allow(dead_code)]

pub mod envelopes;

use pm_models::envelope::Envelope;
use pm_models::keys::PersonaKey;
use pm_models::signed_timestamp::SignedTimestamp;
use pm_models::PublicKeyPem;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long a node may take to print its address and become ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an accepted message may take to become readable.
pub const READABLE_TIMEOUT: Duration = Duration::from_secs(10);
/// The nickname every test node's genesis persona gets.
pub const GENESIS_NICKNAME: &str = "Genesis Mountain";

/// The `pm` binary under test.
pub fn pm() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pm"));
    // Settings come from flags only: no stray PM_* variable of the caller.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PM_") {
            command.env_remove(&name);
        }
    }
    command.env("RUST_LOG", "warn");
    command
}

/// Runs `pm bootstrap` and asserts it succeeded; returns its stdout.
pub fn bootstrap(data_dir: &Path, genesis_key: &Path, nickname: &str) -> String {
    let output = pm()
        .arg("bootstrap")
        .arg("--genesis-key")
        .arg(genesis_key)
        .arg("--nickname")
        .arg(nickname)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("pm bootstrap can be run");
    assert!(
        output.status.success(),
        "pm bootstrap failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

// ---------------------------------------------------------------- server

/// One `pm serve` process. Dropping it kills the process.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// `http://127.0.0.1:PORT/teleferic`
    pub url: String,
    /// The address the server printed as `node address: ADDR`.
    pub node_address: String,
}

impl Server {
    /// Starts `pm serve --data-dir DIR --listen 127.0.0.1:0` and reads the
    /// gateway URL and the node address from its stdout.
    pub fn start(data_dir: &Path) -> Server {
        Server::start_role("serve", data_dir, &[])
    }

    /// Starts `pm ROLE --data-dir DIR --listen 127.0.0.1:0` with extra
    /// environment and reads the URL it prints. `serve` also prints the node
    /// address; the separate roles print `ROLE listening on http://ADDR`.
    pub fn start_role(role: &str, data_dir: &Path, env: &[(String, String)]) -> Server {
        Server::start_role_logged(role, data_dir, env, None)
    }

    /// [`Server::start_role`], writing the process's stderr (its log) to
    /// `stderr` when given, instead of the test's.
    pub fn start_role_logged(role: &str, data_dir: &Path, env: &[(String, String)], stderr: Option<&Path>) -> Server {
        let log = stderr.map(Path::to_owned);
        let stderr = match stderr {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("the log file can be created")),
            None => Stdio::inherit(),
        };
        let mut child = pm()
            .arg(role)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("pm can be started");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        // Keeps reading to the end, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = lines_tx.send(line);
            }
        });
        let wants_node = role == "serve";
        let deadline = Instant::now() + START_TIMEOUT;
        let (mut url, mut node_address) = (None::<String>, None::<String>);
        while url.is_none() || (wants_node && node_address.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match lines_rx.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    // A captured log is the only trace of why: its end goes in the message.
                    let tail = log.as_ref().and_then(|path| std::fs::read(path).ok()).map(|bytes| {
                        let text = String::from_utf8_lossy(&bytes).into_owned();
                        text.chars().rev().take(3000).collect::<Vec<_>>().into_iter().rev().collect::<String>()
                    });
                    panic!(
                        "pm {role} printed no URL within {START_TIMEOUT:?} (exit: {status:?}); \
                         seen: url={url:?} node={node_address:?}; end of its log: {}",
                        tail.unwrap_or_else(|| "(on the test's stderr)".into())
                    );
                }
            };
            if url.is_none() {
                url = if wants_node { find_gateway_url(&line) } else { find_listening_url(&line) };
            }
            if let Some(rest) = line.split("node address:").nth(1) {
                node_address = Some(rest.trim().to_owned());
            }
        }
        let url = url.expect("loop ends once the URL is known");
        let base = url.strip_suffix("/teleferic").unwrap_or(&url).to_owned();
        let url = format!("{base}/teleferic");
        Server { child: Some(child), base, url, node_address: node_address.unwrap_or_default() }
    }

    /// Polls `GET /readyz` until it answers 200.
    pub async fn wait_ready(&self, http: &reqwest::Client) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let status = http.get(format!("{}/readyz", self.base)).send().await.map(|r| r.status());
            if matches!(status, Ok(s) if s.is_success()) {
                return;
            }
            assert!(Instant::now() < deadline, "/readyz did not answer 200 within {START_TIMEOUT:?}: {status:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.as_ref().expect("the server runs").id() as i32)
    }

    /// Sends `signal` and waits (bounded) for the process to exit.
    pub fn stop_with(&mut self, signal: nix::sys::signal::Signal, timeout: Duration) -> ExitStatus {
        nix::sys::signal::kill(self.pid(), signal).expect("the server process can be signalled");
        let mut child = self.child.take().expect("the server runs");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("the server process can be waited for") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("pm serve did not exit within {timeout:?} after {signal}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The `http://ADDR` of a `ROLE listening on http://ADDR` line.
fn find_listening_url(line: &str) -> Option<String> {
    let rest = line.split(" listening on ").nth(1)?;
    rest.starts_with("http://").then(|| rest.trim().to_owned())
}

/// The first `http://…/teleferic` in a line.
fn find_gateway_url(line: &str) -> Option<String> {
    let start = line.find("http://")?;
    let rest = &line[start..];
    let end = rest.find("/teleferic")? + "/teleferic".len();
    Some(rest[..end].to_owned())
}

// ---------------------------------------------------------------- node

/// A bootstrapped node with its server running.
pub struct TestNode {
    pub dir: TempDir,
    pub genesis: PersonaKey,
    /// The node's public key, from `teleferic { persona { pubkey } }`.
    pub node_public: PublicKeyPem,
    pub server: Server,
    pub http: reqwest::Client,
    /// Further gateways of a distributed deployment; requests go to
    /// `server` and these in turn, so racing requests cross processes.
    pub gateways: Vec<Server>,
    /// The other role processes of a distributed deployment.
    pub roles: Vec<Server>,
    next_gateway: std::sync::atomic::AtomicUsize,
    /// What a distributed deployment created on the servers, deleted on drop.
    teardown: Option<Teardown>,
}

/// The tables, indices and queues of one distributed deployment.
struct Teardown {
    hbase: pm_backends::settings::HBaseSettings,
    elasticsearch: pm_backends::settings::ElasticSettings,
    rabbitmq: pm_backends::settings::RabbitMqSettings,
}

impl Teardown {
    async fn run(self) {
        use pm_backends::{elasticsearch::ElasticIndex, hbase::HBaseStore, rabbitmq::RabbitMqQueue};
        let results = [
            match HBaseStore::connect(self.hbase).await {
                Ok(store) => store.drop_tables().await,
                Err(e) => Err(e),
            },
            match ElasticIndex::connect(self.elasticsearch).await {
                Ok(index) => index.delete_indices().await,
                Err(e) => Err(e),
            },
            match RabbitMqQueue::connect(self.rabbitmq).await {
                Ok(queue) => queue.delete_topology().await,
                Err(e) => Err(e),
            },
        ];
        for error in results.into_iter().filter_map(Result::err) {
            eprintln!("teardown of a test deployment left something behind: {error}");
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        let Some(teardown) = self.teardown.take() else { return };
        // Processes first, so no writer recreates what is being deleted.
        self.gateways.clear();
        self.roles.clear();
        if let Some(mut child) = self.server.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Drop may run inside the test's runtime, which cannot block: use another.
        let cleaner = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the teardown")
                .block_on(teardown.run())
        });
        let _ = cleaner.join();
    }
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("an HTTP client can be built")
}

/// A node for the suite: `pm serve` on the embedded backend, or, in the
/// distributed suite, the separate roles over RabbitMQ, HBase and
/// Elasticsearch (see [`spawn_deployment`]).
pub async fn spawn_node() -> TestNode {
    if crate::DISTRIBUTED {
        if let Some(node) = spawn_deployment().await {
            return node;
        }
    }
    spawn_embedded_node().await
}

/// The servers a distributed deployment needs, as `(name, address)`.
fn distributed_services() -> [(&'static str, String); 3] {
    use pm_backends::testsuite::address;
    [
        ("rabbitmq", address("PM_TEST_RABBITMQ", "127.0.0.1:5672")),
        ("hbase-thrift", address("PM_TEST_HBASE", "127.0.0.1:9090")),
        ("elasticsearch", address("PM_TEST_ELASTICSEARCH", "127.0.0.1:9200")),
    ]
}

/// A distributed deployment on this machine: bootstrap, one reader, two
/// authorizers, two writers and two gateways (each gateway in front of its
/// own authorizer), every process on port 0, over real RabbitMQ, HBase and
/// Elasticsearch under names no other test uses. `None` when the servers
/// are unreachable and `PM_REQUIRE_SERVICES` is not set (then it fails).
pub async fn spawn_deployment() -> Option<TestNode> {
    spawn_deployment_with(&NodeOptions::default()).await
}

/// What a test may add to a node's processes.
#[derive(Clone, Debug, Default)]
pub struct NodeOptions {
    /// Environment for every process (bootstrap and roles), replacing what
    /// the harness would set under the same name.
    pub env: Vec<(String, String)>,
    /// A directory that receives each process's stderr as `NAME.log`
    /// (`bootstrap`, `serve`, `reader`, `authorizer-1`, ...).
    pub log_dir: Option<PathBuf>,
}

impl NodeOptions {
    fn log(&self, name: &str) -> Option<PathBuf> {
        self.log_dir.as_ref().map(|dir| dir.join(format!("{name}.log")))
    }

    /// `base` with this option's environment laid over it.
    fn env_over(&self, base: Vec<(String, String)>) -> Vec<(String, String)> {
        let mut env: Vec<_> = base.into_iter().filter(|(k, _)| !self.env.iter().any(|(o, _)| o == k)).collect();
        env.extend(self.env.iter().cloned());
        env
    }
}

/// [`spawn_deployment`] with extra environment and captured logs.
pub async fn spawn_deployment_with(options: &NodeOptions) -> Option<TestNode> {
    for (name, address) in distributed_services() {
        if !pm_backends::testsuite::require(name, &address) {
            eprintln!("running this test on the embedded backend instead");
            return None;
        }
    }
    let dir = tempfile::tempdir().expect("a temporary directory can be created");
    let genesis = PersonaKey::generate();
    let genesis_path = dir.path().join("genesis.key");
    pm::key_file::save_new(&genesis, &genesis_path).expect("the genesis key can be written");
    let prefix = pm_backends::testsuite::unique_prefix("e2e").to_lowercase();
    let service = |name: &str| distributed_services().into_iter().find(|(n, _)| *n == name).expect("listed").1;
    let (hbase_host, hbase_port) =
        service("hbase-thrift").rsplit_once(':').map(|(h, p)| (h.to_owned(), p.to_owned())).expect("host:port");
    let env: Vec<(String, String)> = [
        ("PM_BACKENDS__STORE", "hbase".to_owned()),
        ("PM_BACKENDS__INDEX", "elasticsearch".to_owned()),
        ("PM_BACKENDS__QUEUE", "rabbitmq".to_owned()),
        ("PM_HBASE__HOST", hbase_host),
        ("PM_HBASE__PORT", hbase_port),
        ("PM_HBASE__TABLE_PREFIX", prefix.clone()),
        ("PM_ELASTICSEARCH__URL", format!("http://{}", service("elasticsearch"))),
        ("PM_ELASTICSEARCH__INDEX_PREFIX", prefix.clone()),
        ("PM_RABBITMQ__URL", format!("amqp://guest:guest@{}/%2f", service("rabbitmq"))),
        ("PM_RABBITMQ__PREFIX", prefix.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let env = options.env_over(env);
    let data_dir = data_dir_of(&dir);
    let output = pm()
        .args(["bootstrap", "--genesis-key"])
        .arg(&genesis_path)
        .args(["--nickname", GENESIS_NICKNAME, "--data-dir"])
        .arg(&data_dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("pm bootstrap can be run");
    assert!(output.status.success(), "distributed pm bootstrap failed: {}", String::from_utf8_lossy(&output.stderr));
    if let Some(path) = options.log("bootstrap") {
        std::fs::write(path, &output.stderr).expect("the bootstrap log can be written");
    }

    let with = |extra: &[(&str, &str)]| {
        let mut all = env.clone();
        all.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        all
    };
    let reader = Server::start_role_logged("reader", &data_dir, &env, options.log("reader").as_deref());
    let mut roles = Vec::new();
    let mut gateways = Vec::new();
    for n in 1..=2 {
        let authorizer = Server::start_role_logged(
            "authorizer",
            &data_dir,
            &with(&[("PM_ROLES__READER_URL", &reader.base)]),
            options.log(&format!("authorizer-{n}")).as_deref(),
        );
        let gateway = Server::start_role_logged(
            "teleferic",
            &data_dir,
            &with(&[("PM_ROLES__READER_URL", &reader.base), ("PM_ROLES__AUTHORIZER_URL", &authorizer.base)]),
            options.log(&format!("teleferic-{n}")).as_deref(),
        );
        roles.push(authorizer);
        roles.push(Server::start_role_logged(
            "writer",
            &data_dir,
            &env,
            options.log(&format!("writer-{n}")).as_deref(),
        ));
        gateways.push(gateway);
    }
    roles.push(reader);
    let http = http_client();
    for gateway in &gateways {
        gateway.wait_ready(&http).await;
    }
    let mut server = gateways.remove(0);
    // The gateway role does not hold the node key; bootstrap wrote it here.
    server.node_address =
        pm::key_file::load(&data_dir.join("node.key")).expect("bootstrap wrote the node key").address().to_string();
    let teardown = Teardown {
        hbase: pm_backends::settings::HBaseSettings {
            host: env_value(&env, "PM_HBASE__HOST"),
            port: env_value(&env, "PM_HBASE__PORT").parse().expect("a port"),
            table_prefix: prefix.clone(),
            ..Default::default()
        },
        elasticsearch: pm_backends::settings::ElasticSettings {
            url: env_value(&env, "PM_ELASTICSEARCH__URL"),
            index_prefix: prefix.clone(),
            ..Default::default()
        },
        rabbitmq: pm_backends::settings::RabbitMqSettings {
            prefix: prefix.clone(),
            ..pm_backends::settings::RabbitMqSettings::with_url(env_value(&env, "PM_RABBITMQ__URL"))
        },
    };
    Some(TestNode::assemble(dir, genesis, server, http, gateways, roles, Some(teardown)).await)
}

fn env_value(env: &[(String, String)], name: &str) -> String {
    env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).expect("the deployment sets it")
}

/// Posts a GraphQL request to the gateway at `url`; returns the whole
/// response. Section 7: every answer but an oversized request is HTTP 200.
pub async fn graphql_at(http: &reqwest::Client, url: &str, query: &str, variables: Value) -> Value {
    let response = http
        .post(url)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("the gateway answers");
    let status = response.status();
    let body = response.text().await.expect("the gateway sends a body");
    assert_eq!(status, 200, "GraphQL answers are HTTP 200: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("the answer is not JSON ({e}): {body}"))
}

/// Temp dir, genesis key, `pm bootstrap`, `pm serve` on port 0, `/readyz`.
pub async fn spawn_embedded_node() -> TestNode {
    spawn_embedded_node_with_env(&[]).await
}

/// [`spawn_embedded_node`], with settings for `pm serve` in its environment
/// (`PM_GATEWAY__BODY_TIMEOUT_MS`, ...).
pub async fn spawn_embedded_node_with_env(env: &[(&str, &str)]) -> TestNode {
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    spawn_embedded_node_with(&NodeOptions { env, log_dir: None }).await
}

/// [`spawn_embedded_node`] with extra environment (for bootstrap and
/// `pm serve`) and captured logs.
pub async fn spawn_embedded_node_with(options: &NodeOptions) -> TestNode {
    let dir = tempfile::tempdir().expect("a temporary directory can be created");
    let genesis = PersonaKey::generate();
    let genesis_path = dir.path().join("genesis.key");
    pm::key_file::save_new(&genesis, &genesis_path).expect("the genesis key can be written");
    let output = pm()
        .arg("bootstrap")
        .arg("--genesis-key")
        .arg(&genesis_path)
        .args(["--nickname", GENESIS_NICKNAME, "--data-dir"])
        .arg(data_dir_of(&dir))
        .envs(options.env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("pm bootstrap can be run");
    assert!(output.status.success(), "pm bootstrap failed: {}", String::from_utf8_lossy(&output.stderr));
    if let Some(path) = options.log("bootstrap") {
        std::fs::write(path, &output.stderr).expect("the bootstrap log can be written");
    }
    let server = Server::start_role_logged("serve", &data_dir_of(&dir), &options.env, options.log("serve").as_deref());
    let http = http_client();
    server.wait_ready(&http).await;
    TestNode::assemble(dir, genesis, server, http, Vec::new(), Vec::new(), None).await
}

pub fn data_dir_of(dir: &TempDir) -> PathBuf {
    dir.path().join("data")
}

impl TestNode {
    /// Serves an already bootstrapped `dir` (data in `dir/data`).
    pub async fn start(dir: TempDir, genesis: PersonaKey) -> TestNode {
        let server = Server::start(&data_dir_of(&dir));
        let http = http_client();
        server.wait_ready(&http).await;
        TestNode::assemble(dir, genesis, server, http, Vec::new(), Vec::new(), None).await
    }

    /// A node of running processes, with the node key read from its gateway.
    async fn assemble(
        dir: TempDir,
        genesis: PersonaKey,
        server: Server,
        http: reqwest::Client,
        gateways: Vec<Server>,
        roles: Vec<Server>,
        teardown: Option<Teardown>,
    ) -> TestNode {
        let placeholder = PersonaKey::from_seed([1; 32]).public().clone();
        let mut node = TestNode {
            dir,
            genesis,
            node_public: placeholder,
            server,
            http,
            gateways,
            roles,
            next_gateway: Default::default(),
            teardown,
        };
        node.node_public = node.fetch_node_public().await;
        node
    }

    /// Starts `pm serve` again on the same data directory. The current
    /// server must already be stopped (the database takes one process).
    pub async fn restart(&mut self) {
        let server = Server::start(&self.data_dir());
        server.wait_ready(&self.http).await;
        self.server = server;
        let node_public = self.fetch_node_public().await;
        assert_eq!(node_public, self.node_public, "the node key survives a restart");
    }

    async fn fetch_node_public(&self) -> PublicKeyPem {
        let data = self.data("{ teleferic { persona { pubkey } } }", json!({})).await;
        let wire = data["teleferic"]["persona"]["pubkey"].as_str().expect("the node persona has a pubkey");
        PublicKeyPem::parse_wire(wire).expect("the node pubkey is a valid wire key")
    }
}

/// The fields of a persona every query asks for.
pub const PERSONA_FIELDS: &str = "address pubkey nickname createdAt";
/// Every field of an envelope, readers and sender resolved.
pub const ENVELOPE_FIELDS: &str = "sender { address pubkey nickname createdAt } messageType messageHash \
    messageSign dossierHash bodyHash ACL { reader { address pubkey nickname createdAt } key } \
    objects { objectHash metaHashes container { containerHash containerSign objectContainer } } \
    message createdAt";

impl TestNode {
    pub fn data_dir(&self) -> PathBuf {
        data_dir_of(&self.dir)
    }

    /// The next gateway's GraphQL URL, taking every gateway in turn.
    pub fn gateway_url(&self) -> &str {
        let turn = self.next_gateway.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match turn % (self.gateways.len() + 1) {
            0 => &self.server.url,
            n => &self.gateways[n - 1].url,
        }
    }

    /// The node key as `pm bootstrap` wrote it (DIR/node.key).
    pub fn node_key(&self) -> PersonaKey {
        pm::key_file::load(&self.data_dir().join("node.key")).expect("DIR/node.key is the node's PKCS#8 key")
    }

    /// Posts a GraphQL request; returns the whole response. Section 7: every
    /// answer but an oversized request is HTTP 200.
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        graphql_at(&self.http, self.gateway_url(), query, variables).await
    }

    /// A query that must succeed: returns `data`.
    pub async fn data(&self, query: &str, variables: Value) -> Value {
        let response = self.graphql(query, variables).await;
        assert!(matches!(response.get("errors"), None | Some(Value::Null)), "query {query} failed: {response}");
        response["data"].clone()
    }

    /// A query that must fail: returns the code of its first error.
    pub async fn query_error(&self, query: &str, variables: Value) -> String {
        let response = self.graphql(query, variables).await;
        error_code(&response).unwrap_or_else(|| panic!("query {query} did not fail: {response}"))
    }

    /// A fresh node-signed timestamp, checked against the node key.
    pub async fn timestamp(&self) -> SignedTimestamp {
        let data = self.data("{ teleferic { signedTimestamp } }", json!({})).await;
        let text = data["teleferic"]["signedTimestamp"].as_str().expect("signedTimestamp is a string");
        let t = SignedTimestamp::parse(text).expect("the node's T decodes");
        t.verify_node_signature(self.node_public.verifying_key()).expect("the node signed its T");
        t
    }

    /// `sendMessage`: the accepted envelope, or the code of the refusal.
    pub async fn send(&self, envelope: &Envelope) -> Result<Value, String> {
        self.send_input(envelope.to_json_value()).await
    }

    pub async fn send_input(&self, input: Value) -> Result<Value, String> {
        let query = format!(
            "mutation($envelope: MessageEnvelopeInput!) {{ sendMessage(envelope: $envelope) {{ {ENVELOPE_FIELDS} }} }}"
        );
        let response = self.graphql(&query, json!({ "envelope": input })).await;
        sent_result(&response)
    }

    /// Sends an envelope that must be accepted, then waits until it is readable.
    pub async fn send_ok(&self, envelope: &Envelope) -> Value {
        let accepted = self.send(envelope).await.unwrap_or_else(|code| panic!("envelope refused with {code}"));
        self.wait_readable(&envelope.message_hash).await;
        accepted
    }

    /// Sends an envelope that must be refused with `code`.
    pub async fn send_refused(&self, envelope: &Envelope, code: &str) {
        match self.send(envelope).await {
            Ok(accepted) => panic!("expected {code}, but the envelope was accepted: {accepted}"),
            Err(got) => assert_eq!(got, code, "wrong refusal code"),
        }
    }

    pub async fn message(&self, hash: &str) -> Value {
        let query = format!("query($h: SHA256!) {{ messageByHash(messageHash: $h) {{ {ENVELOPE_FIELDS} }} }}");
        self.data(&query, json!({ "h": hash })).await["messageByHash"].clone()
    }

    /// Polls `messageByHash` until the message is stored.
    pub async fn wait_readable(&self, hash: &str) -> Value {
        let deadline = Instant::now() + READABLE_TIMEOUT;
        loop {
            let found = self.message(hash).await;
            if !found.is_null() {
                return found;
            }
            assert!(Instant::now() < deadline, "message {hash} not readable within {READABLE_TIMEOUT:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `persona(<argument>: value)`: `address`, `pubkey` or `nickname`.
    pub async fn persona(&self, argument: &str, value: &str) -> Value {
        let scalar = match argument {
            "address" => "Address",
            "pubkey" => "PublicKey",
            "nickname" => "String",
            other => panic!("persona has no argument {other}"),
        };
        let query = format!("query($v: {scalar}!) {{ persona({argument}: $v) {{ {PERSONA_FIELDS} }} }}");
        self.data(&query, json!({ "v": value })).await["persona"].clone()
    }

    /// Sends an assertion from genesis and waits until it is readable: the
    /// node is answering and writing. Refused envelopes are never queued, so
    /// their absence after this is meaningful.
    pub async fn sentinel(&self) {
        let t = self.timestamp().await;
        let envelope = envelopes::assertion(&self.genesis, &[self.genesis.public()], vec![], &t);
        self.send_ok(&envelope).await;
        // Writers need not be FIFO (the distributed suite runs two): wait for
        // the sentinel itself; callers wait for what they expect stored.
        self.wait_readable(&envelope.message_hash).await;
    }

    /// After a sentinel went through: none of `hashes` is stored and none of
    /// `addresses` is a persona.
    pub async fn assert_nothing_stored(&self, hashes: &[String], addresses: &[String]) {
        self.sentinel().await;
        for hash in hashes {
            let found = self.message(hash).await;
            assert!(found.is_null(), "refused message {hash} was stored: {found}");
        }
        for address in addresses {
            let found = self.persona("address", address).await;
            assert!(found.is_null(), "refused registration {address} was stored: {found}");
        }
    }

    /// Sends an invitation from `inviter` (accepted and readable).
    pub async fn invite(&self, inviter: &PersonaKey, name: &str) -> pm_models::client::Invitation {
        let t = self.timestamp().await;
        let node_address = self.node_public.address();
        let invitation =
            pm_models::client::invitation(inviter, &node_address, &self.server.url, name, "peer-mountain", &t);
        self.send_ok(&invitation.envelope).await;
        // A registration can only answer an invitation that is stored.
        self.wait_readable(&invitation.envelope.message_hash).await;
        invitation
    }

    /// The registration of `key` as `nickname` answering `invitation`.
    pub async fn registration(
        &self,
        key: &PersonaKey,
        nickname: &str,
        invitation: &pm_models::client::Invitation,
    ) -> Envelope {
        let t = self.timestamp().await;
        pm_models::client::registration(
            key,
            nickname,
            &invitation.envelope.message_hash,
            &invitation.invite_key,
            &invitation.name,
            self.node_public.verifying_key(),
            &t,
        )
    }

    /// Invites and registers a new persona (from genesis), readable afterwards.
    pub async fn register_new(&self, nickname: &str) -> PersonaKey {
        let invitation = self.invite(&self.genesis, &format!("name for {nickname}")).await;
        let key = PersonaKey::generate();
        let registration = self.registration(&key, nickname, &invitation).await;
        self.send_ok(&registration).await;
        key
    }

    /// Every page of a listing, `limit` at a time, until an empty page.
    pub async fn list_all(&self, field: &str, argument: &str, value: &str, limit: i64) -> Vec<Value> {
        let scalar = match argument {
            "date" => "Date",
            _ => "Address",
        };
        let query = format!(
            "query($v: {scalar}!, $limit: Int, $after: String) {{ \
             {field}({argument}: $v, limit: $limit, after: $after) {{ {ENVELOPE_FIELDS} }} }}"
        );
        let mut all = Vec::new();
        let mut after = Value::Null;
        loop {
            let data = self.data(&query, json!({ "v": value, "limit": limit, "after": after })).await;
            let page = data[field].as_array().expect("a listing is a list").clone();
            assert!(page.len() as i64 <= limit, "a page holds at most `limit` items");
            let Some(last) = page.last() else { return all };
            after = last["messageHash"].clone();
            all.extend(page);
            assert!(all.len() < 1_000_000, "listing does not end");
        }
    }
}

/// The code of the first GraphQL error, if any.
pub fn error_code(response: &Value) -> Option<String> {
    let errors = response.get("errors")?.as_array()?;
    let first = errors.first()?;
    Some(
        first["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("a GraphQL error without extensions.code: {response}"))
            .to_owned(),
    )
}

/// Reads a `sendMessage` answer.
pub fn sent_result(response: &Value) -> Result<Value, String> {
    if let Some(code) = error_code(response) {
        assert!(response["data"]["sendMessage"].is_null(), "a refused envelope returns no data: {response}");
        return Err(code);
    }
    let accepted = response["data"]["sendMessage"].clone();
    assert!(!accepted.is_null(), "sendMessage returned neither an envelope nor an error: {response}");
    Ok(accepted)
}

/// Checks a date has the one form of section 1 (RFC 3339, six decimals, `Z`).
pub fn assert_date(text: &Value) -> String {
    let text = text.as_str().unwrap_or_else(|| panic!("a date is a string: {text}"));
    assert!(
        pm_models::time::Micros::parse_rfc3339(text).is_some(),
        "{text:?} is not RFC 3339 UTC with six fractional digits"
    );
    text.to_owned()
}
