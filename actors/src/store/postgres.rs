//! The production store: PostgreSQL through a deadpool-postgres pool (no TLS).
//!
//! `commit` runs the write sets of a whole batch in one transaction in two round trips (plus
//! `BEGIN` and `COMMIT`). First the deciding first write of every set: new tokens in one
//! `INSERT` over `UNNEST`ed column arrays that returns the uuids it inserted, updates one fenced
//! statement each, all pipelined (tokio-postgres sends concurrent queries on one connection
//! without waiting). Then, for the sets whose first write applied, their remaining writes, all
//! their events in one `UNNEST` insert and their clearing rows, pipelined too. A batch whose
//! first writes name a token twice, or whose later writes do not all apply, is rolled back and
//! committed set by set instead.
//!
//! Commits have a pool of their own (`commit_connections`, see [`PostgresStore::connect`]): the
//! writer keeps one batch in flight per connection, and since only the writer's thread asks that
//! pool for connections, their I/O tasks run on that thread too, never behind the HTTP or actor
//! work of a busy thread.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use anyhow::anyhow;
use async_trait::async_trait;
use deadpool_postgres::{
    Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, Transaction,
};
use futures_util::future::join_all;
use serde_json::Value;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

use super::rows::{
    self, AccessRecordRow, AccessRow, AccountRow, BoundQuery, ClearingExtra, ClearingValues,
    CredentialsRow, DeviceRow, Dialect, EventRow, EventValues, FilterValue, JournalEventRow,
    SetValues, TokenRow, TokenValues, WriteValues, ACCESS_COLUMNS, ACCOUNT_COLUMNS,
    CLEARING_EXTRA_AT, CREDENTIAL_COLUMNS, CUSTOMER_COLUMNS, DEVICE_COLUMNS, EVENT_COLUMNS,
    HISTORY_BATCH, TOKEN_COLUMNS,
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
    (1, include_str!("migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("migrations/postgres/0002_portal_clearing.sql"),
    ),
    (3, include_str!("migrations/postgres/0003_idempotency.sql")),
];

/// Advisory lock key serialising the migrations of nodes starting together ("cashgrid").
const MIGRATION_LOCK: i64 = 0x6361_7368_6772_6964;

/// How long to wait for a pooled connection, to open one, or to check one: then 503. Shorter
/// than the deadline of a store call (`DeadlineStore`), so that a call that never reached the
/// database says so (503) instead of "outcome unknown".
const POOL_TIMEOUT: Duration = Duration::from_secs(2);

static INSERT_TOKEN: LazyLock<String> = LazyLock::new(|| rows::insert_token_sql('$'));
static UPDATE_TOKEN: LazyLock<String> = LazyLock::new(|| rows::update_token_sql('$'));
/// The SQL type of each of [`TOKEN_COLUMNS`], in order: the arrays of the set-based writes.
const TOKEN_COLUMN_TYPES: [&str; 21] = [
    "TEXT", "BIGINT", "BIGINT", "BIGINT", "TEXT", "TEXT", "TEXT", "BYTEA", "BIGINT", "TEXT",
    "TEXT", "BIGINT", "BIGINT", "TEXT", "TEXT", "TEXT", "TEXT", "BIGINT", "TEXT", "TEXT", "BIGINT",
];

/// `UNNEST($1::TEXT[], $2::BIGINT[], ...)`: token rows bound as one array per column.
fn unnest_tokens() -> String {
    let arrays = TOKEN_COLUMN_TYPES
        .iter()
        .enumerate()
        .map(|(index, sql_type)| format!("${}::{sql_type}[]", index + 1))
        .collect::<Vec<_>>()
        .join(", ");
    format!("UNNEST({arrays})")
}

/// Many new tokens in one statement; returns the uuids inserted (a conflict inserts nothing).
static INSERT_TOKENS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO tokens ({TOKEN_COLUMNS}) SELECT * FROM {} ON CONFLICT DO NOTHING RETURNING uuid",
        unnest_tokens()
    )
});
/// All the events of a commit in one statement: one array per column, rows in event order.
static INSERT_EVENTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO token_events ({EVENT_COLUMNS}) SELECT * FROM UNNEST($1::TEXT[], \
         $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::BIGINT[], $7::BIGINT[], $8::BIGINT[], \
         $9::TEXT[])"
    )
});
static INSERT_CLEARING: LazyLock<String> =
    LazyLock::new(|| rows::insert_clearing_sql(Dialect::Postgres));
static DEFAULT_RULE: LazyLock<String> = LazyLock::new(|| rows::default_rule_sql(Dialect::Postgres));
static INSERT_IDEMPOTENCY: LazyLock<String> =
    LazyLock::new(|| rows::insert_idempotency_sql(Dialect::Postgres));

type Param<'a> = &'a (dyn ToSql + Sync);

/// The PostgreSQL store. Cloning is cheap: clones share the pools.
#[derive(Clone)]
pub struct PostgresStore {
    /// Reads and the admin commands' writes.
    pool: Pool,
    /// Group commits only.
    commit_pool: Pool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pool's configuration holds the password: show its status only.
        f.debug_struct("PostgresStore")
            .field("pool", &self.pool.status())
            .field("commit_pool", &self.commit_pool.status())
            .finish()
    }
}

impl PostgresStore {
    /// Build a pool of at most `pool_size` connections to `database_url` (a `postgres://` URL
    /// or a `key=value` string), and one of `commit_connections` for group commits, and bring
    /// the schema up to date. Fails with `Unavailable` when the server cannot be reached.
    pub async fn connect(
        database_url: &str,
        pool_size: usize,
        commit_connections: usize,
    ) -> Result<Self, StoreError> {
        let mut config = tokio_postgres::Config::from_str(database_url)
            .map_err(|err| StoreError::Internal(anyhow!("invalid database url: {err}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(POOL_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("cashgrid");
        }
        let store = Self {
            pool: build_pool(config.clone(), pool_size)?,
            commit_pool: build_pool(config, commit_connections)?,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The migrations this build applies, `(version, sql)` ascending. For tests: their
    /// template database is named after a hash of these.
    #[doc(hidden)]
    pub fn migrations() -> &'static [(i64, &'static str)] {
        MIGRATIONS
    }

    /// Number of `token_events` rows. For tests.
    #[doc(hidden)]
    pub async fn count_events(&self) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT COUNT(*) FROM token_events", &[])
            .await
            .map_err(|err| pg_error(err, "count_events"))?;
        row.try_get(0).map_err(|err| pg_error(err, "count_events"))
    }

    /// The stored account snapshots of every clearing row, as text, in clearing order. For
    /// tests.
    #[doc(hidden)]
    pub async fn clearing_account_texts(
        &self,
    ) -> Result<Vec<(Option<String>, Option<String>)>, StoreError> {
        let query = BoundQuery {
            sql: "SELECT debitor_account, creditor_account FROM clearing ORDER BY id".to_owned(),
            values: Vec::new(),
        };
        self.query_rows(&query, "clearing_account_texts", |row| {
            Ok((row.try_get(0)?, row.try_get(1)?))
        })
        .await
    }

    /// Run a bound query, mapping each row.
    async fn query_rows<T>(
        &self,
        query: &BoundQuery,
        what: &str,
        map: impl Fn(&Row) -> Result<T, tokio_postgres::Error>,
    ) -> Result<Vec<T>, StoreError> {
        let params: Vec<Param<'_>> = query.values.iter().map(filter_param).collect();
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&query.sql)
            .await
            .map_err(|err| pg_error(err, what))?;
        client
            .query(&statement, &params)
            .await
            .and_then(|rows| rows.iter().map(&map).collect::<Result<Vec<_>, _>>())
            .map_err(|err| pg_error(err, what))
    }

