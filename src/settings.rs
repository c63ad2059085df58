//! Configuration, loaded once at start-up: defaults < config file
//! (`--config FILE`, TOML) < the earlier deployment's environment names
//! (`BROKER_URL`, `HBASE_HOSTNAME`, `HBASE_PORT`, `ES_URL`, `READER_HOSTNAME`,
//! `READER_PORT`, `AUTHORIZER_ENDPOINT_HOSTNAME`, `AUTHORIZER_ENDPOINT_PORT`,
//! `PORT`) < environment (`PM_` prefix, `__` between sections, e.g.
//! `PM_AUTHORIZER__MAX_AGE_SECS`) < command-line flags. Validation fails
//! with one line naming the bad setting.

use crate::telemetry::LogFormat;
use anyhow::{anyhow, Context};
use config::{Config, Environment, File, FileFormat};
use pm_authorizer::AuthorizerSettings;
use pm_backends::settings::{BackendChoice, ElasticSettings, HBaseSettings, RabbitMqSettings};
use pm_backends::BackendSettings;
use pm_http::{BodyLimits, RemoteSettings};
use pm_teleferic::GatewaySettings;
use pm_writer::WriterSettings;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Every setting of every role. Each section is the owning crate's type,
/// with its defaults written there once; the top-level ones are here.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct Settings {
    /// Directory of the database file and the node key.
    pub data_dir: PathBuf,
    /// Address the role's HTTP server listens on.
    pub listen: String,
    /// The public URL of the GraphQL endpoint, where GraphiQL sends its
    /// queries when the gateway sits behind a proxy (default `/teleferic`).
    pub public_url: Option<String>,
    /// Default log filter when `RUST_LOG` is unset.
    pub log: String,
    /// `text` (default; colour only on a terminal) or `json` (one object per line).
    pub log_format: LogFormat,
    /// The node key file; default `DATA_DIR/node.key`.
    pub node_key: Option<PathBuf>,
    pub authorizer: AuthorizerSettings,
    /// Request body limits, applied by every role's HTTP server.
    pub gateway: BodyLimits,
    pub writer: WriterSettings,
    pub backends: BackendChoice,
    pub rabbitmq: RabbitMqSettings,
    pub hbase: HBaseSettings,
    pub elasticsearch: ElasticSettings,
    pub roles: RemoteSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            listen: "127.0.0.1:8000".to_owned(),
            public_url: None,
            log: "info".to_owned(),
            log_format: LogFormat::Text,
            node_key: None,
            authorizer: AuthorizerSettings::default(),
            gateway: BodyLimits::default(),
            writer: WriterSettings::default(),
            backends: BackendChoice::default(),
            rabbitmq: RabbitMqSettings::default(),
            hbase: HBaseSettings::default(),
            elasticsearch: ElasticSettings::default(),
            roles: RemoteSettings::default(),
        }
    }
}

/// Settings given on the command line, which win over every other source.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
}

