//! [`Db`] and [`Backend`] over SQLite: jobs run on a blocking thread, on a read connection or
//! inside a `BEGIN IMMEDIATE` transaction of the writer connection, and complete without ever
//! waiting (see `sql::run_now`).

use async_trait::async_trait;
use rusqlite::types::{ToSqlOutput, Value as SqliteValue, ValueRef};
use rusqlite::Connection;

use super::rows::Dialect;
use super::sql::{numbered_placeholders, run_now, Backend, Db, DbError, Job, Row, Value};
use super::sqlite::{is_foreign_key_violation, is_unique_violation, sql_error, SqliteStore};
use super::{PoolUsage, StoreError, WriteOutcome, WriteSet};

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Self::Null => ToSqlOutput::Owned(SqliteValue::Null),
            Self::Int(value) => ToSqlOutput::Owned(SqliteValue::Integer(*value)),
            Self::Real(value) => ToSqlOutput::Owned(SqliteValue::Real(*value)),
            Self::Text(value) => ToSqlOutput::Borrowed(ValueRef::Text(value.as_bytes())),
            Self::Bytes(value) => ToSqlOutput::Borrowed(ValueRef::Blob(value)),
        })
    }
}

fn owned_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let count = row.as_ref().column_count();
    let mut values = Vec::with_capacity(count);
    for index in 0..count {
        values.push(match row.get_ref(index)? {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(value) => Value::Int(value),
            ValueRef::Real(value) => Value::Real(value),
            ValueRef::Text(text) => Value::Text(String::from_utf8_lossy(text).into_owned()),
            ValueRef::Blob(bytes) => Value::Bytes(bytes.to_vec()),
        });
    }
    Ok(Row(values))
}

fn db_error(err: rusqlite::Error, what: &str) -> DbError {
    if is_unique_violation(&err) {
        DbError::Unique(sql_error(err, what))
    } else if is_foreign_key_violation(&err) {
        DbError::ForeignKey(sql_error(err, what))
    } else {
        DbError::Other(sql_error(err, what))
    }
}

/// A connection, borrowed mutably so that the job may be sent with it (a `Connection` is
/// `Send` but not `Sync`).
struct SqliteDb<'a> {
    conn: &'a mut Connection,
    what: &'static str,
}

#[async_trait]
impl Db for SqliteDb<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn query(&mut self, sql: &str, values: &[Value]) -> Result<Vec<Row>, DbError> {
        self.conn
            .prepare_cached(&numbered_placeholders(sql))
            .and_then(|mut statement| {
                statement
                    .query_map(rusqlite::params_from_iter(values), owned_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|err| db_error(err, self.what))
    }

    async fn execute(&mut self, sql: &str, values: &[Value]) -> Result<u64, DbError> {
        self.conn
            .prepare_cached(&numbered_placeholders(sql))
            .and_then(|mut statement| statement.execute(rusqlite::params_from_iter(values)))
            .map(|changed| changed as u64)
            .map_err(|err| db_error(err, self.what))
    }
}

#[async_trait]
impl Backend for SqliteStore {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn deadline(&self) -> std::time::Duration {
        self.deadline
    }

    async fn run_read<T: Send + 'static>(&self, what: &'static str, job: Job<T>) -> Result<T, StoreError> {
        self.read_connection(move |conn| run_now(job(&mut SqliteDb { conn, what }))).await
    }

    async fn run_write<T: Send + 'static>(&self, what: &'static str, job: Job<T>) -> Result<T, StoreError> {
        self.write_connection(move |conn| {
            conn.execute_batch("BEGIN IMMEDIATE").map_err(|err| sql_error(err, what))?;
            match run_now(job(&mut SqliteDb { conn, what })) {
                Ok(value) => {
                    conn.execute_batch("COMMIT").map_err(|err| sql_error(err, what))?;
                    Ok(value)
                }
                Err(err) => {
                    // The job's error is the answer; a failed rollback leaves the connection to
                    // the writer lock's recovery, which rolls back before the next use.
                    let _ = conn.execute_batch("ROLLBACK");
                    Err(err)
                }
            }
        })
        .await
    }

    async fn run_commit(&self, sets: &[WriteSet]) -> Result<Vec<WriteOutcome>, StoreError> {
        self.group_commit(sets).await
    }

    fn connection_usage(&self) -> Vec<PoolUsage> {
        self.pools()
    }
}
