//! The HBase backend: the [`RecordStore`] (tables `persona` and `message`)
//! and the [`ClaimStore`] (table `claim`) of PROTOCOL.md section 9, spoken
//! through the HBase Thrift v1 gateway (buffered transport, binary protocol).
//!
//! Guarantees:
//! - **Idempotent writes, in bulk.** A record is a row of all its columns
//!   under its natural row key (address, `messageHash`), written to the WAL;
//!   a batch is one `mutateRows` per table, and `put` returns once HBase
//!   acknowledged it. Reads of many rows are one `getRows`. Writing the
//!   same record again stores the same cells. Optional columns that are
//!   `None` are left out, and a write never deletes a column: a record
//!   under a key never changes, so a rewrite is always the same record.
//! - **Put-if-absent claims.** A claim is a `checkAndPut` on `claim:by`,
//!   atomic under HBase's row lock, so any number of processes may claim at
//!   once and two conflicting claims never both win. A claim is free when
//!   `claim:by` is absent or empty: `checkAndPut` goes out with an empty
//!   expected value, and HBase's check for an empty value is its check for
//!   an absent one (an unset value, `ifNotExists`, also matches an empty
//!   cell; `backends/tests/hbase.rs` pins both against the live gateway).
//!   Releasing is itself a `checkAndPut` (expected: the holder, new value:
//!   empty), so a release never drops someone else's claim, and the claim
//!   table never holds Delete markers, which in HBase mask any later put
//!   with the same millisecond timestamp (a claim retaken right after a
//!   release could otherwise silently vanish). A released claim therefore
//!   stays as a row whose `claim:by` is empty; [`ClaimStore::holder`] reads
//!   it as free.
//! - **All-or-nothing.** [`ClaimStore::claim`] takes the keys in order and,
//!   on a conflict or a failure, gives back the ones it took.
//! - **Reconnects.** Connections come from a small pool. One that is idle
//!   past half the gateway's 60 s read timeout, or that the gateway already
//!   closed (probed with a non-blocking peek), is never reused; a call whose
//!   connection breaks is retried once on a freshly dialled connection, so a
//!   gateway restart costs at most the calls in flight. All calls run on the
//!   blocking thread pool with connect, read and write timeouts.
//! - **Shared round trips.** Lookups by key (personas, messages, claim
//!   holders) and the outbox's pending rows made by concurrent callers are
//!   gathered into one `getRows` or `mutateRows` ([`crate::coalesce`]): a
//!   busy authorizer or reader makes a few calls for many requests, not one
//!   each. Removals of pending rows, which no answer waits for, linger 50 ms
//!   to gather more. Claims stay one `checkAndPut` each.
//!
//! A claim retried after its connection broke mid-call cannot tell its own
//! applied put from the same message's concurrent claim; it counts a key held
//! by the same message hash as its own (at worst the same envelope is queued
//! twice, which the writer stores once).

use crate::coalesce::{BatchLimits, Coalescer};
use crate::retry::{RetryPolicy, Retryable};
use crate::settings::HBaseSettings;
use crate::{
    pending_row_key, BackendError, ClaimKey, ClaimOutcome, ClaimStore, PendingAdmission, RecordBatch, RecordStore,
};
use async_trait::async_trait;
use hbase_thrift::hbase::{
    AlreadyExists, BatchMutation, ColumnDescriptor, HbaseSyncClient, IOError, IllegalArgument, Mutation,
};
use hbase_thrift::hbase::{TCell, THbaseSyncClient};
use pm_models::codec::from_msgpack;
use pm_models::records::{MessageRecord, PersonaRecord};
use pm_models::time::Micros;
use pm_models::{Address, MessageHash};
use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use thrift::protocol::{TBinaryInputProtocol, TBinaryOutputProtocol};
use thrift::transport::{TBufferedReadTransport, TBufferedWriteTransport};
use tokio::sync::Semaphore;

/// The gateway drops a connection idle for 60 s
/// (`hbase.thrift.server.socket.read.timeout`); retire ours well before, so
/// a request never races the server closing the socket under it.
const MAX_IDLE: Duration = Duration::from_secs(30);
/// A call whose connection broke is tried once more, at once, on a freshly
/// dialled connection: a gateway restart costs at most the calls in flight.
const RECONNECT: RetryPolicy =
    RetryPolicy { max_attempts: Some(2), initial_delay: Duration::ZERO, max_delay: Duration::ZERO, multiplier: 1 };
