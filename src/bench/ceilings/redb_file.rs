//! The raw redb path: commits of message-sized records into a temporary
//! database file (one record per commit, then batches), and lookups by key
//! at the bench's concurrency. Blocking: run it on a blocking thread.

use super::{record_key, record_payload, threaded_gets, CeilingError, PHASE_TIME_LIMIT};
use crate::bench::report::{PathRole, RawPath};
use redb::{Database, TableDefinition};
use std::path::Path;
use std::time::Instant;

const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("bench_records");
/// Commits of one record at most.
const SINGLE_COMMITS: usize = 2_000;
/// Records in a batched commit, and batches at most.
const BATCH: usize = 256;
const BATCHES: usize = 40;

fn failed(error: impl std::fmt::Display) -> CeilingError {
    CeilingError { backend: "redb", message: error.to_string() }
}

/// Measures in a new file under `dir`, deleted afterwards.
pub fn measure(dir: &Path, concurrency: usize) -> Result<Vec<RawPath>, CeilingError> {
    let file = tempfile::Builder::new().prefix("pm-bench-").suffix(".redb").tempfile_in(dir).map_err(failed)?;
    let db = Database::create(file.path()).map_err(failed)?;
    let payload = record_payload();
    let mut keys = Vec::new();

    let started = Instant::now();
    for _ in 0..SINGLE_COMMITS {
        if started.elapsed() > PHASE_TIME_LIMIT {
            break;
        }
        let key = record_key();
        let txn = db.begin_write().map_err(failed)?;
        txn.open_table(RECORDS).map_err(failed)?.insert(key.as_str(), payload.as_slice()).map_err(failed)?;
        txn.commit().map_err(failed)?;
        keys.push(key);
    }
    let single = RawPath::throughput("commit of 1 record", PathRole::Reference, keys.len() as u64, started.elapsed());

    let started = Instant::now();
    let mut batched = 0u64;
    for _ in 0..BATCHES {
        if started.elapsed() > PHASE_TIME_LIMIT {
            break;
        }
        let txn = db.begin_write().map_err(failed)?;
        {
            let mut table = txn.open_table(RECORDS).map_err(failed)?;
            for _ in 0..BATCH {
                let key = record_key();
                table.insert(key.as_str(), payload.as_slice()).map_err(failed)?;
                keys.push(key);
            }
        }
        txn.commit().map_err(failed)?;
        batched += BATCH as u64;
    }
    let batch = RawPath::throughput(&format!("commit of {BATCH} records"), PathRole::Write, batched, started.elapsed());

    let get = gets(&db, &keys, concurrency)?;
    drop(db);
    file.close().map_err(failed)?;
    Ok(vec![single, batch, get])
}

/// Lookups of written keys on `concurrency` threads, one read transaction each.
fn gets(db: &Database, keys: &[String], concurrency: usize) -> Result<RawPath, CeilingError> {
    threaded_gets(
        "get by key",
        keys,
        concurrency,
        || Ok(()),
        |(), key| {
            let txn = db.begin_read().map_err(failed)?;
            let found = txn.open_table(RECORDS).map_err(failed)?.get(key).map_err(failed)?;
            Ok(found.is_some())
        },
    )
}
