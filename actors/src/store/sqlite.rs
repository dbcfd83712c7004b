//! The embedded default store: one SQLite file in the data directory.
//!
//! rusqlite is synchronous, so every call runs in `tokio::task::spawn_blocking` on a connection
//! behind a `std::sync::Mutex`: one writer connection for every write (SQLite has a single
//! writer anyway) and a small fixed set of read connections, which WAL mode lets read while the
//! writer writes. `synchronous=FULL`: every acknowledged commit is on disk. `busy_timeout`: a CLI
//! process may write the same file while the server runs.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

use anyhow::anyhow;
use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{
    params, Connection, ErrorCode, OpenFlags, OptionalExtension, Row, TransactionBehavior,
};
use serde_json::Value;
use uuid::Uuid;

use super::rows::{
    self, AccessRecordRow, AccessRow, AccountRow, BoundQuery, ClearingExtra, ClearingValues,
    CredentialsRow, DeviceRow, Dialect, EventRow, EventValues, FilterValue, JournalEventRow,
    SetValues, TokenRow, TokenValues, WriteValues, ACCESS_COLUMNS, ACCOUNT_COLUMNS,
    CLEARING_EXTRA_AT, CREDENTIAL_COLUMNS, CUSTOMER_COLUMNS, DEVICE_COLUMNS, HISTORY_BATCH,
    TOKEN_COLUMNS,
};
use super::{
    Access, AccessRecord, Account, ClearingQuery, ClearingRow, ClearingSum, Credentials, Customer,
    CustomerUpdate, DeviceStat, EventRecord, IdempotencyKey, IdempotencyRecord, JournalEntry,
    JournalQuery, NewAccount, NewCustomer, PoolUsage, Scope, Store, StoreError, TokenFilter,
    TokenStat, WriteOutcome, WriteSet, IDEMPOTENCY_KEY, LIST_LIMIT_MAX,
};
use crate::clock::now_millis;
use crate::domain::{CustomerId, Device, DeviceType, Token};

/// Forward-only migrations: `(version, sql)`, ascending. See `migrations/README.md`.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("migrations/sqlite/0002_portal_clearing.sql"),
    ),
    (3, include_str!("migrations/sqlite/0003_idempotency.sql")),
];

const READERS: usize = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Room for the 16 list-filter variants and every other statement.
const STATEMENT_CACHE: usize = 64;

static INSERT_TOKEN: LazyLock<String> = LazyLock::new(|| rows::insert_token_sql('?'));
static UPDATE_TOKEN: LazyLock<String> = LazyLock::new(|| rows::update_token_sql('?'));
static INSERT_EVENT: LazyLock<String> = LazyLock::new(|| rows::insert_event_sql('?'));
static INSERT_CLEARING: LazyLock<String> =
    LazyLock::new(|| rows::insert_clearing_sql(Dialect::Sqlite));
static DEFAULT_RULE: LazyLock<String> = LazyLock::new(|| rows::default_rule_sql(Dialect::Sqlite));
static INSERT_IDEMPOTENCY: LazyLock<String> =
    LazyLock::new(|| rows::insert_idempotency_sql(Dialect::Sqlite));
static FIND_IDEMPOTENCY: LazyLock<String> =
    LazyLock::new(|| rows::find_idempotency_sql(Dialect::Sqlite));

/// The SQLite store. Cloning is cheap: clones share the connections.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// For the pool gauges: calls waiting for, and holding, the writer and the readers.
    writer_usage: Usage,
    reader_usage: Usage,
}

/// Calls waiting for a connection and calls holding one.
#[derive(Default)]
struct Usage {
    waiting: AtomicUsize,
    in_use: AtomicUsize,
}

impl Usage {
    /// Count a call from now until the guard drops; `acquire` takes the connection.
    fn run<C, T>(&self, acquire: impl FnOnce() -> C, job: impl FnOnce(C) -> T) -> T {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let connection = acquire();
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        self.in_use.fetch_add(1, Ordering::Relaxed);
        let _release = Release(&self.in_use);
        job(connection)
    }

    fn snapshot(&self, pool: &'static str, max: usize) -> PoolUsage {
        PoolUsage {
            pool,
            max,
            open: max,
            in_use: self.in_use.load(Ordering::Relaxed).min(max),
            waiting: self.waiting.load(Ordering::Relaxed),
        }
    }
}

/// Decrements its counter when dropped, so a panicking job still gives its slot back.
struct Release<'a>(&'a AtomicUsize);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// The database file inside the data directory.
    pub const FILE_NAME: &'static str = "cashgrid.db";

    /// Open (creating if needed) `data_dir/cashgrid.db` and bring its schema up to date.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|err| {
            StoreError::Unavailable(format!(
                "cannot create the data directory {}: {err}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join(Self::FILE_NAME);
        let mut writer = open_connection(&path)?;
        let mode: String = writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(|err| sql_error(err, "set journal_mode=WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Internal(anyhow!(
                "{}: journal_mode is {mode}, not wal",
                path.display()
            )));
        }
        migrate(&mut writer)?;
        let readers = (0..READERS)
            .map(|_| {
                let reader = open_connection(&path)?;
                reader
                    .pragma_update(None, "query_only", true)
                    .map_err(|err| sql_error(err, "set query_only"))?;
                Ok(Mutex::new(reader))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
                writer_usage: Usage::default(),
                reader_usage: Usage::default(),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Number of `token_events` rows. For tests.
    #[doc(hidden)]
    pub async fn count_events(&self) -> Result<i64, StoreError> {
        self.read(|conn| {
            conn.query_row("SELECT COUNT(*) FROM token_events", [], |row| row.get(0))
                .map_err(|err| sql_error(err, "count_events"))
        })
        .await
    }

    /// The stored account snapshots of every clearing row, as text, in clearing order. For
    /// tests.
    #[doc(hidden)]
    pub async fn clearing_account_texts(
        &self,
    ) -> Result<Vec<(Option<String>, Option<String>)>, StoreError> {
        self.read(|conn| {
            conn.prepare("SELECT debitor_account, creditor_account FROM clearing ORDER BY id")
                .and_then(|mut statement| {
                    statement
                        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(|err| sql_error(err, "clearing_account_texts"))
        })
        .await
    }

    async fn read<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            inner.reader_usage.run(|| inner.reader(), |conn| job(&conn))
        })
        .await
        .map_err(|err| StoreError::Internal(anyhow!("sqlite read task failed: {err}")))?
    }

    async fn write<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            inner
                .writer_usage
                .run(|| lock(&inner.writer), |mut conn| job(&mut conn))
        })
        .await
        .map_err(|err| StoreError::Internal(anyhow!("sqlite write task failed: {err}")))?
    }
}

