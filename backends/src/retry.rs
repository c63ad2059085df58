//! The one retry policy of the project (quickwit-common's `retry.rs` is the
//! model): exponential backoff between attempts, capped at a maximum delay
//! and, unless unlimited, at a number of attempts. An error says whether
//! another attempt may help ([`Retryable`]); a permanent one ends the
//! attempts at once. Every backend, and the writer, retries through here.
//!
//! Times come from `tokio::time`, so tests pause the clock instead of sleeping.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// An error that knows whether trying again may succeed.
pub trait Retryable {
    fn is_transient(&self) -> bool;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included; `None` for no limit.
    pub max_attempts: Option<u32>,
    /// The wait after the first failure.
    pub initial_delay: Duration,
    /// No wait is longer than this.
    pub max_delay: Duration,
    /// Each wait is the previous one times this.
    pub multiplier: u32,
}

impl RetryPolicy {
    /// Doubling waits from `initial_delay` up to `max_delay`, `max_attempts` in all.
    pub const fn doubling(max_attempts: Option<u32>, initial_delay: Duration, max_delay: Duration) -> Self {
        Self { max_attempts, initial_delay, max_delay, multiplier: 2 }
    }

    /// A fresh sequence of attempts under this policy.
    pub fn backoff(&self) -> Backoff {
        Backoff { policy: *self, failures: 0, next_delay: self.initial_delay, retry_at: None }
    }

    /// Runs `attempt` until it succeeds, fails permanently or runs out of
    /// attempts, waiting between attempts. `what` names the work in the log.
    pub async fn retry<T, E, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, E>
    where
        E: Retryable + Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut backoff = self.backoff();
        loop {
            match attempt().await {
                Err(error) if error.is_transient() => match backoff.failed() {
                    Some(wait) => {
                        log_retry(what, &backoff, &error, wait);
                        tokio::time::sleep(wait).await;
                    }
                    None => return Err(error),
                },
                outcome => return outcome,
            }
        }
    }

    /// [`Self::retry`] for blocking code (a thread of the blocking pool).
    pub fn retry_blocking<T, E, F>(&self, what: &str, mut attempt: F) -> Result<T, E>
    where
        E: Retryable + Display,
        F: FnMut() -> Result<T, E>,
    {
        let mut backoff = self.backoff();
        loop {
            match attempt() {
                Err(error) if error.is_transient() => match backoff.failed() {
                    Some(wait) => {
                        log_retry(what, &backoff, &error, wait);
                        std::thread::sleep(wait);
                    }
                    None => return Err(error),
                },
                outcome => return outcome,
            }
        }
    }
}

fn log_retry(what: &str, backoff: &Backoff, error: &dyn Display, wait: Duration) {
    tracing::warn!(what, attempt = backoff.failures(), %error, retry_in_ms = wait.as_millis() as u64, "retrying");
    crate::metrics::retry(what);
}

/// Where a sequence of attempts stands.
#[derive(Clone, Debug)]
pub struct Backoff {
    policy: RetryPolicy,
    failures: u32,
    next_delay: Duration,
    retry_at: Option<Instant>,
}

impl Backoff {
    /// Records a failed attempt and returns the wait before the next one,
    /// or `None` when no attempt is left.
    pub fn failed(&mut self) -> Option<Duration> {
        self.failures = self.failures.saturating_add(1);
        if self.policy.max_attempts.is_some_and(|max| self.failures >= max) {
            self.retry_at = None;
            return None;
        }
        let wait = self.next_delay.min(self.policy.max_delay);
        self.next_delay = wait.saturating_mul(self.policy.multiplier.max(1)).min(self.policy.max_delay);
        self.retry_at = Some(Instant::now() + wait);
        Some(wait)
    }

    /// An attempt succeeded: the next failure starts from the first wait.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.next_delay = self.policy.initial_delay;
        self.retry_at = None;
    }

    /// The time left before the next attempt is due, for callers that fail
    /// fast instead of waiting (a publish while the broker is unreachable).
    pub fn remaining(&self) -> Option<Duration> {
        let left = self.retry_at?.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// Failed attempts since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug)]
    struct Failure(bool);
    impl Retryable for Failure {
        fn is_transient(&self) -> bool {
            self.0
        }
    }
    impl Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "failure (transient: {})", self.0)
        }
    }

    const POLICY: RetryPolicy = RetryPolicy::doubling(Some(4), Duration::from_millis(100), Duration::from_millis(350));

    #[test]
    fn waits_double_up_to_the_maximum_and_stop_after_the_last_attempt() {
        let mut backoff = POLICY.backoff();
        let waits: Vec<Option<u64>> = (0..4).map(|_| backoff.failed().map(|d| d.as_millis() as u64)).collect();
        assert_eq!(waits, [Some(100), Some(200), Some(350), None]);
        backoff.succeeded();
        assert_eq!(backoff.failed(), Some(Duration::from_millis(100)), "a success starts over");
    }

    #[tokio::test(start_paused = true)]
    async fn a_transient_failure_is_retried_after_the_wait() {
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let outcome = POLICY
            .retry("test", || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err(Failure(true)),
                    _ => Ok("done"),
                }
            })
            .await;
        assert_eq!(outcome.unwrap(), "done");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(started.elapsed(), Duration::from_millis(300), "waited 100 ms, then 200 ms");
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_failure_ends_at_once_and_transient_ones_end_after_the_last_attempt() {
        let calls = AtomicU32::new(0);
        let permanent =
            POLICY.retry("test", || async { Err::<(), _>(Failure(calls.fetch_add(1, Ordering::SeqCst) > 5)) });
        assert!(!permanent.await.unwrap_err().0);
        assert_eq!(calls.swap(0, Ordering::SeqCst), 1);
        let started = Instant::now();
        let transient = POLICY.retry("test", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(Failure(true))
        });
        assert!(transient.await.unwrap_err().0);
        assert_eq!(calls.load(Ordering::SeqCst), 4, "max_attempts in all");
        assert_eq!(started.elapsed(), Duration::from_millis(650));
    }

    #[tokio::test(start_paused = true)]
    async fn the_remaining_wait_counts_down_on_the_clock() {
        let mut backoff = POLICY.backoff();
        assert_eq!(backoff.remaining(), None);
        backoff.failed();
        assert_eq!(backoff.remaining(), Some(Duration::from_millis(100)));
        tokio::time::advance(Duration::from_millis(60)).await;
        assert_eq!(backoff.remaining(), Some(Duration::from_millis(40)));
        tokio::time::advance(Duration::from_millis(40)).await;
        assert_eq!(backoff.remaining(), None);
    }

    #[test]
    fn blocking_retries_follow_the_same_policy() {
        let policy = RetryPolicy::doubling(Some(2), Duration::ZERO, Duration::ZERO);
        let mut calls = 0;
        let outcome = policy.retry_blocking("test", || {
            calls += 1;
            if calls == 1 {
                Err(Failure(true))
            } else {
                Ok(calls)
            }
        });
        assert_eq!(outcome.unwrap(), 2);
    }
}
