//! The one place where the two SQL backends differ for ordinary queries.
//!
//! Every query of `queries.rs` is written once, with `$n` placeholders, against [`Db`]: a
//! connection (or transaction) that runs a statement with [`Value`] parameters and returns
//! owned [`Row`]s. PostgreSQL implements it over a deadpool client, SQLite over a rusqlite
//! connection (translating `$n` to `?n`). A [`Backend`] runs a [`Job`] on a read connection
//! or inside one write transaction. What is left per backend is connecting, migrating and the
//! group commit, whose tuned shapes differ (a pipelined PostgreSQL batch, sequential SQLite).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;

use super::rows::Dialect;
use super::{PoolUsage, StoreError, WriteOutcome, WriteSet};

/// A statement parameter, or a column value read back.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Null,
    /// Any integer column; PostgreSQL narrows it to the column's INTEGER/SMALLINT on binding.
    Int(i64),
    Real(f64),
    Text(String),
    Bytes(Vec<u8>),
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<i32> for Value {
    fn from(value: i32) -> Self {
        Self::Int(i64::from(value))
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Self {
        Self::Real(value)
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Self::Text(value)
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Self::Text(value.to_owned())
    }
}

impl From<&String> for Value {
    fn from(value: &String) -> Self {
        Self::Text(value.clone())
    }
}

impl From<Vec<u8>> for Value {
    fn from(value: Vec<u8>) -> Self {
        Self::Bytes(value)
    }
}

impl From<&[u8]> for Value {
    fn from(value: &[u8]) -> Self {
        Self::Bytes(value.to_vec())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Self::Null, Into::into)
    }
}

/// `args![a, b, c]`: statement parameters, each converted with `Value::from`. A `Vec`, so that
/// one macro serves both a statement's borrowed parameters and a query's owned ones.
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        vec![$($crate::store::sql::Value::from($value)),*]
    };
}
pub(super) use args;

/// One result row, read by column index.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Row(pub Vec<Value>);

impl Row {
    fn at(&self, index: usize) -> Result<&Value, StoreError> {
        self.0.get(index).ok_or_else(|| StoreError::Internal(anyhow::anyhow!("row has no column {index}")))
    }

    fn mistyped(&self, index: usize, wanted: &str) -> StoreError {
        StoreError::Internal(anyhow::anyhow!("column {index} is not {wanted}: {:?}", self.0.get(index)))
    }

    pub fn opt_i64(&self, index: usize) -> Result<Option<i64>, StoreError> {
        match self.at(index)? {
            Value::Null => Ok(None),
            Value::Int(value) => Ok(Some(*value)),
            _ => Err(self.mistyped(index, "an integer")),
        }
    }

    pub fn i64(&self, index: usize) -> Result<i64, StoreError> {
        self.opt_i64(index)?.ok_or_else(|| self.mistyped(index, "an integer"))
    }

    pub fn i32(&self, index: usize) -> Result<i32, StoreError> {
        i32::try_from(self.i64(index)?).map_err(|_| self.mistyped(index, "a 32-bit integer"))
    }

    pub fn opt_f64(&self, index: usize) -> Result<Option<f64>, StoreError> {
        match self.at(index)? {
            Value::Null => Ok(None),
            Value::Real(value) => Ok(Some(*value)),
            // SQLite stores a REAL without fraction as read back; keep integers exact.
            Value::Int(value) => Ok(Some(*value as f64)),
            _ => Err(self.mistyped(index, "a number")),
        }
    }

    pub fn opt_text(&self, index: usize) -> Result<Option<String>, StoreError> {
        match self.at(index)? {
            Value::Null => Ok(None),
            Value::Text(value) => Ok(Some(value.clone())),
            _ => Err(self.mistyped(index, "text")),
        }
    }

    pub fn text(&self, index: usize) -> Result<String, StoreError> {
        self.opt_text(index)?.ok_or_else(|| self.mistyped(index, "text"))
    }

    pub fn opt_bytes(&self, index: usize) -> Result<Option<Vec<u8>>, StoreError> {
        match self.at(index)? {
            Value::Null => Ok(None),
            Value::Bytes(value) => Ok(Some(value.clone())),
            _ => Err(self.mistyped(index, "bytes")),
        }
    }

    pub fn bytes(&self, index: usize) -> Result<Vec<u8>, StoreError> {
        self.opt_bytes(index)?.ok_or_else(|| self.mistyped(index, "bytes"))
    }
}

/// A failed statement, classified so that callers can name the constraint they expect.
#[derive(Debug)]
pub(super) enum DbError {
    /// A unique or primary key constraint.
    Unique(StoreError),
    /// A foreign key constraint: other rows still reference this one (or it references none).
    ForeignKey(StoreError),
    Other(StoreError),
}

impl DbError {
    /// A unique violation as `Duplicate(what)`; anything else as it is.
    pub fn duplicate(self, what: &'static str) -> StoreError {
        match self {
            Self::Unique(_) => StoreError::Duplicate(what),
            other => other.into(),
        }
    }

    /// A foreign key violation as `Referenced(what)`; anything else as it is.
    pub fn referenced(self, what: &'static str) -> StoreError {
        match self {
            Self::ForeignKey(_) => StoreError::Referenced(what),
            other => other.into(),
        }
    }
}

impl From<DbError> for StoreError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Unique(err) | DbError::ForeignKey(err) | DbError::Other(err) => err,
        }
    }
}

