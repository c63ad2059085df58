//! Configuration, loaded once at start-up: defaults < config file
//! (`--config FILE`, TOML) < environment (`PM_` prefix, `__` between
//! sections, e.g. `PM_AUTHORIZER__MAX_AGE_SECS`) < command-line flags.
//! Validation fails with one line naming the bad setting.

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
    /// The gateway URL clients are told (invitations' `bootstrapNode`).
    pub public_url: Option<String>,
    /// Default log filter when `RUST_LOG` is unset.
    pub log: String,
    pub authorizer: AuthorizerSection,
    pub gateway: GatewaySection,
    pub writer: WriterSection,
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
"#;

impl Settings {
    pub fn load(config_file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(path) = config_file {
            builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
        }
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
        ] {
            if value == 0 {
                return Err(anyhow!("invalid configuration: setting `{name}` must be at least 1"));
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
        self.data_dir.join("node.key")
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