/// The earlier deployment's environment names, as settings. Naming a
/// server also selects its backend, as it did there.
fn legacy_environment(env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Config> {
    let mut legacy = Config::builder();
    if let Some(url) = env("BROKER_URL") {
        legacy = legacy.set_override("rabbitmq.url", url)?.set_override("backends.queue", "rabbitmq")?;
    }
    if let Some(host) = env("HBASE_HOSTNAME") {
        legacy = legacy.set_override("hbase.host", host)?.set_override("backends.store", "hbase")?;
    }
    if let Some(port) = env("HBASE_PORT") {
        legacy = legacy.set_override("hbase.port", port)?;
    }
    if let Some(url) = env("ES_URL") {
        legacy = legacy.set_override("elasticsearch.url", url)?.set_override("backends.index", "elasticsearch")?;
    }
    for (host, port, key) in [
        ("READER_HOSTNAME", "READER_PORT", "roles.reader_url"),
        ("AUTHORIZER_ENDPOINT_HOSTNAME", "AUTHORIZER_ENDPOINT_PORT", "roles.authorizer_url"),
    ] {
        if let Some(host) = env(host) {
            let url = match env(port) {
                Some(port) => format!("http://{host}:{port}"),
                None => format!("http://{host}"),
            };
            legacy = legacy.set_override(key, url)?;
        }
    }
    if let Some(port) = env("PORT") {
        legacy = legacy.set_override("listen", format!("0.0.0.0:{port}"))?;
    }
    Ok(legacy.build()?)
}

impl Settings {
    pub fn load(config_file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let mut builder = Config::builder();
        if let Some(path) = config_file {
            builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
        }
        let process_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        builder = builder.add_source(legacy_environment(&process_env)?);
        builder = builder.add_source(Environment::with_prefix("PM").prefix_separator("_").separator("__"));
        if let Some(dir) = &overrides.data_dir {
            builder = builder.set_override("data_dir", dir.display().to_string())?;
        }
        if let Some(listen) = &overrides.listen {
            builder = builder.set_override("listen", listen.as_str())?;
        }
        let settings: Settings =
            builder.build().and_then(Config::try_deserialize).map_err(|e| anyhow!("invalid configuration: {e}"))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.listen_addr()?;
        let positive = self.authorizer.positive_limits().into_iter().chain([
            ("gateway.max_request_bytes", self.gateway.max_request_bytes),
            ("gateway.body_timeout_ms", self.gateway.body_timeout_ms as usize),
            ("writer.concurrency", self.writer.concurrency),
        ]);
        for (name, value) in positive {
            if value == 0 {
                return Err(anyhow!("invalid configuration: setting `{name}` must be at least 1"));
            }
        }
        for (name, url) in
            [("roles.authorizer_url", &self.roles.authorizer_url), ("roles.reader_url", &self.roles.reader_url)]
        {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(anyhow!("invalid configuration: setting `{name}` must be an http(s) URL, got {url:?}"));
            }
        }
        if let Some(url) = &self.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(anyhow!("invalid configuration: setting `public_url` must be an http(s) URL, got {url:?}"));
            }
        }
        Ok(())
    }

    /// The effective settings as TOML, secrets masked (`pm config`).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("settings always serialize to TOML")
    }

    pub fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listen
            .parse()
            .with_context(|| format!("invalid configuration: setting `listen` is not an address: {:?}", self.listen))
    }

    pub fn node_key_path(&self) -> PathBuf {
        self.node_key.clone().unwrap_or_else(|| self.data_dir.join("node.key"))
    }

    /// What the backends' resolver needs.
    pub fn backend_settings(&self) -> BackendSettings {
        BackendSettings {
            backends: self.backends,
            rabbitmq: self.rabbitmq.clone(),
            hbase: self.hbase.clone(),
            elasticsearch: self.elasticsearch.clone(),
        }
    }

    pub fn gateway(&self) -> GatewaySettings {
        GatewaySettings { limits: self.gateway, public_url: self.public_url.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_match_the_contract() {
        let s = Settings::load(None, &Overrides::default()).unwrap();
        assert_eq!(s.listen, "127.0.0.1:8000");
        assert_eq!(s.authorizer, AuthorizerSettings::default());
        assert_eq!(s.gateway.max_request_bytes, 4 << 20);
        assert_eq!(s.backends, BackendChoice::default());
    }

    #[test]
    fn a_config_file_overrides_defaults_and_flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pm.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\n[authorizer]\nmax_age_secs = 60\n").unwrap();
        let s = Settings::load(Some(&path), &Overrides::default()).unwrap();
        assert_eq!(s.listen, "127.0.0.1:9000");
        assert_eq!(s.authorizer.max_age_secs, 60);
        let flags = Overrides { listen: Some("127.0.0.1:9001".into()), ..Default::default() };
        assert_eq!(Settings::load(Some(&path), &flags).unwrap().listen, "127.0.0.1:9001");
    }

    #[test]
    fn the_earlier_deployments_environment_names_select_and_locate_the_servers() {
        let vars: std::collections::HashMap<&str, &str> = [
            ("BROKER_URL", "amqp://rabbit:5672/%2f"),
            ("HBASE_HOSTNAME", "hbase"),
            ("HBASE_PORT", "9091"),
            ("ES_URL", "http://es:9200"),
            ("READER_HOSTNAME", "reader"),
            ("READER_PORT", "8002"),
            ("AUTHORIZER_ENDPOINT_HOSTNAME", "authorizer"),
            ("AUTHORIZER_ENDPOINT_PORT", "8001"),
            ("PORT", "8080"),
        ]
        .into();
        let env = |name: &str| vars.get(name).map(|v| v.to_string());
        let s: Settings =
            Config::builder().add_source(legacy_environment(&env).unwrap()).build().unwrap().try_deserialize().unwrap();
        use pm_backends::settings::{IndexBackend, QueueBackend, StoreBackend};
        use secrecy::ExposeSecret;
        assert_eq!(s.backends.queue, QueueBackend::Rabbitmq);
        assert_eq!(s.backends.store, StoreBackend::Hbase);
        assert_eq!(s.backends.index, IndexBackend::Elasticsearch);
        assert_eq!(s.rabbitmq.url.expose_secret(), "amqp://rabbit:5672/%2f");
        assert_eq!((s.hbase.host.as_str(), s.hbase.port), ("hbase", 9091));
        assert_eq!(s.elasticsearch.url, "http://es:9200");
        assert_eq!(s.roles.reader_url, "http://reader:8002");
        assert_eq!(s.roles.authorizer_url, "http://authorizer:8001");
        assert_eq!(s.listen, "0.0.0.0:8080");
    }

    #[test]
    fn the_log_format_is_text_unless_the_config_says_json() {
        assert_eq!(Settings::load(None, &Overrides::default()).unwrap().log_format, LogFormat::Text);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pm.toml");
        std::fs::write(&path, "log_format = \"json\"\n").unwrap();
        assert_eq!(Settings::load(Some(&path), &Overrides::default()).unwrap().log_format, LogFormat::Json);
        std::fs::write(&path, "log_format = \"xml\"\n").unwrap();
        let error = Settings::load(Some(&path), &Overrides::default()).unwrap_err().to_string();
        assert!(error.contains("xml"), "{error}");
    }

    #[test]
    fn a_bad_setting_is_named_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pm.toml");
        std::fs::write(&path, "listen = \"not an address\"\n").unwrap();
        let error = Settings::load(Some(&path), &Overrides::default()).unwrap_err().to_string();
        assert!(error.contains("`listen`"), "{error}");
        assert!(!error.contains('\n'), "{error}");
        std::fs::write(&path, "[authorizer]\nmax_age_secs = \"soon\"\n").unwrap();
        let error = Settings::load(Some(&path), &Overrides::default()).unwrap_err().to_string();
        assert!(error.contains("max_age_secs"), "{error}");
    }
}