    /// Execute one statement; rows changed.
    async fn execute(
        &self,
        sql: &str,
        params: &[Param<'_>],
        what: &str,
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(|err| pg_error(err, what))?;
        client
            .execute(&statement, params)
            .await
            .map_err(|err| pg_error(err, what))
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Apply the pending migrations in one transaction, under a transaction-level advisory lock
    /// so that nodes starting together do not race.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|err| pg_error(err, "begin migrations"))?;
        tx.batch_execute(&format!(
            "SELECT pg_advisory_xact_lock({MIGRATION_LOCK});
             CREATE TABLE IF NOT EXISTS schema_migrations (
                 version BIGINT PRIMARY KEY,
                 applied BIGINT NOT NULL
             );"
        ))
        .await
        .map_err(|err| pg_error(err, "lock migrations"))?;
        let current: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
                &[],
            )
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|err| pg_error(err, "read schema_migrations"))?;
        let known = MIGRATIONS
            .iter()
            .map(|(version, _)| *version)
            .max()
            .unwrap_or(0);
        if current > known {
            tracing::warn!(
                current,
                known,
                "postgres store: schema is newer than this binary"
            );
        }
        for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > current) {
            tx.batch_execute(sql)
                .await
                .map_err(|err| pg_error(err, &format!("migration {version}")))?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied) VALUES ($1, $2)",
                &[version, &now_millis()],
            )
            .await
            .map_err(|err| pg_error(err, &format!("record migration {version}")))?;
            tracing::info!(version, "postgres store: applied migration");
        }
        tx.commit()
            .await
            .map_err(|err| pg_error(err, "commit migrations"))
    }
}

fn build_pool(config: tokio_postgres::Config, size: usize) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_TIMEOUT))
        .create_timeout(Some(POOL_TIMEOUT))
        .recycle_timeout(Some(POOL_TIMEOUT))
        .build()
        .map_err(|err| StoreError::Internal(anyhow!("cannot build the connection pool: {err}")))
}

fn usage(pool: &'static str, status: deadpool_postgres::Status) -> PoolUsage {
    PoolUsage {
        pool,
        max: status.max_size,
        open: status.size,
        in_use: status.size.saturating_sub(status.available),
        waiting: status.waiting,
    }
}

fn pool_error(err: PoolError) -> StoreError {
    match err {
        PoolError::Timeout(kind) => StoreError::Unavailable(format!(
            "postgres: timed out getting a connection ({kind:?})"
        )),
        PoolError::Backend(err) => pg_error(err, "connect"),
        PoolError::Closed => StoreError::Unavailable("postgres: the pool is closed".to_owned()),
        PoolError::PostCreateHook(err) => StoreError::Unavailable(format!("postgres: {err}")),
        PoolError::NoRuntimeSpecified => {
            StoreError::Internal(anyhow!("postgres pool: no runtime specified"))
        }
    }
}

/// Connection loss, refused or failed connections (including a refused login or a missing
/// database), server shutdown, too many connections and transient lock failures are
/// `Unavailable` (503); anything else is `Internal`.
fn pg_error(err: tokio_postgres::Error, what: &str) -> StoreError {
    let unavailable = match err.code() {
        Some(code) => {
            let code = code.code();
            code.starts_with("08") // connection exception
                || code.starts_with("28") // invalid authorization
                || code.starts_with("53") // insufficient resources (too many connections, ...)
                || code.starts_with("57P") // admin shutdown, crash shutdown, cannot connect now
                || code == SqlState::INVALID_CATALOG_NAME.code() // no such database
                || code == SqlState::T_R_SERIALIZATION_FAILURE.code()
                || code == SqlState::T_R_DEADLOCK_DETECTED.code()
                || code == SqlState::LOCK_NOT_AVAILABLE.code()
        }
        None => {
            err.is_closed()
                || std::error::Error::source(&err)
                    .is_some_and(|source| source.is::<std::io::Error>())
                || err.to_string().starts_with("error connecting to server")
                || err.to_string().starts_with("timeout")
        }
    };
    if unavailable {
        // The cause (e.g. "Connection refused") is the error's source, not in its message.
        match std::error::Error::source(&err) {
            Some(source) => StoreError::Unavailable(format!("postgres {what}: {err}: {source}")),
            None => StoreError::Unavailable(format!("postgres {what}: {err}")),
        }
    } else {
        StoreError::Internal(anyhow::Error::new(err).context(format!("postgres {what}")))
    }
}

fn is_foreign_key_violation(err: &tokio_postgres::Error) -> bool {
    err.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION)
}

fn filter_param(value: &FilterValue) -> Param<'_> {
    match value {
        FilterValue::Text(text) => text,
        FilterValue::OptText(text) => text,
        FilterValue::Int(int) => int,
    }
}

/// Apply the default-account rule for `customer` inside `tx`.
async fn apply_default_rule(
    tx: &Transaction<'_>,
    customer: CustomerId,
) -> Result<(), tokio_postgres::Error> {
    let statement = tx.prepare_cached(&DEFAULT_RULE).await?;
    tx.execute(&statement, &[&customer]).await?;
    Ok(())
}

/// Serialise the account changes of one customer (the default rule reads all its accounts).
/// `NO KEY UPDATE` does not block token inserts checking their owner's foreign key.
async fn lock_customer_accounts(
    tx: &Transaction<'_>,
    customer: CustomerId,
) -> Result<(), tokio_postgres::Error> {
    let statement = tx
        .prepare_cached("SELECT 1 FROM customers WHERE id = $1 FOR NO KEY UPDATE")
        .await?;
    tx.query_opt(&statement, &[&customer]).await?;
    Ok(())
}

fn account_row(row: &Row) -> Result<AccountRow, tokio_postgres::Error> {
    Ok(AccountRow {
        id: row.try_get(0)?,
        customer_id: row.try_get(1)?,
        value: row.try_get(2)?,
        account_type: row.try_get(3)?,
        is_default: i64::from(row.try_get::<_, i32>(4)?),
        symbol: row.try_get(5)?,
        refname: row.try_get(6)?,
    })
}

fn access_record_row(row: &Row) -> Result<AccessRecordRow, tokio_postgres::Error> {
    Ok(AccessRecordRow {
        access: access_row(row)?,
        secret_encrypted: row.try_get(6)?,
    })
}

fn credentials_row(row: &Row) -> Result<CredentialsRow, tokio_postgres::Error> {
    Ok(CredentialsRow {
        customer: customer_row(row)?,
        password_hash: row.try_get(7)?,
        twofa_secret: row.try_get(8)?,
    })
}

fn event_row(row: &Row) -> Result<EventRow, tokio_postgres::Error> {
    Ok(EventRow {
        seq: row.try_get(0)?,
        token_uuid: row.try_get(1)?,
        kind: row.try_get(2)?,
        from_state: row.try_get(3)?,
        to_state: row.try_get(4)?,
        created: row.try_get(5)?,
        owner_id: row.try_get(6)?,
        cash_customer_id: row.try_get(7)?,
        version: row.try_get(8)?,
        payload: row.try_get(9)?,
    })
}

fn journal_row(row: &Row) -> Result<JournalEventRow, tokio_postgres::Error> {
    Ok(JournalEventRow {
        seq: row.try_get(0)?,
        created: row.try_get(1)?,
        kind: row.try_get(2)?,
        owner_id: row.try_get(3)?,
        cash_customer_id: row.try_get(4)?,
        payload: row.try_get(5)?,
    })
}

