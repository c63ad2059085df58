//! The ceilings `--ceilings` measures in the same run, with no service
//! logic: the gateway's transport (a trivial query at the bench's
//! concurrency), Ed25519 verification on one core, and the raw path of
//! every configured backend with message-sized records. Each backend works
//! on a throwaway file, queue, table or index under a unique name and
//! removes it afterwards. Every loop is bounded in count and in time.

mod elastic_index;
mod hbase_table;
mod rabbitmq_queue;
mod redb_file;

use super::gateway::{request_body, Gateway};
use super::load::closed_loop;
use super::report::{
    latency_histogram, per_second, BackendFigures, CeilingFigures, Ed25519Figures, Latency, PathRole, RawPath,
    Throughput,
};
use crate::settings::Settings;
use ed25519_dalek::{Signer, SigningKey};
use indicatif::ProgressBar;
use pm_backends::settings::{IndexBackend, QueueBackend, StoreBackend};
use pm_models::client::random_bytes;
use pm_models::codec::b64;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes of a message-sized record.
pub const RECORD_BYTES: usize = 1536;
/// The longest one raw write path runs.
const PHASE_TIME_LIMIT: Duration = Duration::from_secs(15);
/// Lookups by key at most, and their time limit.
const GET_OPS: usize = 5_000;
const GET_TIME_LIMIT: Duration = Duration::from_secs(5);
/// Trivial queries at most, and their time limit.
const TRANSPORT_OPS: usize = 20_000;
const TRANSPORT_TIME_LIMIT: Duration = Duration::from_secs(5);
/// Verifications at most, and their time limit.
const VERIFICATIONS: u64 = 1_000_000;
const VERIFY_TIME_LIMIT: Duration = Duration::from_secs(3);

/// Why a backend's raw path could not be measured.
#[derive(Debug, thiserror::Error)]
#[error("{backend}: {message}")]
pub struct CeilingError {
    pub backend: &'static str,
    pub message: String,
}

/// Random bytes the size of a stored message record.
fn record_payload() -> Vec<u8> {
    (0..RECORD_BYTES).map(|_| rand::random::<u8>()).collect()
}

/// A random key shaped like a `messageHash` (base64 of 32 bytes).
fn record_key() -> String {
    b64(random_bytes::<32>())
}

/// A suffix no other run uses, for throwaway names.
fn unique_suffix() -> String {
    format!("{}_{:08x}", std::process::id(), rand::random::<u32>())
}

/// Measures every ceiling; a backend that fails is reported with its error.
pub async fn measure(
    gateway: &Gateway,
    settings: &Settings,
    concurrency: usize,
    progress: &ProgressBar,
) -> CeilingFigures {
    progress.set_message("ceiling: gateway transport");
    let transport = trivial_query(gateway, "{ __typename }", concurrency).await;
    let signed_timestamp = trivial_query(gateway, "{ teleferic { signedTimestamp } }", concurrency).await;
    progress.set_message("ceiling: ed25519");
    let ed25519 = tokio::task::spawn_blocking(ed25519_verifications).await.expect("verifying never panics");

    let mut backends = Vec::new();
    let backends_of = &settings.backends;
    let uses_redb = backends_of.store == StoreBackend::Embedded
        || backends_of.index == IndexBackend::Embedded
        || backends_of.queue == QueueBackend::Embedded;
    if uses_redb {
        progress.set_message("ceiling: redb");
        let dir = redb_directory(settings);
        let measured = tokio::task::spawn_blocking(move || redb_file::measure(&dir, concurrency))
            .await
            .expect("the redb ceiling never panics");
        backends.push(figures("redb", measured));
    }
    if backends_of.queue == QueueBackend::Rabbitmq {
        progress.set_message("ceiling: rabbitmq");
        backends.push(figures("rabbitmq", rabbitmq_queue::measure(&settings.rabbitmq).await));
    }
    if backends_of.store == StoreBackend::Hbase {
        progress.set_message("ceiling: hbase");
        let section = settings.hbase.clone();
        let measured = tokio::task::spawn_blocking(move || hbase_table::measure(&section, concurrency))
            .await
            .expect("the hbase ceiling never panics");
        backends.push(figures("hbase", measured));
    }
    if backends_of.index == IndexBackend::Elasticsearch {
        progress.set_message("ceiling: elasticsearch");
        backends.push(figures("elasticsearch", elastic_index::measure(&settings.elasticsearch, concurrency).await));
    }
    CeilingFigures { transport, signed_timestamp, ed25519, backends }
}

