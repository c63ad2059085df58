//! What `pm bench` measured: the figures of every phase (serialized as the
//! `--json` file) and the table printed at the end, where each phase stands
//! next to the ceiling that bounds it, as a ratio.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Latency percentiles of the answered requests, in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// From a histogram of microseconds.
    pub fn of(micros: &Histogram<u64>) -> Self {
        if micros.is_empty() {
            return Self::default();
        }
        let ms = |value: u64| value as f64 / 1000.0;
        Self {
            p50_ms: ms(micros.value_at_quantile(0.50)),
            p99_ms: ms(micros.value_at_quantile(0.99)),
            max_ms: ms(micros.max()),
        }
    }
}

/// A histogram of latencies in microseconds, from 1 µs to 10 minutes.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("these histogram bounds are valid")
}

/// Operations per second, zero when nothing was timed.
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// A closed loop of requests: how many were answered, how fast, how soon.
#[derive(Clone, Debug, Serialize)]
pub struct Throughput {
    pub name: String,
    /// Requests answered with data.
    pub ops: u64,
    /// Requests answered with an error or not at all, by code.
    pub failures: BTreeMap<String, u64>,
    pub seconds: f64,
    pub per_sec: f64,
    pub latency: Latency,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunSettings {
    pub url: String,
    pub personas: usize,
    pub messages: usize,
    pub concurrency: usize,
}

/// The untimed setup: registrations and signing.
#[derive(Clone, Debug, Serialize)]
pub struct SetupFigures {
    pub personas_registered: usize,
    pub registration_seconds: f64,
    /// Time spent signing envelopes before the first send (later rounds'
    /// signing is in `ingest.paused_seconds`).
    pub signing_seconds: f64,
    /// Mean size of a `sendMessage` request body.
    pub request_bytes: usize,
}

/// The timed ingest: accepted as answered, then stored as readable.
#[derive(Clone, Debug, Serialize)]
pub struct IngestFigures {
    pub sent: u64,
    pub accepted: u64,
    /// Refusals and failed requests, by code.
    pub refused: BTreeMap<String, u64>,
    /// Time spent sending (signing pauses between rounds excluded).
    pub seconds: f64,
    pub accepted_per_sec: f64,
    /// Accept latency of the accepted envelopes.
    pub latency: Latency,
    /// Accepted envelopes found readable with `messageByHash`.
    pub stored: u64,
    /// Accepted envelopes still unreadable at the deadline.
    pub lost: u64,
    /// From the first send until the last accepted envelope was readable,
    /// signing pauses excluded.
    pub stored_seconds: f64,
    pub stored_per_sec: f64,
    /// How often the signed timestamp `T` was fetched again mid-run.
    pub timestamp_refreshes: u32,
    /// Spent re-signing between rounds, while the node went on storing.
    pub paused_seconds: f64,
}

/// One raw path of a backend, measured without any service logic.
#[derive(Clone, Debug, Serialize)]
pub struct RawPath {
    pub name: String,
    pub role: PathRole,
    pub records: u64,
    pub seconds: f64,
    pub per_sec: f64,
    /// For lookups: per-call latency.
    pub latency: Option<Latency>,
}

impl RawPath {
    /// `records` done in `elapsed`, without latencies.
    pub fn throughput(name: &str, role: PathRole, records: u64, elapsed: Duration) -> Self {
        Self {
            name: name.to_owned(),
            role,
            records,
            seconds: elapsed.as_secs_f64(),
            per_sec: per_second(records, elapsed),
            latency: None,
        }
    }
}

/// What a raw path bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathRole {
    /// A write path the ingest goes through: the slowest one is the
    /// ceiling of stored/s.
    Write,
    /// A lookup by key: next to the query phase.
    Read,
    /// Shown for reference only.
    Reference,
}

