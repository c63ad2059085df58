//! `GET /metrics` on every process of a node: the Prometheus text format,
//! and the series of the README's table move as envelopes are accepted,
//! refused and written. Once on `pm serve` over the embedded backend, once
//! on the distributed deployment (every role its own process, each scraped
//! and summed; with the servers unreachable and `PM_REQUIRE_SERVICES` unset
//! it runs on the embedded backend, as the distributed suite does).

#[path = "common/mod.rs"]
mod common;

/// Nodes come from the helpers named in each test, not from `spawn_node`.
pub const DISTRIBUTED: bool = false;

use common::{envelopes, spawn_deployment, spawn_embedded_node, Server, TestNode};
use serde_json::json;
use std::time::{Duration, Instant};

/// How long a written message may take to show in the writer's counters.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The scrapes of every process of a node at one moment.
struct Scrape(Vec<String>);

impl Scrape {
    /// `GET /metrics` on each of `processes`, which must answer 200 in the
    /// Prometheus text format.
    async fn of(http: &reqwest::Client, processes: &[&Server]) -> Scrape {
        let mut texts = Vec::new();
        for process in processes {
            let response = http.get(format!("{}/metrics", process.base)).send().await.expect("/metrics answers");
            assert_eq!(response.status(), 200, "/metrics of {} answers 200", process.base);
            let content_type = response.headers()[reqwest::header::CONTENT_TYPE].to_str().unwrap().to_owned();
            assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8", "the Prometheus text format");
            texts.push(response.text().await.expect("/metrics sends a body"));
        }
        Scrape(texts)
    }

    /// The sum over every process of the samples of `name` whose labels
    /// include each of `labels`; `None` when no process has such a series.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = None;
        for line in
            self.0.iter().flat_map(|text| text.lines()).filter(|line| !line.is_empty() && !line.starts_with('#'))
        {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("a sample has a value: {line}"));
            let (series_name, series_labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}').expect("labels end with }")),
                None => (series, ""),
            };
            let has = |(key, value): &(&str, &str)| {
                series_labels.split(',').any(|pair| {
                    let quoted = pair.strip_prefix(*key).and_then(|rest| rest.strip_prefix('='));
                    quoted.and_then(|q| q.strip_prefix('"')).and_then(|q| q.strip_suffix('"')) == Some(*value)
                })
            };
            let wanted = labels.iter().all(has);
            if series_name == name && wanted {
                let value: f64 = value.parse().unwrap_or_else(|e| panic!("{line}: the value is a number ({e})"));
                *found.get_or_insert(0.0) += value;
            }
        }
        found
    }

    /// Like [`Scrape::sum`], for a series that must be present.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.sum(name, labels).unwrap_or_else(|| panic!("no series {name} {labels:?} in\n{}", self.0.join("\n")))
    }

    /// Every process that declares `name` declares it with this type.
    fn type_of(&self, name: &str) -> Option<&str> {
        let declaration = format!("# TYPE {name} ");
        self.0.iter().flat_map(|text| text.lines()).find_map(|line| line.strip_prefix(declaration.as_str()))
    }
}

/// Every process of `node`: its gateways and, when distributed, its roles.
fn processes(node: &TestNode) -> Vec<&Server> {
    std::iter::once(&node.server).chain(&node.gateways).chain(&node.roles).collect()
}

/// Who stores an accepted envelope.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StoredBy {
    /// The writer, from the queue (the distributed deployment).
    Writer,
    /// The admission itself, in its own transaction (`pm serve` on the
    /// embedded file): the writer takes nothing.
    Admission,
}