/// Table creation waits for region assignment, which can take longer than
/// an ordinary call.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);

const PERSONA: &str = "persona";
const MESSAGE: &str = "message";
const CLAIM: &str = "claim";
const CLAIM_BY: &str = "claim:by";
/// The column of a pending admission's row (`pending:…` in table `claim`).
const CLAIM_PENDING: &str = "claim:pending";
/// Batches of gathered lookups and pending-row writes: one at a time of
/// each kind, of at most 256 rows (a pending row is about one envelope).
/// Against two at once, at concurrency 32, HBase got 0.68 rather than 0.88
/// `getRows` and `mutateRows` an envelope, its Thrift gateway used about
/// 8 % less CPU, and stored/s did not change beyond the noise.
const GATHERED: BatchLimits = BatchLimits::eager(1, 256);
/// Removals of pending rows, which no answer waits for (a lost one is the
/// sweeper's): they linger 50 ms to leave together, one request for all the
/// admissions of that time instead of one for every two or three.
const REMOVALS: BatchLimits = BatchLimits { in_flight: 1, max_items: 1024, linger: Duration::from_millis(50) };

type Client = HbaseSyncClient<
    TBinaryInputProtocol<TBufferedReadTransport<TcpStream>>,
    TBinaryOutputProtocol<TBufferedWriteTransport<TcpStream>>,
>;

/// One gateway connection.
struct Connection {
    client: Client,
    /// Another handle on the client's socket, for probing and timeouts.
    socket: TcpStream,
    idle_since: Instant,
}

