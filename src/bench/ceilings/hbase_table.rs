//! The raw HBase path through the Thrift v1 gateway: `mutateRows` of
//! message-sized rows in batches into a throwaway table, then `getRow` at
//! the bench's concurrency (one connection per thread); the table is
//! dropped afterwards. Blocking: run it on a blocking thread.

use super::{record_key, record_payload, threaded_gets, unique_suffix, CeilingError, PHASE_TIME_LIMIT};
use crate::bench::report::{PathRole, RawPath};
use hbase_thrift::hbase::{BatchMutation, ColumnDescriptor, HbaseSyncClient, Mutation, THbaseSyncClient};
use pm_backends::settings::HBaseSettings;
use std::collections::BTreeMap;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};
use thrift::protocol::{TBinaryInputProtocol, TBinaryOutputProtocol};
use thrift::transport::{TBufferedReadTransport, TBufferedWriteTransport};

/// Rows in one `mutateRows`, and calls at most.
const BATCH: usize = 200;
const BATCHES: usize = 50;
/// Creating and dropping a table waits for region assignment.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const COLUMN: &[u8] = b"r:record";

type Client = HbaseSyncClient<
    TBinaryInputProtocol<TBufferedReadTransport<TcpStream>>,
    TBinaryOutputProtocol<TBufferedWriteTransport<TcpStream>>,
>;

fn failed(error: impl std::fmt::Display) -> CeilingError {
    CeilingError { backend: "hbase", message: error.to_string() }
}

fn connect(settings: &HBaseSettings, timeout: Duration) -> Result<Client, CeilingError> {
    let address = (settings.host.as_str(), settings.port)
        .to_socket_addrs()
        .map_err(failed)?
        .next()
        .ok_or_else(|| failed(format!("{} resolves to no address", settings.host)))?;
    let socket = TcpStream::connect_timeout(&address, CALL_TIMEOUT).map_err(failed)?;
    socket.set_read_timeout(Some(timeout)).map_err(failed)?;
    socket.set_write_timeout(Some(timeout)).map_err(failed)?;
    socket.set_nodelay(true).map_err(failed)?;
    let input = TBinaryInputProtocol::new(TBufferedReadTransport::new(socket.try_clone().map_err(failed)?), true);
    let output = TBinaryOutputProtocol::new(TBufferedWriteTransport::new(socket), true);
    Ok(HbaseSyncClient::new(input, output))
}

pub fn measure(settings: &HBaseSettings, concurrency: usize) -> Result<Vec<RawPath>, CeilingError> {
    let table = format!("{}pm_bench_{}", settings.table_prefix, unique_suffix()).into_bytes();
    let mut admin = connect(settings, ADMIN_TIMEOUT)?;
    // One version per cell, as the project's own tables.
    let family =
        ColumnDescriptor::new(b"r:".to_vec(), 1, "NONE".to_owned(), false, "ROW".to_owned(), 0, 0, true, i32::MAX);
    admin.create_table(table.clone(), vec![family]).map_err(|e| failed(format!("create table: {e}")))?;
    let measured = puts_and_gets(settings, &table, concurrency);
    let dropped = admin
        .disable_table(table.clone())
        .and_then(|()| admin.delete_table(table.clone()))
        .map_err(|e| failed(format!("drop table {}: {e}", String::from_utf8_lossy(&table))));
    let paths = measured?;
    dropped?;
    Ok(paths)
}

fn puts_and_gets(settings: &HBaseSettings, table: &[u8], concurrency: usize) -> Result<Vec<RawPath>, CeilingError> {
    let mut client = connect(settings, CALL_TIMEOUT)?;
    let payload = record_payload();
    let mut keys: Vec<String> = Vec::new();
    let started = Instant::now();
    for _ in 0..BATCHES {
        if started.elapsed() > PHASE_TIME_LIMIT {
            break;
        }
        let batch: Vec<String> = (0..BATCH).map(|_| record_key()).collect();
        let rows = batch
            .iter()
            .map(|key| {
                // Written to the WAL before HBase answers, like the store's puts.
                let put = Mutation::new(false, COLUMN.to_vec(), payload.clone(), true);
                BatchMutation::new(key.as_bytes().to_vec(), vec![put])
            })
            .collect();
        client.mutate_rows(table.to_vec(), rows, BTreeMap::new()).map_err(|e| failed(format!("mutateRows: {e}")))?;
        keys.extend(batch);
    }
    let put_elapsed = started.elapsed();
    let puts = RawPath::throughput(&format!("mutateRows of {BATCH}"), PathRole::Write, keys.len() as u64, put_elapsed);
    Ok(vec![puts, gets(settings, table, &keys, concurrency)?])
}

/// `getRow` of written rows on `concurrency` threads, one connection each.
fn gets(settings: &HBaseSettings, table: &[u8], keys: &[String], concurrency: usize) -> Result<RawPath, CeilingError> {
    threaded_gets(
        "getRow",
        keys,
        concurrency,
        || connect(settings, CALL_TIMEOUT),
        |client, key| {
            let rows = client
                .get_row(table.to_vec(), key.as_bytes().to_vec(), BTreeMap::new())
                .map_err(|e| failed(format!("getRow: {e}")))?;
            Ok(!rows.is_empty())
        },
    )
}