impl Inner {
    /// A free read connection if there is one, else wait for one (round robin).
    fn reader(&self) -> MutexGuard<'_, Connection> {
        let count = self.readers.len();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for offset in 0..count {
            if let Some(reader) = self.readers.get((start + offset) % count) {
                match reader.try_lock() {
                    Ok(guard) => return guard,
                    Err(TryLockError::Poisoned(poisoned)) => return recover(poisoned.into_inner()),
                    Err(TryLockError::WouldBlock) => {}
                }
            }
        }
        match self.readers.get(start % count.max(1)) {
            Some(reader) => lock(reader),
            // No readers (never: READERS > 0): read on the writer.
            None => lock(&self.writer),
        }
    }
}

/// Lock a connection; a panic while it was held leaves it usable (rolled back).
fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    recover(conn.lock().unwrap_or_else(PoisonError::into_inner))
}

fn recover(guard: MutexGuard<'_, Connection>) -> MutexGuard<'_, Connection> {
    if !guard.is_autocommit() {
        // Only after a panic mid-transaction; the rollback result changes nothing here.
        let _ = guard.execute_batch("ROLLBACK");
    }
    guard
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|err| StoreError::Unavailable(format!("cannot open {}: {err}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|err| sql_error(err, "set busy_timeout"))?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|err| sql_error(err, "set synchronous=FULL"))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(|err| sql_error(err, "set foreign_keys=ON"))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Apply the pending migrations in one `BEGIN IMMEDIATE` transaction, which also serialises
/// two processes opening the same file.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|err| sql_error(err, "begin migrations"))?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY,
             applied INTEGER NOT NULL
         ) STRICT;",
    )
    .map_err(|err| sql_error(err, "create schema_migrations"))?;
    let current: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |row| row.get(0),
        )
        .map_err(|err| sql_error(err, "read schema_migrations"))?;
    for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > current) {
        tx.execute_batch(sql)
            .map_err(|err| sql_error(err, &format!("migration {version}")))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied) VALUES (?1, ?2)",
            params![version, now_millis()],
        )
        .map_err(|err| sql_error(err, &format!("record migration {version}")))?;
        tracing::info!(version, "sqlite store: applied migration");
    }
    tx.commit()
        .map_err(|err| sql_error(err, "commit migrations"))
}

/// Busy, locked, unopenable or full databases are unavailable (503); anything else is internal.
fn sql_error(err: rusqlite::Error, what: &str) -> StoreError {
    match err.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::ReadOnly,
        ) => StoreError::Unavailable(format!("sqlite {what}: {err}")),
        _ => StoreError::Internal(anyhow::Error::new(err).context(format!("sqlite {what}"))),
    }
}

fn is_foreign_key_violation(err: &rusqlite::Error) -> bool {
    matches!(
        err,
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
    )
}

fn sql_value(value: FilterValue) -> SqlValue {
    match value {
        FilterValue::Text(text) => SqlValue::Text(text),
        FilterValue::OptText(Some(text)) => SqlValue::Text(text),
        FilterValue::OptText(None) => SqlValue::Null,
        FilterValue::Int(int) => SqlValue::Integer(int),
    }
}

/// Run a bound query, mapping each row.
fn query_rows<T>(
    conn: &Connection,
    query: BoundQuery,
    what: &str,
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let values: Vec<SqlValue> = query.values.into_iter().map(sql_value).collect();
    conn.prepare_cached(&query.sql)
        .and_then(|mut statement| {
            statement
                .query_map(rusqlite::params_from_iter(values), map)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|err| sql_error(err, what))
}

/// Apply the default-account rule for `customer` inside `tx`.
fn apply_default_rule(
    tx: &rusqlite::Transaction<'_>,
    customer: CustomerId,
) -> rusqlite::Result<()> {
    tx.prepare_cached(&DEFAULT_RULE)?.execute([customer])?;
    Ok(())
}

fn account_row(row: &Row<'_>) -> rusqlite::Result<AccountRow> {
    Ok(AccountRow {
        id: row.get(0)?,
        customer_id: row.get(1)?,
        value: row.get(2)?,
        account_type: row.get(3)?,
        is_default: row.get(4)?,
        symbol: row.get(5)?,
        refname: row.get(6)?,
    })
}

fn access_record_row(row: &Row<'_>) -> rusqlite::Result<AccessRecordRow> {
    Ok(AccessRecordRow {
        access: access_row(row)?,
        secret_encrypted: row.get(6)?,
    })
}

fn credentials_row(row: &Row<'_>) -> rusqlite::Result<CredentialsRow> {
    Ok(CredentialsRow {
        customer: customer_row(row)?,
        password_hash: row.get(7)?,
        twofa_secret: row.get(8)?,
    })
}

fn event_row(row: &Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        seq: row.get(0)?,
        token_uuid: row.get(1)?,
        kind: row.get(2)?,
        from_state: row.get(3)?,
        to_state: row.get(4)?,
        created: row.get(5)?,
        owner_id: row.get(6)?,
        cash_customer_id: row.get(7)?,
        version: row.get(8)?,
        payload: row.get(9)?,
    })
}

fn journal_row(row: &Row<'_>) -> rusqlite::Result<JournalEventRow> {
    Ok(JournalEventRow {
        seq: row.get(0)?,
        created: row.get(1)?,
        kind: row.get(2)?,
        owner_id: row.get(3)?,
        cash_customer_id: row.get(4)?,
        payload: row.get(5)?,
    })
}

fn clearing_extra(row: &Row<'_>) -> rusqlite::Result<ClearingExtra> {
    let at = CLEARING_EXTRA_AT;
    Ok(ClearingExtra {
        created: row.get(at)?,
        token_device_refname: row.get(at + 1)?,
        lock_device_refname: row.get(at + 2)?,
        debitor_id: row.get(at + 3)?,
        creditor_id: row.get(at + 4)?,
        debitor_account: row.get(at + 5)?,
        creditor_account: row.get(at + 6)?,
    })
}

