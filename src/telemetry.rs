//! Logging: one `tracing` subscriber on stderr, filtered by `RUST_LOG` or the
//! configured level. Values go in fields; keys and secrets are never logged.

use tracing_subscriber::EnvFilter;

pub fn init(default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