/// The raw paths of one configured backend, or why they could not be measured.
#[derive(Clone, Debug, Serialize)]
pub struct BackendFigures {
    pub backend: String,
    pub paths: Vec<RawPath>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Ed25519Figures {
    pub payload_bytes: usize,
    pub verifications: u64,
    pub seconds: f64,
    /// `verify_strict` per second on one core.
    pub per_sec: f64,
}

/// Signatures the node verifies per private envelope with one container:
/// `messageSign` and `containerSign` (the content's own signature is inside
/// the encrypted message).
pub const VERIFICATIONS_PER_ENVELOPE: f64 = 2.0;

#[derive(Clone, Debug, Serialize)]
pub struct CeilingFigures {
    /// `{ __typename }` at the bench's concurrency.
    pub transport: Throughput,
    /// `{ teleferic { signedTimestamp } }` at the bench's concurrency.
    pub signed_timestamp: Throughput,
    pub ed25519: Ed25519Figures,
    pub backends: Vec<BackendFigures>,
}

impl CeilingFigures {
    /// The slowest write path of every measured backend.
    pub fn slowest_write(&self) -> Option<(String, f64)> {
        self.backends
            .iter()
            .flat_map(|b| b.paths.iter().map(move |p| (b, p)))
            .filter(|(_, path)| path.role == PathRole::Write && path.per_sec > 0.0)
            .map(|(backend, path)| (format!("{} {}", backend.backend, path.name), path.per_sec))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// The record store's lookup by key (the first backend with one).
    pub fn store_get(&self) -> Option<(String, &RawPath)> {
        self.backends.iter().find_map(|b| {
            b.paths.iter().find(|p| p.role == PathRole::Read).map(|p| (format!("{} {}", b.backend, p.name), p))
        })
    }
}

/// Peak memory, and CPU during the ingest, of one watched process.
#[derive(Clone, Debug, Serialize)]
pub struct ProcessMemory {
    pub pid: u32,
    pub command: String,
    /// `VmHWM` when the run began.
    pub peak_rss_at_start_kib: Option<u64>,
    /// The highest `VmHWM` seen during the run.
    pub peak_rss_kib: Option<u64>,
    /// `VmRSS` at the last sample.
    pub rss_at_end_kib: Option<u64>,
    /// False when the process was gone at the end.
    pub alive_at_end: bool,
    /// CPU time (user and system) from the first send until the last
    /// accepted envelope was readable.
    pub ingest_cpu_seconds: Option<f64>,
}

/// Requests of one kind sent to a backend's server during the ingest, by
/// every process watched with `--watch-metrics`.
#[derive(Clone, Debug, Serialize)]
pub struct BackendCalls {
    pub backend: String,
    pub call: String,
    pub calls: u64,
    /// `calls` divided by the envelopes stored.
    pub per_envelope: f64,
}

/// One phase divided by the ceiling that bounds it.
#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    pub phase: String,
    pub phase_per_sec: f64,
    pub ceiling: String,
    pub ceiling_per_sec: f64,
    pub ratio: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub settings: RunSettings,
    pub setup: SetupFigures,
    pub ingest: IngestFigures,
    pub queries: Vec<Throughput>,
    pub ceilings: Option<CeilingFigures>,
    pub ratios: Vec<Ratio>,
    pub memory: Vec<ProcessMemory>,
    /// Empty without `--watch-metrics` (or when no backend call moved).
    pub backend_calls: Vec<BackendCalls>,
    pub notes: Vec<String>,
}

/// Every phase next to the ceilings that bound it.
pub fn ratios(ingest: &IngestFigures, queries: &[Throughput], ceilings: &CeilingFigures) -> Vec<Ratio> {
    let mut ratios = Vec::new();
    let mut push = |phase: &str, phase_per_sec: f64, ceiling: String, ceiling_per_sec: f64| {
        if ceiling_per_sec > 0.0 {
            ratios.push(Ratio {
                phase: phase.to_owned(),
                phase_per_sec,
                ceiling,
                ceiling_per_sec,
                ratio: phase_per_sec / ceiling_per_sec,
            });
        }
    };
    let transport = ("transport { __typename }".to_owned(), ceilings.transport.per_sec);
    let ed25519_envelopes = ceilings.ed25519.per_sec / VERIFICATIONS_PER_ENVELOPE;
    push("accepted/s", ingest.accepted_per_sec, transport.0.clone(), transport.1);
    push("accepted/s", ingest.accepted_per_sec, "ed25519, 2 verifications an envelope".to_owned(), ed25519_envelopes);
    if let Some((name, per_sec)) = ceilings.slowest_write() {
        push("stored/s", ingest.stored_per_sec, format!("slowest raw write: {name}"), per_sec);
    }
    push("stored/s", ingest.stored_per_sec, transport.0.clone(), transport.1);
    let store_get = ceilings.store_get();
    for query in queries {
        push(&query.name, query.per_sec, transport.0.clone(), transport.1);
        if let Some((name, get)) = &store_get {
            push(&query.name, query.per_sec, format!("raw {name}"), get.per_sec);
        }
    }
    ratios
}

fn ms(value: f64) -> String {
    format!("{value:.3}")
}

fn rate(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// The table printed at the end of a run.
pub fn table(report: &BenchReport) -> String {
    let mut out = String::new();
    let s = &report.settings;
    let _ = writeln!(
        out,
        "pm bench against {}: {} personas, {} messages, concurrency {}",
        s.url, s.personas, s.messages, s.concurrency
    );
    let setup = &report.setup;
    let _ = writeln!(
        out,
        "setup (not timed): {} personas registered in {:.1} s; envelopes signed in {:.1} s, {} bytes a request",
        setup.personas_registered, setup.registration_seconds, setup.signing_seconds, setup.request_bytes
    );
    let _ = writeln!(out);
    let _ =
        writeln!(out, "{:<38} {:>8} {:>10} {:>8} {:>8} {:>8}", "phase", "count", "per s", "p50 ms", "p99 ms", "max ms");
    let i = &report.ingest;
    phase_row(&mut out, "ingest: accepted", i.accepted, i.accepted_per_sec, Some(&i.latency));
    phase_row(&mut out, "ingest: stored (until last readable)", i.stored, i.stored_per_sec, None);
    for q in &report.queries {
        phase_row(&mut out, &format!("query: {}", q.name), q.ops, q.per_sec, Some(&q.latency));
    }
    if !i.refused.is_empty() {
        let _ = writeln!(out, "refused or failed sends: {}", codes(&i.refused));
    }
    if i.lost > 0 {
        let _ = writeln!(out, "LOST: {} accepted envelopes never became readable", i.lost);
    }
    for q in report.queries.iter().filter(|q| !q.failures.is_empty()) {
        let _ = writeln!(out, "failed {}: {}", q.name, codes(&q.failures));
    }

    if let Some(c) = &report.ceilings {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<52} {:>8} {:>10} {:>8} {:>8}",
            "ceiling (same run)", "count", "per s", "p50 ms", "p99 ms"
        );
        for t in [&c.transport, &c.signed_timestamp] {
            let latency = (ms(t.latency.p50_ms), ms(t.latency.p99_ms));
            ceiling_row(&mut out, &format!("gateway {}", t.name), t.ops, t.per_sec, latency);
        }
        let e = &c.ed25519;
        let _ = writeln!(
            out,
            "{:<52} {:>8} {:>10}",
            format!("ed25519 verify_strict, {} B, one core", e.payload_bytes),
            e.verifications,
            rate(e.per_sec)
        );
        for backend in &c.backends {
            if let Some(error) = &backend.error {
                let _ = writeln!(out, "{:<52} not measured: {error}", backend.backend);
            }
            for p in &backend.paths {
                let latency = p.latency.map(|l| (ms(l.p50_ms), ms(l.p99_ms))).unwrap_or_default();
                ceiling_row(&mut out, &format!("{} {}", backend.backend, p.name), p.records, p.per_sec, latency);
            }
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "{:<30} {:>10}   {:<66} {:>10} {:>7}", "phase", "per s", "ceiling", "per s", "ratio");
        for r in &report.ratios {
            let (phase, ceiling, ratio) = (&r.phase, &r.ceiling, r.ratio);
            let (phase_rate, ceiling_rate) = (rate(r.phase_per_sec), rate(r.ceiling_per_sec));
            let _ = writeln!(out, "{phase:<30} {phase_rate:>10}   {ceiling:<66} {ceiling_rate:>10} {ratio:>7.3}");
        }
        if let Some((name, get)) = c.store_get() {
            if let Some(latency) = get.latency {
                let _ = writeln!(
                    out,
                    "raw {name}: p50 {} ms, p99 {} ms (queries above: p50/p99 through the whole service)",
                    ms(latency.p50_ms),
                    ms(latency.p99_ms)
                );
            }
        }
    }

