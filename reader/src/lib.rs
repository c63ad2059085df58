//! The reader: answers every lookup of PROTOCOL.md section 10 from the
//! record store and the search index, bounded and paginated.
//!
//! Listings are ordered by `created_at`, then hash, and never show a message
//! a lookup by hash cannot return: the writer indexes before it stores, so
//! an indexed message whose store write is still under way is left out. A
//! lookup that finds nothing is `None` or an empty list, never an error;
//! arguments arrive already parsed ([`pm_models::api`]).

pub mod http;

use async_trait::async_trait;
use pm_backends::{BackendError, Cursor, MessageFilter, RecordStore, SearchIndex};
use pm_models::api::{MessageQuery, PageRequest, PersonaQuery, ReaderApi, MAX_PERSONAS_PER_CALL};
use pm_models::content::{nickname_key, MAX_NICKNAME_CHARS};
use pm_models::envelope::ObjectEntry;
use pm_models::records::{MessageRecord, PersonaRecord};
use pm_models::{Address, Hash32, MessageHash, Rejection};
use std::sync::Arc;

pub struct Reader {
    store: Arc<dyn RecordStore>,
    index: Arc<dyn SearchIndex>,
}

/// A backend failed: `UNAVAILABLE` for the client, the cause for the log.
fn unavailable(error: BackendError) -> Rejection {
    tracing::warn!(%error, "backend unavailable");
    Rejection::unavailable()
}

impl Reader {
    pub fn new(store: Arc<dyn RecordStore>, index: Arc<dyn SearchIndex>) -> Self {
        Self { store, index }
    }

    /// The stored records of `hashes`, in order, in one batched read,
    /// leaving out those not stored yet.
    async fn records(&self, hashes: Vec<MessageHash>) -> Result<Vec<MessageRecord>, Rejection> {
        let found = self.store.messages(&hashes).await.map_err(unavailable)?;
        Ok(found.into_iter().flatten().collect())
    }

    fn filter(query: MessageQuery) -> MessageFilter {
        match query {
            MessageQuery::Sender(a) => MessageFilter::Sender(a),
            MessageQuery::Reader(a) => MessageFilter::Reader(a),
            MessageQuery::Date(d) => MessageFilter::Day(d),
            MessageQuery::ContainerHash(h) => MessageFilter::ContainerHash(h),
        }
    }
}

#[async_trait]
impl ReaderApi for Reader {
    async fn persona(&self, query: PersonaQuery) -> Result<Option<PersonaRecord>, Rejection> {
        let address = match query {
            PersonaQuery::Address(address) => address,
            PersonaQuery::PublicKey(key) => key.address(),
            // No nickname is longer than section 5 allows: nothing to look up.
            PersonaQuery::Nickname(n) if n.chars().nth(MAX_NICKNAME_CHARS).is_some() => return Ok(None),
            PersonaQuery::Nickname(n) => {
                match self.index.persona_by_nickname(&nickname_key(&n)).await.map_err(unavailable)? {
                    Some(address) => address,
                    None => return Ok(None),
                }
            }
        };
        self.store.persona(&address).await.map_err(unavailable)
    }

    async fn personas(&self, addresses: &[Address]) -> Result<Vec<Option<PersonaRecord>>, Rejection> {
        if addresses.len() > MAX_PERSONAS_PER_CALL {
            return Err(Rejection::bad_query(format!("at most {MAX_PERSONAS_PER_CALL} addresses at once")));
        }
        self.store.personas(addresses).await.map_err(unavailable)
    }

    async fn message(&self, hash: &MessageHash) -> Result<Option<MessageRecord>, Rejection> {
        self.store.message(hash).await.map_err(unavailable)
    }

    async fn messages(&self, query: MessageQuery, page: PageRequest) -> Result<Vec<MessageRecord>, Rejection> {
        let cursor = match page.after {
            None => None,
            Some(hash) => {
                let record = self
                    .store
                    .message(&hash)
                    .await
                    .map_err(unavailable)?
                    .ok_or_else(|| Rejection::bad_query("after is not a stored message"))?;
                let created_at = record
                    .created_at_micros()
                    .ok_or_else(|| unavailable(BackendError::Corrupt(format!("created_at of {hash}"))))?;
                Some(Cursor { created_at, hash })
            }
        };
        let filter = Self::filter(query);
        let hashes = self.index.list_messages(&filter, cursor.as_ref(), page.limit).await.map_err(unavailable)?;
        self.records(hashes).await
    }

