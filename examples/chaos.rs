//! Fault runs (issue 8): floods a deployment with envelopes while killing,
//! restarting and stalling its parts, then checks what the ledger promises:
//! every envelope the API accepted is stored exactly once, nothing refused
//! is stored, and no claim is left held without its message.
//!
//! ```text
//! cargo run --release --example chaos -- embedded|distributed [--seconds N] [--clients N]
//! ```
//!
//! `scripts/chaos.sh` builds and runs it (see the README). The distributed
//! run drives the servers `scripts/services.sh` started, found through the
//! same environment (`PM_SERVICES_DIR`, `PM_RABBITMQ_PORT`, …), and restarts
//! them through that script; it leaves them running.
//!
//! Every client records, per envelope, the answer it got: accepted, refused
//! with a code, or no answer (the process died or a backend was down). The
//! checks, after the faults and once the queue drained:
//! - **lost**: accepted, but not readable by hash;
//! - **duplicated**: listed more than once by its sender;
//! - **unindexed**: readable by hash (the record store), but not listed by
//!   its sender (the search index);
//! - **refused-then-stored**: refused with a code, but readable;
//! - **orphaned claims**: not accepted and not stored, yet sending it again
//!   is refused as a duplicate (its claim is held by nothing stored), once
//!   the sweeper's grace period is over.
//!
//! It prints a table per fault (the window in which each envelope was sent)
//! and exits 1 when any of those five is not zero, or when the distributed
//! run's dead-letter queue holds anything (the flood sends nothing that
//! should land there).

use pm_models::client::{acl_rule_for, private_envelope, random_bytes, ContentParts};
use pm_models::envelope::Envelope;
use pm_models::keys::PersonaKey;
use pm_models::signed_timestamp::SignedTimestamp;
use pm_models::MessageType;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the sweeper waits before resolving a pending admission, in
/// this run (short, so that the orphan check need not wait a minute).
const PENDING_GRACE_SECS: u64 = 15;
const SWEEP_INTERVAL_SECS: u64 = 3;
/// The longest the queue may take to drain after the faults.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(240);

type Failure = Box<dyn std::error::Error + Send + Sync>;

// ------------------------------------------------------------------ outcomes

#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    Accepted,
    Refused(String),
    /// No complete answer, or UNAVAILABLE: the outcome is not known.
    Unknown,
}

#[derive(Clone)]
struct Sent {
    envelope: Envelope,
    answer: Answer,
    /// The fault window the envelope was sent in.
    window: usize,
}

/// The faults of a run, in order; window 0 is the steady start.
struct Windows {
    names: Mutex<Vec<String>>,
    current: AtomicUsize,
}

impl Windows {
    fn new() -> Self {
        Self { names: Mutex::new(vec!["steady".into()]), current: AtomicUsize::new(0) }
    }

    fn open(&self, name: &str) {
        let mut names = self.names.lock().unwrap();
        names.push(name.to_owned());
        self.current.store(names.len() - 1, Ordering::SeqCst);
        println!("chaos: {name}");
    }
}

// ------------------------------------------------------------------ processes

/// The `pm` binary the run drives.
fn pm_binary() -> PathBuf {
    std::env::var_os("PM_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target/release/pm"))
}

/// One `pm` process on `127.0.0.1:0`, restartable with the same settings.
struct Process {
    role: &'static str,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    base: String,
}

impl Process {
    fn start(role: &'static str, args: &[&str], env: &[(String, String)]) -> Result<Self, Failure> {
        let mut process = Self {
            role,
            args: args.iter().map(|a| a.to_string()).collect(),
            env: env.to_vec(),
            child: None,
            base: String::new(),
        };
        process.spawn()?;
        Ok(process)
    }

