//! The live tail (`messageAdded`): the hashes a [`MessageFeed`] announces
//! as stored become the stored messages, looked up through the reader,
//! kept when they match the subscription's filter, each at most once.
//!
//! The feed is best effort (a notice may be lost or come twice); what a
//! subscriber gets is always a message the reader returns, so it is
//! readable by key when it arrives.

use async_trait::async_trait;
use futures::stream::{BoxStream, Stream, StreamExt};
use pm_models::api::ReaderApi;
use pm_models::records::MessageRecord;
use pm_models::{Address, MessageHash, MessageType, Rejection};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

/// Hashes of messages announced as stored, batch by batch, from the moment
/// of subscribing: `pm serve`'s writer in the same process, or the writers'
/// fanout exchange on RabbitMQ.
#[async_trait]
pub trait MessageFeed: Send + Sync {
    async fn subscribe(&self) -> Result<BoxStream<'static, Vec<MessageHash>>, Rejection>;
}

/// Which messages a subscription wants; `None` matches any.
#[derive(Clone, Debug, Default)]
pub struct LiveFilter {
    pub sender: Option<Address>,
    /// A reader in the message's ACL.
    pub reader: Option<Address>,
    pub message_type: Option<MessageType>,
}

impl LiveFilter {
    fn matches(&self, record: &MessageRecord) -> bool {
        self.sender.as_ref().is_none_or(|sender| record.persona_sender == sender.as_str())
            && self.reader.as_ref().is_none_or(|reader| record.acl.iter().any(|rule| rule.reader == reader.as_str()))
            && self.message_type.is_none_or(|kind| record.message_type == kind as u8)
    }
}

/// Hashes a subscription remembers, to send a message announced twice once.
const REMEMBERED: usize = 10_000;

/// The stored messages behind `hashes` that match `filter`, in the order
/// announced, each once. A message the reader cannot return (yet, or any
/// more) or a failed lookup is skipped and logged.
pub fn messages(
    hashes: BoxStream<'static, Vec<MessageHash>>,
    reader: Arc<dyn ReaderApi>,
    filter: LiveFilter,
) -> impl Stream<Item = MessageRecord> {
    let mut seen = Seen::default();
    hashes
        .map(move |batch| {
            let fresh: Vec<MessageHash> = batch.into_iter().filter(|hash| seen.first_time(hash)).collect();
            (fresh, reader.clone())
        })
        .then(|(fresh, reader)| async move {
            let mut found = Vec::with_capacity(fresh.len());
            for hash in fresh {
                match reader.message(&hash).await {
                    Ok(Some(record)) => found.push(record),
                    Ok(None) => tracing::warn!(%hash, "an announced message is not readable; skipped"),
                    Err(rejection) => tracing::warn!(%hash, error = %rejection.error, "live lookup failed; skipped"),
                }
            }
            futures::stream::iter(found)
        })
        .flatten()
        .filter(move |record| futures::future::ready(filter.matches(record)))
}

/// The last [`REMEMBERED`] hashes seen.
#[derive(Default)]
struct Seen {
    set: HashSet<MessageHash>,
    order: VecDeque<MessageHash>,
}

