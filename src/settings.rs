//! Configuration, loaded once at start-up: defaults < config file
//! (`--config FILE`, TOML) < the earlier deployment's environment names
//! (`BROKER_URL`, `HBASE_HOSTNAME`, `HBASE_PORT`, `ES_URL`, `READER_HOSTNAME`,
//! `READER_PORT`, `AUTHORIZER_ENDPOINT_HOSTNAME`, `AUTHORIZER_ENDPOINT_PORT`,
//! `PORT`) < environment (`PM_` prefix, `__` between sections, e.g.
//! `PM_AUTHORIZER__MAX_AGE_SECS`) < command-line flags. Validation fails
//! with one line naming the bad setting.

use anyhow::{anyhow, Context};
use config::{Config, Environment, File, FileFormat};
use pm_authorizer::{AuthorizerSettings, Limits};
use pm_models::signed_timestamp::Freshness;
use pm_teleferic::GatewaySettings;
use pm_writer::WriterSettings;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Debug, Deserialize)]
pub struct Settings {
    /// Directory of the database file and the node key.
    pub data_dir: PathBuf,
    /// Address the gateway listens on.
    pub listen: String,
    /// The public URL of the GraphQL endpoint, where GraphiQL sends its
    /// queries when the gateway sits behind a proxy (default `/teleferic`).
    pub public_url: Option<String>,
    /// Default log filter when `RUST_LOG` is unset.
    pub log: String,
    /// The node key file; default `DATA_DIR/node.key`.
    pub node_key: Option<PathBuf>,
    pub authorizer: AuthorizerSection,
    pub gateway: GatewaySection,
    pub writer: WriterSection,
    pub backends: BackendsSection,
    pub rabbitmq: RabbitMqSection,
    pub hbase: HBaseSection,
    pub elasticsearch: ElasticSection,
    pub roles: RolesSection,
}

