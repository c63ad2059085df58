//! Telemetry: one `tracing` subscriber on stderr, filtered by `RUST_LOG` or
//! the configured level, and one metrics recorder. Values go in fields;
//! keys and secrets are never logged.
//!
//! Two log formats (`log_format`, `PM_LOG_FORMAT`): `text` for people,
//! coloured only when stderr is a terminal, so a log file never holds ANSI
//! escapes; and `json`, one JSON object per line for log shippers.
//!
//! The recorder is installed here, once per process, by the server
//! commands; the role crates only record (each names its metrics in its own
//! `metrics` module) and every role's HTTP server renders it at `/metrics`
//! (`pm_http::metrics`).

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use serde::{Deserialize, Serialize};
use std::io::IsTerminal;
use std::time::Duration;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line per event for people; colour on a terminal only.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields`, spans.
    Json,
}

pub fn init(default_level: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second init (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).try_init(),
    };
}

/// Bucket bounds of every `*_seconds` histogram: 0.5 ms to 10 s.
const SECONDS_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Bucket bounds of the writer's batch size (its default maximum is 256).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];
/// How often histogram samples are folded in between scrapes, which keeps
/// their memory bounded when nobody scrapes.
const UPKEEP: Duration = Duration::from_secs(5);

/// Installs the Prometheus recorder for this process and hands its renderer
/// to `/metrics`. Must run inside the Tokio runtime (it spawns the upkeep)
/// and before the roles are built, so that their series start at zero.
pub fn init_metrics() -> anyhow::Result<()> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(pm_writer::metrics::BATCH_SIZE.into()), BATCH_BUCKETS)?
        .install_recorder()?;
    let render = handle.clone();
    pm_http::metrics::set_renderer(move || render.render());
    // Runs for the life of the process, as the recorder does.
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(UPKEEP);
        loop {
            ticks.tick().await;
            handle.run_upkeep();
        }
    });
    Ok(())
}
