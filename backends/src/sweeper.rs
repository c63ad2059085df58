//! The sweeper: resolves the pending admissions an [`OutboxAdmission`]
//! leaves behind when an authorizer crashes mid-admission or the broker does
//! not confirm a publish (PROTOCOL.md section 8). Every authorizer runs one;
//! they may act on the same record at once, since every step is idempotent.
//!
//! A pending admission older than the grace period (longer than any
//! admission takes) is resolved so that, within the grace period and one
//! sweep interval, either the envelope is stored or every claim it took is
//! free again:
//! - its message is stored: it only needs forgetting;
//! - every one of its claims is held by its message: it was admitted (the
//!   client may or may not have heard so) and is published again; the
//!   writer stores a message once however often it is delivered;
//! - otherwise its claiming never completed: the claims it holds are given
//!   back.
//!
//! [`OutboxAdmission`]: crate::OutboxAdmission

use crate::{BackendError, ClaimStore, PendingAdmission, Queue, RecordStore};
use pm_models::time::Micros;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Pending records looked at per sweep, at most.
const SWEEP_BATCH: usize = 256;

pub struct Sweeper {
    pub claims: Arc<dyn ClaimStore>,
    pub queue: Arc<dyn Queue>,
    pub store: Arc<dyn RecordStore>,
    /// Records younger than this are admissions still under way.
    pub grace: Duration,
    /// The wait between sweeps.
    pub interval: Duration,
}

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Already stored: forgotten.
    pub stored: usize,
    /// Fully claimed: published again.
    pub republished: usize,
    /// Never fully claimed: claims given back.
    pub released: usize,
    /// Could not be resolved this time (a backend is down): tried again later.
    pub failed: usize,
}

impl Sweeper {
    /// Sweeps every `interval` until `shutdown` resolves.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
            match self.sweep(Micros::now()).await {
                Ok(report) if report == SweepReport::default() => {}
                Ok(report) => tracing::info!(?report, "swept pending admissions"),
                Err(error) => tracing::warn!(%error, "cannot sweep pending admissions now"),
            }
        }
    }

    /// Resolves the pending admissions older than the grace period at `now`.
    pub async fn sweep(&self, now: Micros) -> Result<SweepReport, BackendError> {
        let before = Micros(now.0.saturating_sub(self.grace.as_micros() as i64));
        let mut report = SweepReport::default();
        for pending in self.claims.pending_before(before, SWEEP_BATCH).await? {
            match self.resolve(&pending, &mut report).await {
                Ok(()) => {}
                Err(error) => {
                    tracing::warn!(%error, hash = %pending.message.message_id, "pending admission not resolved yet");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }

    async fn resolve(&self, pending: &PendingAdmission, report: &mut SweepReport) -> Result<(), BackendError> {
        let hash = &pending.message.message_id;
        if self.store.message(hash).await?.is_some() {
            self.claims.remove_pending(pending).await?;
            report.stored += 1;
            return Ok(());
        }
        let mut fully_claimed = true;
        for key in &pending.keys {
            if self.claims.holder(key).await?.as_deref() != Some(hash.as_str()) {
                fully_claimed = false;
                break;
            }
        }
        if fully_claimed {
            self.queue.publish(&pending.message).await?;
            tracing::info!(%hash, "published a pending admission again");
            report.republished += 1;
        } else {
            self.claims.release(&pending.keys, hash.as_str()).await?;
            tracing::info!(%hash, "gave back the claims of an admission that never completed");
            report.released += 1;
        }
        self.claims.remove_pending(pending).await
    }
}