/// Which backend each seam uses: `embedded` (default) or the named server.
#[derive(Clone, Debug, Deserialize)]
pub struct BackendsSection {
    pub store: StoreKind,
    pub index: IndexKind,
    pub queue: QueueKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Embedded,
    Hbase,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexKind {
    Embedded,
    Elasticsearch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueKind {
    Embedded,
    Rabbitmq,
}

#[derive(Clone, Debug, Deserialize)]
pub struct RabbitMqSection {
    pub url: String,
    /// `quorum` (default) or `classic`.
    pub queue_type: String,
    pub prefetch: u16,
    /// Put before every exchange and queue name (tests, shared brokers).
    pub prefix: String,
    pub publish_timeout_ms: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct HBaseSection {
    pub host: String,
    pub port: u16,
    pub table_prefix: String,
    pub pool_size: u32,
    pub timeout_ms: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ElasticSection {
    pub url: String,
    pub index_prefix: String,
    pub timeout_ms: u64,
}

/// Where the roles find each other when they run as separate processes.
#[derive(Clone, Debug, Deserialize)]
pub struct RolesSection {
    pub authorizer_url: String,
    pub reader_url: String,
    pub request_timeout_ms: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct AuthorizerSection {
    pub max_age_secs: u64,
    pub max_skew_secs: u64,
    pub max_message_bytes: usize,
    pub max_container_bytes: usize,
    pub max_acl_rules: usize,
    pub max_objects: usize,
    pub max_meta_hashes: usize,
}

#[derive(Clone, Debug, Deserialize)]
pub struct GatewaySection {
    pub max_request_bytes: usize,
}

#[derive(Clone, Debug, Deserialize)]
pub struct WriterSection {
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub concurrency: usize,
}

/// Settings given on the command line, which win over every other source.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
}

const DEFAULTS: &str = r#"
data_dir = "./data"
listen = "127.0.0.1:8000"
log = "info"

[authorizer]
max_age_secs = 420
max_skew_secs = 30
max_message_bytes = 1048576
max_container_bytes = 1048576
max_acl_rules = 256
max_objects = 64
max_meta_hashes = 64

[gateway]
max_request_bytes = 4194304

[writer]
max_attempts = 5
initial_backoff_ms = 100
max_backoff_ms = 5000
concurrency = 32

[backends]
store = "embedded"
index = "embedded"
queue = "embedded"

[rabbitmq]
url = "amqp://guest:guest@127.0.0.1:5672/%2f"
queue_type = "quorum"
prefetch = 200
prefix = ""
publish_timeout_ms = 5000

[hbase]
host = "127.0.0.1"
port = 9090
table_prefix = ""
pool_size = 8
timeout_ms = 5000

[elasticsearch]
url = "http://127.0.0.1:9200"
index_prefix = ""
timeout_ms = 10000

[roles]
authorizer_url = "http://127.0.0.1:8001"
reader_url = "http://127.0.0.1:8002"
request_timeout_ms = 10000
"#;

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
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
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
        let a = &self.authorizer;
        for (name, value) in [
            ("authorizer.max_message_bytes", a.max_message_bytes),
            ("authorizer.max_container_bytes", a.max_container_bytes),
            ("authorizer.max_acl_rules", a.max_acl_rules),
            ("authorizer.max_objects", a.max_objects),
            ("authorizer.max_meta_hashes", a.max_meta_hashes),
            ("gateway.max_request_bytes", self.gateway.max_request_bytes),
            ("writer.max_attempts", self.writer.max_attempts as usize),
            ("writer.concurrency", self.writer.concurrency),
        ] {
            if value == 0 {
                return Err(anyhow!("invalid configuration: setting `{name}` must be at least 1"));
            }
        }
        match self.rabbitmq.queue_type.as_str() {
            "quorum" | "classic" => {}
            other => {
                return Err(anyhow!(
                    "invalid configuration: setting `rabbitmq.queue_type` must be quorum or classic, got {other:?}"
                ))
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

    pub fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listen
            .parse()
            .with_context(|| format!("invalid configuration: setting `listen` is not an address: {:?}", self.listen))
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("ledger.redb")
    }

    pub fn node_key_path(&self) -> PathBuf {
        self.node_key.clone().unwrap_or_else(|| self.data_dir.join("node.key"))
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.roles.request_timeout_ms)
    }

    pub fn authorizer(&self) -> AuthorizerSettings {
        let a = &self.authorizer;
        AuthorizerSettings {
            freshness: Freshness {
                max_age: Duration::from_secs(a.max_age_secs),
                max_skew: Duration::from_secs(a.max_skew_secs),
            },
            limits: Limits {
                max_message_bytes: a.max_message_bytes,
                max_container_bytes: a.max_container_bytes,
                max_acl_rules: a.max_acl_rules,
                max_objects: a.max_objects,
                max_meta_hashes: a.max_meta_hashes,
            },
        }
    }

    pub fn gateway(&self) -> GatewaySettings {
        GatewaySettings { max_request_bytes: self.gateway.max_request_bytes, public_url: self.public_url.clone() }
    }

    pub fn writer(&self) -> WriterSettings {
        WriterSettings {
            max_attempts: self.writer.max_attempts,
            initial_backoff: Duration::from_millis(self.writer.initial_backoff_ms),
            max_backoff: Duration::from_millis(self.writer.max_backoff_ms),
            concurrency: self.writer.concurrency,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_match_the_contract() {
        let s = Settings::load(None, &Overrides::default()).unwrap();
        assert_eq!(s.listen, "127.0.0.1:8000");
        assert_eq!(s.authorizer().freshness, Freshness::default());
        assert_eq!(s.authorizer().limits, Limits::default());
        assert_eq!(s.gateway.max_request_bytes, 4 << 20);
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
        let s: Settings = Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .add_source(legacy_environment(&env).unwrap())
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        assert_eq!(s.backends.queue, QueueKind::Rabbitmq);
        assert_eq!(s.backends.store, StoreKind::Hbase);
        assert_eq!(s.backends.index, IndexKind::Elasticsearch);
        assert_eq!(s.rabbitmq.url, "amqp://rabbit:5672/%2f");
        assert_eq!((s.hbase.host.as_str(), s.hbase.port), ("hbase", 9091));
        assert_eq!(s.elasticsearch.url, "http://es:9200");
        assert_eq!(s.roles.reader_url, "http://reader:8002");
        assert_eq!(s.roles.authorizer_url, "http://authorizer:8001");
        assert_eq!(s.listen, "0.0.0.0:8080");
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