impl Connection {
    fn dial(addresses: &[SocketAddr], timeout: Duration) -> io::Result<Self> {
        let mut last_error = io::Error::new(io::ErrorKind::NotFound, "the host resolves to no address");
        for address in addresses {
            match TcpStream::connect_timeout(address, timeout) {
                Ok(socket) => return Self::over(socket, timeout),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    fn over(socket: TcpStream, timeout: Duration) -> io::Result<Self> {
        socket.set_read_timeout(Some(timeout))?;
        socket.set_write_timeout(Some(timeout))?;
        // One write per call, then a wait for the answer: never delay it.
        socket.set_nodelay(true)?;
        let input = TBinaryInputProtocol::new(TBufferedReadTransport::new(socket.try_clone()?), true);
        let output = TBinaryOutputProtocol::new(TBufferedWriteTransport::new(socket.try_clone()?), true);
        Ok(Self { client: HbaseSyncClient::new(input, output), socket, idle_since: Instant::now() })
    }

    /// True when the connection is young enough and the gateway has not
    /// closed it: between calls nothing may be waiting to be read, so a
    /// non-blocking peek must find no data and no end of stream.
    fn is_reusable(&self) -> bool {
        if self.idle_since.elapsed() > MAX_IDLE || self.socket.set_nonblocking(true).is_err() {
            return false;
        }
        let quiet = matches!(self.socket.peek(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        self.socket.set_nonblocking(false).is_ok() && quiet
    }
}

/// Why one attempt of a call failed.
enum Failure {
    /// The gateway cannot be reached at all.
    Unreachable(String),
    /// The connection failed or timed out during the call: whether HBase
    /// applied it is unknown, and the connection is gone.
    Broken(String),
    /// The gateway answered with an error.
    Refused(String),
}

impl Retryable for Failure {
    /// Only a broken connection is worth another attempt on a new one.
    fn is_transient(&self) -> bool {
        matches!(self, Self::Broken(_))
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable(m) | Self::Broken(m) | Self::Refused(m) => f.write_str(m),
        }
    }
}

impl Failure {
    /// Counts a failed attempt, by kind.
    fn count(&self) {
        let kind = match self {
            Self::Unreachable(_) => "unreachable",
            Self::Broken(_) => "broken_connection",
            Self::Refused(_) => "refused",
        };
        crate::metrics::error(crate::metrics::HBASE, kind);
    }

    fn into_backend(self) -> BackendError {
        match self {
            Self::Unreachable(m) | Self::Broken(m) | Self::Refused(m) => BackendError::Unavailable(m),
        }
    }
}

/// The first line of an HBase exception (the gateway sends whole stack traces).
fn first_line(text: Option<&str>) -> String {
    text.and_then(|t| t.lines().next()).unwrap_or("no message").to_owned()
}

fn describe_user_error(error: &(dyn std::error::Error + Send + Sync + 'static)) -> String {
    if let Some(e) = error.downcast_ref::<IOError>() {
        format!("hbase error: {}", first_line(e.message.as_deref()))
    } else if let Some(e) = error.downcast_ref::<IllegalArgument>() {
        format!("hbase refused an argument: {}", first_line(e.message.as_deref()))
    } else if let Some(e) = error.downcast_ref::<AlreadyExists>() {
        format!("hbase: already exists: {}", first_line(e.message.as_deref()))
    } else {
        error.to_string()
    }
}

/// A call's result and whether its connection can serve the next call.
fn classify(error: thrift::Error) -> (Failure, bool) {
    match error {
        // The stream is broken or out of step with the server.
        thrift::Error::Transport(e) => (Failure::Broken(format!("hbase thrift transport: {e}")), false),
        thrift::Error::Protocol(e) => (Failure::Broken(format!("hbase thrift protocol: {e}")), false),
        // The gateway answered, but an answer we did not expect may leave the
        // stream out of step (e.g. a sequence number mismatch): drop it.
        thrift::Error::Application(e) => (Failure::Refused(format!("hbase thrift gateway: {e}")), false),
        thrift::Error::User(e) => (Failure::Refused(describe_user_error(e.as_ref())), true),
    }
}

/// The table names of one deployment.
struct Tables {
    persona: Vec<u8>,
    message: Vec<u8>,
    claim: Vec<u8>,
}

struct Inner {
    settings: HBaseSettings,
    tables: Tables,
    idle: Mutex<Vec<Connection>>,
    /// Bounds the calls in flight, hence the connections open, to `pool_size`.
    permits: Arc<Semaphore>,
}

impl Inner {
    fn endpoint(&self) -> String {
        format!("{}:{}", self.settings.host, self.settings.port)
    }

    fn dial(&self) -> Result<Connection, Failure> {
        let endpoint = self.endpoint();
        let unreachable = |e: io::Error| Failure::Unreachable(format!("hbase thrift gateway {endpoint}: {e}"));
        let addresses: Vec<SocketAddr> =
            (self.settings.host.as_str(), self.settings.port).to_socket_addrs().map_err(unreachable)?.collect();
        Connection::dial(&addresses, self.settings.timeout()).map_err(unreachable)
    }

    /// A pooled connection that is still good, else a new one.
    fn checkout(&self) -> Result<Connection, Failure> {
        loop {
            let pooled = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
            match pooled {
                Some(connection) if connection.is_reusable() => return Ok(connection),
                Some(_stale) => {
                    tracing::debug!(endpoint = %self.endpoint(), "retiring an idle or closed hbase connection")
                }
                None => return self.dial(),
            }
        }
    }

    fn checkin(&self, mut connection: Connection) {
        connection.idle_since = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.settings.pool_size.max(1) as usize {
            idle.push(connection);
        }
    }

    /// One attempt of `op`, on a pooled connection or on a new one.
    fn attempt<T>(
        &self,
        name: &'static str,
        fresh: bool,
        op: &mut impl FnMut(&mut Connection) -> thrift::Result<T>,
    ) -> Result<T, Failure> {
        if fresh {
            crate::metrics::reconnect(crate::metrics::HBASE);
        }
        let mut connection = if fresh { self.dial() } else { self.checkout() }.inspect_err(Failure::count)?;
        crate::metrics::call(crate::metrics::HBASE, name);
        match op(&mut connection) {
            Ok(value) => {
                self.checkin(connection);
                Ok(value)
            }
            Err(error) => {
                let (failure, reusable) = classify(error);
                failure.count();
                if reusable {
                    self.checkin(connection);
                }
                Err(failure)
            }
        }
    }

    /// Runs `op`, trying it once more on a new connection when its
    /// connection broke. Only for calls that may be applied twice.
    fn call<T>(
        &self,
        name: &'static str,
        mut op: impl FnMut(&mut Connection) -> thrift::Result<T>,
    ) -> Result<T, BackendError> {
        let mut fresh = false;
        RECONNECT
            .retry_blocking(name, || {
                let attempt = self.attempt(name, fresh, &mut op);
                fresh = true;
                attempt
            })
            .map_err(Failure::into_backend)
    }

    // ----- records -------------------------------------------------------

    /// Writes rows of `table` in one `mutateRows`: `(row key, cells)` each.
    fn put_rows(&self, table: &[u8], rows: Vec<(String, RowCells)>) -> Result<(), BackendError> {
        if rows.is_empty() {
            return Ok(());
        }
        let batches: Vec<BatchMutation> = rows
            .into_iter()
            .map(|(row, cells)| {
                let mutations = cells.into_iter().map(|(column, value)| put(column.into_bytes(), value)).collect();
                BatchMutation::new(row.into_bytes(), Some(mutations))
            })
            .collect();
        self.call("mutateRows", |c| c.client.mutate_rows(table.to_vec(), batches.clone(), BTreeMap::new()))
    }

    /// Deletes `column` (every version) from each of `rows` of `table` in
    /// one `mutateRows`.
    fn delete_column(&self, table: &[u8], column: &str, rows: Vec<String>) -> Result<(), BackendError> {
        if rows.is_empty() {
            return Ok(());
        }
        let batches: Vec<BatchMutation> = rows
            .into_iter()
            .map(|row| {
                let delete = Mutation::new(true, column.as_bytes().to_vec(), None, true);
                BatchMutation::new(row.into_bytes(), Some(vec![delete]))
            })
            .collect();
        self.call("mutateRows", |c| c.client.mutate_rows(table.to_vec(), batches.clone(), BTreeMap::new()))
    }

    /// The cells of each of `rows` by column name (`family:qualifier`), in
    /// order, in one `getRows`; `None` for a row that does not exist.
    fn get_rows(&self, table: &[u8], rows: &[String]) -> Result<Vec<Option<Cells>>, BackendError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<Vec<u8>> = rows.iter().map(|row| row.as_bytes().to_vec()).collect();
        let found = self.call("getRows", |c| c.client.get_rows(table.to_vec(), keys.clone(), BTreeMap::new()))?;
        let by_row: BTreeMap<Vec<u8>, Cells> = found
            .into_iter()
            .filter_map(|r| Some((r.row?, r.columns.filter(|columns| !columns.is_empty()).map(Cells)?)))
            .collect();
        // A key asked for twice gets its row twice.
        Ok(keys.iter().map(|key| by_row.get(key).cloned()).collect())
    }

    // ----- claims ------------------------------------------------------

    /// The holder of a claim row (`claim:by` when not empty).
    fn claim_holder(&self, row: &str) -> Result<Option<Vec<u8>>, BackendError> {
        let rows = self.call("getRowWithColumns", |c| {
            c.client.get_row_with_columns(
                self.tables.claim.clone(),
                row.as_bytes().to_vec(),
                vec![CLAIM_BY.into()],
                BTreeMap::new(),
            )
        })?;
        let value = rows.into_iter().next().and_then(|r| r.columns).and_then(|mut c| c.remove(CLAIM_BY.as_bytes()));
        Ok(value.and_then(|cell| cell.value).filter(|v| !v.is_empty()))
    }

    /// `checkAndPut` of `claim:by`: when it equals `expected` (empty: absent
    /// or empty), it becomes `value`. True when the put was applied.
    fn swap_claim<'a>(
        &'a self,
        row: &'a str,
        expected: &'a str,
        value: &'a str,
    ) -> impl FnMut(&mut Connection) -> thrift::Result<bool> + 'a {
        move |c: &mut Connection| {
            c.client.check_and_put(
                self.tables.claim.clone(),
                row.as_bytes().to_vec(),
                CLAIM_BY.into(),
                expected.as_bytes().to_vec(),
                put(CLAIM_BY.into(), value.as_bytes().to_vec()),
                BTreeMap::new(),
            )
        }
    }

    /// Takes one claim row for `by`: true when taken, false when held.
    fn take(&self, row: &str, by: &str) -> Result<bool, BackendError> {
        let mut swap = self.swap_claim(row, "", by);
        match self.attempt("checkAndPut", false, &mut swap) {
            Err(Failure::Broken(first)) => {
                // The put may have been applied before the connection broke:
                // look before trying again.
                tracing::warn!(row, error = %first, "hbase connection broke during a claim; checking its holder");
                match self.claim_holder(row)? {
                    None => self.attempt("checkAndPut", true, &mut swap).map_err(Failure::into_backend),
                    Some(holder) => Ok(holder == by.as_bytes()),
                }
            }
            other => other.map_err(Failure::into_backend),
        }
    }

    /// Frees a claim row if `by` holds it.
    fn give_back(&self, row: &str, by: &str) -> Result<(), BackendError> {
        self.call("checkAndPut", self.swap_claim(row, by, "")).map(drop)
    }

    /// Pending admissions begun before `before` (rows sort by age), in one scan.
    fn pending_before(&self, before: Micros, limit: usize) -> Result<Vec<PendingAdmission>, BackendError> {
        let stop = pending_row_key(before, "").into_bytes();
        let rows = self.call("scan pending", |c| {
            let table = self.tables.claim.clone();
            let id = c.client.scanner_open_with_stop(
                table,
                b"pending:".to_vec(),
                stop.clone(),
                vec![CLAIM_PENDING.into()],
                BTreeMap::new(),
            )?;
            let rows = c.client.scanner_get_list(id, limit.min(i32::MAX as usize) as i32);
            let closed = c.client.scanner_close(id);
            let rows = rows?;
            closed?;
            Ok(rows)
        })?;
        rows.into_iter()
            .filter_map(|row| row.columns.and_then(|mut columns| columns.remove(CLAIM_PENDING.as_bytes())))
            .filter_map(|cell| cell.value)
            .map(|bytes| PendingAdmission::from_bytes(&bytes))
            .collect()
    }

    fn claim_all(&self, keys: &[ClaimKey], by: &str) -> Result<ClaimOutcome, BackendError> {
        let mut taken: Vec<String> = Vec::with_capacity(keys.len());
        for key in keys {
            let row = key.row_key();
            match self.take(&row, by) {
                Ok(true) => taken.push(row),
                Ok(false) => {
                    self.roll_back(&taken, by);
                    return Ok(ClaimOutcome::Conflict(key.clone()));
                }
                Err(error) => {
                    // The failed put may have landed: give it back too.
                    taken.push(row);
                    self.roll_back(&taken, by);
                    return Err(error);
                }
            }
        }
        Ok(ClaimOutcome::Claimed)
    }

    fn roll_back(&self, rows: &[String], by: &str) {
        for row in rows.iter().rev() {
            if let Err(error) = self.give_back(row, by) {
                tracing::error!(row = %row, by, error = %error, "a claim taken by a failed claim could not be given back");
            }
        }
    }

    // ----- tables ------------------------------------------------------

    fn create_tables(&self) -> Result<(), BackendError> {
        for (table, family) in
            [(&self.tables.persona, PERSONA), (&self.tables.message, MESSAGE), (&self.tables.claim, CLAIM)]
        {
            self.call("createTable", |c| {
                c.socket.set_read_timeout(Some(ADMIN_TIMEOUT.max(self.settings.timeout())))?;
                let created = create_table(&mut c.client, table, family);
                c.socket.set_read_timeout(Some(self.settings.timeout()))?;
                created
            })?;
        }
        Ok(())
    }
}

#[cfg(any(test, feature = "testsuite"))]
impl Inner {
    /// Disables and deletes the three tables where they exist.
    fn drop_tables(&self) -> Result<(), BackendError> {
        for table in [&self.tables.persona, &self.tables.message, &self.tables.claim] {
            self.call("deleteTable", |c| {
                if !c.client.get_table_names()?.iter().any(|name| name == table) {
                    return Ok(());
                }
                c.socket.set_read_timeout(Some(ADMIN_TIMEOUT.max(self.settings.timeout())))?;
                let dropped = c
                    .client
                    .is_table_enabled(table.to_vec())
                    .and_then(|enabled| if enabled { c.client.disable_table(table.to_vec()) } else { Ok(()) })
                    .and_then(|()| c.client.delete_table(table.to_vec()));
                c.socket.set_read_timeout(Some(self.settings.timeout()))?;
                dropped
            })?;
        }
        Ok(())
    }
}

/// Creates `table` with its one column family, or enables it if it exists.
fn create_table(client: &mut Client, table: &[u8], family: &str) -> thrift::Result<()> {
    if !client.get_table_names()?.iter().any(|name| name == table) {
        // One version per cell: rewrites are idempotent and only the newest
        // value is ever read. HBase's defaults otherwise (bloom filter on rows).
        let descriptor = ColumnDescriptor::new(
            format!("{family}:").into_bytes(),
            1,
            "NONE".to_owned(),
            false,
            "ROW".to_owned(),
            0,
            0,
            true,
            i32::MAX,
        );
        match client.create_table(table.to_vec(), vec![descriptor]) {
            Err(thrift::Error::User(e)) if e.is::<AlreadyExists>() => {}
            other => other?,
        }
    }
    if !client.is_table_enabled(table.to_vec())? {
        client.enable_table(table.to_vec())?;
    }
    Ok(())
}

/// A put of one cell, written to the WAL before HBase acknowledges it.
fn put(column: Vec<u8>, value: Vec<u8>) -> Mutation {
    Mutation::new(false, column, value, true)
}

/// The cells of one row, by column name.
#[derive(Clone)]
struct Cells(BTreeMap<Vec<u8>, TCell>);

impl Cells {
    fn bytes(&self, column: &str) -> Option<&[u8]> {
        self.0.get(column.as_bytes()).and_then(|cell| cell.value.as_deref())
    }

    fn optional(&self, column: &str) -> Result<Option<String>, BackendError> {
        self.bytes(column)
            .map(|bytes| {
                String::from_utf8(bytes.to_vec())
                    .map_err(|_| BackendError::Corrupt(format!("hbase column {column} is not UTF-8")))
            })
            .transpose()
    }

    fn required(&self, column: &str) -> Result<String, BackendError> {
        self.optional(column)?.ok_or_else(|| BackendError::Corrupt(format!("hbase column {column} is missing")))
    }

    fn required_bytes(&self, column: &str) -> Result<&[u8], BackendError> {
        self.bytes(column).ok_or_else(|| BackendError::Corrupt(format!("hbase column {column} is missing")))
    }
}

/// The cells of a row to write: `(family:qualifier, value)` each.
type RowCells = Vec<(String, Vec<u8>)>;

fn cell(family: &str, qualifier: &str, value: impl Into<Vec<u8>>) -> (String, Vec<u8>) {
    (format!("{family}:{qualifier}"), value.into())
}

/// The columns of a persona row; optional columns are left out when `None`.
fn persona_cells(persona: &PersonaRecord) -> RowCells {
    let mut cells = vec![
        cell(PERSONA, "address", persona.address.as_str()),
        cell(PERSONA, "pubkey", persona.pubkey.as_str()),
        cell(PERSONA, "nickname", persona.nickname.as_str()),
        cell(PERSONA, "created_at", persona.created_at.as_str()),
    ];
    for (qualifier, value) in [
        ("registration_hash", &persona.registration_hash),
        ("invite_hash", &persona.invite_hash),
        ("inviter", &persona.inviter),
    ] {
        if let Some(value) = value {
            cells.push(cell(PERSONA, qualifier, value.as_str()));
        }
    }
    cells
}

fn persona_from(cells: &Cells) -> Result<PersonaRecord, BackendError> {
    Ok(PersonaRecord {
        address: cells.required("persona:address")?,
        pubkey: cells.required("persona:pubkey")?,
        nickname: cells.required("persona:nickname")?,
        created_at: cells.required("persona:created_at")?,
        registration_hash: cells.optional("persona:registration_hash")?,
        invite_hash: cells.optional("persona:invite_hash")?,
        inviter: cells.optional("persona:inviter")?,
    })
}

fn message_cells(message: &MessageRecord) -> RowCells {
    let mut cells = vec![
        cell(MESSAGE, "persona_sender", message.persona_sender.as_str()),
        cell(MESSAGE, "persona_pubkey", message.persona_pubkey.as_str()),
        cell(MESSAGE, "persona_nickname", message.persona_nickname.as_str()),
        cell(MESSAGE, "type", message.message_type.to_string()),
        cell(MESSAGE, "hash", message.hash.as_str()),
        cell(MESSAGE, "signature", message.signature.as_str()),
        cell(MESSAGE, "timestamp", message.timestamp.as_str()),
        cell(MESSAGE, "dossier_hash", message.dossier_hash.as_str()),
        cell(MESSAGE, "body_hash", message.body_hash.as_str()),
        cell(MESSAGE, "acl", message.acl_column()),
        cell(MESSAGE, "objects", message.objects_column()),
        cell(MESSAGE, "message", message.message.as_str()),
        cell(MESSAGE, "created_at", message.created_at.as_str()),
        cell(MESSAGE, "message_sign", message.message_sign.as_str()),
    ];
    if let Some(receipt) = &message.receipt {
        cells.push(cell(MESSAGE, "receipt", receipt.as_str()));
    }
    cells
}

fn message_from(cells: &Cells) -> Result<MessageRecord, BackendError> {
    let message_type = cells.required("message:type")?;
    Ok(MessageRecord {
        persona_sender: cells.required("message:persona_sender")?,
        persona_pubkey: cells.required("message:persona_pubkey")?,
        persona_nickname: cells.required("message:persona_nickname")?,
        message_type: message_type.parse().map_err(|_| {
            BackendError::Corrupt(format!("hbase column message:type {message_type:?} is not a type code"))
        })?,
        hash: cells.required("message:hash")?,
        signature: cells.required("message:signature")?,
        timestamp: cells.required("message:timestamp")?,
        dossier_hash: cells.required("message:dossier_hash")?,
        body_hash: cells.required("message:body_hash")?,
        acl: from_msgpack(cells.required_bytes("message:acl")?)
            .map_err(|e| BackendError::Corrupt(format!("hbase column message:acl: {e}")))?,
        objects: from_msgpack(cells.required_bytes("message:objects")?)
            .map_err(|e| BackendError::Corrupt(format!("hbase column message:objects: {e}")))?,
        message: cells.required("message:message")?,
        created_at: cells.required("message:created_at")?,
        message_sign: cells.required("message:message_sign")?,
        receipt: cells.optional("message:receipt")?,
    })
}

/// The HBase record and claim store; cheap to clone (one shared pool).
#[derive(Clone)]
pub struct HBaseStore {
    inner: Arc<Inner>,
    gathered: Arc<Gathered>,
}

/// The calls concurrent callers share (module doc). The batching tasks
/// hold the pool, not the store, so they end when the last clone is dropped.
struct Gathered {
    personas: Coalescer<String, Option<Cells>>,
    messages: Coalescer<String, Option<Cells>>,
    /// `claim:by` of claim rows, when not empty.
    holders: Coalescer<String, Option<Vec<u8>>>,
    put_pending: Coalescer<(String, RowCells), ()>,
    remove_pending: Coalescer<String, ()>,
}

impl Gathered {
    fn spawn(inner: &Arc<Inner>) -> Self {
        fn get_rows(inner: &Arc<Inner>, table: fn(&Tables) -> &Vec<u8>) -> Coalescer<String, Option<Cells>> {
            let inner = inner.clone();
            Coalescer::spawn(GATHERED, move |rows: Vec<String>| {
                blocking(inner.clone(), move |inner| inner.get_rows(table(&inner.tables), &rows))
            })
        }
        let (holders_inner, put_inner, remove_inner) = (inner.clone(), inner.clone(), inner.clone());
        Self {
            personas: get_rows(inner, |t| &t.persona),
            messages: get_rows(inner, |t| &t.message),
            holders: Coalescer::spawn(GATHERED, move |rows: Vec<String>| {
                blocking(holders_inner.clone(), move |inner| {
                    let found = inner.get_rows(&inner.tables.claim, &rows)?;
                    Ok(found
                        .into_iter()
                        .map(|cells| {
                            cells.and_then(|c| c.bytes(CLAIM_BY).map(<[u8]>::to_vec)).filter(|v| !v.is_empty())
                        })
                        .collect())
                })
            }),
            put_pending: Coalescer::spawn(GATHERED, move |rows: Vec<(String, RowCells)>| {
                let count = rows.len();
                blocking(put_inner.clone(), move |inner| {
                    inner.put_rows(&inner.tables.claim, rows).map(|()| vec![(); count])
                })
            }),
            remove_pending: Coalescer::spawn(REMOVALS, move |rows: Vec<String>| {
                let count = rows.len();
                blocking(remove_inner.clone(), move |inner| {
                    inner.delete_column(&inner.tables.claim, CLAIM_PENDING, rows).map(|()| vec![(); count])
                })
            }),
        }
    }
}

/// Runs blocking Thrift work on the blocking pool, at most `pool_size` at once.
async fn blocking<T: Send + 'static>(
    inner: Arc<Inner>,
    work: impl FnOnce(&Inner) -> Result<T, BackendError> + Send + 'static,
) -> Result<T, BackendError> {
    let permit = inner.permits.clone().acquire_owned().await.expect("the permit semaphore is never closed");
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work(&inner)
    })
    .await
    .map_err(|e| BackendError::Unavailable(format!("hbase call did not complete: {e}")))?
}