impl Seen {
    fn first_time(&mut self, hash: &MessageHash) -> bool {
        if !self.set.insert(hash.clone()) {
            return false;
        }
        self.order.push_back(hash.clone());
        if self.order.len() > REMEMBERED {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pm_models::api::{MessageQuery, PageRequest, PersonaQuery};
    use pm_models::envelope::{AclRule, ObjectEntry};
    use pm_models::records::PersonaRecord;
    use pm_models::Hash32;
    use std::collections::HashMap;

    struct Stored(HashMap<MessageHash, MessageRecord>);

    #[async_trait]
    impl ReaderApi for Stored {
        async fn persona(&self, _: PersonaQuery) -> Result<Option<PersonaRecord>, Rejection> {
            Ok(None)
        }
        async fn personas(&self, addresses: &[Address]) -> Result<Vec<Option<PersonaRecord>>, Rejection> {
            Ok(vec![None; addresses.len()])
        }
        async fn message(&self, hash: &MessageHash) -> Result<Option<MessageRecord>, Rejection> {
            Ok(self.0.get(hash).cloned())
        }
        async fn messages(&self, _: MessageQuery, _: PageRequest) -> Result<Vec<MessageRecord>, Rejection> {
            Ok(Vec::new())
        }
        async fn object(&self, _: &Hash32) -> Result<Option<ObjectEntry>, Rejection> {
            Ok(None)
        }
        async fn ready(&self) -> Result<(), Rejection> {
            Ok(())
        }
    }

    fn address(seed: u8) -> Address {
        pm_models::keys::PersonaKey::from_seed([seed; 32]).address()
    }

    fn record(label: &str, sender: &Address, readers: &[&Address], kind: MessageType) -> MessageRecord {
        MessageRecord {
            persona_sender: sender.to_string(),
            persona_pubkey: String::new(),
            persona_nickname: String::new(),
            message_type: kind as u8,
            hash: MessageHash::of_message(label).to_string(),
            signature: String::new(),
            timestamp: String::new(),
            dossier_hash: String::new(),
            body_hash: String::new(),
            acl: readers.iter().map(|r| AclRule { reader: r.to_string(), key: String::new() }).collect(),
            objects: Vec::new(),
            message: label.to_owned(),
            created_at: String::new(),
            message_sign: String::new(),
            receipt: None,
        }
    }

    async fn live(batches: Vec<Vec<&str>>, stored: &[MessageRecord], filter: LiveFilter) -> Vec<String> {
        let reader =
            Arc::new(Stored(stored.iter().map(|r| (MessageHash::parse(&r.hash).unwrap(), r.clone())).collect()));
        let batches: Vec<Vec<MessageHash>> =
            batches.into_iter().map(|b| b.into_iter().map(MessageHash::of_message).collect()).collect();
        messages(futures::stream::iter(batches).boxed(), reader, filter).map(|r| r.message).collect().await
    }

    #[tokio::test]
    async fn announced_messages_come_in_order_each_once_and_the_unreadable_are_skipped() {
        let (alice, bob) = (address(1), address(2));
        let stored = [
            record("a1", &alice, &[&bob], MessageType::Assertion),
            record("b1", &bob, &[&alice], MessageType::Attestation),
            record("a2", &alice, &[&alice], MessageType::Assertion),
        ];
        let got = live(vec![vec!["a1", "b1"], vec!["a1", "never stored", "a2"]], &stored, LiveFilter::default()).await;
        assert_eq!(got, ["a1", "b1", "a2"]);
    }

    #[tokio::test]
    async fn the_filter_keeps_a_senders_a_readers_or_a_types_messages() {
        let (alice, bob) = (address(1), address(2));
        let stored = [
            record("a1", &alice, &[&bob], MessageType::Assertion),
            record("b1", &bob, &[&alice], MessageType::Attestation),
            record("a2", &alice, &[&alice], MessageType::Attestation),
        ];
        let all = vec![vec!["a1", "b1", "a2"]];
        let by_sender = LiveFilter { sender: Some(alice.clone()), ..LiveFilter::default() };
        assert_eq!(live(all.clone(), &stored, by_sender).await, ["a1", "a2"]);
        let by_reader = LiveFilter { reader: Some(alice.clone()), ..LiveFilter::default() };
        assert_eq!(live(all.clone(), &stored, by_reader).await, ["b1", "a2"]);
        let by_type = LiveFilter { message_type: Some(MessageType::Attestation), ..LiveFilter::default() };
        assert_eq!(live(all.clone(), &stored, by_type).await, ["b1", "a2"]);
        let both = LiveFilter { sender: Some(alice), reader: Some(bob), message_type: None };
        assert_eq!(live(all, &stored, both).await, ["a1"]);
    }
}