fn clearing_extra(row: &Row) -> Result<ClearingExtra, tokio_postgres::Error> {
    let at = CLEARING_EXTRA_AT;
    Ok(ClearingExtra {
        created: row.try_get(at)?,
        token_device_refname: row.try_get(at + 1)?,
        lock_device_refname: row.try_get(at + 2)?,
        debitor_id: row.try_get(at + 3)?,
        creditor_id: row.try_get(at + 4)?,
        debitor_account: row.try_get(at + 5)?,
        creditor_account: row.try_get(at + 6)?,
    })
}

fn is_unique_violation(err: &tokio_postgres::Error) -> bool {
    err.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

fn token_row(row: &Row) -> Result<TokenRow, tokio_postgres::Error> {
    Ok(TokenRow {
        uuid: row.try_get(0)?,
        version: row.try_get(1)?,
        created: row.try_get(2)?,
        updated: row.try_get(3)?,
        token_type: row.try_get(4)?,
        plain_code: row.try_get(5)?,
        secure_code: row.try_get(6)?,
        code_hash: row.try_get(7)?,
        amount: row.try_get(8)?,
        symbol: row.try_get(9)?,
        state: row.try_get(10)?,
        clearstate: row.try_get(11)?,
        expires: row.try_get(12)?,
        refname: row.try_get(13)?,
        lockrefname: row.try_get(14)?,
        info: row.try_get(15)?,
        processing_info: row.try_get(16)?,
        owner_id: row.try_get(17)?,
        owner_device: row.try_get(18)?,
        lock_device: row.try_get(19)?,
        lock_customer_id: row.try_get(20)?,
    })
}

fn device_row(row: &Row) -> Result<DeviceRow, tokio_postgres::Error> {
    Ok(DeviceRow {
        id: row.try_get(0)?,
        uuid: row.try_get(1)?,
        customer_id: row.try_get(2)?,
        created: row.try_get(3)?,
        device_type: row.try_get(4)?,
        pubkey: row.try_get(5)?,
        lat: row.try_get(6)?,
        lon: row.try_get(7)?,
        refname: row.try_get(8)?,
        info: row.try_get(9)?,
    })
}

fn customer_row(row: &Row) -> Result<Customer, tokio_postgres::Error> {
    Ok(Customer {
        id: row.try_get(0)?,
        created: row.try_get(1)?,
        email: row.try_get(2)?,
        display_name: row.try_get(3)?,
        roles: row.try_get(4)?,
        status: row.try_get(5)?,
        info: row.try_get(6)?,
    })
}

fn access_row(row: &Row) -> Result<AccessRow, tokio_postgres::Error> {
    Ok(AccessRow {
        id: row.try_get(0)?,
        customer_id: row.try_get(1)?,
        created: row.try_get(2)?,
        scope: row.try_get(3)?,
        apikey: row.try_get(4)?,
        secret_hash: row.try_get(5)?,
    })
}

fn token_params(token: &TokenValues) -> [Param<'_>; 21] {
    [
        &token.uuid,
        &token.version,
        &token.created,
        &token.updated,
        &token.token_type,
        &token.plain_code,
        &token.secure_code,
        &token.code_hash,
        &token.amount,
        &token.symbol,
        &token.state,
        &token.clearstate,
        &token.expires,
        &token.refname,
        &token.lockrefname,
        &token.info,
        &token.processing_info,
        &token.owner_id,
        &token.owner_device,
        &token.lock_device,
        &token.lock_customer_id,
    ]
}

/// Token rows as column arrays, for [`INSERT_TOKENS`].
#[derive(Default)]
struct TokenColumns<'a> {
    uuid: Vec<&'a str>,
    version: Vec<i64>,
    created: Vec<i64>,
    updated: Vec<Option<i64>>,
    token_type: Vec<&'static str>,
    plain_code: Vec<Option<&'a str>>,
    secure_code: Vec<&'a str>,
    code_hash: Vec<Option<&'a [u8]>>,
    amount: Vec<i64>,
    symbol: Vec<&'a str>,
    state: Vec<&'static str>,
    clearstate: Vec<i64>,
    expires: Vec<Option<i64>>,
    refname: Vec<Option<&'a str>>,
    lockrefname: Vec<Option<&'a str>>,
    info: Vec<Option<&'a str>>,
    processing_info: Vec<Option<&'a str>>,
    owner_id: Vec<i64>,
    owner_device: Vec<&'a str>,
    lock_device: Vec<Option<&'a str>>,
    lock_customer_id: Vec<Option<i64>>,
}

impl<'a> TokenColumns<'a> {
    fn new(tokens: impl Iterator<Item = &'a TokenValues>) -> Self {
        let mut columns = Self::default();
        for token in tokens {
            columns.uuid.push(&token.uuid);
            columns.version.push(token.version);
            columns.created.push(token.created);
            columns.updated.push(token.updated);
            columns.token_type.push(token.token_type);
            columns.plain_code.push(token.plain_code.as_deref());
            columns.secure_code.push(&token.secure_code);
            columns.code_hash.push(token.code_hash.as_deref());
            columns.amount.push(token.amount);
            columns.symbol.push(&token.symbol);
            columns.state.push(token.state);
            columns.clearstate.push(token.clearstate);
            columns.expires.push(token.expires);
            columns.refname.push(token.refname.as_deref());
            columns.lockrefname.push(token.lockrefname.as_deref());
            columns.info.push(token.info.as_deref());
            columns
                .processing_info
                .push(token.processing_info.as_deref());
            columns.owner_id.push(token.owner_id);
            columns.owner_device.push(&token.owner_device);
            columns.lock_device.push(token.lock_device.as_deref());
            columns.lock_customer_id.push(token.lock_customer_id);
        }
        columns
    }

    fn is_empty(&self) -> bool {
        self.uuid.is_empty()
    }

    /// In [`TOKEN_COLUMNS`] order, as [`TOKEN_COLUMN_TYPES`] types them.
    fn params(&self) -> [Param<'_>; 21] {
        [
            &self.uuid,
            &self.version,
            &self.created,
            &self.updated,
            &self.token_type,
            &self.plain_code,
            &self.secure_code,
            &self.code_hash,
            &self.amount,
            &self.symbol,
            &self.state,
            &self.clearstate,
            &self.expires,
            &self.refname,
            &self.lockrefname,
            &self.info,
            &self.processing_info,
            &self.owner_id,
            &self.owner_device,
            &self.lock_device,
            &self.lock_customer_id,
        ]
    }
}

/// Events as column arrays, for [`INSERT_EVENTS`].
#[derive(Default)]
struct EventColumns<'a> {
    token_uuid: Vec<&'a str>,
    version: Vec<i64>,
    kind: Vec<&'static str>,
    from_state: Vec<Option<&'static str>>,
    to_state: Vec<&'static str>,
    created: Vec<i64>,
    owner_id: Vec<i64>,
    cash_customer_id: Vec<Option<i64>>,
    payload: Vec<&'a str>,
}

impl<'a> EventColumns<'a> {
    fn new(events: impl Iterator<Item = &'a EventValues>) -> Self {
        let mut columns = Self::default();
        for event in events {
            columns.token_uuid.push(&event.token_uuid);
            columns.version.push(event.version);
            columns.kind.push(event.kind);
            columns.from_state.push(event.from_state);
            columns.to_state.push(event.to_state);
            columns.created.push(event.created);
            columns.owner_id.push(event.owner_id);
            columns.cash_customer_id.push(event.cash_customer_id);
            columns.payload.push(&event.payload);
        }
        columns
    }

    fn is_empty(&self) -> bool {
        self.token_uuid.is_empty()
    }

    fn params(&self) -> [Param<'_>; 9] {
        [
            &self.token_uuid,
            &self.version,
            &self.kind,
            &self.from_state,
            &self.to_state,
            &self.created,
            &self.owner_id,
            &self.cash_customer_id,
            &self.payload,
        ]
    }
}

