//! The raw Elasticsearch path: `_bulk` requests of message-sized documents
//! into a throwaway index with one refresh at the end (counted in the
//! time), then gets by id at the bench's concurrency; the index is deleted
//! afterwards.

use super::{record_key, record_payload, unique_suffix, CeilingError, GET_OPS, GET_TIME_LIMIT, PHASE_TIME_LIMIT};
use crate::bench::load::closed_loop;
use crate::bench::report::{Latency, PathRole, RawPath};
use elasticsearch::http::request::JsonBody;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::indices::{IndicesCreateParts, IndicesDeleteParts, IndicesRefreshParts};
use elasticsearch::{BulkParts, Elasticsearch, GetParts};
use indicatif::ProgressBar;
use pm_backends::settings::ElasticSettings;
use pm_models::codec::b64;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Documents in one `_bulk`, and requests at most.
const BULK: usize = 500;
const BULKS: usize = 20;

fn failed(error: impl std::fmt::Display) -> CeilingError {
    CeilingError { backend: "elasticsearch", message: error.to_string() }
}

/// Sends a request and reads its JSON answer; a non-2xx status is an error.
async fn answer(
    what: &str,
    response: Result<elasticsearch::http::response::Response, elasticsearch::Error>,
) -> Result<Value, CeilingError> {
    let response = response.map_err(|e| failed(format!("{what}: {e}")))?;
    let status = response.status_code();
    let body: Value = response.json().await.map_err(|e| failed(format!("{what}: {e}")))?;
    if !status.is_success() {
        return Err(failed(format!("{what}: HTTP {status}: {}", body["error"]["reason"])));
    }
    Ok(body)
}

pub async fn measure(settings: &ElasticSettings, concurrency: usize) -> Result<Vec<RawPath>, CeilingError> {
    let url = url::Url::parse(&settings.url).map_err(|e| failed(format!("url {:?}: {e}", settings.url)))?;
    let transport = TransportBuilder::new(SingleNodeConnectionPool::new(url))
        .timeout(Duration::from_millis(settings.timeout_ms).max(Duration::from_secs(30)))
        .build()
        .map_err(failed)?;
    let client = Elasticsearch::new(transport);
    let index = format!("{}pm-bench-{}", settings.index_prefix, unique_suffix()).to_lowercase();
    // Keywords like the message index, and the record itself stored but not indexed.
    let mapping = json!({ "mappings": { "dynamic": "strict", "properties": {
        "hash": { "type": "keyword" },
        "sender": { "type": "keyword" },
        "created_at": { "type": "date_nanos" },
        "record": { "type": "binary" },
    }}});
    answer("create index", client.indices().create(IndicesCreateParts::Index(&index)).body(mapping).send().await)
        .await?;
    let measured = bulk_and_gets(&client, &index, concurrency).await;
    let deleted =
        answer("delete index", client.indices().delete(IndicesDeleteParts::Index(&[index.as_str()])).send().await)
            .await;
    let paths = measured?;
    deleted?;
    Ok(paths)
}

async fn bulk_and_gets(client: &Elasticsearch, index: &str, concurrency: usize) -> Result<Vec<RawPath>, CeilingError> {
    let record = b64(record_payload());
    let sender = record_key();
    let mut ids: Vec<String> = Vec::new();
    let started = Instant::now();
    for _ in 0..BULKS {
        if started.elapsed() > PHASE_TIME_LIMIT {
            break;
        }
        let batch: Vec<String> = (0..BULK).map(|_| record_key()).collect();
        let mut body: Vec<JsonBody<Value>> = Vec::with_capacity(2 * BULK);
        for id in &batch {
            body.push(json!({ "index": { "_id": id } }).into());
            body.push(
                json!({ "hash": id, "sender": sender, "created_at": "2025-01-01T00:00:00.000001Z", "record": record })
                    .into(),
            );
        }
        let answered = answer("_bulk", client.bulk(BulkParts::Index(index)).body(body).send().await).await?;
        if answered["errors"].as_bool() != Some(false) {
            return Err(failed(format!("_bulk: some documents were refused: {}", answered["items"][0])));
        }
        ids.extend(batch);
    }
    answer("refresh", client.indices().refresh(IndicesRefreshParts::Index(&[index])).send().await).await?;
    let bulk_elapsed = started.elapsed();
    let bulk = RawPath::throughput(
        &format!("_bulk of {BULK}, one refresh at the end"),
        PathRole::Write,
        ids.len() as u64,
        bulk_elapsed,
    );
    if ids.is_empty() {
        return Err(failed("no document was indexed to look up"));
    }

    let (client, index, ids) = (client.clone(), Arc::<str>::from(index), Arc::new(ids));
    let outcome =
        closed_loop(concurrency, GET_OPS, Instant::now() + GET_TIME_LIMIT, &ProgressBar::hidden(), move |_, i| {
            let (client, index, ids) = (client.clone(), index.clone(), ids.clone());
            async move {
                let id = &ids[i * 7919 % ids.len()];
                let response = client.get(GetParts::IndexId(&index, id)).send().await.map_err(|e| e.to_string())?;
                if !response.status_code().is_success() {
                    return Err(format!("HTTP_{}", response.status_code().as_u16()));
                }
                response.bytes().await.map(drop).map_err(|e| e.to_string())
            }
        })
        .await;
    if let Some((code, n)) = outcome.failures.iter().next() {
        return Err(failed(format!("get by id failed {n} times: {code}")));
    }
    let mut get = RawPath::throughput("get by id", PathRole::Read, outcome.succeeded.len() as u64, outcome.elapsed);
    get.latency = Some(Latency::of(&outcome.latency));
    Ok(vec![bulk, get])
}
