//! Logging: one `tracing` subscriber on stderr, filtered by `RUST_LOG` or the
//! configured level. Values go in fields; keys and secrets are never logged.
//!
//! Two formats (`log_format`, `PM_LOG_FORMAT`): `text` for people, coloured
//! only when stderr is a terminal, so a log file never holds ANSI escapes;
//! and `json`, one JSON object per line for log shippers.

use serde::{Deserialize, Serialize};
use std::io::IsTerminal;
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
