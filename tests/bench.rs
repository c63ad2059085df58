//! Smoke test of `pm bench` against `pm serve`: a tiny run with every phase
//! and the ceilings completes, prints its table and writes every figure to
//! `--json`. No figure is asserted beyond being there and positive: this
//! machine's speed is not under test.

/// The bench runs against `pm serve` and the embedded backend.
pub const DISTRIBUTED: bool = false;

mod common;

use common::spawn_embedded_node;
use serde_json::Value;

/// The settings variables that would make the bench measure other backends.
const BACKEND_VARIABLES: [&str; 4] = ["BROKER_URL", "HBASE_HOSTNAME", "HBASE_PORT", "ES_URL"];

fn positive(report: &Value, pointer: &str) -> f64 {
    let value = report.pointer(pointer).and_then(Value::as_f64);
    match value {
        Some(v) if v > 0.0 => v,
        _ => panic!("{pointer} should be a positive number, got {value:?} in {report:#}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_bench_run_reports_every_phase_and_its_ceilings() {
    let node = spawn_embedded_node().await;
    let genesis_path = node.dir.path().join("genesis.key");
    let json_path = node.dir.path().join("bench.json");
    let mut command = common::pm();
    for name in BACKEND_VARIABLES {
        command.env_remove(name);
    }
    command
        .args(["bench", "--url", &node.server.url, "--genesis-key"])
        .arg(&genesis_path)
        .args(["--personas", "2", "--messages", "40", "--concurrency", "2", "--ceilings", "--json"])
        .arg(&json_path)
        .args(["--watch-pid", &node.server.pid().to_string()])
        .args(["--watch-metrics", &node.server.url]);
    let output = tokio::task::spawn_blocking(move || command.output().expect("pm bench can be run"))
        .await
        .expect("the bench thread ends");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "pm bench failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("ratio"), "the table puts phases next to ceilings: {stdout}");

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("--json wrote its file")).expect("JSON");
    assert_eq!(report["setup"]["personas_registered"], 2);
    positive(&report, "/setup/request_bytes");

    let ingest = &report["ingest"];
    assert_eq!(ingest["accepted"], 40, "every valid envelope is accepted: {ingest:#}");
    assert_eq!(ingest["stored"], 40, "every accepted envelope becomes readable: {ingest:#}");
    assert_eq!(ingest["lost"], 0);
    assert!(ingest["refused"].as_object().is_some_and(|r| r.is_empty()), "nothing refused: {ingest:#}");
    for pointer in ["/ingest/accepted_per_sec", "/ingest/stored_per_sec", "/ingest/latency/p50_ms"] {
        positive(&report, pointer);
    }

    let queries = report["queries"].as_array().expect("queries is a list");
    let names: Vec<&str> = queries.iter().filter_map(|q| q["name"].as_str()).collect();
    assert_eq!(names, ["messageByHash", "persona(address)", "messageBySender(limit: 100)"]);
    for i in 0..queries.len() {
        positive(&report, &format!("/queries/{i}/ops"));
        positive(&report, &format!("/queries/{i}/per_sec"));
        positive(&report, &format!("/queries/{i}/latency/p50_ms"));
        assert!(queries[i]["failures"].as_object().is_some_and(|f| f.is_empty()), "no query failed: {queries:#?}");
    }

    for pointer in ["/ceilings/transport/per_sec", "/ceilings/signed_timestamp/per_sec", "/ceilings/ed25519/per_sec"] {
        positive(&report, pointer);
    }
    let backends = report["ceilings"]["backends"].as_array().expect("backends is a list");
    let backend_names: Vec<&str> = backends.iter().filter_map(|b| b["backend"].as_str()).collect();
    assert_eq!(backend_names, ["redb"], "the embedded default measures redb only");
    assert!(backends[0]["error"].is_null(), "redb was measured: {backends:#?}");
    let paths = backends[0]["paths"].as_array().expect("paths is a list");
    let roles: Vec<&str> = paths.iter().filter_map(|p| p["role"].as_str()).collect();
    assert_eq!(roles, ["reference", "write", "read"]);
    for i in 0..paths.len() {
        positive(&report, &format!("/ceilings/backends/0/paths/{i}/per_sec"));
    }

    let ratios = report["ratios"].as_array().expect("ratios is a list");
    let phases: Vec<&str> = ratios.iter().filter_map(|r| r["phase"].as_str()).collect();
    for phase in ["accepted/s", "stored/s", "messageByHash", "persona(address)", "messageBySender(limit: 100)"] {
        assert!(phases.contains(&phase), "{phase} has a ratio: {phases:?}");
    }
    for i in 0..ratios.len() {
        positive(&report, &format!("/ratios/{i}/ratio"));
    }

    let memory = report["memory"].as_array().expect("memory is a list");
    assert_eq!(memory.len(), 1);
    assert_eq!(memory[0]["pid"], node.server.pid().as_raw());
    positive(&report, "/memory/0/peak_rss_kib");
    positive(&report, "/memory/0/ingest_cpu_seconds");

    // --watch-metrics read pm serve's /metrics: it sends nothing to a server.
    let calls = report["backend_calls"].as_array().expect("backend_calls is a list");
    assert!(calls.is_empty(), "the embedded file takes no HBase or Elasticsearch request: {calls:#?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).lines().all(|line| !line.contains("cannot read")),
        "/metrics answered"
    );
}
