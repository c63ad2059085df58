//! Where the roles find each other when they run as separate processes
//! (the `[roles]` section of the configuration).

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteSettings {
    pub authorizer_url: String,
    pub reader_url: String,
    /// The longest an internal call may take, connecting included.
    pub request_timeout_ms: u64,
}

impl Default for RemoteSettings {
    fn default() -> Self {
        Self {
            authorizer_url: "http://127.0.0.1:8001".to_owned(),
            reader_url: "http://127.0.0.1:8002".to_owned(),
            request_timeout_ms: 10_000,
        }
    }
}

impl RemoteSettings {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}