impl std::fmt::Debug for HBaseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HBaseStore").field("settings", &self.inner.settings).finish_non_exhaustive()
    }
}

impl HBaseStore {
    /// Opens a first connection to the gateway, so a wrong address fails here.
    pub async fn connect(settings: HBaseSettings) -> Result<Self, BackendError> {
        let prefix = &settings.table_prefix;
        let tables = Tables {
            persona: format!("{prefix}{PERSONA}").into_bytes(),
            message: format!("{prefix}{MESSAGE}").into_bytes(),
            claim: format!("{prefix}{CLAIM}").into_bytes(),
        };
        let permits = Arc::new(Semaphore::new(settings.pool_size.max(1) as usize));
        let inner = Arc::new(Inner { settings, tables, idle: Mutex::new(Vec::new()), permits });
        let store = Self { gathered: Arc::new(Gathered::spawn(&inner)), inner };
        RecordStore::ping(&store).await?;
        Ok(store)
    }

    /// Creates the tables `persona`, `message` and `claim` (each with one
    /// column family named like the table) when missing, and enables them
    /// when disabled. Idempotent; `pm bootstrap` calls it.
    pub async fn create_tables(&self) -> Result<(), BackendError> {
        self.blocking(|inner| inner.create_tables()).await
    }

    /// Deletes the three tables and everything in them: for tests and for
    /// tearing down a deployment, never called by a role.
    #[cfg(any(test, feature = "testsuite"))]
    pub async fn drop_tables(&self) -> Result<(), BackendError> {
        self.blocking(|inner| inner.drop_tables()).await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T, BackendError> + Send + 'static,
    ) -> Result<T, BackendError> {
        blocking(self.inner.clone(), work).await
    }
}

