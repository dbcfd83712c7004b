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
use rusqlite::{params, Connection, ErrorCode, OpenFlags, TransactionBehavior};

use super::entities::{self, EntityValues};
use super::rows::{self, ClearingValues, Dialect, EventValues, SetValues, WriteValues};
use super::sql::numbered_placeholders;
use super::{IdempotencyRecord, PoolUsage, StoreError, WriteOutcome, WriteSet};
use crate::clock::now_millis;

/// Forward-only migrations: `(version, sql)`, ascending. See `migrations/README.md`.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/sqlite/0001_init.sql")),
    (2, include_str!("migrations/sqlite/0002_portal_clearing.sql")),
    (3, include_str!("migrations/sqlite/0003_idempotency.sql")),
    (4, include_str!("migrations/sqlite/0004_entities.sql")),
    (5, include_str!("migrations/sqlite/0005_ledger.sql")),
    (6, include_str!("migrations/sqlite/0006_ccc.sql")),
];

const READERS: usize = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Room for the 16 list-filter variants and every other statement.
const STATEMENT_CACHE: usize = 64;

static INSERT_TOKEN: LazyLock<String> = LazyLock::new(|| rows::insert_token_sql('?'));
static UPDATE_TOKEN: LazyLock<String> = LazyLock::new(|| rows::update_token_sql('?'));
static INSERT_EVENT: LazyLock<String> = LazyLock::new(|| rows::insert_event_sql('?'));
static INSERT_CLEARING: LazyLock<String> = LazyLock::new(|| rows::insert_clearing_sql(Dialect::Sqlite));
static INSERT_IDEMPOTENCY: LazyLock<String> = LazyLock::new(|| rows::insert_idempotency_sql(Dialect::Sqlite));
static INSERT_ENTITY: LazyLock<String> = LazyLock::new(|| numbered_placeholders(&entities::INSERT.sql).into_owned());
static UPDATE_ENTITY: LazyLock<String> = LazyLock::new(|| numbered_placeholders(&entities::UPDATE.sql).into_owned());
static INSERT_ENTITY_EVENT: LazyLock<String> =
    LazyLock::new(|| numbered_placeholders(&entities::INSERT_EVENT.sql).into_owned());

/// The SQLite store. Cloning is cheap: clones share the connections.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
    /// Of every call and commit (`sql::Backend`).
    pub(super) deadline: Duration,
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
        f.debug_struct("SqliteStore").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// The database file inside the data directory.
    pub const FILE_NAME: &'static str = "cashgrid.db";

    /// Open (creating if needed) `data_dir/cashgrid.db` and bring its schema up to date.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|err| {
            StoreError::Unavailable(format!("cannot create the data directory {}: {err}", data_dir.display()))
        })?;
        let path = data_dir.join(Self::FILE_NAME);
        let mut writer = open_connection(&path)?;
        let mode: String = writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(|err| sql_error(err, "set journal_mode=WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Internal(anyhow!("{}: journal_mode is {mode}, not wal", path.display())));
        }
        migrate(&mut writer)?;
        let readers = (0..READERS)
            .map(|_| {
                let reader = open_connection(&path)?;
                reader.pragma_update(None, "query_only", true).map_err(|err| sql_error(err, "set query_only"))?;
                Ok(Mutex::new(reader))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Self {
            deadline: super::sql::DEFAULT_DEADLINE,
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

    /// Every call and commit ends by `deadline` (default 5 s).
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Run `job` on a read connection, on a blocking thread.
    pub(super) async fn read_connection<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.reader_usage.run(|| inner.reader(), |mut conn| job(&mut conn)))
            .await
            .map_err(|err| StoreError::Internal(anyhow!("sqlite read task failed: {err}")))?
    }

    /// Run `job` on the writer connection, on a blocking thread.
    pub(super) async fn write_connection<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.writer_usage.run(|| lock(&inner.writer), |mut conn| job(&mut conn)))
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
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|err| StoreError::Unavailable(format!("cannot open {}: {err}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|err| sql_error(err, "set busy_timeout"))?;
    conn.pragma_update(None, "synchronous", "FULL").map_err(|err| sql_error(err, "set synchronous=FULL"))?;
    conn.pragma_update(None, "foreign_keys", true).map_err(|err| sql_error(err, "set foreign_keys=ON"))?;
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
        .query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |row| row.get(0))
        .map_err(|err| sql_error(err, "read schema_migrations"))?;
    for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > current) {
        tx.execute_batch(sql).map_err(|err| sql_error(err, &format!("migration {version}")))?;
        tx.execute("INSERT INTO schema_migrations (version, applied) VALUES (?1, ?2)", params![version, now_millis()])
            .map_err(|err| sql_error(err, &format!("record migration {version}")))?;
        tracing::info!(version, "sqlite store: applied migration");
    }
    tx.commit().map_err(|err| sql_error(err, "commit migrations"))
}

