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
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, Transaction};
use futures_util::future::join_all;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;

use super::entities::{self, EntityValues};
use super::ledger::{self, RowWrite};
use super::rows::{self, ClearingValues, Dialect, EventValues, SetValues, TokenValues, WriteValues, EVENT_COLUMNS};
use super::sql::Value;
use super::{IdempotencyRecord, PoolUsage, StoreError, WriteOutcome, WriteSet};
use crate::clock::now_millis;

/// Forward-only migrations: `(version, sql)`, ascending. See `migrations/README.md`.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/postgres/0001_init.sql")),
    (2, include_str!("migrations/postgres/0002_portal_clearing.sql")),
    (3, include_str!("migrations/postgres/0003_idempotency.sql")),
    (4, include_str!("migrations/postgres/0004_entities.sql")),
    (5, include_str!("migrations/postgres/0005_ledger.sql")),
    (6, include_str!("migrations/postgres/0006_ccc.sql")),
];

/// Advisory lock key serialising the migrations of nodes starting together ("cashgrid").
const MIGRATION_LOCK: i64 = 0x6361_7368_6772_6964;

/// How long to wait for a pooled connection, to open one, or to check one: then 503. Shorter
/// than the deadline of a store call (`sql::Backend`), so that a call that never reached the
/// database says so (503) instead of "outcome unknown".
const POOL_TIMEOUT: Duration = Duration::from_secs(2);

static INSERT_TOKEN: LazyLock<String> = LazyLock::new(|| rows::insert_token_sql('$'));
static UPDATE_TOKEN: LazyLock<String> = LazyLock::new(|| rows::update_token_sql('$'));
/// The SQL type of each of [`TOKEN_COLUMNS`], in order: the arrays of the set-based writes.
const TOKEN_COLUMN_TYPES: [&str; 21] = [
    "TEXT", "BIGINT", "BIGINT", "BIGINT", "TEXT", "TEXT", "TEXT", "BYTEA", "BIGINT", "TEXT", "TEXT", "BIGINT",
    "BIGINT", "TEXT", "TEXT", "TEXT", "TEXT", "BIGINT", "TEXT", "TEXT", "BIGINT",
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
        "INSERT INTO tokens ({}) SELECT * FROM {} ON CONFLICT DO NOTHING RETURNING uuid",
        rows::TOKEN_COLUMNS,
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
static INSERT_CLEARING: LazyLock<String> = LazyLock::new(|| rows::insert_clearing_sql(Dialect::Postgres));
static INSERT_IDEMPOTENCY: LazyLock<String> = LazyLock::new(|| rows::insert_idempotency_sql(Dialect::Postgres));

type Param<'a> = &'a (dyn ToSql + Sync);

/// The PostgreSQL store. Cloning is cheap: clones share the pools.
#[derive(Clone)]
pub struct PostgresStore {
    /// Reads and the admin commands' writes.
    pool: Pool,
    /// Group commits only.
    commit_pool: Pool,
    /// Of every call and commit (`sql::Backend`).
    pub(super) deadline: Duration,
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
    pub async fn connect(database_url: &str, pool_size: usize, commit_connections: usize) -> Result<Self, StoreError> {
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
            deadline: super::sql::DEFAULT_DEADLINE,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Every call and commit ends by `deadline` (default 5 s).
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The migrations this build applies, `(version, sql)` ascending. For tests: their
    /// template database is named after a hash of these.
    #[doc(hidden)]
    pub fn migrations() -> &'static [(i64, &'static str)] {
        MIGRATIONS
    }

    pub(super) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Apply the pending migrations in one transaction, under a transaction-level advisory lock
    /// so that nodes starting together do not race.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|err| pg_error(err, "begin migrations"))?;
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
            .query_one("SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations", &[])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|err| pg_error(err, "read schema_migrations"))?;
        let known = MIGRATIONS.iter().map(|(version, _)| *version).max().unwrap_or(0);
        if current > known {
            tracing::warn!(current, known, "postgres store: schema is newer than this binary");
        }
        for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > current) {
            tx.batch_execute(sql).await.map_err(|err| pg_error(err, &format!("migration {version}")))?;
            tx.execute("INSERT INTO schema_migrations (version, applied) VALUES ($1, $2)", &[version, &now_millis()])
                .await
                .map_err(|err| pg_error(err, &format!("record migration {version}")))?;
            tracing::info!(version, "postgres store: applied migration");
        }
        tx.commit().await.map_err(|err| pg_error(err, "commit migrations"))
    }
}

