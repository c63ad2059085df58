//! What the internal clients share: one HTTP client setup, and the refusal
//! a service that cannot be reached becomes.

use pm_models::{Rejection, RejectionCode};
use std::time::Duration;

/// `UNAVAILABLE` for the client; the cause goes to the log only.
pub(crate) fn unreachable_service(service: &str, error: impl std::fmt::Display) -> Rejection {
    tracing::warn!(%error, service, "internal service unreachable");
    Rejection::new(RejectionCode::Unavailable, format!("the {service} is unavailable; retry later"))
}

/// `GET {base}/readyz` answers 2xx.
pub(crate) async fn check_ready(http: &reqwest::Client, base: &str, service: &str) -> Result<(), Rejection> {
    let response = http.get(format!("{base}/readyz")).send().await.map_err(|e| unreachable_service(service, e))?;
    match response.status().is_success() {
        true => Ok(()),
        false => Err(unreachable_service(service, format!("readyz answered {}", response.status()))),
    }
}

pub(crate) fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder().timeout(timeout).build().expect("an HTTP client with rustls builds")
}