impl From<StoreError> for DbError {
    fn from(err: StoreError) -> Self {
        Self::Other(err)
    }
}

/// A connection or a transaction of either backend.
#[async_trait]
pub(super) trait Db: Send {
    fn dialect(&self) -> Dialect;
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError>;
    /// Rows changed.
    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError>;
}

impl dyn Db + '_ {
    /// The first row, if any.
    pub async fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// The first row; none is an internal error.
    pub async fn query_one(&mut self, sql: &str, params: &[Value]) -> Result<Row, DbError> {
        self.query_opt(sql, params)
            .await?
            .ok_or_else(|| DbError::Other(StoreError::Internal(anyhow::anyhow!("no row from: {sql}"))))
    }
}

/// Work on one connection: a closure handed the connection, returning its future.
pub(super) type Job<T> = Box<dyn for<'a> FnOnce(&'a mut dyn Db) -> BoxFuture<'a, Result<T, StoreError>> + Send>;

/// The deadline of every store call and commit unless the store is given another
/// (`with_deadline`; the server's `store_timeout_ms`).
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

/// A database that runs jobs: everything `queries.rs` needs besides the group commit.
///
/// Every call ends by the store's deadline, so a database that stops answering (a hung
/// server, a network partition) cannot hold requests, actors or the writer. A read past it is
/// `Unavailable` (503: nothing changed). A write past it is `OutcomeUnknown`: it was handed to
/// the database and may still take effect, so it is never reported as "not done". Backends
/// keep their pool waits shorter than the deadline, so that a call that never reached the
/// database fails as `Unavailable` first.
#[async_trait]
pub(super) trait Backend: Send + Sync + 'static {
    fn dialect(&self) -> Dialect;
    fn deadline(&self) -> Duration;
    /// Run `job` on a read connection (autocommit).
    async fn run_read<T: Send + 'static>(&self, what: &'static str, job: Job<T>) -> Result<T, StoreError>;
    /// Run `job` inside one transaction: committed when it returns `Ok`, rolled back otherwise.
    async fn run_write<T: Send + 'static>(&self, what: &'static str, job: Job<T>) -> Result<T, StoreError>;
    /// The group commit of many write sets (`Store::commit`), tuned per backend.
    async fn run_commit(&self, sets: &[WriteSet]) -> Result<Vec<WriteOutcome>, StoreError>;
    /// `Store::commit_slots`.
    fn commit_connections(&self) -> usize {
        1
    }
    /// `Store::pool_usage`.
    fn connection_usage(&self) -> Vec<PoolUsage>;

    /// [`Backend::run_read`] within the deadline.
    async fn read<T: Send + 'static>(&self, what: &'static str, job: Job<T>) -> Result<T, StoreError> {
        let deadline = self.deadline();
        tokio::time::timeout(deadline, self.run_read(what, job))
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable(format!("{what}: no answer within {deadline:?}"))))
    }

    /// [`Backend::run_write`] within the deadline.
    async fn write<T: Send + 'static>(&self, what: &'static str, job: Job<T>) -> Result<T, StoreError> {
        let deadline = self.deadline();
        tokio::time::timeout(deadline, self.run_write(what, job))
            .await
            .unwrap_or_else(|_| Err(StoreError::OutcomeUnknown(format!("{what}: no answer within {deadline:?}"))))
    }

    /// [`Backend::run_commit`] within the deadline.
    async fn commit_within_deadline(&self, sets: &[WriteSet]) -> Result<Vec<WriteOutcome>, StoreError> {
        let deadline = self.deadline();
        tokio::time::timeout(deadline, self.run_commit(sets))
            .await
            .unwrap_or_else(|_| Err(StoreError::OutcomeUnknown(format!("commit: no answer within {deadline:?}"))))
    }
}

/// `$n` placeholders as SQLite's `?n` (a `$name` in SQLite is a named parameter, numbered in
/// order of first appearance, which would misbind `$2 ... $1`). Text inside quotes is kept.
pub(super) fn numbered_placeholders(sql: &str) -> Cow<'_, str> {
    if !sql.contains('$') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c == '$' && !quoted && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Drive a future that never waits (a job on a synchronous SQLite connection) to its end on
/// the calling thread.
pub(super) fn run_now<T>(
    mut future: Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + '_>>,
) -> Result<T, StoreError> {
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(result) => result,
        std::task::Poll::Pending => {
            Err(StoreError::Internal(anyhow::anyhow!("a SQLite job waited on something other than SQLite")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_sqlite_outside_quotes() {
        assert_eq!(numbered_placeholders("a = $2 AND b = $1"), "a = ?2 AND b = ?1");
        assert_eq!(numbered_placeholders("x = '$1' AND y = $10"), "x = '$1' AND y = ?10");
        assert!(matches!(numbered_placeholders("no params"), Cow::Borrowed(_)));
    }

    #[test]
    fn rows_read_their_types_and_refuse_others() {
        let row = Row(vec![Value::Int(7), Value::Null, Value::Text("t".into()), Value::Bytes(vec![1])]);
        assert_eq!(row.i64(0).ok(), Some(7));
        assert_eq!(row.opt_i64(1).ok(), Some(None));
        assert!(row.i64(1).is_err());
        assert_eq!(row.text(2).ok().as_deref(), Some("t"));
        assert!(row.text(0).is_err());
        assert_eq!(row.bytes(3).ok(), Some(vec![1]));
        assert!(row.i64(9).is_err());
    }
}
