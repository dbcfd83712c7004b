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
    self, AccessRow, DeviceRow, EventValues, FilterValue, SetValues, TokenRow, TokenValues,
    WriteValues, ACCESS_COLUMNS, CUSTOMER_COLUMNS, DEVICE_COLUMNS, TOKEN_COLUMNS,
};
use super::{
    Access, Customer, NewCustomer, Scope, Store, StoreError, TokenFilter, WriteOutcome, WriteSet,
};
use crate::domain::{CustomerId, Device, Token};

/// Forward-only migrations: `(version, sql)`, ascending. See `migrations/README.md`.
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("migrations/sqlite/0001_init.sql"))];

const READERS: usize = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Room for the 16 list-filter variants and every other statement.
const STATEMENT_CACHE: usize = 64;

static INSERT_TOKEN: LazyLock<String> = LazyLock::new(|| rows::insert_token_sql('?'));
static UPDATE_TOKEN: LazyLock<String> = LazyLock::new(|| rows::update_token_sql('?'));
static INSERT_EVENT: LazyLock<String> = LazyLock::new(|| rows::insert_event_sql('?'));

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

    async fn read<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let conn = inner.reader();
            job(&conn)
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
            let mut conn = lock(&inner.writer);
            job(&mut conn)
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
            params![version, rows::now_millis()],
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
    ])
}

/// The whole commit, sets in order, in one `BEGIN IMMEDIATE` transaction.
fn commit_sets(conn: &mut Connection, sets: &[SetValues]) -> Result<Vec<WriteOutcome>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|err| sql_error(err, "commit: begin"))?;
    let mut outcomes = Vec::with_capacity(sets.len());
    {
        let mut insert = tx
            .prepare_cached(&INSERT_TOKEN)
            .map_err(|err| sql_error(err, "prepare insert"))?;
        let mut update = tx
            .prepare_cached(&UPDATE_TOKEN)
            .map_err(|err| sql_error(err, "prepare update"))?;
        let mut event = tx
            .prepare_cached(&INSERT_EVENT)
            .map_err(|err| sql_error(err, "prepare event"))?;
        for set in sets {
            let mut writes = set.writes.iter();
            if let Some(first) = writes.next() {
                let applied = write_token(&mut insert, &mut update, first)
                    .map_err(|err| sql_error(err, "commit: first write"))?;
                if applied == 0 {
                    outcomes.push(WriteOutcome::Conflict);
                    continue;
                }
            }
            for write in writes {
                let applied = write_token(&mut insert, &mut update, write)
                    .map_err(|err| sql_error(err, "commit: write"))?;
                if applied == 0 {
                    return Err(match write {
                        WriteValues::Insert(token) => rows::unexpected_write("insert", &token.uuid),
                        WriteValues::Update(token) => rows::unexpected_write("update", &token.uuid),
                    });
                }
            }
            for values in &set.events {
                write_event(&mut event, values).map_err(|err| sql_error(err, "commit: event"))?;
            }
            outcomes.push(WriteOutcome::Committed);
        }
    }
    tx.commit().map_err(|err| sql_error(err, "commit"))?;
    Ok(outcomes)
}

#[async_trait]
impl Store for SqliteStore {
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
            values.push(match value {
                FilterValue::Text(text) => SqlValue::Text(text),
                FilterValue::Int(int) => SqlValue::Integer(int),
            });
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

    async fn insert_device(&self, device: &Device) -> Result<Device, StoreError> {
        let device = device.clone();
        self.write(move |conn| {
            let row = conn
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
            row.into_device()
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
                        rows::now_millis(),
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
                        params![
                            customer,
                            rows::now_millis(),
                            scope.as_str(),
                            apikey,
                            secret_hash
                        ],
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
                statement.execute(params![customer, key, value, rows::now_millis()])
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
}