    if !report.memory.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<8} {:>14} {:>14} {:>12} {:>16}  command",
            "pid", "peak RSS start", "peak RSS end", "RSS end", "ingest CPU/env"
        );
        let kib = |v: Option<u64>| v.map(|v| format!("{:.1} MiB", v as f64 / 1024.0)).unwrap_or_else(|| "-".into());
        let stored = report.ingest.stored.max(1) as f64;
        for m in &report.memory {
            let (start, peak, end) = (kib(m.peak_rss_at_start_kib), kib(m.peak_rss_kib), kib(m.rss_at_end_kib));
            let cpu = m.ingest_cpu_seconds.map(|s| format!("{:.0} µs", s * 1e6 / stored)).unwrap_or_else(|| "-".into());
            let exited = if m.alive_at_end { "" } else { " (exited)" };
            let command = shown_command(&m.command);
            let _ = writeln!(out, "{:<8} {start:>14} {peak:>14} {end:>12} {cpu:>16}  {command}{exited}", m.pid);
        }
    }
    if !report.backend_calls.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "{:<16} {:<24} {:>10} {:>12}", "backend", "call (ingest)", "calls", "per envelope");
        for c in &report.backend_calls {
            let _ = writeln!(out, "{:<16} {:<24} {:>10} {:>12.3}", c.backend, c.call, c.calls, c.per_envelope);
        }
    }
    for note in &report.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out.lines().map(|line| format!("{}\n", line.trim_end())).collect()
}