fn figures(backend: &str, measured: Result<Vec<RawPath>, CeilingError>) -> BackendFigures {
    match measured {
        Ok(paths) => BackendFigures { backend: backend.to_owned(), paths, error: None },
        Err(error) => BackendFigures { backend: backend.to_owned(), paths: Vec::new(), error: Some(error.message) },
    }
}

/// The node's data directory when it exists here (the same disk as the
/// node's database), else the system's temporary directory.
fn redb_directory(settings: &Settings) -> PathBuf {
    if settings.data_dir.is_dir() {
        settings.data_dir.clone()
    } else {
        std::env::temp_dir()
    }
}

/// A closed loop of one trivial query: the gateway's cost per request.
async fn trivial_query(gateway: &Gateway, query: &str, concurrency: usize) -> Throughput {
    let (gateway, body) = (gateway.clone(), Arc::new(request_body(query, &json!({}))));
    let stop_at = Instant::now() + TRANSPORT_TIME_LIMIT;
    let outcome = closed_loop(concurrency, TRANSPORT_OPS, stop_at, &ProgressBar::hidden(), move |_, _| {
        let (gateway, body) = (gateway.clone(), body.clone());
        async move { gateway.post(body.as_ref().clone()).await.map(drop).map_err(|e| e.code()) }
    })
    .await;
    outcome.throughput(query)
}

/// `verify_strict` of one signature over a message-sized payload, in a loop
/// on this thread.
fn ed25519_verifications() -> Ed25519Figures {
    let key = SigningKey::from_bytes(&random_bytes());
    let payload = record_payload();
    let signature = key.sign(&payload);
    let verifying = key.verifying_key();
    let started = Instant::now();
    let mut verifications = 0u64;
    while verifications < VERIFICATIONS && started.elapsed() < VERIFY_TIME_LIMIT {
        for _ in 0..256 {
            verifying.verify_strict(&payload, &signature).expect("a signature made here verifies");
        }
        verifications += 256;
    }
    let elapsed = started.elapsed();
    Ed25519Figures {
        payload_bytes: payload.len(),
        verifications,
        seconds: elapsed.as_secs_f64(),
        per_sec: per_second(verifications, elapsed),
    }
}

/// Looks up `keys` on `concurrency` threads, each with its own handle from
/// `open`, at most [`GET_OPS`] in all and for at most [`GET_TIME_LIMIT`].
/// `get` answers whether the key was found; a written key that is not found
/// is an error.
fn threaded_gets<H>(
    name: &str,
    keys: &[String],
    concurrency: usize,
    open: impl Fn() -> Result<H, CeilingError> + Sync,
    get: impl Fn(&mut H, &str) -> Result<bool, CeilingError> + Sync,
) -> Result<RawPath, CeilingError> {
    let Some(first_key) = keys.first() else {
        return Err(CeilingError { backend: "lookup", message: format!("{name}: nothing was written to look up") });
    };
    let threads = concurrency.max(1);
    let per_thread = GET_OPS.div_ceil(threads);
    let started = Instant::now();
    let (open, get) = (&open, &get);
    let logs: Vec<Result<(u64, hdrhistogram::Histogram<u64>), CeilingError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|thread| {
                scope.spawn(move || {
                    let mut handle = open()?;
                    let mut latency = latency_histogram();
                    let mut done = 0u64;
                    for n in 0..per_thread {
                        if started.elapsed() > GET_TIME_LIMIT {
                            break;
                        }
                        // Spread the lookups over the keys written.
                        let key = keys.get((thread * per_thread + n) * 7919 % keys.len()).unwrap_or(first_key);
                        let began = Instant::now();
                        if !get(&mut handle, key)? {
                            return Err(CeilingError {
                                backend: "lookup",
                                message: format!("{name}: {key} was written but is not found"),
                            });
                        }
                        latency.saturating_record(began.elapsed().as_micros().max(1) as u64);
                        done += 1;
                    }
                    Ok((done, latency))
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("a lookup thread never panics")).collect()
    });
    let elapsed = started.elapsed();
    let mut latency = latency_histogram();
    let mut done = 0;
    for log in logs {
        let (n, histogram) = log?;
        done += n;
        latency.add(&histogram).expect("histograms of the same bounds add up");
    }
    let mut path = RawPath::throughput(name, PathRole::Read, done, elapsed);
    path.latency = Some(Latency::of(&latency));
    Ok(path)
}
