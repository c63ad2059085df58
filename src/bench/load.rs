//! The timed phases against the gateway: the ingest (accepted, then stored
//! until the last accepted envelope is readable) and the queries, each a
//! closed loop of `concurrency` workers over keep-alive HTTP.

use super::gateway::{request_body, Gateway, MESSAGE_BY_HASH};
use super::memory::MemoryWatch;
use super::report::{latency_histogram, per_second, IngestFigures, Latency, Throughput};
use super::setup::{sign_assertions, signed_timestamp, Cast, SignedEnvelope};
use super::BenchError;
use crate::client::{ENVELOPE_FIELDS, PERSONA_FIELDS};
use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long after fetching a `T` envelopes signed with it are still sent.
/// The node accepts a `T` up to `authorizer.max_age_secs` old (420 s by
/// default); the rest is margin for a slow answer.
pub const T_USABLE_FOR: Duration = Duration::from_secs(300);
/// Envelopes signed with one `T` at most (bounds the memory they take).
pub const ROUND_MAX: usize = 20_000;
/// How long after the last send the accepted envelopes may take to be readable.
const STORED_TIMEOUT: Duration = Duration::from_secs(300);
/// Hashes asked for in one round of the wait for stored envelopes, the
/// oldest unread first: the round's size starts at the smallest, doubles
/// while every hash asked for is found and falls back to the smallest when
/// one is not, and a round that leaves one unread is followed by
/// [`POLL_PAUSE`]. So a node that is still storing is asked about a few of
/// its oldest envelopes a few dozen times a second, rather than about
/// hundreds without a pause, which took CPU from the storing it measures.
const POLL_WINDOW: std::ops::RangeInclusive<usize> = 16..=1024;
const POLL_PAUSE: Duration = Duration::from_millis(20);
/// Time limit of each query kind.
const QUERY_TIME_LIMIT: Duration = Duration::from_secs(20);

/// What a closed loop did.
pub struct LoopOutcome {
    /// Numbers of the operations that succeeded.
    pub succeeded: Vec<usize>,
    /// Operations started (the first `attempted` numbers).
    pub attempted: usize,
    pub failures: BTreeMap<String, u64>,
    /// Latency of the successful operations, in microseconds.
    pub latency: Histogram<u64>,
    pub elapsed: Duration,
}

impl LoopOutcome {
    pub fn throughput(&self, name: &str) -> Throughput {
        Throughput {
            name: name.to_owned(),
            ops: self.succeeded.len() as u64,
            failures: self.failures.clone(),
            seconds: self.elapsed.as_secs_f64(),
            per_sec: per_second(self.succeeded.len() as u64, self.elapsed),
            latency: Latency::of(&self.latency),
        }
    }
}

struct WorkerLog {
    succeeded: Vec<usize>,
    failures: BTreeMap<String, u64>,
    latency: Histogram<u64>,
}

/// Runs operations `0..ops` on `concurrency` workers, each starting its next
/// operation when its previous one is answered, until all are done or
/// `stop_at` passes. `op(worker, i)` returns `Err(code)` on failure.
pub async fn closed_loop<F, Fut>(
    concurrency: usize,
    ops: usize,
    stop_at: Instant,
    progress: &ProgressBar,
    op: F,
) -> LoopOutcome
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|worker| {
            let (op, next, progress) = (op.clone(), next.clone(), progress.clone());
            tokio::spawn(async move {
                let mut log =
                    WorkerLog { succeeded: Vec::new(), failures: BTreeMap::new(), latency: latency_histogram() };
                while Instant::now() < stop_at {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= ops {
                        break;
                    }
                    let began = Instant::now();
                    match op(worker, i).await {
                        Ok(()) => {
                            log.latency.saturating_record(began.elapsed().as_micros().max(1) as u64);
                            log.succeeded.push(i);
                        }
                        Err(code) => *log.failures.entry(code).or_default() += 1,
                    }
                    progress.inc(1);
                }
                log
            })
        })
        .collect();
    let mut outcome = LoopOutcome {
        succeeded: Vec::new(),
        attempted: 0,
        failures: BTreeMap::new(),
        latency: latency_histogram(),
        elapsed: Duration::ZERO,
    };
    for worker in workers {
        let log = worker.await.expect("a bench worker never panics");
        outcome.succeeded.extend(log.succeeded);
        for (code, n) in log.failures {
            *outcome.failures.entry(code).or_default() += n;
        }
        outcome.latency.add(&log.latency).expect("histograms of the same bounds add up");
    }
    outcome.elapsed = started.elapsed();
    outcome.attempted = next.load(Ordering::Relaxed).min(ops);
    outcome.succeeded.sort_unstable();
    outcome
}