/// Busy, locked, unopenable or full databases are unavailable (503); anything else is internal.
pub(super) fn sql_error(err: rusqlite::Error, what: &str) -> StoreError {
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

pub(super) fn is_foreign_key_violation(err: &rusqlite::Error) -> bool {
    matches!(
        err,
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
    )
}

pub(super) fn is_unique_violation(err: &rusqlite::Error) -> bool {
    matches!(
        err,
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
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
    statement.execute(rusqlite::params_from_iter(token.params().map(|param| param as &dyn rusqlite::ToSql)))
}

fn write_event(statement: &mut rusqlite::CachedStatement<'_>, event: &EventValues) -> rusqlite::Result<usize> {
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

fn write_clearing(statement: &mut rusqlite::CachedStatement<'_>, clearing: &ClearingValues) -> rusqlite::Result<usize> {
    statement.execute(params![clearing.token_uuid, clearing.debitor_id, clearing.creditor_id, clearing.created,])
}

/// The commit's prepared statements.
struct CommitStatements<'conn> {
    insert: rusqlite::CachedStatement<'conn>,
    update: rusqlite::CachedStatement<'conn>,
    event: rusqlite::CachedStatement<'conn>,
    clearing: rusqlite::CachedStatement<'conn>,
    idempotency: rusqlite::CachedStatement<'conn>,
    entity_insert: rusqlite::CachedStatement<'conn>,
    entity_update: rusqlite::CachedStatement<'conn>,
    entity_event: rusqlite::CachedStatement<'conn>,
    /// For the ledger's row writes, prepared (cached) by their SQL.
    conn: &'conn rusqlite::Connection,
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
        match statements.and_then(|mut statements| commit_deciding_first_writes(&mut statements, sets)) {
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
fn commit_statements<'conn>(tx: &'conn rusqlite::Transaction<'_>) -> rusqlite::Result<CommitStatements<'conn>> {
    Ok(CommitStatements {
        insert: tx.prepare_cached(&INSERT_TOKEN)?,
        update: tx.prepare_cached(&UPDATE_TOKEN)?,
        event: tx.prepare_cached(&INSERT_EVENT)?,
        clearing: tx.prepare_cached(&INSERT_CLEARING)?,
        idempotency: tx.prepare_cached(&INSERT_IDEMPOTENCY)?,
        entity_insert: tx.prepare_cached(&INSERT_ENTITY)?,
        entity_update: tx.prepare_cached(&UPDATE_ENTITY)?,
        entity_event: tx.prepare_cached(&INSERT_ENTITY_EVENT)?,
        conn: tx,
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
fn commit_sets_under_savepoints(conn: &mut Connection, sets: &[SetValues]) -> Result<Vec<WriteOutcome>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|err| sql_error(err, "commit: begin"))?;
    let mut outcomes = Vec::with_capacity(sets.len());
    {
        let mut statements = commit_statements(&tx).map_err(|err| sql_error(err, "commit: prepare"))?;
        let prepare = |sql: &str, what: &str| tx.prepare_cached(sql).map_err(|err| sql_error(err, what));
        let mut savepoint = prepare("SAVEPOINT write_set", "prepare savepoint")?;
        let mut release = prepare("RELEASE SAVEPOINT write_set", "prepare release")?;
        let mut rollback = prepare("ROLLBACK TO SAVEPOINT write_set", "prepare rollback")?;
        for set in sets {
            savepoint.execute([]).map_err(|err| sql_error(err, "commit: savepoint"))?;
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
                rollback.execute([]).map_err(|err| sql_error(err, "commit: rollback to savepoint"))?;
            }
            // Pops the savepoint (after a rollback to it, SQLite keeps it on the stack).
            release.execute([]).map_err(|err| sql_error(err, "commit: release savepoint"))?;
            outcomes.push(outcome);
        }
    }
    tx.commit().map_err(|err| sql_error(err, "commit"))?;
    Ok(outcomes)
}

/// One set's writes from the `from`-th on, its idempotency key, entity changes, events and
/// clearing row; `false` when a write, the key or an entity change did not apply (the caller
/// undoes the set).
fn commit_set_after(statements: &mut CommitStatements<'_>, set: &SetValues, from: usize) -> rusqlite::Result<bool> {
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
    for entity in &set.entities {
        if !write_entity(statements, entity)? {
            return Ok(false);
        }
    }
    for row in &set.ledger_rows {
        let changed = statements
            .conn
            .prepare_cached(&numbered_placeholders(&row.statement.sql))?
            .execute(rusqlite::params_from_iter(row.values.iter()))?;
        if changed == 0 && row.must_apply {
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

/// An entity's snapshot, then its events; `false` when the snapshot does not apply.
fn write_entity(statements: &mut CommitStatements<'_>, entity: &EntityValues) -> rusqlite::Result<bool> {
    let snapshot = if entity.version == 1 { &mut statements.entity_insert } else { &mut statements.entity_update };
    let values = params![entity.kind, entity.id, entity.version, entity.state, entity.lookup, entity.at];
    if snapshot.execute(values)? == 0 {
        return Ok(false);
    }
    for event in &entity.events {
        statements.entity_event.execute(params![entity.kind, entity.id, entity.version, entity.at, event])?;
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

impl SqliteStore {
    pub(super) fn pools(&self) -> Vec<PoolUsage> {
        vec![
            self.inner.reader_usage.snapshot("read", self.inner.readers.len()),
            self.inner.writer_usage.snapshot("write", 1),
        ]
    }

    pub(super) async fn group_commit(&self, sets: &[WriteSet]) -> Result<Vec<WriteOutcome>, StoreError> {
        if sets.is_empty() {
            return Ok(Vec::new());
        }
        let mut values = rows::encode_sets(sets)?;
        rows::encode_ledger_rows(sets, &mut values)?;
        self.write_connection(move |conn| commit_sets(conn, &values)).await
    }
}
