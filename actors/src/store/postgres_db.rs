//! [`Db`] and [`Backend`] over PostgreSQL: `sql::Value` parameters bound by the column type
//! the server infers, rows read back by their column types.

use std::error::Error as StdError;

use async_trait::async_trait;
use bytes::BytesMut;
use deadpool_postgres::GenericClient;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use super::postgres::{pg_error, PostgresStore};
use super::rows::Dialect;
use super::sql::{Backend, Db, DbError, Job, Row, Value};
use super::{PoolUsage, StoreError, WriteOutcome, WriteSet};

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self {
            Self::Null => Ok(IsNull::Yes),
            Self::Int(value) => match *ty {
                Type::INT2 => checked(&i16::try_from(*value)?, ty, out),
                Type::INT4 => checked(&i32::try_from(*value)?, ty, out),
                Type::BOOL => checked(&(*value != 0), ty, out),
                _ => checked(value, ty, out),
            },
            Self::Real(value) => checked(value, ty, out),
            Self::Text(value) => checked(value, ty, out),
            Self::Bytes(value) => checked(value, ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Which variant a value is decides; `checked` refuses a type it cannot be.
        true
    }

    to_sql_checked!();
}

/// Bind `value` as `ty` if its Rust type can be one.
fn checked<T: ToSql>(value: &T, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
    if T::accepts(ty) {
        value.to_sql(ty, out)
    } else {
        Err(format!("cannot bind {} as {ty}", std::any::type_name::<T>()).into())
    }
}

/// A row's columns as [`Value`]s, by their PostgreSQL types.
fn owned_row(row: &tokio_postgres::Row) -> Result<Row, tokio_postgres::Error> {
    let mut values = Vec::with_capacity(row.len());
    for (index, column) in row.columns().iter().enumerate() {
        let value = match *column.type_() {
            Type::INT8 => row.try_get::<_, Option<i64>>(index)?.map(Value::Int),
            Type::INT4 => row.try_get::<_, Option<i32>>(index)?.map(Value::from),
            Type::INT2 => row.try_get::<_, Option<i16>>(index)?.map(|value| Value::Int(i64::from(value))),
            Type::BOOL => row.try_get::<_, Option<bool>>(index)?.map(|value| Value::Int(i64::from(value))),
            Type::FLOAT8 => row.try_get::<_, Option<f64>>(index)?.map(Value::Real),
            Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(index)?.map(Value::Bytes),
            _ => row.try_get::<_, Option<String>>(index)?.map(Value::Text),
        };
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(Row(values))
}

fn db_error(err: tokio_postgres::Error, what: &str) -> DbError {
    match err.code() {
        Some(code) if *code == SqlState::UNIQUE_VIOLATION => DbError::Unique(pg_error(err, what)),
        Some(code) if *code == SqlState::FOREIGN_KEY_VIOLATION => DbError::ForeignKey(pg_error(err, what)),
        _ => DbError::Other(pg_error(err, what)),
    }
}

/// A pooled connection or one of its transactions.
struct PgDb<'a, C> {
    client: &'a C,
    what: &'static str,
}

impl<C: GenericClient> PgDb<'_, C> {
    async fn statement(&self, sql: &str) -> Result<tokio_postgres::Statement, DbError> {
        self.client.prepare_cached(sql).await.map_err(|err| db_error(err, self.what))
    }
}

pub(super) fn params(values: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|value| value as &(dyn ToSql + Sync)).collect()
}

#[async_trait]
impl<C: GenericClient + Send> Db for PgDb<'_, C> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn query(&mut self, sql: &str, values: &[Value]) -> Result<Vec<Row>, DbError> {
        let statement = self.statement(sql).await?;
        self.client
            .query(&statement, &params(values))
            .await
            .and_then(|rows| rows.iter().map(owned_row).collect())
            .map_err(|err| db_error(err, self.what))
    }

    async fn execute(&mut self, sql: &str, values: &[Value]) -> Result<u64, DbError> {
        let statement = self.statement(sql).await?;
        self.client.execute(&statement, &params(values)).await.map_err(|err| db_error(err, self.what))
    }
}

#[async_trait]
impl Backend for PostgresStore {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn deadline(&self) -> std::time::Duration {
        self.deadline
    }

    async fn run_read<T: Send + 'static>(&self, what: &'static str, job: Job<T>) -> Result<T, StoreError> {
        let client = self.client().await?;
        let mut db = PgDb { client: &client, what };
        job(&mut db).await
    }

    async fn run_write<T: Send + 'static>(&self, what: &'static str, job: Job<T>) -> Result<T, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|err| pg_error(err, what))?;
        let result = {
            let mut db = PgDb { client: &tx, what };
            job(&mut db).await
        };
        // Dropping the transaction on an error rolls it back.
        let value = result?;
        super::postgres::finish(tx).await?;
        Ok(value)
    }

    async fn run_commit(&self, sets: &[WriteSet]) -> Result<Vec<WriteOutcome>, StoreError> {
        self.group_commit(sets).await
    }

    fn commit_connections(&self) -> usize {
        self.commit_pool_size()
    }

    fn connection_usage(&self) -> Vec<PoolUsage> {
        self.pools()
    }
}