/// What the ingest left for the query phase and the report.
pub struct Ingested {
    pub figures: IngestFigures,
    /// Hashes of the accepted envelopes.
    pub accepted: Vec<String>,
    /// Signing before the first send.
    pub first_signing: Duration,
    pub request_bytes: usize,
    /// The watched processes' CPU time at the first send (signing the
    /// first round is the client's own work, done while the node idles).
    pub cpu_at_first_send: Vec<Option<f64>>,
}

/// Signs and sends `messages` assertions, then waits until every accepted
/// one is readable. Envelopes are signed in rounds of at most [`ROUND_MAX`]
/// with a fresh `T` each; a round also ends when its `T` has been used for
/// [`T_USABLE_FOR`], and what it did not send is signed again.
pub async fn ingest(
    gateway: &Gateway,
    cast: Arc<Cast>,
    messages: usize,
    concurrency: usize,
    progress: &ProgressBar,
    memory: &MemoryWatch,
) -> Result<Ingested, BenchError> {
    let mut accepted: Vec<String> = Vec::with_capacity(messages);
    let mut refused: BTreeMap<String, u64> = BTreeMap::new();
    let mut latency = latency_histogram();
    let (mut sending, mut paused, mut first_signing) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut sent, mut rounds, mut request_bytes) = (0usize, 0u32, 0usize);
    let mut first_send: Option<Instant> = None;
    let mut cpu_at_first_send = Vec::new();
    while sent < messages {
        let signing_began = Instant::now();
        let t = signed_timestamp(gateway).await?;
        let t_fetched = Instant::now();
        let range = sent..(sent + ROUND_MAX).min(messages);
        let signer_cast = cast.clone();
        let envelopes: Arc<Vec<SignedEnvelope>> = Arc::new(
            tokio::task::spawn_blocking(move || sign_assertions(&signer_cast, range, &t))
                .await
                .expect("signing never panics"),
        );
        if first_send.is_none() {
            first_signing = signing_began.elapsed();
            request_bytes = envelopes.iter().map(|e| e.body.len()).sum::<usize>() / envelopes.len().max(1);
            progress.set_message("ingest: sending");
            cpu_at_first_send = memory.cpu_now();
            first_send = Some(Instant::now());
        } else {
            paused += signing_began.elapsed();
        }
        let (round_gateway, round_envelopes) = (gateway.clone(), envelopes.clone());
        let outcome = closed_loop(concurrency, envelopes.len(), t_fetched + T_USABLE_FOR, progress, move |_, i| {
            let (gateway, envelopes) = (round_gateway.clone(), round_envelopes.clone());
            async move { gateway.post(envelopes[i].body.clone()).await.map(drop).map_err(|e| e.code()) }
        })
        .await;
        if outcome.attempted == 0 {
            return Err(BenchError::TimestampTooShort { usable: T_USABLE_FOR });
        }
        accepted.extend(outcome.succeeded.iter().map(|&i| envelopes[i].hash.clone()));
        for (code, n) in outcome.failures {
            *refused.entry(code).or_default() += n;
        }
        latency.add(&outcome.latency).expect("histograms of the same bounds add up");
        sending += outcome.elapsed;
        sent += outcome.attempted;
        rounds += 1;
    }
    let first_send = first_send.unwrap_or_else(Instant::now);

    progress.set_message("ingest: waiting until readable");
    progress.set_length(accepted.len() as u64);
    progress.set_position(0);
    let (stored, last_readable) = wait_stored(gateway, &accepted, concurrency, progress).await;
    let stored_elapsed = last_readable.saturating_duration_since(first_send).saturating_sub(paused);
    let figures = IngestFigures {
        sent: sent as u64,
        accepted: accepted.len() as u64,
        refused,
        seconds: sending.as_secs_f64(),
        accepted_per_sec: per_second(accepted.len() as u64, sending),
        latency: Latency::of(&latency),
        stored: stored as u64,
        lost: (accepted.len() - stored) as u64,
        stored_seconds: stored_elapsed.as_secs_f64(),
        stored_per_sec: per_second(stored as u64, stored_elapsed),
        timestamp_refreshes: rounds.saturating_sub(1),
        paused_seconds: paused.as_secs_f64(),
    };
    Ok(Ingested { figures, accepted, first_signing, request_bytes, cpu_at_first_send })
}