/// One batch of the history cleanup, in its own transaction: the number of tokens removed.
fn delete_history_batch(conn: &mut Connection, before: i64) -> Result<usize, StoreError> {
    let what = "delete_history";
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|err| sql_error(err, what))?;
    let batch = i64::try_from(HISTORY_BATCH).unwrap_or(i64::MAX);
    let uuids: Vec<String> = tx
        .prepare_cached(
            "SELECT uuid FROM tokens WHERE created < ?1 AND state NOT IN ('OPEN', 'LOCKED') \
             ORDER BY created LIMIT ?2",
        )
        .and_then(|mut statement| {
            statement
                .query_map(params![before, batch], |row| row.get(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|err| sql_error(err, what))?;
    {
        let mut events = tx
            .prepare_cached("DELETE FROM token_events WHERE token_uuid = ?1")
            .map_err(|err| sql_error(err, what))?;
        let mut clearing = tx
            .prepare_cached("DELETE FROM clearing WHERE token_uuid = ?1")
            .map_err(|err| sql_error(err, what))?;
        let mut tokens = tx
            .prepare_cached("DELETE FROM tokens WHERE uuid = ?1")
            .map_err(|err| sql_error(err, what))?;
        for uuid in &uuids {
            events.execute([uuid]).map_err(|err| sql_error(err, what))?;
            clearing
                .execute([uuid])
                .map_err(|err| sql_error(err, what))?;
            tokens.execute([uuid]).map_err(|err| sql_error(err, what))?;
        }
    }
    tx.commit().map_err(|err| sql_error(err, what))?;
    Ok(uuids.len())
}

fn is_unique_violation(err: &rusqlite::Error) -> bool {
    matches!(
        err,
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

fn token_row(row: &Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        uuid: row.get(0)?,
        version: row.get(1)?,
        created: row.get(2)?,
        updated: row.get(3)?,
        token_type: row.get(4)?,
        plain_code: row.get(5)?,
        secure_code: row.get(6)?,
        code_hash: row.get(7)?,
        amount: row.get(8)?,
        symbol: row.get(9)?,
        state: row.get(10)?,
        clearstate: row.get(11)?,
        expires: row.get(12)?,
        refname: row.get(13)?,
        lockrefname: row.get(14)?,
        info: row.get(15)?,
        processing_info: row.get(16)?,
        owner_id: row.get(17)?,
        owner_device: row.get(18)?,
        lock_device: row.get(19)?,
        lock_customer_id: row.get(20)?,
    })
}

fn device_row(row: &Row<'_>) -> rusqlite::Result<DeviceRow> {
    Ok(DeviceRow {
        id: row.get(0)?,
        uuid: row.get(1)?,
        customer_id: row.get(2)?,
        created: row.get(3)?,
        device_type: row.get(4)?,
        pubkey: row.get(5)?,
        lat: row.get(6)?,
        lon: row.get(7)?,
        refname: row.get(8)?,
        info: row.get(9)?,
    })
}

fn customer_row(row: &Row<'_>) -> rusqlite::Result<Customer> {
    Ok(Customer {
        id: row.get(0)?,
        created: row.get(1)?,
        email: row.get(2)?,
        display_name: row.get(3)?,
        roles: row.get(4)?,
        status: row.get(5)?,
        info: row.get(6)?,
    })
}

fn access_row(row: &Row<'_>) -> rusqlite::Result<AccessRow> {
    Ok(AccessRow {
        id: row.get(0)?,
        customer_id: row.get(1)?,
        created: row.get(2)?,
        scope: row.get(3)?,
        apikey: row.get(4)?,
        secret_hash: row.get(5)?,
    })
}

/// Execute one token write; the number of rows it changed (0 or 1).
fn write_token<'a, 'conn>(
    insert: &'a mut rusqlite::CachedStatement<'conn>,
    update: &'a mut rusqlite::CachedStatement<'conn>,
    write: &WriteValues,
) -> rusqlite::Result<usize> {
    let (statement, token) = match write {
        WriteValues::Insert(token) => (insert, token),
        WriteValues::Update(token) => (update, token),
    };
    let TokenValues {
        uuid,
        version,
        created,
        updated,
        token_type,
        plain_code,
        secure_code,
        code_hash,
        amount,
        symbol,
        state,
        clearstate,
        expires,
        refname,
        lockrefname,
        info,
        processing_info,
        owner_id,
        owner_device,
        lock_device,
        lock_customer_id,
    } = token;
    statement.execute(params![
        uuid,
        version,
        created,
        updated,
        token_type,
        plain_code,
        secure_code,
        code_hash,
        amount,
        symbol,
        state,
        clearstate,
        expires,
        refname,
        lockrefname,
        info,
        processing_info,
        owner_id,
        owner_device,
        lock_device,
        lock_customer_id,
    ])
}

fn write_event(
    statement: &mut rusqlite::CachedStatement<'_>,
    event: &EventValues,
) -> rusqlite::Result<usize> {
    statement.execute(params![
        event.token_uuid,
        event.version,
        event.kind,
        event.from_state,
        event.to_state,
        event.created,
        event.owner_id,
        event.cash_customer_id,
        event.payload,
    ])
}

fn write_clearing(
    statement: &mut rusqlite::CachedStatement<'_>,
    clearing: &ClearingValues,
) -> rusqlite::Result<usize> {
    statement.execute(params![
        clearing.token_uuid,
        clearing.debitor_id,
        clearing.creditor_id,
        clearing.created,
    ])
}

/// The commit's prepared statements.
struct CommitStatements<'conn> {
    insert: rusqlite::CachedStatement<'conn>,
    update: rusqlite::CachedStatement<'conn>,
    event: rusqlite::CachedStatement<'conn>,
    clearing: rusqlite::CachedStatement<'conn>,
    idempotency: rusqlite::CachedStatement<'conn>,
}

/// The whole commit, sets in order, in one `BEGIN IMMEDIATE` transaction. First without
/// savepoints (a savepoint makes SQLite keep a sub-journal of every page the set touches: it
/// more than doubled the commit's cost): a set whose first write does not apply is a conflict
/// with nothing of it written. Should anything else of a set fail — a later write or its
/// idempotency key not applying, or a value the database refuses — the transaction is rolled
/// back and the batch committed again with a savepoint per set, which undoes just that set
/// (`Conflict` or `Refused`) and commits the others.
fn commit_sets(conn: &mut Connection, sets: &[SetValues]) -> Result<Vec<WriteOutcome>, StoreError> {
    {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|err| sql_error(err, "commit: begin"))?;
        let statements = commit_statements(&tx);
        match statements
            .and_then(|mut statements| commit_deciding_first_writes(&mut statements, sets))
        {
            Ok(Some(outcomes)) => {
                tx.commit().map_err(|err| sql_error(err, "commit"))?;
                return Ok(outcomes);
            }
            // Dropping the transaction rolls it back.
            Ok(None) => {}
            Err(err) => match sql_error(err, "commit") {
                unavailable @ StoreError::Unavailable(_) => return Err(unavailable),
                refused => {
                    tracing::debug!(error = %refused, "commit: batch refused; committing set by set")
                }
            },
        }
    }
    commit_sets_under_savepoints(conn, sets)
}

