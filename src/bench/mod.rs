//! `pm bench`: a load test any user can point at a running gateway.
//!
//! 1. **Setup, not timed.** Genesis invites the bench personas through real
//!    invitations and they register; then every envelope is signed
//!    beforehand: private assertions readable by two personas, each with an
//!    object and its container, against one node timestamp `T`.
//! 2. **Ingest.** `concurrency` workers send them over keep-alive HTTP:
//!    accepted/s, accept latency and refusals by code; then stored/s, from
//!    the first send until the last accepted envelope is readable.
//! 3. **Queries** at the same concurrency: `messageByHash`,
//!    `persona(address:)`, `messageBySender(limit: 100)`.
//! 4. **Ceilings** (`--ceilings`), in the same run: the gateway's transport,
//!    Ed25519 on one core, and the raw path of every configured backend.
//!
//! The report prints each phase next to its ceiling as a ratio; `--json`
//! writes every figure. Nothing here asserts a figure: it measures.

mod calls;
mod ceilings;
mod gateway;
mod load;
mod memory;
pub mod report;
mod setup;

use crate::key_file::{self, KeyFileError};
use gateway::{Gateway, GatewayError};
use indicatif::{ProgressBar, ProgressStyle};
use report::{BenchReport, RunSettings, SetupFigures};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::settings::Settings;

/// What to run, from the command line.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// The gateways' GraphQL endpoints (one or more of the same node),
    /// asked in turn.
    pub urls: Vec<String>,
    pub genesis_key: PathBuf,
    pub personas: usize,
    pub messages: usize,
    pub concurrency: usize,
    /// Backend settings for `--ceilings`; `None` skips the ceilings.
    pub ceilings: Option<Settings>,
    pub watch_pids: Vec<u32>,
    /// Processes whose `/metrics` give the backend calls of the ingest.
    pub watch_metrics: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot read the genesis key {path}: {source}")]
    GenesisKey { path: PathBuf, source: KeyFileError },
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error("setup: {what} was refused: {source}")]
    SetupRefused { what: &'static str, source: GatewayError },
    #[error("setup: {missing} {what} not readable within {timeout:?}")]
    NotReadable { what: &'static str, missing: usize, timeout: Duration },
    #[error("no envelope could be sent within {usable:?} of fetching its signed timestamp")]
    TimestampTooShort { usable: Duration },
}

/// Runs every phase and returns the figures.
pub async fn run(options: BenchOptions) -> Result<BenchReport, BenchError> {
    let memory = memory::MemoryWatch::start(&options.watch_pids);
    let calls = calls::CallWatch::new(&options.watch_metrics);
    let genesis = key_file::load(&options.genesis_key)
        .map_err(|source| BenchError::GenesisKey { path: options.genesis_key.clone(), source })?;
    let concurrency = options.concurrency.max(1);
    let gateway = Gateway::new(&options.urls, concurrency);

    let progress = spinner(&format!("setup: registering {} personas", options.personas));
    let registration_began = Instant::now();
    let cast = Arc::new(setup::register_personas(&gateway, genesis, options.personas.max(1)).await?);
    let registration_seconds = registration_began.elapsed().as_secs_f64();
    progress.finish_and_clear();

    let progress = bar(options.messages, "ingest: signing");
    let calls_before_ingest = calls.scrape().await;
    let ingested = load::ingest(&gateway, cast.clone(), options.messages, concurrency, &progress, &memory).await?;
    memory.ingest_ended(&ingested.cpu_at_first_send);
    let backend_calls = match (calls_before_ingest, calls.scrape().await) {
        (Some(before), Some(after)) => calls::per_envelope(&before, &after, ingested.figures.stored),
        _ => Vec::new(),
    };
    progress.finish_and_clear();

    let progress = bar(0, "queries");
    let queries = load::queries(&gateway, &ingested.accepted, &cast.addresses(), concurrency, &progress).await;
    progress.finish_and_clear();

    let ceilings = match &options.ceilings {
        Some(settings) => {
            let progress = spinner("ceilings");
            let figures = ceilings::measure(&gateway, settings, concurrency, &progress).await;
            progress.finish_and_clear();
            Some(figures)
        }
        None => None,
    };

    let mut notes = Vec::new();
    let refreshes = ingested.figures.timestamp_refreshes;
    if refreshes > 0 {
        notes.push(format!(
            "envelopes were signed in {} rounds, each against a fresh T (a round holds at most {} envelopes and \
             sends for at most {} s after fetching its T); the {:.1} s spent signing between rounds is left out of \
             accepted/s and stored/s, though the node went on storing meanwhile",
            refreshes + 1,
            load::ROUND_MAX,
            load::T_USABLE_FOR.as_secs(),
            ingested.figures.paused_seconds
        ));
    }
    let ratios = ceilings.as_ref().map(|c| report::ratios(&ingested.figures, &queries, c)).unwrap_or_default();
    Ok(BenchReport {
        settings: RunSettings {
            url: options.urls.join(" "),
            personas: cast.personas.len(),
            messages: options.messages,
            concurrency,
        },
        setup: SetupFigures {
            personas_registered: cast.personas.len(),
            registration_seconds,
            signing_seconds: ingested.first_signing.as_secs_f64(),
            request_bytes: ingested.request_bytes,
        },
        ingest: ingested.figures,
        queries,
        ceilings,
        ratios,
        memory: memory.finish().await,
        backend_calls,
        notes,
    })
}

fn spinner(message: &str) -> ProgressBar {
    let progress = ProgressBar::new_spinner().with_message(message.to_owned());
    progress.enable_steady_tick(Duration::from_millis(120));
    progress
}

fn bar(length: usize, message: &str) -> ProgressBar {
    let style = ProgressStyle::with_template("{spinner} {msg:34} [{bar:30}] {pos}/{len} {per_sec} {elapsed}")
        .expect("the progress template is valid")
        .progress_chars("=> ");
    ProgressBar::new(length as u64).with_style(style).with_message(message.to_owned())
}
