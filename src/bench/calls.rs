//! The backend requests each envelope cost during the ingest: the counter
//! `pm_backend_calls_total` read off the `/metrics` of every process named
//! by `--watch-metrics`, just before the first send and once the last
//! accepted envelope is readable, summed over the processes and divided by
//! the envelopes stored. What the servers spend per envelope follows from
//! it: one HBase `checkAndPut` per envelope is one write-ahead-log append
//! there, where a `mutateRows` of many is one for all.

use super::report::BackendCalls;
use pm_backends::metrics::CALLS as COUNTER;
use std::collections::BTreeMap;
use std::time::Duration;

const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests counted so far, by (backend, call).
pub type Counts = BTreeMap<(String, String), f64>;

/// Scrapes the `/metrics` of the watched processes.
pub struct CallWatch {
    http: reqwest::Client,
    urls: Vec<String>,
}

impl CallWatch {
    /// `bases` are the processes' base URLs (`http://host:port`); a
    /// `/metrics` or `/teleferic` ending is accepted too.
    pub fn new(bases: &[String]) -> Self {
        let urls = bases
            .iter()
            .map(|base| {
                let base = base.trim_end_matches('/');
                let base = base.strip_suffix("/metrics").or_else(|| base.strip_suffix("/teleferic")).unwrap_or(base);
                format!("{base}/metrics")
            })
            .collect();
        Self { http: reqwest::Client::builder().timeout(SCRAPE_TIMEOUT).build().unwrap_or_default(), urls }
    }

    /// The counts summed over every process; `None` when there is none to
    /// watch. A process that does not answer counts for nothing (and
    /// says so on stderr): the figure is a diagnosis, not a result.
    pub async fn scrape(&self) -> Option<Counts> {
        if self.urls.is_empty() {
            return None;
        }
        let mut total = Counts::new();
        for url in &self.urls {
            let text = match self.http.get(url).send().await.and_then(reqwest::Response::error_for_status) {
                Ok(response) => response.text().await.unwrap_or_default(),
                Err(error) => {
                    eprintln!("bench: cannot read {url}: {error}");
                    continue;
                }
            };
            for (key, value) in counts_in(&text) {
                *total.entry(key).or_default() += value;
            }
        }
        Some(total)
    }
}

/// The `pm_backend_calls_total` samples of one exposition text.
fn counts_in(text: &str) -> Counts {
    let mut counts = Counts::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(COUNTER).and_then(|rest| rest.strip_prefix('{')) else { continue };
        let Some((labels, value)) = rest.rsplit_once('}') else { continue };
        let Ok(value) = value.trim().parse::<f64>() else { continue };
        let label = |name: &str| {
            labels.split(',').find_map(|pair| pair.strip_prefix(name)?.strip_prefix("=\"")?.strip_suffix('"'))
        };
        if let (Some(backend), Some(call)) = (label("backend"), label("call")) {
            *counts.entry((backend.to_owned(), call.to_owned())).or_default() += value;
        }
    }
    counts
}

/// The calls made between the two scrapes, each per envelope stored, most
/// per envelope first.
pub fn per_envelope(before: &Counts, after: &Counts, stored: u64) -> Vec<BackendCalls> {
    let mut calls: Vec<BackendCalls> = after
        .iter()
        .map(|((backend, call), &count)| {
            (backend, call, count - before.get(&(backend.clone(), call.clone())).unwrap_or(&0.0))
        })
        .filter(|&(_, _, made)| made > 0.0)
        .map(|(backend, call, made)| BackendCalls {
            backend: backend.clone(),
            call: call.clone(),
            calls: made as u64,
            per_envelope: made / stored.max(1) as f64,
        })
        .collect();
    calls.sort_by(|a, b| b.per_envelope.total_cmp(&a.per_envelope).then_with(|| a.call.cmp(&b.call)));
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "# TYPE pm_backend_calls_total counter\n\
        pm_backend_calls_total{backend=\"hbase\",call=\"checkAndPut\"} 10\n\
        pm_backend_calls_total{backend=\"hbase\",call=\"getRows\"} 4\n\
        pm_backend_errors_total{backend=\"hbase\",kind=\"timeout\"} 1\n";
    const AFTER_A: &str = "pm_backend_calls_total{backend=\"hbase\",call=\"checkAndPut\"} 110\n\
        pm_backend_calls_total{backend=\"hbase\",call=\"getRows\"} 4\n\
        pm_backend_calls_total{backend=\"elasticsearch\",call=\"bulk index\"} 5\n";
    const AFTER_B: &str = "pm_backend_calls_total{backend=\"hbase\",call=\"checkAndPut\"} 100\n";

    #[test]
    fn only_the_calls_counter_is_read_with_its_labels() {
        let counts = counts_in(BEFORE);
        assert_eq!(counts.len(), 2, "{counts:?}");
        assert_eq!(counts[&("hbase".to_owned(), "checkAndPut".to_owned())], 10.0);
    }

    #[test]
    fn calls_between_scrapes_are_summed_over_processes_and_divided_by_envelopes() {
        let before = counts_in(BEFORE);
        let mut after = counts_in(AFTER_A);
        for (key, value) in counts_in(AFTER_B) {
            *after.entry(key).or_default() += value;
        }
        let calls = per_envelope(&before, &after, 100);
        let shown: Vec<(&str, &str, u64, f64)> =
            calls.iter().map(|c| (c.backend.as_str(), c.call.as_str(), c.calls, c.per_envelope)).collect();
        // getRows did not move between the scrapes, so it is left out.
        assert_eq!(shown, [("hbase", "checkAndPut", 200, 2.0), ("elasticsearch", "bulk index", 5, 0.05)]);
    }

    #[test]
    fn a_base_url_a_gateway_url_or_a_metrics_url_all_name_the_same_page() {
        let watch = CallWatch::new(&[
            "http://127.0.0.1:1".to_owned(),
            "http://127.0.0.1:2/teleferic".to_owned(),
            "http://127.0.0.1:3/metrics".to_owned(),
        ]);
        assert_eq!(
            watch.urls,
            ["http://127.0.0.1:1/metrics", "http://127.0.0.1:2/metrics", "http://127.0.0.1:3/metrics"]
        );
    }
}