/// The commit statements of `tx`.
fn commit_statements<'conn>(
    tx: &'conn rusqlite::Transaction<'_>,
) -> rusqlite::Result<CommitStatements<'conn>> {
    Ok(CommitStatements {
        insert: tx.prepare_cached(&INSERT_TOKEN)?,
        update: tx.prepare_cached(&UPDATE_TOKEN)?,
        event: tx.prepare_cached(&INSERT_EVENT)?,
        clearing: tx.prepare_cached(&INSERT_CLEARING)?,
        idempotency: tx.prepare_cached(&INSERT_IDEMPOTENCY)?,
    })
}

/// Every set whose first write applies, whole; `None` as soon as something after a set's first
/// write does not apply (the caller rolls back and goes set by set).
fn commit_deciding_first_writes(
    statements: &mut CommitStatements<'_>,
    sets: &[SetValues],
) -> rusqlite::Result<Option<Vec<WriteOutcome>>> {
    let mut outcomes = Vec::with_capacity(sets.len());
    for set in sets {
        if let Some(first) = set.writes.first() {
            if write_token(&mut statements.insert, &mut statements.update, first)? == 0 {
                outcomes.push(WriteOutcome::Conflict);
                continue;
            }
        }
        if !commit_set_after(statements, set, 1)? {
            return Ok(None);
        }
        outcomes.push(WriteOutcome::Committed);
    }
    Ok(Some(outcomes))
}

/// The batch set by set, each under a savepoint.
fn commit_sets_under_savepoints(
    conn: &mut Connection,
    sets: &[SetValues],
) -> Result<Vec<WriteOutcome>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|err| sql_error(err, "commit: begin"))?;
    let mut outcomes = Vec::with_capacity(sets.len());
    {
        let mut statements =
            commit_statements(&tx).map_err(|err| sql_error(err, "commit: prepare"))?;
        let prepare =
            |sql: &str, what: &str| tx.prepare_cached(sql).map_err(|err| sql_error(err, what));
        let mut savepoint = prepare("SAVEPOINT write_set", "prepare savepoint")?;
        let mut release = prepare("RELEASE SAVEPOINT write_set", "prepare release")?;
        let mut rollback = prepare("ROLLBACK TO SAVEPOINT write_set", "prepare rollback")?;
        for set in sets {
            savepoint
                .execute([])
                .map_err(|err| sql_error(err, "commit: savepoint"))?;
            let outcome = match commit_set_after(&mut statements, set, 0) {
                Ok(true) => WriteOutcome::Committed,
                Ok(false) => WriteOutcome::Conflict,
                Err(err) => match sql_error(err, "commit: write set") {
                    unavailable @ StoreError::Unavailable(_) => return Err(unavailable),
                    refused => {
                        tracing::error!(error = %refused, "commit: the database refused a write set; its batch goes on without it");
                        WriteOutcome::Refused
                    }
                },
            };
            if outcome != WriteOutcome::Committed {
                rollback
                    .execute([])
                    .map_err(|err| sql_error(err, "commit: rollback to savepoint"))?;
            }
            // Pops the savepoint (after a rollback to it, SQLite keeps it on the stack).
            release
                .execute([])
                .map_err(|err| sql_error(err, "commit: release savepoint"))?;
            outcomes.push(outcome);
        }
    }
    tx.commit().map_err(|err| sql_error(err, "commit"))?;
    Ok(outcomes)
}

/// One set's writes from the `from`-th on, its idempotency key, events and clearing row;
/// `false` when a write or the key did not apply (the caller undoes the set).
fn commit_set_after(
    statements: &mut CommitStatements<'_>,
    set: &SetValues,
    from: usize,
) -> rusqlite::Result<bool> {
    for write in set.writes.iter().skip(from) {
        if write_token(&mut statements.insert, &mut statements.update, write)? == 0 {
            return Ok(false);
        }
    }
    if let Some(record) = &set.idempotency {
        if write_idempotency(&mut statements.idempotency, record)? == 0 {
            return Ok(false);
        }
    }
    for values in &set.events {
        write_event(&mut statements.event, values)?;
    }
    if let Some(values) = &set.clearing {
        write_clearing(&mut statements.clearing, values)?;
    }
    Ok(true)
}

fn write_idempotency(
    statement: &mut rusqlite::CachedStatement<'_>,
    record: &IdempotencyRecord,
) -> rusqlite::Result<usize> {
    statement.execute(params![
        record.key.customer_id,
        record.key.key,
        record.key.fingerprint,
        record.key.created,
        record.result,
    ])
}

#[async_trait]
impl Store for SqliteStore {
    fn pool_usage(&self) -> Vec<PoolUsage> {
        vec![
            self.inner
                .reader_usage
                .snapshot("read", self.inner.readers.len()),
            self.inner.writer_usage.snapshot("write", 1),
        ]
    }

    async fn commit(&self, sets: &[WriteSet]) -> Result<Vec<WriteOutcome>, StoreError> {
        if sets.is_empty() {
            return Ok(Vec::new());
        }
        let sets = rows::encode_sets(sets)?;
        self.write(move |conn| commit_sets(conn, &sets)).await
    }

    async fn load_token(&self, uuid: Uuid) -> Result<Option<Token>, StoreError> {
        let uuid = rows::uuid_text(uuid);
        self.read(move |conn| {
            let row = conn
                .prepare_cached(&format!(
                    "SELECT {TOKEN_COLUMNS} FROM tokens WHERE uuid = ?1"
                ))
                .and_then(|mut statement| statement.query_row([&uuid], token_row).optional())
                .map_err(|err| sql_error(err, "load_token"))?;
            row.map(TokenRow::into_token).transpose()
        })
        .await
    }

    async fn find_token_by_plain_code(&self, plain_code: &str) -> Result<Option<Uuid>, StoreError> {
        let plain_code = plain_code.to_owned();
        self.read(move |conn| {
            let uuid: Option<String> = conn
                .prepare_cached(
                    "SELECT uuid FROM tokens \
                     WHERE plain_code = ?1 AND state IN ('OPEN', 'LOCKED')",
                )
                .and_then(|mut statement| {
                    statement
                        .query_row([&plain_code], |row| row.get(0))
                        .optional()
                })
                .map_err(|err| sql_error(err, "find_token_by_plain_code"))?;
            uuid.map(|uuid| rows::parse_uuid(&uuid, "tokens.uuid"))
                .transpose()
        })
        .await
    }

