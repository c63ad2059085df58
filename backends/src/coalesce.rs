//! Gathers small concurrent calls to a remote backend into batches, so that
//! many callers share one round trip (one HBase `getRows` or `mutateRows`
//! instead of one call each).
//!
//! A [`Coalescer`] runs at most `in_flight` batches at once. A call made
//! while a slot is free goes out at once, alone; calls made while every
//! slot is busy wait together and leave as one batch when a slot frees up.
//! So a lone caller waits for nothing, and under load the batches grow
//! with the load instead of the calls queueing one by one.
//!
//! Calls whose caller does not wait on them (a removal the answer does not
//! wait for) can trade latency for fewer round trips: with a `linger`, a
//! batch waits that long after its first call for others to join it.
//!
//! A batch's failure is every caller's failure. A caller that stops
//! waiting (its request was dropped) does not cancel the batch it joined.

use crate::BackendError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// How batches are formed.
#[derive(Clone, Copy, Debug)]
pub struct BatchLimits {
    /// Batches running at once.
    pub in_flight: usize,
    /// Items in one batch at most (a caller's items are never split).
    pub max_items: usize,
    /// How long a batch waits after its first call for more to join.
    pub linger: Duration,
}

impl BatchLimits {
    /// Batches that leave as soon as a slot is free.
    pub const fn eager(in_flight: usize, max_items: usize) -> Self {
        Self { in_flight, max_items, linger: Duration::ZERO }
    }
}

struct Request<I, O> {
    items: Vec<I>,
    reply: oneshot::Sender<Result<Vec<O>, BackendError>>,
}

/// Calls of `run` over batches of items; see the module doc.
pub struct Coalescer<I, O> {
    requests: mpsc::UnboundedSender<Request<I, O>>,
}

impl<I: Send + 'static, O: Send + 'static> Coalescer<I, O> {
    /// Starts the task that forms batches; it ends when the coalescer is
    /// dropped. `run` gets a batch's items and answers one output per item,
    /// in order. Needs a Tokio runtime.
    pub fn spawn<F, Fut>(limits: BatchLimits, run: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<O>, BackendError>> + Send + 'static,
    {
        let (requests, mut incoming) = mpsc::unbounded_channel::<Request<I, O>>();
        let slots = Arc::new(Semaphore::new(limits.in_flight.max(1)));
        let run = Arc::new(run);
        tokio::spawn(async move {
            let mut next: Option<Request<I, O>> = None;
            loop {
                let slot = slots.clone().acquire_owned().await.expect("the slot semaphore is never closed");
                let first = match next.take() {
                    Some(request) => request,
                    None => match incoming.recv().await {
                        Some(request) => request,
                        None => return,
                    },
                };
                let mut batch = vec![first];
                let mut items = batch[0].items.len();
                if !limits.linger.is_zero() && items < limits.max_items {
                    tokio::time::sleep(limits.linger).await;
                }
                while items < limits.max_items {
                    match incoming.try_recv() {
                        Ok(request) if items + request.items.len() > limits.max_items => {
                            next = Some(request);
                            break;
                        }
                        Ok(request) => {
                            items += request.items.len();
                            batch.push(request);
                        }
                        Err(_) => break,
                    }
                }
                let run = run.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    answer(batch, |items| run(items)).await;
                });
            }
        });
        Self { requests }
    }

    /// Runs `items` in the next batch; their outputs, in order.
    pub async fn call(&self, items: Vec<I>) -> Result<Vec<O>, BackendError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answered) = oneshot::channel();
        self.requests
            .send(Request { items, reply })
            .map_err(|_| BackendError::Unavailable("the batching task has stopped".to_owned()))?;
        answered.await.map_err(|_| BackendError::Unavailable("a batch ended without an answer".to_owned()))?
    }
}