#[async_trait]
impl RecordStore for HBaseStore {
    /// Personas first, then messages, each table in one `mutateRows`.
    async fn put(&self, batch: &RecordBatch) -> Result<(), BackendError> {
        let personas: Vec<_> = batch.personas.iter().map(|p| (p.address.clone(), persona_cells(p))).collect();
        let messages: Vec<_> = batch.messages.iter().map(|m| (m.hash.clone(), message_cells(m))).collect();
        self.blocking(move |inner| {
            inner.put_rows(&inner.tables.persona, personas)?;
            inner.put_rows(&inner.tables.message, messages)
        })
        .await
    }

    async fn personas(&self, addresses: &[Address]) -> Result<Vec<Option<PersonaRecord>>, BackendError> {
        let found = self.gathered.personas.call(addresses.iter().map(Address::to_string).collect()).await?;
        found.iter().map(|cells| cells.as_ref().map(persona_from).transpose()).collect()
    }

    async fn messages(&self, hashes: &[MessageHash]) -> Result<Vec<Option<MessageRecord>>, BackendError> {
        let found = self.gathered.messages.call(hashes.iter().map(MessageHash::to_string).collect()).await?;
        found.iter().map(|cells| cells.as_ref().map(message_from).transpose()).collect()
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.blocking(|inner| inner.call("getTableNames", |c| c.client.get_table_names().map(drop))).await
    }
}