    fn spawn(&mut self) -> Result<(), Failure> {
        let mut command = Command::new(pm_binary());
        command.arg(self.role).args(&self.args).arg("--listen").arg(if self.base.is_empty() {
            "127.0.0.1:0".to_owned()
        } else {
            self.base.trim_start_matches("http://").to_owned()
        });
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("PM_") {
                command.env_remove(&name);
            }
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v))).env("RUST_LOG", "warn");
        let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let (found, url) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(at) = line.find("http://") {
                    let url = line[at..].split_whitespace().next().unwrap_or_default().to_owned();
                    let _ = found.send(url.trim_end_matches("/teleferic").to_owned());
                }
            }
        });
        let base =
            url.recv_timeout(Duration::from_secs(120)).map_err(|_| format!("pm {} printed no URL", self.role))?;
        self.base = base;
        self.child = Some(child);
        Ok(())
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) -> Result<(), Failure> {
        self.kill9();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.spawn() {
                Ok(()) => return Ok(()),
                // The port may linger a moment after a kill.
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(500)),
                Err(error) => return Err(error),
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `scripts/services.sh` with the caller's environment (ports, directory).
fn services(command: &str, only: &str) -> Result<(), Failure> {
    let status =
        Command::new("scripts/services.sh").arg(command).env("PM_SERVICES", only).stdout(Stdio::null()).status()?;
    if !status.success() {
        return Err(format!("scripts/services.sh {command} ({only}) failed").into());
    }
    Ok(())
}

/// The pid of a server `scripts/services.sh` runs (`services.sh pid NAME`).
fn service_pid(name: &str) -> Result<i32, Failure> {
    let output = Command::new("scripts/services.sh").args(["pid", name]).stderr(Stdio::inherit()).output()?;
    if !output.status.success() {
        return Err(format!("scripts/services.sh pid {name} failed").into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().parse()?)
}

fn signal(pid: i32, signal: nix::sys::signal::Signal) -> Result<(), Failure> {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)?;
    Ok(())
}

// ------------------------------------------------------------------ gateway client

#[derive(Clone)]
struct Gateway {
    http: reqwest::Client,
    urls: Arc<Mutex<Vec<String>>>,
    turn: Arc<AtomicUsize>,
}

impl Gateway {
    fn new(urls: Vec<String>) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("a client");
        Self { http, urls: Arc::new(Mutex::new(urls)), turn: Arc::default() }
    }

    fn url(&self) -> String {
        let urls = self.urls.lock().unwrap();
        urls[self.turn.fetch_add(1, Ordering::Relaxed) % urls.len()].clone()
    }

    async fn graphql(&self, query: &str, variables: Value) -> Result<Value, Failure> {
        let response =
            self.http.post(self.url()).json(&json!({ "query": query, "variables": variables })).send().await?;
        Ok(response.json().await?)
    }

    async fn data(&self, query: &str, variables: Value) -> Result<Value, Failure> {
        let body = self.graphql(query, variables).await?;
        match body.get("errors") {
            Some(errors) if !errors.is_null() => Err(format!("{errors}").into()),
            _ => Ok(body["data"].clone()),
        }
    }

    async fn timestamp(&self) -> Result<SignedTimestamp, Failure> {
        let data = self.data("{ teleferic { signedTimestamp } }", json!({})).await?;
        let text = data["teleferic"]["signedTimestamp"].as_str().ok_or("no signed timestamp")?;
        Ok(SignedTimestamp::parse(text).map_err(|e| format!("{e}"))?)
    }

    async fn send(&self, envelope: &Envelope) -> Answer {
        let query = "mutation($e: MessageEnvelopeInput!) { sendMessage(envelope: $e) { messageHash } }";
        match self.graphql(query, json!({ "e": envelope.to_json_value() })).await {
            Err(_) => Answer::Unknown,
            Ok(body) => match body["errors"][0]["extensions"]["code"].as_str() {
                None if body["data"]["sendMessage"]["messageHash"].is_string() => Answer::Accepted,
                None => Answer::Unknown,
                Some("UNAVAILABLE") => Answer::Unknown,
                Some(code) => Answer::Refused(code.to_owned()),
            },
        }
    }

    /// The hashes of `hashes` that are readable, asked 100 at a time.
    async fn readable(&self, hashes: &[String]) -> Result<HashSet<String>, Failure> {
        let mut found = HashSet::new();
        for chunk in hashes.chunks(100) {
            let fields: String = chunk
                .iter()
                .enumerate()
                .map(|(i, h)| format!("m{i}: messageByHash(messageHash: \"{h}\") {{ messageHash }} "))
                .collect();
            let data = self.data(&format!("{{ {fields} }}"), json!({})).await?;
            for (i, hash) in chunk.iter().enumerate() {
                if !data[format!("m{i}")].is_null() {
                    found.insert(hash.clone());
                }
            }
        }
        Ok(found)
    }

    /// How often each hash appears in the sender's listing, every page.
    async fn listed(&self, sender: &str) -> Result<HashMap<String, usize>, Failure> {
        let query =
            "query($s: Address!, $a: String) { messageBySender(sender: $s, limit: 1000, after: $a) { messageHash } }";
        let mut counts = HashMap::new();
        let mut after = Value::Null;
        for _ in 0..10_000 {
            let data = self.data(query, json!({ "s": sender, "a": after })).await?;
            let page = data["messageBySender"].as_array().cloned().unwrap_or_default();
            let Some(last) = page.last() else { return Ok(counts) };
            after = last["messageHash"].clone();
            for message in &page {
                *counts.entry(message["messageHash"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
            }
        }
        Err("the listing did not end".into())
    }
}

// ------------------------------------------------------------------ flood

/// What the flooding clients share.
struct Flood {
    gateway: Gateway,
    genesis: PersonaKey,
    timestamp: Mutex<SignedTimestamp>,
    stop: AtomicBool,
    sent: Mutex<Vec<Sent>>,
    windows: Arc<Windows>,
}

impl Flood {
    fn assertion(&self) -> Envelope {
        let t = self.timestamp.lock().unwrap().clone();
        let key: [u8; 32] = random_bytes();
        let acl = vec![acl_rule_for(self.genesis.public().verifying_key(), &key)];
        let parts = ContentParts::new(0, &pm_models::codec::b64(random_bytes::<16>()));
        private_envelope(&self.genesis, MessageType::Assertion, &parts, &key, &random_bytes(), acl, vec![], &t)
    }

    async fn client(self: Arc<Self>) {
        while !self.stop.load(Ordering::Relaxed) {
            let envelope = self.assertion();
            let window = self.windows.current.load(Ordering::SeqCst);
            let answer = self.gateway.send(&envelope).await;
            let pause = answer == Answer::Unknown;
            self.sent.lock().unwrap().push(Sent { envelope, answer, window });
            if pause {
                // A dead node: do not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Keeps the shared `T` fresh (a `T` is good for 420 s).
    async fn refresh(self: Arc<Self>) {
        while !self.stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_secs(30)).await;
            if let Ok(t) = self.gateway.timestamp().await {
                *self.timestamp.lock().unwrap() = t;
            }
        }
    }
}

// ------------------------------------------------------------------ checks

#[derive(Default, Clone, Copy)]
struct Counts {
    sent: usize,
    accepted: usize,
    refused: usize,
    stored: usize,
    lost: usize,
    duplicated: usize,
    /// Stored, but missing from the sender's listing (the search index).
    unindexed: usize,
    refused_then_stored: usize,
    orphaned: usize,
    unknown: usize,
}

impl Counts {
    fn add(&mut self, row: &Counts) {
        self.sent += row.sent;
        self.accepted += row.accepted;
        self.refused += row.refused;
        self.stored += row.stored;
        self.lost += row.lost;
        self.duplicated += row.duplicated;
        self.unindexed += row.unindexed;
        self.refused_then_stored += row.refused_then_stored;
        self.orphaned += row.orphaned;
        self.unknown += row.unknown;
    }

    /// Nothing lost, duplicated, unindexed, refused-then-stored or orphaned.
    fn held(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.unindexed == 0
            && self.refused_then_stored == 0
            && self.orphaned == 0
    }
}

fn print_row(name: &str, row: &Counts) {
    println!(
        "{:<38} {:>6} {:>8} {:>7} {:>7} {:>5} {:>10} {:>9} {:>19} {:>8} {:>9}",
        name,
        row.sent,
        row.accepted,
        row.refused,
        row.stored,
        row.lost,
        row.duplicated,
        row.unindexed,
        row.refused_then_stored,
        row.orphaned,
        row.unknown
    );
}

async fn wait_drained(gateway: &Gateway, accepted: &[String]) -> Result<HashSet<String>, Failure> {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    loop {
        let found = gateway.readable(accepted).await?;
        if found.len() == accepted.len() || Instant::now() > deadline {
            return Ok(found);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Checks every envelope sent and prints the table; true when nothing was
/// lost, duplicated, refused-then-stored or orphaned.
async fn check(gateway: &Gateway, flood: &Flood, deployment: &str) -> Result<bool, Failure> {
    let sent = flood.sent.lock().unwrap().clone();
    let accepted: Vec<String> =
        sent.iter().filter(|s| s.answer == Answer::Accepted).map(|s| s.envelope.message_hash.clone()).collect();
    let stored = wait_drained(gateway, &accepted).await?;
    // Let the sweeper resolve what crashes and stalls left pending.
    tokio::time::sleep(Duration::from_secs(PENDING_GRACE_SECS + 2 * SWEEP_INTERVAL_SECS + 2)).await;
    let all: Vec<String> = sent.iter().map(|s| s.envelope.message_hash.clone()).collect();
    let readable = gateway.readable(&all).await?;
    let listed = gateway.listed(&flood.genesis.address().to_string()).await?;

    let names = flood.windows.names.lock().unwrap().clone();
    let mut table = vec![Counts::default(); names.len()];
    let mut refusals: HashMap<String, usize> = HashMap::new();
    for item in &sent {
        let row = &mut table[item.window];
        let hash = &item.envelope.message_hash;
        let is_stored = readable.contains(hash);
        row.sent += 1;
        row.stored += usize::from(is_stored);
        row.duplicated += listed.get(hash).map_or(0, |n| n.saturating_sub(1));
        row.unindexed += usize::from(is_stored && !listed.contains_key(hash));
        match &item.answer {
            Answer::Accepted => {
                row.accepted += 1;
                row.lost += usize::from(!stored.contains(hash) && !is_stored);
            }
            Answer::Refused(code) => {
                row.refused += 1;
                row.refused_then_stored += usize::from(is_stored);
                *refusals.entry(code.clone()).or_default() += 1;
            }
            Answer::Unknown => {
                row.unknown += 1;
                if !is_stored {
                    // Sent again: a claim held by nothing stored answers DUPLICATE_MESSAGE.
                    if let Answer::Refused(code) = gateway.send(&item.envelope).await {
                        row.orphaned += usize::from(code == "DUPLICATE_MESSAGE");
                    }
                }
            }
        }
    }
    // The check's own resubmissions may have stored some: they were free.
    println!("\nfault run ({deployment}): per fault, envelopes sent in its window");
    println!(
        "{:<38} {:>6} {:>8} {:>7} {:>7} {:>5} {:>10} {:>9} {:>19} {:>8} {:>9}",
        "fault",
        "sent",
        "accepted",
        "refused",
        "stored",
        "lost",
        "duplicated",
        "unindexed",
        "refused-then-stored",
        "orphaned",
        "no answer"
    );
    let mut total = Counts::default();
    for (name, row) in names.iter().zip(&table) {
        print_row(name, row);
        total.add(row);
    }
    print_row("total", &total);
    if !refusals.is_empty() {
        println!("refusals by code: {refusals:?}");
    }
    let unknown_listed: usize = listed.keys().filter(|h| !all.contains(h)).count();
    println!("listed but never sent by the flood (bootstrap and setup only): {unknown_listed}");
    Ok(total.held() && total.accepted > 0)
}

// ------------------------------------------------------------------ runs

struct Options {
    deployment: String,
    seconds: u64,
    clients: usize,
}

fn options() -> Result<Options, Failure> {
    let mut args = std::env::args().skip(1);
    let deployment = args.next().ok_or("usage: chaos embedded|distributed [--seconds N] [--clients N]")?;
    let mut options = Options { deployment, seconds: 30, clients: 8 };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => options.seconds = value.parse()?,
            "--clients" => options.clients = value.parse()?,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok(options)
}

/// Genesis key and `pm bootstrap` of a fresh data directory.
fn bootstrap(dir: &Path, env: &[(String, String)]) -> Result<PersonaKey, Failure> {
    let genesis = PersonaKey::generate();
    let path = dir.join("genesis.key");
    pm::key_file::save_new(&genesis, &path)?;
    let output = Command::new(pm_binary())
        .args(["bootstrap", "--genesis-key"])
        .arg(&path)
        .args(["--nickname", "Chaos Genesis", "--data-dir"])
        .arg(dir.join("data"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()?;
    if !output.status.success() {
        return Err(format!("pm bootstrap: {}", String::from_utf8_lossy(&output.stderr)).into());
    }
    Ok(genesis)
}

async fn wait_ready(http: &reqwest::Client, base: &str) -> Result<(), Failure> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if http.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{base} is not ready").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn start_flood(
    gateway: Gateway,
    genesis: PersonaKey,
    clients: usize,
    windows: Arc<Windows>,
) -> Result<(Arc<Flood>, Vec<tokio::task::JoinHandle<()>>), Failure> {
    let timestamp = Mutex::new(gateway.timestamp().await?);
    let flood =
        Arc::new(Flood { gateway, genesis, timestamp, stop: AtomicBool::new(false), sent: Mutex::default(), windows });
    let mut tasks: Vec<_> = (0..clients).map(|_| tokio::spawn(flood.clone().client())).collect();
    tasks.push(tokio::spawn(flood.clone().refresh()));
    Ok((flood, tasks))
}

async fn stop_flood(flood: &Flood, tasks: Vec<tokio::task::JoinHandle<()>>) {
    flood.stop.store(true, Ordering::SeqCst);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(60), task).await;
    }
}

/// `pm serve`, killed with SIGKILL and restarted a few times mid-flood.
async fn embedded(options: &Options) -> Result<bool, Failure> {
    let dir = tempfile::tempdir()?;
    let genesis = bootstrap(dir.path(), &[])?;
    let data = dir.path().join("data").display().to_string();
    let mut serve = Process::start("serve", &["--data-dir", &data], &[])?;
    let http = reqwest::Client::new();
    wait_ready(&http, &serve.base).await?;
    let gateway = Gateway::new(vec![format!("{}/teleferic", serve.base)]);
    let windows = Arc::new(Windows::new());
    let (flood, tasks) = start_flood(gateway.clone(), genesis, options.clients, windows.clone()).await?;
    let step = Duration::from_secs((options.seconds / 4).max(2));
    tokio::time::sleep(step).await;
    for round in 1..=3 {
        windows.open(&format!("kill -9 pm serve ({round})"));
        tokio::time::sleep(Duration::from_millis(300 + 400 * round)).await;
        serve.restart()?;
        wait_ready(&http, &serve.base).await?;
        tokio::time::sleep(step).await;
    }
    stop_flood(&flood, tasks).await;
    check(&gateway, &flood, "embedded, pm serve killed with SIGKILL").await
}

/// The roles as processes over RabbitMQ, HBase and Elasticsearch, each
/// fault in turn.
async fn distributed(options: &Options) -> Result<bool, Failure> {
    let dir = tempfile::tempdir()?;
    let port = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let prefix = format!("chaos{}_", std::process::id());
    let env: Vec<(String, String)> = [
        ("PM_BACKENDS__STORE", "hbase".to_owned()),
        ("PM_BACKENDS__INDEX", "elasticsearch".to_owned()),
        ("PM_BACKENDS__QUEUE", "rabbitmq".to_owned()),
        ("PM_HBASE__PORT", port("PM_HBASE_THRIFT_PORT", "9090")),
        ("PM_HBASE__TABLE_PREFIX", prefix.clone()),
        ("PM_ELASTICSEARCH__URL", format!("http://127.0.0.1:{}", port("PM_ES_PORT", "9200"))),
        ("PM_ELASTICSEARCH__INDEX_PREFIX", prefix.clone()),
        (
            "PM_RABBITMQ__URL",
            format!("amqp://guest:guest@127.0.0.1:{}/%2f?heartbeat=5", port("PM_RABBITMQ_PORT", "5672")),
        ),
        ("PM_RABBITMQ__PREFIX", prefix.clone()),
        ("PM_AUTHORIZER__PENDING_GRACE_SECS", PENDING_GRACE_SECS.to_string()),
        ("PM_AUTHORIZER__SWEEP_INTERVAL_SECS", SWEEP_INTERVAL_SECS.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let genesis = bootstrap(dir.path(), &env)?;
    let data = dir.path().join("data").display().to_string();
    let args = ["--data-dir", data.as_str()];
    let reader = Process::start("reader", &args, &env)?;
    let with_reader = [env.clone(), vec![("PM_ROLES__READER_URL".into(), reader.base.clone())]].concat();
    let mut authorizers =
        vec![Process::start("authorizer", &args, &with_reader)?, Process::start("authorizer", &args, &with_reader)?];
    let mut gateways = Vec::new();
    for authorizer in &authorizers {
        let mut gateway_env = with_reader.clone();
        gateway_env.push(("PM_ROLES__AUTHORIZER_URL".into(), authorizer.base.clone()));
        gateways.push(Process::start("teleferic", &args, &gateway_env)?);
    }
    let mut writer = Process::start("writer", &args, &env)?;
    let http = reqwest::Client::new();
    for process in gateways.iter().chain([&writer]) {
        wait_ready(&http, &process.base).await?;
    }
    let gateway = Gateway::new(gateways.iter().map(|g| format!("{}/teleferic", g.base)).collect());
    let windows = Arc::new(Windows::new());
    let (flood, tasks) = start_flood(gateway.clone(), genesis, options.clients, windows.clone()).await?;
    let step = Duration::from_secs((options.seconds / 8).max(3));
    tokio::time::sleep(step).await;

    for round in 1..=3 {
        windows.open(&format!("kill -9 writer ({round})"));
        writer.kill9();
        tokio::time::sleep(Duration::from_secs(1)).await;
        writer.restart()?;
        tokio::time::sleep(step).await;
    }
    windows.open("kill -9 an authorizer mid-acceptance");
    authorizers[0].restart()?;
    tokio::time::sleep(step).await;

    windows.open("restart RabbitMQ");
    services("stop", "rabbitmq")?;
    services("start", "rabbitmq")?;
    tokio::time::sleep(step).await;

    windows.open("stop the HBase Thrift server 20 s");
    signal(service_pid("hbase-thrift")?, nix::sys::signal::Signal::SIGTERM)?;
    tokio::time::sleep(Duration::from_secs(20)).await;
    services("start", "hbase")?;
    tokio::time::sleep(step).await;

    windows.open("stop Elasticsearch 20 s (SIGSTOP)");
    let es = service_pid("elasticsearch")?;
    signal(es, nix::sys::signal::Signal::SIGSTOP)?;
    tokio::time::sleep(Duration::from_secs(20)).await;
    signal(es, nix::sys::signal::Signal::SIGCONT)?;
    tokio::time::sleep(step).await;

    windows.open("pause the broker 8 s (SIGSTOP)");
    let broker = service_pid("rabbitmq")?;
    signal(broker, nix::sys::signal::Signal::SIGSTOP)?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    signal(broker, nix::sys::signal::Signal::SIGCONT)?;
    tokio::time::sleep(step).await;

    stop_flood(&flood, tasks).await;
    let held = check(&gateway, &flood, "distributed, one fault after another").await?;
    let dead = dead_letters(&env, &prefix).await?;
    println!("messages in writer_dead: {dead}");
    drop((reader, authorizers, gateways, writer));
    Ok(held && dead == 0)
}

/// How many messages wait in the run's dead-letter queue.
async fn dead_letters(env: &[(String, String)], prefix: &str) -> Result<u32, Failure> {
    let url = env.iter().find(|(k, _)| k == "PM_RABBITMQ__URL").map(|(_, v)| v.clone()).ok_or("no broker URL")?;
    let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let options = lapin::options::QueueDeclareOptions { passive: true, durable: true, ..Default::default() };
    let queue = channel.queue_declare(&format!("{prefix}writer_dead"), options, Default::default()).await?;
    let _ = connection.close(200, "done").await;
    Ok(queue.message_count())
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = async {
        let options = options()?;
        match options.deployment.as_str() {
            "embedded" => embedded(&options).await,
            "distributed" => distributed(&options).await,
            other => Err(format!("unknown deployment {other}: embedded or distributed").into()),
        }
    }
    .await;
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("chaos: the run found lost, duplicated, unindexed, refused-then-stored, orphaned or dead-lettered envelopes");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("chaos: {error}");
            ExitCode::FAILURE
        }
    }
}