    async fn list_tokens(
        &self,
        owner: CustomerId,
        filter: &TokenFilter,
        limit: usize,
    ) -> Result<Vec<Token>, StoreError> {
        let conditions = rows::token_filter_conditions(filter);
        let mut sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE owner_id = ?1");
        let mut values = vec![SqlValue::Integer(owner)];
        for (column, value) in conditions {
            values.push(sql_value(value));
            sql.push_str(&format!(" AND {column} = ?{}", values.len()));
        }
        values.push(SqlValue::Integer(rows::list_limit(limit)));
        sql.push_str(&format!(" ORDER BY seq LIMIT ?{}", values.len()));
        self.read(move |conn| {
            let rows = conn
                .prepare_cached(&sql)
                .and_then(|mut statement| {
                    statement
                        .query_map(rusqlite::params_from_iter(values), token_row)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(|err| sql_error(err, "list_tokens"))?;
            rows.into_iter().map(TokenRow::into_token).collect()
        })
        .await
    }

    async fn insert_device(
        &self,
        device: &Device,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<Device, StoreError> {
        let device = device.clone();
        let idempotency = idempotency.cloned();
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|err| sql_error(err, "insert_device: begin"))?;
            let row = tx
                .prepare_cached(&format!(
                    "INSERT INTO devices \
                     (uuid, customer_id, created, type, pubkey, lat, lon, refname, info) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING {DEVICE_COLUMNS}"
                ))
                .and_then(|mut statement| {
                    statement.query_row(
                        params![
                            rows::uuid_text(device.uuid),
                            device.customer_id,
                            device.created,
                            device.device_type.as_str(),
                            device.pubkey,
                            device.lat,
                            device.lon,
                            device.refname,
                            device.info,
                        ],
                        device_row,
                    )
                })
                .map_err(|err| {
                    if is_unique_violation(&err) {
                        StoreError::Duplicate("device uuid")
                    } else {
                        sql_error(err, "insert_device")
                    }
                })?;
            let stored = row.into_device()?;
            if let Some(key) = idempotency {
                let record = IdempotencyRecord {
                    result: rows::device_json(&stored)?,
                    key,
                };
                let inserted = tx
                    .prepare_cached(&INSERT_IDEMPOTENCY)
                    .and_then(|mut statement| write_idempotency(&mut statement, &record))
                    .map_err(|err| sql_error(err, "insert_device: idempotency key"))?;
                if inserted == 0 {
                    // Dropping the transaction rolls the device back.
                    return Err(StoreError::Duplicate(IDEMPOTENCY_KEY));
                }
            }
            tx.commit()
                .map_err(|err| sql_error(err, "insert_device: commit"))?;
            Ok(stored)
        })
        .await
    }

