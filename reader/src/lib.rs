//! The reader: answers every lookup of PROTOCOL.md section 10 from the
//! record store and the search index, bounded and paginated.
//!
//! Listings are ordered by `created_at`, then hash; `limit` is 1–1000
//! (default 100) and `after` is the `messageHash` of the last item of the
//! previous page. An invalid argument is `BAD_QUERY`; a lookup that finds
//! nothing is `None` or an empty list, never an error.

pub mod http;

use async_trait::async_trait;
use pm_models::api::{MessageQuery, PageRequest, PersonaQuery, ReaderApi};
use pm_models::codec::Hash32;
use pm_models::content::nickname_key;
use pm_models::envelope::ObjectEntry;
use pm_models::records::{MessageRecord, PersonaRecord};
use pm_models::seams::{BackendError, Cursor, MessageFilter, RecordStore, SearchIndex};
use pm_models::time::Day;
use pm_models::{Address, PublicKeyPem, Rejection};
use std::sync::Arc;

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

pub struct Reader {
    store: Arc<dyn RecordStore>,
    index: Arc<dyn SearchIndex>,
}

fn unavailable(e: BackendError) -> Rejection {
    Rejection::unavailable(&e)
}

fn parse_address(field: &str, value: &str) -> Result<Address, Rejection> {
    Address::parse(value).map_err(|e| Rejection::bad_query(format!("{field}: {e}")))
}

fn parse_hash(field: &str, value: &str) -> Result<Hash32, Rejection> {
    Hash32::parse(value).map_err(|_| Rejection::bad_query(format!("{field} is not base64 of 32 bytes")))
}

/// Checks `limit` (section 10: 1–1000, default 100).
pub fn page_limit(limit: Option<i64>) -> Result<usize, Rejection> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT as i64).contains(&n) => Ok(n as usize),
        Some(n) => Err(Rejection::bad_query(format!("limit {n} is outside 1-1000"))),
    }
}

impl Reader {
    pub fn new(store: Arc<dyn RecordStore>, index: Arc<dyn SearchIndex>) -> Self {
        Self { store, index }
    }

    async fn records(&self, hashes: Vec<String>) -> Result<Vec<MessageRecord>, Rejection> {
        let mut records = Vec::with_capacity(hashes.len());
        for hash in hashes {
            // The writer indexes before it stores: an indexed message whose
            // store write is still under way is not readable yet.
            match self.store.message(&hash).await.map_err(unavailable)? {
                Some(record) => records.push(record),
                None => tracing::debug!(%hash, "indexed message not stored yet"),
            }
        }
        Ok(records)
    }

    fn filter(query: &MessageQuery) -> Result<MessageFilter, Rejection> {
        Ok(match query {
            MessageQuery::Sender(a) => MessageFilter::Sender(parse_address("sender", a)?.to_string()),
            MessageQuery::Reader(a) => MessageFilter::Reader(parse_address("reader", a)?.to_string()),
            MessageQuery::Date(d) => MessageFilter::Day(
                Day::parse(d).ok_or_else(|| Rejection::bad_query(format!("date {d:?} is not YYYY-MM-DD")))?,
            ),
            MessageQuery::ContainerHash(h) => MessageFilter::ContainerHash(parse_hash("containerHash", h)?.to_string()),
        })
    }
}

#[async_trait]
impl ReaderApi for Reader {
    async fn persona(&self, query: PersonaQuery) -> Result<Option<PersonaRecord>, Rejection> {
        let address = match &query {
            PersonaQuery::Address(a) => parse_address("address", a)?.to_string(),
            PersonaQuery::PublicKey(k) => PublicKeyPem::parse_wire(k)
                .map_err(|e| Rejection::bad_query(format!("pubkey: {e}")))?
                .address()
                .to_string(),
            PersonaQuery::Nickname(n) => {
                match self.index.persona_by_nickname(&nickname_key(n)).await.map_err(unavailable)? {
                    Some(address) => address,
                    None => return Ok(None),
                }
            }
        };
        self.store.persona(&address).await.map_err(unavailable)
    }

    async fn message(&self, hash: &str) -> Result<Option<MessageRecord>, Rejection> {
        let hash = parse_hash("messageHash", hash)?;
        self.store.message(hash.as_str()).await.map_err(unavailable)
    }

    async fn messages(&self, query: MessageQuery, page: PageRequest) -> Result<Vec<MessageRecord>, Rejection> {
        let filter = Self::filter(&query)?;
        let limit = page_limit(page.limit)?;
        let cursor = match &page.after {
            None => None,
            Some(after) => {
                let hash = parse_hash("after", after)?;
                let record = self
                    .store
                    .message(hash.as_str())
                    .await
                    .map_err(unavailable)?
                    .ok_or_else(|| Rejection::bad_query("after is not a stored message"))?;
                let created_at = record
                    .created_at_micros()
                    .ok_or_else(|| unavailable(BackendError::Corrupt(format!("created_at of {hash}"))))?;
                Some(Cursor { created_at, hash: hash.to_string() })
            }
        };
        let hashes = self.index.list_messages(&filter, cursor.as_ref(), limit).await.map_err(unavailable)?;
        self.records(hashes).await
    }

    async fn object(&self, object_hash: &str) -> Result<Option<ObjectEntry>, Rejection> {
        let hash = parse_hash("objectHash", object_hash)?.to_string();
        let filter = MessageFilter::ObjectHash(hash.clone());
        let first = self.index.list_messages(&filter, None, 1).await.map_err(unavailable)?;
        let records = self.records(first).await?;
        Ok(records.into_iter().flat_map(|r| r.objects).find(|o| o.object_hash == hash))
    }

    async fn ready(&self) -> Result<(), Rejection> {
        self.store.ping().await.map_err(unavailable)?;
        self.index.ping().await.map_err(unavailable)
    }
}
