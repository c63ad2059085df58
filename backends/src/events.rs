//! [`StoredEvents`] inside one process: a tokio broadcast channel, for
//! `pm serve`, whose writer and gateway share the [`crate::Resolver`].
//!
//! A subscriber that falls more than [`CAPACITY`] batches behind loses the
//! oldest of them (logged); the publisher never waits.

use crate::{BackendError, StoredEventStream, StoredEvents};
use async_trait::async_trait;
use pm_models::MessageHash;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Batches a subscriber may lag behind before it loses the oldest.
pub const CAPACITY: usize = 1024;

/// Stored events within one process; cheap to clone (clones share the channel).
#[derive(Clone)]
pub struct LocalEvents {
    sender: broadcast::Sender<Arc<Vec<MessageHash>>>,
}

impl Default for LocalEvents {
    fn default() -> Self {
        Self { sender: broadcast::channel(CAPACITY).0 }
    }
}

impl LocalEvents {
    pub fn new() -> Self {
        Self::default()
    }

    /// [`StoredEvents::publish`] from a thread outside the async runtime
    /// (the embedded committer); it never waits either way.
    pub fn announce(&self, hashes: Vec<MessageHash>) {
        if hashes.is_empty() {
            return;
        }
        // An error only means nobody listens now.
        let _ = self.sender.send(Arc::new(hashes));
    }
}

#[async_trait]
impl StoredEvents for LocalEvents {
    async fn publish(&self, hashes: &[MessageHash]) {
        self.announce(hashes.to_vec());
    }

    async fn subscribe(&self) -> Result<StoredEventStream, BackendError> {
        let receiver = self.sender.subscribe();
        let stream = futures::stream::unfold(receiver, |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(batch) => return Some((batch.as_ref().clone(), receiver)),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "a stored-events subscriber fell behind and missed batches");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Ok(Box::pin(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn a_subscriber_gets_every_batch_published_after_it_subscribed_in_order() {
        let events = LocalEvents::new();
        let early = MessageHash::of_message("before");
        events.publish(std::slice::from_ref(&early)).await;
        let mut first = events.subscribe().await.unwrap();
        let mut second = events.subscribe().await.unwrap();
        let (a, b) = (MessageHash::of_message("a"), MessageHash::of_message("b"));
        events.publish(&[a.clone(), b.clone()]).await;
        events.publish(&[]).await;
        events.publish(std::slice::from_ref(&a)).await;
        for stream in [&mut first, &mut second] {
            assert_eq!(stream.next().await, Some(vec![a.clone(), b.clone()]));
            assert_eq!(stream.next().await, Some(vec![a.clone()]), "no empty batch in between");
        }
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_loses_the_oldest_batches_and_goes_on() {
        let events = LocalEvents::new();
        let mut stream = events.subscribe().await.unwrap();
        let hashes: Vec<MessageHash> = (0..CAPACITY + 3).map(|i| MessageHash::of_message(&format!("m{i}"))).collect();
        for hash in &hashes {
            events.publish(std::slice::from_ref(hash)).await;
        }
        assert_eq!(stream.next().await, Some(vec![hashes[3].clone()]), "the three oldest are lost");
        assert_eq!(stream.next().await, Some(vec![hashes[4].clone()]));
    }

    #[tokio::test]
    async fn the_stream_ends_when_the_events_are_gone() {
        let events = LocalEvents::new();
        let mut stream = events.subscribe().await.unwrap();
        drop(events);
        assert_eq!(stream.next().await, None);
    }
}