/// The commit statements, prepared (and cached) on the transaction's connection.
struct CommitStatements {
    insert: tokio_postgres::Statement,
    update: tokio_postgres::Statement,
    insert_many: tokio_postgres::Statement,
    events: tokio_postgres::Statement,
    clearing: tokio_postgres::Statement,
    idempotency: tokio_postgres::Statement,
}

impl CommitStatements {
    async fn prepare(tx: &Transaction<'_>) -> Result<Self, StoreError> {
        let prepare = |sql: &'static LazyLock<String>| async move {
            tx.prepare_cached(sql)
                .await
                .map_err(|err| pg_error(err, "commit: prepare"))
        };
        Ok(Self {
            insert: prepare(&INSERT_TOKEN).await?,
            update: prepare(&UPDATE_TOKEN).await?,
            insert_many: prepare(&INSERT_TOKENS).await?,
            events: prepare(&INSERT_EVENTS).await?,
            clearing: prepare(&INSERT_CLEARING).await?,
            idempotency: prepare(&INSERT_IDEMPOTENCY).await?,
        })
    }

    /// Store an idempotency key; 0 rows when the customer already used it.
    async fn idempotency(
        &self,
        tx: &Transaction<'_>,
        record: &IdempotencyRecord,
    ) -> Result<u64, tokio_postgres::Error> {
        tx.execute(&self.idempotency, &idempotency_params(record))
            .await
    }

    /// Many new tokens in one statement; the uuids of those inserted.
    async fn insert_many(
        &self,
        tx: &Transaction<'_>,
        tokens: &TokenColumns<'_>,
    ) -> Result<HashSet<String>, tokio_postgres::Error> {
        if tokens.is_empty() {
            return Ok(HashSet::new());
        }
        let rows = tx.query(&self.insert_many, &tokens.params()).await?;
        rows.iter().map(|row| row.try_get::<_, String>(0)).collect()
    }

    /// One token write; the number of rows it changed (0 or 1).
    async fn write(
        &self,
        tx: &Transaction<'_>,
        write: &WriteValues,
    ) -> Result<u64, tokio_postgres::Error> {
        let (statement, token) = match write {
            WriteValues::Insert(token) => (&self.insert, token),
            WriteValues::Update(token) => (&self.update, token),
        };
        tx.execute(statement, &token_params(token)).await
    }

    /// Insert a clearing row, snapshotting both parties' default accounts.
    async fn clearing(
        &self,
        tx: &Transaction<'_>,
        clearing: &ClearingValues,
    ) -> Result<u64, tokio_postgres::Error> {
        tx.execute(
            &self.clearing,
            &[
                &clearing.token_uuid,
                &clearing.debitor_id,
                &clearing.creditor_id,
                &clearing.created,
            ],
        )
        .await
    }

    /// Insert `events` (if any) in one statement.
    async fn events(
        &self,
        tx: &Transaction<'_>,
        events: &EventColumns<'_>,
    ) -> Result<u64, tokio_postgres::Error> {
        if events.is_empty() {
            return Ok(0);
        }
        tx.execute(&self.events, &events.params()).await
    }
}

/// The pipelined commit. `Ok(None)` when a write after the first of its set (or its
/// idempotency key) did not apply — possible only when two sets of the batch touch the same
/// token or plain code, or a key is already taken: the caller then rolls back and reruns the
/// batch set by set, which decides exactly as SQLite does. A database error (a value it
/// refuses) also sends the batch the set-by-set way, where it fails only its own set.
///
/// One case still differs from set-by-set order, and safely: a first write that only a
/// *later* write of an earlier set would make possible (e.g. set A's second write frees a plain
/// code that set B's insert takes) conflicts here; the actor retries with a fresh code.
async fn commit_pipelined(
    tx: &Transaction<'_>,
    statements: &CommitStatements,
    sets: &[SetValues],
) -> Result<Option<Vec<WriteOutcome>>, tokio_postgres::Error> {
    // Round one: the deciding first write of every set. New tokens go in as one INSERT over
    // arrays; updates go one statement each (a fenced single-row UPDATE always plans as a unique
    // index lookup, where an UPDATE joined to arrays may be planned as a hash join over the whole
    // table). All are sent at once and run in that order. A token named twice would make the
    // set-based INSERT's answer ambiguous: such a batch goes the in-order way.
    let firsts: Vec<Option<&WriteValues>> = sets.iter().map(|set| set.writes.first()).collect();
    let mut named = HashSet::with_capacity(firsts.len());
    if !firsts
        .iter()
        .flatten()
        .all(|write| named.insert(written_uuid(write)))
    {
        return Ok(None);
    }
    let inserts = TokenColumns::new(firsts.iter().flatten().filter_map(|write| match write {
        WriteValues::Insert(token) => Some(token),
        WriteValues::Update(_) => None,
    }));
    let updates = join_all(firsts.iter().map(|first| async move {
        match first {
            Some(write @ WriteValues::Update(_)) => {
                statements.write(tx, write).await.map(|rows| rows > 0)
            }
            Some(WriteValues::Insert(_)) | None => Ok(true),
        }
    }));
    let (inserted, updated) =
        futures_util::future::join(statements.insert_many(tx, &inserts), updates).await;
    let inserted = inserted?;
    let mut applied = Vec::with_capacity(sets.len());
    for (first, updated) in firsts.iter().zip(updated) {
        let updated = updated?;
        applied.push(match first {
            Some(WriteValues::Insert(token)) => inserted.contains(&token.uuid),
            Some(WriteValues::Update(_)) | None => updated,
        });
    }

    // Round two: the rest of the sets that apply, in order, all their events in one statement,
    // their clearing rows and idempotency keys (none depends on a token write, so where they
    // land in the pipeline is moot; the account snapshots are read inside this transaction).
    let committed = || {
        sets.iter()
            .zip(&applied)
            .filter(|(_, applied)| **applied)
            .map(|(set, _)| set)
    };
    let events = EventColumns::new(committed().flat_map(|set| &set.events));
    let later = join_all(
        committed()
            .flat_map(|set| set.writes.iter().skip(1))
            .map(|write| statements.write(tx, write)),
    );
    let clearings = join_all(
        committed()
            .filter_map(|set| set.clearing.as_ref())
            .map(|clearing| statements.clearing(tx, clearing)),
    );
    let keys = join_all(
        committed()
            .filter_map(|set| set.idempotency.as_ref())
            .map(|record| statements.idempotency(tx, record)),
    );
    let (later, events, clearings, keys) =
        futures_util::future::join4(later, statements.events(tx, &events), clearings, keys).await;
    let mut all_applied = true;
    for result in later.into_iter().chain(keys) {
        all_applied &= result? > 0;
    }
    events?;
    for result in clearings {
        result?;
    }
    if !all_applied {
        return Ok(None);
    }
    Ok(Some(
        applied
            .into_iter()
            .map(|applied| {
                if applied {
                    WriteOutcome::Committed
                } else {
                    WriteOutcome::Conflict
                }
            })
            .collect(),
    ))
}

fn written_uuid(write: &WriteValues) -> &str {
    match write {
        WriteValues::Insert(token) | WriteValues::Update(token) => &token.uuid,
    }
}