fn build_pool(config: tokio_postgres::Config, size: usize) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
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
        PoolError::Timeout(kind) => {
            StoreError::Unavailable(format!("postgres: timed out getting a connection ({kind:?})"))
        }
        PoolError::Backend(err) => pg_error(err, "connect"),
        PoolError::Closed => StoreError::Unavailable("postgres: the pool is closed".to_owned()),
        PoolError::PostCreateHook(err) => StoreError::Unavailable(format!("postgres: {err}")),
        PoolError::NoRuntimeSpecified => StoreError::Internal(anyhow!("postgres pool: no runtime specified")),
    }
}

/// Connection loss, refused or failed connections (including a refused login or a missing
/// database), server shutdown, too many connections and transient lock failures are
/// `Unavailable` (503); anything else is `Internal`.
pub(super) fn pg_error(err: tokio_postgres::Error, what: &str) -> StoreError {
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
                || std::error::Error::source(&err).is_some_and(|source| source.is::<std::io::Error>())
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

fn token_params(token: &TokenValues) -> [Param<'_>; 21] {
    token.params().map(|param| param as Param<'_>)
}

/// One parameter of many row writes, as an array.
enum RowColumn {
    Texts(Vec<Option<String>>),
    Integers(Vec<Option<i64>>),
}

impl RowColumn {
    fn of<'a>(values: impl Iterator<Item = Option<&'a Value>>, integer: bool) -> Self {
        if integer {
            Self::Integers(
                values
                    .map(|value| match value {
                        Some(Value::Int(number)) => Some(*number),
                        _ => None,
                    })
                    .collect(),
            )
        } else {
            Self::Texts(
                values
                    .map(|value| match value {
                        Some(Value::Text(text)) => Some(text.clone()),
                        _ => None,
                    })
                    .collect(),
            )
        }
    }

    fn param(&self) -> &(dyn tokio_postgres::types::ToSql + Sync) {
        match self {
            Self::Texts(texts) => texts,
            Self::Integers(integers) => integers,
        }
    }
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
            columns.processing_info.push(token.processing_info.as_deref());
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
    entity_insert: tokio_postgres::Statement,
    entity_update: tokio_postgres::Statement,
    entity_event: tokio_postgres::Statement,
    /// The ledger's commit statements, by name.
    ledger: Vec<(&'static str, tokio_postgres::Statement)>,
    /// A pipelined commit's transfers and journal lines, each in one statement.
    ledger_transfers: tokio_postgres::Statement,
    ledger_entries: tokio_postgres::Statement,
    ledger_moves: tokio_postgres::Statement,
}

impl CommitStatements {
    async fn prepare(tx: &Transaction<'_>) -> Result<Self, StoreError> {
        let prepare = |sql: &'static LazyLock<String>| async move {
            tx.prepare_cached(sql).await.map_err(|err| pg_error(err, "commit: prepare"))
        };
        Ok(Self {
            insert: prepare(&INSERT_TOKEN).await?,
            update: prepare(&UPDATE_TOKEN).await?,
            insert_many: prepare(&INSERT_TOKENS).await?,
            events: prepare(&INSERT_EVENTS).await?,
            clearing: prepare(&INSERT_CLEARING).await?,
            idempotency: prepare(&INSERT_IDEMPOTENCY).await?,
            entity_insert: prepare(&entities::INSERT.sql).await?,
            entity_update: prepare(&entities::UPDATE.sql).await?,
            entity_event: prepare(&entities::INSERT_EVENT.sql).await?,
            ledger: {
                let mut prepared = Vec::with_capacity(ledger::COMMIT_STATEMENTS.len());
                for statement in ledger::COMMIT_STATEMENTS {
                    prepared.push((statement.what, prepare(&statement.sql).await?));
                }
                prepared
            },
            ledger_transfers: tx
                .prepare_cached(ledger::INSERT_TRANSFERS_UNNEST)
                .await
                .map_err(|err| pg_error(err, "commit: prepare"))?,
            ledger_entries: tx
                .prepare_cached(ledger::INSERT_ENTRIES_UNNEST)
                .await
                .map_err(|err| pg_error(err, "commit: prepare"))?,
            ledger_moves: tx
                .prepare_cached(ledger::MOVES_UNNEST)
                .await
                .map_err(|err| pg_error(err, "commit: prepare"))?,
        })
    }

    /// Row writes of one insert statement as one multi-row statement (`statement` takes one
    /// array per parameter; `integers` says which are BIGINT): `false` when any must apply and
    /// did not.
    async fn rows_at_once(
        &self,
        tx: &Transaction<'_>,
        statement: &tokio_postgres::Statement,
        integers: &[bool],
        rows: &[&RowWrite],
    ) -> Result<bool, tokio_postgres::Error> {
        if rows.is_empty() {
            return Ok(true);
        }
        let columns: Vec<RowColumn> = integers
            .iter()
            .enumerate()
            .map(|(index, integer)| RowColumn::of(rows.iter().map(|row| row.values.get(index)), *integer))
            .collect();
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = columns.iter().map(RowColumn::param).collect();
        let changed = tx.execute(statement, &params).await?;
        Ok(changed == rows.len() as u64 || rows.iter().all(|row| !row.must_apply))
    }

    /// One row write; `false` when it must apply and did not.
    async fn row(&self, tx: &Transaction<'_>, row: &RowWrite) -> Result<bool, tokio_postgres::Error> {
        let Some((_, statement)) = self.ledger.iter().find(|(what, _)| *what == row.statement.what) else {
            // Every statement a `RowWrite` names is in `COMMIT_STATEMENTS`; a missing one is a
            // bug, refused like a value the database refuses.
            tracing::error!(statement = row.statement.what, "commit: a row write names an unprepared statement");
            return Ok(false);
        };
        let changed = tx.execute(statement, &super::postgres_db::params(&row.values)).await?;
        Ok(changed > 0 || !row.must_apply)
    }

    /// An entity's snapshot, then its events; `false` when the snapshot does not apply.
    async fn entity(&self, tx: &Transaction<'_>, entity: &EntityValues) -> Result<bool, tokio_postgres::Error> {
        let snapshot = if entity.version == 1 { &self.entity_insert } else { &self.entity_update };
        let values: [Param<'_>; 6] =
            [&entity.kind, &entity.id, &entity.version, &entity.state, &entity.lookup, &entity.at];
        if tx.execute(snapshot, &values).await? == 0 {
            return Ok(false);
        }
        for event in &entity.events {
            tx.execute(&self.entity_event, &[&entity.kind, &entity.id, &entity.version, &entity.at, event]).await?;
        }
        Ok(true)
    }

    /// Store an idempotency key; 0 rows when the customer already used it.
    async fn idempotency(
        &self,
        tx: &Transaction<'_>,
        record: &IdempotencyRecord,
    ) -> Result<u64, tokio_postgres::Error> {
        tx.execute(&self.idempotency, &idempotency_params(record)).await
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
    async fn write(&self, tx: &Transaction<'_>, write: &WriteValues) -> Result<u64, tokio_postgres::Error> {
        let (statement, token) = match write {
            WriteValues::Insert(token) => (&self.insert, token),
            WriteValues::Update(token) => (&self.update, token),
        };
        tx.execute(statement, &token_params(token)).await
    }

    /// Insert a clearing row, snapshotting both parties' default accounts.
    async fn clearing(&self, tx: &Transaction<'_>, clearing: &ClearingValues) -> Result<u64, tokio_postgres::Error> {
        tx.execute(
            &self.clearing,
            &[&clearing.token_uuid, &clearing.debitor_id, &clearing.creditor_id, &clearing.created],
        )
        .await
    }

    /// Insert `events` (if any) in one statement.
    async fn events(&self, tx: &Transaction<'_>, events: &EventColumns<'_>) -> Result<u64, tokio_postgres::Error> {
        if events.is_empty() {
            return Ok(0);
        }
        tx.execute(&self.events, &events.params()).await
    }
}

/// The pipelined commit. `Ok(None)` when a write after the first of its set (its idempotency
/// key, or an entity change) did not apply — possible only when two sets of the batch touch
/// the same token, plain code or entity, or a key is already taken, or an entity's stored
/// version moved on: the caller then rolls back and reruns the
/// batch set by set, which decides exactly as SQLite does. A database error (a value it
/// refuses) also sends the batch the set-by-set way, where it fails only its own set.
///
/// One case still differs from set-by-set order, and safely: a first write that only a
/// *later* write of an earlier set would make possible (e.g. set A's second write frees a plain
/// code that set B's insert takes) conflicts here; the actor retries with a fresh code.
async fn commit_pipelined(
    tx: &Transaction<'_>,
    statements: &CommitStatements,
    writes: &[WriteSet],
    sets: &[SetValues],
) -> Result<Option<Vec<WriteOutcome>>, tokio_postgres::Error> {
    // Round one: the deciding first write of every set. New tokens go in as one INSERT over
    // arrays; updates go one statement each (a fenced single-row UPDATE always plans as a unique
    // index lookup, where an UPDATE joined to arrays may be planned as a hash join over the whole
    // table). All are sent at once and run in that order. A token named twice would make the
    // set-based INSERT's answer ambiguous: such a batch goes the in-order way.
    let firsts: Vec<Option<&WriteValues>> = sets.iter().map(|set| set.writes.first()).collect();
    let mut named = HashSet::with_capacity(firsts.len());
    if !firsts.iter().flatten().all(|write| named.insert(written_uuid(write))) {
        return Ok(None);
    }
    let inserts = TokenColumns::new(firsts.iter().flatten().filter_map(|write| match write {
        WriteValues::Insert(token) => Some(token),
        WriteValues::Update(_) => None,
    }));
    let updates = join_all(firsts.iter().map(|first| async move {
        match first {
            Some(write @ WriteValues::Update(_)) => statements.write(tx, write).await.map(|rows| rows > 0),
            Some(WriteValues::Insert(_)) | None => Ok(true),
        }
    }));
    let (inserted, updated) = futures_util::future::join(statements.insert_many(tx, &inserts), updates).await;
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
    // their clearing rows, idempotency keys and entity changes (none depends on a token write,
    // so where they land in the pipeline is moot; the account snapshots are read inside this
    // transaction).
    let committed = || sets.iter().zip(&applied).filter(|(_, applied)| **applied).map(|(set, _)| set);
    let events = EventColumns::new(committed().flat_map(|set| &set.events));
    let later =
        join_all(committed().flat_map(|set| set.writes.iter().skip(1)).map(|write| statements.write(tx, write)));
    let clearings =
        join_all(committed().filter_map(|set| set.clearing.as_ref()).map(|clearing| statements.clearing(tx, clearing)));
    let keys = join_all(
        committed().filter_map(|set| set.idempotency.as_ref()).map(|record| statements.idempotency(tx, record)),
    );
    let entities = join_all(committed().flat_map(|set| &set.entities).map(|entity| statements.entity(tx, entity)));
    // The ledger parts of the whole batch as one: a MOVE per account, in account order.
    let committed_ledgers = writes.iter().zip(&applied).filter(|(_, applied)| **applied).map(|(set, _)| &set.ledger);
    let Ok(ledger_rows) = ledger::rows(committed_ledgers) else {
        return Ok(None);
    };
    // The moves of all accounts, their transfers and their journal lines go in one statement
    // each, in this order after the other ledger rows (new accounts, flags, resolved holds): a
    // move sees an account opened or frozen in the batch, and an entry reads its account's row
    // after the move.
    let (moves, rest): (Vec<&RowWrite>, Vec<&RowWrite>) =
        ledger_rows.iter().partition(|row| ledger::moves_account(row));
    let (transfers, rest): (Vec<&RowWrite>, Vec<&RowWrite>) =
        rest.into_iter().partition(|row| ledger::inserts_transfer(row));
    let (entries, rest): (Vec<&RowWrite>, Vec<&RowWrite>) =
        rest.into_iter().partition(|row| ledger::inserts_entry(row));
    let ledger = async {
        let each = join_all(rest.iter().map(|row| statements.row(tx, row)));
        // The moves lock their accounts in the array's order, which is account order, only
        // when the join walks the array and looks each account up: a hash join would lock them
        // in the table's order, and two nodes' batches of different sizes could deadlock.
        let in_order = async {
            if moves.is_empty() {
                return Ok(());
            }
            tx.batch_execute(ledger::MOVES_IN_ORDER).await
        };
        let moves = statements.rows_at_once(tx, &statements.ledger_moves, &ledger::MOVE_INTEGERS, &moves);
        let transfers =
            statements.rows_at_once(tx, &statements.ledger_transfers, &ledger::TRANSFER_INTEGERS, &transfers);
        let entries = statements.rows_at_once(tx, &statements.ledger_entries, &ledger::ENTRY_INTEGERS, &entries);
        let ((each, in_order), (moves, transfers, entries)) = futures_util::future::join(
            futures_util::future::join(each, in_order),
            futures_util::future::join3(moves, transfers, entries),
        )
        .await;
        in_order.map(|()| each.into_iter().chain([moves, transfers, entries]).collect::<Vec<_>>())
    };
    let ((later, events, clearings, keys), (entities, ledger)) = futures_util::future::join(
        futures_util::future::join4(later, statements.events(tx, &events), clearings, keys),
        futures_util::future::join(entities, ledger),
    )
    .await;
    let mut all_applied = true;
    for result in later.into_iter().chain(keys) {
        all_applied &= result? > 0;
    }
    for result in entities.into_iter().chain(ledger?) {
        all_applied &= result?;
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
            .map(|applied| if applied { WriteOutcome::Committed } else { WriteOutcome::Conflict })
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
    writes: &[WriteSet],
    sets: &[SetValues],
) -> Result<Vec<WriteOutcome>, StoreError> {
    // Lock every ledger account the batch moves, in account order, before any set runs: sets in
    // order would lock them in set order, and a pipelined batch of another node locks them in
    // account order — two orders could deadlock (and each deadlock waits a second to be found).
    let moved = ledger::moved_accounts(writes.iter().map(|set| &set.ledger));
    if !moved.is_empty() {
        tx.query(LOCK_LEDGER_ACCOUNTS, &[&moved]).await.map_err(|err| pg_error(err, "commit: lock accounts"))?;
    }
    let mut outcomes = Vec::with_capacity(sets.len());
    for set in sets {
        tx.batch_execute("SAVEPOINT write_set").await.map_err(|err| pg_error(err, "commit: savepoint"))?;
        let outcome = match commit_set(tx, statements, set).await {
            Ok(true) => WriteOutcome::Committed,
            Ok(false) => WriteOutcome::Conflict,
            // Another transaction held what the set needed: nothing of it was written, and
            // deciding again may succeed.
            Err(err) if is_contention(&err) => WriteOutcome::Conflict,
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
        tx.batch_execute(end).await.map_err(|err| pg_error(err, "commit: savepoint"))?;
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// One set's writes, idempotency key, entity changes, clearing row and events; `false` when a
/// write, the key or an entity change did not apply (the caller undoes the set).
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
    for entity in &set.entities {
        if !statements.entity(tx, entity).await? {
            return Ok(false);
        }
    }
    for row in &set.ledger_rows {
        if !statements.row(tx, row).await? {
            return Ok(false);
        }
    }
    if let Some(clearing) = &set.clearing {
        statements.clearing(tx, clearing).await?;
    }
    statements.events(tx, &EventColumns::new(set.events.iter())).await?;
    Ok(true)
}

/// Locks the ledger accounts of a batch in account order (byte order of the uuid text, as the
/// actors order them).
const LOCK_LEDGER_ACCOUNTS: &str =
    "SELECT id FROM ledger_accounts WHERE id = ANY($1::text[]) ORDER BY id COLLATE \"C\" FOR UPDATE";

/// A deadlock or serialization failure: the statement lost to another transaction.
fn is_contention(err: &tokio_postgres::Error) -> bool {
    err.code().is_some_and(|code| {
        *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::LOCK_NOT_AVAILABLE
    })
}

/// COMMIT. A refusal by the database (it answered) rolled everything back; a connection lost
/// while waiting for the answer leaves the outcome unknown.
pub(super) async fn finish(tx: Transaction<'_>) -> Result<(), StoreError> {
    tx.commit().await.map_err(|err| {
        if err.as_db_error().is_some() {
            pg_error(err, "commit")
        } else {
            StoreError::OutcomeUnknown(format!("postgres commit: {err}"))
        }
    })
}

fn idempotency_params(record: &IdempotencyRecord) -> [Param<'_>; 5] {
    [&record.key.customer_id, &record.key.key, &record.key.fingerprint, &record.key.created, &record.result]
}

impl PostgresStore {
    pub(super) fn commit_pool_size(&self) -> usize {
        self.commit_pool.status().max_size
    }

    pub(super) fn pools(&self) -> Vec<PoolUsage> {
        vec![usage("query", self.pool.status()), usage("commit", self.commit_pool.status())]
    }

    pub(super) async fn group_commit(&self, sets: &[WriteSet]) -> Result<Vec<WriteOutcome>, StoreError> {
        if sets.is_empty() {
            return Ok(Vec::new());
        }
        let mut values = rows::encode_sets(sets)?;
        let mut client = self.commit_pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(|err| pg_error(err, "commit: begin"))?;
        let statements = CommitStatements::prepare(&tx).await?;
        match commit_pipelined(&tx, &statements, sets, &values).await {
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
        tx.rollback().await.map_err(|err| pg_error(err, "commit: rollback"))?;
        rows::encode_ledger_rows(sets, &mut values)?;
        let tx = client.transaction().await.map_err(|err| pg_error(err, "commit: begin"))?;
        let outcomes = commit_in_order(&tx, &statements, sets, &values).await?;
        finish(tx).await?;
        Ok(outcomes)
    }
}