/// Runs one batch and hands each request its share of the outputs.
async fn answer<I, O, Fut>(batch: Vec<Request<I, O>>, run: impl FnOnce(Vec<I>) -> Fut)
where
    Fut: Future<Output = Result<Vec<O>, BackendError>>,
{
    let mut replies = Vec::with_capacity(batch.len());
    let mut items = Vec::new();
    for request in batch {
        replies.push((request.items.len(), request.reply));
        items.extend(request.items);
    }
    let expected = items.len();
    match run(items).await {
        Ok(outputs) if outputs.len() == expected => {
            let mut outputs = outputs.into_iter();
            for (count, reply) in replies {
                let _ = reply.send(Ok(outputs.by_ref().take(count).collect()));
            }
        }
        Ok(outputs) => {
            let error =
                BackendError::Corrupt(format!("a batch of {expected} items answered {} outputs", outputs.len()));
            replies.into_iter().for_each(|(_, reply)| drop(reply.send(Err(error.clone()))));
        }
        Err(error) => replies.into_iter().for_each(|(_, reply)| drop(reply.send(Err(error.clone())))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn a_lone_call_goes_out_alone_and_gets_its_outputs() {
        let coalescer = Coalescer::spawn(BatchLimits::eager(1, 10), |items: Vec<u32>| async move {
            Ok(items.into_iter().map(|i| i * 2).collect())
        });
        assert_eq!(coalescer.call(vec![1, 2, 3]).await.unwrap(), vec![2, 4, 6]);
        assert_eq!(coalescer.call(Vec::new()).await.unwrap(), Vec::<u32>::new());
    }

    #[tokio::test]
    async fn calls_made_while_the_slot_is_busy_leave_together_each_with_its_own_outputs() {
        let batches = Arc::new(Mutex::new(Vec::<Vec<u32>>::new()));
        let (release, released) = tokio::sync::watch::channel(false);
        let seen = batches.clone();
        let coalescer = Arc::new(Coalescer::spawn(BatchLimits::eager(1, 100), move |items: Vec<u32>| {
            let seen = seen.clone();
            let mut released = released.clone();
            async move {
                seen.lock().unwrap().push(items.clone());
                released.wait_for(|go| *go).await.unwrap();
                Ok(items.into_iter().map(|i| i + 100).collect())
            }
        }));
        let first = tokio::spawn({
            let c = coalescer.clone();
            async move { c.call(vec![0]).await }
        });
        while batches.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        let waiting: Vec<_> = (1..=5)
            .map(|i| {
                let c = coalescer.clone();
                tokio::spawn(async move { c.call(vec![i, i * 10]).await })
            })
            .collect();
        // The five calls are queued behind the busy slot before it frees up.
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), vec![100]);
        for (i, call) in (1..=5).zip(waiting) {
            assert_eq!(call.await.unwrap().unwrap(), vec![i + 100, i * 10 + 100]);
        }
        let batches = batches.lock().unwrap();
        assert_eq!(batches.len(), 2, "the five waiting calls went out as one batch: {batches:?}");
        assert_eq!(batches[1].len(), 10);
    }

    #[tokio::test]
    async fn a_batch_never_exceeds_max_items_and_keeps_a_callers_items_together() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let (release, released) = tokio::sync::watch::channel(false);
        let coalescer = Arc::new(Coalescer::spawn(BatchLimits::eager(1, 4), move |items: Vec<u32>| {
            let seen = seen.clone();
            let mut released = released.clone();
            async move {
                seen.lock().unwrap().push(items.len());
                released.wait_for(|go| *go).await.unwrap();
                Ok(items)
            }
        }));
        let calls: Vec<_> = (0..6)
            .map(|i| {
                let c = coalescer.clone();
                tokio::spawn(async move { c.call(vec![i; 3]).await })
            })
            .collect();
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        for (i, call) in (0..6).zip(calls) {
            assert_eq!(call.await.unwrap().unwrap(), vec![i; 3]);
        }
        assert!(sizes.lock().unwrap().iter().all(|&n| n == 3), "{:?}", sizes.lock().unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn with_a_linger_calls_made_soon_after_the_first_join_its_batch() {
        let batches = Arc::new(Mutex::new(Vec::<Vec<u32>>::new()));
        let seen = batches.clone();
        let limits = BatchLimits { in_flight: 2, max_items: 100, linger: Duration::from_millis(50) };
        let coalescer = Arc::new(Coalescer::spawn(limits, move |items: Vec<u32>| {
            seen.lock().unwrap().push(items.clone());
            async move { Ok(items) }
        }));
        let calls: Vec<_> = (0..5)
            .map(|i| {
                let c = coalescer.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(10 * i as u64)).await;
                    c.call(vec![i]).await
                })
            })
            .collect();
        for (i, call) in (0..5).zip(calls) {
            assert_eq!(call.await.unwrap().unwrap(), vec![i]);
        }
        // A slot was free for every call, yet they left together.
        assert_eq!(*batches.lock().unwrap(), vec![vec![0, 1, 2, 3, 4]]);
        // One made after the linger is over goes in a batch of its own.
        assert_eq!(coalescer.call(vec![9]).await.unwrap(), vec![9]);
        assert_eq!(batches.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_failed_batch_fails_every_caller_in_it_and_the_next_batch_runs() {
        let coalescer = Coalescer::spawn(BatchLimits::eager(2, 10), |items: Vec<u32>| async move {
            if items.contains(&13) {
                Err(BackendError::Unavailable("unlucky".to_owned()))
            } else if items.contains(&7) {
                Ok(Vec::new())
            } else {
                Ok(items)
            }
        });
        assert!(matches!(coalescer.call(vec![13]).await, Err(BackendError::Unavailable(m)) if m == "unlucky"));
        assert!(matches!(coalescer.call(vec![7, 8]).await, Err(BackendError::Corrupt(_))), "outputs must match items");
        assert_eq!(coalescer.call(vec![1]).await.unwrap(), vec![1]);
    }
}