/// The batch set by set, in order: the reference semantics, used when pipelining cannot
/// decide. Each set runs under a savepoint: a write of it that does not apply (or a taken
/// idempotency key) undoes the set (`Conflict`), and a value the database refuses undoes it too
/// (`Refused`) — one set's bad value never fails the others of its batch.
async fn commit_in_order(
    tx: &Transaction<'_>,
    statements: &CommitStatements,
    sets: &[SetValues],
) -> Result<Vec<WriteOutcome>, StoreError> {
    let mut outcomes = Vec::with_capacity(sets.len());
    for set in sets {
        tx.batch_execute("SAVEPOINT write_set")
            .await
            .map_err(|err| pg_error(err, "commit: savepoint"))?;
        let outcome = match commit_set(tx, statements, set).await {
            Ok(true) => WriteOutcome::Committed,
            Ok(false) => WriteOutcome::Conflict,
            Err(err) if err.as_db_error().is_some() => {
                tracing::error!(error = %err, "commit: the database refused a write set; its batch goes on without it");
                WriteOutcome::Refused
            }
            Err(err) => return Err(pg_error(err, "commit: write set")),
        };
        let end = match outcome {
            WriteOutcome::Committed => "RELEASE SAVEPOINT write_set",
            WriteOutcome::Conflict | WriteOutcome::Refused => "ROLLBACK TO SAVEPOINT write_set",
        };
        tx.batch_execute(end)
            .await
            .map_err(|err| pg_error(err, "commit: savepoint"))?;
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// One set's writes, idempotency key, clearing row and events; `false` when a write or the key
/// did not apply (the caller undoes the set).
async fn commit_set(
    tx: &Transaction<'_>,
    statements: &CommitStatements,
    set: &SetValues,
) -> Result<bool, tokio_postgres::Error> {
    for write in &set.writes {
        if statements.write(tx, write).await? == 0 {
            return Ok(false);
        }
    }
    if let Some(record) = &set.idempotency {
        if statements.idempotency(tx, record).await? == 0 {
            return Ok(false);
        }
    }
    if let Some(clearing) = &set.clearing {
        statements.clearing(tx, clearing).await?;
    }
    statements
        .events(tx, &EventColumns::new(set.events.iter()))
        .await?;
    Ok(true)
}

/// COMMIT. A refusal by the database (it answered) rolled everything back; a connection lost
/// while waiting for the answer leaves the outcome unknown.
async fn finish(tx: Transaction<'_>) -> Result<(), StoreError> {
    tx.commit().await.map_err(|err| {
        if err.as_db_error().is_some() {
            pg_error(err, "commit")
        } else {
            StoreError::OutcomeUnknown(format!("postgres commit: {err}"))
        }
    })
}

fn idempotency_params(record: &IdempotencyRecord) -> [Param<'_>; 5] {
    [
        &record.key.customer_id,
        &record.key.key,
        &record.key.fingerprint,
        &record.key.created,
        &record.result,
    ]
}

#[async_trait]
impl Store for PostgresStore {
    fn commit_slots(&self) -> usize {
        self.commit_pool.status().max_size
    }

    fn pool_usage(&self) -> Vec<PoolUsage> {
        vec![
            usage("query", self.pool.status()),
            usage("commit", self.commit_pool.status()),
        ]
    }

    async fn commit(&self, sets: &[WriteSet]) -> Result<Vec<WriteOutcome>, StoreError> {
        if sets.is_empty() {
            return Ok(Vec::new());
        }
        let sets = rows::encode_sets(sets)?;
        let mut client = self.commit_pool.get().await.map_err(pool_error)?;
        let tx = client
            .transaction()
            .await
            .map_err(|err| pg_error(err, "commit: begin"))?;
        let statements = CommitStatements::prepare(&tx).await?;
        match commit_pipelined(&tx, &statements, &sets).await {
            Ok(Some(outcomes)) => {
                finish(tx).await?;
                return Ok(outcomes);
            }
            Ok(None) => {}
            // A value the database refused: find its set the slow way.
            Err(err) if err.as_db_error().is_some() => {
                tracing::debug!(error = %err, "commit: pipelined batch refused; committing set by set");
            }
            Err(err) => return Err(pg_error(err, "commit")),
        }
        tx.rollback()
            .await
            .map_err(|err| pg_error(err, "commit: rollback"))?;
        let tx = client
            .transaction()
            .await
            .map_err(|err| pg_error(err, "commit: begin"))?;
        let outcomes = commit_in_order(&tx, &statements, &sets).await?;
        finish(tx).await?;
        Ok(outcomes)
    }

    async fn load_token(&self, uuid: Uuid) -> Result<Option<Token>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens WHERE uuid = $1"
            ))
            .await
            .map_err(|err| pg_error(err, "load_token"))?;
        let row = client
            .query_opt(&statement, &[&rows::uuid_text(uuid)])
            .await
            .and_then(|row| row.as_ref().map(token_row).transpose())
            .map_err(|err| pg_error(err, "load_token"))?;
        row.map(TokenRow::into_token).transpose()
    }

    async fn find_token_by_plain_code(&self, plain_code: &str) -> Result<Option<Uuid>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT uuid FROM tokens WHERE plain_code = $1 AND state IN ('OPEN', 'LOCKED')",
            )
            .await
            .map_err(|err| pg_error(err, "find_token_by_plain_code"))?;
        let uuid: Option<String> = client
            .query_opt(&statement, &[&plain_code])
            .await
            .and_then(|row| row.map(|row| row.try_get(0)).transpose())
            .map_err(|err| pg_error(err, "find_token_by_plain_code"))?;
        uuid.map(|uuid| rows::parse_uuid(&uuid, "tokens.uuid"))
            .transpose()
    }

    async fn list_tokens(
        &self,
        owner: CustomerId,
        filter: &TokenFilter,
        limit: usize,
    ) -> Result<Vec<Token>, StoreError> {
        let conditions = rows::token_filter_conditions(filter);
        let limit = rows::list_limit(limit);
        let mut sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE owner_id = $1");
        let mut params: Vec<Param<'_>> = vec![&owner];
        for (column, value) in &conditions {
            params.push(filter_param(value));
            sql.push_str(&format!(" AND {column} = ${}", params.len()));
        }
        params.push(&limit);
        sql.push_str(&format!(" ORDER BY seq LIMIT ${}", params.len()));
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&sql)
            .await
            .map_err(|err| pg_error(err, "list_tokens"))?;
        let rows = client
            .query(&statement, &params)
            .await
            .and_then(|rows| rows.iter().map(token_row).collect::<Result<Vec<_>, _>>())
            .map_err(|err| pg_error(err, "list_tokens"))?;
        rows.into_iter().map(TokenRow::into_token).collect()
    }

    async fn insert_device(
        &self,
        device: &Device,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<Device, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|err| pg_error(err, "insert_device: begin"))?;
        let statement = tx
            .prepare_cached(&format!(
                "INSERT INTO devices (uuid, customer_id, created, type, pubkey, lat, lon, refname, info) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {DEVICE_COLUMNS}"
            ))
            .await
            .map_err(|err| pg_error(err, "insert_device"))?;
        let row = tx
            .query_one(
                &statement,
                &[
                    &rows::uuid_text(device.uuid),
                    &device.customer_id,
                    &device.created,
                    &device.device_type.as_str(),
                    &device.pubkey,
                    &device.lat,
                    &device.lon,
                    &device.refname,
                    &device.info,
                ],
            )
            .await
            .and_then(|row| device_row(&row))
            .map_err(|err| {
                if is_unique_violation(&err) {
                    StoreError::Duplicate("device uuid")
                } else {
                    pg_error(err, "insert_device")
                }
            })?;
        let stored = row.into_device()?;
        if let Some(key) = idempotency {
            let record = IdempotencyRecord {
                key: key.clone(),
                result: rows::device_json(&stored)?,
            };
            let inserted = tx
                .execute(INSERT_IDEMPOTENCY.as_str(), &idempotency_params(&record))
                .await
                .map_err(|err| pg_error(err, "insert_device: idempotency key"))?;
            if inserted == 0 {
                // Dropping the transaction rolls the device back.
                return Err(StoreError::Duplicate(IDEMPOTENCY_KEY));
            }
        }
        finish(tx).await?;
        Ok(stored)
    }

    async fn find_idempotency(
        &self,
        customer: CustomerId,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        static FIND: LazyLock<String> =
            LazyLock::new(|| rows::find_idempotency_sql(Dialect::Postgres));
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&FIND)
            .await
            .map_err(|err| pg_error(err, "find_idempotency"))?;
        client
            .query_opt(&statement, &[&customer, &key])
            .await
            .and_then(|row| {
                row.map(|row| {
                    Ok(IdempotencyRecord {
                        key: IdempotencyKey {
                            customer_id: row.try_get(0)?,
                            key: row.try_get(1)?,
                            fingerprint: row.try_get(2)?,
                            created: row.try_get(3)?,
                        },
                        result: row.try_get(4)?,
                    })
                })
                .transpose()
            })
            .map_err(|err| pg_error(err, "find_idempotency"))
    }

    async fn delete_idempotency_before(&self, before: i64) -> Result<u64, StoreError> {
        self.execute(
            "DELETE FROM idempotency_keys WHERE created < $1",
            &[&before],
            "delete_idempotency_before",
        )
        .await
    }

    async fn load_device(&self, uuid: Uuid) -> Result<Option<Device>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE uuid = $1"
            ))
            .await
            .map_err(|err| pg_error(err, "load_device"))?;
        let row = client
            .query_opt(&statement, &[&rows::uuid_text(uuid)])
            .await
            .and_then(|row| row.as_ref().map(device_row).transpose())
            .map_err(|err| pg_error(err, "load_device"))?;
        row.map(DeviceRow::into_device).transpose()
    }

    async fn list_devices(
        &self,
        customer: CustomerId,
        limit: usize,
    ) -> Result<Vec<Device>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE customer_id = $1 ORDER BY id LIMIT $2"
            ))
            .await
            .map_err(|err| pg_error(err, "list_devices"))?;
        let rows = client
            .query(&statement, &[&customer, &rows::list_limit(limit)])
            .await
            .and_then(|rows| rows.iter().map(device_row).collect::<Result<Vec<_>, _>>())
            .map_err(|err| pg_error(err, "list_devices"))?;
        rows.into_iter().map(DeviceRow::into_device).collect()
    }

    async fn create_customer(&self, customer: &NewCustomer) -> Result<Customer, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "INSERT INTO customers (created, email, display_name, roles) \
                 VALUES ($1, $2, $3, $4) RETURNING {CUSTOMER_COLUMNS}"
            ))
            .await
            .map_err(|err| pg_error(err, "create_customer"))?;
        client
            .query_one(
                &statement,
                &[
                    &now_millis(),
                    &rows::fold_case(&customer.email),
                    &customer.display_name,
                    &customer.roles,
                ],
            )
            .await
            .and_then(|row| customer_row(&row))
            .map_err(|err| {
                if is_unique_violation(&err) {
                    StoreError::Duplicate("email")
                } else {
                    pg_error(err, "create_customer")
                }
            })
    }

    async fn load_customer(&self, id: CustomerId) -> Result<Option<Customer>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1"
            ))
            .await
            .map_err(|err| pg_error(err, "load_customer"))?;
        client
            .query_opt(&statement, &[&id])
            .await
            .and_then(|row| row.as_ref().map(customer_row).transpose())
            .map_err(|err| pg_error(err, "load_customer"))
    }

    async fn find_customer_by_email(&self, email: &str) -> Result<Option<Customer>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE email = $1"
            ))
            .await
            .map_err(|err| pg_error(err, "find_customer_by_email"))?;
        client
            .query_opt(&statement, &[&rows::fold_case(email)])
            .await
            .and_then(|row| row.as_ref().map(customer_row).transpose())
            .map_err(|err| pg_error(err, "find_customer_by_email"))
    }

    async fn create_access(
        &self,
        customer: CustomerId,
        scope: Scope,
        apikey: &str,
        secret_hash: &[u8],
    ) -> Result<Access, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "INSERT INTO access (customer_id, created, scope, apikey, secret_hash) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING {ACCESS_COLUMNS}"
            ))
            .await
            .map_err(|err| pg_error(err, "create_access"))?;
        let row = client
            .query_one(
                &statement,
                &[
                    &customer,
                    &now_millis(),
                    &scope.as_str(),
                    &rows::fold_case(apikey),
                    &secret_hash,
                ],
            )
            .await
            .and_then(|row| access_row(&row))
            .map_err(|err| {
                if is_unique_violation(&err) {
                    StoreError::Duplicate("apikey")
                } else {
                    pg_error(err, "create_access")
                }
            })?;
        row.into_access()
    }

    async fn find_access(&self, apikey: &str) -> Result<Option<Access>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {ACCESS_COLUMNS} FROM access WHERE apikey = $1"
            ))
            .await
            .map_err(|err| pg_error(err, "find_access"))?;
        let row = client
            .query_opt(&statement, &[&rows::fold_case(apikey)])
            .await
            .and_then(|row| row.as_ref().map(access_row).transpose())
            .map_err(|err| pg_error(err, "find_access"))?;
        row.map(AccessRow::into_access).transpose()
    }

    async fn load_param(
        &self,
        customer: CustomerId,
        key: &str,
    ) -> Result<Option<Value>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT pvalue FROM params WHERE customer_id = $1 AND pkey = $2")
            .await
            .map_err(|err| pg_error(err, "load_param"))?;
        let text: Option<String> = client
            .query_opt(&statement, &[&customer, &key])
            .await
            .and_then(|row| row.map(|row| row.try_get(0)).transpose())
            .map_err(|err| pg_error(err, "load_param"))?;
        text.map(|text| rows::parse_json(&text, "params.pvalue"))
            .transpose()
    }

    async fn save_param(
        &self,
        customer: CustomerId,
        key: &str,
        value: &Value,
    ) -> Result<(), StoreError> {
        let value = rows::json_text(value)?;
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO params (customer_id, pkey, pvalue, updated) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (customer_id, pkey) \
                 DO UPDATE SET pvalue = excluded.pvalue, updated = excluded.updated",
            )
            .await
            .map_err(|err| pg_error(err, "save_param"))?;
        client
            .execute(&statement, &[&customer, &key, &value, &now_millis()])
            .await
            .map_err(|err| pg_error(err, "save_param"))?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|err| pg_error(err, "ping"))?;
        Ok(())
    }

    async fn delete_param(&self, customer: CustomerId, key: &str) -> Result<u64, StoreError> {
        self.execute(
            "DELETE FROM params WHERE customer_id = $1 AND pkey = $2",
            &[&customer, &key],
            "delete_param",
        )
        .await
    }

    async fn find_credentials(&self, email: &str) -> Result<Option<Credentials>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {CREDENTIAL_COLUMNS} FROM customers WHERE email = $1"
            ))
            .await
            .map_err(|err| pg_error(err, "find_credentials"))?;
        let row = client
            .query_opt(&statement, &[&rows::fold_case(email)])
            .await
            .and_then(|row| row.as_ref().map(credentials_row).transpose())
            .map_err(|err| pg_error(err, "find_credentials"))?;
        Ok(row.map(CredentialsRow::into_credentials))
    }

    async fn create_user(
        &self,
        user: &NewCustomer,
        password_hash: &str,
        status: i32,
    ) -> Result<Customer, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "INSERT INTO customers (created, email, display_name, roles, status, password_hash) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING {CUSTOMER_COLUMNS}"
            ))
            .await
            .map_err(|err| pg_error(err, "create_user"))?;
        client
            .query_one(
                &statement,
                &[
                    &now_millis(),
                    &rows::fold_case(&user.email),
                    &user.display_name,
                    &user.roles,
                    &status,
                    &password_hash,
                ],
            )
            .await
            .and_then(|row| customer_row(&row))
            .map_err(|err| {
                if is_unique_violation(&err) {
                    StoreError::Duplicate("email")
                } else {
                    pg_error(err, "create_user")
                }
            })
    }

    async fn set_password(
        &self,
        customer: CustomerId,
        password_hash: &str,
        status: i32,
    ) -> Result<(), StoreError> {
        self.execute(
            "UPDATE customers SET password_hash = $2, status = $3 WHERE id = $1",
            &[&customer, &password_hash, &status],
            "set_password",
        )
        .await?;
        Ok(())
    }

    async fn set_twofa_secret(
        &self,
        customer: CustomerId,
        secret: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        self.execute(
            "UPDATE customers SET twofa_secret = $2 WHERE id = $1",
            &[&customer, &secret],
            "set_twofa_secret",
        )
        .await?;
        Ok(())
    }

    async fn list_customers(&self) -> Result<Vec<Customer>, StoreError> {
        let query = BoundQuery {
            sql: format!("SELECT {CUSTOMER_COLUMNS} FROM customers ORDER BY id LIMIT $1"),
            values: vec![FilterValue::Int(rows::list_limit(LIST_LIMIT_MAX))],
        };
        self.query_rows(&query, "list_customers", customer_row)
            .await
    }

    async fn update_customer(
        &self,
        email: &str,
        update: &CustomerUpdate,
    ) -> Result<u64, StoreError> {
        self.execute(
            "UPDATE customers SET display_name = $2, roles = $3, info = $4 WHERE email = $1",
            &[
                &rows::fold_case(email),
                &update.display_name,
                &update.roles,
                &update.info,
            ],
            "update_customer",
        )
        .await
    }

    async fn delete_customer(&self, email: &str) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("DELETE FROM customers WHERE email = $1")
            .await
            .map_err(|err| pg_error(err, "delete_customer"))?;
        client
            .execute(&statement, &[&rows::fold_case(email)])
            .await
            .map_err(|err| {
                if is_foreign_key_violation(&err) {
                    StoreError::Referenced("customer")
                } else {
                    pg_error(err, "delete_customer")
                }
            })
    }

    async fn set_access_secret_encrypted(
        &self,
        access: i64,
        encrypted: &[u8],
    ) -> Result<(), StoreError> {
        self.execute(
            "UPDATE access SET secret_encrypted = $2 WHERE id = $1",
            &[&access, &encrypted],
            "set_access_secret_encrypted",
        )
        .await?;
        Ok(())
    }

    async fn load_access(&self, id: i64) -> Result<Option<AccessRecord>, StoreError> {
        let query = BoundQuery {
            sql: format!("SELECT {ACCESS_COLUMNS}, secret_encrypted FROM access WHERE id = $1"),
            values: vec![FilterValue::Int(id)],
        };
        let row = self
            .query_rows(&query, "load_access", access_record_row)
            .await?
            .into_iter()
            .next();
        row.map(AccessRecordRow::into_record).transpose()
    }

    async fn list_access(
        &self,
        customer: CustomerId,
        scope: Scope,
    ) -> Result<Vec<AccessRecord>, StoreError> {
        let query = BoundQuery {
            sql: format!(
                "SELECT {ACCESS_COLUMNS}, secret_encrypted FROM access \
                 WHERE customer_id = $1 AND scope = $2 ORDER BY id LIMIT $3"
            ),
            values: vec![
                FilterValue::Int(customer),
                FilterValue::Text(scope.as_str().to_owned()),
                FilterValue::Int(rows::list_limit(LIST_LIMIT_MAX)),
            ],
        };
        self.query_rows(&query, "list_access", access_record_row)
            .await?
            .into_iter()
            .map(AccessRecordRow::into_record)
            .collect()
    }

    async fn delete_access(&self, customer: CustomerId, id: i64) -> Result<u64, StoreError> {
        self.execute(
            "DELETE FROM access WHERE customer_id = $1 AND id = $2",
            &[&customer, &id],
            "delete_access",
        )
        .await
    }

    async fn load_device_by_id(&self, id: i64) -> Result<Option<Device>, StoreError> {
        let query = BoundQuery {
            sql: format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1"),
            values: vec![FilterValue::Int(id)],
        };
        let row = self
            .query_rows(&query, "load_device_by_id", device_row)
            .await?
            .into_iter()
            .next();
        row.map(DeviceRow::into_device).transpose()
    }

    async fn update_device(
        &self,
        customer: CustomerId,
        id: i64,
        device_type: Option<DeviceType>,
        refname: Option<Option<String>>,
    ) -> Result<u64, StoreError> {
        let query =
            rows::update_device_query(Dialect::Postgres, customer, id, device_type, refname)
                .ok_or_else(|| {
                    StoreError::Internal(anyhow!("update_device: no field to update"))
                })?;
        let params: Vec<Param<'_>> = query.values.iter().map(filter_param).collect();
        self.execute(&query.sql, &params, "update_device").await
    }

    async fn delete_device(&self, customer: CustomerId, id: i64) -> Result<u64, StoreError> {
        let what = "delete_device";
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|err| pg_error(err, what))?;
        let uuid: Option<String> = tx
            .query_opt(
                "SELECT uuid FROM devices WHERE customer_id = $1 AND id = $2 FOR UPDATE",
                &[&customer, &id],
            )
            .await
            .and_then(|row| row.map(|row| row.try_get(0)).transpose())
            .map_err(|err| pg_error(err, what))?;
        let Some(uuid) = uuid else {
            return Ok(0);
        };
        let referenced: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM tokens WHERE owner_device = $1) \
                 OR EXISTS (SELECT 1 FROM tokens WHERE lock_device = $1)",
                &[&uuid],
            )
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|err| pg_error(err, what))?;
        if referenced {
            return Err(StoreError::Referenced("device"));
        }
        let deleted = tx
            .execute("DELETE FROM devices WHERE id = $1", &[&id])
            .await
            .map_err(|err| pg_error(err, what))?;
        tx.commit().await.map_err(|err| pg_error(err, what))?;
        Ok(deleted)
    }

    async fn device_stats(&self) -> Result<Vec<DeviceStat>, StoreError> {
        let query = BoundQuery {
            sql: "SELECT c.email, d.type, d.refname FROM devices d \
                  JOIN customers c ON c.id = d.customer_id ORDER BY d.id LIMIT $1"
                .to_owned(),
            values: vec![FilterValue::Int(rows::list_limit(LIST_LIMIT_MAX))],
        };
        let rows: Vec<(String, String, Option<String>)> = self
            .query_rows(&query, "device_stats", |row| {
                Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
            })
            .await?;
        rows.into_iter()
            .map(|(email, device_type, refname)| {
                Ok(DeviceStat {
                    email,
                    device_type: rows::parse_device_type(&device_type)?,
                    refname,
                })
            })
            .collect()
    }

    async fn insert_account(
        &self,
        customer: CustomerId,
        account: &NewAccount,
    ) -> Result<Account, StoreError> {
        let what = "insert_account";
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|err| pg_error(err, what))?;
        lock_customer_accounts(&tx, customer)
            .await
            .map_err(|err| pg_error(err, what))?;
        let is_default = i32::from(account.default);
        let id: i64 = tx
            .query_one(
                "INSERT INTO accounts (customer_id, value, type, is_default, symbol, refname) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[
                    &customer,
                    &account.value,
                    &account.account_type,
                    &is_default,
                    &account.symbol,
                    &account.refname,
                ],
            )
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|err| pg_error(err, what))?;
        apply_default_rule(&tx, customer)
            .await
            .map_err(|err| pg_error(err, what))?;
        let row = tx
            .query_one(
                &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1"),
                &[&id],
            )
            .await
            .and_then(|row| account_row(&row))
            .map_err(|err| pg_error(err, what))?;
        tx.commit().await.map_err(|err| pg_error(err, what))?;
        Ok(row.into_account())
    }

    async fn list_accounts(
        &self,
        customer: CustomerId,
        default: Option<bool>,
    ) -> Result<Vec<Account>, StoreError> {
        let query = rows::list_accounts_query(Dialect::Postgres, customer, default);
        Ok(self
            .query_rows(&query, "list_accounts", account_row)
            .await?
            .into_iter()
            .map(AccountRow::into_account)
            .collect())
    }

    async fn load_account(&self, id: i64) -> Result<Option<Account>, StoreError> {
        let query = BoundQuery {
            sql: format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1"),
            values: vec![FilterValue::Int(id)],
        };
        Ok(self
            .query_rows(&query, "load_account", account_row)
            .await?
            .into_iter()
            .next()
            .map(AccountRow::into_account))
    }

    async fn update_account(
        &self,
        customer: CustomerId,
        account: &Account,
        make_default: bool,
    ) -> Result<u64, StoreError> {
        let what = "update_account";
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|err| pg_error(err, what))?;
        lock_customer_accounts(&tx, customer)
            .await
            .map_err(|err| pg_error(err, what))?;
        let is_default = i32::from(make_default || account.default != 0);
        let matched = tx
            .execute(
                "UPDATE accounts SET value = $3, type = $4, is_default = $5, symbol = $6, \
                 refname = $7 WHERE customer_id = $1 AND id = $2",
                &[
                    &customer,
                    &account.id,
                    &account.value,
                    &account.account_type,
                    &is_default,
                    &account.symbol,
                    &account.refname,
                ],
            )
            .await
            .map_err(|err| pg_error(err, what))?;
        if matched == 0 {
            return Ok(0);
        }
        if make_default {
            tx.execute(
                "UPDATE accounts SET is_default = 0 WHERE customer_id = $1 AND id <> $2",
                &[&customer, &account.id],
            )
            .await
            .map_err(|err| pg_error(err, what))?;
        }
        apply_default_rule(&tx, customer)
            .await
            .map_err(|err| pg_error(err, what))?;
        tx.commit().await.map_err(|err| pg_error(err, what))?;
        Ok(matched)
    }

    async fn delete_account(&self, customer: CustomerId, id: i64) -> Result<u64, StoreError> {
        let what = "delete_account";
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|err| pg_error(err, what))?;
        lock_customer_accounts(&tx, customer)
            .await
            .map_err(|err| pg_error(err, what))?;
        let deleted = tx
            .execute(
                "DELETE FROM accounts WHERE customer_id = $1 AND id = $2",
                &[&customer, &id],
            )
            .await
            .map_err(|err| pg_error(err, what))?;
        apply_default_rule(&tx, customer)
            .await
            .map_err(|err| pg_error(err, what))?;
        tx.commit().await.map_err(|err| pg_error(err, what))?;
        Ok(deleted)
    }

    async fn token_stats(
        &self,
        customer: Option<CustomerId>,
    ) -> Result<Vec<TokenStat>, StoreError> {
        let query = rows::token_stats_query(Dialect::Postgres, customer);
        let rows: Vec<(String, String, i64, i64, i64)> = self
            .query_rows(&query, "token_stats", |row| {
                Ok((
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                    row.try_get(4)?,
                ))
            })
            .await?;
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
    }

    async fn journal(&self, query: &JournalQuery) -> Result<Vec<JournalEntry>, StoreError> {
        let bound = rows::journal_query(Dialect::Postgres, query);
        let rows = self.query_rows(&bound, "journal", journal_row).await?;
        rows::journal_entries(rows, query)
    }

    async fn clearing_rows(&self, query: &ClearingQuery) -> Result<Vec<ClearingRow>, StoreError> {
        let bound = rows::clearing_rows_query(Dialect::Postgres, query);
        let rows = self
            .query_rows(&bound, "clearing_rows", |row| {
                Ok((token_row(row)?, clearing_extra(row)?))
            })
            .await?;
        rows.into_iter()
            .map(|(token, extra)| rows::clearing_row(token, extra))
            .collect()
    }

    async fn clearing_sums(&self, query: &ClearingQuery) -> Result<Vec<ClearingSum>, StoreError> {
        let bound = rows::clearing_sums_query(Dialect::Postgres, query);
        type SumRow = (String, String, i64, i64, i64, i64, i64);
        let rows: Vec<SumRow> = self
            .query_rows(&bound, "clearing_sums", |row| {
                Ok((
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                    row.try_get(4)?,
                    row.try_get(5)?,
                    row.try_get(6)?,
                ))
            })
            .await?;
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
    }

    async fn events_after(
        &self,
        customer: Option<CustomerId>,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let query = rows::events_after_query(Dialect::Postgres, customer, after_seq, limit);
        self.query_rows(&query, "events_after", event_row)
            .await?
            .into_iter()
            .map(EventRow::into_record)
            .collect()
    }

    async fn last_event_seq(&self) -> Result<i64, StoreError> {
        let query = BoundQuery {
            sql: "SELECT COALESCE(MAX(seq), 0)::BIGINT FROM token_events".to_owned(),
            values: Vec::new(),
        };
        let seq = self
            .query_rows(&query, "last_event_seq", |row| row.try_get::<_, i64>(0))
            .await?;
        Ok(seq.into_iter().next().unwrap_or(0))
    }

    async fn due_expiries(&self, now: i64, limit: usize) -> Result<Vec<Uuid>, StoreError> {
        let query = BoundQuery {
            sql: "SELECT uuid FROM tokens WHERE state = 'OPEN' AND expires < $1 \
                  ORDER BY expires, seq LIMIT $2"
                .to_owned(),
            values: vec![
                FilterValue::Int(now),
                FilterValue::Int(rows::list_limit(limit)),
            ],
        };
        let uuids: Vec<String> = self
            .query_rows(&query, "due_expiries", |row| row.try_get(0))
            .await?;
        uuids
            .iter()
            .map(|uuid| rows::parse_uuid(uuid, "tokens.uuid"))
            .collect()
    }

    async fn delete_history(&self, before: i64) -> Result<u64, StoreError> {
        // One batch per statement (and so per transaction): tokens in a final state, their
        // events and their clearing rows.
        let batch = i64::try_from(HISTORY_BATCH).unwrap_or(i64::MAX);
        let mut removed = 0_u64;
        loop {
            let deleted = self
                .execute(
                    "WITH doomed AS (SELECT uuid FROM tokens WHERE created < $1 \
                     AND state NOT IN ('OPEN', 'LOCKED') ORDER BY created LIMIT $2), \
                     events AS (DELETE FROM token_events \
                     WHERE token_uuid IN (SELECT uuid FROM doomed)), \
                     clearings AS (DELETE FROM clearing \
                     WHERE token_uuid IN (SELECT uuid FROM doomed)) \
                     DELETE FROM tokens WHERE uuid IN (SELECT uuid FROM doomed)",
                    &[&before, &batch],
                    "delete_history",
                )
                .await?;
            removed += deleted;
            if deleted < HISTORY_BATCH as u64 {
                return Ok(removed);
            }
        }
    }
}