#[async_trait]
impl ClaimStore for HBaseStore {
    /// Takes the keys one by one, in order, with `checkAndPut`; on a key
    /// already held (even by `by`) gives back those this call took.
    ///
    /// # Panics
    /// When `by` is empty: an empty `claim:by` means "free".
    async fn claim(&self, keys: &[ClaimKey], by: &str) -> Result<ClaimOutcome, BackendError> {
        assert!(!by.is_empty(), "claims are held by a message hash, never by an empty string");
        let (keys, by) = (keys.to_vec(), by.to_owned());
        self.blocking(move |inner| inner.claim_all(&keys, &by)).await
    }

    async fn release(&self, keys: &[ClaimKey], by: &str) -> Result<(), BackendError> {
        if by.is_empty() {
            return Ok(());
        }
        let (keys, by) = (keys.to_vec(), by.to_owned());
        self.blocking(move |inner| keys.iter().try_for_each(|key| inner.give_back(&key.row_key(), &by))).await
    }

    async fn put_pending(&self, pending: &PendingAdmission) -> Result<(), BackendError> {
        let row = (pending.row_key(), vec![(CLAIM_PENDING.to_owned(), pending.to_bytes())]);
        self.gathered.put_pending.call(vec![row]).await.map(drop)
    }

    async fn remove_pending(&self, pending: &PendingAdmission) -> Result<(), BackendError> {
        self.gathered.remove_pending.call(vec![pending.row_key()]).await.map(drop)
    }

    async fn pending_before(&self, before: Micros, limit: usize) -> Result<Vec<PendingAdmission>, BackendError> {
        self.blocking(move |inner| inner.pending_before(before, limit)).await
    }

    async fn holder(&self, key: &ClaimKey) -> Result<Option<String>, BackendError> {
        let row = key.row_key();
        let held = self.gathered.holders.call(vec![row.clone()]).await?.pop().flatten();
        held.map(|bytes| {
            String::from_utf8(bytes)
                .map_err(|_| BackendError::Corrupt(format!("claim row {row:?} holds a claim:by that is not UTF-8")))
        })
        .transpose()
    }
}
