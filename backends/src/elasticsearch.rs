//! The Elasticsearch [`SearchIndex`]: indices `persona` and `message` of
//! PROTOCOL.md section 9 (document id = row key), answering the lookups of
//! section 10.
//!
//! Guarantees:
//! - **Idempotent by id.** A persona is indexed under its address and a
//!   message under its `messageHash`; indexing the same record again replaces
//!   the document, so a redelivery never duplicates a listing entry.
//! - **Read-your-writes, one wait per batch.** A batch of records is one
//!   `_bulk` with `refresh=wait_for`: it returns only once every document is
//!   visible to search, so a listing made after [`SearchIndex::index`]
//!   returns sees them (no forced refreshes; a batch waits at most one
//!   refresh interval, 1 s by default, however many documents it holds).
//! - **Exact ordering.** `created_at` is mapped as `date_nanos`, which keeps the
//!   microseconds of our dates (`date` would truncate to milliseconds), and
//!   listings sort on `(created_at, hash)` with `search_after`, the same order
//!   as the embedded backend. The cursor's `created_at` is passed as epoch
//!   nanoseconds, a JSON integer: the form ES returns as the sort value (a
//!   digit *string* would be read as epoch milliseconds).
//! - **Mappings are ours.** Both mappings are `dynamic: strict`.
//!   [`ElasticIndex::create_indices`] creates missing indices and merges the
//!   mapping into existing ones, failing on a conflict (say `created_at`
//!   mapped as `date` by an index ES auto-created); the first write of a
//!   process runs it too, so a write never lets ES auto-create an index with
//!   guessed mappings.
//! - **Complete answers or errors.** A search that timed out or missed a shard
//!   is an error, never a short listing.
//!
//! Errors: transport failures, timeouts, 429 and 5xx are retried twice with a
//! short backoff (the crate's one [`RetryPolicy`]), then become [`BackendError::Unavailable`]. Every other
//! refusal from ES (4xx) is `Unavailable` too, with its reason: the documents
//! are built from records this module has checked, so a refusal means the
//! index disagrees with this code (missing, hand-made, mapping changed), which
//! an operator fixes, after which a requeued write succeeds; calling it
//! [`BackendError::Corrupt`] would dead-letter the message and leave it out
//! of the listings for good. `Corrupt` is kept for records that can never be
//! indexed: a `created_at` that is not our RFC 3339 form or lies outside what
//! `date_nanos` holds (1970 to 2262).