    async fn object(&self, object_hash: &Hash32) -> Result<Option<ObjectEntry>, Rejection> {
        let filter = MessageFilter::ObjectHash(object_hash.clone());
        let first = self.index.list_messages(&filter, None, 1).await.map_err(unavailable)?;
        let records = self.records(first).await?;
        Ok(records.into_iter().flat_map(|r| r.objects).find(|o| o.object_hash == object_hash.as_str()))
    }

    async fn ready(&self) -> Result<(), Rejection> {
        self.store.ping().await.map_err(unavailable)?;
        self.index.ping().await.map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    //! Lookups over the embedded backend.

    use super::*;
    use pm_backends::embedded::EmbeddedBackend;
    use pm_backends::{RecordBatch, RecordWriter};
    use pm_models::envelope::AclRule;
    use pm_models::keys::PersonaKey;
    use pm_models::time::Micros;
    use pm_models::RejectionCode;

    fn persona(seed: u8, nickname: &str) -> PersonaRecord {
        PersonaRecord::without_registration(PersonaKey::from_seed([seed; 32]).public(), nickname, Micros(1))
    }

    fn message(label: &str, sender: &PersonaRecord, micros: i64) -> MessageRecord {
        MessageRecord {
            persona_sender: sender.address.clone(),
            persona_pubkey: sender.pubkey.clone(),
            persona_nickname: sender.nickname.clone(),
            message_type: 2,
            hash: MessageHash::of_message(label).to_string(),
            signature: "c2ln".into(),
            timestamp: "dA==".into(),
            dossier_hash: Hash32::of_text("d").to_string(),
            body_hash: Hash32::of_text("b").to_string(),
            acl: vec![AclRule { reader: sender.address.clone(), key: "a2V5".into() }],
            objects: vec![],
            message: "bQ==".into(),
            created_at: Micros(micros).to_rfc3339(),
            message_sign: "cw==".into(),
            receipt: None,
        }
    }

    async fn reader() -> (tempfile::TempDir, EmbeddedBackend, Reader) {
        let dir = tempfile::tempdir().unwrap();
        let backend = EmbeddedBackend::open(&dir.path().join("ledger.redb")).unwrap();
        let reader = Reader::new(Arc::new(backend.clone()), Arc::new(backend.clone()));
        (dir, backend, reader)
    }

    #[tokio::test]
    async fn a_nickname_longer_than_any_persona_can_have_finds_nothing() {
        let (_dir, backend, reader) = reader().await;
        let long = "x".repeat(MAX_NICKNAME_CHARS + 1);
        let mut record = persona(1, "x");
        record.nickname = long.clone();
        // Even a record indexed under it (written by hand) is not looked up.
        RecordWriter::write(&backend, &RecordBatch { personas: vec![record], messages: vec![] }).await.unwrap();
        assert_eq!(reader.persona(PersonaQuery::Nickname(long)).await.unwrap(), None);
        let alice = persona(2, "Alice");
        RecordWriter::write(&backend, &RecordBatch { personas: vec![alice.clone()], messages: vec![] }).await.unwrap();
        assert_eq!(reader.persona(PersonaQuery::Nickname("ALICE".into())).await.unwrap(), Some(alice));
    }

    #[tokio::test]
    async fn a_listing_leaves_out_what_is_indexed_but_not_yet_stored_and_pages_after_a_cursor() {
        let (_dir, backend, reader) = reader().await;
        let alice = persona(2, "Alice");
        let stored: Vec<MessageRecord> = (0..3).map(|i| message(&format!("m{i}"), &alice, 10 + i)).collect();
        RecordWriter::write(&backend, &RecordBatch { personas: vec![alice.clone()], messages: stored.clone() })
            .await
            .unwrap();
        // Indexed only: the writer's store write has not happened yet.
        let pending = message("pending", &alice, 5);
        SearchIndex::index(&backend, &RecordBatch { personas: vec![], messages: vec![pending] }).await.unwrap();
        let sender: pm_models::Address = alice.address.parse().unwrap();
        let all = reader.messages(MessageQuery::Sender(sender.clone()), PageRequest::default()).await.unwrap();
        assert_eq!(all, stored);
        let after = MessageHash::parse(&stored[0].hash).unwrap();
        let page = PageRequest { limit: 1, after: Some(after) };
        assert_eq!(reader.messages(MessageQuery::Sender(sender.clone()), page).await.unwrap(), [stored[1].clone()]);
        let unknown = PageRequest { limit: 1, after: Some(MessageHash::of_message("never")) };
        let refusal = reader.messages(MessageQuery::Sender(sender), unknown).await.unwrap_err();
        assert_eq!(refusal.code, RejectionCode::BadQuery);
    }
}