    async fn find_idempotency(
        &self,
        customer: CustomerId,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let key = key.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(&FIND_IDEMPOTENCY)
                .and_then(|mut statement| {
                    statement
                        .query_row(params![customer, key], |row| {
                            Ok(IdempotencyRecord {
                                key: IdempotencyKey {
                                    customer_id: row.get(0)?,
                                    key: row.get(1)?,
                                    fingerprint: row.get(2)?,
                                    created: row.get(3)?,
                                },
                                result: row.get(4)?,
                            })
                        })
                        .optional()
                })
                .map_err(|err| sql_error(err, "find_idempotency"))
        })
        .await
    }

    async fn delete_idempotency_before(&self, before: i64) -> Result<u64, StoreError> {
        self.write(move |conn| {
            conn.execute("DELETE FROM idempotency_keys WHERE created < ?1", [before])
                .map(|rows| rows as u64)
                .map_err(|err| sql_error(err, "delete_idempotency_before"))
        })
        .await
    }

    async fn load_device(&self, uuid: Uuid) -> Result<Option<Device>, StoreError> {
        let uuid = rows::uuid_text(uuid);
        self.read(move |conn| {
            let row = conn
                .prepare_cached(&format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices WHERE uuid = ?1"
                ))
                .and_then(|mut statement| statement.query_row([&uuid], device_row).optional())
                .map_err(|err| sql_error(err, "load_device"))?;
            row.map(DeviceRow::into_device).transpose()
        })
        .await
    }

    async fn list_devices(
        &self,
        customer: CustomerId,
        limit: usize,
    ) -> Result<Vec<Device>, StoreError> {
        let limit = rows::list_limit(limit);
        self.read(move |conn| {
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices WHERE customer_id = ?1 ORDER BY id LIMIT ?2"
                ))
                .and_then(|mut statement| {
                    statement
                        .query_map(params![customer, limit], device_row)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(|err| sql_error(err, "list_devices"))?;
            rows.into_iter().map(DeviceRow::into_device).collect()
        })
        .await
    }

    async fn create_customer(&self, customer: &NewCustomer) -> Result<Customer, StoreError> {
        let customer = customer.clone();
        self.write(move |conn| {
            conn.prepare_cached(&format!(
                "INSERT INTO customers (created, email, display_name, roles) \
                 VALUES (?1, ?2, ?3, ?4) RETURNING {CUSTOMER_COLUMNS}"
            ))
            .and_then(|mut statement| {
                statement.query_row(
                    params![
                        now_millis(),
                        rows::fold_case(&customer.email),
                        customer.display_name,
                        customer.roles,
                    ],
                    customer_row,
                )
            })
            .map_err(|err| {
                if is_unique_violation(&err) {
                    StoreError::Duplicate("email")
                } else {
                    sql_error(err, "create_customer")
                }
            })
        })
        .await
    }

    async fn load_customer(&self, id: CustomerId) -> Result<Option<Customer>, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = ?1"
            ))
            .and_then(|mut statement| statement.query_row([id], customer_row).optional())
            .map_err(|err| sql_error(err, "load_customer"))
        })
        .await
    }

    async fn find_customer_by_email(&self, email: &str) -> Result<Option<Customer>, StoreError> {
        let email = rows::fold_case(email);
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE email = ?1"
            ))
            .and_then(|mut statement| statement.query_row([&email], customer_row).optional())
            .map_err(|err| sql_error(err, "find_customer_by_email"))
        })
        .await
    }

    async fn create_access(
        &self,
        customer: CustomerId,
        scope: Scope,
        apikey: &str,
        secret_hash: &[u8],
    ) -> Result<Access, StoreError> {
        let apikey = rows::fold_case(apikey);
        let secret_hash = secret_hash.to_vec();
        self.write(move |conn| {
            let row = conn
                .prepare_cached(&format!(
                    "INSERT INTO access (customer_id, created, scope, apikey, secret_hash) \
                     VALUES (?1, ?2, ?3, ?4, ?5) RETURNING {ACCESS_COLUMNS}"
                ))
                .and_then(|mut statement| {
                    statement.query_row(
                        params![customer, now_millis(), scope.as_str(), apikey, secret_hash],
                        access_row,
                    )
                })
                .map_err(|err| {
                    if is_unique_violation(&err) {
                        StoreError::Duplicate("apikey")
                    } else {
                        sql_error(err, "create_access")
                    }
                })?;
            row.into_access()
        })
        .await
    }

    async fn find_access(&self, apikey: &str) -> Result<Option<Access>, StoreError> {
        let apikey = rows::fold_case(apikey);
        self.read(move |conn| {
            let row = conn
                .prepare_cached(&format!(
                    "SELECT {ACCESS_COLUMNS} FROM access WHERE apikey = ?1"
                ))
                .and_then(|mut statement| statement.query_row([&apikey], access_row).optional())
                .map_err(|err| sql_error(err, "find_access"))?;
            row.map(AccessRow::into_access).transpose()
        })
        .await
    }

    async fn load_param(
        &self,
        customer: CustomerId,
        key: &str,
    ) -> Result<Option<Value>, StoreError> {
        let key = key.to_owned();
        self.read(move |conn| {
            let text: Option<String> = conn
                .prepare_cached("SELECT pvalue FROM params WHERE customer_id = ?1 AND pkey = ?2")
                .and_then(|mut statement| {
                    statement
                        .query_row(params![customer, key], |row| row.get(0))
                        .optional()
                })
                .map_err(|err| sql_error(err, "load_param"))?;
            text.map(|text| rows::parse_json(&text, "params.pvalue"))
                .transpose()
        })
        .await
    }

    async fn save_param(
        &self,
        customer: CustomerId,
        key: &str,
        value: &Value,
    ) -> Result<(), StoreError> {
        let key = key.to_owned();
        let value = rows::json_text(value)?;
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO params (customer_id, pkey, pvalue, updated) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (customer_id, pkey) \
                 DO UPDATE SET pvalue = excluded.pvalue, updated = excluded.updated",
            )
            .and_then(|mut statement| {
                statement.execute(params![customer, key, value, now_millis()])
            })
            .map_err(|err| sql_error(err, "save_param"))?;
            Ok(())
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| {
            conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))
                .map_err(|err| sql_error(err, "ping"))?;
            Ok(())
        })
        .await
    }

    async fn delete_param(&self, customer: CustomerId, key: &str) -> Result<u64, StoreError> {
        let key = key.to_owned();
        self.write(move |conn| {
            conn.prepare_cached("DELETE FROM params WHERE customer_id = ?1 AND pkey = ?2")
                .and_then(|mut statement| statement.execute(params![customer, key]))
                .map(|rows| rows as u64)
                .map_err(|err| sql_error(err, "delete_param"))
        })
        .await
    }

    async fn find_credentials(&self, email: &str) -> Result<Option<Credentials>, StoreError> {
        let email = rows::fold_case(email);
        self.read(move |conn| {
            let row = conn
                .prepare_cached(&format!(
                    "SELECT {CREDENTIAL_COLUMNS} FROM customers WHERE email = ?1"
                ))
                .and_then(|mut statement| statement.query_row([&email], credentials_row).optional())
                .map_err(|err| sql_error(err, "find_credentials"))?;
            Ok(row.map(CredentialsRow::into_credentials))
        })
        .await
    }

    async fn create_user(
        &self,
        user: &NewCustomer,
        password_hash: &str,
        status: i32,
    ) -> Result<Customer, StoreError> {
        let user = user.clone();
        let password_hash = password_hash.to_owned();
        self.write(move |conn| {
            conn.prepare_cached(&format!(
                "INSERT INTO customers (created, email, display_name, roles, status, password_hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING {CUSTOMER_COLUMNS}"
            ))
            .and_then(|mut statement| {
                statement.query_row(
                    params![
                        now_millis(),
                        rows::fold_case(&user.email),
                        user.display_name,
                        user.roles,
                        status,
                        password_hash,
                    ],
                    customer_row,
                )
            })
            .map_err(|err| {
                if is_unique_violation(&err) {
                    StoreError::Duplicate("email")
                } else {
                    sql_error(err, "create_user")
                }
            })
        })
        .await
    }

    async fn set_password(
        &self,
        customer: CustomerId,
        password_hash: &str,
        status: i32,
    ) -> Result<(), StoreError> {
        let password_hash = password_hash.to_owned();
        self.write(move |conn| {
            conn.prepare_cached(
                "UPDATE customers SET password_hash = ?2, status = ?3 WHERE id = ?1",
            )
            .and_then(|mut statement| statement.execute(params![customer, password_hash, status]))
            .map_err(|err| sql_error(err, "set_password"))?;
            Ok(())
        })
        .await
    }

    async fn set_twofa_secret(
        &self,
        customer: CustomerId,
        secret: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let secret = secret.map(<[u8]>::to_vec);
        self.write(move |conn| {
            conn.prepare_cached("UPDATE customers SET twofa_secret = ?2 WHERE id = ?1")
                .and_then(|mut statement| statement.execute(params![customer, secret]))
                .map_err(|err| sql_error(err, "set_twofa_secret"))?;
            Ok(())
        })
        .await
    }

    async fn list_customers(&self) -> Result<Vec<Customer>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {CUSTOMER_COLUMNS} FROM customers ORDER BY id LIMIT ?1"
            ))
            .and_then(|mut statement| {
                statement
                    .query_map([rows::list_limit(LIST_LIMIT_MAX)], customer_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|err| sql_error(err, "list_customers"))
        })
        .await
    }

    async fn update_customer(
        &self,
        email: &str,
        update: &CustomerUpdate,
    ) -> Result<u64, StoreError> {
        let email = rows::fold_case(email);
        let update = update.clone();
        self.write(move |conn| {
            conn.prepare_cached(
                "UPDATE customers SET display_name = ?2, roles = ?3, info = ?4 WHERE email = ?1",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    email,
                    update.display_name,
                    update.roles,
                    update.info
                ])
            })
            .map(|rows| rows as u64)
            .map_err(|err| sql_error(err, "update_customer"))
        })
        .await
    }

    async fn delete_customer(&self, email: &str) -> Result<u64, StoreError> {
        let email = rows::fold_case(email);
        self.write(move |conn| {
            conn.prepare_cached("DELETE FROM customers WHERE email = ?1")
                .and_then(|mut statement| statement.execute([email]))
                .map(|rows| rows as u64)
                .map_err(|err| {
                    if is_foreign_key_violation(&err) {
                        StoreError::Referenced("customer")
                    } else {
                        sql_error(err, "delete_customer")
                    }
                })
        })
        .await
    }

    async fn set_access_secret_encrypted(
        &self,
        access: i64,
        encrypted: &[u8],
    ) -> Result<(), StoreError> {
        let encrypted = encrypted.to_vec();
        self.write(move |conn| {
            conn.prepare_cached("UPDATE access SET secret_encrypted = ?2 WHERE id = ?1")
                .and_then(|mut statement| statement.execute(params![access, encrypted]))
                .map_err(|err| sql_error(err, "set_access_secret_encrypted"))?;
            Ok(())
        })
        .await
    }

    async fn load_access(&self, id: i64) -> Result<Option<AccessRecord>, StoreError> {
        self.read(move |conn| {
            let row = conn
                .prepare_cached(&format!(
                    "SELECT {ACCESS_COLUMNS}, secret_encrypted FROM access WHERE id = ?1"
                ))
                .and_then(|mut statement| statement.query_row([id], access_record_row).optional())
                .map_err(|err| sql_error(err, "load_access"))?;
            row.map(AccessRecordRow::into_record).transpose()
        })
        .await
    }

    async fn list_access(
        &self,
        customer: CustomerId,
        scope: Scope,
    ) -> Result<Vec<AccessRecord>, StoreError> {
        self.read(move |conn| {
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {ACCESS_COLUMNS}, secret_encrypted FROM access \
                     WHERE customer_id = ?1 AND scope = ?2 ORDER BY id LIMIT ?3"
                ))
                .and_then(|mut statement| {
                    statement
                        .query_map(
                            params![customer, scope.as_str(), rows::list_limit(LIST_LIMIT_MAX)],
                            access_record_row,
                        )?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(|err| sql_error(err, "list_access"))?;
            rows.into_iter().map(AccessRecordRow::into_record).collect()
        })
        .await
    }

    async fn delete_access(&self, customer: CustomerId, id: i64) -> Result<u64, StoreError> {
        self.write(move |conn| {
            conn.prepare_cached("DELETE FROM access WHERE customer_id = ?1 AND id = ?2")
                .and_then(|mut statement| statement.execute(params![customer, id]))
                .map(|rows| rows as u64)
                .map_err(|err| sql_error(err, "delete_access"))
        })
        .await
    }

    async fn load_device_by_id(&self, id: i64) -> Result<Option<Device>, StoreError> {
        self.read(move |conn| {
            let row = conn
                .prepare_cached(&format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?1"
                ))
                .and_then(|mut statement| statement.query_row([id], device_row).optional())
                .map_err(|err| sql_error(err, "load_device_by_id"))?;
            row.map(DeviceRow::into_device).transpose()
        })
        .await
    }

    async fn update_device(
        &self,
        customer: CustomerId,
        id: i64,
        device_type: Option<DeviceType>,
        refname: Option<Option<String>>,
    ) -> Result<u64, StoreError> {
        let query = rows::update_device_query(Dialect::Sqlite, customer, id, device_type, refname)
            .ok_or_else(|| StoreError::Internal(anyhow!("update_device: no field to update")))?;
        self.write(move |conn| {
            let values: Vec<SqlValue> = query.values.into_iter().map(sql_value).collect();
            conn.prepare_cached(&query.sql)
                .and_then(|mut statement| statement.execute(rusqlite::params_from_iter(values)))
                .map(|rows| rows as u64)
                .map_err(|err| sql_error(err, "update_device"))
        })
        .await
    }

    async fn delete_device(&self, customer: CustomerId, id: i64) -> Result<u64, StoreError> {
        self.write(move |conn| {
            let what = "delete_device";
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|err| sql_error(err, what))?;
            let uuid: Option<String> = tx
                .prepare_cached("SELECT uuid FROM devices WHERE customer_id = ?1 AND id = ?2")
                .and_then(|mut statement| {
                    statement
                        .query_row(params![customer, id], |row| row.get(0))
                        .optional()
                })
                .map_err(|err| sql_error(err, what))?;
            let Some(uuid) = uuid else {
                return Ok(0);
            };
            let referenced: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM tokens WHERE owner_device = ?1) \
                     OR EXISTS (SELECT 1 FROM tokens WHERE lock_device = ?1)",
                )
                .and_then(|mut statement| statement.query_row([&uuid], |row| row.get(0)))
                .map_err(|err| sql_error(err, what))?;
            if referenced {
                return Err(StoreError::Referenced("device"));
            }
            let deleted = tx
                .prepare_cached("DELETE FROM devices WHERE id = ?1")
                .and_then(|mut statement| statement.execute([id]))
                .map_err(|err| sql_error(err, what))?;
            tx.commit().map_err(|err| sql_error(err, what))?;
            Ok(deleted as u64)
        })
        .await
    }

    async fn device_stats(&self) -> Result<Vec<DeviceStat>, StoreError> {
        self.read(|conn| {
            let rows: Vec<(String, String, Option<String>)> = conn
                .prepare_cached(
                    "SELECT c.email, d.type, d.refname FROM devices d \
                     JOIN customers c ON c.id = d.customer_id ORDER BY d.id LIMIT ?1",
                )
                .and_then(|mut statement| {
                    statement
                        .query_map([rows::list_limit(LIST_LIMIT_MAX)], |row| {
                            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                        })?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(|err| sql_error(err, "device_stats"))?;
            rows.into_iter()
                .map(|(email, device_type, refname)| {
                    Ok(DeviceStat {
                        email,
                        device_type: rows::parse_device_type(&device_type)?,
                        refname,
                    })
                })
                .collect()
        })
        .await
    }

    async fn insert_account(
        &self,
        customer: CustomerId,
        account: &NewAccount,
    ) -> Result<Account, StoreError> {
        let account = account.clone();
        self.write(move |conn| {
            let what = "insert_account";
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|err| sql_error(err, what))?;
            let id: i64 = tx
                .prepare_cached(
                    "INSERT INTO accounts (customer_id, value, type, is_default, symbol, refname) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
                )
                .and_then(|mut statement| {
                    statement.query_row(
                        params![
                            customer,
                            account.value,
                            account.account_type,
                            rows::default_flag(account.default),
                            account.symbol,
                            account.refname,
                        ],
                        |row| row.get(0),
                    )
                })
                .map_err(|err| sql_error(err, what))?;
            apply_default_rule(&tx, customer).map_err(|err| sql_error(err, what))?;
            let row = tx
                .prepare_cached(&format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?1"
                ))
                .and_then(|mut statement| statement.query_row([id], account_row))
                .map_err(|err| sql_error(err, what))?;
            tx.commit().map_err(|err| sql_error(err, what))?;
            Ok(row.into_account())
        })
        .await
    }

    async fn list_accounts(
        &self,
        customer: CustomerId,
        default: Option<bool>,
    ) -> Result<Vec<Account>, StoreError> {
        let query = rows::list_accounts_query(Dialect::Sqlite, customer, default);
        self.read(move |conn| {
            let rows = query_rows(conn, query, "list_accounts", account_row)?;
            Ok(rows.into_iter().map(AccountRow::into_account).collect())
        })
        .await
    }

    async fn load_account(&self, id: i64) -> Result<Option<Account>, StoreError> {
        self.read(move |conn| {
            let row = conn
                .prepare_cached(&format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?1"
                ))
                .and_then(|mut statement| statement.query_row([id], account_row).optional())
                .map_err(|err| sql_error(err, "load_account"))?;
            Ok(row.map(AccountRow::into_account))
        })
        .await
    }

    async fn update_account(
        &self,
        customer: CustomerId,
        account: &Account,
        make_default: bool,
    ) -> Result<u64, StoreError> {
        let account = account.clone();
        self.write(move |conn| {
            let what = "update_account";
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|err| sql_error(err, what))?;
            let matched = tx
                .prepare_cached(
                    "UPDATE accounts SET value = ?3, type = ?4, is_default = ?5, symbol = ?6, \
                     refname = ?7 WHERE customer_id = ?1 AND id = ?2",
                )
                .and_then(|mut statement| {
                    statement.execute(params![
                        customer,
                        account.id,
                        account.value,
                        account.account_type,
                        rows::default_flag(make_default || account.default != 0),
                        account.symbol,
                        account.refname,
                    ])
                })
                .map_err(|err| sql_error(err, what))?;
            if matched == 0 {
                return Ok(0);
            }
            if make_default {
                tx.prepare_cached(
                    "UPDATE accounts SET is_default = 0 WHERE customer_id = ?1 AND id <> ?2",
                )
                .and_then(|mut statement| statement.execute(params![customer, account.id]))
                .map_err(|err| sql_error(err, what))?;
            }
            apply_default_rule(&tx, customer).map_err(|err| sql_error(err, what))?;
            tx.commit().map_err(|err| sql_error(err, what))?;
            Ok(matched as u64)
        })
        .await
    }

    async fn delete_account(&self, customer: CustomerId, id: i64) -> Result<u64, StoreError> {
        self.write(move |conn| {
            let what = "delete_account";
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|err| sql_error(err, what))?;
            let deleted = tx
                .prepare_cached("DELETE FROM accounts WHERE customer_id = ?1 AND id = ?2")
                .and_then(|mut statement| statement.execute(params![customer, id]))
                .map_err(|err| sql_error(err, what))?;
            apply_default_rule(&tx, customer).map_err(|err| sql_error(err, what))?;
            tx.commit().map_err(|err| sql_error(err, what))?;
            Ok(deleted as u64)
        })
        .await
    }

    async fn token_stats(
        &self,
        customer: Option<CustomerId>,
    ) -> Result<Vec<TokenStat>, StoreError> {
        let query = rows::token_stats_query(Dialect::Sqlite, customer);
        self.read(move |conn| {
            let rows: Vec<(String, String, i64, i64, i64)> =
                query_rows(conn, query, "token_stats", |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                })?;
            rows.into_iter()
                .map(|(state, token_type, high, low, count)| {
                    Ok(TokenStat {
                        state: rows::parse_token_state(&state, "tokens.state")?,
                        token_type: rows::parse_token_type(&token_type)?,
                        amount: rows::exact_sum_value(high, low),
                        count,
                    })
                })
                .collect()
        })
        .await
    }

    async fn journal(&self, query: &JournalQuery) -> Result<Vec<JournalEntry>, StoreError> {
        let journal = query.clone();
        let query = rows::journal_query(Dialect::Sqlite, &journal);
        self.read(move |conn| {
            let rows = query_rows(conn, query, "journal", journal_row)?;
            rows::journal_entries(rows, &journal)
        })
        .await
    }

    async fn clearing_rows(&self, query: &ClearingQuery) -> Result<Vec<ClearingRow>, StoreError> {
        let query = rows::clearing_rows_query(Dialect::Sqlite, query);
        self.read(move |conn| {
            let rows = query_rows(conn, query, "clearing_rows", |row| {
                Ok((token_row(row)?, clearing_extra(row)?))
            })?;
            rows.into_iter()
                .map(|(token, extra)| rows::clearing_row(token, extra))
                .collect()
        })
        .await
    }

    async fn clearing_sums(&self, query: &ClearingQuery) -> Result<Vec<ClearingSum>, StoreError> {
        let query = rows::clearing_sums_query(Dialect::Sqlite, query);
        self.read(move |conn| {
            type SumRow = (String, String, i64, i64, i64, i64, i64);
            let rows: Vec<SumRow> = query_rows(conn, query, "clearing_sums", |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                ))
            })?;
            rows.into_iter()
                .map(
                    |(token_type, symbol, debitor_id, creditor_id, count, high, low)| {
                        Ok(ClearingSum {
                            token_type: rows::parse_token_type(&token_type)?,
                            symbol,
                            debitor_id,
                            creditor_id,
                            count,
                            amount: rows::exact_sum_value(high, low),
                        })
                    },
                )
                .collect()
        })
        .await
    }

    async fn events_after(
        &self,
        customer: Option<CustomerId>,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let query = rows::events_after_query(Dialect::Sqlite, customer, after_seq, limit);
        self.read(move |conn| {
            let rows = query_rows(conn, query, "events_after", event_row)?;
            rows.into_iter().map(EventRow::into_record).collect()
        })
        .await
    }

    async fn last_event_seq(&self) -> Result<i64, StoreError> {
        self.read(|conn| {
            conn.query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM token_events",
                [],
                |row| row.get(0),
            )
            .map_err(|err| sql_error(err, "last_event_seq"))
        })
        .await
    }

    async fn due_expiries(&self, now: i64, limit: usize) -> Result<Vec<Uuid>, StoreError> {
        let limit = rows::list_limit(limit);
        self.read(move |conn| {
            let uuids: Vec<String> = conn
                .prepare_cached(
                    "SELECT uuid FROM tokens WHERE state = 'OPEN' AND expires < ?1 \
                     ORDER BY expires, seq LIMIT ?2",
                )
                .and_then(|mut statement| {
                    statement
                        .query_map(params![now, limit], |row| row.get(0))?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(|err| sql_error(err, "due_expiries"))?;
            uuids
                .iter()
                .map(|uuid| rows::parse_uuid(uuid, "tokens.uuid"))
                .collect()
        })
        .await
    }

    async fn delete_history(&self, before: i64) -> Result<u64, StoreError> {
        let mut removed = 0_u64;
        loop {
            // One batch per write task, so that commits of the writer interleave.
            let batch = self
                .write(move |conn| delete_history_batch(conn, before))
                .await?;
            removed += batch as u64;
            if batch < HISTORY_BATCH {
                return Ok(removed);
            }
        }
    }
}