/// Polls `messageByHash` until every hash is readable or [`STORED_TIMEOUT`]
/// passes; returns how many became readable and when the last of them was
/// first seen.
///
/// To load the node as little as possible while it is still storing, each
/// round asks only for the oldest unread hashes (see [`POLL_WINDOW`], in
/// batched queries); the run is not over while any of them is unread. At
/// the deadline, one last sweep over everything still pending tells late
/// arrivals from the lost.
async fn wait_stored(
    gateway: &Gateway,
    hashes: &[String],
    concurrency: usize,
    progress: &ProgressBar,
) -> (usize, Instant) {
    let deadline = Instant::now() + STORED_TIMEOUT;
    let mut pending: Vec<String> = hashes.to_vec();
    let mut last_seen = Instant::now();
    let mut window = *POLL_WINDOW.start();
    while !pending.is_empty() && Instant::now() < deadline {
        let asked = &pending[..pending.len().min(window)];
        let found: HashSet<String> = gateway.readable(&MESSAGE_BY_HASH, asked, concurrency).await;
        let all_found = found.len() == asked.len();
        if !found.is_empty() {
            last_seen = Instant::now();
            progress.inc(found.len() as u64);
            pending.retain(|hash| !found.contains(hash));
        }
        if all_found {
            window = (window * 2).min(*POLL_WINDOW.end());
        } else {
            window = *POLL_WINDOW.start();
            tokio::time::sleep(POLL_PAUSE).await;
        }
    }
    if !pending.is_empty() {
        let found = gateway.readable(&MESSAGE_BY_HASH, &pending, concurrency).await;
        if !found.is_empty() {
            last_seen = Instant::now();
        }
        pending.retain(|hash| !found.contains(hash));
    }
    (hashes.len() - pending.len(), last_seen)
}

/// One kind of query of the query phase.
struct QueryKind {
    name: &'static str,
    /// The field whose `null` (or absence) counts as `NOT_FOUND`.
    field: &'static str,
    /// Request bodies, used in turn.
    bodies: Vec<Vec<u8>>,
    ops: usize,
}

/// `messageByHash`, `persona(address:)` and `messageBySender(limit: 100)`,
/// each a closed loop at `concurrency`.
pub async fn queries(
    gateway: &Gateway,
    accepted: &[String],
    senders: &[String],
    concurrency: usize,
    progress: &ProgressBar,
) -> Vec<Throughput> {
    let ops = accepted.len().clamp(200, 2_000);
    let by_hash = format!("query($h: SHA256!) {{ messageByHash(messageHash: $h) {{ {ENVELOPE_FIELDS} }} }}");
    let persona = format!("query($a: Address) {{ persona(address: $a) {{ {PERSONA_FIELDS} }} }}");
    let by_sender =
        format!("query($s: Address!) {{ messageBySender(sender: $s, limit: 100) {{ {ENVELOPE_FIELDS} }} }}");
    let kinds = [
        QueryKind {
            name: "messageByHash",
            field: "messageByHash",
            bodies: accepted.iter().map(|h| request_body(&by_hash, &json!({ "h": h }))).collect(),
            ops,
        },
        QueryKind {
            name: "persona(address)",
            field: "persona",
            bodies: senders.iter().map(|a| request_body(&persona, &json!({ "a": a }))).collect(),
            ops,
        },
        QueryKind {
            name: "messageBySender(limit: 100)",
            field: "messageBySender",
            bodies: senders.iter().map(|s| request_body(&by_sender, &json!({ "s": s }))).collect(),
            ops: (ops / 4).max(50),
        },
    ];
    let mut results = Vec::new();
    for kind in kinds {
        if kind.bodies.is_empty() {
            continue;
        }
        progress.set_message(format!("query: {}", kind.name));
        progress.set_length(kind.ops as u64);
        progress.set_position(0);
        let (gateway, bodies, field) = (gateway.clone(), Arc::new(kind.bodies), kind.field);
        let outcome = closed_loop(concurrency, kind.ops, Instant::now() + QUERY_TIME_LIMIT, progress, move |_, i| {
            let (gateway, bodies) = (gateway.clone(), bodies.clone());
            async move {
                let data = gateway.post(bodies[i % bodies.len()].clone()).await.map_err(|e| e.code())?;
                if data[field].is_null() {
                    return Err("NOT_FOUND".to_owned());
                }
                Ok(())
            }
        })
        .await;
        results.push(outcome.throughput(kind.name));
    }
    results
}