/// One accepted assertion, the same envelope again (`DUPLICATE_MESSAGE`,
/// refused by the authorizer) and an input with a null ACL rule
/// (`MALFORMED_ENVELOPE`, refused by the gateway): each counter moves by
/// exactly its envelope, the accept latency histogram by one, and the
/// writer's series once it has written the assertion (when the writer
/// stores it).
async fn envelopes_move_the_metrics(node: &TestNode, stored_by: StoredBy) {
    let all = processes(node);
    let before = Scrape::of(&node.http, &all).await;
    let refused = "pm_authorizer_envelopes_refused_total";
    let duplicate = [("code", "DUPLICATE_MESSAGE")];
    let gateway_malformed = [("code", "MALFORMED_ENVELOPE")];
    let written = [("outcome", "written")];
    // Every series is shown before the first envelope, at zero.
    assert_eq!(before.value("pm_authorizer_envelopes_accepted_total", &[("type", "ASSERTION")]), 0.0);
    assert_eq!(before.value(refused, &duplicate), 0.0);
    assert_eq!(before.value("pm_gateway_envelopes_refused_total", &gateway_malformed), 0.0);
    assert_eq!(before.value("pm_gateway_requests_refused_total", &[("code", "PAYLOAD_TOO_LARGE")]), 0.0);
    assert_eq!(before.value("pm_writer_deliveries_total", &written), 0.0);
    assert_eq!(before.type_of("pm_authorizer_accept_seconds"), Some("histogram"), "a histogram, not a summary");
    assert_eq!(before.type_of("pm_authorizer_envelopes_refused_total"), Some("counter"));

    let t = node.timestamp().await;
    let envelope = envelopes::assertion(&node.genesis, &[node.genesis.public()], vec![], &t);
    node.send(&envelope).await.expect("accepted");
    if stored_by == StoredBy::Admission {
        let found = node.message(&envelope.message_hash).await;
        assert_eq!(found["messageHash"], envelope.message_hash.as_str(), "readable once accepted: {found}");
    }
    node.wait_readable(&envelope.message_hash).await;
    node.send_refused(&envelope, "DUPLICATE_MESSAGE").await;
    let mut input = envelopes::assertion(&node.genesis, &[node.genesis.public()], vec![], &t).to_json_value();
    input["ACL"] = json!([null]);
    assert_eq!(node.send_input(input).await, Err("MALFORMED_ENVELOPE".to_owned()));
    // Two requests refused as a whole, before any resolver: an input without
    // its messageSign (not valid against the schema) and 5 MiB of request.
    let mut input = envelopes::assertion(&node.genesis, &[node.genesis.public()], vec![], &t).to_json_value();
    input.as_object_mut().unwrap().remove("messageSign");
    assert_eq!(node.send_input(input).await, Err("MALFORMED_ENVELOPE".to_owned()));
    let padding = "a".repeat(5 << 20);
    let body = json!({ "query": "{ teleferic { signedTimestamp } }", "variables": { "pad": padding } });
    let response = node.http.post(&node.server.url).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 413);

    // The writer counts a delivery once it settles it, just after the write
    // that made it readable: poll, bounded.
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let writes = match stored_by {
        StoredBy::Writer => 1.0,
        StoredBy::Admission => 0.0,
    };
    let after = loop {
        let scrape = Scrape::of(&node.http, &all).await;
        if scrape.value("pm_writer_deliveries_total", &written) >= writes && scrape.sum("pm_queue_depth", &[]).is_some()
        {
            break scrape;
        }
        assert!(Instant::now() < deadline, "the writer's metrics did not move within {SETTLE_TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let moved =
        |name: &str, labels: &[(&str, &str)]| after.value(name, labels) - before.sum(name, labels).unwrap_or(0.0);

    assert_eq!(moved("pm_authorizer_envelopes_accepted_total", &[("type", "ASSERTION")]), 1.0);
    assert_eq!(moved("pm_authorizer_envelopes_accepted_total", &[]), 1.0, "no other type moved");
    assert_eq!(moved(refused, &duplicate), 1.0, "the refusal carries its code");
    assert_eq!(moved(refused, &[]), 1.0, "no other code moved: the gateway's refusal is not counted twice");
    assert_eq!(moved("pm_gateway_envelopes_refused_total", &gateway_malformed), 1.0);
    let requests = "pm_gateway_requests_refused_total";
    assert_eq!(moved(requests, &[("code", "MALFORMED_ENVELOPE")]), 1.0, "the input without messageSign");
    assert_eq!(moved(requests, &[("code", "PAYLOAD_TOO_LARGE")]), 1.0, "the 5 MiB request");
    assert_eq!(moved(requests, &[]), 2.0, "nothing else was refused as a whole");
    assert_eq!(moved("pm_authorizer_accept_seconds_count", &[]), 1.0, "one accept latency sample");
    assert!(moved("pm_authorizer_accept_seconds_sum", &[]) > 0.0);
    assert_eq!(
        after.value("pm_authorizer_accept_seconds_bucket", &[("le", "+Inf")]),
        after.value("pm_authorizer_accept_seconds_count", &[])
    );

    assert_eq!(moved("pm_writer_deliveries_total", &[("outcome", "dead_lettered")]), 0.0);
    assert_eq!(before.type_of("pm_writer_unsettled"), Some("gauge"));
    if stored_by == StoredBy::Admission {
        assert_eq!(moved("pm_writer_deliveries_total", &written), 0.0, "the admission stored it, not the writer");
        assert_eq!(moved("pm_writer_batch_size_count", &[]), 0.0, "nothing was queued");
        assert_eq!(after.value("pm_queue_depth", &[("queue", "writer")]), 0.0);
        return;
    }
    assert_eq!(moved("pm_writer_deliveries_total", &written), 1.0, "the assertion, written once");
    assert_eq!(moved("pm_writer_batch_size_count", &[]), 1.0, "one batch taken");
    assert_eq!(moved("pm_writer_batch_size_sum", &[]), 1.0, "of one delivery");
    assert_eq!(moved("pm_writer_lag_seconds_count", &[]), 1.0);
    assert!(moved("pm_writer_write_seconds_count", &[]) >= 1.0);
    assert!(moved("pm_writer_store_seconds_count", &[]) >= 1.0);
    assert_eq!(after.value("pm_writer_unsettled", &[]), 0.0, "the one delivery taken is settled");
    assert!(after.value("pm_queue_depth", &[("queue", "writer")]) >= 0.0);
    assert!(after.value("pm_queue_depth", &[("queue", "dead")]) >= 0.0);
}

#[tokio::test]
async fn metrics_of_pm_serve_move_with_accepted_refused_and_stored_envelopes() {
    let node = spawn_embedded_node().await;
    envelopes_move_the_metrics(&node, StoredBy::Admission).await;
    let scrape = Scrape::of(&node.http, &processes(&node)).await;
    assert_eq!(scrape.value("pm_backend_reconnects_total", &[("backend", "embedded")]), 0.0, "shown once used");
    assert_eq!(scrape.sum("pm_backend_errors_total", &[]), None, "no backend call failed");
}

#[tokio::test]
async fn metrics_of_every_distributed_role_move_and_sum_to_the_same_counts() {
    let Some(node) = spawn_deployment().await else {
        envelopes_move_the_metrics(&spawn_embedded_node().await, StoredBy::Admission).await;
        return;
    };
    envelopes_move_the_metrics(&node, StoredBy::Writer).await;
    let scrape = Scrape::of(&node.http, &processes(&node)).await;
    assert!(scrape.value("pm_writer_index_seconds_count", &[]) >= 1.0, "Elasticsearch indexed the batch");
    for backend in ["rabbitmq", "hbase", "elasticsearch"] {
        assert!(scrape.sum("pm_backend_reconnects_total", &[("backend", backend)]).is_some(), "{backend} is shown");
    }
    let calls = |backend, call| scrape.sum("pm_backend_calls_total", &[("backend", backend), ("call", call)]);
    assert!(calls("hbase", "checkAndPut") >= Some(1.0), "the authorizer claimed the envelope's hash");
    assert!(calls("hbase", "mutateRows") >= Some(1.0), "the pending record and the message row were put");
    assert!(calls("elasticsearch", "bulk index") >= Some(1.0), "the writer indexed it");
    assert_eq!(scrape.sum("pm_backend_calls_total", &[("backend", "embedded")]), None, "no embedded calls counted");
}