/// How much of a watched process's command line the table shows (the JSON
/// report has it whole).
const COMMAND_SHOWN: usize = 120;

/// A command line short enough for the table: a Java server's, which runs to
/// kilobytes of options and class path, as `java` and its main class on.
fn shown_command(command: &str) -> String {
    let words: Vec<&str> = command.split(' ').collect();
    let shown = match words.split_first() {
        Some((program, args)) if program.rsplit('/').next() == Some("java") => {
            let takes_value = ["-cp", "-classpath", "--class-path", "--module-path", "-p", "--add-opens"];
            let mut main = None;
            let mut skip_next = false;
            for (i, arg) in args.iter().enumerate() {
                if std::mem::take(&mut skip_next) {
                    continue;
                }
                if takes_value.contains(arg) {
                    skip_next = true;
                } else if !arg.starts_with('-') {
                    main = Some(i);
                    break;
                }
            }
            main.map(|i| format!("java {}", args[i..].join(" "))).unwrap_or_else(|| command.to_owned())
        }
        _ => command.to_owned(),
    };
    shown.chars().take(COMMAND_SHOWN).collect()
}

/// A row of the phase table: count, rate and, where timed, p50/p99/max.
fn phase_row(out: &mut String, name: &str, count: u64, per_sec: f64, latency: Option<&Latency>) {
    let _ = write!(out, "{name:<38} {count:>8} {:>10}", rate(per_sec));
    if let Some(l) = latency {
        let _ = write!(out, " {:>8} {:>8} {:>8}", ms(l.p50_ms), ms(l.p99_ms), ms(l.max_ms));
    }
    let _ = writeln!(out);
}

/// A row of the ceiling table: count, rate, p50 and p99 (already formatted).
fn ceiling_row(out: &mut String, name: &str, count: u64, per_sec: f64, (p50, p99): (String, String)) {
    let _ = writeln!(out, "{name:<52} {count:>8} {:>10} {p50:>8} {p99:>8}", rate(per_sec));
}

fn codes(counts: &BTreeMap<String, u64>) -> String {
    counts.iter().map(|(code, n)| format!("{code} ×{n}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_java_servers_command_is_shown_from_its_main_class_and_others_as_they_are() {
        let hbase = "/usr/lib/jvm/java-17/bin/java -Xmx1g --add-opens java.base/java.io=ALL-UNNAMED -cp /a.jar:/b.jar \
                     -Dhbase.log.dir=/x org.apache.hadoop.hbase.thrift.ThriftServer start";
        assert_eq!(shown_command(hbase), "java org.apache.hadoop.hbase.thrift.ThriftServer start");
        assert_eq!(shown_command("/tmp/pm serve --data-dir d"), "/tmp/pm serve --data-dir d");
        assert_eq!(shown_command(&"x".repeat(500)).len(), COMMAND_SHOWN);
    }
}