use crate::retry::{RetryPolicy, Retryable};
use crate::settings::ElasticSettings;
use crate::{BackendError, Cursor, ListedHashes, MessageFilter, RecordBatch, SearchIndex};
use async_trait::async_trait;
use elasticsearch::cluster::ClusterHealthParts;
use elasticsearch::http::request::JsonBody;
use elasticsearch::http::response::Response;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::indices::{IndicesCreateParts, IndicesExistsParts, IndicesPutMappingParts};
use elasticsearch::params::Refresh;
use elasticsearch::{BulkParts, Elasticsearch, SearchParts};
use pm_models::content::nickname_key;
use pm_models::records::{MessageRecord, PersonaRecord};
use pm_models::time::Micros;
use pm_models::{Address, MessageHash};
use serde_json::{json, Map, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// Every request: three attempts in all, 100 ms before the first retry,
/// tripled before each further one.
const RETRY: RetryPolicy = RetryPolicy {
    max_attempts: Some(3),
    initial_delay: Duration::from_millis(100),
    max_delay: Duration::from_millis(900),
    multiplier: 3,
};
/// ES refuses `size` above `index.max_result_window` (10,000 by default).
/// A shorter page is fine: an empty page, not a short one, ends a listing.
const MAX_PAGE: usize = 10_000;
/// The last instant `date_nanos` holds (2262-04-11T23:47:16.854775807Z),
/// in whole microseconds. The first one is the epoch.
const MAX_MICROS: i64 = i64::MAX / 1_000;

/// The search index in Elasticsearch. Cheap to clone: clones share one HTTP
/// connection pool.
#[derive(Clone, Debug)]
pub struct ElasticIndex {
    client: Elasticsearch,
    persona_index: Arc<str>,
    message_index: Arc<str>,
    /// Set once [`Self::create_indices`] succeeded in this process.
    indices_ready: Arc<OnceCell<()>>,
}

impl ElasticIndex {
    /// Builds the client. Nothing is sent yet: a server that is down shows in
    /// [`SearchIndex::ping`] and in the first request, not here.
    pub async fn connect(settings: ElasticSettings) -> Result<Self, BackendError> {
        let url = url::Url::parse(&settings.url)
            .map_err(|e| BackendError::Unavailable(format!("elasticsearch url {:?}: {e}", settings.url)))?;
        let transport = TransportBuilder::new(SingleNodeConnectionPool::new(url))
            .timeout(settings.timeout())
            .build()
            .map_err(|e| BackendError::Unavailable(format!("elasticsearch client: {e}")))?;
        let prefix = settings.index_prefix.to_lowercase();
        Ok(Self {
            client: Elasticsearch::new(transport),
            persona_index: format!("{prefix}persona").into(),
            message_index: format!("{prefix}message").into(),
            indices_ready: Arc::new(OnceCell::new()),
        })
    }

    /// The names of the two indices, `persona` first.
    pub fn index_names(&self) -> (&str, &str) {
        (&self.persona_index, &self.message_index)
    }

    /// Creates both indices with their mappings if missing, and merges the
    /// mappings into indices that exist (adding fields a newer version
    /// defines). Idempotent; fails, naming the field, when an existing index
    /// maps a field differently, as such an index cannot keep our order.
    #[tracing::instrument(skip_all, fields(persona = %self.persona_index, message = %self.message_index))]
    pub async fn create_indices(&self) -> Result<(), BackendError> {
        for (index, mapping) in [(&*self.persona_index, persona_mapping()), (&*self.message_index, message_mapping())] {
            let body = json!({ "mappings": mapping });
            let (indices_api, body) = (&self.client.indices(), &body);
            let created =
                send("create index", move || indices_api.create(IndicesCreateParts::Index(index)).body(body).send())
                    .await;
            match created {
                Ok(_) => tracing::info!(index, "created elasticsearch index"),
                Err(refusal) if refusal.kind == "resource_already_exists_exception" => {
                    let indices = [index];
                    let (indices, mapping) = (&indices, &mapping);
                    send("update mapping", move || {
                        indices_api.put_mapping(IndicesPutMappingParts::Index(indices)).body(mapping).send()
                    })
                    .await?;
                }
                Err(refusal) => return Err(refusal.into()),
            }
        }
        Ok(())
    }

    /// Deletes both indices and their documents: for tests and for tearing
    /// down a deployment, never called by a role.
    #[cfg(any(test, feature = "testsuite"))]
    pub async fn delete_indices(&self) -> Result<(), BackendError> {
        use elasticsearch::indices::IndicesDeleteParts;
        let indices = [&*self.persona_index, &*self.message_index];
        let (indices_api, indices) = (&self.client.indices(), &indices);
        match send("delete index", move || {
            indices_api.delete(IndicesDeleteParts::Index(indices)).ignore_unavailable(true).send()
        })
        .await
        {
            Ok(_) => Ok(()),
            Err(refusal) if refusal.kind == "index_not_found_exception" => Ok(()),
            Err(refusal) => Err(refusal.into()),
        }
    }

    /// Runs [`Self::create_indices`] once per process before the first write,
    /// so ES never auto-creates an index with dynamic mappings (which would
    /// map `created_at` as a millisecond `date`).
    async fn ensure_indices(&self) -> Result<(), BackendError> {
        self.indices_ready.get_or_try_init(|| self.create_indices()).await.map(|_| ())
    }

    /// Indexes every `(index, id, document)` in one `_bulk`, visible to
    /// search on return (one refresh wait for the whole batch). A document
    /// ES refuses fails the batch: a retry rewrites every document, which
    /// indexing by id makes harmless.
    async fn bulk(&self, documents: Vec<(&str, &str, Value)>) -> Result<(), BackendError> {
        if documents.is_empty() {
            return Ok(());
        }
        self.ensure_indices().await?;
        let mut lines: Vec<Value> = Vec::with_capacity(documents.len() * 2);
        for (index, id, document) in documents {
            lines.push(json!({ "index": { "_index": index, "_id": id } }));
            lines.push(document);
        }
        let client = &self.client;
        let lines = &lines;
        let response = send("bulk index", move || {
            let body: Vec<JsonBody<Value>> = lines.iter().cloned().map(JsonBody::new).collect();
            client.bulk(BulkParts::None).refresh(Refresh::WaitFor).body(body).send()
        })
        .await?;
        if response["errors"].as_bool() != Some(false) {
            let failed = response["items"]
                .as_array()
                .and_then(|items| items.iter().find(|item| item["index"]["error"].is_object()))
                .map(|item| item["index"]["error"].to_string())
                .unwrap_or_else(|| response.to_string().chars().take(500).collect());
            crate::metrics::error(crate::metrics::ELASTICSEARCH, "document_refused");
            return Err(BackendError::Unavailable(format!("elasticsearch bulk index refused a document: {failed}")));
        }
        Ok(())
    }

    /// Runs a search and returns the ids of its hits, in order.
    async fn search_ids(&self, index: &str, body: &Value) -> Result<Vec<String>, BackendError> {
        let indices = [index];
        let (client, indices) = (&self.client, &indices);
        let response = send("search", move || client.search(SearchParts::Index(indices)).body(body).send()).await?;
        let hits = response["hits"]["hits"]
            .as_array()
            .ok_or_else(|| BackendError::Unavailable(format!("elasticsearch search {index}: no hits in {response}")))?;
        hits.iter()
            .map(|hit| {
                hit["_id"].as_str().map(str::to_owned).ok_or_else(|| {
                    BackendError::Unavailable(format!("elasticsearch search {index}: a hit without an id: {hit}"))
                })
            })
            .collect()
    }
}

#[async_trait]
impl SearchIndex for ElasticIndex {
    #[tracing::instrument(skip_all, fields(personas = batch.personas.len(), messages = batch.messages.len()))]
    async fn index(&self, batch: &RecordBatch) -> Result<(), BackendError> {
        let mut documents = Vec::with_capacity(batch.personas.len() + batch.messages.len());
        for persona in &batch.personas {
            documents.push((&*self.persona_index, persona.address.as_str(), persona_document(persona)?));
        }
        for message in &batch.messages {
            documents.push((&*self.message_index, message.hash.as_str(), message_document(message)?));
        }
        self.bulk(documents).await
    }

    async fn persona_by_nickname(&self, nickname_key: &str) -> Result<Option<Address>, BackendError> {
        // Nicknames are claimed once (section 6); should two documents ever
        // share one, the earliest answers, as it would after a reindex.
        let body = json!({
            "size": 1,
            "_source": false,
            "track_total_hits": false,
            "query": { "bool": { "filter": [{ "term": { "nickname_lower": nickname_key } }] } },
            "sort": [{ "created_at": "asc" }, { "address": "asc" }],
        });
        let first = self.search_ids(&self.persona_index, &body).await?.into_iter().next();
        first.map(|id| parse_id(&id, Address::parse)).transpose()
    }

    async fn invitation_redeemed(&self, invite: &MessageHash) -> Result<bool, BackendError> {
        let body = json!({
            "size": 1,
            "_source": false,
            "track_total_hits": false,
            "query": { "bool": { "filter": [{ "term": { "invite_hash": invite } }] } },
        });
        Ok(!self.search_ids(&self.message_index, &body).await?.is_empty())
    }

    async fn list_messages(&self, filter: &MessageFilter, after: Option<&Cursor>, limit: usize) -> ListedHashes {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let clause = match filter {
            MessageFilter::Sender(sender) => json!({ "term": { "persona_sender": sender } }),
            MessageFilter::Reader(reader) => json!({ "term": { "readers": reader } }),
            MessageFilter::ObjectHash(hash) => json!({ "term": { "object_hashes": hash } }),
            MessageFilter::ContainerHash(hash) => {
                json!({ "nested": { "path": "containers", "query": { "term": { "containers.hash": hash } } } })
            }
            MessageFilter::Day(day) => {
                // ES refuses a date_nanos bound it cannot hold, so clamp the
                // day to what a document can carry; a day outside is empty.
                let (start, end) = day.range();
                if end.0 <= 0 || start.0 > MAX_MICROS {
                    return Ok(Vec::new());
                }
                let mut range = Map::new();
                range.insert("gte".into(), Micros(start.0.max(0)).to_rfc3339().into());
                if end.0 <= MAX_MICROS {
                    range.insert("lt".into(), end.to_rfc3339().into());
                } else {
                    range.insert("lte".into(), Micros(MAX_MICROS).to_rfc3339().into());
                }
                json!({ "range": { "created_at": range } })
            }
        };
        let mut body = json!({
            "size": limit.min(MAX_PAGE),
            "_source": false,
            "track_total_hits": false,
            "query": { "bool": { "filter": [clause] } },
            "sort": [{ "created_at": "asc" }, { "hash": "asc" }],
        });
        if let Some(cursor) = after {
            // Epoch nanoseconds as a JSON integer, as ES returns date_nanos
            // sort values. Saturating keeps the order for cursors outside the
            // storable range: no document is stored at either extreme.
            body["search_after"] = json!([cursor.created_at.0.saturating_mul(1_000), cursor.hash]);
        }
        let ids = self.search_ids(&self.message_index, &body).await?;
        ids.iter().map(|id| parse_id(id, MessageHash::parse)).collect()
    }

    /// Ready when the cluster answers, both indices exist and their primary
    /// shards are assigned (`yellow` is fine: a single node has no replicas).
    async fn ping(&self) -> Result<(), BackendError> {
        let indices = [&*self.persona_index, &*self.message_index];
        let (indices_api, cluster_api, indices) = (&self.client.indices(), &self.client.cluster(), &indices);
        send("index exists", move || indices_api.exists(IndicesExistsParts::Index(indices)).send()).await.map_err(
            |refusal| match refusal.status {
                Some(404) => BackendError::Unavailable(format!(
                    "elasticsearch indices {} and {} are not both there: run `pm bootstrap`",
                    indices[0], indices[1]
                )),
                _ => refusal.into(),
            },
        )?;
        let health =
            send("cluster health", move || cluster_api.health(ClusterHealthParts::Index(indices)).send()).await?;
        match health["status"].as_str() {
            Some("green" | "yellow") => Ok(()),
            status => Err(BackendError::Unavailable(format!(
                "elasticsearch indices {} and {} are {}",
                indices[0],
                indices[1],
                status.unwrap_or("of unknown health")
            ))),
        }
    }
}

/// The document of a persona in index `persona`.
fn persona_document(persona: &PersonaRecord) -> Result<Value, BackendError> {
    Ok(json!({
        "address": persona.address,
        "pubkey": persona.pubkey,
        "nickname": persona.nickname,
        "nickname_lower": nickname_key(&persona.nickname),
        "created_at": storable_date(&persona.created_at, "persona", &persona.address)?,
    }))
}

/// The document of a message in index `message`.
fn message_document(message: &MessageRecord) -> Result<Value, BackendError> {
    let objects = &message.objects;
    let mut document = json!({
        "persona_sender": message.persona_sender,
        "persona_nickname": message.persona_nickname,
        "hash": message.hash,
        "dossier_hash": message.dossier_hash,
        "type": message.message_type.to_string(),
        "readers": message.acl.iter().map(|rule| rule.reader.as_str()).collect::<Vec<_>>(),
        "object_hashes": objects.iter().map(|o| o.object_hash.as_str()).collect::<Vec<_>>(),
        "containers": objects
            .iter()
            .filter_map(|o| o.container.as_ref().map(|c| json!({ "hash": c.container_hash })))
            .collect::<Vec<_>>(),
        "created_at": storable_date(&message.created_at, "message", &message.hash)?,
    });
    if let Some(invite_hash) = message.invite_hash() {
        document["invite_hash"] = Value::String(invite_hash);
    }
    Ok(document)
}

/// A document id read back as the value it was written from; anything else
/// means the index holds documents this code did not write.
fn parse_id<T, E: std::fmt::Display>(id: &str, parse: impl Fn(&str) -> Result<T, E>) -> Result<T, BackendError> {
    parse(id).map_err(|e| BackendError::Corrupt(format!("elasticsearch document id {id:?}: {e}")))
}

/// A date this index can store, in the RFC 3339 form `date_nanos` parses.
fn storable_date(created_at: &str, what: &str, id: &str) -> Result<String, BackendError> {
    match Micros::parse_rfc3339(created_at) {
        Some(micros) if (0..=MAX_MICROS).contains(&micros.0) => Ok(micros.to_rfc3339()),
        Some(_) => Err(BackendError::Corrupt(format!(
            "created_at {created_at:?} of {what} {id} lies outside 1970-2262, which the index cannot hold"
        ))),
        None => Err(BackendError::Corrupt(format!("created_at {created_at:?} of {what} {id} is not an RFC 3339 date"))),
    }
}

fn keyword() -> Value {
    json!({ "type": "keyword" })
}

/// Index `persona` of section 9.
fn persona_mapping() -> Value {
    json!({
        "dynamic": "strict",
        "properties": {
            "address": keyword(),
            // Stored for completeness, never searched.
            "pubkey": { "type": "keyword", "index": false, "doc_values": false },
            "nickname": keyword(),
            "nickname_lower": keyword(),
            "created_at": { "type": "date_nanos" },
        }
    })
}

/// Index `message` of section 9.
fn message_mapping() -> Value {
    json!({
        "dynamic": "strict",
        "properties": {
            "persona_sender": keyword(),
            "persona_nickname": keyword(),
            "hash": keyword(),
            "dossier_hash": keyword(),
            "type": keyword(),
            "readers": keyword(),
            "object_hashes": keyword(),
            "containers": { "type": "nested", "properties": { "hash": keyword() } },
            "invite_hash": keyword(),
            "created_at": { "type": "date_nanos" },
        }
    })
}

/// Why a request did not succeed.
#[derive(Debug)]
struct Refusal {
    action: &'static str,
    /// The HTTP status; `None` when no response arrived.
    status: Option<u16>,
    /// ES's `error.type`, or empty.
    kind: String,
    reason: String,
}

impl Retryable for Refusal {
    /// Worth another attempt: no answer, overload, or a server-side failure.
    fn is_transient(&self) -> bool {
        match self.status {
            None => true,
            Some(status) => status == 429 || status >= 500,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "elasticsearch {}: {}", self.action, self.reason)
    }
}

impl Refusal {
    /// Counts a failure worth another attempt, by kind. Other refusals are
    /// answers some callers expect (an index that already exists).
    fn count(&self) {
        let kind = match self.status {
            None => "no_answer",
            Some(429) => "overloaded",
            Some(status) if status >= 500 => "server_error",
            Some(_) => return,
        };
        crate::metrics::error(crate::metrics::ELASTICSEARCH, kind);
    }

    async fn from_response(action: &'static str, response: Response) -> Self {
        let status = response.status_code();
        let text = response.text().await.unwrap_or_default();
        let error = serde_json::from_str::<Value>(&text).ok().map(|body| body["error"].clone()).unwrap_or_default();
        // ES answers errors as {"error": {"type", "reason", ...}}; a proxy or
        // a HEAD request may answer with anything or nothing.
        let (kind, reason) = match &error {
            Value::Object(fields) => (
                fields.get("type").and_then(Value::as_str).unwrap_or_default().to_owned(),
                fields.get("reason").and_then(Value::as_str).unwrap_or_default().to_owned(),
            ),
            Value::String(reason) => (String::new(), reason.clone()),
            _ => (String::new(), text.chars().take(500).collect()),
        };
        Self { action, status: Some(status.as_u16()), kind, reason }
    }
}

impl From<Refusal> for BackendError {
    fn from(refusal: Refusal) -> Self {
        let Refusal { action, status, kind, reason } = refusal;
        let hint = if kind == "index_not_found_exception" { " (run `pm bootstrap`)" } else { "" };
        BackendError::Unavailable(match status {
            Some(status) => format!("elasticsearch {action}: {status} {kind}: {reason}{hint}"),
            None => format!("elasticsearch {action}: {reason}"),
        })
    }
}

/// Sends the request `attempt` builds, retrying transient failures, and
/// returns the JSON body of a 2xx answer (`null` when it has none). A 2xx
/// search that timed out or lost a shard counts as a transient failure.
async fn send<F, Fut>(action: &'static str, attempt: F) -> Result<Value, Refusal>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Response, elasticsearch::Error>>,
{
    let attempts = std::sync::atomic::AtomicU32::new(0);
    RETRY
        .retry(action, || async {
            if attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed) > 0 {
                crate::metrics::reconnect(crate::metrics::ELASTICSEARCH);
            }
            crate::metrics::call(crate::metrics::ELASTICSEARCH, action);
            let outcome = match attempt().await {
                Err(error) => Err(Refusal { action, status: None, kind: String::new(), reason: error.to_string() }),
                Ok(response) if response.status_code().is_success() => read_success(action, response).await,
                Ok(response) => Err(Refusal::from_response(action, response).await),
            };
            outcome.inspect_err(Refusal::count)
        })
        .await
}

async fn read_success(action: &'static str, response: Response) -> Result<Value, Refusal> {
    let status = response.status_code().as_u16();
    let text = response.text().await.map_err(|error| Refusal {
        action,
        status: None,
        kind: String::new(),
        reason: format!("reading the answer: {error}"),
    })?;
    if text.is_empty() {
        return Ok(Value::Null);
    }
    let body: Value = serde_json::from_str(&text).map_err(|error| Refusal {
        action,
        status: Some(status),
        kind: String::new(),
        reason: format!("answer is not JSON ({error}): {}", text.chars().take(500).collect::<String>()),
    })?;
    let failed_shards = body["_shards"]["failed"].as_u64().unwrap_or(0);
    let timed_out = body["timed_out"].as_bool().unwrap_or(false);
    if body.get("hits").is_some() && (failed_shards > 0 || timed_out) {
        // Partial results would silently drop messages from a listing.
        return Err(Refusal {
            action,
            status: None,
            kind: String::new(),
            reason: format!("partial results ({failed_shards} shards failed, timed out: {timed_out})"),
        });
    }
    Ok(body)
}
